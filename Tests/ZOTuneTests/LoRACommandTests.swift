import Foundation
import Testing
import ZOFormats
import ZOModels

/// `zotune train --lora`, `--adapter`, `--merge` and `replay` of a LoRA run, end to end on the
/// SFT test model (a random Llama with a real tokenizer and a chat template).
struct LoRACommandTests {
    /// The eval_loss of a run's evaluations, in order.
    static func evalLosses(_ run: String) throws -> [Double] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line in
            try JSONValue(parsing: String(line)).object?["eval"]?.object?["eval_loss"].flatMap { value -> Double? in
                if case .double(let x) = value { x } else { nil }
            }
        }
    }

    static func evalLoss(_ outcome: CLI.Outcome) throws -> Double? {
        guard case .double(let loss)? = try JSONValue(parsing: outcome.stdout).object?["eval_loss"] else { return nil }
        return loss
    }

    @Test func trainsSavesMergesAndTrainsFurther() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = try SFTCommandTests.makeModel(in: directory)
        let lines = [SFTCommandTests.conversation("Is it good?", "yes"), SFTCommandTests.conversation("Is it bad?", "no"),
                     SFTCommandTests.conversation("Hot or cold?", "cold"), SFTCommandTests.conversation("Day or night?", "day")]
        let data = directory + "/chat.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
        let common = ["--task", "sft", "--data", data, "--eval-data", data, "--batch-size", "2", "--threads", "2", "--lr", "0.05",
                      "--eps", "1e-2"]
        let weights = try Data(contentsOf: URL(fileURLWithPath: model + "/model.safetensors"))
        let run = directory + "/run"
        let trained = try CLI.run(["train", "--model", model] + common + ["--steps", "3", "--lora", "2", "--lora-targets", "q_proj, down_proj",
                                                                         "--output", run, "--merge"])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("LoRA: r 2, α 4 on 4 weights"), "\(trained.stdout)")
        #expect(trained.stdout.contains("LoRA adapter: \(run)/adapter"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: model + "/model.safetensors")) == weights, "the base file is untouched")
        let adapter = try PEFTAdapter(directory: run + "/adapter")
        #expect(adapter.rank == 2 && adapter.alpha == 4 && Set(adapter.targetModules) == ["q_proj", "down_proj"])
        #expect(adapter.pairs.contains { $0.b.contains { $0 != 0 } }, "B trained")
        let losses = try Self.evalLosses(run)
        #expect(losses.count == 2 && losses[0] != losses[1])

        // The adapter merged on load, the merged model, and the adapter trained further from where it stands.
        let onBase = try CLI.run(["eval", "--model", model, "--adapter", run + "/adapter", "--task", "sft", "--eval-data", data])
        let merged = try CLI.run(["eval", "--model", run + "/model", "--task", "sft", "--eval-data", data])
        for (what, outcome) in [("--adapter", onBase), ("--merge", merged)] {
            let loss = try #require(try Self.evalLoss(outcome), "\(outcome.stderr)")
            #expect(abs(loss - losses[1]) <= 1e-5 * losses[1], "\(what): \(loss), the run's last \(losses[1])")
        }
        let further = directory + "/further"
        let resumed = try CLI.run(["train", "--model", model] + common + ["--steps", "0", "--adapter", run + "/adapter", "--output", further])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let restart = try Self.evalLosses(further)
        #expect(restart.first == losses[1], "the adapter at rest starts where the run ended: \(restart) vs \(losses)")

        // Replay rebuilds the adapter from the trajectory, bit for bit.
        let replayed = directory + "/replayed"
        let replay = try CLI.run(["replay", "--base", model, "--trajectory", run + "/trajectory.zotraj", "--output", replayed])
        #expect(replay.status == 0, "\(replay.stderr)")
        let rebuilt = try PEFTAdapter(directory: replayed)
        #expect(rebuilt.pairs.map(\.a) == adapter.pairs.map(\.a) && rebuilt.pairs.map(\.b) == adapter.pairs.map(\.b))
        let refused = try CLI.run(["replay", "--base", model, "--trajectory", further + "/trajectory.zotraj", "--output", replayed])
        #expect(refused.status != 0 && refused.stderr.contains("the run trained an adapter it read from a file"))
    }

    /// A LoRA run's checkpoints hold its adapter and state (no copy of the frozen model), and a
    /// run resumed from one ends with the uninterrupted run's adapter, bit for bit (the
    /// interrupted run offloaded: its blocks streamed, the adapter resident).
    @Test func checkpointsAndResumeKeepTheAdapter() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = try SFTCommandTests.makeModel(in: directory)
        let lines = [SFTCommandTests.conversation("Is it good?", "yes"), SFTCommandTests.conversation("Is it bad?", "no"),
                     SFTCommandTests.conversation("Hot or cold?", "cold")]
        let data = directory + "/chat.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
        let common = ["train", "--model", model, "--task", "sft", "--data", data, "--batch-size", "2", "--threads", "2", "--lr", "0.05",
                      "--eps", "1e-2", "--zo", "population", "--queries", "3", "--lora", "2", "--save-every", "2"]
        let whole = try CLI.run(common + ["--steps", "4", "--output", directory + "/whole"])
        #expect(whole.status == 0, "\(whole.stderr)")
        let first = try CLI.run(common + ["--steps", "2", "--output", directory + "/parts", "--offload"])
        #expect(first.status == 0, "\(first.stderr)")
        let checkpoint = directory + "/parts/checkpoints/step-00000002"
        let files = try FileManager.default.contentsOfDirectory(atPath: checkpoint).sorted()
        #expect(files == ["adapter", "state.json"], "\(files)")
        let resumed = try CLI.run(common + ["--steps", "4", "--resume", directory + "/parts", "--offload"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming after step 2"))
        let (a, b) = (try PEFTAdapter(directory: directory + "/whole/adapter"), try PEFTAdapter(directory: directory + "/parts/adapter"))
        #expect(a.pairs.map(\.a) == b.pairs.map(\.a) && a.pairs.map(\.b) == b.pairs.map(\.b))
        #expect(a.pairs.contains { $0.b.contains { $0 != 0 } })
        let last = try PEFTAdapter(directory: directory + "/whole/checkpoints/step-00000004/adapter")
        #expect(last.pairs.map(\.b) == a.pairs.map(\.b), "the last checkpoint is the final adapter")
    }

    @Test func optionsThatDoNotCombineAreRefused() throws {
        let cases: [([String], String)] = [
            (["--lora-alpha", "8"], "--lora-alpha, --lora-targets, --lora-rslora and --merge set a LoRA run"),
            (["--lora", "0"], "--lora must be at least 1"),
            (["--lora", "4", "--lora-alpha", "0"], "--lora-alpha must be positive"),
            (["--lora", "4", "--lora-targets", "all-linear,q_proj"], "all-linear stands alone"),
            (["--lora", "4", "--zo", "low-rank"], "a LoRA run has no low-rank estimator"),
            (["--lora", "4", "--merge"], "--merge writes OUTPUT/model: add --output"),
            (["--adapter", "x", "--lora", "4"], "--adapter trains that adapter further with its own settings"),
        ]
        for (arguments, message) in cases {
            let outcome = try CLI.run(["train", "--model", Fixtures.llama("llama-gqa-f32"), "--task", "sentiment"] + arguments)
            #expect(outcome.status != 0 && !outcome.signaled && outcome.stderr.contains(message), "\(arguments): \(outcome.stderr)")
        }
    }
}
