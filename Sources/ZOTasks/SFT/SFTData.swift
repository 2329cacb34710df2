#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A supervised fine-tuning file (JSONL in one of TRL's formats, detected from its first line;
/// every line must be in that format) encoded for a model.
public struct SFTData: Sendable {
    public let path: String
    public let format: SFTRecord.Format
    public let examples: [SFTExample]
    /// Examples cut to the length limit (still learning something).
    public let truncated: Int
    /// Examples left out because the cut removed every learned token.
    public let dropped: Int

    /// Reads and encodes `path`; a bad line is an error naming the file and line.
    public init(path: String, encoder: SFTEncoder) throws(TaskError) {
        var examples: [SFTExample] = []
        var format: SFTRecord.Format?
        var truncated = 0, dropped = 0
        for (number, line) in try jsonLines(path) {
            let record: SFTRecord
            do { record = try SFTRecord(line: String(decoding: line, as: UTF8.self)) } catch {
                throw .badLine(path: path, line: number, reason: error.reason)
            }
            if let format, record.format != format {
                throw .badLine(path: path, line: number,
                               reason: "this line is \(record.format.rawValue) but the file's first is \(format.rawValue)")
            }
            format = record.format
            do {
                let (example, cut) = try encoder.encode(record)
                if cut { truncated += 1 }
                if let example { examples.append(example) } else { dropped += 1 }
            } catch {
                throw .badLine(path: path, line: number, reason: error.reason)
            }
        }
        guard let format else { throw .empty(path: path) }
        guard !examples.isEmpty else {
            throw .unusable(path: path, reason: "all \(dropped) examples were left out: none has a learned token within the "
                            + "first \(encoder.maxLength) tokens (the length limit)")
        }
        self.path = path
        self.format = format
        self.examples = examples
        self.truncated = truncated
        self.dropped = dropped
    }

    /// What loading did, for the run's notes: format, count, truncation.
    public var summary: String {
        var text = "\(path): \(examples.count) \(format.rawValue) examples"
        if truncated > 0 { text += ", \(truncated) cut to the length limit" }
        if dropped > 0 { text += ", \(dropped) left out (nothing to learn within the limit)" }
        return text
    }
}
