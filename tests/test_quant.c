/*
** test_quant.c — f16/bf16 conversion, ggml block formats, and the typed matmul (lib/cpu/quant*).
**
** Conversions are checked exhaustively (all 65536 halves) against a formula and, where the CPU
** has F16C, against the hardware. Quantizers are checked on hand-built blocks, on exact grids
** and against per-format error bounds. Every matmul kernel, at every SIMD level this CPU has,
** is held to two references: (a) the exact product of the dequantized weights with the
** *quantized* activations (isolates kernel bugs: only fp32 summation error is allowed), and
** (b) ops_ref_matmul_t on the unquantized activations, with the error bound the int8
** activation rounding implies. Batch and thread-count invariance are checked bit for bit.
*/
#include "test_util.h"

#include "cpu/quant.h"
#include "dtype.h"

#include <float.h>
#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define TQ_X86 1
#endif

static threadpool *g_tp1, *g_tp2;

#ifdef TQ_X86
/* F16C's conversions, the hardware reference (called only when CPUID says F16C) */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
#endif

/* ---- deterministic random numbers ---- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd_u32(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static float rnd_unif(void) { return (float)(rnd_u32() >> 8) * (1.0f / 16777216.0f); }

static float rnd_gauss(void)
{
    float u = rnd_unif() + 1e-7f, v = rnd_unif();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Fill n values: 0 gaussian, 1 uniform [-1,1], 2 gaussian with rare x30 outliers, 3 all
** positive, 4 constant, 5 zeros. */
static void fill(float *x, int64_t n, int dist, float scale)
{
    for (int64_t i = 0; i < n; i++) {
        float v;
        switch (dist) {
        case 1: v = 2 * rnd_unif() - 1; break;
        case 2: v = rnd_gauss() * ((rnd_u32() & 63) == 0 ? 30.f : 1.f); break;
        case 3: v = fabsf(rnd_gauss()) + 0.1f; break;
        case 4: v = 0.37f; break;
        case 5: v = 0; break;
        default: v = rnd_gauss(); break;
        }
        x[i] = v * scale;
    }
}

/* ---- f16 / bf16 ---- */

/* The value of a half by definition: (-1)^s 2^(e-15) (1 + m/1024), or 2^-14 m/1024 for e = 0. */
static double f16_formula(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16_decode_exhaustive(void **state)
{
    (void)state;
#ifdef TQ_X86
    const int f16c = has_f16c();
#endif
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            if (m == 0) assert_true(isinf(f) && (signbit(f) != 0) == (h >> 15));
            else assert_true(isnan(f));
        } else {
            assert_true((double)f == f16_formula((uint16_t)h));
            assert_int_equal(signbit(f) != 0, h >> 15);   /* -0 stays -0 */
        }
#ifdef TQ_X86
        if (f16c) {
            /* bit-identical to vcvtph2ps, NaN payloads and quieting included */
            float hw = hw_f16_to_f32((uint16_t)h);
            assert_int_equal(f_bits(f), f_bits(hw));
        }
#endif
    }
}

static int f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF); }

static void test_f16_encode(void **state)
{
    (void)state;
    /* round trip of every half */
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t back = f32_to_f16(f16_to_f32((uint16_t)h));
        if (f16_is_nan((uint16_t)h)) assert_true(f16_is_nan(back) && (back & 0x200));
        else assert_int_equal(back, h);
    }
    /* midpoints between adjacent finite halves (of either sign) round to the even one, and the
    ** floats just beside a midpoint round to the nearer half. A midpoint of two halves has at
    ** most 12 significant bits, so it is exact in float. */
    for (uint32_t h = 0; h < 0x7BFF; h++) {
        for (int neg = 0; neg < 2; neg++) {
            uint16_t lo = (uint16_t)(h | (neg ? 0x8000 : 0)), hi = (uint16_t)(lo + 1);
            float mid = (float)((f16_formula(lo) + f16_formula(hi)) / 2);
            assert_true((double)mid == (f16_formula(lo) + f16_formula(hi)) / 2);
            uint16_t even = (lo & 1) ? hi : lo;
            assert_int_equal(f32_to_f16(mid), even);
            float toward_lo = nextafterf(mid, (float)f16_formula(lo));
            float toward_hi = nextafterf(mid, (float)f16_formula(hi));
            assert_int_equal(f32_to_f16(toward_lo), lo);
            assert_int_equal(f32_to_f16(toward_hi), hi);
        }
    }
    /* overflow: 65504 is the largest half; 65520 (the midpoint to 2^16) and above become inf */
    assert_int_equal(f32_to_f16(65504.f), 0x7BFF);
    assert_int_equal(f32_to_f16(nextafterf(65520.f, 0)), 0x7BFF);
    assert_int_equal(f32_to_f16(65520.f), 0x7C00);
    assert_int_equal(f32_to_f16(-1e30f), 0xFC00);
    assert_int_equal(f32_to_f16(INFINITY), 0x7C00);
    assert_int_equal(f32_to_f16(-INFINITY), 0xFC00);
    assert_true(f16_is_nan(f32_to_f16(NAN)));
    /* underflow: 2^-25 is the midpoint between 0 and the smallest subnormal: ties to 0 */
    assert_int_equal(f32_to_f16(ldexpf(1, -25)), 0x0000);
    assert_int_equal(f32_to_f16(nextafterf(ldexpf(1, -25), 1)), 0x0001);
    assert_int_equal(f32_to_f16(-ldexpf(1, -26)), 0x8000);
    assert_int_equal(f32_to_f16(bits_f(0x00000001)), 0x0000);   /* float subnormal */
    assert_int_equal(f32_to_f16(ldexpf(1023, -24)), 0x03FF);     /* largest subnormal */
    assert_int_equal(f32_to_f16(ldexpf(2047, -25)), 0x0400);     /* rounds up into the normals */
#ifdef TQ_X86
    if (has_f16c()) {
        /* against vcvtps2ph (round to nearest even) on random bit patterns of every exponent */
        for (int i = 0; i < 4000000; i++) {
            float f = bits_f(rnd_u32());
            uint16_t hw = hw_f32_to_f16(f);
            uint16_t sw = f32_to_f16(f);
            assert_int_equal(sw, hw);
        }
    }
#endif
}

static void test_bf16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        assert_int_equal(f_bits(f), h << 16);
        if (!isnan(f)) assert_int_equal(f32_to_bf16(f), h);
        else assert_true(isnan(bf16_to_f32(f32_to_bf16(f))));
    }
    /* random floats: the nearer of the two bf16 neighbours, ties to the even one */
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rnd_u32();
        float f = bits_f(u);
        uint16_t b = f32_to_bf16(f);
        if (isnan(f)) {
            assert_true(isnan(bf16_to_f32(b)) && (b & 0x40));
            continue;
        }
        uint32_t lo = u & 0xFFFF0000u, hi = lo + 0x10000u, rem = u & 0xFFFFu;
        uint32_t want = rem > 0x8000u ? hi : rem < 0x8000u ? lo : ((lo >> 16) & 1 ? hi : lo);
        assert_int_equal(b, want >> 16);
    }
    assert_int_equal(f32_to_bf16(bits_f(0x7F7FFFFFu)), 0x7F80);   /* FLT_MAX rounds to inf */
    assert_int_equal(f32_to_bf16(bits_f(0x3F808000u)), 0x3F80);   /* tie, even below */
    assert_int_equal(f32_to_bf16(bits_f(0x3F818000u)), 0x3F82);   /* tie, even above */
    assert_int_equal(f32_to_bf16(bits_f(0x00008001u)), 0x0001);   /* subnormal rounds up */
    assert_int_equal(f32_to_bf16(-INFINITY), 0xFF80);
}

/* ---- sizes and hand-built blocks ---- */

static const dtype ALL_TYPES[] = {DT_F32, DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q4_K, DT_Q6_K};
#define N_TYPES (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(dtype_row_bytes(DT_F32, 10), 40);
    assert_int_equal(dtype_row_bytes(DT_F16, 3), 6);
    assert_int_equal(dtype_row_bytes(DT_BF16, 7), 14);
    assert_int_equal(dtype_row_bytes(DT_Q8_0, 64), 68);
    assert_int_equal(dtype_row_bytes(DT_Q4_0, 4096), 128 * 18);
    assert_int_equal(dtype_row_bytes(DT_Q4_1, 32), 20);
    assert_int_equal(dtype_row_bytes(DT_Q4_K, 512), 288);
    assert_int_equal(dtype_row_bytes(DT_Q6_K, 256), 210);
    assert_int_equal(dtype_row_bytes(DT_Q4_0, 33), 0);   /* not a whole number of blocks */
    assert_int_equal(dtype_row_bytes(DT_Q6_K, 128), 0);
    for (size_t i = 0; i < N_TYPES; i++) {
        assert_true(dtype_known(ALL_TYPES[i]));
        assert_string_not_equal(dtype_name(ALL_TYPES[i]), "?");
    }
    assert_false(dtype_known(6));    /* Q5_0: not ours */
    assert_false(dtype_known(-1));
    assert_string_equal(dtype_name(DT_Q4_K), "Q4_K");
}

static void test_known_blocks(void **state)
{
    (void)state;
    float out[256];
    /* Q4_0, d = 1: low nibbles 0..15 are weights 0..15 -> -8..7; high nibbles 15..0 -> 7..-8 */
    blk_q4_0 b40;
    b40.d = 0x3C00;
    for (int j = 0; j < 16; j++) b40.qs[j] = (uint8_t)(j | (15 - j) << 4);
    dequantize_row(DT_Q4_0, &b40, out, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(out[j] == (float)(j - 8));
        assert_true(out[16 + j] == (float)(7 - j));
    }
    /* Q4_1, d = 0.5, m = -1: w = q / 2 - 1 */
    blk_q4_1 b41;
    b41.d = 0x3800;
    b41.m = 0xBC00;
    for (int j = 0; j < 16; j++) b41.qs[j] = (uint8_t)(j | (15 - j) << 4);
    dequantize_row(DT_Q4_1, &b41, out, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(out[j] == j * 0.5f - 1);
        assert_true(out[16 + j] == (15 - j) * 0.5f - 1);
    }
    /* Q8_0, d = 0.25 */
    blk_q8_0 b80;
    b80.d = 0x3400;
    for (int j = 0; j < 32; j++) b80.qs[j] = (int8_t)(j * 8 - 127);
    dequantize_row(DT_Q8_0, &b80, out, 32);
    for (int j = 0; j < 32; j++) assert_true(out[j] == (j * 8 - 127) * 0.25f);
    /* Q4_K: scales sc_j = j + 1, mins mn_j = 2 j + 40 (6 bits, the upper ones using bits 4..5
    ** that live in the top bits of bytes 0..7), d = 2, dmin = 0.5, q = l % 16 */
    blk_q4_k b4k;
    memset(&b4k, 0, sizeof b4k);
    b4k.d = 0x4000;
    b4k.dmin = 0x3800;
    for (int j = 0; j < 8; j++) {
        int sc = j + 1 + (j >= 4 ? 48 : 0), mn = 2 * j + 40;   /* some above 15 */
        if (j < 4) {
            b4k.scales[j] = (uint8_t)sc;
            b4k.scales[j + 4] = (uint8_t)mn;
        } else {
            b4k.scales[j + 4] = (uint8_t)((sc & 0xF) | (mn & 0xF) << 4);
            b4k.scales[j - 4] |= (uint8_t)((sc >> 4) << 6);
            b4k.scales[j] |= (uint8_t)((mn >> 4) << 6);
        }
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) b4k.qs[32 * c + l] = (uint8_t)((l % 16) | ((l + 3) % 16) << 4);
    dequantize_row(DT_Q4_K, &b4k, out, 256);
    for (int e = 0; e < 256; e++) {
        int j = e / 32, l = e % 32, c = e / 64, hi = (e % 64) >= 32;
        int sc = j + 1 + (j >= 4 ? 48 : 0), mn = 2 * j + 40;
        int q = hi ? (l + 3) % 16 : l % 16;
        (void)c;
        assert_true(out[e] == 2.0f * sc * q - 0.5f * mn);
    }
    /* Q6_K: q = (e * 7) % 64, scales g - 8, d = 0.125: w = d * sc[g] * (q - 32) */
    blk_q6_k b6;
    memset(&b6, 0, sizeof b6);
    b6.d = 0x3000;
    for (int g = 0; g < 16; g++) b6.scales[g] = (int8_t)(g - 8);
    for (int e = 0; e < 256; e++) {
        int q = (e * 7) % 64, h = e / 128, o = e % 128, l = o % 32, quarter = o / 32;
        uint8_t *ql = b6.ql + 64 * h, *qh = b6.qh + 32 * h;
        ql[l + (quarter & 1 ? 32 : 0)] |= (uint8_t)((q & 0xF) << (quarter >= 2 ? 4 : 0));
        qh[l] |= (uint8_t)((q >> 4) << (2 * quarter));
    }
    dequantize_row(DT_Q6_K, &b6, out, 256);
    for (int e = 0; e < 256; e++) assert_true(out[e] == 0.125f * (e / 16 - 8) * ((e * 7) % 64 - 32));
}

static void test_q4k_scales(void **state)
{
    (void)state;
    for (int t = 0; t < 20000; t++) {
        uint8_t p[12], sm[16];
        uint32_t sw[4];
        for (int i = 0; i < 12; i++) p[i] = (uint8_t)rnd_u32();
        q4k_unpack_scales(p, sw);
        memcpy(sm, sw, sizeof sm);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            q4k_scale_min(j, p, &sc, &mn);
            assert_int_equal(sm[j], sc);
            assert_int_equal(sm[8 + j], mn);
        }
    }
}

/* ---- quantize -> dequantize ---- */

static void test_quant_exact_grid(void **state)
{
    (void)state;
    float x[64], y[64];
    uint8_t buf[256];
    /* values q / 16 with the extreme 127 / 16 present: d = 1/16 exactly, so Q8_0 is lossless */
    for (int j = 0; j < 64; j++) x[j] = (float)((j * 37) % 255 - 127) / 16;
    x[5] = 127.f / 16;
    x[40] = -127.f / 16;
    quantize_row(DT_Q8_0, x, buf, 64);
    dequantize_row(DT_Q8_0, buf, y, 64);
    for (int j = 0; j < 64; j++) assert_true(x[j] == y[j]);
    /* Q4_0: integers -8..7 with -8 present: d = 1, lossless */
    for (int j = 0; j < 64; j++) x[j] = (float)((j * 5) % 16 - 8);
    quantize_row(DT_Q4_0, x, buf, 64);
    dequantize_row(DT_Q4_0, buf, y, 64);
    for (int j = 0; j < 64; j++) assert_true(x[j] == y[j]);
    /* Q4_1: 3 + q / 4 with q = 0 and 15 present: d = 1/4, m = 3, lossless */
    for (int j = 0; j < 64; j++) x[j] = 3 + (float)((j * 7) % 16) / 4;
    quantize_row(DT_Q4_1, x, buf, 64);
    dequantize_row(DT_Q4_1, buf, y, 64);
    for (int j = 0; j < 64; j++) assert_true(x[j] == y[j]);
}

/* Bit-exactness with ggml's reference quantizers (quantize_row_q8_0_ref, _q4_0_ref, _q4_1_ref,
** _q4_K_ref, _q6_K_ref in ggml-quants.c) and with IEEE round-to-nearest-even halves: the
** hashes below are of ggml's own output for this input, computed once with ggml's C source
** built without FMA contraction (F16/BF16: numpy's float16 and gguf-py's bf16). The input uses
** exact float arithmetic only, so no libm difference can move it. Includes an all-zero block of
** -0.0 values, where ggml keeps d (Q4_0) and m (Q4_1) as -0. */
static void golden_input(float *x, int n)
{
    static const float scale[8] = {0.02f, 1e-4f, 3.0f, 0.5f, 0.02f, 1.0f, 0.05f, 0.0f};
    uint32_t s = 1;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        int blk = (i / 256) % 8;
        float v = (float)(int32_t)s * 0x1p-31f;
        if (blk == 3) v = v < 0 ? -v + 0.25f : v + 0.25f;   /* all positive, offset */
        if (blk == 4 && (s >> 27) == 0) v *= 40.f;             /* rare outliers */
        if (blk == 6) v = (float)((int)(v * 8)) / 8;           /* coarse grid */
        x[i] = v * scale[blk];
    }
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void test_quant_matches_ggml(void **state)
{
    (void)state;
    enum { N = 256 * 64 };
    static const struct { dtype t; uint64_t hash; } want[] = {
        {DT_Q8_0, 0x543971e114793eabull}, {DT_Q4_0, 0x9d8e46532a81c156ull}, {DT_Q4_1, 0xc9b655fca31aca77ull},
        {DT_Q4_K, 0x703d83c1cde5be0cull}, {DT_Q6_K, 0x84ee6defee20f147ull}, {DT_F16, 0x2781931eba22708dull},
        {DT_BF16, 0x3cc35c42d01b3cc2ull},
    };
    float *x = malloc(sizeof(float) * N);
    uint8_t *q = malloc(2 * N);
    golden_input(x, N);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        quantize_row(want[i].t, x, q, N);
        uint64_t h = fnv1a(q, dtype_row_bytes(want[i].t, N));
        if (h != want[i].hash)
            fail_msg("%s: quantize_row output hash %016llx, ggml's is %016llx", dtype_name(want[i].t),
                     (unsigned long long)h, (unsigned long long)want[i].hash);
    }
    free(x);
    free(q);
}

/* Per-format worst-case error of quantize -> dequantize. Q8_0: d/2 for the rounding plus
** 127 |d - d16| for storing d as f16 (q uses the float d). Q4_0: the value of largest
** magnitude maps to -8 d exactly, the opposite extreme can be clamped from 8 d to 7 d, so |d|,
** plus 8 |d - d16|. Q4_1: d/2, plus 15 |d - d16| + |min - m16|. The K-quants have no closed
** form (searched scales, 6/8-bit sub-scales): their bounds are a fraction of the block's
** range (Q6_K: amax / 32 ~ one step at the coarsest scale; Q4_K: range / 10), with the RMS
** error checked against what ggml's quantizers reach on gaussian data (~0.07 and ~0.02 sigma:
** any packing bug gives errors of order sigma). */
static void test_quant_error_bounds(void **state)
{
    (void)state;
    const int n = 4096;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    uint8_t *q = malloc(sizeof(float) * n);   /* the largest row: F32 */
    const dtype types[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q4_K, DT_Q6_K, DT_F16, DT_BF16};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int dist = 0; dist < 6; dist++) {
            fill(x, n, dist, dist == 1 ? 3.f : 0.02f);
            quantize_row(types[t], x, q, n);
            dequantize_row(types[t], q, y, n);
            double se = 0, sx = 0;
            const int be = dtype_block_elems(types[t]) == 1 ? 32 : dtype_block_elems(types[t]);
            for (int b = 0; b < n / be; b++) {
                const float *xb = x + b * be, *yb = y + b * be;
                float amax = 0, mn = FLT_MAX, mx = -FLT_MAX, bound;
                for (int j = 0; j < be; j++) {
                    amax = fmaxf(amax, fabsf(xb[j]));
                    mn = fminf(mn, xb[j]);
                    mx = fmaxf(mx, xb[j]);
                }
                const uint8_t *blk = q + (size_t)b * dtype_block_bytes(types[t]);
                uint16_t h16;
                memcpy(&h16, blk, 2);
                switch (types[t]) {
                case DT_Q8_0: {
                    float d = amax / 127;
                    bound = d / 2 + 127 * fabsf(d - f16_to_f32(h16)) + 1e-6f * amax;
                    break;
                }
                case DT_Q4_0: {
                    float d = amax / 8;
                    bound = d + 8 * fabsf(d - fabsf(f16_to_f32(h16))) + 1e-6f * amax;
                    break;
                }
                case DT_Q4_1: {
                    uint16_t m16;
                    memcpy(&m16, blk + 2, 2);
                    float d = (mx - mn) / 15;
                    bound = d / 2 + 15 * fabsf(d - f16_to_f32(h16)) + fabsf(mn - f16_to_f32(m16)) + 1e-6f * amax;
                    break;
                }
                case DT_Q4_K: bound = (mx - fminf(mn, 0)) / 10 + 1e-6f; break;
                case DT_Q6_K: bound = amax / 32 + 1e-6f; break;
                case DT_F16: bound = amax * 0x1p-11f + 0x1p-25f; break;
                default: bound = amax * 0x1p-8f; break;   /* BF16 */
                }
                for (int j = 0; j < be; j++) {
                    float e = fabsf(xb[j] - yb[j]);
                    if (e > bound)
                        fail_msg("%s dist %d block %d elem %d: |%g - %g| = %g > %g", dtype_name(types[t]), dist, b,
                                 j, xb[j], yb[j], e, bound);
                    se += (double)e * e;
                    sx += (double)xb[j] * xb[j];
                }
            }
            if (dist == 0) {
                double rel = sqrt(se / sx);
                double lim = types[t] == DT_Q4_K ? 0.12 : types[t] == DT_Q4_0 ? 0.15 : types[t] == DT_Q4_1 ? 0.12
                           : types[t] == DT_Q6_K ? 0.035 : 0.01;
                if (rel > lim) fail_msg("%s: relative RMS error %g > %g", dtype_name(types[t]), rel, lim);
            }
        }
    }
    free(x);
    free(y);
    free(q);
}

/* ---- activations ---- */

static void test_act_levels_identical(void **state)
{
    (void)state;
    const int m = 3, k = 1024;
    float *x = malloc(sizeof(float) * m * k);
    for (int blk = 32; blk <= 256; blk *= 8) {
        for (int dist = 0; dist < 6; dist++) {
            fill(x, (int64_t)m * k, dist, 0.7f);
            size_t bytes = qact_bytes(m, k, blk);
            void *m0 = calloc(1, bytes), *m1 = calloc(1, bytes);
            qact a0, a1;
            const int pairs = blk == 32 && dist % 2;   /* both layouts */
            qact_init(&a0, m0, m, k, blk, pairs);
            qact_init(&a1, m1, m, k, blk, pairs);
            quant_act(QUANT_SCALAR, &a0, x, 0, m);
            for (int lv = 1; lv <= (int)quant_detect(); lv++) {
                memset(m1, 0, bytes);
                quant_act((quant_level)lv, &a1, x, 0, m);
                assert_memory_equal(m0, m1, bytes);
            }
            /* the stated meaning: x ~ d q within d/2 */
            for (int r = 0; r < m; r++)
                for (int j = 0; j < k; j++) {
                    float d = a0.d[(size_t)r * (k / blk) + j / blk];
                    assert_true(fabsf(x[(size_t)r * k + j] - d * a0.qs[(size_t)r * k + qact_pos(&a0, j)]) <= 0.51f * d);
                }
            free(m0);
            free(m1);
        }
    }
    free(x);
}

/* ---- matmul ---- */

typedef struct wmat {
    tensor t;
    void *data;
    float *deq;    /* n x k dequantized */
    float *off;    /* n x k magnitude of the per-block offset term (see offset_mag) */
} wmat;

/* How large the part of w that a kernel computes separately (and subtracts) can be, per
** element: Q4_0's 8 d, Q4_1's min, Q4_K's dmin * mn, Q6_K's 32 d sc. Summation error scales
** with it too, since it cancels against the main term. */
static void offset_mag(dtype t, const uint8_t *row, int k, float *off)
{
    for (int j = 0; j < k; j++) off[j] = 0;
    for (int b = 0; b < k / dtype_block_elems(t) && t != DT_F32 && t != DT_F16 && t != DT_BF16; b++) {
        const uint8_t *p = row + (size_t)b * dtype_block_bytes(t);
        uint16_t h0, h1;
        memcpy(&h0, p, 2);
        memcpy(&h1, p + 2, 2);
        if (t == DT_Q4_0)
            for (int j = 0; j < 32; j++) off[32 * b + j] = 8 * fabsf(f16_to_f32(h0));
        if (t == DT_Q4_1)
            for (int j = 0; j < 32; j++) off[32 * b + j] = fabsf(f16_to_f32(h1));
        if (t == DT_Q4_K)
            for (int j = 0; j < 256; j++) {
                uint8_t sc, mn;
                q4k_scale_min(j / 32, p + 4, &sc, &mn);
                off[256 * b + j] = fabsf(f16_to_f32(h1)) * mn;
            }
        if (t == DT_Q6_K) {
            uint16_t d;
            memcpy(&d, p + 208, 2);
            for (int j = 0; j < 256; j++) off[256 * b + j] = 32 * fabsf(f16_to_f32(d) * (int8_t)p[192 + j / 16]);
        }
    }
}

static void wmat_make(wmat *w, dtype t, int n, int k, int dist)
{
    float *src = malloc(sizeof(float) * (size_t)n * k);
    fill(src, (int64_t)n * k, dist, 0.05f);
    size_t rb = dtype_row_bytes(t, k);
    /* +1 byte offset: weights in an mmapped file need not be aligned */
    uint8_t *buf = malloc(rb * n + 64);
    uint8_t *data = buf + 1;
    for (int i = 0; i < n; i++) quantize_row(t, src + (size_t)i * k, data + rb * i, k);
    if (t == DT_F32) {   /* ops_matmul wants aligned floats */
        data = buf;
        memcpy(data, src, rb * n);
    }
    w->data = buf;
    w->t.type = t;
    w->t.data = data;
    w->t.n_rows = n;
    w->t.n_cols = k;
    w->deq = malloc(sizeof(float) * (size_t)n * k);
    w->off = malloc(sizeof(float) * (size_t)n * k);
    for (int i = 0; i < n; i++) {
        dequantize_row(t, data + rb * i, w->deq + (size_t)i * k, k);
        offset_mag(t, data + rb * i, k, w->off + (size_t)i * k);
    }
    free(src);
}

static void wmat_free(wmat *w)
{
    free(w->data);
    free(w->deq);
    free(w->off);
}

/* The two references for one (W, x): (a) `exact`, the product of the dequantized weights with
** the activations the kernels see (every level quantizes them to the same bits), with `tol`,
** the fp32 summation error allowed; (b) `ref`, ops_ref_matmul_t on the unquantized x, which
** may differ further by `qerr`, what the int8 rounding of x can move the result. */
typedef struct refs {
    int m, n;
    double *exact, *tol, *qerr;
    float *ref;
} refs;

static void refs_make(refs *rf, const wmat *w, const float *x, int m)
{
    const int n = (int)w->t.n_rows, k = (int)w->t.n_cols, blk = quant_act_blk(w->t.type);
    rf->m = m;
    rf->n = n;
    rf->exact = malloc(sizeof(double) * (size_t)m * n);
    rf->tol = malloc(sizeof(double) * (size_t)m * n);
    rf->qerr = malloc(sizeof(double) * (size_t)m * n);
    rf->ref = malloc(sizeof(float) * (size_t)m * n);
    ops_ref_matmul_t(rf->ref, x, &w->t, m);
    float *xh = malloc(sizeof(float) * (size_t)m * k), *dx = calloc((size_t)m * k, sizeof(float));
    memcpy(xh, x, sizeof(float) * (size_t)m * k);
    if (blk) {
        void *mem = malloc(qact_bytes(m, k, blk));
        qact a;
        qact_init(&a, mem, m, k, blk, quant_act_pairs(w->t.type));
        quant_act(QUANT_SCALAR, &a, x, 0, m);
        for (int r = 0; r < m; r++)
            for (int j = 0; j < k; j++) {
                dx[(size_t)r * k + j] = a.d[(size_t)r * (k / blk) + j / blk];
                xh[(size_t)r * k + j] = dx[(size_t)r * k + j] * a.qs[(size_t)r * k + qact_pos(&a, j)];
            }
        free(mem);
    }
    /* fp32 summation: each output is a sum at most k/32 + 16 roundings deep (per-block
    ** partials, then a few horizontal adds) for the quantized types, k/8 + 16 for the float
    ** types (8-wide partial sums), each rounding at most 2^-24 of the magnitude `mag` (which
    ** counts the separately summed offset terms, since they cancel against the main ones) */
    const double depth = (blk ? k / 32.0 : k / 8.0) + 16;
    for (int r = 0; r < m; r++) {
        for (int i = 0; i < n; i++) {
            const float *wr = w->deq + (size_t)i * k, *ofr = w->off + (size_t)i * k;
            const float *xr = xh + (size_t)r * k, *x0 = x + (size_t)r * k, *dr = dx + (size_t)r * k;
            double exact = 0, mag = 0, qerr = 0;
            for (int j = 0; j < k; j++) {
                exact += (double)wr[j] * xr[j];
                mag += ((double)fabsf(wr[j]) + ofr[j]) * fabs((double)xr[j]) + fabs((double)wr[j] * x0[j]);
                /* |x - d q| <= d/2, plus the rounding of x * (127 / amax): 2^-22 amax = 3e-5 d */
                qerr += 0.51 * dr[j] * fabsf(wr[j]);
            }
            rf->exact[(size_t)r * n + i] = exact;
            rf->tol[(size_t)r * n + i] = depth * 0x1p-24 * mag + 1e-30;
            rf->qerr[(size_t)r * n + i] = qerr;
        }
    }
    free(xh);
    free(dx);
}

static void refs_free(refs *rf)
{
    free(rf->exact);
    free(rf->tol);
    free(rf->qerr);
    free(rf->ref);
}

static void check_matmul(const wmat *w, const refs *rf, const float *y, quant_level level)
{
    const int m = rf->m, n = rf->n, k = (int)w->t.n_cols;
    for (size_t e = 0; e < (size_t)m * n; e++) {
        const double got = y[e], tol = rf->tol[e];
        const int r = (int)(e / n), i = (int)(e % n);
        if (!(fabs(got - rf->exact[e]) <= tol))
            fail_msg("%s %s m=%d n=%d k=%d [%d][%d]: %.9g vs exact-with-int8-x %.9g (tol %.3g)",
                     dtype_name(w->t.type), quant_level_name(level), m, n, k, r, i, got, rf->exact[e], tol);
        if (!(fabs(got - rf->ref[e]) <= tol + rf->qerr[e]))
            fail_msg("%s %s m=%d n=%d k=%d [%d][%d]: %.9g vs reference %.9g (tol %.3g)", dtype_name(w->t.type),
                     quant_level_name(level), m, n, k, r, i, got, rf->ref[e], tol + rf->qerr[e]);
    }
}

static void test_matmul_all(void **state)
{
    (void)state;
    static const int ms[] = {1, 2, 3, 7, 8, 16};
    static const int ns[] = {1, 37, 131};
    for (size_t t = 0; t < N_TYPES; t++) {
        const dtype ty = ALL_TYPES[t];
        const int be = dtype_block_elems(ty);
        /* float types also get lengths that are no multiple of any vector width */
        /* 7 blocks: the 4-block steps of the 32-block kernels plus a tail of 3 */
        const int ks_q[] = {be, 7 * be, 2048}, ks_f[] = {1, 77, 300, 1000};
        const int *ks = be == 1 ? ks_f : ks_q;
        const int nk = be == 1 ? 4 : 3;
        for (int ki = 0; ki < nk; ki++) {
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                const int n = ns[ni], k = ks[ki];
                wmat w;
                wmat_make(&w, ty, n, k, (int)(ni + ki) % 3);
                float *x = malloc(sizeof(float) * 16 * k), *y = malloc(sizeof(float) * 16 * n);
                for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                    const int m = ms[mi];
                    fill(x, (int64_t)m * k, (int)mi % 3, 1.0f);
                    refs rf;
                    refs_make(&rf, &w, x, m);
                    for (int lv = 0; lv <= (int)quant_detect(); lv++) {
                        threadpool *tp = mi & 1 ? g_tp2 : g_tp1;
                        memset(y, 0xFF, sizeof(float) * (size_t)m * n);
                        ops_matmul_t_level((quant_level)lv, tp, y, x, &w.t, m);
                        check_matmul(&w, &rf, y, (quant_level)lv);
                    }
                    memset(y, 0xFF, sizeof(float) * (size_t)m * n);
                    ops_matmul_t(g_tp2, y, x, &w.t, m);
                    check_matmul(&w, &rf, y, quant_detect());
                    refs_free(&rf);
                }
                free(x);
                free(y);
                wmat_free(&w);
            }
        }
    }
}

/* Row r of an m-row call equals, bit for bit, the same row done alone, at every level and
** with 1 or 2 threads (F32 included while m stays below ops_matmul's sgemm hand-off). */
static void test_batch_invariance(void **state)
{
    (void)state;
    const int n = 203;
    for (size_t t = 0; t < N_TYPES; t++) {
        /* an odd number of blocks (23 of 32, 3 of 256) or of elements, so tails are included */
        const int be = dtype_block_elems(ALL_TYPES[t]), k = be == 1 ? 737 : be == 32 ? 736 : 768;
        wmat w;
        wmat_make(&w, ALL_TYPES[t], n, k, 0);
        for (int m = 5; m <= 7; m += 2) {
            float *x = malloc(sizeof(float) * m * k), *ym = malloc(sizeof(float) * m * n);
            float *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * m * n);
            fill(x, (int64_t)m * k, 2, 1.0f);
            for (int lv = 0; lv <= (int)quant_detect(); lv++) {
                ops_matmul_t_level((quant_level)lv, g_tp2, ym, x, &w.t, m);
                ops_matmul_t_level((quant_level)lv, g_tp1, y2, x, &w.t, m);
                assert_memory_equal(ym, y2, sizeof(float) * m * n);
                for (int r = 0; r < m; r++) {
                    ops_matmul_t_level((quant_level)lv, g_tp2, y1, x + (size_t)r * k, &w.t, 1);
                    if (memcmp(y1, ym + (size_t)r * n, sizeof(float) * n))
                        fail_msg("%s %s: row %d of m=%d differs from m=1", dtype_name(ALL_TYPES[t]),
                                 quant_level_name((quant_level)lv), r, m);
                }
            }
            free(x);
            free(ym);
            free(y1);
            free(y2);
        }
        wmat_free(&w);
    }
}

/* Larger batches: heap scratch, several x-row groups per W tile, rows split over threads. */
static void test_matmul_large_m(void **state)
{
    (void)state;
    const int m = 40, n = 97, k = 2048;
    const dtype types[] = {DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q4_K, DT_Q6_K};
    float *x = malloc(sizeof(float) * m * k), *y = malloc(sizeof(float) * m * n), *y1 = malloc(sizeof(float) * n);
    fill(x, (int64_t)m * k, 0, 1.0f);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        wmat w;
        wmat_make(&w, types[t], n, k, 1);
        refs rf;
        refs_make(&rf, &w, x, m);
        for (int lv = 0; lv <= (int)quant_detect(); lv++) {
            ops_matmul_t_level((quant_level)lv, g_tp2, y, x, &w.t, m);
            check_matmul(&w, &rf, y, (quant_level)lv);
            ops_matmul_t_level((quant_level)lv, g_tp2, y1, x + (size_t)(m - 1) * k, &w.t, 1);
            assert_memory_equal(y1, y + (size_t)(m - 1) * n, sizeof(float) * n);
        }
        refs_free(&rf);
        wmat_free(&w);
    }
    free(x);
    free(y);
    free(y1);
}

static int setup(void **state)
{
    (void)state;
    if (tp_create(1, &g_tp1) != INFER_OK || tp_create(2, &g_tp2) != INFER_OK) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_destroy(g_tp1);
    tp_destroy(g_tp2);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_decode_exhaustive),
        cmocka_unit_test(test_f16_encode),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_known_blocks),
        cmocka_unit_test(test_q4k_scales),
        cmocka_unit_test(test_quant_exact_grid),
        cmocka_unit_test(test_quant_matches_ggml),
        cmocka_unit_test(test_quant_error_bounds),
        cmocka_unit_test(test_act_levels_identical),
        cmocka_unit_test(test_matmul_all),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_matmul_large_m),
    };
    printf("quant: SIMD level %s\n", quant_level_name(quant_detect()));
    return cmocka_run_group_tests(tests, setup, teardown);
}
