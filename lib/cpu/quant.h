/*
** quant.h — matmul against weights of any dtype (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K,
** Q6_K): y[m][n] = sum_k x[m][k] * W[n][k], W a tensor of n rows of k.
**
** F16/BF16 rows are widened to fp32 in registers and multiplied in fp32. For the quantized
** types the activations are quantized once per call to int8 (llama.cpp's scheme: per block of
** 32 for Q8_0/Q4_0/Q4_1 as block_q8_0/q8_1, per 256 with sums of 16 for the K-quants as
** block_q8_K), and each weight block meets them in an integer dot product: AVX-512 VNNI
** (vpdpbusd / vpdpwssd), AVX2 (vpmaddubsw + vpmaddwd) or plain C, picked at run time from
** CPUID, so one build runs on any x86-64. The block results are scaled and summed in fp32.
**
** Batch invariance: each output element is one (W row, x row) dot product done in a fixed
** order whatever m, the tiling or the thread count; so row r of an m = 5 call equals, bit for
** bit, the same row computed alone (at the same SIMD level).
**
** Files: quant.c (dispatch, threading, scratch), quant_ref.c (plain C kernels, activation
** quantizer, the fp32 reference), quant_avx2.c, quant_avx512.c.
*/
#ifndef INFER_QUANT_H
#define INFER_QUANT_H

#include "../tensor.h"
#include "threadpool.h"

typedef enum quant_level {
    QUANT_SCALAR = 0,   /* plain C: any CPU */
    QUANT_AVX2 = 1,     /* AVX2 + FMA + F16C (Haswell, Zen 1 and later) */
    QUANT_AVX512 = 2    /* AVX-512 F/BW/VL + VNNI + FMA + F16C (Ice Lake, Zen 4 and later) */
} quant_level;

/* The best level this CPU and OS support (libgcc checks XCR0, so no zmm without OS support). */
quant_level quant_detect(void);
const char *quant_level_name(quant_level level);

/* y (m rows of n = w->n_rows) = x (m rows of k = w->n_cols) times W^T. Threaded over the
** rows of W; W is streamed from memory once per call. DT_F32 goes to ops_matmul. Never fails:
** scratch for m rows of quantized activations lives on the stack when small (decode) and is
** malloc'd otherwise; if that fails the rows are done in stack-sized groups. */
void ops_matmul_t(threadpool *tp, float *y, const float *x, const tensor *w, int m);
/* The same at a forced level (lowered to quant_detect() when above it): tests and benches. */
void ops_matmul_t_level(quant_level level, threadpool *tp, float *y, const float *x,
                        const tensor *w, int m);
/* Reference: each W block dequantized with dequantize_row, dotted with x in double. No
** activation quantization: the ground truth the fast paths are held to. Single thread. */
void ops_ref_matmul_t(float *y, const float *x, const tensor *w, int m);

/* ---- internals shared by quant*.c, the tests and the bench ---- */

/* m rows of k activations quantized to int8 in blocks of blk (32 or 256):
** x[r][j] ~= d[r][j / blk] * q[r][j], q[r][j] stored at qs[r * k + qact_pos(a, j)].
** bsums[r][g] = sum of q over group g of 16 (ggml's block_q8_K.bsums); for blk == 32 also
** s[r][b] = d * (sum of q over block b) (block_q8_1's s).
** With `pairs` (Q4_0 / Q4_1), blocks 2p and 2p+1 are stored interleaved by halves: A0..15,
** B0..15, A16..31, B16..31. That is how a Q4 block splits its weights (low nibbles 0..15, high
** 16..31), so one 32-byte load of two blocks' nibbles meets its activations with no shuffle and
** one convert and FMA serve both blocks. A last odd block stays in order. */
typedef struct qact {
    int8_t *qs;
    float *d;
    float *s;          /* NULL unless blk == 32 */
    int16_t *bsums;
    int k, blk, pairs;
} qact;

/* Bytes of scratch for m rows (the arrays are 64-byte aligned within it). */
size_t qact_bytes(int m, int k, int blk);
void qact_init(qact *a, void *mem, int m, int k, int blk, int pairs);

/* Where element j of a row is stored (see qact). */
static inline int qact_pos(const qact *a, int j)
{
    const int b = j / 32, o = j % 32;
    if (!a->pairs || (b | 1) >= a->k / 32) return j;
    return (b & ~1) * 32 + (o / 16) * 32 + (b & 1) * 16 + o % 16;
}
/* Quantize x rows [r0, r1) into a. Every level gives the same bits: d = amax / 127,
** q = round-to-nearest-even(x * (127 / amax)). */
void quant_act(quant_level level, qact *a, const float *x, int r0, int r1);
/* Activation block size for a weight type (32 or 256; 0 for float types), and whether it uses
** the paired layout. */
int quant_act_blk(dtype t);
int quant_act_pairs(dtype t);

/* One call computes y[r * ldy + i] for W rows i in [i0, i1) and x rows r in [r0, r1). */
typedef struct qjob {
    float *y;
    int ldy;
    const float *x;      /* F16/BF16: m rows of k floats */
    const qact *xa;      /* quantized types */
    const uint8_t *w;    /* row i starts at w + i * row_bytes */
    size_t row_bytes;
    int k;
} qjob;
typedef void (*quant_rows_fn)(const qjob *jb, int i0, int i1, int r0, int r1);

/* The kernel for (type, level); NULL for DT_F32 (ops_matmul's) and unknown types. */
quant_rows_fn quant_kernel(dtype t, quant_level level);

void quant_rows_f16_scalar(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_bf16_scalar(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q8_0_scalar(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_0_scalar(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_1_scalar(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_k_scalar(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q6_k_scalar(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_act_scalar(qact *a, const float *x, int r0, int r1);

#if defined(__x86_64__) && defined(__GNUC__)
#define QUANT_X86 1
void quant_rows_f16_avx2(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_bf16_avx2(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q8_0_avx2(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_0_avx2(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_1_avx2(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_k_avx2(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q6_k_avx2(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_act_avx2(qact *a, const float *x, int r0, int r1);

void quant_rows_f16_avx512(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_bf16_avx512(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q8_0_avx512(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_0_avx512(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_1_avx512(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q4_k_avx512(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_rows_q6_k_avx512(const qjob *jb, int i0, int i1, int r0, int r1);
void quant_act_avx512(qact *a, const float *x, int r0, int r1);
#endif

/* Q4_K's 12 packed bytes as 8 scales (the bytes of o[0], o[1]) and 8 mins (o[2], o[3]), little
** endian: the q4k_scale_min layout undone for all 8 sub-blocks at once with word-wide masks, as
** llama.cpp's vec_dot_q4_K does with its utmp[] trick. Words, not bytes, so SIMD callers can
** build a vector from registers (a vector load of four just-stored words would stall). */
static inline void q4k_unpack_scales(const uint8_t *packed, uint32_t o[4])
{
    uint32_t u[3];
    __builtin_memcpy(u, packed, 12);
    o[0] = u[0] & 0x3F3F3F3Fu;                                                /* scales 0..3 */
    o[1] = (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 6) & 0x03030303u) << 4;           /* scales 4..7 */
    o[2] = u[1] & 0x3F3F3F3Fu;                                                /* mins 0..3 */
    o[3] = ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 6) & 0x03030303u) << 4;    /* mins 4..7 */
}

#endif
