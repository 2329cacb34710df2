import ZOFormats

/// Python's string formatting as templates use it: `"%s: %d" % (a, b)` and
/// `"{}: {name}".format(a, name=b)`, for the common directives; others are an error naming them.
enum StringFormatting {
    /// `format % values`: %s %r %d %i %f %F %x %X %o %c %% with flags - + 0 space, width and precision;
    /// `%(name)s` takes from a dict.
    static func percent(_ format: String, _ values: Value, line: Int) throws(TemplateError) -> String {
        let positional: [Value]
        if case .tuple(let elements) = values { positional = elements } else { positional = [values] }
        var next = 0
        var out = ""
        var characters = Array(format)[...]
        while let character = characters.popFirst() {
            guard character == "%" else { out.append(character); continue }
            var value: Value?
            if characters.first == "(" {
                guard let close = characters.firstIndex(of: ")") else {
                    throw TemplateError(.runtime, line: line, "incomplete format key")
                }
                let key = String(characters[characters.index(after: characters.startIndex)..<close])
                guard case .object(let object) = values, let found = object[key] else {
                    throw TemplateError(.runtime, line: line, "format key '\(key)' not in the values")
                }
                value = found
                characters = characters[characters.index(after: close)...]
            }
            var flags = Set<Character>()
            while let flag = characters.first, "-+ 0#".contains(flag) { flags.insert(flag); characters.removeFirst() }
            let width = try number(&characters, line: line) ?? 0
            var precision: Int?
            if characters.first == "." {
                characters.removeFirst()
                precision = try number(&characters, line: line) ?? 0
            }
            guard let type = characters.popFirst() else { throw TemplateError(.runtime, line: line, "incomplete format") }
            if type == "%" { out.append("%"); continue }
            if value == nil {
                guard next < positional.count else { throw TemplateError(.runtime, line: line, "not enough arguments for format string") }
                value = positional[next]
                next += 1
            }
            let body = try directive(type, value!, flags: flags, precision: precision, line: line)
            let padding = String(repeating: flags.contains("0") && !flags.contains("-") && type != "s" && type != "r" ? "0" : " ",
                                 count: max(0, width - body.count))
            if flags.contains("-") {
                out += body + padding
            } else if padding.first == "0", body.first == "-" || body.first == "+" {
                out += String(body.first!) + padding + body.dropFirst()
            } else {
                out += padding + body
            }
        }
        if next < positional.count, values.string == nil, case .tuple = values {
            throw TemplateError(.runtime, line: line, "not all arguments converted during string formatting")
        }
        return out
    }

    /// Most digits of a width or precision (Python's own limits are far beyond any template's use).
    static let maximumWidth = 1000

    /// The decimal number at the start of `characters`, consumed.
    private static func number(_ characters: inout ArraySlice<Character>, line: Int) throws(TemplateError) -> Int? {
        let digits = characters.prefix { $0.isASCII && $0.isNumber }
        characters = characters.dropFirst(digits.count)
        guard !digits.isEmpty else { return nil }
        guard digits.count <= 4, let value = Int(String(digits)), value <= maximumWidth else {
            throw TemplateError(.unsupported, line: line, "a format width or precision above \(maximumWidth)")
        }
        return value
    }

    private static func directive(_ type: Character, _ value: Value, flags: Set<Character>, precision: Int?, line: Int)
        throws(TemplateError) -> String {
        func sign(_ negative: Bool) -> String { negative ? "-" : flags.contains("+") ? "+" : flags.contains(" ") ? " " : "" }
        switch type {
        case "s": return precision.map { String(value.text.prefix($0)) } ?? value.text
        case "r": return value.repr
        case "d", "i", "x", "X", "o":
            guard let real = value.number else {
                throw TemplateError(.runtime, line: line, "%\(type) format: a number is required, not \(value.typeName)")
            }
            guard let number = value.integer ?? Int(exactly: real.rounded(.towardZero)) else {
                throw real.isNaN ? TemplateError(.runtime, line: line, "cannot convert float NaN to integer")
                                 : TemplateError(.unsupported, line: line, "integers beyond 64 bits (\(pythonFloat(real)))")
            }
            let radix = type == "x" || type == "X" ? 16 : type == "o" ? 8 : 10
            let digits = String(number.magnitude, radix: radix, uppercase: type == "X")
            return sign(number < 0) + digits
        case "f", "F":
            guard let number = value.number else {
                throw TemplateError(.runtime, line: line, "%\(type) format: a number is required, not \(value.typeName)")
            }
            guard number.isFinite else { return number.isNaN ? "nan" : sign(number < 0) + "inf" }
            guard let text = fixed(abs(number), digits: precision ?? 6) else {
                throw TemplateError(.unsupported, line: line, "%\(type) of \(pythonFloat(number)) with \(precision ?? 6) decimals")
            }
            return sign(number < 0) + text
        case "c":
            if let code = value.integer, let scalar = Unicode.Scalar(UInt32(clamping: code)) { return String(scalar) }
            if let text = value.string, text.unicodeScalars.count == 1 { return text }
            throw TemplateError(.runtime, line: line, "%c requires an int or a single character")
        default: throw TemplateError(.unsupported, line: line, "the format directive '%\(type)'")
        }
    }

    /// `value` (finite, ≥ 0) with `digits` decimals, rounded as C's printf rounds the exact
    /// binary value (half to even); nil beyond what 64-bit integers hold (2^53 and 17 decimals).
    static func fixed(_ value: Double, digits: Int) -> String? {
        guard digits <= 17 else { return nil }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        guard value * scale < 9e15 else { return nil }
        let whole = Int(exactRounded(value, scale: scale))
        let power = Int(scale)
        let integer = String(whole / power), fraction = String(whole % power)
        return digits == 0 ? integer : integer + "." + String(repeating: "0", count: digits - fraction.count) + fraction
    }

    /// value·scale rounded half to even as the exact product would round (an FMA recovers the
    /// product's rounding error where it lands on a half).
    static func exactRounded(_ value: Double, scale: Double) -> Double {
        let product = value * scale
        var rounded = product.rounded(.toNearestOrEven)
        if product - product.rounded(.down) == 0.5 {
            let error = (-product).addingProduct(value, scale)
            if error != 0 { rounded = error > 0 ? product.rounded(.up) : product.rounded(.down) }
        }
        return rounded
    }

    /// `format.format(positional…, keyword…)`: `{}`, `{0}`, `{name}`, `{x!r}`, `{{` and `}}`; a
    /// format spec after ':' is an error naming it.
    static func format(_ format: String, _ arguments: Arguments) throws(TemplateError) -> String {
        var out = "", automatic = 0
        var characters = Array(format)[...]
        while let character = characters.popFirst() {
            if character == "}" {
                guard characters.popFirst() == "}" else { throw TemplateError(.runtime, line: arguments.line, "single '}' in format string") }
                out.append("}")
                continue
            }
            guard character == "{" else { out.append(character); continue }
            if characters.first == "{" { characters.removeFirst(); out.append("{"); continue }
            guard let close = characters.firstIndex(of: "}") else {
                throw TemplateError(.runtime, line: arguments.line, "single '{' in format string")
            }
            var field = String(characters[..<close])
            characters = characters[characters.index(after: close)...]
            if let colon = field.firstIndex(of: ":") {
                throw TemplateError(.unsupported, line: arguments.line, "the format spec '\(field[colon...])'")
            }
            var conversion: Character?
            if let bang = field.firstIndex(of: "!") {
                conversion = field[field.index(after: bang)...].first
                field = String(field[..<bang])
            }
            let value: Value?
            if field.isEmpty {
                value = automatic < arguments.positional.count ? arguments.positional[automatic] : nil
                automatic += 1
            } else if let index = Int(field) {
                value = index < arguments.positional.count ? arguments.positional[index] : nil
            } else {
                value = arguments.keyword[field]
            }
            guard let value else { throw TemplateError(.runtime, line: arguments.line, "no value for the field '{\(field)}'") }
            out += conversion == "r" ? value.repr : value.text
        }
        return out
    }
}
