import ZOFormats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The functions every chat template can call: Jinja's `range`, `namespace`, `dict` and
/// transformers' `raise_exception` and `strftime_now`.
enum Globals {
    /// The most elements `range` makes (Jinja's sandbox limit).
    static let maximumRange = 100_000

    /// Made for each rendering: namespaces and functions are not shared between threads.
    static var values: [String: Value] {
        [
            "raise_exception": .function(Function(name: "raise_exception") { arguments throws(TemplateError) in
                throw TemplateError(.raised, line: arguments.line, arguments.value(0, "message")?.text ?? "")
            }),
            "namespace": .function(Function(name: "namespace") { arguments throws(TemplateError) in
                var members = OrderedMembers<Value>()
                if let first = arguments.positional.first {
                    guard case .object(let object) = first else {
                        throw TemplateError(.runtime, line: arguments.line, "namespace() takes keyword arguments or a dict")
                    }
                    members = object
                }
                for (key, value) in arguments.keyword.members { members[key] = value }
                for key in members.keys { try Namespace.checkName(key, line: arguments.line) }
                return .namespace(Namespace(members))
            }),
            "dict": .function(Function(name: "dict") { arguments throws(TemplateError) in
                var members = OrderedMembers<Value>()
                if let first = arguments.positional.first {
                    guard case .object(let object) = first else {
                        throw TemplateError(.unsupported, line: arguments.line, "dict() of a \(first.typeName) (only of a dict)")
                    }
                    members = object
                }
                for (key, value) in arguments.keyword.members { members[key] = value }
                return .object(members)
            }),
            "range": .function(Function(name: "range", call: range)),
            "strftime_now": .function(Function(name: "strftime_now") { arguments throws(TemplateError) in
                guard let format = arguments.value(0, "format")?.string else {
                    throw TemplateError(.runtime, line: arguments.line, "strftime_now needs a format string")
                }
                return .string(strftimeNow(format))
            }),
        ]
    }

    private static func range(_ arguments: Arguments) throws(TemplateError) -> Value {
        guard let bounds = arguments.positional.mapOptional(\.integer), (1...3).contains(bounds.count) else {
            throw TemplateError(.runtime, line: arguments.line, "range() takes one to three integers")
        }
        let (start, stop) = bounds.count == 1 ? (0, bounds[0]) : (bounds[0], bounds[1])
        let step = bounds.count == 3 ? bounds[2] : 1
        guard step != 0 else { throw TemplateError(.runtime, line: arguments.line, "range() step must not be zero") }
        // The element count in overflow-free arithmetic (Double is exact enough to compare with the limit).
        let count = max(0, ((Double(stop) - Double(start)) / Double(step)).rounded(.up))
        guard count <= Double(maximumRange) else {
            throw TemplateError(.runtime, line: arguments.line, "range() of more than \(maximumRange) items")
        }
        return .array(stride(from: start, to: stop, by: step).map(Value.int))
    }

    /// The local time now in C's `strftime` format (what Python's `datetime.now().strftime` gives
    /// for the common directives).
    private static func strftimeNow(_ format: String) -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 512)
        let count = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
