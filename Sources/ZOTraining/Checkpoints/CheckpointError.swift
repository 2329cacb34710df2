/// Why a checkpoint, a resume or a trajectory could not be written or used. Every case
/// names the file or folder.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The file or folder is not a usable checkpoint or trajectory.
    case invalid(path: String, reason: String)
    /// The checkpoint or trajectory was made for another base model or other options.
    case mismatch(path: String, reason: String)
    /// Writing failed (permissions, a full disk, a file-size limit).
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let path, let reason): "\(path): \(reason)"
        case .mismatch(let path, let reason): "\(path): \(reason)"
        case .writeFailed(let path, let reason): "\(path) not saved: \(reason)"
        }
    }
}
