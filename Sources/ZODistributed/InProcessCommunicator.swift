import Synchronization
import ZOCore
#if canImport(Glibc)
import Glibc
#endif

/// Ranks as threads of one process, exchanging through shared memory: the same collective as
/// `MPICommunicator` (timeouts included) for tests and for trying a layout without MPI.
public final class InProcessCommunicator: Communicator, Sendable {
    public let rank: Int
    public let size: Int
    private let board: Board
    private let exchanges = Atomic<Int>(0)

    /// The posted bytes of every open exchange: [exchange: [rank: bytes]], and how many ranks
    /// have read each.
    private final class Board: Sendable {
        let posts = Mutex<[Int: (bytes: [Int: [UInt8]], reads: Int)]>([:])
    }

    private init(rank: Int, size: Int, board: Board) {
        self.rank = rank
        self.size = size
        self.board = board
    }

    /// `size` communicators, one per rank, to hand to `size` threads.
    public static func group(size: Int) -> [InProcessCommunicator] {
        let board = Board()
        return (0..<size).map { InProcessCommunicator(rank: $0, size: size, board: board) }
    }

    public func allGather(_ bytes: [UInt8], sizes: [Int], timeout: Double, during: String) throws(DistributedError) -> [[UInt8]] {
        precondition(sizes.count == size && sizes[rank] == bytes.count, "this rank's byte count is sizes[rank]")
        let exchange = exchanges.add(1, ordering: .relaxed).oldValue
        board.posts.withLock { $0[exchange, default: ([:], 0)].bytes[rank] = bytes }
        let start = monotonicSeconds()
        while true {
            let received: [[UInt8]]? = board.posts.withLock { posts in
                guard let entry = posts[exchange], entry.bytes.count == size else { return nil }
                posts[exchange]!.reads += 1
                if entry.reads + 1 == size { posts[exchange] = nil }
                return (0..<size).map { entry.bytes[$0]! }
            }
            if let received {
                precondition(zip(received, sizes).allSatisfy { $0.count == $1 }, "a rank sent another size than agreed")
                return received
            }
            let waited = monotonicSeconds() - start
            if waited > timeout {
                let heard = board.posts.withLock { Set($0[exchange].map { Array($0.bytes.keys) } ?? []) }
                throw .rankTimeout(rank: rank, silent: (0..<size).filter { !heard.contains($0) }, seconds: waited, during: during)
            }
            usleep(50)
        }
    }
}
