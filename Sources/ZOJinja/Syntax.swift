/// An expression, with the line it starts on.
indirect enum Expression {
    case literal(Value)
    case name(String, line: Int)
    case list([Expression])
    case tuple([Expression])
    case dict([(Expression, Expression)])
    /// `object.name` (a dict's key or a method).
    case member(Expression, String, line: Int)
    /// `object[index]`.
    case item(Expression, Expression, line: Int)
    /// `object[start:stop:step]`.
    case slice(Expression, Expression?, Expression?, Expression?, line: Int)
    case call(Expression, [Argument], line: Int)
    /// `value | name(arguments)`.
    case filter(Expression, String, [Argument], line: Int)
    /// `value is [not] name(arguments)`.
    case test(Expression, String, [Argument], negated: Bool, line: Int)
    case unary(String, Expression, line: Int)
    case binary(String, Expression, Expression, line: Int)
    /// `a < b <= c …`: each comparison true (Python's chain), operands evaluated once.
    case comparison(Expression, [(op: String, operand: Expression, line: Int)])
    /// `a and b`, `a or b`: the right side evaluated only when needed.
    case logical(isAnd: Bool, Expression, Expression)
    /// `then if condition else otherwise` (no else: undefined).
    case conditional(Expression, Expression, Expression?)
}

/// A call argument: positional (`name` nil) or keyword.
struct Argument {
    let name: String?
    let value: Expression
}

/// What a `for` or `set` assigns to: a name, names unpacked from a pair, or a namespace attribute.
enum Target {
    case name(String)
    case tuple([String])
    case attribute(namespace: String, name: String)
}

/// A statement of the template.
indirect enum Node {
    case text(String)
    case output(Expression, line: Int)
    case ifChain([(condition: Expression, body: [Node])], otherwise: [Node])
    case forLoop(Target, Expression, filter: Expression?, body: [Node], otherwise: [Node], line: Int)
    case set(Target, Expression, line: Int)
    /// `{% set name %}…{% endset %}`.
    case setBlock(Target, [Node], line: Int)
    case macro(name: String, parameters: [(String, Expression?)], body: [Node])
    /// `{% filter name %}…{% endfilter %}`.
    case filterBlock(String, [Argument], [Node], line: Int)
    /// `{% generation %}…{% endgeneration %}` (transformers' marker of assistant text).
    case generation([Node])
    case breakLoop(line: Int)
    case continueLoop(line: Int)

    /// Whether this node is or holds a `{% generation %}` block.
    var containsGeneration: Bool {
        switch self {
        case .generation: true
        case .ifChain(let branches, let otherwise):
            branches.contains { $0.body.contains(where: \.containsGeneration) } || otherwise.contains(where: \.containsGeneration)
        case .forLoop(_, _, _, let body, let otherwise, _): (body + otherwise).contains(where: \.containsGeneration)
        case .setBlock(_, let body, _), .macro(_, _, let body), .filterBlock(_, _, let body, _):
            body.contains(where: \.containsGeneration)
        default: false
        }
    }
}
