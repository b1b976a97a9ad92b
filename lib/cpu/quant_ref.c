/*
** quant_ref.c — the plain-C level of the typed matmul, the activation quantizer every level
** must match bit for bit, and the fp32 reference (ops_ref_matmul_t).
**
** The scalar kernels do exactly what the SIMD ones do, one element at a time: an integer dot
** product per weight block against the int8 activations, then one float multiply-add per block
** with the two scales. They are the portable fallback (non-x86, or x86 without AVX2) and the
** readable statement of each format's dot product; see quant.h for the activation layout.
*/
#include "quant.h"

#include <math.h>
#include <string.h>

static float ld_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

static float ld_bf16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return bf16_to_f32(h);
}

/* ---- activation quantization ---- */

void quant_act_scalar(qact *a, const float *x, int r0, int r1)
{
    const int k = a->k, blk = a->blk, nb = k / blk;
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * k;
        int8_t *q = a->qs + (size_t)r * k;
        int16_t *bs = a->bsums + (size_t)r * (k / 16);
        for (int b = 0; b < nb; b++) {
            const float *xb = xr + (size_t)b * blk;
            float amax = 0.0f;
            for (int j = 0; j < blk; j++) {
                float v = fabsf(xb[j]);
                if (v > amax) amax = v;   /* NaN never wins, as in the SIMD max */
            }
            const float id = amax > 0 ? 127.0f / amax : 0.0f;
            a->d[(size_t)r * nb + b] = amax / 127.0f;
            /* |x * id| <= 127 up to rounding, so no clamp; lrintf rounds to nearest even like
            ** cvtps2dq, and a NaN gives the same 0 that vpmovdb's truncation gives there */
            for (int g = 0; g < blk / 16; g++) {
                int s = 0;
                int8_t *o = q + qact_pos(a, b * blk + 16 * g);   /* runs of 16 stay contiguous */
                for (int j = 0; j < 16; j++) {
                    o[j] = (int8_t)(lrintf(xb[16 * g + j] * id) & 0xFF);
                    s += o[j];
                }
                bs[b * (blk / 16) + g] = (int16_t)s;
            }
            if (a->s)
                a->s[(size_t)r * nb + b] =
                    a->d[(size_t)r * nb + b] * (float)(bs[2 * b] + bs[2 * b + 1]);
        }
    }
}

/* ---- F16 / BF16: widen and multiply in fp32, 8 partial sums (lane j of the SIMD kernels'
** order is not reproduced: each level is held to the reference, not to each other) ---- */

static void rows_half(const qjob *jb, int i0, int i1, int r0, int r1, int bf)
{
    const int k = jb->k;
    for (int r = r0; r < r1; r++) {
        const float *xr = jb->x + (size_t)r * k;
        for (int i = i0; i < i1; i++) {
            const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
            float s[8] = {0};
            int j = 0;
            for (; j + 8 <= k; j += 8)
                for (int l = 0; l < 8; l++)
                    s[l] += (bf ? ld_bf16(w + 2 * (j + l)) : ld_f16(w + 2 * (j + l))) * xr[j + l];
            for (; j < k; j++) s[0] += (bf ? ld_bf16(w + 2 * j) : ld_f16(w + 2 * j)) * xr[j];
            jb->y[(size_t)r * jb->ldy + i] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        }
    }
}

void quant_rows_f16_scalar(const qjob *jb, int i0, int i1, int r0, int r1)
{
    rows_half(jb, i0, i1, r0, r1, 0);
}

void quant_rows_bf16_scalar(const qjob *jb, int i0, int i1, int r0, int r1)
{
    rows_half(jb, i0, i1, r0, r1, 1);
}

/* ---- blocks of 32 against int8 activations in blocks of 32 ---- */

/* sum over blocks of (dw * dx) * isum; Q4_0's -8 offset and Q4_1's min come from the
** activation block sums s = dx * sum(q): sum_j (dw (q_j - 8)) x_j = dw dx isum - 8 dw s. */
void quant_rows_q8_0_scalar(const qjob *jb, int i0, int i1, int r0, int r1)
{
    const int k = jb->k, nb = k / QK_32;
    for (int r = r0; r < r1; r++) {
        const int8_t *xq = jb->xa->qs + (size_t)r * k;
        const float *xd = jb->xa->d + (size_t)r * nb;
        for (int i = i0; i < i1; i++) {
            const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
            float acc = 0;
            for (int b = 0; b < nb; b++, w += sizeof(blk_q8_0)) {
                const int8_t *q = (const int8_t *)(w + 2), *xb = xq + QK_32 * b;
                int isum = 0;
                for (int j = 0; j < QK_32; j++) isum += q[j] * xb[j];
                acc += ld_f16(w) * xd[b] * (float)isum;
            }
            jb->y[(size_t)r * jb->ldy + i] = acc;
        }
    }
}

static void rows_q4_01(const qjob *jb, int i0, int i1, int r0, int r1, int has_min)
{
    const int k = jb->k, nb = k / QK_32;
    const size_t bb = has_min ? sizeof(blk_q4_1) : sizeof(blk_q4_0);
    const int qoff = has_min ? 4 : 2;
    for (int r = r0; r < r1; r++) {
        const int8_t *xq = jb->xa->qs + (size_t)r * k;
        const float *xd = jb->xa->d + (size_t)r * nb, *xs = jb->xa->s + (size_t)r * nb;
        for (int i = i0; i < i1; i++) {
            const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
            float acc = 0, corr = 0;
            for (int b = 0; b < nb; b++, w += bb) {
                const uint8_t *q = w + qoff;
                const int8_t *xlo = xq + qact_pos(jb->xa, QK_32 * b), *xhi = xq + qact_pos(jb->xa, QK_32 * b + 16);
                int isum = 0;
                for (int j = 0; j < QK_32 / 2; j++) isum += (q[j] & 0xF) * xlo[j] + (q[j] >> 4) * xhi[j];
                const float dw = ld_f16(w);
                acc += dw * xd[b] * (float)isum;
                corr += (has_min ? ld_f16(w + 2) : dw) * xs[b];
            }
            jb->y[(size_t)r * jb->ldy + i] = has_min ? acc + corr : acc - 8 * corr;
        }
    }
}

void quant_rows_q4_0_scalar(const qjob *jb, int i0, int i1, int r0, int r1)
{
    rows_q4_01(jb, i0, i1, r0, r1, 0);
}

void quant_rows_q4_1_scalar(const qjob *jb, int i0, int i1, int r0, int r1)
{
    rows_q4_01(jb, i0, i1, r0, r1, 1);
}

/* ---- K-quants against int8 activations in blocks of 256 (block_q8_K) ---- */

/* Q4_K: sum_j d sc_j dx sum_l q x  -  dmin dx sum_j mn_j (bsum_2j + bsum_2j+1) */
void quant_rows_q4_k_scalar(const qjob *jb, int i0, int i1, int r0, int r1)
{
    const int k = jb->k, nb = k / QK_K;
    for (int r = r0; r < r1; r++) {
        const int8_t *xq = jb->xa->qs + (size_t)r * k;
        const float *xd = jb->xa->d + (size_t)r * nb;
        const int16_t *xbs = jb->xa->bsums + (size_t)r * (k / 16);
        for (int i = i0; i < i1; i++) {
            const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
            float acc = 0, macc = 0;
            for (int b = 0; b < nb; b++, w += sizeof(blk_q4_k)) {
                uint32_t sw[4];
                uint8_t sm[16];
                q4k_unpack_scales(w + 4, sw);
                memcpy(sm, sw, sizeof sm);   /* bytes 0..7 scales, 8..15 mins */
                const uint8_t *q = w + 16;
                const int8_t *xb = xq + QK_K * b;
                const int16_t *bs = xbs + 16 * b;
                int isum = 0, msum = 0;
                for (int c = 0; c < 4; c++) {
                    int lo = 0, hi = 0;
                    for (int l = 0; l < 32; l++) {
                        lo += (q[32 * c + l] & 0xF) * xb[64 * c + l];
                        hi += (q[32 * c + l] >> 4) * xb[64 * c + 32 + l];
                    }
                    isum += sm[2 * c] * lo + sm[2 * c + 1] * hi;
                }
                for (int j = 0; j < 8; j++) msum += sm[8 + j] * (bs[2 * j] + bs[2 * j + 1]);
                acc += ld_f16(w) * xd[b] * (float)isum;
                macc += ld_f16(w + 2) * xd[b] * (float)msum;
            }
            jb->y[(size_t)r * jb->ldy + i] = acc - macc;
        }
    }
}

/* Q6_K: sum_g d sc_g dx sum_l (q - 32) x, the -32 taken out through the group sums. */
void quant_rows_q6_k_scalar(const qjob *jb, int i0, int i1, int r0, int r1)
{
    const int k = jb->k, nb = k / QK_K;
    for (int r = r0; r < r1; r++) {
        const int8_t *xq = jb->xa->qs + (size_t)r * k;
        const float *xd = jb->xa->d + (size_t)r * nb;
        const int16_t *xbs = jb->xa->bsums + (size_t)r * (k / 16);
        for (int i = i0; i < i1; i++) {
            const uint8_t *w = jb->w + (size_t)i * jb->row_bytes;
            float acc = 0;
            for (int b = 0; b < nb; b++, w += sizeof(blk_q6_k)) {
                const int8_t *sc = (const int8_t *)(w + 192), *xb = xq + QK_K * b;
                uint8_t q6[QK_K];
                for (int h = 0; h < 2; h++) {
                    const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
                    uint8_t *o = q6 + 128 * h;
                    for (int l = 0; l < 32; l++) {
                        o[l] = (uint8_t)((ql[l] & 0xF) | (qh[l] & 3) << 4);
                        o[l + 32] = (uint8_t)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4);
                        o[l + 64] = (uint8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
                        o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
                    }
                }
                int isum = 0;
                for (int g = 0; g < 16; g++) {
                    int s = 0;
                    for (int l = 0; l < 16; l++) s += q6[16 * g + l] * xb[16 * g + l];
                    isum += sc[g] * (s - 32 * xbs[16 * b + g]);
                }
                acc += ld_f16(w + 208) * xd[b] * (float)isum;
            }
            jb->y[(size_t)r * jb->ldy + i] = acc;
        }
    }
}

/* ---- the fp32 reference ---- */

void ops_ref_matmul_t(float *y, const float *x, const tensor *w, int m)
{
    const int64_t n = w->n_rows, k = w->n_cols;
    const int be = dtype_block_elems(w->type);
    const size_t row_bytes = dtype_row_bytes(w->type, k), bb = dtype_block_bytes(w->type);
    /* float types have 1-element "blocks": dequantize them in runs of 256 */
    const int run = be == 1 ? 256 : be;
    float buf[256];
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)i * row_bytes;
        for (int r = 0; r < m; r++) {
            const float *xr = x + (size_t)r * k;
            double s = 0;
            for (int64_t j = 0; j < k; j += run) {
                int len = (int)INFER_MIN((int64_t)run, k - j);
                dequantize_row(w->type, row + (size_t)(j / be) * bb, buf, len);
                for (int l = 0; l < len; l++) s += (double)buf[l] * xr[j + l];
            }
            y[(size_t)r * n + i] = (float)s;
        }
    }
}
