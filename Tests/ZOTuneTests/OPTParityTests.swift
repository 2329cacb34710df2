import Foundation
import Testing
import ZOCPU
import ZOFormats
import ZOModels

/// The OPT forward pass against Hugging Face transformers (fixtures from
/// scripts/fixtures/make_opt_fixtures.py): loss within 1e-5 relative, logits within 1e-4 absolute.
@Suite struct OPTParityTests {
    @Test(arguments: Fixtures.optNames)
    func logitsAndLossMatchTransformers(name: String) throws {
        let directory = Fixtures.opt(name)
        let expected = try OPTExpectation.load(directory)
        let reference = try SafetensorsFile(path: directory + "/expected.safetensors")
        let shape = reference.info("logits")!.shape  // [B, T, V]
        var expectedLogits = [Float](repeating: 0, count: shape.reduce(1, *))
        try expectedLogits.withUnsafeMutableBufferPointer { try reference.readFloats("logits", expectedShape: shape, into: $0.baseAddress!) }
        let ids = try reference.bytes("ids").withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }

        let model = try OPTModel.load(directory: directory)
        let t = shape[1]
        let sequences = expected.lengths.enumerated().map { b, n in (0..<n).map { Int(ids[b * t + $0]) } }
        let batch = try model.makeBatch(sequences)
        for threads in [1, 2] {
            let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: threads))
            let result = try runner.forward(batch, outputs: [.logits, .argmax])

            #expect(abs(result.meanLoss - expected.loss) <= 1e-5 * abs(expected.loss), "\(name): loss \(result.meanLoss) vs \(expected.loss)")
            for b in 0..<sequences.count {
                let loss = result.sequenceLoss(b).loss
                #expect(abs(loss - expected.sequence_losses[b]) <= 1e-5 * abs(expected.sequence_losses[b]), "\(name) sequence \(b)")
            }
            let logits = result.logits!
            #expect(logits.count == expectedLogits.count)
            let worst = zip(logits, expectedLogits).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4, "\(name): max |Δlogit| = \(worst)")
            if threads == 2 { print("OPT parity \(name): max |Δlogit| = \(worst), loss \(result.meanLoss) vs \(expected.loss)") }
            // The arg-max agrees with the reference wherever the top two are not within tolerance.
            let v = shape[2]
            for row in 0..<(shape[0] * t) {
                let slice = expectedLogits[row * v..<(row + 1) * v]
                let top = slice.max()!
                let best = slice.firstIndex(of: top)! - row * v
                let runnerUp = slice.enumerated().filter { $0.offset != best }.map(\.element).max()!
                if top - runnerUp > 1e-3 { #expect(Int(result.argmax![row]) == best, "\(name) row \(row)") }
            }
        }
    }

    @Test func positionsFollowHuggingFacesCumsumRule() throws {
        let model = try OPTModel.load(directory: Fixtures.opt("opt-tiny-f32"))
        let batch = try model.makeBatch([[5, 6, 7], [8]])
        // Real tokens get 2, 3, 4…; padding gets row 1.
        #expect(model.positions(for: batch, past: 0) == [2, 3, 4, 2, 1, 1])
        #expect(batch.targets == [6, 7, -1, -1, -1, -1])
    }
}
