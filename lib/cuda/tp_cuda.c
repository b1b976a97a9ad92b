/*
** tp_cuda.c — tensor parallelism over the GPUs of one host (Megatron-LM style; which rows and
** columns each rank holds is lib/tp_shard.c's plan).
**
** Rank r is a backend of its own (device, stream, cuBLAS handle: cuda_open_device) and a model
** state of its own (cuda_model: its heads, KV heads, FFN columns and vocabulary rows, uploaded
** from the same mapped file, and a KV cache of its KV heads for the same block ids). The one
** engine thread enqueues every rank's work layer by layer: after the attention output and
** after the FFN down product, one in-place sum all-reduce of the residual stream (NCCL, on the
** compute streams, so CUDA graphs capture it). Rank 0 adds its product to the residual, the
** others overwrite theirs with their partial product, so the sum is residual + all partials.
** The embedding is split by vocabulary too: each rank writes its tokens' rows and zeros, and
** the same all-reduce assembles them. Logits: each rank computes its vocabulary slice, the
** slices are sent to rank 0 (ncclSend/ncclRecv), laid side by side into full rows, and rank 0
** picks the tokens with the one-GPU kernels.
**
** The residual all-reduces run in fp32 (the residual stream's type): a decode step of 64 rows
** of an 8B model moves 1 MiB per all-reduce, a few microseconds over NVLink, and the sums stay
** as exact as on one GPU.
**
** Experimental (INFER_CUDA_TP_SYMM_ROWS=N, default 0): steps of up to N rows all-reduce through
** buffers registered as NCCL symmetric windows (NCCL >= 2.27), out of place, rotating over
** CUDA_TP_SYMM_BUFS buffers. On 2 x H100 with NCCL 2.28.9 that cut batch-1 decoding of an 8B
** model's collectives from ~5.7 to ~3.3 us each (1.49x -> 1.56x over one GPU) and was exact
** on single-row steps in every run (replayed from decode graphs, the default; not checked with
** INFER_CUDA_GRAPHS=0), but steps of tens of rows (prompts, run without graphs) gave wrong sums
** in some runs, in place or not, and larger decode batches were slower than the default
** kernels: hence off unless asked for, and for N = 1 only.
*/
#include "cuda_internal.h"
#include "tp_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef INFER_HAVE_NCCL
/* nccl.h declares some functions with () */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop
#endif

infer_status cuda_tp_model_init(cuda_be *c, cuda_model *cm, const infer_model *m)
{
    tp_plan_t plan;
    const llama_hparams *hp = &m->hp;
    int R = c->n_ranks;
    infer_status st = tp_plan(hp, R, &plan);
    if (st) return st;
    cm->n_ranks = R;
    cm->vocab = hp->vocab_size;
    cm->vocab_pad = plan.vocab_per_rank;
    llama_layer *layers = calloc((size_t)hp->n_layers, sizeof *layers);
    void **owned = calloc((size_t)hp->n_layers * TP_LAYER_OWNED, sizeof *owned);
    if (!layers || !owned) st = infer_err(INFER_ENOMEM, "out of memory");
    for (int r = 0; !st && r < R; r++) {
        cuda_model *rm = cm;
        if (r > 0) {
            if (!(rm = calloc(1, sizeof *rm))) {
                st = infer_err(INFER_ENOMEM, "out of memory");
                break;
            }
            cm->peer[r] = rm;
            rm->cdt = cm->cdt;
            rm->n_ranks = 1;
            rm->peer[0] = rm;
        }
        tp_rank_hparams(&plan, r, hp, &rm->hp);
        rm->vocab0 = plan.rank[r].vocab0;
        if (r > 0) rm->vocab = rm->vocab_pad = rm->hp.vocab_size;
        llama_weights w = m->w;
        w.layers = layers;
        for (int l = 0; !st && l < hp->n_layers; l++)
            st = tp_shard_layer(&plan, r, hp, &m->w.layers[l], &layers[l], owned + (size_t)l * TP_LAYER_OWNED);
        if (!st) st = tp_shard_vocab(&plan, r, &m->w.tok_embd, &w.tok_embd);
        if (!st) st = tp_shard_vocab(&plan, r, &m->w.wcls, &w.wcls);
        if (!st) st = cuda_rank_init(c->rank[r], rm, &w, m->rope_freqs);
        /* the column slices of WO and W2 were host copies for the upload */
        for (size_t i = 0; i < (size_t)hp->n_layers * TP_LAYER_OWNED; i++) {
            free(owned[i]);
            owned[i] = NULL;
        }
    }
    free(layers);
    free(owned);
    cudaSetDevice(c->dev);
    return st; /* on failure model_free releases every rank's part */
}

#ifndef INFER_HAVE_NCCL

infer_status cuda_tp_open(cuda_be *c, const infer_session_params *p)
{
    (void)c;
    return infer_err(INFER_EUNSUPPORTED, "n_devices = %d: this build has no NCCL, which tensor parallelism over "
                     "several GPUs needs (rebuild where nccl.h is found: see the README's GPU section)", p->n_devices);
}

void cuda_tp_close(cuda_be *c)
{
    (void)c;
}

infer_status cuda_tp_model_kv(cuda_be *c, cuda_model *cm)
{
    (void)c, (void)cm;
    return INFER_OK;
}

void cuda_tp_model_free(cuda_be *c, cuda_model *cm)
{
    (void)c, (void)cm;
}

infer_status cuda_tp_run(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *dp, int n_lrows)
{
    (void)c, (void)cm, (void)sh, (void)dp, (void)n_lrows;
    return infer_err(INFER_EINTERNAL, "tensor-parallel step in a build without NCCL");
}

#else

static infer_status nccl_fail(ncclResult_t r, const char *what)
{
    return infer_err(INFER_EDEVICE, "NCCL: %s: %s", what, ncclGetErrorString(r));
}

#define NC(call)                                           \
    do {                                                   \
        ncclResult_t r_ = (call);                          \
        if (r_ != ncclSuccess) return nccl_fail(r_, #call); \
    } while (0)

infer_status cuda_tp_open(cuda_be *c, const infer_session_params *p)
{
    int n = p->n_devices;
    for (int r = 1; r < n; r++) {
        cuda_be *rc = calloc(1, sizeof *rc);
        if (!rc) return infer_err(INFER_ENOMEM, "out of memory");
        rc->base.ops = c->base.ops;
        rc->max_rows = c->max_rows;
        rc->max_seqs = c->max_seqs;
        rc->gemv_rows = c->gemv_rows;
        rc->graphs = c->graphs;
        rc->profile = c->profile;
        rc->n_ranks = 1;
        rc->rank[0] = rc;
        c->rank[r] = rc;
        c->n_ranks = r + 1; /* so that cuda_tp_close releases it */
        infer_status st = cuda_open_device(rc, p->devices[r]);
        if (st) return st;
    }
    ncclComm_t comms[INFER_MAX_DEVICES];
    ncclResult_t nr = ncclCommInitAll(comms, n, p->devices);
    if (nr != ncclSuccess)
        return infer_err(INFER_EDEVICE, "NCCL: ncclCommInitAll over %d GPUs: %s", n, ncclGetErrorString(nr));
    for (int r = 0; r < n; r++) c->comm[r] = comms[r];
    return INFER_OK;
}

void cuda_tp_close(cuda_be *c)
{
    for (int r = 0; r < c->n_ranks; r++) {
        if (c->comm[r]) ncclCommDestroy((ncclComm_t)c->comm[r]);
        c->comm[r] = NULL;
    }
    for (int r = 1; r < c->n_ranks; r++) {
        cuda_close_device(c->rank[r]);
        free(c->rank[r]);
        c->rank[r] = NULL;
    }
    c->n_ranks = 1;
}

#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 27, 0)
#define TP_SYMM 1
#endif

/* Why symmetric registration failed, or NULL. Each rank gets CUDA_TP_SYMM_BUFS buffers of x's
** size from ncclMemAlloc, registered as windows (a collective: one group over the ranks);
** on failure what was made is released and the ranks keep only x_plain. */
static const char *symm_windows(cuda_be *c, cuda_model *cm)
{
#ifdef TP_SYMM
    enum { NB = CUDA_TP_SYMM_BUFS };
    size_t bytes = (size_t)cm->max_rows * (size_t)cm->hp.dim * sizeof(float);
    const char *why = NULL;
    for (int r = 0; !why && r < cm->n_ranks; r++) {
        cuda_model *rm = cm->peer[r];
        if (cudaSetDevice(c->rank[r]->dev) != cudaSuccess) why = "cudaSetDevice failed";
        for (int i = 0; !why && i < NB; i++) {
            void *p = NULL;
            if (ncclMemAlloc(&p, bytes) != ncclSuccess || !p) why = "ncclMemAlloc failed (no CUDA VMM?)";
            rm->xs[i] = p;
        }
    }
    for (int i = 0; !why && i < NB; i++) {
        ncclResult_t res = ncclGroupStart();
        for (int r = 0; res == ncclSuccess && r < cm->n_ranks; r++) {
            cuda_model *rm = cm->peer[r];
            (void)cudaSetDevice(c->rank[r]->dev);
            res = ncclCommWindowRegister((ncclComm_t)c->comm[r], rm->xs[i], bytes, (ncclWindow_t *)&rm->x_win[i],
                                         NCCL_WIN_COLL_SYMMETRIC);
        }
        ncclResult_t end = ncclGroupEnd();
        if (res != ncclSuccess || end != ncclSuccess) why = ncclGetErrorString(res != ncclSuccess ? res : end);
        for (int r = 0; !why && r < cm->n_ranks; r++)
            if (!cm->peer[r]->x_win[i]) why = "NCCL made no window (symmetric memory unsupported between these GPUs)";
    }
    if (why) cuda_tp_model_free(c, cm);
    return why;
#else
    (void)c, (void)cm;
    return "NCCL older than 2.27 (no symmetric memory)";
#endif
}

infer_status cuda_tp_model_kv(cuda_be *c, cuda_model *cm)
{
    for (int r = 0; r < cm->n_ranks; r++) cm->peer[r]->x_plain = cm->peer[r]->x;
    const char *why = c->tp_symm_rows > 0 ? symm_windows(c, cm) : "INFER_CUDA_TP_SYMM_ROWS=0";
    if (c->profile) {
        if (why) fprintf(stderr, "libinfer cuda: tensor-parallel all-reduces in place on cudaMalloc'd buffers: %s\n", why);
        else fprintf(stderr, "libinfer cuda: tensor-parallel all-reduces of steps up to %d rows on NCCL symmetric "
                     "windows, in place on cudaMalloc'd buffers above\n", c->tp_symm_rows);
    }
    CU(cudaSetDevice(c->dev));
    return INFER_OK;
}

void cuda_tp_model_free(cuda_be *c, cuda_model *cm)
{
#ifdef TP_SYMM
    for (int r = 0; r < cm->n_ranks; r++) {
        cuda_model *rm = cm->peer[r];
        if (!rm) continue;
        cudaSetDevice(c->rank[r]->dev);
        cudaStreamSynchronize(c->rank[r]->stream);
        for (int i = 0; i < CUDA_TP_SYMM_BUFS; i++) {
            if (rm->x_win[i]) ncclCommWindowDeregister((ncclComm_t)c->comm[r], (ncclWindow_t)rm->x_win[i]);
            if (rm->xs[i]) ncclMemFree(rm->xs[i]);
            rm->x_win[i] = NULL;
            rm->xs[i] = NULL;
        }
        if (rm->x_plain) rm->x = rm->x_plain; /* what cuda_rank_free releases */
    }
    cudaSetDevice(c->dev);
#else
    (void)c, (void)cm;
#endif
}

/* Every rank's x for a step of `rows` rows: the first symmetric buffer, or the plain one. */
static void step_x(cuda_be *c, cuda_model *cm, int rows)
{
    int sym = cm->xs[0] && rows <= c->tp_symm_rows;
    for (int r = 0; r < cm->n_ranks; r++) {
        cuda_model *rm = cm->peer[r];
        rm->x = sym ? rm->xs[0] : rm->x_plain;
        rm->x_cur = 0;
    }
}

/* x = the sum over ranks of each rank's x, on every rank: in place on the plain buffer, or
** into the next symmetric buffer, which becomes x. */
static infer_status allreduce_x(cuda_be *c, cuda_model *cm, const step_shape *sh)
{
    if (c->tp_nocomm) return INFER_OK;
    size_t n = (size_t)sh->rows * (size_t)cm->hp.dim;
    int sym = cm->x != cm->x_plain, next = (cm->x_cur + 1) % CUDA_TP_SYMM_BUFS;
    NC(ncclGroupStart());
    for (int r = 0; r < cm->n_ranks; r++) {
        cuda_model *rm = cm->peer[r];
        ncclResult_t res = ncclAllReduce(rm->x, sym ? rm->xs[next] : rm->x, n, ncclFloat, ncclSum,
                                         (ncclComm_t)c->comm[r], c->rank[r]->stream);
        if (res != ncclSuccess) {
            ncclGroupEnd();
            return nccl_fail(res, "ncclAllReduce");
        }
    }
    NC(ncclGroupEnd());
    for (int r = 0; sym && r < cm->n_ranks; r++) {
        cm->peer[r]->x = cm->peer[r]->xs[next];
        cm->peer[r]->x_cur = next;
    }
    return INFER_OK;
}

/* Logit rows [j0, j0 + nl): every rank's vocabulary slice to rank 0, side by side into full
** rows of cm->tp_logits. */
static infer_status gather_logits(cuda_be *c, cuda_model *cm, int nl)
{
    size_t cap = (size_t)cm->logit_cap;
    if (!c->tp_nocomm) {
        NC(ncclGroupStart());
        for (int r = 1; r < cm->n_ranks; r++) {
            size_t cnt = (size_t)nl * (size_t)cm->peer[r]->hp.vocab_size;
            ncclResult_t res = ncclSend(cm->peer[r]->logits, cnt, ncclFloat, 0, (ncclComm_t)c->comm[r], c->rank[r]->stream);
            if (res == ncclSuccess)
                res = ncclRecv(cm->tp_recv + (size_t)r * cap * (size_t)cm->vocab_pad, cnt, ncclFloat, r,
                               (ncclComm_t)c->comm[0], c->stream);
            if (res != ncclSuccess) {
                ncclGroupEnd();
                return nccl_fail(res, "ncclSend/ncclRecv (logits)");
            }
        }
        NC(ncclGroupEnd());
    }
    CU(cudaSetDevice(c->dev));
    for (int r = 0; r < cm->n_ranks; r++) {
        const cuda_model *rm = cm->peer[r];
        size_t w = (size_t)rm->hp.vocab_size * sizeof(float);
        const float *src = r == 0 ? cm->logits : cm->tp_recv + (size_t)r * cap * (size_t)cm->vocab_pad;
        CU(cudaMemcpy2DAsync(cm->tp_logits + rm->vocab0, (size_t)cm->vocab * sizeof(float), src, w, w, (size_t)nl,
                             cudaMemcpyDeviceToDevice, c->stream));
    }
    return INFER_OK;
}

enum { PH_EMBED, PH_ATTN, PH_FFN, PH_CLASSIFY };

/* One phase of a step on every rank, each on its own device and stream. */
static infer_status each_rank(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *dp, int phase,
                              int arg, int nl)
{
    for (int r = 0; r < cm->n_ranks; r++) {
        cuda_be *rc = c->rank[r];
        cuda_model *rm = cm->peer[r];
        CU(cudaSetDevice(rc->dev));
        infer_status st = phase == PH_EMBED  ? cu_embed(rc, rm, sh, &dp[r], rm->vocab0)
                        : phase == PH_ATTN   ? cu_attn_half(rc, rm, sh, &dp[r], arg, r == 0)
                        : phase == PH_FFN    ? cu_ffn_half(rc, rm, sh, arg, r == 0)
                                             : cu_classify(rc, rm, sh, &dp[r], arg, nl);
        if (st) return st;
    }
    return INFER_OK;
}

infer_status cuda_tp_run(cuda_be *c, cuda_model *cm, const step_shape *sh, const step_ptrs *dp, int n_lrows)
{
    infer_status st;
    step_x(c, cm, sh->rows); /* the same buffers at every step: graphs replay them */
    if ((st = each_rank(c, cm, sh, dp, PH_EMBED, 0, 0)) || (st = allreduce_x(c, cm, sh))) return st;
    for (int l = 0; l < cm->hp.n_layers; l++)
        if ((st = each_rank(c, cm, sh, dp, PH_ATTN, l, 0)) || (st = allreduce_x(c, cm, sh)) ||
            (st = each_rank(c, cm, sh, dp, PH_FFN, l, 0)) || (st = allreduce_x(c, cm, sh)))
            return st;
    for (int j0 = 0; j0 < n_lrows; j0 += cm->logit_cap) {
        int nl = INFER_MIN(cm->logit_cap, n_lrows - j0);
        if ((st = each_rank(c, cm, sh, dp, PH_CLASSIFY, j0, nl)) || (st = gather_logits(c, cm, nl)) ||
            (st = cu_pick(c, cm, sh, &dp[0], cm->tp_logits, cm->vocab, j0, nl)))
            return st;
        if (j0 + nl < n_lrows && (st = cu_copy_full_rows(c, cm, cm->tp_logits, cm->vocab, j0, nl))) return st;
    }
    CU(cudaSetDevice(c->dev));
    return INFER_OK;
}

#endif
