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

    /// Σ token losses / Σ targets over the batch (Hugging Face's mean).
    public func loss(_ indices: [Int], runner: ResidentRunner) throws -> Double {
        let (total, targets) = try Self.summedLoss(indices.map { train[$0] }, runner: runner)
        return targets == 0 ? .nan : total / Double(targets)
    }

    public func evaluate(runner: ResidentRunner) throws -> [String: Double] {
        guard let heldOut else { return [:] }
        var total = 0.0, targets = 0
        for start in stride(from: 0, to: heldOut.count, by: evaluationBatch) {
            let part = try Self.summedLoss(Array(heldOut[start..<min(start + evaluationBatch, heldOut.count)]), runner: runner)
            total += part.total
            targets += part.targets
        }
        return ["eval_loss": total / Double(max(targets, 1))]
    }

    /// The sum of next-token losses over `sequences` and the number of targets, computed in
    /// length-sorted passes.
    static func summedLoss(_ sequences: [[Int]], runner: ResidentRunner) throws -> (total: Double, targets: Int) {
        var total = 0.0, targets = 0
        for group in LengthGroups.plan(lengths: sequences.map(\.count)) {
            let batch = try runner.model.makeBatch(group.map { sequences[$0] })
            total += try runner.forward(batch).tokenLosses.reduce(0.0) { $0 + Double($1) }
            targets += batch.targetCount
        }
        return (total, targets)
    }
}
