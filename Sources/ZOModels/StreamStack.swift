/// A ZO step's streams run as one pass per request, when they differ only in what the
/// runner's `LinearAdapter` adds (every stream's pass the identity, stream s the adapter's
/// stream s): each request's batch repeated S times along B for the S streams evaluated here
/// (consecutive ones), so that every block linear reads its weights once for all of them (one
/// GEMM over S·R rows) and the adapter adds each stream's term to its rows; the results are
/// split back per stream (none for a stream not evaluated).
public struct StreamStack: Sendable {
    /// S: the streams stacked.
    public let count: Int
    /// The requests with their batches repeated S times (rows of stream s: b·T + t + s·B·T).
    public let requests: [ForwardRequest]
    /// The adapter's streams stacked (the first evaluated stream's onwards).
    public let streams: Range<Int>
    private let originals: [ForwardRequest]
    private let total: Int

    /// The stack of `streams` for `requests`, or nil when they cannot be stacked.
    public init?(_ requests: [ForwardRequest], streams: [PerturbedStream]) {
        let evaluated = streams.indices.filter { streams[$0].evaluated }
        guard streams.count > 1, streams.allSatisfy(\.pass.isIdentity), let first = evaluated.first,
              evaluated == Array(first..<first + evaluated.count), evaluated.allSatisfy({ streams[$0].adapterStream == $0 })
        else { return nil }
        count = evaluated.count
        self.streams = first..<first + count
        total = streams.count
        originals = requests
        self.requests = requests.map { [count] request in
            let r = request.batch.batchSize * request.batch.tokens
            return ForwardRequest(request.batch.repeated(count), outputs: request.outputs,
                                  rows: request.rows.map { rows in (0..<count).flatMap { s in rows.map { $0 + s * r } } })
        }
    }

    /// The stacked requests' results as [stream][request], every stream's (empty when not evaluated).
    public func split(_ results: [ForwardResult]) -> [[ForwardResult]] {
        (0..<total).map { stream in
            guard streams.contains(stream) else { return [] }
            let s = stream - streams.lowerBound
            return zip(originals, results).map { request, result in
                let n = result.tokenLosses.count / count
                let v = result.logits.map { $0.count / max(1, result.tokenLosses.count) } ?? 0
                return ForwardResult(batch: request.batch, rows: request.rows,
                                     tokenLosses: Array(result.tokenLosses[s * n..<(s + 1) * n]),
                                     logits: result.logits.map { Array($0[s * n * v..<(s + 1) * n * v]) },
                                     argmax: result.argmax.map { Array($0[s * n..<(s + 1) * n]) })
            }
        }
    }
}
