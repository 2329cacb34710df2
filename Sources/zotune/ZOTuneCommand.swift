import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

@main
struct ZOTuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zotune",
        abstract: "Zeroth-order fine-tuning of large language models on little accelerator memory.",
        subcommands: [TrainCommand.self, EvalCommand.self, ExportCommand.self, ReportCommand.self, LossCommand.self, GenerateCommand.self, TemplateCommand.self, TokenizeCommand.self, AssetsCommand.self, BenchCommand.self, PlanCommand.self, ReplayCommand.self, DevicesCommand.self, SelfTestCommand.self]
    )

    /// Runs the command and ends the process (`endProcess`), printing as swift-argument-parser does.
    static func main() {
        var status: Int32 = 0
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            status = exitCode(for: error).rawValue
            let message = fullMessage(for: error)
            if !message.isEmpty {
                if status == 0 { print(message) } else { Self.writeToStandardError(message + "\n") }
            }
        }
        endProcess(status)
    }

    private static func writeToStandardError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

