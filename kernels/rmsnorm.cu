/*
** rmsnorm.cu — residual add fused with RMSNorm (one block per row). Reference: rmsnorm_ref
** (lib/cpu/ops_ref.c) after an element-wise add.
*/
#include "common.cuh"

__global__ void rmsnorm_kernel(void *out, int out_type, float *x, const float *add, const float *w, const int32_t *idx, int n,
                               float eps)
{
    PDL_ENTRY();
    __shared__ float sh[32];
    int r = blockIdx.x;
    int src = idx ? idx[r] : r;
    float *xr = x + (size_t)src * (size_t)n;
    const float *ar = add ? add + (size_t)src * (size_t)n : NULL;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = xr[i];
        if (ar) {
            v += ar[i];
            xr[i] = v;
        }
        ss += v * v;
    }
    ss = block_sum(ss, sh);
    float inv = rsqrtf(ss / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) st_elem(out, (size_t)r * (size_t)n + (size_t)i, out_type, xr[i] * inv * w[i]);
}

extern "C" int k_rmsnorm(void *stream, void *out, int out_type, float *x, const float *add, const float *w, const int32_t *idx,
                         int rows, int n, float eps)
{
    if (rows <= 0) return 0;
    int threads = n >= 1024 ? 1024 : ((n + 31) / 32) * 32;
    launch_pdl(rmsnorm_kernel, rows, threads, 0, S(stream), out, out_type, x, add, w, idx, n, eps);
    return LAUNCHED();
}
