/// How K ranks share a ZO step: a grid of `dataRanks` × `directionRanks`. Rank r holds the
/// data shard r / directionRanks (a contiguous part of every batch) and the direction group
/// r % directionRanks (a contiguous run of the step's streams: MeZO's + and − passes, a
/// population's perturbations). Every rank walks every stream's perturbation pass and
/// evaluates only its own streams on its own examples.
public struct ParallelLayout: Sendable, Equatable, CustomStringConvertible {
    public let dataRanks: Int
    public let directionRanks: Int

    public init(dataRanks: Int, directionRanks: Int) {
        precondition(dataRanks >= 1 && directionRanks >= 1)
        self.dataRanks = dataRanks
        self.directionRanks = directionRanks
    }

    /// K.
    public var size: Int { dataRanks * directionRanks }

    public var description: String { "\(dataRanks) data × \(directionRanks) direction ranks" }

    /// `--parallel` for `ranks` processes: `data` (every rank a data shard), `directions` (every
    /// rank a direction group), `data,directions` (directions over the smallest factor of K
    /// above 1, data over the rest), or `data=A,directions=M` with A·M = K.
    public static func parse(_ text: String, ranks: Int) throws(DistributedError) -> ParallelLayout {
        // data, directions: absent (nil), named without a count (.some(nil)), or with one.
        var data: Int??, directions: Int??
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "=", maxSplits: 1).map(String.init)
            let count = pieces.count == 2 ? Int(pieces[1]).flatMap { $0 >= 1 ? $0 : nil } : nil
            switch pieces.first {
            case "data" where data == nil && (pieces.count == 1 || count != nil): data = .some(count)
            case "directions" where directions == nil && (pieces.count == 1 || count != nil): directions = .some(count)
            default: throw .layout("--parallel \(text): say data, directions, data,directions or data=A,directions=M")
            }
        }
        let layout: ParallelLayout
        switch (data, directions) {
        case (.some(let a), nil): layout = ParallelLayout(dataRanks: a ?? ranks, directionRanks: 1)
        case (nil, .some(let m)): layout = ParallelLayout(dataRanks: 1, directionRanks: m ?? ranks)
        case (.some(let a?), .some(let m?)): layout = ParallelLayout(dataRanks: a, directionRanks: m)
        case (.some(let a?), .some(nil)): layout = ParallelLayout(dataRanks: a, directionRanks: max(1, ranks / a))
        case (.some(nil), .some(let m?)): layout = ParallelLayout(dataRanks: max(1, ranks / m), directionRanks: m)
        default:
            let factor = (2...max(2, ranks)).first { ranks % $0 == 0 } ?? 1
            layout = ParallelLayout(dataRanks: max(1, ranks / factor), directionRanks: min(factor, ranks))
        }
        guard layout.size == ranks else {
            throw .layout("--parallel \(text) makes \(layout.size) ranks (\(layout)), but \(ranks) were launched")
        }
        return layout
    }

    /// Rank r's data shard.
    public func dataIndex(rank: Int) -> Int { rank / directionRanks }

    /// Rank r's direction group.
    public func directionIndex(rank: Int) -> Int { rank % directionRanks }

    /// Rank r's examples of `batch`: its data shard's contiguous part.
    public func shard(_ batch: [Int], rank: Int) -> [Int] {
        let n = batch.count / dataRanks, d = dataIndex(rank: rank)
        return Array(batch[d * n..<(d + 1) * n])
    }

    /// The streams direction group `group` evaluates, of a step with `count` streams.
    public func streams(of count: Int, group: Int) -> Range<Int> {
        count * group / directionRanks..<count * (group + 1) / directionRanks
    }

    /// Refuses a layout that does not fit the run: shards of equal size, a stream for every
    /// direction group.
    public func check(batchSize: Int, streams: Int) throws(DistributedError) {
        guard batchSize % dataRanks == 0 else {
            throw .layout("a batch of \(batchSize) examples does not split into \(dataRanks) equal data shards (\(self)); "
                          + "make --batch-size (and the training set) a multiple of \(dataRanks)")
        }
        guard directionRanks <= streams else {
            throw .layout("\(directionRanks) direction ranks but only \(streams) forward passes a step to share (\(self)); "
                          + "use fewer direction ranks or more perturbations")
        }
    }
}
