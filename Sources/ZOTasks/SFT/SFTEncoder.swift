import ZOFormats
import ZOTokenizers

/// An SFT example as tokens: the ids, which of them the loss learns, and for evaluation by
/// generation the prompt and the reference answer.
public struct SFTExample: Sendable, Equatable {
    public let ids: [Int]
    /// Per token: whether predicting it is part of the loss (never the first token).
    public let learned: [Bool]
    /// The prompt a generation starts from (nil for plain text).
    public let prompt: [Int]?
    /// The answer the prompt is meant to get.
    public let reference: String?

    public init(ids: [Int], learned: [Bool], prompt: [Int]?, reference: String?) {
        self.ids = ids
        self.learned = learned
        self.prompt = prompt
        self.reference = reference
    }

    /// The number of learned tokens.
    public var learnedCount: Int { learned.reduce(0) { $0 + ($1 ? 1 : 0) } }
}

/// Which tokens an SFT loss learns.
public enum SFTLossScope: String, Sendable, CaseIterable {
    /// The completion, or the assistant's turns (TRL's completion_only_loss / assistant_only_loss).
    case completion
    /// Every token after the first.
    case all
}

/// Turns SFT records into tokens as TRL's SFTTrainer does: texts and string completions get the
/// tokenizer's EOS appended and are encoded with its special tokens; conversations are rendered
/// with the chat template and encoded as they are (the template writes BOS). A completion's
/// tokens are those after the prompt's. An assistant turn's are what the template's
/// `{% generation %}` blocks wrote where it has them (TRL's assistant_only_loss); else those its
/// text covers in the rendered conversation: from the end of the conversation before it
/// rendered with the generation prompt to the end of the conversation up to it rendered (its
/// end-of-turn marker and what follows it in the turn included, as TRL's conversational
/// prompt-completion learns).
public struct SFTEncoder {
    public let tokenizer: Tokenizer
    public let template: ChatTemplate?
    public let scope: SFTLossScope
    /// Longer examples are cut to their first `maxLength` tokens.
    public let maxLength: Int

    public init(tokenizer: Tokenizer, template: ChatTemplate?, scope: SFTLossScope, maxLength: Int) {
        self.tokenizer = tokenizer
        self.template = template
        self.scope = scope
        self.maxLength = maxLength
    }

    /// The example, nil when cutting it to `maxLength` left nothing to learn; whether it was cut.
    public func encode(_ record: SFTRecord) throws(SFTLineError) -> (example: SFTExample?, truncated: Bool) {
        let full: [Int], learnedRanges: [Range<Int>], prompt: [Int]?, reference: String?
        switch record {
        case .text(let text):
            full = tokenizer.encode(withEOS(text), addSpecialTokens: true)
            (learnedRanges, prompt, reference) = ([0..<full.count], nil, nil)
        case .promptCompletion(let promptText, let completion):
            let promptIds = tokenizer.encode(promptText, addSpecialTokens: true)
            full = tokenizer.encode(withEOS(promptText + completion), addSpecialTokens: true)
            (learnedRanges, prompt, reference) = ([commonPrefix(promptIds, full)..<full.count], promptIds, completion)
        case .conversationalPromptCompletion(let promptMessages, let completion, let context):
            let promptIds = tokenizer.encode(try render(promptMessages, context: context, generationPrompt: true))
            full = tokenizer.encode(try render(promptMessages + completion, context: context, generationPrompt: false))
            (learnedRanges, prompt) = ([commonPrefix(promptIds, full)..<full.count], promptIds)
            reference = completion.first { $0.object?["role"]?.string == "assistant" }?.object?["content"]?.string
        case .conversation(let messages, let context):
            let (text, spans) = try renderWithSpans(messages, context: context)
            full = tokenizer.encode(text)
            let assistant = messages.indices.filter { messages[$0].object?["role"]?.string == "assistant" }
            var ranges: [Range<Int>] = []
            if scope == .completion, template?.marksGeneration == true {
                // The template marks the assistant's text: learn what its generation blocks wrote.
                ranges = spans.map { span in
                    tokenIndex(atByte: span.lowerBound, of: text, full)..<tokenIndex(atByte: span.upperBound, of: text, full)
                }
            } else if scope == .completion {
                for turn in assistant {
                    let before = try render(Array(messages[..<turn]), context: context, generationPrompt: true)
                    let through = try render(Array(messages[...turn]), context: context, generationPrompt: false)
                    guard through.utf8.starts(with: before.utf8), text.utf8.starts(with: through.utf8) else {
                        throw SFTLineError("the chat template does not render assistant message \(turn) as a continuation of "
                                           + "the messages before it, so its tokens cannot be told apart; use --loss-on all")
                    }
                    ranges.append(tokenIndex(atByte: before.utf8.count, of: text, full)..<tokenIndex(atByte: through.utf8.count,
                                                                                                   of: text, full))
                }
            }
            learnedRanges = scope == .completion ? ranges : [0..<full.count]
            let last = assistant.last!
            prompt = tokenizer.encode(try render(Array(messages[..<last]), context: context, generationPrompt: true))
            reference = messages[last].object?["content"]?.string
        }
        var learned = [Bool](repeating: scope == .all, count: full.count)
        if scope == .completion { for range in learnedRanges { for k in range { learned[k] = true } } }
        if !learned.isEmpty { learned[0] = false }
        guard learned.contains(true) else { throw SFTLineError("nothing to learn: the completion adds no tokens") }
        let truncated = full.count > maxLength
        let ids = Array(full.prefix(maxLength)), kept = Array(learned.prefix(maxLength))
        guard kept.contains(true) else { return (nil, truncated) }
        return (SFTExample(ids: ids, learned: kept, prompt: prompt.flatMap { $0.count < maxLength ? $0 : nil }, reference: reference),
                truncated)
    }

    private func render(_ messages: [JSONValue], context: SFTTemplateContext, generationPrompt: Bool) throws(SFTLineError) -> String {
        try renderWithSpans(messages, context: context, generationPrompt: generationPrompt).text
    }

    /// The conversation's text and its `{% generation %}` spans.
    private func renderWithSpans(_ messages: [JSONValue], context: SFTTemplateContext, generationPrompt: Bool = false)
        throws(SFTLineError) -> (text: String, generationSpans: [Range<Int>]) {
        guard let template else { throw SFTLineError("conversations need a chat template, and the model has none") }
        do {
            return try template.renderWithGenerationSpans(messages: messages, tools: context.tools,
                                                          addGenerationPrompt: generationPrompt, extra: context.arguments)
        } catch {
            throw SFTLineError("\(error)")
        }
    }

    /// TRL appends the EOS token's text unless the text already ends with it.
    private func withEOS(_ text: String) -> String {
        guard let eos = tokenizer.eosTokenId, tokenizer.tokens.indices.contains(eos) else { return text }
        let eosText = tokenizer.tokens[eos]
        return text.hasSuffix(eosText) ? text : text + eosText
    }

    /// The index of the first token of `ids` (the encoding of `text`) that starts at or after
    /// UTF-8 offset `byte`: the tokens `text[..<byte]` encodes to that `ids` starts with.
    private func tokenIndex(atByte byte: Int, of text: String, _ ids: [Int]) -> Int {
        let prefix = String(decoding: text.utf8.prefix(byte), as: UTF8.self)
        return commonPrefix(tokenizer.encode(prefix), ids)
    }

    /// How many leading tokens `a` and `b` share (TRL compares a prompt's tokens with the start
    /// of prompt + completion's; a merge across the boundary gives the shared part to the prompt).
    private func commonPrefix(_ a: [Int], _ b: [Int]) -> Int {
        zip(a, b).prefix { $0 == $1 }.count
    }
}
