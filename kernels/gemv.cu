/*
** gemv.cu — matrix-vector products for a few rows (decode), reading each weight once for all
** rows: y (m, n) = x (m, k) . W^T, fp32 activations, fp32 accumulation. One warp per output
** feature; each lane streams 16-byte pieces of the weight row with several loads in flight.
** Reference: ops_ref_matmul (lib/cpu/ops_ref.c) over dequantize_row (lib/dtype.c).
**
** Batch invariance: a row's sum is accumulated in the same order whatever m is (lane-strided
** partial sums, then a fixed shuffle tree), so a token gets the same logits alone or batched.
*/
#include "common.cuh"

#define WARPS 4

/* Eight consecutive weights starting at element i (i a multiple of 8, 16-byte aligned). */
template <int WT> __device__ __forceinline__ void load8(const void *W, size_t i, float w[8])
{
    if (WT == KT_F32) {
        float4 a = __ldg((const float4 *)((const float *)W + i)), b = __ldg((const float4 *)((const float *)W + i) + 1);
        w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w; w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
    } else {
        uint4 u = __ldg((const uint4 *)((const uint16_t *)W + i));
        const uint32_t p[4] = { u.x, u.y, u.z, u.w };
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (WT == KT_BF16) {
                w[2 * j] = __uint_as_float(p[j] << 16);
                w[2 * j + 1] = __uint_as_float(p[j] & 0xffff0000u);
            } else {
                __half2 h = *(const __half2 *)&p[j];
                float2 f = __half22float2(h);
                w[2 * j] = f.x;
                w[2 * j + 1] = f.y;
            }
        }
    }
}

template <int WT, int M, bool VEC>
__global__ void __launch_bounds__(WARPS * 32) gemv_dense(float *y, const float *x, const void *W, int64_t n,
                                                         int64_t k, int m)
{
    pdl_trigger();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int64_t row = (int64_t)blockIdx.x * WARPS + warp;
    /* The weights do not depend on the previous kernel: start streaming them into L2 while
    ** it finishes. */
    if (row < n) {
        const char *wr = (const char *)W + (size_t)row * (size_t)k * (WT == KT_F32 ? 4 : 2);
        size_t bytes = (size_t)k * (WT == KT_F32 ? 4 : 2);
        for (size_t o = (size_t)lane * 128; o < bytes && o < 32 * 128 * 8; o += 32 * 128) prefetch_l2(wr + o);
    }
    pdl_wait();
    if (row >= n) return;
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; r++) acc[r] = 0.0f;
    size_t base = (size_t)row * (size_t)k;
    if (VEC) {
#pragma unroll 4
        for (int64_t i = (int64_t)lane * 8; i < k; i += 256) {
            float w[8];
            load8<WT>(W, base + (size_t)i, w);
#pragma unroll
            for (int r = 0; r < M; r++) {
                if (r < m) {
                    const float4 *xp = (const float4 *)(x + (size_t)r * (size_t)k + (size_t)i);
                    float4 a = xp[0], b = xp[1];
                    acc[r] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y +
                              w[6] * b.z + w[7] * b.w;
                }
            }
        }
    } else {
        for (int64_t i = lane; i < k; i += 32) {
            float w = ld_elem(W, base + (size_t)i, WT);
#pragma unroll
            for (int r = 0; r < M; r++)
                if (r < m) acc[r] += w * x[(size_t)r * (size_t)k + (size_t)i];
        }
    }
#pragma unroll
    for (int r = 0; r < M; r++) {
        float v = warp_sum(acc[r]);
        if (lane == 0 && r < m) y[(size_t)r * (size_t)n + (size_t)row] = v;
    }
}

/* ---- quantized weights, int8 activations (dp4a) ---- */

/* x row layout from k_quantize_x: k int8 quants, then k/32 (scale, sum) float pairs. */
__device__ __forceinline__ const float2 *xq_meta(const int8_t *xr, int64_t k)
{
    return (const float2 *)(xr + k);
}

template <int WT, int M>
__global__ void __launch_bounds__(WARPS * 32) gemv_quant(float *y, const int8_t *xq, kmat w, int m)
{
    pdl_trigger();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int64_t row = (int64_t)blockIdx.x * WARPS + warp;
    if (row < w.n) { /* prefetch this row's quants (see gemv_dense) */
        size_t bytes = WT == KT_Q8_0 ? (size_t)w.k : (size_t)w.k / 2;
        const char *wr = (const char *)w.q + (size_t)row * bytes;
        for (size_t o = (size_t)lane * 128; o < bytes && o < 32 * 128 * 8; o += 32 * 128) prefetch_l2(wr + o);
    }
    pdl_wait();
    if (row >= w.n) return;
    int64_t k = w.k, nb = k / 32;
    size_t xrow = (((size_t)k + (size_t)nb * 8) + 15) & ~(size_t)15; /* as k_xq_bytes */
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; r++) acc[r] = 0.0f;
    const uint16_t *dr = w.d + (size_t)row * (size_t)nb;
#pragma unroll 2
    for (int64_t b = lane; b < nb; b += 32) {
        int wq[8];
        float dw = __half2float(__ushort_as_half(__ldg(dr + b)));
        if (WT == KT_Q8_0) {
            const int4 *p = (const int4 *)((const int8_t *)w.q + (size_t)row * (size_t)k + (size_t)b * 32);
            int4 a = __ldg(p), c = __ldg(p + 1);
            wq[0] = a.x; wq[1] = a.y; wq[2] = a.z; wq[3] = a.w; wq[4] = c.x; wq[5] = c.y; wq[6] = c.z; wq[7] = c.w;
        } else {
            int4 a = __ldg((const int4 *)((const uint8_t *)w.q + (size_t)row * (size_t)(k / 2) + (size_t)b * 16));
            const int v[4] = { a.x, a.y, a.z, a.w };
#pragma unroll
            for (int j = 0; j < 4; j++) {
                wq[j] = v[j] & 0x0F0F0F0F;
                wq[j + 4] = (v[j] >> 4) & 0x0F0F0F0F;
            }
        }
#pragma unroll
        for (int r = 0; r < M; r++) {
            if (r < m) {
                const int8_t *xr = xq + (size_t)r * xrow;
                const int4 *xp = (const int4 *)(xr + (size_t)b * 32);
                int4 a = xp[0], c = xp[1];
                int s = 0;
                s = __dp4a(wq[0], a.x, s); s = __dp4a(wq[1], a.y, s); s = __dp4a(wq[2], a.z, s);
                s = __dp4a(wq[3], a.w, s); s = __dp4a(wq[4], c.x, s); s = __dp4a(wq[5], c.y, s);
                s = __dp4a(wq[6], c.z, s); s = __dp4a(wq[7], c.w, s);
                float2 ms = xq_meta(xr, k)[b]; /* (scale, sum of quants) */
                float si = (float)s;
                if (WT == KT_Q4_0) si -= 8.0f * ms.y;
                acc[r] += dw * ms.x * si;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < M; r++) {
        float v = warp_sum(acc[r]);
        if (lane == 0 && r < m) y[(size_t)r * (size_t)w.n + (size_t)row] = v;
    }
}

template <int WT, int M> static void launch_dense(cudaStream_t s, float *y, const float *x, const kmat *w, int m, bool vec)
{
    unsigned blocks = (unsigned)((w->n + WARPS - 1) / WARPS);
    if (vec) launch_pdl(gemv_dense<WT, M, true>, blocks, WARPS * 32, 0, s, y, x, w->q, w->n, w->k, m);
    else launch_pdl(gemv_dense<WT, M, false>, blocks, WARPS * 32, 0, s, y, x, w->q, w->n, w->k, m);
}

template <int WT> static void dense_m(cudaStream_t s, float *y, const float *x, const kmat *w, int m, bool vec)
{
    if (m <= 1) launch_dense<WT, 1>(s, y, x, w, m, vec);
    else if (m <= 2) launch_dense<WT, 2>(s, y, x, w, m, vec);
    else if (m <= 4) launch_dense<WT, 4>(s, y, x, w, m, vec);
    else launch_dense<WT, 8>(s, y, x, w, m, vec);
}

template <int WT> static void quant_m(cudaStream_t s, float *y, const int8_t *xq, const kmat *w, int m)
{
    unsigned blocks = (unsigned)((w->n + WARPS - 1) / WARPS);
    if (m <= 1) launch_pdl(gemv_quant<WT, 1>, blocks, WARPS * 32, 0, s, y, xq, *w, m);
    else if (m <= 2) launch_pdl(gemv_quant<WT, 2>, blocks, WARPS * 32, 0, s, y, xq, *w, m);
    else if (m <= 4) launch_pdl(gemv_quant<WT, 4>, blocks, WARPS * 32, 0, s, y, xq, *w, m);
    else launch_pdl(gemv_quant<WT, 8>, blocks, WARPS * 32, 0, s, y, xq, *w, m);
}

extern "C" int k_gemv(void *stream, float *y, const float *x, const void *xq, const kmat *w, int m)
{
    if (m <= 0) return 0;
    if (m > K_GEMV_MAX_ROWS) return (int)cudaErrorInvalidValue;
    cudaStream_t s = S(stream);
    bool vec = w->k % 8 == 0 && ((uintptr_t)w->q & 15) == 0 && ((uintptr_t)x & 15) == 0;
    switch (w->type) {
    case KT_F32: dense_m<KT_F32>(s, y, x, w, m, vec); break;
    case KT_F16: dense_m<KT_F16>(s, y, x, w, m, vec); break;
    case KT_BF16: dense_m<KT_BF16>(s, y, x, w, m, vec); break;
    case KT_Q8_0: quant_m<KT_Q8_0>(s, y, (const int8_t *)xq, w, m); break;
    case KT_Q4_0: quant_m<KT_Q4_0>(s, y, (const int8_t *)xq, w, m); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return LAUNCHED();
}
