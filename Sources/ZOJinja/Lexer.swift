/// A piece of a template: text to copy, or the tokens inside `{{ }}` or `{% %}`.
enum Piece {
    case text(String)
    case output([Token], line: Int)
    case statement([Token], line: Int)
}

/// A token of an expression or statement, with its line.
struct Token {
    enum Kind: Equatable {
        case name(String)
        case int(Int)
        case double(Double)
        case string(String)
        /// Operators and punctuation: ( ) [ ] { } . , : | ~ + - * / // % ** = == != < <= > >=
        case symbol(String)
    }

    let kind: Kind
    let line: Int
}

/// Splits a template into pieces as Jinja does with `trim_blocks` and `lstrip_blocks` on (the
/// settings of transformers' chat templates): the newline after a block or comment tag is
/// dropped, spaces before one at the start of a line too; `-` inside a delimiter strips all
/// whitespace on that side, `+` keeps it; one newline at the end of the template is dropped;
/// line ends become "\n".
struct Lexer {
    private let bytes: [UInt8]
    private var position = 0
    private var line = 1

    /// Line ends become "\n" (Jinja's newline_sequence), CRLF and lone CR alike.
    init(_ source: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(source.utf8.count)
        var previous: UInt8 = 0
        for byte in source.utf8 {
            if byte == 0x0A, previous == 0x0D {
                previous = byte
                continue
            }
            bytes.append(byte == 0x0D ? 0x0A : byte)
            previous = byte
        }
        self.bytes = bytes
    }

    mutating func pieces() throws(TemplateError) -> [Piece] {
        var pieces: [Piece] = []
        // How the text after the previous tag starts: as is, without one newline, or without any whitespace.
        var trimNext = TextTrim.none
        while position < bytes.count {
            let start = position
            let tag = nextTag(from: start)
            var text = bytes[start..<(tag ?? bytes.count)]
            countLines(in: text)
            text = trimNext.apply(to: text)
            guard let tag else {
                if text.last == 0x0A { text = text.dropLast() }
                if !text.isEmpty { pieces.append(.text(String(decoding: text, as: UTF8.self))) }
                break
            }
            let kind = bytes[tag + 1]
            position = tag + 2
            let marker = position < bytes.count ? bytes[position] : 0
            if marker == UInt8(ascii: "-") || marker == UInt8(ascii: "+") { position += 1 }
            if marker == UInt8(ascii: "-") {
                text = text.trimmingTrailingWhitespace()
            } else if marker != UInt8(ascii: "+"), kind != UInt8(ascii: "{") {
                text = text.prefix(upTo: lineIndentStart(before: tag, notBefore: text.startIndex))
            }
            if !text.isEmpty { pieces.append(.text(String(decoding: text, as: UTF8.self))) }
            let tagLine = line
            switch kind {
            case UInt8(ascii: "#"):
                trimNext = try skipComment()
            case UInt8(ascii: "{"):
                let (tokens, trim) = try tokens(until: UInt8(ascii: "}"))
                pieces.append(.output(tokens, line: tagLine))
                trimNext = trim == .all ? .all : .none
            default:
                let (tokens, trim) = try tokens(until: UInt8(ascii: "%"))
                if tokens.count == 1, tokens[0].kind == .name("raw") {
                    let (raw, rawTrim) = try rawText(startLine: tagLine, trimmed: trim)
                    if !raw.isEmpty { pieces.append(.text(raw)) }
                    trimNext = rawTrim
                } else {
                    pieces.append(.statement(tokens, line: tagLine))
                    trimNext = trim
                }
            }
        }
        return pieces
    }

    /// Where the spaces and tabs before a tag at `tag` begin if nothing else precedes it on its
    /// line in the source (`lstrip_blocks`), else `tag`; never before `limit`.
    private func lineIndentStart(before tag: Int, notBefore limit: Int) -> Int {
        var start = tag
        while start > 0, bytes[start - 1] == 0x20 || bytes[start - 1] == 0x09 { start -= 1 }
        guard start == 0 || bytes[start - 1] == 0x0A else { return tag }
        return max(start, limit)
    }

    /// The index of the next `{{`, `{%` or `{#` at or after `start`.
    private func nextTag(from start: Int) -> Int? {
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "{"), [UInt8(ascii: "{"), UInt8(ascii: "%"), UInt8(ascii: "#")].contains(bytes[i + 1]) {
                return i
            }
            i += 1
        }
        return nil
    }

    private mutating func countLines(in text: ArraySlice<UInt8>) {
        line += text.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
    }

    /// Skips to the end of a comment; returns how the text after it starts.
    private mutating func skipComment() throws(TemplateError) -> TextTrim {
        let startLine = line
        while position + 1 < bytes.count {
            if bytes[position] == UInt8(ascii: "#"), bytes[position + 1] == UInt8(ascii: "}") {
                let marker = bytes[position - 1]
                position += 2
                return marker == UInt8(ascii: "-") ? .all : marker == UInt8(ascii: "+") ? .none : .newline
            }
            if bytes[position] == 0x0A { line += 1 }
            position += 1
        }
        throw TemplateError(.syntax, line: startLine, "unclosed comment: '{#' without '#}'")
    }

    /// The text of a `{% raw %}` block up to its `{% endraw %}`, and how the text after it starts.
    private mutating func rawText(startLine: Int, trimmed: TextTrim) throws(TemplateError) -> (String, TextTrim) {
        let start = position
        while let tag = nextTag(from: position) {
            position = tag + 2
            let marker = position < bytes.count ? bytes[position] : 0
            if marker == UInt8(ascii: "-") || marker == UInt8(ascii: "+") { position += 1 }
            let lineBefore = line
            guard bytes[tag + 1] == UInt8(ascii: "%"), let (tokens, trim) = try? tokens(until: UInt8(ascii: "%")),
                  tokens.count == 1, tokens[0].kind == .name("endraw") else {
                // Not the end tag: part of the raw text (its lines are counted with the text).
                line = lineBefore
                position = tag + 1
                continue
            }
            // Only `-%}` trims the raw text's start; the newline after `{% raw %}` stays.
            var text = trimmed == .all ? TextTrim.all.apply(to: bytes[start..<tag]) : bytes[start..<tag]
            if marker == UInt8(ascii: "-") { text = text.trimmingTrailingWhitespace() }
            countLines(in: bytes[start..<tag])
            return (String(decoding: text, as: UTF8.self), trim)
        }
        throw TemplateError(.syntax, line: startLine, "'{% raw %}' without '{% endraw %}'")
    }

    /// The tokens up to the closing `}}` (`close` = "}") or `%}` (`close` = "%"), and how the
    /// text after the tag starts.
    private mutating func tokens(until close: UInt8) throws(TemplateError) -> ([Token], TextTrim) {
        var tokens: [Token] = []
        let startLine = line
        // Brackets open in the tag: a "}}" inside `{{ {'a': {'b': 1}} }}` closes dicts, not the tag (as Jinja's lexer).
        var open = 0
        while true {
            skipWhitespace()
            guard position < bytes.count else {
                let what = close == UInt8(ascii: "}") ? "'{{' without '}}'" : "'{%' without '%}'"
                throw TemplateError(.syntax, line: startLine, "unclosed tag: " + what)
            }
            let byte = bytes[position]
            // The end of the tag, with a whitespace marker before it.
            for marker: UInt8? in [nil, UInt8(ascii: "-"), UInt8(ascii: "+")] where open == 0 {
                let offset = marker == nil ? 0 : 1
                guard position + offset + 1 < bytes.count, marker.map({ bytes[position] == $0 }) ?? true,
                      bytes[position + offset] == close, bytes[position + offset + 1] == UInt8(ascii: "}") else { continue }
                position += offset + 2
                if marker == UInt8(ascii: "-") { return (tokens, .all) }
                return (tokens, marker == nil && close == UInt8(ascii: "%") ? .newline : .none)
            }
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                tokens.append(Token(kind: .string(try stringLiteral(quote: byte)), line: line))
            } else if isDigit(byte) {
                tokens.append(Token(kind: number(), line: line))
            } else if isNameStart(byte) {
                let start = position
                while position < bytes.count, isNameStart(bytes[position]) || isDigit(bytes[position]) { position += 1 }
                tokens.append(Token(kind: .name(String(decoding: bytes[start..<position], as: UTF8.self)), line: line))
            } else if let symbol = symbol() {
                if ["(", "[", "{"].contains(symbol) { open += 1 }
                if [")", "]", "}"].contains(symbol), open > 0 { open -= 1 }
                tokens.append(Token(kind: .symbol(symbol), line: line))
            } else {
                throw TemplateError(.syntax, line: line, "unexpected character '\(Character(Unicode.Scalar(byte)))'")
            }
        }
    }

    private static let symbols = ["**", "//", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|", "~",
                                  "+", "-", "*", "/", "%", "=", "<", ">"].map { Array($0.utf8) }

    private mutating func symbol() -> String? {
        for symbol in Lexer.symbols where position + symbol.count <= bytes.count
            && Array(bytes[position..<position + symbol.count]) == symbol {
            position += symbol.count
            return String(decoding: symbol, as: UTF8.self)
        }
        return nil
    }

    private mutating func number() -> Token.Kind {
        let start = position
        while position < bytes.count, isDigit(bytes[position]) || bytes[position] == UInt8(ascii: "_") { position += 1 }
        var isInteger = true
        if position + 1 < bytes.count, bytes[position] == UInt8(ascii: "."), isDigit(bytes[position + 1]) {
            isInteger = false
            position += 1
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            var end = position + 1
            if end < bytes.count, bytes[end] == UInt8(ascii: "+") || bytes[end] == UInt8(ascii: "-") { end += 1 }
            if end < bytes.count, isDigit(bytes[end]) {
                isInteger = false
                position = end
                while position < bytes.count, isDigit(bytes[position]) { position += 1 }
            }
        }
        let text = String(decoding: bytes[start..<position].filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
        if isInteger, let value = Int(text) { return .int(value) }
        return .double(Double(text) ?? .infinity)
    }

    /// A quoted string with Python's escapes (\n \t \r \a \b \f \v \\ \' \" octal, \xXX, \uXXXX,
    /// \UXXXXXXXX); \N{…} is an error; others kept as written.
    private mutating func stringLiteral(quote: UInt8) throws(TemplateError) -> String {
        let startLine = line
        position += 1
        var out: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if byte == quote { return String(decoding: out, as: UTF8.self) }
            if byte == 0x0A { line += 1 }
            guard byte == UInt8(ascii: "\\"), position < bytes.count else { out.append(byte); continue }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(escape)
            case UInt8(ascii: "a"): out.append(0x07)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                // Up to three octal digits.
                var code = UInt32(escape - UInt8(ascii: "0")), digits = 1
                while digits < 3, position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(bytes[position]) {
                    code = code * 8 + UInt32(bytes[position] - UInt8(ascii: "0"))
                    position += 1
                    digits += 1
                }
                out += Array(String(Character(Unicode.Scalar(code)!)).utf8)
            case UInt8(ascii: "N"):
                throw TemplateError(.unsupported, line: line, "\\N{…} escapes (Unicode names) in strings")
            case UInt8(ascii: "u"), UInt8(ascii: "x"), UInt8(ascii: "U"):
                let width = escape == UInt8(ascii: "u") ? 4 : escape == UInt8(ascii: "U") ? 8 : 2
                guard position + width <= bytes.count,
                      let code = UInt32(String(decoding: bytes[position..<position + width], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(code) else {
                    throw TemplateError(.syntax, line: line, "invalid \\\(Character(Unicode.Scalar(escape))) escape in a string")
                }
                position += width
                out += Array(String(Character(scalar)).utf8)
            default: out += [UInt8(ascii: "\\"), escape]
            }
        }
        throw TemplateError(.syntax, line: startLine, "unterminated string")
    }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) {
            if bytes[position] == 0x0A { line += 1 }
            position += 1
        }
    }

    private func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private func isNameStart(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || byte == UInt8(ascii: "_")
    }
}

/// How the text after a tag starts.
enum TextTrim {
    case none
    /// One newline dropped (`trim_blocks`).
    case newline
    /// All leading whitespace dropped (`-` before the tag's end).
    case all

    func apply(to text: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        switch self {
        case .none: return text
        case .newline:
            if text.first == 0x0A { return text.dropFirst() }
            if text.starts(with: [0x0D, 0x0A]) { return text.dropFirst(2) }
            return text
        case .all: return text.drop { [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains($0) }
        }
    }
}

extension ArraySlice<UInt8> {
    func trimmingTrailingWhitespace() -> ArraySlice<UInt8> {
        var text = self
        while let last = text.last, [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(last) { text = text.dropLast() }
        return text
    }
}
