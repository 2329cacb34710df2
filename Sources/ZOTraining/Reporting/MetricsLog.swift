#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `metrics.jsonl`: one JSON object per line, flushed as written, so a reader (or a crash)
/// sees every completed step.
public final class MetricsLog {
    public let path: String
    private let file: UnsafeMutablePointer<FILE>
    private let encoder: JSONEncoder

    /// Creates (truncates) `path`; with `resumingAfter` k, keeps the lines of an existing
    /// file up to step k (a run resumed from the checkpoint after step k rewrites the rest).
    public init(path: String, resumingAfter step: Int? = nil) throws {
        var kept: [UInt8] = []
        if let step, let existing = FileManager.default.contents(atPath: path) {
            struct Line: Decodable { let step: Int? }
            for line in existing.split(separator: UInt8(ascii: "\n")) {
                guard let parsed = try? JSONDecoder().decode(Line.self, from: Data(line)), (parsed.step ?? 0) <= step else { continue }
                kept += line + [UInt8(ascii: "\n")]
            }
        }
        guard let file = fopen(path, "w") else {
            throw MetricsError.failed(path: path, reason: "cannot create the file: \(String(cString: strerror(errno)))")
        }
        guard fwrite(kept, 1, kept.count, file) == kept.count, fflush(file) == 0 else {
            let reason = String(cString: strerror(errno))  // before fclose, which may set errno
            fclose(file)
            throw MetricsError.failed(path: path, reason: reason)
        }
        self.path = path
        self.file = file
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
    }

    deinit { fclose(file) }

    /// Appends one line.
    public func write<T: Encodable>(_ record: T) throws {
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        let written = line.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        guard written == line.count, fflush(file) == 0 else {
            throw MetricsError.failed(path: path, reason: String(cString: strerror(errno)))
        }
    }
}

/// A metrics file could not be written.
public enum MetricsError: Error, CustomStringConvertible {
    case failed(path: String, reason: String)

    public var description: String {
        switch self {
        case .failed(let path, let reason): "\(path): cannot write metrics: \(reason)"
        }
    }
}
