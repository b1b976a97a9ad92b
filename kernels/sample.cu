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

/* ---- top-k sampling on the device ---- */

#define SK_LOCAL 8 /* candidates each thread keeps from its slice */

/* The k best keys (value desc, index asc) of row, exactly, by k block-wide passes over global
** memory: the slow path, for when a thread's slice held more than SK_LOCAL of them. */
__device__ void topk_exact(const float *row, int n, int k, unsigned long long *sel, unsigned long long *sk)
{
    unsigned long long last = ~0ull;
    for (int j = 0; j < k; j++) {
        unsigned long long best = 0;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = row[i];
            unsigned long long key = am_key(v != v ? -INFINITY : v, i);
            if (key < last) best = key_max(best, key);
        }
        for (int o = 16; o > 0; o >>= 1) best = key_max(best, __shfl_xor_sync(0xffffffffu, best, o));
        if ((threadIdx.x & 31) == 0) sk[threadIdx.x >> 5] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long b = 0;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) b = key_max(b, sk[w]);
            sel[j] = b;
        }
        __syncthreads();
        last = sel[j];
        __syncthreads();
    }
}

/* One block per logit row whose params say "sample" (sampler.c's order and arithmetic: top-k,
** temperature, softmax, top-p, min-p, then the draw u the host took from the request's seeded
** stream). ids[r] is left alone for the other rows (their argmax). params per row: mode
** (0 = leave, 1 = sample), temperature, top_k (1..K_SAMPLE_MAX_K), top_p, min_p, u. */
__global__ void sample_topk_kernel(int32_t *ids, const float *logits, int n, const float *params)
{
    PDL_ENTRY();
    const float *p = params + (size_t)blockIdx.x * 6;
    if (p[0] == 0.0f) return;
    const float temp = p[1], top_p = p[3], min_p = p[4], u = p[5];
    const int k = (int)p[2];
    const float *row = logits + (size_t)blockIdx.x * (size_t)n;
    __shared__ unsigned long long cand[256 * SK_LOCAL];
    __shared__ unsigned long long sel[K_SAMPLE_MAX_K];
    __shared__ unsigned long long sk[32];
    __shared__ int exhausted;
    /* 1. each thread's best SK_LOCAL keys of its slice, sorted descending */
    unsigned long long loc[SK_LOCAL];
#pragma unroll
    for (int j = 0; j < SK_LOCAL; j++) loc[j] = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = row[i];
        unsigned long long key = am_key(v != v ? -INFINITY : v, i);
        if (key > loc[SK_LOCAL - 1]) {
            loc[SK_LOCAL - 1] = key;
#pragma unroll
            for (int j = SK_LOCAL - 1; j > 0; j--)
                if (loc[j] > loc[j - 1]) {
                    unsigned long long t = loc[j];
                    loc[j] = loc[j - 1];
                    loc[j - 1] = t;
                }
        }
    }
#pragma unroll
    for (int j = 0; j < SK_LOCAL; j++) cand[threadIdx.x * SK_LOCAL + j] = loc[j];
    if (threadIdx.x == 0) exhausted = 0;
    __syncthreads();
    /* 2. the k best of the candidates, in order */
    unsigned long long last = ~0ull;
    for (int j = 0; j < k; j++) {
        unsigned long long best = 0;
#pragma unroll
        for (int q = 0; q < SK_LOCAL; q++) {
            unsigned long long key = cand[threadIdx.x * SK_LOCAL + q];
            if (key < last) best = key_max(best, key);
        }
        for (int o = 16; o > 0; o >>= 1) best = key_max(best, __shfl_xor_sync(0xffffffffu, best, o));
        if ((threadIdx.x & 31) == 0) sk[threadIdx.x >> 5] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long b = 0;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) b = key_max(b, sk[w]);
            sel[j] = b;
        }
        __syncthreads();
        last = sel[j];
        /* a thread whose whole list was taken may hold more of the k below it: exact path */
        if (last != 0 && last == cand[threadIdx.x * SK_LOCAL + SK_LOCAL - 1] && j < k - 1) exhausted = 1;
        __syncthreads();
    }
    if (exhausted) topk_exact(row, n, k, sel, sk);
    if (threadIdx.x != 0) return;
    /* 3. the distribution over the k, as sampler_sample computes it */
    int kk = k < n ? k : n;
    float v[K_SAMPLE_MAX_K];
    int id[K_SAMPLE_MAX_K];
    for (int j = 0; j < kk; j++) {
        id[j] = 0x7fffffff - (int)(unsigned)(sel[j] & 0xffffffffu);
        float l = row[id[j]];
        v[j] = l != l ? -INFINITY : l;
    }
    float mx = v[0];
    if (mx == -INFINITY) {
        ids[blockIdx.x] = id[0];
        return;
    }
    double total = 0.0;
    for (int j = 0; j < kk; j++) {
        v[j] = expf(v[j] == mx ? 0.0f : (v[j] - mx) / temp);
        total += v[j];
    }
    int m = kk;
    if (top_p < 1.0f) {
        double cum = 0.0, target = (double)top_p * total;
        for (int j = 0; j < kk; j++) {
            cum += v[j];
            if (cum >= target) {
                m = j + 1;
                break;
            }
        }
    }
    if (min_p > 0.0f) {
        int q = 0;
        for (int j = 0; j < m; j++)
            if (v[j] >= min_p) {
                v[q] = v[j];
                id[q++] = id[j];
            }
        m = q;
    }
    double sum = 0.0;
    for (int j = 0; j < m; j++) sum += v[j];
    double r = (double)u * sum, cum = 0.0;
    int pick = id[0];
    for (int j = 0; j < m; j++) {
        if (v[j] <= 0.0f) continue;
        cum += v[j];
        pick = id[j];
        if (r < cum) break;
    }
    ids[blockIdx.x] = pick;
}

extern "C" int k_sample_topk(void *stream, int32_t *ids, const float *logits, int rows, int n, const float *params)
{
    if (rows <= 0) return 0;
    launch_pdl(sample_topk_kernel, (unsigned)rows, 256, 0, S(stream), ids, logits, n, params);
    return LAUNCHED();
}
