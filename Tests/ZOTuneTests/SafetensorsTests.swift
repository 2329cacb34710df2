import Foundation
import Testing
import ZOCore
import ZOFormats

/// The safetensors reader and writer: round trips, every kind of bad file, and a fuzz run.
@Suite struct SafetensorsTests {
    /// Builds a file image: 8-byte length, the header text, then `data`.
    static func image(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        var length = (declaredLength ?? UInt64(json.count)).littleEndian
        return withUnsafeBytes(of: &length) { Array($0) } + json + data
    }

    static func parse(_ bytes: [UInt8]) throws(SafetensorsError) -> SafetensorsHeader {
        let result: Result<SafetensorsHeader, SafetensorsError> = bytes.withUnsafeBytes { raw in
            Result { () throws(SafetensorsError) in try SafetensorsHeader(parsing: raw, path: "test.safetensors") }
        }
        return try result.get()
    }

    @Test func writerRoundTripsThroughTheReader() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/w.safetensors"
        let a: [Float] = [1, -2, 3.5, 4, 5, 6]
        let b: [UInt16] = [0x3C00, 0xC000]  // f16 1, -2
        try a.withUnsafeBytes { ra in
            try b.withUnsafeBytes { rb in
                try SafetensorsWriter.write([
                    SafetensorsEntry(name: "a", dtype: .f32, shape: [2, 3], bytes: ra),
                    SafetensorsEntry(name: "b/half", dtype: .f16, shape: [2], bytes: rb),
                ], metadata: ["format": "pt"], to: path)
            }
        }
        let file = try SafetensorsFile(path: path)
        #expect(file.tensorNames == ["a", "b/half"])
        #expect(file.header.metadata == ["format": "pt"])
        #expect(file.header.dataStart % 8 == 0)
        var out = [Float](repeating: 0, count: 6)
        try out.withUnsafeMutableBufferPointer { try file.readFloats("a", expectedShape: [2, 3], into: $0.baseAddress!) }
        #expect(out == a)
        var half = [Float](repeating: 0, count: 2)
        try half.withUnsafeMutableBufferPointer { try file.readFloats("b/half", expectedShape: [2], into: $0.baseAddress!) }
        #expect(half == [1, -2])
        #expect(throws: SafetensorsError.wrongShape(path: path, tensor: "a", expected: [3, 2], found: [2, 3])) {
            try out.withUnsafeMutableBufferPointer { try file.readFloats("a", expectedShape: [3, 2], into: $0.baseAddress!) }
        }
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
    }

    @Test func badFilesGiveNamedErrors() throws {
        let eight = [UInt8](repeating: 0, count: 8)
        let cases: [(String, [UInt8], (SafetensorsError) -> Bool)] = [
            ("shorter than the length prefix", [1, 2, 3], { if case .truncated = $0 { true } else { false } }),
            ("length past the end", Self.image(header: "{}", declaredLength: 1000),
             { if case .headerTooLarge = $0 { true } else { false } }),
            ("malformed JSON", Self.image(header: "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], "),
             { if case .malformedHeader = $0 { true } else { false } }),
            ("not an object", Self.image(header: "[1, 2]"), { if case .malformedHeader = $0 { true } else { false } }),
            ("unknown dtype", Self.image(header: #"{"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}"#, data: eight),
             { $0 == .unknownDType(path: "test.safetensors", tensor: "w", dtype: "F33") }),
            ("negative dimension", Self.image(header: #"{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, data: eight),
             { if case .badShape(_, "w", _) = $0 { true } else { false } }),
            ("overflowing shape", Self.image(header: #"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}"#, data: eight),
             { if case .badShape(_, "w", _) = $0 { true } else { false } }),
            ("offsets past the data", Self.image(header: #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, data: eight),
             { if case .badOffsets(_, "w", _) = $0 { true } else { false } }),
            ("reversed offsets", Self.image(header: #"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}"#, data: eight),
             { if case .badOffsets(_, "w", _) = $0 { true } else { false } }),
            ("size disagrees with shape", Self.image(header: #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}"#, data: eight),
             { if case .badOffsets(_, "w", _) = $0 { true } else { false } }),
            ("overlapping tensors", Self.image(header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: eight),
             { $0 == .overlappingTensors(path: "test.safetensors", first: "x", second: "y") }),
            ("missing field", Self.image(header: #"{"w": {"dtype": "F32", "shape": [2]}}"#, data: eight),
             { if case .malformedHeader = $0 { true } else { false } }),
            ("metadata with numbers", Self.image(header: #"{"__metadata__": {"a": 1}}"#),
             { if case .malformedHeader = $0 { true } else { false } }),
        ]
        for (what, bytes, matches) in cases {
            do {
                _ = try Self.parse(bytes)
                Issue.record("\(what): accepted")
            } catch {
                #expect(matches(error), "\(what): \(error)")
                #expect(error.description.contains("test.safetensors"), "\(what): the error names the file")
            }
        }
    }

    @Test func missingAndTruncatedFilesOnDisk() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: SafetensorsError.self) { try SafetensorsFile(path: directory + "/absent.safetensors") }
        // A real fixture cut in half: the header now promises data past the end.
        let source = try Data(contentsOf: URL(fileURLWithPath: Fixtures.opt("opt-tiny-f32") + "/model.safetensors"))
        let cut = directory + "/cut.safetensors"
        try source.prefix(source.count / 2).write(to: URL(fileURLWithPath: cut))
        do {
            _ = try SafetensorsFile(path: cut)
            Issue.record("truncated file accepted")
        } catch {
            guard case .badOffsets(let path, _, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(path == cut)
        }
        // A folder with neither model.safetensors nor an index.
        #expect(throws: SafetensorsError.self) { try SafetensorsCheckpoint(directory: directory + "/nothing") }
    }

    /// ≥ 10,000 random and mutated headers: each parses or throws, none crashes.
    @Test func fuzzedHeadersNeverCrash() {
        var rng = SplitMix64(seed: 2026)
        let seeds = [
            #"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "__metadata__": {"format": "pt"}}"#,
            #"{"a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}, "b": {"dtype": "I64", "shape": [], "data_offsets": [8, 16]}}"#,
        ]
        let alphabet = Array(#"{}[]",:0123456789-eE.FBI "dtypeshapedata_offsets__metadata__\"#.utf8)
        var accepted = 0, rejected = 0
        for iteration in 0..<12_000 {
            var header = Array(seeds[iteration % seeds.count].utf8)
            switch iteration % 3 {
            case 0:  // random bytes
                header = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:  // mutate a valid header with header-like characters
                for _ in 0..<Int.random(in: 1...6, using: &rng) where !header.isEmpty {
                    let i = Int.random(in: 0..<header.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: header[i] = alphabet.randomElement(using: &rng)!
                    case 1: header.remove(at: i)
                    default: header.insert(alphabet.randomElement(using: &rng)!, at: i)
                    }
                }
            default:  // truncate
                header = Array(header.prefix(Int.random(in: 0...header.count, using: &rng)))
            }
            let data = [UInt8](repeating: 0, count: Int.random(in: 0...24, using: &rng))
            var bytes = Self.image(header: String(decoding: header, as: UTF8.self), data: data)
            if iteration % 7 == 0, bytes.count > 8 {  // lie about the length
                bytes.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64.random(in: 0...UInt64(bytes.count * 2), using: &rng).littleEndian) { Array($0) })
            }
            do {
                let header = try Self.parse(bytes)
                accepted += 1
                for info in header.tensors.values { #expect(header.dataStart + info.dataRange.upperBound <= bytes.count) }
            } catch {
                rejected += 1
            }
        }
        #expect(accepted + rejected == 12_000)
        #expect(accepted > 0 && rejected > 0)
    }
}

/// Model files that change under a reader: a file cut short after opening gives an error
/// naming it (never SIGBUS); a file deleted after opening is still read whole.
@Suite struct ChangingFileTests {
    /// A copy of `source` in a fresh folder.
    static func copy(_ source: String, named name: String) throws -> (directory: String, path: String) {
        let directory = try Fixtures.temporaryDirectory()
        let path = directory + "/" + name
        try FileManager.default.copyItem(atPath: source, toPath: path)
        return (directory, path)
    }

    @Test func safetensorsCutAfterOpeningIsAnError() throws {
        let (directory, path) = try Self.copy(Fixtures.opt("opt-tiny-f32") + "/model.safetensors", named: "model.safetensors")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try SafetensorsFile(path: path)
        let last = file.tensorNames.max { file.info($0)!.dataRange.upperBound < file.info($1)!.dataRange.upperBound }!
        let info = file.info(last)!
        #expect(truncate(path, off_t(file.header.dataStart + info.dataRange.lowerBound + 4)) == 0)
        var values = [Float](repeating: 0, count: info.elementCount)
        do {
            try values.withUnsafeMutableBufferPointer { try file.readFloats(last, expectedShape: info.shape, into: $0.baseAddress!) }
            Issue.record("read a tensor past the end of a shrunken file")
        } catch {
            let text = "\(error)"
            #expect(text.contains(path) && text.contains(last) && text.contains("changed"), "\(text)")
        }
    }

    @Test func safetensorsDeletedAfterOpeningIsReadWhole() throws {
        let source = Fixtures.opt("opt-tiny-f32") + "/model.safetensors"
        let (directory, path) = try Self.copy(source, named: "model.safetensors")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try SafetensorsFile(path: path), original = try SafetensorsFile(path: source)
        try FileManager.default.removeItem(atPath: path)
        for name in file.tensorNames { #expect(try file.bytes(name) == original.bytes(name), "\(name)") }
    }

    @Test func ggufCutAfterOpeningIsAnError() throws {
        let (directory, path) = try Self.copy(Fixtures.root + "/gguf/quants.gguf", named: "quants.gguf")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try GGUFFile(path: path)
        let last = file.tensors.max { $0.offset < $1.offset }!
        #expect(truncate(path, off_t(file.dataStart + last.offset + 1)) == 0)
        var values = [Float](repeating: 0, count: last.elementCount)
        do {
            try values.withUnsafeMutableBufferPointer { try file.readFloats(last.name, expectedShape: last.shape, into: $0.baseAddress!) }
            Issue.record("read a tensor past the end of a shrunken file")
        } catch {
            let text = "\(error)"
            #expect(text.contains(path) && text.contains(last.name) && text.contains("changed"), "\(text)")
        }
    }
}
