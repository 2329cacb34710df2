#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One tensor to write. `bytes` must hold exactly `shape`'s element count × dtype size and
/// stay valid until `SafetensorsWriter.write` returns.
public struct SafetensorsEntry {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer

    public init(name: String, dtype: SafetensorsDType, shape: [Int], bytes: UnsafeRawBufferPointer) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }
}

/// Writes safetensors files: header with sorted keys padded with spaces to 8 bytes, data in
/// the order given, written atomically (temporary file, fsync, rename).
public enum SafetensorsWriter {
    /// Writes `tensors` and `metadata` to `path`.
    public static func write(_ tensors: [SafetensorsEntry], metadata: [String: String] = [:], to path: String) throws(SafetensorsError) {
        var header: [String: HeaderValue] = [:]
        var offset = 0
        for tensor in tensors {
            let expected = tensor.shape.reduce(1, *) * tensor.dtype.byteSize
            guard tensor.bytes.count == expected else {
                throw .badShape(path: path, tensor: tensor.name, reason: "\(tensor.bytes.count) bytes given for \(tensor.shape)")
            }
            guard header[tensor.name] == nil, tensor.name != "__metadata__" else {
                throw .duplicateTensor(path: path, tensor: tensor.name)
            }
            header[tensor.name] = .tensor(dtype: tensor.dtype.rawValue, shape: tensor.shape, offsets: [offset, offset + expected])
            offset += expected
        }
        if !metadata.isEmpty { header["__metadata__"] = .metadata(metadata) }

        var json: [UInt8]
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            json = Array(try encoder.encode(header))
        } catch {
            throw .cannotWrite(path: path, reason: "cannot encode the header")
        }
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var length = UInt64(json.count).littleEndian

        do {
            let file = try AtomicFileWriter(path: path)
            try file.write(withUnsafeBytes(of: &length) { Array($0) } + json)
            for tensor in tensors { try file.write(tensor.bytes) }
            try file.commit()
        } catch {
            guard case .failed(_, let reason) = error else { throw .cannotWrite(path: path, reason: error.description) }
            throw .cannotWrite(path: path, reason: reason)
        }
    }

    private enum HeaderValue: Encodable {
        case tensor(dtype: String, shape: [Int], offsets: [Int])
        case metadata([String: String])

        private enum Keys: String, CodingKey { case dtype, shape, data_offsets }

        func encode(to encoder: any Encoder) throws {
            switch self {
            case .metadata(let map):
                var container = encoder.singleValueContainer()
                try container.encode(map)
            case .tensor(let dtype, let shape, let offsets):
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(dtype, forKey: .dtype)
                try container.encode(shape, forKey: .shape)
                try container.encode(offsets, forKey: .data_offsets)
            }
        }
    }
}
