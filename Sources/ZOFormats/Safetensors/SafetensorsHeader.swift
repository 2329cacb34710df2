#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Element types a safetensors file may declare.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case f64 = "F64", i64 = "I64", u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: 1
        case .i16, .u16, .f16, .bf16: 2
        case .i32, .u32, .f32: 4
        case .f64, .i64, .u64: 8
        }
    }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let dataRange: Range<Int>

    /// Product of the shape.
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The parsed, validated header of a safetensors file.
public struct SafetensorsHeader: Sendable {
    /// Tensors by name.
    public let tensors: [String: SafetensorsTensorInfo]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    /// File offset of the data section (8 + header length).
    public let dataStart: Int

    /// The largest header accepted (the format's own limit is 100 MB).
    public static let maximumHeaderBytes = 100_000_000

    /// Parses and validates the header at the start of `bytes`, the whole file of `path`
    /// (named in errors). Checks: the length prefix fits the file, the JSON is an object of
    /// well-formed entries, dtypes are known, shapes are non-negative without overflow,
    /// offsets lie in the data section and match the shape, and no two tensors overlap.
    /// `fileSize` is the whole file's size when `bytes` holds only its beginning (at least
    /// the header).
    public init(parsing bytes: UnsafeRawBufferPointer, fileSize: Int? = nil, path: String) throws(SafetensorsError) {
        guard bytes.count >= 8 else {
            throw .truncated(path: path, reason: "\(bytes.count) bytes, fewer than the 8-byte header length")
        }
        let headerLength = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength <= UInt64(bytes.count - 8), headerLength <= UInt64(Self.maximumHeaderBytes) else {
            throw .headerTooLarge(path: path, headerBytes: headerLength, fileBytes: bytes.count)
        }
        let dataStart = 8 + Int(headerLength)
        let dataBytes = (fileSize ?? bytes.count) - dataStart
        let json = Data(bytes[8..<dataStart])

        let object: [String: RawEntry]
        do {
            object = try JSONDecoder().decode([String: RawEntry].self, from: json)
        } catch {
            throw .malformedHeader(path: path, reason: Self.describe(error))
        }

        var tensors: [String: SafetensorsTensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, entry) in object {
            switch entry {
            case .metadata(let map):
                guard name == "__metadata__" else {
                    throw .malformedHeader(path: path, reason: "entry '\(name)' is not a tensor description")
                }
                metadata = map
            case .tensor(let dtypeName, let shape, let offsets):
                guard name != "__metadata__" else {
                    throw .malformedHeader(path: path, reason: "__metadata__ must map strings to strings")
                }
                tensors[name] = try Self.validate(name: name, dtypeName: dtypeName, shape: shape, offsets: offsets,
                                                  dataBytes: dataBytes, path: path)
            }
        }
        let ordered = tensors.values.sorted { ($0.dataRange.lowerBound, $0.dataRange.upperBound, $0.name) < ($1.dataRange.lowerBound, $1.dataRange.upperBound, $1.name) }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.dataRange.lowerBound < previous.dataRange.upperBound {
            throw .overlappingTensors(path: path, first: previous.name, second: next.name)
        }
        self.tensors = tensors
        self.metadata = metadata
        self.dataStart = dataStart
    }

    private static func validate(name: String, dtypeName: String, shape: [Int], offsets: [Int], dataBytes: Int,
                                 path: String) throws(SafetensorsError) -> SafetensorsTensorInfo {
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw .unknownDType(path: path, tensor: name, dtype: dtypeName)
        }
        var elements = 1
        for dim in shape {
            guard dim >= 0 else { throw .badShape(path: path, tensor: name, reason: "negative dimension in \(shape)") }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw .badShape(path: path, tensor: name, reason: "\(shape) overflows") }
            elements = product
        }
        let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw .badShape(path: path, tensor: name, reason: "\(shape) overflows") }
        guard offsets.count == 2 else {
            throw .badOffsets(path: path, tensor: name, reason: "expected [begin, end], found \(offsets)")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, begin <= end else {
            throw .badOffsets(path: path, tensor: name, reason: "[\(begin), \(end)] is not a range")
        }
        guard end <= dataBytes else {
            throw .badOffsets(path: path, tensor: name, reason: "end \(end) is past the \(dataBytes)-byte data section")
        }
        guard end - begin == byteCount else {
            throw .badOffsets(path: path, tensor: name,
                              reason: "\(end - begin) bytes but \(dtype.rawValue) \(shape) needs \(byteCount)")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, dataRange: begin..<end)
    }

    /// A one-line reason from a decoding error.
    private static func describe(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "not valid JSON" }
        switch decoding {
        case .dataCorrupted(let context), .typeMismatch(_, let context), .valueNotFound(_, let context),
             .keyNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default:
            return "not valid JSON"
        }
    }

    /// A header value: a tensor description or the metadata map.
    private enum RawEntry: Decodable {
        case tensor(dtype: String, shape: [Int], offsets: [Int])
        case metadata([String: String])

        private enum Keys: String, CodingKey { case dtype, shape, data_offsets }

        init(from decoder: any Decoder) throws {
            if let map = try? decoder.singleValueContainer().decode([String: String].self) {
                self = .metadata(map)
                return
            }
            let container = try decoder.container(keyedBy: Keys.self)
            self = .tensor(dtype: try container.decode(String.self, forKey: .dtype),
                           shape: try container.decode([Int].self, forKey: .shape),
                           offsets: try container.decode([Int].self, forKey: .data_offsets))
        }
    }
}
