#if canImport(Glibc)
import Glibc
#endif
import ZOCore

/// Ends the process with `status`, stdout and stderr flushed. Under an address-space limit
/// (`ulimit -v`) through `_exit`, so that library exit handlers do not run: OpenBLAS's joins its
/// worker threads, and a worker that could not allocate its buffer under the limit retries
/// forever, so that the process would hang after its last line. Without a limit through `exit`
/// (the CUDA stand-in, for one, reports at exit).
func endProcess(_ status: Int32) -> Never {
    fflush(nil)  // every stdio stream
    if AddressSpace.limit != nil { _exit(status) }
    Glibc.exit(status)
}
