import CBLAS

/// `out[m, n] (+)= x[m, k] · w[n, k]ᵀ` as OpenBLAS calls of fixed shapes, so that every output
/// element is computed the same way whatever the number of rows, the row's place among them and
/// the thread count: a sequence's activations are the same bits in a pass of any batch
/// (data-parallel ranks, length groups and stacked streams reproduce one process's pass).
///
/// OpenBLAS chooses its kernels by shape (small-matrix kernels below some size, edge kernels
/// for remainders), and a row computed by another kernel rounds differently. Here every call
/// has exactly `rows` rows — the last, partial tile goes through a zero-padded scratch — and
/// the columns are cut into chunks of `columns` fixed by n alone; calls are spread over the
/// threads as (tile, chunk) items.
enum TiledGEMM {
    /// M of every call: a multiple of every x86-64 and arm64 kernel's row unrolling.
    static let rows = 64
    /// N of every call but a last, narrower chunk.
    static let columns = 256

    /// One (tile, chunk) item per call; `parallel` runs them.
    static func multiply(x: UnsafePointer<Float>, w: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                         m: Int, n: Int, k: Int, accumulate: Bool, parallel: Parallel) {
        let tiles = (m + rows - 1) / rows, chunks = (n + columns - 1) / columns
        let x = UncheckedSendable(x), w = UncheckedSendable(w), out = UncheckedSendable(out)
        parallel.forRanges(tiles * chunks) { items in
            for item in items {
                let (tile, chunk) = item.quotientAndRemainder(dividingBy: chunks)
                let first = tile * rows, column = chunk * columns
                let width = min(columns, n - column), height = min(rows, m - first)
                if height == rows {
                    call(x.value + first * k, k, w.value + column * k, out.value + first * n + column, n, width: width, k: k,
                         accumulate: accumulate)
                } else {
                    padded(x.value + first * k, w.value + column * k, out.value + first * n + column, n, height: height,
                           width: width, k: k, accumulate: accumulate)
                }
            }
        }
    }

    /// A full tile: `rows` rows of x (row stride `ldx`) into out (row stride `ldo`).
    private static func call(_ x: UnsafePointer<Float>, _ ldx: Int, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                             _ ldo: Int, width: Int, k: Int, accumulate: Bool) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(width), Int32(k), 1, x, Int32(ldx), w, Int32(k),
                    accumulate ? 1 : 0, out, Int32(ldo))
    }

    /// A partial tile of `height` rows through a scratch of `rows` rows (the rest zeros).
    private static func padded(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ ldo: Int,
                               height: Int, width: Int, k: Int, accumulate: Bool) {
        let input = UnsafeMutablePointer<Float>.allocate(capacity: rows * k)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
        defer {
            input.deallocate()
            output.deallocate()
        }
        input.update(from: x, count: height * k)
        (input + height * k).initialize(repeating: 0, count: (rows - height) * k)
        output.initialize(repeating: 0, count: rows * width)
        if accumulate {
            for r in 0..<height { (output + r * width).update(from: out + r * ldo, count: width) }
        }
        call(input, k, w, output, width, width: width, k: k, accumulate: accumulate)
        for r in 0..<height { (out + r * ldo).update(from: output + r * width, count: width) }
    }
}
