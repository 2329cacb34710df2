extension JSONValue {
    /// The text Python's `json.dumps(value, ensure_ascii=False, indent=indent, separators=…,
    /// sort_keys=sortKeys, ensure_ascii=ensureASCII)` writes: ", " and ": " between items without
    /// an indent, "," and ": " with one; control characters escaped, non-ASCII too with
    /// `ensureASCII`; floats as Python's `repr`.
    public func pythonJSON(indent: Int? = nil, itemSeparator: String? = nil, keySeparator: String = ": ",
                           sortKeys: Bool = false, ensureASCII: Bool = false) -> String {
        var out = ""
        let items = itemSeparator ?? (indent == nil ? ", " : ",")
        write(to: &out, indent: indent, level: 0, items: items, keys: keySeparator, sortKeys: sortKeys, ascii: ensureASCII)
        return out
    }

    private func write(to out: inout String, indent: Int?, level: Int, items: String, keys: String, sortKeys: Bool,
                       ascii: Bool) {
        let open = indent.map { "\n" + String(repeating: " ", count: max(0, $0) * (level + 1)) } ?? ""
        let close = indent.map { "\n" + String(repeating: " ", count: max(0, $0) * level) } ?? ""
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += value.isFinite ? pythonFloat(value) : (value.isNaN ? "NaN" : value < 0 ? "-Infinity" : "Infinity")
        case .string(let value): out += JSONValue.quoted(value, ascii: ascii)
        case .array(let elements):
            guard !elements.isEmpty else { out += "[]"; return }
            out += "[" + open
            for (index, element) in elements.enumerated() {
                if index > 0 { out += items + open }
                element.write(to: &out, indent: indent, level: level + 1, items: items, keys: keys, sortKeys: sortKeys,
                              ascii: ascii)
            }
            out += close + "]"
        case .object(let object):
            guard object.count > 0 else { out += "{}"; return }
            out += "{" + open
            let members = sortKeys ? object.members.sorted { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) }
                                   : object.members
            for (index, member) in members.enumerated() {
                if index > 0 { out += items + open }
                out += JSONValue.quoted(member.key, ascii: ascii) + keys
                member.value.write(to: &out, indent: indent, level: level + 1, items: items, keys: keys, sortKeys: sortKeys,
                                   ascii: ascii)
            }
            out += close + "}"
        }
    }

    /// `s` in double quotes with JSON's escapes (non-ASCII as \uXXXX, in surrogate pairs
    /// beyond the BMP, with `ascii`; else kept).
    public static func quoted(_ s: String, ascii: Bool = false) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case _ where scalar.value < 0x20 || (ascii && scalar.value > 0x7E):
                for unit in String(scalar).utf16 {
                    let hex = String(unit, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Python's `repr(float)`: the shortest text that reads back to the same double, with a
/// ".0" on integral values and an exponent (e+XX / e-XX, at least two digits) outside
/// [1e-4, 1e16).
public func pythonFloat(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description is also shortest-round-trip; only its layout differs from Python's.
    let text = "\(value)"
    var sign = "", body = Substring(text)
    if body.hasPrefix("-") { sign = "-"; body = body.dropFirst() }
    // Digits and decimal exponent of the shortest representation.
    var mantissa = body, exponent = 0
    if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        mantissa = body[..<e]
        exponent = Int(body[body.index(after: e)...])!
    }
    var digits = mantissa.filter { $0 != "." }
    let point = mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count
    var decimalExponent = point + exponent  // value = 0.digits × 10^decimalExponent
    while digits.hasPrefix("0"), digits.count > 1 { digits.removeFirst(); decimalExponent -= 1 }
    while digits.hasSuffix("0"), digits.count > 1 { digits.removeLast() }
    let scientific = decimalExponent - 1
    if scientific < -4 || scientific >= 16 {
        let head = String(digits.prefix(1)), tail = String(digits.dropFirst())
        let e = abs(scientific) < 10 ? "0\(abs(scientific))" : "\(abs(scientific))"
        return sign + head + (tail.isEmpty ? "" : "." + tail) + "e" + (scientific < 0 ? "-" : "+") + e
    }
    if decimalExponent <= 0 { return sign + "0." + String(repeating: "0", count: -decimalExponent) + digits }
    if decimalExponent >= digits.count {
        return sign + digits + String(repeating: "0", count: decimalExponent - digits.count) + ".0"
    }
    return sign + digits.prefix(decimalExponent) + "." + digits.dropFirst(decimalExponent)
}
