/// How a streamed block is stored in host memory and sent over the link: the offloader's
/// low-bit transfers. Compute always runs in fp32 on the device, which decodes on arrival
/// and encodes before write-back.
///
/// Encoded layout of `count` values: the payload (4, 2, 2 or 1 bytes per value), and for
/// fp8 one fp32 scale per `LinkFormat.scaleGroup` values after the payload (which is
/// padded to 4 bytes): value i = e4m3(payload[i]) · scale[i / 128], the scale chosen so the
/// group's largest magnitude maps to e4m3's largest finite value, 448.
public enum LinkFormat: String, Sendable, Codable, CaseIterable {
    case fp32, bf16, fp16, fp8

    /// Values sharing one fp8 scale.
    public static let scaleGroup = 128

    /// Bytes of `count` encoded values.
    public func encodedBytes(_ count: Int) -> Int {
        switch self {
        case .fp32: count * 4
        case .bf16, .fp16: count * 2
        case .fp8: (count + 3) / 4 * 4 + (count + Self.scaleGroup - 1) / Self.scaleGroup * 4
        }
    }

    /// Mantissa bits, smallest normal exponent and largest finite magnitude of the format.
    public var grid: (mantissaBits: Int, minExponent: Int, largest: Float) {
        switch self {
        case .fp32: (23, -126, .greatestFiniteMagnitude)
        case .bf16: (7, -126, Float(bitPattern: 0x7F7F_0000))
        case .fp16: (10, -14, 65504)
        case .fp8: (3, -6, 448)
        }
    }

    /// `value` on the format's grid: to nearest (ties to even) when `uniform` is nil, else
    /// stochastically, up with probability equal to the distance from the value below over
    /// the spacing (so the expectation is `value`), using `uniform` ∈ (0, 1). Magnitudes
    /// beyond the largest finite value saturate; NaN stays NaN.
    public func round(_ value: Float, uniform: Float?) -> Float {
        guard value.isFinite, value != 0, self != .fp32 else { return value }
        let (mantissaBits, minExponent, largest) = grid
        let magnitude = min(abs(value), largest)
        let exponent = max(Int(magnitude.exponent), minExponent)
        let spacing = Float(sign: .plus, exponent: exponent - mantissaBits, significand: 1)
        let steps = magnitude / spacing  // exact: a power-of-two scaling
        var rounded: Float
        if let uniform {
            let below = steps.rounded(.down)
            rounded = (uniform < steps - below ? below + 1 : below) * spacing
        } else {
            rounded = steps.rounded(.toNearestOrEven) * spacing
        }
        rounded = min(rounded, largest)
        return value < 0 ? -rounded : rounded
    }

    /// e4m3 (the OCP "FN" variant: no infinities, 0x7F/0xFF NaN) bits of a value already on
    /// the grid; infinities, which the format lacks, become NaN.
    public static func e4m3Bits(_ value: Float) -> UInt8 {
        if !value.isFinite { return value.sign == .minus && !value.isNaN ? 0xFF : 0x7F }
        let sign: UInt8 = value.sign == .minus ? 0x80 : 0
        let magnitude = abs(value)
        if magnitude < 0x1p-6 { return sign | UInt8(magnitude * 512) }  // subnormal: multiples of 2⁻⁹
        let exponent = Int(magnitude.exponent)
        let mantissa = UInt8((magnitude / Float(sign: .plus, exponent: exponent, significand: 1) - 1) * 8)
        return sign | UInt8(exponent + 7) << 3 | mantissa
    }

    /// The value of e4m3 bits.
    public static func e4m3Value(_ bits: UInt8) -> Float {
        let magnitude: Float
        let exponent = Int(bits >> 3 & 0xF), mantissa = Float(bits & 7)
        if bits & 0x7F == 0x7F { return .nan }
        if exponent == 0 {
            magnitude = mantissa / 512
        } else {
            magnitude = (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
        }
        return bits & 0x80 != 0 ? -magnitude : magnitude
    }
}
