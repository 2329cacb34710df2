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
    static func bf16Lanes(_ x: SIMD8<Float>, uniforms: UnsafePointer<Float>?) -> SIMD8<UInt32>? {
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
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
        return result
    }

    /// The value of every e4m3 byte.
    static let e4m3Table: [Float] = (0...255).map { LinkFormat.e4m3Value(UInt8($0)) }

    /// A narrow float format's grid for `gridLanes`, derived from `LinkFormat.grid`: mantissa
    /// bits, smallest normal exponent and exponent bias (1 − that exponent), the bits of its
    /// largest finite value and where its sign bit sits.
    struct Grid {
        let mantissaBits: UInt32
        let minExponent: Int
        let bias: UInt32
        let largestBits: UInt32
        let signShift: UInt32

        init(_ format: LinkFormat, largestBits: UInt32, width: UInt32) {
            let grid = format.grid
            mantissaBits = UInt32(grid.mantissaBits)
            minExponent = grid.minExponent
            bias = UInt32(1 - grid.minExponent)
            self.largestBits = largestBits
            signShift = 32 - width
        }

        static let fp16 = Grid(.fp16, largestBits: UInt32(Half.floatToF16(LinkFormat.fp16.grid.largest)), width: 16)
        static let e4m3 = Grid(.fp8, largestBits: UInt32(LinkFormat.e4m3Bits(LinkFormat.fp8.grid.largest)), width: 8)
    }

    /// Fills `bits[0..<count]` eight at a time from `lanes(i)` while it gives a vector, the rest
    /// one by one from `scalar(i)`.
    @inline(__always)
    static func fill<Word: FixedWidthInteger & SIMDScalar>(_ bits: UnsafeMutablePointer<Word>, count: Int,
                                                          lanes: (Int) -> SIMD8<UInt32>?, scalar: (Int) -> Word) {
        var i = 0
        while i + 8 <= count, let fast = lanes(i) {
            UnsafeMutableRawPointer(bits + i).storeBytes(of: SIMD8<Word>(truncatingIfNeeded: fast), as: SIMD8<Word>.self)
            i += 8
        }
        while i < count {
            bits[i] = scalar(i)
            i += 1
        }
    }

    /// Eight values to the bits of `grid`'s format exactly as `LinkFormat.round` and the
    /// format's encoding would, on the bits: normals keep their top mantissa bits and step up
    /// to nearest-even, or when the uniform falls below the cut-off fraction; below the
    /// smallest normal the grid is evenly spaced and counted exactly in float (floor and
    /// nearest by adding and removing 2²³); the result saturates at the largest finite value.
    /// Nil when a value is not finite (the scalar path handles it).
    @inline(__always)
    static func gridLanes(_ x: SIMD8<Float>, uniforms: UnsafePointer<Float>?, grid: Grid) -> SIMD8<UInt32>? {
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        let magnitude = bits & 0x7FFF_FFFF
        guard magnitude.max() < 0x7F80_0000 else { return nil }
        let u = uniforms.map { UnsafeRawPointer($0).loadUnaligned(as: SIMD8<UInt32>.self) }
        // Normal range: drop 23 − m mantissa bits, rebias the exponent.
        let drop = 23 - grid.mantissaBits
        let truncated = magnitude &>> drop, low = magnitude & ((1 << drop) - 1)
        let normalUp: SIMD8<UInt32>
        if let u {
            // Up when u < low/2^drop; positive floats order as their bits, so the borrow of
            // bits(u) − bits(fraction) is the comparison.
            let fraction = unsafeBitCast(SIMD8<Float>(low) * Float(sign: .plus, exponent: -Int(drop), significand: 1), to: SIMD8<UInt32>.self)
            normalUp = (u &- fraction) &>> 31
        } else {
            normalUp = (low &+ ((1 << (drop - 1)) - 1) &+ (truncated & 1)) &>> drop
        }
        let normal = (truncated &+ normalUp) &- ((127 - grid.bias) << grid.mantissaBits)
        // Subnormal range: steps of 2^(minExponent − m), fewer than 2^m of them.
        let magic = SIMD8<Float>(repeating: 8_388_608)
        let steps = unsafeBitCast(magnitude, to: SIMD8<Float>.self) * Float(sign: .plus, exponent: Int(grid.mantissaBits) - grid.minExponent, significand: 1)
        let nearest = (steps + magic) - magic
        let below = nearest.replacing(with: nearest - 1, where: nearest .> steps)
        let rounded: SIMD8<Float>
        if let u {
            let up = (u &- unsafeBitCast(steps - below, to: SIMD8<UInt32>.self)) &>> 31
            rounded = below + unsafeBitCast((up &<< 23) &+ 0x3F80_0000, to: SIMD8<Float>.self) - 1  // + 0 or 1
        } else {
            rounded = nearest
        }
        let subnormal = unsafeBitCast(rounded + magic, to: SIMD8<UInt32>.self) &- 0x4B00_0000
        let isNormal = magnitude .>= UInt32(127 + grid.minExponent) << 23
        let chosen = subnormal.replacing(with: normal, where: isNormal)
        return pointwiseMin(chosen, SIMD8(repeating: grid.largestBits)) | ((bits & 0x8000_0000) &>> grid.signShift)
    }

    /// `encode` of one group with its uniforms (nil: to nearest).
    private static func encode(_ values: UnsafePointer<Float>, format: LinkFormat, total: Int, first: Int, count: Int,
                               uniforms: UnsafePointer<Float>?, encoded: UnsafeMutableRawPointer) {
        func rounded(_ i: Int, _ value: Float) -> Float { format.round(value, uniform: uniforms?[i]) }
        switch format {
        case .fp32:
            (encoded.assumingMemoryBound(to: Float.self) + first).update(from: values, count: count)
        case .bf16:
            fill(encoded.assumingMemoryBound(to: UInt16.self) + first, count: count,
                 lanes: { i in bf16Lanes(load8(values + i), uniforms: uniforms.map { $0 + i }) },
                 scalar: { Half.floatToBF16(rounded($0, values[$0])) })
        case .fp16:
            fill(encoded.assumingMemoryBound(to: UInt16.self) + first, count: count,
                 lanes: { i in gridLanes(load8(values + i), uniforms: uniforms.map { $0 + i }, grid: .fp16) },
                 scalar: { Half.floatToF16(rounded($0, values[$0])) })
        case .fp8:
            let scales = (encoded + (total + 3) / 4 * 4).assumingMemoryBound(to: Float.self)
            var largest: Float = 0
            for i in 0..<count { largest = max(largest, abs(values[i])) }
            let scale = largest > 0 && largest.isFinite ? largest / LinkFormat.fp8.grid.largest : 1
            scales[first / group] = scale
            fill(encoded.assumingMemoryBound(to: UInt8.self) + first, count: count,
                 lanes: { i in gridLanes(load8(values + i) / scale, uniforms: uniforms.map { $0 + i }, grid: .e4m3) },
                 scalar: { LinkFormat.e4m3Bits(rounded($0, values[$0] / scale)) })
        }
    }
}
