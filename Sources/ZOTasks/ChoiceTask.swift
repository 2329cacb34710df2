#if canImport(Glibc)
import Glibc
#endif
import ZOModels

/// A multiple-choice example: a prompt, candidate continuations, and the gold candidate.
public struct ChoiceExample: Sendable, Equatable {
    public let prompt: [Int]
    public let candidates: [[Int]]
    public let label: Int

    public init(prompt: [Int], candidates: [[Int]], label: Int) {
        self.prompt = prompt
        self.candidates = candidates
        self.label = label
    }
}

/// MeZO's "train as classification": each candidate is scored by its mean token
/// log-likelihood after the prompt; the loss is the cross-entropy of the gold candidate over
/// those scores, and evaluation picks the highest score (accuracy).
///
/// When every candidate is one token (the usual verbalizers), one forward pass of the prompt
/// suffices and the head runs only at the prompt's last position: the candidates' logits there
/// differ from their log-likelihoods by the same normalizer, which cancels in both the
/// cross-entropy and the arg-max.
public struct ChoiceTrainingTask: TrainingTask {
    public let train: [ChoiceExample]
    public let heldOut: [ChoiceExample]
    /// Examples per forward pass during evaluation.
    public let evaluationBatch: Int

    public init(train: [ChoiceExample], heldOut: [ChoiceExample], evaluationBatch: Int = 16) {
        self.train = train
        self.heldOut = heldOut
        self.evaluationBatch = evaluationBatch
    }

    public var trainingCount: Int { train.count }

    public func lossPlan(_ indices: [Int], model: any CausalLM) throws -> LossPlan {
        let examples = indices.map { train[$0] }
        let scoring = try Self.scoring(examples, model: model)
        // Each example's cross-entropy over its candidates' scores; the loss is their mean.
        return LossPlan(requests: scoring.requests, examples: { results in
            zip(examples, scoring.scores(results)).map { example, row in
                let top = row.max()!
                let normalizer = row.reduce(0.0) { $0 + exp($1 - top) }
                return ExampleLoss(sum: log(normalizer) + top - row[example.label], weight: 1)
            }
        }, gradient: { results in
            // dL/d score_c = (softmax(scores)_c − [c = label]) / N, carried back through the scores.
            let scoreGradients = zip(examples, scoring.scores(results)).map { example, row in
                let top = row.max()!
                let exps = row.map { exp($0 - top) }
                let total = exps.reduce(0, +)
                return exps.indices.map { c in (exps[c] / total - (c == example.label ? 1 : 0)) / Double(examples.count) }
            }
            return scoring.gradient(results, scoreGradients)
        })
    }

    public func evaluate(runner: any ModelRunner) throws -> [String: Double] {
        guard !heldOut.isEmpty else { return [:] }
        // Batches of similar length waste less on padding.
        let order = heldOut.indices.sorted { heldOut[$0].prompt.count < heldOut[$1].prompt.count }
        var correct = 0
        for start in stride(from: 0, to: order.count, by: evaluationBatch) {
            let examples = order[start..<min(start + evaluationBatch, order.count)].map { heldOut[$0] }
            let scoring = try Self.scoring(examples, model: runner.model)
            for (example, row) in zip(examples, scoring.scores(try runner.forward(scoring.requests))) {
                if row.indices.max(by: { row[$0] < row[$1] }) == example.label { correct += 1 }
            }
        }
        return ["accuracy": Double(correct) / Double(heldOut.count)]
    }

    /// The forward passes that score `examples`' candidates, each example's scores from their
    /// results (mean log-likelihood per candidate token, up to a per-example constant for
    /// single-token candidates), in length-sorted passes, and the loss gradient per pass from
    /// dL/d(scores).
    static func scoring(_ examples: [ChoiceExample], model: any CausalLM) throws
        -> (requests: [ForwardRequest], scores: ([ForwardResult]) -> [[Double]],
            gradient: ([ForwardResult], [[Double]]) -> [LossGradient]) {
        let v = model.vocabSize
        if examples.allSatisfy({ $0.candidates.allSatisfy { $0.count == 1 } }) {
            let groups = LengthGroups.plan(lengths: examples.map(\.prompt.count))
            let requests = try groups.map { group in
                let batch = try model.makeBatch(group.map { examples[$0].prompt })
                return ForwardRequest(batch, outputs: .logits, rows: group.enumerated().map { b, e in b * batch.tokens + examples[e].prompt.count - 1 })
            }
            return (requests, { results in
                var scores = [[Double]](repeating: [], count: examples.count)
                for (group, result) in zip(groups, results) {
                    let logits = result.logits!
                    for (b, e) in group.enumerated() { scores[e] = examples[e].candidates.map { Double(logits[b * v + $0[0]]) } }
                }
                return scores
            }, { results, scoreGradients in
                // A score is a logit at the prompt's last row (head row b of its pass).
                zip(groups, results).map { group, result in
                    LossGradient(tokenWeights: [Float](repeating: 0, count: result.tokenLosses.count),
                                 logitTerms: group.enumerated().flatMap { b, e in
                                     examples[e].candidates.enumerated().map { c, tokens in
                                         LossGradient.LogitTerm(row: b, column: tokens[0], value: Float(scoreGradients[e][c]))
                                     }
                                 })
                }
            })
        }
        // One sequence per candidate; score = −mean cross-entropy over the candidate's tokens.
        let sequences = examples.enumerated().flatMap { e, example in
            example.candidates.indices.map { (example: e, candidate: $0, tokens: example.prompt + example.candidates[$0]) }
        }
        let groups = LengthGroups.plan(lengths: sequences.map(\.tokens.count))
        let requests = try groups.map { ForwardRequest(try model.makeBatch($0.map { sequences[$0].tokens })) }
        return (requests, { results in
            var scores = examples.map { [Double](repeating: 0, count: $0.candidates.count) }
            for (group, result) in zip(groups, results) {
                for (b, s) in group.enumerated() {
                    let (e, c, _) = sequences[s]
                    let length = examples[e].candidates[c].count
                    let first = b * result.batch.tokens + examples[e].prompt.count - 1  // predicts the candidate's first token
                    scores[e][c] = -result.tokenLosses[first..<first + length].reduce(0.0) { $0 + Double($1) } / Double(length)
                }
            }
            return scores
        }, { results, scoreGradients in
            // score = −mean of the candidate's token losses: each gets −(dL/d score) / length.
            zip(groups, results).map { group, result in
                var weights = [Float](repeating: 0, count: result.tokenLosses.count)
                for (b, s) in group.enumerated() {
                    let (e, c, _) = sequences[s]
                    let length = examples[e].candidates[c].count
                    let first = b * result.batch.tokens + examples[e].prompt.count - 1
                    for row in first..<first + length { weights[row] = Float(-scoreGradients[e][c] / Double(length)) }
                }
                return LossGradient(tokenWeights: weights)
            }
        })
    }
}
