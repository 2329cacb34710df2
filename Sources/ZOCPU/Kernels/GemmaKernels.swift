#if canImport(Glibc)
import Glibc
#endif

/// Kernels of the Gemma family: GeGLU with PyTorch's tanh-approximated GELU, and tanh soft-capping.

/// √(2/π) and the cubic coefficient of the tanh approximation of GELU.
private let geluBeta = Float(0.5 * 2.0.squareRoot() * 2 / Double.pi.squareRoot())
private let geluKappa: Float = 0.044715

/// out[j] = gelu_tanh(gate[j]) · up[j] over one row, in PyTorch's order of operations:
/// 0.5·x·(1 + tanh(β·(x + κ·x³))); gate is gateUp[0..<F], up is gateUp[F..<2F].
func gegluTanhRow(_ gateUp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ width: Int) {
    for j in 0..<width {
        let x = gateUp[j]
        let inner = geluBeta * (x + geluKappa * (x * x * x))
        out[j] = 0.5 * x * (1 + tanhf(inner)) * gateUp[width + j]
    }
}

/// GeGLU backward for one row, as PyTorch's GELU backward: with t = tanh(β·(x + κ·x³)),
/// gelu'(x) = 0.5·(1 + t) + 0.5·x·(1 − t²)·β·(1 + 3κ·x²); d gate = g·up·gelu'(gate),
/// d up = g·gelu(gate).
func gegluTanhBackwardRow(_ gateUp: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gradGateUp: UnsafeMutablePointer<Float>,
                          _ width: Int) {
    for j in 0..<width {
        let x = gateUp[j], up = gateUp[width + j], square = x * x
        let t = tanhf(geluBeta * (x + geluKappa * (square * x)))
        let left = 0.5 * x, right = 1 + t
        let derivative = 0.5 * right + left * (1 - t * t) * (geluBeta * (1 + 3 * geluKappa * square))
        gradGateUp[j] = g[j] * up * derivative
        gradGateUp[width + j] = g[j] * (left * right)
    }
}

/// x = cap · tanh(x / cap) (Hugging Face's order: divide, tanh, multiply).
@inline(__always)
func softcapped(_ x: Float, _ cap: Float) -> Float { tanhf(x / cap) * cap }
