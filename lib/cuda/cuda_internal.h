/*
** cuda_internal.h — state shared by the GPU backend's host files (backend_cuda.c: the step;
** weights_cuda.c: uploads, KV blocks and workspace).
*/
#ifndef INFER_CUDA_INTERNAL_H
#define INFER_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../../kernels/kernels.h"
#include "backend.h"
#include "model.h"

/* Record a CUDA / cuBLAS failure as this thread's error: INFER_ENOMEM for out-of-memory,
** INFER_EDEVICE otherwise, with the library's error string. */
infer_status cu_fail(int err, const char *what);
infer_status blas_fail(cublasStatus_t st, const char *what);
#define CU(call)                                          \
    do {                                                  \
        cudaError_t e_ = (call);                          \
        if (e_ != cudaSuccess) return cu_fail(e_, #call); \
    } while (0)
#define KL(call)                                \
    do {                                        \
        int e_ = (call);                        \
        if (e_) return cu_fail(e_, #call);      \
    } while (0)

#define CUDA_MAX_GRAPHS 32

typedef struct cuda_be {
    backend base;
    backend *cpu;            /* host ops (the BERT encoder runs on the CPU) */
    int dev, n_sm;
    char name[256];
    cudaStream_t stream;     /* every step's work, in order */
    cublasHandle_t blas;
    void *blas_ws;
    size_t blas_ws_bytes;
    int max_rows, max_seqs;  /* from the session: token budget, running sequences */
    int gemv_rows;           /* dense products of up to this many rows use the gemv kernel */
    int graphs;              /* capture decode steps as graphs (INFER_CUDA_GRAPHS=0: never) */
    int profile;             /* INFER_CUDA_PROFILE=1: time steps (host packing, GPU, wall) */
} cuda_be;

typedef struct dlayer {
    kmat wqkv;               /* (qd + 2 kvd, dim): q, k, v stacked */
    kmat wo;
    kmat wgu;                /* (2 hidden, dim): gate then up */
    kmat w2;
    float *attn_norm, *ffn_norm;
    float *bqkv;             /* (qd + 2 kvd) or NULL */
} dlayer;

/* A prompt chunk whose attention goes through cuBLAS (prefill_cuda.c). */
typedef struct pf_seg {
    int row0, n;      /* its rows in the step */
    int pos0;         /* position of its first row */
    int bt_off;       /* its block table in the step's tables */
} pf_seg;
#define CUDA_MAX_SEGS 64

typedef struct graph_ent {
    int rows, ctx;
    cudaGraphExec_t exec;
} graph_ent;

typedef struct cuda_model {
    int cdt;                 /* activation type of the cuBLAS path: KT_BF16, KT_F16 (KT_F32: none) */
    float eps;               /* RMSNorm epsilon */
    kmat embd, wcls;         /* wcls.q == embd.q when tied (one copy) */
    dlayer *layers;
    float *out_norm, *freqs;
    kv_geom kv;              /* kv.cache: the blocks, (n_blocks, n_layers, 2, block_tokens, kvd) */
    size_t weight_bytes, kv_bytes, work_bytes;
    /* workspace for max_rows rows */
    int max_rows, logit_cap;
    float *x, *xb, *qkv, *q, *att, *gu, *h, *logits; /* x: the residual stream */
    void *xc;                /* activations converted for cuBLAS */
    void *xq;                /* activations quantized for the int8 kernels */
    void *wtmp;              /* a quantized matrix dequantized for cuBLAS (or NULL) */
    float *part_o, *part_ml; /* attention splits */
    size_t part_slots;       /* (row, head, split) slots of part_o */
    int32_t *dmeta, *hmeta;  /* step metadata: device, pinned host */
    size_t meta_cap;         /* int32 entries */
    int32_t *ids, *hids;     /* argmax of each logit row: device, pinned host */
    void *amkeys;            /* k_argmax scratch (kept zero between steps) */
    /* INFER_CUDA_PROFILE=1: per-step times, printed when the model is freed */
    double prof_pack_ms, prof_gpu_ms, prof_wall_ms;
    void *prof_ev[2];
    uint8_t *hfull;          /* per logit row: copy the full row to the host */
    float *hlogits;          /* (max_rows, vocab) host rows for the sampler; pages touched only by rows copied */
    void *pf_kc, *pf_vc, *pf_q, *pf_p; /* prefill attention scratch (NULL for f32 models) */
    float *pf_s;
    pf_seg segs[CUDA_MAX_SEGS];        /* this step's chunks on that path */
    int n_segs;
    graph_ent graphs[CUDA_MAX_GRAPHS];
    int n_graphs;
    uint64_t steps, graph_steps;
} cuda_model;

infer_status cuda_model_init(backend *be, infer_model *m, size_t *kv_elem_bytes);
infer_status cuda_model_kv(backend *be, infer_model *m);
void cuda_model_free(backend *be, infer_model *m);
/* y (m, n) = x (m, w->k) . W^T on the backend's stream, with the k_gemv fusions: norm = RMSNorm
** x rows first, MM_PAIR = silu(gate) * up (n = w->n / 2), MM_ACC = y += result. On the cuBLAS
** path (cu_uses_blas) the input is cm->xc in the model's 16-bit type: MM_XC = the producer
** already wrote it there (x unused); MM_OUT_XC = a pair product leaves its result there, for a
** cuBLAS consumer (y unused). */
enum { MM_PAIR = 1, MM_ACC = 2, MM_XC = 4, MM_OUT_XC = 8 };
int cu_uses_blas(const cuda_be *c, const kmat *w, int m);
int cuda_prefill_eligible(const cuda_model *cm, int rows, int ctx);
infer_status cuda_prefill_alloc(cuda_model *cm, const infer_model *m, int max_rows);
void cuda_prefill_free(cuda_model *cm);
/* Attention of chunk sg for `layer` (q rows in cm->q; output into cm->xc); d_bt: the step's
** block tables on the device. */
infer_status cuda_prefill_attention(cuda_be *c, cuda_model *cm, const infer_model *m, const pf_seg *sg,
                                    const int32_t *d_bt, int layer);
infer_status cu_matmul(cuda_be *c, cuda_model *cm, float *y, const float *x, const kmat *w, int m, const float *norm,
                       int flags);

#endif
