import Foundation
import Synchronization
import Testing
import ZOCore
import ZOCPU
import ZODistributed
import ZOModels
import ZOOffload
import ZOOptimizers
import ZOTasks
import ZOTraining

/// Distributed ZO with ranks as threads (`InProcessCommunicator`; the MPI path runs the same
/// code under `mpirun` in scripts/check-mpi.sh): data-, direction- and 2-D-parallel runs equal
/// the one-process run bit for bit — losses, coefficients, final weights —, offloaded ranks
/// too; a corrupted replica is named; a silent rank is named after the timeout.
@Suite struct DistributedTests {
    /// 12 random token sequences of 3–14 tokens (lengths differ, so shards pad differently).
    static func task(vocabulary: Int) -> LMTrainingTask {
        var generator = SplitMix64(seed: 5)
        let sequences = (0..<12).map { i in (0..<(3 + (i * 7) % 12)).map { _ in Int(generator.next() % UInt64(vocabulary)) } }
        return LMTrainingTask(train: sequences, heldOut: Array(sequences.prefix(3)))
    }

    /// The same examples as a choice task (2 or 3 candidates) and as a QA task (answer tokens).
    static func tasks(vocabulary: Int) -> [(name: String, task: any TrainingTask)] {
        let lm = task(vocabulary: vocabulary)
        let choice = lm.train.enumerated().map { i, ids in
            ChoiceExample(prompt: Array(ids.dropLast()), candidates: (0..<(2 + i % 2)).map { [($0 * 7 + i) % vocabulary] }, label: i % 2)
        }
        let qa = lm.train.map { ids in QAExample(prompt: Array(ids.prefix(ids.count / 2 + 1)), target: Array(ids.dropFirst(ids.count / 2 + 1)),
                                                 answers: []) }
        return [("lm", lm), ("choice", ChoiceTrainingTask(train: choice, heldOut: [])),
                ("qa", QATrainingTask(train: qa, heldOut: [], codec: TestCodec()))]
    }

    static let population = MeZOOptions(eps: 1e-2, weightDecay: 0.1, perturbation: .rademacher, population: .fzoo(queries: 3))
    static let mezo = MeZOOptions(eps: 1e-2, q: 2)

    /// What a rank's run produced: every step's losses and coefficients, and the final weights, as bits.
    struct Outcome: Equatable {
        var steps: [UInt64] = []
        var weights: [UInt32] = []
        var tokens: [Int] = []
    }

    /// A run of 5 steps (batch 6, with replica checks every 2 steps) on `rank` of `group`, or alone.
    /// With `firstOrder`, the deepest block trains first-order (AdamW).
    static func run(_ fixture: String, options: MeZOOptions, offload: Bool = false, firstOrder: FirstOrderOptions? = nil,
                    task name: String = "lm", group: ProcessGroup? = nil) throws -> Outcome {
        let model = try OffloadTests.model(fixture, layers: 3), backend = try CPUBackend(budget: 64 << 20, threads: 1)
        let tail = try firstOrder.map { _ in try FirstOrderTail(model: model, backend: backend, firstBlock: 2) }
        let runner: any ModelRunner = offload
            ? try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 2, firstOrderBlocks: tail == nil ? 0 : 1), tail: tail,
                                  adapter: options.adapterFactory)
            : try ResidentRunner(model: model, backend: backend, tail: tail, adapter: options.adapterFactory)
        let training = TrainingOptions(steps: 5, batchSize: 6, schedule: LearningRateSchedule(base: 1e-2, shape: .constant, warmupSteps: 0,
                                                                                              totalSteps: 5),
                                       mezo: options, seed: 11, firstOrder: firstOrder)
        let optimizer = try firstOrder.map { try FirstOrderOptimizer(tail: tail!, rule: $0.rule, placement: .device) }
        let task = Self.tasks(vocabulary: model.vocabSize).first { $0.name == name }!.task
        let trainer = Trainer(runner: runner, task: task, options: training, firstOrder: optimizer, group: group)
        var outcome = Outcome()
        _ = try trainer.run { event in
            guard case .step(let step, _, let tokens, _) = event else { return }
            outcome.steps += [step.lossPlus.bitPattern, step.lossMinus.bitPattern] + step.projectedGradients.map(\.bitPattern)
            outcome.tokens.append(tokens)
        }
        try runner.copyParametersToHost()
        outcome.weights = model.groups.flatMap { group in (0..<group.layout.count).map { group.storage.floats[$0].bitPattern } }
        if let lora = runner.adapter as? LoRAState {
            outcome.weights += try lora.peftAdapter().pairs.flatMap { ($0.a + $0.b).map(\.bitPattern) }
        }
        return outcome
    }

    /// A LoRA run (a population, the model frozen) over data and direction ranks equals the
    /// one-process run bit for bit, its adapter included (the replica checks compare it).
    @Test(arguments: [("data", 2), ("directions", 2)])
    func loraRunsEqualOneProcessBitForBit(parallel: String, size: Int) throws {
        let options = MeZOOptions(eps: 1e-2, perturbation: .rademacher, population: .fzoo(queries: 3),
                                  lora: LoRAOptions(rank: 2, alpha: 4, targets: ["q_proj", "v_proj"], seed: 4))
        let alone = try Self.run("llama/llama-gqa-f32", options: options)
        let outcomes = Self.ranks(size) { rank, communicator in
            let group = try ProcessGroup(communicator: communicator, layout: try ParallelLayout.parse(parallel, ranks: size), timeout: 60,
                                         verifyEvery: 2)
            return try Self.run("llama/llama-gqa-f32", options: options, offload: rank % 2 == 1, group: group)
        }
        for (rank, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(let outcome): #expect(outcome == alone, "--parallel \(parallel), rank \(rank)")
            case .failure(let error): Issue.record("--parallel \(parallel), rank \(rank): \(error)")
            }
        }
    }

    /// Runs `body(rank, communicator)` on one thread per rank; returns the results by rank.
    static func ranks<T: Sendable>(_ size: Int, _ body: @escaping @Sendable (Int, InProcessCommunicator) throws -> T) -> [Result<T, any Error>] {
        let communicators = InProcessCommunicator.group(size: size)
        let results = Mutex<[Int: Result<T, any Error>]>([:])
        let threads = (0..<size).map { rank in
            Thread {
                let result = Result { try body(rank, communicators[rank]) }
                results.withLock { $0[rank] = result }
            }
        }
        threads.forEach { $0.stackSize = 8 << 20; $0.start() }
        while results.withLock({ $0.count }) < size { usleep(1000) }
        return results.withLock { dictionary in (0..<size).map { dictionary[$0]! } }
    }

    @Test(arguments: [("data", 2), ("data", 3), ("directions", 2), ("data=2,directions=2", 4)])
    func distributedRunsEqualOneProcessBitForBit(parallel: String, size: Int) throws {
        for fixture in ["llama/llama-gqa-f32", "opt/opt-tiny-f32"] {
            for options in [Self.population, Self.mezo] {
                let alone = try Self.run(fixture, options: options)
                let outcomes = Self.ranks(size) { rank, communicator in
                    let group = try ProcessGroup(communicator: communicator, layout: try ParallelLayout.parse(parallel, ranks: size),
                                                 timeout: 60, verifyEvery: 2)
                    return try Self.run(fixture, options: options, offload: rank % 2 == 1, group: group)
                }
                for (rank, outcome) in outcomes.enumerated() {
                    let label = "\(fixture), \(options.estimatorSummary), --parallel \(parallel), rank \(rank)"
                    switch outcome {
                    case .success(let outcome):
                        let steps = zip(outcome.steps, alone.steps).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                        let weights = zip(outcome.weights, alone.weights).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                        #expect(steps == nil && outcome.steps.count == alone.steps.count, "\(label): losses and coefficients differ at \(steps ?? -1)")
                        #expect(weights == nil && outcome.weights.count == alone.weights.count, "\(label): final weights differ at \(weights ?? -1)")
                        #expect(outcome.tokens == alone.tokens, "\(label): tokens of the whole batch")
                    case .failure(let error): Issue.record("\(label): \(error)")
                    }
                }
            }
        }
    }

    /// Every task's loss splits over data shards: choice (cross-entropy over candidates) and QA
    /// (answer tokens) runs on a 2 × 2 grid equal the one-process run bit for bit.
    @Test(arguments: ["choice", "qa"])
    func everyTaskSplits(task: String) throws {
        let alone = try Self.run("llama/llama-gqa-f32", options: Self.population, task: task)
        let outcomes = Self.ranks(4) { rank, communicator in
            let group = try ProcessGroup(communicator: communicator, layout: ParallelLayout(dataRanks: 2, directionRanks: 2), timeout: 60,
                                         verifyEvery: 2)
            return try Self.run("llama/llama-gqa-f32", options: Self.population, task: task, group: group)
        }
        for (rank, outcome) in outcomes.enumerated() {
            #expect(try outcome.get() == alone, "\(task): rank \(rank)")
        }
    }

    /// A hybrid run's first-order gradients are summed over the ranks (in rank order): every
    /// rank ends with the same bits, and with the one-process run's weights up to the rounding of
    /// summing per-shard gradients (relative 1e-3 of the largest change is a wrong sum's size).
    @Test(arguments: [("data", 2, true), ("directions", 2, true), ("data", 3, false)])
    func hybridRanksSumTheirFirstOrderGradients(parallel: String, size: Int, zeroOrder: Bool) throws {
        let fixture = "llama/llama-gqa-f32"
        let firstOrder = FirstOrderOptions(blocks: 1, zeroOrder: zeroOrder, rule: .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
                                                                                          weightDecay: 0.01), learningRate: 1e-2)
        let alone = try Self.run(fixture, options: Self.mezo, firstOrder: firstOrder)
        let base = try Self.run(fixture, options: Self.mezo, firstOrder: FirstOrderOptions(blocks: 1, zeroOrder: false, rule: .sgd(momentum: 0, weightDecay: 0),
                                                                                            learningRate: 0))
        let outcomes = Self.ranks(size) { rank, communicator in
            let group = try ProcessGroup(communicator: communicator, layout: try ParallelLayout.parse(parallel, ranks: size), timeout: 60,
                                         verifyEvery: 2)
            return try Self.run(fixture, options: Self.mezo, offload: rank == 1, firstOrder: firstOrder, group: group)
        }
        let weights = try outcomes.map { try $0.get().weights }
        #expect(weights.allSatisfy { $0 == weights[0] }, "--parallel \(parallel): replicas differ")
        let moved = zip(alone.weights, base.weights).map { abs(Float(bitPattern: $0) - Float(bitPattern: $1)) }.max()!
        let error = zip(weights[0], alone.weights).map { abs(Float(bitPattern: $0) - Float(bitPattern: $1)) }.max()!
        #expect(moved > 0 && error <= 1e-3 * moved, "--parallel \(parallel): \(error) from one process's weights, which moved \(moved)")
    }

    @Test func aCorruptedReplicaIsNamed() throws {
        let outcomes = Self.ranks(2) { rank, communicator in
            let group = try ProcessGroup(communicator: communicator, layout: ParallelLayout(dataRanks: 2, directionRanks: 1), timeout: 60,
                                         verifyEvery: 2)
            if rank == 1 { group.corruptBeforeCheck = 4 }
            return try Self.run("llama/llama-gqa-f32", options: Self.mezo, group: group)
        }
        for outcome in outcomes {
            guard case .failure(let error) = outcome, case DistributedError.replicasDiffer(let step, let tensor, let ranks) = error else {
                Issue.record("expected the replica check to fail, got \(outcome)")
                continue
            }
            #expect(step == 4 && ranks == [1] && tensor.hasPrefix("block 1/"), "\(error)")
        }
    }

    @Test func aSilentRankIsNamedAfterTheTimeout() throws {
        let outcomes = Self.ranks(3) { rank, communicator -> [[UInt8]] in
            guard rank != 2 else { return [] }  // rank 2 never takes part
            return try communicator.allGather([UInt8(rank)], sizes: [1, 1, 1], timeout: 0.5, during: "a test")
        }
        for rank in 0..<2 {
            guard case .failure(DistributedError.rankTimeout(let who, let silent, let seconds, _)) = outcomes[rank] else {
                Issue.record("rank \(rank): expected a timeout, got \(outcomes[rank])")
                continue
            }
            #expect(who == rank && silent == [2] && seconds >= 0.5 && seconds < 5)
        }
    }

    @Test func layoutsParseAndRefuseWhatDoesNotFit() throws {
        #expect(try ParallelLayout.parse("data", ranks: 4) == ParallelLayout(dataRanks: 4, directionRanks: 1))
        #expect(try ParallelLayout.parse("directions", ranks: 3) == ParallelLayout(dataRanks: 1, directionRanks: 3))
        #expect(try ParallelLayout.parse("data,directions", ranks: 6) == ParallelLayout(dataRanks: 3, directionRanks: 2))
        #expect(try ParallelLayout.parse("data=2,directions", ranks: 6) == ParallelLayout(dataRanks: 2, directionRanks: 3))
        #expect(throws: DistributedError.self) { try ParallelLayout.parse("data=2,directions=2", ranks: 3) }
        #expect(throws: DistributedError.self) { try ParallelLayout.parse("tensors", ranks: 2) }
        #expect(throws: DistributedError.self) { try ParallelLayout(dataRanks: 4, directionRanks: 1).check(batchSize: 6, streams: 2) }
        #expect(throws: DistributedError.self) { try ParallelLayout(dataRanks: 1, directionRanks: 3).check(batchSize: 6, streams: 2) }
        let grid = ParallelLayout(dataRanks: 2, directionRanks: 2)
        #expect(grid.shard([5, 6, 7, 8], rank: 3) == [7, 8] && grid.streams(of: 5, group: 1) == 2..<5)
    }
}
