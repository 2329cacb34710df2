#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A regular file opened for positioned reads (`pread`), for parsing files that may change
/// under us: a file that shrinks while read gives a short read, which becomes an error
/// naming the file, where a shrunken mapping would kill the process with SIGBUS.
///
/// Ownership: the object owns its descriptor and closes it in `deinit`.
public final class ReadOnlyFile: Sendable {
    public let path: String
    /// The size when opened.
    public let byteCount: Int
    private let descriptor: Int32

    /// Opens `path`, which must be a regular file.
    public init(path: String) throws(HostMemoryError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .cannotOpen(path: path, errno: code)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .notARegularFile(path: path)
        }
        self.path = path
        self.descriptor = fd
        self.byteCount = Int(info.st_size)
    }

    deinit { close(descriptor) }

    /// Reads exactly `count` bytes at `offset` into `destination`; a file that ends early
    /// (it shrank since it was opened) or a failing read throws.
    public func read(into destination: UnsafeMutableRawPointer, count: Int, at offset: Int) throws(HostMemoryError) {
        var done = 0
        while done < count {
            let got = pread(descriptor, destination + done, count - done, off_t(offset + done))
            if got < 0, errno == EINTR { continue }
            guard got > 0 else {
                throw got < 0 ? .readFailed(path: path, offset: offset + done, errno: errno)
                              : .fileShrank(path: path, expected: offset + count, found: offset + done)
            }
            done += got
        }
    }

    /// `count` bytes at `offset`.
    public func bytes(count: Int, at offset: Int) throws(HostMemoryError) -> [UInt8] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        defer { buffer.deallocate() }
        try read(into: buffer.baseAddress!, count: count, at: offset)
        return Array(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }
}
