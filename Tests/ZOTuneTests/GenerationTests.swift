import Foundation
import Testing
import ZOCPU
import ZOModels

/// Sampling and the text commands (`generate`, `tokenize`, `loss --text`).
@Suite struct GenerationTests {
    @Test func samplerIsGreedyAtZeroTemperatureAndReproducibleFromItsSeed() {
        let logits: [Float] = [0.1, 2.5, -1, 2.4, 0]
        var greedy = Sampler(temperature: 0, topP: 1, seed: 1)
        #expect(greedy.next(logits[...]) == 1)
        var narrow = Sampler(temperature: 1, topP: 1e-6, seed: 1)
        #expect(narrow.next(logits[...]) == 1)
        var a = Sampler(temperature: 1, topP: 1, seed: 42), b = Sampler(temperature: 1, topP: 1, seed: 42)
        let drawsA = (0..<50).map { _ in a.next(logits[...]) }, drawsB = (0..<50).map { _ in b.next(logits[...]) }
        #expect(drawsA == drawsB)
        #expect(Set(drawsA).count > 1)  // it does sample
        // top-p 0.6 keeps only tokens 1 and 3 (their mass is ≈ 0.75 of the total).
        var nucleus = Sampler(temperature: 1, topP: 0.6, seed: 7)
        #expect(Set((0..<100).map { _ in nucleus.next(logits[...]) }).isSubset(of: [1, 3]))
    }

    @Test func greedyGenerationFollowsTheArgmaxOfFullPasses() throws {
        let model = try ModelRegistry.load(path: Fixtures.llama("llama-gqa-f32"))
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        var generated: [Int] = []
        try runner.generate(prompt: [5, 9, 3], maxTokens: 6, sampler: Sampler(temperature: 0, topP: 1, seed: 0), stopTokens: []) {
            generated.append($0)
            return true
        }
        #expect(generated.count == 6)
        var sequence = [5, 9, 3]
        for token in generated {
            let argmax = try runner.forward(try model.makeBatch([sequence]), outputs: .argmax).argmax!
            #expect(Int(argmax.last!) == token)
            sequence.append(token)
        }
    }

    @Test(.enabled(if: SmolLM2.isInstalled, "SmolLM2 asset absent: run `zotune assets fetch smollm2-135m`"))
    func smolLM2KnowsTheCapitalOfFrance() throws {
        let outcome = try CLI.run(["generate", "--model", SmolLM2.path, "--prompt", "The capital of France is", "--max-tokens", "8"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.hasPrefix("The capital of France is Paris"), "\(outcome.stdout)")
        let loss = try CLI.run(["loss", "--model", SmolLM2.path, "--text", "The capital of France is Paris."])
        #expect(loss.status == 0 && loss.stdout.contains("\"tokens\":6"), "\(loss.stdout) \(loss.stderr)")
        let tokens = try CLI.run(["tokenize", "--tokenizer", SmolLM2.path, "--text", "<|im_start|>user"])
        #expect(tokens.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == #"{"ids":[1,4093]}"#)
    }

    @Test func textCommandsRejectBadInput() throws {
        let missing = try CLI.run(["tokenize", "--tokenizer", "/nonexistent/tokenizer.json", "--text", "hi"])
        #expect(missing.status != 0 && !missing.signaled && missing.stderr.contains("nonexistent"))
        let unknown = try CLI.run(["generate", "--model", "no-such-model", "--prompt", "hi"])
        #expect(unknown.status != 0 && unknown.stderr.contains("known asset"))
        let badTopP = try CLI.run(["generate", "--model", Fixtures.opt("opt-tiny-f32"), "--prompt", "hi", "--top-p", "0"])
        #expect(badTopP.status != 0 && badTopP.stderr.contains("top-p"))
    }
}
