/// A ZO step's S streams run as one pass per request, when they differ only in what the
/// runner's `LinearAdapter` adds (every stream's pass the identity, the adapter's streams
/// 0..<S in order): each request's batch repeated S times along B, so that every block linear
/// reads its weights once for all streams (one GEMM over S·R rows) and the adapter adds each
/// stream's term to its rows; the results are split back per stream.
public struct StreamStack: Sendable {
    /// S.
    public let count: Int
    /// The requests with their batches repeated S times (rows of stream s: b·T + t + s·B·T).
    public let requests: [ForwardRequest]
    private let originals: [ForwardRequest]

    /// The stack of `streams` for `requests`, or nil when they cannot be stacked.
    public init?(_ requests: [ForwardRequest], streams: [PerturbedStream]) {
        guard streams.count > 1, streams.allSatisfy(\.pass.isIdentity),
              streams.map(\.adapterStream) == streams.indices.map(Optional.some) else { return nil }
        count = streams.count
        originals = requests
        self.requests = requests.map { [count] request in
            let r = request.batch.batchSize * request.batch.tokens
            return ForwardRequest(request.batch.repeated(count), outputs: request.outputs,
                                  rows: request.rows.map { rows in (0..<count).flatMap { s in rows.map { $0 + s * r } } })
        }
    }

    /// The adapter's streams.
    public var streams: Range<Int> { 0..<count }

    /// The stacked requests' results as [stream][request].
    public func split(_ results: [ForwardResult]) -> [[ForwardResult]] {
        (0..<count).map { s in
            zip(originals, results).map { request, result in
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
