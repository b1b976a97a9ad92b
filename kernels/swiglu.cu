/*
** swiglu.cu — SwiGLU over the fused gate|up product, and dtype conversions of activations.
** Reference: ops_ref_swiglu (lib/cpu/ops_ref.c), f32_to_bf16 / f32_to_f16 (lib/dtype.c).
*/
#include "common.cuh"

__global__ void swiglu_kernel(void *h, int out_type, const float *gu, int rows, int H)
{
    PDL_ENTRY();
    size_t n = (size_t)rows * (size_t)H;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
        size_t r = t / (size_t)H, i = t % (size_t)H;
        float g = gu[r * 2 * (size_t)H + i], u = gu[r * 2 * (size_t)H + (size_t)H + i];
        st_elem(h, t, out_type, g * (1.0f / (1.0f + expf(-g))) * u);
    }
}

extern "C" int k_swiglu(void *stream, void *h, int out_type, const float *gu, int rows, int H)
{
    if (rows <= 0) return 0;
    size_t n = (size_t)rows * (size_t)H;
    int blocks = (int)((n + 255) / 256);
    if (blocks > 4096) blocks = 4096;
    launch_pdl(swiglu_kernel, blocks, 256, 0, S(stream), h, out_type, gu, rows, H);
    return LAUNCHED();
}

__global__ void convert_kernel(void *out, int type, const float *in, size_t n)
{
    PDL_ENTRY();
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x)
        st_elem(out, t, type, in[t]);
}

extern "C" int k_convert(void *stream, void *out, int out_type, const float *in, size_t n)
{
    if (n == 0) return 0;
    size_t blocks = (n + 255) / 256;
    if (blocks > 8192) blocks = 8192;
    launch_pdl(convert_kernel, (unsigned)blocks, 256, 0, S(stream), out, out_type, in, n);
    return LAUNCHED();
}
