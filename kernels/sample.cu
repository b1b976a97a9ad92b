/*
** sample.cu — greedy sampling on the device: the index of each row's largest logit, ties to
** the lowest index (as sampler_sample's greedy path), so only token ids cross the bus.
*/
#include "common.cuh"

__global__ void argmax_kernel(int32_t *ids, const float *logits, int n)
{
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *row = logits + (size_t)blockIdx.x * (size_t)n;
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = row[i];
        if (v > best) { /* i grows per thread: the first max of this thread's stride wins */
            best = v;
            bi = i;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) {
            best = ov;
            bi = oi;
        }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) {
        sv[w] = best;
        si[w] = bi;
    }
    __syncthreads();
    if (w == 0) {
        int nw = blockDim.x >> 5;
        best = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, best, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > best || (ov == best && oi < bi)) {
                best = ov;
                bi = oi;
            }
        }
        /* all NaN: token 0, as the CPU sampler's first-index rule gives */
        if (lane == 0) ids[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}

extern "C" int k_argmax(void *stream, int32_t *ids, const float *logits, int rows, int n)
{
    if (rows <= 0) return 0;
    argmax_kernel<<<rows, 1024, 0, S(stream)>>>(ids, logits, n);
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
    read_sum_kernel<<<sms * 8, 512, 0, S(stream)>>>((const uint4 *)buf, n / 16, sink);
    return LAUNCHED();
}
