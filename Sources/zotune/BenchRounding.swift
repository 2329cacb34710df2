import ArgumentParser
import ZOCore
import ZOCPU

/// How much of a small ZO update survives a low-bit write-back, with and without stochastic
/// rounding.
struct BenchRounding: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rounding",
        abstract: "Measure how much of an update θ += s·z survives encoding θ in each link format, rounding to nearest or stochastically, and print JSON.",
        discussion: """
            Weights are N(0, --weight-std) already on the format's grid; z is Gaussian. Survival is Σ Δactual·Δ / Σ Δ²: 1 when the \
            update arrives whole (in expectation), 0 when it is rounded away.
            """
    )

    @Option(help: "Parameters measured.")
    var elements = 1_000_000

    @Option(name: .customLong("weight-std"), help: "Standard deviation of the weights.")
    var weightStd: Float = 0.02

    @Option(help: "Update scales s to measure (comma-separated).")
    var scales = "1e-6,1e-5,1e-4"

    @OptionGroup var compute: ComputeOptions

    struct Report: Encodable {
        let bench = "rounding"
        let format: LinkFormat
        let rounding: String
        let update_scale: Float
        let weight_std: Float
        let elements: Int
        let survival: Double
    }

    func run() throws {
        let backend = try CPUBackend(budget: elements * 16 + (1 << 20), threads: compute.threads)
        let weights = try backend.allocate(elements * 4, label: "weights")
        let encoded = try backend.allocate(elements * 4 + 4096, label: "encoded")
        let tensor = [PerturbedTensor(offset: 0, count: elements, id: 0, decays: false)]
        for format in LinkFormat.allCases where format != .fp32 {
            for scale in scales.split(separator: ",").compactMap({ Float($0) }) {
                for stochastic in [false, true] {
                    // θ = N(0, std) on the grid; then θ + s·z written back through the format.
                    backend.perturb(weights, tensors: tensor, terms: [PerturbationTerm(seed: 1, coefficient: weightStd)], decayFactor: 0,
                                    kind: .gaussian)
                    backend.encode(weights, count: elements, format: format, stochasticSeed: nil, out: encoded)
                    backend.decode(encoded, format: format, count: elements, out: weights)
                    let before: [Float] = try backend.read(weights, count: elements)
                    backend.perturb(weights, tensors: tensor, terms: [PerturbationTerm(seed: 2, coefficient: scale)], decayFactor: 1,
                                    kind: .gaussian)
                    let intended: [Float] = try backend.read(weights, count: elements)
                    backend.encode(weights, count: elements, format: format, stochasticSeed: stochastic ? 3 : nil, out: encoded)
                    backend.decode(encoded, format: format, count: elements, out: weights)
                    let after: [Float] = try backend.read(weights, count: elements)
                    var dot = 0.0, norm = 0.0
                    for i in 0..<elements {
                        let delta = Double(intended[i]) - Double(before[i])
                        dot += (Double(after[i]) - Double(before[i])) * delta
                        norm += delta * delta
                    }
                    try printJSONLine(Report(format: format, rounding: stochastic ? "stochastic" : "nearest", update_scale: scale,
                                             weight_std: weightStd, elements: elements, survival: dot / norm))
                }
            }
        }
    }
}
