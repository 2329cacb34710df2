/// Where a run's metrics go: metrics.jsonl, TensorBoard event files, or both.
public enum ReportTarget: String, CaseIterable, Sendable {
    case jsonl, tensorboard
}

/// A run's metrics records, written to each of its targets: `DIR/metrics.jsonl` and
/// `DIR/runs/` (TensorBoard's event files).
public final class RunLog {
    public let metrics: MetricsLog?
    public let tensorBoard: TensorBoardLog?

    /// Opens the targets in `directory`; a resumed run (`resumingAfter` k) keeps what they hold up
    /// to step k.
    public init(directory: String, targets: Set<ReportTarget>, resumingAfter step: Int? = nil) throws {
        metrics = try targets.contains(.jsonl) ? MetricsLog(path: directory + "/metrics.jsonl", resumingAfter: step) : nil
        tensorBoard = try targets.contains(.tensorboard) ? TensorBoardLog(directory: directory + "/runs", resumingAfter: step) : nil
    }

    /// Appends `record` to every target.
    public func write<T: Encodable>(_ record: T) throws {
        try metrics?.write(record)
        try tensorBoard?.write(record)
    }
}
