import Foundation
import ZOCore
import ZOFormats
import ZOModels
import ZOTokenizers

/// Weights files: safetensors (single file, sharded index), GGUF (header, metadata, tensor
/// infos, the configuration and tokenizer it holds) and GGML's block formats.
enum FormatTargets {
    static let all = [
        FuzzTarget(name: "safetensors", run: safetensors),
        FuzzTarget(name: "safetensors-index", run: safetensorsIndex),
        FuzzTarget(name: "gguf", run: gguf),
        FuzzTarget(name: "dequantize", run: dequantize),
    ]

    /// A whole `.safetensors` file: the header, then every small tensor read as Float32.
    static func safetensors(_ input: [UInt8]) {
        let path = Scratch.write(input, to: "model.safetensors")
        guard let file = try? SafetensorsFile(path: path) else { return }
        for info in file.header.tensors.values where info.elementCount <= FuzzTarget.tensorElementLimit {
            var values = [Float](repeating: 0, count: info.elementCount)
            _ = try? values.withUnsafeMutableBufferPointer { buffer throws(SafetensorsError) in
                try file.readFloats(info.name, expectedShape: info.shape, into: buffer.baseAddress!)
            }
        }
    }

    /// `model.safetensors.index.json` (the input) over one real shard holding `w` [2, 2].
    static func safetensorsIndex(_ input: [UInt8]) {
        let directory = Scratch.directory + "/sharded"
        if !FileManager.default.fileExists(atPath: directory + "/a.safetensors") {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let header = Array(#"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}"#.utf8)
            let length = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
            _ = FileManager.default.createFile(atPath: directory + "/a.safetensors",
                                               contents: Data(length + header + [UInt8](repeating: 0, count: 16)))
        }
        Scratch.write(input, to: "sharded/model.safetensors.index.json")
        guard let checkpoint = try? SafetensorsCheckpoint(directory: directory), checkpoint.contains("w") else { return }
        var values = [Float](repeating: 0, count: 4)
        _ = try? values.withUnsafeMutableBufferPointer { buffer throws(SafetensorsError) in
            try checkpoint.readFloats("w", expectedShape: [2, 2], into: buffer.baseAddress!)
        }
    }

    /// A whole `.gguf` file: header, metadata and tensor infos; every small dequantizable tensor;
    /// the Llama-family configuration, the tokenizer and the chat template its metadata describe.
    static func gguf(_ input: [UInt8]) {
        let path = Scratch.write(input, to: "model.gguf")
        guard let file = try? GGUFFile(path: path) else { return }
        for info in file.tensors where info.type.isDequantizable && info.elementCount <= FuzzTarget.tensorElementLimit {
            var values = [Float](repeating: 0, count: info.elementCount)
            _ = try? values.withUnsafeMutableBufferPointer { buffer throws(GGUFError) in
                try file.readFloats(info.name, expectedShape: info.shape, into: buffer.baseAddress!)
            }
        }
        if let config = try? LlamaConfig.from(gguf: file) { _ = config.shape }
        if let tokenizer = try? Tokenizer.load(gguf: file) {
            _ = tokenizer.decode(tokenizer.encode("Hello, world! 123 héllo\n", addSpecialTokens: true))
        }
        _ = try? ChatTemplate.find(path: path)
    }

    /// GGML blocks: the first byte picks a dequantizable type, the rest are its blocks.
    static func dequantize(_ input: [UInt8]) {
        let types = GGMLType.allCases.filter(\.isDequantizable)
        guard let first = input.first else { return }
        let type = types[Int(first) % types.count]
        let blocks = (input.count - 1) / type.block.bytes
        guard blocks > 0 else { return }
        let source = Array(input[1...])
        var values = [Float](repeating: 0, count: blocks * type.block.elements)
        source.withUnsafeBytes { raw in
            values.withUnsafeMutableBufferPointer { floats in
                Dequantize.run(type, source: raw.baseAddress!, count: floats.count, into: floats.baseAddress!)
            }
        }
    }
}
