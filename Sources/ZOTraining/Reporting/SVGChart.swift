#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A line chart as inline SVG: axes with round ticks, one polyline per series, a legend.
struct SVGChart {
    struct Series {
        let name: String
        let color: String
        let points: [(x: Double, y: Double)]
        /// Drawn thin and translucent (the raw values under a smoothed line).
        var faint = false
    }

    let title: String
    let xLabel: String
    let yLabel: String
    var series: [Series]
    static let width = 560.0, height = 300.0
    private static let left = 64.0, right = 16.0, top = 30.0, bottom = 46.0

    /// The finite points of every series.
    var points: [(x: Double, y: Double)] { series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite } }

    /// The chart (an empty frame when no series has a point).
    func svg() -> String {
        let points = self.points
        let first = points.first ?? (0, 0)
        let xs = Self.ticks(points.reduce(first.x) { min($0, $1.x) }, points.reduce(first.x) { max($0, $1.x) })
        let ys = Self.ticks(points.reduce(first.y) { min($0, $1.y) }, points.reduce(first.y) { max($0, $1.y) })
        let (w, h) = (Self.width - Self.left - Self.right, Self.height - Self.top - Self.bottom)
        // Halves, exactly: a span past Double's range (-1e308 to 1e308) still divides.
        func px(_ x: Double) -> Double { Self.left + (x / 2 - xs.first! / 2) / (xs.last! / 2 - xs.first! / 2) * w }
        func py(_ y: Double) -> Double { Self.top + h - (y / 2 - ys.first! / 2) / (ys.last! / 2 - ys.first! / 2) * h }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(Self.width))\" height=\"\(Int(Self.height))\" "
            + "viewBox=\"0 0 \(Int(Self.width)) \(Int(Self.height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        out += "<text x=\"\(Self.left)\" y=\"18\" class=\"title\">\(escape(title))</text>"
        for x in xs {
            out += "<line x1=\"\(f(px(x)))\" y1=\"\(f(Self.top))\" x2=\"\(f(px(x)))\" y2=\"\(f(Self.top + h))\" class=\"grid\"/>"
            out += "<text x=\"\(f(px(x)))\" y=\"\(f(Self.top + h + 16))\" class=\"tick\" text-anchor=\"middle\">\(Self.label(x))</text>"
        }
        for y in ys {
            out += "<line x1=\"\(f(Self.left))\" y1=\"\(f(py(y)))\" x2=\"\(f(Self.left + w))\" y2=\"\(f(py(y)))\" class=\"grid\"/>"
            out += "<text x=\"\(f(Self.left - 6))\" y=\"\(f(py(y) + 4))\" class=\"tick\" text-anchor=\"end\">\(Self.label(y))</text>"
        }
        out += "<text x=\"\(f(Self.left + w / 2))\" y=\"\(f(Self.height - 8))\" class=\"axis\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        out += "<text transform=\"translate(14 \(f(Self.top + h / 2))) rotate(-90)\" class=\"axis\" text-anchor=\"middle\">\(escape(yLabel))</text>"
        for line in series where !line.points.isEmpty {
            let path = line.points.filter { $0.x.isFinite && $0.y.isFinite }.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            let style = line.faint ? "stroke-width=\"1\" stroke-opacity=\"0.3\"" : "stroke-width=\"2\""
            if line.points.count == 1 {
                out += "<circle cx=\"\(f(px(line.points[0].x)))\" cy=\"\(f(py(line.points[0].y)))\" r=\"3\" fill=\"\(line.color)\"/>"
            } else {
                out += "<polyline fill=\"none\" stroke=\"\(line.color)\" \(style) points=\"\(path)\"/>"
            }
        }
        // The legend in a box at the top right, as wide as its longest name (about 6.2 px a character).
        let named = series.filter { !$0.faint }
        let boxWidth = 26 + 6.2 * Double(named.map(\.name.count).max() ?? 0)
        let boxLeft = Self.left + w - boxWidth - 4
        out += "<rect x=\"\(f(boxLeft))\" y=\"\(f(Self.top + 2))\" width=\"\(f(boxWidth))\" height=\"\(f(Double(named.count) * 15 + 6))\" "
            + "class=\"legendbox\"/>"
        for (k, line) in named.enumerated() {
            let y = Self.top + 6 + Double(k) * 15
            out += "<rect x=\"\(f(boxLeft + 6))\" y=\"\(f(y))\" width=\"10\" height=\"10\" fill=\"\(line.color)\"/>"
            out += "<text x=\"\(f(boxLeft + 21))\" y=\"\(f(y + 9))\" class=\"legend\">\(escape(line.name))</text>"
        }
        return out + "</svg>"
    }

    /// Round tick values (steps of 1, 2 or 5 × 10^k) spanning [low, high], at least two; just
    /// the ends where Double cannot step through the span (a diverged run's 1e300 loss).
    static func ticks(_ low: Double, _ high: Double) -> [Double] {
        let (low, high) = low == high ? (low - max(abs(low) * 0.1, 1), high + max(abs(high) * 0.1, 1)) : (low, high)
        let rough = (high - low) / 5
        let power = pow(10, (log10(rough)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= rough } ?? 10 * power
        let start = (low / step).rounded(.down) * step
        let last = ((high - start) / step + 0.999).rounded(.down)  // the last tick's index: within a step past high
        guard step.isFinite, step > 0, start.isFinite, last.isFinite, (1...12).contains(last),
              (start + last * step).isFinite, start + step > start else { return [low, high] }
        return (0...Int(last)).map { start + Double($0) * step }
    }

    /// A short label: 1.5k, 2M, 0.25, 3e-05, 1e+15.
    static func label(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude == 0 { return "0" }
        if magnitude >= 1e12 || magnitude < 1e-3 || !magnitude.isFinite { return "\(value)" }
        if magnitude >= 1e9 { return trim(value / 1e9) + "G" }
        if magnitude >= 1e6 { return trim(value / 1e6) + "M" }
        if magnitude >= 1e4 { return trim(value / 1e3) + "k" }
        return trim(value)
    }

    /// `value` (below 10^12 in magnitude) to three decimals, without a fractional part when whole.
    private static func trim(_ value: Double) -> String {
        let rounded = (value * 1000).rounded() / 1000
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    private func f(_ value: Double) -> String { String((value * 10).rounded() / 10) }
}

/// Text with HTML's special characters escaped.
func escape(_ text: String) -> String {
    var escaped = ""
    for character in text {
        switch character {
        case "&": escaped += "&amp;"
        case "<": escaped += "&lt;"
        case ">": escaped += "&gt;"
        case "\"": escaped += "&quot;"
        default: escaped.append(character)
        }
    }
    return escaped
}
