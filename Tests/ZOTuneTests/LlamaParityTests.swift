import Foundation
import Testing
import ZOCPU
import ZOFormats
import ZOModels

/// The forward pass of the Llama-like families (Llama, Qwen2, Qwen3, Mistral, Phi-3) against Hugging Face
/// transformers (fixtures from scripts/fixtures/make_llama_fixtures.py): loss within 1e-5
/// relative, logits within 1e-4 absolute, from safetensors and from GGUF.
@Suite struct LlamaParityTests {
    /// Loads the fixture's expected values and checks `model` against them.
    static func check(_ model: any CausalLM, fixture directory: String, label: String) throws {
        let expected = try OPTExpectation.load(directory)
        let reference = try SafetensorsFile(path: directory + "/expected.safetensors")
        let shape = reference.info("logits")!.shape
        var expectedLogits = [Float](repeating: 0, count: shape.reduce(1, *))
        try expectedLogits.withUnsafeMutableBufferPointer { try reference.readFloats("logits", expectedShape: shape, into: $0.baseAddress!) }
        let ids = try reference.bytes("ids").withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        let t = shape[1]
        let sequences = expected.lengths.enumerated().map { b, n in (0..<n).map { Int(ids[b * t + $0]) } }
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let result = try runner.forward(try model.makeBatch(sequences), outputs: .logits)
        #expect(abs(result.meanLoss - expected.loss) <= 1e-5 * abs(expected.loss), "\(label): loss \(result.meanLoss) vs \(expected.loss)")
        for b in 0..<sequences.count {
            #expect(abs(result.sequenceLoss(b).loss - expected.sequence_losses[b]) <= 1e-5 * expected.sequence_losses[b], "\(label) \(b)")
        }
        // Logits at real tokens only: a padded position whose sliding window holds only padding
        // has no visible key (zeros here, an average of the padding's values in transformers).
        let v = model.vocabSize
        let real = expected.lengths.enumerated().flatMap { b, n in (0..<n).map { b * t + $0 } }
        let worst = real.map { row in zip(result.logits![row * v..<(row + 1) * v], expectedLogits[row * v..<(row + 1) * v])
            .map { abs($0 - $1) }.max()! }.max()!
        #expect(worst <= 1e-4, "\(label): max |Δlogit| = \(worst)")
        print("Llama parity \(label): max |Δlogit| = \(worst), loss \(result.meanLoss) vs \(expected.loss)")
    }

    @Test(arguments: Fixtures.llamaNames)
    func safetensorsMatchTransformers(name: String) throws {
        let model = try ModelRegistry.load(path: Fixtures.llama(name))
        #expect(model is LlamaModel)
        try Self.check(model, fixture: Fixtures.llama(name), label: name)
    }

    /// llama.cpp's layout: Llama's q/k rows permuted, Qwen2's, Qwen3's, Phi-3's and Gemma 3's as
    /// they are (Phi-3's fused, its LongRoPE factors as tensors; Gemma's norms stored as 1 + w).
    @Test(arguments: ["llama-gqa-f32", "qwen2-untied-f32", "qwen3-f32", "phi3-longrope-f32", "gemma3-f32"])
    func ggufMatchesTransformers(name: String) throws {
        let directory = Fixtures.llama(name)
        let model = try ModelRegistry.load(path: directory + "/model.gguf")
        try Self.check(model, fixture: directory, label: "gguf \(name)")
    }

    /// Gemma 2's GGUF (llama.cpp's gemma2): GGUF cannot say `query_pre_attn_scalar`, so the file
    /// loads as llama.cpp reads it (scale head_dim^−½) with the caps and windows from its keys and
    /// the safetensors weights (norms back from 1 + w, within an ulp of 1); given transformers'
    /// scale, those weights compute transformers' logits.
    @Test func gemma2GGUFHoldsTheWeightsAndWhatLlamaCppReads() throws {
        let directory = Fixtures.llama("gemma2-f32")
        let gguf = try #require(try ModelRegistry.load(path: directory + "/model.gguf") as? LlamaModel)
        let reference = try #require(try ModelRegistry.load(path: directory) as? LlamaModel)
        #expect(gguf.config.finalLogitSoftcapping == 3 && gguf.config.attnLogitSoftcapping == 5)
        #expect((0..<2).map(gguf.config.window) == [6, 0] && gguf.config.hiddenAct == "gelu_pytorch_tanh")
        #expect(gguf.config.queryPreAttnScalar == 12 && reference.config.queryPreAttnScalar == 20)
        var config = gguf.config
        config.queryPreAttnScalar = reference.config.queryPreAttnScalar
        let model = try LlamaModel(config: config)
        for (group, (loaded, expected)) in zip(model.groups, zip(gguf.groups, reference.groups)) {
            for spec in group.layout.specs {
                let worst = zip(loaded.values(spec), expected.values(spec)).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= (spec.kind == .norm ? 1.2e-7 : 0), "\(spec.name): max |Δ| \(worst)")
                _ = group.values(spec).update(fromContentsOf: loaded.values(spec))
            }
        }
        try Self.check(model, fixture: directory, label: "gguf gemma2-f32 at transformers' scale")
    }

    /// Decoding token by token with the KV cache gives the logits of the full pass.
    @Test(arguments: Fixtures.llamaNames + ["opt:opt-tiny-f32", "opt:opt-350m-style-bf16"])
    func cachedDecodingMatchesTheFullPass(name: String) throws {
        let path = name.hasPrefix("opt:") ? Fixtures.opt(String(name.dropFirst(4))) : Fixtures.llama(name)
        let model = try ModelRegistry.load(path: path)
        let backend = try CPUBackend(budget: 64 << 20, threads: 2)
        let runner = try ResidentRunner(model: model, backend: backend)
        let tokens = [5, 9, 3, 17, 2, 11, 8]
        let full = try runner.forward(try model.makeBatch([tokens]), outputs: .logits).logits!
        let cache = try KVCache(blocks: model.blocks.count, batchSize: 1, capacity: 16, width: model.kvWidth, backend: backend)
        var stepped: [Float] = []
        // A 3-token prompt, then one token at a time.
        stepped += try runner.forward(try model.makeBatch([Array(tokens[0..<3])]), outputs: .logits, cache: cache, rows: nil).logits!
        for token in tokens[3...] {
            stepped += try runner.forward(try model.makeBatch([[token]]), outputs: .logits, cache: cache, rows: nil).logits!
        }
        #expect(cache.length == tokens.count)
        let worst = zip(full, stepped).map { abs($0 - $1) }.max()!
        #expect(stepped.count == full.count && worst <= 1e-4, "max |Δ| \(worst)")
    }

    /// The head on selected rows gives those rows of the full pass (to rounding: the GEMM
    /// kernel OpenBLAS picks depends on the number of rows).
    @Test(arguments: ["llama/llama-untied-bf16", "opt/opt-350m-style-bf16"])
    func selectedRowsMatchTheFullPass(fixture: String) throws {
        let model = try ModelRegistry.load(path: Fixtures.root + "/" + fixture)
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        let batch = try model.makeBatch([[5, 9, 3, 17, 2], [11, 8, 4]])
        let full = try runner.forward(batch, outputs: [.logits, .argmax])
        let rows = [4, 0, 7]
        let part = try runner.forward(batch, outputs: [.logits, .argmax], rows: rows)
        let v = model.vocabSize
        for (i, row) in rows.enumerated() {
            let worst = zip(part.logits![i * v..<(i + 1) * v], full.logits![row * v..<(row + 1) * v]).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5 && abs(part.tokenLosses[i] - full.tokenLosses[row]) < 1e-5 && part.argmax![i] == full.argmax![row])
        }
    }
}
