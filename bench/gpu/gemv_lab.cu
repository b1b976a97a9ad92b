/*
** gemv_lab.cu — batch-1 products of a decode step, as the GPU runs them inside a graph: cuBLAS
** (the backend's path for 16-bit products of several rows), the library's k_gemv plain and with
** a decode layer's fusions (the batch-1 path), and v3, an invalid kernel kept as the bound of
** full overlap (see below); on the Llama-3-8B shapes of one GPU and of one rank of two. Each
** case is 32 layers' worth of distinct matrices (so nothing stays in L2), captured once as a
** graph and replayed; times are per matrix, per layer of four products in a row, and per
** "step-like" layer (small dependent PDL kernels after each product, as in a decode step),
** with the share of the read bandwidth measured at the start.
**
** What it cannot show: how a kernel's PDL trigger interacts with the deeper chains of a real
** step (k_gemv's early trigger looked free here and cost 9% of whole 8B steps; see gemv.cu).
** Whole steps are bench/gpu/tp_check.sh's job.
**
** Built by hand on the GPU machine (not by make; it compiles kernels/gemv.cu in):
**   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -Ikernels bench/gpu/gemv_lab.cu \
**        kernels/gemv.cu -lcublas -o gemv_lab && ./gemv_lab -o gemv_lab.jsonl
**
** A laboratory for choosing kernels, not a test: results in bench/results/2026-11-27-gemv/ and
** 2026-11-27-rowblock/.
*/
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"
#include "kernels.h"

#define CK(x)                                                                                     \
    do {                                                                                          \
        cudaError_t e_ = (cudaError_t)(x);                                                        \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "gemv_lab: %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

#define NL 32

/* ---- v3: a row split over the whole block (each thread U loads, all in flight), many short
** blocks, the first loads before the PDL wait, no fusions. Not a valid kernel: its activations
** are read with __ldg through __restrict__ pointers, which the compiler treats as invariant
** and hoists, with the sums of the first row, above griddepcontrol.wait (cuobjdump -sass: the
** ACQBULK comes after every FFMA of the first row). So it overlaps a whole row of work with
** its predecessor, reading x before x is written: the bound of full overlap, not a candidate.
** With an outer pass loop (which kept the loads below the wait) it ran at k_gemv's speed
** (bench/results/2026-11-27-rowblock/gemv_lab-bisect.txt). ---- */
template <int U>
__global__ void __launch_bounds__(128) gemv_v3(const uint16_t *__restrict__ W, const float *__restrict__ x,
                                               float *__restrict__ y, int n, int k)
{
    __shared__ float red[4];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int per = 128 * 8;
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        float acc = 0.0f;
        uint4 w[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int e = u * per + threadIdx.x * 8;
            w[u] = e < k ? __ldg((const uint4 *)(W + (size_t)row * k + e)) : make_uint4(0, 0, 0, 0);
        }
        if (row == (int)blockIdx.x) {
            pdl_trigger();
            pdl_wait();
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            int e = u * per + threadIdx.x * 8;
            if (e < k) {
                const float4 *xp = (const float4 *)(x + e);
                float4 a = __ldg(xp), b = __ldg(xp + 1);
                const uint32_t q[4] = { w[u].x, w[u].y, w[u].z, w[u].w };
                acc += __uint_as_float(q[0] << 16) * a.x + __uint_as_float(q[0] & 0xffff0000u) * a.y +
                       __uint_as_float(q[1] << 16) * a.z + __uint_as_float(q[1] & 0xffff0000u) * a.w +
                       __uint_as_float(q[2] << 16) * b.x + __uint_as_float(q[2] & 0xffff0000u) * b.y +
                       __uint_as_float(q[3] << 16) * b.z + __uint_as_float(q[3] & 0xffff0000u) * b.w;
            }
        }
        acc = warp_sum(acc);
        if (lane == 0) red[warp] = acc;
        __syncthreads();
        if (threadIdx.x == 0) y[row] = red[0] + red[1] + red[2] + red[3];
        __syncthreads();
    }
}

/* ---- the harness ---- */

/* What sits between two products of a decode step (RMSNorm, RoPE, attention, SwiGLU): a small
** kernel launched with PDL that waits for the product, reads its output and writes the next
** product's input (x, and xc for cuBLAS: the same values as x0 while y stays finite). */
__global__ void between_kernel(const float *y, int n, const float *x0, float *x, uint16_t *xc, int k)
{
    pdl_trigger();
    pdl_wait();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < k; i += gridDim.x * blockDim.x) {
        float v = x0[i] + 0.0f * y[i % n];
        uint32_t u;
        memcpy(&u, &v, 4);
        x[i] = v;
        xc[i] = (uint16_t)(u >> 16);
    }
}

typedef struct shape {
    const char *name;
    int n, k;
} shape;

typedef struct layer_mats {
    uint16_t *w[4];
} layer_mats;

static int n_sm;
static cublasHandle_t blas;
static FILE *jl;
static double peak_gbs;
static float *g_x0; /* the constant input between_kernel copies */

__global__ void fill_kernel(uint16_t *d, size_t n, uint32_t seed)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        d[i] = (uint16_t)(0x3c00 | (h & 0x7f)) ^ (uint16_t)((h >> 31) << 15); /* bf16 +-[0.0078, 0.0156) */
    }
}

static void fill(uint16_t *d, size_t n, uint32_t seed)
{
    fill_kernel<<<1024, 256>>>(d, n, seed);
    CK(cudaDeviceSynchronize());
}

enum { K_CUBLAS, K_GEMV, K_GEMV_FUSED, K_V3, K_COUNT };
static const char *kname[K_COUNT] = { "cublas", "k_gemv", "k_gemv fused", "v3 (invalid)" };

static void launch_v3(cudaStream_t s, const uint16_t *W, int n, int k, const float *x, float *y)
{
    int cap = n_sm * 16, blocks = n < cap ? n : cap;
    if (k <= 4096) launch_pdl(gemv_v3<4>, blocks, 128, 0, s, W, x, y, n, k);
    else if (k <= 8192) launch_pdl(gemv_v3<8>, blocks, 128, 0, s, W, x, y, n, k);
    else launch_pdl(gemv_v3<16>, blocks, 128, 0, s, W, x, y, n, k);
}

static float *g_norm; /* RMSNorm weights for the fused QKV and gate|up products */

/* mat: 0 QKV, 1 O, 2 gate|up, 3 down (the fusions of a decode layer: norm, residual, pair) */
static void launch(int kind, cudaStream_t s, const uint16_t *W, int n, int k, const float *x, const void *xc, float *y,
                   int mat)
{
    switch (kind) {
    case K_CUBLAS: {
        const float one = 1.0f, zero = 0.0f;
        cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, 1, k, &one, W, CUDA_R_16BF, k, xc, CUDA_R_16BF, k, &zero, y,
                     CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        break;
    }
    case K_V3: launch_v3(s, W, n, k, x, y); break;
    default: { /* k_gemv: plain, or with a decode layer's fusions and trigger/grid variant */
        kmat w = {};
        w.type = KT_BF16;
        w.n = n;
        w.k = k;
        w.q = (void *)W;
        gemv_args ga = {};
        ga.y = y;
        ga.x = x;
        ga.eps = 1e-5f;
        ga.m = 1;
        if (kind == K_GEMV_FUSED) {
            ga.norm = mat == 0 || mat == 2 ? g_norm : NULL;
            ga.pair = mat == 2;
            ga.accumulate = mat == 1 || mat == 3;
        }
        k_gemv(s, &w, &ga);
        break;
    }
    }
}

/* Median microseconds of a graph of `reps` replays (the graph: what enqueue() puts on s). */
template <typename F> static double graph_us(cudaStream_t s, F enqueue, int reps)
{
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    enqueue();
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(ge, s));
    float t[32];
    for (int i = 0; i < reps; i++) {
        CK(cudaEventRecord(e0, s));
        CK(cudaGraphLaunch(ge, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    for (int i = 0; i < reps; i++)
        for (int j = i + 1; j < reps; j++)
            if (t[j] < t[i]) {
                float z = t[i];
                t[i] = t[j];
                t[j] = z;
            }
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return t[reps / 2] * 1e3;
}

__global__ void read_kernel(const uint4 *p, size_t n, uint32_t *sink)
{
    uint32_t acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint4 v = __ldg(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

static void run_set(const char *set, const shape *sh, cudaStream_t s, float *x, void *xc, float *y)
{
    layer_mats L[NL];
    size_t layer_bytes = 0;
    for (int i = 0; i < 4; i++) layer_bytes += (size_t)sh[i].n * sh[i].k * 2;
    for (int l = 0; l < NL; l++)
        for (int i = 0; i < 4; i++) {
            size_t n = (size_t)sh[i].n * sh[i].k;
            CK(cudaMalloc((void **)&L[l].w[i], n * 2));
            fill(L[l].w[i], n, 77u + 13u * (uint32_t)(l * 4 + i));
        }
    /* agreement with cuBLAS on layer 0 */
    for (int i = 0; i < 4; i++) {
        int n = sh[i].n, k = sh[i].k;
        float *ref = (float *)malloc((size_t)n * 4), *got = (float *)malloc((size_t)n * 4);
        launch(K_CUBLAS, s, L[0].w[i], n, k, x, xc, y, i);
        CK(cudaStreamSynchronize(s));
        CK(cudaMemcpy(ref, y, (size_t)n * 4, cudaMemcpyDeviceToHost));
        for (int kind = 1; kind < K_COUNT; kind++) {
            if (kind == K_GEMV_FUSED) continue; /* other results by design */
            CK(cudaMemset(y, 0xff, (size_t)n * 4));
            launch(kind, s, L[0].w[i], n, k, x, xc, y, i);
            CK(cudaStreamSynchronize(s));
            CK(cudaMemcpy(got, y, (size_t)n * 4, cudaMemcpyDeviceToHost));
            double num = 0, den = 0;
            for (int j = 0; j < n; j++) {
                num = fmax(num, fabs((double)got[j] - ref[j]));
                den = fmax(den, fabs((double)ref[j]));
            }
            if (!(num <= 2e-2 * den)) printf("  MISMATCH %s %s %s: rel %.3e\n", set, sh[i].name, kname[kind], num / den);
        }
        free(ref);
        free(got);
    }
    printf("\n%s: per layer %.1f MB; floor at %.0f GB/s %.1f us\n", set, layer_bytes / 1e6, peak_gbs,
           layer_bytes / (peak_gbs * 1e3));
    printf("%-14s", "kernel");
    for (int i = 0; i < 4; i++) printf(" %16s", sh[i].name);
    printf(" %18s %18s\n", "layer (4 in a row)", "step-like layer");
    for (int ki = 0; ki < K_COUNT; ki++) {
        int kind = K_COUNT - 1 - ki; /* candidates first: an order effect would favour cuBLAS */
        printf("%-14s", kname[kind]);
        for (int i = 0; i < 4; i++) {
            double us = graph_us(s, [&] {
                for (int l = 0; l < NL; l++) launch(kind, s, L[l].w[i], sh[i].n, sh[i].k, x, xc, y, i);
            }, 15) / NL;
            double bytes = (double)sh[i].n * sh[i].k * 2;
            printf(" %7.2f us %4.0f%%", us, 100.0 * bytes / (us * 1e3) / peak_gbs);
            fprintf(jl, "{\"set\":\"%s\",\"matrix\":\"%s\",\"kernel\":\"%s\",\"us\":%.3f,\"GBps\":%.1f}\n", set, sh[i].name,
                    kname[kind], us, bytes / (us * 1e3));
        }
        double us = graph_us(s, [&] {
            for (int l = 0; l < NL; l++)
                for (int i = 0; i < 4; i++) launch(kind, s, L[l].w[i], sh[i].n, sh[i].k, x, xc, y, i);
        }, 15) / NL;
        printf("  %7.2f us %4.0f%%", us, 100.0 * layer_bytes / (us * 1e3) / peak_gbs);
        fprintf(jl, "{\"set\":\"%s\",\"matrix\":\"layer\",\"kernel\":\"%s\",\"us\":%.3f,\"GBps\":%.1f}\n", set, kname[kind],
                us, layer_bytes / (us * 1e3));
        us = graph_us(s, [&] {
            for (int l = 0; l < NL; l++)
                for (int i = 0; i < 4; i++) {
                    launch(kind, s, L[l].w[i], sh[i].n, sh[i].k, x, xc, y, i);
                    int kn = sh[(i + 1) % 4].k;
                    for (int b = 0; b < (i == 0 ? 3 : 1); b++) /* QKV: RoPE, attention, combine */
                        launch_pdl(between_kernel, 32, 256, 0, s, (const float *)y, sh[i].n, (const float *)g_x0, x,
                                   (uint16_t *)xc, kn);
                }
        }, 15) / NL;
        printf("  %7.2f us %4.0f%%\n", us, 100.0 * layer_bytes / (us * 1e3) / peak_gbs);
        fprintf(jl, "{\"set\":\"%s\",\"matrix\":\"step-like layer\",\"kernel\":\"%s\",\"us\":%.3f,\"GBps\":%.1f}\n", set,
                kname[kind], us, layer_bytes / (us * 1e3));
    }
    for (int l = 0; l < NL; l++)
        for (int i = 0; i < 4; i++) cudaFree(L[l].w[i]);
}

int main(int argc, char **argv)
{
    const char *out = argc > 2 && !strcmp(argv[1], "-o") ? argv[2] : "gemv_lab.jsonl";
    jl = fopen(out, "w");
    if (!jl) return 1;
    CK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, 0));
    if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) return 1;
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    void *ws;
    CK(cudaMalloc(&ws, 32 << 20));
    cublasSetStream(blas, s);
    cublasSetWorkspace(blas, ws, 32 << 20);
    int kmax = 14336;
    float *x, *y;
    void *xc;
    CK(cudaMalloc((void **)&x, kmax * 4));
    CK(cudaMalloc(&xc, kmax * 2));
    CK(cudaMalloc((void **)&y, 65536 * 4));
    CK(cudaMalloc((void **)&g_norm, kmax * 4));
    fill((uint16_t *)g_norm, (size_t)kmax * 2, 5u); /* any finite values */
    {
        float *h = (float *)malloc(kmax * 4);
        uint16_t *hb = (uint16_t *)malloc(kmax * 2);
        for (int i = 0; i < kmax; i++) {
            h[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
            uint32_t u;
            memcpy(&u, &h[i], 4);
            hb[i] = (uint16_t)(u >> 16);
            u &= 0xffff0000u;
            memcpy(&h[i], &u, 4); /* the same values in both */
        }
        CK(cudaMemcpy(x, h, kmax * 4, cudaMemcpyHostToDevice));
        CK(cudaMalloc((void **)&g_x0, kmax * 4));
        CK(cudaMemcpy(g_x0, h, kmax * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(xc, hb, kmax * 2, cudaMemcpyHostToDevice));
        free(h);
        free(hb);
    }
    /* peak: a plain read of 1 GiB */
    {
        size_t n = (size_t)1 << 30;
        void *buf;
        uint32_t *sink;
        CK(cudaMalloc(&buf, n));
        CK(cudaMalloc((void **)&sink, 4));
        CK(cudaMemset(buf, 1, n));
        double us = graph_us(s, [&] { read_kernel<<<n_sm * 8, 512, 0, s>>>((const uint4 *)buf, n / 16, sink); }, 9);
        peak_gbs = n / (us * 1e3);
        printf("read bandwidth: %.0f GB/s (1 GiB)\n", peak_gbs);
        cudaFree(buf);
        cudaFree(sink);
    }
    const shape one[4] = { { "qkv 6144x4096", 6144, 4096 }, { "o 4096x4096", 4096, 4096 },
                           { "gu 28672x4096", 28672, 4096 }, { "down 4096x14336", 4096, 14336 } };
    const shape rank[4] = { { "qkv 3072x4096", 3072, 4096 }, { "o 4096x2048", 4096, 2048 },
                            { "gu 14336x4096", 14336, 4096 }, { "down 4096x7168", 4096, 7168 } };
    run_set("8B, 1 GPU", one, s, x, xc, y);
    run_set("8B, rank of 2", rank, s, x, xc, y);
    fclose(jl);
    return 0;
}
