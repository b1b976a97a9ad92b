/*
** backend_cuda.c — the GPU backend (host side): device selection and the forward step as a
** sequence of kernels (the kernels/ files) and cuBLAS products, captured as CUDA graphs for
** decode steps. The per-model device state (weights, paged KV blocks, workspace) is
** weights_cuda.c's; long prompt chunks' attention is prefill_cuda.c's.
**
** Weights keep the file's precision where the kernels read it (f32, f16, bf16, Q8_0, Q4_0);
** Q/K/V and gate/up are fused into one matrix each. Activations are fp32 between kernels, the
** residual stream accumulates in place. Products: dense 16-bit weights go to cuBLAS (bf16/f16
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

static void cuda_destroy(backend *be)
{
    cuda_be *c = cbe(be);
    if (!c) return;
    cudaSetDevice(c->dev);
    if (c->blas) cublasDestroy(c->blas);
    if (c->blas_ws) cudaFree(c->blas_ws);
    if (c->stream) cudaStreamDestroy(c->stream);
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

/* Pointers into the device copy of the step's metadata for a step of capacity R rows. */
typedef struct step_ptrs {
    int32_t *tokens, *pos, *slot, *lrow, *tiles, *bt_off, *bt;
    float *samp; /* (R, 6) device sampling params of each logit row */
} step_ptrs;

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

/* The shape of one step as the kernels see it. */
typedef struct step_shape {
    int rows;        /* rows computed (padded for graphs) */
    int n_logits;    /* logit rows (lrow entries) */
    int n_tiles;
    int tile_rows;
    int n_splits, split_len;
    int sample;      /* some logit row is sampled on the device (always in graphs) */
} step_shape;

/* Enqueue every kernel of a step (also what a graph captures). */
static infer_status copy_full_rows(cuda_be *c, cuda_model *cm, const infer_model *m, int j0, int nl);

static infer_status run_layers(cuda_be *c, cuda_model *cm, const infer_model *m, const step_shape *sh,
                               const step_ptrs *p, int n_lrows)
{
    const llama_hparams *hp = &m->hp;
    int T = sh->rows, D = hp->dim, hd = hp->head_dim;
    infer_status st;
    KL(k_embed(c->stream, cm->x, &cm->embd, p->tokens, T));
    attn_desc ad = { .q = cm->q, .tiles = p->tiles, .pos = p->pos, .bt = p->bt, .bt_off = p->bt_off,
                     .part_o = cm->part_o, .part_ml = cm->part_ml, .n_tiles = sh->n_tiles, .rows = T,
                     .tile_rows = sh->tile_rows, .n_splits = sh->n_splits, .split_len = sh->split_len,
                     .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads, .head_dim = hd,
                     .scale = 1.0f / sqrtf((float)hd) };
    /* Per layer: RMSNorm fused into the QKV and gate|up products, the residual adds into the O
    ** and down products, SwiGLU into the gate|up product (matrix-vector path; cu_matmul splits
    ** them out around cuBLAS). */
    for (int l = 0; l < hp->n_layers; l++) {
        const dlayer *L = &cm->layers[l];
        if ((st = cu_matmul(c, cm, cm->qkv, cm->x, &L->wqkv, T, L->attn_norm, 0))) return st;
        KL(k_rope_store(c->stream, cm->q, cm->qkv, L->bqkv, p->pos, p->slot, cm->freqs, hp->rope == ROPE_NEOX, T,
                        hp->n_heads, hp->n_kv_heads, hd, &cm->kv, l));
        KL(k_attention(c->stream, &ad, &cm->kv, l));
        int o_blas = cu_uses_blas(c, &L->wo, T), d_blas = cu_uses_blas(c, &L->w2, T);
        KL(o_blas ? k_attn_combine(c->stream, cm->xc, cm->cdt, &ad) : k_attn_combine(c->stream, cm->att, KT_F32, &ad));
        for (int i = 0; i < cm->n_segs; i++) /* long prompt chunks (their rows had no tiles) */
            if ((st = cuda_prefill_attention(c, cm, m, &cm->segs[i], p->bt, l))) return st;
        if ((st = cu_matmul(c, cm, cm->x, cm->att, &L->wo, T, NULL, MM_ACC | (o_blas ? MM_XC : 0)))) return st;
        if ((st = cu_matmul(c, cm, cm->h, cm->x, &L->wgu, T, L->ffn_norm, MM_PAIR | (d_blas ? MM_OUT_XC : 0))))
            return st;
        if ((st = cu_matmul(c, cm, cm->x, cm->h, &L->w2, T, NULL, MM_ACC | (d_blas ? MM_XC : 0)))) return st;
    }
    /* Logit rows in chunks of the logits buffer: final norm of the gathered rows (adding the
    ** last FFN output to them), classifier, argmax. */
    for (int j0 = 0; j0 < n_lrows; j0 += cm->logit_cap) {
        int nl = INFER_MIN(cm->logit_cap, n_lrows - j0);
        int blas = cu_uses_blas(c, &cm->wcls, nl);
        KL(blas ? k_rmsnorm(c->stream, cm->xc, cm->cdt, cm->x, NULL, cm->out_norm, p->lrow + j0, nl, D, hp->rms_eps)
                : k_rmsnorm(c->stream, cm->xb, KT_F32, cm->x, NULL, cm->out_norm, p->lrow + j0, nl, D, hp->rms_eps));
        if ((st = cu_matmul(c, cm, cm->logits, cm->xb, &cm->wcls, nl, NULL, blas ? MM_XC : 0))) return st;
        KL(k_argmax(c->stream, cm->ids + j0, cm->amkeys, cm->logits, nl, hp->vocab_size));
        if (sh->sample) KL(k_sample_topk(c->stream, cm->ids + j0, cm->logits, nl, hp->vocab_size, p->samp + 6 * (size_t)j0));
        if (j0 + nl < n_lrows) {
            /* later chunks overwrite cm->logits: the host's rows of this chunk go now (never
            ** inside a graph: graphs cover at most logit_cap rows) */
            if ((st = copy_full_rows(c, cm, m, j0, nl))) return st;
        }
    }
    return INFER_OK;
}

/* Copy the full logit rows the host asked for among logit rows [j0, j0 + nl) (currently in
** cm->logits) into cm->hlogits. */
static infer_status copy_full_rows(cuda_be *c, cuda_model *cm, const infer_model *m, int j0, int nl)
{
    size_t nv = (size_t)m->hp.vocab_size;
    for (int j = j0; j < j0 + nl; j++) {
        if (!cm->hfull[j]) continue;
        CU(cudaMemcpyAsync(cm->hlogits + (size_t)j * nv, cm->logits + (size_t)(j - j0) * nv, nv * sizeof(float),
                           cudaMemcpyDeviceToHost, c->stream));
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

/* Attention splits of a fixed 64 positions (flash-decoding): enough blocks for a batch of one
** at short contexts, and a query's result does not depend on what else is in the batch. Only
** when the partial-result buffer would overflow does the split grow (powers of two). */
static void choose_splits(const cuda_model *cm, const infer_model *m, int rows, int ctx, step_shape *sh)
{
    int len = 64;
    while ((size_t)rows * (size_t)m->hp.n_heads * (size_t)((ctx + len - 1) / len) > cm->part_slots) len *= 2;
    sh->n_splits = (ctx + len - 1) / len;
    sh->split_len = len;
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
    int R = decode ? bucket_rows(n) : n;
    if (R > cm->max_rows) {
        R = n;
        decode = 0;
    }
    int use_graph = decode && c->graphs;
    step_shape sh = { .rows = R, .n_logits = use_graph ? R : nl, .sample = use_graph };

    /* Pack the metadata. */
    step_ptrs hp = meta_ptrs(cm->hmeta, R);
    int n_tiles = 0, tile_rows = use_graph ? 1 : k_attn_tile_rows(m->hp.n_heads / m->hp.n_kv_heads);
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
    for (int r = n; r < R; r++) { /* graph padding rows: no KV store, empty tiles */
        hp.tokens[r] = 0;
        hp.pos[r] = 0;
        hp.slot[r] = -1;
        hp.lrow[r] = r;
        hp.samp[6 * (size_t)r] = 0.0f;
        cm->hfull[r] = 0;
        hp.tiles[3 * r] = r;
        hp.tiles[3 * r + 1] = 0;
        hp.tiles[3 * r + 2] = 0;
        n_tiles++;
    }
    sh.n_tiles = n_tiles;
    sh.tile_rows = tile_rows;
    int ctx = maxctx;
    if (use_graph) { /* a context bucket, so one graph serves a range of lengths */
        ctx = 256;
        while (ctx < maxctx) ctx *= 2;
    }
    choose_splits(cm, m, R, ctx, &sh);

    double t1 = c->profile ? now_ms() : 0;
    if (c->profile) CU(cudaEventRecord((cudaEvent_t)cm->prof_ev[0], c->stream));
    size_t meta_n = 14 * (size_t)R + (size_t)n_bt;
    CU(cudaMemcpyAsync(cm->dmeta, cm->hmeta, meta_n * sizeof(int32_t), cudaMemcpyHostToDevice, c->stream));
    step_ptrs dp = meta_ptrs(cm->dmeta, R);

    infer_status st = INFER_OK;
    if (use_graph) {
        cudaGraphExec_t ge = NULL;
        for (int i = 0; i < cm->n_graphs; i++)
            if (cm->graphs[i].rows == R && cm->graphs[i].ctx == ctx) ge = cm->graphs[i].exec;
        if (!ge) {
            cudaGraph_t g = NULL;
            CU(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
            st = run_layers(c, cm, m, &sh, &dp, R);
            cudaError_t e = cudaStreamEndCapture(c->stream, &g);
            if (st) {
                if (g) cudaGraphDestroy(g);
                return st;
            }
            if (e != cudaSuccess) return cu_fail(e, "cudaStreamEndCapture");
            e = cudaGraphInstantiate(&ge, g, 0);
            cudaGraphDestroy(g);
            if (e != cudaSuccess) return cu_fail(e, "cudaGraphInstantiate");
            if (cm->n_graphs < CUDA_MAX_GRAPHS) {
                cm->graphs[cm->n_graphs++] = (graph_ent){ R, ctx, ge };
            } else { /* full: replace the oldest */
                cudaGraphExecDestroy(cm->graphs[0].exec);
                memmove(cm->graphs, cm->graphs + 1, sizeof cm->graphs[0] * (CUDA_MAX_GRAPHS - 1));
                cm->graphs[CUDA_MAX_GRAPHS - 1] = (graph_ent){ R, ctx, ge };
            }
        }
        CU(cudaGraphLaunch(ge, c->stream));
        cm->graph_steps++;
    } else {
        st = run_layers(c, cm, m, &sh, &dp, sh.n_logits);
        if (st) return st;
    }
    if (c->profile) CU(cudaEventRecord((cudaEvent_t)cm->prof_ev[1], c->stream));
    int nlr = sh.n_logits;
    /* the rows of the last logits chunk are still in cm->logits */
    int last0 = nlr > 0 ? (nlr - 1) / cm->logit_cap * cm->logit_cap : 0;
    if (nlr > 0 && (st = copy_full_rows(c, cm, m, last0, nlr - last0))) return st;
    CU(cudaMemcpyAsync(cm->hids, cm->ids, (size_t)INFER_MAX(nlr, 1) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                       c->stream));
    CU(cudaStreamSynchronize(c->stream));
    cm->steps++;
    if (c->profile) {
        float ms = 0;
        cudaEventElapsedTime(&ms, (cudaEvent_t)cm->prof_ev[0], (cudaEvent_t)cm->prof_ev[1]);
        cm->prof_gpu_ms += ms;
        cm->prof_pack_ms += t1 - t0;
        cm->prof_wall_ms += now_ms() - t0;
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

infer_status backend_cuda_create(const infer_session_params *p, backend **out)
{
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return infer_err(INFER_EDEVICE, "no CUDA device: %s",
                         e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found none");
    int dev = p->n_devices > 0 ? p->devices[0] : 0;
    if (p->n_devices > 1)
        return infer_err(INFER_EUNSUPPORTED, "n_devices = %d: tensor parallelism over several GPUs is not in this "
                         "build yet; use one device", p->n_devices);
    if (dev < 0 || dev >= n) return infer_err(INFER_EINVAL, "CUDA device %d does not exist (%d present)", dev, n);
    cuda_be *c = calloc(1, sizeof *c);
    if (!c) return infer_err(INFER_ENOMEM, "out of memory");
    c->base.ops = &cuda_ops;
    c->base.n_threads = p->n_threads;
    c->dev = dev;
    c->max_rows = INFER_MAX(p->max_batch_tokens, bucket_rows(p->max_running));
    c->max_seqs = INFER_MAX(p->max_running, 1);
    /* Dense 16-bit products go to cuBLAS at every row count: on the H100, 1B batch-1 decode ran
    ** 1.60 ms a step with cuBLAS and 1.87 with our matrix-vector kernel (which stays the path
    ** for f32 and for int8 weights, and INFER_CUDA_GEMV_ROWS=n takes it up to n rows). */
    c->gemv_rows = 0;
    c->graphs = 1;
    const char *env = getenv("INFER_CUDA_GEMV_ROWS");
    if (env && atoi(env) >= 0) c->gemv_rows = INFER_MIN(atoi(env), K_GEMV_MAX_ROWS);
    env = getenv("INFER_CUDA_GRAPHS");
    if (env && *env == '0') c->graphs = 0;
    env = getenv("INFER_CUDA_PROFILE");
    c->profile = env && *env == '1';
    infer_status st = backend_cpu_create(p->n_threads, &c->cpu);
    if (st) {
        free(c);
        return st;
    }
    struct cudaDeviceProp prop;
    if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess) {
        cuda_destroy(&c->base);
        return cu_fail(e, "cudaSetDevice");
    }
    c->n_sm = prop.multiProcessorCount;
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cuda_destroy(&c->base);
        return cu_fail(e, "cudaStreamCreate");
    }
    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        cuda_destroy(&c->base);
        return blas_fail(bs, "cublasCreate");
    }
    /* Our own workspace, so cuBLAS allocates nothing while a graph is captured. */
    c->blas_ws_bytes = (size_t)32 << 20;
    if ((e = cudaMalloc(&c->blas_ws, c->blas_ws_bytes)) != cudaSuccess) {
        cuda_destroy(&c->base);
        return cu_fail(e, "cudaMalloc (cuBLAS workspace)");
    }
    if ((bs = cublasSetStream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS ||
        (bs = cublasSetWorkspace(c->blas, c->blas_ws, c->blas_ws_bytes)) != CUBLAS_STATUS_SUCCESS) {
        cuda_destroy(&c->base);
        return blas_fail(bs, "cublasSetWorkspace");
    }
    if ((e = (cudaError_t)k_attn_init()) != cudaSuccess) {
        cuda_destroy(&c->base);
        return cu_fail(e, "attention kernel attributes");
    }
    *out = &c->base;
    return INFER_OK;
}
