import ArgumentParser
import ZOCore
import ZODistributed
import ZOTraining
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// How `zotune train` runs as one rank of an `mpirun` or `srun` launch.
struct ParallelOptions: ParsableArguments {
    @Option(help: "Under mpirun or srun: how the ranks share each step: data (the batch split), directions (the forward passes of a step split), data,directions, or data=A,directions=M. Default: data.")
    var parallel: String?

    @Option(name: .customLong("verify-every"), help: "Under mpirun or srun: compare every rank's parameters every N steps, besides before the first and after the last (0: only those).")
    var verifyEvery = 50

    @Option(name: .customLong("rank-timeout"), help: "Under mpirun or srun: seconds to wait for another rank's part of a step before stopping with its name.")
    var rankTimeout: Double = 300

    func validate() throws {
        guard verifyEvery >= 0, rankTimeout > 0 else { throw ValidationError("--verify-every must be ≥ 0 and --rank-timeout > 0") }
    }

    /// This process's rank of a launch of several, with MPI started; nil for a process alone (a
    /// launch of one rank included). Refuses --parallel without a launch of several.
    func launch() throws -> DistributedLaunch? {
        let environment = LaunchEnvironment.detect(ProcessInfo.processInfo.environment)
        guard let environment, environment.size > 1 else {
            if let parallel { throw ValidationError("--parallel \(parallel) needs several ranks: run under mpirun -np K or srun") }
            return nil
        }
        let communicator = try MPICommunicator(library: try MPILibrary.shared.get())
        guard communicator.size == environment.size, communicator.rank == environment.rank else {
            throw DistributedError.mpi("\(environment.launcher) says rank \(environment.rank) of \(environment.size), MPI says "
                                       + "\(communicator.rank) of \(communicator.size) (a different MPI than the launcher's?)")
        }
        // Fault injection for the tests: ZOTUNE_FAULT_RANK=RANK:STEP:kill|hang (see `injectFault`).
        let fault = ProcessInfo.processInfo.environment["ZOTUNE_FAULT_RANK"]?.split(separator: ":")
        let injected = fault.flatMap { parts -> (step: Int, signal: Int32)? in
            guard parts.count == 3, Int(parts[0]) == communicator.rank, let step = Int(parts[1]) else { return nil }
            return (step, parts[2] == "hang" ? SIGSTOP : SIGKILL)
        }
        return DistributedLaunch(environment: environment, communicator: communicator, fault: injected)
    }

    /// The launch's group for a run of `batchSize` examples and `streams` forward passes a step.
    func group(_ launch: DistributedLaunch, batchSize: Int, streams: Int) throws -> ProcessGroup {
        let layout = try ParallelLayout.parse(parallel ?? "data", ranks: launch.communicator.size)
        try layout.check(batchSize: batchSize, streams: streams)
        let group = try ProcessGroup(communicator: launch.communicator, layout: layout, timeout: rankTimeout, verifyEvery: verifyEvery)
        // Fault injection for the tests: ZOTUNE_FAULT_REPLICA=RANK:STEP flips a bit of that rank's copy before that check.
        if let fault = ProcessInfo.processInfo.environment["ZOTUNE_FAULT_REPLICA"]?.split(separator: ":").compactMap({ Int($0) }),
           fault.count == 2, fault[0] == group.rank {
            group.corruptBeforeCheck = fault[1]
        }
        return group
    }
}

/// A rank of a launch with MPI started.
struct DistributedLaunch {
    let environment: LaunchEnvironment
    let communicator: MPICommunicator
    /// The step after which this rank ends itself with `signal` (fault injection for the tests).
    let fault: (step: Int, signal: Int32)?

    var rank: Int { communicator.rank }

    /// Runs `body`; an error is reported with this rank's number and ends every rank (MPI_Abort),
    /// so that no rank waits for one that has stopped. MPI is finalized after a clean end.
    func run(_ body: () throws -> Void) -> Never {
        do {
            try body()
        } catch {
            let message = Array("\nzotune: rank \(rank) of \(communicator.size): error: \(error)\n".utf8)
            _ = message.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            communicator.abort(code: 1)
        }
        communicator.finish()
        endProcess(0)
    }

    /// Fault injection for the tests: ZOTUNE_FAULT_RANK=RANK:STEP:kill ends that rank with
    /// SIGKILL after that step, …:hang stops it (SIGSTOP), as a crash or a hung node would.
    func injectFault(afterStep step: Int) {
        if let fault, fault.step == step { raise(fault.signal) }
    }

    /// Ranks other than 0 print nothing but errors: their standard output goes to /dev/null.
    func silenceUnlessWriter() {
        guard rank != 0 else { return }
        let null = open("/dev/null", O_WRONLY)
        if null >= 0 { dup2(null, STDOUT_FILENO) }
    }

    /// CPU threads for this rank: the cores shared among this node's ranks, unless given.
    func threads(_ given: Int?) -> Int {
        given ?? max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)) / max(1, environment.localSize))
    }
}

extension TrainCommand {
    /// What every rank must share, compared with rank 0's before training (the weights are
    /// compared by the first replica check): the binary, the model's configuration, the data,
    /// the options and the layout.
    func agreedFacts(options: TrainingOptions, modelPath: String, layout: ParallelLayout) throws -> [(name: String, value: String)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let configuration = FileSystem.isFolder(modelPath) == true ? modelPath + "/config.json" : modelPath
        return [("binary", try fileDigest("/proc/self/exe")),
                ("model configuration", FileSystem.isFolder(configuration) == nil ? "none" : try fileDigest(configuration)),
                ("tokenizer", modelOptions.tokenizer ?? "the model's"),
                ("task", taskOptions.task),
                ("training data", try taskOptions.data.map { try fileDigest($0) } ?? "built in"),
                ("evaluation data", try taskOptions.evalData.map { try fileDigest($0) } ?? "built in"),
                ("options", String(decoding: try encoder.encode(options), as: UTF8.self)),
                ("layout", layout.description),
                ("replica checks", "every \(parallelOptions.verifyEvery) steps")]
    }
}

/// The sha256 of a file, and its size.
func fileDigest(_ path: String) throws -> String {
    let file = try ReadOnlyFile(path: path)
    var hasher = SHA256Hasher()
    try hasher.update(file: file)
    return TextFormat.hex(hasher.finalize()) + " (\(file.byteCount) bytes)"
}
