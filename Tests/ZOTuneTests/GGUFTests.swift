import Foundation
import Testing
import ZOCore
import ZOFormats

/// The GGUF reader: metadata of every type, dequantization of every supported tensor type
/// against the `gguf` Python package (scripts/fixtures/make_gguf_fixtures.py), bad files and
/// a fuzz run.
@Suite struct GGUFTests {
    static let path = Fixtures.root + "/gguf/quants.gguf"

    @Test func metadataOfEveryValueType() throws {
        let file = try GGUFFile(path: Self.path)
        #expect(file.version == 3)
        #expect(file.metadata["test.u8"] == .uint8(200))
        #expect(file.metadata["test.i8"] == .int8(-100))
        #expect(file.metadata["test.u16"] == .uint16(60000))
        #expect(file.metadata["test.i16"] == .int16(-30000))
        #expect(file.metadata["test.u32"] == .uint32(4_000_000_000))
        #expect(file.metadata["test.i32"] == .int32(-2_000_000_000))
        #expect(file.metadata["test.u64"] == .uint64(1 << 60))
        #expect(file.metadata["test.i64"] == .int64(-(1 << 60)))
        #expect(file.metadata["test.f32"] == .float32(0.25))
        #expect(file.metadata["test.f64"] == .float64(-1.5e300))
        #expect(file.metadata["test.bool"] == .bool(true))
        #expect(try file.string("test.string") == "héllo ✓")
        #expect(try file.strings("test.strings") == ["a", "bc", ""])
        #expect(try file.ints("test.ints") == [1, -2, 3])
        #expect(try file.string("general.architecture") == "llama")
        #expect(throws: GGUFError.missingKey(path: Self.path, key: "nope")) { try file.int("nope") }
        #expect(throws: GGUFError.wrongKeyType(path: Self.path, key: "test.string", expected: "an integer")) { try file.int("test.string") }
    }

    @Test(arguments: ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"])
    func dequantizationMatchesThePythonPackage(name: String) throws {
        let file = try GGUFFile(path: Self.path)
        let expected = try SafetensorsFile(path: Fixtures.root + "/gguf/quants-expected.safetensors")
        let info = try #require(file.info(name))
        #expect(info.shape == [4, 512])
        var got = [Float](repeating: .nan, count: 2048)
        var want = [Float](repeating: 0, count: 2048)
        try got.withUnsafeMutableBufferPointer { try file.readFloats(name, expectedShape: [4, 512], into: $0.baseAddress!) }
        try want.withUnsafeMutableBufferPointer { try expected.readFloats(name, expectedShape: [4, 512], into: $0.baseAddress!) }
        let mismatches = zip(got, want).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(mismatches == 0, "\(name): \(mismatches) of 2048 values differ")
        #expect(throws: GGUFError.self) {
            try got.withUnsafeMutableBufferPointer { try file.readFloats(name, expectedShape: [512, 4], into: $0.baseAddress!) }
        }
    }

    /// The fixture's bytes, for damaging.
    static func image() throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func parse(_ bytes: [UInt8]) throws(GGUFError) -> GGUFHeader {
        let result: Result<GGUFHeader, GGUFError> = bytes.withUnsafeBytes { raw in
            Result { () throws(GGUFError) in try GGUFHeader(bytes: raw, path: "bad.gguf") }
        }
        return try result.get()
    }

    static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0) }
    }

    @Test func badFilesGiveNamedErrors() throws {
        let good = try Self.image()
        _ = try Self.parse(good)
        var magic = good; magic[0] = UInt8(ascii: "X")
        var version = good; Self.put(UInt32(1), at: 4, in: &version)
        var tensors = good; Self.put(UInt64(1) << 40, at: 8, in: &tensors)
        var keys = good; Self.put(UInt64.max, at: 16, in: &keys)
        var keyLength = good; Self.put(UInt64(1) << 50, at: 24, in: &keyLength)  // first key's length
        let truncated = Array(good.prefix(good.count - 100))
        let header = Array(good.prefix(200))
        let cases: [(String, [UInt8], (GGUFError) -> Bool)] = [
            ("wrong magic", magic, { $0 == .badMagic(path: "bad.gguf") }),
            ("version 1", version, { $0 == .unsupportedVersion(path: "bad.gguf", version: 1) }),
            ("absurd tensor count", tensors, { if case .absurdCount(_, "tensor count", _) = $0 { true } else { false } }),
            ("absurd metadata count", keys, { if case .absurdCount(_, "metadata count", _) = $0 { true } else { false } }),
            ("absurd string length", keyLength, { if case .absurdCount(_, "string length", _) = $0 { true } else { false } }),
            ("data past the end", truncated, { if case .badTensor(_, "q6_k", _) = $0 { true } else { false } }),
            ("cut inside the header", header, {
                switch $0 { case .truncated, .absurdCount: true; default: false }
            }),
            ("empty", [], { $0 == .badMagic(path: "bad.gguf") }),
        ]
        for (what, bytes, matches) in cases {
            do {
                _ = try Self.parse(bytes)
                Issue.record("\(what): accepted")
            } catch {
                #expect(matches(error), "\(what): \(error)")
                #expect(error.description.contains("bad.gguf"))
            }
        }
    }

    @Test func unknownTensorTypeIsNamed() throws {
        var bytes = try Self.image()
        let file = try GGUFFile(path: Self.path)
        // Find the type field of tensor "q8_0": after its name, dim count and dims.
        let name = Array("q8_0".utf8)
        var start = 0
        for i in 0..<(bytes.count - name.count) where Array(bytes[i..<i + name.count]) == name && bytes[i - 8] == UInt8(name.count) {
            start = i + name.count
            break
        }
        let dims = file.info("q8_0")!.dims.count
        Self.put(UInt32(99), at: start + 4 + 8 * dims, in: &bytes)
        #expect(throws: GGUFError.unknownTensorType(path: "bad.gguf", tensor: "q8_0", type: 99)) { try Self.parse(bytes) }
    }

    /// ≥ 10,000 mutated and random images: each parses or throws, none crashes.
    @Test func fuzzedHeadersNeverCrash() throws {
        let good = Array(try Self.image().prefix(1200))  // the header and the first tensors' data
        var rng = SplitMix64(seed: 99)
        var parsed = 0, rejected = 0
        for iteration in 0..<10_500 {
            var bytes = good
            switch iteration % 4 {
            case 0:
                bytes = (0..<Int.random(in: 0...256, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if iteration % 8 == 0, bytes.count >= 8 { bytes.replaceSubrange(0..<8, with: [0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]) }
            case 1:
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            default:  // plausible-looking large counts at random 8-byte positions
                let at = Int.random(in: 8..<(bytes.count - 8), using: &rng)
                Self.put(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng), at: at, in: &bytes)
            }
            do {
                let header = try Self.parse(bytes)
                parsed += 1
                for tensor in header.tensors { #expect(header.dataStart + tensor.offset + tensor.byteCount <= bytes.count) }
            } catch {
                rejected += 1
            }
        }
        #expect(parsed + rejected == 10_500)
        #expect(rejected > 0)
    }
}
