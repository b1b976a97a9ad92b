/*
** gemv.cu — matrix-vector products for a few rows (decode), reading each weight once for all
** rows: y (m, n) = x (m, k) . W^T, fp32 activations, fp32 accumulation. Two kernels: 16-bit
** weights take a row per block (gemv_row_block), f32 and int8 weights a row per warp, each
** lane streaming 16-byte pieces of the row with several loads in flight.
** Reference: ops_ref_matmul (lib/cpu/ops_ref.c) over dequantize_row (lib/dtype.c).
**
** Batch invariance: a row's sum is accumulated in the same order whatever m is (per-thread
** partial sums, then a fixed shuffle and block order), so a token gets the same logits alone
** or batched.
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
        unpack16<WT>(__ldg((const uint4 *)((const uint16_t *)W + i)), w);
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
** most a few blocks per multiprocessor and strides over the rows, so no partial last wave.
** Like every kernel in this file it never triggers its successor (common.cuh says why). */
template <int WT, int M, bool VEC>
__global__ void __launch_bounds__(WARPS * 32) gemv_dense(gemv_args p, const void *W, int64_t n_out, int64_t k)
{
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

/* ---- 16-bit weights: a weight row per block ----
**
** A block of NT threads takes one weight row at a time (each thread U 16-byte pieces per pass
** over k, all loads issued before any is used) and reduces across the block: many short
** blocks, so no long per-warp row drains at the end of the grid, and the first row's loads
** are issued before waiting for the previous kernel (PDL); the activations only after it,
** with plain loads (a non-coherent __ldg of a predecessor's output may be hoisted above the
** wait: the lab's fastest candidate was fast for exactly that reason, bench/gpu/gemv_lab.cu).
** The fusions are gemv_dense's (the sum of squares for RMSNorm is taken on the same pass over
** x), as template flags so a product carries no registers for those it does not use.
**
** Unlike the small kernels it never lets its successor launch early (no pdl_trigger: the
** successor launches as its blocks exit). In a decode step the small kernels after the QKV
** product trigger at once, so an early trigger here started the whole chain up to the next
** product, whose waiting blocks then took multiprocessors from this one: Llama-3-8B batch-1 on
** the H100 145.0 tok/s with the trigger after the first loads, 151.6 at the last row, 159.4
** without (cuBLAS 152.7); a grid sized to the occupancy instead of 2048 threads a
** multiprocessor was slower still, 130.0 (bench/results/2026-11-27-rowblock/). */
enum { RB_NORM = 1, RB_PAIR = 2, RB_ACC = 4 }; /* the fusions, as template flags: no registers or
                                                  branches for those a product does not use */

template <int WT, int NT, int U, int M, int MODE>
__global__ void __launch_bounds__(NT) gemv_row_block(gemv_args p, const void *W, int64_t n_out, int64_t k)
{
    constexpr bool NORM = MODE & RB_NORM, PAIR = MODE & RB_PAIR, ACC = MODE & RB_ACC;
    __shared__ float red[3][M][NT / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, m = p.m, kk = (int)k;
    bool waited = false;
    for (int64_t row = blockIdx.x; row < n_out; row += gridDim.x) {
        const uint16_t *w0 = (const uint16_t *)W + (size_t)row * (size_t)k;
        const uint16_t *w1 = w0 + (size_t)n_out * (size_t)k; /* PAIR: the up row */
        float acc0[M], acc1[M], ss[M], prev = 0.0f;
#pragma unroll
        for (int r = 0; r < M; r++) acc0[r] = acc1[r] = ss[r] = 0.0f;
        for (int base = 0; base < kk; base += NT * 8 * U) {
            uint4 a[U], b[PAIR ? U : 1];
#pragma unroll
            for (int u = 0; u < U; u++) {
                int e = base + (u * NT + (int)threadIdx.x) * 8;
                a[u] = e < kk ? __ldg((const uint4 *)(w0 + e)) : make_uint4(0, 0, 0, 0);
                if (PAIR) b[u] = e < kk ? __ldg((const uint4 *)(w1 + e)) : make_uint4(0, 0, 0, 0);
            }
            if (!waited) { /* weights only above: x is the previous kernel's output */
                pdl_wait();
                waited = true;
            }
            /* the residual this row adds to, fetched now so its latency hides behind the sums */
            if (ACC && base == 0 && (int)threadIdx.x < m) prev = p.y[(size_t)threadIdx.x * (size_t)n_out + (size_t)row];
#pragma unroll
            for (int u = 0; u < U; u++) {
                int e = base + (u * NT + (int)threadIdx.x) * 8;
                if (e >= kk) continue;
                float wa[8], wb[8], g[8];
                unpack16<WT>(a[u], wa);
                if (PAIR) unpack16<WT>(b[PAIR ? u : 0], wb);
                if (NORM) {
                    float4 g0 = __ldg((const float4 *)(p.norm + e)), g1 = __ldg((const float4 *)(p.norm + e) + 1);
                    g[0] = g0.x; g[1] = g0.y; g[2] = g0.z; g[3] = g0.w; g[4] = g1.x; g[5] = g1.y; g[6] = g1.z; g[7] = g1.w;
                }
#pragma unroll
                for (int r = 0; r < M; r++) {
                    if (r >= m) break;
                    const float4 *xp = (const float4 *)(p.x + (size_t)r * (size_t)k + (size_t)e);
                    float4 x0 = xp[0], x1 = xp[1];
                    float xv[8] = { x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w };
                    if (NORM)
#pragma unroll
                        for (int j = 0; j < 8; j++) {
                            ss[r] += xv[j] * xv[j];
                            xv[j] *= g[j];
                        }
                    float s0 = 0.0f;
#pragma unroll
                    for (int j = 0; j < 8; j++) s0 += wa[j] * xv[j];
                    acc0[r] += s0;
                    if (PAIR) {
                        float s1 = 0.0f;
#pragma unroll
                        for (int j = 0; j < 8; j++) s1 += wb[j] * xv[j];
                        acc1[r] += s1;
                    }
                }
            }
        }
#pragma unroll
        for (int r = 0; r < M; r++) {
            float v0 = warp_sum(acc0[r]), v1 = PAIR ? warp_sum(acc1[r]) : 0.0f, q = NORM ? warp_sum(ss[r]) : 0.0f;
            if (lane == 0) {
                red[0][r][warp] = v0;
                red[1][r][warp] = v1;
                red[2][r][warp] = q;
            }
        }
        __syncthreads();
        if ((int)threadIdx.x < m) { /* thread r finishes x row r, summing the warps in a fixed order */
            int r = threadIdx.x;
            float v = 0.0f, u = 0.0f, q = 0.0f;
#pragma unroll
            for (int i = 0; i < NT / 32; i++) {
                v += red[0][r][i];
                u += red[1][r][i];
                q += red[2][r][i];
            }
            if (NORM) {
                float inv = rsqrtf(q / (float)k + p.eps);
                v *= inv;
                u *= inv;
            }
            if (PAIR) v = v * (1.0f / (1.0f + expf(-v))) * u; /* SwiGLU: silu(gate) * up */
            p.y[(size_t)r * (size_t)n_out + (size_t)row] = ACC ? prev + v : v;
        }
        __syncthreads(); /* red is reused by the next row */
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

/* A grid of `want` blocks, at most 2048 threads' worth per multiprocessor: the kernels stride
** over the output rows, so no partial last wave. */
static unsigned grid_blocks(int64_t want, int threads)
{
    int dev = 0, sms = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    int64_t cap = (int64_t)sms * (2048 / threads);
    return (unsigned)(want < cap ? want : cap);
}

static unsigned gemv_blocks(int64_t n_out)
{
    return grid_blocks((n_out + WARPS - 1) / WARPS, WARPS * 32);
}

template <int WT, int M> static void launch_dense(cudaStream_t s, const gemv_args *p, const kmat *w, int64_t n_out,
                                                  bool vec)
{
    unsigned blocks = gemv_blocks(n_out);
    if (vec) launch_pdl(gemv_dense<WT, M, true>, blocks, WARPS * 32, 0, s, *p, (const void *)w->q, n_out, w->k);
    else launch_pdl(gemv_dense<WT, M, false>, blocks, WARPS * 32, 0, s, *p, (const void *)w->q, n_out, w->k);
}

template <int WT, int NT, int U, int M> static void launch_row_block(cudaStream_t s, const gemv_args *p, const kmat *w,
                                                                    int64_t n_out, int mode)
{
    void (*kern)(gemv_args, const void *, int64_t, int64_t);
    switch (mode) {
    case 0: kern = gemv_row_block<WT, NT, U, M, 0>; break;
    case RB_NORM: kern = gemv_row_block<WT, NT, U, M, RB_NORM>; break;
    case RB_ACC: kern = gemv_row_block<WT, NT, U, M, RB_ACC>; break;
    default: kern = gemv_row_block<WT, NT, U, M, RB_NORM | RB_PAIR>; break;
    }
    unsigned grid = grid_blocks(n_out, NT);
    launch_pdl(kern, grid, NT, 0, s, *p, w->q, n_out, w->k);
}

/* Block size and loads per thread by k: 128 threads of 4 loads up to k = 4096 (fewer idle
** loads did worse: more registers), of 8 up to 8192, 256 of 8 beyond (several passes past
** 16384). The fusions of a decode layer's products: none (classifier), norm (QKV), residual
** (O, down), norm + SwiGLU pair (gate|up); others go to gemv_dense. */
template <int WT, int M> static bool row_block(cudaStream_t s, const gemv_args *p, const kmat *w, int64_t n_out)
{
    int mode = (p->norm ? RB_NORM : 0) | (p->pair ? RB_PAIR : 0) | (p->accumulate ? RB_ACC : 0);
    if (mode != 0 && mode != RB_NORM && mode != RB_ACC && mode != (RB_NORM | RB_PAIR)) return false;
    if (w->k <= 128 * 8 * 4) launch_row_block<WT, 128, 4, M>(s, p, w, n_out, mode);
    else if (w->k <= 128 * 8 * 8) launch_row_block<WT, 128, 8, M>(s, p, w, n_out, mode);
    else launch_row_block<WT, 256, 8, M>(s, p, w, n_out, mode);
    return true;
}

template <int WT> static void dense_m(cudaStream_t s, const gemv_args *p, const kmat *w, int64_t n_out, bool vec)
{
    if constexpr (WT != KT_F32) { /* 16-bit weights: a row per block (the same sums at every m) */
        if (vec && w->k < (1 << 30) && /* the kernel indexes a row with int */
            (p->m <= 1 ? row_block<WT, 1>(s, p, w, n_out) : row_block<WT, K_GEMV_MAX_ROWS>(s, p, w, n_out)))
            return;
    }
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
