#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
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
        try save(groups.map(\.storage), to: directory)
    }

    /// Writes `values` (one fp32 buffer per group, in `groups` order, e.g. a
    /// `ParameterSnapshot`) as a Hugging Face folder like `save(to:)`.
    public func save(_ values: [HostBuffer], to directory: String) throws {
        precondition(values.count == groups.count && zip(values, groups).allSatisfy { $0.byteCount >= $1.layout.byteCount },
                     "one buffer per group, each as large as its group")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var entries: [SafetensorsEntry] = []
        for (group, buffer) in zip(groups, values) {
            for spec in group.layout.specs {
                entries.append(SafetensorsEntry(name: spec.name, dtype: .f32, shape: spec.shape,
                                                bytes: UnsafeRawBufferPointer(start: buffer.floats + spec.offset, count: spec.count * 4)))
            }
        }
        try withExtendedLifetime(values) {
            try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: directory + "/" + SafetensorsCheckpoint.singleFileName)
        }
        let config = try AtomicFileWriter(path: directory + "/config.json")
        try config.write(try configJSON())
        try config.commit()
    }
}
