import ZOCore
import ZOModels

/// The device state of the low-rank estimator for the blocks a runner holds.
///
/// Per fused linear of each block (m weights W_i [out_i, in] stacked into [O, in]):
/// - `vt` [m·r, in]: V_iᵀ in rows i·r..<(i+1)·r, and `v` [m, in, r]: V_i (for folding);
/// - `a` [O, r]: the accumulated update A_i (ΔW_i = A_i V_iᵀ) in rows of W_i;
/// - `streams` [O, m·r] per stream s of a step: block-diagonal B_s with B_s,i = A_i + Σ_k c_k·U_k,i
///   at rows of W_i and columns i·r..<(i+1)·r, so that one pass adds
///   (x · vtᵀ) · B_sᵀ = Σ_i (x V_i)(A_i + Σ_k c_k U_k,i)ᵀ.
///
/// Stream s thus computes x (W + A Vᵀ + Σ_k c_k U_k Vᵀ)ᵀ without touching W (MeZO's two streams
/// have one term each, ±c); `fold` moves A Vᵀ into W. U_k,i is the Gaussian stream (seed k,
/// tensor id) — the stream full MeZO would use for W_i, which the low-rank run never uses
/// otherwise.
///
/// A runner holds it as its `LinearAdapter`; `MeZO` draws V, builds each step's B_s and
/// accumulates A.
// @unchecked Sendable: confined to the thread that drives training — `MeZO` prepares, updates
// and resamples the factors between the runner's passes, and the runner's linears read them
// during its passes, on that same thread; `LinearAdapter` is Sendable only because runners are.
public final class LowRankState: FoldingAdapter, @unchecked Sendable {
    public let options: LowRankOptions
    /// Blocks 0..<blockCount have factors.
    public let blockCount: Int
    private let backend: any Backend
    private var linears: [[Factors]] = []
    private var scratch: DeviceBuffer?
    private var scratchRows = 0

    /// One fused linear's factors and the tensors it covers.
    final class Factors {
        let linear: BlockLinear
        /// The weights: perturbation ids, rows and first row within the fused output.
        let parts: [(id: UInt32, rows: Int, firstRow: Int, offset: Int)]
        let vt, v, a, compact: DeviceBuffer
        /// B_s per stream, allocated as a step first needs them.
        var streams: [DeviceBuffer] = []

        init(linear: BlockLinear, parts: [(id: UInt32, rows: Int, firstRow: Int, offset: Int)], rank: Int, backend: any Backend,
             allocate: (Int, String) throws -> DeviceBuffer) throws {
            self.linear = linear
            self.parts = parts
            let m = parts.count, o = linear.outputs, k = linear.inputs
            vt = try allocate(m * rank * k, "low-rank Vᵀ")
            v = try allocate(m * k * rank, "low-rank V")
            a = try allocate(o * rank, "low-rank A")
            compact = try allocate(o * rank, "low-rank B (compact)")
        }

        /// The weights of the parts as `Backend.perturb` sweeps a buffer laid out [O, r] (A, B).
        func rowTensors(rank: Int, decays: Bool = false) -> [PerturbedTensor] {
            parts.map { PerturbedTensor(offset: $0.firstRow * rank, count: $0.rows * rank, id: $0.id, decays: decays) }
        }
    }

    /// Allocates zeroed factors for the `linears` of blocks 0..<blockCount of `model`.
    public init(model: any CausalLM, blockCount: Int, linears blockLinears: [BlockLinear], options: LowRankOptions,
                backend: any Backend) throws {
        self.options = options
        self.blockCount = blockCount
        self.backend = backend
        let ids = model.perturbedTensors
        var allocated: [DeviceBuffer] = []
        func allocate(_ floats: Int, _ label: String) throws -> DeviceBuffer {
            let buffer = try Self.zeros(floats, label: label, backend: backend)
            allocated.append(buffer)
            return buffer
        }
        do {
            for block in 0..<blockCount {
                let specs = model.blocks[block].layout.specs
                linears.append(try blockLinears.map { linear in
                    var firstRow = 0
                    let parts = linear.weightIndices(in: specs)
                        .map { i -> (id: UInt32, rows: Int, firstRow: Int, offset: Int) in
                            defer { firstRow += specs[i].shape[0] }
                            precondition(specs[i].shape.count == 2 && specs[i].shape[1] == linear.inputs, "a fused linear's weights share their input")
                            return (ids[block + 1][i].id, specs[i].shape[0], firstRow, specs[i].offset)
                        }
                    precondition(firstRow == linear.outputs, "the fused linear's weights cover its outputs")
                    return try Factors(linear: linear, parts: parts, rank: options.rank, backend: backend, allocate: allocate)
                })
            }
        } catch {
            // Everything allocated goes back here; `deinit` (which runs, self being fully
            // initialized) then finds no factors to free twice.
            allocated.forEach(backend.free)
            linears = []
            throw error
        }
    }

    deinit {
        for factors in linears.joined() {
            for buffer in [factors.vt, factors.v, factors.a, factors.compact] + factors.streams { backend.free(buffer) }
        }
        scratch.map(backend.free)
    }

    /// A device buffer of `floats` zeros (uploaded: the arena hands out memory as it was left).
    private static func zeros(_ floats: Int, label: String, backend: any Backend) throws -> DeviceBuffer {
        try backend.upload([Float](repeating: 0, count: floats), label: label)
    }

    /// The perturbation ids of every low-rank weight (full MeZO leaves them out).
    public var adaptedTensorIDs: Set<UInt32> { Set(linears.joined().flatMap { $0.parts.map(\.id) }) }

    private var rank: Int { options.rank }

    /// Makes room for passes of up to `rows` rows (the x·V products).
    public func reserve(rows: Int) throws {
        guard rows > scratchRows else { return }
        let width = linears.joined().map { $0.parts.count * rank }.max() ?? 0
        let buffer = try backend.allocate(max(1, rows * width) * 4, label: "low-rank x·V [R, m·r]")
        scratch.map(backend.free)
        scratch = buffer
        scratchRows = rows
    }

    /// Draws V for every weight from `seed` (A must be zero: fold first).
    public func resample(seed: UInt64) {
        for factors in linears.joined() {
            let k = factors.linear.inputs, count = rank * k
            let tensors = factors.parts.enumerated().map { i, part in PerturbedTensor(offset: i * count, count: count, id: part.id, decays: true) }
            // vt = 0·vt + z: part i's V_iᵀ [r, in] is its stream's first r·in values.
            backend.perturb(factors.vt, tensors: tensors, terms: [PerturbationTerm(seed: seed, coefficient: 1)], decayFactor: 0,
                            kind: .gaussian)
            // v: each V_i [in, r] by transposing V_iᵀ one column at a time.
            for i in factors.parts.indices {
                for j in 0..<rank {
                    backend.copyRows(source: factors.vt.floats((i * rank + j) * k, k), sourceStride: 1,
                                     destination: factors.v.floats(i * count + j, count - j), destinationStride: rank, rows: k, width: 1)
                }
            }
        }
    }

    /// Builds B_s = A + Σ_k c_k·U_k for every fused linear and each stream s, from the stream's
    /// terms (seed k and c_k); allocates the B_s a step with more streams than before needs.
    public func prepare(streams: [[PerturbationTerm]]) throws {
        for factors in linears.joined() {
            let m = factors.parts.count, o = factors.linear.outputs
            while factors.streams.count < streams.count {
                // Zeros: `prepare` writes only the diagonal blocks.
                factors.streams.append(try Self.zeros(o * m * rank, label: "low-rank B (stream \(factors.streams.count))", backend: backend))
            }
            for (target, terms) in zip(factors.streams, streams) {
                backend.copyRows(source: factors.a, sourceStride: 0, destination: factors.compact, destinationStride: 0, rows: 1, width: o * rank)
                backend.perturb(factors.compact, tensors: factors.rowTensors(rank: rank), terms: terms, decayFactor: 1, kind: .gaussian)
                for (i, part) in factors.parts.enumerated() {
                    backend.copyRows(source: factors.compact.floats(part.firstRow * rank, part.rows * rank), sourceStride: rank,
                                     destination: target.floats(part.firstRow * m * rank + i * rank, (part.rows - 1) * m * rank + rank),
                                     destinationStride: m * rank, rows: part.rows, width: rank)
                }
            }
        }
    }

    /// A ← A + Σ_j c_j·U_j: the accumulated update of a step (terms: the step's U seeds and
    /// their coefficients).
    public func update(_ terms: [PerturbationTerm]) {
        guard !terms.isEmpty else { return }
        for factors in linears.joined() {
            backend.perturb(factors.a, tensors: factors.rowTensors(rank: rank), terms: terms, decayFactor: 1, kind: .gaussian)
        }
    }

    /// Block `index`'s weights W_i += A_i V_iᵀ in `parameters` (its buffer), then A = 0.
    public func fold(block index: Int, into parameters: DeviceBuffer) {
        for factors in linears[index] {
            let k = factors.linear.inputs
            for (i, part) in factors.parts.enumerated() {
                // W_i [out_i, in] += A_i [out_i, r] · (V_i [in, r])ᵀ.
                backend.linear(x: factors.a.floats(part.firstRow * rank, part.rows * rank), weight: factors.v.floats(i * k * rank, k * rank),
                               bias: nil, out: parameters.floats(part.offset, part.rows * k), m: part.rows, n: k, k: rank,
                               activation: .none, accumulate: true)
            }
            backend.perturb(factors.a, tensors: factors.rowTensors(rank: rank, decays: true), terms: [], decayFactor: 0, kind: .gaussian)
        }
    }

    public func hook(streams: Range<Int>) -> any LinearHook { LowRankPass(state: self, streams: streams) }

    /// Nothing: plain passes come after `MeZO.flush`, which folds A Vᵀ into the weights.
    public func restingHook() -> (any LinearHook)? { nil }

    /// For the fused linear at `weightOffset` of block `index` and input x [R, in] whose rows are
    /// the streams' in equal parts (R = S·R_s): t = x · vtᵀ [R, m·r] in one product, then for
    /// each stream s, out[rows of s] (+)= t[rows of s] · B_sᵀ. Returns false (writing nothing)
    /// when the block or the linear has no factors.
    func add(block index: Int, weightOffset: Int, x: DeviceBuffer, out: DeviceBuffer, rows: Int, streams: Range<Int>,
             accumulate: Bool) -> Bool {
        guard index < blockCount, let factors = linears[index].first(where: { $0.linear.weightOffset == weightOffset }), let scratch else {
            return false
        }
        precondition(rows <= scratchRows, "reserve(rows:) first")
        precondition(rows % streams.count == 0, "the streams' rows come in equal parts")
        let width = factors.parts.count * rank, t = scratch.floats(0, rows * width)
        let o = factors.linear.outputs, part = rows / streams.count
        backend.linear(x: x, weight: factors.vt, bias: nil, out: t, m: rows, n: width, k: factors.linear.inputs, activation: .none,
                       accumulate: false)
        for (i, s) in streams.enumerated() {
            backend.linear(x: t.floats(i * part * width, part * width), weight: factors.streams[s], bias: nil,
                           out: out.floats(i * part * o, part * o), m: part, n: o, k: width, activation: .none, accumulate: accumulate)
        }
        return true
    }
}

/// The low-rank perturbation of consecutive streams, as a pass whose rows are theirs in equal
/// parts adds it: the state and the streams (whose B_s `prepare` built).
struct LowRankPass: LinearHook {
    let state: LowRankState
    let streams: Range<Int>

    func apply(block index: Int, weightOffset: Int, x: DeviceBuffer, out: DeviceBuffer, rows: Int, accumulate: Bool) -> Bool {
        state.add(block: index, weightOffset: weightOffset, x: x, out: out, rows: rows, streams: streams, accumulate: accumulate)
    }
}
