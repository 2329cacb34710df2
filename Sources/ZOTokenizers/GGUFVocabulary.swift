#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOFormats

/// A tokenizer as GGUF `tokenizer.*` metadata (what llama.cpp reads), and as a vocabulary-only
/// GGUF file (`tokenizer.gguf`) kept next to a model that came from a GGUF.
public enum GGUFVocabulary {
    /// The name of the vocabulary-only file in a model folder.
    public static let fileName = "tokenizer.gguf"

    /// The `tokenizer.*` metadata of the tokenizer at `path`: copied key by key from a GGUF file
    /// (or a folder's tokenizer.gguf); built from a tokenizer.json (or a folder's), byte-level or
    /// SentencePiece-style, otherwise, with `bos`/`eos`/`pad` (the model config's ids) where
    /// given and the chat template of the tokenizer_config.json beside it.
    public static func metadata(tokenizerAt path: String, bos: Int? = nil, eos: Int? = nil, pad: Int? = nil)
        throws(TokenizerError) -> [(key: String, value: GGUFValue)] {
        let fm = FileManager.default
        let isFolder = fm.fileExists(atPath: path + "/.")
        let ggufPath = isFolder ? path + "/" + fileName : path
        if !path.hasSuffix(".json"), fm.fileExists(atPath: ggufPath), !(isFolder && fm.fileExists(atPath: path + "/tokenizer.json")) {
            let file: GGUFFile
            do { file = try GGUFFile(path: ggufPath) } catch { throw .cannotRead(path: ggufPath, reason: "\(error)") }
            let keys = file.metadataKeys.filter { $0.hasPrefix("tokenizer.") }
            guard keys.contains("tokenizer.ggml.model") else {
                throw .malformed(path: ggufPath, reason: "no tokenizer.ggml.model: the file has no tokenizer")
            }
            return keys.map { ($0, file.metadata[$0]!) }
        }
        let tokenizer = try Tokenizer.load(path: path)
        let folder = isFolder ? path : String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        let template = chatTemplate(configPath: (folder.isEmpty ? "." : folder) + "/tokenizer_config.json")
        return try tokenizer.ggufMetadata(bos: bos, eos: eos, pad: pad, chatTemplate: template, path: path)
    }

    /// Writes `metadata` (a `tokenizer.*` list) as a vocabulary-only GGUF at `path`.
    public static func write(_ metadata: [(key: String, value: GGUFValue)], architecture: String, to path: String) throws {
        try GGUFWriter.write(metadata: [("general.architecture", .string(architecture))] + metadata, tensors: [], to: path) { _ in [] }
    }

    /// tokenizer_config.json's chat template, if it has a usable one.
    private static func chatTemplate(configPath: String) -> String? {
        guard FileManager.default.fileExists(atPath: configPath) else { return nil }
        return (try? TokenizerConfig(path: configPath)).flatMap { try? $0.chatTemplate.get() }
    }
}

extension Tokenizer {
    /// llama.cpp's `tokenizer.*` keys for this tokenizer: a byte-level BPE ("gpt2") with its merges
    /// and llama.cpp's name of its pre-tokenizer, or a SentencePiece-style one ("llama"); special
    /// tokens are control tokens (type 3).
    func ggufMetadata(bos: Int?, eos: Int?, pad: Int?, chatTemplate: String?, path: String)
        throws(TokenizerError) -> [(key: String, value: GGUFValue)] {
        var metadata = model.alphabet == .byteLevel ? try byteLevelVocabulary(path: path) : try sentencePieceVocabulary(path: path)
        for (key, id) in [("bos", bos ?? bosTokenId), ("eos", eos ?? eosTokenId), ("padding", pad ?? padTokenId)] {
            if let id, tokens.indices.contains(id) { metadata.append(("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))) }
        }
        metadata.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS)))
        if let template = chatTemplate ?? self.chatTemplate { metadata.append(("tokenizer.chat_template", .string(template))) }
        return metadata
    }

    /// Model "llama": tokens with scores that rank the merged tokens in merge order (a token a
    /// merge makes scores −rank; the others below every merge, in id order), types (2 unknown,
    /// 3 control, 6 byte, 1 normal) and whether a "▁" goes in front of the text.
    /// Scores can say what merges say only when every split of a token into two tokens is a merge
    /// (as in a vocabulary converted from SentencePiece, whose merges are all such splits);
    /// otherwise a token the merges never make would be made.
    private func sentencePieceVocabulary(path: String) throws(TokenizerError) -> [(key: String, value: GGUFValue)] {
        for token in model.vocabulary.keys where token.count > 1 {
            for cut in 1..<token.count {
                let (left, right) = (Array(token[..<cut]), Array(token[cut...]))
                guard model.vocabulary[left] != nil, model.vocabulary[right] != nil,
                      model.ranks[BPEModel.Pair(left: left, right: right)] == nil else { continue }
                throw .unsupported(path: path, reason: "GGUF vocabulary: '\(String(decoding: token, as: UTF8.self))' splits into two "
                                   + "tokens that are no merge, which SentencePiece's scores cannot express (a vocabulary converted "
                                   + "from SentencePiece has every such merge)")
            }
        }
        var scores = tokens.indices.map { -Float(model.ranks.count + $0) }
        for (pair, rank) in model.ranks {
            if let id = model.vocabulary[pair.left + pair.right], scores[id] < -Float(rank) { scores[id] = -Float(rank) }
        }
        let specialIds = Set(specialTokens.values)
        let types = tokens.indices.map { id -> GGUFValue in
            .int32(id == model.unknownId ? 2 : specialIds.contains(id) ? 3 : ByteFallback.byte(tokens[id]) != nil ? 6 : 1)
        }
        var metadata: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })),
            ("tokenizer.ggml.scores", .array(scores.map { .float32($0) })),
            ("tokenizer.ggml.token_type", .array(types)),
            ("tokenizer.ggml.add_space_prefix", .bool(stripsLeadingSpace)),
        ]
        if let unknown = model.unknownId { metadata.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unknown)))) }
        return metadata
    }

    /// Model "gpt2": tokens, types and merges, and the pre-tokenizer by llama.cpp's name.
    private func byteLevelVocabulary(path: String) throws(TokenizerError) -> [(key: String, value: GGUFValue)] {
        guard let pre = preTokenizer.ggufName else {
            throw .unsupported(path: path, reason: "GGUF vocabulary of a pre-tokenizer llama.cpp has no name for "
                                                   + "(GPT-2's, SmolLM2's, Qwen2's and Llama 3's have one)")
        }
        let specialIds = Set(specialTokens.values)
        let merges = model.ranks.sorted { $0.value < $1.value }
            .map { GGUFValue.string(String(decoding: $0.key.left, as: UTF8.self) + " " + String(decoding: $0.key.right, as: UTF8.self)) }
        var metadata: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(tokens.indices.map { .int32(specialIds.contains($0) ? 3 : 1) })),
        ]
        if !merges.isEmpty { metadata.append(("tokenizer.ggml.merges", .array(merges))) }
        return metadata
    }
}
