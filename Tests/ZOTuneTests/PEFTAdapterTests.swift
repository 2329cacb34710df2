import Foundation
import Testing
import ZOCPU
import ZOFormats
import ZOModels

/// LoRA adapters in PEFT's format merged onto their base give the loss peft's PeftModel gives
/// (fixtures from scripts/fixtures/make_peft_fixtures.py: Llama q/v, Llama rsLoRA on every
/// linear, Qwen2 on every linear with biased q/k/v, OPT q/v/fc1; peft 0.21.2).
struct PEFTAdapterTests {
    static let names = ["llama-gqa-f32-qv", "llama-gqa-f32-rslora-all-linear", "qwen2-untied-f32-all", "opt-tiny-f32-qv-fc1"]

    struct Expected: Decodable {
        let base: String
        let ids: [[Int]]
        let loss_with_adapter: Double
        let loss_base: Double
    }

    static func loss(_ model: any CausalLM, _ ids: [[Int]]) throws -> Double {
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
        return try runner.forward(try model.makeBatch(ids)).meanLoss
    }

    @Test(arguments: names)
    func mergedAdapterGivesPEFTsLoss(name: String) throws {
        let folder = Fixtures.root + "/peft/" + name
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/expected.json")))
        let model = try ModelRegistry.load(path: Fixtures.root + "/" + expected.base)
        let base = try Self.loss(model, expected.ids)
        #expect(abs(base - expected.loss_base) <= 1e-5 * expected.loss_base)
        let adapter = try PEFTAdapter(directory: folder)
        try adapter.merge(into: model)
        let merged = try Self.loss(model, expected.ids)
        #expect(abs(merged - expected.loss_with_adapter) <= 1e-5 * expected.loss_with_adapter,
                "\(name): \(merged) vs peft \(expected.loss_with_adapter) (base \(base))")
    }

    @Test func unsupportedAndBrokenAdaptersAreNamed() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = Fixtures.root + "/peft/llama-gqa-f32-qv"
        try FileManager.default.copyItem(atPath: source + "/adapter_model.safetensors", toPath: directory + "/adapter_model.safetensors")
        let config = try JSONValue(parsing: String(contentsOfFile: source + "/adapter_config.json", encoding: .utf8)).object!
        func write(_ change: (inout JSONObject) -> Void) throws {
            var changed = config
            change(&changed)
            try JSONValue.object(changed).pythonJSON().write(toFile: directory + "/adapter_config.json", atomically: true, encoding: .utf8)
        }
        func message() -> String {
            do { _ = try PEFTAdapter(directory: directory); return "" } catch { return error.description }
        }
        try write { $0["use_dora"] = .bool(true) }
        #expect(message().hasSuffix("adapter_config.json: unsupported model: use_dora = true"))
        try write { $0["r"] = .int(8) }
        #expect(message().contains("are not [r, in] and [out, r] with r = 8"))
        try write { $0["bias"] = .string("all") }
        #expect(message().contains("bias \"all\" (only \"none\")"))
        // An adapter for another model: the weights it changes are not there.
        try write { _ in }
        let other = try ModelRegistry.load(path: Fixtures.opt("opt-tiny-f32"))
        #expect(throws: ModelError.self) { try PEFTAdapter(directory: directory).merge(into: other) }
    }
}
