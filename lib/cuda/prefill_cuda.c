/*
** prefill_cuda.c — attention of long prompt chunks through cuBLAS: for a chunk of rows of one
** sequence, K and V of its context are gathered from the paged blocks into contiguous 16-bit
** matrices, and per head S = Q K^T / sqrt(hd) (tensor cores), a causal softmax, then O = P V
** written straight into the O product's 16-bit input. The paged kernel (scalar arithmetic,
** one pass per tile) stays for decode rows and short chunks; on an 8B-shaped 512-token prompt
** it took about half the step (H100: 390 us a layer against ~40 for the GEMMs here).
**
** Row sub-chunks keep the score matrix within PF_ELEMS elements a head.
**
** The products take few shapes: cuBLAS chooses its kernel on the first product of each new
** shape, 2-10 ms a shape on the H100, and with a shape for every prompt length serving stalled
** whenever a new length came by. So the context is padded to a multiple of PF_CTX_Q positions
** (K and V zeros there, which the causal softmax masks) and the rows to a multiple of PF_ROW_Q
** (the rows past the chunk read Q rows of slack and write their output to scratch, copied
** back for the chunk's rows only).
*/
#include "cuda_internal.h"

#include <math.h>
#include <stdlib.h>

#define PF_ELEMS ((size_t)1 << 20)  /* score elements a head per sub-chunk */
#define PF_CTX_MAX 8192             /* context a chunk may attend (the K/V gather buffers) */
#define PF_MIN_ROWS 64              /* shorter chunks stay on the paged kernel */
#define PF_CTX_Q 128                /* the products' context: a multiple of this */
#define PF_ROW_Q 64                 /* their rows: a multiple of this */
/* a sub-chunk of at least PF_ROW_Q rows fits the scores at the longest context, and padded
** contexts stay within the gather buffers */
_Static_assert(PF_ELEMS / PF_CTX_MAX >= PF_ROW_Q, "prefill sub-chunks need PF_ROW_Q rows at PF_CTX_MAX");
_Static_assert(PF_CTX_MAX % PF_CTX_Q == 0, "padded contexts must fit the gather buffers");

int cuda_prefill_eligible(const cuda_model *cm, int rows, int ctx)
{
    return cm->pf_kc && rows >= PF_MIN_ROWS && ctx <= PF_CTX_MAX && PF_ELEMS / (size_t)ctx >= 16;
}

infer_status cuda_prefill_alloc(cuda_model *cm, int max_rows)
{
    if (cm->cdt == KT_F32) return INFER_OK; /* f32 models: the exact paged kernel only */
    const char *env = getenv("INFER_CUDA_PREFILL_GEMM"); /* 0: the paged kernel for every row (tests) */
    if (env && *env == '0') return INFER_OK;
    const llama_hparams *hp = &cm->hp;
    size_t kvd = (size_t)hp->n_kv_heads * (size_t)hp->head_dim, qd = (size_t)hp->n_heads * (size_t)hp->head_dim;
    struct {
        void **p;
        size_t bytes;
    } a[] = {
        { &cm->pf_kc, PF_CTX_MAX * kvd * 2 }, { &cm->pf_vc, PF_CTX_MAX * kvd * 2 },
        { &cm->pf_q, ((size_t)max_rows + PF_ROW_Q) * qd * 2 }, { (void **)&cm->pf_s, (size_t)hp->n_heads * PF_ELEMS * 4 },
        { &cm->pf_p, (size_t)hp->n_heads * PF_ELEMS * 2 }, { &cm->pf_o, ((size_t)max_rows + PF_ROW_Q) * qd * 2 },
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        cudaError_t e = cudaMalloc(a[i].p, a[i].bytes);
        if (e != cudaSuccess) return cu_fail(e, "cudaMalloc (prefill attention scratch)");
        cm->work_bytes += a[i].bytes;
    }
    return INFER_OK;
}

void cuda_prefill_free(cuda_model *cm)
{
    cudaFree(cm->pf_kc);
    cudaFree(cm->pf_vc);
    cudaFree(cm->pf_q);
    cudaFree(cm->pf_s);
    cudaFree(cm->pf_p);
    cudaFree(cm->pf_o);
}

infer_status cuda_prefill_attention(cuda_be *c, cuda_model *cm, const pf_seg *sg, const int32_t *d_bt, int layer)
{
    const llama_hparams *hp = &cm->hp;
    int hd = hp->head_dim, G = hp->n_heads / hp->n_kv_heads, nkv = hp->n_kv_heads;
    int qd = hp->n_heads * hd, kvd = nkv * hd, ctx = sg->pos0 + sg->n;
    int ctx_pad = (ctx + PF_CTX_Q - 1) / PF_CTX_Q * PF_CTX_Q; /* <= PF_CTX_MAX, a multiple of PF_CTX_Q */
    cudaDataType_t dt = cm->cdt == KT_F16 ? CUDA_R_16F : CUDA_R_16BF;
    KL(k_kv_gather(c->stream, cm->pf_kc, cm->pf_vc, cm->cdt, &cm->kv, layer, d_bt + sg->bt_off, ctx, ctx_pad));
    KL(k_convert(c->stream, (char *)cm->pf_q + (size_t)sg->row0 * (size_t)qd * 2, cm->cdt,
                 cm->q + (size_t)sg->row0 * (size_t)qd, (size_t)sg->n * (size_t)qd));
    const float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    /* rows a sub-chunk, a multiple of PF_ROW_Q: PF_ELEMS / PF_CTX_MAX >= PF_ROW_Q keeps it >= 1 */
    int chunk = (int)(PF_ELEMS / (size_t)ctx_pad) / PF_ROW_Q * PF_ROW_Q;
    for (int rs = 0; rs < sg->n; rs += chunk) {
        int nr = INFER_MIN(chunk, sg->n - rs), nr_pad = (nr + PF_ROW_Q - 1) / PF_ROW_Q * PF_ROW_Q;
        int cs = (sg->pos0 + rs + nr + PF_CTX_Q - 1) / PF_CTX_Q * PF_CTX_Q; /* positions these rows see, padded */
        size_t row = (size_t)(sg->row0 + rs);
        for (int g = 0; g < G; g++) {
            /* S_h (nr_pad, cs) row-major = column-major (cs, nr_pad) = K^T' . Q^T for head h = kvh * G + g */
            cublasStatus_t bs = cublasGemmStridedBatchedEx(
                c->blas, CUBLAS_OP_T, CUBLAS_OP_N, cs, nr_pad, hd, &scale, cm->pf_kc, dt, kvd, (long long)hd,
                (const char *)cm->pf_q + (row * (size_t)qd + (size_t)g * (size_t)hd) * 2, dt, qd, (long long)G * hd,
                &zero, cm->pf_s + (size_t)g * (size_t)nr_pad * (size_t)cs, CUDA_R_32F, cs,
                (long long)G * nr_pad * cs, nkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (bs != CUBLAS_STATUS_SUCCESS) return blas_fail(bs, "cublasGemmStridedBatchedEx (scores)");
        }
        KL(k_softmax_causal(c->stream, cm->pf_p, cm->cdt, cm->pf_s, hp->n_heads, nr_pad, cs, sg->pos0 + rs));
        for (int g = 0; g < G; g++) {
            /* O_h (nr_pad, hd) into the scratch rows: column-major (hd, nr_pad), ld qd */
            cublasStatus_t bs = cublasGemmStridedBatchedEx(
                c->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, nr_pad, cs, &one, cm->pf_vc, dt, kvd, (long long)hd,
                (const char *)cm->pf_p + (size_t)g * (size_t)nr_pad * (size_t)cs * 2, dt, cs,
                (long long)G * nr_pad * cs, &zero, (char *)cm->pf_o + (size_t)g * (size_t)hd * 2, dt, qd,
                (long long)G * hd, nkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (bs != CUBLAS_STATUS_SUCCESS) return blas_fail(bs, "cublasGemmStridedBatchedEx (values)");
        }
        /* the chunk's rows into the O product's input */
        CU(cudaMemcpyAsync((char *)cm->xc + row * (size_t)qd * 2, cm->pf_o, (size_t)nr * (size_t)qd * 2,
                           cudaMemcpyDeviceToDevice, c->stream));
    }
    return INFER_OK;
}
