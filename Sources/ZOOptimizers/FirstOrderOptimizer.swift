import ZOCore
import ZOModels

/// Where a first-order optimizer keeps its state (momentum, Adam's moments).
public enum OptimizerStatePlacement: String, Sendable, Codable, CaseIterable {
    /// Beside the parameters in device memory; the update runs on the device.
    case device
    /// In host memory; each step downloads the gradients and the parameters, updates them on
    /// the host and uploads the parameters (device memory holds no state).
    case host
}

/// SGD with momentum or AdamW over the tensors a `FirstOrderTail` trains, from the gradients
/// its `backward` accumulated; each `step` applies them and zeroes them.
public final class FirstOrderOptimizer {
    public let tail: FirstOrderTail
    public let rule: FirstOrderRule
    public let placement: OptimizerStatePlacement
    /// Updates applied so far (Adam's bias correction counts them).
    public private(set) var stepsTaken = 0
    private let tensors: [TrainedTensor]
    /// Per tensor, `rule.stateCount` buffers (device placement) …
    private var deviceState: [[DeviceBuffer]] = []
    /// … or host arrays (host placement).
    private var hostState: [[[Float]]] = []

    /// Allocates zeroed state for every tensor the tail trains. When device memory runs out
    /// it throws, and what it had allocated goes back (through `deinit`, which a throwing
    /// initializer of a fully initialized object runs).
    public init(tail: FirstOrderTail, rule: FirstOrderRule, placement: OptimizerStatePlacement) throws {
        self.tail = tail
        self.rule = rule
        self.placement = placement
        tensors = tail.trainedTensors
        let backend = tail.backend
        switch placement {
        case .device:
            for tensor in tensors {
                deviceState.append([])
                for i in 0..<rule.stateCount {
                    let buffer = try backend.allocate(tensor.values.byteCount, label: "optimizer state \(i) of \(tensor.name)")
                    deviceState[deviceState.count - 1].append(buffer)
                    backend.zero(buffer, count: tensor.values.byteCount / 4)
                }
            }
        case .host:
            hostState = tensors.map { tensor in
                (0..<rule.stateCount).map { _ in [Float](repeating: 0, count: tensor.values.byteCount / 4) }
            }
        }
    }

    deinit { deviceState.joined().forEach(tail.backend.free) }

    /// Device bytes the state takes (zero with host placement).
    public var deviceStateBytes: Int { deviceState.joined().reduce(0) { $0 + DeviceArena.reservedSize($1.byteCount) } }

    /// Applies the accumulated gradients at learning rate `learningRate` and zeroes them.
    public func step(learningRate: Float) throws {
        stepsTaken += 1
        let backend = tail.backend
        switch placement {
        case .device:
            for (tensor, state) in zip(tensors, deviceState) {
                backend.optimizerStep(rule, parameters: tensor.values, gradients: tensor.gradient, state: state,
                                      count: tensor.values.byteCount / 4, step: stepsTaken, learningRate: learningRate, decays: tensor.decays)
            }
        case .host:
            for (t, tensor) in tensors.enumerated() {
                let count = tensor.values.byteCount / 4
                var values = try backend.read(tensor.values, count: count, as: Float.self)
                let gradients = try backend.read(tensor.gradient, count: count, as: Float.self)
                var first = hostState[t].first ?? [], second = hostState[t].dropFirst().first ?? []
                first.withUnsafeMutableBufferPointer { first in
                    second.withUnsafeMutableBufferPointer { second in
                        for i in 0..<count {
                            rule.update(&values[i], gradient: gradients[i], state: first.baseAddress.map { $0 + i },
                                        state2: second.baseAddress.map { $0 + i }, step: stepsTaken, learningRate: learningRate,
                                        decays: tensor.decays)
                        }
                    }
                }
                hostState[t] = Array([first, second].prefix(rule.stateCount))
                let host = try HostBuffer(byteCount: count * 4)
                values.withUnsafeBytes { host.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: count * 4) }
                backend.upload(host, hostOffset: 0, to: tensor.values, byteCount: count * 4, on: backend.computeStream)
                try backend.synchronize(backend.computeStream)
            }
        }
        tail.parametersChanged()
        tail.zeroGradients()
        try backend.synchronize(backend.computeStream)
    }
}
