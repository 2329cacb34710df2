#if canImport(Glibc)
import Glibc
#endif
import CBLAS
import CKernels
import Synchronization
import ZOCore

/// A copy that `CPUBackend.injectCopyFault` makes fail.
public struct CopyFault: Sendable {
    public enum Direction: Sendable { case upload, download }
    public var direction: Direction
    /// Copies in that direction that still succeed first.
    public var after: Int

    public init(_ direction: Direction, after: Int) {
        self.direction = direction
        self.after = after
    }
}

/// The CPU implementation of `Backend`.
///
/// Its "device" memory is one anonymous mapping of `budget` bytes (pages materialize when
/// touched), kept apart from host buffers so that host<->device traffic is real copying,
/// as on a GPU. Copies run on one serial queue per copy stream; compute runs on the calling
/// thread, parallelized over `threads` workers: OpenBLAS for GEMM, Swift SIMD for the rest.
// @unchecked Sendable: `base` (the arena's mapping) is a `let` set in init; what changes is behind locks (the
// engine's `ConditionLock`, the Mutexes of `faults`, `profile` and `arena`); the arena's bytes, as on a GPU, are
// ordered by streams and events.
public final class CPUBackend: Backend, @unchecked Sendable {
    public let arena: DeviceArena
    public let threads: Int
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private let engine = StreamEngine()
    let parallel: Parallel
    /// Per-operation timings, off by default (`profile.isEnabled = true` to collect).
    public let profile = OpProfile()
    /// Copies made to fail on purpose (`injectCopyFault`).
    private let faults = Mutex<CopyFault?>(nil)

    /// A CPU backend with a device arena of `budget` bytes (default: the machine's physical
    /// memory, at most half the address space left under `ulimit -v` when one is set) and
    /// `threads` compute threads (default: all online cores).
    public init(budget: Int? = nil, threads: Int? = nil) throws(BackendError) {
        let cores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let threads = threads ?? cores
        guard threads >= 1 else { throw .invalidArgument("threads must be at least 1, got \(threads)") }
        let physical = sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE))
        let budget = budget ?? min(physical, AddressSpace.limit.map { max(0, $0 - AddressSpace.inUse) / 2 } ?? physical)
        guard budget > 0 else {
            throw .invalidArgument("device memory budget must be positive, got \(budget)\(AddressSpace.limitNote)")
        }
        let mapped = mmap(nil, budget, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let mapped, mapped != MAP_FAILED else {
            let smaller = AddressSpace.limit == nil ? "" : "; --device-memory sets a smaller one"
            throw .unavailable("cannot reserve \(ByteCount(budget)) of address space for the CPU device arena"
                               + AddressSpace.limitNote + smaller)
        }
        self.base = mapped
        self.mappedBytes = budget
        self.arena = DeviceArena(budget: budget)
        self.threads = threads
        self.parallel = Parallel(threads: threads)
        // OpenBLAS (the backward passes' GEMMs) runs single-threaded; the backward kernels split
        // their work over our threads instead (OpenBLAS's own threading changes results with the
        // thread count, and its setting is process-wide). The forward GEMM is `zt_gemm_nt`.
        openblas_set_num_threads(1)
    }

    deinit { munmap(base, mappedBytes) }

    public var name: String { "cpu (\(threads) threads, OpenBLAS)" }

    // MARK: Memory

    public func allocate(_ byteCount: Int, label: String) throws(BackendError) -> DeviceBuffer {
        try arena.allocate(byteCount, label: label)
    }

    public func free(_ buffer: DeviceBuffer) { arena.free(buffer) }

    /// The address of a device buffer's first element (for kernels in this module and tests).
    @inline(__always)
    func pointer<T>(_ buffer: DeviceBuffer, as type: T.Type = Float.self) -> UnsafeMutablePointer<T> {
        (base + buffer.offset).assumingMemoryBound(to: T.self)
    }

    // MARK: Streams and copies

    public var computeStream: StreamID { engine.computeStream }
    public func makeStream(label: String) -> StreamID { engine.makeStream(label: label) }
    public func makeEvent() -> EventID { engine.makeEvent() }
    public func record(_ event: EventID, on stream: StreamID) { engine.record(event, on: stream) }
    public func wait(_ stream: StreamID, for event: EventID) { engine.wait(stream, for: event) }
    public func synchronize(_ event: EventID) throws(BackendError) { try engine.synchronize(event) }
    public func synchronize(_ stream: StreamID) throws(BackendError) { try engine.synchronize(stream) }

    public func upload(_ host: HostBuffer, hostOffset: Int, to device: DeviceBuffer, byteCount: Int, on stream: StreamID) {
        let target = UncheckedSendable(base + device.offset)
        let capacity = device.byteCount
        engine.enqueue(on: stream) { () throws(BackendError) in
            guard hostOffset >= 0, byteCount >= 0, hostOffset + byteCount <= host.byteCount, byteCount <= capacity else {
                throw .copyFailed("upload of \(byteCount) bytes from host offset \(hostOffset) into \(capacity) device bytes")
            }
            if stream != self.computeStream, self.takeFault(.upload) { throw .copyFailed("upload of \(byteCount) bytes (injected fault)") }
            target.value.copyMemory(from: host.baseAddress + hostOffset, byteCount: byteCount)
        }
    }

    public func download(_ device: DeviceBuffer, to host: HostBuffer, hostOffset: Int, byteCount: Int, on stream: StreamID) {
        let source = UncheckedSendable(UnsafeRawPointer(base + device.offset))
        let capacity = device.byteCount
        engine.enqueue(on: stream) { () throws(BackendError) in
            guard hostOffset >= 0, byteCount >= 0, hostOffset + byteCount <= host.byteCount, byteCount <= capacity else {
                throw .copyFailed("download of \(byteCount) bytes from \(capacity) device bytes to host offset \(hostOffset)")
            }
            if stream != self.computeStream, self.takeFault(.download) { throw .copyFailed("download of \(byteCount) bytes (injected fault)") }
            (host.baseAddress + hostOffset).copyMemory(from: source.value, byteCount: byteCount)
        }
    }

    /// Makes a later copy on a copy stream fail, to test how callers handle a failing link
    /// (memcpy itself cannot fail): after `fault.after` more such copies in
    /// `fault.direction` succeed, the next one fails with `BackendError.copyFailed` and its
    /// stream stops. Nil clears it.
    public func injectCopyFault(_ fault: CopyFault?) { faults.withLock { $0 = fault } }

    /// Whether the copy now starting in `direction` is the one to fail.
    private func takeFault(_ direction: CopyFault.Direction) -> Bool {
        faults.withLock { fault in
            guard var pending = fault, pending.direction == direction else { return false }
            if pending.after == 0 {
                fault = nil
                return true
            }
            pending.after -= 1
            fault = pending
            return false
        }
    }

    /// Host memory needs no pinning: "device" copies are memcpy.
    public func pin(_ host: HostBuffer) -> HostPin? { nil }

    // MARK: Operations

    public func gatherRows(table: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int,
                           out: DeviceBuffer, accumulate: Bool, perturbation: RowPerturbation?) {
        profile.measure("gatherRows") {
            let table = UncheckedSendable(pointer(table))
            let indices = UncheckedSendable(pointer(indices, as: Int32.self))
            let out = UncheckedSendable(pointer(out))
            parallel.forRanges(count, grain: 16) { rows in
                // With a perturbation, a row is perturbed in a scratch row first, then gathered.
                let scratch = perturbation == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: width)
                defer { scratch?.deallocate() }
                for n in rows {
                    let row = Int(indices.value[n])
                    var source = UnsafePointer(table.value + row * width)
                    if let perturbation, let scratch {
                        scratch.update(from: source, count: width)
                        perturbRange(scratch, first: row * width, count: width, perturbation: perturbation)
                        source = UnsafePointer(scratch)
                    }
                    let target = out.value + n * width
                    if accumulate {
                        axpy(1, source, target, width)
                    } else {
                        target.update(from: source, count: width)
                    }
                }
            }
        }
    }

    public func linear(x: DeviceBuffer, weight: DeviceBuffer, bias: DeviceBuffer?, out: DeviceBuffer,
                       m: Int, n: Int, k: Int, activation: Activation, accumulate: Bool) {
        let y = pointer(out)
        profile.measure("gemm") {
            // out[:, columns] = x · weight[columns]ᵀ, the columns in blocks of 64 over the threads (the rows
            // when there are few columns). zt_gemm_nt computes every element the same way however the
            // product is split (GEMM.h): the results depend neither on the thread count nor on the batch.
            let x = UncheckedSendable(UnsafePointer(pointer(x))), w = UncheckedSendable(UnsafePointer(pointer(weight)))
            let out = UncheckedSendable(y), accumulate: Int32 = accumulate ? 1 : 0
            let blocks = (n + 63) / 64
            if blocks >= threads || m < 3 * threads {
                parallel.forRanges(blocks) { range in
                    let first = range.lowerBound * 64, end = min(n, range.upperBound * 64)
                    zt_gemm_nt(x.value, w.value + first * k, out.value + first, m, end - first, k, n, accumulate)
                }
            } else {
                parallel.forRanges(m, grain: 3) { rows in
                    zt_gemm_nt(x.value + rows.lowerBound * k, w.value, out.value + rows.lowerBound * n, rows.count, n, k, n, accumulate)
                }
            }
        }
        let relu = activation == .relu
        guard bias != nil || relu else { return }
        profile.measure("bias_activation") {
            let target = UncheckedSendable(y)
            let biasPointer = UncheckedSendable(bias.map { UnsafePointer(pointer($0)) })
            parallel.forRanges(m, grain: max(1, 16_384 / max(n, 1))) { rows in
                for row in rows {
                    biasActivationRow(target.value + row * n, biasPointer.value, n, relu: relu)
                }
            }
        }
    }

    public func layerNorm(x: DeviceBuffer, weight: DeviceBuffer?, bias: DeviceBuffer?, out: DeviceBuffer,
                          rows: Int, channels: Int, eps: Float) {
        profile.measure("layerNorm") {
            let x = UncheckedSendable(UnsafePointer(pointer(x)))
            let out = UncheckedSendable(pointer(out))
            let weight = UncheckedSendable(weight.map { UnsafePointer(pointer($0)) })
            let bias = UncheckedSendable(bias.map { UnsafePointer(pointer($0)) })
            parallel.forRanges(rows, grain: max(1, 16_384 / max(channels, 1))) { range in
                for row in range {
                    layerNormRow(x.value + row * channels, weight.value, bias.value, out.value + row * channels, channels, eps)
                }
            }
        }
    }

    public func rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, weightOffset: Float, out: DeviceBuffer, rows: Int, channels: Int,
                        eps: Float) {
        profile.measure("rmsNorm") {
            let x = UncheckedSendable(UnsafePointer(pointer(x)))
            let weight = UncheckedSendable(UnsafePointer(pointer(weight)))
            let out = UncheckedSendable(pointer(out))
            parallel.forRanges(rows, grain: max(1, 16_384 / max(channels, 1))) { range in
                for row in range {
                    rmsNormRow(x.value + row * channels, weight.value, weightOffset, out.value + row * channels, channels, eps)
                }
            }
        }
    }

    public func rotary(x: DeviceBuffer, positions: DeviceBuffer, table: DeviceBuffer, rows: Int, heads: Int, headSize: Int,
                       rowStride: Int) {
        profile.measure("rotary") {
            let x = UncheckedSendable(pointer(x))
            let positions = UncheckedSendable(UnsafePointer(pointer(positions, as: Int32.self)))
            let table = UncheckedSendable(UnsafePointer(pointer(table)))
            parallel.forRanges(rows, grain: 16) { range in
                for row in range {
                    let angles = table.value + Int(positions.value[row]) * headSize
                    for head in 0..<heads {
                        rotateHalf(x.value + row * rowStride + head * headSize, cos: angles, sin: angles + headSize / 2,
                                   half: headSize / 2)
                    }
                }
            }
        }
    }

    public func gatedActivation(_ function: GateFunction, gateUp: DeviceBuffer, out: DeviceBuffer, rows: Int, width: Int) {
        profile.measure(function == .silu ? "swiglu" : "geglu") {
            let gateUp = UncheckedSendable(UnsafePointer(pointer(gateUp)))
            let out = UncheckedSendable(pointer(out))
            let row = function == .silu ? swigluRow : gegluTanhRow
            parallel.forRanges(rows, grain: max(1, 16_384 / max(width, 1))) { range in
                for r in range { row(gateUp.value + r * 2 * width, out.value + r * width, width) }
            }
        }
    }

    public func scale(_ buffer: DeviceBuffer, count: Int, by factor: Float) {
        profile.measure("scale") {
            let values = pointer(buffer)
            for i in 0..<count { values[i] *= factor }
        }
    }

    public func add(_ source: DeviceBuffer, to destination: DeviceBuffer, count: Int) {
        profile.measure("add") { axpy(1, pointer(source), pointer(destination), count) }
    }

    public func softcap(_ buffer: DeviceBuffer, count: Int, cap: Float) {
        profile.measure("softcap") {
            let values = UncheckedSendable(pointer(buffer))
            parallel.forRanges(count, grain: 16_384) { range in
                for i in range { values.value[i] = softcapped(values.value[i], cap) }
            }
        }
    }

    public func copyRows(source: DeviceBuffer, sourceStride: Int, destination: DeviceBuffer, destinationStride: Int,
                         rows: Int, width: Int) {
        profile.measure("copyRows") {
            let source = pointer(source), destination = pointer(destination)
            for row in 0..<rows {
                (destination + row * destinationStride).update(from: source + row * sourceStride, count: width)
            }
        }
    }

    public func attention(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, keyMask: DeviceBuffer, out: DeviceBuffer,
                          shape: AttentionShape) {
        profile.measure("attention") {
            let q = UncheckedSendable(UnsafePointer(pointer(q)))
            let k = UncheckedSendable(UnsafePointer(pointer(k)))
            let v = UncheckedSendable(UnsafePointer(pointer(v)))
            let mask = UncheckedSendable(UnsafePointer(pointer(keyMask, as: Int32.self)))
            let out = UncheckedSendable(pointer(out))
            let scratchCount = AttentionScratch.count(tokens: shape.keys, headSize: shape.headSize)
            parallel.forRanges(shape.batch * shape.heads) { pairs in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: scratchCount) { buffer in
                    let scratch = AttentionScratch(buffer.baseAddress!, tokens: shape.keys, headSize: shape.headSize)
                    for pair in pairs {
                        let (b, h) = pair.quotientAndRemainder(dividingBy: shape.heads)
                        attentionHead(q: q.value + b * shape.queries * shape.queryStride,
                                      k: k.value + b * shape.capacity * shape.kvStride,
                                      v: v.value + b * shape.capacity * shape.kvStride,
                                      keyMask: mask.value + b * shape.capacity,
                                      out: out.value + b * shape.queries * shape.heads * shape.headSize,
                                      scratch: scratch, head: h, shape: shape)
                    }
                }
            }
        }
    }

    public func crossEntropy(logits: DeviceBuffer, targets: DeviceBuffer, losses: DeviceBuffer, rows: Int, vocab: Int) {
        profile.measure("crossEntropy") {
            let logits = UncheckedSendable(UnsafePointer(pointer(logits)))
            let targets = UncheckedSendable(UnsafePointer(pointer(targets, as: Int32.self)))
            let losses = UncheckedSendable(pointer(losses))
            parallel.forRanges(rows) { range in
                for row in range {
                    let target = Int(targets.value[row])
                    losses.value[row] = target < 0 ? 0 : crossEntropyRow(logits.value + row * vocab, vocab, target)
                }
            }
        }
    }

    public func perturb(_ parameters: DeviceBuffer, tensors: [PerturbedTensor], terms: [PerturbationTerm], decayFactor: Float,
                        kind: PerturbationKind, snapshot: PerturbationSnapshot?) {
        if let snapshot {
            let extent = tensors.map { $0.offset + $0.count }.max() ?? 0
            precondition(snapshot.host.byteCount >= extent * 4 && (0...terms.count).contains(snapshot.afterTerms),
                         "perturbation snapshot smaller than the tensors or past the terms")
        }
        let copy = UncheckedSendable(snapshot.map { ($0.host.floats, $0.afterTerms) })
        profile.measure("perturb") {
            // Work items are 128-element blocks (four chunks) of every tensor, numbered through `starts`.
            var starts = [0]
            for tensor in tensors { starts.append(starts.last! + (tensor.count + 127) / 128) }
            let base = UncheckedSendable(pointer(parameters))
            parallel.forRanges(starts.last!, grain: 16) { blocks in
                var t = starts.lastIndex { $0 <= blocks.lowerBound }!
                for block in blocks {
                    while block >= starts[t + 1] { t += 1 }
                    let tensor = tensors[t]
                    let local = block - starts[t]
                    let offset = tensor.offset + local * 128
                    perturbBlock(base.value + offset, count: min(128, tensor.count - local * 128), block: local, tensor: tensor,
                                 terms: terms, decayFactor: decayFactor, kind: kind,
                                 snapshot: copy.value.map { ($0.0 + offset, $0.1) })
                }
            }
        }
    }

    public func decode(_ encoded: DeviceBuffer, format: LinkFormat, count: Int, out: DeviceBuffer) {
        profile.measure("decode") {
            let source = UncheckedSendable(UnsafeRawPointer(base + encoded.offset))
            let target = UncheckedSendable(pointer(out))
            let group = LinkCodec.group
            parallel.forRanges((count + group - 1) / group, grain: 64) { groups in
                for g in groups {
                    let first = g * group
                    LinkCodec.decode(source.value, format: format, total: count, first: first, count: min(group, count - first),
                                     out: target.value + first)
                }
            }
        }
    }

    public func encode(_ values: DeviceBuffer, count: Int, format: LinkFormat, stochasticSeed: UInt64?, out: DeviceBuffer) {
        profile.measure("encode") {
            let source = UncheckedSendable(UnsafePointer(pointer(values)))
            let target = UncheckedSendable(base + out.offset)
            let group = LinkCodec.group
            parallel.forRanges((count + group - 1) / group, grain: 64) { groups in
                for g in groups {
                    let first = g * group
                    LinkCodec.encode(source.value, format: format, total: count, first: first, count: min(group, count - first),
                                     seed: stochasticSeed, encoded: target.value)
                }
            }
        }
    }

    public func argmax(logits: DeviceBuffer, out: DeviceBuffer, rows: Int, vocab: Int) {
        profile.measure("argmax") {
            let logits = UncheckedSendable(UnsafePointer(pointer(logits)))
            let out = UncheckedSendable(pointer(out, as: Int32.self))
            parallel.forRanges(rows) { range in
                for row in range {
                    out.value[row] = Int32(argmaxRow(logits.value + row * vocab, vocab))
                }
            }
        }
    }
}
