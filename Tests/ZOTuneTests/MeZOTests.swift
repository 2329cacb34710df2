import Foundation
import Testing
import ZOCore
import ZOCPU
import ZOFormats
import ZOModels
import ZOOptimizers

/// ZO-SGD against a step-by-step PyTorch MeZO with z = 1 (scripts/fixtures/make_mezo_reference.py),
/// and the properties the fused, seed-regenerated passes must keep.
@Suite struct MeZOTests {
    struct Reference: Decodable {
        struct Step: Decodable { let loss_plus: Double; let loss_minus: Double; let projected_grad: Double }
        struct Run: Decodable { let steps: [Step]; let final_loss: Double }
        let steps: Int
        let eps: Float
        let lr: Float
        let weight_decay: Float
        let runs: [String: Run]
    }

    /// The fixture model and its own batch.
    static func fixture(_ path: String) throws -> (any CausalLM, TokenBatch) {
        let model = try ModelRegistry.load(path: path)
        let expected = try OPTExpectation.load(path)
        let reference = try SafetensorsFile(path: path + "/expected.safetensors")
        let ids = try reference.bytes("ids").withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        let t = reference.info("ids")!.shape[1]
        let sequences = expected.lengths.enumerated().map { b, n in (0..<n).map { Int(ids[b * t + $0]) } }
        return (model, try model.makeBatch(sequences))
    }

    @Test(arguments: ["opt/opt-tiny-f32", "opt/opt-350m-style-bf16", "llama/llama-gqa-f32", "llama/qwen2-window-f32",
                      "llama/mistral-window-bf16", "llama/qwen3-f32", "llama/phi3-longrope-f32", "llama/gemma2-f32",
                      "llama/gemma3-f32"])
    func onesPerturbationMatchesPyTorchMeZO(fixture: String) throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.root + "/mezo/reference.json")))
        let run = try #require(reference.runs[String(fixture.split(separator: "/")[1])])
        let (model, batch) = try Self.fixture(Fixtures.root + "/" + fixture)
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: reference.eps, weightDecay: reference.weight_decay, perturbation: .ones), seed: 1)
        for expected in run.steps {
            let step = try mezo.step(lr: reference.lr, batch: batch)
            #expect(abs(step.lossPlus - expected.loss_plus) <= 1e-5 * expected.loss_plus, "\(fixture) step \(step.step) L+")
            #expect(abs(step.lossMinus - expected.loss_minus) <= 1e-5 * expected.loss_minus, "\(fixture) step \(step.step) L-")
            // g = (L+ − L−)/2ε on both sides: 0.2% of g, plus what fp32 roundoff in the two losses
            // (a couple of ulps, 2e-7 relative) makes of it when g is small (Gemma 2's soft caps).
            let roundoff = 2 * 2e-7 * expected.loss_plus / (2 * Double(reference.eps))
            #expect(abs(step.projectedGradient - expected.projected_grad) <= 2e-3 * abs(expected.projected_grad) + roundoff,
                    "\(fixture) step \(step.step): g \(step.projectedGradient) vs \(expected.projected_grad)")
        }
        #expect(mezo.hasPendingUpdate)
        try mezo.flush()
        let final = try runner.forward(batch).meanLoss
        #expect(abs(final - run.final_loss) <= 1e-5 * run.final_loss, "\(fixture): final loss \(final) vs \(run.final_loss)")
    }

    /// 8 Gaussian steps with q = 2: the same trajectory bit for bit on 1 and 2 threads and across runs.
    @Test func trajectoriesAreReproducibleBitForBit() throws {
        func trajectory(threads: Int) throws -> [UInt64] {
            let (model, batch) = try Self.fixture(Fixtures.llama("llama-gqa-f32"))
            let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: threads))
            let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3, weightDecay: 0.01, q: 2), seed: 42)
            var bits: [UInt64] = []
            for _ in 0..<8 {
                let step = try mezo.step(lr: 1e-4, batch: batch)
                bits += [step.lossPlus.bitPattern, step.lossMinus.bitPattern, step.projectedGradient.bitPattern]
            }
            try mezo.flush()
            bits.append(try runner.forward(batch).meanLoss.bitPattern)
            return bits
        }
        let one = try trajectory(threads: 1)
        #expect(try trajectory(threads: 2) == one)
        #expect(try trajectory(threads: 1) == one)
    }

    /// Gaussian ZO-SGD lowers the training loss of a small model.
    @Test func gaussianStepsReduceTheLoss() throws {
        let (model, batch) = try Self.fixture(Fixtures.opt("opt-tiny-f32"))
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let before = try runner.forward(batch).meanLoss
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3), seed: 7)
        for _ in 0..<200 { _ = try mezo.step(lr: 1e-3, batch: batch) }
        try mezo.flush()
        let after = try runner.forward(batch).meanLoss
        #expect(after < before - 0.2, "loss \(before) -> \(after)")
    }

    /// A non-finite loss skips the update but still restores the parameters.
    @Test func nonFiniteLossSkipsTheUpdate() throws {
        let (model, batch) = try Self.fixture(Fixtures.opt("opt-tiny-f32"))
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let before = try runner.forward(batch).meanLoss
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3), seed: 3)
        var calls = 0
        let step = try mezo.step(lr: 1e-2, loss: LossPlan(requests: [ForwardRequest(batch)]) { results in
            calls += 1
            return calls == 1 ? .nan : results[0].meanLoss
        })
        #expect(step.skipped)
        try mezo.flush()
        let after = try runner.forward(batch).meanLoss
        #expect(abs(after - before) < 1e-5, "restored: \(before) vs \(after)")
    }
}
