import Foundation
import Testing
import ZOCore

/// Philox4x32-10 against Random123's known-answer vectors, and the perturbation noise built
/// on it against a double-precision Box-Muller on the same words.
@Suite struct NoiseTests {
    @Test func philoxMatchesRandom123KnownAnswers() {
        #expect(Philox.block(counter: SIMD4(0, 0, 0, 0), key: SIMD2(0, 0)) == SIMD4(0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8))
        #expect(Philox.block(counter: SIMD4(repeating: .max), key: SIMD2(repeating: .max)) == SIMD4(0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD))
        #expect(Philox.block(counter: SIMD4(0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344), key: SIMD2(0xA409_3822, 0x299F_31D0))
                == SIMD4(0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1))
    }

    /// The reference definition, element by element, in Double.
    static func reference(seed: UInt64, tensor: UInt32, element i: Int) -> Double {
        let block = UInt64((i / 32) * 8 + i % 8)
        let x = Philox.block(counter: SIMD4(UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32), tensor, 0),
                             key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        let word = (i % 32) / 8
        let u = { (w: UInt32) in (Double(w >> 9) + 0.5) / 8_388_608 }
        let pair = word < 2 ? (x[0], x[1]) : (x[2], x[3])
        let r = (-2 * log(u(pair.0))).squareRoot()
        let angle = 2 * Double.pi * u(pair.1)
        return word % 2 == 0 ? r * cos(angle) : r * sin(angle)
    }

    @Test func gaussianFollowsItsSpecification() {
        var worst = 0.0
        var values: [Float] = []
        var chunk = [Float](repeating: 0, count: 32)
        for c in 0..<4096 {
            chunk.withUnsafeMutableBufferPointer { Noise.chunk(.gaussian, seed: 0xDEAD_BEEF_1234, tensor: 7, chunk: c, into: $0.baseAddress!) }
            values += chunk
            if c % 64 == 0 {
                for j in 0..<32 {
                    worst = max(worst, abs(Double(chunk[j]) - Self.reference(seed: 0xDEAD_BEEF_1234, tensor: 7, element: c * 32 + j)))
                }
            }
        }
        #expect(worst < 2e-6, "max deviation from the double-precision definition: \(worst)")
        let n = Double(values.count)
        let mean = values.reduce(0.0) { $0 + Double($1) } / n
        let variance = values.reduce(0.0) { $0 + Double($1) * Double($1) } / n - mean * mean
        let fourth = values.reduce(0.0) { $0 + pow(Double($1), 4) } / n
        #expect(abs(mean) < 0.01 && abs(variance - 1) < 0.01 && abs(fourth - 3) < 0.05, "mean \(mean), var \(variance), m4 \(fourth)")
    }

    /// One bit per element, from the reference Philox (chunks past 2³⁴ exercise the counter's
    /// high word), and balanced.
    @Test func rademacherFollowsItsSpecification() {
        let seed: UInt64 = 0xDEAD_BEEF_1234, tensor: UInt32 = 7
        var chunk = [Float](repeating: 0, count: 32), sum = 0.0, count = 0
        for c in Array(0..<4096) + [(1 << 34) + 5] {
            chunk.withUnsafeMutableBufferPointer { Noise.chunk(.rademacher, seed: seed, tensor: tensor, chunk: c, into: $0.baseAddress!) }
            let block = UInt64(c / 4)
            let x = Philox.block(counter: SIMD4(UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32), tensor, 1),
                                 key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
            let expected = (0..<32).map { j -> Float in (x[c % 4] >> UInt32(j)) & 1 == 1 ? 1 : -1 }
            #expect(chunk == expected, "chunk \(c)")
            sum += chunk.reduce(0.0) { $0 + Double($1) }
            count += 32
        }
        #expect(abs(sum / Double(count)) < 0.01, "mean \(sum / Double(count))")
    }

    @Test func streamsDifferBySeedAndTensorAndRepeatExactly() {
        func first(_ kind: PerturbationKind, _ seed: UInt64, _ tensor: UInt32) -> [Float] {
            var out = [Float](repeating: 0, count: 32)
            out.withUnsafeMutableBufferPointer { Noise.chunk(kind, seed: seed, tensor: tensor, chunk: 3, into: $0.baseAddress!) }
            return out
        }
        #expect(first(.gaussian, 1, 0) == first(.gaussian, 1, 0))
        #expect(first(.gaussian, 1, 0) != first(.gaussian, 2, 0))
        #expect(first(.gaussian, 1, 0) != first(.gaussian, 1, 1))
        #expect(first(.gaussian, 1 << 40, 0) != first(.gaussian, 0, 0))
        let signs = first(.rademacher, 5, 0)
        #expect(signs.allSatisfy { $0 == 1 || $0 == -1 } && Set(signs).count == 2)
        #expect(first(.ones, 5, 0) == [Float](repeating: 1, count: 32))
    }
}
