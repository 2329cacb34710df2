import ZOCore
import ZOModels

/// The device state of a LoRA adapter for the blocks a runner holds, trained by ZO.
///
/// Per fused linear of a block whose weights W_i [out_i, in] (stacked into [O, in]) include m
/// targeted ones:
/// - `a` [m·r, in]: A_i in rows i·r..<(i+1)·r; `b` [Σ out_i, r]: the B_i one after the other;
/// - `rest` [O, m·r]: scale·B_i at the rows of W_i and columns i·r..<(i+1)·r, zero elsewhere, so
///   that one pass adds (x·aᵀ)·restᵀ = scale·Σ_i (x A_iᵀ) B_iᵀ at W_i's outputs;
/// - per stream s of a step, `streamA[s]` = A + Σ_k c_k·z_k and `streamB[s]` the block-diagonal
///   scale·(B + Σ_k c_k·z_k), z_k the noise stream (seed k) of the factor's own perturbation id
///   (numbered after the model's tensors).
///
/// The base never changes: the adapter holds every weight of the model out of full passes and
/// is not folded; evaluation and generation add `rest` (`restingHook`). `MeZO` builds each
/// step's streams and applies the updates to the factors of blocks 0..<zeroOrderBlocks; those
/// of the deeper blocks (a hybrid run's tail) always add `rest` and train first-order: the tail
/// backpropagates into them (`LinearBackwardHook`) and its optimizer updates them
/// (`firstOrderTensors`, then `refreshFirstOrder`).
// @unchecked Sendable: confined to the thread that drives training — `MeZO` prepares and
// updates the factors between the runner's passes, and the runner's linears read them during
// its passes, on that same thread; `LinearAdapter` is Sendable only because runners are.
public final class LoRAState: LinearAdapter, @unchecked Sendable {
    public let options: LoRAOptions
    /// Blocks 0..<zeroOrderBlocks train by ZO, the rest (a first-order tail's) first-order.
    public let zeroOrderBlocks: Int
    /// Every tensor id of the model: the frozen base, left out of every full pass.
    public let adaptedTensorIDs: Set<UInt32>
    let backend: any Backend
    private(set) var linears: [[Factors]] = []
    /// x·Aᵀ [R, m·r] of a pass (and, backpropagating, gradY·rest beside it).
    private(set) var scratch: DeviceBuffer?
    private(set) var scratchRows = 0
    /// dL/d(rest) [O, m·r] of the largest first-order linear (nil without first-order blocks).
    private(set) var backwardScratch: DeviceBuffer?

    /// One targeted weight of a fused linear.
    struct Part {
        /// The base's weight (`model.layers.0.self_attn.q_proj.weight`).
        let name: String
        /// out_i, and its first row in the fused output and in `b`.
        let rows: Int
        let firstRow: Int
        let bRow: Int
        /// The perturbation ids of A_i and B_i.
        let idA: UInt32
        let idB: UInt32
    }

    /// One fused linear's factors.
    final class Factors {
        let linear: BlockLinear
        let parts: [Part]
        let a, b, rest, compact: DeviceBuffer
        var streamA: [DeviceBuffer] = []
        var streamB: [DeviceBuffer] = []
        /// dL/dA and dL/dB (laid out as `a` and `b`) of a first-order block's factors.
        var gradients: (a: DeviceBuffer, b: DeviceBuffer)?

        init(linear: BlockLinear, parts: [Part], a: DeviceBuffer, b: DeviceBuffer, rest: DeviceBuffer, compact: DeviceBuffer) {
            (self.linear, self.parts, self.a, self.b, self.rest, self.compact) = (linear, parts, a, b, rest, compact)
        }

        var buffers: [DeviceBuffer] { [a, b, rest, compact] + streamA + streamB + (gradients.map { [$0.a, $0.b] } ?? []) }
        var bRows: Int { parts.reduce(0) { $0 + $1.rows } }

        /// A_i as `Backend.perturb` sweeps `a` (or a stream's copy).
        func aTensors(rank: Int) -> [PerturbedTensor] {
            parts.enumerated().map { i, part in
                PerturbedTensor(offset: i * rank * linear.inputs, count: rank * linear.inputs, id: part.idA, decays: true)
            }
        }

        /// B_i as `Backend.perturb` sweeps `b` (or `compact`).
        func bTensors(rank: Int) -> [PerturbedTensor] {
            parts.map { PerturbedTensor(offset: $0.bRow * rank, count: $0.rows * rank, id: $0.idB, decays: true) }
        }
    }

    /// A drawn from `options.seed` (uniform in ±1/√in, PEFT's Kaiming-uniform init) and B zero
    /// for every targeted weight of every block, the first `zeroOrderBlocks` trained by ZO (the
    /// rest get gradients); throws when the targets name no weight of the blocks' linears.
    public init(model: any CausalLM, zeroOrderBlocks: Int, options: LoRAOptions, backend: any Backend) throws {
        self.options = options
        self.zeroOrderBlocks = zeroOrderBlocks
        self.backend = backend
        let tensorCount = model.groups.reduce(0) { $0 + $1.layout.specs.count }
        adaptedTensorIDs = Set((0..<tensorCount).map(UInt32.init))
        var nextID = UInt32(tensorCount), allocated: [DeviceBuffer] = []
        func upload(_ values: [Float], _ label: String) throws -> DeviceBuffer {
            let buffer = try backend.upload(values, label: label)
            allocated.append(buffer)
            return buffer
        }
        let r = options.rank
        do {
            for block in model.blocks.indices {
                let specs = model.blocks[block].layout.specs
                linears.append(try model.blockLinears.compactMap { linear -> Factors? in
                    var firstRow = 0, bRow = 0, parts: [Part] = []
                    for i in linear.weightIndices(in: specs) {
                        defer { firstRow += specs[i].shape[0] }
                        guard options.adapts(specs[i].name) else { continue }
                        parts.append(Part(name: specs[i].name, rows: specs[i].shape[0], firstRow: firstRow, bRow: bRow, idA: nextID,
                                          idB: nextID + 1))
                        bRow += specs[i].shape[0]
                        nextID += 2
                    }
                    guard !parts.isEmpty else { return nil }
                    let k = linear.inputs, m = parts.count
                    let a = parts.flatMap { Self.initialA(seed: options.seed, id: $0.idA, count: r * k, inputs: k) }
                    let factors = Factors(linear: linear, parts: parts, a: try upload(a, "LoRA A"),
                                          b: try upload([Float](repeating: 0, count: bRow * r), "LoRA B"),
                                          rest: try upload([Float](repeating: 0, count: linear.outputs * m * r), "LoRA scale·B (block-diagonal)"),
                                          compact: try upload([Float](repeating: 0, count: bRow * r), "LoRA B (scratch)"))
                    if block >= zeroOrderBlocks {
                        factors.gradients = (try upload([Float](repeating: 0, count: m * r * k), "LoRA A's gradient"),
                                             try upload([Float](repeating: 0, count: bRow * r), "LoRA B's gradient"))
                    }
                    return factors
                })
            }
            let widest = linears[min(zeroOrderBlocks, linears.count)...].joined().map { $0.linear.outputs * $0.parts.count * r }.max()
            backwardScratch = try widest.map { try backend.allocate($0 * 4, label: "LoRA dL/d(scale·B) [O, m·r]") }
        } catch {
            allocated.forEach(backend.free)
            linears = []
            throw error
        }
        let adapted = linears.joined().flatMap { $0.parts.map(\.name) }
        let unmatched = options.targets == ["all-linear"] ? [] : options.targets.filter { target in
            !adapted.contains { LoRAOptions.matches($0, target: target) }
        }
        guard !unmatched.isEmpty || adapted.isEmpty else { return }
        allocated.forEach(backend.free)
        backwardScratch.map(backend.free)
        (linears, backwardScratch) = ([], nil)
        let names = Set(model.blocks.first.map { block in
            model.blockLinears.flatMap { $0.weightIndices(in: block.layout.specs) }.map { index -> String in
                let name = block.layout.specs[index].name
                return name.split(separator: ".").dropLast().last.map(String.init) ?? name
            }
        } ?? [])
        throw ModelError.adapter("the targets \((adapted.isEmpty ? options.targets : unmatched).joined(separator: ",")) name no linear "
                                 + "of the model's blocks (its linears: \(names.sorted().joined(separator: ", ")), or all-linear)")
    }

    deinit {
        for buffer in linears.joined().flatMap(\.buffers) { backend.free(buffer) }
        scratch.map(backend.free)
        backwardScratch.map(backend.free)
    }

    /// `count` values uniform in [−1/√in, 1/√in) from (seed, id).
    static func initialA(seed: UInt64, id: UInt32, count: Int, inputs: Int) -> [Float] {
        var generator = SplitMix64(seed: seed ^ (UInt64(id) &* 0xD6E8_FEB8_6659_FD93))
        let bound = 1 / Float(inputs).squareRoot()
        return (0..<count).map { _ in (Float(generator.next() >> 40) / Float(1 << 24) * 2 - 1) * bound }
    }

    var rank: Int { options.rank }

    /// The factors of block `index`'s fused linear at `weightOffset`, if it has any.
    func factors(block index: Int, weightOffset: Int) -> Factors? {
        index < linears.count ? linears[index].first { $0.linear.weightOffset == weightOffset } : nil
    }

    /// The trained values: r·(in + out) per adapted weight.
    public var parameterCount: Int {
        linears.joined().reduce(0) { $0 + $1.parts.count * rank * $1.linear.inputs + $1.bRows * rank }
    }

    /// The weights the adapter changes (the base's names), in block order.
    public var adaptedWeights: [String] { linears.joined().flatMap { $0.parts.map(\.name) } }

    public func reserve(rows: Int) throws {
        guard rows > scratchRows else { return }
        // Twice over with first-order blocks: their backward keeps x·Aᵀ and gradY·rest.
        let width = linears.joined().map { $0.parts.count * rank }.max() ?? 0, copies = backwardScratch == nil ? 1 : 2
        let buffer = try backend.allocate(max(1, copies * rows * width) * 4, label: "LoRA x·Aᵀ [R, m·r]")
        scratch.map(backend.free)
        scratch = buffer
        scratchRows = rows
    }

    /// Builds every stream's A + Σ c_k z_k and scale·(B + Σ c_k z_k) from its terms (seed k and
    /// c_k); allocates the buffers a step with more streams than before needs.
    public func prepare(streams: [[PerturbationTerm]], kind: PerturbationKind) throws {
        for factors in zeroOrderFactors {
            let m = factors.parts.count, o = factors.linear.outputs, k = factors.linear.inputs
            while factors.streamA.count < streams.count {
                let s = factors.streamA.count
                let a = try backend.allocate(m * rank * k * 4, label: "LoRA A (stream \(s))")
                // Zeros: only the diagonal blocks are written.
                let b: DeviceBuffer
                do { b = try backend.upload([Float](repeating: 0, count: o * m * rank), label: "LoRA B (stream \(s))") } catch {
                    backend.free(a)
                    throw error
                }
                factors.streamA.append(a)
                factors.streamB.append(b)
            }
            for (s, terms) in streams.enumerated() {
                backend.copyRows(source: factors.a, sourceStride: 0, destination: factors.streamA[s], destinationStride: 0, rows: 1,
                                 width: m * rank * k)
                backend.perturb(factors.streamA[s], tensors: factors.aTensors(rank: rank), terms: terms, decayFactor: 1, kind: kind)
                scaleB(factors, terms: terms, kind: kind, into: factors.streamB[s])
            }
        }
    }

    /// A ← a·A + Σ_k c_k z_k and B likewise (a: the decay factor), then the resting B.
    public func update(_ terms: [PerturbationTerm], decayFactor: Float, kind: PerturbationKind) {
        guard !terms.isEmpty || decayFactor != 1 else { return }
        for factors in zeroOrderFactors {
            backend.perturb(factors.a, tensors: factors.aTensors(rank: rank), terms: terms, decayFactor: decayFactor, kind: kind)
            backend.perturb(factors.b, tensors: factors.bTensors(rank: rank), terms: terms, decayFactor: decayFactor, kind: kind)
            refreshRest(factors)
        }
    }

    /// `rest` ← the block-diagonal scale·B.
    func refreshRest(_ factors: Factors) {
        scaleB(factors, terms: [], kind: .gaussian, into: factors.rest)
    }

    /// target's diagonal blocks ← scale·(B_i + Σ_k c_k z_k), through `compact`.
    private func scaleB(_ factors: Factors, terms: [PerturbationTerm], kind: PerturbationKind, into target: DeviceBuffer) {
        let m = factors.parts.count, count = factors.bRows * rank
        backend.copyRows(source: factors.b, sourceStride: 0, destination: factors.compact, destinationStride: 0, rows: 1, width: count)
        if !terms.isEmpty {
            backend.perturb(factors.compact, tensors: factors.bTensors(rank: rank), terms: terms, decayFactor: 1, kind: kind)
        }
        backend.scale(factors.compact, count: count, by: options.scale)
        for (i, part) in factors.parts.enumerated() {
            backend.copyRows(source: factors.compact.floats(part.bRow * rank, part.rows * rank), sourceStride: rank,
                             destination: target.floats(part.firstRow * m * rank + i * rank, (part.rows - 1) * m * rank + rank),
                             destinationStride: m * rank, rows: part.rows, width: rank)
        }
    }

    /// The factors ZO trains.
    var zeroOrderFactors: FlattenSequence<ArraySlice<[Factors]>> { linears[..<min(zeroOrderBlocks, linears.count)].joined() }

    public func hook(streams: Range<Int>) -> any LinearHook { LoRAPass(state: self, streams: streams) }

    public func restingHook() -> (any LinearHook)? { LoRAPass(state: self, streams: nil) }

    /// For the fused linear at `weightOffset` of block `index` and input x [R, in] whose rows are
    /// the streams' in equal parts (R = S·R_s; nil streams, or a first-order block: the adapter
    /// at rest, all rows): per stream t = x_s·A_sᵀ [R_s, m·r], out_s (+)= t·B_sᵀ. Returns false
    /// (writing nothing) when the linear has no factors.
    func add(block index: Int, weightOffset: Int, x: DeviceBuffer, out: DeviceBuffer, rows: Int, streams: Range<Int>?,
             accumulate: Bool) -> Bool {
        guard let factors = factors(block: index, weightOffset: weightOffset) else { return false }
        guard let scratch else { preconditionFailure("reserve(rows:) first") }
        let streams = index < zeroOrderBlocks ? streams : nil
        precondition(rows <= scratchRows, "reserve(rows:) first")
        let count = streams?.count ?? 1
        precondition(rows % count == 0, "the streams' rows come in equal parts")
        let width = factors.parts.count * rank, k = factors.linear.inputs, o = factors.linear.outputs, part = rows / count
        for i in 0..<count {
            let (a, b) = streams.map { (factors.streamA[$0.lowerBound + i], factors.streamB[$0.lowerBound + i]) } ?? (factors.a, factors.rest)
            let t = scratch.floats(i * part * width, part * width)
            backend.linear(x: x.floats(i * part * k, part * k), weight: a, bias: nil, out: t, m: part, n: width, k: k, activation: .none,
                           accumulate: false)
            backend.linear(x: t, weight: b, bias: nil, out: out.floats(i * part * o, part * o), m: part, n: o, k: width, activation: .none,
                           accumulate: accumulate)
        }
        return true
    }
}

/// The LoRA terms of consecutive streams (or of the adapter at rest), as a pass whose rows are
/// theirs in equal parts adds them.
struct LoRAPass: LinearHook {
    let state: LoRAState
    let streams: Range<Int>?

    func apply(block index: Int, weightOffset: Int, x: DeviceBuffer, out: DeviceBuffer, rows: Int, accumulate: Bool) -> Bool {
        state.add(block: index, weightOffset: weightOffset, x: x, out: out, rows: rows, streams: streams, accumulate: accumulate)
    }
}
