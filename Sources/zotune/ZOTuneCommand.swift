import ArgumentParser

@main
struct ZOTuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zotune",
        abstract: "Zeroth-order fine-tuning of large language models on little accelerator memory.",
        subcommands: [TrainCommand.self, EvalCommand.self, ExportCommand.self, ReportCommand.self, LossCommand.self, GenerateCommand.self, TemplateCommand.self, TokenizeCommand.self, AssetsCommand.self, BenchCommand.self, PlanCommand.self, ReplayCommand.self, DevicesCommand.self, SelfTestCommand.self]
    )
}

