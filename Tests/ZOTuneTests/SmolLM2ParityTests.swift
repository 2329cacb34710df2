import Foundation
import Testing
import ZOAssets
import ZOCPU
import ZOModels

/// The real model: SmolLM2-135M-Instruct from its GGUF against transformers loading the same
/// file (scripts/fixtures/make_smollm2_expected.py): logits within 1e-3 absolute on the 16
/// largest and 128 sampled vocabulary entries of every position, the same arg-max everywhere.
/// Needs the fetched asset (`zotune assets fetch smollm2-135m`; CI fetches it).
@Suite(.enabled(if: SmolLM2.isInstalled, "SmolLM2 asset absent: run `zotune assets fetch smollm2-135m`"))
struct SmolLM2ParityTests {
    struct Expected: Decodable {
        struct Case: Decodable {
            let text: String
            let ids: [Int]
            let loss: Double
            let argmax: [Int]
            let top_ids: [[Int]]
            let top_logits: [[Float]]
            let sample_logits: [[Float]]
        }
        let sample_ids: [Int]
        let cases: [Case]
    }

    @Test func logitsMatchTransformers() throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.root + "/smollm2/expected.json")))
        let model = try ModelRegistry.load(path: SmolLM2.path)
        let runner = try ResidentRunner(model: model, backend: try CPUBackend(threads: 2))
        let v = model.vocabSize
        for item in expected.cases {
            let result = try runner.forward(try model.makeBatch([item.ids]), outputs: [.logits, .argmax])
            let logits = result.logits!
            #expect(result.argmax!.map(Int.init) == item.argmax, "\(item.text.debugDescription): arg-max")
            #expect(abs(result.meanLoss - item.loss) <= 1e-4 * item.loss, "\(item.text.debugDescription): loss \(result.meanLoss) vs \(item.loss)")
            var worst: Float = 0
            for t in 0..<item.ids.count {
                for (id, value) in zip(item.top_ids[t], item.top_logits[t]) { worst = max(worst, abs(logits[t * v + id] - value)) }
                for (id, value) in zip(expected.sample_ids, item.sample_logits[t]) { worst = max(worst, abs(logits[t * v + id] - value)) }
            }
            #expect(worst <= 1e-3, "\(item.text.debugDescription): max |Δlogit| \(worst)")
            print("SmolLM2 parity \(item.text.debugDescription): max |Δlogit| = \(worst), loss \(result.meanLoss) vs \(item.loss)")
        }
    }
}

/// Where the fetched SmolLM2 file is.
enum SmolLM2 {
    static let path = Assets().path(AssetCatalog.spec("smollm2-135m")!)
    static var isInstalled: Bool { FileManager.default.fileExists(atPath: path) }
}
