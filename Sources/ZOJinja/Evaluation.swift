import ZOFormats

extension Renderer {
    func evaluate(_ expression: Expression) throws(TemplateError) -> Value {
        switch expression {
        case .literal(let value): return value
        case .name(let name, _): return lookup(name)
        case .list(let elements): return .array(try evaluate(elements))
        case .tuple(let elements): return .tuple(try evaluate(elements))
        case .dict(let members):
            var object = OrderedMembers<Value>()
            for (keyExpression, valueExpression) in members {
                let key = try evaluate(keyExpression)
                guard case .string(let name) = key else {
                    throw TemplateError(.unsupported, line: 0, "dictionary keys other than strings (\(key.repr))")
                }
                object[name] = try evaluate(valueExpression)
            }
            return .object(object)
        case .member(let base, let name, let line):
            return try Members.attribute(name, of: try evaluate(base), line: line)
        case .item(let base, let index, let line):
            return try Members.item(try evaluate(index), of: try evaluate(base), line: line)
        case .slice(let base, let start, let stop, let step, let line):
            return try slice(try evaluate(base), start.map(evaluate), stop.map(evaluate), step.map(evaluate), line: line)
        case .call(let callee, let arguments, let line):
            let function = try evaluate(callee)
            guard case .function(let f) = function else {
                if case .undefined(let what) = function { throw TemplateError(.runtime, line: line, what) }
                throw TemplateError(.runtime, line: line, "'\(function.typeName)' object is not callable")
            }
            return try f.call(try evaluate(arguments, line: line))
        case .filter(let base, let name, let arguments, let line):
            return try Filters.apply(name, to: try evaluate(base), try evaluate(arguments, line: line), renderer: self)
        case .test(let base, let name, let arguments, let negated, let line):
            let result = try Tests.apply(name, to: try evaluate(base), try evaluate(arguments, line: line), renderer: self)
            return .bool(result != negated)
        case .unary(let op, let operand, let line):
            return try unary(op, try evaluate(operand), line: line)
        case .binary(let op, let left, let right, let line):
            return try Operators.binary(op, try evaluate(left), try evaluate(right), line: line)
        case .comparison(let first, let chain):
            var left = try evaluate(first)
            for link in chain {
                let right = try evaluate(link.operand)
                guard try Operators.binary(link.op, left, right, line: link.line).isTruthy else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .logical(let isAnd, let left, let right):
            let value = try evaluate(left)
            return value.isTruthy == isAnd ? try evaluate(right) : value
        case .conditional(let value, let condition, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(value) }
            return try otherwise.map(evaluate) ?? .undefined("the condition of an 'if' without 'else' was false")
        }
    }

    private func evaluate(_ expressions: [Expression]) throws(TemplateError) -> [Value] {
        var values: [Value] = []
        for expression in expressions { values.append(try evaluate(expression)) }
        return values
    }

    func evaluate(_ arguments: [Argument], line: Int) throws(TemplateError) -> Arguments {
        var result = Arguments(line: line)
        for argument in arguments {
            let value = try evaluate(argument.value)
            if let name = argument.name { result.keyword[name] = value } else { result.positional.append(value) }
        }
        return result
    }

    private func unary(_ op: String, _ value: Value, line: Int) throws(TemplateError) -> Value {
        if op == "not" { return .bool(!value.isTruthy) }
        if case .undefined(let what) = value { throw TemplateError(.runtime, line: line, what) }
        switch (op, value) {
        case ("-", .int(let x)):
            guard x != .min else { throw TemplateError(.unsupported, line: line, "integers beyond 64 bits") }
            return .int(-x)
        case ("-", .double(let x)): return .double(-x)
        case ("-", .bool(let x)): return .int(x ? -1 : 0)
        case ("+", .int), ("+", .double): return value
        case ("+", .bool(let x)): return .int(x ? 1 : 0)
        default: throw TemplateError(.runtime, line: line, "bad operand type for unary \(op): '\(value.typeName)'")
        }
    }

    /// Python's `sequence[start:stop:step]` of a list or string.
    private func slice(_ base: Value, _ start: Value?, _ stop: Value?, _ step: Value?, line: Int) throws(TemplateError) -> Value {
        func bound(_ value: Value?) throws(TemplateError) -> Int? {
            guard let value, !(value.isUndefined), value.typeName != "NoneType" else { return nil }
            guard let integer = value.integer else {
                throw TemplateError(.runtime, line: line, "slice indices must be integers or None")
            }
            return integer
        }
        let step = try bound(step) ?? 1
        guard step != 0 else { throw TemplateError(.runtime, line: line, "slice step cannot be zero") }
        let (first, last) = (try bound(start), try bound(stop))
        func indices(_ count: Int) -> [Int] {
            func clamp(_ index: Int?, _ default: Int) -> Int {
                guard var index else { return `default` }
                if index < 0 { index += count }
                return step > 0 ? min(max(index, 0), count) : min(max(index, -1), count - 1)
            }
            let from = clamp(first, step > 0 ? 0 : count - 1), to = clamp(last, step > 0 ? count : -1)
            return Array(stride(from: from, to: to, by: step))
        }
        switch base {
        case .array(let elements): return .array(indices(elements.count).map { elements[$0] })
        case .tuple(let elements): return .tuple(indices(elements.count).map { elements[$0] })
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            var out = String.UnicodeScalarView()
            for index in indices(scalars.count) { out.append(scalars[index]) }
            return .string(String(out))
        case .undefined(let what): throw TemplateError(.runtime, line: line, what)
        default: throw TemplateError(.runtime, line: line, "'\(base.typeName)' object is not subscriptable")
        }
    }
}
