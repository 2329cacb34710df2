#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOFormats

extension PEFTAdapter {
    /// Writes the adapter as PEFT saves one: `directory/adapter_config.json` (PEFT's LoraConfig
    /// keys: a plain LoRA for a causal LM of `baseModel`) and `directory/adapter_model.safetensors`
    /// (`base_model.model.<module>.lora_A.weight` [r, in], `….lora_B.weight` [out, r], f32),
    /// each written atomically; `PeftModel.from_pretrained` loads it onto the base.
    public func write(to directory: String, baseModel: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FileWriteError.failed(path: directory, reason: "cannot create the folder: \(error)")
        }
        let alphaValue: JSONValue = alpha == alpha.rounded() && abs(alpha) < 1e9 ? .int(Int(alpha)) : .double(Double(alpha))
        let config = JSONObject([
            ("alpha_pattern", .object(JSONObject())), ("base_model_name_or_path", .string(baseModel)), ("bias", .string("none")),
            ("exclude_modules", .null), ("fan_in_fan_out", .bool(false)), ("inference_mode", .bool(true)),
            ("init_lora_weights", .bool(true)), ("layers_pattern", .null), ("layers_to_transform", .null),
            ("lora_alpha", alphaValue), ("lora_bias", .bool(false)), ("lora_dropout", .double(0)), ("modules_to_save", .null),
            ("peft_type", .string("LORA")), ("r", .int(rank)), ("rank_pattern", .object(JSONObject())), ("revision", .null),
            ("target_modules", .array(targetModules.map(JSONValue.string))), ("task_type", .string("CAUSAL_LM")),
            ("use_dora", .bool(false)), ("use_rslora", .bool(rsLoRA)),
        ])
        let configFile = try AtomicFileWriter(path: directory + "/adapter_config.json")
        try configFile.write(Array(JSONValue.object(config).pythonJSON(indent: 2).utf8) + [UInt8(ascii: "\n")])
        try configFile.commit()
        try Self.writeTensors(pairs, rank: rank, to: directory + "/adapter_model.safetensors")
    }

    /// The factors under PEFT's names, in the pairs' order.
    private static func writeTensors(_ pairs: [Pair], rank: Int, to path: String) throws(SafetensorsError) {
        let values = pairs.flatMap { $0.a + $0.b }
        let result: Result<Void, SafetensorsError> = values.withUnsafeBytes { bytes in
            var entries: [SafetensorsEntry] = [], offset = 0
            for pair in pairs {
                let stem = "base_model.model." + String(pair.weightName.dropLast(".weight".count))
                for (suffix, shape) in [(".lora_A.weight", [rank, pair.inputs]), (".lora_B.weight", [pair.outputs, rank])] {
                    let count = shape[0] * shape[1] * 4
                    entries.append(SafetensorsEntry(name: stem + suffix, dtype: .f32, shape: shape,
                                                    bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])))
                    offset += count
                }
            }
            return Result { () throws(SafetensorsError) in try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: path) }
        }
        try result.get()
    }
}
