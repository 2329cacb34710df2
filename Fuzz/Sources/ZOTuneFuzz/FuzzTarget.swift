import Foundation

/// One parser under the fuzzer: a name and what it does with an input. Targets that read files
/// write the input where the parser looks for it (in `Scratch`), so the fuzzer drives the same
/// entry point a user's file does.
struct FuzzTarget: Sendable {
    let name: String
    let run: @Sendable ([UInt8]) -> Void

    /// Every target, in `scripts/fuzz.sh`'s order; the seed corpus of each is `Fuzz/Corpus/<name>`.
    static let all: [FuzzTarget] = FormatTargets.all + TextTargets.all + RunTargets.all

    /// The largest tensor a target reads in full, so that an input costs microseconds.
    static let tensorElementLimit = 1 << 16
}

/// The directory for the files targets write: `ZOTUNE_FUZZ_SCRATCH` (scripts/fuzz.sh makes one
/// on tmpfs per target and removes it), else one of this process's own.
enum Scratch {
    static let directory: String = {
        if let given = ProcessInfo.processInfo.environment["ZOTUNE_FUZZ_SCRATCH"] { return given }
        let path = FileManager.default.temporaryDirectory.path + "/zotune-fuzz-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// Writes `bytes` to `name` (a file, or folder/file) in the scratch directory and returns its path.
    @discardableResult
    static func write(_ bytes: [UInt8], to name: String) -> String {
        let path = directory + "/" + name
        let folder = String(path[..<path.lastIndex(of: "/")!])
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            fatalError("cannot write the fuzz input to \(path)")
        }
        return path
    }

    /// `bytes` up to the first NUL, and what follows it: how targets that need two files split one input.
    static func split(_ bytes: [UInt8]) -> ([UInt8], [UInt8]) {
        guard let cut = bytes.firstIndex(of: 0) else { return (bytes, []) }
        return (Array(bytes[..<cut]), Array(bytes[(cut + 1)...]))
    }

    /// The test fixtures (models, tokenizers, templates) in this checkout.
    static let fixtures: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Tests/ZOTuneTests/Fixtures").path
}
