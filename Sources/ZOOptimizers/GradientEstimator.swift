/// One direction of a stream's offset from θ: `multiple`·ε along the step's direction
/// `direction` (z_j, the stream of the step's j-th seed).
public struct StreamOffset: Sendable, Equatable {
    public let direction: Int
    public let multiple: Float

    public init(direction: Int, multiple: Float) {
        self.direction = direction
        self.multiple = multiple
    }
}

/// How a ZO step estimates the gradient from losses alone: the models it evaluates (streams,
/// each θ plus an offset along the step's random directions) and the coefficients it makes of
/// their losses. An estimator knows nothing of where the parameters live or how passes are
/// fused; `MeZO` drives it over any `ModelRunner`.
///
/// The update of a step is θ ← θ − (lr/D)·Σ_j g_j·z_j for its D directions.
public protocol GradientEstimator: Sendable {
    /// D: directions drawn per step.
    var directions: Int { get }
    /// Every stream's offset from θ, in evaluation order (empty: θ itself).
    var streams: [[StreamOffset]] { get }
    /// g_j per direction from the streams' losses (same order as `streams`); not finite when
    /// a loss is not.
    func coefficients(losses: [Double], eps: Float) -> [Double]
    /// The losses a step reports: the mean over the streams perturbed "+" and over the others
    /// (the "−" streams, or the unperturbed one).
    func reportedLosses(_ losses: [Double]) -> (plus: Double, minus: Double)
}

/// MeZO's two-point (SPSA) estimator: per direction z_j the losses at θ ± εz_j, and
/// g_j = (L+ − L−) / 2ε; q directions are averaged.
public struct TwoPointEstimator: GradientEstimator {
    public let directions: Int

    public init(directions: Int) {
        precondition(directions >= 1)
        self.directions = directions
    }

    public var streams: [[StreamOffset]] {
        (0..<directions).flatMap { [[StreamOffset(direction: $0, multiple: 1)], [StreamOffset(direction: $0, multiple: -1)]] }
    }

    public func coefficients(losses: [Double], eps: Float) -> [Double] {
        (0..<directions).map { (losses[2 * $0] - losses[2 * $0 + 1]) / (2 * Double(eps)) }
    }

    public func reportedLosses(_ losses: [Double]) -> (plus: Double, minus: Double) {
        var plus = 0.0, minus = 0.0
        for j in 0..<directions {
            plus += losses[2 * j] / Double(directions)
            minus += losses[2 * j + 1] / Double(directions)
        }
        return (plus, minus)
    }
}

/// The settings of a population estimator (see `PopulationEstimator`).
public struct PopulationOptions: Sendable, Codable, Equatable {
    /// How the losses' differences are scaled into coefficients.
    public enum Normalization: String, Sendable, Codable, CaseIterable {
        /// Divided by the spread (standard deviation) of the perturbed losses: FZOO's rule,
        /// scale-free, close to normalized SGD.
        case std
        /// Divided by ε (one-sided) or 2ε (two-sided): a finite-difference directional derivative.
        case none
    }

    /// N: perturbations per step.
    public var queries: Int
    /// One-sided: N streams θ + εu_i and the unperturbed θ (N + 1 forwards); else θ ± εu_i (2N).
    public var oneSided: Bool
    public var normalize: Normalization

    public init(queries: Int, oneSided: Bool, normalize: Normalization) {
        precondition(queries >= 1 && (queries >= 2 || !oneSided || normalize == .none), "a spread needs two perturbed losses")
        self.queries = queries
        self.oneSided = oneSided
        self.normalize = normalize
    }

    /// FZOO's rule (Dang et al., 2026): one-sided, normalized by the losses' spread.
    public static func fzoo(queries: Int) -> PopulationOptions {
        PopulationOptions(queries: queries, oneSided: true, normalize: .std)
    }
}

/// N perturbations per step, all evaluated in one sweep of the blocks:
/// - one-sided: L0 = L(θ) and L_i = L(θ + εu_i); g_i = (L_i − L0)/σ with σ the standard
///   deviation of the L_i (FZOO), or (L_i − L0)/ε;
/// - two-sided: L±_i = L(θ ± εu_i); g_i = (L+_i − L−_i)/2σ with σ over all 2N losses, or
///   (L+_i − L−_i)/2ε (MeZO with q = N).
/// A spread of zero (every loss the spread is taken over equal) gives g = 0; one-sided std
/// needs N ≥ 2.
public struct PopulationEstimator: GradientEstimator {
    public let options: PopulationOptions

    public init(_ options: PopulationOptions) { self.options = options }

    public var directions: Int { options.queries }

    public var streams: [[StreamOffset]] {
        let n = options.queries
        if options.oneSided { return [[]] + (0..<n).map { [StreamOffset(direction: $0, multiple: 1)] } }
        return TwoPointEstimator(directions: n).streams
    }

    public func coefficients(losses: [Double], eps: Float) -> [Double] {
        let n = options.queries, sides = options.oneSided ? 1.0 : 2.0
        let differences: [Double] = (0..<n).map { i -> Double in
            options.oneSided ? losses[i + 1] - losses[0] : losses[2 * i] - losses[2 * i + 1]
        }
        let spread: Double
        switch options.normalize {
        case .none: spread = Double(eps)
        case .std: spread = Self.standardDeviation(options.oneSided ? Array(losses.dropFirst()) : losses)
        }
        return differences.map { spread == 0 ? 0 : $0 / (sides * spread) }
    }

    public func reportedLosses(_ losses: [Double]) -> (plus: Double, minus: Double) {
        if !options.oneSided { return TwoPointEstimator(directions: options.queries).reportedLosses(losses) }
        let perturbed: Double = losses.dropFirst().reduce(0, +)
        return (perturbed / Double(options.queries), losses[0])
    }

    /// The sample standard deviation (n − 1 in the denominator; 0 for one value).
    public static func standardDeviation(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let mean = values.reduce(0, +) / Double(values.count)
        return (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
    }
}
