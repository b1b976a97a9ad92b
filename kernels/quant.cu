/*
** quant.cu — activation quantization for the int8 matrix-vector kernels (32-element blocks,
** scale = max|x| / 127, as llama.cpp's q8_1), and dequantization of Q8_0 / Q4_0 weights to
** f16/bf16 for the cuBLAS path. Reference: quantize_row / dequantize_row (lib/dtype.c).
*/
#include "common.cuh"

/* Bytes of one quantized row, padded to 16 so every row's quants start 16-byte aligned. */
__host__ __device__ static inline size_t xq_row(int64_t k)
{
    return (((size_t)k + (size_t)(k / 32) * 8) + 15) & ~(size_t)15;
}

extern "C" size_t k_xq_bytes(int m, int64_t k)
{
    return (size_t)m * xq_row(k);
}

/* One block per row: the row's RMSNorm scale first (when norm != NULL), then one warp per
** 32-block (lane = element). */
__global__ void quantize_x_kernel(int8_t *xq, const float *x, const float *norm, float eps, int64_t k)
{
    PDL_ENTRY();
    __shared__ float sh[32];
    const int64_t nb = k / 32, r = blockIdx.x;
    const float *xr = x + (size_t)r * (size_t)k;
    float inv = 1.0f;
    if (norm) {
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < k; i += blockDim.x) ss += xr[i] * xr[i];
        inv = rsqrtf(block_sum(ss, sh) / (float)k + eps);
    }
    int8_t *out = xq + (size_t)r * xq_row(k);
    int lane = threadIdx.x & 31;
    for (int64_t b = threadIdx.x >> 5; b < nb; b += blockDim.x >> 5) {
        int64_t i = b * 32 + lane;
        float v = xr[i];
        if (norm) v = v * inv * norm[i];
        float amax = warp_max(fabsf(v));
        float d = amax / 127.0f;
        int q = d > 0.0f ? __float2int_rn(v / d) : 0;
        int sum = (int)warp_sum((float)q);
        out[i] = (int8_t)q;
        if (lane == 0) ((float2 *)(out + k))[b] = make_float2(d, (float)sum);
    }
}

extern "C" int k_quantize_x(void *stream, void *xq, const float *x, const float *norm, float eps, int m, int64_t k)
{
    if (m <= 0) return 0;
    if (k % 32) return (int)cudaErrorInvalidValue;
    launch_pdl(quantize_x_kernel, (unsigned)m, 256, 0, S(stream), (int8_t *)xq, x, norm, eps, k);
    return LAUNCHED();
}

__global__ void dequant_kernel(void *out, int out_type, kmat w)
{
    PDL_ENTRY();
    size_t n = (size_t)w.n * (size_t)w.k;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
        size_t row = t / (size_t)w.k, i = t % (size_t)w.k, b = i / 32, j = i % 32;
        float d = __half2float(__ushort_as_half(w.d[row * (size_t)(w.k / 32) + b]));
        float v;
        if (w.type == KT_Q8_0) {
            v = d * (float)((const int8_t *)w.q)[t];
        } else {
            uint8_t byte = ((const uint8_t *)w.q)[row * (size_t)(w.k / 2) + b * 16 + (j & 15)];
            v = d * (float)((j < 16 ? (byte & 15) : (byte >> 4)) - 8);
        }
        st_elem(out, t, out_type, v);
    }
}

extern "C" int k_dequant(void *stream, void *out, int out_type, const kmat *w)
{
    if (w->type != KT_Q8_0 && w->type != KT_Q4_0) return (int)cudaErrorInvalidValue;
    size_t n = (size_t)w->n * (size_t)w->k;
    size_t blocks = (n + 255) / 256;
    if (blocks > 16384) blocks = 16384;
    launch_pdl(dequant_kernel, (unsigned)blocks, 256, 0, S(stream), out, out_type, *w);
    return LAUNCHED();
}
