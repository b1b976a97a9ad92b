/*
** dtype.h — element types of weight tensors: sizes, block layouts, conversions.
**
** The numeric values are GGML's type ids (the GGUF spec's ggml_type), so GGUF tensor infos
** map directly. Quantized types store rows as consecutive blocks (ggml's layouts):
**   Q8_0  32 weights: f16 d, int8 q[32]                       w = d * q
**   Q4_0  32 weights: f16 d, uint8 qs[16] (low nibbles = 0..15, high = 16..31)  w = d * (q - 8)
**   Q4_1  32 weights: f16 d, f16 m, uint8 qs[16]              w = d * q + m
**   Q4_K  256 weights: f16 d, f16 dmin, uint8 scales[12] (8 x 6-bit scale + 6-bit min), uint8 qs[128]
**   Q6_K  256 weights: uint8 ql[128], uint8 qh[64], int8 scales[16], f16 d
** A row's length must be a multiple of the type's block size.
*/
#ifndef INFER_DTYPE_H
#define INFER_DTYPE_H

#include "internal.h"

typedef enum dtype {
    DT_F32 = 0,
    DT_F16 = 1,
    DT_Q4_0 = 2,
    DT_Q4_1 = 3,
    DT_Q8_0 = 8,
    DT_Q4_K = 12,
    DT_Q6_K = 14,
    DT_BF16 = 30
} dtype;

/* 1 for types this build knows, 0 otherwise (e.g. a GGUF tensor of another ggml type). */
int dtype_known(int t);
const char *dtype_name(dtype t);
int dtype_block_elems(dtype t);      /* 1, 32 or 256 */
size_t dtype_block_bytes(dtype t);   /* bytes of one block */
/* Bytes of a row of n elements (n a multiple of the block size; 0 otherwise). */
size_t dtype_row_bytes(dtype t, int64_t n);

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);          /* round to nearest even */
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);         /* round to nearest even */

/* ggml's block layouts (ggml-common.h: block_q8_0, block_q4_0, block_q4_1, block_q4_K,
** block_q6_K). Members are bytes and 16-bit halves only, so the structs have no padding and
** the sizes below are those of the GGUF file; f16 fields are raw IEEE half bits. */
#define QK_32 32    /* weights per block of Q8_0 / Q4_0 / Q4_1 */
#define QK_K 256    /* weights per super-block of Q4_K / Q6_K */

typedef struct blk_q8_0 { uint16_t d; int8_t qs[QK_32]; } blk_q8_0;
typedef struct blk_q4_0 { uint16_t d; uint8_t qs[QK_32 / 2]; } blk_q4_0;
typedef struct blk_q4_1 { uint16_t d, m; uint8_t qs[QK_32 / 2]; } blk_q4_1;
/* w = d * sc[j] * q - dmin * mn[j] for sub-block j of 32 (see q4k_scale_min); qs[32*c + l]
** holds weight 64c + l in its low nibble and weight 64c + 32 + l in its high nibble. */
typedef struct blk_q4_k { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } blk_q4_k;
/* w = d * scales[g] * (q - 32), q 6 bits, g the group of 16; within each half of 128 the low
** nibbles of ql[0..63] are weights 0..63, the high nibbles 64..127, qh[l] bits 2i..2i+1 the
** top bits of weight 32i + l. */
typedef struct blk_q6_k { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } blk_q6_k;

/* The 6-bit scale and min of sub-block j (0..7) from Q4_K's 12 packed bytes: ggml's
** get_scale_min_k4. Bytes 0..3 hold scales 0..3 in bits 0..5, bytes 4..7 mins 0..3; bytes
** 8..11 hold the low nibbles of scale (low) and min (high) 4..7, whose top two bits sit in
** bits 6..7 of bytes 0..3 (scales) and 4..7 (mins). */
static inline void q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Reference conversions of one row of n elements (n a multiple of the block size). */
void dequantize_row(dtype t, const void *src, float *dst, int64_t n);
/* Quantize with ggml's reference rounding (used by our GGUF writer and the tests). */
void quantize_row(dtype t, const float *src, void *dst, int64_t n);

#endif
