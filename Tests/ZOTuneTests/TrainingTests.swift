import Foundation
import Testing
import ZOCPU
import ZOModels
import ZOTasks
import ZOTraining

/// The training loop's pieces and `zotune train` end to end on a fixture model.
@Suite struct TrainingTests {
    @Test func lmTaskReportsFileAndLineOfBadInput() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/data.jsonl"
        let cases: [(String, String)] = [
            ("{\"ids\": [1, 2, 3]}\nnot json\n", ":2: not a JSON object"),
            ("{\"ids\": [1, 2]}\n\n{\"ids\": [4]}\n", ":3: fewer than 2 tokens"),
            ("{\"ids\": [1, 2], \"text\": \"x\"}\n", ":1: needs exactly one"),
            ("\n\n", "no examples"),
            ("{\"ids\": [1, 2]}\n{\"ids\": [3, 99]}\n", ":2: token id 99 is outside the model's vocabulary (0..<50)"),
        ]
        for (content, message) in cases {
            try Data(content.utf8).write(to: URL(fileURLWithPath: path))
            do {
                _ = try LMTask(path: path, maxLength: 8, vocabSize: 50) { _ in [] }
                Issue.record("accepted \(content.debugDescription)")
            } catch {
                #expect(error.description.contains(path) && error.description.contains(message), "\(error)")
            }
        }
        try Data("{\"ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n{\"text\": \"abc\"}\n".utf8).write(to: URL(fileURLWithPath: path))
        let task = try LMTask(path: path, maxLength: 8) { text in text.unicodeScalars.map { Int($0.value) } }
        #expect(task.examples == [[1, 2, 3, 4, 5, 6, 7, 8], [97, 98, 99]] && task.truncated == 1)
    }

    @Test func batchesAreSeededPermutationsOrEverythingInOrder() {
        var all = BatchSampler(count: 5, batchSize: 5, seed: 1)
        #expect(all.next() == [0, 1, 2, 3, 4] && all.next() == [0, 1, 2, 3, 4])
        var a = BatchSampler(count: 10, batchSize: 4, seed: 9), b = BatchSampler(count: 10, batchSize: 4, seed: 9)
        let epochA = (0..<5).flatMap { _ in a.next() }
        #expect(epochA == (0..<5).flatMap { _ in b.next() })
        #expect(Set(epochA.prefix(10)) == Set(0..<10))  // one epoch covers every example once
    }

    @Test func schedules() {
        let constant = LearningRateSchedule(base: 1, shape: .constant, warmupSteps: 4, totalSteps: 10)
        #expect(constant.rate(at: 0) == 0.25 && constant.rate(at: 3) == 1 && constant.rate(at: 9) == 1)
        let linear = LearningRateSchedule(base: 1, shape: .linear, totalSteps: 10)
        #expect(linear.rate(at: 0) == 1 && abs(linear.rate(at: 5) - 0.5) < 1e-6)
        let cosine = LearningRateSchedule(base: 1, shape: .cosine, totalSteps: 10)
        #expect(abs(cosine.rate(at: 5) - 0.5) < 1e-6 && cosine.rate(at: 10) < 1e-6)
    }

    @Test func trainWritesMetricsAndAModelThatLoads() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lines = [[5, 9, 3, 17, 2, 11], [8, 1, 4, 4, 30], [60, 61, 62, 63, 64, 65, 66]].map { "{\"ids\": \($0)}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/train.jsonl"))
        let outcome = try CLI.run(["train", "--model", Fixtures.opt("opt-tiny-f32"), "--data", directory + "/train.jsonl",
                                   "--eval-data", directory + "/train.jsonl", "--steps", "6", "--batch-size", "3",
                                   "--lr", "1e-3", "--eval-every", "3", "--output", directory + "/run"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let records = try String(contentsOfFile: directory + "/run/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let steps = records.filter { $0["loss_plus"] != nil }
        let evals = records.compactMap { $0["eval"] as? [String: Double] }
        #expect(steps.count == 6 && evals.count == 3)  // before, at step 3, after
        #expect(steps.allSatisfy { $0["projected_grad"] != nil && $0["lr"] != nil && $0["step"] != nil })
        #expect(steps.allSatisfy { ($0["batch"] as? [Int]) == [0, 1, 2] })  // the whole set, in file order
        // The saved model reproduces the final evaluation; the run's folder names it too.
        let saved = try ModelRegistry.load(path: directory + "/run")
        #expect(saved.parameterCount == (try ModelRegistry.load(path: directory + "/run/model")).parameterCount)
        let runner = try ResidentRunner(model: saved, backend: try CPUBackend(budget: 64 << 20, threads: 1))
        let task = try LMTask(path: directory + "/train.jsonl", maxLength: 24) { _ in [] }
        let loss = try LMTrainingTask(train: task.examples, heldOut: task.examples).evaluate(runner: runner)["eval_loss"]!
        #expect(abs(loss - evals.last!["eval_loss"]!) < 1e-9)
        #expect(evals.last!["eval_loss"]! < evals.first!["eval_loss"]!)
    }

    /// `--offload` from the command line: the same metrics (timings aside) and the same saved
    /// weights, byte for byte, as the resident run; a budget too small is refused up front.
    @Test func offloadedTrainingFromTheCommandLineMatchesResident() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lines = [[5, 9, 3, 17, 2, 11], [8, 1, 4, 4, 30], [40, 41, 42, 43, 44, 45, 46], [7, 7, 7]].map { "{\"ids\": \($0)}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/train.jsonl"))
        func train(_ name: String, _ extra: [String]) throws -> ([String], Data) {
            let outcome = try CLI.run(["train", "--model", Fixtures.opt("opt-nobias-sharded-f32"), "--data", directory + "/train.jsonl",
                                       "--eval-data", directory + "/train.jsonl", "--steps", "5", "--batch-size", "2", "--lr", "1e-3",
                                       "--weight-decay", "0.1", "--eval-every", "2", "--output", directory + "/" + name] + extra)
            #expect(outcome.status == 0, "\(outcome.stderr)")
            let records = try String(contentsOfFile: directory + "/\(name)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
                var record = try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
                record["seconds"] = nil
                record["system"] = nil
                return String(decoding: try JSONSerialization.data(withJSONObject: record, options: .sortedKeys), as: UTF8.self)
            }
            return (records, try Data(contentsOf: URL(fileURLWithPath: directory + "/\(name)/model/model.safetensors")))
        }
        let resident = try train("resident", [])
        let offloaded = try train("offloaded", ["--offload", "--slots", "1", "--device-memory", "1MiB"])
        #expect(resident.0.count == 9 && offloaded.0 == resident.0)
        #expect(offloaded.1 == resident.1)
        // Blocks' host copies in scratch files: the same again, and nothing left in the folder.
        try FileManager.default.createDirectory(atPath: directory + "/scratch", withIntermediateDirectories: false)
        let fileBacked = try train("file-backed", ["--offload", "--host-storage", directory + "/scratch"])
        #expect(fileBacked.0 == resident.0 && fileBacked.1 == resident.1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/scratch").isEmpty)

        let refused = try CLI.run(["train", "--model", Fixtures.opt("opt-nobias-sharded-f32"), "--data", directory + "/train.jsonl",
                                   "--offload", "--device-memory", "20KiB"])
        #expect(refused.status == 1 && refused.stderr.contains("offload plan needs"), "\(refused.stderr)")
    }

    /// Ctrl-C: the run stops between steps, applies the pending update, saves and exits 0.
    @Test func interruptSavesAndExitsCleanly() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("{\"ids\": [5, 9, 3, 17, 2, 11]}\n".utf8).write(to: URL(fileURLWithPath: directory + "/train.jsonl"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.executable)
        process.arguments = ["train", "--model", Fixtures.opt("opt-tiny-f32"), "--data", directory + "/train.jsonl",
                             "--steps", "1000000", "--batch-size", "1", "--lr", "1e-4", "--output", directory + "/run"]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // Wait for training to start, then interrupt.
        let metrics = directory + "/run/metrics.jsonl"
        for _ in 0..<200 where ((try? String(contentsOfFile: metrics, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 5 {
            usleep(50_000)
        }
        process.interrupt()
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: directory + "/run/model/model.safetensors"))
        let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
        #expect(lines.count >= 5 && lines.count < 1_000_000)
    }
}
