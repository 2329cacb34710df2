import Foundation
import Testing
import ZOCore
import ZOFormats
import ZOModels
import ZOTokenizers

/// GGUF writing: the quantizers against the `gguf` Python package's bytes, the writer read back,
/// every Llama-like family exported in llama.cpp's layout (the tensors of the fixtures' GGUFs,
/// which scripts/fixtures/make_llama_fixtures.py writes as llama.cpp's converter does) and
/// reloaded, and the tokenizer carried or rebuilt. llama.cpp itself reads the exports in
/// scripts/check-gguf-export.py.
@Suite struct GGUFExportTests {
    /// The fixture file's "f32" tensor is the Gaussian data its other tensors were quantized from.
    @Test(arguments: ["f16", "bf16", "q8_0", "q4_0"])
    func quantizersMatchThePythonPackage(name: String) throws {
        let file = try GGUFFile(path: GGUFTests.path)
        var source = [Float](repeating: 0, count: 2048)
        try source.withUnsafeMutableBufferPointer { try file.readFloats("f32", expectedShape: [4, 512], into: $0.baseAddress!) }
        let type = try #require(file.info(name)?.type)
        let written = source.withUnsafeBufferPointer { Quantize.run(type, source: $0.baseAddress!, count: 2048) }
        let expected = try file.bytes(name)
        #expect(written.count == expected.count)
        let mismatches = zip(written, expected).filter { $0 != $1 }.count
        #expect(mismatches == 0, "\(name): \(mismatches) of \(expected.count) bytes differ")
    }

    @Test func quantizersOnZerosAndTies() {
        var values = [Float](repeating: 0, count: 64)
        values[32] = 2  // block 2: the first of two equal magnitudes sets q4_0's sign
        values[40] = -2
        let q8 = values.withUnsafeBufferPointer { Quantize.run(.q8_0, source: $0.baseAddress!, count: 64) }
        #expect(q8[0..<34].allSatisfy { $0 == 0 })  // d = 0: every q is 0
        #expect(Int8(bitPattern: q8[34 + 2]) == 127 && Int8(bitPattern: q8[34 + 2 + 8]) == -127)
        let q4 = values.withUnsafeBufferPointer { Quantize.run(.q4_0, source: $0.baseAddress!, count: 64) }
        #expect(q4[2..<18].allSatisfy { $0 == 0x88 })  // d = 0: every nibble is 8
        #expect(Half.f16ToFloat(UInt16(q4[18]) | UInt16(q4[19]) << 8) == -0.25)  // d = 2 / −8
        #expect(q4[20] & 0xF == 0 && q4[28] & 0xF == 15)  // 2 / −0.25 + 8.5 → 0; −2 → 16.5, clipped to 15
    }

    @Test func writtenFilesReadBack() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/w.gguf"
        let metadata: [(key: String, value: GGUFValue)] = [
            ("a.u8", .uint8(7)), ("a.i16", .int16(-3)), ("a.u64", .uint64(1 << 40)), ("a.f32", .float32(0.5)),
            ("a.f64", .float64(-2.25)), ("a.bool", .bool(true)), ("a.string", .string("héllo")),
            ("a.strings", .array([.string("x"), .string("")])), ("a.nested", .array([.array([.int32(1)]), .array([.int32(2), .int32(3)])])),
        ]
        let values = (0..<96).map { Float($0) / 7 }
        let tensors = [GGUFTensorEntry(name: "m", shape: [3, 32], type: .q8_0), GGUFTensorEntry(name: "v", shape: [5], type: .f32)]
        try GGUFWriter.write(metadata: metadata, tensors: tensors, to: path) { index in
            values.withUnsafeBufferPointer { Quantize.run(tensors[index].type, source: $0.baseAddress!, count: tensors[index].shape.reduce(1, *)) }
        }
        let file = try GGUFFile(path: path)
        #expect(file.metadataKeys == metadata.map(\.key))
        for (key, value) in metadata { #expect(file.metadata[key] == value, "\(key)") }
        #expect(file.tensors.map(\.name) == ["m", "v"] && file.info("m")?.shape == [3, 32] && file.info("v")?.type == .f32)
        #expect(file.tensors.allSatisfy { ($0.offset + file.dataStart) % GGUFWriter.alignment == 0 })
        var v = [Float](repeating: 0, count: 5)
        try v.withUnsafeMutableBufferPointer { try file.readFloats("v", expectedShape: [5], into: $0.baseAddress!) }
        #expect(v == Array(values[0..<5]))
        // What cannot be written is refused by name, and nothing is left at the path.
        #expect(throws: GGUFError.unwritable(path: path + "2", key: "e", reason: "an empty array has no element type to write")) {
            try GGUFWriter.write(metadata: [("e", .array([]))], tensors: [], to: path + "2") { _ in [] }
        }
        #expect(throws: GGUFError.self) {
            try GGUFWriter.write(metadata: [], tensors: [GGUFTensorEntry(name: "odd", shape: [3, 5], type: .q4_0)], to: path + "2") { _ in [] }
        }
        #expect(!FileManager.default.fileExists(atPath: path + "2"))
    }

    /// The fixtures with a GGUF (Llama, Qwen2, Qwen3, Phi-3, Gemma 2, Gemma 3).
    static let withGGUF = Fixtures.llamaNames.filter { FileManager.default.fileExists(atPath: Fixtures.llama($0) + "/model.gguf") }

    @Test(arguments: withGGUF)
    func exportIsLlamaCppsLayoutAndReloads(name: String) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var model = try ModelRegistry.load(path: Fixtures.llama(name)) as! LlamaModel
        if name == "gemma2-f32" {  // its query_pre_attn_scalar is not the head size llama.cpp scales by
            #expect(throws: ModelError.self) { try model.ggufHyperparameters() }
            var config = model.config
            config.queryPreAttnScalar = nil
            let scaled = try LlamaModel(config: config)
            for (a, b) in zip(model.groups, scaled.groups) { b.storage.floats.update(from: a.storage.floats, count: a.layout.count) }
            model = scaled
        }
        let path = directory + "/model.gguf"
        try GGUFExport.write(model, fileType: .f32, tokenizer: [], name: name, to: path)
        let exported = try GGUFFile(path: path), reference = try GGUFFile(path: Fixtures.llama(name) + "/model.gguf")
        // Every tensor of the converter-style fixture, byte for byte; the same keys' values.
        #expect(Set(exported.tensors.map(\.name)) == Set(reference.tensors.map(\.name)), "\(name)")
        for tensor in reference.tensors {
            #expect(exported.info(tensor.name)?.shape == tensor.shape, "\(name) \(tensor.name)")
            #expect(try exported.bytes(tensor.name) == reference.bytes(tensor.name), "\(name) \(tensor.name)")
        }
        for key in reference.metadataKeys where !key.hasPrefix("tokenizer.") && exported.metadata[key] != nil {
            let (a, b) = (exported.metadata[key]!, reference.metadata[key]!)
            #expect(a.string == b.string && a.double.map(Float.init) == b.double.map(Float.init), "\(name) \(key): \(a) vs \(b)")
        }
        // Reloaded, it is the model it came from, bit for bit; Gemma's norms as fp32's (1 + w) − 1.
        let reloaded = try ModelRegistry.load(path: path)
        #expect(reloaded.parameterCount == model.parameterCount)
        let offset = model.config.variant.normWeightOffset
        for (a, b) in zip(model.groups, reloaded.groups) {
            for spec in a.layout.specs {
                let expected = Array(a.values(spec)).map { spec.kind == .norm ? ($0 + offset) - offset : $0 }
                #expect(expected.map(\.bitPattern) == Array(b.values(spec)).map(\.bitPattern), "\(name) \(spec.name)")
            }
        }
    }

    @Test(arguments: [GGUFFileType.f16, .bf16, .q8_0, .q4_0])
    func quantizedExportsReloadAsTheirQuantizedValues(type: GGUFFileType) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = try ModelRegistry.load(path: Fixtures.llama("qwen3-f32")) as! LlamaModel
        let path = directory + "/model.gguf"
        try GGUFExport.write(model, fileType: type, tokenizer: [], name: "q", to: path)
        let file = try GGUFFile(path: path)
        #expect(file.metadata["general.file_type"]?.int == ["f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2][type.rawValue])
        let reloaded = try ModelRegistry.load(path: path)
        for tensor in model.ggufTensors() {
            let info = try #require(file.info(tensor.name))
            #expect(info.type == GGUFExport.tensorType(tensor, type), "\(tensor.name)")
            #expect(tensor.isMatrix || info.type == .f32, "\(tensor.name): vectors stay f32")
            let values = tensor.values()
            let bytes = values.withUnsafeBufferPointer { Quantize.run(info.type, source: $0.baseAddress!, count: $0.count) }
            #expect(try file.bytes(tensor.name) == bytes, "\(tensor.name)")
        }
        // The reloaded matrices are the dequantized file: q8_0 within half a step of 1/127 of a block's largest |w|.
        if type == .q8_0 {
            let original = model.groups[1].storage.floats, back = reloaded.groups[1].storage.floats
            let worst = (0..<model.groups[1].layout.count).map { abs(original[$0] - back[$0]) }.max()!
            let largest = (0..<model.groups[1].layout.count).map { abs(original[$0]) }.max()!
            #expect(worst <= largest / 127 / 2 * 1.01 && worst > 0)
        }
    }

    @Test func configurationsLlamaCppCannotExpressAreRefused() throws {
        var config = try LlamaConfig.load(path: Fixtures.llama("gemma2-f32") + "/config.json")
        config.queryPreAttnScalar = 7
        #expect(throws: ModelError.self) { try LlamaModel(config: config).ggufHyperparameters() }
        let opt = try ModelRegistry.load(path: Fixtures.opt("opt-tiny-f32"))
        #expect(throws: ModelError.self) { try GGUFExport.write(opt, fileType: .f32, tokenizer: [], name: "opt", to: "/tmp/never.gguf") }
    }

    /// A tokenizer.json becomes llama.cpp's vocabulary — byte-level ("gpt2": merges and the
    /// pre-tokenizer's name) or SentencePiece-style ("llama": scores in merge order, byte tokens):
    /// written as a vocabulary-only GGUF and read back, it encodes and decodes as the tokenizer.json does.
    @Test(arguments: [("qwen2-tokenizer.json", "gpt2"), ("llama3-tokenizer.json", "gpt2"),
                      ("converted-sentencepiece-tokenizer.json", "llama")])
    func tokenizerJSONBecomesAGGUFVocabulary(name: String, model: String) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = Fixtures.root + "/tokenizers/" + name
        let metadata = try GGUFVocabulary.metadata(tokenizerAt: source)
        #expect(metadata.first?.value == .string(model))
        try GGUFVocabulary.write(metadata, architecture: "llama", to: directory + "/tokenizer.gguf")
        let original = try Tokenizer.load(path: source), rebuilt = try Tokenizer.load(path: directory)
        #expect(rebuilt.tokens == original.tokens)
        for text in ["Hello world, 12345 times!", "  spaces\n\nand\ttabs", "naïve café — 東京 🦙", "<|endoftext|>x", "a  b   c"] {
            let ids = original.encode(text)
            #expect(rebuilt.encode(text) == ids, "\(name): \(text.debugDescription)")
            #expect(rebuilt.decode(ids) == original.decode(ids), "\(name): \(text.debugDescription)")
        }
    }

    /// SentencePiece-style vocabularies trained as BPE (not converted from SentencePiece): some
    /// token splits into two tokens without that merge, so scores cannot stand for their merges.
    @Test(arguments: ["sentencepiece-tokenizer.json", "metaspace-tokenizer.json", "gemma-tokenizer.json"])
    func mergesScoresCannotExpressAreRefused(name: String) throws {
        #expect(throws: TokenizerError.self) { try GGUFVocabulary.metadata(tokenizerAt: Fixtures.root + "/tokenizers/" + name) }
    }

    /// The converted vocabulary's GGUF tokenizes as the SentencePiece GGUF it came from.
    @Test func convertedSentencePieceComesBackAsItsGGUF() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metadata = try GGUFVocabulary.metadata(tokenizerAt: Fixtures.root + "/tokenizers/converted-sentencepiece-tokenizer.json")
        try GGUFVocabulary.write(metadata, architecture: "llama", to: directory + "/tokenizer.gguf")
        let rebuilt = try Tokenizer.load(path: directory), original = try Tokenizer.load(path: Fixtures.root + "/tokenizers/sentencepiece.gguf")
        for text in ["Hello world, 12345 times!", "  spaces\n\nand\ttabs", "naïve café — 東京 🦙", "a  b   c"] {
            #expect(rebuilt.encode(text) == original.encode(text), "\(text.debugDescription)")
        }
    }

    /// The SmolLM2 GGUF's vocabulary: carried key for key into an export, and kept beside a saved
    /// model as a vocabulary-only tokenizer.gguf that tokenizes as the model's file does.
    @Test(.enabled(if: SmolLM2.isInstalled, "SmolLM2 asset absent: run `zotune assets fetch smollm2-135m`"))
    func smolLM2VocabularyIsCarriedAndRebuilt() throws {
        let file = try GGUFFile(path: SmolLM2.path)
        let carried = try GGUFVocabulary.metadata(tokenizerAt: SmolLM2.path)
        #expect(carried.map(\.key) == file.metadataKeys.filter { $0.hasPrefix("tokenizer.") })
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try TokenizerFiles.keep(tokenizerAt: SmolLM2.path, in: directory)
        let kept = try Tokenizer.load(path: directory), original = try Tokenizer.load(path: SmolLM2.path)
        #expect(kept.tokens == original.tokens && kept.chatTemplate == original.chatTemplate && kept.eosTokenId == original.eosTokenId)
        let text = "The 3 capitals: Paris, Tōkyō.\n<|im_start|>user"
        #expect(kept.encode(text, addSpecialTokens: true) == original.encode(text, addSpecialTokens: true))
    }

    /// `zotune export` from the command line: a model folder with a tokenizer.json given, read back
    /// with that vocabulary; OPT and a bad --type refused with a clear error and a non-zero exit.
    @Test func exportCommand() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let out = directory + "/qwen3.gguf"
        let done = try CLI.run(["export", Fixtures.llama("qwen3-f32"), out, "--type", "q8_0",
                                "--tokenizer", Fixtures.root + "/tokenizers/qwen2-tokenizer.json"])
        #expect(done.status == 0, "\(done.stderr)")
        let file = try GGUFFile(path: out)
        #expect(file.metadata["general.architecture"]?.string == "qwen3" && file.metadata["general.name"]?.string == "qwen3-f32")
        #expect(file.metadata["tokenizer.ggml.pre"]?.string == "qwen2")
        #expect(try Tokenizer.load(path: out).encode("Hello world") == (try Tokenizer.load(path: Fixtures.root + "/tokenizers/qwen2-tokenizer.json")).encode("Hello world"))
        let opt = try CLI.run(["export", Fixtures.opt("opt-tiny-f32"), directory + "/opt.gguf"])
        #expect(opt.status != 0 && opt.stderr.contains("llama.cpp has no such architecture"), "\(opt.stderr)")
        let type = try CLI.run(["export", Fixtures.llama("qwen3-f32"), directory + "/x.gguf", "--type", "q5_k"])
        #expect(type.status != 0 && type.stderr.contains("--type"), "\(type.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/opt.gguf") && !FileManager.default.fileExists(atPath: directory + "/x.gguf"))
    }

    /// Llama 3's rope scaling goes to llama.cpp as its rope_freqs.weight table and comes back as
    /// the same scaling (Llama 3's parameters); a table of other parameters is refused on reading.
    @Test func llama3RopeScalingRoundTrips() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = try ModelRegistry.load(path: Fixtures.llama("llama-gqa-f32")) as! LlamaModel
        var config = source.config
        config.ropeScaling = .init(ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192)
        config.ropeTheta = 500_000
        let model = try LlamaModel(config: config)
        for (a, b) in zip(source.groups, model.groups) { b.storage.floats.update(from: a.storage.floats, count: a.layout.count) }
        let factors = config.ropeFrequencyFactors
        #expect(factors.first == 1 && factors.last == 8 && factors.contains { $0 > 1 && $0 < 8 })  // high, low and smoothed bands
        try GGUFExport.write(model, fileType: .f32, tokenizer: [], name: "llama3", to: directory + "/m.gguf")
        let reloaded = try ModelRegistry.load(path: directory + "/m.gguf") as! LlamaModel
        #expect(reloaded.config.ropeScaling == config.ropeScaling)
        #expect(reloaded.constants == model.constants)
        // The same table with a different low-frequency factor is not Llama 3's parameters.
        var other = config
        other.ropeScaling?.lowFreqFactor = 2
        try GGUFExport.write(try LlamaModel(config: other), fileType: .f32, tokenizer: [], name: "other", to: directory + "/o.gguf")
        #expect(throws: ModelError.self) { try ModelRegistry.load(path: directory + "/o.gguf") }
    }
}
