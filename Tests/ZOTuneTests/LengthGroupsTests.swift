import Testing
import ZOCore
import ZOModels

/// The padding planner: a partition of the batch in ascending length whose cost no other
/// split of the sorted order beats.
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
}
