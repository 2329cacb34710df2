import Foundation
import Testing
import ZOTraining

/// TensorBoard event files at the byte level (TensorBoard's own reader checks them in
/// scripts/check-tensorboard.py): CRC-32C, TFRecord framing, and what a metrics record becomes.
@Suite struct TensorBoardLogTests {
    @Test func crcAndFraming() {
        #expect(TFRecord.crc32c(Array("123456789".utf8)) == 0xE306_9283)  // the CRC-32C check value
        #expect(TFRecord.crc32c([]) == 0)
        let record = TFRecord.frame([1, 2, 3])
        #expect(record.count == 8 + 4 + 3 + 4 && record[0..<8] == [3, 0, 0, 0, 0, 0, 0, 0] && record[12..<15] == [1, 2, 3])
    }

    /// The records of an event file, unframed (checking both CRCs).
    static func records(_ path: String) throws -> [[UInt8]] {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        var records: [[UInt8]] = [], offset = 0
        while offset < bytes.count {
            let length = bytes[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | Int($1) }
            let data = Array(bytes[offset + 12..<offset + 12 + length])
            #expect(TFRecord.frame(data) == Array(bytes[offset..<offset + 16 + length]))
            records.append(data)
            offset += 16 + length
        }
        return records
    }

    @Test func recordsBecomeScalarsAndAResumeStartsASession() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        struct Line: Encodable { let step: Int; let loss: Double; let skipped: Bool; let seeds: [Int]; let eval: [String: Double] }
        let log = try TensorBoardLog(directory: directory)
        try log.write(Line(step: 3, loss: 0.5, skipped: false, seeds: [1], eval: ["accuracy": 0.75]))
        try log.write(["path": "no step, no event"])
        let records = try Self.records(log.path)
        #expect(records.count == 2 && String(decoding: records[0], as: UTF8.self).hasSuffix("brain.Event:2"))
        let text = String(decoding: records[1], as: UTF8.self)
        #expect(text.contains("train/loss") && text.contains("eval/accuracy") && !text.contains("skipped") && !text.contains("seeds"))
        #expect(records[1].contains(0x10) && records[1][records[1].firstIndex(of: 0x10)! + 1] == 3)  // step 3
        let resumed = try TensorBoardLog(directory: directory, resumingAfter: 3)
        #expect(resumed.path > log.path)
        let start = try Self.records(resumed.path)[1]
        #expect(start.suffix(4) == [0x3A, 2, 0x08, 1] && start.contains(0x10))  // session_log (7) { status: START }, step 4
    }
}
