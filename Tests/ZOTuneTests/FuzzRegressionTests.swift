import Foundation
import Testing
import ZOFormats
import ZOModels
import ZOTokenizers
import ZOTraining

/// Inputs the coverage-guided fuzzer (`scripts/fuzz.sh`) found crashing or stalling (or, for the
/// GGUF, the same bug by another way in), each now a typed error naming the file or a quick load.
/// The inputs are in Fuzz/Corpus/<target>/ too, so every fuzz run starts from them.
struct FuzzRegressionTests {
    /// Fuzz/Corpus, beside Tests/.
    static let corpus = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus").path

    static func write(_ text: String, to name: String, in directory: String) throws -> String {
        let path = directory + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// config-json: num_attention_heads 0 divided hidden_size by zero (the default head_dim)
    /// while validating.
    @Test func zeroAttentionHeadsIsAConfigError() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try Self.write(#"{"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "#
                                  + #""num_hidden_layers": 2, "num_attention_heads": 0, "max_position_embeddings": 16}"#,
                                  to: "config.json", in: directory)
        #expect {
            _ = try LlamaConfig.load(path: path)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("num_attention_heads = 0")
        }
    }

    /// gguf: attention.head_count 0 divided by zero where the head size was derived, before validation.
    @Test func zeroAttentionHeadsInAGGUFIsAConfigError() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.gguf"
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("llama")), ("llama.block_count", .uint32(2)), ("llama.embedding_length", .uint32(32)),
            ("llama.feed_forward_length", .uint32(64)), ("llama.attention.head_count", .uint32(0)),
            ("llama.context_length", .uint32(16)), ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)),
            ("llama.vocab_size", .uint32(64)), ("llama.rope.dimension_count", .uint32(8)),
        ]
        try GGUFWriter.write(metadata: metadata, tensors: [], to: path) { _ in [] }
        #expect {
            _ = try LlamaConfig.from(gguf: try GGUFFile(path: path))
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("num_attention_heads = 0")
        }
    }

    /// vocab-merges: token ids may leave holes below the 10,000,000 limit, and one id near it took over
    /// 10 s to load under the fuzzer's AddressSanitizer: every hole was hashed as the token "", and
    /// "" counted as a symbol merges may use. Holes now cost their table slot only, and are no symbol.
    @Test func holesInTheTokenIdsAreNoTokens() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let input = try Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/vocab-merges/sparse-ids-timeout.bin"))
        let nul = try #require(input.firstIndex(of: 0))
        let vocabulary = directory + "/vocab.json", merges = directory + "/merges.txt"
        try input[..<nul].write(to: URL(fileURLWithPath: vocabulary))
        try input[(nul + 1)...].write(to: URL(fileURLWithPath: merges))
        let tokenizer = try Tokenizer.load(vocabulary: vocabulary, merges: merges)
        #expect(tokenizer.count == 8_888_825)
        #expect(tokenizer.encode("hel") == [0, 1, 10])

        let json = try Self.write(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 3}, "merges": [["", "a"]]}, "#
                                  + #""pre_tokenizer": {"type": "ByteLevel"}}"#, to: "tokenizer.json", in: directory)
        #expect {
            _ = try Tokenizer.load(tokenizerJSON: json)
        } throws: { error in
            "\(error)".contains(json) && "\(error)".contains("merge 0")
        }
    }

    /// trajectory, checkpoint-state: q 0 in the options reached TwoPointEstimator's precondition.
    @Test func zeroDirectionsInAFileAreRefused() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let trajectory = try Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/trajectory/opt-tiny-4-steps.zotraj"))
        var bytes = [UInt8](trajectory)  // binary records follow the JSON header: edit bytes, not a String
        let needle = Array(#""q":1"#.utf8)
        let at = try #require((0...(bytes.count - needle.count)).first { Array(bytes[$0..<$0 + needle.count]) == needle })
        bytes[at + needle.count - 1] = UInt8(ascii: "0")
        let path = directory + "/trajectory.zotraj"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try Trajectory(path: path)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("q = 0")
        }

        let state = try String(contentsOfFile: Self.corpus + "/checkpoint-state/opt-tiny-step-4.json", encoding: .utf8)
        #expect(state.contains(#""q" : 1"#))
        _ = try Self.write(state.replacingOccurrences(of: #""q" : 1"#, with: #""q" : 0"#), to: "state.json", in: directory)
        #expect {
            _ = try CheckpointState.load(directory: directory)
        } throws: { error in
            "\(error)".contains(directory + "/state.json") && "\(error)".contains("q = 0")
        }
    }
}
