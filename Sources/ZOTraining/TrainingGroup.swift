import ZOModels
import ZOOptimizers

/// The processes of a distributed run (`ZODistributed.ProcessGroup`), seen from one of them: a
/// `Trainer` given a group runs its share of every step (its part of the batch, the streams the
/// group assigns it), takes the losses of the rest from the step's exchange, and checks now and
/// then that every process still holds the same parameters.
public protocol TrainingGroup: StepSharing {
    /// This process's examples of a step's batch (a part of it, in its order).
    func shard(_ batch: [Int]) -> [Int]
    /// Records this process's tokens in the coming step; its exchange carries them to the others.
    func willStep(tokens: Int)
    /// The tokens of the last step's whole batch.
    var stepTokens: Int { get }
    /// This process's share of the last step's loss weight (its examples' weights over the
    /// batch's): its part of a first-order gradient, normalized over its examples, is scaled by it.
    var shardShare: Double { get }
    /// Every process's `values` summed in rank order (the same bits on every process): a
    /// first-order gradient of the whole batch from the processes' parts.
    func sum(_ values: [Float]) throws -> [Float]
    /// Steps between replica checks (0: at the end only).
    var verifyEvery: Int { get }
    /// Compares the runner's parameters (as they are, pending update included) with every other
    /// process's after `step` (nil: before training); throws naming the first tensor that
    /// differs and the processes that disagree.
    func verifyReplicas(_ runner: any ModelRunner, step: Int?) throws
}
