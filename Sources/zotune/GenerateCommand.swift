import ArgumentParser
import ZOCPU
import ZOModels
import ZOTokenizers
#if canImport(Glibc)
import Glibc
#endif

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with the model, streaming the text (KV cache; greedy or sampled)."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOptions: AdapterOptions

    @Option(help: "The prompt.")
    var prompt: String

    @Option(name: .customLong("max-tokens"), help: "At most this many new tokens.")
    var maxTokens = 64

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling: keep the most likely tokens up to this probability mass.")
    var topP: Float = 0.9

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Flag(help: "Render the prompt as a user message with the model's chat template (instruct models).")
    var chat = false

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must not be negative") }
        guard temperature >= 0, topP > 0, topP <= 1 else { throw ValidationError("--temperature must be ≥ 0 and --top-p in (0, 1]") }
    }

    func run() throws {
        let model = try modelOptions.loadModel(blockStorage: try compute.hostStorage())
        try adapterOptions.apply(to: model)
        let tokenizer = try modelOptions.loadTokenizer()
        // A rendered template holds its own BOS where the model wants one (as apply_chat_template).
        let ids = chat ? tokenizer.encode(try modelOptions.loadChatTemplate().prompt(user: prompt))
                       : tokenizer.encode(prompt, addSpecialTokens: true)
        guard !ids.isEmpty else { throw ValidationError("--prompt encodes to no tokens") }
        let stops = chat ? ChatTemplate.stopTokens(of: tokenizer) : Set([tokenizer.eosTokenId].compactMap { $0 })

        let runner = try compute.makeRunner(model: model)
        print(prompt, terminator: chat ? "\n" : "")
        var generated: [Int] = []
        var printed = 0
        try runner.generate(prompt: ids, maxTokens: maxTokens, sampler: Sampler(temperature: temperature, topP: topP, seed: seed),
                            stopTokens: stops) { token in
            generated.append(token)
            // Print what decodes completely (a character may span several tokens).
            let decoded = Array(tokenizer.decode(generated))
            if decoded.last != "\u{FFFD}" {
                print(String(decoded[printed...]), terminator: "")
                fflush(nil)
                printed = decoded.count
            }
            return true
        }
        print(String(Array(tokenizer.decode(generated)).dropFirst(printed)))
    }
}
