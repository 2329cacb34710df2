#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
import ZOModels
import ZOOptimizers

/// What a trajectory needs besides its records to rebuild a run's weights from the base
/// model: every step is determined by the run seed (perturbation seeds), the options, the
/// learning rate (from the schedule) and the projected gradients.
public struct TrajectoryHeader: Codable, Sendable, Equatable {
    public var format = "zotune-trajectory"
    /// 2: Rademacher noise takes one bit per element (`Noise`); version 1 replays only with
    /// other noise.
    public var version = 2
    public var seed: UInt64
    public var mezo: MeZOOptions
    public var schedule: LearningRateSchedule
    public var baseModelSHA256: String

    public init(seed: UInt64, mezo: MeZOOptions, schedule: LearningRateSchedule, baseModelSHA256: String) {
        self.seed = seed
        self.mezo = mezo
        self.schedule = schedule
        self.baseModelSHA256 = baseModelSHA256
    }

    /// Whether records written under `other` continue these (the schedule's length matters
    /// only when it decays; a readable older version continues a newer one).
    func continues(_ other: TrajectoryHeader) -> Bool {
        var comparable = other
        comparable.version = version
        if schedule.shape == .constant { comparable.schedule.totalSteps = schedule.totalSteps }
        return comparable == self
    }
}

/// The file: "ZOTRAJ1\n", the header's length (UInt32, little-endian) and JSON, then one
/// record per step: one coefficient per direction (MeZO's q projected gradients, a
/// population's N) as Float32 little-endian (NaN for a step skipped for a non-finite loss).
/// 4 bytes per step at q = 1: 20,000 steps take 80 KB.
enum TrajectoryFormat {
    static let magic = Array("ZOTRAJ1\n".utf8)

    static func prefix(_ header: TrajectoryHeader) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = Array(try encoder.encode(header))
        return magic + withUnsafeBytes(of: UInt32(json.count).littleEndian, Array.init) + json
    }
}

/// Appends a run's step records as training goes (one write per step, so a killed process
/// loses at most the step being written; fsynced with every checkpoint).
public final class TrajectoryLog {
    public let path: String
    public let header: TrajectoryHeader
    private let descriptor: Int32
    private let recordBytes: Int

    /// A new log at `path` (replacing any file there), or, with `resumingAfter` k, the
    /// existing log cut back to its first k records (it must have them and continue
    /// `header`).
    public init(path: String, header: TrajectoryHeader, resumingAfter steps: Int? = nil) throws(CheckpointError) {
        self.path = path
        recordBytes = 4 * header.mezo.directions
        if let steps {
            let existing = try Trajectory(path: path)
            guard header.continues(existing.header) else {
                throw .mismatch(path: path, reason: "the trajectory was written by a run with other options or another base model")
            }
            guard existing.steps >= steps else {
                throw .invalid(path: path, reason: "the trajectory holds \(existing.steps) steps, the checkpoint is after step \(steps)")
            }
            self.header = existing.header
            descriptor = open(path, O_WRONLY | O_CLOEXEC)
            guard descriptor >= 0, ftruncate(descriptor, off_t(existing.recordsStart + steps * recordBytes)) == 0,
                  lseek(descriptor, 0, SEEK_END) >= 0 else {
                throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
        } else {
            self.header = header
            descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
            let prefix: [UInt8]
            do { prefix = try TrajectoryFormat.prefix(header) } catch { throw .invalid(path: path, reason: "\(error)") }
            try write(prefix)
        }
    }

    deinit { close(descriptor) }

    /// Appends step records: the projected gradients as the update used them (Float32), or
    /// NaN for a skipped step.
    public func append(_ step: MeZOStep) throws(CheckpointError) {
        let values = step.skipped ? step.projectedGradients.map { _ in Float.nan } : step.projectedGradients.map(Float.init)
        try write(values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
    }

    /// Flushes the file to disk.
    public func sync() throws(CheckpointError) {
        guard fsync(descriptor) == 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    }

    private func write(_ bytes: [UInt8]) throws(CheckpointError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, bytes.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
            done += n
        }
    }
}

/// A trajectory file read back: its header and complete step records (a record cut short
/// by a crash is ignored and counted in `trailingBytes`).
public struct Trajectory: Sendable {
    public let path: String
    public let header: TrajectoryHeader
    /// Complete step records.
    public let steps: Int
    /// Bytes after the last complete record.
    public let trailingBytes: Int
    let recordsStart: Int
    private let records: [Float]

    public init(path: String) throws(CheckpointError) {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else { throw .invalid(path: path, reason: "cannot read the trajectory") }
        let bytes = [UInt8](data)
        let magic = TrajectoryFormat.magic
        guard bytes.count >= magic.count + 4, Array(bytes[0..<magic.count]) == magic else {
            throw .invalid(path: path, reason: "not a ZOTune trajectory (bad magic)")
        }
        func word(at offset: Int) -> UInt32 { bytes[offset..<offset + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        let length = Int(word(at: magic.count))
        recordsStart = magic.count + 4 + length
        guard length <= 1 << 20, recordsStart <= bytes.count else {
            throw .invalid(path: path, reason: "header length \(length) runs past the end of the \(bytes.count)-byte file")
        }
        do {
            header = try JSONDecoder().decode(TrajectoryHeader.self, from: Data(bytes[magic.count + 4..<recordsStart]))
        } catch {
            throw .invalid(path: path, reason: "malformed trajectory header (\(error))")
        }
        if let problem = header.mezo.problem { throw .invalid(path: path, reason: "trajectory header: \(problem)") }
        let readable = header.version == 2 || (header.version == 1 && header.mezo.perturbation != .rademacher)
        guard header.format == "zotune-trajectory", readable, (1...1024).contains(header.mezo.directions) else {
            throw .invalid(path: path, reason: "unsupported trajectory (format \(header.format) version \(header.version), "
                           + "\(header.mezo.directions) directions per step)")
        }
        let recordBytes = 4 * header.mezo.directions
        steps = (bytes.count - recordsStart) / recordBytes
        trailingBytes = (bytes.count - recordsStart) % recordBytes
        records = stride(from: recordsStart, to: recordsStart + steps * recordBytes, by: 4).map { offset in
            Float(bitPattern: word(at: offset))
        }
    }

    /// Step `step`'s coefficients, one per direction (NaN: the step was skipped).
    public func gradients(step: Int) -> [Float] {
        let q = header.mezo.directions
        return Array(records[step * q..<(step + 1) * q])
    }

    /// Applies the first `count` steps (default all) to the base weights in `runner` with
    /// the same perturbation passes as training, flushes, and leaves the trained weights
    /// there, bit for bit. `progress` is called after every step.
    public func replay(onto runner: any ModelRunner, steps count: Int? = nil, progress: (Int) -> Void = { _ in }) throws {
        let mezo = MeZO(runner: runner, options: header.mezo, seed: header.seed)
        for step in 0..<min(count ?? steps, steps) {
            try mezo.replay(lr: header.schedule.rate(at: step), gradients: gradients(step: step))
            progress(step + 1)
        }
        try mezo.flush()
    }
}
