/// SentencePiece's way of marking words, as Hugging Face's `Metaspace` pre-tokenizer does it
/// (Mistral v0.3, Gemma's conversions): spaces become `replacement` ("▁"); with
/// `prependScheme` first (only for the text's opening segment) or always, a segment not
/// already starting with it gets one in front; with `split`, the segment is cut before every
/// replacement character.
public struct MetaspacePreTokenizer: PreTokenizer {
    public enum PrependScheme: String, Sendable {
        case first, always, never
    }

    public let replacement: String
    public let prependScheme: PrependScheme
    public let split: Bool

    public init(replacement: String = "▁", prependScheme: PrependScheme = .always, split: Bool = true) {
        self.replacement = replacement
        self.prependScheme = prependScheme
        self.split = split
    }

    public func split(_ text: Substring) -> [Substring] { split(text, atStart: true) }

    public func split(_ text: Substring, atStart: Bool) -> [Substring] {
        guard !text.isEmpty else { return [] }
        var replaced = text.replacingScalars(" ", with: replacement)
        let prepends = prependScheme == .always || (prependScheme == .first && atStart)
        if prepends, !replaced.unicodeScalars.starts(with: replacement.unicodeScalars) { replaced = replacement + replaced }
        guard split else { return replaced.isEmpty ? [] : [replaced[...]] }
        // Pieces start at each replacement character (Hugging Face's MergedWithNext).
        let marker = replacement.unicodeScalars.first
        var pieces: [Substring] = []
        var start = replaced.startIndex
        var index = replaced.unicodeScalars.startIndex
        while index < replaced.endIndex {
            if replaced.unicodeScalars[index] == marker, index > start {
                pieces.append(replaced[start..<index])
                start = index
            }
            index = replaced.unicodeScalars.index(after: index)
        }
        if start < replaced.endIndex { pieces.append(replaced[start...]) }
        return pieces
    }
}

/// No pre-tokenizer: the whole (normalized) segment is one piece (Llama 2's tokenizer.json).
public struct WholeTextPreTokenizer: PreTokenizer {
    public init() {}

    public func split(_ text: Substring) -> [Substring] { text.isEmpty ? [] : [text] }
}

/// `tokenizers`' Split on a literal string with behavior MergedWithPrevious: each occurrence of
/// the separator ends a piece (Gemma's tokenizer.json splits after every " "; after its
/// normalizer has turned spaces into "▁" there are none left, so the text stays whole).
public struct LiteralSplitPreTokenizer: PreTokenizer {
    public let separator: String

    public init(separator: String) { self.separator = separator }

    public func split(_ text: Substring) -> [Substring] {
        var pieces: [Substring] = []
        var start = text.startIndex
        while !separator.isEmpty, let match = text[start...].firstRange(of: separator) {
            pieces.append(text[start..<match.upperBound])
            start = match.upperBound
        }
        if start < text.endIndex { pieces.append(text[start...]) }
        return pieces
    }
}
