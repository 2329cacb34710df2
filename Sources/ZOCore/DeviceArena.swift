import Synchronization

/// A byte range of device memory handed out by a `DeviceArena`.
///
/// It is a plain value (offset and size within the arena); the arena, not the value, owns
/// the memory. Views made with `slice` share the range of their parent and must not be freed.
public struct DeviceBuffer: Sendable, Hashable, CustomStringConvertible {
    /// Offset of the first byte within the arena.
    public let offset: Int
    /// Size in bytes.
    public let byteCount: Int

    public init(offset: Int, byteCount: Int) {
        self.offset = offset
        self.byteCount = byteCount
    }

    /// Number of Float32 elements the range holds.
    public var floatCount: Int { byteCount / 4 }

    /// A view of `count` Float32 elements starting at element `start` of this buffer.
    public func floats(_ start: Int, _ count: Int) -> DeviceBuffer {
        precondition(start >= 0 && count >= 0 && (start + count) * 4 <= byteCount, "view out of range")
        return DeviceBuffer(offset: offset + start * 4, byteCount: count * 4)
    }

    public var description: String { "DeviceBuffer(offset: \(offset), bytes: \(byteCount))" }
}

/// Occupancy figures of a device arena, in bytes.
public struct DeviceMemoryStats: Sendable, Equatable {
    /// The arena's size: no allocation may go past it.
    public var budget: Int
    /// Bytes currently allocated (including alignment padding).
    public var inUse: Int
    /// The largest `inUse` seen since creation or the last `resetHighWater()`.
    public var highWater: Int
}

/// Bookkeeping for one contiguous device allocation of `budget` bytes: first-fit placement
/// of aligned ranges, coalescing frees, and exact in-use and high-water accounting.
///
/// The arena only manages offsets; a backend owns the memory they index. Thread-safe.
public final class DeviceArena: Sendable {
    /// Every range starts at a multiple of this many bytes.
    public static let alignment = 256

    private struct State {
        var free: [(offset: Int, size: Int)]  // sorted by offset, never adjacent
        var live: [Int: Int] = [:]            // offset -> reserved size
        var stats: DeviceMemoryStats
    }

    private let state: Mutex<State>
    public let budget: Int

    /// An empty arena of `budget` bytes.
    public init(budget: Int) {
        self.budget = budget
        let usable = budget - budget % Self.alignment
        state = Mutex(State(free: usable > 0 ? [(0, usable)] : [],
                            stats: DeviceMemoryStats(budget: budget, inUse: 0, highWater: 0)))
    }

    /// Bytes the arena reserves for a request of `byteCount`: rounded up to the alignment, at
    /// least one alignment unit.
    public static func reservedSize(_ byteCount: Int) -> Int {
        max(alignment, (byteCount + alignment - 1) / alignment * alignment)
    }

    /// Reserves `byteCount` bytes. Throws `BackendError.outOfDeviceMemory` naming `label`
    /// when no free range is large enough.
    public func allocate(_ byteCount: Int, label: String) throws(BackendError) -> DeviceBuffer {
        guard byteCount >= 0, byteCount <= Int.max - Self.alignment else {
            throw .invalidArgument("allocation of \(byteCount) bytes for \(label)")
        }
        let size = Self.reservedSize(byteCount)
        let result: DeviceBuffer? = state.withLock { state in
            guard let index = state.free.firstIndex(where: { $0.size >= size }) else { return nil }
            let range = state.free[index]
            if range.size == size {
                state.free.remove(at: index)
            } else {
                state.free[index] = (range.offset + size, range.size - size)
            }
            state.live[range.offset] = size
            state.stats.inUse += size
            state.stats.highWater = max(state.stats.highWater, state.stats.inUse)
            return DeviceBuffer(offset: range.offset, byteCount: byteCount)
        }
        guard let result else {
            let inUse = stats.inUse
            throw .outOfDeviceMemory(label: label, requested: byteCount, inUse: inUse, budget: budget)
        }
        return result
    }

    /// Returns a range obtained from `allocate`. Freeing anything else is a programming error.
    public func free(_ buffer: DeviceBuffer) {
        state.withLock { state in
            guard let size = state.live.removeValue(forKey: buffer.offset) else {
                preconditionFailure("free of a range the arena did not hand out: \(buffer)")
            }
            state.stats.inUse -= size
            var index = state.free.firstIndex(where: { $0.offset > buffer.offset }) ?? state.free.count
            state.free.insert((buffer.offset, size), at: index)
            // Coalesce with the next range, then with the previous one.
            if index + 1 < state.free.count, state.free[index].offset + state.free[index].size == state.free[index + 1].offset {
                state.free[index].size += state.free[index + 1].size
                state.free.remove(at: index + 1)
            }
            if index > 0, state.free[index - 1].offset + state.free[index - 1].size == state.free[index].offset {
                state.free[index - 1].size += state.free[index].size
                state.free.remove(at: index)
                index -= 1
            }
        }
    }

    /// Current occupancy.
    public var stats: DeviceMemoryStats { state.withLock { $0.stats } }

    /// Starts a new high-water measurement from the current occupancy.
    public func resetHighWater() {
        state.withLock { $0.stats.highWater = $0.stats.inUse }
    }
}
