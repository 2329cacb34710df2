import ZOFormats

/// Jinja's tests (`value is name(arguments)`), with Python's type distinctions (a bool is a
/// number but not an integer; a string is iterable).
enum Tests {
    /// The names known (a template reaching another is an error then, as in Jinja).
    static let names: Set<String> = [
        "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string", "mapping",
        "iterable", "sequence", "callable", "sameas", "equalto", "eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">",
        "ge", ">=", "in", "odd", "even", "divisibleby", "lower", "upper", "escaped", "filter", "test",
    ]

    static func apply(_ name: String, to value: Value, _ arguments: Arguments, renderer: Renderer) throws(TemplateError) -> Bool {
        let other = arguments.value(0, "other") ?? .undefined("the test '\(name)' needs an argument")
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.number != nil
        case "string": return value.string != nil
        case "mapping": if case .object = value { return true } else { return false }
        case "iterable": return value.iterated != nil
        case "sequence":
            switch value {
            case .string, .array, .tuple, .object, .undefined: return true
            default: return false
            }
        case "callable": if case .function = value { return true } else { return false }
        case "sameas": return sameAs(value, other)
        case "equalto", "eq", "==": return Value.equal(value, other)
        case "ne", "!=": return !Value.equal(value, other)
        case "lt", "<", "le", "<=", "gt", ">", "ge", ">=":
            let op = ["lt": "<", "le": "<=", "gt": ">", "ge": ">="][name] ?? name
            return try Operators.binary(op, value, other, line: arguments.line).isTruthy
        case "in": return try Operators.contains(other, value, line: arguments.line)
        case "odd", "even", "divisibleby":
            guard let x = value.integer else {
                throw TemplateError(.runtime, line: arguments.line, "the test '\(name)' needs an integer, not \(value.typeName)")
            }
            if name == "divisibleby" {
                guard let y = other.integer, y != 0 else {
                    throw TemplateError(.runtime, line: arguments.line, "divisibleby needs a non-zero integer")
                }
                return x.remainderReportingOverflow(dividingBy: y).partialValue == 0
            }
            return (x % 2 != 0) == (name == "odd")
        case "lower", "upper": return StringMethods.classify(value.text, "is" + name)
        case "escaped": return false
        case "filter": return value.string.map(Filters.names.contains) ?? false
        case "test": return value.string.map(Tests.names.contains) ?? false
        default: throw TemplateError(.runtime, line: arguments.line, "no test named '\(name)'")
        }
    }

    /// Python's `is`: the same singleton (None, True, False) or the same namespace.
    private static func sameAs(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.none, .none): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y && (-5...256).contains(x)
        case (.namespace(let x), .namespace(let y)): x === y
        case (.undefined, .undefined): true
        default: false
        }
    }
}
