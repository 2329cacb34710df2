#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOFormats

/// A LoRA adapter as PEFT saves it: `adapter_config.json` (r, lora_alpha, use_rslora,
/// target_modules, …) and `adapter_model.safetensors` with one pair per adapted linear,
/// `base_model.model.<the base's weight name without .weight>.lora_A.weight` [r, in] and
/// `….lora_B.weight` [out, r]. The adapted linear computes W x + scale · B A x, with scale
/// lora_alpha / r (lora_alpha / √r with rsLoRA).
public struct PEFTAdapter: Sendable {
    /// The folder it was read from.
    public let directory: String
    /// r, the rank.
    public let rank: Int
    /// lora_alpha.
    public let alpha: Float
    /// Whether scale is lora_alpha / √r.
    public let rsLoRA: Bool
    /// The adapted modules' last names ("q_proj"), as the tensors have them.
    public var targetModules: [String] {
        var seen: Set<String> = []
        return pairs.compactMap { pair in
            let module = pair.weightName.split(separator: ".").dropLast().last.map(String.init) ?? pair.weightName
            return seen.insert(module).inserted ? module : nil
        }
    }
    /// lora_alpha / r, or lora_alpha / √r with rsLoRA.
    public var scale: Float { rsLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }
    /// The adapted weights (the base's names, `….weight`) with their factors.
    public let pairs: [Pair]

    /// One adapted linear: A [r, in] and B [out, r], row-major.
    public struct Pair: Sendable {
        /// The base's weight ("model.layers.0.self_attn.q_proj.weight").
        public let weightName: String
        /// A [r, in].
        public let a: [Float]
        /// B [out, r].
        public let b: [Float]
        /// in: the weight's columns.
        public let inputs: Int
        /// out: the weight's rows.
        public let outputs: Int

        public init(weightName: String, a: [Float], b: [Float], inputs: Int, outputs: Int) {
            precondition(a.count % inputs == 0 && b.count % outputs == 0 && a.count / inputs == b.count / outputs)
            (self.weightName, self.a, self.b, self.inputs, self.outputs) = (weightName, a, b, inputs, outputs)
        }
    }

    /// An adapter made in memory (by training), to write with `write(to:baseModel:)`.
    public init(rank: Int, alpha: Float, rsLoRA: Bool, pairs: [Pair], directory: String = "") {
        (self.rank, self.alpha, self.rsLoRA, self.pairs, self.directory) = (rank, alpha, rsLoRA, pairs, directory)
    }

    /// The config keys PEFT writes that change what an adapter computes, refused when set
    /// (ZOTune merges plain LoRA).
    static let unsupportedSettings = ["use_dora", "fan_in_fan_out", "modules_to_save", "rank_pattern", "alpha_pattern", "lora_bias",
                                      "alora_invocation_tokens", "layer_replication", "target_parameters", "trainable_token_indices"]

    /// Reads the adapter in `directory`; errors name the file and the setting or tensor.
    public init(directory: String) throws(ModelError) {
        self.directory = directory
        let configPath = directory + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw .config(path: configPath, reason: "cannot read the file (a PEFT adapter folder has adapter_config.json)")
        }
        let json: JSONValue
        do { json = try JSONValue(parsing: String(decoding: data, as: UTF8.self)) } catch {
            throw .config(path: configPath, reason: "\(error)")
        }
        guard let config = json.object else { throw .config(path: configPath, reason: "not a JSON object") }
        if let type = config["peft_type"]?.string, type != "LORA" {
            throw .unsupported(path: configPath, reason: "peft_type \(type) (only LORA)")
        }
        for key in Self.unsupportedSettings {
            switch config[key] {
            case nil, .null?, .bool(false)?: continue
            case .array(let list)? where list.isEmpty: continue
            case .object(let object)? where object.count == 0: continue
            case let value?: throw .unsupported(path: configPath, reason: "\(key) = \(value.pythonJSON())")
            }
        }
        if let bias = config["bias"]?.string, bias != "none" {
            throw .unsupported(path: configPath, reason: "bias \"\(bias)\" (only \"none\")")
        }
        guard case .int(let rank)? = config["r"], rank > 0 else {
            throw .config(path: configPath, reason: "\"r\" must be a positive integer")
        }
        guard let alpha = config["lora_alpha"].flatMap({ value -> Double? in
            switch value {
            case .int(let x): Double(x)
            case .double(let x): x
            default: nil
            }
        }) else { throw .config(path: configPath, reason: "\"lora_alpha\" must be a number") }
        self.rank = rank
        self.alpha = Float(alpha)
        rsLoRA = config["use_rslora"] == .bool(true)
        pairs = try Self.readPairs(directory: directory, rank: rank)
    }

    private static func readPairs(directory: String, rank: Int) throws(ModelError) -> [Pair] {
        let path = directory + "/adapter_model.safetensors"
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: path) } catch { throw .weights(error) }
        var pairs: [Pair] = []
        for name in file.tensorNames where name.hasSuffix(".lora_A.weight") {
            let stem = String(name.dropLast(".lora_A.weight".count))
            guard stem.hasPrefix("base_model.model.") else {
                throw .config(path: path, reason: "tensor '\(name)' is not named base_model.model.<module>.lora_A.weight")
            }
            let bName = stem + ".lora_B.weight"
            guard let aInfo = file.info(name), let bInfo = file.info(bName) else {
                throw .config(path: path, reason: "'\(name)' has no '\(bName)'")
            }
            guard aInfo.shape.count == 2, bInfo.shape.count == 2, aInfo.shape[0] == rank, bInfo.shape[1] == rank else {
                throw .config(path: path, reason: "'\(stem)': lora_A \(aInfo.shape) and lora_B \(bInfo.shape) are not "
                              + "[r, in] and [out, r] with r = \(rank)")
            }
            var a = [Float](repeating: 0, count: aInfo.elementCount), b = [Float](repeating: 0, count: bInfo.elementCount)
            do {
                try a.withUnsafeMutableBufferPointer { try file.readFloats(name, expectedShape: aInfo.shape, into: $0.baseAddress!) }
                try b.withUnsafeMutableBufferPointer { try file.readFloats(bName, expectedShape: bInfo.shape, into: $0.baseAddress!) }
            } catch let error as SafetensorsError {
                throw .weights(error)
            } catch {
                throw .config(path: path, reason: "\(error)")
            }
            pairs.append(Pair(weightName: String(stem.dropFirst("base_model.model.".count)) + ".weight", a: a, b: b,
                              inputs: aInfo.shape[1], outputs: bInfo.shape[0]))
        }
        let unpaired = file.tensorNames.filter { !$0.hasSuffix(".lora_A.weight") && !$0.hasSuffix(".lora_B.weight") }
        if let extra = unpaired.first { throw .unsupported(path: path, reason: "tensor '\(extra)' is not a LoRA factor") }
        guard !pairs.isEmpty else { throw .config(path: path, reason: "no lora_A / lora_B tensors") }
        return pairs
    }

    /// Adds scale · B A to every adapted weight of `model` (its host values): the merged model
    /// computes what the base with the adapter computes.
    public func merge(into model: any CausalLM) throws(ModelError) {
        var found: [String: (ParameterGroup, ParameterSpec)] = [:]
        for group in model.groups {
            for spec in group.layout.specs { found[spec.name] = (group, spec) }
        }
        for pair in pairs {
            guard let (group, spec) = found[pair.weightName] else {
                throw .config(path: directory + "/adapter_model.safetensors",
                              reason: "the adapter changes '\(pair.weightName)', which the model does not have")
            }
            guard spec.shape == [pair.outputs, pair.inputs] else {
                throw .config(path: directory + "/adapter_model.safetensors",
                              reason: "'\(pair.weightName)' is \(spec.shape) in the model, "
                                  + "[\(pair.outputs), \(pair.inputs)] in the adapter")
            }
            let weights = group.values(spec), r = rank, k = pair.inputs
            for row in 0..<pair.outputs {
                for column in 0..<k {
                    var sum: Float = 0
                    for j in 0..<r { sum += pair.b[row * r + j] * pair.a[j * k + column] }
                    weights[row * k + column] += scale * sum
                }
            }
        }
    }
}
