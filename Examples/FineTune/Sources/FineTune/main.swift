// Fine-tunes a model with population ZO through ZOTune's library API and saves it:
//   swift run --package-path Examples/FineTune FineTune MODEL_DIR OUTPUT_DIR
import ZOCPU
import ZOModels
import ZOOptimizers
import ZOTasks
import ZOTraining

let arguments = CommandLine.arguments
let model = try ModelRegistry.load(path: arguments.count > 1 ? arguments[1] : "Tests/ZOTuneTests/Fixtures/llama/qwen3-f32")
let runner = try ResidentRunner(model: model, backend: try CPUBackend(threads: 2))
let texts = (0..<32).map { k in (0..<12).map { (7 * k + 5 * $0) % model.vocabSize } }  // token ids
let task = LMTrainingTask(train: texts, heldOut: texts)
let options = TrainingOptions(steps: 20, batchSize: 8, schedule: LearningRateSchedule(base: 1e-3, shape: .constant, totalSteps: 20),
                              mezo: MeZOOptions(perturbation: .rademacher,
                                                population: PopulationOptions(queries: 4, oneSided: true, normalize: .std)),
                              seed: 0)
var before: Double?
let after = try Trainer(runner: runner, task: task, options: options).run { event in
    if case .evaluation(_, let metrics) = event, before == nil { before = metrics["eval_loss"] }
}
try runner.copyParametersToHost()
try model.save(to: arguments.count > 2 ? arguments[2] : "/tmp/zotune-example")
print("eval_loss \(before!) before, \(after["eval_loss"]!) after \(options.steps) population ZO steps")
