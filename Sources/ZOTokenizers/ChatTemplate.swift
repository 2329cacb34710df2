import ZOFormats
import ZOJinja

/// A model's chat template: its Jinja source rendered as transformers' `apply_chat_template`
/// does (`messages`, `tools`, `add_generation_prompt`, the tokenizer's special token texts
/// `bos_token`, `eos_token`, … and any extra variables such as `enable_thinking`).
public struct ChatTemplate: Sendable {
    /// The Jinja source.
    public let source: String
    /// Where it came from (a file, or a file and key), for messages.
    public let origin: String
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token` as text, where the tokenizer has them.
    public let specialTokens: [String: String]
    private let template: Template

    /// Parses `source`; errors name `origin` and the template line.
    public init(source: String, origin: String, specialTokens: [String: String] = [:]) throws(ChatTemplateError) {
        self.source = source
        self.origin = origin
        self.specialTokens = specialTokens
        do { template = try Template(source) } catch { throw ChatTemplateError(origin: origin, underlying: error) }
    }

    /// The text of a conversation: `messages` (objects with at least "role" and "content"),
    /// optional `tools` (JSON schemas), the prompt for the assistant's next turn when
    /// `addGenerationPrompt`, and `extra` variables.
    public func render(messages: [JSONValue], tools: [JSONValue]? = nil, addGenerationPrompt: Bool = false,
                       extra: JSONObject = JSONObject()) throws(ChatTemplateError) -> String {
        try renderWithGenerationSpans(messages: messages, tools: tools, addGenerationPrompt: addGenerationPrompt, extra: extra).text
    }

    /// Whether the template marks the assistant's text with `{% generation %}` (then
    /// `renderWithGenerationSpans` says where it is, as transformers' assistant masks do).
    public var marksGeneration: Bool { template.marksGeneration }

    /// The text and the UTF-8 spans its `{% generation %}` blocks wrote.
    public func renderWithGenerationSpans(messages: [JSONValue], tools: [JSONValue]? = nil, addGenerationPrompt: Bool = false,
                                          extra: JSONObject = JSONObject()) throws(ChatTemplateError)
        -> (text: String, generationSpans: [Range<Int>]) {
        var context: [String: Value] = [
            "messages": .array(messages.map(Value.init)),
            "add_generation_prompt": .bool(addGenerationPrompt),
        ]
        context["tools"] = tools.map { Value(.array($0)) } ?? .none
        context["documents"] = Value.none
        for (name, text) in specialTokens { context[name] = .string(text) }
        for member in extra.members { context[member.key] = Value(member.value) }
        do { return try template.renderWithGenerationSpans(context) } catch {
            throw ChatTemplateError(origin: origin, underlying: error)
        }
    }

    /// Special tokens that end an assistant's turn in common templates (ChatML, Llama 3, Gemma,
    /// Phi-3, Mistral): generation stops at whichever the tokenizer has.
    public static let turnEndTokens = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "</s>"]

    /// Where a chat answer ends: `tokenizer`'s EOS and whichever `turnEndTokens` it has.
    public static func stopTokens(of tokenizer: Tokenizer) -> Set<Int> {
        Set([tokenizer.eosTokenId].compactMap { $0 } + turnEndTokens.compactMap { tokenizer.specialTokens[$0] })
    }

    /// The text of one user message ready for the assistant's reply.
    public func prompt(user: String) throws(ChatTemplateError) -> String {
        try render(messages: [.object(JSONObject([("role", .string("user")), ("content", .string(user))]))],
                   addGenerationPrompt: true)
    }
}

/// A chat template that could not be parsed or rendered, or a conversation it rejects.
public struct ChatTemplateError: Error, CustomStringConvertible {
    /// The template's file (and key).
    public let origin: String
    /// The interpreter's error (its kind, template line and message).
    public let underlying: TemplateError

    public var description: String { "\(origin): \(underlying)" }
}
