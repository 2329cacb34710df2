/// Element types ZOTune reads, stores and moves. Compute is fp32; the others are storage or
/// link (transfer) formats converted on load or on the device.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case fp8e4m3 = "F8_E4M3"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .fp8e4m3: 1
        }
    }
}

/// Scalar conversions between fp32 and the 16-bit formats. Bulk paths use these per element;
/// they are branch-light and exact (round-to-nearest-even when narrowing).
public enum Half {
    /// bfloat16 bits -> Float (exact).
    @inlinable
    public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Float -> bfloat16 bits, round to nearest even; NaN stays NaN.
    @inlinable
    public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// IEEE binary16 bits -> Float (exact, including subnormals, infinities and NaN).
    @inlinable
    public static func f16ToFloat(_ bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// Float -> IEEE binary16 bits, round to nearest even.
    @inlinable
    public static func floatToF16(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }
}
