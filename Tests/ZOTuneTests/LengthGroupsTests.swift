import Testing
import ZOCore
import ZOCPU
import ZOModels

/// The padding planner: a partition of the batch in ascending length whose cost no other
/// split of the sorted order beats; and what makes any grouping (and any data-parallel split)
/// safe: a sequence's losses are the same bits whatever else is in its pass and however many
/// threads compute it.
@Suite struct LengthGroupsTests {
    /// Least Σ (members · longest + passCost) over every way of cutting the sorted lengths.
    static func bruteForceCost(_ sorted: [Int], passCost: Int) -> Int {
        guard !sorted.isEmpty else { return 0 }
        var best = Int.max
        for cuts in 0..<(1 << (sorted.count - 1)) {
            var cost = 0, start = 0
            for end in 1...sorted.count where end == sorted.count || cuts & (1 << (end - 1)) != 0 {
                cost += (end - start) * sorted[end - 1] + passCost
                start = end
            }
            best = min(best, cost)
        }
        return best
    }

    @Test func plansArePartitionsWithTheLeastCost() {
        var generator = SplitMix64(seed: 7)
        for trial in 0..<200 {
            let count = Int(generator.next() % 11)
            let lengths = (0..<count).map { _ in 1 + Int(generator.next() % 60) }
            let passCost = [0, 8, 32, 1000][trial % 4]
            let groups = LengthGroups.plan(lengths: lengths, passCost: passCost)
            #expect(groups.flatMap { $0 }.sorted() == Array(0..<count))
            let flat = groups.flatMap { $0 }.map { lengths[$0] }
            #expect(flat == flat.sorted())
            let cost = groups.reduce(0) { $0 + $1.count * lengths[$1.last!] + passCost }
            #expect(cost == Self.bruteForceCost(lengths.sorted(), passCost: passCost), "\(lengths) \(passCost)")
        }
        #expect(LengthGroups.plan(lengths: [5, 50, 6, 48], passCost: 10) == [[0, 2], [3, 1]])
        #expect(LengthGroups.plan(lengths: [5, 50, 6, 48], passCost: 1000) == [[0, 2, 3, 1]])
    }

    /// Every sequence of a batch of 6 (lengths 4–13) alone, beside another, and in the whole
    /// batch, on 1, 2 and 3 threads: the same token losses bit for bit (OpenBLAS would not give
    /// this: its kernels depend on the shape and on a row's place in a block). Not Phi-3 with
    /// LongRoPE: its rotary table depends on the pass's length by definition (long factors past
    /// original_max_position_embeddings, as in transformers).
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32", "llama/gemma2-f32", "llama/qwen2-window-f32", "llama/qwen3-f32"])
    func aSequenceComputesTheSameInAnyBatch(fixture: String) throws {
        let model = try OffloadTests.model(fixture, layers: 2)
        var generator = SplitMix64(seed: 9)
        let sequences = [9, 6, 13, 4, 9, 11].map { length in (0..<length).map { _ in Int(generator.next() % UInt64(model.vocabSize)) } }
        func losses(_ members: [Int], threads: Int) throws -> [[UInt32]] {
            let runner = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: threads))
            let result = try runner.forward(try model.makeBatch(members.map { sequences[$0] }))
            return members.indices.map { b in
                (0..<sequences[members[b]].count).map { result.tokenLosses[b * result.batch.tokens + $0].bitPattern }
            }
        }
        let whole = try losses(Array(sequences.indices), threads: 2)
        for threads in [1, 2, 3] {
            #expect(try losses(Array(sequences.indices), threads: threads) == whole, "\(fixture): the batch on \(threads) threads")
            for b in sequences.indices {
                #expect(try losses([b], threads: threads)[0] == whole[b], "\(fixture): sequence \(b) alone on \(threads) threads")
                #expect(try losses([(b + 1) % 6, b], threads: threads)[1] == whole[b], "\(fixture): sequence \(b) second of two")
            }
        }
    }
}
