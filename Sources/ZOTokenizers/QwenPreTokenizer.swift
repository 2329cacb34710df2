/// The pattern Qwen2 and Llama 3 split with, written out instead of as a regular expression:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// with D = 1 (Qwen2) or 3 (Llama 3), alternatives tried in order at each position over
/// Unicode scalars. Unlike GPT-2's, a letter run takes one leading non-letter (not only a
/// space), contractions ignore case, and newlines stay apart from other whitespace.
public struct QwenPreTokenizer: PreTokenizer {
    /// D: digits per number piece.
    public let maxDigits: Int

    public init(maxDigits: Int) { self.maxDigits = maxDigits }

    public var ggufName: String? { [1: "qwen2", 3: "llama-bpe"][maxDigits] }

    public func split(_ text: Substring) -> [Substring] {
        let scalars = Array(text.unicodeScalars)
        var indices = Array(text.unicodeScalars.indices)
        indices.append(text.endIndex)
        var pieces: [Substring] = []
        var i = 0
        while i < scalars.count {
            let end = match(scalars, at: i)
            pieces.append(text[indices[i]..<indices[end]])
            i = end
        }
        return pieces
    }

    /// The end of the piece starting at `i`.
    func match(_ s: [Unicode.Scalar], at i: Int) -> Int {
        let n = s.count
        if s[i] == "'", i + 1 < n {
            let next = String(s[i + 1]).lowercased()
            if ["s", "t", "m", "d"].contains(next) { return i + 2 }
            if i + 2 < n, ["re", "ve", "ll"].contains((String(s[i + 1]) + String(s[i + 2])).lowercased()) { return i + 3 }
        }
        let letter = GPT2PreTokenizer.isLetter, number = GPT2PreTokenizer.isNumber, space = GPT2PreTokenizer.isSpace
        let newline = { (c: Unicode.Scalar) in c == "\r" || c == "\n" }
        if letter(s[i]) { return run(s, from: i + 1, while: letter) }
        if !newline(s[i]), !number(s[i]), i + 1 < n, letter(s[i + 1]) { return run(s, from: i + 2, while: letter) }
        if number(s[i]) { return min(run(s, from: i + 1, while: number), i + maxDigits) }
        let j = s[i] == " " ? i + 1 : i
        if j < n, GPT2PreTokenizer.isOther(s[j]) {
            return run(s, from: run(s, from: j + 1, while: GPT2PreTokenizer.isOther), while: newline)
        }
        let end = run(s, from: i, while: space)
        // \s*[\r\n]+: through the last newline of the whitespace run.
        if let last = (i..<end).last(where: { newline(s[$0]) }) { return last + 1 }
        // \s+(?!\S), then \s+: leave the last whitespace for the piece that follows it.
        if end < n, end - i >= 2 { return end - 1 }
        return max(end, i + 1)
    }

    private func run(_ s: [Unicode.Scalar], from start: Int, while predicate: (Unicode.Scalar) -> Bool) -> Int {
        var k = start
        while k < s.count, predicate(s[k]) { k += 1 }
        return k
    }
}
