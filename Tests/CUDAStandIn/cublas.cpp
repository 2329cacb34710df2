// cuBLAS's handle functions and cublasGemmEx on the CPU: column-major C = α·op(A)·op(B) + β·C
// through OpenBLAS's sgemm on the handle's stream. Inputs may be fp32, fp16 or bf16 (widened
// exactly to fp32; fp32 accumulation), C fp32 or the inputs' type (rounded to nearest even);
// the FAST_TF32, FAST_16BF and FAST_16F compute types round fp32 inputs to TF32, bf16 or fp16
// first, as tensor cores take them. Arguments
// cuBLAS refuses (negative sizes, a leading dimension smaller than its matrix's rows, an
// unknown transpose, a type combination it lacks) are refused with the same status; operands
// that reach past their device allocation fail the stream as an illegal address would.
#include "standin.h"

#include <cblas.h>

#include <cstring>

namespace {

enum Status : int {
    statusSuccess = 0,
    statusNotInitialized = 1,
    statusInvalidValue = 7,
    statusExecutionFailed = 13,
    statusNotSupported = 15,
};

enum DataType : int { r32F = 0, r16F = 2, r16BF = 14 };
enum ComputeType : int { compute32F = 68, compute32FPedantic = 69, compute32FFast16F = 74, compute32FFast16BF = 75,
                         compute32FFastTF32 = 77 };

struct Handle {
    void *stream = nullptr;
    int mathMode = 0;
};

size_t elementBytes(int type) { return type == r32F ? 4 : 2; }

float widen(const void *data, int type, size_t index) {
    if (type == r32F) return ((const float *)data)[index];
    uint16_t half = ((const uint16_t *)data)[index];
    if (type == r16BF) {
        uint32_t bits = uint32_t(half) << 16;
        float value;
        memcpy(&value, &bits, 4);
        return value;
    }
    return (float)*(const _Float16 *)&half;
}

void narrow(float value, void *data, int type, size_t index) {
    if (type == r32F) {
        ((float *)data)[index] = value;
    } else if (type == r16F) {
        _Float16 half = (_Float16)value;
        memcpy((uint16_t *)data + index, &half, 2);
    } else {
        uint32_t bits;
        memcpy(&bits, &value, 4);
        uint16_t rounded = value != value ? uint16_t((bits >> 16) | 0x40) : uint16_t((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
        ((uint16_t *)data)[index] = rounded;
    }
}

/// fp32 rounded to TF32 (10 mantissa bits, to nearest, ties away from zero as cvt.rna.tf32).
float tf32(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    if ((bits & 0x7F800000u) != 0x7F800000u) bits = (bits + 0x1000u) & ~0x1FFFu;
    memcpy(&value, &bits, 4);
    return value;
}

/// fp32 rounded to bf16 or fp16 (to nearest even), as the tensor cores take it.
float rounded(float value, int type) {
    uint16_t half;
    narrow(value, &half, type, 0);
    return widen(&half, type, 0);
}

/// How fp32 inputs are rounded for `computeType` (r32F: not at all; -1: TF32).
int inputRounding(int computeType) {
    switch (computeType) {
    case compute32FFastTF32: return -1;
    case compute32FFast16BF: return r16BF;
    case compute32FFast16F: return r16F;
    default: return r32F;
    }
}

/// A column-major rows×columns operand (leading dimension `ld`) as dense fp32, its values
/// rounded as `rounding` says.
std::vector<float> dense(const void *data, int type, int rows, int columns, int ld, int rounding) {
    std::vector<float> out(size_t(rows) * columns);
    for (int c = 0; c < columns; ++c) {
        for (int r = 0; r < rows; ++r) {
            float value = widen(data, type, size_t(c) * ld + r);
            out[size_t(c) * rows + r] = rounding == -1 ? tf32(value) : rounding == r32F ? value : rounded(value, rounding);
        }
    }
    return out;
}

bool supported(int a, int b, int c, int compute) {
    if (a != b) return false;
    switch (compute) {
    case compute32F:
    case compute32FPedantic: return (a == r32F && c == r32F) || (a != r32F && (c == a || c == r32F));
    case compute32FFastTF32:
    case compute32FFast16F:
    case compute32FFast16BF: return a == r32F && c == r32F;
    default: return false;
    }
}

/// "" when a column-major rows×columns operand with leading dimension ld lies in one allocation.
std::string reach(const char *name, const void *data, int type, int rows, int columns, int ld) {
    if (rows == 0 || columns == 0) return "";
    size_t bytes = (size_t(columns - 1) * ld + rows) * elementBytes(type);
    standin::Allocation allocation;
    if (standin::findDevice(uintptr_t(data), bytes, &allocation)) return "";
    if (!standin::isDevice(uintptr_t(data))) return std::string("cublasGemmEx: ") + name + " is not device memory";
    return std::string("cublasGemmEx reads ") + std::to_string(bytes) + " bytes of " + name + " from " +
           standin::describe(allocation) + ", past its end";
}

}  // namespace

ZO_EXPORT int cublasCreate_v2(Handle **handle) {
    if (!handle) return statusInvalidValue;
    *handle = new Handle;
    return statusSuccess;
}

ZO_EXPORT int cublasDestroy_v2(Handle *handle) {
    if (!handle) return statusNotInitialized;
    delete handle;
    return statusSuccess;
}

ZO_EXPORT int cublasGetVersion_v2(Handle *handle, int *version) {
    if (!handle) return statusNotInitialized;
    if (!version) return statusInvalidValue;
    *version = 130000;
    return statusSuccess;
}

ZO_EXPORT int cublasSetStream_v2(Handle *handle, void *stream) {
    if (!handle) return statusNotInitialized;
    if (!standin::streamFor(stream)) return statusInvalidValue;
    handle->stream = stream;
    return statusSuccess;
}

ZO_EXPORT int cublasSetWorkspace_v2(Handle *handle, void *workspace, size_t bytes) {
    if (!handle) return statusNotInitialized;
    if (bytes > 0 && !standin::findDevice(uintptr_t(workspace), bytes, nullptr)) return statusInvalidValue;
    return statusSuccess;
}

ZO_EXPORT int cublasSetMathMode(Handle *handle, int mode) {
    if (!handle) return statusNotInitialized;
    handle->mathMode = mode;
    return statusSuccess;
}

ZO_EXPORT int cublasGemmEx(Handle *handle, int transA, int transB, int m, int n, int k, const void *alpha, const void *a,
                           int aType, int lda, const void *b, int bType, int ldb, const void *beta, void *c, int cType, int ldc,
                           int computeType, int algorithm) {
    if (!handle) return statusNotInitialized;
    (void)algorithm;
    bool transposeA = transA != 0, transposeB = transB != 0;
    int aRows = transposeA ? k : m, aColumns = transposeA ? m : k;
    int bRows = transposeB ? n : k, bColumns = transposeB ? k : n;
    if (transA < 0 || transA > 2 || transB < 0 || transB > 2 || m < 0 || n < 0 || k < 0 || lda < (aRows > 1 ? aRows : 1) ||
        ldb < (bRows > 1 ? bRows : 1) || ldc < (m > 1 ? m : 1) || !alpha || !beta) {
        return standin::fail(statusInvalidValue, "cublasGemmEx: invalid argument"), statusInvalidValue;
    }
    if (!supported(aType, bType, cType, computeType)) return statusNotSupported;
    standin::Stream *stream = standin::streamFor(handle->stream);
    if (m == 0 || n == 0) return statusSuccess;
    std::string outOfRange = reach("A", a, aType, aRows, aColumns, lda);
    if (outOfRange.empty()) outOfRange = reach("B", b, bType, bRows, bColumns, ldb);
    if (outOfRange.empty()) outOfRange = reach("C", c, cType, m, n, ldc);
    if (!outOfRange.empty()) {
        standin::recordError(stream, outOfRange);
        return statusExecutionFailed;
    }
    float alphaValue = *(const float *)alpha, betaValue = *(const float *)beta;
    int rounding = inputRounding(computeType);
    standin::statistics().gemms++;
    standin::enqueue(stream, "cublasGemmEx", [=] {
        // fp32 operands are used in place; others are widened (and TF32-rounded) copies.
        std::vector<float> denseA, denseB, denseC;
        const float *pa = (const float *)a, *pb = (const float *)b;
        int la = lda, lb = ldb;
        if (aType != r32F || rounding != r32F) {
            denseA = dense(a, aType, aRows, aColumns, lda, rounding);
            pa = denseA.data(), la = aRows;
        }
        if (bType != r32F || rounding != r32F) {
            denseB = dense(b, bType, bRows, bColumns, ldb, rounding);
            pb = denseB.data(), lb = bRows;
        }
        float *pc = (float *)c;
        int lc = ldc;
        if (cType != r32F) {
            denseC = betaValue != 0 ? dense(c, cType, m, n, ldc, r32F) : std::vector<float>(size_t(m) * n);
            pc = denseC.data(), lc = m;
        } else if (betaValue == 0) {
            // β = 0: C is not read (it may hold anything, NaN included), as in cuBLAS.
            for (int column = 0; column < n; ++column) memset(pc + size_t(column) * ldc, 0, size_t(m) * 4);
        }
        if (k > 0) {
            cblas_sgemm(CblasColMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, m, n, k,
                        alphaValue, pa, la, pb, lb, betaValue, pc, lc);
        } else {
            for (int column = 0; column < n; ++column) {
                for (int row = 0; row < m; ++row) pc[size_t(column) * lc + row] *= betaValue;
            }
        }
        if (cType != r32F) {
            for (int column = 0; column < n; ++column) {
                for (int row = 0; row < m; ++row) narrow(denseC[size_t(column) * m + row], c, cType, size_t(column) * ldc + row);
            }
        }
        std::string broken = standin::checkGuards(uintptr_t(c));
        return broken.empty() ? broken : "out-of-bounds write: " + broken;
    });
    return statusSuccess;
}
