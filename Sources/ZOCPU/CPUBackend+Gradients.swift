import CBLAS
import ZOCore

/// The backward operations on the CPU: OpenBLAS for GEMM (column slices over the threads,
/// as `linear`), row kernels from BackwardKernels.swift for the rest.
extension CPUBackend: GradientBackend {
    public func gemm(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, m: Int, n: Int, k: Int,
                     transposeA: Bool, transposeB: Bool, accumulate: Bool) {
        profile.measure("gemm_backward") {
            let a = UncheckedSendable(UnsafePointer(pointer(a))), b = UncheckedSendable(UnsafePointer(pointer(b)))
            let out = UncheckedSendable(pointer(out))
            let slices = min(threads, max(1, (n + 15) / 16), max(1, m * n * k / 2_000_000))
            parallel.forRanges(slices) { range in
                for slice in range {
                    let start = (n * slice / slices) & ~15, end = slice == slices - 1 ? n : (n * (slice + 1) / slices) & ~15
                    guard end > start else { continue }
                    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(end - start), Int32(k), 1, a.value, Int32(transposeA ? m : k),
                                b.value + (transposeB ? start * k : start), Int32(transposeB ? k : n),
                                accumulate ? 1 : 0, out.value + start, Int32(n))
                }
            }
        }
    }

    public func accumulateColumnSums(_ x: DeviceBuffer, out: DeviceBuffer, rows: Int, width: Int) {
        profile.measure("columnSums") {
            let x = UncheckedSendable(UnsafePointer(pointer(x))), out = UncheckedSendable(pointer(out))
            parallel.forRanges(width, grain: 64) { columns in
                for row in 0..<rows {
                    let source = x.value + row * width
                    for j in columns { out.value[j] += source[j] }
                }
            }
        }
    }

    public func zero(_ buffer: DeviceBuffer, count: Int) {
        pointer(buffer).update(repeating: 0, count: count)
    }

    public func reluBackward(gradient: DeviceBuffer, output: DeviceBuffer, count: Int) {
        profile.measure("reluBackward") {
            let gradient = pointer(gradient), output = pointer(output)
            for i in 0..<count where output[i] <= 0 { gradient[i] = 0 }
        }
    }

    public func layerNormBackward(x: DeviceBuffer, weight: DeviceBuffer?, gradOut: DeviceBuffer, gradX: DeviceBuffer,
                                  gradWeight: DeviceBuffer?, gradBias: DeviceBuffer?, rows: Int, channels: Int, eps: Float) {
        profile.measure("layerNormBackward") {
            // Rows in order on this thread: the weight and bias gradients sum over rows.
            let x = pointer(x), g = pointer(gradOut), gradX = pointer(gradX)
            let weight = weight.map { UnsafePointer(pointer($0)) }
            let gradWeight = gradWeight.map { pointer($0) }, gradBias = gradBias.map { pointer($0) }
            for row in 0..<rows {
                let offset = row * channels
                layerNormBackwardRow(x + offset, weight, g + offset, gradX + offset, gradWeight, gradBias, channels, eps)
            }
        }
    }

    public func rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, weightOffset: Float, gradOut: DeviceBuffer, gradX: DeviceBuffer,
                                gradWeight: DeviceBuffer, rows: Int, channels: Int, eps: Float) {
        profile.measure("rmsNormBackward") {
            let x = pointer(x), g = pointer(gradOut), gradX = pointer(gradX)
            let weight = UnsafePointer(pointer(weight)), gradWeight = pointer(gradWeight)
            for row in 0..<rows {
                let offset = row * channels
                rmsNormBackwardRow(x + offset, weight, weightOffset, g + offset, gradX + offset, gradWeight, channels, eps)
            }
        }
    }

    public func rotaryBackward(x: DeviceBuffer, positions: DeviceBuffer, table: DeviceBuffer, rows: Int, heads: Int, headSize: Int,
                               rowStride: Int) {
        profile.measure("rotaryBackward") {
            let x = pointer(x), positions = pointer(positions, as: Int32.self), table = UnsafePointer(pointer(table))
            for row in 0..<rows {
                let angles = table + Int(positions[row]) * headSize
                for head in 0..<heads {
                    rotateHalfBack(x + row * rowStride + head * headSize, cos: angles, sin: angles + headSize / 2, half: headSize / 2)
                }
            }
        }
    }

    public func gatedActivationBackward(_ function: GateFunction, gateUp: DeviceBuffer, gradOut: DeviceBuffer, gradGateUp: DeviceBuffer,
                                        rows: Int, width: Int) {
        profile.measure(function == .silu ? "swigluBackward" : "gegluBackward") {
            let gateUp = UncheckedSendable(UnsafePointer(pointer(gateUp))), g = UncheckedSendable(UnsafePointer(pointer(gradOut)))
            let out = UncheckedSendable(pointer(gradGateUp))
            let backward = function == .silu ? swigluBackwardRow : gegluTanhBackwardRow
            parallel.forRanges(rows, grain: max(1, 16_384 / max(width, 1))) { range in
                for row in range {
                    backward(gateUp.value + row * 2 * width, g.value + row * width, out.value + row * 2 * width, width)
                }
            }
        }
    }

    public func softcapBackward(gradient: DeviceBuffer, output: DeviceBuffer, count: Int, cap: Float) {
        profile.measure("softcapBackward") {
            let gradient = UncheckedSendable(pointer(gradient)), output = UncheckedSendable(UnsafePointer(pointer(output)))
            parallel.forRanges(count, grain: 16_384) { range in
                for i in range {
                    let t = output.value[i] / cap
                    gradient.value[i] *= 1 - t * t
                }
            }
        }
    }

    public func attentionBackward(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, keyMask: DeviceBuffer, gradOut: DeviceBuffer,
                                  gradQ: DeviceBuffer, gradK: DeviceBuffer, gradV: DeviceBuffer, shape: AttentionShape) {
        precondition(shape.queries == shape.keys && shape.capacity == shape.keys, "attention backward runs without a cache")
        profile.measure("attentionBackward") {
            let q = UncheckedSendable(UnsafePointer(pointer(q))), k = UncheckedSendable(UnsafePointer(pointer(k)))
            let v = UncheckedSendable(UnsafePointer(pointer(v))), g = UncheckedSendable(UnsafePointer(pointer(gradOut)))
            let mask = UncheckedSendable(UnsafePointer(pointer(keyMask, as: Int32.self)))
            let gradQ = UncheckedSendable(pointer(gradQ)), gradK = UncheckedSendable(pointer(gradK))
            let gradV = UncheckedSendable(pointer(gradV))
            let t = shape.keys, group = shape.heads / shape.kvHeads
            // One work item per (b, kv head): its query heads write its dK, dV and their own dQ.
            parallel.forRanges(shape.batch * shape.kvHeads) { pairs in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * max(t, 1)) { scratch in
                    for pair in pairs {
                        let (b, kvHead) = pair.quotientAndRemainder(dividingBy: shape.kvHeads)
                        let qOffset = b * t * shape.queryStride, kvOffset = b * t * shape.kvStride
                        for head in kvHead * group..<(kvHead + 1) * group {
                            attentionBackwardHead(q: q.value + qOffset, k: k.value + kvOffset, v: v.value + kvOffset,
                                                  keyMask: mask.value + b * t, gradOut: g.value + b * t * shape.heads * shape.headSize,
                                                  gradQ: gradQ.value + qOffset, gradK: gradK.value + kvOffset, gradV: gradV.value + kvOffset,
                                                  probabilities: scratch.baseAddress!, gradScores: scratch.baseAddress! + t,
                                                  capSlopes: scratch.baseAddress! + 2 * t, head: head, shape: shape)
                        }
                    }
                }
            }
        }
    }

    public func crossEntropyBackward(logits: DeviceBuffer, targets: DeviceBuffer, weights: DeviceBuffer, gradLogits: DeviceBuffer,
                                     rows: Int, vocab: Int) {
        profile.measure("crossEntropyBackward") {
            let logits = UncheckedSendable(UnsafePointer(pointer(logits)))
            let targets = UncheckedSendable(UnsafePointer(pointer(targets, as: Int32.self)))
            let weights = UncheckedSendable(UnsafePointer(pointer(weights))), out = UncheckedSendable(pointer(gradLogits))
            parallel.forRanges(rows) { range in
                for row in range {
                    crossEntropyBackwardRow(logits.value + row * vocab, vocab, Int(targets.value[row]), weights.value[row],
                                            out.value + row * vocab)
                }
            }
        }
    }

    public func scatterAddRows(_ values: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int, table: DeviceBuffer,
                               skipping: Int32?) {
        profile.measure("scatterAddRows") {
            let values = pointer(values), indices = pointer(indices, as: Int32.self), table = pointer(table)
            for n in 0..<count where indices[n] != skipping { axpy(1, values + n * width, table + Int(indices[n]) * width, width) }
        }
    }

    public func scatterAdd(_ values: DeviceBuffer, indices: DeviceBuffer, count: Int, into buffer: DeviceBuffer) {
        let values = pointer(values), indices = pointer(indices, as: Int32.self), target = pointer(buffer)
        for n in 0..<count { target[Int(indices[n])] += values[n] }
    }

    public func optimizerStep(_ rule: FirstOrderRule, parameters: DeviceBuffer, gradients: DeviceBuffer, state: [DeviceBuffer],
                              count: Int, step: Int, learningRate: Float, decays: Bool) {
        precondition(state.count == rule.stateCount, "\(rule) keeps \(rule.stateCount) state buffers, got \(state.count)")
        profile.measure("optimizerStep") {
            let theta = UncheckedSendable(pointer(parameters)), g = UncheckedSendable(UnsafePointer(pointer(gradients)))
            let first = UncheckedSendable(state.first.map { pointer($0) }), second = UncheckedSendable(state.dropFirst().first.map { pointer($0) })
            parallel.forRanges(count, grain: 4096) { range in
                for i in range {
                    rule.update(&theta.value[i], gradient: g.value[i], state: first.value.map { $0 + i }, state2: second.value.map { $0 + i },
                                step: step, learningRate: learningRate, decays: decays)
                }
            }
        }
    }
}
