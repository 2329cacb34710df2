#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOFormats

extension ChatTemplate {
    /// The chat template where a model keeps it, as transformers looks for it: in a folder,
    /// `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template`, else a GGUF
    /// tokenizer's; a `tokenizer_config.json` or `tokenizer.json` file (its folder); a `.jinja`
    /// file; a `.gguf` file's `tokenizer.chat_template`. The special tokens' texts come from
    /// `tokenizer_config.json` or the GGUF's token ids.
    public static func load(path: String) throws(TokenizerError) -> ChatTemplate {
        guard let template = try find(path: path) else {
            throw .unsupported(path: path, reason: "no chat template: neither chat_template.jinja nor a chat_template in "
                               + "tokenizer_config.json nor tokenizer.chat_template in a GGUF")
        }
        return template
    }

    /// As `load`, but nil where the model has no chat template (a template that does not parse
    /// is still an error).
    public static func find(path: String) throws(TokenizerError) -> ChatTemplate? {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path) else { throw .cannotRead(path: path, reason: "no such file or folder") }
        if path.hasSuffix(".jinja") { return try make(source: try text(of: path), origin: path, specialTokens: [:]) }
        if path.hasSuffix(".gguf") { return try fromGGUF(path) }
        let folder = fm.fileExists(atPath: path + "/.") ? path
            : String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]).nonEmpty ?? "."
        let configPath = folder + "/tokenizer_config.json"
        let config = fm.fileExists(atPath: configPath) ? try TokenizerConfig(path: configPath) : nil
        let jinjaPath = folder + "/chat_template.jinja"
        if fm.fileExists(atPath: jinjaPath) {
            return try make(source: try text(of: jinjaPath), origin: jinjaPath, specialTokens: config?.specialTokens ?? [:])
        }
        if let config, let source = try config.chatTemplate.get() {
            return try make(source: source, origin: configPath + " (chat_template)", specialTokens: config.specialTokens)
        }
        let gguf = folder + "/" + GGUFVocabulary.fileName
        return fm.fileExists(atPath: gguf) ? try fromGGUF(gguf) : nil
    }

    private static func fromGGUF(_ path: String) throws(TokenizerError) -> ChatTemplate? {
        let tokenizer = try Tokenizer.load(path: path)
        guard let source = tokenizer.chatTemplate else { return nil }
        var specialTokens: [String: String] = [:]
        for (name, id) in [("bos_token", tokenizer.bosTokenId), ("eos_token", tokenizer.eosTokenId),
                           ("pad_token", tokenizer.padTokenId)] {
            if let id, tokenizer.tokens.indices.contains(id) { specialTokens[name] = tokenizer.tokens[id] }
        }
        return try make(source: source, origin: path + " (tokenizer.chat_template)", specialTokens: specialTokens)
    }

    private static func make(source: String, origin: String, specialTokens: [String: String]) throws(TokenizerError) -> ChatTemplate {
        do { return try ChatTemplate(source: source, origin: origin, specialTokens: specialTokens) } catch {
            throw .unsupported(path: origin, reason: "chat template: \(error.underlying)")
        }
    }

    private static func text(of path: String) throws(TokenizerError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw .cannotRead(path: path, reason: "cannot read the file") }
        guard let text = String(validating: data, as: UTF8.self) else { throw .malformed(path: path, reason: "not UTF-8 text") }
        return text
    }
}

/// What tokenizer_config.json says: the chat template (one string, or the one named "default"
/// of a list; a malformed one fails only where a template is used), the special tokens' texts
/// (strings or `{"content": …}` objects).
struct TokenizerConfig {
    let chatTemplate: Result<String?, TokenizerError>
    let specialTokens: [String: String]

    init(path: String) throws(TokenizerError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw .cannotRead(path: path, reason: "cannot read the file") }
        let json: JSONValue
        do { json = try JSONValue(parsing: String(decoding: data, as: UTF8.self)) } catch {
            throw .malformed(path: path, reason: "\(error)")
        }
        guard let object = json.object else { throw .malformed(path: path, reason: "not a JSON object") }
        switch object["chat_template"] {
        case nil, .null?: chatTemplate = .success(nil)
        case .string(let source)?: chatTemplate = .success(source)
        case .array(let named)?:
            // transformers picks "default" (and "tool_use" when tools are given: not yet).
            let chosen = named.compactMap(\.object).first { $0["name"]?.string == "default" }
            chatTemplate = chosen?["template"]?.string.map { .success($0) }
                ?? .failure(.malformed(path: path, reason: "chat_template is a list without a template named \"default\""))
        case let other?: chatTemplate = .failure(.malformed(path: path, reason: "chat_template is \(other.kindDescription), not a string"))
        }
        var specialTokens: [String: String] = [:]
        for name in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] {
            if let text = object[name]?.string ?? object[name]?.object?["content"]?.string { specialTokens[name] = text }
        }
        self.specialTokens = specialTokens
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
