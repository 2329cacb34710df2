import ArgumentParser
import ZOAssets
import ZOModels
import ZOTokenizers

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a model (a training run's folder, a model folder, a .gguf or an asset id) as a GGUF file for llama.cpp.",
        discussion: """
            The GGUF holds llama.cpp's tensor names and layouts, the architecture's keys and the tokenizer (carried \
            from a source GGUF or a run's tokenizer.gguf, or built from a byte-level tokenizer.json) with its chat \
            template. Weight matrices are stored as --type; norms and biases stay f32. Quantized types are \
            bit-identical to the gguf package's quantizers.
            """
    )

    @Argument(help: "The model: a training run's output folder, a model folder, a .gguf file or an asset id.")
    var model: String

    @Argument(help: "The GGUF file to write.")
    var output: String

    @Option(help: "The output format (gguf).")
    var format = "gguf"

    @Option(help: "The weight matrices' type: \(GGUFFileType.allCases.map(\.rawValue).joined(separator: ", ")).")
    var type = GGUFFileType.f16

    @Option(help: "The tokenizer to carry (a .gguf, tokenizer.json or folder). Default: the model's own.")
    var tokenizer: String?

    @Option(help: "general.name in the file. Default: the model's folder or file name.")
    var name: String?

    func validate() throws {
        guard format == "gguf" else { throw ValidationError("--format \(format): only gguf is written") }
    }

    func run() throws {
        let path = try ModelOptions(model: model).modelPath()
        let loaded = try ModelRegistry.load(path: path)
        try exportGGUF(loaded, tokenizer: try Assets().resolve(tokenizer ?? path), type: type, name: name ?? displayName(path), to: output)
        print("wrote \(output) (\(type.rawValue))")
    }
}

extension GGUFFileType: ExpressibleByArgument {}

/// Writes `model` as GGUF with the tokenizer at `tokenizerPath` (the CLI's export and `train --output-gguf`).
func exportGGUF(_ model: any CausalLM, tokenizer tokenizerPath: String, type: GGUFFileType, name: String, to path: String) throws {
    let ids = try GGUFExport.exportable(model).specialTokenIds  // refuses what llama.cpp cannot run before reading the tokenizer
    let vocabulary = try GGUFVocabulary.metadata(tokenizerAt: tokenizerPath, bos: ids.bos, eos: ids.eos, pad: ids.pad)
    try GGUFExport.write(model, fileType: type, tokenizer: vocabulary, name: name, to: path)
}

/// A model path's last component without its extension ("runs/sst/model" → "sst").
func displayName(_ path: String) -> String {
    var parts = path.split(separator: "/")
    if parts.last == "model", parts.count > 1 { parts.removeLast() }
    let last = parts.last.map(String.init) ?? path
    return last.hasSuffix(".gguf") ? String(last.dropLast(5)) : last
}
