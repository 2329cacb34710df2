import ZOModels

/// How a ZO step's work is shared with other processes training the same model (the
/// `ZODistributed` module): which of the step's streams this process evaluates, and the exchange
/// that gives every process the losses of all of them. Every process walks every stream's
/// perturbation pass, so that the parameters it evaluates are the bits one process would have.
public protocol StepSharing: AnyObject {
    /// Whether this process runs the forward passes of stream `s` of a step with `count` streams.
    func evaluates(stream s: Int, of count: Int) -> Bool

    /// Every stream's example losses over the whole batch, in batch order, from this process's:
    /// `local[s]` holds its examples' parts of stream s, or nil where it did not evaluate s.
    func gather(_ local: [[ExampleLoss]?]) throws -> [[ExampleLoss]]
}
