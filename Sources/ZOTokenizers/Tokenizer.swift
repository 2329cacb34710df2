/// A byte-level BPE tokenizer (GPT-2, OPT, SmolLM2): special tokens matched first in the raw
/// text, a pre-tokenizer, byte-level BPE per piece; decoding maps token strings back to bytes.
/// Encode-then-decode returns the input exactly.
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
    let preTokenizer: any PreTokenizer
    private let specialsByLength: [String]

    init(tokens: [String], merges: [SymbolPair], specialTokens: [String: Int], preTokenizer: any PreTokenizer,
         bos: Int?, eos: Int?, pad: Int?, unknown: Int?, addsBOS: Bool, chatTemplate: String?) {
        self.tokens = tokens
        var vocabulary: [String: Int] = [:]
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        model = BPEModel(vocabulary: vocabulary, merges: merges, unknownId: unknown)
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
            for piece in preTokenizer.split(plain) { ids += model.encode(piece) }
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
            } else {
                bytes += ByteLevel.bytes(tokens[id])
            }
        }
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
