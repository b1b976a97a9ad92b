/*
** weights_cuda.c — a model's device state: weights uploaded once at load (fused, repacked or
** converted as the kernels want them), the KV blocks, and the step workspace, all allocated
** here so a step allocates nothing.
**
** Device types: f32, f16, bf16, Q8_0 and Q4_0 weights stay as they are in the file; Q4_1 is
** widened to the model's dense type; Q4_K and Q6_K are re-quantized to Q8_0 (finer, within
** half a Q6_K step of the original: there are no K-quant kernels here yet). A fused matrix
** whose parts differ takes the widest part's type. The KV cache is f32 for f32 models (so the
** GPU gives the CPU's answers), f16 for models with f16 weights, bf16 otherwise.
*/
#include "cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host floats converted per upload chunk. */
#define STAGE_FLOATS ((size_t)8 << 20)

static size_t kt_size(int t)
{
    return t == KT_F32 ? 4 : 2;
}

static int is_quant(int t)
{
    return t == KT_Q8_0 || t == KT_Q4_0;
}

/* The device type of a file tensor type, in a model whose dense type is cdt. */
static int dev_type(dtype t, int cdt)
{
    switch (t) {
    case DT_F32: return cdt;
    case DT_F16: return cdt == KT_F32 ? KT_F32 : KT_F16 == cdt ? KT_F16 : KT_BF16;
    case DT_BF16: return cdt == KT_F16 ? KT_F16 : cdt == KT_F32 ? KT_F32 : KT_BF16;
    case DT_Q8_0: return KT_Q8_0;
    case DT_Q4_0: return KT_Q4_0;
    case DT_Q4_K:
    case DT_Q6_K: return KT_Q8_0;
    default: return cdt;
    }
}

/* One type for a fused matrix: the parts' common type, else dense if any part is, else Q8_0. */
static int group_type(const tensor *const *parts, int n, int cdt)
{
    int t0 = dev_type(parts[0]->type, cdt), same = 1, dense = 0;
    for (int i = 0; i < n; i++) {
        int t = dev_type(parts[i]->type, cdt);
        same &= t == t0;
        dense |= !is_quant(t);
    }
    return same ? t0 : dense ? cdt : KT_Q8_0;
}

static int file_matches(dtype t, int kt)
{
    return (t == DT_F32 && kt == KT_F32) || (t == DT_F16 && kt == KT_F16) || (t == DT_BF16 && kt == KT_BF16);
}

/* Dense upload: rows copied as they are when the file has the device type, else dequantized
** on the host in chunks and converted on the device. */
static infer_status upload_dense(cudaStream_t up, kmat *dst, const tensor *const *parts, int n_parts,
                                 float *hstage, float *dstage)
{
    size_t es = kt_size(dst->type), k = (size_t)dst->k;
    CU(cudaMalloc(&dst->q, (size_t)dst->n * k * es));
    size_t row = 0;
    for (int i = 0; i < n_parts; i++) {
        const tensor *t = parts[i];
        char *out = (char *)dst->q + row * k * es;
        if (file_matches(t->type, dst->type)) {
            CU(cudaMemcpy(out, t->data, (size_t)t->n_rows * k * es, cudaMemcpyHostToDevice));
        } else {
            size_t rb = dtype_row_bytes(t->type, t->n_cols), per = INFER_MAX((size_t)1, STAGE_FLOATS / k);
            for (size_t r0 = 0; r0 < (size_t)t->n_rows; r0 += per) {
                size_t nr = INFER_MIN(per, (size_t)t->n_rows - r0);
                for (size_t r = 0; r < nr; r++)
                    dequantize_row(t->type, (const uint8_t *)t->data + (r0 + r) * rb, hstage + r * k, (int64_t)k);
                CU(cudaMemcpy(dstage, hstage, nr * k * sizeof(float), cudaMemcpyHostToDevice));
                KL(k_convert(up, out + r0 * k * es, dst->type, dstage, nr * k));
                CU(cudaStreamSynchronize(up));
            }
        }
        row += (size_t)t->n_rows;
    }
    return INFER_OK;
}

/* Quantized upload: ggml blocks split into a quants array and a scales array. */
static infer_status upload_quant(kmat *dst, const tensor *const *parts, int n_parts, float *hstage)
{
    size_t k = (size_t)dst->k, nb = k / 32, qrow = dst->type == KT_Q8_0 ? k : k / 2;
    size_t n = (size_t)dst->n;
    uint8_t *hq = malloc(n * qrow);
    uint16_t *hd = malloc(n * nb * sizeof(uint16_t));
    blk_q8_0 *tmp = malloc(nb * sizeof(blk_q8_0));
    if (!hq || !hd || !tmp) {
        free(hq); free(hd); free(tmp);
        return infer_err(INFER_ENOMEM, "out of host memory repacking a %zu x %zu matrix", n, k);
    }
    size_t row = 0;
    for (int i = 0; i < n_parts; i++) {
        const tensor *t = parts[i];
        size_t rb = dtype_row_bytes(t->type, t->n_cols);
        for (size_t r = 0; r < (size_t)t->n_rows; r++, row++) {
            const uint8_t *src = (const uint8_t *)t->data + r * rb;
            uint8_t *q = hq + row * qrow;
            uint16_t *d = hd + row * nb;
            if (dst->type == KT_Q4_0 && t->type == DT_Q4_0) {
                const blk_q4_0 *b = (const blk_q4_0 *)src;
                for (size_t j = 0; j < nb; j++) {
                    d[j] = b[j].d;
                    memcpy(q + j * 16, b[j].qs, 16);
                }
                continue;
            }
            const blk_q8_0 *b = (const blk_q8_0 *)src;
            if (t->type != DT_Q8_0) { /* any other type: through floats to Q8_0 */
                dequantize_row(t->type, src, hstage, (int64_t)k);
                quantize_row(DT_Q8_0, hstage, tmp, (int64_t)k);
                b = tmp;
            }
            for (size_t j = 0; j < nb; j++) {
                d[j] = b[j].d;
                memcpy(q + j * 32, b[j].qs, 32);
            }
        }
    }
    cudaError_t e = cudaMalloc(&dst->q, n * qrow);
    if (e == cudaSuccess) e = cudaMalloc((void **)&dst->d, n * nb * sizeof(uint16_t));
    if (e == cudaSuccess) e = cudaMemcpy(dst->q, hq, n * qrow, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(dst->d, hd, n * nb * sizeof(uint16_t), cudaMemcpyHostToDevice);
    free(hq);
    free(hd);
    free(tmp);
    return e == cudaSuccess ? INFER_OK : cu_fail(e, "uploading a quantized matrix");
}

static infer_status upload(cudaStream_t c, cuda_model *cm, kmat *dst, const tensor *const *parts, int n_parts,
                           float *hstage, float *dstage)
{
    int64_t k = parts[0]->n_cols, n = 0;
    for (int i = 0; i < n_parts; i++) {
        if (parts[i]->n_cols != k) return infer_err(INFER_EFORMAT, "fused matrices differ in width");
        n += parts[i]->n_rows;
    }
    dst->type = group_type(parts, n_parts, cm->cdt);
    if (is_quant(dst->type) && k % 32) dst->type = cm->cdt;
    dst->n = n;
    dst->k = k;
    infer_status st = is_quant(dst->type) ? upload_quant(dst, parts, n_parts, hstage)
                                          : upload_dense(c, dst, parts, n_parts, hstage, dstage);
    if (st) return st;
    cm->weight_bytes += (size_t)n * (size_t)k * (is_quant(dst->type) ? 1 : kt_size(dst->type)) /
                        (dst->type == KT_Q4_0 ? 2 : 1) +
                        (dst->d ? (size_t)n * (size_t)(k / 32) * 2 : 0);
    return INFER_OK;
}

static infer_status upload_vec(float **dst, const float *src, size_t n)
{
    if (!src) {
        *dst = NULL;
        return INFER_OK;
    }
    CU(cudaMalloc((void **)dst, n * sizeof(float)));
    CU(cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
    return INFER_OK;
}

static void free_kmat(kmat *k)
{
    cudaFree(k->q);
    cudaFree(k->d);
    cudaFree(k->wide);
    k->q = NULL;
    k->d = NULL;
    k->wide = NULL;
}

/* Product matrix i of the model: the four of each layer (QKV, O, gate|up, down), then the
** classifier (i = 4 * n_layers). */
static kmat *product_mat(cuda_model *cm, int n_layers, int i)
{
    if (i == 4 * n_layers) return &cm->wcls;
    dlayer *d = &cm->layers[i / 4];
    switch (i % 4) {
    case 0: return &d->wqkv;
    case 1: return &d->wo;
    case 2: return &d->wgu;
    default: return &d->w2;
    }
}

/* Batched products of int8 weights go through cuBLAS on a 16-bit copy: dequantizing every
** step cost more than it saved (1B Q8_0 at 64 sequences: 11.0k tok/s against 29.5k for bf16).
** The copies are made when the GPU has room for them plus 2 GiB (INFER_CUDA_WIDE=0: never);
** batch-1 decode keeps reading the quantized matrices. */
static infer_status make_wide(cuda_model *cm)
{
    int n_layers = cm->hp.n_layers;
    const char *env = getenv("INFER_CUDA_WIDE");
    if (env && *env == '0') return INFER_OK;
    int n_mats = 4 * n_layers + 1, n = 0;
    size_t bytes = 0;
    for (int i = 0; i < n_mats; i++) {
        const kmat *w = product_mat(cm, n_layers, i);
        if (is_quant(w->type)) {
            bytes += (size_t)w->n * (size_t)w->k * 2;
            n++;
        }
    }
    size_t free_b = 0, total_b = 0;
    if (!n || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess || bytes + ((size_t)2 << 30) > free_b) return INFER_OK;
    for (int i = 0; i < n_mats; i++) {
        kmat *w = product_mat(cm, n_layers, i);
        if (!is_quant(w->type)) continue;
        CU(cudaMalloc(&w->wide, (size_t)w->n * (size_t)w->k * 2));
        KL(k_dequant(NULL, w->wide, cm->cdt, w));
    }
    CU(cudaStreamSynchronize(NULL));
    cm->work_bytes += bytes;
    return INFER_OK;
}

/* The model's dense type: f32 when every product matrix is (so the GPU gives the CPU's
** answers), f16 when any is f16, else bf16. */
static int model_dense_type(const llama_hparams *hp, const llama_weights *w)
{
    int any_f16 = w->wcls.type == DT_F16, all_f32 = w->wcls.type == DT_F32;
    for (int l = 0; l < hp->n_layers; l++) {
        const llama_layer *L = &w->layers[l];
        const tensor *t[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3 };
        for (int i = 0; i < 7; i++) {
            any_f16 |= t[i]->type == DT_F16;
            all_f32 &= t[i]->type == DT_F32;
        }
    }
    return all_f32 ? KT_F32 : any_f16 ? KT_F16 : KT_BF16;
}

infer_status cuda_model_init(backend *be, infer_model *m, size_t *kv_elem_bytes)
{
    cuda_be *c = (cuda_be *)be;
    const llama_hparams *hp = &m->hp;
    if (hp->n_kv_heads <= 0 || hp->n_heads % hp->n_kv_heads || k_attn_tile_rows(hp->n_heads / hp->n_kv_heads) == 0 ||
        hp->head_dim > 256 || hp->head_dim % 2)
        return infer_err(INFER_EUNSUPPORTED, "CUDA backend: %d heads over %d KV heads of dim %d are not supported "
                         "(groups of at most 32 heads, head_dim even and <= 256)", hp->n_heads, hp->n_kv_heads,
                         hp->head_dim);
    cuda_model *cm = calloc(1, sizeof *cm);
    if (!cm) return infer_err(INFER_ENOMEM, "out of memory");
    m->dev = cm;
    cm->hp = m->hp;
    cm->cdt = model_dense_type(hp, &m->w);
    cm->n_ranks = 1;
    cm->peer[0] = cm;
    cm->vocab = cm->vocab_pad = hp->vocab_size;
    *kv_elem_bytes = kt_size(cm->cdt);
    if (c->n_ranks > 1) return cuda_tp_model_init(c, cm, m);
    return cuda_rank_init(c, cm, &m->w, m->rope_freqs);
}

infer_status cuda_rank_init(cuda_be *c, cuda_model *cm, const llama_weights *w, const float *freqs)
{
    const llama_hparams *hp = &cm->hp;
    CU(cudaSetDevice(c->dev));
    cm->eps = hp->rms_eps;
    cm->kv.kv_type = cm->cdt;
    int qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    float *hstage = malloc(STAGE_FLOATS * sizeof(float));
    float *dstage = NULL;
    if (!hstage) return infer_err(INFER_ENOMEM, "out of memory for the upload staging buffer");
    infer_status st = INFER_OK;
    /* Its own stream: the engine thread may be capturing a graph on the backend's. */
    cudaStream_t up = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&up, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMalloc((void **)&dstage, STAGE_FLOATS * sizeof(float));
    if (e != cudaSuccess) st = cu_fail(e, "cudaMalloc (upload staging)");
    cm->layers = st ? NULL : calloc((size_t)hp->n_layers, sizeof *cm->layers);
    if (!st && !cm->layers) st = infer_err(INFER_ENOMEM, "out of memory");
    for (int l = 0; !st && l < hp->n_layers; l++) {
        const llama_layer *L = &w->layers[l];
        dlayer *d = &cm->layers[l];
        const tensor *qkv[3] = { &L->wq, &L->wk, &L->wv }, *o[1] = { &L->wo }, *gu[2] = { &L->w1, &L->w3 },
                     *dn[1] = { &L->w2 };
        if ((st = upload(up, cm, &d->wqkv, qkv, 3, hstage, dstage)) || (st = upload(up, cm, &d->wo, o, 1, hstage, dstage)) ||
            (st = upload(up, cm, &d->wgu, gu, 2, hstage, dstage)) || (st = upload(up, cm, &d->w2, dn, 1, hstage, dstage)) ||
            (st = upload_vec(&d->attn_norm, L->attn_norm, (size_t)hp->dim)) ||
            (st = upload_vec(&d->ffn_norm, L->ffn_norm, (size_t)hp->dim)))
            break;
        if (L->bq || L->bk || L->bv) {
            float *b = calloc((size_t)(qd + 2 * kvd), sizeof(float));
            if (!b) {
                st = infer_err(INFER_ENOMEM, "out of memory");
                break;
            }
            if (L->bq) memcpy(b, L->bq, (size_t)qd * sizeof(float));
            if (L->bk) memcpy(b + qd, L->bk, (size_t)kvd * sizeof(float));
            if (L->bv) memcpy(b + qd + kvd, L->bv, (size_t)kvd * sizeof(float));
            st = upload_vec(&d->bqkv, b, (size_t)(qd + 2 * kvd));
            free(b);
        }
    }
    const tensor *E[1] = { &w->tok_embd }, *W[1] = { &w->wcls };
    if (!st) {
        size_t before = cm->weight_bytes;
        st = upload(up, cm, &cm->embd, E, 1, hstage, dstage);
        cm->weight_bytes = before; /* one row per token is read, not the table */
    }
    if (!st) {
        if (w->wcls.data == w->tok_embd.data) {
            cm->wcls = cm->embd; /* tied: the same device copy */
            cm->weight_bytes += (size_t)cm->embd.n * (size_t)cm->embd.k *
                                (is_quant(cm->embd.type) ? 1 : kt_size(cm->embd.type)) /
                                (cm->embd.type == KT_Q4_0 ? 2 : 1);
        } else {
            st = upload(up, cm, &cm->wcls, W, 1, hstage, dstage);
        }
    }
    if (!st) st = upload_vec(&cm->out_norm, w->out_norm, (size_t)hp->dim);
    if (!st) st = upload_vec(&cm->freqs, freqs, (size_t)hp->head_dim / 2);
    free(hstage);
    cudaFree(dstage);
    if (up) cudaStreamDestroy(up);
    return st; /* on failure model_free releases what was made */
}

static int bucket_up(int n)
{
    int b = 1;
    while (b < n) b *= 2;
    return b;
}

infer_status cuda_model_kv(backend *be, infer_model *m)
{
    cuda_be *c = (cuda_be *)be;
    cuda_model *cm = m->dev;
    for (int r = 0; r < cm->n_ranks; r++) {
        infer_status st = cuda_rank_kv(c->rank[r], cm->peer[r], &m->kv, m->hp.vocab_size);
        if (st) return st;
    }
    if (cm->n_ranks > 1) {
        CU(cudaSetDevice(c->dev));
        size_t cap = (size_t)cm->logit_cap;
        CU(cudaMalloc((void **)&cm->tp_recv, cap * (size_t)cm->n_ranks * (size_t)cm->vocab_pad * sizeof(float)));
        CU(cudaMalloc((void **)&cm->tp_logits, cap * (size_t)cm->vocab * sizeof(float)));
        cm->work_bytes += cap * ((size_t)cm->n_ranks * (size_t)cm->vocab_pad + (size_t)cm->vocab) * sizeof(float);
        return cuda_tp_model_kv(c, cm);
    }
    return INFER_OK;
}

infer_status cuda_rank_kv(cuda_be *c, cuda_model *cm, const kv_pool *p, int64_t host_vocab)
{
    const llama_hparams *hp = &cm->hp;
    CU(cudaSetDevice(c->dev));
    cm->kv.n_layers = hp->n_layers;
    cm->kv.block_tokens = p->block_tokens;
    cm->kv.kvd = hp->n_kv_heads * hp->head_dim; /* this rank's KV heads */
    cm->kv_bytes = (size_t)p->n_blocks * kv_block_bytes(kt_size(cm->kv.kv_type), p->block_tokens, p->n_layers, cm->kv.kvd);
    cudaError_t e = cudaMalloc(&cm->kv.cache, cm->kv_bytes);
    if (e != cudaSuccess)
        return infer_err(e == cudaErrorMemoryAllocation ? INFER_ENOMEM : INFER_EDEVICE,
                         "CUDA: cannot allocate the KV cache of %d blocks (%zu bytes) on %s: %s (lower kv_cache_bytes)",
                         p->n_blocks, cm->kv_bytes, c->name, cudaGetErrorString(e));

    size_t R = (size_t)c->max_rows, D = (size_t)hp->dim, H = (size_t)hp->hidden_dim, V = (size_t)hp->vocab_size;
    size_t qd = (size_t)hp->n_heads * (size_t)hp->head_dim, kvd = (size_t)cm->kv.kvd;
    size_t maxk = INFER_MAX(D, INFER_MAX(qd, H));
    cm->max_rows = c->max_rows;
    cm->logit_cap = INFER_MIN(c->max_rows, INFER_MAX(16, bucket_up(c->max_seqs)));
    cm->part_slots = R * (size_t)hp->n_heads * 4;
    size_t max_blocks = (size_t)(hp->seq_len / p->block_tokens + 2);
    cm->meta_cap = 14 * R + (size_t)c->max_seqs * max_blocks;
    struct {
        void **p;
        size_t bytes;
    } a[] = {
        { (void **)&cm->x, R * D * 4 }, { (void **)&cm->xb, R * D * 4 }, { (void **)&cm->qkv, R * (qd + 2 * kvd) * 4 },
        { (void **)&cm->q, R * qd * 4 }, { (void **)&cm->att, R * qd * 4 },
        { (void **)&cm->gu, R * 2 * H * 4 }, { (void **)&cm->h, R * H * 4 },
        { (void **)&cm->logits, (size_t)cm->logit_cap * V * 4 },
        { (void **)&cm->part_o, cm->part_slots * (size_t)hp->head_dim * 4 },
        { (void **)&cm->part_ml, cm->part_slots * 2 * 4 },
        { (void **)&cm->dmeta, cm->meta_cap * 4 }, { (void **)&cm->ids, R * 4 },
        { &cm->amkeys, k_argmax_scratch(cm->logit_cap) },
        { &cm->xc, cm->cdt == KT_F32 ? 0 : R * maxk * 2 }, { &cm->xq, k_xq_bytes(K_GEMV_MAX_ROWS, (int64_t)maxk) },
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        if (!a[i].bytes) continue;
        if ((e = cudaMalloc(a[i].p, a[i].bytes)) != cudaSuccess)
            return cu_fail(e, "cudaMalloc (step workspace)");
        cm->work_bytes += a[i].bytes;
    }
    CU(cudaMemset(cm->amkeys, 0, k_argmax_scratch(cm->logit_cap)));
    if (c->profile) {
        CU(cudaEventCreate((cudaEvent_t *)&cm->prof_ev[0]));
        CU(cudaEventCreate((cudaEvent_t *)&cm->prof_ev[1]));
    }
    infer_status wst = make_wide(cm);
    if (wst) return wst;
    /* scratch for the largest quantized matrix without a 16-bit copy, dequantized for cuBLAS */
    size_t wt = 0;
    for (int i = 0; i < 4 * hp->n_layers + 1; i++) {
        const kmat *w = product_mat(cm, hp->n_layers, i);
        if (is_quant(w->type) && !w->wide) wt = INFER_MAX(wt, (size_t)w->n * (size_t)w->k * 2);
    }
    if (wt) {
        if ((e = cudaMalloc(&cm->wtmp, wt)) != cudaSuccess) return cu_fail(e, "cudaMalloc (dequantization scratch)");
        cm->work_bytes += wt;
    }
    infer_status st = cuda_prefill_alloc(cm, c->max_rows);
    if (st) return st;
    CU(cudaHostAlloc((void **)&cm->hmeta, cm->meta_cap * 4, cudaHostAllocDefault));
    CU(cudaHostAlloc((void **)&cm->hids, R * 4, cudaHostAllocDefault));
    cm->hfull = calloc(R, 1);
    cm->hlogits = malloc(R * (size_t)host_vocab * sizeof(float)); /* pages touched only by rows the host samples */
    if (!cm->hfull || !cm->hlogits) return infer_err(INFER_ENOMEM, "out of memory");
    return INFER_OK;
}

void cuda_model_free(backend *be, infer_model *m)
{
    cuda_be *c = (cuda_be *)be;
    cuda_model *cm = m->dev;
    if (!cm) return;
    if (cm->n_ranks > 1) cuda_tp_model_free(c, cm); /* first: it gives tp_logits back */
    cudaSetDevice(c->dev);
    cudaFree(cm->tp_recv);
    cudaFree(cm->tp_logits);
    for (int r = cm->n_ranks - 1; r >= 1; r--)
        if (cm->peer[r]) cuda_rank_free(c->rank[r], cm->peer[r]);
    cuda_rank_free(c, cm);
    m->dev = NULL;
}

void cuda_rank_free(cuda_be *c, cuda_model *cm)
{
    cudaSetDevice(c->dev);
    cudaStreamSynchronize(c->stream);
    if (cm->prof_ev[0]) {
        double n = cm->steps ? (double)cm->steps : 1.0;
        fprintf(stderr, "libinfer cuda profile (GPU %d, %s): %llu steps (%llu from graphs; %llu graphs captured in %.1f ms): "
                "host packing %.3f ms, GPU %.3f ms, forward wall %.3f ms per step\n", c->dev, c->name,
                (unsigned long long)cm->steps, (unsigned long long)cm->graph_steps, (unsigned long long)cm->captures,
                cm->capture_ms, cm->prof_pack_ms / n, cm->prof_gpu_ms / n, cm->prof_wall_ms / n);
        static const char *rows[CUDA_PROF_BUCKETS] = { "1", "2-8", "9-32", "33-64", "65-128", "129-256", "257-512", ">512" };
        for (int g = 1; g >= 0; g--)
            for (int k = 0; k < CUDA_PROF_BUCKETS; k++) {
                double m = (double)cm->prof_n[g][k];
                if (m > 0)
                    fprintf(stderr, "  %-6s steps of %-7s rows: %8llu, enqueue %.3f ms, GPU %.3f ms, wall %.3f ms (longest %.1f)\n",
                            g ? "graph" : "plain", rows[k], (unsigned long long)cm->prof_n[g][k],
                            cm->prof_b_enq[g][k] / m, cm->prof_b_gpu[g][k] / m, cm->prof_b_wall[g][k] / m,
                            cm->prof_b_max[g][k]);
            }
        cudaEventDestroy((cudaEvent_t)cm->prof_ev[0]);
        cudaEventDestroy((cudaEvent_t)cm->prof_ev[1]);
    }
    for (int i = 0; i < cm->n_graphs; i++) cudaGraphExecDestroy(cm->graphs[i].exec);
    if (cm->layers) {
        for (int l = 0; l < cm->hp.n_layers; l++) {
            dlayer *d = &cm->layers[l];
            free_kmat(&d->wqkv);
            free_kmat(&d->wo);
            free_kmat(&d->wgu);
            free_kmat(&d->w2);
            cudaFree(d->attn_norm);
            cudaFree(d->ffn_norm);
            cudaFree(d->bqkv);
        }
        free(cm->layers);
    }
    if (cm->wcls.q != cm->embd.q) free_kmat(&cm->wcls);
    else cudaFree(cm->wcls.wide); /* tied: the table is freed below, the copy is the classifier's */
    free_kmat(&cm->embd);
    void *dev[] = { cm->out_norm, cm->freqs, cm->kv.cache, cm->x, cm->xb, cm->qkv, cm->q, cm->att, cm->gu,
                    cm->h, cm->logits, cm->xc, cm->xq, cm->wtmp, cm->part_o, cm->part_ml, cm->dmeta, cm->ids, cm->amkeys };
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) cudaFree(dev[i]);
    cuda_prefill_free(cm);
    cudaFreeHost(cm->hmeta);
    cudaFreeHost(cm->hids);
    free(cm->hfull);
    free(cm->hlogits);
    free(cm);
}
