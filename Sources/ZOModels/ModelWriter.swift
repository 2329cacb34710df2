#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOFormats

/// Pretty JSON with sorted keys for a config.
func encodeConfig<C: Encodable>(_ config: C) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return Array(try encoder.encode(config))
}

extension CausalLM {
    /// Writes the host parameters as a Hugging Face folder: model.safetensors (fp32, HF
    /// names; tied weights once) and config.json, each written atomically.
    public func save(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var entries: [SafetensorsEntry] = []
        for group in groups {
            for spec in group.layout.specs {
                let values = group.values(spec)
                entries.append(SafetensorsEntry(name: spec.name, dtype: .f32, shape: spec.shape,
                                                bytes: UnsafeRawBufferPointer(values)))
            }
        }
        try withExtendedLifetime(groups) {
            try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: directory + "/" + SafetensorsCheckpoint.singleFileName)
        }
        let config = try AtomicFileWriter(path: directory + "/config.json")
        try config.write(try configJSON())
        try config.commit()
    }
}
