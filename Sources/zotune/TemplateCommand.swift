import ArgumentParser
import ZOAssets
import ZOFormats
import ZOTokenizers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Print a conversation rendered with a model's chat template (as transformers' apply_chat_template)."
    )

    @Option(help: "Where the template is: a model folder, tokenizer_config.json, a .jinja file, a .gguf, or an asset id.")
    var tokenizer: String

    @Option(help: "A JSON file: a list of messages, or {\"messages\": [...], \"tools\": [...]}.")
    var messages: String

    @Flag(name: .customLong("generation-prompt"), help: "End with the prompt for the assistant's next turn.")
    var generationPrompt = false

    @Option(name: .customLong("var"), help: "A template variable NAME=JSON (e.g. enable_thinking=false); repeatable.")
    var variables: [String] = []

    func run() throws {
        let template = try ChatTemplate.load(path: try Assets().resolve(tokenizer))
        let conversation = try Conversation(path: messages)
        var extra = JSONObject()
        for variable in variables {
            guard let equals = variable.firstIndex(of: "=") else { throw ValidationError("--var \(variable): expected NAME=JSON") }
            let text = String(variable[variable.index(after: equals)...])
            do { extra[String(variable[..<equals])] = try JSONValue(parsing: text) } catch {
                throw ValidationError("--var \(variable): the value is not JSON (\(error)); quote strings: name='\"text\"'")
            }
        }
        print(try template.render(messages: conversation.messages, tools: conversation.tools,
                                  addGenerationPrompt: generationPrompt, extra: extra), terminator: "")
    }
}

/// A conversation file: a JSON list of messages, or an object with "messages" and optional "tools".
private struct Conversation {
    let messages: [JSONValue]
    let tools: [JSONValue]?

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(path): cannot read the file") }
        let json: JSONValue
        do { json = try JSONValue(parsing: String(decoding: data, as: UTF8.self)) } catch {
            throw ValidationError("\(path): \(error)")
        }
        if let list = json.array {
            messages = list
            tools = nil
        } else if let object = json.object, let list = object["messages"]?.array {
            messages = list
            tools = object["tools"]?.array
        } else {
            throw ValidationError("\(path): expected a list of messages or {\"messages\": [...]}")
        }
    }
}
