// cuda/matmul.cu: batched matrix products through cuBLASLt.
//
// out (batch, M, N) row-major contiguous = a (batch, M, K) · b (batch, K, N), or += with
// Accumulate::yes (beta = 1: weight gradients accumulate in place). cuBLASLt is column-major, so
// the product is computed as outᵀ = bᵀ · aᵀ: a row-major operand with unit column stride is a
// column-major matrix of its transpose, one with unit row stride is itself with the transpose op;
// either way no copy is made. Operands with neither unit stride (stepped slices) are packed first.
// Batch strides may be 0 (a broadcast batch). bf16 and f16 operands multiply on the tensor cores with f32
// accumulation; f32 uses plain f32 math unless set_matmul_tf32(true); f64 uses f64.
// The heuristic's choice is cached per problem so steady-state calls do no planning.
// Reference: core/cpu/matmul.cpp.
#include "core/kernels/elementwise.h"
#include "core/kernels/matmul.h"
#include "cuda/runtime.h"

#include <optional>

#include <map>
#include <mutex>
#include <tuple>

namespace lumen::cuda {

namespace {

bool tf32_on = false;

struct Operand2d {
    cublasOperation_t op;
    uint64_t rows, cols;  // of the stored column-major matrix
    int64_t ld;
};

// A row-major (r, c) view with strides (sr, sc) as a stored column-major matrix whose op gives
// the view's transpose (what outᵀ = bᵀ · aᵀ needs). nullopt when neither stride is 1.
std::optional<Operand2d> as_column_major(int64_t r, int64_t c, int64_t sr, int64_t sc) {
    if (sc == 1 && (sr >= std::max<int64_t>(c, 1) || r == 1)) return Operand2d{CUBLAS_OP_N, uint64_t(c), uint64_t(r), std::max<int64_t>(std::max<int64_t>(sr, c), 1)};
    if (sr == 1 && (sc >= std::max<int64_t>(r, 1) || c == 1)) return Operand2d{CUBLAS_OP_T, uint64_t(r), uint64_t(c), std::max<int64_t>(std::max<int64_t>(sc, r), 1)};
    return std::nullopt;
}

struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulAlgo_t algo{};
};

using PlanKey = std::tuple<int, int, int, int, uint64_t, uint64_t, uint64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int, int>;
std::mutex& plans_mutex = *new std::mutex;
std::map<PlanKey, Plan>& plans = *new std::map<PlanKey, Plan>;

cublasLtMatrixLayout_t make_layout(cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld,
                                   int64_t batch, int64_t batch_stride) {
    cublasLtMatrixLayout_t l;
    LUMEN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
    if (batch > 1) {
        int32_t count = int32_t(batch);
        LUMEN_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
        LUMEN_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                            &batch_stride, sizeof(batch_stride)));
    }
    return l;
}

}  // namespace

void set_matmul_tf32(bool on) { tf32_on = on; }

void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc, const Tensor& bias) {
    const int64_t batch = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
    if (batch == 0 || M == 0 || N == 0) return;
    if (K == 0) {
        if (acc == Accumulate::no) kernels::fill(out, 0.0);
        if (bias.defined()) {
            Tensor rows = Tensor::over(bias.storage(), bias.layout().expand(out.shape()), bias.dtype());
            kernels::binary(BinaryOp::add, out, out, rows);
        }
        return;
    }
    const int device = out.device().index;
    set_device(device);
    auto oa = as_column_major(M, K, a.strides()[1], a.strides()[2]);
    auto ob = as_column_major(K, N, b.strides()[1], b.strides()[2]);
    if (!oa || !ob) {  // a stepped slice: pack it (the only copy this path ever makes)
        Tensor pa = oa ? a : Tensor::empty(a.shape(), a.dtype(), a.device());
        Tensor pb = ob ? b : Tensor::empty(b.shape(), b.dtype(), b.device());
        if (!oa) kernels::copy(pa, a);
        if (!ob) kernels::copy(pb, b);
        return matmul(out, pa, pb, acc, bias);
    }
    const DType in_dt = a.dtype(), out_dt = out.dtype();
    cudaDataType_t in_type, out_type;
    cublasComputeType_t compute;
    cudaDataType_t scale_type;
    if (in_dt == DType::f64) {
        in_type = out_type = CUDA_R_64F;
        compute = CUBLAS_COMPUTE_64F;
        scale_type = CUDA_R_64F;
    } else {
        auto cuda_type = [](DType dt) {
            return dt == DType::bf16 ? CUDA_R_16BF : dt == DType::f16 ? CUDA_R_16F : CUDA_R_32F;
        };
        in_type = cuda_type(in_dt);
        out_type = cuda_type(out_dt);
        compute = in_dt == DType::f32 && tf32_on ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        scale_type = CUDA_R_32F;
    }
    // outᵀ (N, M) = op(B) (N, K) · op(A) (K, M): cuBLAS's "A" is our b, its "B" our a.
    const PlanKey key{device, int(in_dt), int(out_dt), int(tf32_on), uint64_t(M), uint64_t(N), uint64_t(K),
                      ob->ld, oa->ld, a.strides()[0], b.strides()[0], batch, int64_t(ob->op), int(oa->op),
                      int(acc) + 2 * int(bias.defined())};
    Plan plan;
    {
        std::lock_guard lock(plans_mutex);
        auto it = plans.find(key);
        if (it != plans.end()) {
            plan = it->second;
        } else {
            LUMEN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, compute, scale_type));
            LUMEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ob->op, sizeof(ob->op)));
            LUMEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &oa->op, sizeof(oa->op)));
            if (bias.defined()) {  // outᵀ's rows are out's columns: a per-row bias of D is bias[n]
                const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
                LUMEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                                 sizeof(epilogue)));
                const cudaDataType_t bias_type = out_type;
                LUMEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                                 &bias_type, sizeof(bias_type)));
            }
            plan.la = make_layout(in_type, ob->rows, ob->cols, ob->ld, batch, b.strides()[0]);
            plan.lb = make_layout(in_type, oa->rows, oa->cols, oa->ld, batch, a.strides()[0]);
            plan.lc = make_layout(out_type, uint64_t(N), uint64_t(M), N, batch, M * N);
            cublasLtMatmulPreference_t pref;
            LUMEN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
            size_t workspace_bytes = 0;
            cublaslt_workspace(device, &workspace_bytes);
            LUMEN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                   &workspace_bytes, sizeof(workspace_bytes)));
            cublasLtMatmulHeuristicResult_t result{};
            int found = 0;
            LUMEN_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(device), plan.desc, plan.la, plan.lb,
                                                             plan.lc, plan.lc, pref, 1, &result, &found));
            cublasLtMatmulPreferenceDestroy(pref);
            if (found == 0)
                throw Error(fmt::format("matmul: cuBLASLt has no algorithm for this problem (M {}, N {}, K {}, "
                                        "batch {}): a {}, b {}", M, N, K, batch, describe(a), describe(b)));
            plan.algo = result.algo;
            plans.emplace(key, plan);
        }
    }
    if (bias.defined()) {  // NOTE: the pointer changes per call; the descriptor is shared by the plan
        const void* bias_ptr = bias.data_ptr();
        LUMEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr,
                                                         sizeof(bias_ptr)));
    }
    size_t workspace_bytes = 0;
    void* workspace = cublaslt_workspace(device, &workspace_bytes);
    const double alpha64 = 1.0, beta64 = acc == Accumulate::yes ? 1.0 : 0.0;
    const float alpha32 = 1.0f, beta32 = float(beta64);
    const void* alpha = in_dt == DType::f64 ? static_cast<const void*>(&alpha64) : &alpha32;
    const void* beta = in_dt == DType::f64 ? static_cast<const void*>(&beta64) : &beta32;
    LUMEN_CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(device), plan.desc, alpha, b.data_ptr(), plan.la,
                                      a.data_ptr(), plan.lb, beta, out.data_ptr(), plan.lc, out.data_ptr(),
                                      plan.lc, &plan.algo, workspace, workspace_bytes, compute_stream(device)));
    check_launch("cublasLtMatmul", {{"out", out}, {"a", a}, {"b", b}});
}

}  // namespace lumen::cuda
