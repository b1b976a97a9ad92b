/*
** q4_calib.h — calibrated 4-bit re-encoding for test_gguf_model.c (header-only, one runner).
**
** A tiny model loses too much to plain round-to-nearest 4 bits, so, as llama.cpp does with
** an imatrix and GPTQ does with calibration data, the quantizer is told which inputs matter:
**   1. calib_collect runs a plain f32 llama forward over calibration tokens (taken from the
**      GGUF's own F32 tensors) and sums x x^T of the input of every matmul;
**   2. q4_gptq quantizes a matrix one input column at a time, in 32-column blocks (the
**      format's blocks), pushing each column's rounding error onto the columns not yet
**      quantized through the inverse of that second moment (GPTQ, group size 32);
**   3. each block's scale (and Q4_1 min) minimises sum_j w_j (x_j - q_j)^2 with w_j the
**      mean squared activation of column j (the imatrix).
** Only the choice of scales and codes changes: the blocks are ggml's Q4_0/Q4_1 layout, so any
** reader of the format decodes the file.
*/
#ifndef INFER_Q4_CALIB_H
#define INFER_Q4_CALIB_H

#include <math.h>

#include "test_util.h"
#include "gguf.h"

typedef struct calib {
    int dim, hidden, n_heads, n_kv, head_size, n_layers;
    float rope_base, eps;
    int64_t n;          /* tokens seen */
    double *xx;         /* (n_layers * 3 + 1, dim, dim) sums of x x^T: per layer the input of
                        ** q/k/v, of attn_output, of gate/up; last the input of output.weight */
} calib;

static const float *calib_tensor(const gguf_file *g, int layer, const char *name)
{
    char full[128];
    if (layer < 0) snprintf(full, sizeof full, "%s", name);
    else snprintf(full, sizeof full, "blk.%d.%s", layer, name);
    const gguf_tensor *t = gguf_find_tensor(g, full);
    assert_non_null(t);
    assert_int_equal(t->type, DT_F32);
    return (const float *)t->data;
}

static void calib_init(calib *c, const gguf_file *g)
{
    uint32_t v;
    memset(c, 0, sizeof *c);
    assert_int_equal(gguf_get_u32(g, "llama.embedding_length", &v), INFER_OK); c->dim = (int)v;
    assert_int_equal(gguf_get_u32(g, "llama.feed_forward_length", &v), INFER_OK); c->hidden = (int)v;
    assert_int_equal(gguf_get_u32(g, "llama.attention.head_count", &v), INFER_OK); c->n_heads = (int)v;
    assert_int_equal(gguf_get_u32(g, "llama.attention.head_count_kv", &v), INFER_OK); c->n_kv = (int)v;
    assert_int_equal(gguf_get_u32(g, "llama.block_count", &v), INFER_OK); c->n_layers = (int)v;
    assert_int_equal(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &c->eps), INFER_OK);
    if (gguf_get_f32(g, "llama.rope.freq_base", &c->rope_base) != INFER_OK) c->rope_base = 10000.0f;
    c->head_size = c->dim / c->n_heads;
    c->xx = calloc((size_t)(c->n_layers * 3 + 1) * c->dim * c->dim, sizeof(double));
    assert_non_null(c->xx);
}

static void calib_free(calib *c) { free(c->xx); }

static void calib_rmsnorm(int n, float *out, const float *x, const float *w, float eps)
{
    float ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    ss = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * ss * w[i];
}

/* out(rows) = W(rows, n) in(n) */
static void calib_matvec(float *out, const float *W, const float *in, int n, int rows)
{
    for (int r = 0; r < rows; r++) {
        float s = 0;
        for (int i = 0; i < n; i++) s += W[(size_t)r * n + i] * in[i];
        out[r] = s;
    }
}

static void calib_accum(const calib *c, int slot, const float *x)
{
    double *m = c->xx + (size_t)slot * c->dim * c->dim;
    for (int i = 0; i < c->dim; i++)
        for (int j = 0; j < c->dim; j++) m[(size_t)i * c->dim + j] += (double)x[i] * x[j];
}

/* Plain f32 llama forward of one sequence (rope on adjacent pairs, as llama2.c-derived GGUFs
** use), accumulating the matmul inputs. Fills argmax[pos] when non-NULL, so the caller can
** check this forward against the runtime before trusting its statistics. */
static void calib_collect(calib *c, const gguf_file *g, const int32_t *tok, int n, int32_t *argmax)
{
    const int D = c->dim, H = c->hidden, HS = c->head_size, KV = c->n_kv * HS;
    const int vocab = (int)gguf_find_tensor(g, "output.weight")->ne[1];
    float *x = malloc(sizeof(float) * D), *xb = malloc(sizeof(float) * D), *q = malloc(sizeof(float) * D);
    float *att = malloc(sizeof(float) * D), *tmp = malloc(sizeof(float) * D), *sc = malloc(sizeof(float) * n);
    float *h1 = malloc(sizeof(float) * H), *h3 = malloc(sizeof(float) * H), *logits = malloc(sizeof(float) * vocab);
    float *kc = malloc(sizeof(float) * c->n_layers * n * KV), *vc = malloc(sizeof(float) * c->n_layers * n * KV);
    for (int pos = 0; pos < n; pos++) {
        memcpy(x, calib_tensor(g, -1, "token_embd.weight") + (size_t)tok[pos] * D, sizeof(float) * D);
        for (int l = 0; l < c->n_layers; l++) {
            float *k = kc + ((size_t)l * n + pos) * KV, *v = vc + ((size_t)l * n + pos) * KV;
            calib_rmsnorm(D, xb, x, calib_tensor(g, l, "attn_norm.weight"), c->eps);
            calib_accum(c, l * 3, xb);
            calib_matvec(q, calib_tensor(g, l, "attn_q.weight"), xb, D, D);
            calib_matvec(k, calib_tensor(g, l, "attn_k.weight"), xb, D, KV);
            calib_matvec(v, calib_tensor(g, l, "attn_v.weight"), xb, D, KV);
            for (int i = 0; i < D; i += 2) {
                float a = (float)pos / powf(c->rope_base, (float)(i % HS) / (float)HS);
                float co = cosf(a), si = sinf(a), q0 = q[i], q1 = q[i + 1];
                q[i] = q0 * co - q1 * si;
                q[i + 1] = q0 * si + q1 * co;
                if (i < KV) {
                    float k0 = k[i], k1 = k[i + 1];
                    k[i] = k0 * co - k1 * si;
                    k[i + 1] = k0 * si + k1 * co;
                }
            }
            for (int h = 0; h < c->n_heads; h++) {
                int kh = h / (c->n_heads / c->n_kv);
                float mx = -INFINITY, sum = 0;
                for (int t = 0; t <= pos; t++) {
                    const float *kt = kc + ((size_t)l * n + t) * KV + kh * HS;
                    float s = 0;
                    for (int i = 0; i < HS; i++) s += q[h * HS + i] * kt[i];
                    sc[t] = s / sqrtf((float)HS);
                    if (sc[t] > mx) mx = sc[t];
                }
                for (int t = 0; t <= pos; t++) { sc[t] = expf(sc[t] - mx); sum += sc[t]; }
                for (int i = 0; i < HS; i++) {
                    float o = 0;
                    for (int t = 0; t <= pos; t++) o += sc[t] / sum * vc[((size_t)l * n + t) * KV + kh * HS + i];
                    att[h * HS + i] = o;
                }
            }
            calib_accum(c, l * 3 + 1, att);
            calib_matvec(tmp, calib_tensor(g, l, "attn_output.weight"), att, D, D);
            for (int i = 0; i < D; i++) x[i] += tmp[i];
            calib_rmsnorm(D, xb, x, calib_tensor(g, l, "ffn_norm.weight"), c->eps);
            calib_accum(c, l * 3 + 2, xb);
            calib_matvec(h1, calib_tensor(g, l, "ffn_gate.weight"), xb, D, H);
            calib_matvec(h3, calib_tensor(g, l, "ffn_up.weight"), xb, D, H);
            for (int i = 0; i < H; i++) h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
            calib_matvec(tmp, calib_tensor(g, l, "ffn_down.weight"), h1, H, D);
            for (int i = 0; i < D; i++) x[i] += tmp[i];
        }
        calib_rmsnorm(D, xb, x, calib_tensor(g, -1, "output_norm.weight"), c->eps);
        calib_accum(c, c->n_layers * 3, xb);
        if (argmax) {
            calib_matvec(logits, calib_tensor(g, -1, "output.weight"), xb, D, vocab);
            int best = 0;
            for (int i = 1; i < vocab; i++) if (logits[i] > logits[best]) best = i;
            argmax[pos] = best;
        }
        c->n++;
    }
    free(x); free(xb); free(q); free(att); free(tmp); free(sc); free(h1); free(h3); free(logits);
    free(kc); free(vc);
}

/* The x x^T sums of the input of tensor `name`, or NULL (embedding lookup, ffn_down: its
** 172-wide rows are no whole 32-blocks and stay F32). */
static const double *calib_xx(const calib *c, const char *name)
{
    int l;
    char rest[64];
    if (!strcmp(name, "output.weight")) return c->xx + (size_t)c->n_layers * 3 * c->dim * c->dim;
    if (sscanf(name, "blk.%d.%63s", &l, rest) != 2) return NULL;
    int slot = !strncmp(rest, "attn_q.", 7) || !strncmp(rest, "attn_k.", 7) || !strncmp(rest, "attn_v.", 7) ? 0
             : !strncmp(rest, "attn_output.", 12) ? 1
             : !strncmp(rest, "ffn_gate.", 9) || !strncmp(rest, "ffn_up.", 7) ? 2 : -1;
    return slot < 0 ? NULL : c->xx + (size_t)(l * 3 + slot) * c->dim * c->dim;
}

/* --------------------------------------------------------------- one 32-value block */

static void q4_round(dtype t, const float *x, float d, float m, uint8_t *q)
{
    float id = d != 0 ? 1.0f / d : 0;
    for (int i = 0; i < 32; i++) {
        int r = (int)lrintf(t == DT_Q4_0 ? x[i] * id + 8.0f : (x[i] - m) * id);
        q[i] = (uint8_t)(r < 0 ? 0 : r > 15 ? 15 : r);
    }
}

static float q4_value(dtype t, float d, float m, uint8_t q)
{
    return t == DT_Q4_0 ? d * ((float)q - 8.0f) : d * (float)q + m;
}

/* Weighted least-squares d (and Q4_1's m) for fixed codes q. */
static void q4_refit(dtype t, const float *x, const float *w, const uint8_t *q, float *d, float *m)
{
    double sw = 0, sqq = 0, sxq = 0, sq = 0, sx = 0;
    for (int i = 0; i < 32; i++) {
        double qq = t == DT_Q4_0 ? q[i] - 8.0 : q[i];
        sw += w[i]; sqq += w[i] * qq * qq; sxq += w[i] * x[i] * qq; sq += w[i] * qq; sx += w[i] * x[i];
    }
    if (t == DT_Q4_0) {
        if (sqq > 0) *d = (float)(sxq / sqq);
    } else {
        double den = sw * sqq - sq * sq;
        if (den > 0) { *d = (float)((sw * sxq - sq * sx) / den); *m = (float)((sx - *d * sq) / sw); }
    }
    if (*d == 0) *d = 1e-12f;
}

/* Scale (and min) of one block, ggml layout, minimising sum_j w_j (x_j - q_j)^2 as stored
** (f16 d and m): ggml's reference choice (d from the extreme value, or from min/max) is only a
** starting point; scales around it are tried, each refined twice by least squares for its
** rounded codes. Writes the block header, returns the f16-rounded d and m. */
static void q4_block_scale(dtype t, const float *x, const float *w, uint8_t *dst, float *dq, float *mq)
{
    float mn = x[0], mx = x[0], amax = 0, vmax = 0;
    for (int i = 0; i < 32; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); vmax = x[i]; }
    }
    double best_err = INFINITY;
    float best_d = 0, best_m = 0;
    uint8_t q[32];
    for (int step = -20; step <= 20; step++) {
        float d = t == DT_Q4_0 ? vmax / (-8.0f + 0.1f * (float)step) : (mx - mn) / (15.0f + 0.15f * (float)step);
        float m = t == DT_Q4_0 ? 0 : mn;
        if (d == 0) d = 1e-12f;
        for (int pass = 0; pass < 2; pass++) {
            q4_round(t, x, d, m, q);
            q4_refit(t, x, w, q, &d, &m);
        }
        float dh = f16_to_f32(f32_to_f16(d)), mh = f16_to_f32(f32_to_f16(m));
        q4_round(t, x, dh, mh, q);
        double err = 0;
        for (int i = 0; i < 32; i++) {
            float e = x[i] - q4_value(t, dh, mh, q[i]);
            err += (double)w[i] * e * e;
        }
        if (err < best_err) { best_err = err; best_d = dh; best_m = mh; }
    }
    uint16_t dh = f32_to_f16(best_d), mh = f32_to_f16(best_m);
    memcpy(dst, &dh, 2);
    if (t == DT_Q4_1) memcpy(dst + 2, &mh, 2);
    *dq = best_d;
    *mq = best_m;
}

/* ------------------------------------------------------------------- whole matrices */

/* In-place lower Cholesky factor of the n x n matrix a (upper part zeroed); -1 if not
** positive definite. */
static int q4_cholesky(double *a, int n)
{
    for (int j = 0; j < n; j++) {
        double s = a[j * n + j];
        for (int k = 0; k < j; k++) s -= a[j * n + k] * a[j * n + k];
        if (s <= 0) return -1;
        a[j * n + j] = sqrt(s);
        for (int i = j + 1; i < n; i++) {
            double v = a[i * n + j];
            for (int k = 0; k < j; k++) v -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = v / a[j * n + j];
        }
        for (int k = j + 1; k < n; k++) a[j * n + k] = 0;
    }
    return 0;
}

/* U, upper triangular with U^T U = H^-1, where H = xx / n_tokens + 1% of its mean diagonal
** (GPTQ's damping, so a column that calibration never excited stays invertible). */
static void q4_inverse_factor(const double *xx, int64_t n_tokens, int n, double *U)
{
    double *h = malloc(sizeof(double) * n * n), *ci = calloc((size_t)n * n, sizeof(double));
    double mean = 0;
    for (int i = 0; i < n; i++) mean += xx[i * n + i];
    mean /= (double)n * (double)n_tokens;
    for (int i = 0; i < n * n; i++) h[i] = xx[i] / (double)n_tokens + (i % (n + 1) == 0 ? 0.01 * mean : 0);
    assert_int_equal(q4_cholesky(h, n), 0);
    for (int i = 0; i < n; i++) {       /* ci = C^-1, C = h lower */
        ci[i * n + i] = 1 / h[i * n + i];
        for (int j = 0; j < i; j++) {
            double s = 0;
            for (int k = j; k < i; k++) s += h[i * n + k] * ci[k * n + j];
            ci[i * n + j] = -s / h[i * n + i];
        }
    }
    for (int i = 0; i < n; i++)         /* h = H^-1 = C^-T C^-1 */
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += ci[k * n + i] * ci[k * n + j];
            h[i * n + j] = s;
        }
    assert_int_equal(q4_cholesky(h, n), 0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) U[i * n + j] = h[j * n + i];
    free(h);
    free(ci);
}

/* Quantize rows x cols matrix W into dst (row stride rb). With xx (the x x^T sums of its
** input over c->n tokens) it is GPTQ with the imatrix-weighted block scales; without, every
** block is rounded on its own with equal weights. */
static void q4_matrix(dtype t, const float *W, int cols, int64_t rows, const double *xx, int64_t n_tokens,
                      uint8_t *dst, size_t rb)
{
    double *U = xx ? malloc(sizeof(double) * cols * cols) : NULL;
    float *w = malloc(sizeof(float) * cols), *imp = malloc(sizeof(float) * cols);
    for (int j = 0; j < cols; j++) imp[j] = xx ? (float)(xx[(size_t)j * cols + j] / (double)n_tokens) : 1.0f;
    if (xx) q4_inverse_factor(xx, n_tokens, cols, U);
    for (int64_t r = 0; r < rows; r++) {
        memcpy(w, W + r * cols, sizeof(float) * cols);
        for (int b = 0; b < cols / 32; b++) {
            uint8_t *blk = dst + r * rb + (size_t)b * dtype_block_bytes(t);
            uint8_t *qs = blk + (t == DT_Q4_1 ? 4 : 2);
            float d, m, id;
            /* the scale is chosen from the weights as updated by the earlier blocks' errors */
            q4_block_scale(t, w + b * 32, imp + b * 32, blk, &d, &m);
            id = d != 0 ? 1.0f / d : 0;
            memset(qs, 0, 16);
            for (int i = 0; i < 32; i++) {
                int j = b * 32 + i;
                int v = (int)lrintf(t == DT_Q4_0 ? w[j] * id + 8.0f : (w[j] - m) * id);
                uint8_t q = (uint8_t)(v < 0 ? 0 : v > 15 ? 15 : v);
                qs[i & 15] |= (uint8_t)(i < 16 ? q : q << 4);
                if (!xx) continue;
                /* spread this column's error over the columns still to be quantized */
                double e = (w[j] - q4_value(t, d, m, q)) / U[(size_t)j * cols + j];
                for (int k = j + 1; k < cols; k++) w[k] -= (float)(e * U[(size_t)j * cols + k]);
            }
        }
    }
    free(U);
    free(w);
    free(imp);
}

#endif
