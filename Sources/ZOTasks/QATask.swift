#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOModels

/// MeZO's generation tasks: a prompt, the gold answer as teacher-forced target, and the
/// accepted answers for F1 / exact match.
public struct QAExample: Sendable, Equatable {
    /// Prompt ids, ending in "Answer:".
    public let prompt: [Int]
    /// Ids of " <first answer>\n": the loss covers these tokens only.
    public let target: [Int]
    /// Every accepted answer text.
    public let answers: [String]

    public init(prompt: [Int], target: [Int], answers: [String]) {
        self.prompt = prompt
        self.target = target
        self.answers = answers
    }
}

/// MeZO's templates for SQuAD and DROP, reading JSONL lines with the Hugging Face datasets'
/// field names (`squad`: title, context, question, answers.text; `ucinlp/drop`: passage,
/// question, answers_spans.spans).
public enum QATemplate: String, Sendable, CaseIterable {
    case squad, drop

    private struct SQuADLine: Decodable {
        struct Answers: Decodable { let text: [String] }
        let title: String?
        let context: String
        let question: String
        let answers: Answers
    }

    private struct DROPLine: Decodable {
        struct Spans: Decodable { let spans: [String] }
        let passage: String
        let question: String
        let answers_spans: Spans
    }

    /// (prompt, accepted answers) of one JSON line.
    func render(_ line: Data) throws(MissingField) -> (prompt: String, answers: [String]) {
        do {
            switch self {
            case .squad:
                let f = try JSONDecoder().decode(SQuADLine.self, from: line)
                return ("Title: \(f.title ?? "")\nContext: \(f.context)\nQuestion: \(trimmed(f.question[...]))\nAnswer:", f.answers.text)
            case .drop:
                let f = try JSONDecoder().decode(DROPLine.self, from: line)
                return ("Passage: \(f.passage)\nQuestion: \(trimmed(f.question[...]))\nAnswer:", f.answers_spans.spans)
            }
        } catch let DecodingError.keyNotFound(key, context) {
            throw MissingField(reason: "missing field \"\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))\"")
        } catch let DecodingError.typeMismatch(_, context) where !context.codingPath.isEmpty {
            throw MissingField(reason: "field \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw MissingField(reason: "not a JSON object with the \(rawValue) fields")
        }
    }
}

/// QA examples from a JSONL file. The target is the first answer; lines without an answer
/// are errors. A prompt that leaves less than `max(target, answerTokens)` tokens of the
/// context loses its beginning (the question and "Answer:" stay); an answer that does not fit
/// at all is an error naming the file and line.
public func loadQAExamples(path: String, template: QATemplate, maxLength: Int, answerTokens: Int,
                           codec: any TextCodec) throws(TaskError) -> [QAExample] {
    var examples: [QAExample] = []
    for (number, line) in try jsonLines(path) {
        let rendered: (prompt: String, answers: [String])
        do { rendered = try template.render(line) } catch {
            throw .badLine(path: path, line: number, reason: error.reason)
        }
        let answers = rendered.answers.map { trimmed($0[...]) }.filter { !$0.isEmpty }
        guard let first = answers.first else { throw .badLine(path: path, line: number, reason: "no non-empty answer") }
        do {
            let target = try codec.encodeContinuation(" " + first + "\n")
            var prompt = try codec.encodePrompt(rendered.prompt)
            let room = maxLength - max(target.count, answerTokens)
            guard room >= 1 else {
                throw TaskError.badLine(path: path, line: number, reason: "the answer (\(target.count) tokens) does not fit the model's \(maxLength) positions")
            }
            if prompt.count > room { prompt = Array(prompt.suffix(room)) }
            examples.append(QAExample(prompt: prompt, target: target, answers: answers))
        } catch let error as TaskError {
            throw error
        } catch {
            throw .badLine(path: path, line: number, reason: "cannot encode: \(error)")
        }
    }
    guard !examples.isEmpty else { throw .empty(path: path) }
    return examples
}

/// Teacher forcing on the gold answer (cross-entropy on the answer tokens only, the mean over
/// the batch's answer tokens as Hugging Face computes it with the prompt labelled −100);
/// evaluation by greedy decoding up to a newline, end of sequence or `answerTokens` tokens,
/// scored by SQuAD's F1 and exact match against the best accepted answer.
public struct QATrainingTask: TrainingTask {
    public let train: [QAExample]
    public let heldOut: [QAExample]
    public let codec: any TextCodec
    /// Most tokens generated per answer.
    public let answerTokens: Int

    /// MeZO generates at most 50 tokens per answer.
    public static let defaultAnswerTokens = 50

    public init(train: [QAExample], heldOut: [QAExample], codec: any TextCodec, answerTokens: Int = defaultAnswerTokens) {
        self.train = train
        self.heldOut = heldOut
        self.codec = codec
        self.answerTokens = answerTokens
    }

    public var trainingCount: Int { train.count }

    public func lossPlan(_ indices: [Int], model: any CausalLM) throws -> LossPlan {
        let examples = indices.map { train[$0] }
        let groups = LengthGroups.plan(lengths: examples.map { $0.prompt.count + $0.target.count })
        let requests = try groups.map { ForwardRequest(try model.makeBatch($0.map { examples[$0].prompt + examples[$0].target })) }
        let targets = examples.reduce(0) { $0 + $1.target.count }
        /// The head rows predicting example e's answer (the one at batch row b of its pass).
        func answerRows(_ b: Int, _ e: Int, tokens: Int) -> Range<Int> {
            let first = b * tokens + examples[e].prompt.count - 1  // predicts the answer's first token
            return first..<first + examples[e].target.count
        }
        // Each example's answer-token losses; the loss is their sum over the answers' tokens.
        return LossPlan(requests: requests, examples: { results in
            var parts = examples.map { ExampleLoss(sum: 0, weight: Double($0.target.count)) }
            for (group, result) in zip(groups, results) {
                for (b, e) in group.enumerated() {
                    parts[e].sum = result.tokenLosses[answerRows(b, e, tokens: result.batch.tokens)].reduce(0.0) { $0 + Double($1) }
                }
            }
            return parts
        }, gradient: { results in
            zip(groups, results).map { group, result in
                var weights = [Float](repeating: 0, count: result.tokenLosses.count)
                for (b, e) in group.enumerated() {
                    for row in answerRows(b, e, tokens: result.batch.tokens) { weights[row] = 1 / Float(targets) }
                }
                return LossGradient(tokenWeights: weights)
            }
        })
    }

    public func evaluate(runner: any ModelRunner) throws -> [String: Double] {
        guard !heldOut.isEmpty else { return [:] }
        var f1 = 0.0, exact = 0.0
        for example in heldOut {
            let answer = try self.answer(example.prompt, runner: runner)
            f1 += example.answers.map { AnswerScore.f1(answer, $0) }.max()!
            exact += example.answers.map { AnswerScore.exactMatch(answer, $0) }.max()!
        }
        return ["f1": f1 / Double(heldOut.count), "exact_match": exact / Double(heldOut.count)]
    }

    /// The greedy answer to `prompt`: the generated text up to its first newline, trimmed.
    public func answer(_ prompt: [Int], runner: any ModelRunner) throws -> String {
        var ids: [Int] = []
        try runner.generate(prompt: prompt, maxTokens: answerTokens, sampler: Sampler(temperature: 0, topP: 1, seed: 0),
                            stopTokens: codec.endTokens) { token in
            ids.append(token)
            return !codec.decodeText(ids).contains("\n")
        }
        let text = codec.decodeText(ids)
        return trimmed(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }
}

/// SQuAD's answer metrics (the official evaluation script's normalisation: lower case, ASCII
/// punctuation removed, the articles a / an / the removed, whitespace collapsed).
public enum AnswerScore {
    /// The normalised answer's words.
    public static func words(_ text: String) -> [String] {
        let kept = text.lowercased().filter { !($0.isASCII && $0.isPunctuation || $0.isASCII && $0.isSymbol) }
        return kept.split(whereSeparator: \.isWhitespace).map(String.init).filter { !["a", "an", "the"].contains($0) }
    }

    /// 1 if the normalised texts are equal, else 0.
    public static func exactMatch(_ prediction: String, _ gold: String) -> Double {
        words(prediction) == words(gold) ? 1 : 0
    }

    /// The harmonic mean of word precision and recall (words counted with multiplicity); when
    /// either side normalises to nothing, 1 if both do, else 0.
    public static func f1(_ prediction: String, _ gold: String) -> Double {
        let p = words(prediction), g = words(gold)
        guard !p.isEmpty, !g.isEmpty else { return p.isEmpty && g.isEmpty ? 1 : 0 }
        var counts: [String: Int] = [:]
        for word in g { counts[word, default: 0] += 1 }
        var common = 0
        for word in p where counts[word, default: 0] > 0 {
            counts[word]! -= 1
            common += 1
        }
        guard common > 0 else { return 0 }
        let precision = Double(common) / Double(p.count), recall = Double(common) / Double(g.count)
        return 2 * precision * recall / (precision + recall)
    }
}
