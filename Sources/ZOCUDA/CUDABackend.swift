#if canImport(Glibc)
import Glibc
#endif
import CCUDA
import Synchronization
import ZOCore

/// The CUDA implementation of `Backend`: one device allocation managed by a `DeviceArena`
/// (the same budget and high-water accounting as the CPU backend), CUDA streams and events
/// with their own semantics, cuBLAS for GEMM (fp32 inputs: strict fp32, or TF32 on tensor
/// cores), and the NVRTC-compiled kernels of `KernelSource` for everything else.
///
/// Asynchronous failures (a launch or copy error) are kept and reported by the next
/// `synchronize`. Kernel argument tables go through one small device region written on the
/// compute stream, so every operation runs on the compute stream, in issue order.
///
/// Not yet: bf16/fp16 GEMM inputs, the backward ops of `GradientBackend`.
public final class CUDABackend: Backend, @unchecked Sendable {
    public let arena: DeviceArena
    public let device: CUDADevice
    private let driver: zo_cuda_driver
    private let blas: zo_cublas
    private let context: zo_cu_context
    private let deviceBase: zo_cu_deviceptr
    private let blasHandle: zo_cublas_handle
    private let functions: [String: zo_cu_function]
    private let modules: [zo_cu_module]
    /// Kernel argument tables (compute stream only): an allocation of their own, outside the
    /// arena, so the arena holds exactly what the memory model counts.
    private let arguments: zo_cu_deviceptr
    /// Whether GEMMs run on tensor cores in TF32 (inputs rounded to 10 mantissa bits, fp32
    /// accumulation) instead of strict fp32.
    public let tf32: Bool
    private let state = Mutex<State>(State())

    /// Streams and events as the bits of their handles (opaque pointers are not Sendable).
    private struct State {
        var streams: [Int] = []
        var events: [Int] = []
        var error: BackendError?
    }

    /// Bytes reserved for kernel argument tables.
    static let argumentBytes = 1 << 20

    /// A backend on GPU `ordinal` with a device arena of `budget` bytes (default: 90% of the
    /// GPU's memory), kernels compiled for its architecture and cached in `kernelCache`;
    /// GEMMs in strict fp32, or in TF32 on tensor cores with `tf32`.
    public init(budget: Int? = nil, ordinal: Int = 0, libraries: CUDALibraries = .shared,
                kernelCache: String? = nil, tf32: Bool = false) throws(BackendError) {
        self.tf32 = tf32
        guard let driver = libraries.driver.table else { throw .unavailable("no CUDA driver (libcuda.so.1) on this machine") }
        guard let nvrtc = libraries.nvrtc.table else { throw .unavailable("NVRTC not found (set ZOTUNE_CUDA_LIBS or install nvidia-cuda-nvrtc)") }
        guard let blas = libraries.cublas.table else { throw .unavailable("cuBLAS not found (set ZOTUNE_CUDA_LIBS or install nvidia-cublas)") }
        self.driver = driver
        self.blas = blas
        do {
            let devices = try driver.devices()
            guard devices.indices.contains(ordinal) else { throw CUDAError.unavailable("no GPU \(ordinal) (\(devices.count) found)") }
            device = devices[ordinal]
            var context: zo_cu_context?
            try driver.check(driver.cuDevicePrimaryCtxRetain(&context, Int32(ordinal)), "cuDevicePrimaryCtxRetain")
            try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
            self.context = context!
            let bytes = budget ?? device.totalMemory / 10 * 9
            var base: zo_cu_deviceptr = 0
            try driver.check(driver.cuMemAlloc(&base, bytes), "cuMemAlloc(\(ByteCount(bytes)))")
            deviceBase = base
            arena = DeviceArena(budget: bytes)
            var compute: zo_cu_stream?
            try driver.check(driver.cuStreamCreate(&compute, 1 /* non-blocking */), "cuStreamCreate")
            var handle: zo_cublas_handle?
            guard blas.cublasCreate(&handle) == 0, let handle, blas.cublasSetStream(handle, compute) == 0 else {
                throw CUDAError.unavailable("cuBLAS could not be initialised")
            }
            blasHandle = handle
            let compiler = try KernelCompiler(nvrtc: nvrtc, cacheDirectory: kernelCache)
            var functions: [String: zo_cu_function] = [:], modules: [zo_cu_module] = []
            for source in KernelSource.all {
                let cubin = try compiler.cubin(source, architecture: device.architecture)
                var module: zo_cu_module?
                let loaded = cubin.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress) }
                try driver.check(loaded, "cuModuleLoadData(\(source.name))")
                modules.append(module!)
                for entry in source.entryPoints where functions[entry] == nil {
                    var function: zo_cu_function?
                    try driver.check(driver.cuModuleGetFunction(&function, module, entry), "cuModuleGetFunction(\(entry))")
                    functions[entry] = function
                }
            }
            self.functions = functions
            self.modules = modules
            var tables: zo_cu_deviceptr = 0
            try driver.check(driver.cuMemAlloc(&tables, Self.argumentBytes), "cuMemAlloc(kernel arguments)")
            arguments = tables
            let computeBits = Int(bitPattern: compute)
            state.withLock { $0.streams = [computeBits] }
        } catch let error as CUDAError {
            throw .unavailable(error.description)
        } catch let error as BackendError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }

    deinit {
        _ = blas.cublasDestroy(blasHandle)
        state.withLock { state in
            state.events.forEach { _ = driver.cuEventDestroy(zo_cu_event(bitPattern: $0)) }
            state.streams.forEach { _ = driver.cuStreamDestroy(zo_cu_stream(bitPattern: $0)) }
        }
        modules.forEach { _ = driver.cuModuleUnload($0) }
        _ = driver.cuMemFree(arguments)
        _ = driver.cuMemFree(deviceBase)
        _ = driver.cuDevicePrimaryCtxRelease(Int32(device.ordinal))
    }

    public var name: String { "cuda (\(device.name), sm_\(device.architecture)\(tf32 ? ", TF32 GEMM" : ""))" }

    // MARK: Memory

    public func allocate(_ byteCount: Int, label: String) throws(BackendError) -> DeviceBuffer {
        try arena.allocate(byteCount, label: label)
    }

    public func free(_ buffer: DeviceBuffer) { arena.free(buffer) }

    private func address(_ buffer: DeviceBuffer) -> zo_cu_deviceptr { deviceBase + zo_cu_deviceptr(buffer.offset) }

    // MARK: Streams, events, copies

    public var computeStream: StreamID { StreamID(0) }

    private func stream(_ id: StreamID) -> zo_cu_stream? { zo_cu_stream(bitPattern: state.withLock { $0.streams[id.rawValue] }) }

    /// Keeps the first failure for the next `synchronize`.
    private func note(_ result: zo_cu_result, _ call: String) {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = driver.cuGetErrorString(result, &text)
        let error = BackendError.device("\(call): \(text.map { String(cString: $0) } ?? "error \(result)")")
        state.withLock { if $0.error == nil { $0.error = error } }
    }

    private func takeError() throws(BackendError) {
        if let error = state.withLock({ state -> BackendError? in defer { state.error = nil }; return state.error }) { throw error }
    }

    public func makeStream(label: String) -> StreamID {
        _ = driver.cuCtxSetCurrent(context)
        var stream: zo_cu_stream?
        note(driver.cuStreamCreate(&stream, 1), "cuStreamCreate(\(label))")
        let bits = Int(bitPattern: stream)
        return state.withLock { $0.streams.append(bits); return StreamID($0.streams.count - 1) }
    }

    public func makeEvent() -> EventID {
        var event: zo_cu_event?
        note(driver.cuEventCreate(&event, 2 /* disable timing */), "cuEventCreate")
        let bits = Int(bitPattern: event)
        return state.withLock { $0.events.append(bits); return EventID($0.events.count - 1) }
    }

    private func event(_ id: EventID) -> zo_cu_event? { zo_cu_event(bitPattern: state.withLock { $0.events[id.rawValue] }) }

    public func record(_ event: EventID, on stream: StreamID) {
        note(driver.cuEventRecord(self.event(event), self.stream(stream)), "cuEventRecord")
    }

    public func wait(_ stream: StreamID, for event: EventID) {
        note(driver.cuStreamWaitEvent(self.stream(stream), self.event(event), 0), "cuStreamWaitEvent")
    }

    public func synchronize(_ event: EventID) throws(BackendError) {
        note(driver.cuEventSynchronize(self.event(event)), "cuEventSynchronize")
        try takeError()
    }

    public func synchronize(_ stream: StreamID) throws(BackendError) {
        note(driver.cuStreamSynchronize(self.stream(stream)), "cuStreamSynchronize")
        try takeError()
    }

    public func upload(_ host: HostBuffer, hostOffset: Int, to device: DeviceBuffer, byteCount: Int, on stream: StreamID) {
        guard hostOffset >= 0, byteCount >= 0, hostOffset + byteCount <= host.byteCount, byteCount <= device.byteCount else {
            return state.withLock { if $0.error == nil { $0.error = .copyFailed("upload of \(byteCount) bytes out of range") } }
        }
        note(driver.cuMemcpyHtoDAsync(address(device), host.baseAddress + hostOffset, byteCount, self.stream(stream)), "cuMemcpyHtoDAsync")
    }

    public func download(_ device: DeviceBuffer, to host: HostBuffer, hostOffset: Int, byteCount: Int, on stream: StreamID) {
        guard hostOffset >= 0, byteCount >= 0, hostOffset + byteCount <= host.byteCount, byteCount <= device.byteCount else {
            return state.withLock { if $0.error == nil { $0.error = .copyFailed("download of \(byteCount) bytes out of range") } }
        }
        note(driver.cuMemcpyDtoHAsync(host.baseAddress + hostOffset, address(device), byteCount, self.stream(stream)), "cuMemcpyDtoHAsync")
    }

    /// Registers `host` with the driver (page-locked), so that copies from and to it run
    /// asynchronously at full link speed; nil when the driver refuses (copies then stage).
    public func pin(_ host: HostBuffer) -> HostPin? {
        guard host.byteCount > 0, driver.cuMemHostRegister(host.baseAddress, host.byteCount, 0) == 0 else { return nil }
        let driver = driver, address = UncheckedPointer(host.baseAddress)
        return HostPin { [host] in
            _ = driver.cuMemHostUnregister(address.value)
            withExtendedLifetime(host) {}
        }
    }

    // MARK: Kernel launches

    /// A kernel argument, passed by value.
    enum Argument {
        case buffer(DeviceBuffer?)
        case address(zo_cu_deviceptr)
        case int(Int)
        case uint32(UInt32)
        case uint64(UInt64)
        case float(Float)
    }

    /// Launches `name` on the compute stream.
    func launch(_ name: String, grid: (Int, Int, Int), block: Int, sharedBytes: Int = 0, _ values: [Argument]) {
        guard let function = functions[name] else { preconditionFailure("no kernel \(name)") }
        let slots = UnsafeMutableRawPointer.allocate(byteCount: 8 * max(1, values.count), alignment: 8)
        defer { slots.deallocate() }
        var parameters: [UnsafeMutableRawPointer?] = []
        for (index, value) in values.enumerated() {
            let slot = slots + 8 * index
            switch value {
            case .buffer(let buffer): slot.storeBytes(of: buffer.map(address) ?? 0, as: UInt64.self)
            case .address(let pointer): slot.storeBytes(of: pointer, as: UInt64.self)
            case .int(let int): slot.storeBytes(of: Int32(int), as: Int32.self)
            case .uint32(let word): slot.storeBytes(of: word, as: UInt32.self)
            case .uint64(let word): slot.storeBytes(of: word, as: UInt64.self)
            case .float(let float): slot.storeBytes(of: float, as: Float.self)
            }
            parameters.append(slot)
        }
        let result = parameters.withUnsafeMutableBufferPointer {
            driver.cuLaunchKernel(function, UInt32(max(1, grid.0)), UInt32(max(1, grid.1)), UInt32(max(1, grid.2)), UInt32(block), 1, 1,
                                  UInt32(sharedBytes), stream(computeStream), $0.baseAddress, nil)
        }
        note(result, "cuLaunchKernel(\(name))")
    }

    /// Copies `bytes` into the argument region at `offset` on the compute stream and returns
    /// its device address (the driver stages pageable memory before returning).
    private func table(_ bytes: [UInt8], at offset: Int) -> zo_cu_deviceptr {
        precondition(offset + bytes.count <= Self.argumentBytes, "kernel argument table too large")
        let target = arguments + zo_cu_deviceptr(offset)
        if !bytes.isEmpty {
            bytes.withUnsafeBytes { note(driver.cuMemcpyHtoDAsync(target, $0.baseAddress, bytes.count, stream(computeStream)), "cuMemcpyHtoDAsync") }
        }
        return target
    }

    /// A grid covering `count` elements with 256-thread blocks (grid-stride beyond 65,535 blocks).
    private func blocks(_ count: Int) -> Int { min(65_535, max(1, (count + 255) / 256)) }

    /// `zo_term`s: seed (u64), coefficient, decay coefficient (f32 each).
    private func termBytes(_ terms: [PerturbationTerm]) -> [UInt8] {
        terms.flatMap { term -> [UInt8] in
            let seed: [UInt8] = withUnsafeBytes(of: term.seed.littleEndian, Array.init)
            let coefficient: [UInt8] = withUnsafeBytes(of: term.coefficient, Array.init)
            let decay: [UInt8] = withUnsafeBytes(of: term.decayCoefficient, Array.init)
            return seed + coefficient + decay
        }
    }

    /// A `zo_tensor`: offset, count (u64 each), id, decays (u32 each).
    private static func tensorBytes(_ tensor: PerturbedTensor) -> [UInt8] {
        let offset: [UInt8] = withUnsafeBytes(of: UInt64(tensor.offset).littleEndian, Array.init)
        let count: [UInt8] = withUnsafeBytes(of: UInt64(tensor.count).littleEndian, Array.init)
        let id: [UInt8] = withUnsafeBytes(of: tensor.id.littleEndian, Array.init)
        let decays: [UInt8] = withUnsafeBytes(of: UInt32(tensor.decays ? 1 : 0).littleEndian, Array.init)
        return offset + count + id + decays
    }

    private static func kindCode(_ kind: PerturbationKind) -> Int {
        switch kind { case .gaussian: 0; case .rademacher: 1; case .ones: 2 }
    }

    // MARK: Operations

    public func gatherRows(table: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int,
                           out: DeviceBuffer, accumulate: Bool, perturbation: RowPerturbation?) {
        let terms = perturbation.map { self.table(termBytes($0.terms), at: 0) } ?? 0
        launch("zo_gather_rows", grid: (count, 1, 1), block: 256,
               [.buffer(table), .int(width), .buffer(indices), .int(count), .buffer(out), .int(accumulate ? 1 : 0),
                .address(terms), .int(perturbation?.terms.count ?? 0), .uint32(perturbation?.tensor ?? 0),
                .int(Self.kindCode(perturbation?.kind ?? .gaussian))])
    }

    public func linear(x: DeviceBuffer, weight: DeviceBuffer, bias: DeviceBuffer?, out: DeviceBuffer,
                       m: Int, n: Int, k: Int, activation: Activation, accumulate: Bool) {
        // Row-major out[m, n] = x[m, k] · weight[n, k]ᵀ is column-major outᵀ = weightᵀ(op T) · xᵀ.
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        let status = blas.cublasGemmEx(blasHandle, 1, 0, Int32(n), Int32(m), Int32(k), &alpha,
                                       UnsafeRawPointer(bitPattern: UInt(address(weight))), 0 /* R_32F */, Int32(k),
                                       UnsafeRawPointer(bitPattern: UInt(address(x))), 0, Int32(k), &beta,
                                       UnsafeMutableRawPointer(bitPattern: UInt(address(out))), 0, Int32(n),
                                       tf32 ? 77 /* COMPUTE_32F_FAST_TF32 */ : 68 /* COMPUTE_32F */, -1 /* default algorithm */)
        if status != 0 { state.withLock { if $0.error == nil { $0.error = .device("cublasGemmEx: status \(status)") } } }
        guard bias != nil || activation == .relu else { return }
        launch("zo_bias_activation", grid: (blocks(m * n), 1, 1), block: 256,
               [.buffer(out), .buffer(bias), .uint64(UInt64(m)), .int(n), .int(activation == .relu ? 1 : 0)])
    }

    public func layerNorm(x: DeviceBuffer, weight: DeviceBuffer?, bias: DeviceBuffer?, out: DeviceBuffer,
                          rows: Int, channels: Int, eps: Float) {
        launch("zo_layer_norm", grid: (rows, 1, 1), block: 256,
               [.buffer(x), .buffer(weight), .buffer(bias), .buffer(out), .int(channels), .float(eps)])
    }

    public func rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rows: Int, channels: Int, eps: Float) {
        launch("zo_rms_norm", grid: (rows, 1, 1), block: 256, [.buffer(x), .buffer(weight), .buffer(out), .int(channels), .float(eps)])
    }

    public func rotary(x: DeviceBuffer, positions: DeviceBuffer, table: DeviceBuffer, rows: Int, heads: Int, headSize: Int,
                       rowStride: Int) {
        launch("zo_rotary", grid: (rows, 1, 1), block: 128,
               [.buffer(x), .buffer(positions), .buffer(table), .int(heads), .int(headSize), .int(rowStride)])
    }

    public func swiglu(gateUp: DeviceBuffer, out: DeviceBuffer, rows: Int, width: Int) {
        launch("zo_swiglu", grid: (blocks(rows * width), 1, 1), block: 256,
               [.buffer(gateUp), .buffer(out), .uint64(UInt64(rows)), .int(width)])
    }

    public func copyRows(source: DeviceBuffer, sourceStride: Int, destination: DeviceBuffer, destinationStride: Int,
                         rows: Int, width: Int) {
        launch("zo_copy_rows", grid: (blocks(rows * width), 1, 1), block: 256,
               [.buffer(source), .int(sourceStride), .buffer(destination), .int(destinationStride), .int(rows), .int(width)])
    }

    public func attention(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, keyMask: DeviceBuffer, out: DeviceBuffer,
                          shape: AttentionShape) {
        // Scores of one query in shared memory: up to 12,288 keys in the default 48 KB.
        precondition(shape.keys * 4 <= 48 * 1024, "attention over more than 12,288 keys needs a tiled kernel")
        launch("zo_attention", grid: (shape.queries, shape.heads, shape.batch), block: 256, sharedBytes: shape.keys * 4,
               [.buffer(q), .buffer(k), .buffer(v), .buffer(keyMask), .buffer(out), .int(shape.queries), .int(shape.keys),
                .int(shape.capacity), .int(shape.heads), .int(shape.kvHeads), .int(shape.headSize), .int(shape.queryStride),
                .int(shape.kvStride), .float(shape.scale)])
    }

    public func crossEntropy(logits: DeviceBuffer, targets: DeviceBuffer, losses: DeviceBuffer, rows: Int, vocab: Int) {
        launch("zo_cross_entropy", grid: (rows, 1, 1), block: 256, [.buffer(logits), .buffer(targets), .buffer(losses), .int(vocab)])
    }

    public func argmax(logits: DeviceBuffer, out: DeviceBuffer, rows: Int, vocab: Int) {
        launch("zo_argmax", grid: (rows, 1, 1), block: 256, [.buffer(logits), .buffer(out), .int(vocab)])
    }

    public func perturb(_ parameters: DeviceBuffer, tensors: [PerturbedTensor], terms: [PerturbationTerm], decayFactor: Float,
                        kind: PerturbationKind, snapshot: PerturbationSnapshot?) {
        var starts: [UInt64] = [0]
        for tensor in tensors { starts.append(starts.last! + UInt64(tensor.count)) }
        let tensorBytes = tensors.flatMap(Self.tensorBytes)
        let startBytes = starts.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
        let termTable = termBytes(terms)
        let tensorsAt = table(tensorBytes, at: 0)
        let startsAt = table(startBytes, at: tensorBytes.count)
        let termsAt = table(termTable, at: tensorBytes.count + startBytes.count)
        var copy: DeviceBuffer?
        if snapshot != nil {
            do { copy = try arena.allocate(parameters.byteCount, label: "perturbation snapshot") } catch {
                state.withLock { if $0.error == nil { $0.error = error } }
                return
            }
        }
        launch("zo_perturb", grid: (blocks(Int(starts.last!)), 1, 1), block: 256,
               [.buffer(parameters), .address(tensorsAt), .address(startsAt), .int(tensors.count), .address(termsAt), .int(terms.count),
                .float(decayFactor), .int(Self.kindCode(kind)), .buffer(copy), .int(snapshot?.afterTerms ?? 0)])
        if let snapshot, let copy {
            let extent = (tensors.map { $0.offset + $0.count }.max() ?? 0) * 4
            download(copy, to: snapshot.host, hostOffset: 0, byteCount: extent, on: computeStream)
            note(driver.cuStreamSynchronize(stream(computeStream)), "cuStreamSynchronize")
            arena.free(copy)
        }
    }

    public func decode(_ encoded: DeviceBuffer, format: LinkFormat, count: Int, out: DeviceBuffer) {
        guard format != .fp32 else {
            return copyRows(source: encoded, sourceStride: count, destination: out, destinationStride: count, rows: 1, width: count)
        }
        launch("zo_decode", grid: (blocks(count), 1, 1), block: 256,
               [.buffer(encoded), .buffer(out), .uint64(UInt64(count)), .int(Self.formatCode(format))])
    }

    public func encode(_ values: DeviceBuffer, count: Int, format: LinkFormat, stochasticSeed: UInt64?, out: DeviceBuffer) {
        guard format != .fp32 else {
            return copyRows(source: values, sourceStride: count, destination: out, destinationStride: count, rows: 1, width: count)
        }
        launch("zo_encode", grid: ((count + 127) / 128, 1, 1), block: 128,
               [.buffer(values), .buffer(out), .uint64(UInt64(count)), .int(Self.formatCode(format)), .int(stochasticSeed == nil ? 0 : 1),
                .uint64(stochasticSeed ?? 0)])
    }

    private static func formatCode(_ format: LinkFormat) -> Int {
        switch format { case .fp32: 0; case .bf16: 1; case .fp16: 2; case .fp8: 3 }
    }

    /// z of elements [0, count) of stream (seed, tensor) into `out`, for parity checks
    /// against `Noise`.
    public func fillNoise(_ out: DeviceBuffer, count: Int, kind: PerturbationKind, seed: UInt64, tensor: UInt32) {
        launch("zo_fill_noise", grid: (blocks(count), 1, 1), block: 256,
               [.buffer(out), .uint64(UInt64(count)), .int(Self.kindCode(kind)), .uint64(seed), .uint32(tensor)])
    }
}

/// A raw pointer carried into a Sendable closure (the owner keeps the memory alive).
private struct UncheckedPointer: @unchecked Sendable {
    let value: UnsafeMutableRawPointer
    init(_ value: UnsafeMutableRawPointer) { self.value = value }
}
