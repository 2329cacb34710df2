import ArgumentParser
import ZOCore
import ZOModels
import ZOOffload

/// `zotune plan`: the memory model's predictions for a named shape, from shapes alone.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Predict peak device memory, host memory and link traffic of a ZO step, offloaded and resident.",
        discussion: """
            Predictions count what ZOTune's runners allocate (fp32 compute, so a slot holds its block in fp32 plus the \
            encoded copy for a low-bit codec); on the CPU backend they equal the arena's measured high-water mark.
            """
    )

    @Option(help: "A named shape: \(NamedShape.all.map(\.name).joined(separator: ", ")).")
    var shape = "opt-125m"

    @Option(help: "Sequences per batch (B).")
    var batch = 1

    @Option(help: "Tokens per sequence (T).")
    var seq = 2048

    @Option(help: "Keep only the shape's first N blocks (hidden size unchanged), as `bench zo-step --layers` does.")
    var layers: Int?

    @Option(help: "How streamed blocks are kept in host memory and sent: fp32, bf16, fp16 or fp8.")
    var codec = LinkFormat.fp32

    @Option(help: "Rotating block slots.")
    var slots = 2

    @Flag(name: .customLong("decode-by-tensor"), help: "With a low-bit --codec, streamed blocks stay encoded on the device and decode one fused linear at a time.")
    var decodeByTensor = false

    @Option(name: .customLong("resident-blocks"), help: "Blocks kept on the device: indices and ranges (0,3,10-12).")
    var residentBlocks: String?

    @Option(name: .customLong("device-memory"), help: "A device-memory budget to check the plan against (24GiB, 80GB).")
    var deviceMemory: String?

    @OptionGroup var hybrid: HybridOptions

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    @Flag(help: "Print a Markdown table over every named shape of every family (with --batch, --seq, --codec, --slots).")
    var table = false

    func validate() throws {
        guard batch >= 1, seq >= 1 else { throw ValidationError("--batch and --seq must be positive") }
        guard slots >= 1 else { throw ValidationError("--slots must be at least 1") }
        _ = try budget()
        try hybrid.validate()
        if table, hybrid.isFirstOrder || hybrid.lowRank != nil {
            throw ValidationError("--table covers full-rank ZO steps only; drop --fo-blocks, --rank and --zo low-rank")
        }
        if table, layers != nil { throw ValidationError("--table covers the full shapes; drop --layers") }
        if let layers, layers < 1 { throw ValidationError("--layers must be at least 1") }
        if decodeByTensor, codec == .fp32 { throw ValidationError("--decode-by-tensor needs a low-bit --codec (bf16, fp16 or fp8)") }
    }

    /// The first-order part for `shape`, when --fo-blocks asks for one.
    func firstOrderPlan(_ shape: ModelShape) throws -> FirstOrderPlan? {
        guard let options = try hybrid.firstOrderOptions() else { return nil }
        return FirstOrderPlan(blocks: options.blocks(of: shape.blocks.count), embedding: options.embedding, zeroOrder: options.zeroOrder,
                              deviceStateBuffers: options.statePlacement == .device ? options.rule.stateCount : 0)
    }

    /// Predictions offloaded by `plan` and resident, with the first-order part and the
    /// low-rank estimator if asked for.
    func predict(_ shape: ModelShape, plan: ResidencyPlan, firstOrder: FirstOrderPlan?) -> (offloaded: StepMemory, resident: StepMemory) {
        var offloadedPlan = plan
        offloadedPlan.firstOrderBlocks = firstOrder?.blocks ?? 0
        let streams = hybrid.streams
        let offloaded = firstOrder.map { MemoryModel.firstOrderStep(shape, plan: offloadedPlan, batch: batch, tokens: seq, firstOrder: $0, streams: streams) }
            ?? MemoryModel.offloadedStep(shape, plan: offloadedPlan, batch: batch, tokens: seq, streams: streams)
        let resident = firstOrder.map { MemoryModel.firstOrderStep(shape, plan: nil, batch: batch, tokens: seq, firstOrder: $0, streams: streams) }
            ?? MemoryModel.residentStep(shape, batch: batch, tokens: seq)
        guard let lowRank = hybrid.lowRank else { return (offloaded, resident) }
        if lowRank.lowRankOnly, firstOrder == nil {
            func stacked(_ plan: ResidencyPlan?) -> StepMemory {
                MemoryModel.stackedLowRankStep(shape, plan: plan, batch: batch, tokens: seq, rank: lowRank.rank,
                                               resampleEvery: lowRank.resampleEvery, streams: streams)
            }
            return (stacked(offloadedPlan), stacked(nil))
        }
        let k = firstOrder?.blocks ?? 0
        func adding(_ step: StepMemory, plan: ResidencyPlan?) -> StepMemory {
            MemoryModel.withLowRank(step, shape, plan: plan, firstOrderBlocks: k, batch: batch, tokens: seq, rank: lowRank.rank,
                                    resampleEvery: lowRank.resampleEvery, streams: streams)
        }
        return (adding(offloaded, plan: offloadedPlan), adding(resident, plan: nil))
    }

    func budget() throws -> Int? {
        guard let text = deviceMemory else { return nil }
        guard let bytes = parseByteSize(text, physical: 0), bytes >= 1 else {
            throw ValidationError("--device-memory '\(text)' is not a size such as 24GiB, 512MiB or 1e9")
        }
        return bytes
    }

    struct Report: Encodable {
        let shape: String
        let parameters: Int
        let blocks: Int
        let batch: Int
        let seq: Int
        /// Forward passes of the batch per step (the estimator's streams).
        let streams: Int
        let plan: ResidencyPlan
        let offloaded: StepMemory
        let offloaded_peak_device_bytes: Int
        let resident: StepMemory
        let resident_peak_device_bytes: Int
        let device_memory_budget: Int?
        let fits: Bool?
        /// With a budget the plan exceeds: the most slots that fit (nil when not even one does).
        let slots_that_fit: Int?
    }

    func run() throws {
        if table { return try printTable() }
        let shape = try namedShape(self.shape, seq: seq, layers: layers).shape
        let residentBlocks = try residentBlocks.map { try parseBlockList($0, option: "--resident-blocks") } ?? []
        if let bad = residentBlocks.first(where: { $0 >= shape.blocks.count }) {
            throw ValidationError("--resident-blocks: block \(bad) does not exist (\(self.shape) has \(shape.blocks.count) blocks)")
        }
        let firstOrder = try firstOrderPlan(shape)
        if let k = firstOrder?.blocks, let bad = residentBlocks.first(where: { $0 >= shape.blocks.count - k }) {
            throw ValidationError("--resident-blocks: block \(bad) is one of the \(k) first-order blocks (resident with the tail anyway)")
        }
        var plan = ResidencyPlan(slots: slots, residentBlocks: residentBlocks, format: codec, decodeByTensor: decodeByTensor)
        let (offloaded, resident) = predict(shape, plan: plan, firstOrder: firstOrder)
        plan.firstOrderBlocks = firstOrder?.blocks ?? 0
        let budget = try budget()
        let fits = budget.map { offloaded.devicePeakBytes <= $0 }
        let fewerSlots = budget.flatMap { budget in
            (1..<max(1, slots)).reversed().first { s in
                var smaller = plan
                smaller.slots = s
                return predict(shape, plan: smaller, firstOrder: firstOrder).offloaded.devicePeakBytes <= budget
            }
        }
        let report = Report(shape: self.shape, parameters: shape.parameterCount, blocks: shape.blocks.count, batch: batch, seq: seq,
                            streams: hybrid.streams, plan: plan, offloaded: offloaded, offloaded_peak_device_bytes: offloaded.devicePeakBytes,
                            resident: resident, resident_peak_device_bytes: resident.devicePeakBytes,
                            device_memory_budget: budget, fits: fits, slots_that_fit: fits == false ? fewerSlots : nil)
        if json { return try printJSONLine(report) }
        printText(report)
    }

    private func printText(_ r: Report) {
        let o = r.offloaded, s = r.resident
        func row(_ label: String, _ offloaded: String, _ resident: String) {
            func padded(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
            print(padded(label, 30) + padded(offloaded, 24) + resident)
        }
        print("\(r.shape): \(r.blocks) blocks, \(billions(r.parameters)) parameters; one ZO step (\(r.streams) forward passes) on \(r.batch) × \(r.seq) tokens")
        let resident = r.plan.residentBlocks.isEmpty ? "none" : r.plan.residentBlocks.sorted().map(String.init).joined(separator: ",")
        print("plan: \(r.plan.slots) slots, \(r.plan.format.rawValue) link and host master for streamed blocks, resident blocks: \(resident)"
              + (r.plan.firstOrderBlocks > 0 ? "; the last \(r.plan.firstOrderBlocks) blocks and the head first-order" : ""))
        print("")
        row("device memory", "offloaded", "resident (no offloading)")
        row("  parameters that stay", "\(ByteCount(o.residentParameterBytes))", "\(ByteCount(s.residentParameterBytes))")
        row("  block slots", "\(o.slots) × \(ByteCount(o.slotBytes))", "-")
        if o.decodedBlockBytes > 0 {
            row(r.plan.decodeByTensor ? "  decoded tensors (fp32)" : "  decoded block (fp32)", "\(ByteCount(o.decodedBlockBytes))", "-")
        }
        row("  activation workspace", "\(ByteCount(o.workspaceBytes))", "\(ByteCount(s.workspaceBytes))")
        row("  passes (tokens, hidden)", "\(ByteCount(o.passBytes))", "\(ByteCount(s.passBytes))")
        row("  head (logits, losses)", "\(ByteCount(o.headBytes))", "\(ByteCount(s.headBytes))")
        if r.plan.firstOrderBlocks > 0 {
            row("  first-order blocks + head", "\(ByteCount(o.firstOrderParameterBytes))", "\(ByteCount(s.firstOrderParameterBytes))")
            row("  their gradients", "\(ByteCount(o.gradientBytes))", "\(ByteCount(s.gradientBytes))")
            row("  optimizer state", "\(ByteCount(o.optimizerStateBytes))", "\(ByteCount(s.optimizerStateBytes))")
            row("  tapes and logits kept", "\(ByteCount(o.recordingBytes))", "\(ByteCount(s.recordingBytes))")
            row("  backward temporaries", "\(ByteCount(o.backwardBytes))", "\(ByteCount(s.backwardBytes))")
        }
        if o.lowRankBytes > 0 { row("  low-rank factors", "\(ByteCount(o.lowRankBytes))", "\(ByteCount(s.lowRankBytes))") }
        row("  peak", "\(ByteCount(o.devicePeakBytes))", "\(ByteCount(s.devicePeakBytes))")
        row("host memory", "\(ByteCount(o.hostBytes))", "\(ByteCount(s.hostBytes))")
        if o.downloadBytesPerStep == o.uploadBytesPerStep {
            row("link per step, each way", "\(ByteCount(o.uploadBytesPerStep))", "0")
        } else {
            row("link per step, up / down", "\(ByteCount(o.uploadBytesPerStep)) / \(ByteCount(o.downloadBytesPerStep))", "0")
        }
        guard let budget = r.device_memory_budget, let fits = r.fits else { return }
        print("")
        if fits {
            print("fits \(ByteCount(budget)) of device memory (\(ByteCount(budget - o.devicePeakBytes)) to spare)")
        } else if let slots = r.slots_that_fit {
            print("does not fit \(ByteCount(budget)): needs \(ByteCount(o.devicePeakBytes)); fits with --slots \(slots)")
        } else {
            print("does not fit \(ByteCount(budget)): needs \(ByteCount(o.devicePeakBytes)), and more than \(ByteCount(budget)) even with one slot")
        }
    }

    private func printTable() throws {
        let plan = ResidencyPlan(slots: slots, format: codec, decodeByTensor: decodeByTensor)
        let fp32 = ResidencyPlan(slots: slots)
        print("| shape | parameters | resident peak | offloaded peak, fp32 link | offloaded peak, \(codec.rawValue) link\(decodeByTensor ? " by tensor" : "") | host memory (\(codec.rawValue)) | link per step, each way (\(codec.rawValue)) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for (name, named) in NamedShape.all where seq <= named.maxPositions {
            let shape = named.shape
            let offloaded = MemoryModel.offloadedStep(shape, plan: plan, batch: batch, tokens: seq, streams: hybrid.streams)
            let cells = [name, billions(shape.parameterCount),
                         "\(ByteCount(MemoryModel.residentStep(shape, batch: batch, tokens: seq).devicePeakBytes))",
                         "\(ByteCount(MemoryModel.offloadedStep(shape, plan: fp32, batch: batch, tokens: seq, streams: hybrid.streams).devicePeakBytes))",
                         "\(ByteCount(offloaded.devicePeakBytes))", "\(ByteCount(offloaded.hostBytes))", "\(ByteCount(offloaded.uploadBytesPerStep))"]
            print("| " + cells.joined(separator: " | ") + " |")
        }
    }

    private func billions(_ count: Int) -> String {
        count >= 1_000_000_000 ? TextFormat.decimal(Double(count) / 1e9, decimals: 2) + " B" : TextFormat.decimal(Double(count) / 1e6, decimals: 1) + " M"
    }
}
