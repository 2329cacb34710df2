import ZOFormats

/// The tokens of one tag, read as expressions with Jinja's precedence (loosest first):
/// `x if c else y`, `or`, `and`, `not`, comparisons and `in`, `+ -`, `~`, `* / // %`, `**`,
/// unary `- +`, then a primary with `.name`, `[…]`, `(…)`, `| filter` and `is test` after it.
struct TokenStream {
    private let tokens: [Token]
    private var position = 0
    private let tagLine: Int
    private var depth = 0

    /// Deepest nesting of brackets and operators accepted: deeper is an error, not a stack overflow.
    static let maximumDepth = 128

    init(_ tokens: [Token], line: Int) {
        self.tokens = tokens
        tagLine = line
    }

    private var line: Int { position < tokens.count ? tokens[position].line : tokens.last?.line ?? tagLine }

    mutating func next() -> Token? {
        guard position < tokens.count else { return nil }
        defer { position += 1 }
        return tokens[position]
    }

    private func peek(_ offset: Int = 0) -> Token.Kind? {
        position + offset < tokens.count ? tokens[position + offset].kind : nil
    }

    mutating func accept(symbol: String) -> Bool {
        guard peek() == .symbol(symbol) else { return false }
        position += 1
        return true
    }

    mutating func accept(name: String) -> Bool {
        guard peek() == .name(name) else { return false }
        position += 1
        return true
    }

    mutating func expect(symbol: String) throws(TemplateError) {
        guard accept(symbol: symbol) else { throw unexpected("'\(symbol)'") }
    }

    mutating func expectName(_ name: String) throws(TemplateError) {
        guard accept(name: name) else { throw unexpected("'\(name)'") }
    }

    mutating func expectEnd() throws(TemplateError) {
        guard position == tokens.count else { throw unexpected("the end of the tag") }
    }

    mutating func name() throws(TemplateError) -> String {
        guard case .name(let name) = peek() else { throw unexpected("a name") }
        position += 1
        return name
    }

    private mutating func enter() throws(TemplateError) {
        depth += 1
        guard depth <= TokenStream.maximumDepth else {
            throw TemplateError(.unsupported, line: line, "expressions nested deeper than \(TokenStream.maximumDepth) levels")
        }
    }

    private func unexpected(_ expected: String) -> TemplateError {
        let found: String = switch peek() {
        case nil: "the end of the tag"
        case .name(let name): "'\(name)'"
        case .symbol(let symbol): "'\(symbol)'"
        case .string(let string): Value.pythonQuoted(string)
        case .int(let value): String(value)
        case .double(let value): pythonFloat(value)
        }
        return TemplateError(.syntax, line: line, "expected \(expected), found \(found)")
    }

    /// A `for`/`set` target: `name`, `a, b`, `(a, b)` or (set only) `ns.attribute`.
    mutating func target(allowsAttribute: Bool) throws(TemplateError) -> Target {
        if accept(symbol: "(") {
            var names = [try name()]
            while accept(symbol: ",") {
                if peek() == .symbol(")") { break }
                names.append(try name())
            }
            try expect(symbol: ")")
            return .tuple(names)
        }
        let first = try name()
        if allowsAttribute, accept(symbol: ".") { return .attribute(namespace: first, name: try name()) }
        guard peek() == .symbol(",") else { return .name(first) }
        var names = [first]
        while accept(symbol: ",") { names.append(try name()) }
        return .tuple(names)
    }

    /// A filter's name and arguments after `|` (or in `{% filter %}`).
    mutating func filterCall() throws(TemplateError) -> (String, [Argument]) {
        let name = try name()
        return (name, accept(symbol: "(") ? try arguments() : [])
    }

    /// An expression; `a, b` (and `a,`) is a tuple, as in `{% set x = 1, 2 %}` or `(1,)`.
    mutating func expression(allowsConditional: Bool = true) throws(TemplateError) -> Expression {
        let first = try conditional(allowsConditional)
        guard allowsConditional, peek() == .symbol(",") else { return first }
        var elements = [first]
        while accept(symbol: ",") {
            if position == tokens.count || [.symbol(")"), .symbol("]")].contains(peek()) { break }
            elements.append(try conditional(true))
        }
        return .tuple(elements)
    }

    private mutating func conditional(_ allowed: Bool) throws(TemplateError) -> Expression {
        try enter()
        defer { depth -= 1 }
        let value = try or()
        guard allowed, accept(name: "if") else { return value }
        let condition = try or()
        return .conditional(value, condition, accept(name: "else") ? try conditional(true) : nil)
    }

    private mutating func or() throws(TemplateError) -> Expression { try logical(isAnd: false) }

    /// Operands joined by `or` (their operands joined by `and`), left to right.
    private mutating func logical(isAnd: Bool) throws(TemplateError) -> Expression {
        let entered = depth
        defer { depth = entered }
        var left = isAnd ? try not() : try logical(isAnd: true)
        while accept(name: isAnd ? "and" : "or") {
            try enter()
            left = .logical(isAnd: isAnd, left, isAnd ? try not() : try logical(isAnd: true))
        }
        return left
    }

    private mutating func not() throws(TemplateError) -> Expression {
        let line = self.line
        if accept(name: "not") {
            try enter()
            defer { depth -= 1 }
            return .unary("not", try not(), line: line)
        }
        return try comparison()
    }

    private static let comparisons: Set<String> = ["==", "!=", "<", "<=", ">", ">="]

    private mutating func comparison() throws(TemplateError) -> Expression {
        let first = try arithmetic()
        var chain: [(op: String, operand: Expression, line: Int)] = []
        while true {
            let line = self.line
            if case .symbol(let op) = peek(), TokenStream.comparisons.contains(op) {
                position += 1
                chain.append((op, try arithmetic(), line))
            } else if accept(name: "in") {
                chain.append(("in", try arithmetic(), line))
            } else if peek() == .name("not"), peek(1) == .name("in") {
                position += 2
                chain.append(("not in", try arithmetic(), line))
            } else {
                return chain.isEmpty ? first : .comparison(first, chain)
            }
        }
    }

    /// The arithmetic operators by binding, loosest first (Jinja's: `~` between `+` and `*`).
    private static let arithmetic: [Set<String>] = [["+", "-"], ["~"], ["*", "/", "//", "%"], ["**"]]

    /// Operands of `arithmetic[level]` and tighter, joined left to right.
    private mutating func arithmetic(level: Int = 0) throws(TemplateError) -> Expression {
        guard level < TokenStream.arithmetic.count else { return try unary() }
        let entered = depth
        defer { depth = entered }
        var left = try arithmetic(level: level + 1)
        while case .symbol(let op) = peek(), TokenStream.arithmetic[level].contains(op) {
            let line = self.line
            position += 1
            try enter()
            left = .binary(op, left, try arithmetic(level: level + 1), line: line)
        }
        return left
    }

    /// A signed operand; filters and tests after it apply to the signed value (`-x|abs`).
    private mutating func unary(withFilters: Bool = true) throws(TemplateError) -> Expression {
        let line = self.line
        var value: Expression
        if case .symbol(let op) = peek(), op == "-" || op == "+" {
            position += 1
            try enter()
            defer { depth -= 1 }
            value = .unary(op, try unary(withFilters: false), line: line)
        } else {
            value = try postfix(try primary())
        }
        return withFilters ? try filtersAndTests(value) : value
    }

    private mutating func primary() throws(TemplateError) -> Expression {
        let line = self.line
        guard let kind = next()?.kind else { throw unexpected("an expression") }
        switch kind {
        case .int(let value): return .literal(.int(value))
        case .double(let value): return .literal(.double(value))
        case .string(var value):
            while case .string(let more) = peek() { value += more; position += 1 }
            return .literal(.string(value))
        case .name(let name):
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(name, line: line)
            }
        case .symbol("("):
            if accept(symbol: ")") { return .tuple([]) }
            let inner = try expression()
            try expect(symbol: ")")
            return inner
        case .symbol("["):
            var elements: [Expression] = []
            while !accept(symbol: "]") {
                if !elements.isEmpty { try expect(symbol: ",") }
                if accept(symbol: "]") { break }
                elements.append(try conditional(true))
            }
            return .list(elements)
        case .symbol("{"):
            var members: [(Expression, Expression)] = []
            while !accept(symbol: "}") {
                if !members.isEmpty { try expect(symbol: ",") }
                if accept(symbol: "}") { break }
                let key = try conditional(true)
                try expect(symbol: ":")
                members.append((key, try conditional(true)))
            }
            return .dict(members)
        default:
            position -= 1
            throw unexpected("an expression")
        }
    }

    private mutating func postfix(_ base: Expression) throws(TemplateError) -> Expression {
        let entered = depth
        defer { depth = entered }
        var value = base
        while true {
            let line = self.line
            try enter()
            if accept(symbol: ".") {
                switch next()?.kind {
                case .name(let name): value = .member(value, name, line: line)
                case .int(let index): value = .item(value, .literal(.int(index)), line: line)
                default: position -= 1; throw unexpected("an attribute name after '.'")
                }
            } else if accept(symbol: "[") {
                value = try subscriptOrSlice(value, line: line)
            } else if accept(symbol: "(") {
                value = .call(value, try arguments(), line: line)
            } else {
                return value
            }
        }
    }

    private mutating func subscriptOrSlice(_ base: Expression, line: Int) throws(TemplateError) -> Expression {
        var parts: [Expression?] = [nil]
        var isSlice = false
        while !accept(symbol: "]") {
            if accept(symbol: ":") {
                isSlice = true
                parts.append(nil)
                guard parts.count <= 3 else { throw unexpected("']'") }
            } else {
                guard parts[parts.count - 1] == nil else { throw unexpected("':' or ']'") }
                parts[parts.count - 1] = try expression()
            }
        }
        guard isSlice else {
            guard let index = parts[0] else { throw TemplateError(.syntax, line: line, "empty subscript '[]'") }
            return .item(base, index, line: line)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, parts[0], parts[1], parts[2], line: line)
    }

    /// Call arguments after '(' up to ')': positional first, then `name=value`.
    mutating func arguments() throws(TemplateError) -> [Argument] {
        var arguments: [Argument] = []
        while !accept(symbol: ")") {
            if !arguments.isEmpty { try expect(symbol: ",") }
            if accept(symbol: ")") { break }
            if case .name(let name) = peek(), peek(1) == .symbol("=") {
                position += 2
                arguments.append(Argument(name: name, value: try conditional(true)))
            } else {
                guard arguments.allSatisfy({ $0.name == nil }) else {
                    throw TemplateError(.syntax, line: line, "a positional argument after a keyword argument")
                }
                arguments.append(Argument(name: nil, value: try conditional(true)))
            }
        }
        return arguments
    }

    private static let notTestArguments: Set<String> = ["else", "or", "and", "if", "in", "is", "not"]

    private mutating func filtersAndTests(_ base: Expression) throws(TemplateError) -> Expression {
        let entered = depth
        defer { depth = entered }
        var value = base
        while true {
            let line = self.line
            try enter()
            if accept(symbol: "|") {
                let (name, arguments) = try filterCall()
                value = .filter(value, name, arguments, line: line)
            } else if accept(name: "is") {
                let negated = accept(name: "not")
                let name = try name()
                var testArguments: [Argument] = []
                if accept(symbol: "(") {
                    testArguments = try arguments()
                } else if let kind = peek(), startsTestArgument(kind) {
                    testArguments = [Argument(name: nil, value: try postfix(try primary()))]
                }
                value = .test(value, name, testArguments, negated: negated, line: line)
            } else {
                return value
            }
        }
    }

    /// Whether a token after `is name` is the test's one argument written without parentheses.
    private func startsTestArgument(_ kind: Token.Kind) -> Bool {
        switch kind {
        case .int, .double, .string: true
        case .name(let name): !TokenStream.notTestArguments.contains(name)
        case .symbol(let symbol): symbol == "[" || symbol == "{"
        }
    }
}
