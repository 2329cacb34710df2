import ArgumentParser
import ZOAssets
import ZOCore
import ZOModels
import ZOTokenizers

/// `--model` and `--tokenizer`, resolved through the asset cache.
struct ModelOptions: ParsableArguments {
    @Option(help: "A model: a Hugging Face folder (config.json + safetensors), a training run's --output folder, a .gguf file, or an asset id (smollm2-135m).")
    var model: String

    @Option(help: "A tokenizer (tokenizer.json, a folder with vocab.json + merges.txt, a .gguf, or an asset id). Default: the model's own.")
    var tokenizer: String?

    /// The model's path after resolving an asset id and a training run's folder (its model/).
    func modelPath() throws -> String { ModelRegistry.modelPath(try Assets().resolve(model)) }

    /// The model, its blocks' host copies in `blockStorage`.
    func loadModel(blockStorage: HostStorage = .memory) throws -> any CausalLM {
        try ModelRegistry.load(path: try modelPath(), blockStorage: blockStorage)
    }

    func loadTokenizer() throws -> Tokenizer {
        try Tokenizer.load(path: try Assets().resolve(tokenizer ?? modelPath()))
    }

    /// The chat template kept with the tokenizer (or the model).
    func loadChatTemplate() throws -> ChatTemplate {
        try ChatTemplate.load(path: try Assets().resolve(tokenizer ?? modelPath()))
    }

    /// The chat template if the model has one.
    func findChatTemplate() throws -> ChatTemplate? {
        try ChatTemplate.find(path: try Assets().resolve(tokenizer ?? modelPath()))
    }
}
