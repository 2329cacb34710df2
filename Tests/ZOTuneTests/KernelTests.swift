import Foundation
import Testing
import ZOCore
import ZOCPU

/// CPU kernels against plain Double-precision references.
@Suite struct KernelTests {
    let backend: CPUBackend

    init() throws { backend = try CPUBackend(budget: 64 << 20, threads: 2) }

    func random(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float.random(in: -scale...scale, using: &rng) }
    }

    @Test(arguments: [1, 7, 8, 33, 768])
    func layerNorm(channels: Int) throws {
        let rows = 5
        let x = random(rows * channels, seed: 1, scale: 3), w = random(channels, seed: 2), b = random(channels, seed: 3)
        let dx = try backend.upload(x, label: "x"), dw = try backend.upload(w, label: "w"), db = try backend.upload(b, label: "b")
        let out = try backend.allocate(x.count * 4, label: "out")
        backend.layerNorm(x: dx, weight: dw, bias: db, out: out, rows: rows, channels: channels, eps: 1e-5)
        let got = try backend.read(out, count: x.count, as: Float.self)
        for r in 0..<rows {
            let row = x[r * channels..<(r + 1) * channels].map(Double.init)
            let mean = row.reduce(0, +) / Double(channels)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(channels)
            for j in 0..<channels {
                let expected = (row[j] - mean) / (variance + 1e-5).squareRoot() * Double(w[j]) + Double(b[j])
                #expect(abs(Double(got[r * channels + j]) - expected) < 1e-4)
            }
        }
    }

    @Test func crossEntropyAndArgmax() throws {
        let rows = 6, vocab = 1003
        let logits = random(rows * vocab, seed: 4, scale: 20)
        let targets: [Int32] = [0, 5, -1, 1002, 17, 999]
        let dl = try backend.upload(logits, label: "logits"), dt = try backend.upload(targets, label: "targets")
        let losses = try backend.allocate(rows * 4, label: "losses"), arg = try backend.allocate(rows * 4, label: "argmax")
        backend.crossEntropy(logits: dl, targets: dt, losses: losses, rows: rows, vocab: vocab)
        backend.argmax(logits: dl, out: arg, rows: rows, vocab: vocab)
        let got = try backend.read(losses, count: rows, as: Float.self)
        let best = try backend.read(arg, count: rows, as: Int32.self)
        for r in 0..<rows {
            let row = logits[r * vocab..<(r + 1) * vocab].map(Double.init)
            let top = row.max()!
            let lse = log(row.map { exp($0 - top) }.reduce(0, +)) + top
            let expected = targets[r] < 0 ? 0 : lse - row[Int(targets[r])]
            #expect(abs(Double(got[r]) - expected) < 1e-4 * max(1, expected))
            #expect(Int(best[r]) == row.firstIndex(of: top)!)
        }
    }

    @Test func attentionMatchesNaiveSoftmax() throws {
        let b = 2, t = 9, heads = 3, hs = 5, c = heads * hs
        let qkv = random(b * t * 3 * c, seed: 5, scale: 2)
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 1] + [1, 1, 1, 1, 1, 0, 0, 0, 0]
        let dq = try backend.upload(qkv, label: "qkv"), dm = try backend.upload(mask, label: "mask")
        let out = try backend.allocate(b * t * c * 4, label: "out")
        let scale = 1 / Float(hs).squareRoot()
        let shape = AttentionShape.fused(batch: b, tokens: t, heads: heads, kvHeads: heads, headSize: hs)
        backend.attention(q: dq, k: dq.floats(c, b * t * 3 * c - c), v: dq.floats(2 * c, b * t * 3 * c - 2 * c), keyMask: dm,
                          out: out, shape: shape)
        let got = try backend.read(out, count: b * t * c, as: Float.self)
        for bi in 0..<b {
            for h in 0..<heads {
                for i in 0..<t {
                    func at(_ s: Int, _ part: Int, _ d: Int) -> Double { Double(qkv[(bi * t + s) * 3 * c + part * c + h * hs + d]) }
                    let keys = (0...i).filter { mask[bi * t + $0] != 0 }
                    let scores = keys.map { s in (0..<hs).map { at(i, 0, $0) * at(s, 1, $0) }.reduce(0, +) * Double(scale) }
                    let top = scores.max()!
                    let weights = scores.map { exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for d in 0..<hs {
                        let expected = zip(keys, weights).map { s, w in w * at(s, 2, d) }.reduce(0, +) / total
                        #expect(abs(Double(got[(bi * t + i) * c + h * hs + d]) - expected) < 1e-5)
                    }
                }
            }
        }
    }

    @Test func linearWithBiasReluAndAccumulate() throws {
        let m = 7, n = 13, k = 11
        let x = random(m * k, seed: 6), w = random(n * k, seed: 7), bias = random(n, seed: 8), start = random(m * n, seed: 9)
        let dx = try backend.upload(x, label: "x"), dw = try backend.upload(w, label: "w"), db = try backend.upload(bias, label: "b")
        let relu = try backend.allocate(m * n * 4, label: "relu")
        let residual = try backend.upload(start, label: "residual")
        backend.linear(x: dx, weight: dw, bias: db, out: relu, m: m, n: n, k: k, activation: .relu, accumulate: false)
        backend.linear(x: dx, weight: dw, bias: db, out: residual, m: m, n: n, k: k, activation: .none, accumulate: true)
        let gotRelu = try backend.read(relu, count: m * n, as: Float.self)
        let gotResidual = try backend.read(residual, count: m * n, as: Float.self)
        for i in 0..<m {
            for j in 0..<n {
                let y = (0..<k).map { Double(x[i * k + $0]) * Double(w[j * k + $0]) }.reduce(0, +) + Double(bias[j])
                #expect(abs(Double(gotRelu[i * n + j]) - max(y, 0)) < 1e-5)
                #expect(abs(Double(gotResidual[i * n + j]) - (Double(start[i * n + j]) + y)) < 1e-5)
            }
        }
    }

    /// Gathering rows of a table perturbed on the fly equals gathering from a copy that a
    /// `perturb` pass changed, bit for bit, for rows that start mid-chunk (width 45).
    @Test(arguments: [PerturbationKind.gaussian, .rademacher])
    func perturbedGatherEqualsGatherAfterPerturb(kind: PerturbationKind) throws {
        let (rows, width) = (7, 45)
        var generator = SplitMix64(seed: 3)
        let values = (0..<rows * width).map { _ in Float(Int(generator.next() % 2001) - 1000) / 997 }
        let terms = [PerturbationTerm(seed: 11, coefficient: 0.25), PerturbationTerm(seed: 12, coefficient: -2e-3)]
        let table = try backend.upload(values, label: "table")
        let perturbed = try backend.upload(values, label: "perturbed table")
        backend.perturb(perturbed, tensors: [PerturbedTensor(offset: 0, count: rows * width, id: 9, decays: false)], terms: terms,
                        decayFactor: 1, kind: kind)
        let indices = try backend.upload([Int32](arrayLiteral: 6, 0, 3, 3, 5), label: "indices")
        for accumulate in [false, true] {
            let base = (0..<5 * width).map { Float($0) / 7 }
            let expected = try backend.upload(base, label: "expected")
            let actual = try backend.upload(base, label: "actual")
            backend.gatherRows(table: perturbed, width: width, indices: indices, count: 5, out: expected, accumulate: accumulate)
            backend.gatherRows(table: table, width: width, indices: indices, count: 5, out: actual, accumulate: accumulate,
                               perturbation: RowPerturbation(tensor: 9, terms: terms, kind: kind))
            let e: [Float] = try backend.read(expected, count: 5 * width), a: [Float] = try backend.read(actual, count: 5 * width)
            #expect(e.map(\.bitPattern) == a.map(\.bitPattern))
            #expect(e != base)
        }
        #expect(try backend.read(table, count: rows * width, as: Float.self) == values)
    }
}
