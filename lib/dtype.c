/*
** dtype.c — element types of weight tensors: sizes, f16/bf16 conversion, and the reference
** (de)quantizers of ggml's block formats.
**
** Why bit-exact with ggml: our GGUF writer quantizes with quantize_row, and llama.cpp-family
** loaders must read back what ggml itself would have written. So the quantizers follow
** ggml-quants.c's reference functions (quantize_row_q8_0_ref, _q4_0_ref, _q4_1_ref,
** _q4_K_ref, _q6_K_ref with their helpers make_qkx2_quants and make_qx_quants) operation for
** operation, and f16 rounding is IEEE round-to-nearest-even as F16C's vcvtps2ph does (which
** is what GGML_FP32_TO_FP16 compiles to on x86). One caveat: ggml built with -march=native in
** GNU C mode may contract a*b+c into FMAs inside these loops; we compile as ISO C11
** (-ffp-contract=off), i.e. we match a ggml built without contraction. Ties can then differ.
**
** The dequantizers are the ground truth that every matmul kernel (lib/cpu/quant*.c) is tested
** against; they are written for clarity and follow ggml's dequantize_row_* order.
*/
#include "dtype.h"

#include <float.h>
#include <math.h>
#include <string.h>

_Static_assert(sizeof(blk_q8_0) == 34, "block_q8_0 is 34 bytes");
_Static_assert(sizeof(blk_q4_0) == 18, "block_q4_0 is 18 bytes");
_Static_assert(sizeof(blk_q4_1) == 20, "block_q4_1 is 20 bytes");
_Static_assert(sizeof(blk_q4_k) == 144, "block_q4_K is 144 bytes");
_Static_assert(sizeof(blk_q6_k) == 210, "block_q6_K is 210 bytes");

/* ---- type table ---- */

int dtype_known(int t)
{
    switch (t) {
    case DT_F32: case DT_F16: case DT_BF16: case DT_Q8_0:
    case DT_Q4_0: case DT_Q4_1: case DT_Q4_K: case DT_Q6_K:
        return 1;
    default:
        return 0;
    }
}

const char *dtype_name(dtype t)
{
    switch (t) {
    case DT_F32: return "F32";
    case DT_F16: return "F16";
    case DT_BF16: return "BF16";
    case DT_Q8_0: return "Q8_0";
    case DT_Q4_0: return "Q4_0";
    case DT_Q4_1: return "Q4_1";
    case DT_Q4_K: return "Q4_K";
    case DT_Q6_K: return "Q6_K";
    }
    return "?";
}

int dtype_block_elems(dtype t)
{
    switch (t) {
    case DT_Q8_0: case DT_Q4_0: case DT_Q4_1: return QK_32;
    case DT_Q4_K: case DT_Q6_K: return QK_K;
    default: return 1;
    }
}

size_t dtype_block_bytes(dtype t)
{
    switch (t) {
    case DT_F32: return 4;
    case DT_F16: case DT_BF16: return 2;
    case DT_Q8_0: return sizeof(blk_q8_0);
    case DT_Q4_0: return sizeof(blk_q4_0);
    case DT_Q4_1: return sizeof(blk_q4_1);
    case DT_Q4_K: return sizeof(blk_q4_k);
    case DT_Q6_K: return sizeof(blk_q6_k);
    }
    return 0;
}

size_t dtype_row_bytes(dtype t, int64_t n)
{
    int64_t be = dtype_block_elems(t);
    if (n < 0 || n % be != 0 || !dtype_known((int)t)) return 0;
    return (size_t)(n / be) * dtype_block_bytes(t);
}

/* ---- f16 / bf16 ---- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. NaNs come out quiet with
** their payload, as F16C's vcvtph2ps gives them. */
float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (mant << 13) | (mant ? 0x400000u : 0));
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        /* subnormal: mant * 2^-24; normalise so the leading one becomes the implicit bit */
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x400));
        return bits_f32(sign | (uint32_t)(112 - e) << 23 | (mant & 0x3FF) << 13);
    }
    return bits_f32(sign | (exp + 112) << 23 | mant << 13);
}

uint16_t f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00 | ((ax >> 13) & 0x3FF)); /* quiet NaN */
    /* 65520 = 0x477FF000 is the midpoint between 65504 (the largest half, odd mantissa) and
    ** 65536: it and everything above round to infinity. */
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00);
    if (ax < 0x38800000u) {
        /* below 2^-14: a half subnormal q * 2^-24 (or zero). A normal float is m * 2^(e-150)
        ** with m its 24-bit significand, so q = m >> (126 - e), rounded to nearest even. */
        uint32_t e = ax >> 23;
        if (e < 102) return sign;   /* below 2^-25 (float subnormals included): rounds to 0 */
        uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
        int shift = 126 - (int)e;   /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;   /* may carry into the smallest normal */
        return (uint16_t)(sign | q);
    }
    /* normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even; a
    ** carry out of the mantissa correctly bumps the exponent. */
    uint32_t r = ax + 0xFFFu + ((ax >> 13) & 1);
    return (uint16_t)(sign | ((r - (112u << 23)) >> 13));
}

/* bfloat16 is the top half of a float. */
float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40);   /* quiet NaN */
    /* round to nearest even on the dropped 16 bits (ggml_compute_fp32_to_bf16); overflow
    ** correctly becomes infinity and subnormals round like any other value */
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

/* ---- helpers of ggml's reference quantizers ---- */

static uint16_t rd16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static float rd_f16(const void *p) { return f16_to_f32(rd16(p)); }

/* ggml's nearest_int: round to nearest even by the 1.5 * 2^23 trick, valid for |v| < 2^22. */
static int nearest_int(float v)
{
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* C's (int8_t)(float) truncation as ggml's Q4 quantizers use it, defined for any input
** (NaN and out-of-range values give lo) instead of undefined. */
static int trunc_to(float v, int lo, int hi)
{
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* The quantizers fill one block at a time in a local struct and copy it out, since rows in a
** file buffer need not be 2-byte aligned. */
static void quantize_q8_0(const float *x, uint8_t *dst, int64_t nb)
{
    blk_q8_0 y[1];
    for (int64_t i = 0; i < nb; i++, x += QK_32, dst += sizeof y) {
        float amax = 0.0f;
        for (int j = 0; j < QK_32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y->d = f32_to_f16(d);
        for (int j = 0; j < QK_32; j++) {
            float v = roundf(x[j] * id);   /* |v| <= 127 for finite input */
            y->qs[j] = (int8_t)(v >= -127.f && v <= 127.f ? (int)v : 0);
        }
        memcpy(dst, y, sizeof y);
    }
}

static void quantize_q4_0(const float *x, uint8_t *dst, int64_t nb)
{
    blk_q4_0 y[1];
    for (int64_t i = 0; i < nb; i++, x += QK_32, dst += sizeof y) {
        /* the value of largest magnitude, with its sign, maps to -8 */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y->d = f32_to_f16(d);
        for (int j = 0; j < QK_32 / 2; j++) {
            int q0 = INFER_MIN(15, trunc_to(x[j] * id + 8.5f, 0, 127));
            int q1 = INFER_MIN(15, trunc_to(x[j + QK_32 / 2] * id + 8.5f, 0, 127));
            y->qs[j] = (uint8_t)(q0 | q1 << 4);
        }
        memcpy(dst, y, sizeof y);
    }
}

static void quantize_q4_1(const float *x, uint8_t *dst, int64_t nb)
{
    blk_q4_1 y[1];
    for (int64_t i = 0; i < nb; i++, x += QK_32, dst += sizeof y) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK_32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y->d = f32_to_f16(d);
        y->m = f32_to_f16(min);
        for (int j = 0; j < QK_32 / 2; j++) {
            int q0 = INFER_MIN(15, trunc_to((x[j] - min) * id + 0.5f, 0, 127));
            int q1 = INFER_MIN(15, trunc_to((x[j + QK_32 / 2] - min) * id + 0.5f, 0, 127));
            y->qs[j] = (uint8_t)(q0 | q1 << 4);
        }
        memcpy(dst, y, sizeof y);
    }
}

/* ggml's make_qkx2_quants: the scale and min (returned as -min in *the_min) of an affine
** nmax-level quantization of x[0..n) minimising the weighted squared error, by trying nstep+1
** scales around the min/max one and solving least squares for each rounding. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)INFER_MAX(0, INFER_MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = INFER_MAX(0, INFER_MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static void quantize_q4_k(const float *x, uint8_t *dst, int64_t nb)
{
    blk_q4_k y[1];
    uint8_t L[QK_K], Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    for (int64_t i = 0; i < nb; i++, x += QK_K, dst += sizeof y) {
        float max_scale = 0, max_min = 0;   /* mins are subtracted, so both are >= 0 */
        for (int j = 0; j < QK_K / 32; j++) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                         -1.f, 0.1f, 20);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        memset(y->scales, 0, sizeof y->scales);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t ls = (uint8_t)INFER_MIN(63, (uint8_t)nearest_int(inv_scale * scales[j]));
            uint8_t lm = (uint8_t)INFER_MIN(63, (uint8_t)nearest_int(inv_min * mins[j]));
            if (j < 4) {
                y->scales[j] = ls;
                y->scales[j + 4] = lm;
            } else {   /* the packing q4k_scale_min undoes */
                y->scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                y->scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                y->scales[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        y->d = f32_to_f16(max_scale / 63.f);
        y->dmin = f32_to_f16(max_min / 63.f);
        /* requantize against the 6-bit scales actually stored */
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            q4k_scale_min(j, y->scales, &sc, &m);
            const float d = f16_to_f32(y->d) * sc;
            if (!d) continue;
            const float dm = f16_to_f32(y->dmin) * m;
            for (int l = 0; l < 32; l++) {
                int q = nearest_int((x[32 * j + l] + dm) / d);
                L[32 * j + l] = (uint8_t)INFER_MAX(0, INFER_MIN(15, q));
            }
        }
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++)
                y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
        memcpy(dst, y, sizeof y);
    }
}

/* ggml's make_qx_quants with rmse_type 1 and no importance weights: a symmetric scale for
** levels -nmax..nmax-1 (stored in L offset by nmax), weighted by x^2, refined over 18 trial
** scales. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) {   /* ggml's GROUP_MAX_EPS: all zero */
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = INFER_MAX(-nmax, INFER_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = INFER_MAX(-nmax, INFER_MIN(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + INFER_MAX(-nmax, INFER_MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quantize_q6_k(const float *x, uint8_t *dst, int64_t nb)
{
    blk_q6_k y[1];
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K, dst += sizeof y) {
        float max_scale = 0, max_abs_scale = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            scales[g] = make_qx_quants(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        memset(y, 0, sizeof y);
        if (max_abs_scale < 1e-15f) {   /* all zero: d = +0 */
            memcpy(dst, y, sizeof y);
            continue;
        }
        float iscale = -128.f / max_scale;
        y->d = f32_to_f16(1 / iscale);
        for (int g = 0; g < QK_K / 16; g++)
            y->scales[g] = (int8_t)INFER_MIN(127, nearest_int(iscale * scales[g]));
        for (int g = 0; g < QK_K / 16; g++) {
            float d = f16_to_f32(y->d) * y->scales[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++) {
                int q = nearest_int(x[16 * g + l] / d);
                L[16 * g + l] = (int8_t)(INFER_MAX(-32, INFER_MIN(31, q)) + 32);
            }
        }
        uint8_t *ql = y->ql, *qh = y->qh;
        for (int h = 0; h < QK_K; h += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int q1 = L[h + l], q2 = L[h + l + 32], q3 = L[h + l + 64], q4 = L[h + l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | (q3 & 0xF) << 4);
                ql[l + 32] = (uint8_t)((q2 & 0xF) | (q4 & 0xF) << 4);
                qh[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
        }
        memcpy(dst, y, sizeof y);
    }
}

void quantize_row(dtype t, const float *src, void *dst, int64_t n)
{
    int64_t nb = n / dtype_block_elems(t);
    switch (t) {
    case DT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case DT_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = f32_to_f16(src[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
        break;
    case DT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = f32_to_bf16(src[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
        break;
    case DT_Q8_0: quantize_q8_0(src, dst, nb); break;
    case DT_Q4_0: quantize_q4_0(src, dst, nb); break;
    case DT_Q4_1: quantize_q4_1(src, dst, nb); break;
    case DT_Q4_K: quantize_q4_k(src, dst, nb); break;
    case DT_Q6_K: quantize_q6_k(src, dst, nb); break;
    }
}

/* ---- dequantization (ggml's dequantize_row_* order) ---- */

void dequantize_row(dtype t, const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    int64_t nb = n / dtype_block_elems(t);
    size_t bb = dtype_block_bytes(t);
    switch (t) {
    case DT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case DT_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(rd16(p + 2 * i));
        return;
    case DT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(rd16(p + 2 * i));
        return;
    case DT_Q8_0:
        for (int64_t i = 0; i < nb; i++, p += bb, dst += QK_32) {
            const float d = rd_f16(p);
            for (int j = 0; j < QK_32; j++) dst[j] = (int8_t)p[2 + j] * d;
        }
        return;
    case DT_Q4_0:
        for (int64_t i = 0; i < nb; i++, p += bb, dst += QK_32) {
            const float d = rd_f16(p);
            for (int j = 0; j < QK_32 / 2; j++) {
                dst[j] = ((p[2 + j] & 0xF) - 8) * d;
                dst[j + QK_32 / 2] = ((p[2 + j] >> 4) - 8) * d;
            }
        }
        return;
    case DT_Q4_1:
        for (int64_t i = 0; i < nb; i++, p += bb, dst += QK_32) {
            const float d = rd_f16(p), m = rd_f16(p + 2);
            for (int j = 0; j < QK_32 / 2; j++) {
                dst[j] = (p[4 + j] & 0xF) * d + m;
                dst[j + QK_32 / 2] = (p[4 + j] >> 4) * d + m;
            }
        }
        return;
    case DT_Q4_K:
        for (int64_t i = 0; i < nb; i++, p += bb) {
            const float d = rd_f16(p), min = rd_f16(p + 2);
            const uint8_t *scales = p + 4, *q = p + 16;
            for (int c = 0; c < QK_K / 64; c++, q += 32) {
                uint8_t sc, m;
                q4k_scale_min(2 * c, scales, &sc, &m);
                const float d1 = d * sc, m1 = min * m;
                q4k_scale_min(2 * c + 1, scales, &sc, &m);
                const float d2 = d * sc, m2 = min * m;
                for (int l = 0; l < 32; l++) *dst++ = d1 * (q[l] & 0xF) - m1;
                for (int l = 0; l < 32; l++) *dst++ = d2 * (q[l] >> 4) - m2;
            }
        }
        return;
    case DT_Q6_K:
        for (int64_t i = 0; i < nb; i++, p += bb) {
            const float d = rd_f16(p + 208);
            const uint8_t *ql = p, *qh = p + 128;
            const int8_t *sc = (const int8_t *)(p + 192);
            for (int h = 0; h < QK_K / 128; h++, ql += 64, qh += 32, sc += 8, dst += 128) {
                for (int l = 0; l < 32; l++) {
                    const int is = l / 16;
                    const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                    const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                    const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                    dst[l] = d * sc[is] * q1;
                    dst[l + 32] = d * sc[is + 2] * q2;
                    dst[l + 64] = d * sc[is + 4] * q3;
                    dst[l + 96] = d * sc[is + 6] * q4;
                }
            }
        }
        return;
    }
}
