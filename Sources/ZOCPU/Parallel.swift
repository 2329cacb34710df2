import Dispatch

/// Splits index ranges over a fixed number of worker threads (Dispatch's pool).
struct Parallel: Sendable {
    /// Threads a parallel loop uses at most.
    let threads: Int

    /// Runs `body` over disjoint subranges covering `0..<count`, at most `threads` at once,
    /// each subrange at least `grain` long (so tiny loops stay on the calling thread).
    func forRanges(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threads, max(1, count / max(grain, 1)))
        if chunks == 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks
                let end = count * (chunk + 1) / chunks
                box.value(start..<end)
            }
        }
    }
}

/// Carries a value the compiler cannot prove Sendable across a thread boundary. Used for
/// raw pointers and closures whose disjoint use the caller guarantees.
// @unchecked Sendable: disjoint use guaranteed by the caller — the value outlives its use, and the threads that
// use it touch disjoint memory (`forRanges`' subranges) or are ordered (a copy stream's events).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
