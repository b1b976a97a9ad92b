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

/* ---- shared SIMD helpers (x86: compiled with target attributes, no -march needed) ---- */

#if defined(__x86_64__) && defined(__GNUC__)
#define OPS_SIMD_X86 1
#include <immintrin.h>

/* exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln 2 / 2, exp(r) by the Cephes expf
** polynomial (S. Moshier, Cephes Math Library, expf.c); ln 2 split in two for an exact r.
** Within ~2 ulp of expf. Used by swiglu (ops_fast.c) and the softmax of attention (ops_attn.c). */
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static inline __attribute__((always_inline, target("avx512f,fma"))) __m512 ops_exp512(__m512 x)
{
    /* Outside [-104, 89] expf is 0 or inf anyway; clamping keeps n finite for scalef. */
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    /* scalef gives 2^n with correct overflow to inf and underflow through denormals. */
    return _mm512_scalef_ps(p, n);
}
#endif

#endif
