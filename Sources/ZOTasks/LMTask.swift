#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why task data could not be read. Cases name the file and line.
public enum TaskError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case badLine(path: String, line: Int, reason: String)
    case empty(path: String)
    case unusable(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let path, let reason): "\(path): cannot read: \(reason)"
        case .badLine(let path, let line, let reason): "\(path):\(line): \(reason)"
        case .empty(let path): "\(path): no examples"
        case .unusable(let path, let reason): "\(path): \(reason)"
        }
    }
}

/// Causal language modelling on a JSONL file: each line `{"text": "..."}` (encoded with the
/// model's tokenizer) or `{"ids": [...]}`. The loss is the mean next-token cross-entropy over
/// the batch (Hugging Face's definition). Examples longer than the model allows are cut to
/// their first `maxLength` tokens; `truncated` counts them. Ids outside 0..<vocabSize are
/// errors naming the file and line.
public struct LMTask: Sendable {
    public let examples: [[Int]]
    public let truncated: Int

    /// Reads `path`; `encode` turns a text into ids (it is called only for text lines).
    public init(path: String, maxLength: Int, vocabSize: Int = .max, encode: (String) throws -> [Int]) throws(TaskError) {
        struct Line: Decodable {
            let text: String?
            let ids: [Int]?
        }
        var examples: [[Int]] = []
        var truncated = 0
        for (number, line) in try jsonLines(path) {
            let parsed: Line
            do { parsed = try JSONDecoder().decode(Line.self, from: line) } catch {
                throw .badLine(path: path, line: number, reason: "not a JSON object with \"text\" or \"ids\"")
            }
            var ids: [Int]
            switch (parsed.text, parsed.ids) {
            case (let text?, nil):
                do { ids = try encode(text) } catch {
                    throw .badLine(path: path, line: number, reason: "cannot encode the text: \(error)")
                }
            case (nil, let given?): ids = given
            default: throw .badLine(path: path, line: number, reason: "needs exactly one of \"text\" and \"ids\"")
            }
            if let bad = ids.first(where: { !(0..<vocabSize).contains($0) }) {
                throw .badLine(path: path, line: number, reason: "token id \(bad) is outside the model's vocabulary (0..<\(vocabSize))")
            }
            guard ids.count >= 2 else {
                throw .badLine(path: path, line: number, reason: "fewer than 2 tokens: nothing to predict")
            }
            if ids.count > maxLength {
                ids = Array(ids.prefix(maxLength))
                truncated += 1
            }
            examples.append(ids)
        }
        guard !examples.isEmpty else { throw .empty(path: path) }
        self.examples = examples
        self.truncated = truncated
    }
}

/// The non-blank lines of a JSONL file with their 1-based line numbers.
func jsonLines(_ path: String) throws(TaskError) -> [(number: Int, data: Data)] {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw .cannotRead(path: path, reason: "no such file or not readable")
    }
    let blank: Set<UInt8> = [UInt8(ascii: " "), UInt8(ascii: "\r"), UInt8(ascii: "\t")]
    return data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated().compactMap { index, line in
        line.allSatisfy(blank.contains) ? nil : (index + 1, Data(line))
    }
}
