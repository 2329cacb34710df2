/// A BPE tokenizer in stages: special tokens matched first in the raw text, then for each
/// stretch between them a normalizer (optional), a pre-tokenizer and BPE per piece —
/// byte-level (GPT-2, OPT, SmolLM2, Qwen, Llama 3: encode-then-decode returns the input
/// exactly) or over characters with byte fallback (SentencePiece's: Llama 2, Mistral, Phi-3);
/// decoding maps token strings back to bytes.
public final class Tokenizer: Sendable {
    /// Id -> token string (byte-level characters, or a special token's text).
    public let tokens: [String]
    /// Special tokens (control and added tokens) by text, matched whole in the input.
    public let specialTokens: [String: Int]
    public let bosTokenId: Int?
    public let eosTokenId: Int?
    public let padTokenId: Int?
    /// Whether encoding a prompt starts with BOS (GGUF `tokenizer.ggml.add_bos_token`).
    public let addsBOS: Bool
    /// The model's chat template (Jinja source), if it has one.
    public let chatTemplate: String?
    let model: BPEModel
    let normalizer: (any Normalizer)?
    let preTokenizer: any PreTokenizer
    /// SentencePiece decoding drops the space its "▁" prefix added at the start.
    let stripsLeadingSpace: Bool
    private let specialsByLength: [String]

    /// How a tokenizer's vocabulary is used beyond GPT-2's byte-level BPE.
    struct Spelling {
        var alphabet = SymbolAlphabet.byteLevel
        var tokenRanks: [String: Int] = [:]
        var ignoresMerges = false
        var fusesUnknown = false
        var stripsLeadingSpace = false
    }

    init(tokens: [String], merges: [SymbolPair], specialTokens: [String: Int], normalizer: (any Normalizer)? = nil,
         preTokenizer: any PreTokenizer, spelling: Spelling = Spelling(), bos: Int?, eos: Int?, pad: Int?, unknown: Int?,
         addsBOS: Bool, chatTemplate: String?) {
        self.tokens = tokens
        model = BPEModel(tokens: tokens, merges: merges, unknownId: unknown, alphabet: spelling.alphabet,
                         tokenRanks: spelling.tokenRanks, ignoresMerges: spelling.ignoresMerges, fusesUnknown: spelling.fusesUnknown)
        self.normalizer = normalizer
        stripsLeadingSpace = spelling.stripsLeadingSpace
        self.specialTokens = specialTokens
        specialsByLength = specialTokens.keys.sorted { ($0.utf8.count, $0) > ($1.utf8.count, $1) }
        self.preTokenizer = preTokenizer
        bosTokenId = bos
        eosTokenId = eos
        padTokenId = pad
        self.addsBOS = addsBOS
        self.chatTemplate = chatTemplate
    }

    /// Vocabulary size V.
    public var count: Int { tokens.count }

    /// Token ids of `text`; special token texts in it become their ids. With
    /// `addSpecialTokens`, BOS is prepended when the tokenizer asks for it.
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int] {
        var ids: [Int] = addSpecialTokens && addsBOS ? bosTokenId.map { [$0] } ?? [] : []
        var rest = text[...]
        while !rest.isEmpty {
            // The earliest special token occurrence (longest first at the same position).
            var found: (range: Range<String.Index>, id: Int)?
            for special in specialsByLength {
                if let range = rest.range(of: special), range.lowerBound < found?.range.lowerBound ?? rest.endIndex {
                    found = (range, specialTokens[special]!)
                }
            }
            let plain = rest[rest.startIndex..<(found?.range.lowerBound ?? rest.endIndex)]
            let atStart = plain.startIndex == text.startIndex
            let normalized = normalizer.map { $0.normalize(String(plain))[...] } ?? plain
            for piece in preTokenizer.split(normalized, atStart: atStart) { ids += model.encode(piece) }
            guard let found else { break }
            ids.append(found.id)
            rest = rest[found.range.upperBound...]
        }
        return ids
    }

    /// The text of `ids` (invalid UTF-8 becomes U+FFFD). Ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        let specialIds = Set(specialTokens.values)
        for id in ids where tokens.indices.contains(id) {
            if specialIds.contains(id) {
                if !skipSpecialTokens { bytes += Array(tokens[id].utf8) }
            } else if model.alphabet == .byteLevel {
                bytes += ByteLevel.bytes(tokens[id])
            } else if let byte = ByteFallback.byte(tokens[id]) {
                bytes.append(byte)
            } else {
                bytes += Array(tokens[id].replacingScalars("▁", with: " ").utf8)
            }
        }
        if stripsLeadingSpace, bytes.first == UInt8(ascii: " ") { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Substring {
    /// The first occurrence of `needle` (exact scalar match), or nil.
    func range(of needle: String) -> Range<String.Index>? {
        let pattern = Array(needle.unicodeScalars)
        guard let first = pattern.first else { return nil }
        var index = unicodeScalars.startIndex
        while index < unicodeScalars.endIndex {
            if unicodeScalars[index] == first {
                var i = index, k = 0
                while k < pattern.count, i < unicodeScalars.endIndex, unicodeScalars[i] == pattern[k] {
                    i = unicodeScalars.index(after: i)
                    k += 1
                }
                if k == pattern.count { return index..<i }
            }
            index = unicodeScalars.index(after: index)
        }
        return nil
    }
}
