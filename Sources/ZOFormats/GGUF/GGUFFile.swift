import ZOCore

/// One tensor's entry in a GGUF header.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// GGML order: dims[0] varies fastest (the reverse of PyTorch's shape).
    public let dims: [Int]
    public let type: GGMLType
    /// Byte offset from the start of the data section.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
    /// Row-major shape as PyTorch / Hugging Face write it (dims reversed).
    public var shape: [Int] { dims.reversed() }
}

/// A GGUF file (versions 2 and 3): metadata, tensor infos, and dequantization of tensor
/// data to Float32. Every count and length is checked against the file's size; data is read
/// with positioned reads, so a file that shrinks while in use gives an error, not a fault.
public final class GGUFFile: Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// File offset of the data section.
    public let dataStart: Int
    private let byName: [String: Int]
    private let file: ReadOnlyFile

    /// Opens and parses `path`.
    public init(path: String) throws(GGUFError) {
        do {
            file = try ReadOnlyFile(path: path)
        } catch {
            throw .cannotRead(path: path, reason: error.description)
        }
        self.path = path
        let header = try Self.readHeader(file)
        version = header.version
        metadataKeys = header.keys
        metadata = header.metadata
        tensors = header.tensors
        dataStart = header.dataStart
        byName = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    /// Parses the header from a prefix of the file, four times longer after each prefix
    /// that ends inside it, until it parses or the prefix is the whole file.
    private static func readHeader(_ file: ReadOnlyFile) throws(GGUFError) -> GGUFHeader {
        var prefix = min(file.byteCount, 1 << 20)
        while true {
            let bytes: [UInt8]
            do {
                bytes = try file.bytes(count: prefix, at: 0)
            } catch {
                throw .cannotRead(path: file.path, reason: error.description)
            }
            let parsed = bytes.withUnsafeBytes { image in
                Result { () throws(GGUFError) in try GGUFHeader(bytes: image, fileSize: file.byteCount, path: file.path) }
            }
            switch parsed {
            case .success(let header): return header
            case .failure(let error):
                guard case .truncated = error, prefix < file.byteCount else { throw error }
                prefix = min(file.byteCount, prefix * 4)
            }
        }
    }

    /// The tensor called `name`, or nil.
    public func info(_ name: String) -> GGUFTensorInfo? { byName[name].map { tensors[$0] } }

    /// Checks, from the header alone, that tensor `name` is here with row-major `shape` and a
    /// type `readFloats` dequantizes; returns its tensor info.
    @discardableResult
    public func checkTensor(_ name: String, shape: [Int]) throws(GGUFError) -> GGUFTensorInfo {
        guard let info = info(name) else { throw .missingTensor(path: path, tensor: name) }
        guard info.shape == shape else { throw .wrongShape(path: path, tensor: name, expected: shape, found: info.shape) }
        guard info.type.isDequantizable else { throw .unsupportedTensorType(path: path, tensor: name, type: info.type.name) }
        return info
    }

    /// Dequantizes tensor `name` into `destination` after checking that its row-major shape
    /// is `expectedShape`.
    public func readFloats(_ name: String, expectedShape: [Int], into destination: UnsafeMutablePointer<Float>) throws(GGUFError) {
        let info = try checkTensor(name, shape: expectedShape)
        let raw = try bytes(name)
        raw.withUnsafeBytes { Dequantize.run(info.type, source: $0.baseAddress!, count: info.elementCount, into: destination) }
    }

    /// The raw bytes of tensor `name`.
    public func bytes(_ name: String) throws(GGUFError) -> [UInt8] {
        guard let info = info(name) else { throw .missingTensor(path: path, tensor: name) }
        do {
            return try file.bytes(count: info.byteCount, at: dataStart + info.offset)
        } catch {
            throw .cannotRead(path: path, reason: "tensor '\(name)': \(error.description)")
        }
    }

    // MARK: Typed metadata access

    /// An integer value, or throws naming the key.
    public func int(_ key: String) throws(GGUFError) -> Int {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let int = value.int else { throw .wrongKeyType(path: path, key: key, expected: "an integer") }
        return int
    }

    /// A floating-point value, or throws naming the key.
    public func double(_ key: String) throws(GGUFError) -> Double {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let double = value.double else { throw .wrongKeyType(path: path, key: key, expected: "a number") }
        return double
    }

    /// A string value, or throws naming the key.
    public func string(_ key: String) throws(GGUFError) -> String {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let string = value.string else { throw .wrongKeyType(path: path, key: key, expected: "a string") }
        return string
    }

    /// An array of strings, or throws naming the key.
    public func strings(_ key: String) throws(GGUFError) -> [String] {
        try array(key, of: "strings", \.string)
    }

    /// An array of integers, or throws naming the key.
    public func ints(_ key: String) throws(GGUFError) -> [Int] {
        try array(key, of: "integers", \.int)
    }

    /// An array whose every element `element` converts, or throws naming the key.
    private func array<T>(_ key: String, of kind: String, _ element: (GGUFValue) -> T?) throws(GGUFError) -> [T] {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let array = value.array else { throw .wrongKeyType(path: path, key: key, expected: "an array") }
        var result: [T] = []
        result.reserveCapacity(array.count)
        for item in array {
            guard let converted = element(item) else { throw .wrongKeyType(path: path, key: key, expected: "an array of \(kind)") }
            result.append(converted)
        }
        return result
    }
}

/// The parsed header of a GGUF image, validated against its size.
public struct GGUFHeader: Sendable {
    public let version: UInt32
    public let keys: [String]
    public let metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    public let dataStart: Int

    /// The largest tensor count and dimension count accepted.
    static let maximumTensors = 1 << 20
    static let maximumDims = 4

    /// Parses the header at the start of `bytes`, the whole file of `path` (named in errors)
    /// or its first bytes when `fileSize` gives the whole size.
    public init(bytes: UnsafeRawBufferPointer, fileSize: Int? = nil, path: String) throws(GGUFError) {
        var cursor = ByteCursor(bytes: bytes, fileSize: fileSize ?? bytes.count, path: path)
        guard bytes.count >= 4, try cursor.u32() == 0x4655_4747 else { throw .badMagic(path: path) }
        version = try cursor.u32()
        guard version == 2 || version == 3 else { throw .unsupportedVersion(path: path, version: version) }
        let tensorCount = try cursor.u64()
        let keyCount = try cursor.u64()
        guard tensorCount <= UInt64(Self.maximumTensors), tensorCount <= UInt64(cursor.remaining / 24) else {
            throw .absurdCount(path: path, what: "tensor count", count: tensorCount)
        }
        guard keyCount <= UInt64(cursor.remaining / 12) else {
            throw .absurdCount(path: path, what: "metadata count", count: keyCount)
        }

        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<Int(keyCount) {
            let key = try cursor.string()
            let rawType = try cursor.u32()
            guard let type = GGUFValueType(rawValue: rawType) else { throw .unknownValueType(path: path, key: key, type: rawType) }
            let value = try cursor.value(type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else { throw .duplicate(path: path, name: key) }
            keys.append(key)
        }

        var infos: [(name: String, dims: [Int], type: GGMLType, offset: UInt64)] = []
        var seen = Set<String>()
        for _ in 0..<Int(tensorCount) {
            let name = try cursor.string()
            let dimCount = try cursor.u32()
            guard dimCount <= UInt32(Self.maximumDims) else {
                throw .badTensor(path: path, tensor: name, reason: "\(dimCount) dimensions (at most \(Self.maximumDims))")
            }
            var dims: [Int] = []
            for _ in 0..<Int(dimCount) {
                let dim = try cursor.u64()
                guard dim <= UInt64(Int32.max) else { throw .badTensor(path: path, tensor: name, reason: "dimension \(dim) is absurd") }
                dims.append(Int(dim))
            }
            let rawType = try cursor.u32()
            guard let type = GGMLType(rawValue: rawType) else { throw .unknownTensorType(path: path, tensor: name, type: rawType) }
            let offset = try cursor.u64()
            guard seen.insert(name).inserted else { throw .duplicate(path: path, name: name) }
            infos.append((name, dims, type, offset))
        }

        let alignment = metadata["general.alignment"]?.int ?? 32
        guard alignment > 0, alignment <= 1 << 16, alignment & (alignment - 1) == 0 else {
            throw .badTensor(path: path, tensor: "general.alignment", reason: "alignment \(alignment) is not a power of two")
        }
        let dataStart = (cursor.offset + alignment - 1) / alignment * alignment
        let size = fileSize ?? bytes.count
        let dataBytes = size - min(dataStart, size)

        var tensors: [GGUFTensorInfo] = []
        for info in infos {
            var elements = 1
            for dim in info.dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow, product <= 1 << 40 else {
                    throw .badTensor(path: path, tensor: info.name, reason: "shape \(info.dims) is absurd")
                }
                elements = product
            }
            let perBlock = info.type.block.elements
            guard elements % perBlock == 0 else {
                throw .badTensor(path: path, tensor: info.name, reason: "\(elements) elements is not a multiple of \(info.type.name)'s block of \(perBlock)")
            }
            let byteCount = info.type.byteCount(elements: elements)
            guard info.offset % UInt64(alignment) == 0 else {
                throw .badTensor(path: path, tensor: info.name, reason: "offset \(info.offset) is not aligned to \(alignment)")
            }
            guard info.offset <= UInt64(dataBytes), UInt64(byteCount) <= UInt64(dataBytes) - info.offset else {
                throw .badTensor(path: path, tensor: info.name, reason: "data [\(info.offset), +\(byteCount)) runs past the end of the file")
            }
            tensors.append(GGUFTensorInfo(name: info.name, dims: info.dims, type: info.type, offset: Int(info.offset), byteCount: byteCount))
        }
        self.keys = keys
        self.metadata = metadata
        self.tensors = tensors
        self.dataStart = dataStart
    }
}

/// A bounds-checked little-endian reader over a file image.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    /// The whole file's size: `bytes` may hold only its beginning.
    let fileSize: Int
    let path: String
    private(set) var offset = 0

    init(bytes: UnsafeRawBufferPointer, fileSize: Int, path: String) {
        self.bytes = bytes
        self.fileSize = fileSize
        self.path = path
    }

    /// Bytes left in the file (absurd counts are judged against these).
    var remaining: Int { fileSize - offset }

    mutating func take(_ count: Int, _ what: String) throws(GGUFError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bytes.count - offset else { throw .truncated(path: path, offset: offset, reason: "\(what) needs \(count) bytes") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    mutating func load<T: FixedWidthInteger>(_ type: T.Type) throws(GGUFError) -> T {
        T(littleEndian: try take(MemoryLayout<T>.size, "\(T.self)").loadUnaligned(as: T.self))
    }

    mutating func u32() throws(GGUFError) -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws(GGUFError) -> UInt64 { try load(UInt64.self) }

    mutating func string() throws(GGUFError) -> String {
        let length = try u64()
        guard length <= UInt64(remaining) else { throw .absurdCount(path: path, what: "string length", count: length) }
        return String(decoding: try take(Int(length), "string"), as: UTF8.self)
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(UInt8.self))
        case .int8: return .int8(try load(Int8.self))
        case .uint16: return .uint16(try load(UInt16.self))
        case .int16: return .int16(try load(Int16.self))
        case .uint32: return .uint32(try load(UInt32.self))
        case .int32: return .int32(try load(Int32.self))
        case .uint64: return .uint64(try load(UInt64.self))
        case .int64: return .int64(try load(Int64.self))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self)))
        case .bool: return .bool(try load(UInt8.self) != 0)
        case .string: return .string(try string())
        case .array:
            let rawType = try u32()
            guard let elementType = GGUFValueType(rawValue: rawType) else { throw .unknownValueType(path: path, key: key, type: rawType) }
            guard depth < 4 else { throw .absurdCount(path: path, what: "array nesting of '\(key)'", count: UInt64(depth)) }
            let count = try u64()
            guard count <= UInt64(remaining / elementType.minimumSize) else {
                throw .absurdCount(path: path, what: "array length of '\(key)'", count: count)
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { items.append(try value(elementType, key: key, depth: depth + 1)) }
            return .array(items)
        }
    }
}
