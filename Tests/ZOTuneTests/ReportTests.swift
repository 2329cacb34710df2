import Foundation
import Testing
import ZOTraining

/// `zotune report`'s reading of run folders and its page (Chromium renders real ones in
/// scripts/check-report.py).
@Suite struct ReportTests {
    static func run(_ lines: [String], settings: [String: String]? = nil, tail: String = "") throws -> String {
        let directory = try Fixtures.temporaryDirectory()
        try Data((lines.joined(separator: "\n") + "\n" + tail).utf8).write(to: URL(fileURLWithPath: directory + "/metrics.jsonl"))
        if let settings { try JSONEncoder().encode(settings).write(to: URL(fileURLWithPath: directory + "/run.json")) }
        return directory
    }

    static let lines = [
        #"{"eval":{"accuracy":0.5},"step":0}"#,
        #"{"step":1,"loss_plus":2,"loss_minus":1,"lr":0.1,"seconds":0.5,"forwards":5,"system":{"tokens_per_s":10,"device_high_water_bytes":1048576}}"#,
        #"{"step":2,"loss_plus":1,"loss_minus":1,"lr":0.1,"seconds":1.5,"forwards":5}"#,
        #"{"checkpoint":"saved","path":"x","step":2}"#,
        #"{"eval":{"accuracy":0.75},"step":2}"#,
    ]

    @Test func runsFinishedRunningAndBroken() throws {
        let finished = try Self.run(Self.lines, settings: ["steps": "2", "task": "lm"])
        defer { try? FileManager.default.removeItem(atPath: finished) }
        let history = try RunHistory(directory: finished)
        #expect(history.steps.map(\.step) == [1, 2] && history.steps[0].loss == 1.5 && history.steps[0].tokensPerSecond == 10)
        #expect(history.evaluations.map(\.step) == [0, 2] && history.status == "finished (2 steps)")
        #expect(history.settings.map(\.key) == ["steps", "task"])
        // Still being written: a cut-off last line is left out.
        let running = try Self.run(Array(Self.lines[0..<2]), settings: ["steps": "9"], tail: #"{"step":2,"loss_pl"#)
        defer { try? FileManager.default.removeItem(atPath: running) }
        #expect(try RunHistory(directory: running).status == "step 1 of 9: running or stopped")
        // A bad line inside the file is an error naming it.
        let broken = try Self.run([Self.lines[0], "not json", Self.lines[1]])
        defer { try? FileManager.default.removeItem(atPath: broken) }
        #expect(throws: ReportError.malformed(path: broken + "/metrics.jsonl", line: 2)) { try RunHistory(directory: broken) }
        #expect(throws: ReportError.cannotRead(path: "/nonexistent/metrics.jsonl")) { try RunHistory(directory: "/nonexistent") }
    }

    /// A diverged run (found by the metrics-jsonl fuzzer: a 2e97 loss crashed the tick labels, an
    /// Int conversion) is drawn with finite coordinates, however far it went.
    @Test func aDivergedRunIsDrawn() throws {
        let diverged = [1.5, 2.2e97], extremes = [-1.7e308, 1.7e308]
        for losses in [diverged, extremes] {
            let run = try Self.run(losses.enumerated().map { #"{"step":\#($0 + 1),"loss":\#($1),"loss_plus":1,"loss_minus":1}"# })
            defer { try? FileManager.default.removeItem(atPath: run) }
            let html = HTMLReport(runs: [try RunHistory(directory: run)]).html()
            let coordinates = ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "points", "width", "height"].flatMap { name in
                html.components(separatedBy: " \(name)=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
            }
            #expect(coordinates.count > 20 && !coordinates.contains { $0.contains("nan") || $0.contains("inf") }, "\(losses)")
            #expect(html.contains(losses == diverged ? "e+97<" : ">1.7e+308<"), "\(losses)")
        }
    }

    @Test func pageHoldsEveryRunAndAxis() throws {
        let a = try Self.run(Self.lines, settings: ["steps": "2"]), b = try Self.run(Array(Self.lines[0..<3]))
        defer { [a, b].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let runs = [try RunHistory(directory: a), try RunHistory(directory: b)]
        for axis in HTMLReport.Axis.allCases {
            let html = HTMLReport(runs: runs, axis: axis).html()
            #expect(!html.contains("<script") && html.contains(runs[0].name) && html.contains(runs[1].name))
            // Loss, accuracy, step time, throughput, device memory: 5 charts (no link traffic recorded).
            #expect(html.components(separatedBy: "<svg").count - 1 == 5, "\(axis)")
        }
        let forwards = HTMLReport(runs: runs, axis: .forwards).html(), time = HTMLReport(runs: runs, axis: .time).html()
        #expect(forwards.contains("forward passes of the batch") && time.contains("training seconds"))
        #expect(HTMLReport(runs: [runs[0]]).html().contains("+0.25"))  // accuracy 0.5 → 0.75
    }
}
