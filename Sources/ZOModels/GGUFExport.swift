import ZOCore
import ZOFormats

/// One tensor of a model as llama.cpp names and lays it out, in fp32.
public struct GGUFModelTensor {
    public let name: String
    /// Row-major (PyTorch's order).
    public let shape: [Int]
    /// A weight matrix, stored in the file's type; vectors (norms, biases, rotary factors)
    /// stay fp32, as llama.cpp's converter keeps them.
    public let isMatrix: Bool
    /// Its values, computed when written.
    public let values: () -> [Float]
}

/// A model llama.cpp can run: the hyperparameter keys and tensors of its GGUF file.
public protocol GGUFExportable: CausalLM {
    /// `general.architecture` and the `<arch>.*` keys llama.cpp reads; throws for a
    /// configuration llama.cpp cannot express.
    func ggufHyperparameters() throws(ModelError) -> (architecture: String, keys: [(key: String, value: GGUFValue)])
    /// Every parameter tensor in llama.cpp's names and layout.
    func ggufTensors() -> [GGUFModelTensor]
    /// The BOS, EOS and padding token ids its configuration names.
    var specialTokenIds: (bos: Int?, eos: Int?, pad: Int?) { get }
}

/// What a GGUF export stores its weight matrices as (llama.cpp's `general.file_type`).
public enum GGUFFileType: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0, q4_0

    /// The matrices' element type.
    public var matrixType: GGMLType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        }
    }

    /// llama.cpp's `llama_ftype` value.
    var fileType: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q8_0: 7
        case .bf16: 32
        }
    }
}

/// Writes a model as a GGUF file llama.cpp loads.
public enum GGUFExport {
    /// The element type of `tensor` in a `fileType` export: vectors fp32; matrices the file's
    /// type, f16 where a row is not a whole number of blocks; with q4_0, the token embedding and
    /// the output head q8_0 (llama.cpp's quantizer keeps them above 4 bits too).
    public static func tensorType(_ tensor: GGUFModelTensor, _ fileType: GGUFFileType) -> GGMLType {
        guard tensor.isMatrix else { return .f32 }
        var type = fileType.matrixType
        if type == .q4_0, ["token_embd.weight", "output.weight"].contains(tensor.name) { type = .q8_0 }
        return tensor.shape.last! % type.block.elements == 0 ? type : .f16
    }

    /// `model` as llama.cpp can run it; throws for an architecture or configuration it cannot.
    public static func exportable(_ model: any CausalLM) throws(ModelError) -> any GGUFExportable {
        guard let exportable = model as? any GGUFExportable else {
            throw .unsupported(path: "model", reason: "GGUF export of \(type(of: model)) (llama.cpp has no such architecture)")
        }
        _ = try exportable.ggufHyperparameters()
        return exportable
    }

    /// Writes `model` to `path` with its weights as `fileType`, the `tokenizer` metadata (a
    /// `tokenizer.*` list) and `name` as `general.name`.
    public static func write(_ model: any CausalLM, fileType: GGUFFileType, tokenizer: [(key: String, value: GGUFValue)],
                             name: String, to path: String) throws {
        let model = try exportable(model)
        let (architecture, keys) = try model.ggufHyperparameters()
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(architecture)),
            ("general.type", .string("model")),
            ("general.name", .string(name)),
            ("general.file_type", .uint32(fileType.fileType)),
            ("general.quantization_version", .uint32(2)),
        ] + keys + tokenizer
        let tensors = model.ggufTensors()
        let entries = tensors.map { GGUFTensorEntry(name: $0.name, shape: $0.shape, type: tensorType($0, fileType)) }
        try GGUFWriter.write(metadata: metadata, tensors: entries, to: path) { index in
            let values = tensors[index].values()
            return values.withUnsafeBufferPointer { Quantize.run(entries[index].type, source: $0.baseAddress!, count: $0.count) }
        }
    }
}
