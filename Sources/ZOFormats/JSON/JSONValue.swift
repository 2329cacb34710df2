/// A JSON document as parsed, objects keeping their keys in file order (what chat templates'
/// `tojson` and `items()` show, as Python's dicts do). Integers and other numbers stay apart,
/// as Python's `json` keeps them.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number written without a fraction or exponent that fits 64 bits.
    case int(Int)
    /// Any other number.
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Members in file order.
    case object(JSONObject)

    /// The string, if this is one.
    public var string: String? {
        if case .string(let value) = self { value } else { nil }
    }

    /// The members, if this is an object.
    public var object: JSONObject? {
        if case .object(let value) = self { value } else { nil }
    }

    /// The elements, if this is an array.
    public var array: [JSONValue]? {
        if case .array(let value) = self { value } else { nil }
    }

    /// What the value is, for error messages: "a string", "an array", ….
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON object: members in file order.
public typealias JSONObject = OrderedMembers<JSONValue>

/// String-keyed members in insertion order (Python's dict); a key set again keeps its first
/// place and takes the new value (as Python's `json.loads` does with a repeated key).
public struct OrderedMembers<Value> {
    /// Keys in order.
    public private(set) var keys: [String] = []
    private var values: [String: Value] = [:]

    public init(_ members: [(String, Value)] = []) {
        for (key, value) in members { self[key] = value }
    }

    /// The value of `key`; setting nil removes it, setting a new key appends it.
    public subscript(key: String) -> Value? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil, values[key] != nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }

    /// (key, value) pairs in order.
    public var members: [(key: String, value: Value)] { keys.map { ($0, values[$0]!) } }

    /// The number of members.
    public var count: Int { keys.count }
}

extension OrderedMembers: Sendable where Value: Sendable {}

extension OrderedMembers: Equatable where Value: Equatable {
    /// Equal members, in any order (as Python's dicts compare).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.values == rhs.values }
}
