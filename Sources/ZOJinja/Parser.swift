/// Builds the statement tree of a template from its pieces.
struct Parser {
    private let pieces: [Piece]
    private var index = 0
    private var depth = 0

    /// Deepest nesting of block statements accepted: deeper is an error, not a stack overflow.
    static let maximumDepth = 128

    init(_ pieces: [Piece]) { self.pieces = pieces }

    /// The whole template.
    mutating func template() throws(TemplateError) -> [Node] {
        let (nodes, end) = try body(until: [])
        if let end { throw TemplateError(.syntax, line: end.line, "unexpected '\(end.name)'") }
        return nodes
    }

    /// Nodes up to a statement named in `ends` (consumed and returned with its tokens), or the
    /// end of the template (nil).
    private mutating func body(until ends: Set<String>) throws(TemplateError)
        -> ([Node], (name: String, tokens: TokenStream, line: Int)?) {
        var nodes: [Node] = []
        while index < pieces.count {
            let piece = pieces[index]
            index += 1
            switch piece {
            case .text(let text): nodes.append(.text(text))
            case .output(let tokens, let line):
                var stream = TokenStream(tokens, line: line)
                let expression = try stream.expression()
                try stream.expectEnd()
                nodes.append(.output(expression, line: line))
            case .statement(let tokens, let line):
                var stream = TokenStream(tokens, line: line)
                guard case .name(let keyword) = stream.next()?.kind else {
                    throw TemplateError(.syntax, line: line, "a tag '{% %}' must start with a statement name")
                }
                if ends.contains(keyword) { return (nodes, (keyword, stream, line)) }
                nodes.append(try statement(keyword, &stream, line: line))
            }
        }
        if let first = ends.first(where: { $0.hasPrefix("end") }) {
            throw TemplateError(.syntax, line: pieces.lastLine, "missing '{% \(first) %}'")
        }
        return (nodes, nil)
    }

    private mutating func statement(_ keyword: String, _ stream: inout TokenStream, line: Int) throws(TemplateError) -> Node {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Parser.maximumDepth else {
            throw TemplateError(.unsupported, line: line, "statements nested deeper than \(Parser.maximumDepth) levels")
        }
        switch keyword {
        case "if": return try ifChain(&stream, line: line)
        case "for": return try forLoop(&stream, line: line)
        case "set": return try set(&stream, line: line)
        case "macro": return try macro(&stream, line: line)
        case "filter":
            let (name, arguments) = try stream.filterCall()
            try stream.expectEnd()
            return .filterBlock(name, arguments, try block(ending: "endfilter", line: line), line: line)
        case "generation":
            try stream.expectEnd()
            return .generation(try block(ending: "endgeneration", line: line))
        case "break", "continue":
            try stream.expectEnd()
            return keyword == "break" ? .breakLoop(line: line) : .continueLoop(line: line)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endfilter", "endgeneration", "endraw":
            throw TemplateError(.syntax, line: line, "unexpected '\(keyword)'")
        case "call", "include", "import", "from", "extends", "block", "with", "do", "autoescape", "trans":
            throw TemplateError(.unsupported, line: line, "the '{% \(keyword) %}' statement")
        default:
            throw TemplateError(.syntax, line: line, "unknown statement '\(keyword)'")
        }
    }

    /// The body of a block statement up to its end tag (with nothing after the tag's name).
    private mutating func block(ending end: String, line: Int) throws(TemplateError) -> [Node] {
        let (nodes, found) = try body(until: [end])
        guard var found else { throw TemplateError(.syntax, line: line, "missing '{% \(end) %}'") }
        try found.tokens.expectEnd()
        return nodes
    }

    private mutating func ifChain(_ stream: inout TokenStream, line: Int) throws(TemplateError) -> Node {
        var branches: [(condition: Expression, body: [Node])] = []
        var condition = try stream.expression()
        try stream.expectEnd()
        while true {
            let (nodes, found) = try body(until: ["elif", "else", "endif"])
            guard var found else { throw TemplateError(.syntax, line: line, "missing '{% endif %}'") }
            branches.append((condition, nodes))
            switch found.name {
            case "elif":
                condition = try found.tokens.expression()
                try found.tokens.expectEnd()
            case "else":
                try found.tokens.expectEnd()
                return .ifChain(branches, otherwise: try block(ending: "endif", line: line))
            default:
                try found.tokens.expectEnd()
                return .ifChain(branches, otherwise: [])
            }
        }
    }

    private mutating func forLoop(_ stream: inout TokenStream, line: Int) throws(TemplateError) -> Node {
        let target = try stream.target(allowsAttribute: false)
        try stream.expectName("in")
        let iterable = try stream.expression(allowsConditional: false)
        var filter: Expression?
        if stream.accept(name: "if") { filter = try stream.expression(allowsConditional: false) }
        if stream.accept(name: "recursive") { throw TemplateError(.unsupported, line: line, "recursive 'for' loops") }
        try stream.expectEnd()
        let (nodes, found) = try body(until: ["else", "endfor"])
        guard var found else { throw TemplateError(.syntax, line: line, "missing '{% endfor %}'") }
        try found.tokens.expectEnd()
        let otherwise = found.name == "else" ? try block(ending: "endfor", line: line) : []
        return .forLoop(target, iterable, filter: filter, body: nodes, otherwise: otherwise, line: line)
    }

    private mutating func set(_ stream: inout TokenStream, line: Int) throws(TemplateError) -> Node {
        let target = try stream.target(allowsAttribute: true)
        if stream.accept(symbol: "=") {
            let value = try stream.expression()
            try stream.expectEnd()
            return .set(target, value, line: line)
        }
        var filters: [(String, [Argument])] = []
        while stream.accept(symbol: "|") { filters.append(try stream.filterCall()) }
        try stream.expectEnd()
        let body = try block(ending: "endset", line: line)
        let wrapped = filters.reduce(body) { nodes, filter in
            [.filterBlock(filter.0, filter.1, nodes, line: line)]
        }
        return .setBlock(target, wrapped, line: line)
    }

    private mutating func macro(_ stream: inout TokenStream, line: Int) throws(TemplateError) -> Node {
        let name = try stream.name()
        try stream.expect(symbol: "(")
        var parameters: [(String, Expression?)] = []
        while !stream.accept(symbol: ")") {
            if !parameters.isEmpty { try stream.expect(symbol: ",") }
            if stream.accept(symbol: ")") { break }
            let parameter = try stream.name()
            parameters.append((parameter, stream.accept(symbol: "=") ? try stream.expression() : nil))
        }
        try stream.expectEnd()
        return .macro(name: name, parameters: parameters, body: try block(ending: "endmacro", line: line))
    }
}

extension [Piece] {
    /// The line of the last tag (where a missing end tag is reported).
    var lastLine: Int {
        for piece in reversed() {
            switch piece {
            case .output(_, let line), .statement(_, let line): return line
            case .text: continue
            }
        }
        return 1
    }
}
