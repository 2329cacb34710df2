import ZOTokenizers

/// What a task needs of a tokenizer.
public protocol TextCodec {
    /// Ids of a prompt, with the tokenizer's leading special tokens (BOS) where it adds them.
    func encodePrompt(_ text: String) throws -> [Int]
    /// Ids of a continuation (a candidate, an answer): no special tokens.
    func encodeContinuation(_ text: String) throws -> [Int]
    /// The text of `ids`, special tokens left out.
    func decodeText(_ ids: [Int]) -> String
    /// Tokens that end a generation (end of sequence).
    var endTokens: Set<Int> { get }
}

extension Tokenizer: TextCodec {
    public func encodePrompt(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }
    public func encodeContinuation(_ text: String) -> [Int] { encode(text, addSpecialTokens: false) }
    public func decodeText(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: true) }
    public var endTokens: Set<Int> { Set([eosTokenId].compactMap { $0 }) }
}
