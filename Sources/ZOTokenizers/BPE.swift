import Synchronization

/// A pair of adjacent symbols.
struct SymbolPair: Hashable, Sendable {
    let left: String
    let right: String
}

/// Byte-level BPE over one pre-tokenized piece: start from one symbol per byte, repeatedly
/// merge the adjacent pair with the lowest merge rank, then look the symbols up. Results are
/// cached per piece.
final class BPEModel: Sendable {
    let vocabulary: [String: Int]
    let ranks: [SymbolPair: Int]
    let unknownId: Int?
    private let cache = Mutex<[String: [Int]]>([:])

    init(vocabulary: [String: Int], merges: [SymbolPair], unknownId: Int?) {
        self.vocabulary = vocabulary
        var ranks: [SymbolPair: Int] = [:]
        for (rank, pair) in merges.enumerated() where ranks[pair] == nil { ranks[pair] = rank }
        self.ranks = ranks
        self.unknownId = unknownId
    }

    /// Token ids of one piece of raw text.
    func encode(_ piece: Substring) -> [Int] {
        let key = String(piece)
        if let cached = cache.withLock({ $0[key] }) { return cached }
        var symbols = ByteLevel.symbols(piece)
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<symbols.count - 1 {
                if let rank = ranks[SymbolPair(left: symbols[i], right: symbols[i + 1])], rank < best?.rank ?? .max {
                    best = (rank, i)
                }
            }
            guard let best else { break }
            let pair = (symbols[best.index], symbols[best.index + 1])
            var merged: [String] = []
            merged.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count, symbols[i] == pair.0, symbols[i + 1] == pair.1 {
                    merged.append(pair.0 + pair.1)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        let ids = symbols.compactMap { vocabulary[$0] ?? unknownId }
        cache.withLock { cache in
            if cache.count > 100_000 { cache.removeAll() }
            cache[key] = ids
        }
        return ids
    }
}
