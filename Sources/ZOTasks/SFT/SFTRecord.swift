import ZOFormats

/// One line of a supervised fine-tuning file in one of TRL's dataset formats.
public enum SFTRecord: Sendable, Equatable {
    /// `{"text": …}`: language modelling, every token learned.
    case text(String)
    /// `{"prompt": …, "completion": …}` with strings: the completion is learned.
    case promptCompletion(prompt: String, completion: String)
    /// `{"messages": [{"role": …, "content": …}, …]}`: rendered with the chat template, the
    /// assistant turns learned.
    case conversation(messages: [JSONValue], context: SFTTemplateContext)
    /// `{"prompt": [messages], "completion": [messages]}`: the completion turns learned.
    case conversationalPromptCompletion(prompt: [JSONValue], completion: [JSONValue], context: SFTTemplateContext)

    /// TRL's format names, as the file's format is reported.
    public enum Format: String, Sendable {
        case text = "language modeling (text)"
        case promptCompletion = "prompt-completion"
        case conversation = "conversational (messages)"
        case conversationalPromptCompletion = "conversational prompt-completion"
    }

    public var format: Format {
        switch self {
        case .text: .text
        case .promptCompletion: .promptCompletion
        case .conversation: .conversation
        case .conversationalPromptCompletion: .conversationalPromptCompletion
        }
    }

    /// Parses one JSONL line; the error says what is wrong with it.
    public init(line: String) throws(SFTLineError) {
        let json: JSONValue
        do { json = try JSONValue(parsing: line) } catch { throw SFTLineError("not JSON: \(error.reason) (column \(error.column))") }
        guard let object = json.object else { throw SFTLineError("expected a JSON object, found \(json.kindDescription)") }
        let context = SFTTemplateContext(tools: try Self.tools(object["tools"]),
                                         arguments: try Self.templateArguments(object["chat_template_kwargs"]))
        if let messages = object["messages"] {
            self = .conversation(messages: try Self.messages(messages, field: "messages"), context: context)
            guard case .conversation(let parsed, _) = self, parsed.contains(where: { $0.object?["role"]?.string == "assistant" })
            else { throw SFTLineError("\"messages\" has no assistant message: nothing to learn") }
        } else if let prompt = object["prompt"], let completion = object["completion"] {
            switch (prompt, completion) {
            case (.string(let p), .string(let c)):
                guard !c.isEmpty else { throw SFTLineError("empty completion") }
                self = .promptCompletion(prompt: p, completion: c)
            case (.array, .array):
                let completionMessages = try Self.messages(completion, field: "completion")
                guard !completionMessages.isEmpty else { throw SFTLineError("empty completion: no messages") }
                self = .conversationalPromptCompletion(prompt: try Self.messages(prompt, field: "prompt"),
                                                       completion: completionMessages, context: context)
            default:
                throw SFTLineError("\"prompt\" and \"completion\" must both be strings or both be lists of messages "
                                   + "(found \(prompt.kindDescription) and \(completion.kindDescription))")
            }
        } else if let text = object["text"] {
            guard case .string(let value) = text else { throw SFTLineError("\"text\" is \(text.kindDescription), not a string") }
            guard !value.isEmpty else { throw SFTLineError("empty \"text\"") }
            self = .text(value)
        } else if object["prompt"] != nil || object["completion"] != nil {
            throw SFTLineError("\(object["prompt"] == nil ? "\"prompt\"" : "\"completion\"") is missing")
        } else {
            throw SFTLineError("expected {\"text\"}, {\"prompt\", \"completion\"} or {\"messages\"} (found keys: "
                               + object.keys.map { "\"\($0)\"" }.joined(separator: ", ") + ")")
        }
    }

    /// A list of messages: objects with a string "role" and a string "content" (an assistant
    /// message that calls tools may have no content).
    private static func messages(_ value: JSONValue, field: String) throws(SFTLineError) -> [JSONValue] {
        guard let list = value.array else { throw SFTLineError("\"\(field)\" is \(value.kindDescription), not a list of messages") }
        for (index, message) in list.enumerated() {
            let place = "\(field)[\(index)]"
            guard let object = message.object else { throw SFTLineError("\(place) is \(message.kindDescription), not an object") }
            guard let role = object["role"] else { throw SFTLineError("\(place) has no \"role\"") }
            guard let name = role.string, !name.isEmpty else { throw SFTLineError("\(place) \"role\" is not a non-empty string") }
            switch object["content"] {
            case .string?: continue
            case nil, .null?:
                if object["tool_calls"] != nil { continue }
                throw SFTLineError("\(place) (\(name)) has no \"content\"")
            case let content?:
                throw SFTLineError("\(place) (\(name)) \"content\" is \(content.kindDescription), not a string")
            }
        }
        return list
    }

    private static func templateArguments(_ value: JSONValue?) throws(SFTLineError) -> JSONObject {
        switch value {
        case nil, .null?: return JSONObject()
        case .object(let object)?: return object
        case let other?: throw SFTLineError("\"chat_template_kwargs\" is \(other.kindDescription), not an object")
        }
    }

    private static func tools(_ value: JSONValue?) throws(SFTLineError) -> [JSONValue]? {
        switch value {
        case nil, .null?: return nil
        case .array(let list)?: return list
        case let other?: throw SFTLineError("\"tools\" is \(other.kindDescription), not a list")
        }
    }
}

/// What a conversation's line gives its chat template besides the messages: `tools` (JSON
/// schemas) and `chat_template_kwargs` (variables such as `enable_thinking`), as TRL passes them.
public struct SFTTemplateContext: Sendable, Equatable {
    public let tools: [JSONValue]?
    public let arguments: JSONObject

    public init(tools: [JSONValue]? = nil, arguments: JSONObject = JSONObject()) {
        self.tools = tools
        self.arguments = arguments
    }
}

/// What is wrong with a line of an SFT file (the caller adds the file and line number).
public struct SFTLineError: Error, Equatable {
    /// What is wrong ("messages[0] has no \"role\"").
    public let reason: String

    public init(_ reason: String) { self.reason = reason }
}
