#if canImport(Glibc)
import Glibc
#endif

/// A file written to `path + ".tmp"` and renamed over `path` on `commit`, so that readers
/// see the old file or the complete new one, never a part. Errors (a full disk included)
/// name the path.
public final class AtomicFileWriter {
    public let path: String
    private let temporaryPath: String
    private var fd: Int32

    /// Creates (truncates) the temporary file.
    public init(path: String) throws(FileWriteError) {
        self.path = path
        temporaryPath = path + ".tmp"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .failed(path: path, reason: String(cString: strerror(errno))) }
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temporaryPath)
        }
    }

    /// Appends `bytes`, retrying short writes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileWriteError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .failed(path: path, reason: String(cString: strerror(errno)))
            }
            done += n
        }
    }

    /// Appends the bytes of `array`.
    public func write(_ array: [UInt8]) throws(FileWriteError) {
        let result: Result<Void, FileWriteError> = array.withUnsafeBytes { bytes in
            Result { () throws(FileWriteError) in try write(bytes) }
        }
        try result.get()
    }

    /// Flushes the file to disk, renames it over `path` and flushes the folder.
    public func commit() throws(FileWriteError) {
        guard fsync(fd) == 0 else { throw .failed(path: path, reason: String(cString: strerror(errno))) }
        close(fd)
        fd = -1
        guard rename(temporaryPath, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw .failed(path: path, reason: reason)
        }
        let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let folderFD = open(folder.isEmpty ? "/" : folder, O_RDONLY | O_DIRECTORY)
        if folderFD >= 0 {
            fsync(folderFD)
            close(folderFD)
        }
    }
}

/// A file could not be written.
public enum FileWriteError: Error, CustomStringConvertible, Equatable {
    case failed(path: String, reason: String)

    public var description: String {
        switch self {
        case .failed(let path, let reason): "\(path): cannot write: \(reason)"
        }
    }
}
