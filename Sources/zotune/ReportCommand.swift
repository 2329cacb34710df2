import ArgumentParser
import ZOCore
import ZOTraining
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write an HTML page (and a PNG of it) with the charts of one or more training runs, side by side.",
        discussion: """
            The page is one self-contained file: inline SVG charts of train loss, every evaluation metric, step \
            time, throughput, device memory and link traffic, with the runs' settings and before/after numbers. It \
            works for finished, running and resumed runs. The PNG is the page rendered by headless Chromium \
            (chromium, chromium-browser or google-chrome in PATH, or $ZOTUNE_CHROMIUM); without one, only the HTML \
            is written.
            """
    )

    @Argument(help: "Training runs' output folders (each with metrics.jsonl).")
    var runs: [String]

    @Option(help: "The HTML file. Default: RUN/report.html for one run, report.html for several.")
    var output: String?

    @Option(help: "The charts' horizontal axis: step, time (training seconds) or forwards (forward passes of the batch).")
    var x = HTMLReport.Axis.step

    @Flag(name: .customLong("no-png"), help: "Do not render the PNG.")
    var noPNG = false

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("name at least one run folder") }
    }

    func run() throws {
        let report = HTMLReport(runs: try runs.map { try RunHistory(directory: $0) }, axis: x)
        let html = output ?? (runs.count == 1 ? runs[0] + "/report.html" : "report.html")
        try report.write(to: html)
        print("wrote \(html)")
        guard !noPNG else { return }
        let png = (html.hasSuffix(".html") ? String(html.dropLast(5)) : html) + ".png"
        guard let browser = Self.chromium() else {
            print("no PNG: no Chromium found (install chromium, or set ZOTUNE_CHROMIUM)")
            return
        }
        let absolute = html.hasPrefix("/") ? html : FileManager.default.currentDirectoryPath + "/" + html
        let outcome = try Subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                          "--force-device-scale-factor=1", "--window-size=1210,\(report.height)",
                                          "--screenshot=\(png)", "file://" + absolute])
        guard outcome.status == 0, FileManager.default.fileExists(atPath: png) else {
            throw ValidationError("\(browser) could not render \(html) (exit \(outcome.status)): \(outcome.output)")
        }
        print("wrote \(png)")
    }

    /// The first Chromium found: $ZOTUNE_CHROMIUM, then the usual names in PATH.
    static func chromium() -> String? {
        if let chosen = ProcessInfo.processInfo.environment["ZOTUNE_CHROMIUM"], !chosen.isEmpty { return chosen }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            for folder in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
                return "\(folder)/\(name)"
            }
        }
        return nil
    }
}

extension HTMLReport.Axis: ExpressibleByArgument {}
