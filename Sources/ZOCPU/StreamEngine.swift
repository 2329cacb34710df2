#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import ZOCore

/// A mutex with a condition variable (pthreads), for blocking waits on events.
// @unchecked Sendable: the two pointers are `let`s, initialized in init and destroyed in deinit; the pthread
// mutex they point to is itself the synchronization (the condition is waited on only while holding it).
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Runs `body` holding the lock.
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (holding the lock around each test) until `predicate` is true.
    func wait(until predicate: () -> Bool) {
        pthread_mutex_lock(mutex)
        while !predicate() { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
    }

    /// Wakes every waiter; call after changing state under `locked`.
    func broadcast() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}

/// Streams and events for a backend whose compute runs synchronously on the caller's thread
/// and whose copies run on one serial queue (thread) per copy stream.
///
/// An event counts how often it was recorded (`issued`) and how many of those records its
/// stream has passed (`completed`); a wait captures `issued` at call time, as CUDA does.
// @unchecked Sendable: a lock — `streams`, `events` and `computeError`, and the mutable fields of every `Event`
// and `CopyStream`, are read and written only under `lock` (a `ConditionLock`).
final class StreamEngine: @unchecked Sendable {
    /// Mutable state guarded by the engine's lock.
    // @unchecked Sendable: a lock — `issued`, `completed` and `error` are read and written only under the
    // engine's `lock`.
    private final class Event: @unchecked Sendable {
        var issued = 0
        var completed = 0
        var error: BackendError?
    }

    /// A serial queue and its first failure (guarded by the engine's lock).
    // @unchecked Sendable: a lock — `queue` is a `let`; `error` is read and written only under the engine's `lock`.
    private final class CopyStream: @unchecked Sendable {
        let queue: DispatchQueue
        var error: BackendError?
        init(label: String) { queue = DispatchQueue(label: label) }
    }

    let computeStream = StreamID(0)
    private let lock = ConditionLock()
    private var streams: [Int: CopyStream] = [:]
    private var events: [Event] = []
    private var computeError: BackendError?

    func makeStream(label: String) -> StreamID {
        lock.locked {
            let id = streams.count + 1
            streams[id] = CopyStream(label: "zotune.\(label)")
            return StreamID(id)
        }
    }

    func makeEvent() -> EventID {
        lock.locked {
            events.append(Event())
            return EventID(events.count - 1)
        }
    }

    private func event(_ id: EventID) -> Event { lock.locked { events[id.rawValue] } }
    private func copyStream(_ id: StreamID) -> CopyStream? { lock.locked { streams[id.rawValue] } }

    func record(_ id: EventID, on stream: StreamID) {
        let event = event(id)
        let target = lock.locked { event.issued += 1; return event.issued }
        guard let copy = copyStream(stream) else {
            // Compute ran synchronously: already there, carrying a failure it waited on.
            complete(event, upTo: target, error: lock.locked { computeError })
            return
        }
        copy.queue.async { [self] in
            complete(event, upTo: target, error: lock.locked { copy.error })
        }
    }

    private func complete(_ event: Event, upTo target: Int, error: BackendError?) {
        lock.locked {
            event.completed = max(event.completed, target)
            if event.error == nil { event.error = error }
        }
        lock.broadcast()
    }

    func wait(_ stream: StreamID, for id: EventID) {
        let event = event(id)
        let target = lock.locked { event.issued }
        guard let copy = copyStream(stream) else {
            // A failed copy fails the compute that waited for it, and through its later
            // events every copy that waits on them: nothing computed from it is written back.
            lock.wait { event.completed >= target }
            lock.locked { if computeError == nil { computeError = event.error } }
            return
        }
        copy.queue.async { [self] in
            lock.wait { event.completed >= target }
            if let error = lock.locked({ event.error }) { fail(copy, error) }
        }
    }

    func synchronize(_ id: EventID) throws(BackendError) {
        let event = event(id)
        let target = lock.locked { event.issued }
        lock.wait { event.completed >= target }
        if let error = lock.locked({ event.error }) { throw error }
    }

    func synchronize(_ stream: StreamID) throws(BackendError) {
        guard let copy = copyStream(stream) else {
            // The compute stream runs synchronously; report (and clear) its first failure.
            if let error = lock.locked({ () -> BackendError? in defer { computeError = nil }; return computeError }) { throw error }
            return
        }
        copy.queue.sync {}
        if let error = lock.locked({ copy.error }) { throw error }
    }

    /// Runs `work` in order on `stream`: on the caller for the compute stream, else on the
    /// stream's queue. A stream that has failed skips later work.
    func enqueue(on stream: StreamID, _ work: @escaping @Sendable () throws(BackendError) -> Void) {
        guard let copy = copyStream(stream) else {
            do throws(BackendError) {
                try work()
            } catch {
                lock.locked { if computeError == nil { computeError = error } }
            }
            return
        }
        copy.queue.async { [self] in
            guard lock.locked({ copy.error }) == nil else { return }
            do throws(BackendError) { try work() } catch { fail(copy, error) }
        }
    }

    private func fail(_ copy: CopyStream, _ error: BackendError) {
        lock.locked { if copy.error == nil { copy.error = error } }
    }
}
