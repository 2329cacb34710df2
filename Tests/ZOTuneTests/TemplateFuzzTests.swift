import Foundation
import Testing
import ZOFormats
import ZOJinja
import ZOTasks

/// Hostile input for the parsers of untrusted text (chat templates, JSON, SFT lines): mutated
/// real files and pathological nesting end in a value or a typed error, never a crash, a hang
/// or a stack overflow.
struct TemplateFuzzTests {
    /// A small seeded generator (SplitMix64), so a failure can be replayed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let fragments = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "(", ")", "[", "]", "{", "}", "'", "\"", "\\", "|", ".",
                            ",", ":", "=", " if ", " else ", " for ", " in ", " endfor ", " endif ", " set ", " not ", " is ",
                            " raw ", " endraw ", " macro ", "\n", "\r\n", "\u{0}", "é", "🙂", "999999999999999999999", "**"]

    /// `text` with a few random edits: a span deleted, duplicated, or a fragment inserted.
    static func mutate(_ text: String, _ generator: inout Generator) -> String {
        var scalars = Array(text.unicodeScalars)
        for _ in 0..<Int.random(in: 1...4, using: &generator) {
            let at = scalars.isEmpty ? 0 : Int.random(in: 0..<scalars.count, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0 where !scalars.isEmpty:
                scalars.removeSubrange(at..<min(scalars.count, at + Int.random(in: 1...12, using: &generator)))
            case 1 where !scalars.isEmpty:
                scalars.insert(contentsOf: scalars[at..<min(scalars.count, at + Int.random(in: 1...40, using: &generator))], at: at)
            default:
                scalars.insert(contentsOf: fragments.randomElement(using: &generator)!.unicodeScalars, at: at)
            }
        }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static var context: [String: Value] {
        let json = try! JSONValue(parsing: #"""
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                          {"role": "tool", "content": "42"}, {"role": "user", "content": "Bye"}],
             "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
             "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"}
            """#)
        var context: [String: Value] = [:]
        for member in json.object!.members { context[member.key] = Value(member.value) }
        return context
    }

    @Test func mutatedTemplatesRenderOrFailWithATypedError() throws {
        let folder = ChatTemplateTests.folder
        let sources = try ChatTemplateTests.names.map { try String(contentsOfFile: folder + "/\($0).jinja", encoding: .utf8) }
        var generator = Generator(state: 21)
        var outcomes = (rendered: 0, failed: 0)
        let context = Self.context
        for round in 0..<1500 {
            let source = Self.mutate(sources[round % sources.count], &generator)
            do {
                _ = try Template(source).render(context)
                outcomes.rendered += 1
            } catch {
                outcomes.failed += 1
            }
        }
        // Both outcomes occur: the mutations neither all break nor all spare the templates.
        #expect(outcomes.rendered > 100 && outcomes.failed > 100, "\(outcomes)")
    }

    @Test func pathologicalNestingIsAnErrorNotACrash() throws {
        let n = 20_000
        let cases = [
            "{{ " + String(repeating: "(", count: n) + "1" + String(repeating: ")", count: n) + " }}",
            "{{ " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + " }}",
            "{{ " + String(repeating: "not ", count: n) + "x }}",
            "{{ " + String(repeating: "-", count: n) + "1 }}",
            "{{ 1" + String(repeating: " + 1", count: n) + " }}",
            "{{ x" + String(repeating: ".a", count: n) + " }}",
            "{{ x" + String(repeating: "|trim", count: n) + " }}",
            String(repeating: "{% if true %}", count: n) + String(repeating: "{% endif %}", count: n),
            String(repeating: "{% for x in [1] %}", count: n),
        ]
        for source in cases {
            #expect(throws: TemplateError.self, "\(source.prefix(30))…") { try Template(source).render(["x": .string("a")]) }
        }
        // Below the limits, deep but legitimate nesting still works.
        #expect(try Template("{{ " + String(repeating: "(", count: 60) + "1" + String(repeating: ")", count: 60) + " }}").render([:]) == "1")
    }

    @Test func mutatedJSONAndSFTLinesParseOrFailWithATypedError() throws {
        let lines = [
            #"{"messages": [{"role": "user", "content": "Hi \u00e9 \ud83d\ude00"}, {"role": "assistant", "content": "Yo"}]}"#,
            #"{"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}], "tools": []}"#,
            #"{"prompt": "2+2=", "completion": " 4", "extra": [1, 2.5e3, -0, true, false, null]}"#,
        ]
        var generator = Generator(state: 7)
        var parsed = 0
        for round in 0..<3000 {
            let line = Self.mutate(lines[round % lines.count], &generator)
            if (try? JSONValue(parsing: line)) != nil { parsed += 1 }
            _ = try? SFTRecord(line: line)
        }
        #expect(parsed > 100)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try JSONValue(parsing: deep) }
        #expect(throws: SFTLineError.self) { try SFTRecord(line: deep) }
    }
}

/// Cases a review found where ZOJinja and Jinja parted (expected texts from transformers'
/// environment), and inputs that once crashed or hung.
struct JinjaRegressionTests {
    static func render(_ source: String) throws -> String { try Template(source).render([:]) }

    @Test(arguments: [
        ("{% for x in [1,2] %}{% macro m() %}{{x}}{% endmacro %}{{m()}}{% endfor %}", "12"),
        ("{% macro m(a, b=a) %}{{b}}{% endmacro %}{{m(3)}}", "3"),
        ("{% set y %}{% set z = 1 %}{% endset %}[{{ z }}]", "[]"),
        ("{% for x in [] %}{% else %}{% set z = 1 %}{% endfor %}[{{ z }}]", "[]"),
        ("{{ {'a': {'b': 1}}|tojson }}", #"{"a": {"b": 1}}"#),
        ("{{ ' a b c '.split(None, 1) }}{{ ' a b c '.rsplit(None, 1) }}", "['a', 'b c '][' a b', 'c']"),
        ("{{ 'a\n  \nb'|indent(2) }}|{{ 'a\r\nb'|indent(2) }}|{{ 'a\nb'|indent(-1) }}", "a\n    \n  b|a\n  b|a\nb"),
        ("{{ 'e\u{301}'|list|length }} {{ '🇺🇸'|first|length }}", "2 1"),
        ("{{ 1 ** 1000000000000000000 }} {{ (-1) ** 1000000000000000001 }}", "1 -1"),
        ("{{ '%5.2f|%-4d|%+d|%x' % (3.14159, 7, 5, 255) }}", " 3.14|7   |+5|ff"),
        ("{{ [1]|tojson(indent=-1) }}", "[\n1\n]"),
        ("{{ 0.125|round(2) }} {{ 2.675|round(2) }}", "0.12 2.67"),
        ("{{ {'a': 2, 'b': 1}|dictsort(by='value') }}{{ {'a': 2, 'b': 1}|dictsort(reverse=true) }}",
         "[('b', 1), ('a', 2)][('b', 1), ('a', 2)]"),
        ("{{ ['B', 'b', 'a']|max }}{{ ['b', 'B', 'a']|max }}{{ ['B','b']|min }}{{ [3,1,2]|sort(true) }}", "BbB[3, 2, 1]"),
        ("{{ 'abcabc'.find('a', 1) }} {{ 'abcabc'.count('b', 2, -1) }} {{ 'abc'.startswith('b', 1) }}", "3 1 True"),
        ("{{ '\\U0001F642\\x41\\101\\a'|length }}", "4"),
        ("{{ dict({'a': 1}, b=2) }}", "{'a': 1, 'b': 2}"),
    ])
    func rendersAsJinja(source: String, expected: String) throws {
        #expect(try Self.render(source) == expected)
    }

    @Test(arguments: [
        "{% raw %}{{", "{{ '%d' % 1e300 }}", "{{ '%d' % ('nan'|float) }}", "{{ '%.19f' % 0 }}", "{{ '%.1000000000000f' % 0 }}",
        "{{ 'a'|indent(10**12) }}", "{{ [1]|tojson(indent=10**12) }}", "{{ range(-9000000000000000000, 9000000000000000000) }}",
        "{{ 'a' * 10**12 }}", "{{ [0] * 10**12 }}", "{{ -(-9223372036854775807 - 1) }}", "{{ (-9223372036854775807 - 1) // -1 }}",
        "{{ (-9223372036854775807 - 1)|abs }}", "{{ 1.5|round(10**12) }}", "{{ 2 ** 64 }}",
        "{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
    ])
    func hostileInputIsAnErrorNotACrashOrAHang(source: String) {
        #expect(throws: TemplateError.self) { try Self.render(source) }
    }
}
