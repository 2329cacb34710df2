/// Token sequences right-padded to a common length T, with the masks and next-token targets
/// the forward pass and the loss need. Built on the host, uploaded per step.
public struct TokenBatch: Sendable, Equatable {
    /// B.
    public let batchSize: Int
    /// T, the longest sequence's length.
    public let tokens: Int
    /// Unpadded length of each sequence [B].
    public let lengths: [Int]
    /// Token ids [B, T]; padding holds `padTokenId`.
    public let ids: [Int32]
    /// 1 for real tokens, 0 for padding [B, T].
    public let mask: [Int32]
    /// Next-token targets [B, T]: ids[b, t+1] where that token is real, else -1.
    public let targets: [Int32]

    /// Validates and pads `sequences` (every id in 0..<vocabSize, no sequence longer than
    /// `maxLength`, none empty).
    public init(sequences: [[Int]], vocabSize: Int, maxLength: Int, padTokenId: Int) throws(ModelError) {
        guard !sequences.isEmpty else { throw .emptyBatch("no sequences") }
        for (s, sequence) in sequences.enumerated() {
            guard !sequence.isEmpty else { throw .emptyBatch("sequence \(s) has no tokens") }
            guard sequence.count <= maxLength else {
                throw .sequenceTooLong(sequence: s, length: sequence.count, maximum: maxLength)
            }
            if let p = sequence.firstIndex(where: { $0 < 0 || $0 >= vocabSize }) {
                throw .tokenOutOfRange(sequence: s, position: p, id: sequence[p], vocab: vocabSize)
            }
        }
        let t = sequences.map(\.count).max()!
        let pad = (0..<vocabSize).contains(padTokenId) ? Int32(padTokenId) : 0
        var ids = [Int32](repeating: pad, count: sequences.count * t)
        var mask = [Int32](repeating: 0, count: sequences.count * t)
        var targets = [Int32](repeating: -1, count: sequences.count * t)
        for (b, sequence) in sequences.enumerated() {
            for (i, id) in sequence.enumerated() {
                ids[b * t + i] = Int32(id)
                mask[b * t + i] = 1
                if i > 0 { targets[b * t + i - 1] = Int32(id) }
            }
        }
        batchSize = sequences.count
        tokens = t
        lengths = sequences.map(\.count)
        self.ids = ids
        self.mask = mask
        self.targets = targets
    }

    /// Number of positions with a target (Σ (length − 1)).
    public var targetCount: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    /// The batch's sequences `times` times over, in order ([times·B, T]).
    public func repeated(_ times: Int) -> TokenBatch {
        TokenBatch(batchSize: batchSize * times, tokens: tokens,
                   lengths: Array([[Int]](repeating: lengths, count: times).joined()),
                   ids: Array([[Int32]](repeating: ids, count: times).joined()),
                   mask: Array([[Int32]](repeating: mask, count: times).joined()),
                   targets: Array([[Int32]](repeating: targets, count: times).joined()))
    }

    private init(batchSize: Int, tokens: Int, lengths: [Int], ids: [Int32], mask: [Int32], targets: [Int32]) {
        self.batchSize = batchSize
        self.tokens = tokens
        self.lengths = lengths
        self.ids = ids
        self.mask = mask
        self.targets = targets
    }
}
