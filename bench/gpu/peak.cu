// peak.cu — what the GPU can do at best, measured in the same call as the benchmarks:
//  (a) read bandwidth: a read-only reduction over a 4 GiB buffer (16-byte loads, grid-stride,
//      four independent loads in flight per thread per iteration); bytes read / time;
//  (b) cuBLAS bf16 GEMM throughput (bf16 in and out, fp32 accumulation, tensor cores) at
//      8192^3 and at prefill-like shapes: 512 tokens x the Llama-3-8B / 3.2-1B projections.
// Every figure is the median of timed runs (cudaEvent), after warm-up. Data are random, non-zero
// (a hash of the index), since zeros could make the hardware's work cheaper.
//
//   nvcc -O3 -gencode arch=compute_90a,code=sm_90a bench/gpu/peak.cu -lcublas -o peak
//   peak [--gib N] [--runs N] [--skip-gemm] [--skip-bw]
//
// Output: progress on stderr; JSON lines on stdout:
//   {"peak":"read_bw","TBps":...,"bytes":...,"ms":...,"blocks":...,"threads":...,"device":"..."}
//   {"peak":"gemm_bf16","m":...,"n":...,"k":...,"TFLOPs":...,"ms":...}
// m, n, k are in row-major terms: C[m x n] = A[m x k] * B[k x n], m = tokens for the prefill
// shapes (FLOPs = 2 m n k).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(x)                                                                                         \
    do {                                                                                              \
        cudaError_t e_ = (x);                                                                         \
        if (e_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "peak: %s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

#define CB(x)                                                                                         \
    do {                                                                                              \
        cublasStatus_t s_ = (x);                                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                            \
            fprintf(stderr, "peak: %s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #x, (int)s_);  \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

__device__ __forceinline__ uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Random 64-bit words, each with its low bit set (never zero).
__global__ void fill_u64(uint64_t *p, size_t n, uint64_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = mix64(i ^ seed) | 1;
}

// bf16 values uniform in [-1, 1), none zero.
__global__ void fill_bf16(__nv_bfloat16 *p, size_t n, uint64_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float u = (float)(mix64(i ^ seed) >> 40) * (1.0f / 16777216.0f); // [0, 1)
        float v = 2.0f * u - 1.0f;
        if (v == 0.0f) v = 0.5f;
        p[i] = __float2bfloat16(v);
    }
}

// XOR of every 16-byte word: n4 uint4 words; each thread keeps 4 loads in flight per iteration.
// The result is written only if it equals a value it (almost) never has, so the loads cannot be
// removed and nothing is written in practice.
__global__ void read_xor(const uint4 *__restrict__ p, size_t n4, unsigned *out)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    uint4 a = make_uint4(0, 0, 0, 0), b = a, c = a, d = a;
    for (; i + 3 * stride < n4; i += 4 * stride) {
        uint4 x0 = __ldcs(p + i), x1 = __ldcs(p + i + stride), x2 = __ldcs(p + i + 2 * stride),
              x3 = __ldcs(p + i + 3 * stride);
        a.x ^= x0.x; a.y ^= x0.y; a.z ^= x0.z; a.w ^= x0.w;
        b.x ^= x1.x; b.y ^= x1.y; b.z ^= x1.z; b.w ^= x1.w;
        c.x ^= x2.x; c.y ^= x2.y; c.z ^= x2.z; c.w ^= x2.w;
        d.x ^= x3.x; d.y ^= x3.y; d.z ^= x3.z; d.w ^= x3.w;
    }
    for (; i < n4; i += stride) {
        uint4 x = __ldcs(p + i);
        a.x ^= x.x; a.y ^= x.y; a.z ^= x.z; a.w ^= x.w;
    }
    unsigned r = a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    if (r == 0x9e3779b9u) atomicAdd(out, 1u);
}

static double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void measure_bw(const cudaDeviceProp &prop, size_t gib, int runs)
{
    size_t bytes = gib << 30, n4 = bytes / 16;
    uint4 *buf;
    unsigned *out;
    CK(cudaMalloc(&buf, bytes));
    CK(cudaMalloc(&out, sizeof(unsigned)));
    CK(cudaMemset(out, 0, sizeof(unsigned)));
    fill_u64<<<prop.multiProcessorCount * 8, 256>>>((uint64_t *)buf, bytes / 8, 12345);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    // A few launch shapes (1 or 2 resident blocks of 1024 threads per SM, 4 of 512): the best
    // median counts (they differ by a few percent at most).
    static const int cfg[][2] = { { 1, 1024 }, { 2, 1024 }, { 4, 512 } };
    double best_ms = 1e30;
    int best_blocks = 0, best_threads = 0;
    for (const auto &c : cfg) {
        int blocks = prop.multiProcessorCount * c[0], threads = c[1];
        for (int w = 0; w < 3; w++) read_xor<<<blocks, threads>>>(buf, n4, out);
        CK(cudaGetLastError());
        std::vector<double> ms;
        for (int r = 0; r < runs; r++) {
            CK(cudaEventRecord(e0));
            read_xor<<<blocks, threads>>>(buf, n4, out);
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            CK(cudaGetLastError());
            float t;
            CK(cudaEventElapsedTime(&t, e0, e1));
            ms.push_back(t);
        }
        double m = median(ms);
        fprintf(stderr, "peak: read %zu GiB, %d blocks x %d threads: median %.3f ms = %.3f TB/s\n", gib, blocks,
                threads, m, bytes / (m * 1e-3) / 1e12);
        if (m < best_ms) best_ms = m, best_blocks = blocks, best_threads = threads;
    }
    printf("{\"peak\":\"read_bw\",\"TBps\":%.4f,\"bytes\":%zu,\"ms\":%.4f,\"blocks\":%d,\"threads\":%d,"
           "\"runs\":%d,\"device\":\"%s\"}\n",
           bytes / (best_ms * 1e-3) / 1e12, bytes, best_ms, best_blocks, best_threads, runs, prop.name);
    fflush(stdout);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaFree(buf));
    CK(cudaFree(out));
}

// C[m x n] = A[m x k] B[k x n], row-major, bf16: cuBLAS (column-major) computes C^T = B^T A^T,
// i.e. a column-major (n x m) = (n x k)(k x m) product with B^T as its first operand.
static void measure_gemm(cublasHandle_t h, int m, int n, int k, int runs)
{
    __nv_bfloat16 *A, *B, *C;
    CK(cudaMalloc(&A, (size_t)m * k * sizeof *A));
    CK(cudaMalloc(&B, (size_t)k * n * sizeof *B));
    CK(cudaMalloc(&C, (size_t)m * n * sizeof *C));
    fill_bf16<<<1024, 256>>>(A, (size_t)m * k, 1);
    fill_bf16<<<1024, 256>>>(B, (size_t)k * n, 2);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    const float alpha = 1.0f, beta = 0.0f;
    auto gemm = [&]() {
        CB(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, B, CUDA_R_16BF, n, A, CUDA_R_16BF, k, &beta, C,
                        CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    };
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int w = 0; w < 3; w++) gemm();
    // Back-to-back calls per sample, so one sample lasts >= ~2 ms (small GEMMs take ~0.1 ms).
    CK(cudaEventRecord(e0));
    gemm();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float t1;
    CK(cudaEventElapsedTime(&t1, e0, e1));
    int reps = t1 > 0 ? (int)(2.0f / t1) + 1 : 1;
    if (reps > 200) reps = 200;
    std::vector<double> ms;
    for (int r = 0; r < runs; r++) {
        CK(cudaEventRecord(e0));
        for (int i = 0; i < reps; i++) gemm();
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t / reps);
    }
    double md = median(ms);
    double tf = 2.0 * m * n * k / (md * 1e-3) / 1e12;
    fprintf(stderr, "peak: gemm bf16 m=%d n=%d k=%d: median %.4f ms = %.1f TFLOP/s (%d calls per sample)\n", m, n, k,
            md, tf, reps);
    printf("{\"peak\":\"gemm_bf16\",\"m\":%d,\"n\":%d,\"k\":%d,\"TFLOPs\":%.2f,\"ms\":%.5f,\"runs\":%d}\n", m, n, k, tf,
           md, runs);
    fflush(stdout);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaFree(A));
    CK(cudaFree(B));
    CK(cudaFree(C));
}

int main(int argc, char **argv)
{
    size_t gib = 4;
    int runs = 20, do_bw = 1, do_gemm = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gib") && i + 1 < argc) gib = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--skip-gemm")) do_gemm = 0;
        else if (!strcmp(argv[i], "--skip-bw")) do_bw = 0;
        else {
            fprintf(stderr, "usage: peak [--gib N] [--runs N] [--skip-gemm] [--skip-bw]\n");
            return 2;
        }
    }
    if (gib < 1 || runs < 1) {
        fprintf(stderr, "peak: --gib and --runs must be >= 1\n");
        return 2;
    }
    int dev = 0;
    CK(cudaSetDevice(dev));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    fprintf(stderr, "peak: %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount,
            prop.totalGlobalMem / (double)(1u << 30));
    if (do_bw) measure_bw(prop, gib, runs);
    if (do_gemm) {
        cublasHandle_t h;
        CB(cublasCreate(&h));
        static const int shapes[][3] = {
            { 8192, 8192, 8192 },   // square: the card's best case
            { 512, 14336, 4096 },   // 8B prefill, 512 tokens: gate/up projection
            { 512, 4096, 14336 },   // 8B down projection
            { 512, 4096, 4096 },    // 8B q/o projection
            { 512, 8192, 2048 },    // 1B gate/up projection
            { 512, 2048, 8192 },    // 1B down projection
        };
        for (const auto &s : shapes) measure_gemm(h, s[0], s[1], s[2], runs);
        CB(cublasDestroy(h));
    }
    return 0;
}
