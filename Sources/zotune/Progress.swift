#if canImport(Glibc)
import Glibc
#endif

/// Training progress: on a terminal one line redrawn in place (step, loss, steps/s, ETA);
/// otherwise one plain line per step, flushed so that logs follow along. The rate counts from
/// the end of the first step (evaluations before it are not steps).
final class Progress {
    let total: Int
    let isTerminal = isatty(STDOUT_FILENO) != 0
    private var firstStep: (step: Int, time: Double)?

    init(total: Int) {
        self.total = total
    }

    /// Reports step `step` (1-based) with its mean loss; `extra` is appended.
    func step(_ step: Int, loss: Double, now: Double, extra: String) {
        if firstStep == nil { firstStep = (step, now) }
        let counted = step - firstStep!.step
        let rate = counted == 0 ? 0 : Double(counted) / max(now - firstStep!.time, 1e-9)
        let remaining = rate > 0 ? Double(total - step) / rate : 0
        let eta = rate == 0 ? "?" : remaining >= 60 ? "\(Int(remaining) / 60)m\(Int(remaining) % 60)s" : "\(Int(remaining))s"
        let line = "step \(step)/\(total)  loss \(format(loss))  \(format(rate)) steps/s  ETA \(eta)  \(extra)"
        if isTerminal {
            let width = 20, filled = total == 0 ? width : width * step / total
            let bar = "[" + String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled) + "]"
            print("\r\u{1B}[2K\(bar) \(line)", terminator: step == total ? "\n" : "")
            fflush(nil)
        } else {
            print(line)
            fflush(nil)
        }
    }

    /// A line that must not be overwritten (evaluations, notes).
    func message(_ text: String) {
        print(isTerminal ? "\r\u{1B}[2K\(text)" : text)
        fflush(nil)
    }
}
