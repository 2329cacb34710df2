import ZOCore

/// A safetensors file with its validated header, read with positioned reads.
///
/// Tensor data is read on request, so a file that is truncated or replaced while in use
/// gives an error naming it, never a fault. The descriptor stays open as long as this
/// object: a file deleted meanwhile is still read whole.
public final class SafetensorsFile: Sendable {
    public let path: String
    public let header: SafetensorsHeader
    private let file: ReadOnlyFile

    /// Opens and validates `path`.
    public init(path: String) throws(SafetensorsError) {
        do {
            file = try ReadOnlyFile(path: path)
        } catch {
            throw .cannotRead(path: path, reason: error.description)
        }
        self.path = path
        let size = file.byteCount
        guard size >= 8 else { throw .truncated(path: path, reason: "\(size) bytes, fewer than the 8-byte header length") }
        do {
            let length = try file.bytes(count: 8, at: 0).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
            guard length <= UInt64(size - 8), length <= UInt64(SafetensorsHeader.maximumHeaderBytes) else {
                throw SafetensorsError.headerTooLarge(path: path, headerBytes: length, fileBytes: size)
            }
            let prefix = try file.bytes(count: 8 + Int(length), at: 0)
            header = try prefix.withUnsafeBytes { (bytes) throws(SafetensorsError) in
                try SafetensorsHeader(parsing: bytes, fileSize: size, path: path)
            }
        } catch let error as SafetensorsError {
            throw error
        } catch {
            throw .cannotRead(path: path, reason: "\(error)")
        }
    }

    /// Tensor names, sorted.
    public var tensorNames: [String] { header.tensors.keys.sorted() }

    /// The header entry for `name`, or nil.
    public func info(_ name: String) -> SafetensorsTensorInfo? { header.tensors[name] }

    /// The raw bytes of tensor `name`.
    public func bytes(_ name: String) throws(SafetensorsError) -> [UInt8] {
        guard let info = header.tensors[name] else { throw .missingTensor(path: path, tensor: name) }
        do {
            return try file.bytes(count: info.dataRange.count, at: header.dataStart + info.dataRange.lowerBound)
        } catch {
            throw .cannotRead(path: path, reason: "tensor '\(name)': \(error.description)")
        }
    }

    /// Checks, from the header alone, that tensor `name` is here with `shape` and a dtype
    /// `readFloats` converts; returns its header entry.
    @discardableResult
    public func checkTensor(_ name: String, shape: [Int]) throws(SafetensorsError) -> SafetensorsTensorInfo {
        guard let info = header.tensors[name] else { throw .missingTensor(path: path, tensor: name) }
        guard info.shape == shape else { throw .wrongShape(path: path, tensor: name, expected: shape, found: info.shape) }
        guard [.f32, .f16, .bf16].contains(info.dtype) else {
            throw .unsupportedDType(path: path, tensor: name, dtype: info.dtype.rawValue)
        }
        return info
    }

    /// Converts tensor `name` (F32, F16 or BF16) to Float32 into `destination`, after checking
    /// that its shape is `expectedShape`.
    public func readFloats(_ name: String, expectedShape: [Int], into destination: UnsafeMutablePointer<Float>) throws(SafetensorsError) {
        let info = try checkTensor(name, shape: expectedShape)
        let count = info.elementCount
        switch info.dtype {
        case .f32:
            do {
                try file.read(into: destination, count: count * 4, at: header.dataStart + info.dataRange.lowerBound)
            } catch {
                throw .cannotRead(path: path, reason: "tensor '\(name)': \(error.description)")
            }
        default:  // F16 or BF16, as checkTensor allows no other
            let widen = info.dtype == .f16 ? Half.f16ToFloat : Half.bf16ToFloat
            try bytes(name).withUnsafeBytes { bytes in
                for i in 0..<count { destination[i] = widen(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            }
        }
    }
}
