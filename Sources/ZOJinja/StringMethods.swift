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
                let scalars = Array(text.unicodeScalars)
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
        case "splitlines":
            return { _ in
                var lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }.map(String.init)
                if lines.last == "" { lines.removeLast() }
                return .array(lines.map(Value.string))
            }
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
                let ranges = occurrences(of: part, in: text)
                if name == "count" { return .int(ranges.count) }
                guard let found = name.hasPrefix("r") ? lastOccurrence(of: part, in: text) : ranges.first else {
                    if name.hasSuffix("index") { throw TemplateError(.runtime, line: arguments.line, "substring not found") }
                    return .int(-1)
                }
                return .int(found)
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

    private static func optionalString(_ arguments: Arguments, _ index: Int, _ name: String) throws(TemplateError) -> String? {
        switch arguments.value(index, name) {
        case nil, .none?: return nil
        case .string(let value)?: return value
        case let other?: throw TemplateError(.runtime, line: arguments.line, "\(name) must be a string, not \(other.typeName)")
        }
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
            var words: [Range<Int>] = []
            var index = 0
            while index < scalars.count {
                while index < scalars.count, isSpace(scalars[index]) { index += 1 }
                let start = index
                while index < scalars.count, !isSpace(scalars[index]) { index += 1 }
                if start < index { words.append(start..<index) }
            }
            if limit >= 0, words.count > limit + 1 {
                if fromEnd {
                    let kept = words.suffix(limit)
                    let head = words[0].lowerBound..<words[words.count - limit - 1].upperBound
                    words = [head] + kept
                } else {
                    let tailStart = words[limit].lowerBound
                    var tailEnd = scalars.count
                    while tailEnd > tailStart, isSpace(scalars[tailEnd - 1]) { tailEnd -= 1 }
                    words = Array(words.prefix(limit)) + [tailStart..<tailEnd]
                }
            }
            pieces = words
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
