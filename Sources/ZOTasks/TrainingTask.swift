import ZOModels

/// A task as the trainer sees it: a loss on chosen training examples and held-out metrics.
public protocol TrainingTask {
    /// Number of training examples.
    var trainingCount: Int { get }
    /// The mean loss of training examples `indices` under the runner's current parameters.
    func loss(_ indices: [Int], runner: ResidentRunner) throws -> Double
    /// Held-out metrics by name (empty if the task has no held-out data).
    func evaluate(runner: ResidentRunner) throws -> [String: Double]
}

/// Causal-LM training on an `LMTask`, evaluated by mean loss on an optional held-out one.
public struct LMTrainingTask: TrainingTask {
    public let train: LMTask
    public let heldOut: LMTask?
    /// Sequences per forward pass during evaluation.
    public let evaluationBatch: Int

    public init(train: LMTask, heldOut: LMTask?, evaluationBatch: Int = 8) {
        self.train = train
        self.heldOut = heldOut
        self.evaluationBatch = evaluationBatch
    }

    public var trainingCount: Int { train.examples.count }

    public func loss(_ indices: [Int], runner: ResidentRunner) throws -> Double {
        try runner.forward(try runner.model.makeBatch(indices.map { train.examples[$0] })).meanLoss
    }

    public func evaluate(runner: ResidentRunner) throws -> [String: Double] {
        guard let heldOut else { return [:] }
        var total = 0.0, targets = 0
        for start in stride(from: 0, to: heldOut.examples.count, by: evaluationBatch) {
            let batch = try runner.model.makeBatch(Array(heldOut.examples[start..<min(start + evaluationBatch, heldOut.examples.count)]))
            let result = try runner.forward(batch)
            total += result.tokenLosses.reduce(0.0) { $0 + Double($1) }
            targets += batch.targetCount
        }
        return ["eval_loss": total / Double(max(targets, 1))]
    }
}
