/*
** quant_avx2.c — typed matmul kernels for AVX2 + FMA + F16C (any x86-64 since Haswell / Zen 1).
**
** Integer dot products follow llama.cpp's AVX2 path: vpmaddubsw multiplies unsigned by signed
** bytes into pairs of int16, vpmaddwd sums the pairs (or scales them by int16 sub-block scales)
** into int32. Q4 nibbles are already unsigned (0..15); Q8_0's signed weights go through the
** sign trick |w| * (x * sign(w)). No int16 pair can saturate: the activations are in
** [-127, 127] and the unsigned side is at most 128 (|w| of Q8_0), 63 (Q6_K) or 15 (Q4).
**
** Each kernel does one W row against R = 1..2 x rows (a compile-time constant at every call,
** so the R accumulators stay in the 16 ymm registers); a W block is unpacked once per group.
** The order of operations for one (W row, x row) pair does not depend on R, which is what
** makes results batch invariant. Functions carry target attributes: no -march flag needed.
*/
#include "quant.h"

#ifdef QUANT_X86

#include <immintrin.h>
#include <string.h>

#define T2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

INLINE T2 float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE T2 int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

INLINE T2 float hmax_ps(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE T2 float ld_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* unsigned bytes u times signed bytes s, summed in fours into int32 lanes */
INLINE T2 __m256i dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Runs row(jb, i, r, R) over W rows [i0, i1) for x rows [r0, r1) in groups of 2. */
#define ROWS_R2(row)                                                          \
    do {                                                                      \
        int r_ = r0;                                                          \
        for (; r_ + 2 <= r1; r_ += 2)                                         \
            for (int i_ = i0; i_ < i1; i_++) row(jb, i_, r_, 2);              \
        if (r_ < r1)                                                          \
            for (int i_ = i0; i_ < i1; i_++) row(jb, i_, r_, 1);              \
    } while (0)

/* ---- activation quantization: the same bits as quant_act_scalar ---- */

void T2 quant_act_avx2(qact *a, const float *x, int r0, int r1)
{
    const int k = a->k, blk = a->blk, nb = k / blk;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int r = r0; r < r1; r++) {
        for (int b = 0; b < nb; b++) {
            const float *xb = x + (size_t)r * k + (size_t)b * blk;
            int8_t *q = a->qs + (size_t)r * k;
            int16_t *bs = a->bsums + (size_t)r * (k / 16) + (size_t)b * (blk / 16);
            __m256 mx = _mm256_setzero_ps();
            /* max(|x|, mx) returns mx when |x| is NaN: NaN is skipped as in the scalar loop */
            for (int j = 0; j < blk; j += 8) mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xb + j), absmask), mx);
            const float amax = hmax_ps(mx);
            const float id = amax > 0 ? 127.0f / amax : 0.0f;
            const __m256 idv = _mm256_set1_ps(id);
            for (int j = 0; j < blk; j += 32) {
                __m256i v[4];
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    v[c] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 8 * c), idv));
                bs[j / 16] = (int16_t)hsum_epi32(_mm256_add_epi32(v[0], v[1]));
                bs[j / 16 + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(v[2], v[3]));
                /* packs interleave 128-bit lanes; the permute restores element order */
                __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
                p = _mm256_permutevar8x32_epi32(p, perm);
                _mm_storeu_si128((__m128i *)(void *)(q + qact_pos(a, b * blk + j)), _mm256_castsi256_si128(p));
                _mm_storeu_si128((__m128i *)(void *)(q + qact_pos(a, b * blk + j + 16)), _mm256_extracti128_si256(p, 1));
            }
            a->d[(size_t)r * nb + b] = amax / 127.0f;
            if (a->s) a->s[(size_t)r * nb + b] = a->d[(size_t)r * nb + b] * (float)(bs[0] + bs[1]);
        }
    }
}

/* ---- F16 / BF16: widen 8 halves per ymm, fp32 FMA; 4 accumulators per x row taking
** 32-element steps, then 8-element steps into the first, then a zero-padded tail ---- */

INLINE T2 __m256 ld_half8(const uint8_t *p, int bf)
{
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    if (bf) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

INLINE T2 void half_row(const qjob *jb, int i, int r0, int R, int bf)
{
    const int k = jb->k;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const float *x = jb->x + (size_t)r0 * k;
    __m256 acc[2][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
    int j = 0;
    for (; j + 32 <= k; j += 32) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) wv[c] = ld_half8(w + 2 * (j + 8 * c), bf);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                acc[r][c] = _mm256_fmadd_ps(wv[c], _mm256_loadu_ps(x + (size_t)r * k + j + 8 * c), acc[r][c]);
    }
    for (; j + 8 <= k; j += 8) {
        __m256 wv = ld_half8(w + 2 * j, bf);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t)r * k + j), acc[r][0]);
    }
    if (j < k) {
        uint8_t wt[16] = {0};
        memcpy(wt, w + 2 * j, (size_t)(k - j) * 2);
        __m256 wv = ld_half8(wt, bf);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float xt[8] = {0};
            memcpy(xt, x + (size_t)r * k + j, (size_t)(k - j) * sizeof(float));
            acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xt), acc[r][0]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        jb->y[(size_t)(r0 + r) * jb->ldy + i] =
            hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
}

INLINE T2 void f16_row(const qjob *jb, int i, int r0, int R) { half_row(jb, i, r0, R, 0); }
INLINE T2 void bf16_row(const qjob *jb, int i, int r0, int R) { half_row(jb, i, r0, R, 1); }

void T2 quant_rows_f16_avx2(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R2(f16_row); }
void T2 quant_rows_bf16_avx2(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R2(bf16_row); }

/* ---- blocks of 32: Q8_0, Q4_0, Q4_1 ----
** Four blocks per step, their four f16 scales converted with one vcvtph2ps and multiplied by
** the activation scales at once; independent accumulators per step so the FMA latency does
** not serialise the loop. Blocks past the last multiple of 4 go into accumulator 0. Q4_0's -8
** offset and Q4_1's min are summed separately from s = dx sum(q):
** sum_j (dw (q_j - 8)) x_j = dw dx isum - 8 dw s. */

/* 4 f16 fields found at p, p + stride, ... as floats */
INLINE T2 __m128 ld_f16x4(const uint8_t *p, size_t stride)
{
    uint16_t h[4];
    memcpy(&h[0], p, 2);
    memcpy(&h[1], p + stride, 2);
    memcpy(&h[2], p + 2 * stride, 2);
    memcpy(&h[3], p + 3 * stride, 2);
    uint64_t v = (uint64_t)h[0] | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 32 | (uint64_t)h[3] << 48;
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (weights 0..15), then high (16..31) */
INLINE T2 __m256i nibbles32(const uint8_t *p)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

INLINE T2 __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Q8_0: |w| * (x * sign(w)), since the int8 dot product wants one side unsigned */
INLINE T2 void q8_0_row(const qjob *jb, int i, int r0, int R)
{
    const int k = jb->k, nb = k / QK_32;
    const size_t bb = sizeof(blk_q8_0);
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb;
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
    int b = 0;
    for (; b + 4 <= nb; b += 4, w += 4 * bb) {
        const __m128 dw4 = ld_f16x4(w, bb);
        __m256i aw[4], sg[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            sg[c] = ld256(w + c * bb + 2);
            aw[c] = _mm256_abs_epi8(sg[c]);
        }
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            float sc[4];
            _mm_storeu_ps(sc, _mm_mul_ps(dw4, _mm_loadu_ps(xd + (size_t)r * nb + b)));
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m256i xv = _mm256_sign_epi8(ld256(xq + (size_t)r * k + QK_32 * (b + c)), sg[c]);
                __m256i p = dot_u8s8(aw[c], xv);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&sc[c]), acc[r][c]);
            }
        }
    }
    for (; b < nb; b++, w += bb) {
        const float dw = ld_f16(w);
        const __m256i sg = ld256(w + 2), aw = _mm256_abs_epi8(sg);
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            __m256i xv = _mm256_sign_epi8(ld256(xq + (size_t)r * k + QK_32 * b), sg);
            __m256i p = dot_u8s8(aw, xv);
            acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[(size_t)r * nb + b]), acc[r][0]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
        jb->y[(size_t)(r0 + r) * jb->ldy + i] =
            hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
}

void T2 quant_rows_q8_0_avx2(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R2(q8_0_row); }

/* Q4_0 / Q4_1 against paired activations (see qact): the nibbles of blocks A and B loaded as
** one vector give [A 0..15 | B 0..15] (low) and [A 16..31 | B 16..31] (high), matching the
** activation layout, so int32 lanes 0..3 belong to A and 4..7 to B and one convert and one
** FMA with [sA x4 | sB x4] serve both. has_min: 0 = Q4_0, 1 = Q4_1. */
INLINE T2 __m256i pair_dot(__m256i lo, __m256i hi, const int8_t *x)
{
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, ld256(x)), _mm256_maddubs_epi16(hi, ld256(x + 32))),
                             _mm256_set1_epi16(1));
}

INLINE T2 void q4_row(const qjob *jb, int i, int r0, int R, int has_min)
{
    const int k = jb->k, nb = k / QK_32;
    const size_t bb = has_min ? sizeof(blk_q4_1) : sizeof(blk_q4_0), qoff = has_min ? 4 : 2;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb, *xs = jb->xa->s + (size_t)r0 * nb;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i idx01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), idx23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
    __m256 acc[2][2];
    __m128 corr[2];
    float corr1[2];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        corr[r] = _mm_setzero_ps();
        corr1[r] = 0;
    }
    int b = 0;
    for (; b + 4 <= nb; b += 4, w += 4 * bb) {
        const __m128 dw4 = ld_f16x4(w, bb);
        const __m128 c4 = has_min ? ld_f16x4(w + 2, bb) : dw4;
        __m256i lo[2], hi[2];
#pragma GCC unroll 2
        for (int p = 0; p < 2; p++) {
            const uint8_t *qa = w + 2 * p * bb + qoff;
            __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)qa)),
                                                  _mm_loadu_si128((const __m128i *)(const void *)(qa + bb)), 1);
            lo[p] = _mm256_and_si256(raw, m4);
            hi[p] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        }
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const __m256 s8 = _mm256_castps128_ps256(_mm_mul_ps(dw4, _mm_loadu_ps(xd + (size_t)r * nb + b)));
            const __m256 sc[2] = {_mm256_permutevar8x32_ps(s8, idx01), _mm256_permutevar8x32_ps(s8, idx23)};
            corr[r] = _mm_fmadd_ps(c4, _mm_loadu_ps(xs + (size_t)r * nb + b), corr[r]);
#pragma GCC unroll 2
            for (int p = 0; p < 2; p++) {
                __m256i d = pair_dot(lo[p], hi[p], xq + (size_t)r * k + QK_32 * (b + 2 * p));
                acc[r][p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), sc[p], acc[r][p]);
            }
        }
    }
    /* the rest: at most one more pair, then a last odd block, stored in plain order */
    for (; b < nb; b += 2, w += 2 * bb) {
        const int two = b + 1 < nb;
        const float dwa = ld_f16(w), dwb = two ? ld_f16(w + bb) : 0;
        const float ca = has_min ? ld_f16(w + 2) : dwa, cb = two ? (has_min ? ld_f16(w + bb + 2) : dwb) : 0;
        __m256i lo, hi;
        if (two) {
            __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(w + qoff))),
                                                  _mm_loadu_si128((const __m128i *)(const void *)(w + bb + qoff)), 1);
            lo = _mm256_and_si256(raw, m4);
            hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        } else {
            lo = nibbles32(w + qoff);
            hi = _mm256_setzero_si256();
        }
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const int8_t *x = xq + (size_t)r * k + QK_32 * b;
            const float sa = dwa * xd[(size_t)r * nb + b];
            __m256i d;
            __m256 sc;
            if (two) {
                d = pair_dot(lo, hi, x);
                sc = _mm256_setr_m128(_mm_set1_ps(sa), _mm_set1_ps(dwb * xd[(size_t)r * nb + b + 1]));
                corr1[r] += ca * xs[(size_t)r * nb + b];
                corr1[r] += cb * xs[(size_t)r * nb + b + 1];
            } else {
                d = dot_u8s8(lo, ld256(x));
                sc = _mm256_set1_ps(sa);
                corr1[r] += ca * xs[(size_t)r * nb + b];
            }
            acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), sc, acc[r][0]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        float main = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));
        __m128 cs = _mm_add_ps(corr[r], _mm_movehl_ps(corr[r], corr[r]));
        float co = _mm_cvtss_f32(_mm_add_ss(cs, _mm_movehdup_ps(cs))) + corr1[r];
        jb->y[(size_t)(r0 + r) * jb->ldy + i] = has_min ? main + co : main - 8 * co;
    }
}

INLINE T2 void q4_0_row(const qjob *jb, int i, int r0, int R) { q4_row(jb, i, r0, R, 0); }
INLINE T2 void q4_1_row(const qjob *jb, int i, int r0, int R) { q4_row(jb, i, r0, R, 1); }

void T2 quant_rows_q4_0_avx2(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R2(q4_0_row); }
void T2 quant_rows_q4_1_avx2(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R2(q4_1_row); }

/* ---- Q4_K: per 64 weights one 32-byte load gives two sub-blocks (low / high nibbles);
** vpmaddwd applies the 6-bit sub-block scale; mins go through the activation bsums ---- */

/* pshufb indices selecting int16 lane j of an 8-lane vector into all 8 lanes of each half */
INLINE T2 __m256i bcast16_idx(int j)
{
    return _mm256_set1_epi16((short)(j * 2 | (j * 2 + 1) << 8));
}

INLINE T2 void q4_k_row(const qjob *jb, int i, int r0, int R)
{
    const int k = jb->k, nb = k / QK_K;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb;
    const int16_t *xbs = jb->xa->bsums + (size_t)r0 * (k / 16);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256 macc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < nb; b++, w += sizeof(blk_q4_k)) {
        const float d = ld_f16(w), dmin = ld_f16(w + 2);
        uint32_t sw[4];
        q4k_unpack_scales(w + 4, sw);
        const __m128i smv = _mm_setr_epi32((int)sw[0], (int)sw[1], (int)sw[2], (int)sw[3]);
        /* scales as int16 in both 128-bit halves (for pshufb); mins duplicated per pair of
        ** bsums: [m0 m0 m1 m1 .. m7 m7] */
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(smv));
        const __m128i mn8 = _mm_srli_si128(smv, 8);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
        __m256i isum[2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(xbs + (size_t)r * (k / 16) + 16 * b));
            macc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn16)),
                                      _mm256_set1_ps(dmin * xd[(size_t)r * nb + b]), macc[r]);
            isum[r] = _mm256_setzero_si256();
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(const void *)(w + 16 + 32 * c));
            const __m256i lo = _mm256_and_si256(qb, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            const __m256i slo = _mm256_shuffle_epi8(sc16, bcast16_idx(2 * c));
            const __m256i shi = _mm256_shuffle_epi8(sc16, bcast16_idx(2 * c + 1));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const int8_t *xc = xq + (size_t)r * k + QK_K * b + 64 * c;
                __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(const void *)xc));
                __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(const void *)(xc + 32)));
                isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(_mm256_madd_epi16(pl, slo), _mm256_madd_epi16(ph, shi)));
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(d * xd[(size_t)r * nb + b]), acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) jb->y[(size_t)(r0 + r) * jb->ldy + i] = hsum_ps(acc[r]) - hsum_ps(macc[r]);
}

void T2 quant_rows_q4_k_avx2(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R2(q4_k_row); }

/* ---- Q6_K: ql nibbles | qh bit pairs shifted into bits 4..5 give q in 0..63; each 32 weights
** span two groups of 16 with their int8 scales; the -32 goes through the bsums ---- */

INLINE T2 void q6_k_row(const qjob *jb, int i, int r0, int R)
{
    const int k = jb->k, nb = k / QK_K;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb;
    const int16_t *xbs = jb->xa->bsums + (size_t)r0 * (k / 16);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < nb; b++, w += sizeof(blk_q6_k)) {
        const float d = ld_f16(w + 208);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(const void *)(w + 192));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m256i isum[2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(xbs + (size_t)r * (k / 16) + 16 * b));
            isum[r] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        }
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(const void *)(w + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(const void *)(w + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(w + 128 + 32 * h));
            __m256i v[4];
            v[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            v[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
            v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                /* groups 8h + 2c and 8h + 2c + 1: scale bytes -> 8 + 8 int16 lanes */
                const int g = 8 * h + 2 * c;
                const __m128i sel = _mm_setr_epi8((char)g, (char)g, (char)g, (char)g, (char)g, (char)g, (char)g, (char)g,
                                                  (char)(g + 1), (char)(g + 1), (char)(g + 1), (char)(g + 1),
                                                  (char)(g + 1), (char)(g + 1), (char)(g + 1), (char)(g + 1));
                const __m256i scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, sel));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const int8_t *xc = xq + (size_t)r * k + QK_K * b + 128 * h + 32 * c;
                    __m256i p = _mm256_maddubs_epi16(v[c], _mm256_loadu_si256((const __m256i *)(const void *)xc));
                    isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, scv));
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(d * xd[(size_t)r * nb + b]), acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) jb->y[(size_t)(r0 + r) * jb->ldy + i] = hsum_ps(acc[r]);
}

void T2 quant_rows_q6_k_avx2(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R2(q6_k_row); }

#endif /* QUANT_X86 */
