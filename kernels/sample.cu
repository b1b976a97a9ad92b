/*
** sample.cu — greedy sampling on the device: the index of each row's largest logit, ties to
** the lowest index (as sampler_sample's greedy path), so only token ids cross the bus.
*/
#include "common.cuh"

/* Order-preserving key of (value, index): the larger value wins, then the lower index; NaN
** never wins. One 64-bit atomicMax per block merges the blocks' candidates. */
__device__ __forceinline__ unsigned long long am_key(float v, int i)
{
    unsigned u = __float_as_uint(v);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    if (v != v) u = 0; /* NaN */
    return ((unsigned long long)u << 32) | (unsigned)(0x7fffffff - i);
}

__device__ __forceinline__ unsigned long long key_max(unsigned long long a, unsigned long long b)
{
    return a > b ? a : b;
}

/* grid (rows, AM_BLOCKS): each block scans a slice of its row with 16-byte loads. */
#define AM_BLOCKS 16
__global__ void argmax_partial(unsigned long long *keys, const float *logits, int n)
{
    PDL_ENTRY();
    __shared__ unsigned long long sk[32];
    const float *row = logits + (size_t)blockIdx.x * (size_t)n;
    int per = (n + AM_BLOCKS - 1) / AM_BLOCKS;
    per = (per + 3) & ~3;
    int lo = blockIdx.y * per, hi = min(n, lo + per);
    unsigned long long best = 0;
    bool vec = (n & 3) == 0;
    if (vec) {
        for (int i = lo + 4 * threadIdx.x; i < hi; i += 4 * blockDim.x) {
            float4 v = *(const float4 *)(row + i);
            best = key_max(best, am_key(v.x, i));
            best = key_max(best, am_key(v.y, i + 1));
            best = key_max(best, am_key(v.z, i + 2));
            best = key_max(best, am_key(v.w, i + 3));
        }
    } else {
        for (int i = lo + threadIdx.x; i < hi; i += blockDim.x) best = key_max(best, am_key(row[i], i));
    }
    for (int o = 16; o > 0; o >>= 1) best = key_max(best, __shfl_xor_sync(0xffffffffu, best, o));
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) sk[w] = best;
    __syncthreads();
    if (w == 0) {
        best = lane < (int)(blockDim.x >> 5) ? sk[lane] : 0;
        for (int o = 16; o > 0; o >>= 1) best = key_max(best, __shfl_xor_sync(0xffffffffu, best, o));
        if (lane == 0) atomicMax(keys + blockIdx.x, best);
    }
}

/* keys -> ids, and the keys back to 0 for the next step (so a graph needs no memset). */
__global__ void argmax_final(int32_t *ids, unsigned long long *keys, int rows)
{
    PDL_ENTRY();
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    unsigned long long k = keys[r];
    /* all NaN: token 0, as the CPU sampler's first-index rule gives */
    ids[r] = k == 0 ? 0 : 0x7fffffff - (int)(unsigned)(k & 0xffffffffu);
    keys[r] = 0;
}

extern "C" size_t k_argmax_scratch(int rows)
{
    return (size_t)rows * sizeof(unsigned long long);
}

extern "C" int k_argmax(void *stream, int32_t *ids, void *scratch, const float *logits, int rows, int n)
{
    if (rows <= 0) return 0;
    launch_pdl(argmax_partial, dim3((unsigned)rows, AM_BLOCKS), 256, 0, S(stream), (unsigned long long *)scratch, logits, n);
    launch_pdl(argmax_final, (rows + 127) / 128, 128, 0, S(stream), ids, (unsigned long long *)scratch, rows);
    return LAUNCHED();
}

__global__ void read_sum_kernel(const uint4 *p, size_t n16, unsigned long long *sink)
{
    unsigned acc = 0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n16; i += 4 * stride) {
        uint4 a = p[i], b = p[i + stride], c = p[i + 2 * stride], d = p[i + 3 * stride];
        acc += a.x ^ b.y ^ c.z ^ d.w;
    }
    for (; i < n16; i += stride) acc += p[i].x;
    if (acc == 0x12345678u) atomicAdd(sink, 1ull); /* keeps the loads alive */
}

extern "C" int k_read_sum(void *stream, const void *buf, size_t n, unsigned long long *sink)
{
    int dev = 0, sms = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    launch_pdl(read_sum_kernel, sms * 8, 512, 0, S(stream), (const uint4 *)buf, n / 16, sink);
    return LAUNCHED();
}
