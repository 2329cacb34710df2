import CMPI
#if canImport(Glibc)
import Glibc
#endif

/// Open MPI's libmpi, opened at run time: `zotune` builds and runs as one process on machines
/// without MPI, and `mpirun` / `srun` launches find it where the loader does (or at
/// $ZOTUNE_MPI_LIB).
// @unchecked Sendable: immutable after init — `table` (C function pointers and MPI handles, filled by
// `zo_mpi_load` before init) is a `let`; MPI is called through `MPICommunicator`, one thread at a time.
public final class MPILibrary: @unchecked Sendable {
    let table: zo_mpi
    /// The file opened.
    public let path: String
    /// MPI_Get_library_version's first line ("Open MPI v4.1.4, …").
    public let version: String

    /// The names tried, in order.
    public static var candidates: [String] {
        (getenv("ZOTUNE_MPI_LIB").flatMap { String(validatingCString: $0) }.map { [$0] } ?? []) + ["libmpi.so.40", "libmpi.so"]
    }

    /// The library, loaded once; the error says what was tried.
    public static let shared: Result<MPILibrary, DistributedError> = {
        var reasons: [String] = []
        for candidate in candidates {
            var table = zo_mpi()
            var error = [CChar](repeating: 0, count: 512)
            if zo_mpi_load(candidate, &table, &error, error.count) == 0 { return .success(MPILibrary(table: table, path: candidate)) }
            reasons.append(String(nulTerminated: error))
        }
        return .failure(.mpi("Open MPI's libmpi was not found (install openmpi-bin, or set ZOTUNE_MPI_LIB): "
                             + reasons.joined(separator: "; ")))
    }()

    private init(table: zo_mpi, path: String) {
        self.table = table
        self.path = path
        var buffer = [CChar](repeating: 0, count: Int(ZO_MPI_MAX_LIBRARY_VERSION_STRING) + 1)
        var length: Int32 = 0
        _ = table.Get_library_version(&buffer, &length)
        version = String(nulTerminated: buffer).split(separator: ",").first.map(String.init) ?? "unknown version"
    }
}
