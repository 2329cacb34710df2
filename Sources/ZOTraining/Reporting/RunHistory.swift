#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a training run's folder says about it: its metrics.jsonl (finished, still running, or
/// resumed: the file holds each step once) and run.json (the settings `zotune train` wrote).
public struct RunHistory: Sendable {
    /// One step line.
    public struct Step: Sendable {
        public let step: Int
        public let loss: Double
        public let learningRate: Double
        public let seconds: Double
        public let tokensPerSecond: Double?
        public let deviceHighWaterBytes: Double?
        public let linkBytes: Double?
        /// Forward passes of the batch the step made.
        public let forwards: Int?
    }

    public let name: String
    public let directory: String
    public let steps: [Step]
    /// Evaluations in order: the step after which each ran and its metrics.
    public let evaluations: [(step: Int, metrics: [String: Double])]
    /// run.json's settings, sorted by key (empty for a run written before it existed).
    public let settings: [(key: String, value: String)]

    /// The run's planned steps (run.json's "steps"), if known.
    public var plannedSteps: Int? { settings.first { $0.key == "steps" }.flatMap { Int($0.value) } }

    /// "finished", or how far a running (or stopped) run has come.
    public var status: String {
        let done = steps.last?.step ?? 0
        guard let planned = plannedSteps else { return "\(done) steps" }
        return done >= planned ? "finished (\(planned) steps)" : "step \(done) of \(planned): running or stopped"
    }

    /// Reads `directory`/metrics.jsonl and run.json. A last line cut short (a run still
    /// writing) is left out; any other line that does not parse is an error naming it.
    public init(directory: String) throws(ReportError) {
        self.directory = directory
        name = directory.split(separator: "/").last.map(String.init) ?? directory
        let path = directory + "/metrics.jsonl"
        guard let data = FileManager.default.contents(atPath: path) else { throw .cannotRead(path: path) }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var steps: [Step] = [], evaluations: [(step: Int, metrics: [String: Double])] = []
        for (number, line) in lines.enumerated() where !line.isEmpty {
            guard let record = try? JSONDecoder().decode(Line.self, from: Data(line)) else {
                if number == lines.count - 1, data.last != UInt8(ascii: "\n") { break }  // still being written
                throw .malformed(path: path, line: number + 1)
            }
            if let eval = record.eval {
                evaluations.append((record.step ?? 0, eval))
            } else if let step = record.step, let plus = record.loss_plus, let minus = record.loss_minus {
                steps.append(Step(step: step, loss: record.loss ?? (plus + minus) / 2, learningRate: record.lr ?? 0,
                                  seconds: record.seconds ?? 0, tokensPerSecond: record.system?.tokens_per_s,
                                  deviceHighWaterBytes: record.system?.device_high_water_bytes,
                                  linkBytes: record.system.flatMap { s in s.link_bytes_up.map { $0 + (s.link_bytes_down ?? 0) } },
                                  forwards: record.forwards))
            }
        }
        self.steps = steps
        self.evaluations = evaluations
        if let info = FileManager.default.contents(atPath: directory + "/run.json") {
            guard let values = try? JSONDecoder().decode([String: String].self, from: info) else {
                throw .malformed(path: directory + "/run.json", line: 1)
            }
            settings = values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        } else {
            settings = []
        }
    }

    private struct Line: Decodable {
        struct System: Decodable {
            let tokens_per_s: Double?
            let device_high_water_bytes: Double?
            let link_bytes_up: Double?
            let link_bytes_down: Double?
        }
        let step: Int?
        let loss: Double?
        let loss_plus: Double?
        let loss_minus: Double?
        let lr: Double?
        let seconds: Double?
        let forwards: Int?
        let system: System?
        let eval: [String: Double]?
    }
}

/// A run's folder could not be read for a report.
public enum ReportError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String)
    case malformed(path: String, line: Int)

    public var description: String {
        switch self {
        case .cannotRead(let path): "\(path): cannot read it (is this a training run's --output folder?)"
        case .malformed(let path, let line): "\(path): line \(line) is not a metrics record"
        }
    }
}
