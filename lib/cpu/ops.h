/*
** ops.h — CPU kernels of the transformer forward pass, fp32.
**
** ops_ref_* are plain scalar C: the ground truth, written for clarity. ops_* are the fast
** paths (SIMD chosen at run time from CPUID, threaded over a threadpool, OpenBLAS sgemm
** for larger batches); tests/test_ops.c compares each with its reference.
**
** Layouts follow llama2.c: a weight matrix W is row-major (n, k), i.e. n output rows of
** k inputs, and a matmul computes y[m][n] = sum_k x[m][k] * W[n][k] for m input rows.
*/
#ifndef INFER_OPS_H
#define INFER_OPS_H

#include "threadpool.h"

/* ---- references (single thread, scalar) ---- */
void ops_ref_matmul(float *y, const float *x, const float *w, int m, int n, int k);
/* y = x / sqrt(mean(x^2) + eps) * w, one row of `dim` */
void ops_ref_rmsnorm(float *y, const float *x, const float *w, int dim, float eps);
/* Rotary embedding in place on n_heads vectors of head_dim at position pos; pairs
** (2i, 2i+1) rotate by pos * theta^(-2i/head_dim) (llama2.c / GGUF "normal" layout). */
void ops_ref_rope(float *v, int n_heads, int head_dim, int pos, float theta);
/* h[i] = silu(g[i]) * u[i] */
void ops_ref_swiglu(float *h, const float *g, const float *u, int n);
/* numerically stable in-place softmax */
void ops_ref_softmax(float *x, int n);

/* ---- fast paths ---- */
/* Threaded; rows m >= OPS_SGEMM_MIN_ROWS go to cblas_sgemm, fewer to a SIMD kernel that
** reads W once for all rows. Within the SIMD range a row's result does not depend on m. */
/* 15: measured crossover on stories110M, 2 Zen 4 cores (bench_kernels -c 12,13,14,15,16):
** the SIMD kernel wins up to m = 14 by 5-25%, sgemm wins from 15 (by ~3%, 10% at 16). */
#define OPS_SGEMM_MIN_ROWS 15
void ops_matmul(threadpool *tp, float *y, const float *x, const float *w, int m, int n, int k);
/* m rows of dim each */
void ops_rmsnorm(float *y, const float *x, const float *w, int m, int dim, float eps);
void ops_swiglu(threadpool *tp, float *h, const float *g, const float *u, int n);
/* Name of the SIMD level chosen at run time ("avx512", "avx2", "scalar"). */
const char *ops_simd_name(void);

#endif
