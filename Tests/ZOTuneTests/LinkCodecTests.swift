import Foundation
import Testing
import ZOCore
import ZOCPU

/// The offloader's link formats: round trips against the scalar conversions, fp8's scaled
/// grid, and stochastic rounding's two neighbours and unbiased mean.
@Suite struct LinkCodecTests {
    let backend: CPUBackend
    init() throws { backend = try CPUBackend(budget: 64 << 20, threads: 2) }

    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let magnitude = Float(generator.next() % 1_000_000) / 1_000_000 * (i % 7 == 0 ? 3 : 0.05)
            return generator.next() & 1 == 0 ? magnitude : -magnitude
        }
    }

    func roundTrip(_ values: [Float], _ format: LinkFormat, seed: UInt64?) throws -> [Float] {
        let input = try backend.upload(values, label: "values")
        let encoded = try backend.allocate(format.encodedBytes(values.count), label: "encoded")
        let output = try backend.allocate(values.count * 4, label: "decoded")
        defer { [input, encoded, output].forEach(backend.free) }
        backend.encode(input, count: values.count, format: format, stochasticSeed: seed, out: encoded)
        backend.decode(encoded, format: format, count: values.count, out: output)
        return try backend.read(output, count: values.count)
    }

    @Test func nearestRoundingMatchesTheScalarConversions() throws {
        let values = Self.values(1000, seed: 1) + [0, -0, 1e-30, 7e4, -7e4]
        #expect(try roundTrip(values, .fp32, seed: nil) == values)
        #expect(try roundTrip(values, .bf16, seed: nil) == values.map { Half.bf16ToFloat(Half.floatToBF16($0)) })
        // fp16 saturates at ±65504 where Float16 would overflow to infinity.
        #expect(try roundTrip(values, .fp16, seed: nil) == values.map { Float(Float16(min(max($0, -65504), 65504))) })
        // fp8: within half a grid step of the value over its group's scale (448 = the largest magnitude).
        let decoded = try roundTrip(values, .fp8, seed: nil)
        for start in stride(from: 0, to: values.count, by: 128) {
            let group = start..<min(start + 128, values.count)
            let scale = values[group].map(abs).max()! / 448
            for i in group {
                let q = abs(values[i]) / scale
                let spacing = Float(sign: .plus, exponent: max(Int(q.exponent), -6) - 3, significand: 1)
                #expect(abs(decoded[i] - values[i]) <= spacing / 2 * scale * 1.0001, "element \(i): \(values[i]) -> \(decoded[i])")
            }
        }
        for bits in UInt8.min...UInt8.max where bits & 0x7F != 0x7F {
            #expect(LinkFormat.e4m3Bits(LinkFormat.e4m3Value(bits)) == bits || bits == 0x80)
        }
    }

    /// Each stochastically rounded value is one of its two grid neighbours, chosen with the
    /// right odds: over 400 seeds the mean is the value.
    /// Infinities and NaN (a diverged weight) encode without a crash: bf16 and fp16 keep
    /// them, fp8 (which has no infinities) makes them NaN; their group's finite values stay.
    @Test(arguments: [LinkFormat.bf16, .fp16, .fp8])
    func nonFiniteValuesEncodeWithoutACrash(format: LinkFormat) throws {
        for seed in [nil, UInt64(3)] {
            let decoded = try roundTrip([.infinity, -.infinity, .nan, 1, -0.5] + Array(repeating: 0.25, count: 123), format, seed: seed)
            #expect(decoded[2].isNaN && decoded[3] == 1 && decoded[4] == -0.5 && decoded[5] == 0.25, "\(format)")
            #expect(format == .fp8 ? decoded[0].isNaN && decoded[1].isNaN : decoded[0] == .infinity && decoded[1] == -.infinity, "\(format)")
        }
    }

    @Test(arguments: [LinkFormat.bf16, .fp16, .fp8])
    func stochasticRoundingIsUnbiased(format: LinkFormat) throws {
        let values: [Float] = [0.0123456, -0.7777, 1.000_1, 3.3e-3] + Array(repeating: 0.02, count: 124)
        var sums = [Double](repeating: 0, count: values.count)
        let nearest = try roundTrip(values, format, seed: nil)
        for seed in 0..<400 {
            let decoded = try roundTrip(values, format, seed: UInt64(seed))
            for i in 0..<4 {
                #expect(abs(decoded[i] - values[i]) <= 2 * abs(nearest[i] - values[i]) + abs(values[i]) * 0.13)
                sums[i] += Double(decoded[i])
            }
        }
        for i in 0..<4 {
            let mean = sums[i] / 400, value = Double(values[i])
            let spacing = abs(Double(nearest[i]) - value) * 2 + abs(value) * 1e-7
            #expect(abs(mean - value) < max(spacing * 0.2, abs(value) * 2e-3), "\(format) \(value): mean \(mean)")
        }
    }

    /// The vectorised encoders equal the scalar definition (`LinkFormat.round`,
    /// then the bits) for every value, to nearest and stochastically, ties, subnormals and
    /// saturation included.
    @Test(arguments: [LinkFormat.bf16, .fp16, .fp8])
    func fastPathsEqualTheDefinition(format: LinkFormat) throws {
        var values = Self.values(2000, seed: 4)
        values += [0, -0.0, 1e-40, -3e-39, Float(bitPattern: 0x7F7F_FFFF), -Float(bitPattern: 0x7F7F_8000), 1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8]
        values += (0..<64).map { Float(bitPattern: 0x3F80_0000 | UInt32($0) << 10) }
        values += (0..<128).map { Float($0) * 0x1p-12 * (($0 & 1) == 0 ? 1 : -1) }  // one fp8 group of small values: subnormals
        values += (0..<128).map { Float($0) * 0x1p-27 * (($0 & 1) == 0 ? 1 : -1) } + [7e4, -1e6, 65519, 65520]  // fp16 subnormals, saturation
        for seed in [nil, 77] as [UInt64?] {
            let input = try backend.upload(values, label: "values")
            let encoded = try backend.allocate(format.encodedBytes(values.count), label: "encoded")
            defer { [input, encoded].forEach(backend.free) }
            backend.encode(input, count: values.count, format: format, stochasticSeed: seed, out: encoded)
            func uniform(_ i: Int) -> Float? {
                seed.map { seed in
                    let u = Noise.uniforms(seed: seed, chunk: i / 32)
                    return [u.0, u.1, u.2, u.3][i % 32 / 8][i % 8]
                }
            }
            let actual: [UInt16], expected: [UInt16]
            if format == .bf16 {
                actual = try backend.read(encoded, count: values.count)
                expected = values.indices.map { Half.floatToBF16(LinkFormat.bf16.round(values[$0], uniform: uniform($0))) }
            } else if format == .fp16 {
                actual = try backend.read(encoded, count: values.count)
                expected = values.indices.map { Half.floatToF16(LinkFormat.fp16.round(values[$0], uniform: uniform($0))) }
            } else {
                actual = try backend.read(encoded, count: values.count, as: UInt8.self).map(UInt16.init)
                expected = values.indices.map { i in
                    let group = (i / 128 * 128)..<min(i / 128 * 128 + 128, values.count)
                    let scale = values[group].map(abs).max()! / 448
                    return UInt16(LinkFormat.e4m3Bits(LinkFormat.fp8.round(values[i] / scale, uniform: uniform(i))))
                }
            }
            #expect(actual == expected, "\(format) seed \(String(describing: seed)): first difference at \(actual.indices.first { actual[$0] != expected[$0] } ?? -1)")
        }
    }
}
