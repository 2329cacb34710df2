import ZOFormats

/// A value in a template, with Python's meaning (Jinja runs on Python): truthiness, `str`,
/// equality and ordering as Python defines them.
public enum Value {
    /// A name or member that does not exist; `what` says which, for the error when it is used.
    case undefined(String)
    /// Python's None.
    case none
    case bool(Bool)
    /// A 64-bit integer (beyond that is an error).
    case int(Int)
    /// A float.
    case double(Double)
    case string(String)
    /// A Python list.
    case array([Value])
    /// A Python tuple (`items()` pairs, `(a, b)`): a list that prints in parentheses.
    case tuple([Value])
    /// A Python dict (string keys, insertion order).
    case object(OrderedMembers<Value>)
    /// `namespace(…)`: the one mutable value, shared by reference.
    case namespace(Namespace)
    /// A macro or a global function.
    case function(Function)

    /// The value of a JSON document (objects keep their key order).
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .none
        case .bool(let value): self = .bool(value)
        case .int(let value): self = .int(value)
        case .double(let value): self = .double(value)
        case .string(let value): self = .string(value)
        case .array(let elements): self = .array(elements.map(Value.init))
        case .object(let object): self = .object(OrderedMembers(object.members.map { ($0.key, Value($0.value)) }))
        }
    }

    /// The JSON of this value (`tojson`), or nil for what JSON cannot hold (undefined, functions).
    var json: JSONValue? {
        switch self {
        case .undefined, .function: nil
        case .none: JSONValue.null
        case .bool(let value): .bool(value)
        case .int(let value): .int(value)
        case .double(let value): .double(value)
        case .string(let value): .string(value)
        case .array(let elements), .tuple(let elements): elements.mapOptional(\.json).map(JSONValue.array)
        case .object(let object): object.members.mapOptional { member in member.value.json.map { (member.key, $0) } }
            .map { JSONValue.object(JSONObject($0)) }
        case .namespace: nil
        }
    }

    /// Python's truth: empty strings, collections, zero, None and undefined are false.
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let value): value
        case .int(let value): value != 0
        case .double(let value): value != 0
        case .string(let value): !value.isEmpty
        case .array(let elements), .tuple(let elements): !elements.isEmpty
        case .object(let object): object.count > 0
        case .namespace, .function: true
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { true } else { false }
    }

    /// Python's type name, for messages ("str", "int", "dict", …).
    var typeName: String {
        switch self {
        case .undefined: "undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .array: "list"
        case .tuple: "tuple"
        case .object: "dict"
        case .namespace: "Namespace"
        case .function: "function"
        }
    }

    /// What `{{ value }}` prints: Python's `str` (undefined prints nothing).
    var text: String {
        switch self {
        case .undefined: ""
        case .string(let value): value
        default: repr
        }
    }

    /// Python's `repr`: strings in quotes, lists and dicts spelled out.
    var repr: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case .bool(let value): value ? "True" : "False"
        case .int(let value): String(value)
        case .double(let value): pythonFloat(value)
        case .string(let value): Value.pythonQuoted(value)
        case .array(let elements): "[" + elements.map(\.repr).joined(separator: ", ") + "]"
        case .tuple(let elements): "(" + elements.map(\.repr).joined(separator: ", ") + (elements.count == 1 ? ",)" : ")")
        case .object(let object): "{" + object.members.map { Value.pythonQuoted($0.key) + ": " + $0.value.repr }
            .joined(separator: ", ") + "}"
        case .namespace(let namespace): "<Namespace " + Value.object(namespace.members).repr + ">"
        case .function(let function): "<function \(function.name)>"
        }
    }

    /// Python's string repr: single quotes unless the text has ' and no ".
    static func pythonQuoted(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where Character(scalar) == quote: out += "\\" + String(quote)
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + String(quote)
    }

    /// The elements a `for` loop or filter walks: a list's items, a dict's keys, a string's
    /// characters; nil when the value cannot be iterated. Undefined iterates as empty.
    var iterated: [Value]? {
        switch self {
        case .undefined: []
        case .array(let elements), .tuple(let elements): elements
        case .object(let object): object.keys.map(Value.string)
        case .string(let value): value.unicodeScalars.map { .string(String($0)) }
        case .namespace(let namespace): namespace.members.keys.map(Value.string)
        default: nil
        }
    }

    /// Python's `==`: numbers compare by value (True == 1), containers element by element.
    static func equal(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.array(let x), .array(let y)), (.tuple(let x), .tuple(let y)): return x.count == y.count && zip(x, y).allSatisfy(equal)
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.members.allSatisfy { member in y[member.key].map { equal(member.value, $0) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x === y
        default:
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }

    /// Whether lists, tuples and dicts nest more than `limit` levels (recursion stops there).
    func nestsDeeper(than limit: Int) -> Bool {
        guard limit >= 0 else { return true }
        switch self {
        case .array(let elements), .tuple(let elements): return elements.contains { $0.nestsDeeper(than: limit - 1) }
        case .object(let object): return object.members.contains { $0.value.nestsDeeper(than: limit - 1) }
        case .namespace(let namespace): return namespace.members.members.contains { $0.value.nestsDeeper(than: limit - 1) }
        default: return false
        }
    }

    /// The text, if this is a string.
    var string: String? {
        if case .string(let value) = self { value } else { nil }
    }

    /// The elements of a list or tuple.
    var elements: [Value]? {
        switch self {
        case .array(let elements), .tuple(let elements): elements
        default: nil
        }
    }

    /// The numeric value of ints, floats and booleans (Python's bool is an int).
    var number: Double? {
        switch self {
        case .bool(let value): value ? 1 : 0
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    /// The integer value of ints and booleans.
    var integer: Int? {
        switch self {
        case .bool(let value): value ? 1 : 0
        case .int(let value): value
        default: nil
        }
    }
}

/// A `namespace(…)` object: attributes assignable with `{% set ns.name = … %}` from inside loops.
public final class Namespace {
    var members: OrderedMembers<Value>

    init(_ members: OrderedMembers<Value>) { self.members = members }

    /// transformers refuses names starting with "_" on a namespace (no reaching Python internals).
    static func checkName(_ name: String, line: Int) throws(TemplateError) {
        guard name.hasPrefix("_") else { return }
        throw TemplateError(.runtime, line: line, "Chat templates cannot store underscore-prefixed attributes on a namespace, "
                            + "but got '\(name)'. Please rename the attribute.")
    }
}

/// A callable value: a macro or a global (`raise_exception`, `namespace`, `range`, …).
public struct Function {
    let name: String
    let call: (Arguments) throws(TemplateError) -> Value
}

/// The arguments of a call: positional, then keyword.
struct Arguments {
    var positional: [Value] = []
    var keyword: OrderedMembers<Value> = OrderedMembers()
    /// The template line of the call, for errors.
    var line: Int

    /// Argument `index`, or keyword `name`, or nil.
    func value(_ index: Int, _ name: String) -> Value? {
        index < positional.count ? positional[index] : keyword[name]
    }
}

extension Array {
    /// `transform` of every element, or nil if any gives nil.
    func mapOptional<T>(_ transform: (Element) -> T?) -> [T]? {
        var out: [T] = []
        out.reserveCapacity(count)
        for element in self {
            guard let mapped = transform(element) else { return nil }
            out.append(mapped)
        }
        return out
    }
}
