#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOFormats

/// Why a tokenizer could not be loaded. Cases name the file at fault.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case malformed(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case inconsistent(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let path, let reason): "\(path): cannot read tokenizer: \(reason)"
        case .malformed(let path, let reason): "\(path): malformed tokenizer: \(reason)"
        case .unsupported(let path, let reason): "\(path): unsupported tokenizer: \(reason)"
        case .inconsistent(let path, let reason): "\(path): tokenizer files disagree: \(reason)"
        }
    }
}

extension Tokenizer {
    /// Loads a tokenizer from a tokenizer.json, a folder with tokenizer.json or
    /// vocab.json + merges.txt, or a .gguf file's `tokenizer.ggml.*` metadata.
    public static func load(path: String) throws(TokenizerError) -> Tokenizer {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path) else { throw .cannotRead(path: path, reason: "no such file or folder") }
        if fm.fileExists(atPath: path + "/.") {
            if fm.fileExists(atPath: path + "/tokenizer.json") { return try load(tokenizerJSON: path + "/tokenizer.json") }
            return try load(vocabulary: path + "/vocab.json", merges: path + "/merges.txt")
        }
        if path.hasSuffix(".json") { return try load(tokenizerJSON: path) }
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch {
            throw .cannotRead(path: path, reason: "neither tokenizer.json nor GGUF (\(error))")
        }
        return try load(gguf: file)
    }

    private static func read(_ path: String) throws(TokenizerError) -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .cannotRead(path: path, reason: "cannot read the file")
        }
    }

    /// Parses merges written as "a b" lines.
    private static func parseMerges(_ lines: [String], path: String) throws(TokenizerError) -> [SymbolPair] {
        var merges: [SymbolPair] = []
        merges.reserveCapacity(lines.count)
        for (number, line) in lines.enumerated() {
            if line.hasPrefix("#version") || line.isEmpty { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw .malformed(path: path, reason: "merge \(number + 1) '\(line)' is not two symbols")
            }
            merges.append(SymbolPair(left: String(parts[0]), right: String(parts[1])))
        }
        return merges
    }

    /// Checks that every merge's parts and result are in the vocabulary.
    private static func checkMerges(_ merges: [SymbolPair], _ tokens: [String], path: String) throws(TokenizerError) {
        let known = Set(tokens)
        for (rank, pair) in merges.enumerated() where !known.contains(pair.left) || !known.contains(pair.right) || !known.contains(pair.left + pair.right) {
            throw .inconsistent(path: path, reason: "merge \(rank) '\(pair.left) \(pair.right)' uses symbols the vocabulary lacks")
        }
    }

    /// Dense id -> token table from a token -> id map.
    private static func denseTokens(_ vocabulary: [String: Int], path: String) throws(TokenizerError) -> [String] {
        guard let largest = vocabulary.values.max(), largest < 10_000_000, vocabulary.values.allSatisfy({ $0 >= 0 }) else {
            throw .malformed(path: path, reason: "token ids must be between 0 and 10,000,000")
        }
        var tokens = [String](repeating: "", count: largest + 1)
        var seen = [Bool](repeating: false, count: largest + 1)
        for (token, id) in vocabulary {
            guard !seen[id] else { throw .malformed(path: path, reason: "id \(id) is given to two tokens") }
            seen[id] = true
            tokens[id] = token
        }
        return tokens
    }

    /// GPT-2's files: vocab.json ({token: id}) and merges.txt. `<|endoftext|>` is special
    /// (and BOS/EOS) when present.
    public static func load(vocabulary vocabularyPath: String, merges mergesPath: String) throws(TokenizerError) -> Tokenizer {
        let vocabulary: [String: Int]
        do { vocabulary = try JSONDecoder().decode([String: Int].self, from: read(vocabularyPath)) } catch let error as TokenizerError {
            throw error
        } catch {
            throw .malformed(path: vocabularyPath, reason: "not a JSON object of token ids")
        }
        let tokens = try denseTokens(vocabulary, path: vocabularyPath)
        let merges = try parseMerges(String(decoding: try read(mergesPath), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init), path: mergesPath)
        try checkMerges(merges, tokens, path: mergesPath)
        let endOfText = vocabulary["<|endoftext|>"]
        return Tokenizer(tokens: tokens, merges: merges, specialTokens: endOfText.map { ["<|endoftext|>": $0] } ?? [:],
                         preTokenizer: GPT2PreTokenizer(), bos: endOfText, eos: endOfText, pad: nil, unknown: nil,
                         addsBOS: false, chatTemplate: nil)
    }

    private struct TokenizerJSON: Decodable {
        struct Model: Decodable {
            let type: String?
            let vocab: [String: Int]
            let merges: Merges
            let unk_token: String?
        }
        enum Merges: Decodable {
            case strings([String]), pairs([[String]])
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let strings = try? container.decode([String].self) { self = .strings(strings) } else { self = .pairs(try container.decode([[String]].self)) }
            }
        }
        struct Added: Decodable {
            let id: Int
            let content: String
            let special: Bool?
        }
        struct PreTokenizerConfig: Decodable {
            let type: String
            let individual_digits: Bool?
            let pretokenizers: [PreTokenizerConfig]?
        }
        let model: Model
        let added_tokens: [Added]?
        let pre_tokenizer: PreTokenizerConfig?
    }

    /// A Hugging Face tokenizer.json with a BPE model and a ByteLevel pre-tokenizer,
    /// optionally preceded by Digits(individual_digits).
    public static func load(tokenizerJSON path: String) throws(TokenizerError) -> Tokenizer {
        let json: TokenizerJSON
        do { json = try JSONDecoder().decode(TokenizerJSON.self, from: read(path)) } catch let error as TokenizerError {
            throw error
        } catch {
            throw .malformed(path: path, reason: "not a tokenizer.json with a BPE model (\(error))")
        }
        guard json.model.type == nil || json.model.type == "BPE" else {
            throw .unsupported(path: path, reason: "model type \(json.model.type!) (only BPE)")
        }
        var vocabulary = json.model.vocab
        var specials: [String: Int] = [:]
        for added in json.added_tokens ?? [] {
            if let existing = vocabulary[added.content], existing != added.id {
                throw .inconsistent(path: path, reason: "added token '\(added.content)' has id \(added.id) but the vocabulary says \(existing)")
            }
            vocabulary[added.content] = added.id
            specials[added.content] = added.id
        }
        let tokens = try denseTokens(vocabulary, path: path)
        let merges: [SymbolPair]
        switch json.model.merges {
        case .strings(let lines): merges = try parseMerges(lines, path: path)
        case .pairs(let pairs):
            merges = try pairs.map { (pair) throws(TokenizerError) -> SymbolPair in
                guard pair.count == 2 else { throw .malformed(path: path, reason: "merge \(pair) is not two symbols") }
                return SymbolPair(left: pair[0], right: pair[1])
            }
        }
        try checkMerges(merges, tokens, path: path)
        let preTokenizer = try makePreTokenizer(json.pre_tokenizer, path: path)
        return Tokenizer(tokens: tokens, merges: merges, specialTokens: specials, preTokenizer: preTokenizer,
                         bos: nil, eos: specials["<|endoftext|>"], pad: nil, unknown: json.model.unk_token.flatMap { vocabulary[$0] },
                         addsBOS: false, chatTemplate: nil)
    }

    private static func makePreTokenizer(_ config: TokenizerJSON.PreTokenizerConfig?, path: String) throws(TokenizerError) -> any PreTokenizer {
        guard let config else { throw .unsupported(path: path, reason: "no pre_tokenizer (expected ByteLevel)") }
        let steps = config.type == "Sequence" ? config.pretokenizers ?? [] : [config]
        switch steps.map(\.type) {
        case ["ByteLevel"]: return GPT2PreTokenizer()
        case ["Digits", "ByteLevel"] where steps[0].individual_digits == true:
            return IndividualDigitsPreTokenizer(then: GPT2PreTokenizer())
        default:
            throw .unsupported(path: path, reason: "pre_tokenizer \(steps.map(\.type)) (ByteLevel, optionally after Digits, is)")
        }
    }

    /// A GGUF file's `tokenizer.ggml.*` metadata (model "gpt2": byte-level BPE).
    public static func load(gguf file: GGUFFile) throws(TokenizerError) -> Tokenizer {
        let path = file.path
        do {
            let model = try file.string("tokenizer.ggml.model")
            guard model == "gpt2" else { throw TokenizerError.unsupported(path: path, reason: "tokenizer.ggml.model '\(model)' (only gpt2 BPE)") }
            let tokens = try file.strings("tokenizer.ggml.tokens")
            let merges = try parseMerges(try file.strings("tokenizer.ggml.merges"), path: path)
            try checkMerges(merges, tokens, path: path)
            let types = file.metadata["tokenizer.ggml.token_type"] != nil ? try file.ints("tokenizer.ggml.token_type") : []
            guard types.isEmpty || types.count == tokens.count else {
                throw TokenizerError.inconsistent(path: path, reason: "\(types.count) token types for \(tokens.count) tokens")
            }
            var specials: [String: Int] = [:]
            for (id, type) in types.enumerated() where type == 3 || type == 4 { specials[tokens[id]] = id }  // control, user-defined
            let pre = file.metadata["tokenizer.ggml.pre"]?.string ?? "gpt2"
            let preTokenizer: any PreTokenizer
            switch pre {
            case "gpt2", "default": preTokenizer = GPT2PreTokenizer()
            case "smollm": preTokenizer = IndividualDigitsPreTokenizer(then: GPT2PreTokenizer())
            default: throw TokenizerError.unsupported(path: path, reason: "tokenizer.ggml.pre '\(pre)' (gpt2 and smollm are)")
            }
            func id(_ key: String) throws(TokenizerError) -> Int? {
                guard let value = file.metadata[key]?.int else { return nil }
                guard tokens.indices.contains(value) else { throw .inconsistent(path: path, reason: "\(key) \(value) is not a token id") }
                return value
            }
            return Tokenizer(tokens: tokens, merges: merges, specialTokens: specials, preTokenizer: preTokenizer,
                             bos: try id("tokenizer.ggml.bos_token_id"), eos: try id("tokenizer.ggml.eos_token_id"),
                             pad: try id("tokenizer.ggml.padding_token_id"), unknown: try id("tokenizer.ggml.unknown_token_id"),
                             addsBOS: file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? false,
                             chatTemplate: file.metadata["tokenizer.chat_template"]?.string)
        } catch let error as TokenizerError {
            throw error
        } catch {
            throw .malformed(path: path, reason: "\(error)")
        }
    }
}
