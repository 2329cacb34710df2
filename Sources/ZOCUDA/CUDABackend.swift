#if canImport(Glibc)
import Glibc
#endif
import CCUDA
import Synchronization
import ZOCore

/// How a `CUDABackend`'s buffers map onto device allocations.
public enum CUDAAllocations: String, Sendable, CaseIterable {
    /// One allocation of the whole budget, buffers at their arena offsets within it: no
    /// allocation calls while training (the default).
    case arena
    /// Each buffer its own cuMemAlloc, with the same arena accounting: compute-sanitizer (or the
    /// CUDA stand-in's guard bytes) then sees every buffer's bounds.
    case perBuffer = "per-buffer"
}

/// How cuBLAS treats the fp32 inputs of a GEMM; it accumulates in fp32 in every case.
public enum GEMMPrecision: String, Sendable, CaseIterable {
    /// Strict fp32 (CUBLAS_COMPUTE_32F).
    case fp32
    /// Tensor cores, inputs rounded to TF32's 10 mantissa bits (CUBLAS_COMPUTE_32F_FAST_TF32).
    case tf32
    /// Tensor cores, inputs rounded to bf16 (CUBLAS_COMPUTE_32F_FAST_16BF).
    case bf16
    /// Tensor cores, inputs rounded to fp16 (CUBLAS_COMPUTE_32F_FAST_16F).
    case fp16

    /// The cublasComputeType_t.
    var computeType: Int32 {
        switch self { case .fp32: 68; case .tf32: 77; case .bf16: 75; case .fp16: 74 }
    }
}

/// The CUDA implementation of `Backend`: device memory accounted by a `DeviceArena` (the same
/// budget and high-water mark as the CPU backend), CUDA streams and events with their own
/// semantics, cuBLAS for GEMM (fp32 values; strict fp32, or TF32, bf16 or fp16 inputs on tensor
/// cores with fp32 accumulation: `GEMMPrecision`), and the
/// NVRTC-compiled kernels of `KernelSource` for everything else, launched through their
/// `KernelSignature`s. No operation allocates device memory.
///
/// Asynchronous failures (a launch or copy error) are kept and reported by the next
/// `synchronize`. Every operation runs on the compute stream, in issue order.
///
///
/// Unchecked Sendable: the driver and cuBLAS tables, handles and functions are set once in init and only
/// read after; everything that changes (streams, events, the first error, the buffers' device addresses)
/// is in `state`, behind a Mutex; the driver itself is thread-safe.
public final class CUDABackend: Backend, @unchecked Sendable {
    public let arena: DeviceArena
    public let device: CUDADevice
    let driver: zo_cuda_driver
    let blas: zo_cublas
    private let context: zo_cu_context
    let blasHandle: zo_cublas_handle
    private let functions: [String: zo_cu_function]
    private let modules: [zo_cu_module]
    /// How GEMMs round their inputs.
    public let precision: GEMMPrecision
    public let allocations: CUDAAllocations
    /// The one allocation behind the arena (`.arena`); nil when each buffer has its own.
    private let arenaBase: zo_cu_deviceptr?
    private let state = Mutex<State>(State())

    /// Streams and events as the bits of their handles (opaque pointers are not Sendable), and
    /// the device allocations behind the arena.
    private struct State {
        var streams: [Int] = []
        var events: [Int] = []
        var error: BackendError?
        /// Each buffer's arena offset and device address (`.perBuffer`), sorted by offset.
        var buffers: [(offset: Int, address: zo_cu_deviceptr)] = []
    }

    /// A backend on GPU `ordinal` with a device arena of `budget` bytes (default: 90% of the
    /// GPU's memory), kernels compiled for its architecture and cached in `kernelCache`;
    /// GEMMs with `precision`; buffers placed by `allocations`.
    public init(budget: Int? = nil, ordinal: Int = 0, libraries: CUDALibraries = .shared, kernelCache: String? = nil,
                precision: GEMMPrecision = .fp32, allocations: CUDAAllocations = .arena) throws(BackendError) {
        self.precision = precision
        self.allocations = allocations
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
            if allocations == .arena {
                var base: zo_cu_deviceptr = 0
                try driver.check(driver.cuMemAlloc(&base, bytes), "cuMemAlloc(\(ByteCount(bytes)))")
                arenaBase = base
            } else {
                arenaBase = nil
            }
            arena = DeviceArena(budget: bytes)
            var compute: zo_cu_stream?
            try driver.check(driver.cuStreamCreate(&compute, 1 /* non-blocking */), "cuStreamCreate")
            var handle: zo_cublas_handle?
            guard blas.cublasCreate(&handle) == 0, let handle, blas.cublasSetStream(handle, compute) == 0 else {
                throw CUDAError.unavailable("cuBLAS could not be initialised")
            }
            blasHandle = handle
            let compiler = try KernelCompiler(nvrtc: nvrtc, library: libraries.nvrtc.path ?? "", cacheDirectory: kernelCache)
            var functions: [String: zo_cu_function] = [:], modules: [zo_cu_module] = []
            for source in KernelSource.all {
                var module: zo_cu_module?
                var loaded = try compiler.cubin(source, architecture: device.architecture).withUnsafeBytes {
                    driver.cuModuleLoadData(&module, $0.baseAddress)
                }
                if loaded != 0 /* a stale or damaged cache file (or a failure the fresh image repeats) */ {
                    loaded = try compiler.cubin(source, architecture: device.architecture, fresh: true).withUnsafeBytes {
                        driver.cuModuleLoadData(&module, $0.baseAddress)
                    }
                }
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
            state.buffers.forEach { _ = driver.cuMemFree($0.address) }
        }
        if let arenaBase { _ = driver.cuMemFree(arenaBase) }
        modules.forEach { _ = driver.cuModuleUnload($0) }
        _ = driver.cuDevicePrimaryCtxRelease(Int32(device.ordinal))
    }

    public var name: String {
        "cuda (\(device.name), sm_\(device.architecture)\(precision == .fp32 ? "" : ", \(precision.rawValue.uppercased()) GEMM inputs"))"
    }

    // MARK: Memory

    public func allocate(_ byteCount: Int, label: String) throws(BackendError) -> DeviceBuffer {
        let buffer = try arena.allocate(byteCount, label: label)
        guard allocations == .perBuffer else { return buffer }
        var address: zo_cu_deviceptr = 0
        let result = driver.cuMemAlloc(&address, max(1, byteCount))
        guard result == 0 else {
            arena.free(buffer)
            throw .device("cuMemAlloc(\(ByteCount(byteCount))) for \(label): \(message(result))")
        }
        state.withLock { state in
            state.buffers.insert((buffer.offset, address), at: state.buffers.partitioningIndex { $0.offset >= buffer.offset })
        }
        return buffer
    }

    public func free(_ buffer: DeviceBuffer) {
        guard allocations == .perBuffer else { return arena.free(buffer) }
        // The mapping goes before the offset returns to the arena, which may hand it out again at once.
        let address = state.withLock { state -> zo_cu_deviceptr? in
            let index = state.buffers.partitioningIndex { $0.offset >= buffer.offset }
            guard index < state.buffers.count, state.buffers[index].offset == buffer.offset else { return nil }
            return state.buffers.remove(at: index).address
        }
        arena.free(buffer)
        if let address { note(driver.cuMemFree(address), "cuMemFree") }
    }

    /// The device address of `buffer` (a buffer from `allocate` or a view of one).
    func address(_ buffer: DeviceBuffer) -> zo_cu_deviceptr {
        if let arenaBase { return arenaBase + zo_cu_deviceptr(buffer.offset) }
        return state.withLock { state in
            let index = state.buffers.partitioningIndex { $0.offset > buffer.offset } - 1
            precondition(index >= 0, "\(buffer) is not in device memory")
            let (offset, address) = state.buffers[index]
            return address + zo_cu_deviceptr(buffer.offset - offset)
        }
    }

    // MARK: Streams, events, copies

    public var computeStream: StreamID { StreamID(0) }

    func stream(_ id: StreamID) -> zo_cu_stream? { zo_cu_stream(bitPattern: state.withLock { $0.streams[id.rawValue] }) }

    private func message(_ result: zo_cu_result) -> String {
        var text: UnsafePointer<CChar>?
        _ = driver.cuGetErrorString(result, &text)
        return text.map { String(cString: $0) } ?? "error \(result)"
    }

    /// Keeps the first failure for the next `synchronize`.
    func note(_ result: zo_cu_result, _ call: String) {
        guard result != 0 else { return }
        record(.device("\(call): \(message(result))"))
    }

    /// Keeps `error` for the next `synchronize` unless an earlier one is waiting.
    func record(_ error: BackendError) {
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
            return record(.copyFailed("upload of \(byteCount) bytes out of range"))
        }
        note(driver.cuMemcpyHtoDAsync(address(device), host.baseAddress + hostOffset, byteCount, self.stream(stream)), "cuMemcpyHtoDAsync")
    }

    public func download(_ device: DeviceBuffer, to host: HostBuffer, hostOffset: Int, byteCount: Int, on stream: StreamID) {
        guard hostOffset >= 0, byteCount >= 0, hostOffset + byteCount <= host.byteCount, byteCount <= device.byteCount else {
            return record(.copyFailed("download of \(byteCount) bytes out of range"))
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

    /// A grid covering `count` items with 256-thread blocks (grid-stride beyond 65,535 blocks).
    func blocks(_ count: Int) -> Int { min(65_535, max(1, (count + 255) / 256)) }

    /// Launches `kernel` on the compute stream with `arguments` (typed by its signature).
    func launch<each Argument: KernelArgument>(_ kernel: KernelSignature<repeat each Argument>, grid: (Int, Int, Int), block: Int,
                                                sharedBytes: Int = 0, _ arguments: repeat each Argument) {
        guard let function = functions[kernel.name] else { preconditionFailure("no kernel \(kernel.name)") }
        guard grid.0 > 0, grid.1 > 0, grid.2 > 0 else { return }  // nothing to do (no rows)
        let packed = kernel.packed(repeat each arguments) { [unowned self] in $0.map(address) ?? 0 }
        let result = packed.bytes.withUnsafeBytes { raw in
            var parameters = packed.starts.map { UnsafeMutableRawPointer(mutating: raw.baseAddress! + $0) as UnsafeMutableRawPointer? }
            return parameters.withUnsafeMutableBufferPointer {
                driver.cuLaunchKernel(function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block),
                                      1, 1, UInt32(sharedBytes), stream(computeStream), $0.baseAddress, nil)
            }
        }
        note(result, "cuLaunchKernel(\(kernel.name))")
    }
}

/// A raw pointer carried into a Sendable closure (the owner keeps the memory alive).
private struct UncheckedPointer: @unchecked Sendable {
    let value: UnsafeMutableRawPointer
    init(_ value: UnsafeMutableRawPointer) { self.value = value }
}

extension Array {
    /// The first index whose element satisfies `predicate` (false then true along the array).
    func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if predicate(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
