#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A block of host memory that ZOTune owns or maps.
///
/// Ownership: the buffer owns its bytes and releases them in `deinit` (free for allocated
/// memory, munmap for scratch files). Pointers obtained from it are valid only while the
/// buffer is alive; keep a reference to the buffer for as long as you use them.
// @unchecked Sendable: the address, size and storage are `let`s set in init; the bytes are not guarded —
// whoever shares a buffer orders its writes and reads (stream events, a synchronize) or keeps them disjoint.
public final class HostBuffer: @unchecked Sendable {
    /// How the bytes were obtained, which decides how they are released.
    public enum Storage: Sendable {
        /// `posix_memalign`ed, released with `free`.
        case allocated
        /// A shared read-write `mmap` of an unlinked scratch file, released with `munmap`.
        case scratchFile(directory: String)
    }

    /// First byte. Aligned to 64 bytes for allocated storage, to the page for scratch files.
    public let baseAddress: UnsafeMutableRawPointer
    /// Size in bytes.
    public let byteCount: Int
    public let storage: Storage

    /// Allocates `byteCount` bytes aligned to 64 bytes, zero-filled.
    public init(byteCount: Int) throws(HostMemoryError) {
        self.baseAddress = try Self.allocateZeroed(byteCount)
        self.byteCount = byteCount
        self.storage = .allocated
    }

    /// `byteCount` zero bytes in `storage`: memory, or a scratch file in a directory — created,
    /// given its blocks up front (so a full disk is an error here, not a fault later), mapped
    /// shared and unlinked at once, so the kernel pages it to that disk and nothing is left
    /// behind, even after a crash. The file route lets the host copy exceed physical memory.
    public convenience init(byteCount: Int, in storage: HostStorage) throws(HostMemoryError) {
        switch storage {
        case .memory: try self.init(byteCount: byteCount)
        case .files(let directory): try self.init(scratchIn: directory, byteCount: byteCount)
        }
    }

    private init(scratchIn directory: String, byteCount: Int) throws(HostMemoryError) {
        var template = Array((directory + "/zotune-parameters-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        guard fd >= 0 else { throw .cannotOpen(path: directory, errno: errno) }
        defer { close(fd) }
        unlink(path)
        let size = max(byteCount, 1)
        let status = posix_fallocate(fd, 0, off_t(size))
        guard status == 0 else { throw .cannotReserve(path: directory, byteCount: byteCount, errno: status) }
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let mapped, mapped != MAP_FAILED else { throw .cannotMap(path: path, errno: errno) }
        self.baseAddress = mapped
        self.byteCount = byteCount
        self.storage = .scratchFile(directory: directory)
    }

    private static func allocateZeroed(_ byteCount: Int) throws(HostMemoryError) -> UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        let size = max(byteCount, 64)
        guard byteCount >= 0, posix_memalign(&pointer, 64, size) == 0, let pointer else {
            throw .allocationFailed(byteCount: byteCount)
        }
        memset(pointer, 0, size)
        return pointer
    }

    deinit {
        switch storage {
        case .allocated: free(baseAddress)
        case .scratchFile: munmap(baseAddress, max(byteCount, 1))
        }
    }

    /// The bytes as Float32 elements (`byteCount / 4` of them).
    public var floats: UnsafeMutablePointer<Float> {
        baseAddress.assumingMemoryBound(to: Float.self)
    }
}

/// Where parameter groups keep their host bytes.
public enum HostStorage: Sendable, Equatable {
    /// Anonymous memory.
    case memory
    /// Scratch files in a directory, mapped shared (see `HostBuffer.init(byteCount:in:)`).
    case files(directory: String)
}

/// Failures of host memory: allocation and file mapping.
public enum HostMemoryError: Error, CustomStringConvertible, Equatable {
    case allocationFailed(byteCount: Int)
    case cannotOpen(path: String, errno: Int32)
    case notARegularFile(path: String)
    case cannotMap(path: String, errno: Int32)
    case cannotReserve(path: String, byteCount: Int, errno: Int32)
    case readFailed(path: String, offset: Int, errno: Int32)
    /// The file ended at `found` bytes where `expected` were there when it was opened.
    case fileShrank(path: String, expected: Int, found: Int)

    public var description: String {
        switch self {
        case .allocationFailed(let n): "cannot allocate \(ByteCount(n)) of host memory\(AddressSpace.limitNote)"
        case .cannotOpen(let path, let code): "\(path): cannot open (\(String(cString: strerror(code))))"
        case .notARegularFile(let path): "\(path): not a regular file"
        case .cannotMap(let path, let code): "\(path): cannot map (\(String(cString: strerror(code))))"
        case .cannotReserve(let path, let n, let code): "\(path): cannot reserve \(n) bytes for parameters (\(String(cString: strerror(code))))"
        case .readFailed(let path, let offset, let code): "\(path): read failed at byte \(offset) (\(String(cString: strerror(code))))"
        case .fileShrank(let path, let expected, let found):
            "\(path): the file changed while being read: it ends at byte \(found), \(expected) were expected"
        }
    }
}
