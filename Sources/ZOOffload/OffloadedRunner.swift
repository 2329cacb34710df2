import ZOCore
import ZOModels

/// What the offloader moved and waited for since it was created (or last reset).
public struct OffloadStatistics: Sendable, Equatable, Codable {
    /// Bytes copied host → device and device → host.
    public var bytesUploaded = 0
    public var bytesDownloaded = 0
    /// Host seconds the compute stream waited for a block's upload.
    public var computeWaitSeconds = 0.0
    /// Sweeps over the blocks (a ZO step or an evaluation pass makes one).
    public var sweeps = 0

    public init() {}
}

/// Runs a model whose transformer blocks live in host memory (the model's groups are the
/// master copy) and stream through a few device slots: the first seed's ZO-Offloading.
///
/// One sweep visits the blocks in order. Block i+S is uploaded on the upload stream while
/// block i computes; a block the sweep modified goes back on the offload stream; events
/// order the three (a slot is refilled only after its block went back), so in the steady
/// state the host never waits for a copy it does not need. A ZO step is one sweep
/// (`forward(_:streams:snapshot:)`) whatever its number of streams: each arriving block gets
/// the first stream's pass (with the pending update), runs that stream's activations, gets the
/// next stream's pass, runs its activations, and so on, and leaves. Nothing unmodified is
/// written back.
///
/// Results equal `ResidentRunner`'s bit for bit: every element sees the same perturbation
/// passes and every activation the same operations. The one reordering is the tied token
/// table, which each head needs at its stream's values after every embedding ran: it stays at
/// the first stream's values until the heads, and later streams' embeddings read it through
/// `gatherRows`' on-the-fly perturbation (the terms of every pass since, concatenated), which
/// equals the perturbed table bit for bit; before each later head its pass is applied in place.
// @unchecked Sendable: confined to the thread that drives training — it alone calls the runner's methods, so the
// `var`s (`statistics`, `pins`, `extras`, `folds`, `stacksStreams`) and `tensorwise` need no lock. The copies it
// issues run on the backend's copy streams and capture a host master, a slot and the backend, never the runner;
// the `uploaded`, `computed` and `released` events order them, and every sweep (and `deinit`) ends synchronized.
public final class OffloadedRunner: ModelRunner, @unchecked Sendable {
    public let model: any CausalLM
    public let backend: any Backend
    public let plan: ResidencyPlan
    public private(set) var statistics = OffloadStatistics()

    private let embedding: DeviceBuffer
    /// The head group, unless the tail holds it.
    private let head: DeviceBuffer?
    /// The first-order part, which runs blocks from `blockCount` on and the head.
    public let tail: (any RunnerTail)?
    /// Blocks this runner runs (0..<blockCount).
    private let blockCount: Int
    /// The tied token table's index when ZO perturbs it (not when the tail trains it).
    private let tiedTable: Int?
    private let constants: DeviceBuffer
    private let residentBlocks: [Int: DeviceBuffer]
    private let streamed: [Int]
    /// The rotating slots streamed blocks cross the link through, each the largest block in
    /// the plan's format: in fp32 compute works on the slot itself; a low-bit block is
    /// decoded into `decoded` on arrival and encoded back into its slot for the write-back.
    private let slots: [DeviceBuffer]
    /// The one fp32 block buffer of a low-bit format, which the slots share (compute, decode
    /// and encode are ordered on the compute stream); nil for fp32.
    private let decoded: DeviceBuffer?
    /// With `plan.isTensorwise`: the visited block, read tensor by tensor through `decoded`,
    /// and each streamed block's chunks.
    private let tensorwise: TensorwiseBlock?
    private let chunks: [Int: TensorChunks]
    /// The host master of each streamed block in a low-bit format (the model's fp32 groups
    /// are brought up to date by `copyParametersToHost`).
    private let encodedBlocks: [Int: HostBuffer]
    private let uploadStream: StreamID
    private let offloadStream: StreamID
    /// Per slot: its upload has landed; its block is done with the slot; its compute is done.
    private let uploaded: [EventID]
    private let released: [EventID]
    private let computed: [EventID]
    private let tensors: [[PerturbedTensor]]
    /// The streamed masters, page-locked where the backend does that (released first).
    private var pins: [HostPin] = []
    public let adapter: (any LinearAdapter)?
    /// Whether streams that differ only in the adapter's terms go through the blocks as one
    /// stacked pass (`StreamStack`); off, each stream runs its own.
    public var stacksStreams = true
    /// With an adapter, each streamed block's other tensors (biases, norms) stay on
    /// the device, packed: their values are the masters, copied into the slot on arrival, so
    /// a block goes back to host memory only when A Vᵀ is folded in.
    private var extras: [Int: Extras] = [:]
    private var folds: UInt64 = 0

    /// A streamed block's tensors outside the adapted weights, packed on the device.
    private struct Extras {
        let buffer: DeviceBuffer
        /// The tensors at their packed offsets (ids unchanged) …
        let tensors: [PerturbedTensor]
        /// … and where each sits in the block's layout.
        let blockOffsets: [Int]
    }

    /// Allocates the resident groups and the slots from the backend's arena and uploads the
    /// resident groups. Throws `OffloadError.doesNotFit` (before allocating) when the plan's
    /// parameters do not fit the free device memory; activations are allocated per pass.
    /// With a `tail` (whose first block must be the first of the plan's `firstOrderBlocks`),
    /// the runner holds neither those blocks nor the head.
    ///
    /// With an `adapter` factory, the blocks' fused linears add its adapter's terms and full
    /// passes leave the weights it adapts alone, so a ZO step writes no streamed block back
    /// (see `foldAdapter`).
    public init(model: any CausalLM, backend: any Backend, plan: ResidencyPlan, tail: (any RunnerTail)? = nil,
                adapter factory: (any LinearAdapterFactory)? = nil) throws {
        try plan.validate(for: model)
        blockCount = plan.runnerBlockCount(of: model.blocks.count)
        guard (tail?.firstBlock ?? model.blocks.count) == blockCount else {
            let start = tail.map { "block \($0.firstBlock)" } ?? "no tail"
            throw OffloadError.invalidPlan("the plan trains \(plan.firstOrderBlocks) blocks first-order but the tail starts at \(start)")
        }
        let stats = backend.arena.stats
        let shape = model.shape, needed = plan.parameterBytes(for: shape)
        let available = stats.budget - stats.inUse
        guard needed <= available else {
            var least = plan
            (least.slots, least.residentBlocks) = (1, [])
            throw OffloadError.doesNotFit(needed: needed, available: available, detail:
                "the resident stages and \(plan.slotCount(for: shape)) block slots; the least any plan needs is "
                + "\(ByteCount(least.parameterBytes(for: shape))) (one slot, no resident block), activations on top")
        }
        self.model = model
        self.backend = backend
        self.plan = plan
        self.tail = tail
        let excluded = tail?.firstOrderEmbeddingTensors ?? []
        if factory != nil, plan.isTensorwise {
            throw OffloadError.invalidPlan("decoding by tensor does not combine with a linear adapter (low-rank ZO, LoRA)")
        }
        let adapter = try factory?.makeAdapter(model: model, blockCount: blockCount, backend: backend)
        self.adapter = adapter
        let adapted = adapter?.adaptedTensorIDs ?? []
        tensors = model.perturbedTensors(leavingOut: excluded, ids: adapted)
        // A table left out of the passes (a frozen base's; the embedding's ids are its positions) needs no perturbed rows.
        tiedTable = model.tiedTokenTable.flatMap { excluded.contains($0) || adapted.contains(UInt32($0)) ? nil : $0 }
        streamed = plan.streamedBlocks(of: model)

        var allocated: [DeviceBuffer] = []
        func resident(_ group: ParameterGroup) throws -> DeviceBuffer {
            let buffer = try backend.allocate(group.layout.byteCount, label: group.label)
            allocated.append(buffer)
            backend.upload(group.storage, hostOffset: 0, to: buffer, byteCount: group.layout.byteCount, on: backend.computeStream)
            return buffer
        }
        do {
            embedding = try resident(model.embedding)
            head = try tail == nil ? resident(model.head) : nil
            var blocks: [Int: DeviceBuffer] = [:]
            for index in plan.residentBlocks { blocks[index] = try resident(model.blocks[index]) }
            residentBlocks = blocks
            func allocate(_ bytes: Int, _ label: String) throws -> DeviceBuffer {
                let buffer = try backend.allocate(bytes, label: label)
                allocated.append(buffer)
                return buffer
            }
            // Sizes as the plan predicts them (the memory model and the arena agree by construction).
            let lossy = plan.format != .fp32, decodedBytes = plan.decodedBlockBytes(for: shape)
            slots = try (0..<plan.slotCount(for: shape)).map {
                try allocate(plan.slotBytes(for: shape), "block slot \($0)" + (lossy ? " (\(plan.format.rawValue))" : ""))
            }
            decoded = try decodedBytes > 0 ? allocate(decodedBytes, plan.isTensorwise ? "decoded tensors" : "decoded block") : nil
            tensorwise = plan.isTensorwise ? decoded.map {
                TensorwiseBlock(backend: backend, format: plan.format, linears: model.blockLinears,
                                smallCount: plan.tensorwiseSizes(for: shape).small, decoded: $0)
            } : nil
            chunks = plan.isTensorwise ? Dictionary(uniqueKeysWithValues: streamed.map { ($0, TensorChunks(model.blocks[$0].layout, format: plan.format)) }) : [:]
            // Low-bit masters: each streamed block encoded once (to nearest) through slot 0.
            var encoded: [Int: HostBuffer] = [:]
            for index in lossy ? streamed : [] {
                let group = model.blocks[index], count = group.layout.count
                let host = try HostBuffer(byteCount: plan.encodedBytes(of: group.layout))
                if let tensorwise {
                    tensorwise.encode(group, tensors: tensors[index + 1], chunks: chunks[index]!, into: slots[0])
                } else {
                    backend.upload(group.storage, hostOffset: 0, to: decoded!, byteCount: group.layout.byteCount, on: backend.computeStream)
                    backend.encode(decoded!, count: count, format: plan.format, stochasticSeed: nil, out: slots[0])
                }
                backend.download(slots[0], to: host, hostOffset: 0, byteCount: host.byteCount, on: backend.computeStream)
                try backend.synchronize(backend.computeStream)
                encoded[index] = host
            }
            encodedBlocks = encoded
            constants = try backend.upload(model.constants.isEmpty ? [0] : model.constants, label: "model constants")
            allocated.append(constants)
            try backend.synchronize(backend.computeStream)
        } catch {
            allocated.forEach(backend.free)
            throw error
        }
        uploadStream = backend.makeStream(label: "upload")
        offloadStream = backend.makeStream(label: "offload")
        uploaded = slots.map { _ in backend.makeEvent() }
        released = slots.map { _ in backend.makeEvent() }
        computed = slots.map { _ in backend.makeEvent() }
        pins = streamed.compactMap { [encodedBlocks] index in backend.pin(encodedBlocks[index] ?? model.blocks[index].storage) }
        tail?.attach(embedding: embedding, adapter: adapter)
        if adapter != nil { try packExtras() }
    }

    /// Packs each streamed block's tensors outside the adapted weights into a device buffer of
    /// their own, from the block's master (decoded through slot 0).
    private func packExtras() throws {
        for index in streamed {
            let blockTensors = tensors[index + 1]
            guard !blockTensors.isEmpty else { continue }  // a frozen block (LoRA): nothing to pack
            var packed: [PerturbedTensor] = [], offset = 0
            for tensor in blockTensors {
                packed.append(PerturbedTensor(offset: offset, count: tensor.count, id: tensor.id, decays: tensor.decays))
                offset += tensor.count
            }
            let buffer = try backend.allocate(max(1, offset) * 4, label: "block \(index) biases and norms")
            let (host, bytes) = master(index)
            backend.upload(host, hostOffset: 0, to: slots[0], byteCount: bytes, on: backend.computeStream)
            if let decoded { backend.decode(slots[0], format: plan.format, count: model.blocks[index].layout.count, out: decoded) }
            for (tensor, target) in zip(blockTensors, packed) {
                backend.copyRows(source: working(0).floats(tensor.offset, tensor.count), sourceStride: 0,
                                 destination: buffer.floats(target.offset, target.count), destinationStride: 0, rows: 1, width: tensor.count)
            }
            try backend.synchronize(backend.computeStream)
            extras[index] = Extras(buffer: buffer, tensors: packed, blockOffsets: blockTensors.map(\.offset))
        }
    }

    /// Copies block `index`'s packed tensors into its slot (nothing for a block without).
    private func unpackExtras(_ index: Int, into parameters: DeviceBuffer) {
        guard let extra = extras[index] else { return }
        for (tensor, offset) in zip(extra.tensors, extra.blockOffsets) {
            backend.copyRows(source: extra.buffer.floats(tensor.offset, tensor.count), sourceStride: 0,
                             destination: parameters.floats(offset, tensor.count), destinationStride: 0, rows: 1, width: tensor.count)
        }
    }

    /// Applies `pass` to visited block `index`: to its packed tensors (then copied into the
    /// slot) when it has them, else to its buffer or its tensorwise view.
    private func perturbBlock(_ index: Int, _ visited: Visited, _ pass: PerturbationPass, snapshot: SnapshotRequest? = nil) {
        switch visited {
        case .tensorwise(let block):
            if let snapshot { block.snapshot(pass, afterTerms: snapshot.afterTerms, into: snapshot.group(index + 1).host) }
            block.apply(pass)
        case .buffer(let parameters):
            guard let extra = extras[index] else { return perturb(parameters, group: index + 1, pass, snapshot: snapshot) }
            precondition(snapshot == nil, "snapshots are not taken with an adapter")
            perturbPacked(extra, pass)
            unpackExtras(index, into: parameters)
        }
    }

    /// Applies `pass` to a block's packed tensors.
    private func perturbPacked(_ extra: Extras, _ pass: PerturbationPass) {
        guard !pass.isIdentity else { return }
        backend.perturb(extra.buffer, tensors: extra.tensors, terms: pass.terms, decayFactor: pass.decayFactor, kind: pass.kind)
    }

    public func foldAdapter() throws {
        guard let adapter = adapter as? any FoldingAdapter else { return }
        folds += 1
        var generator = SplitMix64(seed: 0xF01D ^ folds)
        try sweep(modifies: true, roundingSeed: generator.next()) { index, visited in
            unpackExtras(index, into: visited.buffer)
            adapter.fold(block: index, into: visited.buffer)
        }
    }

    deinit {
        try? backend.synchronize(uploadStream)
        try? backend.synchronize(offloadStream)
        pins.removeAll()
        for buffer in [embedding, constants] + (head.map { [$0] } ?? []) + Array(residentBlocks.values) + slots + (decoded.map { [$0] } ?? [])
            + extras.values.map(\.buffer) {
            backend.free(buffer)
        }
    }

    /// Starts counting statistics afresh.
    public func resetStatistics() { statistics = OffloadStatistics() }

    // MARK: The sweep

    /// Where block `index`'s master lives in host memory, and its bytes there.
    private func master(_ index: Int) -> (buffer: HostBuffer, bytes: Int) {
        let group = model.blocks[index]
        guard let encoded = encodedBlocks[index] else { return (group.storage, group.layout.byteCount) }
        return (encoded, encoded.byteCount)
    }

    /// Where compute finds the block that arrived in `slot`: the slot, or the decoded block.
    private func working(_ slot: Int) -> DeviceBuffer { decoded ?? slots[slot] }

    /// A block as a sweep's body sees it: a device buffer in the block's layout, or the
    /// tensorwise view of a block kept encoded.
    private enum Visited {
        case buffer(DeviceBuffer)
        case tensorwise(TensorwiseBlock)

        var weights: any BlockWeights {
            switch self {
            case .buffer(let buffer): buffer
            case .tensorwise(let block): block
            }
        }

        /// The whole-block buffer, which only blocks decoded whole have.
        var buffer: DeviceBuffer {
            guard case .buffer(let buffer) = self else { preconditionFailure("a block decoded by tensor has no whole-block buffer") }
            return buffer
        }
    }

    /// Visits every block in order with its parameters on the device: `body(index, buffer)`
    /// runs on the compute stream. Streamed blocks arrive through the slots (decoded from a
    /// low-bit format into `decoded`); when `modifies`, each goes back to its host master
    /// after `body` (encoded, rounding stochastically from `roundingSeed` when the plan says so).
    private func sweep(modifies: Bool, roundingSeed: UInt64, _ body: (Int, Visited) throws -> Void) throws {
        statistics.sweeps += 1
        func upload(_ k: Int) throws {
            let slot = k % slots.count, (host, bytes) = master(streamed[k])
            backend.wait(uploadStream, for: released[slot])
            backend.upload(host, hostOffset: 0, to: slots[slot], byteCount: bytes, on: uploadStream)
            backend.record(uploaded[slot], on: uploadStream)
            statistics.bytesUploaded += bytes
            if !plan.overlap { try backend.synchronize(uploadStream) }
        }
        for k in 0..<min(slots.count, streamed.count) { try upload(k) }
        var k = 0
        for index in 0..<blockCount {
            if let buffer = residentBlocks[index] {
                try body(index, .buffer(buffer))
                continue
            }
            let slot = k % slots.count, count = model.blocks[index].layout.count, (host, bytes) = master(index)
            let start = monotonicSeconds()
            backend.wait(backend.computeStream, for: uploaded[slot])
            statistics.computeWaitSeconds += monotonicSeconds() - start
            var generator = SplitMix64(seed: roundingSeed ^ UInt64(index) &* 0xA24B_AED4_963E_E407)
            let seed = plan.stochasticRounding ? generator.next() : nil
            if let tensorwise {
                tensorwise.begin(tensors: tensors[index + 1], chunks: chunks[index]!, slot: slots[slot], roundingSeed: seed)
                try body(index, .tensorwise(tensorwise))
            } else {
                if let decoded { backend.decode(slots[slot], format: plan.format, count: count, out: decoded) }
                try body(index, .buffer(working(slot)))
            }
            if modifies {
                if let tensorwise {
                    tensorwise.writeBack()
                } else if let decoded {
                    backend.encode(decoded, count: count, format: plan.format, stochasticSeed: seed, out: slots[slot])
                }
                backend.record(computed[slot], on: backend.computeStream)
                backend.wait(offloadStream, for: computed[slot])
                backend.download(slots[slot], to: host, hostOffset: 0, byteCount: bytes, on: offloadStream)
                backend.record(released[slot], on: offloadStream)
                statistics.bytesDownloaded += bytes
                if !plan.overlap { try backend.synchronize(offloadStream) }
            } else {
                backend.record(released[slot], on: backend.computeStream)
            }
            if k + slots.count < streamed.count { try upload(k + slots.count) }
            k += 1
        }
        // Surfaces copy failures; at this point only the last write-backs can still be running.
        try backend.synchronize(uploadStream)
        try backend.synchronize(offloadStream)
    }

    /// The stochastic-rounding seed of a sweep: a hash of its pass's direction seeds, so a
    /// rerun of the same steps rounds the same way.
    static func roundingSeed(_ pass: PerturbationPass) -> UInt64 {
        var generator = SplitMix64(seed: pass.terms.reduce(0x5EED) { $0 &* 0x100_0000_01B3 ^ $1.seed })
        return generator.next()
    }

    private func perturb(_ buffer: DeviceBuffer, group: Int, _ pass: PerturbationPass, skipping skipped: Int? = nil,
                         snapshot: SnapshotRequest? = nil) {
        guard !pass.isIdentity || snapshot != nil else { return }
        let swept = skipped.map { skip in tensors[group].enumerated().filter { $0.offset != skip }.map(\.element) } ?? tensors[group]
        backend.perturb(buffer, tensors: swept, terms: pass.terms, decayFactor: pass.decayFactor, kind: pass.kind,
                        snapshot: snapshot?.group(group))
    }

    private func workspace(for requests: [ForwardRequest]) throws -> DeviceBuffer {
        let rows = requests.map { $0.batch.batchSize * $0.batch.tokens }.max() ?? 1
        return try backend.allocate(model.workspaceCount(rows: rows) * 4, label: "activation workspace")
    }

    private func passes(_ requests: [ForwardRequest], workspace: DeviceBuffer, cache: KVCache? = nil,
                        tokenTablePerturbation: RowPerturbation? = nil, hook: (any LinearHook)? = nil) throws -> [ForwardPass] {
        try requests.map {
            try ForwardPass($0, model: model, backend: backend, constants: constants, workspace: workspace, cache: cache,
                            tokenTablePerturbation: tokenTablePerturbation,
                            linearHook: hook)
        }
    }

    // MARK: ModelRunner

    public func forward(_ batch: TokenBatch, outputs: ForwardOutputs, cache: KVCache?, rows: [Int]?) throws -> ForwardResult {
        try run([ForwardRequest(batch, outputs: outputs, rows: rows)], cache: cache)[0]
    }

    /// Every request in one sweep.
    public func forward(_ requests: [ForwardRequest]) throws -> [ForwardResult] {
        try run(requests, cache: nil)
    }

    private func run(_ requests: [ForwardRequest], cache: KVCache?) throws -> [ForwardResult] {
        let workspace = try workspace(for: requests)
        defer { backend.free(workspace) }
        let hook = adapter?.restingHook()
        if hook != nil { try adapter?.reserve(rows: requests.map { $0.batch.batchSize * $0.batch.tokens }.max() ?? 0) }
        let active = try passes(requests, workspace: workspace, cache: cache, hook: hook)
        active.forEach { $0.embed(embedding) }
        try sweep(modifies: false, roundingSeed: 0) { index, visited in
            if !extras.isEmpty { unpackExtras(index, into: visited.buffer) }
            active.forEach { $0.block(index, visited.weights) }
        }
        return try active.map(finish)
    }

    /// The rest of a pass after the runner's blocks: the tail's, or the head.
    private func finish(_ pass: ForwardPass) throws -> ForwardResult {
        if let tail { return try tail.finish(pass) }
        return try pass.finish(head: head!, embedding: embedding)
    }

    /// Perturbs the head group when the runner holds it.
    private func perturbHead(_ pass: PerturbationPass, snapshot: SnapshotRequest? = nil) {
        if let head { perturb(head, group: tensors.count - 1, pass, snapshot: snapshot) }
    }

    public func perturb(_ pass: PerturbationPass, snapshot: SnapshotRequest?) throws {
        guard !pass.isIdentity || snapshot != nil else { return }
        perturb(embedding, group: 0, pass, snapshot: snapshot)
        if adapter != nil {
            // The packed tensors are the masters; no block needs to move.
            for index in 0..<blockCount {
                if let extra = extras[index] {
                    perturbPacked(extra, pass)
                } else if let buffer = residentBlocks[index] {
                    perturb(buffer, group: index + 1, pass, snapshot: snapshot)
                }
            }
        } else {
            try sweep(modifies: !pass.isIdentity, roundingSeed: Self.roundingSeed(pass)) { index, visited in
                perturbBlock(index, visited, pass, snapshot: snapshot)
            }
        }
        perturbHead(pass, snapshot: snapshot)
        if snapshot != nil { try backend.synchronize(backend.computeStream) }
    }

    /// Streams that differ only in the adapter's terms run stacked (`StreamStack`) unless
    /// `stacksStreams` is off.
    public func forward(_ requests: [ForwardRequest], streams: [PerturbedStream], snapshot: SnapshotRequest?) throws -> [[ForwardResult]] {
        if stacksStreams, tail == nil, snapshot == nil, let adapter, let stack = StreamStack(requests, streams: streams) {
            let results = try forward(stack.requests, streams: [PerturbedStream(pass: streams[0].pass)], snapshot: nil,
                                      hooks: [adapter.hook(streams: stack.streams)])
            return stack.split(results[0])
        }
        return try forward(requests, streams: streams, snapshot: snapshot,
                           hooks: streams.map { stream in stream.adapterStream.flatMap { adapter?.hook(streams: $0..<$0 + 1) } })
    }

    /// The streams in one sweep, stream s's passes adding `hooks[s]` to the block linears.
    private func forward(_ requests: [ForwardRequest], streams: [PerturbedStream], snapshot: SnapshotRequest?,
                         hooks: [(any LinearHook)?]) throws -> [[ForwardResult]] {
        guard let first = streams.first else { return [] }
        let later = streams.dropFirst().map(\.pass)
        precondition(later.allSatisfy { $0.decayFactor == 1 && $0.kind == first.pass.kind && $0.terms.allSatisfy { $0.coefficient == $0.decayCoefficient } },
                     "only the first pass of a ZO step decays")
        precondition(snapshot == nil || adapter == nil, "snapshots are not taken with an adapter")
        let workspace = try workspace(for: requests)
        defer { backend.free(workspace) }
        let tied = tiedTable
        try adapter?.reserve(rows: requests.map { $0.batch.batchSize * $0.batch.tokens }.max() ?? 0)

        // The tied table stays at the first stream's values for its head; each later stream's
        // embedding reads it through the on-the-fly perturbation of every pass since (passes
        // without decay compose by concatenating their terms, operation for operation).
        perturb(embedding, group: 0, first.pass, snapshot: snapshot)
        var since: [PerturbationTerm] = []
        let active = try streams.enumerated().map { s, stream -> [ForwardPass] in
            if s > 0 {
                perturb(embedding, group: 0, stream.pass, skipping: tied)
                since += stream.pass.terms
            }
            let row = s == 0 ? nil : tied.map { RowPerturbation(tensor: tensors[0][$0].id, terms: since, kind: stream.pass.kind) }
            guard stream.evaluated else { return [] }
            let passes = try self.passes(requests, workspace: workspace, tokenTablePerturbation: row, hook: hooks[s])
            passes.forEach { $0.embed(embedding) }
            return passes
        }

        let modifies = adapter == nil && streams.contains { !$0.pass.isIdentity }
        try sweep(modifies: modifies, roundingSeed: Self.roundingSeed(first.pass)) { index, visited in
            for (s, stream) in streams.enumerated() {
                perturbBlock(index, visited, stream.pass, snapshot: s == 0 ? snapshot : nil)
                for (r, pass) in active[s].enumerated() {
                    // The last stream's last pass reads each linear for the last time this step.
                    if modifies, s == streams.count - 1, r == active[s].count - 1, case .tensorwise(let block) = visited {
                        block.writeOnFinalRead()
                    }
                    pass.block(index, visited.weights)
                }
            }
        }

        var results: [[ForwardResult]] = []
        for (s, stream) in streams.enumerated() {
            perturbHead(stream.pass, snapshot: s == 0 ? snapshot : nil)
            if s == 0, snapshot != nil { try backend.synchronize(backend.computeStream) }
            if s > 0, let tied, !stream.pass.isIdentity {
                backend.perturb(embedding, tensors: [tensors[0][tied]], terms: stream.pass.terms, decayFactor: 1, kind: stream.pass.kind)
            }
            results.append(try active[s].map(finish))
        }
        return results
    }

    public func copyParametersToHost() throws {
        if !extras.isEmpty {
            // The packed tensors go back into the masters with their blocks.
            try sweep(modifies: true, roundingSeed: 0x5A7E) { index, visited in unpackExtras(index, into: visited.buffer) }
        }
        try backend.synchronize(offloadStream)
        for (index, encoded) in encodedBlocks {
            let group = model.blocks[index]
            backend.upload(encoded, hostOffset: 0, to: slots[0], byteCount: encoded.byteCount, on: backend.computeStream)
            if let tensorwise {
                tensorwise.decode(group, tensors: tensors[index + 1], chunks: chunks[index]!, from: slots[0])
            } else {
                backend.decode(slots[0], format: plan.format, count: group.layout.count, out: decoded!)
                backend.download(decoded!, to: group.storage, hostOffset: 0, byteCount: group.layout.byteCount, on: backend.computeStream)
            }
            try backend.synchronize(backend.computeStream)
        }
        let groups = [(model.embedding, embedding)] + (head.map { [(model.head, $0)] } ?? []) + residentBlocks.map { (model.blocks[$0.key], $0.value) }
        for (group, buffer) in groups {
            backend.download(buffer, to: group.storage, hostOffset: 0, byteCount: group.layout.byteCount, on: backend.computeStream)
        }
        try backend.synchronize(backend.computeStream)
        try tail?.copyParametersToHost()
    }
}
