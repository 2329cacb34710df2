import ZOFormats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Binary operators with Python's meaning: `+` adds numbers and joins strings or lists, `/`
/// always gives a float, `//` and `%` round toward negative infinity, comparisons order numbers,
/// strings (by code point) and lists.
enum Operators {
    static func binary(_ op: String, _ a: Value, _ b: Value, line: Int) throws(TemplateError) -> Value {
        switch op {
        case "==": return .bool(Value.equal(a, b))
        case "!=": return .bool(!Value.equal(a, b))
        case "~": return .string(a.text + b.text)
        case "in", "not in": return .bool(try contains(b, a, line: line) == (op == "in"))
        default: break
        }
        for value in [a, b] {
            if case .undefined(let what) = value { throw TemplateError(.runtime, line: line, what) }
        }
        switch op {
        case "<", "<=", ">", ">=":
            guard let order = compare(a, b) else {
                throw TemplateError(.runtime, line: line,
                                    "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
            }
            return .bool(op == "<" ? order < 0 : op == "<=" ? order <= 0 : op == ">" ? order > 0 : order >= 0)
        default:
            if op == "%", case .string(let format) = a { return .string(try StringFormatting.percent(format, b, line: line)) }
            if let result = try arithmetic(op, a, b, line: line) { return result }
            if op == "+", case .string = a {
                throw TemplateError(.runtime, line: line, "can only concatenate str (not \"\(b.typeName)\") to str")
            }
            throw TemplateError(.runtime, line: line,
                                "unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    private static func arithmetic(_ op: String, _ a: Value, _ b: Value, line: Int) throws(TemplateError) -> Value? {
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)): return .string(x + y)
        case ("+", .array(let x), .array(let y)): return .array(x + y)
        case ("+", .tuple(let x), .tuple(let y)): return .tuple(x + y)
        case ("*", .string(let x), _), ("*", _, .string(let x)):
            guard let count = (a.integer != nil ? a : b).integer else { return nil }
            try checkSize(x.utf8.count, times: count, line: line)
            return .string(String(repeating: x, count: max(count, 0)))
        case ("*", .array(let x), _), ("*", _, .array(let x)):
            guard let count = (a.integer != nil ? a : b).integer else { return nil }
            try checkSize(x.count, times: count, line: line)
            return .array(Array(repeating: x, count: max(count, 0)).flatMap { $0 })
        default: break
        }
        if let x = a.integer, let y = b.integer { return try integerArithmetic(op, x, y, line: line) }
        guard let x = a.number, let y = b.number else { return nil }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "**": return .double(pow(x, y))
        default:
            guard y != 0 else { throw TemplateError(.runtime, line: line, "float division by zero") }
            switch op {
            case "/": return .double(x / y)
            case "//": return .double((x / y).rounded(.down))
            default:
                let r = x.truncatingRemainder(dividingBy: y)
                return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            }
        }
    }

    private static func integerArithmetic(_ op: String, _ x: Int, _ y: Int, line: Int) throws(TemplateError) -> Value? {
        let overflow = TemplateError(.unsupported, line: line, "integers beyond 64 bits")
        switch op {
        case "+": let (r, o) = x.addingReportingOverflow(y); if o { throw overflow }; return .int(r)
        case "-": let (r, o) = x.subtractingReportingOverflow(y); if o { throw overflow }; return .int(r)
        case "*": let (r, o) = x.multipliedReportingOverflow(by: y); if o { throw overflow }; return .int(r)
        case "/":
            guard y != 0 else { throw TemplateError(.runtime, line: line, "division by zero") }
            return .double(Double(x) / Double(y))
        case "//", "%":
            guard y != 0 else { throw TemplateError(.runtime, line: line, "integer division or modulo by zero") }
            guard x != .min || y != -1 else { throw overflow }
            var (q, r) = x.quotientAndRemainder(dividingBy: y)
            if r != 0, (r < 0) != (y < 0) { q -= 1; r += y }
            return .int(op == "//" ? q : r)
        case "**":
            guard y >= 0 else { return .double(pow(Double(x), Double(y))) }
            // By squaring: 64 multiplications at most (|x| ≤ 1 never overflows).
            var (result, base, exponent) = (1, x, y)
            while exponent > 0 {
                if exponent & 1 == 1 {
                    let (r, o) = result.multipliedReportingOverflow(by: base)
                    if o { throw overflow }
                    result = r
                }
                exponent >>= 1
                guard exponent > 0 else { break }
                let (square, o) = base.multipliedReportingOverflow(by: base)
                if o { throw overflow }
                base = square
            }
            return .int(result)
        default: return nil
        }
    }

    /// The most elements (or UTF-8 bytes) a repetition makes: more is an error, not an abort.
    static let maximumRepetition = 10_000_000

    private static func checkSize(_ size: Int, times count: Int, line: Int) throws(TemplateError) {
        let (total, overflow) = size.multipliedReportingOverflow(by: max(count, 0))
        guard !overflow, total <= maximumRepetition else {
            throw TemplateError(.runtime, line: line, "a repetition of more than \(maximumRepetition) elements")
        }
    }

    /// Python's `needle in haystack`: a substring, a list element, a dict key.
    static func contains(_ haystack: Value, _ needle: Value, line: Int) throws(TemplateError) -> Bool {
        switch haystack {
        case .string(let text):
            guard case .string(let part) = needle else {
                throw TemplateError(.runtime, line: line, "'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return part.isEmpty || text.unicodeScalars.firstRange(of: part.unicodeScalars) != nil
        case .array(let elements), .tuple(let elements): return elements.contains { Value.equal($0, needle) }
        case .object(let object): return needle.string.map { object[$0] != nil } ?? false
        case .namespace(let namespace): return needle.string.map { namespace.members[$0] != nil } ?? false
        case .undefined: return false
        default: throw TemplateError(.runtime, line: line, "argument of type '\(haystack.typeName)' is not iterable")
        }
    }

    /// -1, 0 or 1, or nil where Python cannot order the two.
    static func compare(_ a: Value, _ b: Value) -> Int? {
        switch (a, b) {
        case (.string(let x), .string(let y)):
            if x.unicodeScalars.elementsEqual(y.unicodeScalars) { return 0 }
            return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars) ? -1 : 1
        case (.array(let x), .array(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !Value.equal(p, q) { return compare(p, q) }
            return x.count == y.count ? 0 : x.count < y.count ? -1 : 1
        default:
            guard let x = a.number, let y = b.number else { return nil }
            return x == y ? 0 : x < y ? -1 : 1
        }
    }
}
