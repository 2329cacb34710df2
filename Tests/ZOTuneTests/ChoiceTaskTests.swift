import Foundation
import Testing
import ZOAssets
import ZOCPU
import ZOModels
import ZOTasks

/// Classification tasks: templates, bad lines, and the single-token shortcut against the
/// full candidate log-likelihoods.
@Suite struct ChoiceTaskTests {
    static let codec = TestCodec()

    @Test func templatesAndBadLines() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/rte.jsonl"
        try Data(#"{"premise": "A cat sat.", "hypothesis": "An animal sat.", "label": 0, "idx": 3}"#.utf8).write(to: URL(fileURLWithPath: path))
        let examples = try loadChoiceExamples(path: path, template: .rte, maxLength: 200, codec: Self.codec)
        #expect(examples.count == 1 && examples[0].label == 0 && examples[0].candidates.count == 2)
        #expect(examples[0].prompt == Self.codec.encodePrompt("A cat sat.\nDoes this mean that \"An animal sat.\" is true? Yes or No?\n"))
        let cases = [
            (#"{"premise": "x", "hypothesis": "y", "label": 5}"#, "label 5 is not one of the 2 candidates"),
            (#"{"premise": "x", "label": 1}"#, "missing text field \"hypothesis\""),
            (#"{"premise": "x", "hypothesis": "y"}"#, "missing integer field \"label\""),
            ("[1, 2]", "not a JSON object"),
        ]
        for (line, message) in cases {
            try Data(("\n" + line + "\n").utf8).write(to: URL(fileURLWithPath: path))
            do {
                _ = try loadChoiceExamples(path: path, template: .rte, maxLength: 200, codec: Self.codec)
                Issue.record("accepted \(line)")
            } catch {
                #expect(error.description.contains(path + ":2:") && error.description.contains(message), "\(error)")
            }
        }
        // COPA: multi-token candidates, connective from the question, lower-cased choice.
        try Data(#"{"premise": "The man fell.", "choice1": "He tripped.", "choice2": "He sang.", "question": "cause", "label": 0}"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        let copa = try loadChoiceExamples(path: path, template: .copa, maxLength: 200, codec: Self.codec)
        #expect(copa[0].prompt == Self.codec.encodePrompt("The man fell because") && copa[0].candidates[0] == Self.codec.encodePrompt(" he tripped."))
    }

    /// Single-token candidates score at the last prompt position; the loss equals the
    /// cross-entropy over the candidates' full log-likelihoods.
    @Test func singleTokenShortcutMatchesFullLogLikelihoods() throws {
        let model = try ModelRegistry.load(path: Fixtures.llama("llama-gqa-f32"))
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let examples = [ChoiceExample(prompt: [5, 9, 3, 17], candidates: [[20], [40], [60]], label: 1),
                        ChoiceExample(prompt: [11, 8], candidates: [[20], [40], [60]], label: 2)]
        let task = ChoiceTrainingTask(train: examples, heldOut: examples)
        let loss = try task.loss([0, 1], runner: runner)
        var expected = 0.0
        for example in examples {
            let sequences = example.candidates.map { example.prompt + $0 }
            let result = try runner.forward(try model.makeBatch(sequences))
            let t = sequences[0].count
            let scores = (0..<3).map { -Double(result.tokenLosses[$0 * t + example.prompt.count - 1]) }
            let top = scores.max()!
            expected += log(scores.reduce(0) { $0 + exp($1 - top) }) + top - scores[example.label]
        }
        expected /= 2
        #expect(abs(loss - expected) < 1e-5, "\(loss) vs \(expected)")
        let accuracy = try task.evaluate(runner: runner)["accuracy"]!
        #expect([0, 0.5, 1].contains(accuracy))
    }

    @Test(.enabled(if: Assets().isInstalled(AssetCatalog.spec("rotten-tomatoes")!), "rotten-tomatoes asset absent: run `zotune assets fetch rotten-tomatoes`"))
    func sentimentSplitIsFixedAndBalanced() throws {
        let path = Assets().path(AssetCatalog.spec("rotten-tomatoes")!)
        let a = try SentimentData(path: path, maxLength: 512, codec: Self.codec)
        let b = try SentimentData(path: path, maxLength: 512, codec: Self.codec)
        #expect(a.train.count == 1000 && a.dev.count == 500 && a.test.count == 1000)
        #expect(a.train == b.train && a.test == b.test)
        let positive = Double(a.test.filter { $0.label == 1 }.count) / 1000
        #expect(positive > 0.4 && positive < 0.6)
    }
}
