import Dispatch
import ZOCore

/// Float32 to GGML blocks, bit-identical to the `gguf` Python package's quantizers (the ones
/// llama.cpp's converter uses): the same fp32 operations in the same order, no fused multiply-add.
public enum Quantize {
    /// The types `run` writes.
    public static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0]

    /// `count` floats at `source` as `type` (one of `types`); `count` must be a multiple of the
    /// type's block.
    public static func run(_ type: GGMLType, source: UnsafePointer<Float>, count: Int) -> [UInt8] {
        precondition(types.contains(type) && count % type.block.elements == 0, "\(type.name) cannot hold \(count) elements")
        let (perBlock, bytes) = type.block
        let blocks = count / perBlock
        var output = [UInt8](repeating: 0, count: blocks * bytes)
        let chunks = min(blocks, 64)
        guard chunks > 0 else { return output }
        output.withUnsafeMutableBytes { out in
            let pointers = Pointers(source: source, destination: out.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                for b in blocks * chunk / chunks..<blocks * (chunk + 1) / chunks {
                    block(type, pointers.source + b * perBlock, pointers.destination + b * bytes)
                }
            }
        }
        return output
    }

    /// `run`'s source and output, carried into `concurrentPerform`.
    // @unchecked Sendable: disjoint use — the chunks write disjoint blocks of `destination` and only read
    // `source`; both outlive `concurrentPerform`, which returns once every chunk is done.
    private struct Pointers: @unchecked Sendable {
        let source: UnsafePointer<Float>
        let destination: UnsafeMutableRawPointer
    }

    private static func store(_ value: UInt16, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: value.littleEndian, as: UInt16.self)
    }

    /// One block of `x` into `p`.
    private static func block(_ type: GGMLType, _ x: UnsafePointer<Float>, _ p: UnsafeMutableRawPointer) {
        switch type {
        case .f32:
            p.storeBytes(of: x[0].bitPattern.littleEndian, as: UInt32.self)
        case .f16:
            store(Half.floatToF16(x[0]), p)
        case .bf16:
            store(Half.floatToBF16(x[0]), p)
        case .q8_0:  // d = max|x| / 127, q = round(x / d) half away from zero, as int8
            var amax: Float = 0
            for i in 0..<32 { amax = max(amax, abs(x[i])) }
            let d = amax / 127
            let id: Float = d == 0 ? 0 : 1 / d
            store(Half.floatToF16(d), p)
            for i in 0..<32 {
                let q = (x[i] * id).rounded(.toNearestOrAwayFromZero)
                p.storeBytes(of: Int8(q), toByteOffset: 2 + i, as: Int8.self)
            }
        case .q4_0:  // d = (the x of largest |x|, first of ties) / −8, q = trunc(x / d + 8.5) clipped to 0...15
            var imax = 0
            for i in 1..<32 where abs(x[i]) > abs(x[imax]) { imax = i }
            let d = x[imax] / -8
            let id: Float = d == 0 ? 0 : 1 / d
            store(Half.floatToF16(d), p)
            func nibble(_ i: Int) -> UInt8 {
                let product = x[i] * id
                return UInt8(min(15, (product + 8.5).rounded(.towardZero)))
            }
            for j in 0..<16 {
                p.storeBytes(of: nibble(j) | nibble(j + 16) << 4, toByteOffset: 2 + j, as: UInt8.self)
            }
        default:
            preconditionFailure("\(type.name) is not written")
        }
    }
}
