import ZOCore

/// Host-side reference codecs for `LinkFormat`, used by the CPU backend's `encode`/`decode`
/// (one 128-value group at a time, so fp8 groups and stochastic-rounding chunks line up).
enum LinkCodec {
    /// Values per work item: one fp8 scale group, four noise chunks.
    static let group = LinkFormat.scaleGroup

    /// Decodes values [first, first + count) of an encoded buffer into `out`.
    static func decode(_ encoded: UnsafeRawPointer, format: LinkFormat, total: Int, first: Int, count: Int,
                       out: UnsafeMutablePointer<Float>) {
        switch format {
        case .fp32:
            out.update(from: encoded.assumingMemoryBound(to: Float.self) + first, count: count)
        case .bf16:
            let bits = encoded.assumingMemoryBound(to: UInt16.self) + first
            for i in 0..<count { out[i] = Half.bf16ToFloat(bits[i]) }
        case .fp16:
            let bits = encoded.assumingMemoryBound(to: UInt16.self) + first
            for i in 0..<count { out[i] = Half.f16ToFloat(bits[i]) }
        case .fp8:
            let bits = encoded.assumingMemoryBound(to: UInt8.self) + first
            let scales = (encoded + (total + 3) / 4 * 4).assumingMemoryBound(to: Float.self)
            let scale = scales[first / group]  // `first` starts a group and count ≤ one group
            for i in 0..<count { out[i] = e4m3Table[Int(bits[i])] * scale }
        }
    }

    /// Encodes `values` [first, first + count) (count ≤ one group, first a group start).
    static func encode(_ values: UnsafePointer<Float>, format: LinkFormat, total: Int, first: Int, count: Int,
                       seed: UInt64?, encoded: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: group) { buffer in
            let uniforms = buffer.baseAddress!
            if let seed {
                for chunk in 0..<(count + 31) / 32 {
                    let v = Noise.uniforms(seed: seed, chunk: first / 32 + chunk)
                    let p = UnsafeMutableRawPointer(uniforms + chunk * 32)
                    p.storeBytes(of: v.0, as: SIMD8<Float>.self)
                    p.storeBytes(of: v.1, toByteOffset: 32, as: SIMD8<Float>.self)
                    p.storeBytes(of: v.2, toByteOffset: 64, as: SIMD8<Float>.self)
                    p.storeBytes(of: v.3, toByteOffset: 96, as: SIMD8<Float>.self)
                }
            }
            encode(values + first, format: format, total: total, first: first, count: count,
                   uniforms: seed == nil ? nil : UnsafePointer(uniforms), encoded: encoded)
        }
    }

    /// Eight finite values to bf16 bits exactly as `LinkFormat.round` + `Half.floatToBF16`
    /// would (on the bits: truncate, then step the magnitude up to nearest-even or when the
    /// uniform falls below the cut-off fraction; saturate at the largest finite bf16), or nil
    /// when a lane is not finite (the scalar path handles it).
    @inline(__always)
    static func bf16Lanes(_ values: UnsafePointer<Float>, uniforms: UnsafePointer<Float>?) -> SIMD8<UInt16>? {
        let bits = UnsafeRawPointer(values).loadUnaligned(as: SIMD8<UInt32>.self)
        let magnitude = bits & 0x7FFF_FFFF
        guard magnitude.max() < 0x7F80_0000 else { return nil }
        let truncated = magnitude &>> 16
        let rounded: SIMD8<UInt32>
        if let uniforms {
            // Up when u < low/2¹⁶; positive floats order as their bits, so the borrow of
            // bits(u) − bits(fraction) is the comparison.
            let fraction = unsafeBitCast(SIMD8<Float>(magnitude & 0xFFFF) * 0x1p-16, to: SIMD8<UInt32>.self)
            let u = UnsafeRawPointer(uniforms).loadUnaligned(as: SIMD8<UInt32>.self)
            rounded = truncated &+ ((u &- fraction) &>> 31)
        } else {
            rounded = (magnitude &+ 0x7FFF &+ (truncated & 1)) &>> 16
        }
        let result = pointwiseMin(rounded, SIMD8(repeating: 0x7F7F)) | ((bits & 0x8000_0000) &>> 16)
        return SIMD8<UInt16>(truncatingIfNeeded: result)
    }

    /// The value of every e4m3 byte.
    static let e4m3Table: [Float] = (0...255).map { LinkFormat.e4m3Value(UInt8($0)) }

    /// Eight values over `scale` to e4m3 bits exactly as `LinkFormat.round` + `e4m3Bits` would,
    /// on the bits: normals keep 3 mantissa bits and step up to nearest-even or when the
    /// uniform falls below the cut-off fraction (20 bits); below 2⁻⁶ the grid is multiples of
    /// 2⁻⁹; the result saturates at 448 (0x7E). Nil when a quotient is not finite.
    @inline(__always)
    static func e4m3Lanes(_ values: UnsafePointer<Float>, scale: Float, uniforms: UnsafePointer<Float>?) -> SIMD8<UInt8>? {
        let q = UnsafeRawPointer(values).loadUnaligned(as: SIMD8<Float>.self) / scale
        let bits = unsafeBitCast(q, to: SIMD8<UInt32>.self)
        let magnitude = bits & 0x7FFF_FFFF
        guard magnitude.max() < 0x7F80_0000 else { return nil }
        let u = uniforms.map { UnsafeRawPointer($0).loadUnaligned(as: SIMD8<UInt32>.self) }
        // Normal range (|q| ≥ 2⁻⁶): e4m3 bits = (exponent − 120) << 3 | 3 mantissa bits.
        let truncated = magnitude &>> 20, low = magnitude & 0xF_FFFF
        let normalUp: SIMD8<UInt32>
        if let u {
            let fraction = unsafeBitCast(SIMD8<Float>(low) * 0x1p-20, to: SIMD8<UInt32>.self)
            normalUp = (u &- fraction) &>> 31
        } else {
            normalUp = (low &+ 0x7_FFFF &+ (truncated & 1)) &>> 20
        }
        let normal = (truncated &+ normalUp) &- (120 << 3)
        // Subnormal range: steps of 2⁻⁹, counted exactly in float (steps < 8 there); floor and
        // nearest-even by adding and removing 2²³, whose bits then give the integer.
        let magic = SIMD8<Float>(repeating: 8_388_608)
        let steps = unsafeBitCast(magnitude, to: SIMD8<Float>.self) * 512
        let nearest = (steps + magic) - magic
        let below = nearest.replacing(with: nearest - 1, where: nearest .> steps)
        let rounded: SIMD8<Float>
        if let u {
            let up = (u &- unsafeBitCast(steps - below, to: SIMD8<UInt32>.self)) &>> 31
            rounded = below + unsafeBitCast((up &<< 23) &+ 0x3F80_0000, to: SIMD8<Float>.self) - 1  // 1.0 or 2.0
        } else {
            rounded = nearest
        }
        let subnormal = unsafeBitCast(pointwiseMin(rounded, SIMD8(repeating: 8)) + magic, to: SIMD8<UInt32>.self) &- 0x4B00_0000
        let isNormal = magnitude .>= 0x3C80_0000  // 2⁻⁶
        let chosen = subnormal.replacing(with: normal, where: isNormal)
        let result = pointwiseMin(chosen, SIMD8(repeating: 0x7E)) | ((bits & 0x8000_0000) &>> 24)
        return SIMD8<UInt8>(truncatingIfNeeded: result)
    }

    /// `encode` of one group with its uniforms (nil: to nearest).
    private static func encode(_ values: UnsafePointer<Float>, format: LinkFormat, total: Int, first: Int, count: Int,
                               uniforms: UnsafePointer<Float>?, encoded: UnsafeMutableRawPointer) {
        func rounded(_ i: Int, _ value: Float) -> Float { format.round(value, uniform: uniforms?[i]) }
        switch format {
        case .fp32:
            (encoded.assumingMemoryBound(to: Float.self) + first).update(from: values, count: count)
        case .bf16:
            let bits = encoded.assumingMemoryBound(to: UInt16.self) + first
            var i = 0
            while i + 8 <= count, let fast = bf16Lanes(values + i, uniforms: uniforms.flatMap { $0 + i }) {
                UnsafeMutableRawPointer(bits + i).storeBytes(of: fast, as: SIMD8<UInt16>.self)
                i += 8
            }
            while i < count {
                bits[i] = Half.floatToBF16(rounded(i, values[i]))
                i += 1
            }
        case .fp16:
            let bits = encoded.assumingMemoryBound(to: UInt16.self) + first
            for i in 0..<count { bits[i] = Half.floatToF16(rounded(i, values[i])) }
        case .fp8:
            let bits = encoded.assumingMemoryBound(to: UInt8.self) + first
            let scales = (encoded + (total + 3) / 4 * 4).assumingMemoryBound(to: Float.self)
            var largest: Float = 0
            for i in 0..<count { largest = max(largest, abs(values[i])) }
            let scale = largest > 0 && largest.isFinite ? largest / 448 : 1
            scales[first / group] = scale
            var i = 0
            while i + 8 <= count, let fast = e4m3Lanes(values + i, scale: scale, uniforms: uniforms.flatMap { $0 + i }) {
                UnsafeMutableRawPointer(bits + i).storeBytes(of: fast, as: SIMD8<UInt8>.self)
                i += 8
            }
            while i < count {
                bits[i] = LinkFormat.e4m3Bits(rounded(i, values[i] / scale))
                i += 1
            }
        }
    }
}
