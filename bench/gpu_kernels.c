/*
** gpu_kernels — time each CUDA kernel of a decode step alone (CUDA events, median of 50 runs
** after warm-up, random non-zero inputs) on the Llama-3.2-1B and Llama-3-8B shapes, with the
** bytes each must move and the resulting GB/s. Prints a table and JSON lines (-o PATH).
** Needs a CUDA build and a GPU; links the static library for the kernels' launch functions.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef INFER_HAVE_CUDA
#include <cuda_runtime.h>

#include "../kernels/kernels.h"

#define CK(x)                                                                                   \
    do {                                                                                        \
        int e_ = (int)(x);                                                                      \
        if (e_) {                                                                               \
            fprintf(stderr, "gpu_kernels: %s failed: %s\n", #x, cudaGetErrorString((cudaError_t)e_)); \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static FILE *jl;

static void *dev_random(size_t bytes)
{
    void *d;
    CK(cudaMalloc(&d, bytes));
    uint16_t *h = malloc(bytes);
    uint32_t s = 12345;
    for (size_t i = 0; i < bytes / 2; i++) {
        s = s * 1664525u + 1013904223u;
        h[i] = (uint16_t)(0x3c00 | ((s >> 16) & 0x3ff)) ^ (uint16_t)((s >> 31) << 15); /* +-[1,2) as f16/bf16-ish */
    }
    CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

typedef int (*launch_fn)(void *ctx);

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void timeit(const char *name, launch_fn f, void *ctx, double bytes)
{
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 10; i++) CK(f(ctx));
    float t[50];
    for (int i = 0; i < 50; i++) {
        CK(cudaEventRecord(e0, 0));
        CK(f(ctx));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    qsort(t, 50, sizeof t[0], cmpf);
    double us = t[25] * 1e3;
    printf("%-44s %9.2f us %9.1f GB/s\n", name, us, bytes > 0 ? bytes / (us * 1e3) : 0.0);
    fprintf(jl, "{\"kernel\":\"%s\",\"us\":%.3f,\"bytes\":%.0f,\"GBps\":%.1f}\n", name, us, bytes,
            bytes > 0 ? bytes / (us * 1e3) : 0.0);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

typedef struct gemv_ctx {
    float *y, *x;
    void *xq;
    kmat w;
    int m;
} gemv_ctx;

static int run_gemv(void *p)
{
    gemv_ctx *g = p;
    if (g->w.type == KT_Q8_0 || g->w.type == KT_Q4_0) {
        int e = k_quantize_x(NULL, g->xq, g->x, NULL, 1e-5f, g->m, g->w.k);
        if (e) return e;
    }
    gemv_args ga = { .y = g->y, .x = g->x, .xq = g->xq, .eps = 1e-5f, .m = g->m };
    return k_gemv(NULL, &g->w, &ga);
}

static void bench_gemv(int type, int64_t n, int64_t k, int m)
{
    gemv_ctx g = { 0 };
    g.m = m;
    g.w.type = type;
    g.w.n = n;
    g.w.k = k;
    size_t wbytes = type == KT_Q8_0 ? (size_t)(n * k) : type == KT_Q4_0 ? (size_t)(n * k / 2) : (size_t)(n * k) * 2;
    g.w.q = dev_random(wbytes);
    if (type == KT_Q8_0 || type == KT_Q4_0) g.w.d = dev_random((size_t)(n * (k / 32)) * 2);
    g.x = dev_random((size_t)(m * k) * 4);
    CK(cudaMemset(g.x, 0x3c, (size_t)(m * k) * 4));
    CK(cudaMalloc(&g.xq, k_xq_bytes(m, k)));
    CK(cudaMalloc((void **)&g.y, (size_t)(m * n) * 4));
    char name[96];
    snprintf(name, sizeof name, "gemv %s %lldx%lld m=%d", type == KT_Q8_0 ? "q8_0" : type == KT_Q4_0 ? "q4_0" : "bf16",
             (long long)n, (long long)k, m);
    timeit(name, run_gemv, &g, (double)wbytes + (type == KT_Q8_0 || type == KT_Q4_0 ? (double)(n * (k / 32)) * 2 : 0));
    cudaFree(g.w.q);
    cudaFree(g.w.d);
    cudaFree(g.x);
    cudaFree(g.xq);
    cudaFree(g.y);
}

typedef struct attn_ctx {
    attn_desc a;
    kv_geom kv;
    float *out;
} attn_ctx;

static int run_attn(void *p)
{
    attn_ctx *c = p;
    int e = k_attention(NULL, &c->a, &c->kv, 0);
    return e ? e : k_attn_combine(NULL, c->out, KT_F32, &c->a);
}

/* rows decode rows (one sequence each) at context ctx, or one prefill of rows tokens. */
static void bench_attn(int n_heads, int n_kv, int hd, int rows, int ctx, int prefill)
{
    attn_ctx c = { 0 };
    int bt = 16, L = 1, kvd = n_kv * hd, nblk_seq = (ctx + bt - 1) / bt, n_seqs = prefill ? 1 : rows;
    int n_blocks = nblk_seq * n_seqs;
    c.kv = (kv_geom){ dev_random((size_t)n_blocks * L * 2 * bt * kvd * 2), KT_BF16, L, bt, kvd };
    int32_t *tiles = malloc(sizeof(int32_t) * 3 * (size_t)rows), *pos = malloc(sizeof(int32_t) * (size_t)rows);
    int32_t *btab = malloc(sizeof(int32_t) * (size_t)n_blocks), *bto = malloc(sizeof(int32_t) * (size_t)n_seqs);
    for (int i = 0; i < n_blocks; i++) btab[i] = (i * 7919) % n_blocks;
    int tile_rows = prefill ? k_attn_tile_rows(n_heads / n_kv) : 1, n_tiles = 0;
    for (int s = 0; s < n_seqs; s++) bto[s] = s * nblk_seq;
    for (int r = 0; r < rows; r++) pos[r] = prefill ? ctx - rows + r : ctx - 1;
    for (int r = 0; r < rows; r += tile_rows) {
        tiles[3 * n_tiles] = r;
        tiles[3 * n_tiles + 1] = rows - r < tile_rows ? rows - r : tile_rows;
        tiles[3 * n_tiles + 2] = prefill ? 0 : r;
        n_tiles++;
    }
    int split = 64, n_splits = (ctx + split - 1) / split;
    int32_t *dt, *dp, *db, *dbo;
    CK(cudaMalloc((void **)&dt, sizeof(int32_t) * 3 * (size_t)n_tiles));
    CK(cudaMalloc((void **)&dp, sizeof(int32_t) * (size_t)rows));
    CK(cudaMalloc((void **)&db, sizeof(int32_t) * (size_t)n_blocks));
    CK(cudaMalloc((void **)&dbo, sizeof(int32_t) * (size_t)n_seqs));
    CK(cudaMemcpy(dt, tiles, sizeof(int32_t) * 3 * (size_t)n_tiles, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dp, pos, sizeof(int32_t) * (size_t)rows, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, btab, sizeof(int32_t) * (size_t)n_blocks, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dbo, bto, sizeof(int32_t) * (size_t)n_seqs, cudaMemcpyHostToDevice));
    float *q = dev_random((size_t)rows * n_heads * hd * 4);
    CK(cudaMemset(q, 0x3c, (size_t)rows * n_heads * hd * 4));
    float *po, *pml;
    CK(cudaMalloc((void **)&po, (size_t)rows * n_heads * n_splits * hd * 4));
    CK(cudaMalloc((void **)&pml, (size_t)rows * n_heads * n_splits * 2 * 4));
    CK(cudaMalloc((void **)&c.out, (size_t)rows * n_heads * hd * 4));
    c.a = (attn_desc){ .q = q, .tiles = dt, .pos = dp, .bt = db, .bt_off = dbo, .part_o = po, .part_ml = pml,
                       .n_tiles = n_tiles, .rows = rows, .tile_rows = tile_rows, .n_splits = n_splits,
                       .split_len = split, .n_heads = n_heads, .n_kv_heads = n_kv, .head_dim = hd, .scale = 0.125f };
    char name[96];
    snprintf(name, sizeof name, "attention %d/%dx%d %s %d rows ctx %d", n_heads, n_kv, hd, prefill ? "prefill" : "decode",
             rows, ctx);
    double kvbytes = prefill ? (double)ctx * kvd * 2 * 2 : (double)rows * ctx * kvd * 2 * 2;
    timeit(name, run_attn, &c, kvbytes);
    cudaFree(c.kv.cache); cudaFree(dt); cudaFree(dp); cudaFree(db); cudaFree(dbo); cudaFree(q); cudaFree(po);
    cudaFree(pml); cudaFree(c.out);
    free(tiles); free(pos); free(btab); free(bto);
}

typedef struct small_ctx {
    float *a, *b, *c, *w;
    int rows, n, which;
} small_ctx;

static int run_small(void *p)
{
    small_ctx *s = p;
    if (s->which == 0) return k_rmsnorm(NULL, s->a, KT_F32, s->b, s->c, s->w, NULL, s->rows, s->n, 1e-5f);
    return k_swiglu(NULL, s->a, KT_F32, s->b, s->rows, s->n);
}

int main(int argc, char **argv)
{
    jl = stdout;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "-o")) jl = fopen(argv[i + 1], "w");
    if (!jl) return 1;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("gpu_kernels: no GPU: skipped\n");
        return 0;
    }
    CK(k_attn_init());
    printf("%-44s %12s %14s\n", "kernel", "median", "achieved");
    /* Llama-3.2-1B decode: fused QKV, O, gate|up, down, output */
    int64_t mats1b[5][2] = { { 3072, 2048 }, { 2048, 2048 }, { 16384, 2048 }, { 2048, 8192 }, { 128256, 2048 } };
    int64_t mats8b[5][2] = { { 6144, 4096 }, { 4096, 4096 }, { 28672, 4096 }, { 4096, 14336 }, { 128256, 4096 } };
    for (int i = 0; i < 5; i++) bench_gemv(KT_BF16, mats1b[i][0], mats1b[i][1], 1);
    for (int i = 0; i < 5; i++) bench_gemv(KT_BF16, mats8b[i][0], mats8b[i][1], 1);
    bench_gemv(KT_BF16, 16384, 2048, 4);
    bench_gemv(KT_Q8_0, 16384, 2048, 1);
    bench_gemv(KT_Q4_0, 16384, 2048, 1);
    bench_gemv(KT_Q4_0, 28672, 4096, 1);
    bench_attn(32, 8, 64, 1, 256, 0);
    bench_attn(32, 8, 64, 1, 384, 0);
    bench_attn(32, 8, 128, 1, 384, 0);
    bench_attn(32, 8, 64, 64, 384, 0);
    bench_attn(32, 8, 64, 512, 512, 1);
    bench_attn(32, 8, 128, 512, 512, 1);
    small_ctx s = { dev_random(2048 * 4 * 64), dev_random(2048 * 4 * 64), dev_random(2048 * 4 * 64), dev_random(2048 * 4),
                    1, 2048, 0 };
    CK(cudaMemset(s.b, 0, 2048 * 4 * 64));
    CK(cudaMemset(s.c, 0, 2048 * 4 * 64));
    timeit("rmsnorm+residual 1x2048", run_small, &s, 2048 * 4 * 3);
    small_ctx w = { dev_random(8192 * 4 * 64), dev_random(16384 * 4 * 64), NULL, NULL, 1, 8192, 1 };
    CK(cudaMemset(w.b, 0, 16384 * 4 * 64));
    timeit("swiglu 1x8192", run_small, &w, 8192 * 4 * 3);
    if (jl != stdout) fclose(jl);
    return 0;
}

#else
int main(void)
{
    printf("gpu_kernels: this build has no CUDA backend: skipped\n");
    return 0;
}
#endif
