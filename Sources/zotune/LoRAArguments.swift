import ArgumentParser
import ZOModels
import ZOOptimizers

/// `zotune train`'s LoRA options: a new adapter (`--lora r`) or one in PEFT's format trained
/// further (`--adapter DIR`), the base frozen; `--merge` also writes the merged model.
struct LoRAArguments: ParsableArguments {
    @Option(help: "Train a LoRA adapter of rank r by ZO over the frozen model (saved in PEFT's format to OUTPUT/adapter).")
    var lora: Int?

    @Option(name: .customLong("lora-alpha"), help: "LoRA's α: the adapter adds (α/r)·B·A (default 2r).")
    var loraAlpha: Float?

    @Option(name: .customLong("lora-targets"), help: """
        The modules adapted, comma-separated (the last part of a weight's name: q_proj, v_proj, fc1, …), or all-linear \
        (default q_proj,v_proj, PEFT's default for these families).
        """)
    var loraTargets: String?

    @Flag(name: .customLong("lora-rslora"), help: "rsLoRA: the adapter adds (α/√r)·B·A.")
    var loraRSLoRA = false

    @Option(help: "Train further the LoRA adapter in this folder (PEFT's format: adapter_config.json + adapter_model.safetensors).")
    var adapter: String?

    @Flag(help: "With LoRA: also write the base with the adapter merged in to OUTPUT/model.")
    var merge = false

    /// Whether the run trains a LoRA adapter.
    var isLoRA: Bool { lora != nil || adapter != nil }

    func validate() throws {
        if let lora, lora < 1 { throw ValidationError("--lora must be at least 1") }
        if adapter != nil, lora != nil || loraAlpha != nil || loraTargets != nil || loraRSLoRA {
            throw ValidationError("--adapter trains that adapter further with its own settings: drop --lora, --lora-alpha, "
                                  + "--lora-targets and --lora-rslora")
        }
        if !isLoRA, loraAlpha != nil || loraTargets != nil || loraRSLoRA || merge {
            throw ValidationError("--lora-alpha, --lora-targets, --lora-rslora and --merge set a LoRA run: add --lora r (or --adapter DIR)")
        }
        if let loraTargets {
            let names = targets(loraTargets)
            if names.isEmpty || names.contains("") { throw ValidationError("--lora-targets '\(loraTargets)': a comma-separated list of module names") }
            if names.contains("all-linear"), names.count > 1 { throw ValidationError("--lora-targets: all-linear stands alone") }
        }
        if let loraAlpha, !(loraAlpha > 0 && loraAlpha.isFinite) { throw ValidationError("--lora-alpha must be positive") }
    }

    /// The run's LoRA options and the adapter it starts from (nil without LoRA).
    func options(seed: UInt64) throws -> (options: LoRAOptions, start: PEFTAdapter?)? {
        if let adapter {
            let start = try PEFTAdapter(directory: adapter)
            return (LoRAOptions(adapter: start, seed: seed), start)
        }
        guard let lora else { return nil }
        return (LoRAOptions(rank: lora, alpha: loraAlpha ?? Float(2 * lora), targets: loraTargets.map(targets) ?? LoRAOptions.defaultTargets,
                            rsLoRA: loraRSLoRA, seed: seed), nil)
    }

    /// The module names of a --lora-targets list (spaces around them dropped).
    private func targets(_ list: String) -> [String] {
        list.split(separator: ",", omittingEmptySubsequences: false).map { String($0.filter { !$0.isWhitespace }) }
    }
}
