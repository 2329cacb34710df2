import Synchronization

/// A pair of adjacent symbols.
struct SymbolPair: Hashable, Sendable {
    let left: String
    let right: String
}

/// How a vocabulary spells text.
enum SymbolAlphabet: Sendable, Equatable {
    /// GPT-2's byte-level characters, one symbol per byte.
    case byteLevel
    /// Unicode scalars as they are (SentencePiece-style vocabularies); a symbol the vocabulary
    /// lacks becomes its bytes' `<0xXX>` tokens with `byteFallback`, else the unknown token.
    case characters(byteFallback: Bool)
}

/// BPE over one pre-tokenized piece: start from one symbol per byte (or per character),
/// repeatedly merge the adjacent pair of lowest rank, then look the symbols up. A pair's rank
/// is its merge's position, or for vocabularies without merges (llama.cpp's SentencePiece
/// files) the merged token's position by descending score. Results are cached per piece.
///
/// Symbols are compared as UTF-8 bytes: Swift's String equality is canonical ("e" + U+0301
/// equals "é"), a tokenizer's is not.
final class BPEModel: Sendable {
    /// A symbol's UTF-8 bytes.
    typealias Symbol = [UInt8]

    struct Pair: Hashable {
        let left: Symbol
        let right: Symbol
    }

    let vocabulary: [Symbol: Int]
    let ranks: [Pair: Int]
    /// Rank by merged token, when the vocabulary has scores instead of merges.
    let tokenRanks: [Symbol: Int]
    let unknownId: Int?
    let alphabet: SymbolAlphabet
    /// A piece that is a token is that token, merges or not (Llama 3's `ignore_merges`).
    let ignoresMerges: Bool
    /// Consecutive unknown tokens become one (SentencePiece's `fuse_unk`).
    let fusesUnknown: Bool
    /// Ids by piece, keyed by its UTF-8 bytes (not by String: "é" and "e" + U+0301 are equal Strings).
    private let cache = Mutex<[[UInt8]: [Int]]>([:])

    /// `tokens` by id (the first of equal spellings keeps it); "" (a hole in the ids, never a
    /// piece) is skipped, so a sparse vocabulary costs its entries, not its largest id.
    init(tokens: [String], merges: [SymbolPair], unknownId: Int?, alphabet: SymbolAlphabet = .byteLevel,
         tokenRanks: [String: Int] = [:], ignoresMerges: Bool = false, fusesUnknown: Bool = false) {
        var vocabulary: [Symbol: Int] = [:]
        for id in tokens.indices where !tokens[id].isEmpty {
            let key = Array(tokens[id].utf8)
            if vocabulary[key] == nil { vocabulary[key] = id }
        }
        self.vocabulary = vocabulary
        var ranks: [Pair: Int] = [:]
        for (rank, pair) in merges.enumerated() {
            let key = Pair(left: Array(pair.left.utf8), right: Array(pair.right.utf8))
            if ranks[key] == nil { ranks[key] = rank }
        }
        self.ranks = ranks
        var byToken: [Symbol: Int] = [:]
        for (token, rank) in tokenRanks { byToken[Array(token.utf8)] = rank }
        self.tokenRanks = byToken
        self.unknownId = unknownId
        self.alphabet = alphabet
        self.ignoresMerges = ignoresMerges
        self.fusesUnknown = fusesUnknown
    }

    /// Token ids of one piece of text.
    func encode(_ piece: Substring) -> [Int] {
        let key = Array(piece.utf8)
        if let cached = cache.withLock({ $0[key] }) { return cached }
        var symbols: [Symbol] = alphabet == .byteLevel ? ByteLevel.symbols(piece) : piece.unicodeScalars.map { Array(String($0).utf8) }
        if ignoresMerges, let id = vocabulary[Array(symbols.joined())] {
            return [id]
        }
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<symbols.count - 1 {
                if let rank = rank(symbols[i], symbols[i + 1]), rank < best?.rank ?? .max { best = (rank, i) }
            }
            guard let best else { break }
            let pair = (symbols[best.index], symbols[best.index + 1])
            var merged: [Symbol] = []
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
        let ids = lookUp(symbols)
        cache.withLock { cache in
            if cache.count > 100_000 { cache.removeAll() }
            cache[key] = ids
        }
        return ids
    }

    private func rank(_ left: Symbol, _ right: Symbol) -> Int? {
        ranks[Pair(left: left, right: right)] ?? (tokenRanks.isEmpty ? nil : tokenRanks[left + right])
    }

    /// The ids of the final symbols, with byte fallback and fused unknowns.
    private func lookUp(_ symbols: [Symbol]) -> [Int] {
        var ids: [Int] = []
        var lastWasUnknown = false
        for symbol in symbols {
            if let id = vocabulary[symbol] {
                ids.append(id)
                lastWasUnknown = false
                continue
            }
            if case .characters(byteFallback: true) = alphabet {
                let bytes = symbol.map { vocabulary[Array(ByteFallback.token($0).utf8)] }
                if bytes.allSatisfy({ $0 != nil }) {
                    ids += bytes.compactMap { $0 }
                    lastWasUnknown = false
                    continue
                }
            }
            guard let unknownId else { continue }
            if !(fusesUnknown && lastWasUnknown) { ids.append(unknownId) }
            lastWasUnknown = true
        }
        return ids
    }
}

/// SentencePiece's byte tokens `<0x00>`…`<0xFF>`.
enum ByteFallback {
    static func token(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"
    }

    /// The byte a `<0xXX>` token stands for, or nil.
    static func byte(_ token: String) -> UInt8? {
        guard token.utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return nil }
        return UInt8(token.dropFirst(3).dropLast(), radix: 16)
    }
}
