import ZOModels

/// A task as the trainer sees it: a loss on chosen training examples and held-out metrics.
public protocol TrainingTask {
    /// Number of training examples.
    var trainingCount: Int { get }
    /// The mean loss of training examples `indices` as forward passes of `model` and their
    /// reduction (so that a runner can run the passes at θ + εz and θ − εz together).
    func lossPlan(_ indices: [Int], model: any CausalLM) throws -> LossPlan
    /// Held-out metrics by name (empty if the task has no held-out data).
    func evaluate(runner: any ModelRunner) throws -> [String: Double]
}

extension TrainingTask {
    /// The mean loss of training examples `indices` under the runner's current parameters.
    public func loss(_ indices: [Int], runner: any ModelRunner) throws -> Double {
        let plan = try lossPlan(indices, model: runner.model)
        return plan.reduce(try runner.forward(plan.requests))
    }
}

/// Causal-LM training on token sequences (an `LMTask`'s examples), evaluated by mean loss on
/// optional held-out ones.
public struct LMTrainingTask: TrainingTask {
    public let train: [[Int]]
    public let heldOut: [[Int]]?
    /// Sequences per forward pass during evaluation.
    public let evaluationBatch: Int

    public init(train: [[Int]], heldOut: [[Int]]?, evaluationBatch: Int = 8) {
        self.train = train
        self.heldOut = heldOut
        self.evaluationBatch = evaluationBatch
    }

    public var trainingCount: Int { train.count }

    /// Σ token losses / Σ targets over the batch (Hugging Face's mean), summed sequence by sequence.
    public func lossPlan(_ indices: [Int], model: any CausalLM) throws -> LossPlan {
        let sequences = indices.map { train[$0] }
        let (groups, requests) = try Self.passes(sequences, model: model)
        let targets = requests.reduce(0) { $0 + $1.batch.targetCount }
        return LossPlan(requests: requests, examples: { results in
            var parts = [ExampleLoss](repeating: ExampleLoss(sum: 0, weight: 0), count: sequences.count)
            for (group, result) in zip(groups, results) {
                for (b, e) in group.enumerated() {
                    let sequence = result.sequenceLoss(b)
                    parts[e] = ExampleLoss(sum: sequence.sum, weight: Double(sequence.targets))
                }
            }
            return parts
        }, gradient: { results in
            // Every target's token loss weighs 1/targets (rows without a target get no gradient).
            results.map { LossGradient(tokenWeights: [Float](repeating: 1 / Float(max(targets, 1)), count: $0.tokenLosses.count)) }
        })
    }

    public func evaluate(runner: any ModelRunner) throws -> [String: Double] {
        guard let heldOut else { return [:] }
        var total = 0.0, targets = 0
        for start in stride(from: 0, to: heldOut.count, by: evaluationBatch) {
            let chunk = Array(heldOut[start..<min(start + evaluationBatch, heldOut.count)])
            let sums = Self.sums(try runner.forward(try Self.passes(chunk, model: runner.model).requests))
            total += sums.total
            targets += sums.targets
        }
        return ["eval_loss": total / Double(max(targets, 1))]
    }

    /// Length-sorted forward passes over `sequences`, and which sequences each holds (indices, in its batch order).
    static func passes(_ sequences: [[Int]], model: any CausalLM) throws -> (groups: [[Int]], requests: [ForwardRequest]) {
        let groups = LengthGroups.plan(lengths: sequences.map(\.count))
        return (groups, try groups.map { ForwardRequest(try model.makeBatch($0.map { sequences[$0] })) })
    }

    /// The sum of next-token losses over the passes' sequences and the number of targets.
    static func sums(_ results: [ForwardResult]) -> (total: Double, targets: Int) {
        results.reduce((0.0, 0)) { sum, result in
            (sum.0 + result.tokenLosses.reduce(0.0) { $0 + Double($1) }, sum.1 + result.batch.targetCount)
        }
    }
}
