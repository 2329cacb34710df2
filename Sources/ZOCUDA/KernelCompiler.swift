#if canImport(Glibc)
import Glibc
#endif
import CCUDA
import ZOCore

/// Compiles CUDA C kernel sources with NVRTC to CUBIN (machine code) for one GPU
/// architecture, caching the result on disk under a hash of the source, the options, the
/// NVRTC library and version and the architecture, so each kernel compiles once per machine.
///
/// CUBIN rather than PTX: PTX from an NVRTC newer than the driver is rejected, machine code
/// for the detected sm_XY is not.
///
/// Unchecked Sendable: immutable; NVRTC's functions may be called from any thread.
public struct KernelCompiler: @unchecked Sendable {
    public let nvrtc: zo_nvrtc
    /// NVRTC's (major, minor) version.
    public let version: (major: Int, minor: Int)
    /// The NVRTC library's path: with the file's size and time, part of the cache key, so that two
    /// NVRTCs of one version (a real one and the CPU stand-in, or a rebuilt stand-in) never share
    /// compiled kernels.
    public let library: String
    /// Where compiled kernels are kept; nil: no cache.
    public let cacheDirectory: String?

    public init(nvrtc: zo_nvrtc, library: String, cacheDirectory: String?) throws(CUDAError) {
        self.nvrtc = nvrtc
        self.library = library
        var major: Int32 = 0, minor: Int32 = 0
        guard nvrtc.nvrtcVersion(&major, &minor) == 0 else { throw .nvrtc(call: "nvrtcVersion", message: "failed") }
        version = (Int(major), Int(minor))
        self.cacheDirectory = cacheDirectory
    }

    /// The options every kernel is compiled with for `architecture` (e.g. 90 for sm_90).
    /// `--fmad=false` keeps a·b + c as two roundings, as the CPU kernels compute it.
    public static func options(architecture: Int) -> [String] {
        ["--gpu-architecture=sm_\(architecture)", "--std=c++17", "--fmad=false", "-default-device"]
    }

    /// The CUBIN of `source` for `architecture`, from the cache or compiled now (and cached);
    /// `fresh` skips the cache (for a cached image the driver refused).
    public func cubin(_ source: KernelSource, architecture: Int, fresh: Bool = false) throws(CUDAError) -> [UInt8] {
        let options = Self.options(architecture: architecture)
        let key = cacheKey(source, options: options)
        let path = cacheDirectory.map { $0 + "/" + source.name + "-sm_\(architecture)-" + key.prefix(16) + ".cubin" }
        if !fresh, let path, let cached = try? ReadOnlyFile(path: path), cached.byteCount > 0,
           let bytes = try? cached.bytes(count: cached.byteCount, at: 0) {
            return bytes
        }
        let compiled = try compile(source, options: options)
        if let path, let directory = cacheDirectory { store(compiled, at: path, in: directory) }
        return compiled
    }

    private func compile(_ source: KernelSource, options: [String]) throws(CUDAError) -> [UInt8] {
        var program: zo_nvrtc_program?
        try check(nvrtc.nvrtcCreateProgram(&program, source.code, source.name + ".cu", 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let compiled = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            nvrtc.nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress)
        }
        guard compiled == 0 else { throw .compilation(kernel: source.name, options: options, log: log(program)) }
        var size = 0
        try check(nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize")
        var cubin = [CChar](repeating: 0, count: size)
        try check(nvrtc.nvrtcGetCUBIN(program, &cubin), "nvrtcGetCUBIN")
        return cubin.map { UInt8(bitPattern: $0) }
    }

    private func log(_ program: zo_nvrtc_program?) -> String {
        var size = 0
        guard nvrtc.nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "(no log)" }
        var text = [CChar](repeating: 0, count: size)
        guard nvrtc.nvrtcGetProgramLog(program, &text) == 0 else { return "(no log)" }
        return String(nulTerminated: text)
    }

    private func check(_ result: zo_nvrtc_result, _ call: String) throws(CUDAError) {
        guard result != 0 else { return }
        throw .nvrtc(call: call, message: nvrtc.nvrtcGetErrorString(result).map { String(cString: $0) } ?? "error \(result)")
    }

    private func cacheKey(_ source: KernelSource, options: [String]) -> String {
        var hasher = SHA256Hasher()
        hasher.update(Array((["nvrtc \(version.major).\(version.minor) \(library) \(Self.fileIdentity(library))"] + options + [source.code]).joined(separator: "\u{0}").utf8))
        return TextFormat.hex(hasher.finalize())
    }

    /// The size and modification time of the file at `path` (links followed): a rebuilt library
    /// at the same path compiles afresh.
    static func fileIdentity(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "" }
        return "\(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }

    /// Writes the cache file through a temporary name (a failure only costs a recompile).
    private func store(_ bytes: [UInt8], at path: String, in directory: String) {
        FileSystem.makeFolders(directory)
        let temporary = path + ".tmp\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        if written == bytes.count { rename(temporary, path) } else { unlink(temporary) }
    }
}

/// A kernel source: CUDA C with `extern "C"` entry points, no headers.
public struct KernelSource: Sendable, Equatable {
    public let name: String
    public let code: String
    /// The `extern "C"` functions it defines.
    public let entryPoints: [String]

    public init(name: String, code: String, entryPoints: [String]) {
        self.name = name
        self.code = code
        self.entryPoints = entryPoints
    }
}
