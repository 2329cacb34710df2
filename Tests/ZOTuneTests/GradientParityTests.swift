import Foundation
import Testing
import ZOCPU
import ZOCore
import ZOFormats
import ZOModels
import ZOOptimizers
import ZOTasks

/// The backward pass against Hugging Face transformers' autograd (fixtures from
/// scripts/fixtures/make_gradient_fixtures.py): the gradient of the mean next-token loss with
/// respect to every parameter of every OPT and Llama fixture (on a batch stored with the
/// gradients), through all blocks, the head and the embedding. Tolerance per tensor: max |Δ| ≤ 1e-4 · max |g_ref| + 1e-7 (fp32 sums
/// in another order).
@Suite struct GradientParityTests {
    static let fixtures = Fixtures.optNames.map { Fixtures.opt($0) } + Fixtures.llamaNames.map { Fixtures.llama($0) }

    /// Full first-order gradients of one fixture's batch, by tensor name.
    static func gradients(_ model: any CausalLM, directory: String, firstBlock: Int = 0) throws -> (loss: Double, byName: [String: [Float]]) {
        let reference = try Self.expected(directory)
        let shape = reference.info("ids")!.shape
        let ids = try reference.bytes("ids").withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        let mask = try reference.bytes("mask").withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        let t = shape[1]
        let sequences = (0..<shape[0]).map { b in (0..<t).filter { mask[b * t + $0] != 0 }.map { Int(ids[b * t + $0]) } }
        let backend = try CPUBackend(budget: 64 << 20, threads: 2)
        let tail = try FirstOrderTail(model: model, backend: backend, firstBlock: firstBlock, trainsEmbedding: firstBlock == 0)
        let runner = try ResidentRunner(model: model, backend: backend, tail: tail)
        let task = LMTrainingTask(train: sequences, heldOut: nil)
        let plan = try task.lossPlan(Array(sequences.indices), model: model)
        tail.isRecording = true
        let results = try runner.forward(plan.requests)
        try tail.backward(plan.gradient!(results))
        var byName: [String: [Float]] = [:]
        for tensor in tail.trainedTensors {
            byName[tensor.name] = try backend.read(tensor.gradient, count: tensor.gradient.byteCount / 4)
        }
        return (plan.reduce(results), byName)
    }

    static func expected(_ directory: String) throws -> SafetensorsFile {
        try SafetensorsFile(path: directory + "/gradients.safetensors")
    }

    static func read(_ file: SafetensorsFile, _ name: String) throws -> [Float] {
        let shape = file.info(name)!.shape
        var values = [Float](repeating: 0, count: shape.reduce(1, *))
        try values.withUnsafeMutableBufferPointer { try file.readFloats(name, expectedShape: shape, into: $0.baseAddress!) }
        return values
    }

    @Test(arguments: fixtures)
    func everyGradientMatchesTransformers(directory: String) throws {
        let model = try ModelRegistry.load(path: directory)
        let (loss, gradients) = try Self.gradients(model, directory: directory)
        let reference = try Self.expected(directory)
        let expectedLoss = Double(reference.header.metadata["loss"]!)!
        #expect(abs(loss - expectedLoss) <= 1e-5 * expectedLoss, "loss \(loss) vs \(expectedLoss)")
        #expect(Set(gradients.keys) == Set(reference.tensorNames).subtracting(["ids", "mask"]), "tensors trained: \(gradients.keys.sorted())")
        var worstRatio: Float = 0
        for (name, values) in gradients.sorted(by: { $0.key < $1.key }) where reference.info(name) != nil {
            let expected = try Self.read(reference, name)
            try #require(expected.count == values.count, "\(name): \(values.count) values, reference \(expected.count)")
            let scale = expected.map(abs).max()!
            let error = zip(values, expected).map { abs($0 - $1) }.max()!
            #expect(error <= 1e-4 * scale + 1e-7, "\(name): max |Δ| \(error), max |g| \(scale)")
            if scale > 1e-5 { worstRatio = max(worstRatio, error / scale) }  // (k_proj biases' true gradient is 0)
        }
        print("gradient parity \(directory.split(separator: "/").last!): worst max|Δ|/max|g| = \(worstRatio) (tensors with max|g| > 1e-5) over \(gradients.count) tensors")
    }

    /// A hybrid tail (the deepest block and the head) gets the same gradients for what it
    /// trains as the full backward: detaching its input changes nothing after it.
    @Test(arguments: [Fixtures.opt("opt-odd-heads-f16"), Fixtures.llama("llama-untied-bf16")])
    func aTailOfTheDeepestBlockGetsTheFullGradients(directory: String) throws {
        let model = try ModelRegistry.load(path: directory)
        let last = model.blocks.count - 1
        let (_, tail) = try Self.gradients(model, directory: directory, firstBlock: last)
        let (_, full) = try Self.gradients(try ModelRegistry.load(path: directory), directory: directory)
        let blockNames = Set(model.blocks[last].layout.specs.map(\.name) + model.head.layout.specs.map(\.name))
        #expect(Set(tail.keys).subtracting(model.embedding.layout.specs.map(\.name)) == blockNames)
        for name in blockNames { #expect(tail[name] == full[name], "\(name)") }
    }
}
