import ZOFormats

/// Renders statements into `output`, keeping Jinja's scopes: a `for` body is a fresh scope each
/// iteration (its `set`s vanish after it), an `if` body is not, a macro call sees the
/// template's top level and its arguments.
final class Renderer {
    private(set) var output = ""
    /// Where `{% generation %}` blocks wrote in the final output (UTF-8 offsets).
    private(set) var generationSpans: [Range<Int>] = []
    /// Captures in progress (macro calls, `set` blocks): their text lands elsewhere.
    private var captureDepth = 0
    /// Innermost last; scopes[0] holds the context and the template's top-level names.
    var scopes: [[String: Value]]
    private var pendingJump: Jump?
    private var macroDepth = 0

    private enum Jump { case breakLoop, continueLoop }

    static let maximumMacroDepth = 64

    init(context: [String: Value]) {
        scopes = [Globals.values.merging(context) { _, given in given }]
    }

    func lookup(_ name: String) -> Value {
        for scope in scopes.reversed() {
            if let value = scope[name] { return value }
        }
        return .undefined("'\(name)' is undefined")
    }

    func render(_ nodes: [Node]) throws(TemplateError) {
        for node in nodes {
            try render(node)
            if pendingJump != nil { return }
        }
    }

    private func render(_ node: Node) throws(TemplateError) {
        switch node {
        case .text(let text): output += text
        case .output(let expression, _): output += try evaluate(expression).text
        case .ifChain(let branches, let otherwise):
            for branch in branches where try evaluate(branch.condition).isTruthy {
                try render(branch.body)
                return
            }
            try render(otherwise)
        case .forLoop(let target, let iterable, let filter, let body, let otherwise, let line):
            try forLoop(target, iterable, filter: filter, body: body, otherwise: otherwise, line: line)
        case .set(let target, let expression, let line):
            try assign(try evaluate(expression), to: target, line: line)
        case .setBlock(let target, let body, let line):
            try assign(.string(try captured(body)), to: target, line: line)
        case .macro(let name, let parameters, let body):
            scopes[scopes.count - 1][name] = .function(macro(name, parameters: parameters, body: body))
        case .filterBlock(let name, let arguments, let body, let line):
            let text = try captured(body)
            output += try Filters.apply(name, to: .string(text), try evaluate(arguments, line: line), renderer: self).text
        case .generation(let body):
            let start = output.utf8.count
            scopes.append([:])
            defer { scopes.removeLast() }
            try render(body)
            if captureDepth == 0, output.utf8.count > start { generationSpans.append(start..<output.utf8.count) }
        case .breakLoop(let line), .continueLoop(let line):
            guard scopes.count > 1, scopes[scopes.count - 1]["loop"] != nil else {
                throw TemplateError(.syntax, line: line, "'break' or 'continue' outside a loop")
            }
            if case .breakLoop = node { pendingJump = .breakLoop } else { pendingJump = .continueLoop }
        }
    }

    /// What `nodes` write, without writing it.
    func captured(_ nodes: [Node]) throws(TemplateError) -> String {
        let saved = output
        output = ""
        captureDepth += 1
        scopes.append([:])
        defer {
            output = saved
            captureDepth -= 1
            scopes.removeLast()
        }
        try render(nodes)
        return output
    }

    private func forLoop(_ target: Target, _ iterable: Expression, filter: Expression?, body: [Node], otherwise: [Node],
                         line: Int) throws(TemplateError) {
        let value = try evaluate(iterable)
        guard var items = value.iterated else {
            throw TemplateError(.runtime, line: line, "'\(value.typeName)' object is not iterable")
        }
        if let filter {
            var kept: [Value] = []
            for item in items {
                scopes.append([:])
                defer { scopes.removeLast() }
                try assign(item, to: target, line: line)
                if try evaluate(filter).isTruthy { kept.append(item) }
            }
            items = kept
        }
        guard !items.isEmpty else {
            scopes.append([:])
            defer { scopes.removeLast() }
            return try render(otherwise)
        }
        for (index, item) in items.enumerated() {
            scopes.append(["loop": loopObject(index: index, items: items)])
            defer { scopes.removeLast() }
            try assign(item, to: target, line: line)
            try render(body)
            let jump = pendingJump
            pendingJump = nil
            if case .breakLoop = jump { break }
        }
    }

    /// `loop`: index, index0, revindex, revindex0, first, last, length, previtem, nextitem, depth, cycle.
    private func loopObject(index: Int, items: [Value]) -> Value {
        let count = items.count
        let cycle = Function(name: "loop.cycle") { arguments throws(TemplateError) in
            guard !arguments.positional.isEmpty else {
                throw TemplateError(.runtime, line: arguments.line, "loop.cycle() needs at least one value")
            }
            return arguments.positional[index % arguments.positional.count]
        }
        return .object(OrderedMembers([
            ("index", .int(index + 1)), ("index0", .int(index)), ("revindex", .int(count - index)),
            ("revindex0", .int(count - index - 1)), ("first", .bool(index == 0)), ("last", .bool(index == count - 1)),
            ("length", .int(count)), ("depth", .int(1)), ("depth0", .int(0)),
            ("previtem", index > 0 ? items[index - 1] : .undefined("there is no previous item")),
            ("nextitem", index + 1 < count ? items[index + 1] : .undefined("there is no next item")),
            ("cycle", .function(cycle)),
        ]))
    }

    /// Deepest value a variable may hold: values built up over a loop stay printable and
    /// comparable without exhausting the stack.
    static let maximumValueDepth = 256

    private func assign(_ value: Value, to target: Target, line: Int) throws(TemplateError) {
        guard !value.nestsDeeper(than: Renderer.maximumValueDepth) else {
            throw TemplateError(.unsupported, line: line, "values nested deeper than \(Renderer.maximumValueDepth) levels")
        }
        switch target {
        case .name(let name):
            scopes[scopes.count - 1][name] = value
        case .tuple(let names):
            guard let items = value.iterated, items.count == names.count else {
                throw TemplateError(.runtime, line: line, "cannot unpack \(value.typeName) into \(names.count) names")
            }
            for (name, item) in zip(names, items) { scopes[scopes.count - 1][name] = item }
        case .attribute(let namespaceName, let name):
            guard case .namespace(let namespace) = lookup(namespaceName) else {
                throw TemplateError(.runtime, line: line, "cannot assign attribute on non-namespace object '\(namespaceName)'")
            }
            try Namespace.checkName(name, line: line)
            namespace.members[name] = value
        }
    }

    /// A macro closes over the scopes it is defined in (a loop's variables), sees the template's
    /// top level as it is when called, and evaluates its defaults among its parameters.
    private func macro(_ name: String, parameters: [(String, Expression?)], body: [Node]) -> Function {
        let enclosing = Array(scopes.dropFirst())
        return Function(name: name) { [unowned self] arguments throws(TemplateError) in
            guard macroDepth < Renderer.maximumMacroDepth else {
                throw TemplateError(.runtime, line: arguments.line, "macros nested deeper than \(Renderer.maximumMacroDepth) calls")
            }
            guard arguments.positional.count <= parameters.count else {
                throw TemplateError(.runtime, line: arguments.line, "macro '\(name)' takes \(parameters.count) arguments")
            }
            for key in arguments.keyword.keys where !parameters.contains(where: { $0.0 == key }) {
                throw TemplateError(.runtime, line: arguments.line, "macro '\(name)' has no parameter '\(key)'")
            }
            let saved = scopes
            scopes = [scopes[0]] + enclosing + [[:]]
            macroDepth += 1
            defer {
                scopes = saved
                macroDepth -= 1
            }
            for (index, (parameter, defaultValue)) in parameters.enumerated() {
                var value = arguments.value(index, parameter)
                if value == nil, let defaultValue { value = try evaluate(defaultValue) }
                scopes[scopes.count - 1][parameter] = value ?? .undefined("parameter '\(parameter)' of macro '\(name)' was not given")
            }
            return .string(try captured(body))
        }
    }
}
