import CCUDA
import Foundation
import Testing
import ZOCore
import ZOCUDA

/// The CUDA stand-in (Tests/CUDAStandIn, loaded through ZOTUNE_CUDA_LIBS by scripts/test.sh)
/// catches what it claims to: a kernel writing past its buffer, a missing event wait, GEMM
/// arguments cuBLAS refuses, launches a GPU refuses, a barrier some threads skip.
@Suite struct CUDAStandInTests {
    /// Whether the driver this process loaded is the stand-in.
    static let present: Bool = (try? CUDALibraries.shared.driver.table?.devices().first?.name.contains("stand-in")) == true

    /// The stand-in's driver.
    static var driver: zo_cuda_driver? { present ? CUDALibraries.shared.driver.table : nil }

    /// A function of the stand-in's own (not CUDA's), looked up in the loaded library.
    static func standInFunction<T>(_ name: String, as type: T.Type) throws -> T {
        let path = try #require(CUDALibraries.shared.driver.path)
        let handle = try #require(dlopen(path, RTLD_NOW | RTLD_NOLOAD))
        return unsafeBitCast(try #require(dlsym(handle, name)), to: type)
    }

    /// Compiles `code` with the stand-in's NVRTC and loads it.
    static func module(_ code: String, entry: String) throws -> zo_cu_function? {
        let driver = try #require(Self.driver)
        let nvrtc = try #require(CUDALibraries.shared.nvrtc.table)
        let compiler = try KernelCompiler(nvrtc: nvrtc, library: CUDALibraries.shared.nvrtc.path ?? "", cacheDirectory: nil)
        let cubin = try compiler.cubin(KernelSource(name: entry, code: code, entryPoints: [entry]), architecture: 90)
        var module: zo_cu_module?
        #expect(cubin.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress) } == 0)
        var function: zo_cu_function?
        #expect(driver.cuModuleGetFunction(&function, module, entry) == 0)
        return function
    }

    /// The explanation the stand-in gives for `result` on this thread.
    static func message(_ result: zo_cu_result) -> String {
        var text: UnsafePointer<CChar>?
        _ = driver?.cuGetErrorString(result, &text)
        return text.map { String(cString: $0) } ?? ""
    }

    /// Launches `function` on a new stream with each value in its own 8-byte slot.
    static func launch(_ function: zo_cu_function?, grid: UInt32 = 1, block: UInt32, shared: UInt32 = 0, on stream: zo_cu_stream?,
                       _ values: [UInt64]) -> zo_cu_result {
        var slots = values
        return slots.withUnsafeMutableBufferPointer { buffer in
            var parameters = (0..<buffer.count).map { UnsafeMutableRawPointer(buffer.baseAddress! + $0) as UnsafeMutableRawPointer? }
            return driver!.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, shared, stream, &parameters, nil)
        }
    }

    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func devicesListsTheStandIn() throws {
        let outcome = try CLI.run(["devices", "--compile"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("GPU 0: ZOTune CUDA stand-in (CPU, not a GPU)") && outcome.stdout.contains("compute capability 9.0"),
                "\(outcome.stdout)")
        for source in KernelSource.all { #expect(outcome.stdout.contains("compiled \(source.name) for sm_90"), "\(outcome.stdout)") }
    }

    static let fill = """
        extern "C" __global__ void zo_test_fill(float *out, int count) {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i <= count) out[i] = 1.0f;  // one element too many
        }
        """

    @Test(.enabled(if: present, "the CUDA stand-in is not loaded (scripts/test.sh sets ZOTUNE_CUDA_LIBS)"))
    func aKernelWritingOnePastItsBufferIsCaughtNamingTheAllocation() throws {
        let driver = try #require(Self.driver)
        let function = try Self.module(Self.fill, entry: "zo_test_fill")
        var buffer: zo_cu_deviceptr = 0
        #expect(driver.cuMemAlloc(&buffer, 32 * 4) == 0)
        var stream: zo_cu_stream?
        #expect(driver.cuStreamCreate(&stream, 1) == 0)
        defer { _ = driver.cuStreamDestroy(stream) }
        #expect(Self.launch(function, block: 64, on: stream, [buffer, 32]) == 0)
        let synchronized = driver.cuStreamSynchronize(stream)
        #expect(synchronized == 700, "an out-of-bounds write is an illegal address")
        let text = Self.message(synchronized)
        #expect(text.contains("zo_test_fill") && text.contains("byte 128 of device allocation") && text.contains("(128 bytes at")
                && text.contains("argument 0"), "\(text)")
        let freed = driver.cuMemFree(buffer)
        #expect(freed == 700 && Self.message(freed).contains("past its end"), "\(Self.message(freed))")
    }

    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func launchesAGPURefusesAreRefused() throws {
        let driver = try #require(Self.driver)
        let function = try Self.module(Self.fill, entry: "zo_test_fill")
        var buffer: zo_cu_deviceptr = 0
        #expect(driver.cuMemAlloc(&buffer, 4096 * 4) == 0)
        defer { _ = driver.cuMemFree(buffer) }
        let tooManyThreads = Self.launch(function, block: 2048, on: nil, [buffer, 100])
        #expect(tooManyThreads == 1 && Self.message(tooManyThreads).contains("2048"))
        let tooMuchShared = Self.launch(function, block: 32, shared: 48 * 1024 + 4, on: nil, [buffer, 100])
        #expect(tooMuchShared == 1 && Self.message(tooMuchShared).contains("shared memory"))
        let host = try HostBuffer(byteCount: 4096)
        let hostPointer = UInt64(UInt(bitPattern: host.baseAddress))
        let mixedUp = Self.launch(function, block: 32, on: nil, [hostPointer, 10])
        #expect(mixedUp == 700 && Self.message(mixedUp).contains("not device memory"), "\(Self.message(mixedUp))")
        var copied = driver.cuMemcpyHtoDAsync(hostPointer, host.baseAddress, 16, nil)
        #expect(copied == 1, "a host address as the target of a host-to-device copy")
        copied = driver.cuMemcpyHtoDAsync(buffer + 4096 * 4 - 8, host.baseAddress, 16, nil)
        #expect(copied == 1 && Self.message(copied).contains("not inside one device allocation"))
    }

    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func aBarrierSomeThreadsSkipIsReported() throws {
        let driver = try #require(Self.driver)
        let function = try Self.module("""
            extern "C" __global__ void zo_test_barrier(float *out) {
                __shared__ float values[64];
                values[threadIdx.x] = (float)threadIdx.x;
                __syncthreads();
                out[threadIdx.x] = values[63 - threadIdx.x];
                if (threadIdx.x < 16) return;
                __syncthreads();
            }
            """, entry: "zo_test_barrier")
        var buffer: zo_cu_deviceptr = 0
        #expect(driver.cuMemAlloc(&buffer, 64 * 4) == 0)
        defer { _ = driver.cuMemFree(buffer) }
        var stream: zo_cu_stream?
        #expect(driver.cuStreamCreate(&stream, 1) == 0)
        defer { _ = driver.cuStreamDestroy(stream) }
        #expect(Self.launch(function, block: 64, on: stream, [buffer]) == 0)
        let synchronized = driver.cuStreamSynchronize(stream)
        #expect(Self.message(synchronized).contains("__syncthreads reached by 48 of the 64 threads"), "\(Self.message(synchronized))")
        // The first barrier, which every thread reaches, made the block's shared values visible.
        var values = [Float](repeating: 0, count: 64)
        #expect(driver.cuMemcpyDtoHAsync(&values, buffer, 256, stream) == 0)
        #expect(values == (0..<64).map { Float(63 - $0) })
    }

    /// Shared memory no thread of the block wrote holds NaN, not an earlier block's values.
    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func sharedMemoryNoThreadWroteReadsAsNaN() throws {
        let driver = try #require(Self.driver)
        let function = try Self.module("""
            extern "C" __global__ void zo_test_unwritten(float *out) {
                __shared__ float values[32];
                if (threadIdx.x < 16) values[threadIdx.x] = 1.0f + blockIdx.x;
                __syncthreads();
                out[blockIdx.x * 32 + threadIdx.x] = values[threadIdx.x];
            }
            """, entry: "zo_test_unwritten")
        var buffer: zo_cu_deviceptr = 0
        #expect(driver.cuMemAlloc(&buffer, 4 * 32 * 4) == 0)
        defer { _ = driver.cuMemFree(buffer) }
        #expect(Self.launch(function, grid: 4, block: 32, on: nil, [buffer]) == 0)
        var values = [Float](repeating: 0, count: 4 * 32)
        #expect(driver.cuMemcpyDtoHAsync(&values, buffer, 4 * 32 * 4, nil) == 0)
        for block in 0..<4 {
            #expect(values[block * 32..<block * 32 + 16].allSatisfy { $0 == Float(1 + block) })
            #expect(values[block * 32 + 16..<block * 32 + 32].allSatisfy { $0.isNaN }, "block \(block): \(values[block * 32 + 16])")
        }
    }

    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func cublasRefusesWhatCuBLASRefuses() throws {
        let blas = try #require(CUDALibraries.shared.cublas.table)
        let driver = try #require(Self.driver)
        var handle: zo_cublas_handle?
        #expect(blas.cublasCreate(&handle) == 0)
        defer { _ = blas.cublasDestroy(handle) }
        var stream: zo_cu_stream?
        #expect(driver.cuStreamCreate(&stream, 1) == 0)
        defer { _ = driver.cuStreamDestroy(stream) }
        #expect(blas.cublasSetStream(handle, stream) == 0)
        var a: zo_cu_deviceptr = 0, b: zo_cu_deviceptr = 0, c: zo_cu_deviceptr = 0
        #expect(driver.cuMemAlloc(&a, 16 * 16 * 4) == 0 && driver.cuMemAlloc(&b, 16 * 16 * 4) == 0 && driver.cuMemAlloc(&c, 16 * 16 * 4) == 0)
        defer { [a, b, c].forEach { _ = driver.cuMemFree($0) } }
        var alpha: Float = 1, beta: Float = 0
        func gemm(m: Int32, lda: Int32, type: Int32 = 0, compute: Int32 = 68) -> Int32 {
            blas.cublasGemmEx(handle, 0, 0, m, 16, 16, &alpha, UnsafeRawPointer(bitPattern: UInt(a)), type, lda,
                              UnsafeRawPointer(bitPattern: UInt(b)), type, 16, &beta, UnsafeMutableRawPointer(bitPattern: UInt(c)), 0, 16,
                              compute, -1)
        }
        #expect(gemm(m: 16, lda: 15) == 7, "a leading dimension smaller than the rows is CUBLAS_STATUS_INVALID_VALUE")
        #expect(gemm(m: -1, lda: 16) == 7)
        #expect(gemm(m: 16, lda: 16, type: 2, compute: 77) == 15, "fp16 inputs with TF32 compute are not supported")
        #expect(gemm(m: 16, lda: 16) == 0)
        #expect(driver.cuStreamSynchronize(stream) == 0)
        // A valid leading dimension that reaches past A's allocation: the stream fails as on a GPU.
        #expect(gemm(m: 16, lda: 32) == 13)
        let synchronized = driver.cuStreamSynchronize(stream)
        #expect(synchronized == 700 && Self.message(synchronized).contains("reads"), "\(Self.message(synchronized))")
    }

    /// An upload on a copy stream that compute reads without waiting for it gives wrong
    /// results under the stand-in's random delays; with the event wait, never.
    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func aMissingEventWaitShowsUpAsAWrongResult() throws {
        typealias Get = @convention(c) (UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Void
        typealias Set = @convention(c) (UInt64, UInt32, UInt32) -> Void
        let get = try Self.standInFunction("zo_stand_in_get_delays", as: Get.self)
        let set = try Self.standInFunction("zo_stand_in_set_delays", as: Set.self)
        var seed: UInt64 = 0, maxMicroseconds: UInt32 = 0, percent: UInt32 = 0
        get(&seed, &maxMicroseconds, &percent)
        set(11, 2000, 100)  // for the streams created now: this backend's only
        let backend = try CUDABackend(budget: 64 << 20, allocations: .perBuffer)
        let copies = backend.makeStream(label: "uploads")
        set(seed, maxMicroseconds, percent)
        let uploaded = backend.makeEvent()
        let values = (0..<1024).map { Float($0) }
        let host = try HostBuffer(byteCount: 4096)
        let pin = backend.pin(host)
        values.withUnsafeBytes { host.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: 4096) }
        var wrong = [0, 0]
        for (index, waits) in [false, true].enumerated() {
            for _ in 0..<12 {
                let target = try backend.allocate(4096, label: "target"), copy = try backend.allocate(4096, label: "copy")
                defer { backend.free(target); backend.free(copy) }
                backend.upload(host, hostOffset: 0, to: target, byteCount: 4096, on: copies)
                backend.record(uploaded, on: copies)
                if waits { backend.wait(backend.computeStream, for: uploaded) }
                backend.copyRows(source: target, sourceStride: 1024, destination: copy, destinationStride: 1024, rows: 1, width: 1024)
                let result = try backend.read(copy, count: 1024, as: Float.self)
                try backend.synchronize(copies)
                if result != values { wrong[index] += 1 }
            }
        }
        withExtendedLifetime(pin) {}
        #expect(wrong[0] > 0, "without the wait, some of 12 runs read the buffer before the upload")
        #expect(wrong[1] == 0, "with the wait, every run reads the uploaded values")
    }

    /// Offloading streams its blocks from page-locked memory: the only copies from pageable
    /// memory (staged by the driver, no overlap) are the resident parameters' first upload and
    /// small batch and result copies (the stand-in counts them and prints the count at exit).
    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func offloadedBlocksStreamFromPinnedMemory() throws {
        let outcome = try CLI.run(["bench", "zo-step", "--backend", "cuda", "--shape", "opt-125m", "--layers", "3", "--batch", "2",
                                   "--seq", "16", "--offload", "--offloaded-only", "--iterations", "2"],
                                  environment: ["ZOTUNE_CUDA_STAND_IN_REPORT": "1"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let report = try #require(outcome.stderr.split(separator: "\n").first { $0.contains("pageable copies") })
        let pageableBytes = try #require(report.split(separator: "(").last?.split(separator: " ").first.flatMap { Int($0) })
        let line = try #require(outcome.stdout.split(separator: "\n").first { $0.contains("bytes_uploaded_per_step") })
        let step = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["bytes_uploaded_per_step"] as? Int)
        let resident = (50_272 + 2050) * 768 * 4  // the token and position tables, uploaded once
        // Three steps (a warm-up and two timed) stream 3 × `step` bytes each way: from pageable
        // memory they alone would pass this bound.
        #expect(step > (1 << 20) && pageableBytes < resident + (1 << 20), "\(pageableBytes) bytes copied from pageable memory")
    }

    /// A cached kernel image the driver refuses (damaged, or from another compiler) is compiled
    /// again and the cache file replaced, rather than failing the backend.
    @Test(.enabled(if: present, "the CUDA stand-in is not loaded"))
    func aCachedKernelTheDriverRefusesIsCompiledAgain() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try CUDABackend(budget: 16 << 20, kernelCache: directory)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".cubin") }
        #expect(files.count == KernelSource.all.count)
        let damaged = Data([0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 124))
        for file in files { try damaged.write(to: URL(fileURLWithPath: directory + "/" + file)) }
        let backend = try CUDABackend(budget: 16 << 20, kernelCache: directory)
        #expect(try backend.read(try backend.upload([Float(1), 2, 3], label: "check"), count: 3, as: Float.self) == [1, 2, 3])
        for file in files {
            #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file)) != damaged, "\(file) was compiled again")
        }
    }
}
