/// One tensor of a GGUF file being written: its name, row-major shape (as PyTorch writes it;
/// the header stores it reversed) and element type.
public struct GGUFTensorEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let type: GGMLType

    public init(name: String, shape: [Int], type: GGMLType) {
        self.name = name
        self.shape = shape
        self.type = type
    }

    /// Its data's size in bytes.
    public var byteCount: Int { type.byteCount(elements: shape.reduce(1, *)) }
}

/// Writes a GGUF version 3 file: metadata in the given order, tensor infos, then each
/// tensor's data aligned to `general.alignment` (32), produced one tensor at a time so that a
/// model is never held twice. The file appears at `path` only when complete.
public enum GGUFWriter {
    public static let alignment = 32

    /// Writes `metadata` and `tensors`; `data(i)` returns tensor i's bytes (exactly its
    /// `byteCount`). Metadata values that are arrays must not be empty (GGUF stores an
    /// array's element type, which an empty array does not have).
    public static func write(metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorEntry], to path: String,
                             data: (Int) throws -> [UInt8]) throws {
        for tensor in tensors {
            let elements = tensor.shape.reduce(1, *)
            guard (1...GGUFHeader.maximumDims).contains(tensor.shape.count), elements % tensor.type.block.elements == 0 else {
                throw GGUFError.badTensor(path: path, tensor: tensor.name,
                                          reason: "shape \(tensor.shape) cannot be stored as \(tensor.type.name)")
            }
        }
        var header = ByteSink()
        header.u32(0x4655_4747)
        header.u32(3)
        header.u64(UInt64(tensors.count))
        header.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            header.string(key)
            try header.value(value, key: key, path: path)
        }
        var offset = 0
        for tensor in tensors {
            header.string(tensor.name)
            header.u32(UInt32(tensor.shape.count))
            for dim in tensor.shape.reversed() { header.u64(UInt64(dim)) }
            header.u32(tensor.type.rawValue)
            header.u64(UInt64(offset))
            offset = padded(offset + tensor.byteCount)
        }
        header.bytes += [UInt8](repeating: 0, count: padded(header.bytes.count) - header.bytes.count)
        let file = try AtomicFileWriter(path: path)
        try file.write(header.bytes)
        for (index, tensor) in tensors.enumerated() {
            var bytes = try data(index)
            guard bytes.count == tensor.byteCount else {
                throw GGUFError.badTensor(path: path, tensor: tensor.name, reason: "\(bytes.count) bytes of data, \(tensor.byteCount) expected")
            }
            bytes += [UInt8](repeating: 0, count: padded(bytes.count) - bytes.count)
            try file.write(bytes)
        }
        try file.commit()
    }

    private static func padded(_ count: Int) -> Int { (count + alignment - 1) / alignment * alignment }
}

/// Little-endian encoding of GGUF header fields.
private struct ByteSink {
    var bytes: [UInt8] = []

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    mutating func u32(_ value: UInt32) { integer(value) }
    mutating func u64(_ value: UInt64) { integer(value) }

    mutating func string(_ value: String) {
        u64(UInt64(value.utf8.count))
        bytes += value.utf8
    }

    mutating func value(_ value: GGUFValue, key: String, path: String) throws(GGUFError) {
        u32(value.type.rawValue)
        try payload(value, key: key, path: path)
    }

    private mutating func payload(_ value: GGUFValue, key: String, path: String) throws(GGUFError) {
        switch value {
        case .uint8(let v): integer(v)
        case .int8(let v): integer(v)
        case .uint16(let v): integer(v)
        case .int16(let v): integer(v)
        case .uint32(let v): integer(v)
        case .int32(let v): integer(v)
        case .uint64(let v): integer(v)
        case .int64(let v): integer(v)
        case .float32(let v): integer(v.bitPattern)
        case .float64(let v): integer(v.bitPattern)
        case .bool(let v): integer(UInt8(v ? 1 : 0))
        case .string(let v): string(v)
        case .array(let items):
            guard let first = items.first else {
                throw .unwritable(path: path, key: key, reason: "an empty array has no element type to write")
            }
            guard items.allSatisfy({ $0.type == first.type }) else {
                throw .unwritable(path: path, key: key, reason: "an array's elements must share one type")
            }
            u32(first.type.rawValue)
            u64(UInt64(items.count))
            for item in items { try payload(item, key: key, path: path) }
        }
    }
}

extension GGUFValue {
    /// Its GGUF type code.
    var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }
}
