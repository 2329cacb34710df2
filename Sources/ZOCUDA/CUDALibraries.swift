#if canImport(Glibc)
import Glibc
#endif
import CCUDA
import ZOCore

/// Where ZOTune looks for the CUDA libraries at run time (nothing CUDA is linked at build
/// time): the folders in `$ZOTUNE_CUDA_LIBS` (colon-separated), then the dynamic loader's own
/// search (LD_LIBRARY_PATH, ldconfig), then the `nvidia/*/lib` folders of Python
/// environments (where PyTorch's wheels and `pip install nvidia-cuda-nvrtc` put them).
public struct CUDASearchPath: Sendable {
    /// Folders named by `$ZOTUNE_CUDA_LIBS`.
    public var explicitFolders: [String]
    /// `nvidia/*/lib` folders found in Python environments.
    public var pythonFolders: [String]

    /// The search path of this process's environment. Finding Python folders runs
    /// `python3` once to read its `sys.path` when `$VIRTUAL_ENV` / `$CONDA_PREFIX` give none.
    public static func current() -> CUDASearchPath {
        let explicit = (environment("ZOTUNE_CUDA_LIBS") ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
        var sites: [String] = []
        for prefix in [environment("VIRTUAL_ENV"), environment("CONDA_PREFIX")].compactMap({ $0 }) {
            sites += FileSystem.names(in: prefix + "/lib").filter { $0.hasPrefix("python3") }.map { prefix + "/lib/" + $0 + "/site-packages" }
        }
        if let outcome = try? Subprocess.run(["python3", "-c", "import sys; print('\\n'.join(p for p in sys.path if p))"]),
           outcome.status == 0 {
            sites += outcome.output.split(separator: "\n").map(String.init)
        }
        var seen = Set<String>()
        let python = sites.flatMap { site in FileSystem.names(in: site + "/nvidia").sorted().map { site + "/nvidia/" + $0 + "/lib" } }
            .filter { FileSystem.isFolder($0) == true && seen.insert($0).inserted }
        return CUDASearchPath(explicitFolders: explicit, pythonFolders: python)
    }

    public init(explicitFolders: [String], pythonFolders: [String]) {
        self.explicitFolders = explicitFolders
        self.pythonFolders = pythonFolders
    }

    /// Candidate paths for a library known by `names` (most preferred first): each name in
    /// every explicit folder, then the bare name (the loader's search), then the Python
    /// folders.
    func candidates(_ names: [String]) -> [String] {
        names.flatMap { name in explicitFolders.map { $0 + "/" + name } }
            + names
            + names.flatMap { name in pythonFolders.map { $0 + "/" + name } }
    }
}

/// A library that was found and loaded, or why not.
///
/// Unchecked Sendable: immutable once made; `Table` is a C struct of function pointers.
public enum LibraryStatus<Table>: @unchecked Sendable {
    case loaded(path: String, table: Table)
    /// Every candidate tried, with the loader's message for each.
    case missing(tried: [(path: String, error: String)])

    public var table: Table? {
        if case .loaded(_, let table) = self { table } else { nil }
    }

    public var path: String? {
        if case .loaded(let path, _) = self { path } else { nil }
    }
}

/// The CUDA driver, NVRTC and cuBLAS, each loaded if found.
///
/// Unchecked Sendable: every stored property is a `let` set in init (tables of C function pointers).
public final class CUDALibraries: @unchecked Sendable {
    public let driver: LibraryStatus<zo_cuda_driver>
    public let nvrtc: LibraryStatus<zo_nvrtc>
    public let cublas: LibraryStatus<zo_cublas>
    public let searchPath: CUDASearchPath

    /// Library file names, newest first.
    static let driverNames = ["libcuda.so.1"]
    static let nvrtcNames = ["libnvrtc.so.13", "libnvrtc.so.12"]
    static let cublasNames = ["libcublas.so.13", "libcublas.so.12"]

    /// Loads whatever can be found along `searchPath`; never fails (see each status).
    public init(searchPath: CUDASearchPath = .current()) {
        self.searchPath = searchPath
        driver = Self.load(searchPath.candidates(Self.driverNames), zo_cuda_load_driver)
        nvrtc = Self.load(searchPath.candidates(Self.nvrtcNames), zo_cuda_load_nvrtc)
        cublas = Self.load(searchPath.candidates(Self.cublasNames), zo_cuda_load_cublas)
    }

    /// The shared libraries of this process, loaded on first use.
    public static let shared = CUDALibraries()

    private static func load<Table>(_ candidates: [String], _ loader: (UnsafePointer<CChar>, UnsafeMutablePointer<Table>,
                                                                     UnsafeMutablePointer<CChar>, Int) -> Int32) -> LibraryStatus<Table> {
        var tried: [(String, String)] = []
        for path in candidates {
            // A path with a folder must exist; a bare name is the loader's to find.
            if path.contains("/"), access(path, F_OK) != 0 { continue }
            let table = UnsafeMutablePointer<Table>.allocate(capacity: 1)
            defer { table.deallocate() }
            var message = [CChar](repeating: 0, count: 512)
            if loader(path, table, &message, message.count) == 0 { return .loaded(path: path, table: table.pointee) }
            tried.append((path, String(nulTerminated: message)))
        }
        return .missing(tried: tried)
    }
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
