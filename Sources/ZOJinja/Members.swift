import ZOFormats

/// `value.name` and `value[key]` as Jinja resolves them: a method of the value's Python type
/// first for `.name` (a dict's `items`, a string's `strip`), then a key; `[key]` the other way
/// round. What is not there is undefined (an error only when used). Methods that would change
/// a value are refused, as in transformers' immutable sandbox.
enum Members {
    static func attribute(_ name: String, of base: Value, line: Int) throws(TemplateError) -> Value {
        if let method = try method(name, of: base, line: line) { return method }
        return try key(.string(name), of: base, line: line)
    }

    static func item(_ key: Value, of base: Value, line: Int) throws(TemplateError) -> Value {
        let found = try self.key(key, of: base, line: line)
        guard found.isUndefined, case .string(let name) = key, let method = try method(name, of: base, line: line) else {
            return found
        }
        return method
    }

    private static func key(_ key: Value, of base: Value, line: Int) throws(TemplateError) -> Value {
        let missing = Value.undefined("'\(base.typeName == "dict" ? "dict object" : base.typeName + " object")' has no "
                                      + (key.string.map { "attribute '\($0)'" } ?? "item \(key.repr)"))
        switch base {
        case .undefined(let what): throw TemplateError(.runtime, line: line, what)
        case .object(let object): return key.string.flatMap { object[$0] } ?? missing
        case .namespace(let namespace): return key.string.flatMap { namespace.members[$0] } ?? missing
        case .array(let elements), .tuple(let elements):
            guard var index = key.integer else { return missing }
            if index < 0 { index += elements.count }
            return elements.indices.contains(index) ? elements[index] : missing
        case .string(let text):
            guard var index = key.integer else { return missing }
            let scalars = Array(text.unicodeScalars)
            if index < 0 { index += scalars.count }
            return scalars.indices.contains(index) ? .string(String(Character(scalars[index]))) : missing
        default: return missing
        }
    }

    private static let mutating: [String: Set<String>] = [
        "list": ["append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"],
        "dict": ["update", "pop", "popitem", "setdefault", "clear"],
    ]

    /// `base.name` as a bound method, nil when the type has no such method.
    private static func method(_ name: String, of base: Value, line: Int) throws(TemplateError) -> Value? {
        if mutating[base.typeName]?.contains(name) == true {
            // The sandbox gives an undefined that fails when called.
            return .undefined("access to attribute '\(name)' of '\(base.typeName)' object is unsafe.")
        }
        let call: ((Arguments) throws(TemplateError) -> Value)?
        switch base {
        case .string(let text): call = StringMethods.method(name, of: text)
        case .object(let object): call = dictMethod(name, of: object)
        case .array(let elements), .tuple(let elements): call = listMethod(name, of: elements)
        default: call = nil
        }
        return call.map { .function(Function(name: name, call: $0)) }
    }

    private static func dictMethod(_ name: String, of object: OrderedMembers<Value>)
        -> ((Arguments) throws(TemplateError) -> Value)? {
        switch name {
        case "items": { _ in .array(object.members.map { .tuple([.string($0.key), $0.value]) }) }
        case "keys": { _ in .array(object.keys.map(Value.string)) }
        case "values": { _ in .array(object.members.map(\.value)) }
        case "get": { arguments throws(TemplateError) in
            guard let key = arguments.value(0, "key") else {
                throw TemplateError(.runtime, line: arguments.line, "get() needs a key")
            }
            return key.string.flatMap { object[$0] } ?? arguments.value(1, "default") ?? .none
        }
        default: nil
        }
    }

    private static func listMethod(_ name: String, of elements: [Value]) -> ((Arguments) throws(TemplateError) -> Value)? {
        switch name {
        case "count": { arguments in .int(elements.filter { Value.equal($0, arguments.value(0, "x") ?? .none) }.count) }
        case "index": { arguments throws(TemplateError) in
            let needle = arguments.value(0, "x") ?? .none
            guard let index = elements.firstIndex(where: { Value.equal($0, needle) }) else {
                throw TemplateError(.runtime, line: arguments.line, "\(needle.repr) is not in list")
            }
            return .int(index)
        }
        default: nil
        }
    }
}
