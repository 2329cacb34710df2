#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Set by the first Ctrl-C (SIGINT) or SIGTERM; a second one ends the process at once.
let interrupted = Atomic<Bool>(false)

/// Lets a long command stop cleanly on Ctrl-C: the first signal only sets `interrupted`.
func installInterruptHandler() {
    let handler: @convention(c) (Int32) -> Void = { signal in
        interrupted.store(true, ordering: .relaxed)
        Glibc.signal(signal, SIG_DFL)
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    // A parent may have started us with these signals blocked; take them.
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
}

/// Makes writes past a file-size limit (ulimit -f) fail with EFBIG, which the writers report
/// naming the file, instead of killing the process with SIGXFSZ.
func ignoreFileSizeSignal() {
    signal(SIGXFSZ, SIG_IGN)
}
