#if canImport(Glibc)
import Glibc
#endif

/// Runs external programs (pip, tar) with posix_spawn and waits for them.
public enum Subprocess {
    /// The exit status and the last part of the combined output of a finished program.
    public struct Outcome: Sendable {
        public let status: Int32
        public let output: String
    }

    /// Runs `arguments[0]` (searched in PATH) with the rest as its arguments; standard input
    /// is /dev/null and standard output and error go to a temporary file whose last 4 KiB are
    /// returned. Throws only if the program cannot be started.
    public static func run(_ arguments: [String]) throws(SubprocessError) -> Outcome {
        precondition(!arguments.isEmpty)
        var template = Array("/tmp/zotune-subprocess-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw .cannotStart(arguments[0], reason: String(cString: strerror(errno))) }
        let outputPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { close(fd); unlink(outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fd, 1)
        posix_spawn_file_actions_adddup2(&actions, fd, 2)

        var pid: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw .cannotStart(arguments[0], reason: String(cString: strerror(spawned))) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}

        let size = lseek(fd, 0, SEEK_END)
        let start = max(0, size - 4096)
        lseek(fd, start, SEEK_SET)
        var buffer = [UInt8](repeating: 0, count: Int(size - start))
        let count = buffer.isEmpty ? 0 : read(fd, &buffer, buffer.count)
        let output = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        let exited = status & 0x7F == 0
        return Outcome(status: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F), output: output)
    }
}

/// A program could not be started.
public enum SubprocessError: Error, CustomStringConvertible {
    case cannotStart(String, reason: String)

    public var description: String {
        switch self {
        case .cannotStart(let program, let reason): "cannot run \(program): \(reason)"
        }
    }
}
