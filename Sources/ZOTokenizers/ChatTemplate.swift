/// Chat formatting for instruct models. Jinja is not interpreted: the ChatML convention
/// (`<|im_start|>role\ncontent<|im_end|>\n`, used by SmolLM2 and many others) is recognised in
/// the model's template, including the default system message the template writes when the
/// conversation has none.
public enum ChatTemplate {
    /// The prompt for one user message, ready for the assistant's reply.
    public static func prompt(template: String?, user: String) throws(TokenizerError) -> String {
        guard let template, template.contains("<|im_start|>") else {
            throw .unsupported(path: "chat template", reason: "the model has no ChatML chat template; pass the prompt without --chat")
        }
        var text = ""
        let marker = "<|im_start|>system\n"
        if let start = template[...].range(of: marker) {
            let rest = template[start.upperBound...]
            if let end = rest.range(of: "<|im_end|>") {
                text += marker + rest[rest.startIndex..<end.lowerBound] + "<|im_end|>\n"
            }
        }
        return text + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n"
    }
}
