import Foundation
import Testing
import ZOCore
import ZOFormats
import ZOModels
import ZOOptimizers
import ZOTraining

/// Checkpoints, resume and replay from the command line: resumed and replayed runs against
/// the uninterrupted one, byte for byte, and every fault the tracker lists.
@Suite struct CheckpointTests {
    static let model = Fixtures.opt("opt-nobias-sharded-f32")

    /// A folder with train.jsonl.
    static func workspace() throws -> String {
        let directory = try Fixtures.temporaryDirectory()
        let lines = [[5, 9, 3, 17, 2, 11], [8, 1, 4, 4, 30], [40, 41, 42, 43, 44, 45, 46], [7, 7, 7]].map { "{\"ids\": \($0)}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/train.jsonl"))
        return directory
    }

    /// MeZO with q = 2, or a population of 3 (FZOO's rule).
    static let mezo = ["--zo", "mezo", "--q", "2"], population = ["--zo", "population", "--queries", "3"]

    static func train(_ directory: String, _ extra: [String], model: String = CheckpointTests.model,
                      estimator: [String] = CheckpointTests.mezo) throws -> CLI.Outcome {
        try CLI.run(["train", "--model", model, "--data", directory + "/train.jsonl", "--batch-size", "2", "--lr", "1e-3",
                     "--weight-decay", "0.1", "--threads", "1"] + estimator + extra)
    }

    /// Step lines of a run's metrics without their timings.
    static func steps(_ run: String) throws -> [String] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            var record = try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            guard record["loss_plus"] != nil else { return nil }
            record["seconds"] = nil
            record["system"] = nil
            return String(decoding: try JSONSerialization.data(withJSONObject: record, options: .sortedKeys), as: UTF8.self)
        }
    }

    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// 10 uninterrupted steps = 5 steps + resume + 5: losses, projected gradients, seeds,
    /// batches and the final weights; the checkpoint after step 5 holds the uninterrupted
    /// run's weights after step 5; the trajectory replays to the final weights. MeZO resident
    /// and offloaded, and a population.
    @Test(arguments: [([], CheckpointTests.mezo), (["--offload", "--slots", "1", "--device-memory", "1MiB"], CheckpointTests.mezo),
                      ([], CheckpointTests.population)])
    func resumeContinuesBitForBit(compute: [String], estimator: [String]) throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let full = directory + "/full", part = directory + "/part", step5 = "/checkpoints/step-00000005"
        var outcome = try Self.train(directory, ["--steps", "10", "--save-every", "5", "--keep", "3", "--output", full] + compute,
                                     estimator: estimator)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        outcome = try Self.train(directory, ["--steps", "5", "--save-every", "5", "--output", part] + compute, estimator: estimator)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(try Self.bytes(part + step5 + "/model.safetensors") == Self.bytes(full + step5 + "/model.safetensors"))
        outcome = try Self.train(directory, ["--steps", "10", "--save-every", "5", "--resume", part] + compute, estimator: estimator)
        #expect(outcome.status == 0 && outcome.stdout.contains("resuming after step 5"), "\(outcome.stderr)")
        let fullSteps = try Self.steps(full)
        let partSteps = try Self.steps(part)
        #expect(fullSteps.count == 10 && partSteps == fullSteps)
        #expect(try Self.bytes(part + "/model/model.safetensors") == Self.bytes(full + "/model/model.safetensors"))
        // The same records (the header keeps the first run's --steps, which a constant schedule ignores).
        let fullLog = try Trajectory(path: full + "/trajectory.zotraj"), partLog = try Trajectory(path: part + "/trajectory.zotraj")
        #expect(partLog.steps == 10 && (0..<10).allSatisfy { partLog.gradients(step: $0) == fullLog.gradients(step: $0) })

        // HF-style folder and state of a checkpoint.
        let state = try CheckpointState.load(directory: full + step5)
        #expect(state.step == 5 && state.sampler.batches == 5 && state.options.mezo.directions == (estimator == Self.mezo ? 2 : 3))
        #expect(try ModelRegistry.load(path: full + step5).parameterCount > 0)

        // Replay: the base model and 4 bytes per direction and step rebuild the trained weights.
        outcome = try CLI.run(["replay", "--base", Self.model, "--trajectory", full + "/trajectory.zotraj", "--output", directory + "/replayed"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(try Self.bytes(directory + "/replayed/model.safetensors") == Self.bytes(full + "/model/model.safetensors"))
        #expect(try Trajectory(path: full + "/trajectory.zotraj").steps == 10)
        let size = try ReadOnlyFile(path: full + "/trajectory.zotraj").byteCount
        #expect(outcome.stdout.contains("\"trajectory_bytes\":\(size)}") && size > 0, "\(outcome.stdout)")
        outcome = try CLI.run(["replay", "--base", Self.model, "--trajectory", full + "/trajectory.zotraj", "--steps", "5",
                               "--output", directory + "/replayed5"])
        #expect(try Self.bytes(directory + "/replayed5/model.safetensors") == Self.bytes(full + step5 + "/model.safetensors"))
    }

    /// SIGKILL while a checkpoint is being written: the partial folder is ignored, the newest
    /// complete checkpoint loads, and resuming from it reaches the uninterrupted run's weights.
    @Test func killedMidSaveLeavesTheLastCheckpointUsable() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let reference = directory + "/reference"
        #expect(try Self.train(directory, ["--steps", "40", "--output", reference]).status == 0)
        var caughtMidSave = false
        for attempt in 0..<8 where !caughtMidSave {
            let run = directory + "/run\(attempt)"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.executable)
            process.arguments = ["train", "--model", Self.model, "--data", directory + "/train.jsonl", "--batch-size", "2", "--lr", "1e-3",
                                 "--weight-decay", "0.1", "--zo", "mezo", "--q", "2", "--threads", "1", "--steps", "40", "--save-every", "1",
                                 "--output", run]
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            // Kill the moment a save is seen in progress, once at least one is complete.
            let checkpoints = run + "/checkpoints"
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning, Date() < deadline {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
                if names.contains(where: { $0.hasPrefix(".partial-") }), names.contains(where: { $0.hasPrefix("step-") }) {
                    kill(process.processIdentifier, SIGKILL)
                    break
                }
                usleep(100)
            }
            process.waitUntilExit()
            guard process.terminationReason == .uncaughtSignal else { continue }
            caughtMidSave = ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []).contains { $0.hasPrefix(".partial-") }
            let latest = try #require(Checkpoints(directory: checkpoints).latest)
            #expect(try CheckpointState.load(directory: latest).step >= 1)
            #expect(try ModelRegistry.load(path: latest).parameterCount > 0)
            let resumed = try Self.train(directory, ["--steps", "40", "--resume", run])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            #expect(try Self.bytes(run + "/model/model.safetensors") == Self.bytes(reference + "/model/model.safetensors"))
            #expect(try Self.steps(run) == Self.steps(reference))
        }
        #expect(caughtMidSave, "no kill landed while a checkpoint was being written")
    }

    /// A checkpoint folder that cannot be created: --on-save-error stop ends the run with an
    /// error naming it; continue trains on, records the failures and saves the final model.
    @Test func unwritableCheckpointsStopOrContinueAsAsked() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for policy in ["stop", "continue"] {
            let run = directory + "/" + policy
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
            try Data("not a folder".utf8).write(to: URL(fileURLWithPath: run + "/checkpoints"))
            let outcome = try Self.train(directory, ["--steps", "4", "--save-every", "2", "--on-save-error", policy, "--output", run])
            #expect(!outcome.signaled)
            if policy == "stop" {
                #expect(outcome.status != 0 && outcome.stderr.contains(run + "/checkpoints"), "\(outcome.stderr)")
            } else {
                #expect(outcome.status == 0, "\(outcome.stderr)")
                #expect(try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).contains("\"checkpoint\":\"failed\""))
                #expect(FileManager.default.fileExists(atPath: run + "/model/model.safetensors"))
            }
        }
    }

    /// A file-size limit (a disk that fills up): the save fails with the file named, no
    /// signal kills the process, and the checkpoint written before the limit bit stays whole.
    @Test func aFullDiskIsAnErrorNamingTheFile() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = directory + "/run"
        let size = try Self.bytes(Self.model + "/model-00001-of-00002.safetensors").count
            + Self.bytes(Self.model + "/model-00002-of-00002.safetensors").count
        // Room for the trajectory, metrics and a few KB, not for a whole model file.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", "ulimit -f \(size / 1024 / 2) && exec \"$0\" \"$@\"", CLI.executable, "train", "--model", Self.model,
                             "--data", directory + "/train.jsonl", "--batch-size", "2", "--lr", "1e-3", "--threads", "1",
                             "--steps", "4", "--save-every", "2", "--output", run]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus != 0)
        #expect(stderr.contains("model.safetensors") && stderr.contains("File too large"), "\(stderr)")
        #expect(Checkpoints(directory: run + "/checkpoints").steps().isEmpty)
    }

    /// Resuming with another base model or other options is refused, naming the checkpoint.
    @Test func aCheckpointFromAnotherRunIsRefused() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = directory + "/run"
        #expect(try Self.train(directory, ["--steps", "2", "--save-every", "2", "--output", run]).status == 0)
        let otherModel = try Self.train(directory, ["--steps", "4", "--resume", run], model: Fixtures.opt("opt-tiny-f32"))
        #expect(otherModel.status != 0 && otherModel.stderr.contains("another base model"), "\(otherModel.stderr)")
        let otherOptions = try Self.train(directory, ["--steps", "4", "--eps", "1e-2", "--resume", run])
        #expect(otherOptions.status != 0 && otherOptions.stderr.contains("options differ") && otherOptions.stderr.contains("step-00000002"),
                "\(otherOptions.stderr)")
        let nothing = try Self.train(directory, ["--steps", "4", "--resume", directory])
        #expect(nothing.status != 0 && nothing.stderr.contains("no checkpoint here"), "\(nothing.stderr)")
    }

    /// Version 1 logs used one Philox word per Rademacher element: they replay only when their
    /// noise is another kind; the reader says why it refuses one.
    @Test func aVersionOneTrajectoryReplaysOnlyWithUnchangedNoise() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for kind in [PerturbationKind.gaussian, .rademacher] {
            let schedule = LearningRateSchedule(base: 1e-3, totalSteps: 4)
            var header = TrajectoryHeader(seed: 1, mezo: MeZOOptions(perturbation: kind), schedule: schedule, baseModelSHA256: "0")
            header.version = 1
            let path = directory + "/\(kind).zotraj"
            _ = try TrajectoryLog(path: path, header: header)
            if kind == .rademacher {
                #expect(throws: CheckpointError.self) { try Trajectory(path: path) }
                do { _ = try Trajectory(path: path) } catch { #expect("\(error)".contains("version 1"), "\(error)") }
            } else {
                #expect(try Trajectory(path: path).header.version == 1)
            }
        }
    }

    /// A checkpoint and trajectory written as version 1 resume when their noise is unchanged
    /// (Gaussian), and are refused with the reason when it is Rademacher.
    @Test func aVersionOneCheckpointResumesOnlyWithUnchangedNoise() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        /// Rewrites `from` as `to` in a file (the same length: the trajectory's header keeps its size).
        func patch(_ path: String, _ from: String, _ to: String) throws {
            var text = try Self.bytes(path)
            let range = try #require(text.range(of: Data(from.utf8)), "\(from) in \(path)")
            text.replaceSubrange(range, with: Data(to.utf8))
            try text.write(to: URL(fileURLWithPath: path))
        }
        for (estimator, resumes) in [(Self.mezo, true), (["--zo", "mezo", "--perturbation", "rademacher"], false)] {
            let run = directory + "/run-\(resumes)"
            var outcome = try Self.train(directory, ["--steps", "2", "--save-every", "2", "--output", run], estimator: estimator)
            #expect(outcome.status == 0, "\(outcome.stderr)")
            try patch(run + "/checkpoints/step-00000002/state.json", "\"version\" : 2", "\"version\" : 1")
            try patch(run + "/trajectory.zotraj", "\"version\":2", "\"version\":1")
            outcome = try Self.train(directory, ["--steps", "4", "--resume", run], estimator: estimator)
            if resumes {
                #expect(outcome.status == 0 && outcome.stdout.contains("resuming after step 2"), "\(outcome.stderr)")
            } else {
                #expect(outcome.status != 0 && outcome.stderr.contains("version 1 without Rademacher noise"), "\(outcome.stderr)")
            }
        }
    }
}
