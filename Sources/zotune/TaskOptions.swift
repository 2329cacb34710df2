import ArgumentParser
import ZOAssets
import ZOModels
import ZOTasks
import ZOTokenizers

/// `--task`, `--data` and `--eval-data`, turned into a training task for a model.
struct TaskOptions: ParsableArguments {
    static let choiceTasks = ChoiceTemplate.allCases.map(\.rawValue)
    static let qaTasks = QATemplate.allCases.map(\.rawValue)
    static let allTasks = ["lm", "sft", "sentiment"] + choiceTasks + qaTasks

    @Option(help: "lm, sft (TRL's formats: text, prompt/completion, messages; chat template applied), sentiment (built in: Rotten Tomatoes), or \((choiceTasks + qaTasks).joined(separator: ", ")) (JSONL with Hugging Face field names).")
    var task = "lm"

    @Option(help: "Training data (JSONL); sentiment needs none.")
    var data: String?

    @Option(name: .customLong("eval-data"), help: "Held-out data (JSONL); sentiment uses its test split.")
    var evalData: String?

    @OptionGroup var sft: SFTOptions

    func validate() throws {
        guard Self.allTasks.contains(task) else {
            throw ValidationError("unknown --task '\(task)' (available: \(Self.allTasks.joined(separator: ", ")))")
        }
        if task != "sentiment", data == nil, evalData == nil { throw ValidationError("--task \(task) needs --data or --eval-data") }
        if task != "sft", sft.isSet {
            throw ValidationError("--loss-on, --max-length, --generate-eval and --generations apply to --task sft only")
        }
    }

    /// For training: the training data must be given.
    func validateForTraining() throws {
        if task != "sentiment", data == nil { throw ValidationError("--task \(task) needs --data") }
    }

    /// The task for `model`, encoding texts with `modelOptions`' tokenizer (loaded on first use).
    /// For evaluation only, the held-out data is `--eval-data`, else `--data`, and nothing is
    /// read for training.
    func makeTask(model: any CausalLM, modelOptions: ModelOptions, evaluationOnly: Bool = false, generationsPath: String? = nil)
        throws -> (task: any TrainingTask, notes: [String]) {
        let (data, evalData) = evaluationOnly ? (nil, self.evalData ?? self.data) : (self.data, self.evalData)
        var loaded: Tokenizer?
        func codec() throws -> Tokenizer {
            if loaded == nil { loaded = try modelOptions.loadTokenizer() }
            return loaded!
        }
        let length = model.maxSequenceLength
        switch task {
        case "lm":
            let encode = { (text: String) throws -> [Int] in try codec().encodePrompt(text) }
            let train = try data.map { try LMTask(path: $0, maxLength: length, vocabSize: model.vocabSize, encode: encode) }
            let heldOut = try evalData.map { try LMTask(path: $0, maxLength: length, vocabSize: model.vocabSize, encode: encode) }
            let notes = (train?.truncated ?? 0) > 0 ? ["\(train!.truncated) training examples were cut to \(length) tokens"] : []
            return (LMTrainingTask(train: train?.examples ?? [], heldOut: heldOut?.examples), notes)
        case "sft":
            return try sft.makeTask(data: data, evalData: evalData, model: model, tokenizer: try codec(),
                                    template: try modelOptions.findChatTemplate(), generationsPath: generationsPath)
        case "sentiment":
            let path = try Assets().resolve(self.data ?? "rotten-tomatoes")
            let sentiment = try SentimentData(path: path, maxLength: length, codec: try codec())
            return (ChoiceTrainingTask(train: sentiment.train, heldOut: sentiment.test),
                    ["sentiment: \(sentiment.train.count) train / \(sentiment.dev.count) dev / \(sentiment.test.count) test (accuracy on test)"])
        case _ where Self.qaTasks.contains(task):
            let template = QATemplate(rawValue: task)!
            let answerTokens = QATrainingTask.defaultAnswerTokens
            let train = try data.map {
                try loadQAExamples(path: $0, template: template, maxLength: length, answerTokens: answerTokens, codec: try codec())
            } ?? []
            let heldOut = try evalData.map {
                try loadQAExamples(path: $0, template: template, maxLength: length, answerTokens: answerTokens, codec: try codec())
            } ?? []
            return (QATrainingTask(train: train, heldOut: heldOut, codec: try codec(), answerTokens: answerTokens), [])
        default:
            let template = ChoiceTemplate(rawValue: task)!
            let train = try data.map { try loadChoiceExamples(path: $0, template: template, maxLength: length, codec: try codec()) } ?? []
            let heldOut = try evalData.map { try loadChoiceExamples(path: $0, template: template, maxLength: length, codec: try codec()) } ?? []
            return (ChoiceTrainingTask(train: train, heldOut: heldOut), [])
        }
    }
}
