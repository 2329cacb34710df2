import Foundation
import Testing
import ZOFormats
import ZOJinja
import ZOTokenizers

/// Chat templates rendered as transformers' apply_chat_template renders them: the seven models'
/// templates and their goldens come from scripts/fixtures/make_chat_templates.py.
struct ChatTemplateTests {
    static let folder = Fixtures.root + "/chat-templates"
    static let names = ["smollm2", "qwen2.5", "qwen3", "llama-3.1", "mistral-nemo", "gemma-2", "phi-3.5"]

    static func json(_ path: String) throws -> JSONValue {
        try JSONValue(parsing: String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
    }

    @Test(arguments: names)
    func rendersAsTransformers(name: String) throws {
        let goldens = try #require(Self.json(Self.folder + "/\(name).goldens.json").object)
        var specialTokens: [String: String] = [:]
        for key in ["bos_token", "eos_token"] { specialTokens[key] = goldens[key]?.string }
        let path = Self.folder + "/\(name).jinja"
        let template = try ChatTemplate(source: try String(contentsOfFile: path, encoding: .utf8), origin: path,
                                        specialTokens: specialTokens)
        let cases = goldens["cases"]?.array?.compactMap(\.object) ?? []
        #expect(cases.count >= 10)
        for golden in cases {
            let label = "\(name) \(golden["name"]?.string ?? "?") generation prompt \(golden["add_generation_prompt"] == .bool(true))"
            let messages = try #require(golden["messages"]?.array)
            let render = { () throws(ChatTemplateError) -> String in
                try template.render(messages: messages, tools: golden["tools"]?.array,
                                    addGenerationPrompt: golden["add_generation_prompt"] == .bool(true),
                                    extra: golden["extra"]?.object ?? JSONObject())
            }
            if let expected = golden["rendered"]?.string {
                let rendered = try render()
                #expect(rendered == expected, "\(label)")
            } else {
                let message = try #require(golden["error"]?.string)
                do {
                    _ = try render()
                    Issue.record("\(label): rendered, but transformers raises \(message)")
                } catch {
                    #expect(error.underlying.kind == .raised && error.underlying.message == message, "\(label): \(error)")
                }
            }
        }
    }

    @Test func templatesAreFoundWhereModelsKeepThem() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = try String(contentsOfFile: Self.folder + "/phi-3.5.jinja", encoding: .utf8)
        let config = JSONValue.object(JSONObject([
            ("chat_template", .array([.object(JSONObject([("name", .string("tool_use")), ("template", .string("tools"))])),
                                      .object(JSONObject([("name", .string("default")), ("template", .string(source))]))])),
            ("eos_token", .object(JSONObject([("content", .string("<|endoftext|>"))]))),
        ]))
        try config.pythonJSON().write(toFile: directory + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let message = JSONValue.object(JSONObject([("role", .string("user")), ("content", .string("Hi"))]))
        // tokenizer_config.json: the "default" of a list of named templates, its eos_token object.
        let fromConfig = try ChatTemplate.load(path: directory)
        #expect(try fromConfig.render(messages: [message]) == "<|user|>\nHi<|end|>\n<|endoftext|>")
        #expect(fromConfig.origin.hasSuffix("tokenizer_config.json (chat_template)"))
        // chat_template.jinja beside it wins, as in transformers.
        try "{{ messages[0].content }}!{{ eos_token }}".write(toFile: directory + "/chat_template.jinja", atomically: true,
                                                            encoding: .utf8)
        #expect(try ChatTemplate.load(path: directory + "/tokenizer_config.json").render(messages: [message]) == "Hi!<|endoftext|>")
        #expect(throws: TokenizerError.self) { try ChatTemplate.load(path: directory + "/missing.jinja") }
    }

    @Test(.enabled(if: SmolLM2.isInstalled, "SmolLM2 asset absent: run `zotune assets fetch smollm2-135m`"))
    func ggufTemplateAndSpecialTokens() throws {
        let template = try ChatTemplate.load(path: SmolLM2.path)
        #expect(template.specialTokens["eos_token"] == "<|im_end|>")
        #expect(try template.prompt(user: "Hi") ==
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func unsupportedConstructsAndBadTemplatesNameTheLine() {
        func error(_ source: String) -> TemplateError? {
            do { _ = try Template(source).render([:]); return nil } catch { return error }
        }
        #expect(error("a\n{% include 'x.jinja' %}") == TemplateError(.unsupported, line: 2, "the '{% include %}' statement"))
        #expect(error("\n\n{{ x | wordwrap }}") == TemplateError(.unsupported, line: 3, "the filter 'wordwrap'"))
        #expect(error("\n{{ x | frobnicate }}") == TemplateError(.runtime, line: 2, "no filter named 'frobnicate'"))
        #expect(error("{% if x is prime %}{% endif %}") == TemplateError(.runtime, line: 1, "no test named 'prime'"))
        // As in Jinja, a filter in a branch not taken is not looked up.
        #expect(error("{% if false %}{{ x | frobnicate }}{% endif %}") == nil)
        #expect(error("{% for x in y %}\n{{ x }}")?.kind == .syntax)
        #expect(error("{{ 'abc }}")?.kind == .syntax)
        #expect(error("x\n{% endif %}") == TemplateError(.syntax, line: 2, "unexpected 'endif'"))
        #expect(error("{{ [].append(1) }}")?.message == "access to attribute 'append' of 'list' object is unsafe.")
        #expect(error("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}")?.message.contains("nested deeper") == true)
    }
}

/// ZOJinja against Jinja as transformers configures it, case by case: the goldens come from
/// scripts/fixtures/make_jinja_goldens.py (whitespace control, values, operators, statements,
/// filters, tests, methods, globals, errors).
struct JinjaSemanticsTests {
    /// Where ZOJinja knowingly differs, and why.
    static let knownDifferences = [
        "tojson-numbers": "integers beyond 64 bits become floats (Python keeps them exact)",
        "range-printed": "range(…) is a list, so printing it shows its elements, not range(0, 3)",
    ]

    @Test func everyCaseRendersOrFailsAsJinja() throws {
        let goldens = try ChatTemplateTests.json(ChatTemplateTests.folder + "/jinja-semantics.json")
        let cases = goldens.object?["cases"]?.array?.compactMap(\.object) ?? []
        #expect(cases.count > 200)
        var failures: [String] = []
        for golden in cases {
            let name = golden["name"]?.string ?? "?"
            if Self.knownDifferences[name] != nil { continue }
            var context: [String: Value] = [:]
            for member in golden["context"]?.object?.members ?? [] { context[member.key] = Value(member.value) }
            let result: Result<String, TemplateError>
            do { result = .success(try Template(golden["template"]?.string ?? "").render(context)) } catch {
                result = .failure(error)
            }
            switch (result, golden["rendered"]?.string) {
            case (.success(let text), let expected?) where text != expected:
                failures.append("\(name): rendered \(text.debugDescription), Jinja \(expected.debugDescription)")
            case (.failure(let error), let expected?):
                failures.append("\(name): failed (\(error)), Jinja rendered \(expected.debugDescription)")
            case (.success(let text), nil):
                failures.append("\(name): rendered \(text.debugDescription), Jinja fails: \(golden["error"]?.object?["message"]?.string ?? "")")
            default: break
            }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) cases differ:\n" + failures.joined(separator: "\n")))
    }
}
