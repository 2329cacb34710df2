import ArgumentParser
import ZOModels

/// `--adapter`: a LoRA adapter in PEFT's format merged into the model after loading.
struct AdapterOptions: ParsableArguments {
    @Option(help: "A LoRA adapter folder in PEFT's format (adapter_config.json + adapter_model.safetensors), merged into the model.")
    var adapter: String?

    /// Merges the adapter, if one was given, into `model`'s weights.
    func apply(to model: any CausalLM) throws {
        guard let adapter else { return }
        try PEFTAdapter(directory: adapter).merge(into: model)
    }
}
