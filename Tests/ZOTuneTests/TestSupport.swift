import Foundation
import ZOCPU
import ZOFormats
import ZOModels
import ZOTasks

/// Paths and helpers shared by the tests.
enum Fixtures {
    /// Tests/ZOTuneTests/Fixtures.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    /// The OPT parity fixtures written by scripts/fixtures/make_opt_fixtures.py.
    static let optNames = ["opt-tiny-f32", "opt-odd-heads-f16", "opt-350m-style-bf16", "opt-nobias-sharded-f32"]

    static func opt(_ name: String) -> String { root + "/opt/" + name }

    /// The parity fixtures of the Llama-like families (Llama, Qwen2, Qwen3, Mistral, Phi-3, Gemma 2/3)
    /// written by scripts/fixtures/make_llama_fixtures.py.
    static let llamaNames = ["llama-gqa-f32", "llama-untied-bf16", "qwen2-window-f32", "qwen2-untied-f32", "qwen3-f32",
                             "mistral-window-bf16", "phi3-longrope-f32", "gemma2-f32", "gemma3-f32"]

    static func llama(_ name: String) -> String { root + "/llama/" + name }

    /// A fresh temporary folder, removed by the caller when done.
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "zotune-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// The expected values a fixture folder holds.
struct OPTExpectation: Decodable {
    let loss: Double
    let sequence_losses: [Double]
    let lengths: [Int]

    static func load(_ directory: String) throws -> OPTExpectation {
        try JSONDecoder().decode(OPTExpectation.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/expected.json")))
    }
}

/// The repository's built `zotune` executable, next to the test bundle.
enum CLI {
    static var executable: String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = url.appendingPathComponent("zotune").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            url.deleteLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/zotune").path
    }

    struct Outcome {
        let status: Int32
        let signaled: Bool
        let stdout: String
        let stderr: String
    }

    /// Runs `zotune` with `arguments` (and `environment` added to this process's) and waits for it.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
                       stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// A character-level stand-in tokenizer for the fixture models (ids < 60): lower-case letters,
/// digits and a little punctuation; other characters read as spaces. Id 59 ends a sequence.
struct TestCodec: TextCodec {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789 \n:.,?\"'-!")

    func encodePrompt(_ text: String) -> [Int] {
        text.lowercased().map { Self.alphabet.firstIndex(of: $0) ?? Self.alphabet.firstIndex(of: " ")! }
    }

    func encodeContinuation(_ text: String) -> [Int] { encodePrompt(text) }

    func decodeText(_ ids: [Int]) -> String { String(ids.map { $0 < Self.alphabet.count ? Self.alphabet[$0] : "#" }) }

    var endTokens: Set<Int> { [59] }
}
