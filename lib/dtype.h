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

/* Reference conversions of one row of n elements (n a multiple of the block size). */
void dequantize_row(dtype t, const void *src, float *dst, int64_t n);
/* Quantize with ggml's reference rounding (used by our GGUF writer and the tests). */
void quantize_row(dtype t, const float *src, void *dst, int64_t n);

#endif
