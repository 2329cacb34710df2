#if canImport(Glibc)
import Glibc
#endif

/// The learning rate over a run: linear warm-up, then constant, linear decay or cosine decay
/// to zero at the last step.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public enum Shape: String, Sendable, Codable, CaseIterable { case constant, linear, cosine }

    public var base: Float
    public var shape: Shape
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(base: Float, shape: Shape = .constant, warmupSteps: Int = 0, totalSteps: Int) {
        self.base = base
        self.shape = shape
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The rate at step `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = Float(step - warmupSteps) / Float(span)
        switch shape {
        case .constant: return base
        case .linear: return base * max(0, 1 - progress)
        case .cosine: return base * 0.5 * (1 + cosf(Float.pi * min(1, progress)))
        }
    }
}
