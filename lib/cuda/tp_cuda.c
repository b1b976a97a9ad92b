/*
** tp_cuda.c — tensor parallelism over the GPUs of one host (Megatron-LM style; which rows and
** columns each rank holds is lib/tp_shard.c's plan).
**
** Rank r is a backend of its own (device, stream, cuBLAS handle: cuda_open_device) and a model
** state of its own (cuda_model: its heads, KV heads, FFN columns and vocabulary rows, uploaded
** from the same mapped file, and a KV cache of its KV heads for the same block ids). The one
** engine thread enqueues every rank's work layer by layer: after the attention output and
** after the FFN down product, one in-place sum all-reduce of the residual stream (on the
** compute streams, so CUDA graphs capture it). Rank 0 adds its product to the residual, the
** others overwrite theirs with their partial product, so the sum is residual + all partials.
** The embedding is split by vocabulary too: each rank writes its tokens' rows and zeros, and
** the same all-reduce assembles them. Logits: each rank computes its vocabulary slice, the
** slices go to rank 0, side by side into full rows, and rank 0 picks the tokens with the
** one-GPU kernels.
**
** The residual all-reduces run in fp32 (the residual stream's type): a decode step of 64 rows
** of an 8B model moves 1 MiB per all-reduce, a few microseconds over NVLink, and the sums stay
** as exact as on one GPU.
**
** How they run (INFER_CUDA_TP_AR): by default, where NCCL has its device API (>= 2.28) and every
** GPU reaches the others' memory, steps of up to INFER_CUDA_TP_WIN_ROWS rows (64) all-reduce
** with our kernels over it (kernels/allreduce.cu: LL up to INFER_CUDA_TP_LL_ROWS rows (16),
** push + barrier above), which let the next product launch early where an NCCL kernel cannot
** (8B batch-1 decode on 2 x H100: 1.64-1.65x one GPU, 1.53x with ncclAllReduce;
** bench/results/2026-11-27-tp-lsa/); a step's logit rows, when they fit one chunk, are gathered
** by a kernel of ours too. Larger steps (prompts) all-reduce with ncclAllReduce in place; with
** INFER_CUDA_TP_AR=nccl or without the device API every step does, and the logits go by
** ncclSend/ncclRecv.
**
** Two rules keep our kernels' buffers safe (kernels/allreduce.cu): every step ends with a
** synchronize on every rank (cuda_forward), so nothing is outstanding across steps (the inbox
** slots restart at each step); and every rank enqueues the same kernels in the same order. A
** kernel of ours waits for its peers without a time limit, so a launch that fails on one rank
** after another rank's went out leaves that rank waiting for good, as an NCCL collective
** would; the library does not recover from it (the step fails, the next synchronize hangs).
**
** Experimental (INFER_CUDA_TP_AR=symm, or INFER_CUDA_TP_SYMM_ROWS=N): steps of up to N rows
** (default 1) all-reduce with ncclAllReduce through buffers registered as NCCL symmetric
** windows, out of place, rotating over CUDA_TP_SYMM_BUFS buffers (~3.3 us each on 2 x H100
** with NCCL 2.28.9, exact on single-row steps in every run; steps of tens of rows gave wrong
** sums in some runs, as NCCL window buffers as outputs of graph-captured all-reduces did for
** others: NVIDIA/nccl#1924).
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

/* The windows of a mode on one rank (its buffers and handles, and their sizes; the same on
** every rank): symm, the residual buffers the all-reduces rotate through; lsa, the inbox of
** the push all-reduces (CUDA_TP_SYMM_BUFS slots of every rank's partial) and the gathered
** logit rows (used on rank 0 only). */
static int win_list(cuda_model *cm, cuda_model *rm, int lsa, void **bufs[], void **wins[], size_t bytes[])
{
    size_t xb = (size_t)rm->win_rows * (size_t)cm->hp.dim * sizeof(float);
    if (!lsa) {
        for (int i = 0; i < CUDA_TP_SYMM_BUFS; i++) {
            bufs[i] = (void **)&rm->xs[i];
            wins[i] = &rm->x_win[i];
            bytes[i] = xb;
        }
        return CUDA_TP_SYMM_BUFS;
    }
    bufs[0] = (void **)&rm->inbox;
    wins[0] = &rm->inbox_win;
    bytes[0] = xb * CUDA_TP_SYMM_BUFS * (size_t)cm->n_ranks;
    bufs[1] = (void **)&rm->lg;
    wins[1] = &rm->lg_win;
    bytes[1] = (size_t)cm->logit_cap * (size_t)cm->vocab * sizeof(float);
    return 2;
}

/* Why the windows (and for lsa the device communicators) could not be made, or NULL. Memory
** from ncclMemAlloc, registered as symmetric windows, and the device communicators: each a
** collective, so one group over the ranks each; on failure what was made is released and
** every step all-reduces with ncclAllReduce in place. */
static const char *tp_windows(cuda_be *c, cuda_model *cm)
{
#ifdef TP_SYMM
    enum { MAXW = CUDA_TP_SYMM_BUFS > 2 ? CUDA_TP_SYMM_BUFS : 2 };
    int lsa = c->tp_ar == CUDA_TP_AR_LSA, rows = INFER_MIN(cm->max_rows, c->tp_win_rows), nw = 0;
    const char *why = lsa && cm->hp.dim % 4 ? "the model's width is not a multiple of 4" : NULL;
    void **bufs[MAXW], **wins[MAXW];
    size_t bytes[MAXW];
    for (int r = 0; !why && r < cm->n_ranks; r++) {
        cuda_model *rm = cm->peer[r];
        rm->win_rows = rows;
        nw = win_list(cm, rm, lsa, bufs, wins, bytes);
        if (cudaSetDevice(c->rank[r]->dev) != cudaSuccess) why = "cudaSetDevice failed";
        for (int i = 0; !why && i < nw; i++)
            if (ncclMemAlloc(bufs[i], bytes[i]) != ncclSuccess || !*bufs[i]) why = "ncclMemAlloc failed (no CUDA VMM?)";
    }
    for (int i = 0; !why && i < nw; i++) {
        ncclResult_t res = ncclGroupStart();
        for (int r = 0; res == ncclSuccess && r < cm->n_ranks; r++) {
            win_list(cm, cm->peer[r], lsa, bufs, wins, bytes);
            (void)cudaSetDevice(c->rank[r]->dev);
            res = ncclCommWindowRegister((ncclComm_t)c->comm[r], *bufs[i], bytes[i], (ncclWindow_t *)wins[i],
                                         NCCL_WIN_COLL_SYMMETRIC);
        }
        ncclResult_t end = ncclGroupEnd();
        if (res != ncclSuccess || end != ncclSuccess) why = ncclGetErrorString(res != ncclSuccess ? res : end);
        for (int r = 0; !why && r < cm->n_ranks; r++) {
            win_list(cm, cm->peer[r], lsa, bufs, wins, bytes);
            if (!*wins[i]) why = "NCCL made no window (symmetric memory unsupported between these GPUs)";
        }
    }
    if (!why && lsa) {
        /* LL slots of a block: its share of the largest step it serves, from every rank */
        size_t max_n = (size_t)INFER_MIN(rows, c->tp_ll_rows) * (size_t)cm->hp.dim;
        size_t share = INFER_MAX(512, max_n / CUDA_TP_LSA_BLOCKS + 2);
        int res = ncclGroupStart();
        for (int r = 0; res == ncclSuccess && r < cm->n_ranks; r++) {
            (void)cudaSetDevice(c->rank[r]->dev);
            res = k_lsa_comm_create(c->comm[r], CUDA_TP_LSA_BLOCKS, (int)(share / 2 + 1) * cm->n_ranks,
                                    &cm->peer[r]->devcomm);
        }
        int end = ncclGroupEnd();
        if (res == -1) why = "this build's NCCL has no device API (NCCL >= 2.28)";
        else if (res != ncclSuccess || end != ncclSuccess)
            why = ncclGetErrorString((ncclResult_t)(res != ncclSuccess ? res : end));
        for (int r = 0; !why && r < cm->n_ranks; r++)
            if (k_lsa_comm_ranks(cm->peer[r]->devcomm) != cm->n_ranks)
                why = "not every GPU reaches the others' memory (NCCL's LSA team is smaller than the ranks)";
    }
    if (!why && lsa) { /* the gathered rows land in the window: the plain buffer goes */
        cudaSetDevice(c->dev);
        cudaFree(cm->tp_logits);
        cm->tp_logits = cm->lg;
        win_list(cm, cm, lsa, bufs, wins, bytes);
        cm->work_bytes += bytes[0]; /* the inbox; lg replaces tp_logits, counted already */
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
    const char *why = c->tp_ar == CUDA_TP_AR_NCCL ? "INFER_CUDA_TP_AR=nccl"
                    : c->tp_win_rows < 1          ? "INFER_CUDA_TP_WIN_ROWS=0"
                                                  : tp_windows(c, cm);
    if (c->profile) {
        if (why) fprintf(stderr, "libinfer cuda: tensor-parallel all-reduces: ncclAllReduce in place (%s)\n", why);
        else if (c->tp_ar == CUDA_TP_AR_LSA)
            fprintf(stderr, "libinfer cuda: tensor-parallel all-reduces over NCCL's device API: LL up to %d rows, "
                    "push + barrier up to %d; ncclAllReduce above\n", INFER_MIN(c->tp_ll_rows, c->tp_win_rows),
                    c->tp_win_rows);
        else fprintf(stderr, "libinfer cuda: tensor-parallel all-reduces of steps up to %d rows by ncclAllReduce on "
                     "NCCL symmetric windows, in place above\n", c->tp_win_rows);
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
        k_lsa_comm_destroy(c->comm[r], rm->devcomm);
        rm->devcomm = NULL;
        if (rm->tp_logits == rm->lg) rm->tp_logits = NULL; /* the window: not cuda_model_free's to free */
        void **bufs[CUDA_TP_SYMM_BUFS + 2], **wins[CUDA_TP_SYMM_BUFS + 2];
        size_t bytes[CUDA_TP_SYMM_BUFS + 2];
        for (int lsa = 0; lsa < 2; lsa++) /* whichever were made */
            for (int i = 0, nw = win_list(cm, rm, lsa, bufs, wins, bytes); i < nw; i++) {
                if (*wins[i]) ncclCommWindowDeregister((ncclComm_t)c->comm[r], (ncclWindow_t)*wins[i]);
                if (*bufs[i]) ncclMemFree(*bufs[i]);
                *wins[i] = *bufs[i] = NULL;
            }
        if (rm->x_plain) rm->x = rm->x_plain; /* what cuda_rank_free releases */
    }
    cudaSetDevice(c->dev);
#else
    (void)c, (void)cm;
#endif
}

/* Every rank's x for a step of `rows` rows: the first symmetric buffer (symm), or the plain
** one; and the first inbox slot. */
static void step_x(cuda_be *c, cuda_model *cm, int rows)
{
    int sym = cm->xs[0] && rows <= c->tp_win_rows;
    for (int r = 0; r < cm->n_ranks; r++) {
        cuda_model *rm = cm->peer[r];
        rm->x = sym ? rm->xs[0] : rm->x_plain;
        rm->x_cur = rm->ar_cur = 0;
    }
}

/* ncclAllReduce of every rank's x: in place, or into the next symmetric buffer. */
static infer_status nccl_allreduce(cuda_be *c, cuda_model *cm, size_t n, int sym, int next)
{
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
    return INFER_OK;
}

/* x = the sum over ranks of each rank's x, on every rank: by our kernels in place (steps up to
** tp_win_rows rows, with device communicators), or by ncclAllReduce in place on the plain
** buffer or into the next symmetric buffer, which becomes x. */
static infer_status allreduce_x(cuda_be *c, cuda_model *cm, const step_shape *sh)
{
    if (c->tp_nocomm) return INFER_OK;
    size_t n = (size_t)sh->rows * (size_t)cm->hp.dim;
    if (cm->devcomm && sh->rows <= c->tp_win_rows) {
        for (int r = 0; r < cm->n_ranks; r++) {
            cuda_model *rm = cm->peer[r];
            CU(cudaSetDevice(c->rank[r]->dev));
            /* push: inbox slots in turn (consecutive all-reduces never share one; every step
            ** ends with a synchronize on each rank, so none is outstanding across steps) */
            size_t off = (size_t)rm->ar_cur * (size_t)cm->n_ranks * (size_t)rm->win_rows * (size_t)cm->hp.dim * 4;
            KL(sh->rows <= c->tp_ll_rows
                   ? k_lsa_allreduce_ll(c->rank[r]->stream, rm->devcomm, rm->x, n, CUDA_TP_LSA_BLOCKS)
                   : k_lsa_allreduce_push(c->rank[r]->stream, rm->devcomm, rm->inbox_win, off, rm->x, n,
                                          CUDA_TP_LSA_BLOCKS));
            rm->ar_cur = (rm->ar_cur + 1) % CUDA_TP_SYMM_BUFS;
        }
        return INFER_OK;
    }
    int sym = cm->x != cm->x_plain, next = (cm->x_cur + 1) % CUDA_TP_SYMM_BUFS;
    infer_status st = nccl_allreduce(c, cm, n, sym, next);
    for (int r = 0; !st && sym && r < cm->n_ranks; r++) {
        cm->peer[r]->x = cm->peer[r]->xs[next];
        cm->peer[r]->x_cur = next;
    }
    return st;
}

/* Logit rows [j0, j0 + nl): every rank's vocabulary slice to rank 0, side by side into full
** rows of cm->tp_logits. */
static infer_status gather_logits(cuda_be *c, cuda_model *cm, int nl, int one_chunk)
{
    size_t cap = (size_t)cm->logit_cap;
    if (!c->tp_nocomm && cm->devcomm && one_chunk) {
        /* each rank stores its slice into rank 0's rows; a step of several chunks takes the
        ** path below: a rank's next chunk could overwrite rows rank 0 has not yet read */
        for (int r = 0; r < cm->n_ranks; r++) {
            const cuda_model *rm = cm->peer[r];
            CU(cudaSetDevice(c->rank[r]->dev));
            KL(k_lsa_gather(c->rank[r]->stream, rm->devcomm, rm->lg_win, rm->logits, nl, rm->hp.vocab_size, rm->vocab0,
                            cm->vocab, cm->vocab_pad, CUDA_TP_LSA_BLOCKS));
        }
        CU(cudaSetDevice(c->dev));
        return INFER_OK;
    }
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
        if ((st = each_rank(c, cm, sh, dp, PH_CLASSIFY, j0, nl)) ||
            (st = gather_logits(c, cm, nl, n_lrows <= cm->logit_cap)) ||
            (st = cu_pick(c, cm, sh, &dp[0], cm->tp_logits, cm->vocab, j0, nl)))
            return st;
        if (j0 + nl < n_lrows && (st = cu_copy_full_rows(c, cm, cm->tp_logits, cm->vocab, j0, nl))) return st;
    }
    CU(cudaSetDevice(c->dev));
    return INFER_OK;
}

#endif
