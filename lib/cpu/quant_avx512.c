/*
** quant_avx512.c — typed matmul kernels for AVX-512 F/BW/VL + VNNI (Ice Lake, Zen 4 and later).
**
** VNNI's vpdpbusd multiplies unsigned by signed bytes and adds groups of four straight into
** int32 lanes (llama.cpp's AVX512VNNI path); vpdpwssd does the same for int16 pairs, which
** applies the K-quants' sub-block scales to vpmaddubsw's pair sums in one instruction. As on
** AVX2, Q4 nibbles are unsigned as they are and Q8_0 uses |w| * (x * sign(w)).
**
** Blocks of 32 (Q8_0, Q4_0, Q4_1) are handled a block per ymm (EVEX-encoded VNNI), since each
** block carries its own scale; the K-quants take 64 weights per zmm. F16/BF16 widen 8 halves
** per ymm (see half_row for why not 16). One W row against R = 1..4 x rows at a time; the per-pair order does not depend on
** R (batch invariance). Functions carry target attributes: no -march flag needed.
*/
#include "quant.h"

#ifdef QUANT_X86

#include <immintrin.h>
#include <string.h>

#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

INLINE T5 float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE T5 float ld_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

INLINE T5 __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
INLINE T5 __m512i ld512(const void *p) { return _mm512_loadu_si512(p); }

/* Runs row(jb, i, r, R) over W rows [i0, i1) for x rows [r0, r1) in groups of up to 4. */
#define ROWS_R4(row)                                                          \
    do {                                                                      \
        int r_ = r0;                                                          \
        for (; r_ + 4 <= r1; r_ += 4)                                         \
            for (int i_ = i0; i_ < i1; i_++) row(jb, i_, r_, 4);              \
        switch (r1 - r_) {                                                    \
        case 3: for (int i_ = i0; i_ < i1; i_++) row(jb, i_, r_, 3); break;   \
        case 2: for (int i_ = i0; i_ < i1; i_++) row(jb, i_, r_, 2); break;   \
        case 1: for (int i_ = i0; i_ < i1; i_++) row(jb, i_, r_, 1); break;   \
        default: break;                                                       \
        }                                                                     \
    } while (0)

/* ---- activation quantization: the same bits as quant_act_scalar ---- */

void T5 quant_act_avx512(qact *a, const float *x, int r0, int r1)
{
    const int k = a->k, blk = a->blk, nb = k / blk;
    for (int r = r0; r < r1; r++) {
        for (int b = 0; b < nb; b++) {
            const float *xb = x + (size_t)r * k + (size_t)b * blk;
            int8_t *q = a->qs + (size_t)r * k;
            int16_t *bs = a->bsums + (size_t)r * (k / 16) + (size_t)b * (blk / 16);
            __m512 mx = _mm512_setzero_ps();
            /* max(|x|, mx) returns mx when |x| is NaN: NaN is skipped as in the scalar loop */
            for (int j = 0; j < blk; j += 16) mx = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + j)), mx);
            const float amax = _mm512_reduce_max_ps(mx);
            const float id = amax > 0 ? 127.0f / amax : 0.0f;
            const __m512 idv = _mm512_set1_ps(id);
            for (int j = 0; j < blk; j += 16) {
                __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + j), idv));
                _mm_storeu_si128((__m128i *)(void *)(q + qact_pos(a, b * blk + j)), _mm512_cvtepi32_epi8(v));
                bs[j / 16] = (int16_t)_mm512_reduce_add_epi32(v);
            }
            a->d[(size_t)r * nb + b] = amax / 127.0f;
            if (a->s) a->s[(size_t)r * nb + b] = a->d[(size_t)r * nb + b] * (float)(bs[0] + bs[1]);
        }
    }
}

/* ---- F16 / BF16: 8 halves widened per ymm, fp32 FMA; 4 accumulators per x row taking
** 32-element steps, then 8-element steps into the first, then a masked tail. ymm rather than
** zmm: on Zen 4 the zmm version computes as fast in cache but streams weights from DRAM ~30%
** slower (measured, m = 1, stories110M shapes); the 32 registers still allow R = 4. ---- */

INLINE T5 __m256 widen8(__m128i h, int bf)
{
    if (bf) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

INLINE T5 void half_row(const qjob *jb, int i, int r0, int R, int bf)
{
    const int k = jb->k;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const float *x = jb->x + (size_t)r0 * k;
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
    int j = 0;
    for (; j + 32 <= k; j += 32) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) wv[c] = widen8(_mm_loadu_si128((const __m128i *)(const void *)(w + 2 * (j + 8 * c))), bf);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                acc[r][c] = _mm256_fmadd_ps(wv[c], _mm256_loadu_ps(x + (size_t)r * k + j + 8 * c), acc[r][c]);
    }
    for (; j < k; j += 8) {
        const __mmask8 mask = k - j >= 8 ? 0xFF : (__mmask8)((1u << (k - j)) - 1);
        __m256 wv = widen8(_mm_maskz_loadu_epi16(mask, w + 2 * j), bf);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r][0] = _mm256_fmadd_ps(wv, _mm256_maskz_loadu_ps(mask, x + (size_t)r * k + j), acc[r][0]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        jb->y[(size_t)(r0 + r) * jb->ldy + i] =
            hsum256(_mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
}

INLINE T5 void f16_row(const qjob *jb, int i, int r0, int R) { half_row(jb, i, r0, R, 0); }
INLINE T5 void bf16_row(const qjob *jb, int i, int r0, int R) { half_row(jb, i, r0, R, 1); }

void T5 quant_rows_f16_avx512(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R4(f16_row); }
void T5 quant_rows_bf16_avx512(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R4(bf16_row); }

/* ---- blocks of 32: Q8_0, Q4_0, Q4_1 ----
** Four blocks per step, their four f16 scales converted with one vcvtph2ps and multiplied by
** the activation scales at once; independent accumulators per step so the FMA latency does
** not serialise the loop. Blocks past the last multiple of 4 go into accumulator 0. Q4_0's -8
** offset and Q4_1's min are summed separately from s = dx sum(q):
** sum_j (dw (q_j - 8)) x_j = dw dx isum - 8 dw s. */

/* 4 f16 fields found at p, p + stride, ... as floats */
INLINE T5 __m128 ld_f16x4(const uint8_t *p, size_t stride)
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
INLINE T5 __m256i nibbles32(const uint8_t *p)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* Q8_0: |w| * (x * sign(w)), since the int8 dot product wants one side unsigned */
INLINE T5 void q8_0_row(const qjob *jb, int i, int r0, int R)
{
    const int k = jb->k, nb = k / QK_32;
    const size_t bb = sizeof(blk_q8_0);
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb;
    __m256 acc[4][4];
#pragma GCC unroll 4
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
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float sc[4];
            _mm_storeu_ps(sc, _mm_mul_ps(dw4, _mm_loadu_ps(xd + (size_t)r * nb + b)));
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m256i xv = _mm256_sign_epi8(ld256(xq + (size_t)r * k + QK_32 * (b + c)), sg[c]);
                __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw[c], xv);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&sc[c]), acc[r][c]);
            }
        }
    }
    for (; b < nb; b++, w += bb) {
        const float dw = ld_f16(w);
        const __m256i sg = ld256(w + 2), aw = _mm256_abs_epi8(sg);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256i xv = _mm256_sign_epi8(ld256(xq + (size_t)r * k + QK_32 * b), sg);
            __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, xv);
            acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[(size_t)r * nb + b]), acc[r][0]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        jb->y[(size_t)(r0 + r) * jb->ldy + i] =
            hsum256(_mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
}

void T5 quant_rows_q8_0_avx512(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R4(q8_0_row); }

/* Q4_0 / Q4_1 against paired activations (see qact): the nibbles of blocks A and B loaded as
** one vector give [A 0..15 | B 0..15] (low) and [A 16..31 | B 16..31] (high), matching the
** activation layout, so int32 lanes 0..3 belong to A and 4..7 to B and one convert and one
** FMA with [sA x4 | sB x4] serve both. has_min: 0 = Q4_0, 1 = Q4_1. */
INLINE T5 __m256i pair_dot(__m256i lo, __m256i hi, const int8_t *x)
{
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, ld256(x)), hi, ld256(x + 32));
}

INLINE T5 void q4_row(const qjob *jb, int i, int r0, int R, int has_min)
{
    const int k = jb->k, nb = k / QK_32;
    const size_t bb = has_min ? sizeof(blk_q4_1) : sizeof(blk_q4_0), qoff = has_min ? 4 : 2;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb, *xs = jb->xa->s + (size_t)r0 * nb;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i idx01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), idx23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
    __m256 acc[4][2];
    __m128 corr[4];
    float corr1[4];
#pragma GCC unroll 4
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
#pragma GCC unroll 4
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
#pragma GCC unroll 4
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
                d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, ld256(x));
                sc = _mm256_set1_ps(sa);
                corr1[r] += ca * xs[(size_t)r * nb + b];
            }
            acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), sc, acc[r][0]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float main = hsum256(_mm256_add_ps(acc[r][0], acc[r][1]));
        __m128 cs = _mm_add_ps(corr[r], _mm_movehl_ps(corr[r], corr[r]));
        float co = _mm_cvtss_f32(_mm_add_ss(cs, _mm_movehdup_ps(cs))) + corr1[r];
        jb->y[(size_t)(r0 + r) * jb->ldy + i] = has_min ? main + co : main - 8 * co;
    }
}

INLINE T5 void q4_0_row(const qjob *jb, int i, int r0, int R) { q4_row(jb, i, r0, R, 0); }
INLINE T5 void q4_1_row(const qjob *jb, int i, int r0, int R) { q4_row(jb, i, r0, R, 1); }

void T5 quant_rows_q4_0_avx512(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R4(q4_0_row); }
void T5 quant_rows_q4_1_avx512(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R4(q4_1_row); }

/* ---- Q4_K: 32 bytes of nibbles -> 64 consecutive weights (sub-blocks 2c, 2c+1) per zmm ---- */

INLINE T5 void q4_k_row(const qjob *jb, int i, int r0, int R)
{
    const int k = jb->k, nb = k / QK_K;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb;
    const int16_t *xbs = jb->xa->bsums + (size_t)r0 * (k / 16);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    /* int16 lane selectors: sub-block 2c in lanes 0..15, 2c + 1 in lanes 16..31 */
    __m512i sel[4];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++)
        sel[c] = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)(2 * c)), _mm512_set1_epi16((short)(2 * c + 1)));
    __m512 acc[4];
    __m256 macc[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), macc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++, w += sizeof(blk_q4_k)) {
        const float d = ld_f16(w), dmin = ld_f16(w + 2);
        uint32_t sw[4];
        q4k_unpack_scales(w + 4, sw);
        const __m128i smv = _mm_setr_epi32((int)sw[0], (int)sw[1], (int)sw[2], (int)sw[3]);
        const __m512i sc16 = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(smv));
        const __m128i mn8 = _mm_srli_si128(smv, 8);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));   /* m0 m0 m1 m1 .. */
        __m512i isum[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256i bs = ld256(xbs + (size_t)r * (k / 16) + 16 * b);
            macc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn16)),
                                      _mm256_set1_ps(dmin * xd[(size_t)r * nb + b]), macc[r]);
            isum[r] = _mm512_setzero_si512();
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i qb = ld256(w + 16 + 32 * c);
            const __m512i q = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(qb), _mm256_srli_epi16(qb, 4), 1), m4);
            const __m512i scv = _mm512_permutexvar_epi16(sel[c], sc16);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i p = _mm512_maddubs_epi16(q, ld512(xq + (size_t)r * k + QK_K * b + 64 * c));
                isum[r] = _mm512_dpwssd_epi32(isum[r], p, scv);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(d * xd[(size_t)r * nb + b]), acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        jb->y[(size_t)(r0 + r) * jb->ldy + i] = _mm512_reduce_add_ps(acc[r]) - hsum256(macc[r]);
}

void T5 quant_rows_q4_k_avx512(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R4(q4_k_row); }

/* ---- Q6_K: a half of 128 weights is one 64-byte ql load (low nibbles: weights 0..63, high:
** 64..127) and 32 bytes of qh, whose bit pairs land in bits 4..5 after a shift and mask ---- */

INLINE T5 void q6_k_row(const qjob *jb, int i, int r0, int R)
{
    const int k = jb->k, nb = k / QK_K;
    const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
    const int8_t *xq = jb->xa->qs + (size_t)r0 * k;
    const float *xd = jb->xa->d + (size_t)r0 * nb;
    const int16_t *xbs = jb->xa->bsums + (size_t)r0 * (k / 16);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* int16 lane selectors: groups 4t .. 4t+3, 8 lanes (16 weights) each */
    __m512i sel[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
        sel[t] = _mm512_add_epi16(_mm512_set1_epi16((short)(4 * t)),
                                  _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
                                                                     19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
                                                                     7, 6, 5, 4, 3, 2, 1, 0), 3));
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++, w += sizeof(blk_q6_k)) {
        const float d = ld_f16(w + 208);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + 192)));
        const __m512i sc16z = _mm512_zextsi256_si512(sc16);
        __m512i isum[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256i corr = _mm256_madd_epi16(ld256(xbs + (size_t)r * (k / 16) + 16 * b), sc16);
            isum[r] = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5)));
        }
        for (int h = 0; h < 2; h++) {
            const __m512i L = ld512(w + 64 * h);
            const __m256i qh = ld256(w + 128 + 32 * h);
            const __m512i hlo = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_slli_epi16(qh, 4)), _mm256_slli_epi16(qh, 2), 1), m30);
            const __m512i hhi = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1), m30);
            const __m512i vlo = _mm512_or_si512(_mm512_and_si512(L, m4), hlo);
            const __m512i vhi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4), hhi);
            const __m512i slo = _mm512_permutexvar_epi16(sel[2 * h], sc16z);
            const __m512i shi = _mm512_permutexvar_epi16(sel[2 * h + 1], sc16z);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const int8_t *xh = xq + (size_t)r * k + QK_K * b + 128 * h;
                isum[r] = _mm512_dpwssd_epi32(isum[r], _mm512_maddubs_epi16(vlo, ld512(xh)), slo);
                isum[r] = _mm512_dpwssd_epi32(isum[r], _mm512_maddubs_epi16(vhi, ld512(xh + 64)), shi);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(d * xd[(size_t)r * nb + b]), acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) jb->y[(size_t)(r0 + r) * jb->ldy + i] = _mm512_reduce_add_ps(acc[r]);
}

void T5 quant_rows_q6_k_avx512(const qjob *jb, int i0, int i1, int r0, int r1) { ROWS_R4(q6_k_row); }

#endif /* QUANT_X86 */
