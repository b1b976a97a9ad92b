/*
** test_ops.c — the fast CPU kernels against their scalar references, and the thread pool.
**
** Tolerances: a float dot product of length k rounded in a different order differs by
** about eps * sqrt(k) * sum|x_j w_j| (random-walk error growth); we allow 1e-6 * sqrt(k)
** times that sum (~8 eps sqrt(k)). rmsnorm: 1e-5 relative (the sum of squares is reordered).
** swiglu: 1e-5 relative + 1e-30 absolute (vector exp within a few ulp of expf).
** Every SIMD level this CPU supports is forced in turn (ops_simd.h), so the scalar, AVX2 and
** AVX-512 paths are all checked on an AVX-512 machine.
*/
#include "test_util.h"

#include "cpu/ops.h"
#include "cpu/ops_simd.h"
#include "cpu/ops_attn.h"

#include <math.h>
#include <stdatomic.h>
#include <uv.h>

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: good enough for test data, and explicit state keeps runs reproducible. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void fill(float *v, size_t n, float lo, float hi, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * (float)((rng_next(s) >> 40) * (1.0 / 16777216.0));
}

static float *alloc_f(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

static int n_levels(void) { return (int)ops_simd_detect() + 1; }

/* Max over elements of |y - ref| / (sqrt(k) * sum_j |x_j w_j|): must stay below 1e-6. */
static void check_matmul(const float *y, const float *x, const float *w, int m, int n, int k,
                         const char *what)
{
    float *ref = alloc_f((size_t)m * n);
    ops_ref_matmul(ref, x, w, m, n, k);
    for (int r = 0; r < m; r++) {
        for (int i = 0; i < n; i++) {
            double scale = 0;
            for (int j = 0; j < k; j++)
                scale += fabs((double)x[(size_t)r * k + j] * w[(size_t)i * k + j]);
            double tol = 1e-6 * sqrt((double)(k > 0 ? k : 1)) * scale + 1e-30;
            double d = fabs((double)y[(size_t)r * n + i] - ref[(size_t)r * n + i]);
            if (!(d <= tol)) {
                fail_msg("%s m=%d n=%d k=%d: y[%d][%d] = %.9g, ref %.9g (tol %.3g)", what, m, n, k,
                         r, i, y[(size_t)r * n + i], ref[(size_t)r * n + i], tol);
            }
        }
    }
    free(ref);
}

/* ---- matmul ---- */

static void test_matmul_levels(void **state)
{
    static const int ks[] = {1, 5, 15, 16, 17, 31, 33, 64, 100, 288, 301};
    static const int ns[] = {1, 3, 4, 5, 17, 33, 70};
    uint64_t s = 42;
    for (int nt = 1; nt <= 3; nt++) {
        threadpool *tp;
        assert_int_equal(tp_create(nt, &tp), INFER_OK);
        for (int lv = 0; lv < n_levels(); lv++) {
            for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
                for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++) {
                    int k = ks[a], n = ns[b];
                    for (int m = 1; m <= 17; m += 4) {
                        float *x = alloc_f((size_t)m * k), *w = alloc_f((size_t)n * k);
                        float *y = alloc_f((size_t)m * n);
                        fill(x, (size_t)m * k, -1, 1, &s);
                        fill(w, (size_t)n * k, -1, 1, &s);
                        ops_matmul_simd((ops_simd_level)lv, tp, y, x, w, m, n, k);
                        check_matmul(y, x, w, m, n, k, ops_simd_level_name((ops_simd_level)lv));
                        free(x);
                        free(w);
                        free(y);
                    }
                }
            }
        }
        tp_destroy(tp);
    }
}

/* Big enough to be threaded (MM_INLINE_MACS), odd n so the thread split is uneven. */
static void test_matmul_threaded_large(void **state)
{
    uint64_t s = 7;
    const int n = 1001, k = 771;
    threadpool *tp;
    assert_int_equal(tp_create(3, &tp), INFER_OK);
    for (int lv = 0; lv < n_levels(); lv++) {
        for (int m = 1; m <= 6; m++) {
            float *x = alloc_f((size_t)m * k), *w = alloc_f((size_t)n * k);
            float *y = alloc_f((size_t)m * n);
            fill(x, (size_t)m * k, -1, 1, &s);
            fill(w, (size_t)n * k, -1, 1, &s);
            ops_matmul_simd((ops_simd_level)lv, tp, y, x, w, m, n, k);
            check_matmul(y, x, w, m, n, k, ops_simd_level_name((ops_simd_level)lv));
            free(x);
            free(w);
            free(y);
        }
    }
    tp_destroy(tp);
}

/* The public entry point across the sgemm threshold, with W at a 4-byte (not 64-byte)
** offset as in an mmapped checkpoint. */
static void test_matmul_public_across_sgemm(void **state)
{
    uint64_t s = 99;
    const int n = 259, k = 293;
    threadpool *tp;
    assert_int_equal(tp_create(2, &tp), INFER_OK);
    float *wbuf = alloc_f((size_t)n * k + 1);
    float *w = wbuf + 1;
    fill(w, (size_t)n * k, -1, 1, &s);
    const int m_max = INFER_MAX(20, OPS_SGEMM_MIN_ROWS + 4);
    for (int m = 1; m <= m_max; m++) {
        float *x = alloc_f((size_t)m * k), *y = alloc_f((size_t)m * n);
        fill(x, (size_t)m * k, -1, 1, &s);
        ops_matmul(tp, y, x, w, m, n, k);
        check_matmul(y, x, w, m, n, k, m >= OPS_SGEMM_MIN_ROWS ? "sgemm" : "simd");
        ops_matmul_sgemm(tp, y, x, w, m, n, k);
        check_matmul(y, x, w, m, n, k, "sgemm forced");
        free(x);
        free(y);
    }
    free(wbuf);
    tp_destroy(tp);
}

/* A row's output is bitwise the same alone (m = 1) as inside a batch, and for any thread
** count: every element is accumulated in the same order whatever the blocking. */
static void test_matmul_batch_invariance(void **state)
{
    static const int shapes[][2] = {{103, 300}, {768, 768}, {37, 17}, {2051, 65}};
    uint64_t s = 5;
    threadpool *tps[3];
    for (int t = 0; t < 3; t++) assert_int_equal(tp_create(t + 1, &tps[t]), INFER_OK);
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        const int n = shapes[sh][0], k = shapes[sh][1], M = 19;   /* 2 blocks of 8 rows + 3 */
        float *x = alloc_f((size_t)M * k), *w = alloc_f((size_t)n * k);
        float *yb = alloc_f((size_t)M * n), *y1 = alloc_f((size_t)n);
        fill(x, (size_t)M * k, -1, 1, &s);
        fill(w, (size_t)n * k, -1, 1, &s);
        for (int lv = 0; lv < n_levels(); lv++) {
            for (int m = 2; m <= M; m++) {
                ops_matmul_simd((ops_simd_level)lv, tps[m % 3], yb, x, w, m, n, k);
                for (int r = 0; r < m; r++) {
                    ops_matmul_simd((ops_simd_level)lv, tps[(r + 1) % 3], y1, x + (size_t)r * k, w,
                                    1, n, k);
                    if (memcmp(y1, yb + (size_t)r * n, (size_t)n * sizeof *y1) != 0)
                        fail_msg("%s n=%d k=%d: row %d of m=%d differs from m=1",
                                 ops_simd_level_name((ops_simd_level)lv), n, k, r, m);
                }
            }
        }
        /* And through the public entry point, below the sgemm threshold. */
        for (int m = 2; m < OPS_SGEMM_MIN_ROWS; m++) {
            ops_matmul(tps[1], yb, x, w, m, n, k);
            for (int r = 0; r < m; r++) {
                ops_matmul(tps[2], y1, x + (size_t)r * k, w, 1, n, k);
                assert_memory_equal(y1, yb + (size_t)r * n, (size_t)n * sizeof *y1);
            }
        }
        free(x);
        free(w);
        free(yb);
        free(y1);
    }
    for (int t = 0; t < 3; t++) tp_destroy(tps[t]);
}

/* ---- rmsnorm, swiglu ---- */

static void test_rmsnorm(void **state)
{
    static const int dims[] = {1, 7, 8, 15, 16, 17, 31, 32, 33, 288, 300, 768, 4096};
    uint64_t s = 11;
    for (size_t a = 0; a < sizeof dims / sizeof dims[0]; a++) {
        const int dim = dims[a], m = 3;
        float *x = alloc_f((size_t)m * dim), *w = alloc_f((size_t)dim);
        float *y = alloc_f((size_t)m * dim), *ref = alloc_f((size_t)m * dim);
        fill(x, (size_t)m * dim, -3, 3, &s);
        fill(w, (size_t)dim, -2, 2, &s);
        for (int r = 0; r < m; r++)
            ops_ref_rmsnorm(ref + (size_t)r * dim, x + (size_t)r * dim, w, dim, 1e-5f);
        for (int lv = 0; lv < n_levels(); lv++) {
            ops_rmsnorm_level((ops_simd_level)lv, y, x, w, m, dim, 1e-5f);
            for (int i = 0; i < m * dim; i++) {
                if (!(fabsf(y[i] - ref[i]) <= 1e-5f * fabsf(ref[i]) + 1e-30f))
                    fail_msg("rmsnorm %s dim=%d [%d]: %.9g vs %.9g",
                             ops_simd_level_name((ops_simd_level)lv), dim, i, y[i], ref[i]);
            }
        }
        ops_rmsnorm(y, x, w, m, dim, 1e-5f);
        for (int i = 0; i < m * dim; i++)
            assert_true(fabsf(y[i] - ref[i]) <= 1e-5f * fabsf(ref[i]) + 1e-30f);
        free(x);
        free(w);
        free(y);
        free(ref);
    }
}

static void test_swiglu(void **state)
{
    static const int ns[] = {1, 7, 8, 9, 15, 16, 17, 100, 2048, 40001, 100003};
    uint64_t s = 13;
    threadpool *tp;
    assert_int_equal(tp_create(3, &tp), INFER_OK);
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        const int n = ns[a];
        float *g = alloc_f((size_t)n), *u = alloc_f((size_t)n);
        float *h = alloc_f((size_t)n), *ref = alloc_f((size_t)n);
        fill(g, (size_t)n, -30, 30, &s);
        fill(u, (size_t)n, -2, 2, &s);
        /* Extremes: exp overflow / underflow inside silu, and zero. */
        static const float ext[] = {-200.0f, -104.5f, -88.5f, -87.0f, 0.0f, 87.5f, 89.0f, 200.0f};
        for (int i = 0; i < n && i < 8; i++) g[i] = ext[i];
        ops_ref_swiglu(ref, g, u, n);
        for (int lv = 0; lv < n_levels(); lv++) {
            ops_swiglu_level((ops_simd_level)lv, tp, h, g, u, n);
            for (int i = 0; i < n; i++) {
                if (!(fabsf(h[i] - ref[i]) <= 1e-5f * fabsf(ref[i]) + 1e-30f))
                    fail_msg("swiglu %s n=%d [%d] g=%g: %.9g vs %.9g",
                             ops_simd_level_name((ops_simd_level)lv), n, i, g[i], h[i], ref[i]);
            }
        }
        ops_swiglu(tp, h, g, u, n);
        for (int i = 0; i < n; i++)
            assert_true(fabsf(h[i] - ref[i]) <= 1e-5f * fabsf(ref[i]) + 1e-30f);
        free(g);
        free(u);
        free(h);
        free(ref);
    }
    tp_destroy(tp);
}

/* Paged attention (ops_attn.c) at every level against a double-precision reference, over a
** pool whose blocks are handed out out of order, with grouped-query heads, head sizes with and
** without an AVX-512 path, and positions that end mid-block. Each row must also come out bit
** for bit the same computed alone as in the batch (batch invariance). */
static void check_attention(int n_heads, int n_kv, int hd, int bt)
{
    enum { ROWS = 3, LAYERS = 2, BLOCKS = 32 };
    static const int32_t pos[ROWS] = {0, 37, 70};
    const int kvd = n_kv * hd, layer = 1;
    uint64_t s = 77 + (uint64_t)hd;
    kv_pool pool;
    memset(&pool, 0, sizeof pool);
    pool.block_tokens = bt;
    pool.n_layers = LAYERS;
    pool.kv_dim = kvd;
    pool.n_blocks = BLOCKS;
    size_t nf = (size_t)BLOCKS * LAYERS * 2 * (size_t)bt * (size_t)kvd;
    pool.data = alloc_f(nf);
    fill(pool.data, nf, -1, 1, &s);
    /* each row's table: blocks taken from the end of the pool backwards, rows interleaved */
    int32_t tab[ROWS][BLOCKS];
    kv_seq seq[ROWS];
    const kv_seq *tables[ROWS];
    int next = BLOCKS - 1;
    for (int r = 0; r < ROWS; r++) {
        int nb = pos[r] / bt + 1;
        for (int i = 0; i < nb; i++) tab[r][i] = next--;
        assert_true(next >= -1);
        seq[r].blocks = tab[r];
        seq[r].n_blocks = seq[r].cap = nb;
        tables[r] = &seq[r];
    }
    int32_t bpos[ROWS];
    memcpy(bpos, pos, sizeof bpos);
    batch b;
    memset(&b, 0, sizeof b);
    b.n = ROWS;
    b.pos = bpos;
    b.tables = tables;
    const size_t qn = (size_t)ROWS * n_heads * hd;
    float *q = alloc_f(qn), *out = alloc_f(qn), *one = alloc_f(qn);
    fill(q, qn, -2, 2, &s);
    threadpool *tp;
    assert_int_equal(tp_create(3, &tp), INFER_OK);
    const int cap = 80;
    float *scores = alloc_f((size_t)3 * cap);
    attn_args a = {out, q, &b, &pool, layer, n_heads, n_kv, hd, cap};
    for (int lv = 0; lv < n_levels(); lv++) {
        ops_attention_level((ops_simd_level)lv, tp, &a, scores, cap);
        for (int r = 0; r < ROWS; r++) {
            for (int h = 0; h < n_heads; h++) {
                const int kvh = h / (n_heads / n_kv);
                const float *qh = q + ((size_t)r * n_heads + h) * hd;
                double sc[80], mx = -1e300, sum = 0;
                for (int t = 0; t <= pos[r]; t++) {
                    const float *k = kv_k(&pool, tab[r][t / bt], layer) + (size_t)(t % bt) * kvd + (size_t)kvh * hd;
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += (double)qh[i] * k[i];
                    sc[t] = d / sqrt((double)hd);
                    if (sc[t] > mx) mx = sc[t];
                }
                for (int t = 0; t <= pos[r]; t++) sum += (sc[t] = exp(sc[t] - mx));
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int t = 0; t <= pos[r]; t++)
                        o += sc[t] / sum * kv_v(&pool, tab[r][t / bt], layer)[(size_t)(t % bt) * kvd + (size_t)kvh * hd + i];
                    double got = out[((size_t)r * n_heads + h) * hd + i];
                    if (!(fabs(got - o) <= 1e-5))
                        fail_msg("attention %s heads %d/%d hd %d bt %d: row %d head %d [%d] = %.9g, ref %.9g",
                                 ops_simd_level_name((ops_simd_level)lv), n_heads, n_kv, hd, bt, r, h, i, got, o);
                }
            }
        }
        /* the last row alone: the same bits */
        batch b1 = b;
        b1.n = 1;
        b1.pos = bpos + ROWS - 1;
        b1.tables = tables + ROWS - 1;
        attn_args a1 = {one, q + (size_t)(ROWS - 1) * n_heads * hd, &b1, &pool, layer, n_heads, n_kv, hd, cap};
        ops_attention_level((ops_simd_level)lv, tp, &a1, scores, cap);
        assert_memory_equal(one, out + (size_t)(ROWS - 1) * n_heads * hd, (size_t)n_heads * hd * sizeof(float));
    }
    tp_destroy(tp);
    free(scores);
    free(q);
    free(out);
    free(one);
    free(pool.data);
}

static void test_attention(void **state)
{
    check_attention(12, 12, 64, 16);   /* stories110M */
    check_attention(9, 3, 64, 16);     /* SmolLM2-135M */
    check_attention(4, 2, 128, 32);
    check_attention(6, 2, 48, 8);
    check_attention(4, 4, 20, 16);     /* not a multiple of 16: plain path */
}

static void test_simd_name(void **state)
{
    const char *nm = ops_simd_name();
    assert_true(!strcmp(nm, "avx512") || !strcmp(nm, "avx2") || !strcmp(nm, "scalar"));
    print_message("SIMD level: %s\n", nm);
}

/* ---- thread pool ---- */

typedef struct tp_count {
    atomic_int hits[8];
    int expect_nth;
    atomic_int bad_nth;
    int slot[8];   /* plain writes by each ith: tp_run's return must order them (TSan) */
} tp_count;

static void count_fn(void *arg, int ith, int nth)
{
    tp_count *c = arg;
    if (nth != c->expect_nth) atomic_fetch_add(&c->bad_nth, 1);
    atomic_fetch_add(&c->hits[ith], 1);
    c->slot[ith]++;
}

static void test_threadpool_counts(void **state)
{
    for (int nt = 1; nt <= 3; nt++) {
        threadpool *tp;
        assert_int_equal(tp_create(nt, &tp), INFER_OK);
        assert_int_equal(tp_size(tp), nt);
        tp_count c;
        memset(&c, 0, sizeof c);
        c.expect_nth = nt;
        const int runs = 20000;
        for (int it = 0; it < runs; it++) {
            tp_run(tp, count_fn, &c);
            /* Each ith ran exactly once in this run, and its plain write is visible. */
            for (int i = 0; i < nt; i++) assert_int_equal(c.slot[i], it + 1);
        }
        for (int i = 0; i < nt; i++) assert_int_equal(atomic_load(&c.hits[i]), runs);
        for (int i = nt; i < 8; i++) assert_int_equal(atomic_load(&c.hits[i]), 0);
        assert_int_equal(atomic_load(&c.bad_nth), 0);
        tp_destroy(tp);
    }
}

/* Runs separated by pauses longer than the spin window exercise the sleep/wake path. */
static void test_threadpool_sleep_wake(void **state)
{
    threadpool *tp;
    assert_int_equal(tp_create(3, &tp), INFER_OK);
    tp_count c;
    memset(&c, 0, sizeof c);
    c.expect_nth = 3;
    for (int it = 0; it < 20; it++) {
        uv_sleep(it % 2 ? 2 : 0);
        tp_run(tp, count_fn, &c);
        tp_run(tp, count_fn, &c);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&c.hits[i]), 40);
    tp_destroy(tp);
}

/* A slow worker makes the caller give up spinning and sleep until the last worker signals
** it (tp_wait); the runs right after go through the no-spin path of that worker. */
static void slow_last_fn(void *arg, int ith, int nth)
{
    tp_count *c = arg;
    if (ith == nth - 1 && atomic_load(&c->hits[0]) % 3 == 0) uv_sleep(1);
    count_fn(arg, ith, nth);
}

static void test_threadpool_slow_worker(void **state)
{
    for (int nt = 2; nt <= 3; nt++) {
        threadpool *tp;
        assert_int_equal(tp_create(nt, &tp), INFER_OK);
        tp_count c;
        memset(&c, 0, sizeof c);
        c.expect_nth = nt;
        for (int it = 0; it < 60; it++) {
            tp_run(tp, slow_last_fn, &c);
            for (int i = 0; i < nt; i++) assert_int_equal(c.slot[i], it + 1);
        }
        tp_destroy(tp);
    }
}

/* tp_park between runs (as before an sgemm): workers sleep, the next run wakes them. */
static void test_threadpool_park(void **state)
{
    for (int nt = 1; nt <= 3; nt++) {
        threadpool *tp;
        assert_int_equal(tp_create(nt, &tp), INFER_OK);
        tp_count c;
        memset(&c, 0, sizeof c);
        c.expect_nth = nt;
        for (int it = 0; it < 200; it++) {
            tp_run(tp, count_fn, &c);
            if (it % 2) tp_park(tp);
            if (it % 50 == 0) uv_sleep(1);
        }
        for (int i = 0; i < nt; i++) assert_int_equal(atomic_load(&c.hits[i]), 200);
        tp_destroy(tp);
    }
    tp_park(NULL);
}

static void test_threadpool_create_destroy(void **state)
{
    for (int it = 0; it < 50; it++) {
        threadpool *tp;
        assert_int_equal(tp_create(1 + it % 4, &tp), INFER_OK);
        if (it % 2) {
            tp_count c;
            memset(&c, 0, sizeof c);
            c.expect_nth = 1 + it % 4;
            tp_run(tp, count_fn, &c);
            assert_int_equal(atomic_load(&c.hits[0]), 1);
        }
        tp_destroy(tp);
    }
    tp_destroy(NULL);
    threadpool *tp = (threadpool *)1;
    assert_int_equal(tp_create(0, &tp), INFER_EINVAL);
    assert_null(tp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_name),
        cmocka_unit_test(test_threadpool_counts),
        cmocka_unit_test(test_threadpool_sleep_wake),
        cmocka_unit_test(test_threadpool_slow_worker),
        cmocka_unit_test(test_threadpool_park),
        cmocka_unit_test(test_threadpool_create_destroy),
        cmocka_unit_test(test_matmul_levels),
        cmocka_unit_test(test_matmul_threaded_large),
        cmocka_unit_test(test_matmul_public_across_sgemm),
        cmocka_unit_test(test_matmul_batch_invariance),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
