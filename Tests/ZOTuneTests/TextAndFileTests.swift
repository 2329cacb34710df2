import Foundation
import Testing
import ZOCore

/// The Foundation-free helpers the libraries use instead of String(format:) and NSString.
@Suite struct TextAndFileTests {
    @Test func decimals() {
        #expect(TextFormat.decimal(174.595, decimals: 2) == "174.60")
        #expect(TextFormat.decimal(0.05, decimals: 1) == "0.1")
        #expect(TextFormat.decimal(-3.14159, decimals: 3) == "-3.142")
        #expect(TextFormat.decimal(-0.0004, decimals: 2) == "0.00")
        #expect(TextFormat.decimal(2.5, decimals: 0) == "3" && TextFormat.decimal(7, decimals: 2) == "7.00")
        #expect(TextFormat.hex([0x00, 0xAB, 0x10]) == "00ab10")
        #expect(TextFormat.trimmed("  2GiB\t") == "2GiB" && TextFormat.trimmed("   ") == "")
    }

    @Test func paths() throws {
        #expect(FileSystem.parent(of: "/a/b/c") == "/a/b" && FileSystem.parent(of: "/a") == "/")
        #expect(FileSystem.parent(of: "a/b/") == "a" && FileSystem.parent(of: "name") == "")
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory + "/file"))
        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: false)
        #expect(FileSystem.isFolder(directory) == true && FileSystem.isFolder(directory + "/file") == false)
        #expect(FileSystem.isFolder(directory + "/missing") == nil)
        #expect(Set(FileSystem.names(in: directory)) == ["file", "sub"] && FileSystem.names(in: directory + "/missing").isEmpty)
    }
}
