import Foundation
import Testing
import ZOFormats
import ZOModels

/// `zotune train --task sft`, `eval` and `template` end to end on a small random Llama with a
/// real tokenizer and SmolLM2's chat template in its tokenizer_config.json.
struct SFTCommandTests {
    /// A model folder: config, random weights (vocabulary 500, the tokenizer's), tokenizer.json,
    /// tokenizer_config.json with the chat template and EOS.
    static func makeModel(in directory: String) throws -> String {
        let folder = directory + "/model"
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.llama("llama-gqa-f32") + "/config.json"))
        var config = try JSONDecoder().decode(LlamaConfig.self, from: data)
        config.vocabSize = 500
        config.maxPositionEmbeddings = 512
        let model = try LlamaModel(config: config)
        model.initializeRandomly(seed: 3, std: 0.05)
        try model.save(to: folder)
        try FileManager.default.copyItem(atPath: Fixtures.root + "/tokenizers/qwen2-tokenizer.json", toPath: folder + "/tokenizer.json")
        let template = try String(contentsOfFile: ChatTemplateTests.folder + "/smollm2.jinja", encoding: .utf8)
        let tokenizerConfig = JSONValue.object(JSONObject([("chat_template", .string(template)), ("eos_token", .string("<|im_end|>"))]))
        try tokenizerConfig.pythonJSON().write(toFile: folder + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        return folder
    }

    static func conversation(_ question: String, _ answer: String) -> String {
        #"{"messages": [{"role": "user", "content": "\#(question)"}, {"role": "assistant", "content": "\#(answer)"}]}"#
    }

    @Test func trainsOnConversationsAndWritesAnswers() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = try Self.makeModel(in: directory)
        let lines = [Self.conversation("Is it good?", "yes"), Self.conversation("Is it bad?", "no"),
                     Self.conversation("Hot or cold?", "cold"), Self.conversation("Day or night?", "day")]
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/chat.jsonl", atomically: true, encoding: .utf8)
        let outcome = try CLI.run(["train", "--model", model, "--task", "sft", "--data", directory + "/chat.jsonl",
                                   "--eval-data", directory + "/chat.jsonl", "--steps", "2", "--batch-size", "2", "--eval-every", "2",
                                   "--generate-eval", "3", "--generate-tokens", "4", "--output", directory + "/run", "--threads", "2"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("4 conversational (messages) examples"))
        #expect(outcome.stdout.contains("chat template: \(model)/tokenizer_config.json (chat_template)"))
        let answers = try String(contentsOfFile: directory + "/run/generations.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(answers.count == 6)  // 3 answers at step 0 and at step 2
        let first = try JSONValue(parsing: String(answers[0])).object
        #expect(first?["reference"]?.string == "yes" && first?["evaluation"] == .int(1))
        let metrics = try String(contentsOfFile: directory + "/run/metrics.jsonl", encoding: .utf8)
        #expect(metrics.contains("answer_exact_match") && metrics.contains("eval_loss"))
        // The saved model keeps the tokenizer files and so the template.
        let template = try CLI.run(["template", "--tokenizer", directory + "/run/model", "--messages", directory + "/m.json"])
        #expect(template.status != 0 && !template.signaled && template.stderr.contains("m.json: cannot read the file"))
        try #"[{"role": "user", "content": "Hi"}]"#.write(toFile: directory + "/m.json", atomically: true, encoding: .utf8)
        let rendered = try CLI.run(["template", "--tokenizer", directory + "/run/model", "--messages", directory + "/m.json",
                                    "--generation-prompt"])
        #expect(rendered.status == 0, "\(rendered.stderr)")
        #expect(rendered.stdout.hasSuffix("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"))
    }

    @Test func badDataIsNamedWithItsLine() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = try Self.makeModel(in: directory)
        let lines = [Self.conversation("Q", "A"), #"{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": 5}]}"#]
        try lines.joined(separator: "\n").write(toFile: directory + "/bad.jsonl", atomically: true, encoding: .utf8)
        let outcome = try CLI.run(["eval", "--model", model, "--task", "sft", "--eval-data", directory + "/bad.jsonl"])
        #expect(outcome.status != 0 && !outcome.signaled)
        #expect(outcome.stderr.contains("bad.jsonl:2: messages[1] (assistant) \"content\" is a number, not a string"), "\(outcome.stderr)")
        let scope = try CLI.run(["eval", "--model", model, "--task", "sft", "--eval-data", directory + "/bad.jsonl", "--loss-on", "some"])
        #expect(scope.status != 0 && scope.stderr.contains("--loss-on must be completion or all"))
    }
}
