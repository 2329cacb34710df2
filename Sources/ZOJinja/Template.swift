/// A Jinja template as transformers compiles chat templates (`trim_blocks`, `lstrip_blocks`,
/// loop controls, `{% generation %}`; `raise_exception`, `namespace`, `strftime_now`, `dict`
/// and a `tojson` that keeps key order and non-ASCII), parsed once and rendered many times.
/// What Jinja has and this interpreter lacks is an error naming it and its line, at parse
/// time where it can be seen then.
public struct Template: Sendable {
    private let nodes: ParsedNodes

    /// Parses `source`.
    public init(_ source: String) throws(TemplateError) {
        var lexer = Lexer(source)
        var parser = Parser(try lexer.pieces())
        nodes = ParsedNodes(value: try parser.template())
    }

    /// The text for `context` (the template's variables; names not in it are undefined).
    public func render(_ context: [String: Value]) throws(TemplateError) -> String {
        try renderWithGenerationSpans(context).text
    }

    /// The text, and where `{% generation %}` blocks wrote in it (UTF-8 offsets, in order):
    /// what transformers' `return_assistant_tokens_mask` marks as the assistant's.
    public func renderWithGenerationSpans(_ context: [String: Value]) throws(TemplateError)
        -> (text: String, generationSpans: [Range<Int>]) {
        let renderer = Renderer(context: context)
        try renderer.render(nodes.value)
        return (renderer.output, renderer.generationSpans)
    }

    /// Whether the template marks the assistant's text with `{% generation %}`.
    public var marksGeneration: Bool { nodes.value.contains { $0.containsGeneration } }
}

/// A template's statement tree, shared by every thread that renders it.
// @unchecked Sendable: immutable after parsing — `value` is a `let`, and its `Value` literals are only strings,
// numbers, booleans and None (never a namespace or a function, a `Value`'s two reference types); each render
// keeps its state in its own `Renderer`.
struct ParsedNodes: @unchecked Sendable {
    let value: [Node]
}
