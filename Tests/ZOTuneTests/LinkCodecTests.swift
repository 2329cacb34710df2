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
}
