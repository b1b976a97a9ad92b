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

/* The epilogue shared by the dense and the int8 kernels: lane 0 writes row `row` of every x row. */
template <int M>
__device__ __forceinline__ void gemv_store(const gemv_args &p, int64_t n_out, int64_t row, float *acc0, float *acc1)
{
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < M; r++) {
        float v = warp_sum(acc0[r]);
        if (p.pair) {
            float u = warp_sum(acc1[r]);
            v = v * (1.0f / (1.0f + expf(-v))) * u; /* SwiGLU: silu(gate) * up */
        }
        if (lane == 0 && r < p.m) {
            float *o = p.y + (size_t)r * (size_t)n_out + (size_t)row;
            *o = p.accumulate ? *o + v : v;
        }
    }
}

/* Output rows per launch: n, or n/2 in pair mode (W = gate rows then up rows). The grid is at
** most a few blocks per multiprocessor and strides over the rows, so no partial last wave. */
template <int WT, int M, bool VEC>
__global__ void __launch_bounds__(WARPS * 32) gemv_dense(gemv_args p, const void *W, int64_t n_out, int64_t k)
{
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, m = p.m;
    const size_t es = WT == KT_F32 ? 4 : 2;
    int64_t row0 = (int64_t)blockIdx.x * WARPS + warp;
    /* The weights do not depend on the previous kernel: start streaming them into L2 while
    ** it finishes. */
    if (row0 < n_out) {
        const char *wr = (const char *)W + (size_t)row0 * (size_t)k * es;
        for (size_t o = (size_t)lane * 128; o < (size_t)k * es && o < 32 * 128 * 8; o += 32 * 128) {
            prefetch_l2(wr + o);
            if (p.pair) prefetch_l2(wr + (size_t)n_out * (size_t)k * es + o);
        }
    }
    pdl_wait();
    for (int64_t row = row0; row < n_out; row += (int64_t)gridDim.x * WARPS) {
        /* With norm, the products use x * g and the row's 1/rms multiplies the sum at the end
        ** (the same value): every warp reads its x rows whole anyway, so it sums their squares
        ** on the way instead of waiting for a block-wide reduction first. */
        float acc0[M], acc1[M], ss[M];
#pragma unroll
        for (int r = 0; r < M; r++) acc0[r] = acc1[r] = ss[r] = 0.0f;
        size_t base = (size_t)row * (size_t)k, base1 = base + (size_t)n_out * (size_t)k;
        if (VEC) {
#pragma unroll 4
            for (int64_t i = (int64_t)lane * 8; i < k; i += 256) {
                float w[8], w1[8];
                load8<WT>(W, base + (size_t)i, w);
                if (p.pair) load8<WT>(W, base1 + (size_t)i, w1);
                float g[8];
                if (p.norm) {
                    const float4 *np = (const float4 *)(p.norm + i);
                    float4 a = np[0], b = np[1];
                    g[0] = a.x; g[1] = a.y; g[2] = a.z; g[3] = a.w; g[4] = b.x; g[5] = b.y; g[6] = b.z; g[7] = b.w;
                }
#pragma unroll
                for (int r = 0; r < M; r++) {
                    if (r < m) {
                        const float4 *xp = (const float4 *)(p.x + (size_t)r * (size_t)k + (size_t)i);
                        float4 a = xp[0], b = xp[1];
                        float xv[8] = { a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w };
                        if (p.norm) {
#pragma unroll
                            for (int e = 0; e < 8; e++) {
                                ss[r] += xv[e] * xv[e];
                                xv[e] *= g[e];
                            }
                        }
                        float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
                        for (int e = 0; e < 8; e++) s0 += w[e] * xv[e];
                        acc0[r] += s0;
                        if (p.pair) {
#pragma unroll
                            for (int e = 0; e < 8; e++) s1 += w1[e] * xv[e];
                            acc1[r] += s1;
                        }
                    }
                }
            }
        } else {
            for (int64_t i = lane; i < k; i += 32) {
                float w = ld_elem(W, base + (size_t)i, WT), w1 = p.pair ? ld_elem(W, base1 + (size_t)i, WT) : 0.0f;
#pragma unroll
                for (int r = 0; r < M; r++)
                    if (r < m) {
                        float xv = p.x[(size_t)r * (size_t)k + (size_t)i];
                        if (p.norm) {
                            ss[r] += xv * xv;
                            xv *= p.norm[i];
                        }
                        acc0[r] += w * xv;
                        acc1[r] += w1 * xv;
                    }
            }
        }
        if (p.norm)
#pragma unroll
            for (int r = 0; r < M; r++) {
                float inv = rsqrtf(warp_sum(ss[r]) / (float)k + p.eps);
                acc0[r] *= inv;
                acc1[r] *= inv;
            }
        gemv_store<M>(p, n_out, row, acc0, acc1);
    }
}

/* ---- quantized weights, int8 activations (dp4a) ---- */

/* x row layout from k_quantize_x: k int8 quants, then k/32 (scale, sum) float pairs. */
__device__ __forceinline__ const float2 *xq_meta(const int8_t *xr, int64_t k)
{
    return (const float2 *)(xr + k);
}

template <int WT, int M>
__global__ void __launch_bounds__(WARPS * 32) gemv_quant(gemv_args p, kmat w, int64_t n_out)
{
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, m = p.m;
    const int64_t k = w.k, nb = k / 32;
    const size_t qrow = WT == KT_Q8_0 ? (size_t)k : (size_t)k / 2;
    int64_t row0 = (int64_t)blockIdx.x * WARPS + warp;
    if (row0 < n_out) { /* prefetch this row's quants (see gemv_dense) */
        const char *wr = (const char *)w.q + (size_t)row0 * qrow;
        for (size_t o = (size_t)lane * 128; o < qrow && o < 32 * 128 * 8; o += 32 * 128) {
            prefetch_l2(wr + o);
            if (p.pair) prefetch_l2(wr + (size_t)n_out * qrow + o);
        }
    }
    pdl_wait();
    const int8_t *xq = (const int8_t *)p.xq;
    const size_t xrow = (((size_t)k + (size_t)nb * 8) + 15) & ~(size_t)15; /* as k_xq_bytes */
    for (int64_t row = row0; row < n_out; row += (int64_t)gridDim.x * WARPS) {
        float acc0[M], acc1[M];
#pragma unroll
        for (int r = 0; r < M; r++) acc0[r] = acc1[r] = 0.0f;
        for (int half = 0; half < (p.pair ? 2 : 1); half++) {
            int64_t wrow = row + half * n_out;
            const uint16_t *dr = w.d + (size_t)wrow * (size_t)nb;
#pragma unroll 2
            for (int64_t b = lane; b < nb; b += 32) {
                int wq[8];
                float dw = __half2float(__ushort_as_half(__ldg(dr + b)));
                if (WT == KT_Q8_0) {
                    const int4 *q = (const int4 *)((const int8_t *)w.q + (size_t)wrow * qrow + (size_t)b * 32);
                    int4 a = __ldg(q), c = __ldg(q + 1);
                    wq[0] = a.x; wq[1] = a.y; wq[2] = a.z; wq[3] = a.w; wq[4] = c.x; wq[5] = c.y; wq[6] = c.z; wq[7] = c.w;
                } else {
                    int4 a = __ldg((const int4 *)((const uint8_t *)w.q + (size_t)wrow * qrow + (size_t)b * 16));
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
                        float2 ms = ((const float2 *)(xr + k))[b]; /* (scale, sum of quants) */
                        float si = (float)s;
                        if (WT == KT_Q4_0) si -= 8.0f * ms.y;
                        if (half) acc1[r] += dw * ms.x * si;
                        else acc0[r] += dw * ms.x * si;
                    }
                }
            }
        }
        gemv_store<M>(p, n_out, row, acc0, acc1);
    }
}

/* A grid of at most 16 blocks (64 warps, a full multiprocessor) per multiprocessor, striding
** over the output rows. */
static unsigned gemv_blocks(int64_t n_out)
{
    int dev = 0, sms = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    int64_t want = (n_out + WARPS - 1) / WARPS, cap = (int64_t)sms * 16;
    return (unsigned)(want < cap ? want : cap);
}

template <int WT, int M> static void launch_dense(cudaStream_t s, const gemv_args *p, const kmat *w, int64_t n_out,
                                                  bool vec)
{
    unsigned blocks = gemv_blocks(n_out);
    if (vec) launch_pdl(gemv_dense<WT, M, true>, blocks, WARPS * 32, 0, s, *p, (const void *)w->q, n_out, w->k);
    else launch_pdl(gemv_dense<WT, M, false>, blocks, WARPS * 32, 0, s, *p, (const void *)w->q, n_out, w->k);
}

template <int WT> static void dense_m(cudaStream_t s, const gemv_args *p, const kmat *w, int64_t n_out, bool vec)
{
    if (p->m <= 1) launch_dense<WT, 1>(s, p, w, n_out, vec);
    else if (p->m <= 2) launch_dense<WT, 2>(s, p, w, n_out, vec);
    else if (p->m <= 4) launch_dense<WT, 4>(s, p, w, n_out, vec);
    else launch_dense<WT, 8>(s, p, w, n_out, vec);
}

template <int WT> static void quant_m(cudaStream_t s, const gemv_args *p, const kmat *w, int64_t n_out)
{
    unsigned blocks = gemv_blocks(n_out);
    if (p->m <= 1) launch_pdl(gemv_quant<WT, 1>, blocks, WARPS * 32, 0, s, *p, *w, n_out);
    else if (p->m <= 2) launch_pdl(gemv_quant<WT, 2>, blocks, WARPS * 32, 0, s, *p, *w, n_out);
    else if (p->m <= 4) launch_pdl(gemv_quant<WT, 4>, blocks, WARPS * 32, 0, s, *p, *w, n_out);
    else launch_pdl(gemv_quant<WT, 8>, blocks, WARPS * 32, 0, s, *p, *w, n_out);
}

extern "C" int k_gemv(void *stream, const kmat *w, const gemv_args *p)
{
    if (p->m <= 0) return 0;
    if (p->m > K_GEMV_MAX_ROWS || (p->pair && w->n % 2)) return (int)cudaErrorInvalidValue;
    cudaStream_t s = S(stream);
    int64_t n_out = p->pair ? w->n / 2 : w->n;
    bool vec = w->k % 8 == 0 && ((uintptr_t)w->q & 15) == 0 && ((uintptr_t)p->x & 15) == 0 &&
               (!p->norm || ((uintptr_t)p->norm & 15) == 0);
    switch (w->type) {
    case KT_F32: dense_m<KT_F32>(s, p, w, n_out, vec); break;
    case KT_F16: dense_m<KT_F16>(s, p, w, n_out, vec); break;
    case KT_BF16: dense_m<KT_BF16>(s, p, w, n_out, vec); break;
    case KT_Q8_0: quant_m<KT_Q8_0>(s, p, w, n_out); break;
    case KT_Q4_0: quant_m<KT_Q4_0>(s, p, w, n_out); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return LAUNCHED();
}
