import ArgumentParser
import ZOCPU
import ZOModels

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model (zero-shot or fine-tuned) on a task's held-out data and print JSON."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOptions: AdapterOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        let model = try modelOptions.loadModel(blockStorage: try compute.hostStorage())
        try adapterOptions.apply(to: model)
        let (task, _) = try taskOptions.makeTask(model: model, modelOptions: modelOptions, evaluationOnly: true)
        let runner = try compute.makeRunner(model: model)
        var metrics = try task.evaluate(runner: runner)
        metrics["examples_evaluated"] = nil
        try printJSONLine(metrics)
    }
}
