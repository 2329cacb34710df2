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
    /// Loads a tokenizer from a tokenizer.json, a folder with tokenizer.json, tokenizer.gguf or
    /// vocab.json + merges.txt, or a .gguf file's `tokenizer.ggml.*` metadata.
    public static func load(path: String) throws(TokenizerError) -> Tokenizer {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path) else { throw .cannotRead(path: path, reason: "no such file or folder") }
        if fm.fileExists(atPath: path + "/.") {
            if fm.fileExists(atPath: path + "/tokenizer.json") { return try load(tokenizerJSON: path + "/tokenizer.json") }
            if fm.fileExists(atPath: path + "/" + GGUFVocabulary.fileName), !fm.fileExists(atPath: path + "/vocab.json") {
                return try load(path: path + "/" + GGUFVocabulary.fileName)
            }
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

    /// Checks that every merge's parts and result are among the vocabulary's `known` tokens.
    private static func checkMerges(_ merges: [SymbolPair], known: Set<String>, path: String) throws(TokenizerError) {
        for (rank, pair) in merges.enumerated() where !known.contains(pair.left) || !known.contains(pair.right) || !known.contains(pair.left + pair.right) {
            throw .inconsistent(path: path, reason: "merge \(rank) '\(pair.left) \(pair.right)' uses symbols the vocabulary lacks")
        }
    }

    /// Dense id -> token table from a token -> id map; ids no token has (holes) hold "".
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
        try checkMerges(merges, known: Set(vocabulary.keys), path: mergesPath)
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
            let byte_fallback: Bool?
            let fuse_unk: Bool?
            let ignore_merges: Bool?
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
        /// A `Split`'s or `Replace`'s pattern: a literal or a regular expression.
        struct Pattern: Decodable {
            let String: String?
            let Regex: String?
        }
        /// Any stage (normalizer, pre-tokenizer, decoder): its type and the fields ZOTune reads.
        struct Stage: Decodable {
            let type: String
            let individual_digits: Bool?
            let pretokenizers: [Stage]?
            let normalizers: [Stage]?
            let decoders: [Stage]?
            let pattern: Pattern?
            let content: String?
            let prepend: String?
            let replacement: String?
            let prepend_scheme: String?
            let add_prefix_space: Bool?
            let split: Bool?
            let use_regex: Bool?
            let start: Int?
            let behavior: String?
            let invert: Bool?
        }
        let model: Model
        let added_tokens: [Added]?
        let normalizer: Stage?
        let pre_tokenizer: Stage?
        let decoder: Stage?
    }

    /// A Hugging Face tokenizer.json with a BPE model: byte-level (a ByteLevel pre-tokenizer,
    /// alone, after Digits(individual_digits) or after Qwen2's or Llama 3's Split) or over
    /// characters with byte fallback (SentencePiece's: a Metaspace pre-tokenizer or none), behind
    /// NFC, Prepend and Replace normalizers.
    /// A tokenizer.json; when the file is named so, tokenizer_config.json beside it names the
    /// BOS, EOS and padding tokens and the chat template (as in transformers). Whether BOS is
    /// added stays off (transformers decides it by `add_bos_token` or the post-processor; not
    /// read yet).
    public static func load(tokenizerJSON path: String) throws(TokenizerError) -> Tokenizer {
        let folder = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]).nonEmpty ?? "."
        let configPath = folder + "/tokenizer_config.json"
        let config = path.hasSuffix("/tokenizer.json") && FileManager.default.fileExists(atPath: configPath)
            ? try TokenizerConfig(path: configPath) : nil
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
        try checkMerges(merges, known: Set(vocabulary.keys), path: path)
        let (preTokenizer, byteLevel) = try makePreTokenizer(json.pre_tokenizer, path: path)
        var spelling = Tokenizer.Spelling(ignoresMerges: json.model.ignore_merges ?? false, fusesUnknown: json.model.fuse_unk ?? false)
        if !byteLevel {
            spelling.alphabet = .characters(byteFallback: json.model.byte_fallback ?? false)
            spelling.stripsLeadingSpace = stripsLeadingSpace(json.decoder)
        }
        let normalizer = try makeNormalizer(json.normalizer, path: path)
        func id(_ name: String) -> Int? { config?.specialTokens[name].flatMap { specials[$0] ?? vocabulary[$0] } }
        return Tokenizer(tokens: tokens, merges: merges, specialTokens: specials, normalizer: normalizer, preTokenizer: preTokenizer,
                         spelling: spelling, bos: id("bos_token"), eos: id("eos_token") ?? specials["<|endoftext|>"],
                         pad: id("pad_token"), unknown: json.model.unk_token.flatMap { vocabulary[$0] },
                         addsBOS: false, chatTemplate: try? config?.chatTemplate.get())
    }

    /// Qwen2's and Llama 3's Split patterns, by the digits a number piece takes.
    static let splitPatterns = [
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: 1,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: 3,
    ]

    /// The pre-tokenizer, and whether it ends in ByteLevel (a byte-level vocabulary).
    private static func makePreTokenizer(_ config: TokenizerJSON.Stage?, path: String)
        throws(TokenizerError) -> (any PreTokenizer, byteLevel: Bool) {
        guard let config else { return (WholeTextPreTokenizer(), false) }
        let steps = config.type == "Sequence" ? config.pretokenizers ?? [] : [config]
        switch steps.map(\.type) {
        case ["ByteLevel"]: return (GPT2PreTokenizer(), true)
        case ["Digits", "ByteLevel"] where steps[0].individual_digits == true:
            return (IndividualDigitsPreTokenizer(then: GPT2PreTokenizer()), true)
        case ["Split", "ByteLevel"] where steps[1].use_regex == false:
            guard let regex = steps[0].pattern?.Regex, let digits = splitPatterns[regex] else {
                let pattern = steps[0].pattern?.Regex ?? steps[0].pattern?.String ?? "?"
                throw .unsupported(path: path, reason: "Split pattern \(pattern) (Qwen2's and Llama 3's are)")
            }
            return (QwenPreTokenizer(maxDigits: digits), true)
        case ["Split"] where steps[0].behavior == "MergedWithPrevious" && steps[0].invert != true && steps[0].pattern?.String != nil:
            return (LiteralSplitPreTokenizer(separator: steps[0].pattern?.String ?? ""), false)
        case ["Metaspace"]:
            let scheme = steps[0].prepend_scheme.flatMap(MetaspacePreTokenizer.PrependScheme.init(rawValue:))
                ?? (steps[0].add_prefix_space == false ? .never : .always)
            let metaspace = MetaspacePreTokenizer(replacement: steps[0].replacement ?? "▁", prependScheme: scheme,
                                                  split: steps[0].split ?? true)
            return (metaspace, false)
        default:
            throw .unsupported(path: path, reason: "pre_tokenizer \(steps.map(\.type)) (supported: ByteLevel, alone or after Digits "
                                                   + "or Qwen2's or Llama 3's Split; a literal Split merged with the previous piece; Metaspace; none)")
        }
    }

    private static func makeNormalizer(_ config: TokenizerJSON.Stage?, path: String) throws(TokenizerError) -> (any Normalizer)? {
        guard let config else { return nil }
        switch config.type {
        case "NFC": return NFCNormalizer()
        case "Prepend": return PrependNormalizer(config.prepend ?? "")
        case "Replace":
            guard let pattern = config.pattern?.String, let content = config.content else {
                throw .unsupported(path: path, reason: "Replace normalizer with a regular expression (literal patterns are supported)")
            }
            return ReplaceNormalizer(pattern, with: content)
        case "Sequence":
            var steps: [any Normalizer] = []
            for step in config.normalizers ?? [] { try makeNormalizer(step, path: path).map { steps.append($0) } }
            return NormalizerSequence(steps)
        default:
            throw .unsupported(path: path, reason: "normalizer \(config.type) (NFC, Prepend, Replace and Sequence are)")
        }
    }

    /// Whether the decoder drops the "▁" a SentencePiece pipeline put in front: Strip of one
    /// leading space, or Metaspace with a prepend scheme.
    private static func stripsLeadingSpace(_ config: TokenizerJSON.Stage?) -> Bool {
        guard let config else { return false }
        switch config.type {
        case "Sequence": return (config.decoders ?? []).contains { stripsLeadingSpace($0) }
        case "Strip": return (config.start ?? 0) > 0
        case "Metaspace": return config.prepend_scheme.map { $0 != "never" } ?? (config.add_prefix_space ?? true)
        default: return false
        }
    }

    /// A GGUF file's `tokenizer.ggml.*` metadata: model "gpt2" (byte-level BPE with merges; the
    /// pre-tokenizer by `tokenizer.ggml.pre`) or "llama" (SentencePiece: characters ranked by
    /// their tokens' scores, byte fallback; read as transformers' GGUF converter reads it, with a
    /// "▁" in front of the text unless `tokenizer.ggml.add_space_prefix` is false).
    public static func load(gguf file: GGUFFile) throws(TokenizerError) -> Tokenizer {
        let path = file.path
        do {
            let model = try file.string("tokenizer.ggml.model")
            guard model == "gpt2" || model == "llama" else {
                throw TokenizerError.unsupported(path: path, reason: "tokenizer.ggml.model '\(model)' (gpt2 and llama are)")
            }
            let tokens = try file.strings("tokenizer.ggml.tokens")
            let types = file.metadata["tokenizer.ggml.token_type"] != nil ? try file.ints("tokenizer.ggml.token_type") : []
            guard types.isEmpty || types.count == tokens.count else {
                throw TokenizerError.inconsistent(path: path, reason: "\(types.count) token types for \(tokens.count) tokens")
            }
            var specials: [String: Int] = [:]
            // Control and user-defined tokens (and SentencePiece's unknown token) are matched whole.
            for (id, type) in types.enumerated() where type == 3 || type == 4 || (model == "llama" && type == 2) {
                specials[tokens[id]] = id
            }
            func id(_ key: String) throws(TokenizerError) -> Int? {
                guard let value = file.metadata[key]?.int else { return nil }
                guard tokens.indices.contains(value) else { throw .inconsistent(path: path, reason: "\(key) \(value) is not a token id") }
                return value
            }
            let merges: [SymbolPair], preTokenizer: any PreTokenizer
            var spelling = Tokenizer.Spelling()
            if model == "llama" {
                merges = []
                spelling = try sentencePieceSpelling(file, tokens: tokens, types: types)
                preTokenizer = MetaspacePreTokenizer(prependScheme: spelling.stripsLeadingSpace ? .first : .never, split: false)
            } else {
                merges = try parseMerges(try file.strings("tokenizer.ggml.merges"), path: path)
                try checkMerges(merges, known: Set(tokens), path: path)
                preTokenizer = try ggufPreTokenizer(file.metadata["tokenizer.ggml.pre"]?.string ?? "gpt2", path: path)
            }
            return Tokenizer(tokens: tokens, merges: merges, specialTokens: specials, preTokenizer: preTokenizer, spelling: spelling,
                             bos: try id("tokenizer.ggml.bos_token_id"), eos: try id("tokenizer.ggml.eos_token_id"),
                             pad: try id("tokenizer.ggml.padding_token_id"), unknown: try id("tokenizer.ggml.unknown_token_id"),
                             addsBOS: file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? (model == "llama"),
                             chatTemplate: file.metadata["tokenizer.chat_template"]?.string)
        } catch let error as TokenizerError {
            throw error
        } catch {
            throw .malformed(path: path, reason: "\(error)")
        }
    }

    /// llama.cpp's names of byte-level pre-tokenizers.
    private static func ggufPreTokenizer(_ pre: String, path: String) throws(TokenizerError) -> any PreTokenizer {
        switch pre {
        case "gpt2", "default": GPT2PreTokenizer()
        case "smollm": IndividualDigitsPreTokenizer(then: GPT2PreTokenizer())
        case "qwen2": QwenPreTokenizer(maxDigits: 1)
        case "llama3", "llama-bpe": QwenPreTokenizer(maxDigits: 3)
        default: throw .unsupported(path: path, reason: "tokenizer.ggml.pre '\(pre)' (gpt2, smollm, qwen2 and llama-bpe are)")
        }
    }

    /// A SentencePiece vocabulary's ranks: its normal tokens (type 1, or every token without
    /// types) by descending `tokenizer.ggml.scores`, ties in id order.
    private static func sentencePieceSpelling(_ file: GGUFFile, tokens: [String], types: [Int]) throws -> Tokenizer.Spelling {
        guard let values = file.metadata["tokenizer.ggml.scores"]?.array, values.count == tokens.count else {
            throw TokenizerError.inconsistent(path: file.path, reason: "tokenizer.ggml.scores must give one score per token")
        }
        let scores = values.map { $0.double ?? 0 }
        let ranked = tokens.indices.filter { types.isEmpty || types[$0] == 1 }.sorted { (scores[$0], -$0) > (scores[$1], -$1) }
        var ranks: [String: Int] = [:]
        for (rank, id) in ranked.enumerated() where ranks[tokens[id]] == nil { ranks[tokens[id]] = rank }
        return Tokenizer.Spelling(alphabet: .characters(byteFallback: true), tokenRanks: ranks, fusesUnknown: true,
                                  stripsLeadingSpace: file.metadata["tokenizer.ggml.add_space_prefix"]?.bool ?? true)
    }
}
