import Foundation
import Testing
import ZOFormats
import ZOModels

/// Model folders that are wrong in the ways users get them wrong: each load fails with an
/// error naming the file and tensor.
@Suite struct ModelInputTests {
    /// Copies a fixture to a temporary folder and lets `edit` damage it.
    func damaged(_ edit: (String) throws -> Void) throws -> (String, Result<OPTModel, ModelError>) {
        let directory = try Fixtures.temporaryDirectory()
        for file in try FileManager.default.contentsOfDirectory(atPath: Fixtures.opt("opt-tiny-f32")) {
            try FileManager.default.copyItem(atPath: Fixtures.opt("opt-tiny-f32") + "/" + file, toPath: directory + "/" + file)
        }
        try edit(directory)
        return (directory, Result { () throws(ModelError) in try OPTModel.load(directory: directory) })
    }

    func editConfig(_ directory: String, _ change: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: directory + "/config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        change(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: url)
    }

    @Test func shapeDisagreeingWithConfigNamesTheTensor() throws {
        let (directory, result) = try damaged { try editConfig($0) { $0["ffn_dim"] = 65 } }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard case .failure(let error) = result else { Issue.record("loaded"); return }
        #expect(error.description.contains("model.decoder.layers.0.fc1.weight"), "\(error)")
        #expect(error.description.contains("[65, 32]"))
    }

    @Test func missingTensorIsNamed() throws {
        // enable_bias false in the config but the layout differs: ask for a tensor the file lacks.
        let (directory, result) = try damaged { try editConfig($0) { $0["num_hidden_layers"] = 3 } }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard case .failure(let error) = result else { Issue.record("loaded"); return }
        #expect(error.description.contains("model.decoder.layers.2."), "\(error)")
        #expect(error.description.contains("missing"))
    }

    /// Sizes in range that the weights do not have are refused from the file's header, before
    /// the model is allocated: not a petabyte allocation, nor millions of layer layouts built.
    @Test func sizesTheWeightsLackAreRefusedBeforeAllocating() throws {
        let (d1, r1) = try damaged {
            try editConfig($0) { for key in ["vocab_size", "hidden_size", "word_embed_proj_dim"] { $0[key] = 1 << 24 } }
        }
        defer { try? FileManager.default.removeItem(atPath: d1) }
        guard case .failure(.weights(let e1)) = r1 else { Issue.record("\(r1)"); return }
        #expect(e1.description.contains("model.decoder.embed_tokens.weight") && e1.description.contains("[16777216, 16777216]"),
                "\(e1)")

        let (d2, r2) = try damaged { try editConfig($0) { $0["num_hidden_layers"] = 1 << 24 } }
        defer { try? FileManager.default.removeItem(atPath: d2) }
        guard case .failure(.config(let path, let reason)) = r2 else { Issue.record("\(r2)"); return }
        #expect(path.hasSuffix("config.json") && reason.contains("num_hidden_layers = 16777216"), "\(reason)")
    }

    /// The same from a GGUF's header: a block count its tensors do not have is refused before the
    /// layers' layouts are built or allocated.
    @Test func aGGUFBlockCountItsTensorsLackIsRefused() throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.llama("llama-gqa-f32") + "/model.gguf"))
        let key = Data("llama.block_count".utf8)
        let range = try #require(bytes.range(of: key))
        #expect(bytes[range.upperBound..<range.upperBound + 4] == Data([4, 0, 0, 0]))  // GGUF's UINT32
        bytes.replaceSubrange(range.upperBound + 4..<range.upperBound + 8, with: Data([0, 0, 0, 1]))  // 1 << 24
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.gguf"
        try bytes.write(to: URL(fileURLWithPath: path))
        let file = try GGUFFile(path: path)
        let result = Result { () throws(ModelError) in try LlamaModel.load(gguf: file) }
        guard case .failure(.config(path, let reason)) = result else { Issue.record("\(result)"); return }
        #expect(reason.contains("num_hidden_layers = 16777216"), "\(reason)")
    }

    @Test func malformedAndUnsupportedConfigs() throws {
        let (d1, r1) = try damaged { try Data("{not json".utf8).write(to: URL(fileURLWithPath: $0 + "/config.json")) }
        defer { try? FileManager.default.removeItem(atPath: d1) }
        guard case .failure(let e1) = r1 else { Issue.record("loaded"); return }
        #expect(e1.description.contains("config.json"))

        let (d2, r2) = try damaged { try editConfig($0) { $0["activation_function"] = "swish" } }
        defer { try? FileManager.default.removeItem(atPath: d2) }
        guard case .failure(let e2) = r2 else { Issue.record("loaded"); return }
        #expect(e2.description.contains("activation_function"))

        let (d3, r3) = try damaged { try editConfig($0) { $0["num_attention_heads"] = 5 } }
        defer { try? FileManager.default.removeItem(atPath: d3) }
        guard case .failure(let e3) = r3 else { Issue.record("loaded"); return }
        #expect(e3.description.contains("not divisible"))
    }

    /// Mixture-of-experts and multimodal variants are refused naming their `model_type`, as is an
    /// unknown one; a Llama-like config whose `layer_types` is short or names an unknown type too.
    @Test func unsupportedModelTypesAndLayerTypesAreNamed() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for file in try FileManager.default.contentsOfDirectory(atPath: Fixtures.llama("qwen2-window-f32")) {
            try FileManager.default.copyItem(atPath: Fixtures.llama("qwen2-window-f32") + "/" + file, toPath: directory + "/" + file)
        }
        let original = try Data(contentsOf: URL(fileURLWithPath: directory + "/config.json"))
        for (change, expected) in [(["model_type": "mixtral"], ["mixtral", "mixture of experts"]),
                                   (["model_type": "qwen2_vl"], ["qwen2_vl", "multimodal"]),
                                   (["model_type": "falcon"], ["falcon", "supported: ", "qwen2"]),
                                   (["layer_types": ["sliding_attention"]], ["layer_types has 1 entries for 2 layers"]),
                                   (["layer_types": ["full_attention", "chunked_attention"]], ["chunked_attention"]),
                                   (["sliding_window": 0], ["sliding_window = 0"])] as [([String: Any], [String])] {
            try original.write(to: URL(fileURLWithPath: directory + "/config.json"))
            try editConfig(directory) { config in config.merge(change) { $1 } }
            do {
                _ = try ModelRegistry.load(path: directory)
                Issue.record("\(change) loaded")
            } catch {
                for text in expected { #expect(error.description.contains(text), "\(change): \(error)") }
            }
        }
    }

    /// A Qwen2, Qwen3, Mistral, Phi-3 or Gemma config survives the trip through ZOTune's config.json (what a
    /// saved model carries): the same windows per block, the same q/k/v biases, scale, caps and rotary bases.
    @Test(arguments: ["qwen2-window-f32", "qwen2-untied-f32", "qwen3-f32", "mistral-window-bf16", "phi3-longrope-f32", "gemma2-f32",
                      "gemma3-f32"])
    func windowsAndBiasesSurviveTheSavedConfig(name: String) throws {
        let model = try #require(try ModelRegistry.load(path: Fixtures.llama(name)) as? LlamaModel)
        let saved = try JSONDecoder().decode(LlamaConfig.self, from: Data(try model.configJSON()))
        #expect(saved.modelType == model.config.modelType && saved.shape == model.config.shape)
        #expect((0..<model.config.numHiddenLayers).map(saved.window) == (0..<model.config.numHiddenLayers).map(model.config.window))
        #expect(saved.qkvBias == model.config.qkvBias && saved.qkvBias == name.hasPrefix("qwen"))  // qwen3-f32 has attention_bias
        #expect(saved.ropeScaling == model.config.ropeScaling)
        #expect(saved.attentionScale == model.config.attentionScale && saved.hiddenAct == model.config.hiddenAct)
        #expect(saved.attnLogitSoftcapping == model.config.attnLogitSoftcapping)
        #expect(saved.finalLogitSoftcapping == model.config.finalLogitSoftcapping)
        #expect(saved.ropeTheta == model.config.ropeTheta && saved.ropeLocalBaseFreq == model.config.ropeLocalBaseFreq)
        let expectedWindows = ["qwen2-window-f32": [0, 5], "qwen2-untied-f32": [0, 0], "qwen3-f32": [0, 0], "mistral-window-bf16": [6, 6],
                               "phi3-longrope-f32": [0, 0], "gemma2-f32": [6, 0], "gemma3-f32": [5, 5, 5, 5, 5, 0]][name]
        #expect((0..<model.config.numHiddenLayers).map(model.config.window) == expectedWindows)
        if name == "gemma2-f32" {  // transformers' typed config wants floats there
            #expect(String(decoding: try model.configJSON(), as: UTF8.self).contains(#""final_logit_softcapping" : 3.0,"#))
        }
    }

    /// Gemma configs as the Hub has them (old-style keys, defaults left out, a list of end
    /// tokens) read with transformers' defaults; a malformed per-layer-type rope is an error.
    @Test func gemmaConfigsReadAsTransformersDoes() throws {
        func decode(_ json: String) throws -> LlamaConfig { try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8)) }
        let gemma2 = try decode(#"{"model_type": "gemma2", "num_hidden_layers": 4, "eos_token_id": [1, 107]}"#)
        #expect(gemma2.eosTokenId == 1 && gemma2.headSize == 256 && gemma2.hiddenAct == "gelu_pytorch_tanh")
        #expect(gemma2.finalLogitSoftcapping == 30 && gemma2.attnLogitSoftcapping == 50 && gemma2.attentionScale == 1 / 16)
        #expect((0..<4).map(gemma2.window) == [4096, 0, 4096, 0])
        let uncapped = try decode(#"{"model_type": "gemma2", "final_logit_softcapping": null}"#)
        #expect(uncapped.finalLogitSoftcapping == nil && uncapped.attnLogitSoftcapping == 50)
        let gemma3 = try decode(#"{"model_type": "gemma3_text", "num_hidden_layers": 7, "sliding_window": 512, "rope_theta": 1e6,"#
                                + #" "rope_local_base_freq": 1e4, "rope_scaling": {"rope_type": "linear", "factor": 8.0},"#
                                + #" "attn_logit_softcapping": 50.0}"#)
        #expect((0..<7).map(gemma3.window) == [512, 512, 512, 512, 512, 0, 512])
        #expect(gemma3.ropeScaling?.factor == 8 && gemma3.ropeLocalBaseFreq == 1e4 && gemma3.attnLogitSoftcapping == nil)
        let nested = try decode(#"{"model_type": "gemma3_text", "rope_parameters": {"full_attention": {"rope_type": "linear","#
                                + #" "factor": 8.0, "rope_theta": 1e6}, "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}"#)
        #expect(nested.ropeScaling?.ropeType == "linear" && nested.ropeScaling?.factor == 8)
        #expect(nested.ropeTheta == 1e6 && nested.ropeLocalBaseFreq == 1e4)
        #expect(throws: DecodingError.self) {
            try decode(#"{"model_type": "gemma3_text", "rope_parameters": {"full_attention": {"factor": "eight"}}}"#)
        }
        #expect(throws: DecodingError.self) {
            try decode(#"{"model_type": "gemma3_text", "rope_parameters": {"sliding_attention": {"rope_type": "linear"}}}"#)
        }
    }

    /// A folder with no config.json is named with what a model folder (or a run's output) holds.
    @Test func aFolderWithoutAModelSaysWhatOneHolds() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-empty-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            _ = try ModelRegistry.load(path: directory)
            Issue.record("an empty folder loaded")
        } catch {
            #expect(error.description.contains(directory + "/config.json") && error.description.contains("model/"), "\(error)")
        }
    }

    @Test func wrongDtypeIsNamed() throws {
        // Rewrite the weights with one tensor stored as I32.
        let (directory, result) = try damaged { directory in
            let path = directory + "/model.safetensors"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            var header = String(decoding: bytes[8..<8 + headerLength], as: UTF8.self)
            let target = "\"model.decoder.embed_positions.weight\":{\"dtype\":\"F32\""
            #expect(header.contains(target))
            header = header.replacingOccurrences(of: target, with: "\"model.decoder.embed_positions.weight\":{\"dtype\":\"I32\"")
            bytes.replaceSubrange(8..<8 + headerLength, with: Data(header.utf8))
            try bytes.write(to: URL(fileURLWithPath: path))
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard case .failure(let error) = result else { Issue.record("loaded"); return }
        #expect(error.description.contains("embed_positions.weight") && error.description.contains("I32"), "\(error)")
    }
}
