import ArgumentParser

@main
struct ZOTuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zotune",
        abstract: "Zeroth-order fine-tuning of large language models on little accelerator memory.",
        subcommands: [TrainCommand.self, EvalCommand.self, LossCommand.self, GenerateCommand.self, TokenizeCommand.self, AssetsCommand.self, BenchCommand.self]
    )
}

/// Options shared by commands that compute on the CPU backend.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Compute threads (GEMM and kernels). Default: all cores.")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}
