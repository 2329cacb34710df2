import Foundation
import Testing
import ZOCPU
import ZOModels
import ZOTasks

/// SQuAD / DROP: templates, bad lines, truncation, the answer-token loss, greedy answers and
/// the SQuAD metrics.
@Suite struct QATaskTests {
    static let codec = TestCodec()

    static func write(_ lines: [String], to path: String) throws {
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
    }

    @Test func templatesAndBadLines() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/qa.jsonl"
        try Self.write([#"{"id": "1", "title": "Cats", "context": "A cat sat.", "question": " Who sat? ", "answers": {"text": ["a cat", "cat"], "answer_start": [0, 2]}}"#], to: path)
        let squad = try loadQAExamples(path: path, template: .squad, maxLength: 500, answerTokens: 10, codec: Self.codec)
        #expect(squad == [QAExample(prompt: Self.codec.encodePrompt("Title: Cats\nContext: A cat sat.\nQuestion: Who sat?\nAnswer:"),
                                    target: Self.codec.encodePrompt(" a cat\n"), answers: ["a cat", "cat"])])
        try Self.write([#"{"passage": "Two goals.", "question": "How many?", "answers_spans": {"spans": ["2"], "types": ["number"]}}"#], to: path)
        let drop = try loadQAExamples(path: path, template: .drop, maxLength: 500, answerTokens: 10, codec: Self.codec)
        #expect(drop[0].prompt == Self.codec.encodePrompt("Passage: Two goals.\nQuestion: How many?\nAnswer:") && drop[0].answers == ["2"])

        let cases = [
            (#"{"context": "x", "question": "y"}"#, "missing field \"answers\""),
            (#"{"context": "x", "question": "y", "answers": {"text": []}}"#, "no non-empty answer"),
            (#"{"context": "x", "question": "y", "answers": {"text": "z"}}"#, "field \"answers.text\" has the wrong type"),
            ("[1]", "not a JSON object"),
            (#"{"context": "x", "question": "y", "answers": {"text": ["a very long answer indeed"]}}"#, "does not fit the model's 20 positions"),
        ]
        for (line, message) in cases {
            try Self.write(["", line], to: path)
            do {
                _ = try loadQAExamples(path: path, template: .squad, maxLength: 20, answerTokens: 5, codec: Self.codec)
                Issue.record("accepted \(line)")
            } catch {
                #expect(error.description.contains(path + ":2:") && error.description.contains(message), "\(error)")
            }
        }
    }

    /// A long context loses its beginning; the question and "Answer:" stay, and prompt plus
    /// the longer of target and generation budget fit the positions.
    @Test func longPromptsLoseTheirBeginning() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/qa.jsonl"
        let context = String(repeating: "the cat sat on the mat. ", count: 40)
        try Self.write([#"{"title": "t", "context": "\#(context)", "question": "where?", "answers": {"text": ["on the mat"]}}"#], to: path)
        let example = try loadQAExamples(path: path, template: .squad, maxLength: 100, answerTokens: 30, codec: Self.codec)[0]
        #expect(example.prompt.count == 70)
        #expect(Self.codec.decodeText(example.prompt).hasSuffix("mat. \nquestion: where?\nanswer:"))
    }

    /// The loss is the mean cross-entropy over the batch's answer tokens, computed here
    /// sequence by sequence from the per-token losses.
    @Test func lossCoversAnswerTokensOnly() throws {
        let model = try ModelRegistry.load(path: Fixtures.llama("llama-gqa-f32"))
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let examples = [QAExample(prompt: [5, 9, 3, 17, 30, 2], target: [20, 40, 37], answers: ["x"]),
                        QAExample(prompt: [11, 8], target: [4, 37], answers: ["y"]),
                        QAExample(prompt: Array(repeating: 7, count: 25), target: [1, 2, 3, 37], answers: ["z"])]
        let task = QATrainingTask(train: examples, heldOut: [], codec: Self.codec)
        var total = 0.0, count = 0
        for example in examples {
            let losses = try runner.forward(try model.makeBatch([example.prompt + example.target])).tokenLosses
            total += losses[(example.prompt.count - 1)..<(example.prompt.count - 1 + example.target.count)].reduce(0.0) { $0 + Double($1) }
            count += example.target.count
        }
        let loss = try task.loss([0, 1, 2], runner: runner)
        #expect(abs(loss - total / Double(count)) < 1e-5 * abs(loss), "\(loss) vs \(total / Double(count))")
    }

    /// Greedy answers equal arg-max decoding without a cache, cut at the first newline; the
    /// metrics score them against the accepted answers.
    @Test func greedyAnswersAndMetrics() throws {
        let model = try ModelRegistry.load(path: Fixtures.llama("llama-gqa-f32"))
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let prompts = [Self.codec.encodePrompt("question: why?\nanswer:"), Self.codec.encodePrompt("context: dogs bark.\nanswer:")]
        var expected: [String] = []
        for prompt in prompts {
            var sequence = prompt
            for _ in 0..<12 {
                let next = Int(try runner.forward(try model.makeBatch([sequence]), outputs: .argmax).argmax!.last!)
                if Self.codec.endTokens.contains(next) { break }
                sequence.append(next)
                if Self.codec.decodeText(Array(sequence[prompt.count...])).contains("\n") { break }
            }
            let text = Self.codec.decodeText(Array(sequence[prompt.count...]))
            expected.append(String(text.split(separator: "\n", omittingEmptySubsequences: false)[0]).trimmingCharacters(in: .whitespaces))
        }
        let heldOut = [QAExample(prompt: prompts[0], target: [1], answers: ["no match at all", expected[0]]),
                       QAExample(prompt: prompts[1], target: [1], answers: ["zzz qqq"])]
        let task = QATrainingTask(train: heldOut, heldOut: heldOut, codec: Self.codec, answerTokens: 12)
        #expect(try heldOut.indices.map { try task.answer(prompts[$0], runner: runner) } == expected)
        let metrics = try task.evaluate(runner: runner)
        let f1Second = AnswerScore.f1(expected[1], "zzz qqq")
        #expect(metrics["exact_match"] == (AnswerScore.exactMatch(expected[1], "zzz qqq") + 1) / 2)
        #expect(abs(metrics["f1"]! - (1 + f1Second) / 2) < 1e-12)
    }

    @Test func squadMetrics() {
        #expect(AnswerScore.words("The Cat, sat!  on a mat.") == ["cat", "sat", "on", "mat"])
        #expect(AnswerScore.exactMatch("The Cat!", "cat") == 1)
        #expect(AnswerScore.exactMatch("cats", "cat") == 0)
        #expect(abs(AnswerScore.f1("The cat sat", "a cat sat down") - 0.8) < 1e-12)
        #expect(abs(AnswerScore.f1("cat cat", "cat") - 2.0 / 3) < 1e-12)
        #expect(AnswerScore.f1("the", "a") == 1)
        #expect(AnswerScore.f1("the", "cat") == 0)
        #expect(AnswerScore.f1("dog", "cat") == 0)
    }
}
