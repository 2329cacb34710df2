import ArgumentParser
import ZOFormats
import ZOModels
import ZOTasks
import ZOTokenizers
#if canImport(Glibc)
import Glibc
#endif

/// The options of `--task sft`.
struct SFTOptions: ParsableArguments {
    @Option(name: .customLong("loss-on"), help: "sft: learn the completion / assistant turns only, or all tokens (completion, all).")
    var lossOn = SFTLossScope.completion.rawValue

    @Option(name: .customLong("max-length"), help: "sft: cut examples to this many tokens (default: 1024, as TRL, or the model's limit).")
    var maxLength: Int?

    @Option(name: .customLong("generate-eval"), help: "sft: at each evaluation, greedy answers to the first N held-out prompts (written to OUTPUT/generations.jsonl).")
    var generateEval = 0

    @Option(name: .customLong("generate-tokens"), help: "sft: most tokens per generated answer.")
    var generateTokens = 64

    @Option(help: "sft: where --generate-eval writes its answers (JSONL; train's default: OUTPUT/generations.jsonl).")
    var generations: String?

    /// Whether any of these options was given (they apply to `--task sft` only).
    var isSet: Bool { lossOn != SFTLossScope.completion.rawValue || maxLength != nil || generateEval != 0 || generations != nil }

    func validate() throws {
        guard SFTLossScope(rawValue: lossOn) != nil else { throw ValidationError("--loss-on must be completion or all") }
        if let maxLength, maxLength < 2 { throw ValidationError("--max-length must be at least 2") }
        guard generateEval >= 0, generateTokens > 0 else { throw ValidationError("--generate-eval must be ≥ 0 and --generate-tokens > 0") }
    }

    /// The SFT task over `data` and `evalData`, answers written as JSON lines to `generationsPath`.
    func makeTask(data: String?, evalData: String?, model: any CausalLM, tokenizer: Tokenizer, template: ChatTemplate?,
                  generationsPath: String?) throws -> (task: any TrainingTask, notes: [String]) {
        let limit = min(maxLength ?? 1024, model.maxSequenceLength)
        let encoder = SFTEncoder(tokenizer: tokenizer, template: template, scope: SFTLossScope(rawValue: lossOn)!, maxLength: limit)
        let train = try data.map { try SFTData(path: $0, encoder: encoder) }
        let heldOut = try evalData.map { try SFTData(path: $0, encoder: encoder) }
        var notes = [train, heldOut].compactMap { $0?.summary }
        if let template, [train, heldOut].contains(where: { $0?.format == .conversation || $0?.format == .conversationalPromptCompletion }) {
            notes.append("chat template: \(template.origin)")
        }
        var generation: SFTGenerationSettings?
        if generateEval > 0 {
            // Numbered after the answers already in the file (a resumed run appends to it).
            var evaluation = generationsPath.flatMap { try? GenerationsFile.lastEvaluation(in: $0) } ?? 0
            generation = SFTGenerationSettings(count: generateEval, maxTokens: generateTokens,
                                               stopTokens: ChatTemplate.stopTokens(of: tokenizer),
                                               decode: { tokenizer.decode($0, skipSpecialTokens: true) }) { answers in
                evaluation += 1
                guard let path = generations ?? generationsPath else { return }
                try GenerationsFile.append(answers, evaluation: evaluation, to: path)
            }
        }
        return (SFTTrainingTask(train: train?.examples ?? [], heldOut: heldOut?.examples ?? [], generation: generation), notes)
    }
}

/// generations.jsonl: one line per answer, {"evaluation", "prompt", "reference", "answer"}.
enum GenerationsFile {
    /// The highest evaluation number in an existing file (0 when there is none).
    static func lastEvaluation(in path: String) throws -> Int {
        guard let file = fopen(path, "r") else { return 0 }
        defer { fclose(file) }
        var last = 0, line: UnsafeMutablePointer<CChar>?, capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let text = line.map({ String(cString: $0) }) {
            if case .int(let number)? = (try? JSONValue(parsing: text))?.object?["evaluation"] { last = max(last, number) }
        }
        return last
    }

    static func append(_ answers: [SFTAnswer], evaluation: Int, to path: String) throws {
        let lines = answers.map { answer in
            JSONValue.object(JSONObject([("evaluation", .int(evaluation)), ("prompt", .string(answer.prompt)),
                                         ("reference", .string(answer.reference)), ("answer", .string(answer.answer))]))
                .pythonJSON() + "\n"
        }.joined()
        guard let file = fopen(path, "a") else {
            throw ValidationError("\(path): cannot open for writing: \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        let bytes = Array(lines.utf8)
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count, fflush(file) == 0 else {
            throw ValidationError("\(path): cannot write: \(String(cString: strerror(errno)))")
        }
    }
}
