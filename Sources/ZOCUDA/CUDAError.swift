/// Failures of the CUDA layer; each names the call or kernel at fault.
public enum CUDAError: Error, CustomStringConvertible, Equatable {
    /// A library could not be loaded (the candidates tried and why).
    case unavailable(String)
    /// A driver call returned an error code.
    case driver(call: String, code: Int32, message: String)
    /// An NVRTC call failed.
    case nvrtc(call: String, message: String)
    /// A kernel source did not compile: its name, the options and NVRTC's log.
    case compilation(kernel: String, options: [String], log: String)

    public var description: String {
        switch self {
        case .unavailable(let what): "CUDA unavailable: \(what)"
        case .driver(let call, let code, let message): "\(call) failed: \(message) (CUresult \(code))"
        case .nvrtc(let call, let message): "\(call) failed: \(message)"
        case .compilation(let kernel, let options, let log):
            "kernel source '\(kernel)' does not compile (nvrtc \(options.joined(separator: " "))):\n\(log)"
        }
    }
}
