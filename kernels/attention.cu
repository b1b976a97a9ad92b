/*
** attention.cu — paged attention for decode and prefill in one kernel (flash-decoding splits,
** online softmax, causal by position), and the merge of the splits. Reference: attend_one
** (lib/cpu/backend_cpu.c), i.e. softmax(q.k / sqrt(hd)) . v over positions 0..pos.
**
** A block serves one tile of consecutive query rows of a sequence, one KV head and one split
** of the positions: it reads each key and value of its range once from the cache (into shared
** memory, 32 positions at a time) for every query head of the group and every row of the
** tile, so grouped-query attention and prefill tiles re-use what they load. Lane j of a warp
** scores position j of the chunk; warp w owns queries w, w+4, ...; a lane accumulates the
** output dims d = lane + 32 i.
*/
#include "common.cuh"

#define AT_WARPS 4
#define AT_KEYS 32
#define AT_MAXQ 32 /* queries (rows x group) per block */
#define AT_QPW (AT_MAXQ / AT_WARPS)

extern "C" int k_attn_tile_rows(int group)
{
    if (group < 1 || group > AT_MAXQ) return 0;
    return AT_MAXQ / group;
}

/* QPW: queries per warp the block is built for: AT_QPW in general, 1 for decode tiles of at
** most AT_WARPS queries (a third of the registers, so several times the blocks per SM). */
template <int KT, int HD32, int QPW>
__global__ void __launch_bounds__(AT_WARPS * 32) attn_kernel(attn_desc a, kv_geom kv, int layer)
{
    PDL_ENTRY();
    extern __shared__ float sm[];
    int tile = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    int row0 = a.tiles[3 * tile], nr = a.tiles[3 * tile + 1], seq = a.tiles[3 * tile + 2];
    if (nr <= 0) return; /* a padding tile: its rows are never read */
    const int G = a.n_heads / a.n_kv_heads, hd = a.head_dim, nq = nr * G;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float *Q = sm;                          /* (nq, hd), pre-scaled */
    float *K = Q + QPW * AT_WARPS * hd;     /* (AT_KEYS, hd + 1) */
    float *V = K + AT_KEYS * (hd + 1);      /* (AT_KEYS, hd) */
    const int qd = a.n_heads * hd;
    for (int t = threadIdx.x; t < nq * hd; t += blockDim.x) {
        int q = t / hd, d = t % hd, rr = q / G, g = q % G;
        Q[t] = a.q[(size_t)(row0 + rr) * qd + (size_t)(kvh * G + g) * hd + d] * a.scale;
    }
    const int maxpos = a.pos[row0 + nr - 1]; /* rows are in position order */
    const int p0 = split * a.split_len;
    const int p1 = min(p0 + a.split_len, maxpos + 1);
    const int32_t *bt = a.bt + a.bt_off[seq];
    const size_t layer_stride = (size_t)kv.block_tokens * (size_t)kv.kvd; /* K or V of one layer */

    const int nqw = (nq - warp + AT_WARPS - 1) / AT_WARPS; /* queries warp, warp + 4, ... below nq */
    float m[QPW], l[QPW], acc[QPW][HD32];
    int qpos[QPW];
#pragma unroll
    for (int i = 0; i < QPW; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
        int q = warp + AT_WARPS * i;
        qpos[i] = q < nq ? a.pos[row0 + q / G] : -1;
#pragma unroll
        for (int j = 0; j < HD32; j++) acc[i][j] = 0.0f;
    }

    /* 16-byte pieces of K and V rows (VE elements each); a chunk has AT_KEYS * hd / VE pieces,
    ** at most VPT per thread: all their loads are issued before any is used. */
    constexpr int VE = KT == KT_F32 ? 4 : 8;
    constexpr int VPT = (AT_KEYS * 32 * HD32 / VE) / (AT_WARPS * 32);
    const bool vec = hd % VE == 0;
    const int per_key = hd / VE;
    for (int c0 = p0; c0 < p1; c0 += AT_KEYS) {
        __syncthreads(); /* Q written / previous chunk consumed */
        if (vec) {
            uint4 kr[VPT], vr[VPT];
#pragma unroll
            for (int i = 0; i < VPT; i++) {
                int it = threadIdx.x + i * AT_WARPS * 32, j = it / per_key, sgm = it % per_key, p = c0 + j;
                kr[i] = vr[i] = make_uint4(0, 0, 0, 0);
                if (j < AT_KEYS && p < p1) {
                    size_t blk = (size_t)bt[p / kv.block_tokens];
                    size_t off = ((blk * (size_t)kv.n_layers + (size_t)layer) * 2) * layer_stride +
                                 (size_t)(p % kv.block_tokens) * (size_t)kv.kvd + (size_t)kvh * hd + (size_t)sgm * VE;
                    kr[i] = *(const uint4 *)((const char *)kv.cache + off * (16 / VE));
                    vr[i] = *(const uint4 *)((const char *)kv.cache + (off + layer_stride) * (16 / VE));
                }
            }
#pragma unroll
            for (int i = 0; i < VPT; i++) {
                int it = threadIdx.x + i * AT_WARPS * 32, j = it / per_key, sgm = it % per_key;
                if (j >= AT_KEYS) continue;
                float kf[VE], vf[VE];
                unpack16<KT>(kr[i], kf);
                unpack16<KT>(vr[i], vf);
#pragma unroll
                for (int e = 0; e < VE; e++) {
                    K[j * (hd + 1) + sgm * VE + e] = kf[e];
                    V[j * hd + sgm * VE + e] = vf[e];
                }
            }
        } else {
            for (int t = threadIdx.x; t < AT_KEYS * hd; t += blockDim.x) {
                int j = t / hd, d = t % hd, p = c0 + j;
                float kv_k = 0.0f, kv_v = 0.0f;
                if (p < p1) {
                    size_t blk = (size_t)bt[p / kv.block_tokens];
                    size_t off = ((blk * (size_t)kv.n_layers + (size_t)layer) * 2) * layer_stride +
                                 (size_t)(p % kv.block_tokens) * (size_t)kv.kvd + (size_t)kvh * hd + (size_t)d;
                    kv_k = ld_t<KT>(kv.cache, off);
                    kv_v = ld_t<KT>(kv.cache, off + layer_stride);
                }
                K[j * (hd + 1) + d] = kv_k;
                V[j * hd + d] = kv_v;
            }
        }
        __syncthreads();
        /* Scores: lane = position c0 + lane, every query of this warp at once (one pass over
        ** the key row, QPW accumulators). Loops over positions and dims stay rolled: an
        ** unrolled body for every query overflowed the instruction cache (a 10x slowdown). */
        const int p = c0 + lane;
        float sc[QPW];
#pragma unroll
        for (int i = 0; i < QPW; i++) sc[i] = 0.0f;
        const float *kr = K + lane * (hd + 1);
#pragma unroll 2
        for (int d = 0; d < hd; d++) {
            float kd = kr[d];
#pragma unroll
            for (int i = 0; i < QPW; i++)
                if (i < nqw) sc[i] += Q[(warp + AT_WARPS * i) * hd + d] * kd;
        }
        float pj[QPW];
#pragma unroll
        for (int i = 0; i < QPW; i++) {
            pj[i] = 0.0f;
            if (i >= nqw) continue; /* warp-uniform */
            float s = p < p1 && p <= qpos[i] ? sc[i] : -INFINITY;
            float mnew = fmaxf(m[i], warp_max(s));
            if (mnew == -INFINITY) continue; /* nothing visible yet for this query */
            pj[i] = s == -INFINITY ? 0.0f : expf(s - mnew);
            float corr = expf(m[i] - mnew); /* 0 when m was -inf */
            l[i] = l[i] * corr + warp_sum(pj[i]);
            m[i] = mnew;
#pragma unroll
            for (int jd = 0; jd < HD32; jd++) acc[i][jd] *= corr;
        }
        /* Values: lane = output dims lane + 32 jd; each position's weight comes by shuffle. */
        const int nj = min(AT_KEYS, p1 - c0);
#pragma unroll 2
        for (int j = 0; j < nj; j++) {
            float v[HD32];
#pragma unroll
            for (int jd = 0; jd < HD32; jd++) v[jd] = lane + 32 * jd < hd ? V[j * hd + lane + 32 * jd] : 0.0f;
#pragma unroll
            for (int i = 0; i < QPW; i++) {
                if (i >= nqw) break;
                float pb = __shfl_sync(0xffffffffu, pj[i], j);
#pragma unroll
                for (int jd = 0; jd < HD32; jd++) acc[i][jd] += pb * v[jd];
            }
        }
    }
    /* partial results of this split, for every query of the block */
#pragma unroll
    for (int i = 0; i < QPW; i++) {
        int q = warp + AT_WARPS * i;
        if (q >= nq) break;
        int rr = q / G, head = kvh * G + q % G;
        size_t slot = ((size_t)(row0 + rr) * a.n_heads + head) * a.n_splits + split;
#pragma unroll
        for (int jd = 0; jd < HD32; jd++) {
            int d = lane + 32 * jd;
            if (d < hd) a.part_o[slot * hd + d] = acc[i][jd];
        }
        if (lane == 0) {
            a.part_ml[slot * 2] = m[i];
            a.part_ml[slot * 2 + 1] = l[i];
        }
    }
}

template <int KT> static int launch_kt(cudaStream_t s, const attn_desc *a, const kv_geom *kv, int layer)
{
    dim3 grid((unsigned)a->n_tiles, (unsigned)a->n_kv_heads, (unsigned)a->n_splits);
    int hd = a->head_dim;
    size_t smem = (size_t)(AT_MAXQ * hd + AT_KEYS * (hd + 1) + AT_KEYS * hd) * sizeof(float);
#define AT_LAUNCH(H)                                                                                  \
    do {                                                                                              \
        if (small) launch_pdl(attn_kernel<KT, H, 1>, grid, AT_WARPS * 32, smem, s, *a, *kv, layer);      \
        else launch_pdl(attn_kernel<KT, H, AT_QPW>, grid, AT_WARPS * 32, smem, s, *a, *kv, layer);       \
    } while (0)
    const bool small = a->tile_rows * (a->n_heads / a->n_kv_heads) <= AT_WARPS;
    if (small) smem -= (size_t)(AT_MAXQ - AT_WARPS) * hd * sizeof(float); /* Q holds 4 queries */
    if (hd <= 32) AT_LAUNCH(1);
    else if (hd <= 64) AT_LAUNCH(2);
    else if (hd <= 128) AT_LAUNCH(4);
    else if (hd <= 256) AT_LAUNCH(8);
    else return (int)cudaErrorInvalidValue;
#undef AT_LAUNCH
    return LAUNCHED();
}

/* Shared memory of a block at head_dim 256, the largest supported. */
#define AT_SMEM_MAX ((AT_MAXQ * 256 + AT_KEYS * 257 + AT_KEYS * 256) * sizeof(float))

template <int KT, int Q> static int attr_q(void)
{
    int e = 0;
    e |= (int)cudaFuncSetAttribute(attn_kernel<KT, 1, Q>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)AT_SMEM_MAX);
    e |= (int)cudaFuncSetAttribute(attn_kernel<KT, 2, Q>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)AT_SMEM_MAX);
    e |= (int)cudaFuncSetAttribute(attn_kernel<KT, 4, Q>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)AT_SMEM_MAX);
    e |= (int)cudaFuncSetAttribute(attn_kernel<KT, 8, Q>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)AT_SMEM_MAX);
    return e;
}

template <int KT> static int attr_kt(void)
{
    return attr_q<KT, 1>() | attr_q<KT, AT_QPW>();
}

extern "C" int k_attn_init(void)
{
    int e = attr_kt<KT_F32>();
    if (!e) e = attr_kt<KT_F16>();
    if (!e) e = attr_kt<KT_BF16>();
    return e;
}

extern "C" int k_attention(void *stream, const attn_desc *a, const kv_geom *kv, int layer)
{
    if (a->n_tiles <= 0) return 0;
    int G = a->n_heads / a->n_kv_heads;
    if (G * a->n_kv_heads != a->n_heads || G > AT_MAXQ || a->tile_rows * G > AT_MAXQ) return (int)cudaErrorInvalidValue;
    switch (kv->kv_type) {
    case KT_F32: return launch_kt<KT_F32>(S(stream), a, kv, layer);
    case KT_F16: return launch_kt<KT_F16>(S(stream), a, kv, layer);
    case KT_BF16: return launch_kt<KT_BF16>(S(stream), a, kv, layer);
    }
    return (int)cudaErrorInvalidValue;
}

/* One block per (row, head): merge the splits' (m, l, o) into softmax . v. */
__global__ void combine_kernel(void *out, int out_type, attn_desc a)
{
    PDL_ENTRY();
    int row = blockIdx.x, head = blockIdx.y, hd = a.head_dim;
    size_t base = ((size_t)row * a.n_heads + head) * a.n_splits;
    float M = -INFINITY;
    for (int s = 0; s < a.n_splits; s++) M = fmaxf(M, a.part_ml[(base + s) * 2]);
    float L = 0.0f;
    for (int s = 0; s < a.n_splits; s++) {
        float ms = a.part_ml[(base + s) * 2];
        if (ms != -INFINITY) L += a.part_ml[(base + s) * 2 + 1] * expf(ms - M);
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
        if (M != -INFINITY) {
            for (int s = 0; s < a.n_splits; s++) {
                float ms = a.part_ml[(base + s) * 2];
                if (ms != -INFINITY) o += a.part_o[(base + s) * hd + d] * expf(ms - M);
            }
            o /= L;
        }
        st_elem(out, (size_t)row * a.n_heads * hd + (size_t)head * hd + d, out_type, o);
    }
}

extern "C" int k_attn_combine(void *stream, void *out, int out_type, const attn_desc *a)
{
    if (a->rows <= 0) return 0;
    dim3 grid((unsigned)a->rows, (unsigned)a->n_heads);
    int threads = a->head_dim >= 128 ? 128 : ((a->head_dim + 31) / 32) * 32;
    launch_pdl(combine_kernel, grid, threads, 0, S(stream), out, out_type, *a);
    return LAUNCHED();
}
