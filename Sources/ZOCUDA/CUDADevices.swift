import CCUDA
import ZOCore

/// One GPU as the driver reports it.
public struct CUDADevice: Sendable, Equatable, Codable {
    public let ordinal: Int
    public let name: String
    public let totalMemory: Int
    /// Compute capability, e.g. 9.0 for H100: kernels are compiled for sm_<major><minor>.
    public let major: Int
    public let minor: Int
    public let multiprocessors: Int

    public var architecture: Int { major * 10 + minor }
}

extension zo_cuda_driver {
    /// Throws naming `call` unless `result` is success.
    func check(_ result: zo_cu_result, _ call: String) throws(CUDAError) {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(result, &text)
        throw .driver(call: call, code: result, message: text.map { String(cString: $0) } ?? "unknown error")
    }

    /// The driver's CUDA version (e.g. 13000 for 13.0).
    public func version() throws(CUDAError) -> Int {
        var version: Int32 = 0
        try check(cuDriverGetVersion(&version), "cuDriverGetVersion")
        return Int(version)
    }

    /// Every GPU the driver sees (initialising it first).
    public func devices() throws(CUDAError) -> [CUDADevice] {
        try check(cuInit(0), "cuInit")
        var count: Int32 = 0
        try check(cuDeviceGetCount(&count), "cuDeviceGetCount")
        return try (0..<Int(count)).map { (ordinal) throws(CUDAError) in
            var device: zo_cu_device = 0
            try check(cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet")
            var name = [CChar](repeating: 0, count: 256)
            try check(cuDeviceGetName(&name, Int32(name.count), device), "cuDeviceGetName")
            var memory = 0
            try check(cuDeviceTotalMem(&memory, device), "cuDeviceTotalMem")
            func attribute(_ id: Int32) throws(CUDAError) -> Int {
                var value: Int32 = 0
                try check(cuDeviceGetAttribute(&value, id, device), "cuDeviceGetAttribute")
                return Int(value)
            }
            return CUDADevice(ordinal: ordinal, name: String(nulTerminated: name), totalMemory: memory,
                              major: try attribute(Int32(ZO_CU_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)),
                              minor: try attribute(Int32(ZO_CU_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)),
                              multiprocessors: try attribute(Int32(ZO_CU_ATTRIBUTE_MULTIPROCESSOR_COUNT)))
        }
    }
}
