/*
** kernels.h — the CUDA kernels of the GPU backend, as plain C launch functions.
**
** Each function enqueues one kernel on `stream` (a cudaStream_t) and returns the launch's
** cudaError_t as an int (0 = cudaSuccess); nothing here synchronises. Pointers are device
** pointers. Activations between kernels are fp32; weights and the KV cache use the element
** types below. One kernel family per file under kernels/; every kernel has a plain-C
** reference in lib/cpu/ops_ref.c or lib/dtype.c and a comparison in tests/test_cuda.c.
*/
#ifndef INFER_KERNELS_H
#define INFER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types on the device (values chosen to match lib/dtype.h for the shared ones). */
enum { KT_F32 = 0, KT_F16 = 1, KT_Q4_0 = 2, KT_Q8_0 = 8, KT_BF16 = 30 };

/* A weight matrix on the device: n rows (outputs) of k elements. Dense types are row-major.
** Q8_0 / Q4_0 are repacked at upload for aligned 16-byte loads: `q` holds every row's quants
** (k bytes for Q8_0, k/2 for Q4_0: byte j of a 32-block holds element j in its low nibble and
** j+16 in its high one, as ggml), `d` holds the f16 scale of each 32-block, row-major. */
typedef struct kmat {
    int type;
    int64_t n, k;
    void *q;          /* dense: the elements; quantized: the quants */
    uint16_t *d;      /* quantized: (n, k/32) f16 scales; NULL for dense types */
    void *wide;       /* quantized: a 16-bit copy for batched (cuBLAS) products, or NULL (host use) */
} kmat;

/* Embedding rows: out[r] = table[tokens[r] - v0] as fp32 (r < rows), zero where tokens[r] - v0
** is outside the table (a tensor-parallel rank's vocabulary slice; v0 = 0 on one GPU). */
int k_embed(void *stream, float *out, const kmat *table, const int32_t *tokens, int rows, int64_t v0);

/* Fused residual add + RMSNorm over rows of n: if add != NULL, x += add (in place);
** then out[r] = x[idx ? idx[r] : r] / rms * w, stored as out_type (KT_F32, KT_F16 or KT_BF16:
** the cuBLAS path's input type, so no conversion kernel runs). out may not alias x. */
int k_rmsnorm(void *stream, void *out, int out_type, float *x, const float *add, const float *w, const int32_t *idx,
              int rows, int n, float eps);

/* The attention input stage. qkv: (rows, qd + 2*kvd) fp32 straight from the fused QKV matmul.
** Adds the optional biases (qd + 2*kvd, or NULL), rotates q and k by RoPE at pos[r] with the
** per-pair frequencies freqs (head_dim/2; neox = rotate halves), writes the rotated q to
** q_out (rows, qd) and k, v to the cache slot slot[r] (block * block_tokens + offset; -1 =
** a padding row, nothing stored) of layer `layer`. Cache layout per block:
** (n_layers, 2, block_tokens, kvd) of kv_type (KT_F32, KT_F16 or KT_BF16). */
typedef struct kv_geom {
    void *cache;
    int kv_type;
    int n_layers, block_tokens, kvd;
} kv_geom;
int k_rope_store(void *stream, float *q_out, const float *qkv, const float *bias, const int32_t *pos,
                 const int32_t *slot, const float *freqs, int neox, int rows, int n_heads, int n_kv_heads,
                 int head_dim, const kv_geom *kv, int layer);

/* Paged attention over tiles of query rows. A tile is up to `tile_rows` consecutive rows of
** one sequence (a decode row is a tile of 1); tiles[t] = {row0, n_rows, seq}. Row r attends
** positions 0..pos[r] of its sequence, whose block table is bt[bt_off[seq] ..]. The grid is
** (n_tiles, n_kv_heads, n_splits): split s covers positions [s*split_len, (s+1)*split_len)
** (flash-decoding); each block serves all query heads of its KV head (grouped-query).
** Partial results go to part_o (rows, n_heads, n_splits, head_dim) and part_ml (rows, n_heads,
** n_splits, 2) and are merged by k_attn_combine into out (rows, n_heads*head_dim). A tile with
** n_rows = 0 is padding. */
typedef struct attn_desc {
    const float *q;
    const int32_t *tiles;   /* (n_tiles, 3) */
    const int32_t *pos;     /* (rows) */
    const int32_t *bt;      /* block tables, concatenated */
    const int32_t *bt_off;  /* (n_seqs) start of each sequence's table in bt */
    float *part_o, *part_ml;
    int n_tiles, rows, tile_rows, n_splits, split_len;
    int n_heads, n_kv_heads, head_dim;
    float scale;            /* 1 / sqrt(head_dim) */
} attn_desc;
int k_attention(void *stream, const attn_desc *a, const kv_geom *kv, int layer);
int k_attn_combine(void *stream, void *out, int out_type, const attn_desc *a);
/* Largest query rows per tile the attention kernel takes for a group size (n_heads / n_kv_heads). */
int k_attn_tile_rows(int group);
/* Raise the attention kernels' shared-memory limit (once per process, before any capture). */
int k_attn_init(void);

/* Prefill attention through cuBLAS (lib/cuda/prefill_cuda.c): a sequence's K and V of `layer`
** for positions 0..ctx-1 from its block table bt into contiguous (ctx_fill, kvd) matrices of
** out_type (zeros from ctx to ctx_fill); the causal softmax of score rows S (n_heads, rows, ctx)
** fp32, row r at position pos0 + r, into P of out_type (zeros past the position). */
int k_kv_gather(void *stream, void *kc, void *vc, int out_type, const kv_geom *kv, int layer, const int32_t *bt,
                int ctx, int ctx_fill);
int k_softmax_causal(void *stream, void *P, int out_type, const float *S, int n_heads, int rows, int ctx, int pos0);

/* h[r][i] = silu(gu[r][i]) * gu[r][H + i] for i < H (gu: the fused gate|up product), stored as
** out_type. */
int k_swiglu(void *stream, void *h, int out_type, const float *gu, int rows, int H);

/* Matrix-vector products for m <= K_GEMV_MAX_ROWS rows: y (m, n) = x (m, k) . W^T, fp32
** activations and accumulation, any dense or quantized W (for quantized W, xq holds x as
** k_quantize_x made it, and x itself is not read). Fused around the product, for decode:
** norm != NULL RMSNorm-scales each x row first (dense W; for quantized W pass norm to
** k_quantize_x); pair = W holds 2n rows, gate then up, and y (m, n) = silu(x.gate) * (x.up);
** accumulate = y += result (the residual add). Each output's reduction order does not depend on
** m (the same token gives the same result alone or in a batch). */
#define K_GEMV_MAX_ROWS 8
typedef struct gemv_args {
    float *y;
    const float *x;
    const void *xq;
    const float *norm;
    float eps;
    int accumulate, pair, m;
} gemv_args;
int k_gemv(void *stream, const kmat *w, const gemv_args *a);
/* x (m, k) fp32 -> int8 blocks of 32 with an f32 scale and the block's sum of quants
** (RMSNorm-scaled first when norm != NULL): per row k/32 * (32 + 8) bytes, padded to 16. */
size_t k_xq_bytes(int m, int64_t k);
int k_quantize_x(void *stream, void *xq, const float *x, const float *norm, float eps, int m, int64_t k);
/* Dense out (n, k) of type out_type (KT_BF16 or KT_F16) from a quantized W (for the cuBLAS path). */
int k_dequant(void *stream, void *out, int out_type, const kmat *w);
/* fp32 -> f16 / bf16 (n elements), and an in-place f16 -> bf16 for uploaded rows. */
int k_convert(void *stream, void *out, int out_type, const float *in, size_t n);

/* ids[r] = the lowest index of the largest of logits[r][0..n) (r < rows). scratch: k_argmax_scratch
** bytes, zero before the first call (each call leaves it zero again). */
size_t k_argmax_scratch(int rows);
int k_argmax(void *stream, int32_t *ids, void *scratch, const float *logits, int rows, int n);

/* Top-k sampling of the logit rows whose params (6 floats a row: mode 1 = sample, temperature,
** top_k in 1..K_SAMPLE_MAX_K, top_p, min_p, u in [0, 1) drawn by the host) ask for it, with
** sampler_sample's steps and arithmetic (lib/sampler.c); ids[r] of rows with mode 0 are left
** as they are (run after k_argmax). */
#define K_SAMPLE_MAX_K 64
int k_sample_topk(void *stream, int32_t *ids, const float *logits, int rows, int n, const float *params);

/* Tensor parallelism through NCCL's device API (allreduce.cu; NCCL >= 2.28). k_lsa_comm_create:
** a device communicator for an ncclComm_t with n_blocks barriers and LL slots of n_blocks
** blocks x ll_slots; a collective, so the ranks' calls go between ncclGroupStart and
** ncclGroupEnd, and *devcomm (host memory, freed by k_lsa_comm_destroy) is complete after the
** group; returns an ncclResult_t, or -1 where the build has no device API.
** k_lsa_comm_ranks: the ranks that reach each other's memory (NCCL's LSA team).
** k_lsa_allreduce_ll / _push: x (n floats; n even / a multiple of 4) = the sum over ranks, in
** rank order, of each rank's x, in place; every rank calls it with the same n, in the same
** order of calls (a kernel waits for its peers' without a time limit). LL: blocks =
** min(ceil(n / 512), max_blocks), each taking an even share of n, and ranks * share / 2 <=
** ll_slots (else cudaErrorInvalidValue). push stores each rank's x into the peers' window win at
** byte offset off + rank * n * 4 (ranks * n floats from off); a peer has read it when it
** arrives at its next push barrier on that window, so consecutive pushes take turns over
** offsets (the caller rotates three), and the caller orders pushes of different steps (it
** synchronizes every rank between steps). At most max_blocks (<= n_blocks) blocks.
** k_lsa_gather: logit rows (rows of this rank's v_r-wide vocabulary slice) into rank 0's window
** win (rows of V floats, this slice at column col0), every rank at once; complete on rank 0
** when its kernel ends. v_pad: the widest slice (the same on every rank, as the grid must be). */
int k_lsa_comm_create(void *nccl_comm, int n_blocks, int ll_slots, void **devcomm);
void k_lsa_comm_destroy(void *nccl_comm, void *devcomm);
int k_lsa_comm_ranks(const void *devcomm);
int k_lsa_allreduce_ll(void *stream, const void *devcomm, float *x, size_t n, int max_blocks);
int k_lsa_allreduce_push(void *stream, const void *devcomm, void *win, size_t off, float *x, size_t n, int max_blocks);
int k_lsa_gather(void *stream, const void *devcomm, void *win, const float *slice, int rows, int64_t v_r,
                 int64_t col0, int64_t V, int64_t v_pad, int max_blocks);

#ifdef __cplusplus
}
#endif
#endif
