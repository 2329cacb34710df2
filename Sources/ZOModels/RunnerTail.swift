import ZOCore

/// The deepest blocks and the head of every pass, run by something other than the runner (a
/// first-order part that records the passes for backpropagation): the runner holds the
/// embedding and blocks 0..<firstBlock, hands each pass to `finish` after them, and leaves the
/// embedding tensors the tail trains out of its perturbations.
public protocol RunnerTail: AnyObject, Sendable {
    /// The first block the tail runs.
    var firstBlock: Int { get }
    /// Indices among the embedding group's tensors the tail trains (the runner's perturbations
    /// leave them out).
    var firstOrderEmbeddingTensors: Set<Int> { get }
    /// Called by the runner with its device copy of the embedding group and its adapter (whose
    /// terms the tail's blocks add too).
    func attach(embedding: DeviceBuffer, adapter: (any LinearAdapter)?)
    /// Runs blocks firstBlock..<L and the head on a pass that went through the blocks before.
    func finish(_ pass: ForwardPass) throws -> ForwardResult
    /// Brings the tail's parameters into the model's host groups.
    func copyParametersToHost() throws
}
