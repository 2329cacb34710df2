import ArgumentParser
import ZOCPU
import ZOFormats
import ZOModels
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct LossCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loss",
        abstract: "Print the next-token loss and arg-max tokens of a model on token ids.",
        discussion: """
        Prints one JSON line per sequence: {"loss": L, "tokens": n, "argmax": [...]}, where loss is the \
        mean next-token cross-entropy over the n predicted tokens and argmax the arg-max token of the \
        logits at every position.
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOptions: AdapterOptions

    @Option(help: "Comma-separated token ids of one sequence.")
    var ids: String?

    @Option(name: .customLong("ids-file"), help: "A JSON file holding an array of token-id arrays.")
    var idsFile: String?

    @Option(help: "A text, encoded with the model's tokenizer (or --tokenizer).")
    var text: String?

    @Option(name: .customLong("logits-file"), help: "Also write the first sequence's logits there: float32 [T, V], little-endian.")
    var logitsFile: String?

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard [ids != nil, idsFile != nil, text != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --ids, --ids-file and --text")
        }
    }

    struct Line: Encodable {
        let loss: Double?
        let tokens: Int
        let argmax: [Int32]
    }

    func run() throws {
        let sequences = try readSequences()
        let model = try modelOptions.loadModel(blockStorage: try compute.hostStorage())
        try adapterOptions.apply(to: model)
        let batch = try model.makeBatch(sequences)
        let runner = try compute.makeRunner(model: model)
        let result = try runner.forward(batch, outputs: logitsFile == nil ? .argmax : [.argmax, .logits])
        if let logitsFile, let logits = result.logits {
            let rows = batch.lengths[0] * model.vocabSize
            let file = try AtomicFileWriter(path: logitsFile)
            try logits.withUnsafeBytes { try file.write(UnsafeRawBufferPointer(rebasing: $0[0..<rows * 4])) }
            try file.commit()
        }
        for b in 0..<batch.batchSize {
            let (loss, _, targets) = result.sequenceLoss(b)
            let argmax = Array(result.argmax![b * batch.tokens..<b * batch.tokens + batch.lengths[b]])
            try printJSONLine(Line(loss: loss.isNaN ? nil : loss, tokens: targets, argmax: argmax))
        }
    }

    private func readSequences() throws -> [[Int]] {
        if let text {
            return [try modelOptions.loadTokenizer().encode(text, addSpecialTokens: true)]
        }
        if let ids {
            let parts = ids.split(separator: ",", omittingEmptySubsequences: false)
            return [try parts.map { part in
                guard let id = Int(part.filter { $0 != " " }) else {
                    throw ValidationError("--ids: '\(part)' is not an integer token id")
                }
                return id
            }]
        }
        let path = idsFile!
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--ids-file: cannot read \(path)")
        }
        do {
            return try JSONDecoder().decode([[Int]].self, from: data)
        } catch {
            throw ValidationError("--ids-file: \(path) is not a JSON array of token-id arrays")
        }
    }
}
