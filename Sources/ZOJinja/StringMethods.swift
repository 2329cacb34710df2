/// Python's `str` methods that chat templates call, over code points as Python counts them.
enum StringMethods {
    static func method(_ name: String, of text: String) -> ((Arguments) throws(TemplateError) -> Value)? {
        switch name {
        case "strip", "lstrip", "rstrip":
            return { arguments throws(TemplateError) in
                .string(strip(text, characters: try optionalString(arguments, 0, "chars"),
                              leading: name != "rstrip", trailing: name != "lstrip"))
            }
        case "startswith", "endswith":
            return { arguments throws(TemplateError) in
                let affixes: [String]
                switch arguments.value(0, name == "startswith" ? "prefix" : "suffix") {
                case .string(let affix): affixes = [affix]
                case .tuple(let elements) where elements.allSatisfy({ $0.string != nil }): affixes = elements.compactMap(\.string)
                default: throw TemplateError(.runtime, line: arguments.line, "\(name) first arg must be str or a tuple of str")
                }
                let (window, _) = try self.window(text, arguments, from: 1)
                let scalars = Array(window.unicodeScalars)
                return .bool(affixes.contains { affix in
                    let a = Array(affix.unicodeScalars)
                    return name == "startswith" ? scalars.starts(with: a) : scalars.reversed().starts(with: a.reversed())
                })
            }
        case "split", "rsplit":
            return { arguments throws(TemplateError) in
                let separator = try optionalString(arguments, 0, "sep")
                let limit = arguments.value(1, "maxsplit")?.integer ?? -1
                if separator == "" { throw TemplateError(.runtime, line: arguments.line, "empty separator") }
                return .array(split(text, separator: separator, limit: limit, fromEnd: name == "rsplit").map(Value.string))
            }
        case "splitlines": return { _ in .array(splitLines(text).map(Value.string)) }
        case "upper": return { _ in .string(text.uppercased()) }
        case "lower": return { _ in .string(text.lowercased()) }
        case "title": return { _ in .string(title(text)) }
        case "capitalize": return { _ in .string(capitalize(text)) }
        case "replace":
            return { arguments throws(TemplateError) in
                guard let old = arguments.value(0, "old")?.string, let new = arguments.value(1, "new")?.string else {
                    throw TemplateError(.runtime, line: arguments.line, "replace() needs two strings")
                }
                return .string(replace(text, old, new, count: arguments.value(2, "count")?.integer ?? -1))
            }
        case "find", "rfind", "index", "rindex", "count":
            return { arguments throws(TemplateError) in
                guard let part = arguments.value(0, "sub")?.string else {
                    throw TemplateError(.runtime, line: arguments.line, "\(name)() needs a string")
                }
                let (window, offset) = try self.window(text, arguments, from: 1)
                let ranges = occurrences(of: part, in: window)
                if name == "count" { return .int(ranges.count) }
                guard let found = name.hasPrefix("r") ? lastOccurrence(of: part, in: window) : ranges.first else {
                    if name.hasSuffix("index") { throw TemplateError(.runtime, line: arguments.line, "substring not found") }
                    return .int(-1)
                }
                return .int(offset + found)
            }
        case "format": return { arguments throws(TemplateError) in .string(try StringFormatting.format(text, arguments)) }
        case "join":
            return { arguments throws(TemplateError) in
                guard let items = arguments.value(0, "iterable")?.iterated, let parts = items.mapOptional(\.string) else {
                    throw TemplateError(.runtime, line: arguments.line, "join() needs a list of strings")
                }
                return .string(parts.joined(separator: text))
            }
        case "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower":
            return { _ in .bool(classify(text, name)) }
        default: return nil
        }
    }

    /// `text[start:end]` for the optional start and end arguments at `index` and `index + 1`
    /// (Python's slice bounds), and where it starts.
    private static func window(_ text: String, _ arguments: Arguments, from index: Int) throws(TemplateError) -> (String, Int) {
        let scalars = Array(text.unicodeScalars)
        func bound(_ value: Value?, _ fallback: Int) throws(TemplateError) -> Int {
            guard let value, value.typeName != "NoneType" else { return fallback }
            guard var position = value.integer else {
                throw TemplateError(.runtime, line: arguments.line, "slice indices must be integers or None")
            }
            if position < 0 { position = max(0, position + scalars.count) }
            return min(position, scalars.count)
        }
        let start = try bound(arguments.value(index, "start"), 0), end = try bound(arguments.value(index + 1, "end"), scalars.count)
        guard start < end else { return ("", start) }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[start..<end])
        return (String(view), start)
    }

    private static func optionalString(_ arguments: Arguments, _ index: Int, _ name: String) throws(TemplateError) -> String? {
        switch arguments.value(index, name) {
        case nil, .none?: return nil
        case .string(let value)?: return value
        case let other?: throw TemplateError(.runtime, line: arguments.line, "\(name) must be a string, not \(other.typeName)")
        }
    }

    /// Python's `str.splitlines()`: lines without their ends (\n, \r\n, \r, \v, \f, \x1c–\x1e,
    /// \x85, \u2028, \u2029); no empty line after a final line end.
    static func splitLines(_ text: String) -> [String] {
        let ends: Set<UInt32> = [0x0A, 0x0D, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029]
        var lines: [String] = [], current = String.UnicodeScalarView(), previousCR = false
        for scalar in text.unicodeScalars {
            defer { previousCR = scalar == "\r" }
            if scalar == "\n", previousCR { continue }
            if ends.contains(scalar.value) {
                lines.append(String(current))
                current = String.UnicodeScalarView()
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { lines.append(String(current)) }
        return lines
    }

    /// Python's `str.isspace` per code point.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
    }

    /// Python's `strip(chars)`: whitespace, or any of `characters`, off either end.
    static func strip(_ text: String, characters: String? = nil, leading: Bool = true, trailing: Bool = true) -> String {
        let set = characters.map { Set($0.unicodeScalars) }
        let strips = { (scalar: Unicode.Scalar) in set?.contains(scalar) ?? isSpace(scalar) }
        var scalars = Substring(text).unicodeScalars[...]
        if leading { scalars = scalars.drop(while: strips) }
        if trailing { while let last = scalars.last, strips(last) { scalars = scalars.dropLast() } }
        return String(String.UnicodeScalarView(scalars))
    }

    /// Python's `split(sep, maxsplit)` / `rsplit`: on `separator`, or on runs of whitespace
    /// (empty parts dropped) when it is nil.
    static func split(_ text: String, separator: String?, limit: Int, fromEnd: Bool) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [Range<Int>] = []
        if let separator {
            let ranges = occurrences(of: separator, in: text)
            let length = separator.unicodeScalars.count
            let used = limit < 0 ? ranges : fromEnd ? Array(ranges.suffix(limit)) : Array(ranges.prefix(limit))
            var start = 0
            for found in used {
                pieces.append(start..<found)
                start = found + length
            }
            pieces.append(start..<scalars.count)
        } else {
            // Python's algorithm: words from one end until `limit` splits are made, then the
            // rest of the text as it is (only the whitespace before it skipped).
            var splits = limit < 0 ? Int.max : limit
            if fromEnd {
                var end = scalars.count
                while end > 0 {
                    while end > 0, isSpace(scalars[end - 1]) { end -= 1 }
                    guard end > 0 else { break }
                    if splits == 0 { pieces.append(0..<end); break }
                    var start = end
                    while start > 0, !isSpace(scalars[start - 1]) { start -= 1 }
                    pieces.append(start..<end)
                    splits -= 1
                    end = start
                }
                pieces.reverse()
            } else {
                var start = 0
                while start < scalars.count {
                    while start < scalars.count, isSpace(scalars[start]) { start += 1 }
                    guard start < scalars.count else { break }
                    if splits == 0 { pieces.append(start..<scalars.count); break }
                    var end = start
                    while end < scalars.count, !isSpace(scalars[end]) { end += 1 }
                    pieces.append(start..<end)
                    splits -= 1
                    start = end
                }
            }
        }
        return pieces.map { String(String.UnicodeScalarView(scalars[$0])) }
    }

    /// Start offsets (in code points) of the non-overlapping occurrences of `part`, left to right.
    static func occurrences(of part: String, in text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars), needle = Array(part.unicodeScalars)
        guard !needle.isEmpty else { return Array(0...scalars.count) }
        var found: [Int] = []
        var index = 0
        while index + needle.count <= scalars.count {
            if scalars[index..<index + needle.count].elementsEqual(needle) {
                found.append(index)
                index += needle.count
            } else {
                index += 1
            }
        }
        return found
    }

    /// The start of the last occurrence (occurrences may overlap, as `rfind` sees them).
    static func lastOccurrence(of part: String, in text: String) -> Int? {
        let scalars = Array(text.unicodeScalars), needle = Array(part.unicodeScalars)
        guard needle.count <= scalars.count else { return nil }
        return (0...scalars.count - needle.count).last { scalars[$0..<$0 + needle.count].elementsEqual(needle) }
    }

    static func replace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
        guard !old.isEmpty else {
            let characters = text.unicodeScalars.map { String($0) }
            let slots = count < 0 ? characters.count + 1 : min(count, characters.count + 1)
            return (0..<characters.count).map { ($0 < slots ? new : "") + characters[$0] }.joined()
                + (slots > characters.count ? new : "")
        }
        return split(text, separator: old, limit: count, fromEnd: false).joined(separator: new)
    }

    /// Python's `title()`: upper case after a non-letter, lower case after a letter.
    static func title(_ text: String) -> String {
        var out = "", previousIsLetter = false
        for character in text {
            out += previousIsLetter ? character.lowercased() : character.uppercased()
            previousIsLetter = character.isLetter
        }
        return out
    }

    static func capitalize(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst().lowercased()
    }

    static func classify(_ text: String, _ name: String) -> Bool {
        guard !text.isEmpty else { return false }
        switch name {
        case "isdigit": return text.unicodeScalars.allSatisfy { $0.properties.numericType != nil }
        case "isalpha": return text.unicodeScalars.allSatisfy(\.properties.isAlphabetic)
        case "isalnum": return text.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil }
        case "isspace": return text.unicodeScalars.allSatisfy(isSpace)
        case "isupper": return text.contains(where: \.isUppercase) && !text.contains(where: \.isLowercase)
        default: return text.contains(where: \.isLowercase) && !text.contains(where: \.isUppercase)
        }
    }
}
