/*
** embed.cu — embedding gather: one token's row of the table, dequantized to fp32.
** Reference: dequantize_row (lib/dtype.c). Under tensor parallelism a rank holds the rows of
** tokens v0 .. v0 + n - 1 only: other tokens' rows come out zero, and the ranks' sum (the
** all-reduce that follows) is the embedding.
*/
#include "common.cuh"

__global__ void embed_kernel(float *out, kmat t, const int32_t *tokens, int64_t v0)
{
    PDL_ENTRY();
    int r = blockIdx.x;
    int64_t row = tokens[r] - v0;
    float *o = out + (size_t)r * (size_t)t.k;
    if (row < 0 || row >= t.n) {
        for (int64_t i = threadIdx.x; i < t.k; i += blockDim.x) o[i] = 0.0f;
        return;
    }
    for (int64_t i = threadIdx.x; i < t.k; i += blockDim.x) {
        float v;
        if (t.type == KT_Q8_0) {
            const int8_t *q = (const int8_t *)t.q + row * t.k;
            v = __half2float(__ushort_as_half(t.d[row * (t.k / 32) + i / 32])) * (float)q[i];
        } else if (t.type == KT_Q4_0) {
            const uint8_t *q = (const uint8_t *)t.q + row * (t.k / 2);
            int64_t b = i / 32, j = i % 32;
            uint8_t byte = q[b * 16 + (j & 15)];
            int nib = j < 16 ? (byte & 15) : (byte >> 4);
            v = __half2float(__ushort_as_half(t.d[row * (t.k / 32) + b])) * (float)(nib - 8);
        } else {
            v = ld_elem(t.q, (size_t)row * (size_t)t.k + (size_t)i, t.type);
        }
        o[i] = v;
    }
}

extern "C" int k_embed(void *stream, float *out, const kmat *table, const int32_t *tokens, int rows, int64_t v0)
{
    if (rows <= 0) return 0;
    launch_pdl(embed_kernel, rows, 256, 0, S(stream), out, *table, tokens, v0);
    return LAUNCHED();
}
