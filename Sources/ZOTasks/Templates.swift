#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore

/// A JSON value of a task line (Hugging Face datasets' field names).
enum FieldValue: Decodable {
    case string(String), number(Double), bool(Bool), other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) { self = .string(string) }
        else if let bool = try? container.decode(Bool.self) { self = .bool(bool) }
        else if let number = try? container.decode(Double.self) { self = .number(number) }
        else { self = .other }
    }

    var text: String? { if case .string(let s) = self { s } else { nil } }
    var label: Int? {
        switch self {
        case .number(let n): Int(exactly: n)
        case .bool(let b): b ? 1 : 0
        case .string(let s): Int(s)
        case .other: nil
        }
    }
}

/// MeZO's prompt templates (Malladi et al., 2023, Appendix) for the classification tasks,
/// reading JSONL lines with the Hugging Face datasets' field names.
public enum ChoiceTemplate: String, Sendable, CaseIterable {
    case sst2, rte, cb, boolq, wsc, wic, multirc, copa

    /// (prompt, candidate texts, label index) of one line's fields, or a reason it is unusable.
    func render(_ f: [String: FieldValue]) -> Result<(String, [String], Int), MissingField> {
        func text(_ key: String) -> Result<String, MissingField> {
            f[key]?.text.map { .success($0) } ?? .failure(MissingField(reason: "missing text field \"\(key)\""))
        }
        guard let label = f["label"]?.label else { return .failure(MissingField(reason: "missing integer field \"label\"")) }
        let yesNo = ["Yes", "No"]
        do {
            switch self {
            case .sst2:
                return .success((try text("sentence").get() + " It was", [" terrible", " great"], label))
            case .rte:  // label 0 = entailment
                return .success(("\(try text("premise").get())\nDoes this mean that \"\(try text("hypothesis").get())\" is true? Yes or No?\n", yesNo, label))
            case .cb:  // 0 entailment, 1 contradiction, 2 neutral
                return .success(("Suppose \(try text("premise").get()) Can we infer that \"\(try text("hypothesis").get())\"? Yes, No, or Maybe?\n", ["Yes", "No", "Maybe"], label))
            case .boolq:  // 1 = true
                return .success(("\(try text("passage").get()) \(try text("question").get())?\n", ["No", "Yes"], label))
            case .wsc:
                return .success(("\(try text("text").get())\nIn the previous sentence, does the pronoun \"\(try text("span2_text").get())\" refer to \(try text("span1_text").get())? Yes or No?\n", ["No", "Yes"], label))
            case .wic:
                return .success(("Does the word \"\(try text("word").get())\" have the same meaning in these two sentences? Yes, No?\n\(try text("sentence1").get())\n\(try text("sentence2").get())\n", ["No", "Yes"], label))
            case .multirc:
                return .success(("\(try text("paragraph").get())\nQuestion: \(try text("question").get())\nI found this answer \"\(try text("answer").get())\". Is that correct? Yes or No?\n", ["No", "Yes"], label))
            case .copa:
                var premise = try text("premise").get()
                if premise.hasSuffix(".") { premise.removeLast() }
                let connective = try text("question").get() == "cause" ? " because" : " so"
                let candidates = try ["choice1", "choice2"].map { key -> String in
                    let choice = try text(key).get()
                    return " " + choice.prefix(1).lowercased() + choice.dropFirst()
                }
                return .success((premise + connective, candidates, label))
            }
        } catch let missing as MissingField {
            return .failure(missing)
        } catch {
            return .failure(MissingField(reason: "\(error)"))
        }
    }
}

/// `text` without leading and trailing whitespace.
func trimmed(_ text: Substring) -> String {
    String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
}

/// A field a template needs is missing.
struct MissingField: Error {
    let reason: String
}

/// Choice examples from a JSONL file rendered through a template. A prompt longer than the
/// model allows loses its beginning (the template's question stays); lines with a label
/// outside the template's candidates are errors naming the file and line.
public func loadChoiceExamples(path: String, template: ChoiceTemplate, maxLength: Int,
                               codec: any TextCodec) throws(TaskError) -> [ChoiceExample] {
    var examples: [ChoiceExample] = []
    for (number, line) in try jsonLines(path) {
        let fields: [String: FieldValue]
        do { fields = try JSONDecoder().decode([String: FieldValue].self, from: line) } catch {
            throw .badLine(path: path, line: number, reason: "not a JSON object")
        }
        switch template.render(fields) {
        case .failure(let missing):
            throw .badLine(path: path, line: number, reason: missing.reason)
        case .success(let (prompt, candidates, label)):
            guard candidates.indices.contains(label) else {
                throw .badLine(path: path, line: number, reason: "label \(label) is not one of the \(candidates.count) candidates of \(template.rawValue)")
            }
            examples.append(try makeChoiceExample(prompt: prompt, candidates: candidates, label: label, maxLength: maxLength,
                                                  codec: codec, path: path, line: number))
        }
    }
    guard !examples.isEmpty else { throw .empty(path: path) }
    return examples
}

func makeChoiceExample(prompt: String, candidates: [String], label: Int, maxLength: Int,
                       codec: any TextCodec, path: String, line: Int) throws(TaskError) -> ChoiceExample {
    do {
        let candidateIds = try candidates.map { try codec.encodeContinuation($0) }
        var promptIds = try codec.encodePrompt(prompt)
        let room = maxLength - (candidateIds.map(\.count).max() ?? 0)
        guard room >= 1 else { throw TaskError.badLine(path: path, line: line, reason: "a candidate is longer than the model's context") }
        if promptIds.count > room { promptIds = Array(promptIds.suffix(room)) }
        return ChoiceExample(prompt: promptIds, candidates: candidateIds, label: label)
    } catch let error as TaskError {
        throw error
    } catch {
        throw .badLine(path: path, line: line, reason: "cannot encode: \(error)")
    }
}

/// The Rotten Tomatoes snippets (vaderSentiment's movieReviewSnippets_GroundTruth.txt:
/// `id<TAB>mean score<TAB>text`) as SST-2-style examples: label = sign of the score, zeros
/// dropped, a fixed seeded split of 1000 train / 500 dev / 1000 test as in MeZO.
public struct SentimentData: Sendable {
    public let train: [ChoiceExample]
    public let dev: [ChoiceExample]
    public let test: [ChoiceExample]

    /// The split's seed: fixed, so every run sees the same examples.
    public static let splitSeed: UInt64 = 2023

    public init(path: String, maxLength: Int, codec: any TextCodec) throws(TaskError) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .cannotRead(path: path, reason: "no such file or not readable")
        }
        var rows: [(text: String, label: Int, line: Int)] = []
        // Lines end in CRLF in this file; "\r\n" is one Character in Swift.
        let lines = String(decoding: data, as: UTF8.self).split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (number, line) in lines.enumerated() where !line.isEmpty {
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let score = Double(trimmed(parts[1])) else {
                throw .badLine(path: path, line: number + 1, reason: "expected id<TAB>score<TAB>text")
            }
            if score == 0 { continue }
            rows.append((trimmed(parts[2]), score > 0 ? 1 : 0, number + 1))
        }
        guard rows.count >= 2500 else { throw .badLine(path: path, line: rows.count, reason: "fewer than 2500 labelled snippets") }
        var generator = SplitMix64(seed: Self.splitSeed)
        for i in stride(from: rows.count - 1, to: 0, by: -1) { rows.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
        var examples: [ChoiceExample] = []
        for row in rows.prefix(2500) {
            examples.append(try makeChoiceExample(prompt: row.text + " It was", candidates: [" terrible", " great"], label: row.label,
                                                  maxLength: maxLength, codec: codec, path: path, line: row.line))
        }
        train = Array(examples[0..<1000])
        dev = Array(examples[1000..<1500])
        test = Array(examples[1500..<2500])
    }
}
