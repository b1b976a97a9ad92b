/*
** cuda_internal.h — state shared by the GPU backend's host files (backend_cuda.c: the step;
** weights_cuda.c: uploads, KV blocks and workspace; prefill_cuda.c: long prompt chunks;
** tp_cuda.c: tensor parallelism over several GPUs with NCCL).
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

/* Decode graphs kept per model: 15 row buckets x the context buckets of contexts up to 16k
** (256 .. 16384) fit, so a serving load does not evict and re-capture (~ms each). */
#define CUDA_MAX_GRAPHS 128
/* Residual buffers the symmetric all-reduces rotate through: out of place, never into the
** buffer the previous all-reduce read (NCCL 2.28's symmetric kernels gave wrong sums in place
** here, as in NVIDIA/nccl#1924); also the inbox slots the push all-reduces rotate through. */
#define CUDA_TP_SYMM_BUFS 3
/* INFER_CUDA_PROFILE's step-size buckets: 1, 2-8, 9-32, 33-64, 65-128, 129-256, 257-512, more rows. */
#define CUDA_PROF_BUCKETS 8
/* Blocks (NCCL barriers, LL slot sets) of our device-API kernels, at most. */
#define CUDA_TP_LSA_BLOCKS 128

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
    int pad_rows;            /* plain steps' rows padded to a few counts (INFER_CUDA_PAD_ROWS=0: not) */
    /* Tensor parallelism (tp_cuda.c): n_ranks GPUs share each layer; rank[0] is this backend,
    ** rank[r] a backend of its own (device, stream, cuBLAS) driven by the same engine thread. */
    int n_ranks;
    struct cuda_be *rank[INFER_MAX_DEVICES];
    void *comm[INFER_MAX_DEVICES];  /* ncclComm_t of each rank */
    int tp_nocomm;           /* INFER_CUDA_TP_NOCOMM=1: skip the collectives (timing only: wrong results) */
    int tp_ar;               /* how steps of up to tp_win_rows rows all-reduce (CUDA_TP_AR_*) */
    int tp_win_rows;         /* larger steps: ncclAllReduce in place */
    int tp_ll_rows;          /* CUDA_TP_AR_LSA: steps of up to this many rows by LL, larger by push */
} cuda_be;

/* How steps of up to tp_win_rows rows all-reduce (INFER_CUDA_TP_AR; tp_cuda.c says why): our
** kernels over NCCL's device API (lsa, the default: LL up to tp_ll_rows rows, push + barrier
** above), ncclAllReduce on the plain buffers (nccl), or ncclAllReduce on NCCL symmetric windows
** (symm, experimental; also what INFER_CUDA_TP_SYMM_ROWS=N asks for, N then tp_win_rows). */
enum { CUDA_TP_AR_LSA, CUDA_TP_AR_NCCL, CUDA_TP_AR_SYMM };

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
    llama_hparams hp;        /* this rank's shapes (the model's on one GPU; tp_rank_hparams with several) */
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
    /* the same per step kind (replayed graph or not) and rows (CUDA_PROF_BUCKETS buckets), with
    ** the host time to enqueue the step's work: near the GPU time, the step is launch-bound */
    uint64_t prof_n[2][CUDA_PROF_BUCKETS];
    double prof_b_enq[2][CUDA_PROF_BUCKETS], prof_b_gpu[2][CUDA_PROF_BUCKETS], prof_b_wall[2][CUDA_PROF_BUCKETS];
    double prof_b_max[2][CUDA_PROF_BUCKETS]; /* the longest step's wall time */
    uint8_t *hfull;          /* per logit row: copy the full row to the host */
    float *hlogits;          /* (max_rows, vocab) host rows for the sampler; pages touched only by rows copied */
    void *pf_kc, *pf_vc, *pf_q, *pf_p, *pf_o; /* prefill attention scratch (NULL for f32 models) */
    float *pf_s;
    pf_seg segs[CUDA_MAX_SEGS];        /* this step's chunks on that path */
    int n_segs;
    graph_ent graphs[CUDA_MAX_GRAPHS];
    int n_graphs;
    uint64_t steps, graph_steps, captures;
    double capture_ms;       /* host time spent capturing and instantiating graphs */
    /* Tensor parallelism, in rank 0's state: every rank's state (peer[0] = this one), the
    ** vocabulary split (each rank's logits slice is vocab_pad wide at most), the slices
    ** received from the other ranks and the full logit rows assembled from them. */
    int n_ranks;
    struct cuda_model *peer[INFER_MAX_DEVICES];
    int64_t vocab, vocab_pad;
    int64_t vocab0;          /* this rank's first token id (0 on one GPU) */
    float *tp_recv, *tp_logits;
    /* Under TP: x is x_plain (cudaMalloc'd, all-reduced in place) or one of xs, which NCCL
    ** registered as symmetric windows (x_win) and which all-reduces rotate through. */
    float *x_plain, *xs[CUDA_TP_SYMM_BUFS];
    void *x_win[CUDA_TP_SYMM_BUFS];
    int x_cur;               /* the xs that x is */
    void *devcomm;           /* CUDA_TP_AR_LSA: this rank's NCCL device communicator, or NULL */
    float *inbox;            /* the peers' partial sums (push: CUDA_TP_SYMM_BUFS slots), a window */
    void *inbox_win;
    int win_rows;            /* rows an inbox slot holds */
    int ar_cur;              /* the inbox slot of the next push all-reduce */
    float *lg;               /* rank 0's tp_logits is lg, a window (lg_win), for k_lsa_gather */
    void *lg_win;
} cuda_model;

/* The pieces of a step, as run_layers strings them together on one GPU and tp_cuda.c across
** several. */
typedef struct step_ptrs {
    int32_t *tokens, *pos, *slot, *lrow, *tiles, *bt_off, *bt;
    float *samp; /* (R, 6) device sampling params of each logit row */
} step_ptrs;

typedef struct step_shape {
    int rows;        /* rows computed (padded for graphs) */
    int n_logits;    /* logit rows (lrow entries) */
    int n_tiles;
    int tile_rows;
    int n_splits, split_len;
    int sample;      /* some logit row is sampled on the device (always in graphs) */
} step_shape;

/* x = the embedding rows of the step's tokens; v0: the first token id of this rank's table
** (rows of other ranks' tokens are zero). */
infer_status cu_embed(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, int64_t v0);
/* Layer l's attention half (QKV, RoPE + KV store, attention, O) and FFN half (gate|up, SwiGLU,
** down); acc: add the product into x (the residual) rather than overwrite x with it. */
infer_status cu_attn_half(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, int l, int acc);
infer_status cu_ffn_half(cuda_be *c, cuda_model *cm, const step_shape *sh, int l, int acc);
/* Logit rows [j0, j0 + nl): final norm of their rows of x, classifier into cm->logits. */
infer_status cu_classify(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, int j0, int nl);
/* Pick the tokens of logit rows [j0, j0 + nl) from logits (nl, V): argmax, top-k draws. */
infer_status cu_pick(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, const float *logits,
                     int64_t V, int j0, int nl);
/* Copy the full rows the host asked for among logit rows [j0, j0 + nl) of logits (nl, V). */
infer_status cu_copy_full_rows(cuda_be *c, cuda_model *cm, const float *logits, int64_t V, int j0, int nl);

/* One rank's device state (weights_cuda.c): weights of the shapes in hp uploaded from w, then
** KV blocks (n_blocks of the pool's geometry with this rank's KV width) and workspace;
** host_vocab: width of the host logit rows (the full vocabulary, also under TP). */
infer_status cuda_rank_init(cuda_be *c, cuda_model *cm, const llama_weights *w, const float *freqs);
infer_status cuda_rank_kv(cuda_be *c, cuda_model *cm, const kv_pool *p, int64_t host_vocab);
void cuda_rank_free(cuda_be *c, cuda_model *cm);

/* Tensor parallelism (tp_cuda.c). cuda_tp_open: the other ranks' backends and the NCCL
** communicators for p->devices (INFER_EUNSUPPORTED in builds without NCCL). */
infer_status cuda_tp_open(cuda_be *c, const infer_session_params *p);
void cuda_tp_close(cuda_be *c);
/* Shard m's weights over the ranks and upload each rank's part (rank 0's state: cm). */
infer_status cuda_tp_model_init(cuda_be *c, cuda_model *cm, const infer_model *m);
/* After every rank's workspace exists (cuda_rank_kv): the memory NCCL registers as symmetric
** windows and, by default, the device communicators our all-reduce and gather kernels use
** (tp_cuda.c); where NCCL or the driver cannot (NCCL < 2.28, no VMM, GPUs that do not reach
** each other's memory), every step all-reduces x in place with ncclAllReduce.
** tp_model_free: all of that, before cuda_rank_free. */
infer_status cuda_tp_model_kv(cuda_be *c, cuda_model *cm);
void cuda_tp_model_free(cuda_be *c, cuda_model *cm);
/* Enqueue a whole step on every rank (also what graphs capture); dp[r]: rank r's metadata. */
infer_status cuda_tp_run(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *dp, int n_lrows);
/* Set up one rank's device context (stream, cuBLAS, workspace) on device dev. */
infer_status cuda_open_device(cuda_be *c, int dev);
void cuda_close_device(cuda_be *c);

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
infer_status cuda_prefill_alloc(cuda_model *cm, int max_rows);
void cuda_prefill_free(cuda_model *cm);
/* Attention of chunk sg for `layer` (q rows in cm->q; output into cm->xc); d_bt: the step's
** block tables on the device. */
infer_status cuda_prefill_attention(cuda_be *c, cuda_model *cm, const pf_seg *sg, const int32_t *d_bt, int layer);
infer_status cu_matmul(cuda_be *c, cuda_model *cm, float *y, const float *x, const kmat *w, int m, const float *norm,
                       int flags);

#endif
