/*
** prefill.cu — helpers of the prefill attention through cuBLAS (long prompt chunks, where the
** paged kernel's scalar arithmetic would be the step's bottleneck): gathering a sequence's K and
** V from its paged blocks into contiguous 16-bit matrices, and the causal softmax of the score
** rows. Reference: attend_one (lib/cpu/backend_cpu.c), as the paged kernel's.
*/
#include "common.cuh"

/* kc, vc (ctx_fill, kvd) of out_type: positions below ctx from the blocks bt[] of `layer`, zeros
** from ctx on (the products read a padded context; a masked position must still be finite). */
__global__ void kv_gather_kernel(void *kc, void *vc, int out_type, kv_geom kv, int layer, const int32_t *bt, int ctx,
                                 int ctx_fill)
{
    PDL_ENTRY();
    size_t n = (size_t)ctx_fill * (size_t)kv.kvd, ls = (size_t)kv.block_tokens * (size_t)kv.kvd;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
        size_t p = t / (size_t)kv.kvd, i = t % (size_t)kv.kvd;
        if (p >= (size_t)ctx) {
            st_elem(kc, t, out_type, 0.0f);
            st_elem(vc, t, out_type, 0.0f);
            continue;
        }
        size_t off = (((size_t)bt[p / (size_t)kv.block_tokens] * (size_t)kv.n_layers + (size_t)layer) * 2) * ls +
                     (p % (size_t)kv.block_tokens) * (size_t)kv.kvd + i;
        st_elem(kc, t, out_type, ld_elem(kv.cache, off, kv.kv_type));
        st_elem(vc, t, out_type, ld_elem(kv.cache, off + ls, kv.kv_type));
    }
}

extern "C" int k_kv_gather(void *stream, void *kc, void *vc, int out_type, const kv_geom *kv, int layer,
                           const int32_t *bt, int ctx, int ctx_fill)
{
    if (ctx_fill < ctx) ctx_fill = ctx;
    if (ctx_fill <= 0) return 0;
    size_t n = (size_t)ctx_fill * (size_t)kv->kvd, blocks = (n + 255) / 256;
    if (blocks > 4096) blocks = 4096;
    launch_pdl(kv_gather_kernel, (unsigned)blocks, 256, 0, S(stream), kc, vc, out_type, *kv, layer, bt, ctx, ctx_fill);
    return LAUNCHED();
}

/* One block per score row (head h, row r at position pos0 + r): softmax over columns
** 0..pos0 + r, zeros after. S is fp32 (n_heads, rows, ctx), P the same shape in out_type. */
__global__ void softmax_causal_kernel(void *P, int out_type, const float *S, int rows, int ctx, int pos0)
{
    PDL_ENTRY();
    __shared__ float sh[32];
    size_t base = (size_t)blockIdx.x * (size_t)ctx;
    int r = blockIdx.x % rows, last = pos0 + r; /* attends 0..last */
    const float *s = S + base;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i <= last && i < ctx; i += blockDim.x) mx = fmaxf(mx, s[i]);
    mx = warp_max(mx);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) mx = fmaxf(mx, sh[w]);
    __syncthreads();
    float sum = 0.0f;
    for (int i = threadIdx.x; i <= last && i < ctx; i += blockDim.x) sum += expf(s[i] - mx);
    sum = block_sum(sum, sh);
    float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < ctx; i += blockDim.x)
        st_elem(P, base + (size_t)i, out_type, i <= last ? expf(s[i] - mx) * inv : 0.0f);
}

extern "C" int k_softmax_causal(void *stream, void *P, int out_type, const float *scores, int n_heads, int rows,
                                int ctx, int pos0)
{
    if (rows <= 0) return 0;
    launch_pdl(softmax_causal_kernel, (unsigned)(n_heads * rows), 256, 0, S(stream), P, out_type, scores, rows, ctx,
               pos0);
    return LAUNCHED();
}
