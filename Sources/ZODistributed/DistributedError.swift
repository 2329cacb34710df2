/// Why a distributed run cannot start or go on.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
    /// MPI is missing or failed (what was tried, or MPI's own words).
    case mpi(String)
    /// The ranks cannot be laid out as asked (batch, streams and ranks that do not fit).
    case layout(String)
    /// Ranks run with something different (a binary, model, setting), found before training.
    case mismatch(what: String, ranks: [Int], detail: String)
    /// Ranks that sent nothing within the timeout, as seen from `rank`.
    case rankTimeout(rank: Int, silent: [Int], seconds: Double, during: String)
    /// MPI reported a failed transfer with these ranks (a dead process, a lost connection).
    case rankUnreachable(rank: Int, peers: [Int], during: String, reason: String)
    /// The replicas' parameters differ: the first tensor that does, and the ranks whose copy
    /// differs from rank 0's.
    case replicasDiffer(step: Int, tensor: String, ranks: [Int])

    public var description: String {
        switch self {
        case .mpi(let why): return "MPI: \(why)"
        case .layout(let why): return "parallel layout: \(why)"
        case .mismatch(let what, let ranks, let detail):
            return "rank\(ranks.count == 1 ? "" : "s") \(ranks.map(String.init).joined(separator: ", ")) run with a different "
                + "\(what) than rank 0 (\(detail)); every rank must run the same binary, model, data and options"
        case .rankTimeout(let rank, let silent, let seconds, let during):
            return "rank \(rank): no word from rank\(silent.count == 1 ? "" : "s") \(silent.map(String.init).joined(separator: ", ")) "
                + "for \(Int(seconds)) s during \(during) (killed or hung?); stopping (--rank-timeout sets the wait)"
        case .rankUnreachable(let rank, let peers, let during, let reason):
            return "rank \(rank): lost rank\(peers.count == 1 ? "" : "s") \(peers.map(String.init).joined(separator: ", ")) during \(during) "
                + "(\(reason)); stopping"
        case .replicasDiffer(let step, let tensor, let ranks):
            return "replicas differ after step \(step): tensor \(tensor) on rank\(ranks.count == 1 ? "" : "s") "
                + "\(ranks.map(String.init).joined(separator: ", ")) is not rank 0's (different kernels or hardware on some ranks?)"
        }
    }
}
