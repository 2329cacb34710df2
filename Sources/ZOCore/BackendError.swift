/// Failures reported by a backend.
public enum BackendError: Error, CustomStringConvertible, Equatable {
    /// The arena has no free range of `requested` bytes for `label`.
    case outOfDeviceMemory(label: String, requested: Int, inUse: Int, budget: Int)
    /// A copy between host and device failed; the stream that ran it stops.
    case copyFailed(String)
    /// An argument outside what the operation accepts.
    case invalidArgument(String)
    /// The backend cannot be created (library missing, device absent, memory unavailable).
    case unavailable(String)
    /// The device reported a failure (a CUDA error code surfaced at a launch or a sync).
    case device(String)

    public var description: String {
        switch self {
        case .outOfDeviceMemory(let label, let requested, let inUse, let budget):
            "out of device memory for \(label): \(ByteCount(requested)) requested, \(ByteCount(inUse)) of \(ByteCount(budget)) in use"
        case .copyFailed(let what): "copy failed: \(what)"
        case .invalidArgument(let what): "invalid argument: \(what)"
        case .unavailable(let what): "backend unavailable: \(what)"
        case .device(let what): "device error: \(what)"
        }
    }
}

/// A byte count printed with binary units (KiB, MiB, GiB).
public struct ByteCount: CustomStringConvertible, Sendable {
    public let bytes: Int
    public init(_ bytes: Int) { self.bytes = bytes }

    public var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : TextFormat.decimal(value, decimals: 2) + " " + units[unit]
    }
}
