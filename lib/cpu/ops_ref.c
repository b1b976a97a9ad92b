/*
** ops_ref.c — scalar reference kernels: the ground truth the fast paths are tested against.
**
** Written for clarity, one loop per formula, as in llama2.c run.c: no SIMD, no threads, float
** accumulation in index order. Speed does not matter here; obviousness does.
*/
#include "ops.h"

#include <math.h>

void ops_ref_matmul(float *y, const float *x, const float *w, int m, int n, int k)
{
    for (int r = 0; r < m; r++) {
        const float *xr = x + (size_t)r * (size_t)k;
        for (int i = 0; i < n; i++) {
            const float *wi = w + (size_t)i * (size_t)k;
            float sum = 0.0f;
            for (int j = 0; j < k; j++) sum += wi[j] * xr[j];
            y[(size_t)r * (size_t)n + (size_t)i] = sum;
        }
    }
}

void ops_ref_rmsnorm(float *y, const float *x, const float *w, int dim, float eps)
{
    float ss = 0.0f;
    for (int j = 0; j < dim; j++) ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int j = 0; j < dim; j++) y[j] = w[j] * (ss * x[j]);
}

void ops_ref_rope(float *v, int n_heads, int head_dim, int pos, float theta)
{
    for (int h = 0; h < n_heads; h++) {
        float *vh = v + (size_t)h * (size_t)head_dim;
        for (int i = 0; i < head_dim; i += 2) {
            float freq = 1.0f / powf(theta, (float)i / (float)head_dim);
            float a = (float)pos * freq;
            float c = cosf(a), s = sinf(a);
            float v0 = vh[i], v1 = vh[i + 1];
            vh[i] = v0 * c - v1 * s;
            vh[i + 1] = v0 * s + v1 * c;
        }
    }
}

void ops_ref_swiglu(float *h, const float *g, const float *u, int n)
{
    for (int i = 0; i < n; i++) {
        float v = g[i];
        h[i] = v * (1.0f / (1.0f + expf(-v))) * u[i];
    }
}

void ops_ref_softmax(float *x, int n)
{
    if (n <= 0) return;
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}
