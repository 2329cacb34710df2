import ZOFormats

/// One self-contained HTML page (inline CSS and SVG; no scripts, nothing fetched) about one or
/// more training runs side by side: their status and settings, before/after evaluation numbers,
/// and charts of train loss (smoothed over the raw values), every evaluation metric, step time,
/// throughput, device memory and link traffic.
public struct HTMLReport {
    /// What the charts' horizontal axis counts.
    public enum Axis: String, CaseIterable, Sendable {
        /// Training steps.
        case step
        /// Training seconds (the steps' times summed; evaluations excluded).
        case time
        /// Forward passes of the batch, summed over the steps (estimators of different costs side by side).
        case forwards

        var label: String { ["step": "step", "time": "training seconds", "forwards": "forward passes of the batch"][rawValue]! }
    }

    public let runs: [RunHistory]
    public let axis: Axis

    public init(runs: [RunHistory], axis: Axis = .step) {
        self.runs = runs
        self.axis = axis
    }

    /// `run`'s horizontal position after each step (and 0 before the first), by step number.
    func positions(_ run: RunHistory) -> [Int: Double] {
        var positions = [0: 0.0], total = 0.0
        for step in run.steps {
            switch axis {
            case .step: total = Double(step.step)
            case .time: total += step.seconds
            case .forwards: total += Double(step.forwards ?? 1)
            }
            positions[step.step] = total
        }
        return positions
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]

    /// The charts, in page order.
    var charts: [SVGChart] {
        let x = runs.map(positions)
        func series(_ value: (RunHistory.Step) -> Double?) -> [SVGChart.Series] {
            runs.enumerated().map { i, run in
                SVGChart.Series(name: run.name, color: Self.colors[i % Self.colors.count],
                                points: run.steps.compactMap { step in value(step).map { (x[i][step.step]!, $0) } })
            }
        }
        var loss: [SVGChart.Series] = []
        for (i, run) in runs.enumerated() {
            let color = Self.colors[i % Self.colors.count]
            let raw = run.steps.map { (x: x[i][$0.step]!, y: $0.loss) }
            loss.append(SVGChart.Series(name: run.name + " (raw)", color: color, points: raw, faint: true))
            loss.append(SVGChart.Series(name: run.name, color: color, points: Self.smoothed(raw)))
        }
        var charts = [SVGChart(title: "Train loss (exponential moving average, 0.9; raw values faint)", xLabel: axis.label,
                               yLabel: "loss", series: loss)]
        let metrics = Set(runs.flatMap { $0.evaluations.flatMap(\.metrics.keys) }).sorted()
        for metric in metrics {
            charts.append(SVGChart(title: "Evaluation: \(metric)", xLabel: axis.label, yLabel: metric, series: runs.enumerated().map { i, run in
                SVGChart.Series(name: run.name, color: Self.colors[i % Self.colors.count],
                                points: run.evaluations.compactMap { e in e.metrics[metric].flatMap { v in x[i][e.step].map { ($0, v) } } })
            }))
        }
        charts.append(SVGChart(title: "Step time", xLabel: axis.label, yLabel: "seconds", series: series(\.seconds)))
        charts.append(SVGChart(title: "Throughput", xLabel: axis.label, yLabel: "batch tokens / s", series: series(\.tokensPerSecond)))
        charts.append(SVGChart(title: "Device memory (high-water mark)", xLabel: axis.label, yLabel: "MiB",
                               series: series { $0.deviceHighWaterBytes.map { $0 / 1_048_576 } }))
        if runs.contains(where: { $0.steps.contains { $0.linkBytes != nil } }) {
            charts.append(SVGChart(title: "Host ↔ device traffic per step", xLabel: axis.label, yLabel: "MiB",
                                   series: series { $0.linkBytes.map { $0 / 1_048_576 } }))
        }
        return charts.enumerated().filter { $0.offset == 0 || !$0.element.points.isEmpty }.map(\.element)  // loss, then what was recorded
    }

    /// An exponential moving average (α 0.9) with the bias correction TensorBoard's smoothing uses.
    static func smoothed(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
        var average = 0.0, weight = 0.0
        return points.map { point in
            average = 0.9 * average + 0.1 * point.y
            weight = 0.9 * weight + 0.1
            return (point.x, average / weight)
        }
    }

    /// The page's height in CSS pixels at its fixed width (for a screenshot of all of it).
    public var height: Int {
        let settingsRows = Set(runs.flatMap { $0.settings.map(\.key) }).count
        let metricRows = Set(runs.flatMap { $0.evaluations.flatMap(\.metrics.keys) }).count
        // A settings cell holds about 150 / runs characters a line (long values wrap).
        let wrapped = runs.flatMap(\.settings).map { $0.value.count / max(1, 150 / runs.count) }.reduce(0, +) / max(1, runs.count)
        return 160 + 32 * (runs.count + 1) + 32 * (metricRows * runs.count + 1) + (settingsRows == 0 ? 0 : 32 * (settingsRows + 1) + 60)
            + 20 * wrapped
            + (charts.count + 1) / 2 * Int(SVGChart.height + 14) + 80
    }

    /// The page.
    public func html() -> String {
        let names = runs.map(\.name).joined(separator: ", ")
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>ZOTune report: \(escape(names))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; width: 1160px; color: #222; background: #fff; }
            h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 22px 0 8px; }
            table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
            th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
            table.settings { table-layout: fixed; width: 100%; } table.settings td { overflow-wrap: anywhere; }
            table.settings th:first-child { width: 110px; }
            .charts { display: grid; grid-template-columns: 580px 580px; gap: 12px; }
            svg { background: #fafafa; border: 1px solid #ddd; } .title { font-weight: 600; font-size: 13px; }
            .grid { stroke: #e2e2e2; } .tick, .legend { font-size: 11px; fill: #444; } .axis { font-size: 12px; fill: #222; }
            .legendbox { fill: #fff; fill-opacity: 0.85; stroke: #ccc; }
            .muted { color: #666; }
            </style></head><body>
            <h1>ZOTune training report</h1>
            <div class="muted">\(escape(runs.map(\.directory).joined(separator: " · ")))</div>
            <h2>Runs</h2>
            <table><tr><th>run</th><th>status</th><th>training time</th><th>mean batch tokens/s</th><th>peak device memory</th></tr>

            """
        for run in runs {
            let seconds = run.steps.reduce(0) { $0 + $1.seconds }
            let rates = run.steps.compactMap(\.tokensPerSecond)
            let peak = run.steps.compactMap(\.deviceHighWaterBytes).max()
            page += "<tr><td>\(escape(run.name))</td><td>\(escape(run.status))</td><td class=\"num\">\(SVGChart.label(seconds)) s</td>"
                + "<td class=\"num\">\(rates.isEmpty ? "–" : SVGChart.label(rates.reduce(0, +) / Double(rates.count)))</td>"
                + "<td class=\"num\">\(peak.map { SVGChart.label($0 / 1_048_576) + " MiB" } ?? "–")</td></tr>\n"
        }
        page += "</table>\n<h2>Before and after</h2>\n<table><tr><th>run</th><th>metric</th><th>first (step)</th><th>last (step)</th><th>change</th></tr>\n"
        for run in runs {
            guard let first = run.evaluations.first, let last = run.evaluations.last else { continue }
            for metric in first.metrics.keys.sorted() {
                let (a, b) = (first.metrics[metric]!, last.metrics[metric] ?? .nan)
                page += "<tr><td>\(escape(run.name))</td><td>\(escape(metric))</td><td class=\"num\">\(format(a)) (\(first.step))</td>"
                    + "<td class=\"num\">\(format(b)) (\(last.step))</td><td class=\"num\">\(b - a >= 0 ? "+" : "")\(format(b - a))</td></tr>\n"
            }
        }
        page += "</table>\n"
        let keys = Set(runs.flatMap { $0.settings.map(\.key) }).sorted()
        if !keys.isEmpty {
            page += "<h2>Settings</h2>\n<table class=\"settings\"><tr><th>setting</th>" + runs.map { "<th>\(escape($0.name))</th>" }.joined() + "</tr>\n"
            for key in keys {
                page += "<tr><td>\(escape(key))</td>" + runs.map { run in
                    "<td>\(escape(run.settings.first { $0.key == key }?.value ?? "–"))</td>"
                }.joined() + "</tr>\n"
            }
            page += "</table>\n"
        }
        page += "<h2>Charts</h2>\n<div class=\"charts\">\n"
        for chart in charts { page += chart.svg() + "\n" }
        return page + "</div>\n</body></html>\n"
    }

    private func format(_ value: Double) -> String {
        value.isFinite ? String((value * 10_000).rounded() / 10_000) : "–"
    }

    /// Writes the page to `path` (atomically).
    public func write(to path: String) throws {
        let file = try AtomicFileWriter(path: path)
        try file.write(Array(html().utf8))
        try file.commit()
    }
}
