import Dispatch
import ZOCore

/// Dequantization of GGML blocks to Float32, bit-identical to the reference (`gguf` Python
/// package): every value is computed with the same fp32 operations in the same order.
/// Layouts follow ggml's block structs; `QK_K` = 256.
public enum Dequantize {
    /// Converts `count` elements of `type` at `source` into `destination`. `count` must be a
    /// multiple of the type's block size and `source` hold count / block × bytes bytes.
    public static func run(_ type: GGMLType, source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let (perBlock, bytes) = type.block
        let blocks = count / perBlock
        let chunks = min(blocks, 64)
        guard chunks > 0 else { return }
        let src = UncheckedPointers(source: source, destination: destination)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            for b in blocks * chunk / chunks..<blocks * (chunk + 1) / chunks {
                block(type, src.source + b * bytes, src.destination + b * perBlock)
            }
        }
    }

    // @unchecked Sendable: disjoint use — `run`'s chunks write disjoint blocks of `destination` and only read
    // `source`; both outlive `concurrentPerform`, which returns once every chunk is done.
    private struct UncheckedPointers: @unchecked Sendable {
        let source: UnsafeRawPointer
        let destination: UnsafeMutablePointer<Float>
    }

    @inline(__always)
    private static func f16(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Half.f16ToFloat(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    private static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
        p.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// One block at `p` into `y`.
    private static func block(_ type: GGMLType, _ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            y[0] = p.loadUnaligned(as: Float.self)
        case .f16:
            y[0] = f16(p, 0)
        case .bf16:
            y[0] = Half.bf16ToFloat(p.loadUnaligned(as: UInt16.self))
        case .q8_0:  // d f16, qs int8[32]: y = q·d
            let d = f16(p, 0)
            for i in 0..<32 { y[i] = Float(Int8(bitPattern: byte(p, 2 + i))) * d }
        case .q4_0:  // d f16, qs[16]: low nibbles are y[0..<16], high nibbles y[16..<32]; (q − 8)·d
            let d = f16(p, 0)
            for j in 0..<16 {
                let q = byte(p, 2 + j)
                y[j] = d * Float(Int(q & 0xF) - 8)
                y[j + 16] = d * Float(Int(q >> 4) - 8)
            }
        case .q4_1:  // d, m f16, qs[16]: q·d + m
            let d = f16(p, 0), m = f16(p, 2)
            for j in 0..<16 {
                let q = byte(p, 4 + j)
                y[j] = d * Float(q & 0xF) + m
                y[j + 16] = d * Float(q >> 4) + m
            }
        case .q5_0:  // d f16, qh u32 (fifth bits), qs[16]: (q − 16)·d
            let d = f16(p, 0), qh = p.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian
            for j in 0..<16 {
                let q = byte(p, 6 + j)
                let low = Int(q & 0xF) | Int((qh >> UInt32(j)) & 1) << 4
                let high = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float(low - 16)
                y[j + 16] = d * Float(high - 16)
            }
        case .q5_1:  // d, m f16, qh u32, qs[16]: q·d + m
            let d = f16(p, 0), m = f16(p, 2), qh = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
            for j in 0..<16 {
                let q = byte(p, 8 + j)
                let low = Int(q & 0xF) | Int((qh >> UInt32(j)) & 1) << 4
                let high = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float(low) + m
                y[j + 16] = d * Float(high) + m
            }
        case .q2_K:  // scales[16] (4-bit scale | 4-bit min), qs[64] 2-bit, d, dmin f16
            let d = f16(p, 80), dmin = f16(p, 82)
            for i in 0..<256 {
                let scale = byte(p, i / 16)
                let (group, shift, lane) = (i / 128, (i % 128) / 32, i % 32)
                let q = (byte(p, 16 + group * 32 + lane) >> UInt8(2 * shift)) & 3
                y[i] = (d * Float(scale & 0xF)) * Float(q) - dmin * Float(scale >> 4)
            }
        case .q3_K:  // hmask[32], qs[64] 2-bit, scales[12] (16 × 6-bit, −32), d f16
            let d = f16(p, 108)
            var scales = [Float](repeating: 0, count: 16)
            for k in 0..<16 {
                let low = k < 8 ? byte(p, 96 + k) & 0xF : byte(p, 96 + k - 8) >> 4
                let high = (byte(p, 104 + k % 4) >> UInt8(2 * (k / 4))) & 3
                scales[k] = Float(Int8(bitPattern: low | high << 4) - 32)
            }
            for i in 0..<256 {
                let (group, shift, lane) = (i / 128, (i % 128) / 32, i % 32)
                let low = Int((byte(p, 32 + group * 32 + lane) >> UInt8(2 * shift)) & 3)
                let bit = (byte(p, i % 32) >> UInt8(i / 32)) & 1
                y[i] = (d * scales[i / 16]) * Float(low - (bit == 0 ? 4 : 0))
            }
        case .q4_K, .q5_K:  // d, dmin f16, scales[12] (8 × 6-bit scale and min), [qh[32]], qs[128]
            let d = f16(p, 0), dmin = f16(p, 2)
            let hasHigh = type == .q5_K
            let qs = hasHigh ? 48 : 16
            for j in 0..<8 {
                let (scale, minimum) = scaleMin(p + 4, j)
                let dl = d * Float(scale), ml = dmin * Float(minimum)
                for lane in 0..<32 {
                    let i = j * 32 + lane
                    var q = Int((byte(p, qs + (j / 2) * 32 + lane) >> UInt8(4 * (j % 2))) & 0xF)
                    if hasHigh { q |= Int((byte(p, 16 + lane) >> UInt8(j)) & 1) << 4 }
                    y[i] = dl * Float(q) - ml
                }
            }
        case .q6_K:  // ql[128] 4-bit, qh[64] 2-bit, scales int8[16], d f16
            let d = f16(p, 208)
            for i in 0..<256 {
                let (group, rest) = (i / 128, i % 128)
                let low = (byte(p, group * 64 + rest % 64) >> UInt8(4 * (rest / 64))) & 0xF
                let high = (byte(p, 128 + group * 32 + rest % 32) >> UInt8(2 * (rest / 32))) & 3
                let q = Int(low | high << 4) - 32
                y[i] = (d * Float(Int8(bitPattern: byte(p, 192 + i / 16)))) * Float(q)
            }
        default:
            preconditionFailure("dequantize of \(type.name) is checked by the caller")
        }
    }

    /// The 6-bit scale and min of sub-block j (0..<8) packed in Q4_K/Q5_K's 12 bytes.
    @inline(__always)
    private static func scaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (UInt8, UInt8) {
        if j < 4 {
            return (byte(s, j) & 0x3F, byte(s, j + 4) & 0x3F)
        }
        let packed = byte(s, j + 4)
        return ((packed & 0xF) | ((byte(s, j - 4) >> 2) & 0x30), (packed >> 4) | ((byte(s, j) >> 2) & 0x30))
    }
}
