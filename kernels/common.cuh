/*
** common.cuh — helpers shared by the kernels (device side only).
*/
#ifndef INFER_KERNELS_COMMON_CUH
#define INFER_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels.h"

#define LAUNCHED() ((int)cudaGetLastError())

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Element loads/stores by type tag. */
__device__ __forceinline__ float ld_elem(const void *p, size_t i, int type)
{
    switch (type) {
    case KT_F16: return __half2float(((const __half *)p)[i]);
    case KT_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

__device__ __forceinline__ void st_elem(void *p, size_t i, int type, float v)
{
    switch (type) {
    case KT_F16: ((__half *)p)[i] = __float2half_rn(v); break;
    case KT_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

/* Element `i` of a KV cache row of `type`. */
template <int T> __device__ __forceinline__ float ld_t(const void *p, size_t i)
{
    if (T == KT_F16) return __half2float(((const __half *)p)[i]);
    if (T == KT_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}

/* 16 bytes of a row as floats: 4 f32 or 8 f16/bf16 (KV cache pieces, weight pieces). */
template <int KT> __device__ __forceinline__ void unpack16(uint4 u, float *f)
{
    const uint32_t w[4] = { u.x, u.y, u.z, u.w };
    if (KT == KT_F32) {
#pragma unroll
        for (int i = 0; i < 4; i++) f[i] = __uint_as_float(w[i]);
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (KT == KT_BF16) {
                f[2 * i] = __uint_as_float(w[i] << 16);
                f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
            } else {
                float2 h = __half22float2(*(const __half2 *)&w[i]);
                f[2 * i] = h.x;
                f[2 * i + 1] = h.y;
            }
        }
    }
}

/* Block-wide sum of one float per thread (blockDim.x a multiple of 32, <= 1024). */
__device__ __forceinline__ float block_sum(float v, float *sh32)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh32[w] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = threadIdx.x < nw ? sh32[threadIdx.x] : 0.0f;
    if (w == 0) v = warp_sum(v);
    if (threadIdx.x == 0) sh32[0] = v;
    __syncthreads();
    return sh32[0];
}

static inline cudaStream_t S(void *stream)
{
    return (cudaStream_t)stream;
}

/* Programmatic dependent launch (Hopper): every kernel is launched allowed to start while its
** predecessor in the stream is finishing. A kernel first lets its own successor launch
** (pdl_trigger), may do work that reads nothing its predecessor writes (address arithmetic,
** weight prefetches), then waits for the predecessor's completion and memory (pdl_wait)
** before reading activations. Saves the launch gap between the hundreds of small kernels of
** a decode step, inside graphs too. No-ops before sm_90. The matrix-vector kernels (gemv.cu)
** never trigger: the small kernels after them trigger at once, so an early trigger launched a
** chain up to the next product, whose waiting blocks took multiprocessors from the running one
** (without it, on the H100: Llama-3-8B bf16 batch-1 decode 145 -> 159 tok/s, Llama-3.2-1B Q8_0
** 596 -> 695, Q4_0 703 -> 767; bench/results/2026-11-27-rowblock/). */
__device__ __forceinline__ void pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void prefetch_l2(const void *p)
{
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

#define PDL_ENTRY()    \
    do {               \
        pdl_trigger(); \
        pdl_wait();    \
    } while (0)

template <typename... P, typename... A>
static inline void launch_pdl(void (*k)(P...), dim3 g, dim3 b, size_t smem, cudaStream_t s, A... args)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = g;
    cfg.blockDim = b;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    cudaLaunchKernelEx(&cfg, k, ((P)args)...);
}

#endif
