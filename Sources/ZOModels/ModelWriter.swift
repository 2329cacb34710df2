#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
import ZOFormats

/// Pretty JSON with sorted keys for a config. The values of `floatKeys` that are whole numbers
/// keep a ".0" (JSONEncoder writes 30.0 as 30, which transformers' typed configs refuse where
/// they expect a float).
func encodeConfig<C: Encodable>(_ config: C, floatKeys: Set<String> = []) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let json = String(decoding: try encoder.encode(config), as: UTF8.self)
    guard !floatKeys.isEmpty else { return Array(json.utf8) }
    let lines = json.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
        guard let colon = line.firstIndex(of: ":"), floatKeys.contains(String(line[..<colon].filter { $0 != " " && $0 != "\"" })) else {
            return String(line)
        }
        let value = line[line.index(after: colon)...].drop { $0 == " " }
        let comma = value.hasSuffix(",")
        let number = comma ? value.dropLast() : value
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }) else { return String(line) }
        return line[...colon] + " " + number + ".0" + (comma ? "," : "")
    }
    return Array(lines.joined(separator: "\n").utf8)
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
