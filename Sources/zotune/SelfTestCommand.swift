import ArgumentParser
import ZOCPU
import ZOParity

/// `zotune selftest`: `BackendParity`'s checks of the chosen backend against the CPU.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check a backend against the CPU backend (bit-for-bit noise, perturbation and codecs; logits and ZO steps within a tolerance).",
        discussion: "For GPU machines, which have no Swift toolchain to run the test suite: `zotune selftest --backend cuda`.")

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Largest relative difference allowed for logits and losses.") var tolerance = 1e-3

    func run() throws {
        let backend = try compute.makeBackend()
        let oracle = try CPUBackend(budget: 256 << 20, threads: compute.threads)
        print("checking \(backend.name) against \(oracle.name)")
        let results = BackendParity.run(backend, against: oracle, tolerance: tolerance)
        for (name, problem) in results { print(problem.map { "FAILED \(name): \($0)" } ?? "ok     \(name)") }
        let failures = results.filter { $0.problem != nil }.count
        guard failures == 0 else { throw ValidationError("\(failures) check(s) failed") }
        print("all checks passed")
    }
}
