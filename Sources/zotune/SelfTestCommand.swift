import ArgumentParser
import ZOAssets
import ZOCPU
import ZOModels
import ZOParity

/// `zotune selftest`: `BackendParity`'s checks of the chosen backend against the CPU.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check a backend against the CPU backend (bit-for-bit noise, perturbation and codecs; logits and ZO steps within a tolerance).",
        discussion: "For GPU machines, which have no Swift toolchain to run the test suite: `zotune selftest --backend cuda`.")

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Largest relative difference allowed for logits and losses.") var tolerance = 1e-3

    @Option(help: "Also compare MeZO steps of this model (a Hugging Face folder, a .gguf file or an asset id such as smollm2-135m), resident, on a batch of random tokens.")
    var model: String?

    @Option(help: "MeZO steps of --model.") var steps = 3

    func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be at least 1") }
    }

    func run() throws {
        let backend = try compute.makeBackend()
        let oracle = try CPUBackend(budget: 256 << 20, threads: compute.threads)
        print("checking \(backend.name) against \(oracle.name)")
        var results = BackendParity.run(backend, against: oracle, tolerance: tolerance)
        if let model {
            let path = try Assets().resolve(model)
            let outcome: BackendParity.Outcome
            do {
                let roomyOracle = try CPUBackend(threads: compute.threads)  // a real model needs more than the small models' 256 MiB
                outcome = try BackendParity.training(backend, roomyOracle, plan: nil, tolerance: tolerance, steps: steps, learningRate: 3e-5) {
                    let loaded = try ModelRegistry.load(path: path)
                    return (loaded, try BackendParity.randomBatch(for: loaded))
                }
            } catch {
                outcome = .failed("\(error)")
            }
            results.append(("\(model): \(steps) MeZO steps resident within \(tolerance)", outcome))
        }
        for (name, outcome) in results {
            switch outcome {
            case .passed(let measured): print("ok     \(name) (\(measured))")
            case .failed(let problem): print("FAILED \(name): \(problem)")
            }
        }
        let failures = results.filter { $0.outcome.problem != nil }.count
        guard failures == 0 else { throw ValidationError("\(failures) check(s) failed") }
        print("all checks passed")
    }
}
