import ZOModels

/// Supervised fine-tuning: the loss is the mean cross-entropy over the learned tokens of the
/// batch (TRL's: labels −100 elsewhere, summed over the batch and divided by the number of
/// learned tokens). Evaluation: the same loss on held-out examples, and, when asked, greedy
/// answers to the first held-out prompts scored against their references.
public struct SFTTrainingTask: TrainingTask {
    public let train: [SFTExample]
    public let heldOut: [SFTExample]
    /// Sequences per forward pass during evaluation.
    public let evaluationBatch: Int
    public let generation: SFTGenerationSettings?

    public init(train: [SFTExample], heldOut: [SFTExample], evaluationBatch: Int = 8, generation: SFTGenerationSettings? = nil) {
        self.train = train
        self.heldOut = heldOut
        self.evaluationBatch = evaluationBatch
        self.generation = generation
    }

    public var trainingCount: Int { train.count }

    public func lossPlan(_ indices: [Int], model: any CausalLM) throws -> LossPlan {
        let examples = indices.map { train[$0] }
        let (groups, requests) = try Self.passes(examples, model: model)
        let learned = examples.reduce(0) { $0 + $1.learnedCount }
        return LossPlan(requests: requests, examples: { results in
            var parts = [ExampleLoss](repeating: ExampleLoss(sum: 0, weight: 0), count: examples.count)
            for (group, result) in zip(groups, results) {
                for (b, e) in group.enumerated() { parts[e] = Self.loss(examples[e], row: b, of: result) }
            }
            return parts
        }, gradient: { results in
            zip(groups, results).map { group, result in
                var weights = [Float](repeating: 0, count: result.tokenLosses.count)
                for (b, e) in group.enumerated() {
                    for k in examples[e].learned.indices where examples[e].learned[k] {
                        weights[b * result.batch.tokens + k - 1] = 1 / Float(learned)
                    }
                }
                return LossGradient(tokenWeights: weights)
            }
        })
    }

    public func evaluate(runner: any ModelRunner) throws -> [String: Double] {
        guard !heldOut.isEmpty else { return [:] }
        var total = ExampleLoss(sum: 0, weight: 0)
        let order = heldOut.indices.sorted { heldOut[$0].ids.count < heldOut[$1].ids.count }
        for start in stride(from: 0, to: order.count, by: evaluationBatch) {
            let chunk = order[start..<min(start + evaluationBatch, order.count)].map { heldOut[$0] }
            let (groups, requests) = try Self.passes(chunk, model: runner.model)
            for (group, result) in zip(groups, try runner.forward(requests)) {
                for (b, e) in group.enumerated() {
                    let part = Self.loss(chunk[e], row: b, of: result)
                    total.sum += part.sum
                    total.weight += part.weight
                }
            }
        }
        var metrics = ["eval_loss": total.sum / max(total.weight, 1)]
        if let generation {
            let answers = try generation.answers(to: heldOut, runner: runner)
            if !answers.isEmpty {
                metrics["answer_exact_match"] = answers.reduce(0.0) { $0 + AnswerScore.exactMatch($1.answer, $1.reference) }
                    / Double(answers.count)
            }
        }
        return metrics
    }

    /// Length-sorted forward passes over `examples`, and which examples each holds.
    static func passes(_ examples: [SFTExample], model: any CausalLM) throws -> (groups: [[Int]], requests: [ForwardRequest]) {
        try LMTrainingTask.passes(examples.map(\.ids), model: model)
    }

    /// The sum of `example`'s learned token losses (at batch row `b` of `result`) and their count.
    static func loss(_ example: SFTExample, row b: Int, of result: ForwardResult) -> ExampleLoss {
        var sum = 0.0
        for k in example.learned.indices where example.learned[k] {
            sum += Double(result.tokenLosses[b * result.batch.tokens + k - 1])
        }
        return ExampleLoss(sum: sum, weight: Double(example.learnedCount))
    }
}

/// Greedy answers to held-out prompts during evaluation.
public struct SFTGenerationSettings {
    /// How many held-out examples (the first with a prompt and a reference) are answered.
    public let count: Int
    /// Most tokens generated per answer.
    public let maxTokens: Int
    /// Tokens that end an answer (EOS, end-of-turn markers).
    public let stopTokens: Set<Int>
    /// The text of generated ids (special tokens left out).
    public let decode: ([Int]) -> String
    /// Called with each evaluation's answers (to write them out).
    public let record: ([SFTAnswer]) throws -> Void

    public init(count: Int, maxTokens: Int, stopTokens: Set<Int>, decode: @escaping ([Int]) -> String,
                record: @escaping ([SFTAnswer]) throws -> Void) {
        self.count = count
        self.maxTokens = maxTokens
        self.stopTokens = stopTokens
        self.decode = decode
        self.record = record
    }

    func answers(to examples: [SFTExample], runner: any ModelRunner) throws -> [SFTAnswer] {
        var answers: [SFTAnswer] = []
        for example in examples where answers.count < count {
            guard let prompt = example.prompt, let reference = example.reference else { continue }
            var ids: [Int] = []
            try runner.generate(prompt: prompt, maxTokens: maxTokens, sampler: Sampler(temperature: 0, topP: 1, seed: 0),
                                stopTokens: stopTokens) { ids.append($0); return true }
            answers.append(SFTAnswer(prompt: decode(prompt), reference: reference, answer: trimmed(decode(ids)[...])))
        }
        try record(answers)
        return answers
    }
}

/// A held-out prompt, its reference answer and the model's greedy answer.
public struct SFTAnswer: Sendable, Equatable, Encodable {
    public let prompt: String
    public let reference: String
    public let answer: String
}
