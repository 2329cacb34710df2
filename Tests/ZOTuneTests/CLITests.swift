import Foundation
import Testing
import ZOFormats

/// `zotune loss` end to end: output format, parity with the fixture, and bad input giving a
/// message and exit status 1, never a signal.
@Suite struct CLITests {
    struct Line: Decodable {
        let loss: Double?
        let tokens: Int
        let argmax: [Int]
    }

    /// The fixture's first sequence (unpadded) as token ids.
    static func firstSequence(_ directory: String) throws -> [Int] {
        let reference = try SafetensorsFile(path: directory + "/expected.safetensors")
        let ids = try reference.bytes("ids").withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        let expected = try OPTExpectation.load(directory)
        return (0..<expected.lengths[0]).map { Int(ids[$0]) }
    }

    @Test func lossPrintsOneJSONLineMatchingTheReference() throws {
        let directory = Fixtures.opt("opt-odd-heads-f16")
        let ids = try Self.firstSequence(directory)
        let outcome = try CLI.run(["loss", "--model", directory, "--ids", ids.map(String.init).joined(separator: ","), "--threads", "2"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let lines = outcome.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let line = try JSONDecoder().decode(Line.self, from: Data(lines[0].utf8))
        let expected = try OPTExpectation.load(directory).sequence_losses[0]
        #expect(abs(line.loss! - expected) <= 1e-5 * expected)
        #expect(line.tokens == ids.count - 1)
        #expect(line.argmax.count == ids.count)
    }

    @Test func idsFilePrintsOneLinePerSequence() throws {
        let directory = Fixtures.opt("opt-tiny-f32")
        let temp = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: temp) }
        let first = try Self.firstSequence(directory)
        try Data("[\(first), [3, 4, 5], [9]]".utf8).write(to: URL(fileURLWithPath: temp + "/ids.json"))
        let outcome = try CLI.run(["loss", "--model", directory, "--ids-file", temp + "/ids.json"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let lines = try outcome.stdout.split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
        #expect(lines.map(\.tokens) == [first.count - 1, 2, 0])
        #expect(lines[2].loss == nil)  // one token: nothing to predict
        let expected = try OPTExpectation.load(directory).sequence_losses[0]
        #expect(abs(lines[0].loss! - expected) <= 1e-5 * expected)
    }

    @Test(arguments: [
        (["loss", "--model", "/nonexistent/model", "--ids", "1,2"], "/nonexistent/model"),
        (["loss", "--model", Fixtures.root + "/opt", "--ids", "1,2"], "config.json"),
        (["loss", "--model", Fixtures.opt("opt-tiny-f32"), "--ids", "1,2,101"], "outside the vocabulary"),
        (["loss", "--model", Fixtures.opt("opt-tiny-f32"), "--ids", "1,x"], "not an integer"),
        (["loss", "--model", Fixtures.opt("opt-tiny-f32"), "--ids", Array(repeating: "5", count: 25).joined(separator: ",")], "positions table"),
        (["loss", "--model", Fixtures.opt("opt-tiny-f32"), "--ids-file", "/nonexistent/ids.json"], "ids.json"),
        (["loss", "--model", Fixtures.opt("opt-tiny-f32")], "exactly one of"),
        (["bench", "forward", "--shape", "opt-9z"], "unknown shape"),
    ])
    func badInputExitsWithAMessage(arguments: [String], message: String) throws {
        let outcome = try CLI.run(arguments)
        #expect(!outcome.signaled)
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains(message), "stderr: \(outcome.stderr)")
    }

    @Test(arguments: [
        (["plan", "--shape", "opt-9z"], "unknown shape"),
        (["plan", "--shape", "opt-125m", "--device-memory", "lots"], "--device-memory"),
        (["plan", "--shape", "opt-125m", "--resident-blocks", "12"], "block 12 does not exist"),
        (["plan", "--shape", "opt-125m", "--seq", "4096"], "exceeds"),
        (["plan", "--shape", "opt-125m", "--layers", "13"], "opt-125m has 12 blocks"),
        (["plan", "--table", "--layers", "2"], "drop --layers"),
        (["bench", "zo-step", "--offloaded-only"], "--offloaded-only needs --offload"),
        (["bench", "zo-step", "--layers", "0"], "--layers must be at least 1"),
        (["bench", "zo-step", "--offload", "--decode-by-tensor"], "--decode-by-tensor needs --offload and a low-bit"),
        (["plan", "--decode-by-tensor"], "--decode-by-tensor needs a low-bit --codec"),
        (["bench", "zo-step", "--tf32"], "--tf32 needs --backend cuda"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--offload", "--offload-format", "bf16", "--decode-by-tensor",
          "--zo", "low-rank"],
         "--decode-by-tensor does not combine with --zo low-rank"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--q", "2"], "--q is MeZO's; a population takes --queries"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--zo", "mezo", "--rank", "2"], "--rank needs --zo low-rank or --zo population"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--queries", "0"], "--queries from 1 to 1024"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--rank", "2", "--perturbation", "rademacher"],
         "low-rank ZO draws Gaussian factors"),
        (["plan", "--table", "--rank", "2"], "drop --fo-blocks, --rank and --zo low-rank"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--queries", "1"], "--queries 1 has no spread"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--zo", "mezo", "--no-one-sided"], "add --zo population"),
        (["train", "--model", "smollm2-135m", "--task", "sentiment", "--low-rank-only"], "--low-rank-only needs --rank"),
    ])
    func badPlanArgumentsExitWithAMessage(arguments: [String], message: String) throws {
        try badInputExitsWithAMessage(arguments: arguments, message: message)
    }

    /// `zotune plan --json` for a shape and a budget: the prediction and the verdict.
    @Test func planPrintsThePredictionAndWhetherItFits() throws {
        struct Report: Decodable {
            let offloaded_peak_device_bytes: Int
            let resident_peak_device_bytes: Int
            let fits: Bool?
            let slots_that_fit: Int?
        }
        let arguments = ["plan", "--shape", "opt-175b", "--batch", "1", "--seq", "2048", "--codec", "bf16", "--json", "--device-memory"]
        let tight = try CLI.run(arguments + ["16GiB"])
        #expect(tight.status == 0, "\(tight.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: Data(tight.stdout.utf8))
        #expect(report.fits == false && report.slots_that_fit == 1)
        // Two bf16 slots (3.4 GiB each) and the one decoded fp32 block (6.8 GiB) they share.
        #expect(report.offloaded_peak_device_bytes > 17 << 30 && report.offloaded_peak_device_bytes < 18 << 30)
        #expect(report.resident_peak_device_bytes > 650 << 30)
        let roomy = try JSONDecoder().decode(Report.self, from: Data(try CLI.run(arguments + ["24GB"]).stdout.utf8))
        #expect(roomy.fits == true && roomy.slots_that_fit == nil)
        let text = try CLI.run(["plan", "--shape", "opt-1.3b", "--device-memory", "1GiB"])
        #expect(text.status == 0 && text.stdout.contains("does not fit 1.00 GiB"), "\(text.stdout)")
    }

    /// A layer-truncated shape (the ZO2 comparison's OPT-66B/175B rows): `plan --layers` keeps
    /// the full shape's offloaded peak (one block's slots set it, not the depth), and `bench
    /// zo-step --layers --offloaded-only` builds the truncated model and goes straight to the
    /// offloaded runner (which, in an arena too small, names what it needs for one block).
    @Test func truncatedShapesPlanAndReachTheOffloadedRunner() throws {
        struct Plan: Decodable { let blocks: Int; let offloaded_peak_device_bytes: Int; let resident_peak_device_bytes: Int }
        func plan(_ extra: [String]) throws -> Plan {
            let outcome = try CLI.run(["plan", "--json", "--shape", "opt-1.3b", "--batch", "1", "--seq", "64"] + extra)
            #expect(outcome.status == 0, "\(outcome.stderr)")
            return try JSONDecoder().decode(Plan.self, from: Data(outcome.stdout.utf8))
        }
        let truncated = try plan(["--layers", "3"]), full = try plan([])
        #expect(truncated.blocks == 3 && full.blocks == 24)
        #expect(truncated.offloaded_peak_device_bytes == full.offloaded_peak_device_bytes)
        #expect(truncated.resident_peak_device_bytes < full.resident_peak_device_bytes)
        let outcome = try CLI.run(["bench", "zo-step", "--shape", "opt-125m", "--layers", "1", "--batch", "1", "--seq", "1",
                                   "--offload", "--offloaded-only", "--device-memory", "1MiB"])
        #expect(outcome.status != 0 && !outcome.signaled)
        #expect(outcome.stdout.isEmpty)  // no resident line first
        #expect(outcome.stderr.contains("needs 180.33 MiB") && outcome.stderr.contains("1 block slots"), "\(outcome.stderr)")
    }
}
