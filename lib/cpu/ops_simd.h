/*
** ops_simd.h — internals of the fast CPU kernels, shared by ops_fast.c, ops_matmul.c, the
** tests and the kernel benchmark (never installed).
**
** The SIMD level is detected per call from CPUID via __builtin_cpu_supports (libgcc caches
** the CPUID result at start-up, so the check is a load and a test): no mutable state of
** ours. The *_level entry points force a level so tests can check every path on one
** machine; a level above what the CPU supports is lowered to the detected one.
*/
#ifndef INFER_OPS_SIMD_H
#define INFER_OPS_SIMD_H

#include "ops.h"

typedef enum ops_simd_level {
    OPS_SIMD_SCALAR = 0,   /* plain C: any CPU */
    OPS_SIMD_AVX2 = 1,     /* x86-64 AVX2 + FMA (Haswell, Zen 1 and later) */
    OPS_SIMD_AVX512 = 2    /* x86-64 AVX-512 F/BW + FMA (Skylake-X, Zen 4 and later) */
} ops_simd_level;

/* The best level this CPU (and OS, which must save the wide registers) supports. */
ops_simd_level ops_simd_detect(void);
const char *ops_simd_level_name(ops_simd_level level);

/* The SIMD matmul kernel for any m (no sgemm hand-off), at a forced level. Threaded over n.
** Each y element is accumulated in the same order whatever m is (batch invariance). */
void ops_matmul_simd(ops_simd_level level, threadpool *tp, float *y, const float *x,
                     const float *w, int m, int n, int k);
/* The OpenBLAS path for any m: y = x * W^T through cblas_sgemm. */
void ops_matmul_sgemm(threadpool *tp, float *y, const float *x, const float *w, int m, int n,
                      int k);

void ops_rmsnorm_level(ops_simd_level level, float *y, const float *x, const float *w, int m,
                       int dim, float eps);
void ops_swiglu_level(ops_simd_level level, threadpool *tp, float *h, const float *g,
                      const float *u, int n);

#endif
