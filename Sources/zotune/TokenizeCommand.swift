import ArgumentParser
import ZOAssets
import ZOTokenizers

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text as JSON: {\"ids\": [...]}."
    )

    @Option(help: "tokenizer.json, a folder with vocab.json + merges.txt, a .gguf, or an asset id (gpt2-tokenizer, smollm2-135m).")
    var tokenizer: String

    @Option(help: "The text to encode (special tokens in it become their ids).")
    var text: String

    @Flag(help: "Also print the decoded text of the ids.")
    var decode = false

    struct Output: Encodable {
        let ids: [Int]
        let text: String?
    }

    func run() throws {
        let tokenizer = try Tokenizer.load(path: try Assets().resolve(self.tokenizer))
        let ids = tokenizer.encode(text)
        try printJSONLine(Output(ids: ids, text: decode ? tokenizer.decode(ids) : nil))
    }
}
