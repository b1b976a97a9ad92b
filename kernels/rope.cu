/*
** rope.cu — the attention input stage in one pass: bias, RoPE on q and k, and the store of k
** and v into their paged-cache slot. Reference: cpu_rope (lib/cpu/backend_cpu.c) and kv_store
** (lib/arch_llama.c).
*/
#include "common.cuh"

__global__ void rope_store_kernel(float *q_out, const float *qkv, const float *bias, const int32_t *pos,
                                  const int32_t *slot, const float *freqs, int neox, int n_heads, int n_kv_heads,
                                  int hd, kv_geom kv, int layer)
{
    PDL_ENTRY();
    int r = blockIdx.x;
    int qd = n_heads * hd, kvd = n_kv_heads * hd, width = qd + 2 * kvd, half = hd / 2;
    const float *row = qkv + (size_t)r * (size_t)width;
    float p = (float)pos[r];
    int sl = slot[r];
    size_t kbase = 0, vbase = 0;
    if (sl >= 0) {
        size_t blk = (size_t)(sl / kv.block_tokens), off = (size_t)(sl % kv.block_tokens);
        kbase = ((blk * (size_t)kv.n_layers + (size_t)layer) * 2) * (size_t)kv.block_tokens * (size_t)kv.kvd +
                off * (size_t)kv.kvd;
        vbase = kbase + (size_t)kv.block_tokens * (size_t)kv.kvd;
    }
    /* rotated pairs: n_heads of q then n_kv_heads of k */
    int n_pairs = (n_heads + n_kv_heads) * half;
    /* blockIdx.y splits a row's pairs: a decode step has one row, and precise sinf/cosf per
    ** pair made a single block the slowest small kernel of the layer (12 us on the 8B shape) */
    int t0 = blockIdx.y * blockDim.x + threadIdx.x, tstride = gridDim.y * blockDim.x;
    for (int t = t0; t < n_pairs; t += tstride) {
        int h = t / half, i = t % half;
        int j0 = neox ? i : 2 * i, j1 = neox ? i + half : 2 * i + 1;
        int c0 = h * hd + j0, c1 = h * hd + j1; /* columns in the qkv row (k heads follow q) */
        float v0 = row[c0], v1 = row[c1];
        if (bias) {
            v0 += bias[c0];
            v1 += bias[c1];
        }
        float a = p * freqs[i], c = cosf(a), s = sinf(a);
        float o0 = v0 * c - v1 * s, o1 = v0 * s + v1 * c;
        if (h < n_heads) {
            q_out[(size_t)r * qd + c0] = o0;
            q_out[(size_t)r * qd + c1] = o1;
        } else if (sl >= 0) {
            st_elem(kv.cache, kbase + (size_t)(c0 - qd), kv.kv_type, o0);
            st_elem(kv.cache, kbase + (size_t)(c1 - qd), kv.kv_type, o1);
        }
    }
    if (sl >= 0)
        for (int i = t0; i < kvd; i += tstride) {
            float v = row[qd + kvd + i];
            if (bias) v += bias[qd + kvd + i];
            st_elem(kv.cache, vbase + (size_t)i, kv.kv_type, v);
        }
}

extern "C" int k_rope_store(void *stream, float *q_out, const float *qkv, const float *bias, const int32_t *pos,
                            const int32_t *slot, const float *freqs, int neox, int rows, int n_heads, int n_kv_heads,
                            int head_dim, const kv_geom *kv, int layer)
{
    if (rows <= 0) return 0;
    int pairs = (n_heads + n_kv_heads) * (head_dim / 2), per_row = (pairs + 255) / 256;
    launch_pdl(rope_store_kernel, dim3((unsigned)rows, (unsigned)(per_row < 16 ? per_row : 16)), 256, 0, S(stream), q_out, qkv, bias, pos, slot, freqs, neox, n_heads, n_kv_heads,
                                                   head_dim, *kv, layer);
    return LAUNCHED();
}
