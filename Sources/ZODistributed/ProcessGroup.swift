import ZOCore
import ZOModels
import ZOOptimizers
import ZOTraining

/// One rank's view of a distributed ZO run (`TrainingGroup`): its shard of every batch and its
/// streams of every step (`ParallelLayout`), the step's exchange of per-example losses, and the
/// replica checks. What crosses the wire per step: from each rank its shard's example weights,
/// its losses on its streams, its token count and whether it was asked to stop — 8·(2 + n·(1 +
/// S_r)) bytes for n examples and S_r streams —, never a parameter.
///
/// The losses of the whole batch are put together in batch order on every rank, so every
/// rank computes the same coefficients and applies the same update as one process would: the
/// replicas stay identical without exchanging weights. `verifyReplicas` checks that they do.
public final class ProcessGroup: TrainingGroup {
    public let communicator: any Communicator
    public let layout: ParallelLayout
    /// Seconds to wait for another rank's part of an exchange.
    public let timeout: Double
    /// The wait of the exchanges before training (`agree`, the first replica check), at least an
    /// hour: ranks load the model and rank 0 hashes it for its checkpoints, which can take long.
    public var startTimeout: Double { max(timeout, 3600) }
    public let verifyEvery: Int
    /// Fault injection for tests: before the replica check after this step, one bit of this
    /// rank's copy of a tensor flips.
    public var corruptBeforeCheck: Int?
    /// Polled at each step's exchange: whether this rank wants the run to stop (Ctrl-C); the
    /// exchange carries it, so that every rank stops after the same step (`stopRequested`).
    public var stopSignal: () -> Bool = { false }
    /// Whether some rank asked to stop in the last step's exchange.
    public private(set) var stopRequested = false
    private var localTokens = 0
    public private(set) var stepTokens = 0
    public private(set) var shardShare = 1.0
    /// Bytes this rank sent and received in exchanges so far, and the seconds it spent in them
    /// (waiting for the slowest rank included).
    public private(set) var bytesSent = 0, bytesReceived = 0
    public private(set) var exchangeSeconds = 0.0

    public init(communicator: any Communicator, layout: ParallelLayout, timeout: Double, verifyEvery: Int) throws(DistributedError) {
        guard layout.size == communicator.size else {
            throw .layout("\(layout) is \(layout.size) ranks, but \(communicator.size) were launched")
        }
        self.communicator = communicator
        self.layout = layout
        self.timeout = timeout
        self.verifyEvery = verifyEvery
    }

    public var rank: Int { communicator.rank }

    public func shard(_ batch: [Int]) -> [Int] { layout.shard(batch, rank: rank) }

    public func evaluates(stream s: Int, of count: Int) -> Bool {
        layout.streams(of: count, group: layout.directionIndex(rank: rank)).contains(s)
    }

    public func willStep(tokens: Int) { localTokens = tokens }

    /// Each rank sends [tokens, stop, its examples' weights, its examples' sums on each of its streams];
    /// every rank rebuilds [stream][example of the batch] from them.
    public func gather(_ local: [[ExampleLoss]?]) throws -> [[ExampleLoss]] {
        let count = local.count
        guard let n = local.lazy.compactMap({ $0?.count }).first else { preconditionFailure("every rank evaluates a stream") }
        let mine = layout.streams(of: count, group: layout.directionIndex(rank: rank))
        var payload = [Double(localTokens), stopSignal() ? 1 : 0] + local[mine.lowerBound]!.map(\.weight)
        for s in mine { payload += local[s]!.map(\.sum) }
        let counts = (0..<communicator.size).map { r in
            2 + n + n * layout.streams(of: count, group: layout.directionIndex(rank: r)).count
        }
        let start = monotonicSeconds()
        let received = try communicator.allGather(payload, counts: counts, timeout: timeout, during: "a step's exchange of losses")
        exchangeSeconds += monotonicSeconds() - start
        bytesSent += payload.count * 8 * (communicator.size - 1)
        bytesReceived += (counts.reduce(0, +) - payload.count) * 8
        let unset = [ExampleLoss](repeating: ExampleLoss(sum: .nan, weight: .nan), count: n * layout.dataRanks)
        var streams = [[ExampleLoss]](repeating: unset, count: count)
        stepTokens = 0
        stopRequested = received.contains { $0[1] != 0 }
        let weight = { (values: [Double]) in values[2..<2 + n].reduce(0, +) }
        shardShare = weight(payload) / received.enumerated().filter { layout.directionIndex(rank: $0.offset) == 0 }
            .reduce(0) { $0 + weight($1.element) }
        for (r, values) in received.enumerated() {
            let first = layout.dataIndex(rank: r) * n, group = layout.directionIndex(rank: r)
            if group == 0 { stepTokens += Int(values[0]) }
            for (j, s) in layout.streams(of: count, group: group).enumerated() {
                for e in 0..<n { streams[s][first + e] = ExampleLoss(sum: values[2 + n + j * n + e], weight: values[2 + e]) }
            }
        }
        return streams
    }

    /// Floats per message of `sum`: 256 MiB, well within MPI's 32-bit counts.
    static let sumChunk = 1 << 26

    /// Every rank's `values` gathered (in chunks of `sumChunk`) and added in rank order. Each
    /// rank receives K − 1 copies: for a hybrid run's first-order gradient (G floats) that is
    /// 4·G·(K − 1) bytes a step, against about 8·G for a ring all-reduce — the price of a sum
    /// that is the same bits on every rank and needs no reduction support from the MPI library.
    public func sum(_ values: [Float]) throws -> [Float] {
        var total = [Float](repeating: 0, count: values.count)
        for start in stride(from: 0, to: values.count, by: Self.sumChunk) {
            let end = min(values.count, start + Self.sumChunk)
            let parts = try communicator.allGather(Array(values[start..<end]), counts: everyRank(end - start), timeout: timeout,
                                                   during: "the first-order gradients' sum")
            bytesSent += (end - start) * 4 * (communicator.size - 1)
            bytesReceived += (end - start) * 4 * (communicator.size - 1)
            for part in parts {
                for i in 0..<part.count { total[start + i] += part[i] }
            }
        }
        return total
    }

    /// Checksums of every tensor (after `copyParametersToHost`) from every rank, compared with
    /// rank 0's. `step` nil: before training (then a difference means different model files).
    public func verifyReplicas(_ runner: any ModelRunner, step: Int?) throws {
        try runner.copyParametersToHost()
        if let corrupt = corruptBeforeCheck, corrupt == step {
            let group = runner.model.groups[runner.model.groups.count / 2], spec = group.layout.specs[0]
            group.values(spec)[0] = Float(bitPattern: group.values(spec)[0].bitPattern ^ 1)
        }
        // A LoRA run's adapter, beside its frozen model.
        let tensors = ReplicaChecksum.tensors(of: runner.model)
            + (try (runner.adapter as? LoRAState).map { ReplicaChecksum.tensors(of: try $0.peftAdapter()) } ?? [])
        let checksums = try communicator.allGather(tensors.map(\.checksum), counts: everyRank(tensors.count),
                                                   timeout: step == nil ? startTimeout : timeout, during: "the replica check")
        for (t, tensor) in tensors.enumerated() {
            let differing = (1..<communicator.size).filter { checksums[$0][t] != checksums[0][t] }
            guard differing.isEmpty else {
                guard let step else {
                    throw DistributedError.mismatch(what: "model", ranks: differing, detail: "tensor \(tensor.name) differs")
                }
                throw DistributedError.replicasDiffer(step: step, tensor: tensor.name, ranks: differing)
            }
        }
    }

    /// Compares `facts` (name → value: the binary's checksum, the options, the data) with rank
    /// 0's; throws naming the first fact and the ranks that differ.
    public func agree(on facts: [(name: String, value: String)]) throws {
        let text = Array(facts.map { $0.name + "=" + $0.value }.joined(separator: "\n").utf8)
        let sizes = try communicator.allGather([text.count], counts: everyRank(1), timeout: startTimeout, during: "the start-up check")
            .map { $0[0] }
        let all = try communicator.allGather(text, sizes: sizes, timeout: startTimeout, during: "the start-up check")
        let lines = all.map { String(decoding: $0, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) }
        for (i, fact) in facts.enumerated() {
            let differing = (1..<communicator.size).filter { lines[$0].count <= i || lines[$0][i] != lines[0][i] }
            guard differing.isEmpty else {
                let theirs = lines[differing[0]].count > i ? "has \(lines[differing[0]][i])" : "has nothing"
                throw DistributedError.mismatch(what: fact.name, ranks: differing,
                                                detail: "rank 0 has \(lines[0][i]), rank \(differing[0]) \(theirs)")
            }
        }
    }

    /// `count` for every rank (an exchange in which every rank sends as much).
    private func everyRank(_ count: Int) -> [Int] { Array(repeating: count, count: communicator.size) }
}
