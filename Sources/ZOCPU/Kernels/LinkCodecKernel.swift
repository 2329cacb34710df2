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
            for i in 0..<count { out[i] = LinkFormat.e4m3Value(bits[i]) * scales[(first + i) / group] }
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

    /// `encode` of one group with its uniforms (nil: to nearest).
    private static func encode(_ values: UnsafePointer<Float>, format: LinkFormat, total: Int, first: Int, count: Int,
                               uniforms: UnsafePointer<Float>?, encoded: UnsafeMutableRawPointer) {
        func rounded(_ i: Int, _ value: Float) -> Float { format.round(value, uniform: uniforms?[i]) }
        switch format {
        case .fp32:
            (encoded.assumingMemoryBound(to: Float.self) + first).update(from: values, count: count)
        case .bf16:
            let bits = encoded.assumingMemoryBound(to: UInt16.self) + first
            for i in 0..<count { bits[i] = Half.floatToBF16(rounded(i, values[i])) }
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
            for i in 0..<count { bits[i] = LinkFormat.e4m3Bits(rounded(i, values[i] / scale)) }
        }
    }
}
