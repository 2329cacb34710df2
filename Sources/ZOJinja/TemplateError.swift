/// Why a template could not be read or rendered, with the template line (1-based) it concerns.
public struct TemplateError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The text is not valid Jinja.
        case syntax
        /// Valid Jinja that this interpreter does not implement (named in the message): an
        /// error rather than a silently different text.
        case unsupported
        /// The template failed while rendering (a type error, an undefined value used).
        case runtime
        /// The template called `raise_exception(message)`: it rejects its input.
        case raised
    }

    public let kind: Kind
    /// The template line (1-based) of the tag or expression concerned.
    public let line: Int
    /// What is wrong, in Jinja's or Python's words where they have them.
    public let message: String

    public init(_ kind: Kind, line: Int, _ message: String) {
        self.kind = kind
        self.line = line
        self.message = message
    }

    public var description: String {
        switch kind {
        case .syntax: "template line \(line): syntax error: \(message)"
        case .unsupported: "template line \(line): unsupported: \(message)"
        case .runtime: "template line \(line): \(message)"
        case .raised: "the template rejects the conversation (line \(line)): \(message)"
        }
    }
}
