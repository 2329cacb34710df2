import ArgumentParser
import ZOAssets
import ZOModels
import ZOTasks
import ZOTokenizers

/// `--task`, `--data` and `--eval-data`, turned into a training task for a model.
struct TaskOptions: ParsableArguments {
    static let choiceTasks = ChoiceTemplate.allCases.map(\.rawValue)

    @Option(help: "lm, sentiment (built in: Rotten Tomatoes), or \(choiceTasks.joined(separator: ", ")) (JSONL with Hugging Face field names).")
    var task = "lm"

    @Option(help: "Training data (JSONL); sentiment needs none.")
    var data: String?

    @Option(name: .customLong("eval-data"), help: "Held-out data (JSONL); sentiment uses its test split.")
    var evalData: String?

    func validate() throws {
        guard task == "lm" || task == "sentiment" || Self.choiceTasks.contains(task) else {
            throw ValidationError("unknown --task '\(task)' (available: lm, sentiment, \(Self.choiceTasks.joined(separator: ", ")))")
        }
        if task != "sentiment", data == nil { throw ValidationError("--task \(task) needs --data") }
    }

    /// The task for `model`, encoding texts with `modelOptions`' tokenizer (loaded on first use).
    func makeTask(model: any CausalLM, modelOptions: ModelOptions) throws -> (task: any TrainingTask, notes: [String]) {
        var loaded: Tokenizer?
        let encode = { (text: String) throws -> [Int] in
            if loaded == nil { loaded = try modelOptions.loadTokenizer() }
            return loaded!.encode(text, addSpecialTokens: true)
        }
        let length = model.maxSequenceLength
        switch task {
        case "lm":
            let train = try LMTask(path: data!, maxLength: length, encode: encode)
            let heldOut = try evalData.map { try LMTask(path: $0, maxLength: length, encode: encode) }
            let notes = train.truncated > 0 ? ["\(train.truncated) training examples were cut to \(length) tokens"] : []
            return (LMTrainingTask(train: train, heldOut: heldOut), notes)
        case "sentiment":
            let path = try Assets().resolve(data ?? "rotten-tomatoes")
            let sentiment = try SentimentData(path: path, maxLength: length, encode: encode)
            return (ChoiceTrainingTask(train: sentiment.train, heldOut: sentiment.test),
                    ["sentiment: \(sentiment.train.count) train / \(sentiment.dev.count) dev / \(sentiment.test.count) test (accuracy on test)"])
        default:
            let template = ChoiceTemplate(rawValue: task)!
            let train = try loadChoiceExamples(path: data!, template: template, maxLength: length, encode: encode)
            let heldOut = try evalData.map { try loadChoiceExamples(path: $0, template: template, maxLength: length, encode: encode) } ?? []
            return (ChoiceTrainingTask(train: train, heldOut: heldOut), [])
        }
    }
}
