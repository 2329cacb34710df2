#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's address space against its limit (`ulimit -v`, RLIMIT_AS): what sizes the CPU
/// arena by default and what allocation errors name.
public enum AddressSpace {
    /// The limit in bytes; nil when unlimited.
    public static var limit: Int? {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_AS.rawValue)
        #else
        let resource = RLIMIT_AS
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(Int.max) else { return nil }
        return Int(limit.rlim_cur)
    }

    /// The mapped address space now (/proc/self/statm's size) in bytes; 0 where unknown.
    public static var inUse: Int {
        let descriptor = open("/proc/self/statm", O_RDONLY)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = read(descriptor, &bytes, bytes.count)
        let text = String(decoding: bytes.prefix(max(0, count)), as: UTF8.self)
        guard let pages = text.split(separator: " ").first.flatMap({ Int($0) }) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// " (the address-space limit, ulimit -v, is N)" when a limit is set, else "".
    public static var limitNote: String {
        limit.map { " (the address-space limit, ulimit -v, is \(ByteCount($0)))" } ?? ""
    }
}
