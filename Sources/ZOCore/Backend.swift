/// A queue of work on a backend. Work issued to one stream runs in issue order; work on
/// different streams may overlap unless ordered by events.
public struct StreamID: Sendable, Hashable {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
}

/// A marker recorded on a stream. Waiting on an event waits for the work issued to its
/// stream before the most recent `record` call (CUDA's semantics).
public struct EventID: Sendable, Hashable {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
}

/// Activation fused into a linear layer's epilogue.
public enum Activation: String, Sendable, Codable {
    case none
    case relu
}

/// The gate's function in a gated MLP unit: act(gate) · up.
public enum GateFunction: String, Sendable, Codable {
    /// silu(x) = x·σ(x) (SwiGLU: Llama, Qwen, Mistral, Phi-3).
    case silu
    /// PyTorch's tanh approximation of GELU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GeGLU: Gemma).
    case geluTanh
}

/// The geometry of an `attention` call (see `Backend.attention`).
public struct AttentionShape: Sendable, Equatable {
    /// B.
    public var batch: Int
    /// Tq: new tokens per sequence.
    public var queries: Int
    /// Tk: visible keys per sequence (earlier tokens plus the new ones), ≤ `capacity`.
    public var keys: Int
    /// Rows per sequence in the k, v and mask buffers.
    public var capacity: Int
    /// NH query heads and NKV key/value heads (NKV divides NH).
    public var heads: Int
    public var kvHeads: Int
    /// HS.
    public var headSize: Int
    /// Floats from one q row to the next, and from one k (or v) row to the next.
    public var queryStride: Int
    public var kvStride: Int
    /// Score scale, usually 1/√HS.
    public var scale: Float
    /// Soft cap c of the scaled scores, s → c·tanh(s/c) before the mask (Gemma 2); 0 for none.
    public var softcap: Float = 0
    /// W of sliding-window attention: the query at position t sees keys s with t − W < s ≤ t
    /// (itself and the W − 1 before it); 0 for no window.
    public var window: Int

    public init(batch: Int, queries: Int, keys: Int, capacity: Int, heads: Int, kvHeads: Int, headSize: Int,
                queryStride: Int, kvStride: Int, scale: Float, window: Int = 0) {
        self.batch = batch
        self.queries = queries
        self.keys = keys
        self.capacity = capacity
        self.heads = heads
        self.kvHeads = kvHeads
        self.headSize = headSize
        self.queryStride = queryStride
        self.kvStride = kvStride
        self.scale = scale
        self.window = window
    }

    /// The first key the query at position `t` sees (0 without a window).
    public func firstVisibleKey(_ t: Int) -> Int { window > 0 ? max(0, t - window + 1) : 0 }

    /// Self-attention over a fused [B, T, (NH + 2·NKV)·HS] q|k|v buffer, no earlier tokens; `scale`
    /// nil is 1/√HS.
    public static func fused(batch: Int, tokens: Int, heads: Int, kvHeads: Int, headSize: Int, window: Int = 0,
                             scale: Float? = nil, softcap: Float = 0) -> AttentionShape {
        let stride = (heads + 2 * kvHeads) * headSize
        var shape = AttentionShape(batch: batch, queries: tokens, keys: tokens, capacity: tokens, heads: heads, kvHeads: kvHeads,
                                   headSize: headSize, queryStride: stride, kvStride: stride,
                                   scale: scale ?? 1 / Float(headSize).squareRoot(), window: window)
        shape.softcap = softcap
        return shape
    }
}

/// One tensor of a parameter buffer swept by `Backend.perturb`.
public struct PerturbedTensor: Sendable, Equatable {
    /// First element within the buffer.
    public let offset: Int
    public let count: Int
    /// The tensor's id in the perturbation streams (its index among the model's tensors).
    public let id: UInt32
    /// Whether weight decay applies (not to biases and norms).
    public let decays: Bool

    public init(offset: Int, count: Int, id: UInt32, decays: Bool) {
        self.offset = offset
        self.count = count
        self.id = id
        self.decays = decays
    }
}

/// A perturbation `gatherRows` applies on the fly: the table is one tensor (stream `tensor`)
/// whose row r is read as θ[r·width + j] + Σ_k c_k·z_k(r·width + j), with the operations and
/// order of `Backend.perturb` and each term's `coefficient`.
///
/// The offloader uses it when a tied embedding must stay at θ + εz for the head of the +
/// stream while the − stream's embedding needs θ − εz.
public struct RowPerturbation: Sendable, Equatable {
    public let tensor: UInt32
    public let terms: [PerturbationTerm]
    public let kind: PerturbationKind

    public init(tensor: UInt32, terms: [PerturbationTerm], kind: PerturbationKind) {
        self.tensor = tensor
        self.terms = terms
        self.kind = kind
    }
}

/// One direction z (the stream of `seed`) in a `Backend.perturb` pass with its coefficient for
/// tensors with and without weight decay.
public struct PerturbationTerm: Sendable, Equatable {
    public let seed: UInt64
    public let coefficient: Float
    public let decayCoefficient: Float

    public init(seed: UInt64, coefficient: Float, decayCoefficient: Float) {
        self.seed = seed
        self.coefficient = coefficient
        self.decayCoefficient = decayCoefficient
    }

    /// The same coefficient for every tensor.
    public init(seed: UInt64, coefficient: Float) {
        self.init(seed: seed, coefficient: coefficient, decayCoefficient: coefficient)
    }
}

/// What a compute device offers ZOTune: a budgeted arena of device memory, asynchronous
/// host<->device copies on streams ordered by events, and the operations the models need.
///
/// Where a perturbation pass copies its parameters' values part-way through its terms: the
/// flushed weights, captured by the pass that applies the pending update anyway (used for
/// asynchronous checkpoints, which then cost no pass of their own).
public struct PerturbationSnapshot: Sendable {
    /// fp32 values, one per element of the perturbed buffer, at the element's offset.
    public let host: HostBuffer
    /// Terms applied (after the decay) before the values are copied.
    public let afterTerms: Int

    public init(host: HostBuffer, afterTerms: Int) {
        self.host = host
        self.afterTerms = afterTerms
    }
}

/// Page-locked host memory, unlocked when the pin is released.
// @unchecked Sendable: `release` (not a @Sendable closure) is a `let` called once, by `deinit`, on whichever
// thread drops the last reference; `CUDABackend.pin`'s closure only reads its captures and calls the driver,
// which is thread-safe.
public final class HostPin: @unchecked Sendable {
    private let release: () -> Void

    public init(release: @escaping () -> Void) { self.release = release }

    deinit { release() }
}

/// Models and the offloading scheduler are written against this protocol only.
///
/// Conventions:
/// - Every buffer argument is a `DeviceBuffer` from this backend's arena (or a view of one).
/// - Element types: Float32 unless a parameter says Int32.
/// - Compute operations run on `computeStream` in issue order. A backend may run them
///   synchronously (CPU) or enqueue them (CUDA); results are visible to later operations
///   and, after `synchronize`, to the host.
/// - Shapes use B (batch), T (sequence), C (channels), NH (heads), HS (head size), V (vocab).
public protocol Backend: AnyObject, Sendable {
    /// Human-readable description ("cpu (2 threads, OpenBLAS)").
    var name: String { get }

    // MARK: Memory

    /// The arena every device buffer comes from.
    var arena: DeviceArena { get }

    /// Reserves `byteCount` bytes of device memory; `label` names the buffer in errors.
    func allocate(_ byteCount: Int, label: String) throws(BackendError) -> DeviceBuffer

    /// Releases a buffer from `allocate`. The caller makes sure no queued work still uses it.
    func free(_ buffer: DeviceBuffer)

    // MARK: Streams, events, copies

    /// The stream compute operations run on.
    var computeStream: StreamID { get }

    /// A new stream for copies (upload or offload).
    func makeStream(label: String) -> StreamID

    /// A new event, initially complete.
    func makeEvent() -> EventID

    /// Marks the point after all work issued so far to `stream`.
    func record(_ event: EventID, on stream: StreamID)

    /// Work issued to `stream` after this call starts only once `event` has completed.
    /// Does not block the host unless `stream` is a synchronous compute stream.
    func wait(_ stream: StreamID, for event: EventID)

    /// Blocks the host until `event` has completed; throws the first copy failure of its stream.
    func synchronize(_ event: EventID) throws(BackendError)

    /// Blocks the host until all work issued to `stream` has completed; throws its first failure.
    func synchronize(_ stream: StreamID) throws(BackendError)

    /// Copies `byteCount` bytes from `host` at `hostOffset` to the start of `device`.
    /// The backend keeps `host` alive until the copy has run.
    func upload(_ host: HostBuffer, hostOffset: Int, to device: DeviceBuffer, byteCount: Int, on stream: StreamID)

    /// Copies `byteCount` bytes from the start of `device` to `host` at `hostOffset`.
    func download(_ device: DeviceBuffer, to host: HostBuffer, hostOffset: Int, byteCount: Int, on stream: StreamID)

    /// Makes copies to and from `host` fast and truly asynchronous (page-locked memory on a
    /// GPU) for as long as the returned pin lives; nil where nothing needs doing (the CPU) or
    /// the memory cannot be pinned (copies then still work, staged). Release the pin before
    /// the buffer.
    func pin(_ host: HostBuffer) -> HostPin?

    // MARK: Operations (compute stream)

    /// out[n, :] (+)= table[indices[n], :] for n < count; `indices` is Int32 [count],
    /// `table` [rows, width], `out` [count, width]. With `accumulate` the rows are added.
    /// With a `perturbation`, each gathered row is read as the table would be after a
    /// `perturb` pass with those terms (decay factor 1), bit for bit, without changing it.
    func gatherRows(table: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int,
                    out: DeviceBuffer, accumulate: Bool, perturbation: RowPerturbation?)

    /// out [M, N] = activation(x [M, K] · weight [N, K]ᵀ + bias [N]), or with `accumulate`
    /// out = activation(out + x · weightᵀ + bias) (a residual or a low-rank term added first).
    func linear(x: DeviceBuffer, weight: DeviceBuffer, bias: DeviceBuffer?, out: DeviceBuffer,
                m: Int, n: Int, k: Int, activation: Activation, accumulate: Bool)

    /// out [rows, C] = (x - mean) / sqrt(var + eps) · weight + bias, per row (biased variance).
    /// `weight`/`bias` nil means 1/0. `out` may equal `x`.
    func layerNorm(x: DeviceBuffer, weight: DeviceBuffer?, bias: DeviceBuffer?, out: DeviceBuffer,
                   rows: Int, channels: Int, eps: Float)

    /// out [rows, C] = x / sqrt(mean(x²) + eps) · (weightOffset + weight), per row (Llama's
    /// RMSNorm with offset 0; Gemma's, whose weights are stored around 0, with offset 1).
    /// `out` may equal `x`.
    func rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, weightOffset: Float, out: DeviceBuffer, rows: Int, channels: Int, eps: Float)

    /// Rotary position embedding (the "rotate half" form), in place on the first `heads`
    /// heads of each row of x [rows, ·] (rows `rowStride` floats apart): for i < HS/2,
    /// (a, b) = (x[i], x[i + HS/2]) becomes (a·cos − b·sin, b·cos + a·sin) with cos and sin
    /// read from table [positions, HS] (HS/2 cosines then HS/2 sines) at row positions[r]
    /// (Int32 [rows]).
    func rotary(x: DeviceBuffer, positions: DeviceBuffer, table: DeviceBuffer, rows: Int, heads: Int, headSize: Int,
                rowStride: Int)

    /// out [rows, F] = function(gate) · up with gateUp [rows, 2F] holding gate then up per row.
    func gatedActivation(_ function: GateFunction, gateUp: DeviceBuffer, out: DeviceBuffer, rows: Int, width: Int)

    /// buffer [count] ·= factor, in place (Gemma's embeddings times √C).
    func scale(_ buffer: DeviceBuffer, count: Int, by factor: Float)

    /// destination [count] += source [count] (a residual added after a post-norm).
    func add(_ source: DeviceBuffer, to destination: DeviceBuffer, count: Int)

    /// buffer [count] = cap · tanh(buffer / cap), in place (Gemma 2's soft-capped logits).
    func softcap(_ buffer: DeviceBuffer, count: Int, cap: Float)

    /// Copies `rows` rows of `width` floats: row r of `source` (rows `sourceStride` apart)
    /// to row r of `destination` (rows `destinationStride` apart).
    func copyRows(source: DeviceBuffer, sourceStride: Int, destination: DeviceBuffer, destinationStride: Int,
                  rows: Int, width: Int)

    /// Causal attention with grouped key/value heads and a key padding mask.
    /// q [B, Tq, ·] holds head h at column h·HS of each row (rows `queryStride` apart);
    /// k, v [B, capacity, ·] hold kv head g at column g·HS (rows `kvStride` apart);
    /// keyMask Int32 [B, capacity] (1 = real token); out [B, Tq, NH·HS]. Query i sits at
    /// position Tk − Tq + i and attends to keys s at or before it (and within `shape.window`)
    /// with keyMask[s] = 1; head h reads kv head h / (NH / NKV). A query with no visible key
    /// gets zeros.
    func attention(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, keyMask: DeviceBuffer, out: DeviceBuffer,
                   shape: AttentionShape)

    /// losses [N] = -log softmax(logits [N, V])[targets[n]]; 0 where targets[n] < 0.
    /// `targets` is Int32 [N].
    func crossEntropy(logits: DeviceBuffer, targets: DeviceBuffer, losses: DeviceBuffer, rows: Int, vocab: Int)

    /// One pass of zeroth-order updates over a parameter buffer: for every element e of every
    /// tensor, θ ← a·θ + Σ_k c_k·z_k(e) in that order, where a = `decayFactor` and c_k =
    /// `decayCoefficient` for tensors that decay, else a = 1 and c_k = `coefficient`, and z_k
    /// is `Noise`'s stream (kind, term seed, tensor id) at the element's index in its tensor.
    /// With a `snapshot`, each element's value after the decay and the first
    /// `snapshot.afterTerms` terms is also written to the snapshot's host buffer at the
    /// element's index (ready once the compute stream is synchronized).
    func perturb(_ parameters: DeviceBuffer, tensors: [PerturbedTensor], terms: [PerturbationTerm], decayFactor: Float,
                 kind: PerturbationKind, snapshot: PerturbationSnapshot?)

    /// out [count] = the fp32 values of `count` values encoded in `format` (see `LinkFormat`).
    func decode(_ encoded: DeviceBuffer, format: LinkFormat, count: Int, out: DeviceBuffer)

    /// out = `values` [count] encoded in `format`: each value (over its fp8 group's scale)
    /// rounded to nearest even, or stochastically when `stochasticSeed` is given (value i
    /// uses uniform i % 32 of `Noise.uniforms(seed:chunk: i / 32)`).
    func encode(_ values: DeviceBuffer, count: Int, format: LinkFormat, stochasticSeed: UInt64?, out: DeviceBuffer)

    /// out Int32 [N] = argmax over V of logits [N, V] (first maximum on ties).
    func argmax(logits: DeviceBuffer, out: DeviceBuffer, rows: Int, vocab: Int)
}

extension Backend {
    /// `gatherRows` of the table as it is.
    public func gatherRows(table: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int, out: DeviceBuffer, accumulate: Bool) {
        gatherRows(table: table, width: width, indices: indices, count: count, out: out, accumulate: accumulate, perturbation: nil)
    }

    /// Llama's RMSNorm: `rmsNorm` with weight offset 0.
    public func rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rows: Int, channels: Int, eps: Float) {
        rmsNorm(x: x, weight: weight, weightOffset: 0, out: out, rows: rows, channels: channels, eps: eps)
    }

    /// `perturb` without a snapshot.
    public func perturb(_ parameters: DeviceBuffer, tensors: [PerturbedTensor], terms: [PerturbationTerm], decayFactor: Float,
                        kind: PerturbationKind) {
        perturb(parameters, tensors: tensors, terms: terms, decayFactor: decayFactor, kind: kind, snapshot: nil)
    }

    /// Allocates a device buffer and uploads `values` into it on `stream` (the compute
    /// stream by default), keeping a host copy alive until the copy has run.
    public func upload<T: BitwiseCopyable>(_ values: [T], label: String, on stream: StreamID? = nil) throws -> DeviceBuffer {
        let bytes = values.count * MemoryLayout<T>.stride
        let host = try HostBuffer(byteCount: bytes)
        values.withUnsafeBytes { host.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
        let device = try allocate(bytes, label: label)
        upload(host, hostOffset: 0, to: device, byteCount: bytes, on: stream ?? computeStream)
        return device
    }

    /// Downloads `count` elements of type `T` from `device` and waits for them.
    public func read<T: BitwiseCopyable>(_ device: DeviceBuffer, count: Int, as type: T.Type = T.self) throws -> [T] {
        let bytes = count * MemoryLayout<T>.stride
        let host = try HostBuffer(byteCount: bytes)
        download(device, to: host, hostOffset: 0, byteCount: bytes, on: computeStream)
        try synchronize(computeStream)
        return Array(UnsafeBufferPointer(start: host.baseAddress.assumingMemoryBound(to: T.self), count: count))
    }
}
