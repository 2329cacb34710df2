/// Splits text into the pieces BPE runs on separately.
public protocol PreTokenizer: Sendable {
    func split(_ text: Substring) -> [Substring]
    /// `split` for a segment between special tokens; `atStart` when it opens the text.
    func split(_ text: Substring, atStart: Bool) -> [Substring]
    /// llama.cpp's name for this byte-level pipeline (GGUF `tokenizer.ggml.pre`), if it has one.
    var ggufName: String? { get }
}

extension PreTokenizer {
    public func split(_ text: Substring, atStart: Bool) -> [Substring] { split(text) }
    public var ggufName: String? { nil }
}

/// GPT-2's pattern, written out instead of as a regular expression:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// alternatives tried in order at each position, over Unicode scalars (as the regex
/// engines of Hugging Face tokenizers and llama.cpp do).
public struct GPT2PreTokenizer: PreTokenizer {
    public init() {}

    public var ggufName: String? { "gpt2" }

    public func split(_ text: Substring) -> [Substring] {
        let scalars = Array(text.unicodeScalars)
        var indices: [String.Index] = []
        indices.reserveCapacity(scalars.count + 1)
        var index = text.startIndex
        for _ in scalars {
            indices.append(index)
            index = text.unicodeScalars.index(after: index)
        }
        indices.append(text.endIndex)

        var pieces: [Substring] = []
        var i = 0
        while i < scalars.count {
            let end = Self.match(scalars, at: i)
            pieces.append(text[indices[i]..<indices[end]])
            i = end
        }
        return pieces
    }

    /// The end of the token starting at `i`.
    static func match(_ s: [Unicode.Scalar], at i: Int) -> Int {
        let n = s.count
        if s[i] == "'", i + 1 < n {
            let next = s[i + 1]
            if "stmd".unicodeScalars.contains(next) { return i + 2 }
            if i + 2 < n, ["re", "ve", "ll"].contains(String(String.UnicodeScalarView([next, s[i + 2]]))) { return i + 3 }
        }
        let j = s[i] == " " ? i + 1 : i
        if j < n {
            if isLetter(s[j]) { return run(s, from: j + 1, while: isLetter) }
            if isNumber(s[j]) { return run(s, from: j + 1, while: isNumber) }
            if isOther(s[j]) { return run(s, from: j + 1, while: isOther) }
        }
        guard isSpace(s[i]) else { return i + 1 }  // unreachable: every scalar is one of the classes
        let end = run(s, from: i + 1, while: isSpace)
        // \s+(?!\S): leave the last whitespace for the token that follows it.
        if end < n, end - i >= 2 { return end - 1 }
        return end
    }

    private static func run(_ s: [Unicode.Scalar], from start: Int, while predicate: (Unicode.Scalar) -> Bool) -> Int {
        var k = start
        while k < s.count, predicate(s[k]) { k += 1 }
        return k
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    static func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }
}

/// Hugging Face's `Digits(individual_digits: true)`: every numeric character becomes its own
/// piece, then `next` splits the rest (SmolLM2's pipeline).
public struct IndividualDigitsPreTokenizer: PreTokenizer {
    public let next: any PreTokenizer

    public init(then next: any PreTokenizer) { self.next = next }

    /// SmolLM2's pipeline (digits, then GPT-2's pattern) is llama.cpp's "smollm".
    public var ggufName: String? { next is GPT2PreTokenizer ? "smollm" : nil }

    public func split(_ text: Substring) -> [Substring] {
        var pieces: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            let after = text.unicodeScalars.index(after: index)
            if GPT2PreTokenizer.isNumber(text.unicodeScalars[index]) {
                if start < index { pieces += next.split(text[start..<index]) }
                pieces.append(text[index..<after])
                start = after
            }
            index = after
        }
        if start < text.endIndex { pieces += next.split(text[start..<text.endIndex]) }
        return pieces
    }
}
