import Synchronization
import ZOCore

/// Wall time and call counts per operation kind, accumulated while `isEnabled`. The CPU
/// backend computes synchronously, so the host time around an operation is its run time.
public final class OpProfile: Sendable {
    /// One operation kind's totals.
    public struct Entry: Sendable, Equatable {
        public var seconds = 0.0
        public var calls = 0
    }

    private let enabled = Atomic<Bool>(false)
    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    /// Whether operations are being timed.
    public var isEnabled: Bool {
        get { enabled.load(ordering: .relaxed) }
        set { enabled.store(newValue, ordering: .relaxed) }
    }

    /// Runs `body`, adding its duration to `name` when enabled.
    @inline(__always)
    func measure(_ name: String, _ body: () -> Void) {
        guard isEnabled else { return body() }
        let start = monotonicSeconds()
        body()
        let elapsed = monotonicSeconds() - start
        entries.withLock { $0[name, default: Entry()].seconds += elapsed; $0[name, default: Entry()].calls += 1 }
    }

    /// The totals so far, and clears them.
    public func take() -> [String: Entry] {
        entries.withLock { entries in
            defer { entries = [:] }
            return entries
        }
    }
}
