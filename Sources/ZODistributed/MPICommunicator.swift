import CMPI
import ZOCore
#if canImport(Glibc)
import Glibc
#endif

/// MPI_COMM_WORLD of an `mpirun` or `srun` launch, through Open MPI loaded at run time.
///
/// The all-gather is point to point (a nonblocking send to and receive from every other rank)
/// polled with MPI_Test, so that a rank that never sends is noticed after the timeout and named,
/// where a blocking MPI_Allgather would wait forever. For the few hundred bytes of a ZO step
/// this costs latency only: K − 1 messages each way per rank.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private let mpi: zo_mpi
    /// Exchanges so far: each exchange's messages carry its number as their tag.
    private var exchanges = 0

    /// Initializes MPI (MPI_THREAD_SERIALIZED: calls come from one thread at a time).
    public init(library: MPILibrary) throws(DistributedError) {
        mpi = library.table
        var provided: Int32 = 0
        guard mpi.Init_thread(nil, nil, Int32(ZO_MPI_THREAD_SERIALIZED), &provided) == 0 else {
            throw .mpi("MPI_Init_thread failed")
        }
        guard provided >= Int32(ZO_MPI_THREAD_SERIALIZED) else {
            throw .mpi("this MPI offers thread level \(provided), ZOTune needs MPI_THREAD_SERIALIZED")
        }
        // Failed transfers come back as codes (a dead or unreachable peer is named, not fatal).
        _ = mpi.Comm_set_errhandler(mpi.world, mpi.errorsReturn)
        var rank: Int32 = 0, size: Int32 = 0
        _ = mpi.Comm_rank(mpi.world, &rank)
        _ = mpi.Comm_size(mpi.world, &size)
        self.rank = Int(rank)
        self.size = Int(size)
    }

    public func allGather(_ bytes: [UInt8], sizes: [Int], timeout: Double, during: String) throws(DistributedError) -> [[UInt8]] {
        precondition(sizes.count == size && sizes[rank] == bytes.count, "this rank's byte count is sizes[rank]")
        let tag = Int32(exchanges % 32_000)
        exchanges += 1
        let peers = (0..<size).filter { $0 != rank }
        // Freed once every request has completed; after a failure they stay (MPI may still write
        // into them until the process ends, which the caller's abort brings soon).
        let outgoing = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        let incoming = sizes.map { UnsafeMutableRawBufferPointer.allocate(byteCount: max($0, 1), alignment: 16) }
        outgoing.copyBytes(from: bytes)
        // receives[r], sends[r]: the open requests with rank r (nil once complete).
        var receives = [UnsafeMutableRawPointer?](repeating: nil, count: size)
        var sends = [UnsafeMutableRawPointer?](repeating: nil, count: size)
        var failures: [(peer: Int, code: Int32)] = []
        func check(_ code: Int32, _ peer: Int) {
            if code != 0 { failures.append((peer, code)) }
        }
        for peer in peers {
            check(mpi.Irecv(incoming[peer].baseAddress, Int32(sizes[peer]), mpi.byte, Int32(peer), tag, mpi.world, &receives[peer]), peer)
        }
        for peer in peers {
            check(mpi.Isend(outgoing.baseAddress, Int32(bytes.count), mpi.byte, Int32(peer), tag, mpi.world, &sends[peer]), peer)
        }
        let start = monotonicSeconds()
        var pause: useconds_t = 20
        while true {
            for peer in peers {
                check(test(&receives[peer]), peer)
                check(test(&sends[peer]), peer)
            }
            if let failure = failures.first {
                throw .rankUnreachable(rank: rank, peers: Array(Set(failures.map(\.peer))).sorted(), during: during,
                                       reason: errorString(failure.code))
            }
            let open = peers.filter { receives[$0] != nil || sends[$0] != nil }
            if open.isEmpty { break }
            let waited = monotonicSeconds() - start
            if waited > timeout {
                // The peers not heard from; if every part arrived, those not taking this rank's.
                let silent = peers.filter { receives[$0] != nil }
                throw .rankTimeout(rank: rank, silent: silent.isEmpty ? open : silent, seconds: waited, during: during)
            }
            usleep(pause)
            pause = min(pause * 2, 2_000)
        }
        let received = (0..<size).map { $0 == rank ? bytes : Array(incoming[$0].prefix(sizes[$0])) }
        outgoing.deallocate()
        incoming.forEach { $0.deallocate() }
        return received
    }

    /// MPI_Test on an open request (a completed or failed one becomes nil); MPI's error code.
    private func test(_ request: inout UnsafeMutableRawPointer?) -> Int32 {
        guard request != nil else { return 0 }
        var done: Int32 = 0
        let code = mpi.Test(&request, &done, nil)
        if done != 0 || code != 0 { request = nil }
        return code
    }

    /// MPI's words for an error code.
    private func errorString(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(ZO_MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        _ = mpi.Error_string(code, &text, &length)
        return String(nulTerminated: text)
    }

    /// Ends every rank of the launch with `code` (after this rank reported why).
    public func abort(code: Int32) -> Never {
        _ = mpi.Abort(mpi.world, code)
        exit(code)
    }

    /// MPI_Finalize: every rank calls it once, after its last exchange.
    public func finish() {
        _ = mpi.Finalize()
    }
}
