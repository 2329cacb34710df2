import Foundation
import Testing
import ZOAssets
import ZOFormats
import ZOTokenizers

/// Byte-level BPE against golden ids from Hugging Face `tokenizers`
/// (scripts/fixtures/make_tokenizer_goldens.py), and round trips.
@Suite struct TokenizerTests {
    struct Golden: Decodable {
        let text: String
        let ids: [Int]
    }

    static let goldens: [String: [Golden]] = {
        let url = URL(fileURLWithPath: Fixtures.root + "/tokenizers/goldens.json")
        return (try? JSONDecoder().decode([String: [Golden]].self, from: Data(contentsOf: url))) ?? [:]
    }()

    static func check(_ tokenizer: Tokenizer, _ name: String) {
        let cases = goldens[name] ?? []
        #expect(cases.count >= 20)
        for golden in cases {
            let ids = tokenizer.encode(golden.text)
            #expect(ids == golden.ids, "\(name): \(golden.text.debugDescription)")
            #expect(tokenizer.decode(ids) == golden.text, "\(name) round trip: \(golden.text.debugDescription)")
        }
    }

    @Test func tokenizerJSONWithDigitsAndAddedTokens() throws {
        let tokenizer = try Tokenizer.load(path: Fixtures.root + "/tokenizers/small-tokenizer.json")
        Self.check(tokenizer, "small")
        #expect(tokenizer.specialTokens["<|endoftext|>"] != nil)
    }

    @Test(.enabled(if: Assets().isInstalled(AssetCatalog.spec("gpt2-tokenizer")!), "gpt2-tokenizer asset absent: run `zotune assets fetch gpt2-tokenizer`"))
    func gpt2VocabularyAndMerges() throws {
        let tokenizer = try Tokenizer.load(path: Assets().path(AssetCatalog.spec("gpt2-tokenizer")!))
        #expect(tokenizer.encode("Hello world") == [15496, 995])
        Self.check(tokenizer, "gpt2")
    }

    @Test(.enabled(if: SmolLM2.isInstalled, "SmolLM2 asset absent: run `zotune assets fetch smollm2-135m`"))
    func smolLM2FromGGUFMetadata() throws {
        let tokenizer = try Tokenizer.load(path: SmolLM2.path)
        Self.check(tokenizer, "smollm2")
        #expect(tokenizer.count == 49152)
        #expect(tokenizer.eosTokenId == 2 && tokenizer.bosTokenId == 1)
        #expect(tokenizer.chatTemplate?.contains("<|im_start|>") == true)
    }

    struct DecodedGolden: Decodable {
        let text: String
        let ids: [Int]
        let decoded: String
    }

    /// scripts/fixtures/make_family_tokenizers.py's ids and decoded texts.
    static let familyGoldens: [String: [DecodedGolden]] = {
        let url = URL(fileURLWithPath: Fixtures.root + "/tokenizers/family-goldens.json")
        return (try? JSONDecoder().decode([String: [DecodedGolden]].self, from: Data(contentsOf: url))) ?? [:]
    }()

    /// Qwen2's and Llama 3's byte-level pipelines (NFC, their Split patterns, Llama 3's
    /// ignore_merges), SentencePiece's BPE over characters with byte fallback behind Llama 2's
    /// normalizers, Mistral v0.3's Metaspace or Gemma's Replace without a prefix (and its literal
    /// Split), and llama.cpp's SentencePiece GGUF vocabularies (Llama's, Gemma's without the space prefix):
    /// the ids Hugging Face `tokenizers` (transformers' converter for the GGUF) gives, and the
    /// text it decodes them to.
    @Test(arguments: [("qwen2", "qwen2-tokenizer.json"), ("llama3", "llama3-tokenizer.json"),
                      ("sentencepiece", "sentencepiece-tokenizer.json"), ("metaspace", "metaspace-tokenizer.json"),
                      ("gemma", "gemma-tokenizer.json"), ("sentencepiece-gguf", "sentencepiece.gguf"),
                      ("gemma-gguf", "gemma.gguf")])
    func familyTokenizersMatchTheReference(name: String, file: String) throws {
        let tokenizer = try Tokenizer.load(path: Fixtures.root + "/tokenizers/" + file)
        let cases = Self.familyGoldens[name] ?? []
        #expect(cases.count >= 29)
        for golden in cases {
            #expect(tokenizer.encode(golden.text) == golden.ids, "\(name): \(golden.text.debugDescription)")
            #expect(tokenizer.decode(golden.ids) == golden.decoded, "\(name) decoding: \(golden.text.debugDescription)")
        }
    }

    @Test func splitsFollowQwen2sAndLlama3sPattern() {
        let qwen = { (text: String) in QwenPreTokenizer(maxDigits: 1).split(text[...]).map(String.init) }
        #expect(qwen("I'M here (hi) 123") == ["I", "'M", " here", " (", "hi", ")", " ", "1", "2", "3"])
        #expect(qwen("a\n\n  b") == ["a", "\n\n", " ", " b"])
        #expect(QwenPreTokenizer(maxDigits: 3).split("12345"[...]).map(String.init) == ["123", "45"])
    }

    @Test func literalSplitsEndAfterTheSeparator() {
        let split = { (text: String) in LiteralSplitPreTokenizer(separator: " ").split(text[...]).map(String.init) }
        #expect(split("a b  c ") == ["a ", "b ", " ", "c "])
        #expect(split("▁no▁spaces") == ["▁no▁spaces"])
        #expect(split("") == [])
    }

    @Test func splitsFollowGPT2sPattern() {
        let split = { (text: String) in GPT2PreTokenizer().split(text[...]).map(String.init) }
        #expect(split("I'm here  now") == ["I", "'m", " here", " ", " now"])
        #expect(split("a\n\nb") == ["a", "\n", "\n", "b"])
        #expect(split("x  ") == ["x", "  "])
        #expect(split("hi!! 42") == ["hi", "!!", " 42"])
        #expect(IndividualDigitsPreTokenizer(then: GPT2PreTokenizer()).split("ab 123"[...]).map(String.init) == ["ab", " ", "1", "2", "3"])
    }

    @Test func badTokenizerFilesAreNamed() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(#"{"a": 0, "b": 1, "ab": 2}"#.utf8).write(to: URL(fileURLWithPath: directory + "/vocab.json"))
        try Data("#version: 0.2\na c\n".utf8).write(to: URL(fileURLWithPath: directory + "/merges.txt"))
        #expect(throws: TokenizerError.inconsistent(path: directory + "/merges.txt", reason: "merge 0 'a c' uses symbols the vocabulary lacks")) {
            try Tokenizer.load(path: directory)
        }
        try Data("not json".utf8).write(to: URL(fileURLWithPath: directory + "/vocab.json"))
        #expect(throws: TokenizerError.self) { try Tokenizer.load(path: directory) }
        #expect(throws: TokenizerError.self) { try Tokenizer.load(path: directory + "/missing.json") }
        // A GGUF without tokenizer metadata.
        do {
            _ = try Tokenizer.load(path: Fixtures.root + "/gguf/quants.gguf")
            Issue.record("accepted a GGUF without a tokenizer")
        } catch {
            #expect(error.description.contains("quants.gguf") && error.description.contains("tokenizer.ggml.model"))
        }
    }
}
