import Foundation
import Testing
import ZOCPU
import ZOFormats
import ZOModels
import ZOTasks
import ZOTokenizers

/// `--task sft`: TRL's dataset formats, bad lines named, which tokens are learned, the loss.
struct SFTTests {
    static func write(_ lines: [String]) throws -> (directory: String, path: String) {
        let directory = try Fixtures.temporaryDirectory()
        let path = directory + "/data.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return (directory, path)
    }

    @Test func formatsAreDetectedPerLine() throws {
        #expect(try SFTRecord(line: #"{"text": "Hello"}"#) == .text("Hello"))
        #expect(try SFTRecord(line: #"{"prompt": "2+2=", "completion": "4"}"#) == .promptCompletion(prompt: "2+2=", completion: "4"))
        let conversation = try SFTRecord(line: #"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]}"#)
        #expect(conversation.format == .conversation)
        let split = try SFTRecord(line: #"{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hey"}]}"#)
        #expect(split.format == .conversationalPromptCompletion)
    }

    @Test(arguments: [
        (#"{"messages": [{"content": "Hi"}]}"#, "messages[0] has no \"role\""),
        (#"{"messages": [{"role": "user", "content": ["a"]}, {"role": "assistant", "content": "b"}]}"#,
         "messages[0] (user) \"content\" is an array, not a string"),
        (#"{"messages": [{"role": "user", "content": "Hi"}]}"#, "\"messages\" has no assistant message: nothing to learn"),
        (#"{"prompt": "Q", "completion": ""}"#, "empty completion"),
        (#"{"prompt": "Q"}"#, "\"completion\" is missing"),
        (#"{"prompt": "Q", "completion": [{"role": "assistant", "content": "A"}]}"#,
         "\"prompt\" and \"completion\" must both be strings or both be lists of messages (found a string and an array)"),
        (#"{"question": "Q"}"#, "expected {\"text\"}, {\"prompt\", \"completion\"} or {\"messages\"} (found keys: \"question\")"),
        (#"["text"]"#, "expected a JSON object, found an array"),
        (#"{"text": 3}"#, "\"text\" is a number, not a string"),
    ])
    func badLinesSayWhatIsWrong(line: String, reason: String) {
        #expect(throws: SFTLineError(reason)) { try SFTRecord(line: line) }
    }

    @Test func badLinesAreNamedByFileAndLine() throws {
        let tokenizer = try Tokenizer.load(path: Fixtures.root + "/tokenizers/qwen2-tokenizer.json")
        let encoder = SFTEncoder(tokenizer: tokenizer, template: nil, scope: .completion, maxLength: 64)
        let (directory, path) = try Self.write([#"{"prompt": "a", "completion": "b"}"#, "", #"{"text": "c"}"#])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: TaskError.badLine(path: path, line: 3, reason: "this line is language modeling (text) but the file's first is "
                                           + "prompt-completion")) { try SFTData(path: path, encoder: encoder) }
        let (other, conversations) = try Self.write([#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}"#])
        defer { try? FileManager.default.removeItem(atPath: other) }
        #expect(throws: TaskError.badLine(path: conversations, line: 1,
                                          reason: "conversations need a chat template, and the model has none")) {
            try SFTData(path: conversations, encoder: encoder)
        }
    }

    @Test func truncationIsCountedAndExamplesWithNothingLeftAreDropped() throws {
        let tokenizer = try Tokenizer.load(path: Fixtures.root + "/tokenizers/qwen2-tokenizer.json")
        let long = String(repeating: "word ", count: 40)
        let (directory, path) = try Self.write([#"{"prompt": "\#(long)", "completion": "yes"}"#, #"{"prompt": "short", "completion": " \#(long)"}"#])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = try SFTData(path: path, encoder: SFTEncoder(tokenizer: tokenizer, template: nil, scope: .completion, maxLength: 16))
        #expect(data.examples.count == 1 && data.truncated == 2 && data.dropped == 1)
        #expect(data.examples[0].ids.count == 16 && data.examples[0].learnedCount == 16 - tokenizer.encode("short").count)
        #expect(data.summary.hasSuffix("1 prompt-completion examples, 2 cut to the length limit, 1 left out (nothing to learn within the limit)"))
    }

    /// The loss is Σ learned token losses / Σ learned tokens over the batch, from a forward
    /// pass's per-token losses (row k − 1 predicts token k).
    @Test func theLossIsTheMeanOverLearnedTokens() throws {
        let model = try ModelRegistry.load(path: Fixtures.llama("llama-gqa-f32"))
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let examples = [SFTExample(ids: [1, 5, 9, 3, 7], learned: [false, false, false, true, true], prompt: nil, reference: nil),
                        SFTExample(ids: [4, 2, 8], learned: [false, true, true], prompt: nil, reference: nil)]
        let task = SFTTrainingTask(train: examples, heldOut: examples)
        let loss = try task.loss([0, 1], runner: runner)
        var sum = 0.0
        for example in examples {
            let result = try runner.forward(try model.makeBatch([example.ids]), outputs: [], cache: nil, rows: nil)
            for k in example.learned.indices where example.learned[k] { sum += Double(result.tokenLosses[k - 1]) }
        }
        #expect(abs(loss - sum / 4) < 1e-6)
        #expect(abs(try task.evaluate(runner: runner)["eval_loss"]! - sum / 4) < 1e-6)
    }
}

/// Token ids and learned tokens against TRL's SFTTrainer (scripts/fixtures/make_sft_goldens.py):
/// the same ids in every format; the same learned tokens for text, prompt-completion (string and
/// conversational), all-token messages and assistant-only messages with `{% generation %}`
/// markers; for a template without markers, ZOTune's rule (the turn after the generation prompt,
/// through the newline after its end marker), which TRL's own Qwen2.5 training template differs
/// from by the newline before the content.
struct SFTAgainstTRLTests {
    @Test func idsAndLearnedTokensMatchTRL() throws {
        let goldens = try #require(try ChatTemplateTests.json(Fixtures.root + "/sft/trl-goldens.json").object)
        // As a model folder keeps it: tokenizer_config.json names the EOS token TRL appends.
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(atPath: Fixtures.root + "/" + (goldens["tokenizer"]?.string ?? ""),
                                         toPath: folder + "/tokenizer.json")
        try #"{"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}"#.write(toFile: folder + "/tokenizer_config.json",
                                                                                 atomically: true, encoding: .utf8)
        let tokenizer = try Tokenizer.load(path: folder)
        #expect(tokenizer.eosTokenId == tokenizer.specialTokens["<|im_end|>"])
        let cases = goldens["cases"]?.array?.compactMap(\.object) ?? []
        #expect(cases.count == 6)
        for golden in cases {
            let name = golden["name"]?.string ?? "?"
            let template = try golden["template"]?.string.map { file in
                let path = Fixtures.root + "/" + file
                return try ChatTemplate(source: try String(contentsOfFile: path, encoding: .utf8), origin: path,
                                        specialTokens: ["eos_token": "<|im_end|>"])
            }
            let scope = try #require(SFTLossScope(rawValue: golden["loss"]?.string ?? ""))
            let encoder = SFTEncoder(tokenizer: tokenizer, template: template, scope: scope, maxLength: 1024)
            let records = golden["records"]?.array ?? [], examples = golden["examples"]?.array?.compactMap(\.object) ?? []
            #expect(records.count == examples.count && !records.isEmpty, "\(name)")
            for (index, (record, expected)) in zip(records, examples).enumerated() {
                let encoded = try #require(try encoder.encode(SFTRecord(line: record.pythonJSON())).example)
                let ids = expected["input_ids"]?.array?.compactMap { value -> Int? in if case .int(let id) = value { id } else { nil } }
                #expect(encoded.ids == ids, "\(name) \(index): ids")
                // TRL's mask where it is the rule, else the rule ZOTune documents; token 0 is never predicted.
                let key = golden["trl_template"] != nil || golden["template"]?.string?.hasPrefix("chat-templates") == true
                    && scope == .completion && record.object?["messages"] != nil ? "zotune_rule_mask" : "mask"
                let mask = expected[key]?.array?.map { $0 == .int(1) } ?? []
                #expect(Array(encoded.learned.dropFirst()) == Array(mask.dropFirst()), "\(name) \(index): \(key)")
            }
        }
    }
}
