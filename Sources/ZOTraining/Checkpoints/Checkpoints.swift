#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
import ZOFormats
import ZOModels

/// A run's checkpoint folder: `step-00000005/` (model.safetensors, config.json, state.json),
/// written as `.partial-step-00000005/` and renamed when complete, so a crash leaves a
/// partial folder (ignored, removed by the next save) and every complete checkpoint intact.
public struct Checkpoints: Sendable {
    public static let stateFile = "state.json"
    static let partialPrefix = ".partial-"

    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// The folder of the checkpoint after `step`.
    public func path(step: Int) -> String { directory + "/" + Self.name(step: step) }

    static func name(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// Complete checkpoints, oldest first.
    public func steps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name in
            guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)),
                  FileManager.default.fileExists(atPath: directory + "/" + name + "/" + Self.stateFile) else { return nil }
            return step
        }.sorted()
    }

    /// The newest complete checkpoint's folder, or nil.
    public var latest: String? { steps().last.map(path(step:)) }

    /// Writes `weights` (one buffer per group of `model`) and `state` as the checkpoint after
    /// `state.step`, durably: every file fsynced, the folder renamed into place and its
    /// parent fsynced. Then keeps only the newest `keep` checkpoints.
    public func write(model: any CausalLM, weights: [HostBuffer], state: CheckpointState, keep: Int) throws(CheckpointError) {
        try write(state: state, keep: keep) { try model.save(weights, to: $0) }
    }

    /// Writes a LoRA run's checkpoint: its adapter (PEFT's format, in the folder's
    /// `adapterFolder`; the base is the run's) and `state`, as durably as the weights.
    public func write(adapter: PEFTAdapter, baseModel: String, state: CheckpointState, keep: Int) throws(CheckpointError) {
        try write(state: state, keep: keep) { try adapter.write(to: $0 + "/" + Self.adapterFolder, baseModel: baseModel) }
    }

    /// Where a LoRA run's checkpoint keeps its adapter.
    public static let adapterFolder = "adapter"

    /// The checkpoint after `state.step`: `contents` writes into the partial folder, then the
    /// state; the folder is renamed into place.
    private func write(state: CheckpointState, keep: Int, contents: (String) throws -> Void) throws(CheckpointError) {
        let final = path(step: state.step)
        let partial = directory + "/" + Self.partialPrefix + Self.name(step: state.step)
        try Self.makeFolder(directory)
        do {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(Self.partialPrefix) {
                try FileManager.default.removeItem(atPath: directory + "/" + name)
            }
            try Self.makeFolder(partial)
            try contents(partial)
            let stateFile = try AtomicFileWriter(path: partial + "/" + Self.stateFile)
            try stateFile.write(try state.encoded())
            try stateFile.commit()
            if FileManager.default.fileExists(atPath: final) { try FileManager.default.removeItem(atPath: final) }
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw .writeFailed(path: final, reason: "\(error)")
        }
        guard rename(partial, final) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: partial)
            throw .writeFailed(path: final, reason: reason)
        }
        Self.syncFolder(directory)
        for old in steps().dropLast(max(1, keep)) { try? FileManager.default.removeItem(atPath: path(step: old)) }
        Self.syncFolder(directory)
    }

    /// Creates `path` and its missing parents, naming the one that fails and why.
    static func makeFolder(_ path: String) throws(CheckpointError) {
        if let isFolder = FileSystem.isFolder(path) {
            guard isFolder else { throw .writeFailed(path: path, reason: "a file is in the way of the checkpoint folder") }
            return
        }
        let parent = FileSystem.parent(of: path)
        if !parent.isEmpty, parent != path { try makeFolder(parent) }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw .writeFailed(path: path, reason: "cannot create the folder (\(String(cString: strerror(errno))))")
        }
    }

    static func syncFolder(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
