/*
** backend_cuda.c — the GPU backend (host side): device selection and the forward step as a
** sequence of kernels (the kernels/ files) and cuBLAS products, captured as CUDA graphs for
** decode steps. The per-model device state (weights, paged KV blocks, workspace) is
** weights_cuda.c's; long prompt chunks' attention is prefill_cuda.c's.
**
** Weights keep the file's precision where the kernels read it (f32, f16, bf16, Q8_0, Q4_0);
** Q/K/V and gate/up are fused into one matrix each. Activations are fp32 between kernels, the
** residual stream accumulates in place. Products: dense 16-bit weights of a single row
** (batch-1 decode) go to our row-block matrix-vector kernel, of several rows to cuBLAS (bf16/f16
** in, fp32 accumulate; its producers write that 16-bit input directly); int8 weights to our
** dp4a matrix-vector kernel for a row or two and to cuBLAS on a 16-bit copy beyond; f32 models
** stay on the exact, batch-invariant matrix-vector kernel for every row count. The
** matrix-vector kernel fuses RMSNorm, SwiGLU and the residual add (cu_matmul).
**
** A step: the host packs the batch's tokens, positions, cache slots, logit rows, sampling
** parameters, attention tiles and block tables into one pinned buffer, copies it up, runs the
** layers, picks each logit row's token on the device (argmax, or a top-k draw), and copies back
** the ids (plus the full rows the host sampler needs). Decode-only steps are padded to a bucket
** of rows and replayed from a graph captured once per (rows, context bucket).
*/
#include "cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

infer_status cu_fail(int err, const char *what)
{
    cudaError_t e = (cudaError_t)err;
    return infer_err(e == cudaErrorMemoryAllocation ? INFER_ENOMEM : INFER_EDEVICE, "CUDA: %s: %s", what,
                     cudaGetErrorString(e));
}

infer_status blas_fail(cublasStatus_t st, const char *what)
{
    return infer_err(st == CUBLAS_STATUS_ALLOC_FAILED ? INFER_ENOMEM : INFER_EDEVICE, "cuBLAS: %s: %s", what,
                     cublasGetStatusString(st));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static cuda_be *cbe(backend *be)
{
    return (cuda_be *)be;
}

/* ---- host ops: the CPU backend's (BERT embeddings run there) ---- */

static infer_status h_matmul(backend *be, float *y, const float *x, const tensor *w, int m)
{
    backend *c = cbe(be)->cpu;
    return c->ops->matmul(c, y, x, w, m);
}
static void h_rmsnorm(backend *be, float *y, const float *x, const float *w, int m, int dim, float eps)
{
    backend *c = cbe(be)->cpu;
    c->ops->rmsnorm(c, y, x, w, m, dim, eps);
}
static void h_rope(backend *be, float *x, const batch *b, int n_heads, int head_dim, const float *freqs, int neox)
{
    backend *c = cbe(be)->cpu;
    c->ops->rope(c, x, b, n_heads, head_dim, freqs, neox);
}
static void h_swiglu(backend *be, float *h, const float *g, const float *u, int n)
{
    backend *c = cbe(be)->cpu;
    c->ops->swiglu(c, h, g, u, n);
}
static infer_status h_attention(backend *be, const attn_args *a)
{
    backend *c = cbe(be)->cpu;
    return c->ops->attention(c, a);
}

void cuda_close_device(cuda_be *c)
{
    cudaSetDevice(c->dev);
    if (c->blas) cublasDestroy(c->blas);
    if (c->blas_ws) cudaFree(c->blas_ws);
    if (c->stream) cudaStreamDestroy(c->stream);
    c->blas = NULL;
    c->blas_ws = NULL;
    c->stream = NULL;
}

static void cuda_destroy(backend *be)
{
    cuda_be *c = cbe(be);
    if (!c) return;
    cuda_tp_close(c);
    cuda_close_device(c);
    backend_destroy(c->cpu);
    free(c);
}

/* ---- products ---- */

int cu_uses_blas(const cuda_be *c, const kmat *w, int m)
{
    int quant = w->type == KT_Q8_0 || w->type == KT_Q4_0;
    /* int8 kernel up to 2 rows when a 16-bit copy is there for cuBLAS, else up to its limit */
    int lim = quant ? (w->wide ? 2 : K_GEMV_MAX_ROWS) : c->gemv_rows;
    return w->type != KT_F32 && m > lim;
}

infer_status cu_matmul(cuda_be *c, cuda_model *cm, float *y, const float *x, const kmat *w, int m, const float *norm,
                       int flags)
{
    if (m <= 0) return INFER_OK;
    int pair = flags & MM_PAIR, accumulate = flags & MM_ACC;
    int quant = w->type == KT_Q8_0 || w->type == KT_Q4_0;
    int64_t n_out = pair ? w->n / 2 : w->n;
    if (!cu_uses_blas(c, w, m)) {
        /* f32: every row count on the exact kernel, K_GEMV_MAX_ROWS rows at a time */
        for (int r0 = 0; r0 < m; r0 += K_GEMV_MAX_ROWS) {
            int mr = INFER_MIN(K_GEMV_MAX_ROWS, m - r0);
            const float *xr = x + (size_t)r0 * (size_t)w->k;
            if (quant) KL(k_quantize_x(c->stream, cm->xq, xr, norm, cm->eps, mr, w->k));
            gemv_args ga = { .y = y + (size_t)r0 * (size_t)n_out, .x = xr, .xq = cm->xq, .norm = quant ? NULL : norm,
                             .eps = cm->eps, .accumulate = accumulate, .pair = pair, .m = mr };
            KL(k_gemv(c->stream, w, &ga));
        }
        return INFER_OK;
    }
    /* cuBLAS, whose input is cm->xc in the model's 16-bit type: the producer wrote it there
    ** (MM_XC), or RMSNorm does here, or a conversion. SwiGLU runs after the product. */
    if (norm) KL(k_rmsnorm(c->stream, cm->xc, cm->cdt, (float *)x, NULL, norm, NULL, m, (int)w->k, cm->eps));
    else if (!(flags & MM_XC)) KL(k_convert(c->stream, cm->xc, cm->cdt, x, (size_t)m * (size_t)w->k));
    float *out = pair ? cm->gu : y;
    const void *a = w->q;
    if (quant && w->wide) {
        a = w->wide;
    } else if (quant) {
        KL(k_dequant(c->stream, cm->wtmp, cm->cdt, w));
        a = cm->wtmp;
    }
    cudaDataType_t dt = cm->cdt == KT_F16 ? CUDA_R_16F : CUDA_R_16BF;
    const float one = 1.0f, beta = accumulate && !pair ? 1.0f : 0.0f;
    /* Column-major view: Y^T (n x m) = W (k x n)^T . X^T (k x m); beta = 1 adds the residual. */
    cublasStatus_t bs = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)w->n, m, (int)w->k, &one, a, dt,
                                     (int)w->k, cm->xc, dt, (int)w->k, &beta, out, CUDA_R_32F, (int)w->n,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (bs != CUBLAS_STATUS_SUCCESS) return blas_fail(bs, "cublasGemmEx");
    /* the SwiGLU output goes where its consumer reads: xc for a cuBLAS down product */
    if (pair) KL(flags & MM_OUT_XC ? k_swiglu(c->stream, cm->xc, cm->cdt, cm->gu, m, (int)n_out)
                                   : k_swiglu(c->stream, y, KT_F32, cm->gu, m, (int)n_out));
    return INFER_OK;
}

/* ---- the step ---- */

_Static_assert(SAMPLE_DEVICE_MAX_K == K_SAMPLE_MAX_K, "the scheduler's and the kernel's top-k limits differ");

static step_ptrs meta_ptrs(int32_t *base, int R)
{
    step_ptrs p;
    p.tokens = base;
    p.pos = base + R;
    p.slot = base + 2 * (size_t)R;
    p.lrow = base + 3 * (size_t)R;
    p.tiles = base + 4 * (size_t)R;
    p.bt_off = base + 7 * (size_t)R;
    p.samp = (float *)(base + 8 * (size_t)R);
    p.bt = base + 14 * (size_t)R;
    return p;
}

/* ---- the pieces of a step (run_layers on one GPU; tp_cuda.c across several) ---- */

infer_status cu_embed(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, int64_t v0)
{
    KL(k_embed(c->stream, cm->x, &cm->embd, p->tokens, sh->rows, v0));
    return INFER_OK;
}

static attn_desc attn_of(cuda_model *cm, const step_shape *sh, const step_ptrs *p)
{
    const llama_hparams *hp = &cm->hp;
    return (attn_desc){ .q = cm->q, .tiles = p->tiles, .pos = p->pos, .bt = p->bt, .bt_off = p->bt_off,
                        .part_o = cm->part_o, .part_ml = cm->part_ml, .n_tiles = sh->n_tiles, .rows = sh->rows,
                        .tile_rows = sh->tile_rows, .n_splits = sh->n_splits, .split_len = sh->split_len,
                        .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads, .head_dim = hp->head_dim,
                        .scale = 1.0f / sqrtf((float)hp->head_dim) };
}

/* RMSNorm is fused into the QKV and gate|up products, the residual add into the O and down
** products, SwiGLU into the gate|up product (matrix-vector path; cu_matmul splits them out
** around cuBLAS). */
infer_status cu_attn_half(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, int l, int acc)
{
    const llama_hparams *hp = &cm->hp;
    const dlayer *L = &cm->layers[l];
    int T = sh->rows;
    infer_status st;
    attn_desc ad = attn_of(cm, sh, p);
    if ((st = cu_matmul(c, cm, cm->qkv, cm->x, &L->wqkv, T, L->attn_norm, 0))) return st;
    KL(k_rope_store(c->stream, cm->q, cm->qkv, L->bqkv, p->pos, p->slot, cm->freqs, hp->rope == ROPE_NEOX, T,
                    hp->n_heads, hp->n_kv_heads, hp->head_dim, &cm->kv, l));
    KL(k_attention(c->stream, &ad, &cm->kv, l));
    int o_blas = cu_uses_blas(c, &L->wo, T);
    KL(o_blas ? k_attn_combine(c->stream, cm->xc, cm->cdt, &ad) : k_attn_combine(c->stream, cm->att, KT_F32, &ad));
    for (int i = 0; i < cm->n_segs; i++) /* long prompt chunks (their rows had no tiles) */
        if ((st = cuda_prefill_attention(c, cm, &cm->segs[i], p->bt, l))) return st;
    return cu_matmul(c, cm, cm->x, cm->att, &L->wo, T, NULL, (acc ? MM_ACC : 0) | (o_blas ? MM_XC : 0));
}

infer_status cu_ffn_half(cuda_be *c, cuda_model *cm, const step_shape *sh, int l, int acc)
{
    const dlayer *L = &cm->layers[l];
    int T = sh->rows, d_blas = cu_uses_blas(c, &L->w2, T);
    infer_status st = cu_matmul(c, cm, cm->h, cm->x, &L->wgu, T, L->ffn_norm, MM_PAIR | (d_blas ? MM_OUT_XC : 0));
    if (st) return st;
    return cu_matmul(c, cm, cm->x, cm->h, &L->w2, T, NULL, (acc ? MM_ACC : 0) | (d_blas ? MM_XC : 0));
}

infer_status cu_classify(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, int j0, int nl)
{
    (void)sh;
    int blas = cu_uses_blas(c, &cm->wcls, nl), D = cm->hp.dim;
    KL(blas ? k_rmsnorm(c->stream, cm->xc, cm->cdt, cm->x, NULL, cm->out_norm, p->lrow + j0, nl, D, cm->eps)
            : k_rmsnorm(c->stream, cm->xb, KT_F32, cm->x, NULL, cm->out_norm, p->lrow + j0, nl, D, cm->eps));
    return cu_matmul(c, cm, cm->logits, cm->xb, &cm->wcls, nl, NULL, blas ? MM_XC : 0);
}

infer_status cu_pick(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, const float *logits,
                     int64_t V, int j0, int nl)
{
    KL(k_argmax(c->stream, cm->ids + j0, cm->amkeys, logits, nl, (int)V));
    if (sh->sample) KL(k_sample_topk(c->stream, cm->ids + j0, logits, nl, (int)V, p->samp + 6 * (size_t)j0));
    return INFER_OK;
}

infer_status cu_copy_full_rows(cuda_be *c, cuda_model *cm, const float *logits, int64_t V, int j0, int nl)
{
    for (int j = j0; j < j0 + nl; j++) {
        if (!cm->hfull[j]) continue;
        CU(cudaMemcpyAsync(cm->hlogits + (size_t)j * (size_t)V, logits + (size_t)(j - j0) * (size_t)V,
                           (size_t)V * sizeof(float), cudaMemcpyDeviceToHost, c->stream));
    }
    return INFER_OK;
}

/* Enqueue every kernel of a step on one GPU (also what a graph captures). Logit rows go in
** chunks of the logits buffer; the host's full rows of a chunk are copied before the next
** chunk overwrites them (never inside a graph: graphs cover at most logit_cap rows), those of
** the last chunk by the caller. */
static infer_status run_layers(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *p, int n_lrows)
{
    infer_status st;
    if ((st = cu_embed(c, cm, sh, p, 0))) return st;
    for (int l = 0; l < cm->hp.n_layers; l++)
        if ((st = cu_attn_half(c, cm, sh, p, l, 1)) || (st = cu_ffn_half(c, cm, sh, l, 1))) return st;
    for (int j0 = 0; j0 < n_lrows; j0 += cm->logit_cap) {
        int nl = INFER_MIN(cm->logit_cap, n_lrows - j0);
        if ((st = cu_classify(c, cm, sh, p, j0, nl)) || (st = cu_pick(c, cm, sh, p, cm->logits, cm->vocab, j0, nl)))
            return st;
        if (j0 + nl < n_lrows && (st = cu_copy_full_rows(c, cm, cm->logits, cm->vocab, j0, nl))) return st;
    }
    return INFER_OK;
}

/* Smallest graph bucket holding n rows. */
static int bucket_rows(int n)
{
    static const int b[] = { 1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512 };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (n <= b[i]) return b[i];
    return n;
}

/* A plain step's rows padded to one of a few counts (multiples of 16, 32 or 64 as the step
** grows): cuBLAS chooses its kernel on the first product of each new shape, and on the H100 that
** cost 2-10 ms a shape (CUDA_MODULE_LOADING=EAGER did not help), paid by the step that met it.
** Steps of every row count up to the budget then stalled serving for 10-200 ms whenever a
** new count came by (bench/results/2026-11-27-serve_load-gpu-ttft/). Padding rows carry no KV
** store and no attention; memory-bound products cost the same, and cuBLAS's kernels for these
** aligned counts were no slower. */
static int plain_rows(int n)
{
    if (n <= 16) return bucket_rows(n);
    int q = n <= 128 ? 16 : n <= 512 ? 32 : 64;
    return (n + q - 1) / q * q;
}

/* Attention splits of a fixed 64 positions (flash-decoding): enough blocks for a batch of one
** at short contexts, and a query's result does not depend on what else is in the batch. Only
** when the partial-result buffer would overflow does the split grow (powers of two). */
static void choose_splits(const cuda_model *cm, int rows, int ctx, step_shape *sh)
{
    int len = 64;
    while ((size_t)rows * (size_t)cm->hp.n_heads * (size_t)((ctx + len - 1) / len) > cm->part_slots) len *= 2;
    sh->n_splits = (ctx + len - 1) / len;
    sh->split_len = len;
}

/* Capture a decode step of R rows and context bucket ctx as a graph on every rank (each
** rank's stream captured at once: the collectives between them are recorded in each) and
** keep them at the same index *gi of every rank's cache (the oldest replaced when full). */
static infer_status capture(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *dp, int R, int ctx,
                            int *gi)
{
    int nr = cm->n_ranks;
    cudaGraph_t g[INFER_MAX_DEVICES] = { 0 };
    cudaGraphExec_t ge[INFER_MAX_DEVICES] = { 0 };
    infer_status st = INFER_OK;
    int begun = 0;
    for (; begun < nr; begun++) {
        cudaError_t e = cudaSetDevice(c->rank[begun]->dev);
        if (e == cudaSuccess) e = cudaStreamBeginCapture(c->rank[begun]->stream, cudaStreamCaptureModeThreadLocal);
        if (e != cudaSuccess) {
            st = cu_fail(e, "cudaStreamBeginCapture");
            break;
        }
    }
    if (!st) st = nr > 1 ? cuda_tp_run(c, cm, sh, dp, R) : run_layers(c, cm, sh, &dp[0], R);
    /* every capture ends before any graph is instantiated: instantiation is not permitted while
    ** this thread still captures another rank's stream */
    for (int r = 0; r < begun; r++) {
        cudaSetDevice(c->rank[r]->dev);
        cudaError_t e = cudaStreamEndCapture(c->rank[r]->stream, &g[r]);
        if (!st && e != cudaSuccess) st = cu_fail(e, "cudaStreamEndCapture");
    }
    for (int r = 0; !st && r < nr; r++) {
        cudaSetDevice(c->rank[r]->dev);
        cudaError_t e = cudaGraphInstantiate(&ge[r], g[r], 0);
        if (e != cudaSuccess) st = cu_fail(e, "cudaGraphInstantiate");
    }
    for (int r = 0; r < nr; r++) {
        if (g[r]) cudaGraphDestroy(g[r]);
        if (st && ge[r]) cudaGraphExecDestroy(ge[r]);
    }
    cudaSetDevice(c->dev);
    if (st) return st;
    if (cm->n_graphs == CUDA_MAX_GRAPHS) { /* full: drop the oldest */
        for (int r = 0; r < nr; r++) {
            cuda_model *rm = cm->peer[r];
            cudaGraphExecDestroy(rm->graphs[0].exec);
            memmove(rm->graphs, rm->graphs + 1, sizeof rm->graphs[0] * (CUDA_MAX_GRAPHS - 1));
            rm->n_graphs--;
        }
    }
    for (int r = 0; r < nr; r++) {
        cuda_model *rm = cm->peer[r];
        rm->graphs[rm->n_graphs++] = (graph_ent){ R, ctx, ge[r] };
    }
    *gi = cm->n_graphs - 1;
    return INFER_OK;
}

static infer_status cuda_forward(backend *be, infer_model *m, const batch *b, fwd_out *out)
{
    cuda_be *c = cbe(be);
    cuda_model *cm = m->dev;
    const kv_pool *pool = &m->kv;
    int n = b->n, nl = b->n_logits;
    if (n > cm->max_rows) return infer_err(INFER_EINTERNAL, "step of %d rows over the workspace's %d", n, cm->max_rows);
    CU(cudaSetDevice(c->dev));
    double t0 = c->profile ? now_ms() : 0;

    /* Decode-only steps (one row per sequence, every row wanting logits) replay a graph. */
    int n_seqs = 0, decode = nl == n, maxctx = 0;
    for (int r = 0; r < n; r++) {
        if (r == 0 || b->tables[r] != b->tables[r - 1]) n_seqs++;
        else decode = 0;
        maxctx = INFER_MAX(maxctx, b->pos[r] + 1);
    }
    int pad = c->pad_rows && cm->cdt != KT_F32; /* f32 models: no cuBLAS, and products cost by the row */
    int R = decode ? bucket_rows(n) : pad ? plain_rows(n) : n;
    if (R > cm->max_rows) {
        R = n;
        decode = 0;
    }
    int use_graph = decode && c->graphs;
    /* a plain step's logit rows are padded too (the classifier's product): up to R, within one chunk */
    int nl_run = use_graph ? R : nl;
    if (!use_graph && pad && nl > 0 && nl <= cm->logit_cap)
        nl_run = INFER_MAX(nl, INFER_MIN(INFER_MIN(bucket_rows(nl), R), cm->logit_cap));
    step_shape sh = { .rows = R, .n_logits = nl_run, .sample = use_graph };

    /* Pack the metadata. */
    step_ptrs hp = meta_ptrs(cm->hmeta, R);
    int n_tiles = 0, tile_rows = use_graph ? 1 : k_attn_tile_rows(cm->hp.n_heads / cm->hp.n_kv_heads);
    int32_t n_bt = 0, seq = -1, j = 0, skip_to = -1;
    cm->n_segs = 0;
    for (int r = 0; r < n; r++) {
        int32_t pos = b->pos[r];
        const kv_seq *t = b->tables[r];
        hp.tokens[r] = b->tokens[r];
        hp.pos[r] = pos;
        hp.slot[r] = t->blocks[pos / pool->block_tokens] * pool->block_tokens + pos % pool->block_tokens;
        if (b->want_logits[r]) {
            hp.lrow[j] = r;
            memcpy(hp.samp + 6 * (size_t)j, b->dsamp + 6 * (size_t)r, 6 * sizeof(float));
            sh.sample |= b->dsamp[6 * (size_t)r] != 0.0f;
            cm->hfull[j++] = b->full_logits[r];
        }
        int new_seq = r == 0 || t != b->tables[r - 1];
        if (new_seq) {
            skip_to = -1;
            seq++;
            /* the whole table up to the sequence's last row of this step */
            int last = r;
            while (last + 1 < n && b->tables[last + 1] == t) last++;
            int32_t need = b->pos[last] / pool->block_tokens + 1;
            if ((size_t)(14 * (size_t)R + (size_t)n_bt + (size_t)need) > cm->meta_cap)
                return infer_err(INFER_EINTERNAL, "step metadata over its buffer");
            hp.bt_off[seq] = n_bt;
            memcpy(hp.bt + n_bt, t->blocks, (size_t)need * sizeof(int32_t));
            /* a long chunk: attention through cuBLAS, no tiles for its rows */
            if (!use_graph && cm->n_segs < CUDA_MAX_SEGS && cuda_prefill_eligible(cm, last - r + 1, b->pos[last] + 1)) {
                cm->segs[cm->n_segs++] = (pf_seg){ r, last - r + 1, b->pos[r], n_bt };
                skip_to = last;
            }
            n_bt += need;
        }
        if (r <= skip_to) continue;
        if (new_seq || hp.tiles[3 * (n_tiles - 1) + 1] == tile_rows) {
            hp.tiles[3 * n_tiles] = r;
            hp.tiles[3 * n_tiles + 1] = 0;
            hp.tiles[3 * n_tiles + 2] = seq;
            n_tiles++;
        }
        hp.tiles[3 * (n_tiles - 1) + 1]++;
    }
    for (int r = n; r < R; r++) { /* padding rows (graphs, padded plain steps): no KV store; in graphs, empty tiles */
        hp.tokens[r] = 0;
        hp.pos[r] = 0;
        hp.slot[r] = -1;
        hp.lrow[r] = r;
        hp.samp[6 * (size_t)r] = 0.0f;
        cm->hfull[r] = 0;
        if (!use_graph) continue; /* a padded plain step: no attention for these rows */
        hp.tiles[3 * n_tiles] = r;
        hp.tiles[3 * n_tiles + 1] = 0;
        hp.tiles[3 * n_tiles + 2] = 0;
        n_tiles++;
    }
    for (int k = nl; k < nl_run && !use_graph; k++) { /* padded logit rows: a real row, greedy, not copied */
        hp.lrow[k] = hp.lrow[0];
        hp.samp[6 * (size_t)k] = 0.0f;
        cm->hfull[k] = 0;
    }
    sh.n_tiles = n_tiles;
    sh.tile_rows = tile_rows;
    int ctx = maxctx;
    if (use_graph) { /* a context bucket, so one graph serves a range of lengths */
        ctx = 256;
        while (ctx < maxctx) ctx *= 2;
    }
    choose_splits(cm, R, ctx, &sh);

    double t1 = c->profile ? now_ms() : 0;
    if (c->profile) CU(cudaEventRecord((cudaEvent_t)cm->prof_ev[0], c->stream));
    size_t meta_n = 14 * (size_t)R + (size_t)n_bt;
    step_ptrs dp[INFER_MAX_DEVICES];
    for (int r = 0; r < cm->n_ranks; r++) { /* every rank gets the same metadata */
        cuda_be *rc = c->rank[r];
        cuda_model *rm = cm->peer[r];
        CU(cudaSetDevice(rc->dev));
        if (r > 0) {
            memcpy(rm->hmeta, cm->hmeta, meta_n * sizeof(int32_t));
            memcpy(rm->segs, cm->segs, sizeof cm->segs);
            rm->n_segs = cm->n_segs;
        }
        CU(cudaMemcpyAsync(rm->dmeta, rm->hmeta, meta_n * sizeof(int32_t), cudaMemcpyHostToDevice, rc->stream));
        dp[r] = meta_ptrs(rm->dmeta, R);
    }

    infer_status st = INFER_OK;
    if (use_graph) {
        int gi = -1;
        for (int i = 0; i < cm->n_graphs; i++)
            if (cm->graphs[i].rows == R && cm->graphs[i].ctx == ctx) gi = i;
        if (gi < 0) {
            double tc = now_ms();
            if ((st = capture(c, cm, &sh, dp, R, ctx, &gi))) return st;
            cm->captures++;
            cm->capture_ms += now_ms() - tc;
        }
        /* Every rank's replay is enqueued before any waits: the previous step ended with a
        ** synchronize on each, so no launch blocks on another GPU's collective. */
        for (int r = 0; r < cm->n_ranks; r++) {
            CU(cudaSetDevice(c->rank[r]->dev));
            CU(cudaGraphLaunch(cm->peer[r]->graphs[gi].exec, c->rank[r]->stream));
        }
        CU(cudaSetDevice(c->dev));
        cm->graph_steps++;
    } else {
        st = cm->n_ranks > 1 ? cuda_tp_run(c, cm, &sh, dp, sh.n_logits) : run_layers(c, cm, &sh, &dp[0], sh.n_logits);
        if (st) return st;
    }
    if (c->profile) CU(cudaEventRecord((cudaEvent_t)cm->prof_ev[1], c->stream));
    double t2 = c->profile ? now_ms() : 0;
    int nlr = sh.n_logits;
    /* the rows of the last logits chunk are still in the logits buffer */
    int last0 = nlr > 0 ? (nlr - 1) / cm->logit_cap * cm->logit_cap : 0;
    const float *lg = cm->n_ranks > 1 ? cm->tp_logits : cm->logits;
    if (nlr > 0 && (st = cu_copy_full_rows(c, cm, lg, cm->vocab, last0, nlr - last0))) return st;
    CU(cudaMemcpyAsync(cm->hids, cm->ids, (size_t)INFER_MAX(nlr, 1) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                       c->stream));
    /* every rank, every step: tensor parallelism's own kernels rely on it (tp_cuda.c) */
    for (int r = cm->n_ranks - 1; r >= 0; r--) {
        CU(cudaSetDevice(c->rank[r]->dev));
        CU(cudaStreamSynchronize(c->rank[r]->stream));
    }
    cm->steps++;
    if (c->profile) {
        float ms = 0;
        cudaEventElapsedTime(&ms, (cudaEvent_t)cm->prof_ev[0], (cudaEvent_t)cm->prof_ev[1]);
        double wall = now_ms() - t0;
        cm->prof_gpu_ms += ms;
        cm->prof_pack_ms += t1 - t0;
        cm->prof_wall_ms += wall;
        static const int upto[CUDA_PROF_BUCKETS - 1] = { 1, 8, 32, 64, 128, 256, 512 };
        int k = 0;
        while (k < CUDA_PROF_BUCKETS - 1 && n > upto[k]) k++;
        cm->prof_n[use_graph][k]++;
        cm->prof_b_enq[use_graph][k] += t2 - t1;
        cm->prof_b_gpu[use_graph][k] += ms;
        cm->prof_b_wall[use_graph][k] += wall;
        cm->prof_b_max[use_graph][k] = INFER_MAX(cm->prof_b_max[use_graph][k], wall);
    }
    out->logits = cm->hlogits;
    out->argmax = cm->hids;
    return INFER_OK;
}

static const backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .matmul = h_matmul,
    .rmsnorm = h_rmsnorm,
    .rope = h_rope,
    .swiglu = h_swiglu,
    .attention = h_attention,
    .model_init = cuda_model_init,
    .model_kv = cuda_model_kv,
    .model_free = cuda_model_free,
    .forward = cuda_forward,
};

infer_status cuda_open_device(cuda_be *c, int dev)
{
    struct cudaDeviceProp prop;
    cudaError_t e;
    c->dev = dev;
    if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess)
        return cu_fail(e, "cudaSetDevice");
    c->n_sm = prop.multiProcessorCount;
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return cu_fail(e, "cudaStreamCreate");
    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        return blas_fail(bs, "cublasCreate");
    }
    /* Our own workspace, so cuBLAS allocates nothing while a graph is captured. */
    c->blas_ws_bytes = (size_t)32 << 20;
    if ((e = cudaMalloc(&c->blas_ws, c->blas_ws_bytes)) != cudaSuccess) return cu_fail(e, "cudaMalloc (cuBLAS workspace)");
    if ((bs = cublasSetStream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS ||
        (bs = cublasSetWorkspace(c->blas, c->blas_ws, c->blas_ws_bytes)) != CUBLAS_STATUS_SUCCESS)
        return blas_fail(bs, "cublasSetWorkspace");
    if ((e = (cudaError_t)k_attn_init()) != cudaSuccess) return cu_fail(e, "attention kernel attributes");
    return INFER_OK;
}

infer_status backend_cuda_create(const infer_session_params *p, backend **out)
{
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return infer_err(INFER_EDEVICE, "no CUDA device: %s",
                         e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found none");
    int n_dev = INFER_MAX(p->n_devices, 1);
    if (n_dev > INFER_MAX_DEVICES)
        return infer_err(INFER_EINVAL, "n_devices = %d: at most %d", p->n_devices, INFER_MAX_DEVICES);
    for (int i = 0; i < n_dev; i++) {
        int d = p->n_devices > 0 ? p->devices[i] : 0;
        if (d < 0 || d >= n) return infer_err(INFER_EINVAL, "CUDA device %d does not exist (%d present)", d, n);
        for (int j = 0; j < i; j++)
            if (p->devices[j] == d) return infer_err(INFER_EINVAL, "CUDA device %d is named twice in devices[]", d);
    }
    cuda_be *c = calloc(1, sizeof *c);
    if (!c) return infer_err(INFER_ENOMEM, "out of memory");
    c->base.ops = &cuda_ops;
    c->base.n_threads = p->n_threads;
    c->n_ranks = 1;
    c->rank[0] = c;
    c->max_rows = INFER_MAX(p->max_batch_tokens, bucket_rows(p->max_running));
    c->max_seqs = INFER_MAX(p->max_running, 1);
    /* Single-row dense 16-bit products (batch-1 decode) on our row-per-block kernel with its
    ** fusions, larger ones on cuBLAS: on the H100, Llama-3-8B batch-1 decode 158.5-159.9 tok/s
    ** against cuBLAS's 152.0-152.6 (2 GPUs 242.6-243.2 against 226.9), Llama-3.2-1B 750 against
    ** 696 (bench/results/2026-11-27-rowblock/). INFER_CUDA_GEMV_ROWS=n moves the limit (0: all
    ** cuBLAS); f32 and int8 weights take the kernels at every row count as before. */
    c->gemv_rows = 1;
    c->graphs = 1;
    const char *env = getenv("INFER_CUDA_GEMV_ROWS");
    if (env && atoi(env) >= 0) c->gemv_rows = INFER_MIN(atoi(env), K_GEMV_MAX_ROWS);
    env = getenv("INFER_CUDA_GRAPHS");
    if (env && *env == '0') c->graphs = 0;
    env = getenv("INFER_CUDA_PROFILE");
    c->profile = env && *env == '1';
    env = getenv("INFER_CUDA_PAD_ROWS");
    c->pad_rows = !(env && *env == '0');
    env = getenv("INFER_CUDA_TP_NOCOMM");
    c->tp_nocomm = env && *env == '1';
    env = getenv("INFER_CUDA_TP_SYMM_ROWS");
    int symm_rows = env ? atoi(env) : 0; /* experimental: see tp_cuda.c */
    env = getenv("INFER_CUDA_TP_AR");
    c->tp_ar = symm_rows > 0 || (env && !strcmp(env, "symm")) ? CUDA_TP_AR_SYMM
             : env && !strcmp(env, "nccl")                      ? CUDA_TP_AR_NCCL
                                                                : CUDA_TP_AR_LSA;
    env = getenv("INFER_CUDA_TP_WIN_ROWS");
    c->tp_win_rows = symm_rows > 0 ? symm_rows : env ? atoi(env) : c->tp_ar == CUDA_TP_AR_SYMM ? 1 : 64;
    env = getenv("INFER_CUDA_TP_LL_ROWS");
    c->tp_ll_rows = env ? atoi(env) : 16;
    infer_status st = backend_cpu_create(p->n_threads, &c->cpu);
    if (st) {
        free(c);
        return st;
    }
    if ((st = cuda_open_device(c, p->n_devices > 0 ? p->devices[0] : 0)) ||
        (n_dev > 1 && (st = cuda_tp_open(c, p)))) {
        cuda_destroy(&c->base);
        return st;
    }
    cudaSetDevice(c->dev);
    *out = &c->base;
    return INFER_OK;
}
