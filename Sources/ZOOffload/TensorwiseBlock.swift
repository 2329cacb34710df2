import ZOCore
import ZOModels

/// How a block is laid out when it travels and stays encoded tensor by tensor: each tensor's
/// encoding (an fp8 tensor with its own scales) in a chunk of its own, in layout order, each
/// chunk starting where an arena range would (so a chunk is a valid buffer view).
public struct TensorChunks: Sendable, Equatable {
    /// Byte offset of each tensor's chunk, in layout order.
    public let offsets: [Int]
    /// The encoded block's bytes, chunks and padding.
    public let byteCount: Int

    public init(_ layout: ParameterLayout, format: LinkFormat) {
        var offsets: [Int] = [], end = 0
        for spec in layout.specs {
            offsets.append(end)
            end += DeviceArena.reservedSize(format.encodedBytes(spec.count))
        }
        self.offsets = offsets
        byteCount = end
    }
}

/// What a tensorwise block decodes at once, over `blocks`: the most elements a block has
/// outside its fused linears (biases and norms), and the largest fused linear.
struct TensorwiseSizes: Equatable {
    let small: Int
    let largestLinear: Int

    init(blocks: [ParameterLayout], linears: [BlockLinear]) {
        small = blocks.map { layout in
            layout.count - linears.reduce(0) { sum, linear in sum + linear.weightIndices(in: layout.specs).reduce(0) { $0 + layout.specs[$1].count } }
        }.max() ?? 0
        largestLinear = linears.map { $0.outputs * $0.inputs }.max() ?? 0
    }

    /// Floats of the decoded buffer: the biases and norms, then one fused linear's weights.
    var decodedCount: Int { small + largestLinear }
}

/// A streamed block kept encoded in its slot (`TensorChunks`) while a sweep visits it: its
/// biases and norms are decoded into `decoded` when the visit begins and perturbed there in
/// place; a fused linear's weights are decoded into the buffer's scratch when a stage asks for
/// them, with the visit's perturbation passes applied — the same element operations in the
/// same order as decoding the whole block and perturbing it in place, so the passes see the
/// same weights bit for bit. The write-back encodes every tensor into its chunk: a linear
/// right after its last read (`writeOnFinalRead`), while its final values are in the scratch,
/// the rest at the end of the visit.
///
/// Device memory: one fused linear's weights in fp32 (plus the biases and norms) instead of
/// the whole block, for a few more decode and perturb launches per linear.
final class TensorwiseBlock: BlockWeights {
    private let backend: any Backend
    private let format: LinkFormat
    private let linears: [BlockLinear]
    /// [biases and norms, packed | one fused linear's weights].
    private let decoded: DeviceBuffer
    private let smallCount: Int

    /// The visited block: its tensors (layout offsets), chunks and slot; where each bias or
    /// norm sits in the packed region; the passes applied so far; the seed its write-back
    /// rounds from; whether linears are encoded when read, and which tensors already were.
    private var tensors: [PerturbedTensor] = []
    private var chunks = TensorChunks(ParameterLayout(), format: .fp32)
    private var slot = DeviceBuffer(offset: 0, byteCount: 0)
    private var packed: [Int: Int] = [:]
    private var passes: [PerturbationPass] = []
    private var roundingSeed: UInt64?
    private var writesOnRead = false
    private var written: Set<Int> = []

    /// A view over `decoded`: its first `smallCount` floats for a block's biases and norms,
    /// the rest for one fused linear's weights.
    init(backend: any Backend, format: LinkFormat, linears: [BlockLinear], smallCount: Int, decoded: DeviceBuffer) {
        self.backend = backend
        self.format = format
        self.linears = linears
        self.decoded = decoded
        self.smallCount = smallCount
    }

    private var scratch: DeviceBuffer { decoded.floats(smallCount, decoded.floatCount - smallCount) }

    private func isSmall(_ tensor: PerturbedTensor) -> Bool { !linears.contains { $0.covers(tensor.offset, tensor.count) } }

    /// Tensor `t`'s chunk in the slot.
    private func chunk(_ t: Int) -> DeviceBuffer {
        DeviceBuffer(offset: slot.offset + chunks.offsets[t], byteCount: format.encodedBytes(tensors[t].count))
    }

    /// Starts visiting the block whose encoding (`chunks`) is in `slot`: decodes its biases and
    /// norms; no pass applied yet. A write-back rounds stochastically from `roundingSeed`
    /// (each tensor from a seed of its own), or to nearest without one.
    func begin(tensors: [PerturbedTensor], chunks: TensorChunks, slot: DeviceBuffer, roundingSeed: UInt64?) {
        precondition(tensors.count == chunks.offsets.count, "a chunk per tensor")
        (self.tensors, self.chunks, self.slot, passes) = (tensors, chunks, slot, [])
        (self.roundingSeed, writesOnRead, written) = (roundingSeed, false, [])
        packed = [:]
        var next = 0
        for (t, tensor) in tensors.enumerated() where isSmall(tensor) {
            packed[tensor.offset] = next
            backend.decode(chunk(t), format: format, count: tensor.count, out: decoded.floats(next, tensor.count))
            next += tensor.count
        }
        precondition(next <= smallCount, "more biases and norms than the decoded buffer holds")
    }

    /// Applies `pass` to the block: to the biases and norms now, to a linear's weights when
    /// they are decoded.
    func apply(_ pass: PerturbationPass) {
        guard !pass.isIdentity else { return }
        passes.append(pass)
        let small = tensors.filter(isSmall).map {
            PerturbedTensor(offset: packed[$0.offset]!, count: $0.count, id: $0.id, decays: $0.decays)
        }
        backend.perturb(decoded, tensors: small, terms: pass.terms, decayFactor: pass.decayFactor, kind: pass.kind)
    }

    func floats(_ start: Int, _ count: Int) -> DeviceBuffer {
        let covered = tensors.indices.filter { tensors[$0].offset >= start && tensors[$0].offset < start + count }
        precondition(covered.reduce(0) { $0 + tensors[$1].count } == count && covered.first.map { tensors[$0].offset } == start,
                     "a stage read elements \(start)..<\(start + count), which are not whole tensors")
        if let first = packed[start] {
            precondition(covered.allSatisfy { packed[tensors[$0].offset] == first + tensors[$0].offset - start },
                         "a stage read biases or norms together with a weight matrix")
            return decoded.floats(first, count)
        }
        precondition(written.isDisjoint(with: covered), "a weight matrix read again after its final read")
        materialize(covered, at: start)
        if writesOnRead {
            for t in covered { encode(t, from: scratch.floats(tensors[t].offset - start, tensors[t].count)) }
        }
        return scratch.floats(0, count)
    }

    /// From here on the visit's passes are all applied and each linear is read for the last
    /// time: it is encoded into its chunk as soon as it is decoded (after the read's GEMM is
    /// enqueued its values stay in the scratch until the next linear's decode), which spares
    /// the write-back decoding it once more.
    func writeOnFinalRead() { writesOnRead = true }

    /// Encodes tensor `t`'s final values from `values` into its chunk.
    private func encode(_ t: Int, from values: DeviceBuffer) {
        let seed = roundingSeed.map { seed -> UInt64 in
            var generator = SplitMix64(seed: seed ^ UInt64(t) &* 0x9E37_79B9_7F4A_7C15)
            return generator.next()
        }
        backend.encode(values, count: tensors[t].count, format: format, stochasticSeed: seed, out: chunk(t))
        written.insert(t)
    }

    /// Decodes the tensors `covered` into the scratch (tensor t at t.offset − `start`) and
    /// applies `passes` (by default the visit's).
    private func materialize(_ covered: [Int], at start: Int, passes: [PerturbationPass]? = nil) {
        for t in covered {
            backend.decode(chunk(t), format: format, count: tensors[t].count, out: scratch.floats(tensors[t].offset - start, tensors[t].count))
        }
        let local = covered.map {
            PerturbedTensor(offset: tensors[$0].offset - start, count: tensors[$0].count, id: tensors[$0].id, decays: tensors[$0].decays)
        }
        for pass in passes ?? self.passes where !pass.isIdentity {
            backend.perturb(scratch, tensors: local, terms: pass.terms, decayFactor: pass.decayFactor, kind: pass.kind)
        }
    }

    /// Copies into `host` (the block's layout in fp32) its values after the decay and the
    /// first `afterTerms` terms of `pass` — what `Backend.perturb`'s snapshot holds, the same
    /// operations bit for bit — tensor by tensor through the scratch, on the compute stream.
    /// Called before the visit applies any pass (the checkpoint of a ZO step's + pass).
    func snapshot(_ pass: PerturbationPass, afterTerms: Int, into host: HostBuffer) {
        precondition(passes.isEmpty, "a snapshot is taken before the visit's passes")
        let prefix = PerturbationPass(terms: Array(pass.terms.prefix(afterTerms)), decayFactor: pass.decayFactor, kind: pass.kind)
        for (t, tensor) in tensors.enumerated() {
            materialize([t], at: tensor.offset, passes: [prefix])
            backend.download(scratch, to: host, hostOffset: tensor.offset * 4, byteCount: tensor.count * 4, on: backend.computeStream)
        }
    }

    /// Encodes every tensor not yet written, as the passes left it, back into its chunk.
    func writeBack() {
        for (t, tensor) in tensors.enumerated() where !written.contains(t) {
            if let first = packed[tensor.offset] {
                encode(t, from: decoded.floats(first, tensor.count))
            } else {
                materialize([t], at: tensor.offset)
                encode(t, from: scratch.floats(0, tensor.count))
            }
        }
    }

    /// Encodes `group`'s fp32 values from host memory into `slot` (to nearest), tensor by tensor
    /// through the scratch, on the compute stream.
    func encode(_ group: ParameterGroup, tensors: [PerturbedTensor], chunks: TensorChunks, into slot: DeviceBuffer) {
        (self.tensors, self.chunks, self.slot) = (tensors, chunks, slot)
        for (t, tensor) in tensors.enumerated() {
            let values = scratch.floats(0, tensor.count)
            backend.upload(group.storage, hostOffset: tensor.offset * 4, to: values, byteCount: tensor.count * 4, on: backend.computeStream)
            backend.encode(values, count: tensor.count, format: format, stochasticSeed: nil, out: chunk(t))
        }
    }

    /// Decodes the encoded block in `slot` into `group`'s fp32 values in host memory, tensor by
    /// tensor through the scratch, on the compute stream.
    func decode(_ group: ParameterGroup, tensors: [PerturbedTensor], chunks: TensorChunks, from slot: DeviceBuffer) {
        (self.tensors, self.chunks, self.slot) = (tensors, chunks, slot)
        for (t, tensor) in tensors.enumerated() {
            let values = scratch.floats(0, tensor.count)
            backend.decode(chunk(t), format: format, count: tensor.count, out: values)
            backend.download(values, to: group.storage, hostOffset: tensor.offset * 4, byteCount: tensor.count * 4, on: backend.computeStream)
        }
    }
}
