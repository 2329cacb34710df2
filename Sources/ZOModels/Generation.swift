/// Autoregressive generation with a KV cache: the prompt in one pass, then one token per pass.
extension ModelRunner {
    /// Generates up to `maxTokens` tokens after `prompt`, calling `onToken` with each (return
    /// false to stop). Stops early at any of `stopTokens`, which are not passed on.
    public func generate(prompt: [Int], maxTokens: Int, sampler: Sampler, stopTokens: Set<Int>,
                         onToken: (Int) -> Bool) throws {
        var sampler = sampler
        let capacity = min(model.maxSequenceLength, prompt.count + maxTokens)
        guard prompt.count < capacity || maxTokens == 0 else {
            throw ModelError.sequenceTooLong(sequence: 0, length: prompt.count + 1, maximum: model.maxSequenceLength)
        }
        let cache = try KVCache(blocks: model.blocks.count, batchSize: 1, capacity: capacity, width: model.kvWidth, backend: backend)
        var input = prompt
        for _ in 0..<maxTokens where cache.length + input.count <= capacity {
            let logits = try forward(try model.makeBatch([input]), outputs: .logits, cache: cache, rows: [input.count - 1]).logits!
            let token = sampler.next(logits[...])
            if stopTokens.contains(token) || !onToken(token) { return }
            input = [token]
        }
    }
}
