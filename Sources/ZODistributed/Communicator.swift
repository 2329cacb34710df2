/// The ranks of a distributed run and the one collective ZOTune needs: every rank's bytes to
/// every rank. Failure to hear from a rank within a timeout is an error naming it, never a hang.
public protocol Communicator: AnyObject {
    /// This process's rank, 0..<size.
    var rank: Int { get }
    var size: Int { get }

    /// Every rank's bytes, indexed by rank (this rank's `bytes` included); `sizes[r]` is the
    /// byte count rank r sends. Throws `DistributedError.rankTimeout` naming the ranks not heard
    /// from within `timeout` seconds; `during` says what the exchange was for.
    func allGather(_ bytes: [UInt8], sizes: [Int], timeout: Double, during: String) throws(DistributedError) -> [[UInt8]]
}

extension Communicator {
    /// Every rank's `values` (each rank sending `counts[r]` of them).
    public func allGather<T: BitwiseCopyable>(_ values: [T], counts: [Int], timeout: Double, during: String)
        throws(DistributedError) -> [[T]] {
        let stride = MemoryLayout<T>.stride
        let bytes = values.withUnsafeBytes { Array($0) }
        return try allGather(bytes, sizes: counts.map { $0 * stride }, timeout: timeout, during: during).map { received in
            received.withUnsafeBytes { raw in
                (0..<received.count / stride).map { raw.loadUnaligned(fromByteOffset: $0 * stride, as: T.self) }
            }
        }
    }
}
