#if canImport(Glibc)
import Glibc
#endif
import ZOCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A TensorBoard event file (`events.out.tfevents.*`): TFRecord-framed `Event` protocol buffers,
/// the first naming the format version, then one event per record written, holding its
/// numbers as scalars (`simple_value`). Flushed as written, like metrics.jsonl.
public final class TensorBoardLog {
    public let path: String
    private let file: UnsafeMutablePointer<FILE>
    private let encoder = JSONEncoder()

    /// Creates a new event file in `directory` (made if missing). With `resumingAfter` k (a run
    /// resumed from its checkpoint after step k), the file starts with a session start at step
    /// k + 1, on which TensorBoard drops what an earlier file logged from that step on.
    public init(directory: String, resumingAfter step: Int? = nil) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw MetricsError.failed(path: directory, reason: "cannot create the folder")
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let hostName = String(nulTerminated: host)
        // TensorBoard reads a folder's files in name order: the microseconds keep a resumed run's file after the first.
        let (seconds, fraction) = modf(Self.now)
        let micro = String(Int(fraction * 1e6)), padded = String(repeating: "0", count: 6 - micro.count) + micro
        path = directory + "/events.out.tfevents.\(Int(seconds)).\(hostName).\(padded).\(getpid()).zotune"
        guard let file = fopen(path, "wx") else {
            throw MetricsError.failed(path: path, reason: "cannot create the file: \(String(cString: strerror(errno)))")
        }
        self.file = file
        var version = EventEncoding.wallTime(Self.now)
        version += EventEncoding.bytes(field: 3, Array("brain.Event:2".utf8))
        try append(version)
        if let step {
            try append(EventEncoding.wallTime(Self.now) + EventEncoding.step(step + 1)
                       + EventEncoding.bytes(field: 7, EventEncoding.varint(field: 1, 1)))  // session_log: SessionLog { status: START }
        }
    }

    deinit { fclose(file) }

    private static var now: Double { Date().timeIntervalSince1970 }

    /// Logs `values` as scalars at `step`.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int) throws {
        guard !values.isEmpty else { return }
        var summary: [UInt8] = []
        for (tag, value) in values {
            // Summary.Value { tag = 1; simple_value = 2 (float) }
            summary += EventEncoding.bytes(field: 1, EventEncoding.bytes(field: 1, Array(tag.utf8)) + EventEncoding.float(field: 2, Float(value)))
        }
        try append(EventEncoding.wallTime(Self.now) + EventEncoding.step(step) + EventEncoding.bytes(field: 5, summary))
    }

    /// Logs a metrics record (what metrics.jsonl holds) at its `step`: its top-level numbers as
    /// `train/<key>`, the numbers of an object under a key as `<key>/<name>` (`eval/accuracy`);
    /// strings, booleans and arrays are not scalars. A record without `step` is not logged.
    public func write<T: Encodable>(_ record: T) throws {
        guard case .object(let fields) = try JSONDecoder().decode(JSONNode.self, from: encoder.encode(record)),
              case .number(let step) = fields["step"] else { return }
        var values: [(tag: String, value: Double)] = []
        for key in fields.keys.sorted() where key != "step" {
            switch fields[key]! {
            case .number(let value): values.append(("train/" + key, value))
            case .object(let inner):
                for name in inner.keys.sorted() { if case .number(let value) = inner[name]! { values.append((key + "/" + name, value)) } }
            case .other: break
            }
        }
        try scalars(values, step: Int(step))
    }

    private func append(_ event: [UInt8]) throws {
        let record = TFRecord.frame(event)
        guard fwrite(record, 1, record.count, file) == record.count, fflush(file) == 0 else {
            throw MetricsError.failed(path: path, reason: String(cString: strerror(errno)))
        }
    }
}

/// Protocol-buffer wire encoding of the `Event` fields ZOTune writes (tensorflow/core/util/event.proto).
enum EventEncoding {
    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value, bytes: [UInt8] = []
        repeat {
            bytes.append(UInt8(value & 0x7F) | (value >= 0x80 ? 0x80 : 0))
            value >>= 7
        } while value != 0
        return bytes
    }

    static func varint(field: Int, _ value: UInt64) -> [UInt8] { varint(UInt64(field << 3)) + varint(value) }

    static func bytes(field: Int, _ payload: [UInt8]) -> [UInt8] {
        varint(UInt64(field << 3 | 2)) + varint(UInt64(payload.count)) + payload
    }

    static func float(field: Int, _ value: Float) -> [UInt8] {
        varint(UInt64(field << 3 | 5)) + withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
    }

    /// Event.wall_time (field 1, double).
    static func wallTime(_ seconds: Double) -> [UInt8] {
        varint(UInt64(1 << 3 | 1)) + withUnsafeBytes(of: seconds.bitPattern.littleEndian) { Array($0) }
    }

    /// Event.step (field 2, int64).
    static func step(_ step: Int) -> [UInt8] { varint(field: 2, UInt64(bitPattern: Int64(step))) }
}

/// Any JSON value, as far as scalars go: a number, an object, or something else.
private enum JSONNode: Decodable {
    case number(Double)
    case object([String: JSONNode])
    case other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if (try? container.decode(Bool.self)) != nil {
            self = .other
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let object = try? container.decode([String: JSONNode].self) {
            self = .object(object)
        } else {
            self = .other
        }
    }
}
