import ZOCore

/// Host copies of a model's parameter groups (fp32, the groups' layouts), which a
/// perturbation pass fills as it goes: with `SnapshotRequest.afterTerms` set to the pending
/// update's terms, the copy holds the flushed weights, without a pass of its own.
///
/// Ownership: the snapshot owns its buffers; whoever fills it must not let a pass write it
/// while its bytes are being read (a checkpoint writer reads it on another thread).
public final class ParameterSnapshot: Sendable {
    /// One buffer per group of the model, in `CausalLM.groups` order.
    public let groups: [HostBuffer]

    /// Zeroed buffers for `model`'s groups, in `storage`.
    public init(model: any CausalLM, storage: HostStorage = .memory) throws(HostMemoryError) {
        groups = try model.groups.map { group throws(HostMemoryError) in try HostBuffer(byteCount: group.layout.byteCount, in: storage) }
    }
}

/// Asks a runner's perturbation pass to copy every group's values into `target` after the
/// pass's first `afterTerms` terms (and its decay).
public struct SnapshotRequest: Sendable {
    public let target: ParameterSnapshot
    public let afterTerms: Int

    public init(target: ParameterSnapshot, afterTerms: Int) {
        self.target = target
        self.afterTerms = afterTerms
    }

    /// The backend-level snapshot of group `index`.
    public func group(_ index: Int) -> PerturbationSnapshot {
        PerturbationSnapshot(host: target.groups[index], afterTerms: afterTerms)
    }
}
