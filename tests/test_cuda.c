/*
** test_cuda.c — the GPU backend: every kernel against its plain-C reference, then whole models
** through the public API (the golden cases, GPU == CPU, batched == alone). Without a GPU (or
** in a build without CUDA) every test prints why and is skipped.
**
** Bounds (relative: max |gpu - ref| / max |ref|): fp32 kernels 1e-5 against references
** computed in double on the same inputs (the cache and weight values as the device holds
** them, so storage rounding is not counted); int8 products 1e-5 against a reference on the
** same quantized activations, 2e-2 against unquantized ones; argmax, gathers and
** dequantization exact.
*/
#include <infer.h>

#ifdef INFER_HAVE_CUDA
#include "golden_util.h"

#include <cuda_runtime.h>

#include "../kernels/kernels.h"
#include "dtype.h"

static int have_gpu = -1;
static char why_not[512];

static int gpu(void)
{
    if (have_gpu < 0) {
        infer_session_params sp;
        infer_session_params_init(&sp);
        sp.backend = INFER_BACKEND_CUDA;
        sp.threading = INFER_THREADING_CALLER;
        infer_session *s = NULL;
        infer_status st = infer_session_create(&sp, &s);
        have_gpu = st == INFER_OK;
        if (!have_gpu) snprintf(why_not, sizeof why_not, "%s", infer_last_error(NULL));
        infer_session_destroy(s);
    }
    if (!have_gpu) printf("    skipped: no usable GPU (%s)\n", why_not);
    return have_gpu;
}
#define NEED_GPU()          \
    do {                    \
        if (!gpu()) skip(); \
    } while (0)

/* Tensor parallelism: a session over GPUs 0 and 1 (needs 2 GPUs and a build with NCCL). */
static int have_tp = -1;
static int tp2(void)
{
    if (have_tp < 0) {
        infer_session_params sp;
        infer_session_params_init(&sp);
        sp.backend = INFER_BACKEND_CUDA;
        sp.threading = INFER_THREADING_CALLER;
        sp.n_devices = 2;
        sp.devices[0] = 0;
        sp.devices[1] = 1;
        infer_session *s = NULL;
        infer_status st = infer_session_create(&sp, &s);
        have_tp = st == INFER_OK;
        if (!have_tp) snprintf(why_not, sizeof why_not, "%s", infer_last_error(NULL));
        infer_session_destroy(s);
    }
    if (!have_tp) printf("    skipped: no 2-GPU tensor-parallel session (%s)\n", why_not);
    return have_tp;
}
#define NEED_TP()           \
    do {                    \
        if (!tp2()) skip(); \
    } while (0)

#define CK(x) assert_int_equal((int)(x), 0)

static uint64_t rs = 88172645463325252ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static void *dup_dev(const void *h, size_t bytes)
{
    void *d = NULL;
    CK(cudaMalloc(&d, bytes));
    CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

static void *poisoned(size_t bytes)
{
    void *d = NULL;
    CK(cudaMalloc(&d, bytes));
    CK(cudaMemset(d, 0xff, bytes)); /* NaN as floats: an unwritten output cannot pass */
    return d;
}

static float *to_host(const void *d, size_t n)
{
    float *h = malloc(n * sizeof(float));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

static double rel_err(const float *got, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= num)) num = e; /* NaN propagates */
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return den > 0 ? num / den : num;
}

/* Host value of element i of a device-typed array. */
static float host_elem(const void *p, size_t i, int t)
{
    if (t == KT_F16) return f16_to_f32(((const uint16_t *)p)[i]);
    if (t == KT_BF16) return bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}
static void host_store(void *p, size_t i, int t, float v)
{
    if (t == KT_F16) ((uint16_t *)p)[i] = f32_to_f16(v);
    else if (t == KT_BF16) ((uint16_t *)p)[i] = f32_to_bf16(v);
    else ((float *)p)[i] = v;
}

/* ---------------------------------------------------------------- kernels */

static void test_rmsnorm(void **state)
{
    NEED_GPU();
    int rows = 5, n = 1000;
    float *x = malloc(sizeof(float) * (size_t)(rows * n)), *a = malloc(sizeof(float) * (size_t)(rows * n)),
          *w = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < rows * n; i++) x[i] = frand() * 3, a[i] = frand();
    for (int i = 0; i < n; i++) w[i] = frand();
    int32_t idx[3] = { 4, 0, 2 };
    float *dx = dup_dev(x, sizeof(float) * (size_t)(rows * n)), *da = dup_dev(a, sizeof(float) * (size_t)(rows * n));
    float *dw = dup_dev(w, sizeof(float) * (size_t)n), *dout = poisoned(sizeof(float) * (size_t)(rows * n));
    int32_t *didx = dup_dev(idx, sizeof idx);
    CK(k_rmsnorm(NULL, dout, KT_F32, dx, da, dw, didx, 3, n, 1e-5f));
    float *got = to_host(dout, (size_t)(3 * n)), *gx = to_host(dx, (size_t)(rows * n));
    double *ref = malloc(sizeof(double) * (size_t)(3 * n));
    for (int r = 0; r < 3; r++) {
        const float *xr = x + idx[r] * n, *ar = a + idx[r] * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += ((double)xr[i] + ar[i]) * ((double)xr[i] + ar[i]);
        double inv = 1.0 / sqrt(ss / n + 1e-5);
        for (int i = 0; i < n; i++) {
            ref[r * n + i] = ((double)xr[i] + ar[i]) * inv * w[i];
            assert_true(fabsf(gx[idx[r] * n + i] - (xr[i] + ar[i])) < 1e-6f); /* residual updated */
        }
    }
    double e = rel_err(got, ref, (size_t)(3 * n));
    printf("    rmsnorm (+residual, gathered rows): rel err %.2e (bound 1e-5)\n", e);
    assert_true(e <= 1e-5);
    free(x); free(a); free(w); free(got); free(gx); free(ref);
    cudaFree(dx); cudaFree(da); cudaFree(dw); cudaFree(dout); cudaFree(didx);
}

static void test_swiglu_argmax(void **state)
{
    NEED_GPU();
    int rows = 3, H = 777, V = 5000;
    float *gu = malloc(sizeof(float) * (size_t)(rows * 2 * H));
    for (int i = 0; i < rows * 2 * H; i++) gu[i] = frand() * 4;
    float *dgu = dup_dev(gu, sizeof(float) * (size_t)(rows * 2 * H)), *dh = poisoned(sizeof(float) * (size_t)(rows * H));
    CK(k_swiglu(NULL, dh, KT_F32, dgu, rows, H));
    float *got = to_host(dh, (size_t)(rows * H));
    double *ref = malloc(sizeof(double) * (size_t)(rows * H));
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < H; i++) {
            double g = gu[r * 2 * H + i], u = gu[r * 2 * H + H + i];
            ref[r * H + i] = g / (1 + exp(-g)) * u;
        }
    double e = rel_err(got, ref, (size_t)(rows * H));
    printf("    swiglu: rel err %.2e (bound 1e-5)\n", e);
    assert_true(e <= 1e-5);

    /* argmax: ties go to the lowest index; -inf rows and late maxima */
    float *lg = malloc(sizeof(float) * (size_t)(4 * V));
    for (int i = 0; i < 4 * V; i++) lg[i] = frand();
    lg[0 * V + 4000] = 5; lg[0 * V + 1234] = 5;     /* tie: 1234 */
    lg[1 * V + V - 1] = 9;                          /* the last one */
    for (int i = 0; i < V; i++) lg[2 * V + i] = -INFINITY;
    lg[2 * V + 77] = -1e30f;
    lg[3 * V + 0] = 3; lg[3 * V + 1] = 3;           /* tie at the start: 0 */
    float *dl = dup_dev(lg, sizeof(float) * (size_t)(4 * V));
    int32_t *dids = poisoned(16), ids[4];
    void *scratch = NULL;
    CK(cudaMalloc(&scratch, k_argmax_scratch(4)));
    CK(cudaMemset(scratch, 0, k_argmax_scratch(4)));
    CK(k_argmax(NULL, dids, scratch, dl, 4, V));
    CK(k_argmax(NULL, dids, scratch, dl, 4, V)); /* the scratch is left ready for the next call */
    CK(cudaMemcpy(ids, dids, sizeof ids, cudaMemcpyDeviceToHost));
    assert_int_equal(ids[0], 1234);
    assert_int_equal(ids[1], V - 1);
    assert_int_equal(ids[2], 77);
    assert_int_equal(ids[3], 0);
    free(gu); free(got); free(ref); free(lg);
    cudaFree(dgu); cudaFree(dh); cudaFree(dl); cudaFree(dids); cudaFree(scratch);
}

/* Random weights of a device type, with the matching host copy as floats. */
static void make_weights(int type, int64_t n, int64_t k, kmat *w, float *hw)
{
    memset(w, 0, sizeof *w);
    w->type = type;
    w->n = n;
    w->k = k;
    float *f = malloc(sizeof(float) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++) f[i] = frand() * 0.5f;
    if (type == KT_Q8_0 || type == KT_Q4_0) {
        size_t nb = (size_t)(k / 32), qrow = type == KT_Q8_0 ? (size_t)k : (size_t)k / 2;
        uint8_t *q = malloc((size_t)n * qrow);
        uint16_t *d = malloc((size_t)n * nb * 2);
        size_t bs = dtype_block_bytes(type == KT_Q8_0 ? DT_Q8_0 : DT_Q4_0);
        uint8_t *blk = malloc(nb * bs);
        for (int64_t r = 0; r < n; r++) {
            quantize_row(type == KT_Q8_0 ? DT_Q8_0 : DT_Q4_0, f + r * k, blk, k);
            dequantize_row(type == KT_Q8_0 ? DT_Q8_0 : DT_Q4_0, blk, hw + r * k, k);
            for (size_t j = 0; j < nb; j++) {
                memcpy(&d[(size_t)r * nb + j], blk + j * bs, 2);
                memcpy(q + (size_t)r * qrow + j * (qrow / nb), blk + j * bs + 2, qrow / nb);
            }
        }
        w->q = dup_dev(q, (size_t)n * qrow);
        w->d = dup_dev(d, (size_t)n * nb * 2);
        free(q); free(d); free(blk);
    } else {
        size_t es = type == KT_F32 ? 4 : 2;
        void *h = malloc((size_t)(n * k) * es);
        for (int64_t i = 0; i < n * k; i++) {
            host_store(h, (size_t)i, type, f[i]);
            hw[i] = host_elem(h, (size_t)i, type);
        }
        w->q = dup_dev(h, (size_t)(n * k) * es);
        free(h);
    }
    free(f);
}

/* int8 quantization of x as k_quantize_x does it, dequantized back (for the exact reference). */
static void quantize_x_host(const float *x, float *xd, int64_t k)
{
    for (int64_t b = 0; b < k / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        float d = amax / 127.0f;
        for (int j = 0; j < 32; j++) xd[b * 32 + j] = d > 0 ? d * (float)(int)rintf(x[b * 32 + j] / d) : 0.0f;
    }
}

/* The fused modes, for m rows: norm (RMSNorm-scale x first), pair (silu(gate) * up), accumulate
** (y += result). Reference in double on the device's weight values (and, for int8 kernels, on x
** quantized as the device does it). Row 0 must not depend on m (batch invariance). */
static void check_gemv_mode(int type, int64_t n, int64_t k, int norm, int pair, int acc)
{
    kmat w;
    float *hw = malloc(sizeof(float) * (size_t)(n * k));
    make_weights(type, n, k, &w, hw);
    int M = K_GEMV_MAX_ROWS, quant = type == KT_Q8_0 || type == KT_Q4_0;
    int64_t n_out = pair ? n / 2 : n;
    float *x = malloc(sizeof(float) * (size_t)(M * k)), *xn = malloc(sizeof(float) * (size_t)(M * k));
    float *xd = malloc(sizeof(float) * (size_t)(M * k)), *g = malloc(sizeof(float) * (size_t)k);
    float *y0 = malloc(sizeof(float) * (size_t)(M * n_out));
    for (int64_t i = 0; i < M * k; i++) x[i] = frand() * 2;
    for (int64_t i = 0; i < k; i++) g[i] = 1 + frand() * 0.5f;
    for (int64_t i = 0; i < M * n_out; i++) y0[i] = frand();
    for (int r = 0; r < M; r++) {
        double ss = 0;
        for (int64_t i = 0; i < k; i++) ss += (double)x[r * k + i] * x[r * k + i];
        float inv = 1.0f / sqrtf((float)(ss / (double)k) + 1e-5f);
        for (int64_t i = 0; i < k; i++) xn[r * k + i] = norm ? x[r * k + i] * inv * g[i] : x[r * k + i];
        if (quant) quantize_x_host(xn + r * k, xd + r * k, k);
        else memcpy(xd + r * k, xn + r * k, sizeof(float) * (size_t)k);
    }
    float *dx = dup_dev(x, sizeof(float) * (size_t)(M * k)), *dg = dup_dev(g, sizeof(float) * (size_t)k);
    void *dxq = poisoned(k_xq_bytes(M, k));
    float *first = NULL;
    double worst = 0, worst_unq = 0;
    for (int m = 1; m <= M; m++) {
        float *dy = acc ? dup_dev(y0, sizeof(float) * (size_t)(m * n_out)) : poisoned(sizeof(float) * (size_t)(m * n_out));
        if (quant) CK(k_quantize_x(NULL, dxq, dx, norm ? dg : NULL, 1e-5f, m, k));
        gemv_args ga = { .y = dy, .x = dx, .xq = dxq, .norm = norm && !quant ? dg : NULL, .eps = 1e-5f,
                         .accumulate = acc, .pair = pair, .m = m };
        CK(k_gemv(NULL, &w, &ga));
        float *y = to_host(dy, (size_t)(m * n_out));
        double *ref = malloc(sizeof(double) * (size_t)(m * n_out)), *refu = malloc(sizeof(double) * (size_t)(m * n_out));
        for (int r = 0; r < m; r++)
            for (int64_t o = 0; o < n_out; o++) {
                double s[2] = { 0, 0 }, su[2] = { 0, 0 };
                for (int h = 0; h < (pair ? 2 : 1); h++)
                    for (int64_t i = 0; i < k; i++) {
                        s[h] += (double)xd[r * k + i] * hw[(o + h * n_out) * k + i];
                        su[h] += (double)xn[r * k + i] * hw[(o + h * n_out) * k + i];
                    }
                if (pair) {
                    s[0] = s[0] / (1 + exp(-s[0])) * s[1];
                    su[0] = su[0] / (1 + exp(-su[0])) * su[1];
                }
                ref[r * n_out + o] = s[0] + (acc ? y0[r * n_out + o] : 0);
                refu[r * n_out + o] = su[0] + (acc ? y0[r * n_out + o] : 0);
            }
        worst = fmax(worst, rel_err(y, ref, (size_t)(m * n_out)));
        worst_unq = fmax(worst_unq, rel_err(y, refu, (size_t)(m * n_out)));
        if (m == 1) first = y;
        else {
            assert_memory_equal(y, first, sizeof(float) * (size_t)n_out);
            free(y);
        }
        free(ref); free(refu);
        cudaFree(dy);
    }
    /* int8 + norm: the device's rsqrtf scale can move a quant by one step against the host's */
    double bound = quant && norm ? 1e-3 : 1e-5;
    printf("    gemv %-4s %5lldx%-5lld m=1..%d%s%s%s: rel err %.2e (bound %.0e)", type == KT_Q8_0 ? "q8_0" : type == KT_Q4_0 ?
           "q4_0" : type == KT_F16 ? "f16" : type == KT_BF16 ? "bf16" : "f32", (long long)n, (long long)k, M,
           norm ? " +norm" : "", pair ? " +swiglu" : "", acc ? " +residual" : "", worst, bound);
    if (quant) printf("; vs unquantized x %.2e (bound 2e-2)", worst_unq);
    printf("\n");
    assert_true(worst <= bound);
    assert_true(worst_unq <= 2e-2);
    free(first); free(hw); free(x); free(xn); free(xd); free(g); free(y0);
    cudaFree(dx); cudaFree(dg); cudaFree(dxq); cudaFree(w.q); cudaFree(w.d);
}

static void check_gemv(int type, int64_t n, int64_t k)
{
    check_gemv_mode(type, n, k, 0, 0, 0);
}

static void test_gemv(void **state)
{
    NEED_GPU();
    check_gemv(KT_F32, 300, 172);  /* k not a multiple of 8: the scalar path */
    check_gemv(KT_F32, 515, 1024);
    check_gemv(KT_F16, 515, 1024);
    check_gemv(KT_BF16, 515, 2048);
    check_gemv(KT_Q8_0, 515, 2048);
    check_gemv(KT_Q4_0, 515, 2048);
    check_gemv_mode(KT_BF16, 1030, 2048, 1, 1, 0); /* the gate|up product of a decode step */
    check_gemv_mode(KT_BF16, 515, 2048, 0, 0, 1);  /* O / down with the residual */
    check_gemv_mode(KT_F32, 344, 172, 1, 1, 1);    /* scalar path */
    check_gemv_mode(KT_F16, 130, 17408, 1, 1, 0);  /* k over two passes of a 16-bit row block */
    check_gemv_mode(KT_F16, 130, 2056, 1, 1, 1);   /* fusions without a row-block kernel: gemv_dense */
    check_gemv_mode(KT_BF16, 77, 7168, 0, 0, 1);   /* a rank's down product (k = 7168, loads past k skipped) */
    check_gemv_mode(KT_Q8_0, 1030, 2048, 1, 1, 0);
    check_gemv_mode(KT_Q4_0, 515, 2048, 1, 0, 1);
}

static void test_embed_dequant(void **state)
{
    NEED_GPU();
    int types[] = { KT_F32, KT_F16, KT_BF16, KT_Q8_0, KT_Q4_0 };
    for (int ti = 0; ti < 5; ti++) {
        int64_t n = 100, k = 256;
        kmat w;
        float *hw = malloc(sizeof(float) * (size_t)(n * k));
        make_weights(types[ti], n, k, &w, hw);
        int32_t tok[4] = { 7, 99, 0, 7 };
        int32_t *dt = dup_dev(tok, sizeof tok);
        float *de = poisoned(sizeof(float) * (size_t)(4 * k));
        CK(k_embed(NULL, de, &w, dt, 4, 0));
        float *e = to_host(de, (size_t)(4 * k));
        for (int r = 0; r < 4; r++) assert_memory_equal(e + r * k, hw + tok[r] * k, sizeof(float) * (size_t)k);
        free(e);
        /* a tensor-parallel rank holding tokens 5..104 as rows 0..99: token 0 is another rank's */
        CK(k_embed(NULL, de, &w, dt, 4, 5));
        e = to_host(de, (size_t)(4 * k));
        for (int r = 0; r < 4; r++)
            for (int64_t i = 0; i < k; i++) assert_true(e[r * k + i] == (tok[r] >= 5 ? hw[(tok[r] - 5) * k + i] : 0.0f));
        if (types[ti] == KT_Q8_0 || types[ti] == KT_Q4_0) {
            uint16_t *dd = poisoned((size_t)(n * k) * 2), *hd = malloc((size_t)(n * k) * 2);
            CK(k_dequant(NULL, dd, KT_BF16, &w));
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(hd, dd, (size_t)(n * k) * 2, cudaMemcpyDeviceToHost));
            for (int64_t i = 0; i < n * k; i++) assert_int_equal(hd[i], f32_to_bf16(hw[i]));
            free(hd);
            cudaFree(dd);
        }
        free(hw); free(e);
        cudaFree(dt); cudaFree(de); cudaFree(w.q); cudaFree(w.d);
    }
    printf("    embedding gather (f32, f16, bf16, q8_0, q4_0; whole table and a vocabulary slice) and q8_0/q4_0 -> "
           "bf16 dequantization: exact\n");
}

/* RoPE + KV store, then attention over the stored cache, against a double reference. */
static void check_attention(int kv_type, int n_heads, int n_kv, int hd, int split_len)
{
    const int L = 2, layer = 1, bt = 16, kvd = n_kv * hd, qd = n_heads * hd, width = qd + 2 * kvd;
    const int n_blocks = 40;
    /* two sequences: A has 45 cached positions and decodes one row (pos 45); B prefills rows
    ** at positions 0..20 of its own (the whole prompt this step) */
    const int rowsA = 1, rowsB = 21, rows = rowsA + rowsB;
    int32_t btA[3] = { 17, 3, 30 }, btB[2] = { 5, 22 };
    int32_t pos[22], slot[22];
    pos[0] = 45;
    slot[0] = btA[45 / bt] * bt + 45 % bt;
    for (int r = 0; r < rowsB; r++) {
        pos[1 + r] = r;
        slot[1 + r] = btB[r / bt] * bt + r % bt;
    }
    size_t es = kv_type == KT_F32 ? 4 : 2, cache_elems = (size_t)n_blocks * L * 2 * bt * kvd;
    void *hcache = malloc(cache_elems * es);
    for (size_t i = 0; i < cache_elems; i++) host_store(hcache, i, kv_type, frand());
    void *dcache = dup_dev(hcache, cache_elems * es);
    float *qkv = malloc(sizeof(float) * (size_t)(rows * width)), *bias = malloc(sizeof(float) * (size_t)width);
    for (int i = 0; i < rows * width; i++) qkv[i] = frand();
    for (int i = 0; i < width; i++) bias[i] = frand() * 0.1f;
    float *freqs = malloc(sizeof(float) * (size_t)(hd / 2));
    for (int i = 0; i < hd / 2; i++) freqs[i] = powf(10000.0f, -2.0f * (float)i / (float)hd);
    kv_geom kv = { dcache, kv_type, L, bt, kvd };
    float *dqkv = dup_dev(qkv, sizeof(float) * (size_t)(rows * width)), *dbias = dup_dev(bias, sizeof(float) * (size_t)width);
    float *dfreq = dup_dev(freqs, sizeof(float) * (size_t)(hd / 2)), *dq = poisoned(sizeof(float) * (size_t)(rows * qd));
    int32_t *dpos = dup_dev(pos, sizeof pos), *dslot = dup_dev(slot, sizeof slot);
    CK(k_rope_store(NULL, dq, dqkv, dbias, dpos, dslot, dfreq, 1, rows, n_heads, n_kv, hd, &kv, layer));
    float *q = to_host(dq, (size_t)(rows * qd));
    CK(cudaMemcpy(hcache, dcache, cache_elems * es, cudaMemcpyDeviceToHost));

    /* RoPE (neox) and the stored K/V */
    double rope_err = 0;
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < n_heads + n_kv; h++)
            for (int i = 0; i < hd / 2; i++) {
                const float *row = qkv + r * width;
                int c0 = h * hd + i, c1 = c0 + hd / 2;
                double v0 = row[c0] + bias[c0], v1 = row[c1] + bias[c1], a = (double)pos[r] * freqs[i];
                double o0 = v0 * cos(a) - v1 * sin(a), o1 = v0 * sin(a) + v1 * cos(a);
                float g0, g1;
                if (h < n_heads) {
                    g0 = q[r * qd + c0];
                    g1 = q[r * qd + c1];
                } else {
                    size_t base = (((size_t)(slot[r] / bt) * L + layer) * 2) * bt * kvd + (size_t)(slot[r] % bt) * kvd;
                    g0 = host_elem(hcache, base + (size_t)(c0 - qd), kv_type);
                    g1 = host_elem(hcache, base + (size_t)(c1 - qd), kv_type);
                }
                rope_err = fmax(rope_err, fmax(fabs(g0 - o0), fabs(g1 - o1)));
            }
    double store_bound = kv_type == KT_F32 ? 1e-5 : 2e-2; /* storage rounding of the cache type */
    printf("    rope+store (%s cache): max abs err %.2e (bound %.0e)\n",
           kv_type == KT_F32 ? "f32" : kv_type == KT_F16 ? "f16" : "bf16", rope_err, store_bound);
    assert_true(rope_err <= store_bound);

    /* attention: tiles of the prefill rows, decode row alone */
    int G = n_heads / n_kv, tile_rows = k_attn_tile_rows(G);
    int32_t tiles[3 * 22], n_tiles = 0;
    tiles[0] = 0; tiles[1] = 1; tiles[2] = 0; n_tiles = 1;
    for (int r0 = 0; r0 < rowsB; r0 += tile_rows) {
        tiles[3 * n_tiles] = 1 + r0;
        tiles[3 * n_tiles + 1] = INFER_MIN(tile_rows, rowsB - r0);
        tiles[3 * n_tiles + 2] = 1;
        n_tiles++;
    }
    int32_t bt_all[5] = { btA[0], btA[1], btA[2], btB[0], btB[1] }, bt_off[2] = { 0, 3 };
    int maxctx = 46, n_splits = (maxctx + split_len - 1) / split_len;
    int32_t *dtiles = dup_dev(tiles, sizeof(int32_t) * (size_t)(3 * n_tiles)), *dbt = dup_dev(bt_all, sizeof bt_all);
    int32_t *dbto = dup_dev(bt_off, sizeof bt_off);
    float *po = poisoned(sizeof(float) * (size_t)(rows * n_heads * n_splits * hd));
    float *pml = poisoned(sizeof(float) * (size_t)(rows * n_heads * n_splits * 2));
    float *dout = poisoned(sizeof(float) * (size_t)(rows * qd));
    attn_desc ad = { .q = dq, .tiles = dtiles, .pos = dpos, .bt = dbt, .bt_off = dbto, .part_o = po, .part_ml = pml,
                     .n_tiles = n_tiles, .rows = rows, .tile_rows = tile_rows, .n_splits = n_splits,
                     .split_len = split_len, .n_heads = n_heads, .n_kv_heads = n_kv, .head_dim = hd,
                     .scale = 1.0f / sqrtf((float)hd) };
    CK(k_attention(NULL, &ad, &kv, layer));
    CK(k_attn_combine(NULL, dout, KT_F32, &ad));
    float *out = to_host(dout, (size_t)(rows * qd));
    double *ref = calloc((size_t)(rows * qd), sizeof(double));
    for (int r = 0; r < rows; r++) {
        const int32_t *tab = r < rowsA ? btA : btB;
        for (int h = 0; h < n_heads; h++) {
            int kh = h / G, np = pos[r] + 1;
            double *sc = malloc(sizeof(double) * (size_t)np), mx = -1e300, sum = 0;
            for (int p = 0; p < np; p++) {
                size_t base = (((size_t)tab[p / bt] * L + layer) * 2) * bt * kvd + (size_t)(p % bt) * kvd + (size_t)kh * hd;
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)q[r * qd + h * hd + d] * host_elem(hcache, base + (size_t)d, kv_type);
                sc[p] = s / sqrt((double)hd);
                mx = fmax(mx, sc[p]);
            }
            for (int p = 0; p < np; p++) sum += (sc[p] = exp(sc[p] - mx));
            for (int p = 0; p < np; p++) {
                size_t base = (((size_t)tab[p / bt] * L + layer) * 2 + 1) * bt * kvd + (size_t)(p % bt) * kvd + (size_t)kh * hd;
                for (int d = 0; d < hd; d++) ref[r * qd + h * hd + d] += sc[p] / sum * host_elem(hcache, base + (size_t)d, kv_type);
            }
            free(sc);
        }
    }
    double e = rel_err(out, ref, (size_t)(rows * qd));
    printf("    attention heads %d/%d dim %d, %d splits of %d: rel err %.2e (bound 1e-5)\n", n_heads, n_kv, hd,
           n_splits, split_len, e);
    assert_true(e <= 1e-5);
    free(hcache); free(qkv); free(bias); free(freqs); free(q); free(out); free(ref);
    cudaFree(dcache); cudaFree(dqkv); cudaFree(dbias); cudaFree(dfreq); cudaFree(dq); cudaFree(dpos);
    cudaFree(dslot); cudaFree(dtiles); cudaFree(dbt); cudaFree(dbto); cudaFree(po); cudaFree(pml); cudaFree(dout);
}

static void test_attention(void **state)
{
    NEED_GPU();
    check_attention(KT_F32, 8, 4, 8, 64);     /* stories260K's shape */
    check_attention(KT_F32, 8, 2, 64, 32);    /* several splits */
    check_attention(KT_BF16, 32, 8, 128, 32); /* Llama-3's group of 4 */
    check_attention(KT_F16, 4, 4, 128, 64);
}

/* ---------------------------------------------------------------- models */

static void test_golden_gpu(void **state)
{
    NEED_GPU();
    golden_model(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", "golden/stories260K.greedy.txt",
                 "golden/stories260K.logits.txt", 1);
    golden_model(INFER_BACKEND_CUDA, "models/llama-2-tiny-random.f32.bin", NULL,
                 "golden/llama-2-tiny-random.greedy.txt", "golden/llama-2-tiny-random.logits.txt", 0);
    golden_model(INFER_BACKEND_CUDA, "models/stories260K.gguf", NULL, "golden/stories260K.greedy.txt",
                 "golden/stories260K.logits.txt", 1);
}

/* Sampling settings of run_prompts' requests (top_k 0 = greedy). */
static int g_top_k;
static float g_temp, g_top_p = 1.0f;

/* Generate for n prompts (greedy, or as g_*), all submitted at once (batched) or one at a time. */
static void run_prompts(infer_backend be, const char *model, const char *tok, const char **prompts, int n, int batched,
                        int32_t out[][48], int max_tokens)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    sp.backend = be;
    if (be == INFER_BACKEND_CUDA) golden_devices(&sp);
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tok ? shared_path(tok) : NULL;
    assert_int_equal(infer_model_load(s, "m", NULL, shared_path(model), &mp), INFER_OK);
    infer_request_id ids[32];
    int count[32] = { 0 }, done = 0;
    for (int i = 0; i < n; i++) {
        infer_request rq;
        infer_request_init(&rq);
        rq.model = "m";
        rq.prompt = prompts[i];
        rq.temperature = g_top_k ? g_temp : 0.0f;
        rq.top_k = g_top_k;
        rq.top_p = g_top_p;
        rq.min_p = 0.0f;
        rq.seed = 1234 + (uint64_t)i;
        rq.max_tokens = max_tokens;
        rq.ignore_eos = 1;
        assert_int_equal(infer_submit(s, &rq, &ids[i]), INFER_OK);
        if (batched && i < n - 1) continue;
        while (done < i + 1) {
            infer_event ev[64];
            int k = infer_poll(s, ev, 64, 10000);
            assert_true(k > 0);
            for (int e = 0; e < k; e++) {
                int j = 0;
                while (ids[j] != ev[e].id) j++;
                if (ev[e].type == INFER_EVENT_TOKEN) out[j][count[j]++] = ev[e].token;
                if (ev[e].type == INFER_EVENT_DONE) {
                    assert_int_equal(ev[e].status, INFER_OK);
                    done++;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) assert_int_equal(count[i], max_tokens);
    infer_session_destroy(s);
}

static void test_batched_equals_alone(void **state)
{
    NEED_GPU();
    const char *prompts[16];
    char buf[16][64];
    const char *starts[] = { "Once upon a time", "The little dog", "Lily and Tom", "One day a bird", "The sun was" };
    for (int i = 0; i < 16; i++) {
        snprintf(buf[i], sizeof buf[i], "%s%s", starts[i % 5], i >= 5 ? (i >= 10 ? " went to the park" : " saw") : "");
        prompts[i] = buf[i];
    }
    static int32_t alone[16][48], batched[16][48], cpu[16][48];
    run_prompts(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", prompts, 16, 0, alone, 40);
    run_prompts(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", prompts, 16, 1, batched, 40);
    run_prompts(INFER_BACKEND_CPU, "models/stories260K.bin", "models/tok512.bin", prompts, 16, 1, cpu, 40);
    for (int i = 0; i < 16; i++) {
        assert_memory_equal(alone[i], batched[i], sizeof(int32_t) * 40);
        assert_memory_equal(alone[i], cpu[i], sizeof(int32_t) * 40);
    }
    printf("    16 prompts x 40 tokens: GPU batched == GPU alone == CPU\n");
}

/* Top-k sampling on the device (top_k <= 64) and on the host (larger top_k, full logits back)
** against the CPU backend: the same seeded draws, so the same tokens. */
static void test_sampling(void **state)
{
    NEED_GPU();
    const char *prompts[4] = { "Once upon a time", "The cat", "Lily wanted", "One day" };
    static int32_t g[4][48], c[4][48];
    int ks[2] = { 40, 200 };
    for (int t = 0; t < 2; t++) {
        g_top_k = ks[t];
        g_temp = 0.9f;
        g_top_p = 0.95f;
        run_prompts(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", prompts, 4, 1, g, 40);
        run_prompts(INFER_BACKEND_CPU, "models/stories260K.bin", "models/tok512.bin", prompts, 4, 1, c, 40);
        int same = 0, distinct = 0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 40; j++) {
                same += g[i][j] == c[i][j];
                distinct += j > 0 && g[i][j] != g[i][j - 1];
            }
        printf("    top_k %d (%s), temperature 0.9, top_p 0.95: %d/160 sampled tokens equal to the CPU's\n", ks[t],
               ks[t] <= 64 ? "drawn on the GPU" : "drawn on the host", same);
        assert_int_equal(same, 160);
        assert_true(distinct > 20); /* really sampled, not a constant */
    }
    g_top_k = 0;
    g_top_p = 1.0f;
}

static void test_f16_model(void **state)
{
    NEED_GPU();
    /* llama-2-tiny-random.gguf keeps f16 weights on the GPU: logits against the CPU's */
    const char *prompts[3] = { "Hello world", "The quick brown fox", "1 2 3 4" };
    static int32_t g[3][48], c[3][48];
    run_prompts(INFER_BACKEND_CUDA, "models/llama-2-tiny-random.gguf", NULL, prompts, 3, 1, g, 8);
    run_prompts(INFER_BACKEND_CPU, "models/llama-2-tiny-random.gguf", NULL, prompts, 3, 1, c, 8);
    int same = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 8; j++) same += g[i][j] == c[i][j];
    printf("    llama-2-tiny-random.gguf (f16): %d/24 greedy tokens equal to the CPU's (random weights: "
           "margins are tiny)\n", same);
    assert_true(same >= 1); /* the first token of each prompt is expected to agree */
}

/* Logits of every position of a 100+-token prompt (reps phrases) on a 16-bit model, so the
** prompt's attention goes through cuBLAS (chunks of 64+ rows): against the CPU, and against the
** paged kernel. budget > 0: max_batch_tokens, so the prompt comes in chunks. */
static float *prompt_logits(infer_backend be, int reps, int budget, int *n_pos, int *vocab)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    sp.backend = be;
    if (budget > 0) sp.max_batch_tokens = budget;
    if (be == INFER_BACKEND_CUDA) golden_devices(&sp);
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    assert_int_equal(infer_model_load(s, "m", NULL, shared_path("models/llama-2-tiny-random.gguf"), NULL), INFER_OK);
    char prompt[2048] = "";
    for (int i = 0; i < reps; i++) strcat(prompt, i % 3 ? "the quick brown fox " : "jumps over lazy dogs ");
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "m";
    rq.prompt = prompt;
    rq.max_tokens = 1;
    rq.want_logits = 1;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    float *all = NULL;
    int done = 0;
    *n_pos = 0;
    while (!done) {
        infer_event ev[32];
        int k = infer_poll(s, ev, 32, 10000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            if (ev[i].type == INFER_EVENT_LOGITS) {
                *vocab = ev[i].n_logits;
                all = realloc(all, sizeof(float) * (size_t)(*n_pos + 1) * (size_t)*vocab);
                memcpy(all + (size_t)*n_pos * (size_t)*vocab, ev[i].logits, sizeof(float) * (size_t)*vocab);
                (*n_pos)++;
            }
            if (ev[i].type == INFER_EVENT_DONE) done = 1;
        }
    }
    infer_session_destroy(s);
    return all;
}

static double logits_rel(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

static void test_prefill_gemm(void **state)
{
    NEED_GPU();
    int np_g, np_c, np_p, v;
    float *g = prompt_logits(INFER_BACKEND_CUDA, 24, 0, &np_g, &v);
    float *c = prompt_logits(INFER_BACKEND_CPU, 24, 0, &np_c, &v);
    setenv("INFER_CUDA_PREFILL_GEMM", "0", 1);
    float *p = prompt_logits(INFER_BACKEND_CUDA, 24, 0, &np_p, &v);
    unsetenv("INFER_CUDA_PREFILL_GEMM");
    assert_true(np_g >= 64);
    assert_int_equal(np_g, np_c);
    assert_int_equal(np_g, np_p);
    size_t n = (size_t)np_g * (size_t)v;
    double e_cpu = logits_rel(g, c, n), e_paged = logits_rel(g, p, n), e_paged_cpu = logits_rel(p, c, n);
    printf("    %d-position prompt, f16 model: cuBLAS attention vs CPU rel %.2e, vs paged kernel %.2e (paged vs CPU "
           "%.2e; bound 1e-2)\n", np_g, e_cpu, e_paged, e_paged_cpu);
    assert_true(e_cpu <= 1e-2);
    assert_true(e_paged <= 1e-2);
    free(g); free(c); free(p);
    /* in chunks of 72: the second starts at position 72, its products padded to a context of 256
    ** (positions 144..255 zeros, masked) and 128 rows (56 rows of slack) */
    g = prompt_logits(INFER_BACKEND_CUDA, 32, 72, &np_g, &v);
    c = prompt_logits(INFER_BACKEND_CPU, 32, 72, &np_c, &v);
    assert_true(np_g >= 144);
    assert_int_equal(np_g, np_c);
    e_cpu = logits_rel(g, c, (size_t)np_g * (size_t)v);
    printf("    %d-position prompt in chunks of 72: cuBLAS attention vs CPU rel %.2e (bound 1e-2)\n", np_g, e_cpu);
    assert_true(e_cpu <= 1e-2);
    free(g); free(c);
}

static void test_errors(void **state)
{
    NEED_GPU();
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.backend = INFER_BACKEND_CUDA;
    sp.threading = INFER_THREADING_CALLER;
    sp.n_devices = 1;
    sp.devices[0] = 4096; /* no such GPU */
    infer_session *s = NULL;
    assert_int_equal(infer_session_create(&sp, &s), INFER_EINVAL);
    printf("    device 4096: %s\n", infer_last_error(NULL));
    sp.n_devices = 0;
    sp.devices[0] = 0;
    sp.kv_cache_bytes = (size_t)200 << 30; /* 200 GiB of KV: more than the GPU has */
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = shared_path("models/tok512.bin");
    infer_status st = infer_model_load(s, "m", NULL, shared_path("models/stories260K.bin"), &mp);
    printf("    200 GiB KV cache: status %d: %s\n", (int)st, infer_last_error(s));
    assert_int_equal(st, INFER_ENOMEM);
    infer_session_destroy(s);
}

/* ---------------------------------------------------------------- tensor parallelism (2 GPUs) */

/* The golden cases with every layer split over GPUs 0 and 1: the same ids, text and logits, with
** each way of all-reducing (our kernel over NCCL's device API, the default where NCCL has it;
** ncclAllReduce; the experimental NCCL symmetric windows). */
static void test_tp_golden(void **state)
{
    NEED_TP();
    golden_n_devices = 2;
    static const char *const ways[][2] = { { "INFER_CUDA_TP_AR", NULL }, { "INFER_CUDA_TP_AR", "nccl" },
                                           { "INFER_CUDA_TP_SYMM_ROWS", "1" } };
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        printf("    all-reduce: %s=%s\n", ways[w][0], ways[w][1] ? ways[w][1] : "(default)");
        if (ways[w][1]) setenv(ways[w][0], ways[w][1], 1);
        golden_model(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin",
                     "golden/stories260K.greedy.txt", "golden/stories260K.logits.txt", 1);
        golden_model(INFER_BACKEND_CUDA, "models/llama-2-tiny-random.f32.bin", NULL,
                     "golden/llama-2-tiny-random.greedy.txt", "golden/llama-2-tiny-random.logits.txt", 0);
        if (w == 0)
            golden_model(INFER_BACKEND_CUDA, "models/stories260K.gguf", NULL, "golden/stories260K.greedy.txt",
                         "golden/stories260K.logits.txt", 1);
        unsetenv(ways[w][0]);
    }
    golden_n_devices = 0;
}

/* 16 prompts batched on 2 GPUs (decode steps replayed from graphs, without graphs, and with
** the push all-reduce for every step of more than one row) against each alone on one GPU; a
** 16-bit model's prompt (cuBLAS attention) against one GPU. */
static void test_tp_batched(void **state)
{
    NEED_TP();
    const char *prompts[16];
    char buf[16][64];
    const char *starts[] = { "Once upon a time", "The little dog", "Lily and Tom", "One day a bird", "The sun was" };
    for (int i = 0; i < 16; i++) {
        snprintf(buf[i], sizeof buf[i], "%s%s", starts[i % 5], i >= 5 ? (i >= 10 ? " went to the park" : " saw") : "");
        prompts[i] = buf[i];
    }
    static int32_t one[16][48], two[16][48], two_nograph[16][48], two_push[16][48];
    run_prompts(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", prompts, 16, 0, one, 40);
    golden_n_devices = 2;
    run_prompts(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", prompts, 16, 1, two, 40);
    setenv("INFER_CUDA_GRAPHS", "0", 1);
    run_prompts(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", prompts, 16, 1, two_nograph, 40);
    unsetenv("INFER_CUDA_GRAPHS");
    /* multi-row decode steps through the push + barrier all-reduce instead of LL */
    setenv("INFER_CUDA_TP_LL_ROWS", "1", 1);
    run_prompts(INFER_BACKEND_CUDA, "models/stories260K.bin", "models/tok512.bin", prompts, 16, 1, two_push, 40);
    unsetenv("INFER_CUDA_TP_LL_ROWS");
    for (int i = 0; i < 16; i++) {
        assert_memory_equal(one[i], two[i], sizeof(int32_t) * 40);
        assert_memory_equal(one[i], two_nograph[i], sizeof(int32_t) * 40);
        assert_memory_equal(one[i], two_push[i], sizeof(int32_t) * 40);
    }
    int np2, np1, v;
    float *l2 = prompt_logits(INFER_BACKEND_CUDA, 24, 0, &np2, &v);
    golden_n_devices = 0;
    float *l1 = prompt_logits(INFER_BACKEND_CUDA, 24, 0, &np1, &v);
    assert_int_equal(np1, np2);
    double e = logits_rel(l2, l1, (size_t)np1 * (size_t)v);
    printf("    16 prompts x 40 tokens: 2 GPUs batched (graphs, no graphs, push) == 1 GPU alone; f16 model, "
           "%d-position prompt: 2 GPUs vs 1 rel %.2e (bound 1e-2)\n", np1, e);
    assert_true(e <= 1e-2);
    free(l1);
    free(l2);
}

/* Greedy generation on a CUDA session over n_dev GPUs with the logits of every position:
** returns them (*n_pos rows of *vocab, by position), the generated ids in gen. */
static float *tp_generate(const char *model, const char *prompt, int n_dev, int n_new, int32_t *gen, int *n_pos,
                          int *vocab)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.backend = INFER_BACKEND_CUDA;
    sp.threading = INFER_THREADING_CALLER;
    sp.kv_cache_bytes = (size_t)1 << 30;
    golden_n_devices = n_dev;
    golden_devices(&sp);
    golden_n_devices = 0;
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    infer_status st = infer_model_load(s, "m", NULL, model, NULL);
    if (st) printf("    load %s: %s\n", model, infer_last_error(s));
    assert_int_equal(st, INFER_OK);
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "m";
    rq.prompt = prompt;
    rq.temperature = 0;
    rq.max_tokens = n_new;
    rq.ignore_eos = 1;
    rq.want_logits = 1;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    float *all = NULL;
    int done = 0, ng = 0, cap = 0;
    *n_pos = 0;
    while (!done) {
        infer_event ev[32];
        int k = infer_poll(s, ev, 32, 60000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            if (ev[i].type == INFER_EVENT_LOGITS) {
                *vocab = ev[i].n_logits;
                if (ev[i].pos >= cap) {
                    cap = 2 * ev[i].pos + 64;
                    all = realloc(all, sizeof(float) * (size_t)cap * (size_t)*vocab);
                    assert_non_null(all);
                }
                memcpy(all + (size_t)ev[i].pos * (size_t)*vocab, ev[i].logits, sizeof(float) * (size_t)*vocab);
                *n_pos = INFER_MAX(*n_pos, ev[i].pos + 1);
            } else if (ev[i].type == INFER_EVENT_TOKEN) {
                gen[ng++] = ev[i].token;
            } else if (ev[i].type == INFER_EVENT_DONE) {
                assert_int_equal(ev[i].status, INFER_OK);
                done = 1;
            }
        }
    }
    assert_int_equal(ng, n_new);
    infer_session_destroy(s);
    return all;
}

static int top2(const float *v, int n, float *margin)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != b && v[i] > second) second = v[i];
    *margin = v[b] - second;
    return b;
}

/* Two greedy runs of the same prompt (b against the reference a): over the positions whose
** contexts are equal (the prompt and the common prefix of the generated ids), the largest
** logit difference, relative to the largest logit, and where the top-1 ids agree. */
typedef struct run_cmp {
    int same;          /* generated ids equal before the first difference */
    int positions, top1_equal;
    double maxabs, rel;
    float margin;      /* a's top-2 margin where the ids first differ */
} run_cmp;

static run_cmp compare_runs(const float *la, const int32_t *ga, const float *lb, const int32_t *gb, int n_pos, int v,
                            int n_new)
{
    run_cmp r = { 0 };
    int n_prompt = n_pos - n_new + 1;
    while (r.same < n_new && ga[r.same] == gb[r.same]) r.same++;
    r.positions = n_prompt - 1 + r.same + (r.same < n_new ? 1 : 0);
    double maxref = 0;
    for (int p = 0; p < r.positions; p++) {
        const float *a = la + (size_t)p * (size_t)v, *b = lb + (size_t)p * (size_t)v;
        for (int i = 0; i < v; i++) {
            r.maxabs = fmax(r.maxabs, fabs((double)a[i] - b[i]));
            maxref = fmax(maxref, fabs((double)a[i]));
        }
        float ma, mb;
        r.top1_equal += top2(a, v, &ma) == top2(b, v, &mb);
    }
    r.rel = r.maxabs / maxref;
    if (r.same < n_new) top2(la + (size_t)(n_prompt - 1 + r.same) * (size_t)v, v, &r.margin);
    return r;
}

/* A big model (INFER_TEST_TP_MODEL: bench/gpu/tp_check.sh points it at a synthetic
** Llama-3-8B-shaped one) on 2 GPUs against 1. In bf16 the exact logits depend on the order of
** every sum, and the split changes that order (shorter products, then the all-reduce), so the
** yardstick is another valid one-GPU computation: the same run with the single-row decode
** products on cuBLAS instead of our matrix-vector kernel (INFER_CUDA_GEMV_ROWS=0). The two-GPU
** run must differ from the one-GPU run by no more than three times as much as that one does,
** and greedy ids may part only where the one-GPU top-2 margin is within the logit difference
** (a tie at bf16 precision: random weights give flat logits). */
static void test_tp_model(void **state)
{
    NEED_TP();
    const char *path = getenv("INFER_TEST_TP_MODEL");
    if (!path || !*path) {
        printf("    skipped: INFER_TEST_TP_MODEL names no model (bench/gpu/tp_check.sh sets it)\n");
        skip();
    }
    const char *prompt = "The history of the city begins with a small settlement on the river, where traders "
                         "stopped on their way between the mountains and the sea. Over the centuries it grew into "
                         "a market town, then a port, and finally the capital of a region known for its wool, its "
                         "printing presses and its universities. Today visitors come for";
    enum { NEW = 64 };
    int32_t g1[NEW], g2[NEW], gf[NEW];
    int np1, np2, npf, v1, v2, vf;
    float *l1 = tp_generate(path, prompt, 1, NEW, g1, &np1, &v1);
    float *l2 = tp_generate(path, prompt, 2, NEW, g2, &np2, &v2);
    setenv("INFER_CUDA_GEMV_ROWS", "0", 1);
    float *lf = tp_generate(path, prompt, 1, NEW, gf, &npf, &vf);
    unsetenv("INFER_CUDA_GEMV_ROWS");
    assert_int_equal(np1, np2);
    assert_int_equal(np1, npf);
    assert_int_equal(v1, v2);
    assert_int_equal(v1, vf);
    run_cmp tp = compare_runs(l1, g1, l2, g2, np1, v1, NEW), fl = compare_runs(l1, g1, lf, gf, np1, v1, NEW);
    printf("    %s: %d prompt tokens + %d greedy, against 1 GPU (decode products on the matrix-vector kernel):\n", path,
           np1 - NEW + 1, NEW);
    printf("      2 GPUs:                      logits max |diff| %.3e (rel %.2e), top-1 equal %d/%d, greedy "
           "identical %d/%d\n", tp.maxabs, tp.rel, tp.top1_equal, tp.positions, tp.same, NEW);
    printf("      1 GPU, cuBLAS products:      logits max |diff| %.3e (rel %.2e), top-1 equal %d/%d, greedy "
           "identical %d/%d\n", fl.maxabs, fl.rel, fl.top1_equal, fl.positions, fl.same, NEW);
    assert_true(tp.rel <= fmax(3 * fl.rel, 5e-3));
    if (tp.same < NEW) {
        printf("      2 GPUs parted at token %d, where the 1-GPU top-2 margin was %.3e (<= 2 x max |diff|)\n", tp.same,
               (double)tp.margin);
        assert_true(tp.margin <= 2 * tp.maxabs);
    }
    free(l1);
    free(l2);
    free(lf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),     cmocka_unit_test(test_swiglu_argmax),
        cmocka_unit_test(test_gemv),        cmocka_unit_test(test_embed_dequant),
        cmocka_unit_test(test_attention),   cmocka_unit_test(test_golden_gpu),
        cmocka_unit_test(test_batched_equals_alone), cmocka_unit_test(test_f16_model),
        cmocka_unit_test(test_prefill_gemm), cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_tp_golden),
        cmocka_unit_test(test_tp_batched),  cmocka_unit_test(test_tp_model),
    };
    /* INFER_TEST_FILTER=test_tp_*: run only the matching tests (device calls are short) */
    const char *filter = getenv("INFER_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("cuda", tests, NULL, NULL);
}

#else /* a build without CUDA */
#include "test_util.h"

static void test_no_cuda(void **state)
{
    printf("    skipped: this build has no CUDA backend (nvcc was not found at build time)\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_no_cuda) };
    return cmocka_run_group_tests_name("cuda", tests, NULL, NULL);
}
#endif
