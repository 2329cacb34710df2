import ZOCore
import ZOModels

extension LoRAState {
    /// The adapter's current A and B (downloaded) as a PEFT adapter.
    public func peftAdapter() throws -> PEFTAdapter {
        var pairs: [PEFTAdapter.Pair] = []
        for factors in linears.joined() {
            let k = factors.linear.inputs
            let a: [Float] = try backend.read(factors.a, count: factors.parts.count * rank * k)
            let b: [Float] = try backend.read(factors.b, count: factors.bRows * rank)
            for (i, part) in factors.parts.enumerated() {
                pairs.append(PEFTAdapter.Pair(weightName: part.name, a: Array(a[i * rank * k..<(i + 1) * rank * k]),
                                              b: Array(b[part.bRow * rank..<(part.bRow + part.rows) * rank]), inputs: k,
                                              outputs: part.rows))
            }
        }
        return PEFTAdapter(rank: rank, alpha: options.alpha, rsLoRA: options.rsLoRA, pairs: pairs)
    }

    /// Takes A and B from `adapter`, which must have this state's rank and scale and a pair for
    /// exactly the weights it adapts.
    public func load(_ adapter: PEFTAdapter) throws {
        guard adapter.rank == rank, adapter.scale == options.scale else {
            throw ModelError.adapter("\(adapter.directory): r \(adapter.rank) and scale \(adapter.scale), the run's r \(rank) and scale "
                                     + "\(options.scale)")
        }
        var pairs: [String: PEFTAdapter.Pair] = [:]
        for pair in adapter.pairs { pairs[pair.weightName] = pair }
        let adapted = Set(adaptedWeights)
        if let extra = adapter.pairs.first(where: { !adapted.contains($0.weightName) }) {
            throw ModelError.adapter("\(adapter.directory) adapts \(extra.weightName), which the run's targets "
                                     + "(\(options.targets.joined(separator: ","))) leave out")
        }
        for factors in linears.joined() {
            let k = factors.linear.inputs
            var a: [Float] = [], b: [Float] = []
            for part in factors.parts {
                guard let pair = pairs[part.name] else {
                    throw ModelError.adapter("\(adapter.directory) has no factors for \(part.name)")
                }
                guard pair.inputs == k, pair.outputs == part.rows else {
                    throw ModelError.adapter("\(adapter.directory): \(part.name) is [\(pair.outputs), \(pair.inputs)] in the adapter, "
                                             + "[\(part.rows), \(k)] in the model")
                }
                a += pair.a
                b += pair.b
            }
            try copy(a, into: factors.a)
            try copy(b, into: factors.b)
            refreshRest(factors)
        }
        try backend.synchronize(backend.computeStream)
    }

    /// device ← values, through a buffer of their own.
    private func copy(_ values: [Float], into device: DeviceBuffer) throws {
        let staged = try backend.upload(values, label: "LoRA factors (staged)")
        defer { backend.free(staged) }
        backend.copyRows(source: staged, sourceStride: 0, destination: device, destinationStride: 0, rows: 1, width: values.count)
        try backend.synchronize(backend.computeStream)
    }
}
