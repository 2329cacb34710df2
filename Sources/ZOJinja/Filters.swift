import ZOFormats

/// Jinja's filters (`value | name(arguments)`) as transformers configures them: `tojson` is
/// Python's `json.dumps(ensure_ascii=False)` keeping key order; strings compare without case
/// in `sort`, `unique`, `min` and `max` as Jinja's do.
enum Filters {
    /// The names known (a template reaching another is an error then, as in Jinja).
    static let names: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "forceescape",
        "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
        "unique", "upper", "wordcount",
    ]

    static func apply(_ name: String, to value: Value, _ arguments: Arguments, renderer: Renderer) throws(TemplateError) -> Value {
        let line = arguments.line
        func fail(_ message: String) -> TemplateError { TemplateError(.runtime, line: line, message) }
        func sequence() throws(TemplateError) -> [Value] {
            guard let items = value.iterated else { throw fail("'\(value.typeName)' object is not iterable") }
            return items
        }
        switch name {
        case "safe": return value
        case "string": return .string(value.text)
        case "trim":
            return .string(StringMethods.strip(value.text, characters: arguments.value(0, "chars")?.string))
        case "upper": return .string(value.text.uppercased())
        case "lower": return .string(value.text.lowercased())
        case "title": return .string(title(value.text))
        case "capitalize": return .string(StringMethods.capitalize(value.text))
        case "e", "escape", "forceescape": return .string(escapeHTML(value.text))
        case "wordcount": return .int(StringMethods.split(value.text, separator: nil, limit: -1, fromEnd: false).count)
        case "replace":
            guard let old = arguments.value(0, "old")?.string, let new = arguments.value(1, "new")?.string else {
                throw fail("replace needs two strings")
            }
            return .string(StringMethods.replace(value.text, old, new, count: arguments.value(2, "count")?.integer ?? -1))
        case "indent": return .string(try indent(value.text, arguments))
        case "length", "count":
            if case .string(let text) = value { return .int(text.unicodeScalars.count) }
            guard let items = value.iterated else { throw fail("object of type '\(value.typeName)' has no len()") }
            return .int(items.count)
        case "first": return try sequence().first ?? .undefined("the sequence is empty")
        case "last": return try sequence().last ?? .undefined("the sequence is empty")
        case "list": return .array(try sequence())
        case "reverse":
            if case .string(let text) = value { return .string(String(String.UnicodeScalarView(text.unicodeScalars.reversed()))) }
            return .array(try sequence().reversed())
        case "join":
            var items = try sequence()
            if let attribute = arguments.value(1, "attribute") {
                items = try items.map { item throws(TemplateError) in try lookup(attribute, in: item, line: line) }
            }
            return .string(items.map(\.text).joined(separator: arguments.value(0, "d")?.text ?? ""))
        case "items":
            if value.isUndefined { return .array([]) }
            guard case .object(let object) = value else { throw fail("items needs a mapping, not \(value.typeName)") }
            return .array(object.members.map { .tuple([.string($0.key), $0.value]) })
        case "dictsort":
            guard case .object(let object) = value else { throw fail("dictsort needs a mapping, not \(value.typeName)") }
            // dictsort(case_sensitive=False, by='key', reverse=False)
            let pairs = object.members.map { Value.tuple([.string($0.key), $0.value]) }
            let by = arguments.value(1, "by")?.string ?? "key"
            guard by == "key" || by == "value" else { throw fail("dictsort's by must be 'key' or 'value'") }
            return .array(try sorted(pairs, key: { $0.iterated![by == "key" ? 0 : 1] },
                                     reverse: arguments.value(2, "reverse")?.isTruthy ?? false,
                                     caseSensitive: arguments.value(0, "case_sensitive")?.isTruthy ?? false, attribute: nil,
                                     line: line))
        case "default", "d":
            let useDefault = value.isUndefined || (arguments.value(1, "boolean")?.isTruthy == true && !value.isTruthy)
            return useDefault ? arguments.value(0, "default_value") ?? .string("") : value
        case "tojson": return .string(try tojson(value, arguments))
        case "int": return integer(value, default: arguments.value(0, "default") ?? .int(0))
        case "float": return floatingPoint(value, default: arguments.value(0, "default") ?? .double(0))
        case "abs":
            switch value {
            case .int(let x):
                guard x != .min else { throw TemplateError(.unsupported, line: line, "integers beyond 64 bits") }
                return .int(abs(x))
            case .double(let x): return .double(abs(x))
            case .bool(let x): return .int(x ? 1 : 0)
            default: throw fail("bad operand type for abs(): '\(value.typeName)'")
            }
        case "round": return try round(value, arguments)
        case "sum":
            var total = arguments.value(1, "start") ?? .int(0)
            for item in try sequence() {
                var term = item
                if let attribute = arguments.value(0, "attribute") { term = try lookup(attribute, in: item, line: line) }
                total = try Operators.binary("+", total, term, line: line)
            }
            return total
        case "attr":
            guard let attribute = arguments.value(0, "name")?.string else { throw fail("attr needs a name") }
            return try Members.attribute(attribute, of: value, line: line)
        case "map": return .array(try map(try sequence(), arguments, renderer: renderer))
        case "select", "reject", "selectattr", "rejectattr":
            return .array(try select(try sequence(), name, arguments, renderer: renderer))
        case "sort":  // sort(reverse=False, case_sensitive=False, attribute=None)
            return .array(try sorted(try sequence(), key: { $0 }, reverse: arguments.value(0, "reverse")?.isTruthy ?? false,
                                     caseSensitive: arguments.value(1, "case_sensitive")?.isTruthy ?? false,
                                     attribute: arguments.value(2, "attribute"), line: line))
        case "unique": return .array(try unique(try sequence(), arguments))
        case "min", "max":  // min(case_sensitive=False, attribute=None): the first of equals, as Python's
            let items = try sorted(try sequence(), key: { $0 }, reverse: name == "max",
                                   caseSensitive: arguments.value(0, "case_sensitive")?.isTruthy ?? false,
                                   attribute: arguments.value(1, "attribute"), line: line)
            return items.first ?? .undefined("no \(name) of an empty sequence")
        default:
            let jinjaHasIt = jinjaOnly.contains(name)
            throw TemplateError(jinjaHasIt ? .unsupported : .runtime, line: line,
                                jinjaHasIt ? "the filter '\(name)'" : "no filter named '\(name)'")
        }
    }

    /// Jinja's filters that this interpreter lacks (an error when a template reaches one).
    static let jinjaOnly: Set<String> = ["batch", "center", "filesizeformat", "format", "groupby", "pprint", "random",
                                         "slice", "striptags", "truncate", "urlencode", "urlize", "wordwrap", "xmlattr"]

    /// Jinja's `title`: each piece between "-", whitespace and opening brackets gets its first
    /// character upper-cased and the rest lower-cased.
    private static func title(_ text: String) -> String {
        var out = "", atStart = true
        for character in text {
            if character == "-" || character.isWhitespace || "({[<".contains(character) {
                out.append(character)
                atStart = true
            } else {
                out += atStart ? character.uppercased() : character.lowercased()
                atStart = false
            }
        }
        return out
    }

    private static func tojson(_ value: Value, _ arguments: Arguments) throws(TemplateError) -> String {
        guard let json = value.json else {
            throw TemplateError(.runtime, line: arguments.line, "Object of type \(value.typeName) is not JSON serializable")
        }
        var separators: (String, String)?
        if let given = arguments.value(2, "separators"), !(given.json == .null) {
            guard let pair = given.iterated?.mapOptional(\.string), pair.count == 2 else {
                throw TemplateError(.runtime, line: arguments.line, "tojson separators must be two strings")
            }
            separators = (pair[0], pair[1])
        }
        // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
        let indent = arguments.value(1, "indent")?.integer
        if let indent, indent > StringFormatting.maximumWidth {
            throw TemplateError(.unsupported, line: arguments.line, "tojson indent above \(StringFormatting.maximumWidth)")
        }
        return json.pythonJSON(indent: indent.map { max(0, $0) }, itemSeparator: separators?.0,
                               keySeparator: separators?.1 ?? ": ", sortKeys: arguments.value(3, "sort_keys")?.isTruthy ?? false,
                               ensureASCII: arguments.value(0, "ensure_ascii")?.isTruthy ?? false)
    }

    /// `item.attribute` where `attribute` may be dotted ("a.b") or an index.
    static func lookup(_ attribute: Value, in item: Value, line: Int) throws(TemplateError) -> Value {
        if let index = attribute.integer { return try Members.item(.int(index), of: item, line: line) }
        var value = item
        for part in attribute.text.split(separator: ".") {
            value = try Members.item(Int(part).map(Value.int) ?? .string(String(part)), of: value, line: line)
        }
        return value
    }

    private static func map(_ items: [Value], _ arguments: Arguments, renderer: Renderer) throws(TemplateError) -> [Value] {
        if let attribute = arguments.keyword["attribute"] {
            return try items.map { item throws(TemplateError) in
                let found = try lookup(attribute, in: item, line: arguments.line)
                return found.isUndefined ? arguments.keyword["default"] ?? found : found
            }
        }
        guard let filter = arguments.positional.first?.string else {
            throw TemplateError(.runtime, line: arguments.line, "map needs a filter name or attribute=")
        }
        let rest = Arguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword, line: arguments.line)
        return try items.map { item throws(TemplateError) in try apply(filter, to: item, rest, renderer: renderer) }
    }

    private static func select(_ items: [Value], _ name: String, _ arguments: Arguments, renderer: Renderer)
        throws(TemplateError) -> [Value] {
        let byAttribute = name.hasSuffix("attr"), keeps = name.hasPrefix("select")
        var positional = arguments.positional
        let attribute = byAttribute ? positional.isEmpty ? nil : positional.removeFirst() : nil
        if byAttribute, attribute == nil { throw TemplateError(.runtime, line: arguments.line, "\(name) needs an attribute") }
        let test = positional.isEmpty ? nil : positional.removeFirst().string
        let testArguments = Arguments(positional: positional, keyword: arguments.keyword, line: arguments.line)
        var kept: [Value] = []
        for item in items {
            var subject = item
            if let attribute { subject = try lookup(attribute, in: item, line: arguments.line) }
            let passes = try test.map { test throws(TemplateError) in
                guard Tests.names.contains(test) else { throw TemplateError(.unsupported, line: arguments.line, "the test '\(test)'") }
                return try Tests.apply(test, to: subject, testArguments, renderer: renderer)
            } ?? subject.isTruthy
            if passes == keeps { kept.append(item) }
        }
        return kept
    }

    /// Python's stable sort by `key` (then `attribute`), strings without case unless `caseSensitive`.
    private static func sorted(_ items: [Value], key: (Value) -> Value, reverse: Bool, caseSensitive: Bool, attribute: Value?,
                               line: Int) throws(TemplateError) -> [Value] {
        var keys: [Value] = []
        for item in items {
            var k = key(item)
            if let attribute { k = try lookup(attribute, in: k, line: line) }
            if !caseSensitive, case .string(let text) = k { k = .string(text.lowercased()) }
            keys.append(k)
        }
        for (a, b) in zip(keys, keys.dropFirst()) where Operators.compare(a, b) == nil {
            throw TemplateError(.runtime, line: line, "cannot order '\(a.typeName)' and '\(b.typeName)'")
        }
        let order = items.indices.sorted { i, j in
            let c = Operators.compare(keys[i], keys[j]) ?? 0
            return c == 0 ? i < j : (c < 0) != reverse
        }
        return order.map { items[$0] }
    }

    private static func unique(_ items: [Value], _ arguments: Arguments) throws(TemplateError) -> [Value] {
        let caseSensitive = arguments.value(0, "case_sensitive")?.isTruthy ?? false
        var seen: [Value] = [], out: [Value] = []
        for item in items {
            var k = item
            if let attribute = arguments.keyword["attribute"] { k = try lookup(attribute, in: k, line: arguments.line) }
            if !caseSensitive, case .string(let text) = k { k = .string(text.lowercased()) }
            if !seen.contains(where: { Value.equal($0, k) }) {
                seen.append(k)
                out.append(item)
            }
        }
        return out
    }

    private static func integer(_ value: Value, default fallback: Value) -> Value {
        switch value {
        case .int, .bool: return .int(value.integer!)
        case .double(let x): return x.isFinite && abs(x) < 9e18 ? .int(Int(x)) : fallback
        case .string(let text):
            let trimmed = StringMethods.strip(text).replacingOccurrences("_", "")
            if let x = Int(trimmed) { return .int(x) }
            if let x = Double(trimmed), x.isFinite, abs(x) < 9e18 { return .int(Int(x)) }
            return fallback
        default: return fallback
        }
    }

    private static func floatingPoint(_ value: Value, default fallback: Value) -> Value {
        switch value {
        case .int, .bool, .double: return .double(value.number!)
        case .string(let text): return Double(StringMethods.strip(text)).map(Value.double) ?? fallback
        default: return fallback
        }
    }

    private static func round(_ value: Value, _ arguments: Arguments) throws(TemplateError) -> Value {
        guard let x = value.number else {
            throw TemplateError(.runtime, line: arguments.line, "round needs a number, not \(value.typeName)")
        }
        let precision = arguments.value(0, "precision")?.integer ?? 0
        guard (-399...399).contains(precision) else {
            throw TemplateError(.unsupported, line: arguments.line, "round to \(precision) digits")
        }
        let method = arguments.value(1, "method")?.string ?? "common"
        // Python's round(): halves to even, an int stays an int; ceil and floor give floats.
        if method == "common", case .int = value, precision >= 0 { return value }
        let rule: FloatingPointRoundingRule = switch method {
        case "common": .toNearestOrEven
        case "ceil": .up
        case "floor": .down
        default: throw TemplateError(.runtime, line: arguments.line, "method must be common, ceil or floor")
        }
        var scale = 1.0
        for _ in 0..<abs(precision) { scale *= 10 }
        guard precision >= 0 else { return .double((x / scale).rounded(rule) * scale) }
        // Python rounds the exact binary value: a product that lands on a half is settled by its error.
        let rounded = rule == .toNearestOrEven ? StringFormatting.exactRounded(x, scale: scale) : (x * scale).rounded(rule)
        return .double(rounded / scale)
    }

    /// Jinja 3.1's `indent`: lines after the first (and the first with `first`) get the pad;
    /// empty lines too only with `blank`; lines split as Python's `splitlines`, joined by "\n".
    private static func indent(_ text: String, _ arguments: Arguments) throws(TemplateError) -> String {
        let width = arguments.value(0, "width")
        if let count = width?.integer, count > StringFormatting.maximumWidth {
            throw TemplateError(.unsupported, line: arguments.line, "indent by more than \(StringFormatting.maximumWidth)")
        }
        let pad = width?.string ?? String(repeating: " ", count: max(0, width?.integer ?? 4))
        let first = arguments.value(1, "first")?.isTruthy ?? false, blank = arguments.value(2, "blank")?.isTruthy ?? false
        let lines = StringMethods.splitLines(text + "\n")
        let body = lines.enumerated().map { index, line in
            index == 0 || (line.isEmpty && !blank) ? line : pad + line
        }.joined(separator: "\n")
        return first ? pad + body : body
    }

    private static func escapeHTML(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}

extension String {
    func replacingOccurrences(_ old: String, _ new: String) -> String {
        StringMethods.replace(self, old, new, count: -1)
    }
}
