/// Rewrites a segment of text before it is split (Hugging Face's normalizers). Segments are
/// the stretches between special tokens, which are matched in the raw text first.
public protocol Normalizer: Sendable {
    func normalize(_ text: String) -> String
}

/// Unicode canonical composition (NFC), as Qwen's and Llama 3's tokenizers start with.
public struct NFCNormalizer: Normalizer {
    public init() {}

    /// The standard library's NFC (what String comparison uses); Foundation's
    /// `precomposedStringWithCanonicalMapping` would pull all of Foundation into the binary.
    public func normalize(_ text: String) -> String { String(decoding: text._nfcCodeUnits, as: UTF8.self) }
}

/// `Prepend`: `prefix` before a non-empty segment (Llama 2's "▁").
public struct PrependNormalizer: Normalizer {
    public let prefix: String

    public init(_ prefix: String) { self.prefix = prefix }

    public func normalize(_ text: String) -> String { text.isEmpty ? text : prefix + text }
}

/// `Replace` of a literal: every occurrence of `pattern`, scalar for scalar (not grapheme by
/// grapheme: a space followed by a combining mark is still a space), becomes `content`.
public struct ReplaceNormalizer: Normalizer {
    public let pattern: String
    public let content: String

    public init(_ pattern: String, with content: String) {
        self.pattern = pattern
        self.content = content
    }

    public func normalize(_ text: String) -> String { text.replacingScalars(pattern, with: content) }
}

/// Normalizers applied in order.
public struct NormalizerSequence: Normalizer {
    public let steps: [any Normalizer]

    public init(_ steps: [any Normalizer]) { self.steps = steps }

    public func normalize(_ text: String) -> String { steps.reduce(text) { $1.normalize($0) } }
}

extension StringProtocol {
    /// Every occurrence of `pattern` replaced by `content`, matching Unicode scalars exactly.
    func replacingScalars(_ pattern: String, with content: String) -> String {
        let needle = Array(pattern.unicodeScalars), scalars = Array(unicodeScalars)
        guard !needle.isEmpty else { return String(self) }
        var result = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if i + needle.count <= scalars.count, scalars[i..<i + needle.count].elementsEqual(needle) {
                result.append(contentsOf: content.unicodeScalars)
                i += needle.count
            } else {
                result.append(scalars[i])
                i += 1
            }
        }
        return String(result)
    }
}
