#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization
import ZOCore
import ZOModels

/// Saves checkpoints on a background thread so that training does not wait for the disk.
///
/// One snapshot buffer set is shared with the training loop: a step fills it (the pass that
/// applies the pending update copies the flushed weights into it as it goes), `submit` hands
/// it to the writer thread, and the loop must not fill it again until the save is done
/// (`isBusy` is false). So at most one save is in flight; a save that falls due while one is
/// in flight is skipped (`Trainer` records it), except the last one, which waits.
/// A LoRA run's writer has no snapshot: it is handed the adapter (downloaded, small) instead.
// @unchecked Sendable: the snapshot is filled by the training thread only while no save is in
// flight and read by the writer's queue only during one (`status`, a Mutex, says which); the
// rest is immutable.
public final class CheckpointWriter: @unchecked Sendable {
    public let checkpoints: Checkpoints
    /// Complete checkpoints kept (the newest).
    public let keep: Int
    /// The weights a pass copies for the next save (nil: a LoRA run's writer).
    public let snapshot: ParameterSnapshot?
    private let model: any CausalLM
    /// A LoRA run's base model, as adapter_config.json names it.
    private let baseModel: String
    private let queue = DispatchQueue(label: "zotune.checkpoint-writer")
    private let status = Mutex<(busy: Bool, error: CheckpointError?, saved: [Int])>((false, nil, []))

    /// A writer into `checkpoints` for `model`, with its snapshot buffers in `storage`.
    public init(model: any CausalLM, checkpoints: Checkpoints, keep: Int, storage: HostStorage = .memory) throws(HostMemoryError) {
        precondition(keep >= 1)
        self.model = model
        self.checkpoints = checkpoints
        self.keep = keep
        snapshot = try ParameterSnapshot(model: model, storage: storage)
        baseModel = ""
    }

    /// A writer of a LoRA run's checkpoints (the adapter and the state) for a frozen `model`
    /// named `baseModel`.
    public init(adaptersOf model: any CausalLM, baseModel: String, checkpoints: Checkpoints, keep: Int) {
        precondition(keep >= 1)
        self.model = model
        self.baseModel = baseModel
        self.checkpoints = checkpoints
        self.keep = keep
        snapshot = nil
    }

    /// Whether a save is in flight (the snapshot must not be refilled).
    public var isBusy: Bool { status.withLock { $0.busy } }

    /// Starts writing the snapshot (or, for a LoRA run, `adapter`) as the checkpoint described by `state`.
    public func submit(_ state: CheckpointState, adapter: PEFTAdapter? = nil) {
        precondition((snapshot == nil) == (adapter != nil), "a LoRA run's writer saves adapters, the others snapshots")
        status.withLock {
            precondition(!$0.busy, "a checkpoint save is already in flight")
            $0.busy = true
        }
        queue.async { [self] in
            var failure: CheckpointError?
            atLowestPriority {
                do throws(CheckpointError) {
                    if let adapter {
                        try checkpoints.write(adapter: adapter, baseModel: baseModel, state: state, keep: keep)
                    } else {
                        try checkpoints.write(model: model, weights: snapshot!.groups, state: state, keep: keep)
                    }
                } catch {
                    failure = error
                }
            }
            status.withLock {
                $0.busy = false
                if let failure, $0.error == nil { $0.error = failure }
                if failure == nil { $0.saved.append(state.step) }
            }
        }
    }

    /// Waits for the save in flight, if any.
    public func wait() { queue.sync {} }

    /// The first failure since the last call, cleared.
    public func takeError() -> CheckpointError? {
        status.withLock { current in
            defer { current.error = nil }
            return current.error
        }
    }

    /// Steps whose checkpoints were written (in order), cleared.
    public func takeSaved() -> [Int] {
        status.withLock { current in
            defer { current.saved = [] }
            return current.saved
        }
    }
}

/// Runs `body` with the calling thread in Linux's SCHED_IDLE class, so that a writer
/// competing with the compute threads for cores yields to them; the thread (a shared
/// Dispatch worker) gets its scheduling back afterwards.
private func atLowestPriority(_ body: () -> Void) {
    #if canImport(Glibc)
    var policy: Int32 = 0
    var saved = sched_param(), idle = sched_param()
    let changed = pthread_getschedparam(pthread_self(), &policy, &saved) == 0
        && pthread_setschedparam(pthread_self(), 5 /* SCHED_IDLE */, &idle) == 0
    defer { if changed { _ = pthread_setschedparam(pthread_self(), policy, &saved) } }
    #endif
    body()
}
