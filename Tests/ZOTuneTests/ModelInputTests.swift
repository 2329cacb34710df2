import Foundation
import Testing
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

    /// A Qwen2, Qwen3, Mistral or Phi-3 config survives the trip through ZOTune's config.json (what a saved
    /// model carries): the same windows per block, the same q/k/v biases.
    @Test(arguments: ["qwen2-window-f32", "qwen2-untied-f32", "qwen3-f32", "mistral-window-bf16", "phi3-longrope-f32"])
    func windowsAndBiasesSurviveTheSavedConfig(name: String) throws {
        let model = try #require(try ModelRegistry.load(path: Fixtures.llama(name)) as? LlamaModel)
        let saved = try JSONDecoder().decode(LlamaConfig.self, from: Data(try model.configJSON()))
        #expect(saved.modelType == model.config.modelType && saved.shape == model.config.shape)
        #expect((0..<model.config.numHiddenLayers).map(saved.window) == (0..<model.config.numHiddenLayers).map(model.config.window))
        #expect(saved.qkvBias == model.config.qkvBias && saved.qkvBias == name.hasPrefix("qwen"))  // qwen3-f32 has attention_bias
        #expect(saved.ropeScaling == model.config.ropeScaling)
        let expectedWindows = ["qwen2-window-f32": [0, 5], "qwen2-untied-f32": [0, 0], "qwen3-f32": [0, 0], "mistral-window-bf16": [6, 6],
                               "phi3-longrope-f32": [0, 0]][name]
        #expect((0..<2).map(model.config.window) == expectedWindows)
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
