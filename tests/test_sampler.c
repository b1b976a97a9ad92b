/*
** test_sampler.c — the PRNG, the sampling chain and the stop-string matcher.
**
** Statistical checks draw ~20000 samples from small known distributions and compare the
** frequencies with the softmax probabilities (absolute tolerance 0.02, about 7 standard
** deviations at p = 0.5, so a correct sampler essentially never fails; draws are seeded,
** so each run is the same anyway). Filters are checked by "never drawn" over many draws.
*/
#include "test_util.h"

#include "rng.h"
#include "sampler.h"

#include <math.h>

#define N_DRAWS 20000

static sampler_params params_default(void)
{
    sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.penalty_last_n = 64;
    p.seed = 42;
    return p;
}

static sampler *make(const sampler_params *p, int32_t n_vocab)
{
    sampler *s = NULL;
    assert_int_equal(sampler_create(p, n_vocab, &s), INFER_OK);
    assert_non_null(s);
    return s;
}

/* One draw from a fresh copy of `logits` (the sampler may modify its argument). */
static int32_t draw(sampler *s, const float *logits, int32_t n, const int32_t *hist, size_t n_hist)
{
    float buf[256];
    assert_true(n <= 256);
    memcpy(buf, logits, sizeof(float) * (size_t)n);
    return sampler_sample(s, buf, hist, n_hist);
}

/* softmax(logits / t) into prob. */
static void softmax_ref(const float *logits, int n, float t, double *prob)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, logits[i]);
    for (int i = 0; i < n; i++) sum += prob[i] = exp((logits[i] - mx) / t);
    for (int i = 0; i < n; i++) prob[i] /= sum;
}

/* Draw N_DRAWS times and compare frequencies with `want` (abs 0.02; zeros must be exact). */
static void check_freq(sampler *s, const float *logits, int n, const double *want)
{
    int count[256] = { 0 };
    for (int i = 0; i < N_DRAWS; i++) {
        int32_t t = draw(s, logits, n, NULL, 0);
        assert_true(t >= 0 && t < n);
        count[t]++;
    }
    for (int i = 0; i < n; i++) {
        double f = (double)count[i] / N_DRAWS;
        if (want[i] == 0.0) {
            if (count[i] != 0) fail_msg("token %d drawn %d times, must never be", i, count[i]);
        } else if (fabs(f - want[i]) > 0.02) {
            fail_msg("token %d: frequency %.4f, expected %.4f", i, f, want[i]);
        }
    }
}

/* ---- rng ---- */

static void test_rng_reference(void **state)
{
    (void)state;
    /* From an independent Python transcription of splitmix64 + xoshiro256**. */
    rng r;
    rng_seed(&r, 0);
    assert_true(rng_next(&r) == 0x99ec5f36cb75f2b4ULL);
    assert_true(rng_next(&r) == 0xbf6e1f784956452aULL);
    assert_true(rng_next(&r) == 0x1a5f849d4933e6e0ULL);
    rng_seed(&r, 12345);
    assert_true(rng_next(&r) == 0xbe6a36374160d49bULL);
    assert_true(rng_next(&r) == 0x214aaa0637a688c6ULL);

    double mean = 0;
    for (int i = 0; i < 100000; i++) {
        float f = rng_float(&r);
        assert_true(f >= 0.0f && f < 1.0f);
        mean += f;
    }
    mean /= 100000;
    assert_true(fabs(mean - 0.5) < 0.01);
}

/* ---- sampler ---- */

static void test_greedy(void **state)
{
    (void)state;
    sampler_params p = params_default();
    p.temperature = 0.0f;
    sampler *s = make(&p, 6);
    const float l1[6] = { 0.1f, 2.0f, -3.0f, 2.0f, 1.9f, 2.0f };
    for (int i = 0; i < 5; i++) assert_int_equal(draw(s, l1, 6, NULL, 0), 1); /* tie -> lowest */
    const float l2[6] = { -5.0f, -4.0f, -1.0f, -2.0f, -1.0f, -9.0f };
    assert_int_equal(draw(s, l2, 6, NULL, 0), 2);
    const float l3[6] = { NAN, 1.0f, 3.0f, NAN, 3.0f, 0.0f };
    assert_int_equal(draw(s, l3, 6, NULL, 0), 2); /* NaN never wins */
    const float l4[6] = { 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 7.0f };
    assert_int_equal(draw(s, l4, 6, NULL, 0), 5);
    sampler_free(s);

    /* Negative temperature is invalid, but a tiny positive one is not greedy: check that the
    ** temperature 0 path gives the same as top_k = 1 sampling on random logits. */
    p.temperature = 0.0f;
    s = make(&p, 200);
    sampler_params pk = params_default();
    pk.top_k = 1;
    sampler *sk = make(&pk, 200);
    rng r;
    rng_seed(&r, 7);
    float l[200];
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < 200; i++) l[i] = (float)(rng_next(&r) % 8); /* many ties */
        int32_t g = draw(s, l, 200, NULL, 0), k = draw(sk, l, 200, NULL, 0);
        assert_int_equal(g, k);
        for (int i = 0; i < g; i++) assert_true(l[i] < l[g]);
        for (int i = g + 1; i < 200; i++) assert_true(l[i] <= l[g]);
    }
    sampler_free(s);
    sampler_free(sk);
}

static void test_seed_determinism(void **state)
{
    (void)state;
    float l[100];
    for (int i = 0; i < 100; i++) l[i] = (float)((i * 37) % 11) * 0.3f;
    sampler_params p = params_default();
    p.top_k = 40;
    p.top_p = 0.9f;
    p.min_p = 0.01f;
    sampler *a = make(&p, 100), *b = make(&p, 100);
    p.seed = 43;
    sampler *c = make(&p, 100);
    int differ = 0;
    for (int i = 0; i < 500; i++) {
        int32_t x = draw(a, l, 100, NULL, 0), y = draw(b, l, 100, NULL, 0), z = draw(c, l, 100, NULL, 0);
        assert_int_equal(x, y);
        differ += x != z;
    }
    assert_true(differ > 100);
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

static void test_frequencies(void **state)
{
    (void)state;
    const float l[5] = { 1.0f, 2.0f, 0.5f, 3.0f, -1.0f };
    double want[5];
    sampler_params p = params_default();
    sampler *s = make(&p, 5);
    softmax_ref(l, 5, 1.0f, want);
    check_freq(s, l, 5, want);
    sampler_free(s);

    /* The same through the top-k path with k = 4: renormalised over the best four. */
    p.top_k = 4;
    s = make(&p, 5);
    const float l4[4] = { 1.0f, 2.0f, 0.5f, 3.0f };
    double w4[4];
    softmax_ref(l4, 4, 1.0f, w4);
    double want_k[5] = { w4[0], w4[1], w4[2], w4[3], 0.0 };
    check_freq(s, l, 5, want_k);
    sampler_free(s);
}

static void test_temperature(void **state)
{
    (void)state;
    const float l[4] = { 1.0f, 2.0f, 0.0f, 1.5f };
    double want[4];
    const float temps[3] = { 0.5f, 1.0f, 2.5f };
    double p_max[3];
    for (int t = 0; t < 3; t++) {
        sampler_params p = params_default();
        p.temperature = temps[t];
        p.seed = 100 + (uint64_t)t;
        sampler *s = make(&p, 4);
        softmax_ref(l, 4, temps[t], want);
        check_freq(s, l, 4, want);
        p_max[t] = want[1];
        sampler_free(s);
    }
    /* Lower temperature sharpens: the best token gains. */
    assert_true(p_max[0] > p_max[1] + 0.1 && p_max[1] > p_max[2] + 0.1);
}

static void test_top_k_one(void **state)
{
    (void)state;
    sampler_params p = params_default();
    p.top_k = 1;
    p.temperature = 3.0f;
    sampler *s = make(&p, 256);
    rng r;
    rng_seed(&r, 99);
    float l[256];
    for (int it = 0; it < 300; it++) {
        for (int i = 0; i < 256; i++) l[i] = rng_float(&r) * 4.0f - 2.0f;
        int best = 0;
        for (int i = 1; i < 256; i++)
            if (l[i] > l[best]) best = i;
        assert_int_equal(draw(s, l, 256, NULL, 0), best);
    }
    sampler_free(s);
}

static void test_top_p(void **state)
{
    (void)state;
    /* Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps {0, 1} (0.5 < 0.75 <= 0.8);
    ** 0.85 needs the third token too. k = 0 takes the histogram path, k = 3 the sorted
    ** top-k path. */
    const float l[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
    const double want2[4] = { 0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0 };
    const double want3[4] = { 0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0 };
    for (int k = 0; k <= 3; k += 3) {
        sampler_params p = params_default();
        p.top_k = k;
        p.top_p = 0.75f;
        sampler *s = make(&p, 4);
        check_freq(s, l, 4, want2);
        sampler_free(s);
        p.top_p = 0.85f;
        s = make(&p, 4);
        check_freq(s, l, 4, want3);
        sampler_free(s);
    }
}

static int cmp_desc_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* A 128k vocabulary exercises the histogram path: draws must all lie in the nucleus
** computed here by a full sort, and the nucleus must actually be cut. */
static void test_top_p_large_vocab(void **state)
{
    (void)state;
    const int32_t nv = 131072;
    float *l = malloc(sizeof(float) * nv), *work = malloc(sizeof(float) * nv), *sorted = malloc(sizeof(float) * nv);
    assert_non_null(l);
    assert_non_null(work);
    assert_non_null(sorted);
    rng r;
    rng_seed(&r, 5);
    for (int32_t i = 0; i < nv; i++) l[i] = rng_float(&r) * 12.0f;
    const float temps[2] = { 1.0f, 0.7f };
    for (int t = 0; t < 2; t++) {
        const float top_p = 0.9f;
        float mx = -INFINITY;
        for (int32_t i = 0; i < nv; i++) mx = fmaxf(mx, l[i]);
        double total = 0;
        for (int32_t i = 0; i < nv; i++) total += sorted[i] = expf((l[i] - mx) / temps[t]);
        qsort(sorted, (size_t)nv, sizeof(float), cmp_desc_float);
        double cum = 0;
        int32_t n_nuc = 0;
        while (cum < top_p * total) cum += sorted[n_nuc++];
        float cut = sorted[n_nuc - 1];
        assert_true(n_nuc > 10 && n_nuc < nv / 2);

        sampler_params p = params_default();
        p.top_p = top_p;
        p.temperature = temps[t];
        sampler *s = make(&p, nv);
        int below_mid = 0;
        for (int it = 0; it < 300; it++) {
            memcpy(work, l, sizeof(float) * nv);
            int32_t tok = sampler_sample(s, work, NULL, 0);
            assert_true(tok >= 0 && tok < nv);
            float v = expf((l[tok] - mx) / temps[t]);
            if (v < cut) fail_msg("token %d (p %g) outside the nucleus (cut %g)", tok, (double)v, (double)cut);
            below_mid += v < sorted[n_nuc / 2];
        }
        assert_true(below_mid > 10); /* the whole nucleus is in play, not just its head */
        sampler_free(s);
    }
    free(l);
    free(work);
    free(sorted);
}

/* Flat logits: every probability ties, so the nucleus is the lowest ids (ties break as in
** argmax), through both the full-vocabulary and the top-k paths. */
static void test_top_p_flat(void **state)
{
    (void)state;
    const int32_t nv = 1000;
    float *l = malloc(sizeof(float) * nv);
    assert_non_null(l);
    for (int k = 0; k <= 999; k += 999) {
        sampler_params p = params_default();
        p.top_p = 0.25f; /* 250 of 1000 (of 999 with k = 999: 249.75 -> 250) */
        p.top_k = k;
        sampler *s = make(&p, nv);
        int seen_hi = 0;
        for (int it = 0; it < 4000; it++) {
            for (int32_t i = 0; i < nv; i++) l[i] = 1.5f;
            int32_t t = sampler_sample(s, l, NULL, 0);
            if (t >= 250) fail_msg("k=%d: token %d drawn, nucleus is 0..249", k, t);
            seen_hi |= t >= 240;
        }
        assert_true(seen_hi);
        sampler_free(s);
    }
    free(l);
}

static void test_min_p(void **state)
{
    (void)state;
    /* 0.5, 0.3, 0.15, 0.05 with min_p 0.2: cut at 0.1 drops the last one only. */
    const float l[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
    sampler_params p = params_default();
    p.min_p = 0.2f;
    sampler *s = make(&p, 4);
    const double want[4] = { 0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0 };
    check_freq(s, l, 4, want);
    sampler_free(s);

    p.min_p = 0.5f; /* cut 0.25: {0, 1} */
    s = make(&p, 4);
    const double want2[4] = { 0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0 };
    check_freq(s, l, 4, want2);
    sampler_free(s);

    p.min_p = 1.0f; /* only the best remains */
    s = make(&p, 4);
    for (int i = 0; i < 200; i++) assert_int_equal(draw(s, l, 4, NULL, 0), 0);
    sampler_free(s);
}

static void test_repetition_penalty(void **state)
{
    (void)state;
    sampler_params p = params_default();
    p.temperature = 0.0f;
    p.repetition_penalty = 1.1f;
    sampler *s = make(&p, 4);

    /* Positive logit divided: 2.0 / 1.1 = 1.818 < 1.9. */
    float a[4] = { 2.0f, 1.9f, -1.0f, -1.1f };
    const int32_t h0[1] = { 0 };
    assert_int_equal(sampler_sample(s, a, h0, 1), 1);
    assert_true(a[0] == 2.0f / 1.1f);
    assert_true(a[1] == 1.9f && a[2] == -1.0f); /* unseen tokens untouched */

    /* Negative logit multiplied: -1.0 * 1.1 = -1.1 < -1.05. */
    float b[4] = { -1.0f, -1.05f, -5.0f, -6.0f };
    assert_int_equal(sampler_sample(s, b, h0, 1), 1);
    assert_true(b[0] == -1.0f * 1.1f);

    /* Once per distinct token: thrice-seen 2.0 becomes 1.818 (> 1.7), not 2 / 1.331. */
    float c[4] = { 2.0f, 1.7f, 0.0f, 0.0f };
    const int32_t h3[3] = { 0, 0, 0 };
    assert_int_equal(sampler_sample(s, c, h3, 3), 0);
    assert_true(c[0] == 2.0f / 1.1f);

    /* Counts are reset between calls: the same call gives the same result. */
    float c2[4] = { 2.0f, 1.7f, 0.0f, 0.0f };
    assert_int_equal(sampler_sample(s, c2, h3, 3), 0);
    assert_true(c2[0] == 2.0f / 1.1f);

    /* Ids outside the vocabulary are ignored. */
    float d[4] = { 2.0f, 1.9f, 0.0f, 0.0f };
    const int32_t bad[3] = { -1, 4, 1000000 };
    assert_int_equal(sampler_sample(s, d, bad, 3), 0);
    assert_true(d[0] == 2.0f && d[1] == 1.9f);
    sampler_free(s);

    /* The window: only the last penalty_last_n tokens count. */
    p.penalty_last_n = 2;
    s = make(&p, 4);
    float e[4] = { 2.0f, 1.9f, 0.0f, 0.0f };
    const int32_t hw[3] = { 0, 1, 1 };
    assert_int_equal(sampler_sample(s, e, hw, 3), 0); /* 0 is outside the window, 1 penalised */
    assert_true(e[0] == 2.0f && e[1] == 1.9f / 1.1f);
    sampler_free(s);

    /* penalty_last_n = 0 turns penalties off. */
    p.penalty_last_n = 0;
    s = make(&p, 4);
    float f[4] = { 2.0f, 1.9f, 0.0f, 0.0f };
    assert_int_equal(sampler_sample(s, f, h3, 3), 0);
    assert_true(f[0] == 2.0f);
    sampler_free(s);
}

static void test_frequency_presence_penalty(void **state)
{
    (void)state;
    const int32_t h[4] = { 0, 2, 0, 0 };
    sampler_params p = params_default();
    p.temperature = 0.0f;

    p.frequency_penalty = 0.2f; /* 3.0 - 3 * 0.2 = 2.4 < 2.5 */
    sampler *s = make(&p, 3);
    float a[3] = { 3.0f, 2.5f, 1.0f };
    assert_int_equal(sampler_sample(s, a, h, 4), 1);
    assert_true(fabsf(a[0] - 2.4f) < 1e-6f && fabsf(a[2] - 0.8f) < 1e-6f && a[1] == 2.5f);
    sampler_free(s);

    p.frequency_penalty = 0.1f; /* 2.7 > 2.5 */
    s = make(&p, 3);
    float b[3] = { 3.0f, 2.5f, 1.0f };
    assert_int_equal(sampler_sample(s, b, h, 4), 0);
    sampler_free(s);

    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.4f; /* once, whatever the count: 2.6 > 2.5 */
    s = make(&p, 3);
    float c[3] = { 3.0f, 2.5f, 1.0f };
    assert_int_equal(sampler_sample(s, c, h, 4), 0);
    assert_true(fabsf(c[0] - 2.6f) < 1e-6f && fabsf(c[2] - 0.6f) < 1e-6f);
    sampler_free(s);

    p.presence_penalty = 0.6f; /* 2.4 < 2.5 */
    s = make(&p, 3);
    float d[3] = { 3.0f, 2.5f, 1.0f };
    assert_int_equal(sampler_sample(s, d, h, 4), 1);
    sampler_free(s);

    /* All three together, in order: repetition, then frequency and presence. */
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.1f;
    p.presence_penalty = 0.5f;
    s = make(&p, 3);
    float e[3] = { 3.0f, 2.5f, -1.0f };
    assert_int_equal(sampler_sample(s, e, h, 4), 1);
    assert_true(fabsf(e[0] - (1.5f - 0.3f - 0.5f)) < 1e-6f);
    assert_true(fabsf(e[2] - (-2.0f - 0.1f - 0.5f)) < 1e-6f);
    sampler_free(s);
}

static void test_penalty_changes_sampling(void **state)
{
    (void)state;
    /* Penalties apply before sampling too: a presence penalty of ln(4) on token 0 of two
    ** equal logits makes the odds 1:4. */
    const float l[2] = { 0.0f, 0.0f };
    const int32_t h[1] = { 0 };
    sampler_params p = params_default();
    p.presence_penalty = logf(4.0f);
    sampler *s = make(&p, 2);
    int n0 = 0;
    for (int i = 0; i < N_DRAWS; i++) n0 += draw(s, l, 2, h, 1) == 0;
    assert_true(fabs((double)n0 / N_DRAWS - 0.2) < 0.02);
    sampler_free(s);
}

static void test_nonfinite_logits(void **state)
{
    (void)state;
    sampler_params p = params_default();
    sampler *s = make(&p, 4);
    const float l[4] = { NAN, 0.0f, -INFINITY, 0.0f };
    for (int i = 0; i < 2000; i++) {
        int32_t t = draw(s, l, 4, NULL, 0);
        assert_true(t == 1 || t == 3);
    }
    const float inf[4] = { 1.0f, INFINITY, 3.0f, 2.0f };
    for (int i = 0; i < 200; i++) assert_int_equal(draw(s, inf, 4, NULL, 0), 1);
    const float none[4] = { -INFINITY, NAN, -INFINITY, -INFINITY };
    assert_int_equal(draw(s, none, 4, NULL, 0), 0);
    sampler_free(s);
}

static void expect_einval(sampler_params p, int32_t n_vocab, const char *field)
{
    static char dummy;
    sampler *s = (sampler *)(void *)&dummy; /* must be reset to NULL */
    assert_int_equal(sampler_create(&p, n_vocab, &s), INFER_EINVAL);
    assert_null(s);
    if (!strstr(infer_err_text(), field)) fail_msg("message \"%s\" does not name %s", infer_err_text(), field);
}

static void test_invalid_params(void **state)
{
    (void)state;
    sampler_params p;
    p = params_default(); p.temperature = -0.1f; expect_einval(p, 10, "temperature");
    p = params_default(); p.temperature = NAN; expect_einval(p, 10, "temperature");
    p = params_default(); p.top_k = -1; expect_einval(p, 10, "top_k");
    p = params_default(); p.top_p = 0.0f; expect_einval(p, 10, "top_p");
    p = params_default(); p.top_p = 1.5f; expect_einval(p, 10, "top_p");
    p = params_default(); p.top_p = NAN; expect_einval(p, 10, "top_p");
    p = params_default(); p.min_p = -0.1f; expect_einval(p, 10, "min_p");
    p = params_default(); p.min_p = 1.01f; expect_einval(p, 10, "min_p");
    p = params_default(); p.repetition_penalty = 0.0f; expect_einval(p, 10, "repetition_penalty");
    p = params_default(); p.repetition_penalty = -1.0f; expect_einval(p, 10, "repetition_penalty");
    p = params_default(); p.frequency_penalty = INFINITY; expect_einval(p, 10, "frequency_penalty");
    p = params_default(); p.presence_penalty = NAN; expect_einval(p, 10, "presence_penalty");
    p = params_default(); p.penalty_last_n = -1; expect_einval(p, 10, "penalty_last_n");
    p = params_default(); expect_einval(p, 0, "n_vocab");
    assert_true(strstr(infer_err_text(), "0") != NULL);
    p = params_default(); p.top_p = 1.5f; expect_einval(p, 10, "1.5"); /* names the value */

    /* Edges that are valid. */
    sampler *s;
    p = params_default(); p.temperature = 0.0f; p.top_p = 1.0f; p.min_p = 1.0f; p.top_k = 1000;
    assert_int_equal(sampler_create(&p, 10, &s), INFER_OK);
    sampler_free(s);
    sampler_free(NULL);
}

/* top_k >= n_vocab means off; top_k < n_vocab with many ties keeps the lowest ids. */
static void test_top_k_edges(void **state)
{
    (void)state;
    const float l[4] = { 1.0f, 1.0f, 1.0f, 1.0f };
    sampler_params p = params_default();
    p.top_k = 4;
    sampler *s = make(&p, 4);
    const double want[4] = { 0.25, 0.25, 0.25, 0.25 };
    check_freq(s, l, 4, want);
    sampler_free(s);

    p.top_k = 2;
    s = make(&p, 4);
    const double want2[4] = { 0.5, 0.5, 0.0, 0.0 };
    check_freq(s, l, 4, want2);
    sampler_free(s);
}

/* ---- stop strings ---- */

typedef struct stop_run {
    strbuf out;
    int matched;
} stop_run;

static stop_matcher *stop_make(const char *const *stops, size_t n)
{
    stop_matcher *m = NULL;
    assert_int_equal(stop_create(stops, n, &m), INFER_OK);
    return m;
}

/* Feed each piece in turn; returns what was released so far (in r->out). */
static void feed(stop_matcher *m, stop_run *r, const char *piece)
{
    assert_int_equal(stop_feed(m, piece, strlen(piece), &r->out, &r->matched), INFER_OK);
}

static const char *released(const stop_run *r) { return r->out.p ? r->out.p : ""; }

static void test_stop_one_feed(void **state)
{
    (void)state;
    const char *stops[1] = { "STOP" };
    stop_matcher *m = stop_make(stops, 1);
    stop_run r = { { 0 }, 0 };
    feed(m, &r, "hello STOP world");
    assert_int_equal(r.matched, 1);
    assert_string_equal(released(&r), "hello ");
    feed(m, &r, "more"); /* nothing after a match, ever */
    assert_int_equal(r.matched, 1);
    assert_int_equal(stop_flush(m, &r.out), INFER_OK);
    assert_string_equal(released(&r), "hello ");
    stop_free(m);
    sb_free(&r.out);
}

static void test_stop_spanning(void **state)
{
    (void)state;
    const char *stops[1] = { "<|end|>" };
    stop_matcher *m = stop_make(stops, 1);
    stop_run r = { { 0 }, 0 };
    feed(m, &r, "abc<|");
    assert_int_equal(r.matched, 0);
    assert_string_equal(released(&r), "abc"); /* "<|" held */
    feed(m, &r, "en");
    assert_string_equal(released(&r), "abc");
    feed(m, &r, "d|>tail");
    assert_int_equal(r.matched, 1);
    assert_string_equal(released(&r), "abc");
    feed(m, &r, "x");
    assert_string_equal(released(&r), "abc");
    stop_free(m);
    sb_free(&r.out);

    /* A stop string fed one byte at a time. */
    m = stop_make(stops, 1);
    stop_run r2 = { { 0 }, 0 };
    const char *text = "xy<|end|>z";
    for (size_t i = 0; text[i]; i++) {
        char c[2] = { text[i], 0 };
        feed(m, &r2, c);
    }
    assert_int_equal(r2.matched, 1);
    assert_string_equal(released(&r2), "xy");
    stop_free(m);
    sb_free(&r2.out);
}

static void test_stop_false_prefix(void **state)
{
    (void)state;
    const char *stops[1] = { "STOP" };
    stop_matcher *m = stop_make(stops, 1);
    stop_run r = { { 0 }, 0 };
    feed(m, &r, "a ST");
    assert_string_equal(released(&r), "a ");
    feed(m, &r, "O");
    assert_string_equal(released(&r), "a ");
    feed(m, &r, "P"); /* completes */
    assert_int_equal(r.matched, 1);
    stop_free(m);
    sb_free(&r.out);

    m = stop_make(stops, 1);
    stop_run q = { { 0 }, 0 };
    feed(m, &q, "a STO");
    assert_string_equal(released(&q), "a ");
    feed(m, &q, "NE S"); /* "STON" is not it: released, the new "S" held */
    assert_int_equal(q.matched, 0);
    assert_string_equal(released(&q), "a STONE ");
    feed(m, &q, "!");
    assert_string_equal(released(&q), "a STONE S!");
    feed(m, &q, "ST");
    assert_string_equal(released(&q), "a STONE S!");
    assert_int_equal(stop_flush(m, &q.out), INFER_OK); /* end without a match */
    assert_string_equal(released(&q), "a STONE S!ST");
    stop_free(m);
    sb_free(&q.out);
}

static void test_stop_prefix_of_other(void **state)
{
    (void)state;
    /* "</s>" is a prefix of "</s>x": the shorter completes first and wins. */
    const char *stops[2] = { "</s>x", "</s>" };
    stop_matcher *m = stop_make(stops, 2);
    stop_run r = { { 0 }, 0 };
    feed(m, &r, "hi </");
    assert_string_equal(released(&r), "hi ");
    feed(m, &r, "s>");
    assert_int_equal(r.matched, 1);
    assert_string_equal(released(&r), "hi ");
    stop_free(m);
    sb_free(&r.out);

    /* A long candidate held, then a short stop inside it completes: stop at the short one. */
    const char *stops2[2] = { "abcdef", "cd" };
    m = stop_make(stops2, 2);
    stop_run q = { { 0 }, 0 };
    feed(m, &q, "xab");
    assert_string_equal(released(&q), "x");
    feed(m, &q, "cd");
    assert_int_equal(q.matched, 1);
    assert_string_equal(released(&q), "xab");
    stop_free(m);
    sb_free(&q.out);

    /* Two stop strings in one feed: the earlier occurrence wins. */
    const char *stops3[2] = { "END", "STOP" };
    m = stop_make(stops3, 2);
    stop_run t = { { 0 }, 0 };
    feed(m, &t, "1 STOP 2 END");
    assert_int_equal(t.matched, 1);
    assert_string_equal(released(&t), "1 ");
    stop_free(m);
    sb_free(&t.out);
}

static void test_stop_overlapping(void **state)
{
    (void)state;
    const char *stops[1] = { "aab" };
    stop_matcher *m = stop_make(stops, 1);
    stop_run r = { { 0 }, 0 };
    feed(m, &r, "aaab");
    assert_int_equal(r.matched, 1);
    assert_string_equal(released(&r), "a");
    stop_free(m);
    sb_free(&r.out);

    m = stop_make(stops, 1);
    stop_run q = { { 0 }, 0 };
    feed(m, &q, "a");
    feed(m, &q, "a");
    assert_string_equal(released(&q), "");
    feed(m, &q, "a");
    assert_string_equal(released(&q), "a"); /* "aaa": the first 'a' can no longer start "aab" */
    feed(m, &q, "b");
    assert_int_equal(q.matched, 1);
    assert_string_equal(released(&q), "a");
    stop_free(m);
    sb_free(&q.out);
}

static void test_stop_misc(void **state)
{
    (void)state;
    stop_matcher *m = NULL;
    const char *empty[2] = { "ok", "" };
    assert_int_equal(stop_create(empty, 2, &m), INFER_EINVAL);
    assert_null(m);
    const char *nul[1] = { NULL };
    assert_int_equal(stop_create(nul, 1, &m), INFER_EINVAL);
    assert_int_equal(stop_create(NULL, 1, &m), INFER_EINVAL);

    /* No stop strings: everything passes straight through. */
    m = stop_make(NULL, 0);
    stop_run r = { { 0 }, 0 };
    feed(m, &r, "abc");
    feed(m, &r, "");
    assert_string_equal(released(&r), "abc");
    assert_int_equal(r.matched, 0);
    stop_free(m);
    sb_free(&r.out);

    /* The strings are copied. */
    char buf[8] = "zz";
    const char *dyn[1] = { buf };
    m = stop_make(dyn, 1);
    strcpy(buf, "qq");
    stop_run q = { { 0 }, 0 };
    feed(m, &q, "aqqzzb");
    assert_int_equal(q.matched, 1);
    assert_string_equal(released(&q), "aqq");
    stop_free(m);
    sb_free(&q.out);
    stop_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_reference),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_frequencies),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_top_k_one),
        cmocka_unit_test(test_top_k_edges),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_top_p_flat),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_frequency_presence_penalty),
        cmocka_unit_test(test_penalty_changes_sampling),
        cmocka_unit_test(test_nonfinite_logits),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_stop_one_feed),
        cmocka_unit_test(test_stop_spanning),
        cmocka_unit_test(test_stop_false_prefix),
        cmocka_unit_test(test_stop_prefix_of_other),
        cmocka_unit_test(test_stop_overlapping),
        cmocka_unit_test(test_stop_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
