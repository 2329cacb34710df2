import Foundation
import ZOFormats
import ZOModels
import ZOTokenizers

/// Text formats of a model folder: tokenizer files, config.json, chat templates and the
/// tokenizer_config.json that carries them; and the tokenizer's own work on hostile text.
enum TextTargets {
    static let all = [
        FuzzTarget(name: "tokenizer-json", run: tokenizerJSON),
        FuzzTarget(name: "vocab-merges", run: vocabularyAndMerges),
        FuzzTarget(name: "encode", run: encode),
        FuzzTarget(name: "config-json", run: configJSON),
        FuzzTarget(name: "chat-template", run: chatTemplate),
        FuzzTarget(name: "tokenizer-config", run: tokenizerConfig),
    ]

    static let sample = "Hello, world! It's 2026: naïve café 東京 🙂\n\tend  "

    /// A `tokenizer.json`, loaded and used on a fixed text with every kind of character.
    static func tokenizerJSON(_ input: [UInt8]) {
        let path = Scratch.write(input, to: "tokenizer.json")
        guard let tokenizer = try? Tokenizer.load(tokenizerJSON: path) else { return }
        _ = tokenizer.decode(tokenizer.encode(sample, addSpecialTokens: true))
    }

    /// `vocab.json`, a NUL, then `merges.txt` (GPT-2's and OPT's files).
    static func vocabularyAndMerges(_ input: [UInt8]) {
        let (vocabulary, merges) = Scratch.split(input)
        let vocabularyPath = Scratch.write(vocabulary, to: "vocab.json"), mergesPath = Scratch.write(merges, to: "merges.txt")
        guard let tokenizer = try? Tokenizer.load(vocabulary: vocabularyPath, merges: mergesPath) else { return }
        _ = tokenizer.decode(tokenizer.encode(sample, addSpecialTokens: true))
    }

    /// Real tokenizers (byte-level BPE with Llama 3's and Qwen2's pre-tokenizers, SentencePiece's
    /// Metaspace, Gemma's) on arbitrary bytes as text, and back; the first byte picks one.
    static func encode(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let tokenizer = tokenizers[Int(first) % tokenizers.count]
        let ids = tokenizer.encode(String(decoding: input.dropFirst(), as: UTF8.self), addSpecialTokens: true)
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode(ids, skipSpecialTokens: true)
        _ = tokenizer.decode(input.map { Int($0) * 7 })  // ids the input names, in range or not
    }

    static let tokenizers: [Tokenizer] = ["llama3-tokenizer.json", "qwen2-tokenizer.json", "metaspace-tokenizer.json",
                                          "gemma-tokenizer.json", "small-tokenizer.json"].map { name in
        do { return try Tokenizer.load(tokenizerJSON: Scratch.fixtures + "/tokenizers/" + name) } catch {
            fatalError("the fixture tokenizer \(name) does not load: \(error)")
        }
    }

    /// `config.json` as each family reads it, validated, and the model's shape it gives.
    static func configJSON(_ input: [UInt8]) {
        let path = Scratch.write(input, to: "config.json")
        if let config = try? OPTConfig.load(path: path) { _ = config.shape }
        if let config = try? LlamaConfig.load(path: path) { _ = config.shape }
    }

    /// A chat template (the input) rendered over a conversation with a system turn, tools and a
    /// tool call, with and without the generation prompt.
    static func chatTemplate(_ input: [UInt8]) {
        guard let template = try? ChatTemplate(source: String(decoding: input, as: UTF8.self), origin: "fuzz",
                                               specialTokens: ["bos_token": "<s>", "eos_token": "</s>"]) else { return }
        _ = try? template.render(messages: conversation, tools: tools, addGenerationPrompt: true)
        _ = try? template.renderWithGenerationSpans(messages: Array(conversation.prefix(2)))
    }

    static let conversation: [JSONValue] = {
        let text = #"""
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"},
             {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function":
               {"name": "weather", "arguments": {"city": "Paris"}}}]},
             {"role": "tool", "content": "18 C"}, {"role": "assistant", "content": "18 °C."}]
            """#
        return (try? JSONValue(parsing: text))?.array ?? []
    }()

    static let tools: [JSONValue] = {
        let text = #"[{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]"#
        return (try? JSONValue(parsing: text))?.array ?? []
    }()

    /// `tokenizer_config.json` in a model folder: the chat template and special tokens found in it.
    static func tokenizerConfig(_ input: [UInt8]) {
        Scratch.write(input, to: "model/tokenizer_config.json")
        guard let template = try? ChatTemplate.find(path: Scratch.directory + "/model") else { return }
        _ = try? template.render(messages: Array(conversation.prefix(2)), addGenerationPrompt: true)
    }
}
