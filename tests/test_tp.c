/*
** test_tp.c — the tensor-parallel plan and slicing (lib/tp_shard.c), proved on real models by
** a CPU simulation: R ranks each run their shard (own heads, own KV-cache shard, partial WO
** and W2 products, a vocab slice of the embedding and LM head), joined by a summing
** "all-reduce" and a logits gather, must reproduce the unsharded forward: logits within 1e-5
** and the same 32 greedy tokens. The unsharded run is the same scalar code over the full
** weights, itself anchored to karpathy/llama2.c run.c's greedy tokens (../shared/golden).
*/
#include "test_util.h"

#include "cpu/ops.h"
#include "model.h"
#include "tp_shard.h"

#include <math.h>

#define GREEDY_STEPS 32

/* ---- one shard's forward (the full model is the one-shard case) ---- */

typedef struct shard {
    llama_hparams hp;       /* this shard's shapes (tp_rank_hparams) */
    llama_layer *layers;    /* (n_layers) sliced, or the model's own */
    tensor embd, cls;       /* vocab rows [vocab0, vocab0 + hp.vocab_size) */
    int64_t vocab0;
    void **owned;           /* column-slice copies */
    int n_owned;
    int max_pos;
    float *kc, *vc;         /* (n_layers, max_pos, n_kv_heads * head_dim): its KV-cache shard */
    float *q, *k, *v, *att, *hb, *hb2, *sc;
} shard;

static const float *f32(const tensor *t)
{
    assert_int_equal(t->type, DT_F32);
    return t->data;
}

static float *alloc_f(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static void shard_alloc(shard *s, int max_pos)
{
    const llama_hparams *hp = &s->hp;
    size_t kvd = (size_t)hp->n_kv_heads * (size_t)hp->head_dim, qd = (size_t)hp->n_heads * (size_t)hp->head_dim;
    s->max_pos = max_pos;
    s->kc = alloc_f((size_t)hp->n_layers * (size_t)max_pos * kvd);
    s->vc = alloc_f((size_t)hp->n_layers * (size_t)max_pos * kvd);
    s->q = alloc_f(qd); s->att = alloc_f(qd); s->k = alloc_f(kvd); s->v = alloc_f(kvd);
    s->hb = alloc_f((size_t)hp->hidden_dim); s->hb2 = alloc_f((size_t)hp->hidden_dim);
    s->sc = alloc_f((size_t)max_pos);
}

static void shard_free(shard *s, int own_layers)
{
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    if (own_layers) free(s->layers);
    free(s->kc); free(s->vc); free(s->q); free(s->k); free(s->v); free(s->att);
    free(s->hb); free(s->hb2); free(s->sc);
}

/* As the CPU backend's rope: pair (j0, j1) of every head rotated by pos * freqs[i]. */
static void rope(float *x, int n_heads, int hd, int pos, const float *freqs, int neox)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * freqs[i], c = cosf(a), s = sinf(a);
        int j0 = neox ? i : 2 * i, j1 = neox ? i + half : 2 * i + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * (size_t)hd, v0 = v[j0], v1 = v[j1];
            v[j0] = v0 * c - v1 * s;
            v[j1] = v0 * s + v1 * c;
        }
    }
}

/* y (n) = W (n, k) x, accumulated in double: the split reductions (WO, W2) then differ from
** the whole ones only by the f32 rounding of each rank's partial sum, as after a real
** all-reduce, not by a different float summation order over k that would blur the 1e-5
** bound on logits of magnitude ~10 (f32 order alone gives ~1.5e-5 on stories260K). */
static void matvec(float *y, const float *x, const float *w, int n, int k)
{
    for (int i = 0; i < n; i++) {
        const float *wi = w + (size_t)i * (size_t)k;
        double s = 0;
        for (int j = 0; j < k; j++) s += (double)wi[j] * x[j];
        y[i] = (float)s;
    }
}

static void add(float *y, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += x[i];
}

/* The shard's attention output through its WO columns: a partial sum of the layer's. */
static void attn_part(const infer_model *m, shard *s, int l, int pos, const float *xb, float *out)
{
    const llama_layer *L = &s->layers[l];
    int D = m->hp.dim, hd = s->hp.head_dim, nh = s->hp.n_heads, nkv = s->hp.n_kv_heads;
    int qd = nh * hd, kvd = nkv * hd;
    matvec(s->q, xb, f32(&L->wq), qd, D);
    matvec(s->k, xb, f32(&L->wk), kvd, D);
    matvec(s->v, xb, f32(&L->wv), kvd, D);
    if (L->bq) add(s->q, L->bq, qd);
    if (L->bk) add(s->k, L->bk, kvd);
    if (L->bv) add(s->v, L->bv, kvd);
    rope(s->q, nh, hd, pos, m->rope_freqs, m->hp.rope == ROPE_NEOX);
    rope(s->k, nkv, hd, pos, m->rope_freqs, m->hp.rope == ROPE_NEOX);
    float *kc = s->kc + (size_t)l * (size_t)s->max_pos * (size_t)kvd;
    float *vc = s->vc + (size_t)l * (size_t)s->max_pos * (size_t)kvd;
    memcpy(kc + (size_t)pos * kvd, s->k, (size_t)kvd * sizeof(float));
    memcpy(vc + (size_t)pos * kvd, s->v, (size_t)kvd * sizeof(float));
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < nh; h++) {
        int kvh = h / (nh / nkv); /* local numbering: the plan keeps GQA groups within a rank */
        const float *q = s->q + (size_t)h * hd;
        float *o = s->att + (size_t)h * hd;
        for (int t = 0; t <= pos; t++) {
            const float *k = kc + (size_t)t * kvd + (size_t)kvh * hd;
            float d = 0.0f;
            for (int i = 0; i < hd; i++) d += q[i] * k[i];
            s->sc[t] = d * scale;
        }
        ops_ref_softmax(s->sc, pos + 1);
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int t = 0; t <= pos; t++) {
            const float *v = vc + (size_t)t * kvd + (size_t)kvh * hd;
            for (int i = 0; i < hd; i++) o[i] += s->sc[t] * v[i];
        }
    }
    matvec(out, s->att, f32(&L->wo), D, qd);
}

/* The shard's FFN columns: silu(W1 x) * (W3 x) through its W2 columns, a partial sum. */
static void ffn_part(const infer_model *m, shard *s, int l, const float *xb, float *out)
{
    const llama_layer *L = &s->layers[l];
    int D = m->hp.dim, H = s->hp.hidden_dim;
    matvec(s->hb, xb, f32(&L->w1), H, D);
    matvec(s->hb2, xb, f32(&L->w3), H, D);
    ops_ref_swiglu(s->hb, s->hb, s->hb2, H);
    matvec(out, s->hb, f32(&L->w2), D, H);
}

/* One token at `pos` through n shards. Each sum over shards stands for an all-reduce; the
** embedding's is exact (only the owner of the token contributes a non-zero row). logits
** gets each shard's slice at s * vpad, padded with -inf: the all-gather's layout. */
static void forward(const infer_model *m, shard *sh, int n, int64_t vpad, int tok, int pos, float *logits)
{
    int D = m->hp.dim;
    float *x = alloc_f((size_t)D), *xb = alloc_f((size_t)D), *part = alloc_f((size_t)D), *sum = alloc_f((size_t)D);
    for (int r = 0; r < n; r++) {
        int64_t i = tok - sh[r].vocab0;
        if (i < 0 || i >= sh[r].hp.vocab_size) continue;
        add(x, f32(&sh[r].embd) + i * D, D);
    }
    for (int l = 0; l < m->hp.n_layers; l++) {
        const llama_layer *L = &m->w.layers[l];
        ops_ref_rmsnorm(xb, x, L->attn_norm, D, m->hp.rms_eps);
        memset(sum, 0, (size_t)D * sizeof(float));
        for (int r = 0; r < n; r++) {
            attn_part(m, &sh[r], l, pos, xb, part);
            add(sum, part, D);
        }
        add(x, sum, D);
        ops_ref_rmsnorm(xb, x, L->ffn_norm, D, m->hp.rms_eps);
        memset(sum, 0, (size_t)D * sizeof(float));
        for (int r = 0; r < n; r++) {
            ffn_part(m, &sh[r], l, xb, part);
            add(sum, part, D);
        }
        add(x, sum, D);
    }
    ops_ref_rmsnorm(xb, x, m->w.out_norm, D, m->hp.rms_eps);
    for (int r = 0; r < n; r++) {
        float *lg = logits + (size_t)r * (size_t)vpad;
        int nv = sh[r].hp.vocab_size;
        matvec(lg, xb, f32(&sh[r].cls), nv, D);
        for (int64_t i = nv; i < vpad; i++) lg[i] = -INFINITY;
    }
    free(x); free(xb); free(part); free(sum);
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* ---- building the shards ---- */

static void full_shard(const infer_model *m, shard *s, int max_pos)
{
    memset(s, 0, sizeof *s);
    s->hp = m->hp;
    s->layers = m->w.layers;
    s->embd = m->w.tok_embd;
    s->cls = m->w.wcls;
    shard_alloc(s, max_pos);
}

static void rank_shard(const infer_model *m, const tp_plan_t *p, int r, shard *s, int max_pos)
{
    const llama_hparams *hp = &m->hp;
    memset(s, 0, sizeof *s);
    tp_rank_hparams(p, r, hp, &s->hp);
    s->layers = calloc((size_t)hp->n_layers, sizeof *s->layers);
    s->owned = calloc((size_t)hp->n_layers * TP_LAYER_OWNED, sizeof *s->owned);
    assert_non_null(s->layers);
    assert_non_null(s->owned);
    for (int l = 0; l < hp->n_layers; l++) {
        assert_int_equal(tp_shard_layer(p, r, hp, &m->w.layers[l], &s->layers[l], s->owned + s->n_owned), INFER_OK);
        s->n_owned += TP_LAYER_OWNED;
    }
    assert_int_equal(tp_shard_vocab(p, r, &m->w.tok_embd, &s->embd), INFER_OK);
    assert_int_equal(tp_shard_vocab(p, r, &m->w.wcls, &s->cls), INFER_OK);
    s->vocab0 = p->rank[r].vocab0;
    assert_int_equal(s->embd.n_rows, s->hp.vocab_size);
    shard_alloc(s, max_pos);
}

static infer_model *load(const char *model, const char *tok)
{
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tok ? shared_path(tok) : NULL;
    infer_model *m = NULL;
    infer_status st = model_load(shared_path(model), &mp, NULL, (size_t)1 << 20, 16, 0, &m);
    if (st) fail_msg("loading %s: %s", model, infer_err_text());
    return m;
}

/* "<key> <count> v0 v1 ..." of the first case of a golden greedy file. */
static int32_t *golden_ids(const char *text, const char *key, size_t *n)
{
    const char *p = strstr(text, key);
    assert_non_null(p);
    return parse_ids(p + strlen(key), n);
}

static float *golden_margins(const char *text, size_t *n)
{
    const char *p = strstr(text, "gen_margins ");
    assert_non_null(p);
    char *end;
    long cnt = strtol(p + 12, &end, 10);
    float *v = malloc(sizeof(float) * (size_t)(cnt > 0 ? cnt : 1));
    for (long i = 0; i < cnt; i++) v[i] = strtof(end, &end);
    *n = (size_t)cnt;
    return v;
}

/* Random biases on every layer, to exercise the bq/bk/bv slices (the llama2.c files have
** none); freed by the caller through the returned buffer. */
static float *add_biases(infer_model *m)
{
    const llama_hparams *hp = &m->hp;
    size_t qd = (size_t)hp->n_heads * hp->head_dim, kvd = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t per = qd + 2 * kvd;
    float *b = alloc_f(per * (size_t)hp->n_layers);
    uint64_t s = 7;
    for (size_t i = 0; i < per * (size_t)hp->n_layers; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5) * 0.2f;
    }
    for (int l = 0; l < hp->n_layers; l++) {
        float *bl = b + per * (size_t)l;
        m->w.layers[l].bq = bl;
        m->w.layers[l].bk = bl + qd;
        m->w.layers[l].bv = bl + qd + kvd;
    }
    return b;
}

/* The prompt of the golden file's first case, then GREEDY_STEPS greedy tokens, unsharded and
** over R simulated ranks, in lockstep. */
static void run_case(const char *model, const char *tok, const char *golden, int R, int biases)
{
    infer_model *m = load(model, tok);
    float *bias = biases ? add_biases(m) : NULL;
    tp_plan_t plan;
    if (tp_plan(&m->hp, R, &plan)) fail_msg("tp_plan(%d): %s", R, infer_err_text());
    int V = m->hp.vocab_size;
    int64_t vpad = plan.vocab_per_rank;

    char *g = read_file(shared_path(golden), NULL);
    assert_non_null(g);
    size_t n_prompt, n_gen, n_margin;
    int32_t *prompt = golden_ids(g, "prompt_ids ", &n_prompt);
    int32_t *gen = golden_ids(g, "gen_ids ", &n_gen);
    float *margin = golden_margins(g, &n_margin);
    assert_true(n_gen >= GREEDY_STEPS && n_margin >= GREEDY_STEPS);
    int max_pos = (int)n_prompt + GREEDY_STEPS;

    shard ref, ranks[TP_MAX_RANKS];
    full_shard(m, &ref, max_pos);
    for (int r = 0; r < R; r++) rank_shard(m, &plan, r, &ranks[r], max_pos);
    float *lr = alloc_f((size_t)V), *lt = alloc_f((size_t)R * (size_t)vpad);

    int tr = prompt[0], tt = prompt[0], anchored = 0, anchor_done = biases;
    double maxdiff = 0, maxabs = 0;
    int32_t out_ref[GREEDY_STEPS], out_tp[GREEDY_STEPS];
    for (int pos = 0; pos < max_pos - 1; pos++) {
        forward(m, &ref, 1, V, tr, pos, lr);
        forward(m, ranks, R, vpad, tt, pos, lt);
        for (int i = 0; i < V; i++) {
            maxdiff = fmax(maxdiff, fabs((double)lr[i] - lt[i]));
            maxabs = fmax(maxabs, fabs((double)lr[i]));
        }
        for (int64_t i = V; i < (int64_t)R * vpad; i++) assert_true(isinf(lt[i]) && lt[i] < 0);
        int nr = argmax(lr, V), nt = argmax(lt, V); /* greedy over the gathered first V */
        int step = pos + 1 - (int)n_prompt;
        if (step < 0) {
            tr = tt = prompt[pos + 1];
            continue;
        }
        out_ref[step] = nr;
        out_tp[step] = nt;
        tr = nr;
        tt = nt;
        /* run.c's tokens hold our reference honest while its margin exceeds our rounding. */
        if (!anchor_done) {
            if (margin[step] <= 1e-4f) anchor_done = 1;
            else if (nr != gen[step]) fail_msg("%s: unsharded step %d gives %d, run.c %d", model, step, nr, gen[step]);
            else anchored++;
        }
    }
    int same = 0;
    while (same < GREEDY_STEPS && out_ref[same] == out_tp[same]) same++;
    printf("    %s, %d ranks%s: max |logit diff| %.3g (max |logit| %.3g) over %d positions; greedy tokens "
           "identical for %d of %d steps (unsharded = run.c on %d)\n", model, R, biases ? " + biases" : "", maxdiff,
           maxabs, max_pos - 1, same, GREEDY_STEPS, anchored);
    assert_true(maxdiff <= 1e-5);
    assert_memory_equal(out_ref, out_tp, sizeof out_ref);
    assert_true(biases || anchored >= 8);

    for (int r = 0; r < R; r++) shard_free(&ranks[r], 1);
    shard_free(&ref, 0);
    free(lr); free(lt); free(g); free(prompt); free(gen); free(margin); free(bias);
    model_unref(m);
}

static void test_stories260k_2(void **state) { run_case("models/stories260K.bin", "models/tok512.bin", "golden/stories260K.greedy.txt", 2, 0); }
static void test_stories260k_4(void **state) { run_case("models/stories260K.bin", "models/tok512.bin", "golden/stories260K.greedy.txt", 4, 0); }
static void test_stories260k_bias(void **state) { run_case("models/stories260K.bin", "models/tok512.bin", "golden/stories260K.greedy.txt", 2, 1); }
static void test_tiny_random_2(void **state) { run_case("models/llama-2-tiny-random.f32.bin", NULL, "golden/llama-2-tiny-random.greedy.txt", 2, 0); }

/* ---- the plan's validation ---- */

static llama_hparams hparams(int heads, int kv, int hidden, int vocab)
{
    llama_hparams hp = { .dim = 64, .hidden_dim = hidden, .n_layers = 5, .n_heads = heads, .n_kv_heads = kv,
                         .head_dim = 64 / heads, .vocab_size = vocab, .seq_len = 512, .rms_eps = 1e-5f,
                         .rope_theta = 10000.0f };
    return hp;
}

static void expect_err(const llama_hparams *hp, int R, infer_status want, const char *a, const char *b)
{
    tp_plan_t p;
    assert_int_equal(tp_plan(hp, R, &p), want);
    const char *msg = infer_err_text();
    if ((a && !strstr(msg, a)) || (b && !strstr(msg, b))) fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", msg, a, b);
}

static void test_plan(void **state)
{
    llama_hparams hp = hparams(8, 4, 172, 512); /* stories260K */
    tp_plan_t p;
    assert_int_equal(tp_plan(&hp, 4, &p), INFER_OK);
    assert_int_equal(p.heads_per_rank, 2);
    assert_int_equal(p.kv_heads_per_rank, 1);
    assert_int_equal(p.ffn_per_rank, 43);
    assert_int_equal(p.vocab_per_rank, 128);
    tp_rank k = p.rank[3];
    assert_true(k.head0 == 6 && k.head1 == 8 && k.kv_head0 == 3 && k.kv_head1 == 4);
    assert_true(k.ffn0 == 129 && k.ffn1 == 172 && k.vocab0 == 384 && k.vocab1 == 512);
    llama_hparams lh;
    tp_rank_hparams(&p, 3, &hp, &lh);
    assert_true(lh.n_heads == 2 && lh.n_kv_heads == 1 && lh.hidden_dim == 43 && lh.vocab_size == 128);
    assert_true(lh.dim == 64 && lh.head_dim == 8 && lh.n_layers == 5);

    /* uneven vocab: ceil slices, the last one short */
    hp.vocab_size = 10;
    assert_int_equal(tp_plan(&hp, 4, &p), INFER_OK);
    assert_int_equal(p.vocab_per_rank, 3);
    assert_true(p.rank[2].vocab0 == 6 && p.rank[2].vocab1 == 9 && p.rank[3].vocab0 == 9 && p.rank[3].vocab1 == 10);
    hp.vocab_size = 9; /* 3 + 3 + 3 + 0 */
    expect_err(&hp, 4, INFER_EUNSUPPORTED, "vocabulary of 9 tokens", "4 ranks");

    hp = hparams(8, 4, 172, 512);
    expect_err(&hp, 8, INFER_EUNSUPPORTED, "4 KV heads", "8 ranks");
    hp = hparams(2, 2, 32, 32000); /* llama-2-tiny-random */
    expect_err(&hp, 4, INFER_EUNSUPPORTED, "2 KV heads", "4 ranks");
    hp = hparams(8, 8, 172, 512);
    expect_err(&hp, 3, INFER_EUNSUPPORTED, "8 attention heads", "3 ranks");
    hp = hparams(8, 4, 170, 512);
    expect_err(&hp, 4, INFER_EUNSUPPORTED, "hidden_dim) 170", "4 ranks");
    hp = hparams(8, 3, 172, 512);
    expect_err(&hp, 2, INFER_EINVAL, "inconsistent", NULL);
    hp = hparams(8, 4, 172, 512);
    expect_err(&hp, 0, INFER_EINVAL, "0 ranks", NULL);
    expect_err(&hp, TP_MAX_RANKS + 1, INFER_EINVAL, "ranks", NULL);
    assert_int_equal(tp_plan(&hp, 1, &p), INFER_OK);
    assert_true(p.rank[0].head1 == 8 && p.rank[0].ffn1 == 172 && p.rank[0].vocab1 == 512);
}

/* ---- slicing ---- */

static void *quantized(dtype t, int rows, int cols, float *ref /* (rows, cols) dequantized */)
{
    size_t rb = dtype_row_bytes(t, cols);
    uint8_t *q = malloc(rb * (size_t)rows);
    float *src = alloc_f((size_t)cols);
    uint64_t s = 11;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            src[c] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
        }
        quantize_row(t, src, q + (size_t)r * rb, cols);
        dequantize_row(t, q + (size_t)r * rb, ref + (size_t)r * cols, cols);
    }
    free(src);
    return q;
}

/* Columns [c0, c1) sliced, dequantized, equal bit for bit to the dequantized full rows'. */
static void check_cols(dtype t, int rows, int cols, int64_t c0, int64_t c1)
{
    float *ref = alloc_f((size_t)rows * cols), *row = alloc_f((size_t)(c1 - c0));
    void *q = quantized(t, rows, cols, ref);
    tensor full = { .type = t, .data = q, .n_rows = rows, .n_cols = cols }, out;
    void *owned;
    assert_int_equal(tp_slice_cols(&full, c0, c1, &owned, &out), INFER_OK);
    assert_non_null(owned);
    assert_true(out.data == owned && out.n_rows == rows && out.n_cols == c1 - c0 && out.type == t);
    for (int r = 0; r < rows; r++) {
        dequantize_row(t, (const uint8_t *)out.data + (size_t)r * dtype_row_bytes(t, c1 - c0), row, c1 - c0);
        assert_memory_equal(row, ref + (size_t)r * cols + c0, (size_t)(c1 - c0) * sizeof(float));
    }
    free(owned); free(q); free(ref); free(row);
}

static void expect_cols_err(dtype t, int cols, int64_t c0, int64_t c1, infer_status want, const char *text)
{
    float *ref = alloc_f((size_t)2 * cols);
    void *q = quantized(t, 2, cols, ref);
    tensor full = { .type = t, .data = q, .n_rows = 2, .n_cols = cols }, out;
    void *owned = (void *)1;
    assert_int_equal(tp_slice_cols(&full, c0, c1, &owned, &out), want);
    assert_null(owned);
    if (text && !strstr(infer_err_text(), text)) fail_msg("\"%s\" lacks \"%s\"", infer_err_text(), text);
    free(q); free(ref);
}

static void test_slice_cols(void **state)
{
    check_cols(DT_Q8_0, 3, 128, 32, 96);
    check_cols(DT_Q8_0, 3, 128, 0, 128);
    check_cols(DT_Q4_0, 3, 128, 64, 128);
    check_cols(DT_Q4_K, 2, 512, 256, 512);
    check_cols(DT_F16, 3, 40, 3, 17);
    check_cols(DT_BF16, 3, 40, 5, 40);
    check_cols(DT_F32, 3, 40, 0, 1);
    expect_cols_err(DT_Q8_0, 128, 16, 64, INFER_EUNSUPPORTED, "multiples of 32");
    expect_cols_err(DT_Q4_0, 128, 32, 48, INFER_EUNSUPPORTED, "Q4_0 packs 32 columns");
    expect_cols_err(DT_Q4_K, 512, 0, 128, INFER_EUNSUPPORTED, "multiples of 256");
    expect_cols_err(DT_Q8_0, 128, 96, 160, INFER_EINVAL, "outside");
    expect_cols_err(DT_F32, 16, 4, 4, INFER_EINVAL, "outside");
}

static void test_slice_rows(void **state)
{
    float *ref = alloc_f((size_t)4 * 64);
    void *q = quantized(DT_Q4_0, 4, 64, ref);
    tensor full = { .type = DT_Q4_0, .data = q, .n_rows = 4, .n_cols = 64 }, out;
    assert_int_equal(tp_slice_rows(&full, 1, 3, &out), INFER_OK);
    assert_ptr_equal(out.data, (uint8_t *)q + dtype_row_bytes(DT_Q4_0, 64));
    assert_true(out.n_rows == 2 && out.n_cols == 64);
    assert_int_equal(tp_slice_rows(&full, 3, 5, &out), INFER_EINVAL);
    assert_null(tp_slice_vec(NULL, 4));
    assert_ptr_equal(tp_slice_vec(ref, 4), ref + 4);
    free(q); free(ref);
}

/* A Q8_0 layer: heads of 32 columns slice on block boundaries; an FFN of 96 over 2 ranks
** (48 columns of W2 each) does not, and the shard says which rank and tensor. */
static void test_shard_layer_quant(void **state)
{
    for (int H = 96; H <= 128; H += 32) {
        llama_hparams hp = { .dim = 64, .hidden_dim = H, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
                             .head_dim = 32, .vocab_size = 64 };
        size_t rb64 = dtype_row_bytes(DT_Q8_0, 64), rbH = dtype_row_bytes(DT_Q8_0, H);
        uint8_t *buf = calloc(1, 4 * 64 * rb64 + 3 * (size_t)H * rb64 + 64 * rbH);
        assert_non_null(buf);
        float norm[64] = {0};
        llama_layer L = { .attn_norm = norm, .ffn_norm = norm };
        tensor *sq[] = { &L.wq, &L.wk, &L.wv, &L.wo };
        uint8_t *at = buf;
        for (int i = 0; i < 4; i++) {
            *sq[i] = (tensor){ .type = DT_Q8_0, .data = at, .n_rows = 64, .n_cols = 64 };
            at += 64 * rb64;
        }
        L.w1 = (tensor){ .type = DT_Q8_0, .data = at, .n_rows = H, .n_cols = 64 };
        L.w3 = (tensor){ .type = DT_Q8_0, .data = at + (size_t)H * rb64, .n_rows = H, .n_cols = 64 };
        L.w2 = (tensor){ .type = DT_Q8_0, .data = at + 2 * (size_t)H * rb64, .n_rows = 64, .n_cols = H };
        tp_plan_t p;
        assert_int_equal(tp_plan(&hp, 2, &p), INFER_OK);
        llama_layer dst;
        void *owned[TP_LAYER_OWNED];
        infer_status st = tp_shard_layer(&p, 1, &hp, &L, &dst, owned);
        if (H == 96) {
            assert_int_equal(st, INFER_EUNSUPPORTED);
            assert_true(owned[0] == NULL && owned[1] == NULL);
            const char *msg = infer_err_text();
            if (!strstr(msg, "rank 1, w2") || !strstr(msg, "[48, 96)")) fail_msg("message: %s", msg);
        } else {
            assert_int_equal(st, INFER_OK);
            assert_ptr_equal(dst.wq.data, (const uint8_t *)L.wq.data + 32 * rb64);
            assert_true(dst.wq.n_rows == 32 && dst.wk.n_rows == 32 && dst.w1.n_rows == 64 && dst.w3.n_rows == 64);
            assert_true(dst.wo.n_rows == 64 && dst.wo.n_cols == 32 && dst.w2.n_rows == 64 && dst.w2.n_cols == 64);
            assert_ptr_equal(dst.wo.data, owned[0]);
            assert_ptr_equal(dst.w2.data, owned[1]);
            assert_ptr_equal(dst.attn_norm, norm);
            for (int i = 0; i < TP_LAYER_OWNED; i++) free(owned[i]);
            L.wo.n_cols = 48; /* disagreeing with the hparams */
            assert_int_equal(tp_shard_layer(&p, 0, &hp, &L, &dst, owned), INFER_EINVAL);
        }
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_slice_cols),
        cmocka_unit_test(test_slice_rows),
        cmocka_unit_test(test_shard_layer_quant),
        cmocka_unit_test(test_stories260k_2),
        cmocka_unit_test(test_stories260k_4),
        cmocka_unit_test(test_stories260k_bias),
        cmocka_unit_test(test_tiny_random_2),
    };
    return cmocka_run_group_tests_name("tp", tests, NULL, NULL);
}
