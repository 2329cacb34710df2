import Foundation
import Testing

/// README.md and docs/: every relative link names a file that exists, and every #anchor a
/// heading of its page (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens).
@Suite struct DocsTests {
    static let root = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static var pages: [String] {
        let docs = (try? FileManager.default.contentsOfDirectory(atPath: root + "/docs")) ?? []
        return ["README.md"] + docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
    }

    /// GitHub's anchor of a heading.
    static func anchor(_ heading: String) -> String {
        String(heading.lowercased().unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == " " || $0 == "_" }
            .map(Character.init)).replacingOccurrences(of: " ", with: "-")
    }

    static func anchors(_ path: String) throws -> Set<String> {
        var inCode = false, anchors = Set<String>()
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inCode.toggle() }
            if !inCode, line.hasPrefix("#"), let space = line.firstIndex(of: " ") { anchors.insert(anchor(String(line[space...].dropFirst()))) }
        }
        return anchors
    }

    @Test func everyLinkResolves() throws {
        #expect(Self.pages.count >= 10, "README.md and the docs/ pages")
        let link = try NSRegularExpression(pattern: #"\]\(([^)\s]+)\)"#)
        var checked = 0
        for page in Self.pages {
            let text = try String(contentsOfFile: Self.root + "/" + page, encoding: .utf8)
            let folder = (page as NSString).deletingLastPathComponent
            for match in link.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let target = String(text[Range(match.range(at: 1), in: text)!])
                guard !target.hasPrefix("http://"), !target.hasPrefix("https://"), !target.hasPrefix("mailto:") else { continue }
                let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                let file = parts[0].isEmpty ? page : ((folder as NSString).appendingPathComponent(parts[0]) as NSString).standardizingPath
                let exists = FileManager.default.fileExists(atPath: Self.root + "/" + file)
                #expect(exists, "\(page): \(target) does not exist")
                if exists, parts.count == 2, file.hasSuffix(".md") {
                    #expect(try Self.anchors(Self.root + "/" + file).contains(parts[1]), "\(page): \(target): no such heading")
                }
                checked += 1
            }
        }
        #expect(checked >= 25)
    }

    @Test func readmeStaysShort() throws {
        let lines = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8).split(separator: "\n").count
        #expect(lines <= 150, "README.md has \(lines) lines; topics belong in docs/")
    }
}
