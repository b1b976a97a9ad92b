/*
** allreduce.cu — the tensor-parallel sum of the residual stream, and the logit gather, through
** NCCL's device API (NCCL >= 2.28: kernels of our own store into the other GPUs' memory over
** NVLink at addresses NCCL maps, and synchronise with NCCL's barriers and LL slots). Reference:
** the plain sum in rank order; tests compare 2 GPUs with 1 (the same bits for 2 ranks).
**
** Why not ncclAllReduce: a batch-1 decode step of an 8B model has 65 all-reduces of 16 KiB,
** ~6.5 us each as NCCL kernels on 2 x H100, and an NCCL kernel takes no part in programmatic
** dependent launch, so the product after it neither launches nor loads weights before it has
** ended. These kernels let their successor launch as soon as they have waited for their
** predecessor, so the next product's first weight loads overlap the exchange. In batch-1 8B
** decode steps on 2 x H100 (bench/results/2026-11-27-tp-lsa/, two machines) a collective costs
** 1.8-2.8 us by LL, 3.7-4.4 by push + barrier, 6.4-7.1 by ncclAllReduce.
**
** Two ways, both writing the sum in place over the caller's partial:
** - LL (small steps): each 8 bytes of a partial travel to each peer in one 16-byte store with
**   the sender's epoch beside them (NCCL's LL all-to-all, ll_a2a.h); the receiver polls its own
**   memory until the epochs match. No barrier, no fence: one trip over NVLink. Twice the bytes.
** - push + barrier (larger steps): each rank stores its partial into its slot of every peer's
**   inbox (an NCCL window), then an NCCL barrier (release/acquire), then reads locally. The
**   caller rotates three inbox slots, so no second barrier has to say the peers have read.
**
** Without NCCL's device API (older NCCL, or none) k_lsa_comm_create answers -1 and the caller
** keeps ncclAllReduce.
*/
#include "common.cuh"

#include <stdlib.h>

#if defined(INFER_HAVE_NCCL) && defined(__has_include)
#if __has_include(<nccl_device.h>)
#include <nccl.h>
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
#include <nccl_device.h>
#define K_LSA 1
#endif
#endif
#endif

#ifdef K_LSA

enum { AR_THREADS = 256 };

/* A rank's device communicator and what was asked of it; heap-held, since the requirements
** may be read as late as the group's end. */
struct lsa_comm {
    ncclDevComm dc;
    ncclLLA2AHandle ll;
    int ll_slots;
    ncclDevCommRequirements reqs;
    ncclDevResourceRequirements ll_req;
};

/* Every rank adds the partials in rank order, so all of them hold the same bits. Block b sums
** floats [b * per, (b + 1) * per) as float2s; a sender's slots are slots / R wide. */
__global__ void __launch_bounds__(AR_THREADS) ll_allreduce_kernel(ncclDevComm dc, ncclLLA2AHandle h, int slots,
                                                                  float *x, size_t n, size_t per)
{
    pdl_wait();    /* our partial sum is complete */
    pdl_trigger(); /* the next product may launch and start its weight loads */
    const int R = dc.lsaSize, me = dc.lsaRank, stride = slots / R;
    const size_t b0 = (size_t)blockIdx.x * per, cnt = (n - b0 < per ? n - b0 : per) / 2;
    float2 *x2 = (float2 *)(x + b0);
    ncclLLA2ASession<ncclCoopCta> s{ ncclCoopCta(), dc, ncclTeamLsa(dc), h, (uint32_t)blockIdx.x, slots };
    for (size_t e = threadIdx.x; e < cnt; e += AR_THREADS) {
        float2 v = x2[e];
        for (int q = 0; q < R; q++)
            if (q != me) s.send(q, me * stride + (int)e, v);
    }
    /* each thread reads back only the elements it sent: in place is safe */
    for (size_t e = threadIdx.x; e < cnt; e += AR_THREADS) {
        float2 acc = make_float2(0.0f, 0.0f);
        for (int r = 0; r < R; r++) {
            float2 v = r == me ? x2[e] : s.template recv<float2>(r * stride + (int)e);
            acc = r == 0 ? v : make_float2(acc.x + v.x, acc.y + v.y);
        }
        x2[e] = acc;
    }
    s.endEpoch(ncclCoopCta());
}

/* Push + barrier: x's float4 i goes to slot `me` of every peer's inbox (window win at byte
** offset off, R slots of n / 4 float4s), then block b's barrier, then the local sum. */
__global__ void __launch_bounds__(AR_THREADS) push_allreduce_kernel(ncclDevComm dc, ncclWindow_t win, size_t off,
                                                                    float *x, size_t n)
{
    pdl_wait();
    pdl_trigger();
    const int R = dc.lsaSize, me = dc.lsaRank;
    const size_t n4 = n / 4;
    float4 *x4 = (float4 *)x;
    for (size_t i = (size_t)blockIdx.x * AR_THREADS + threadIdx.x; i < n4; i += (size_t)gridDim.x * AR_THREADS)
        for (int q = 0; q < R; q++)
            if (q != me) ((float4 *)ncclGetLsaPointer(win, off + (size_t)me * n4 * 16, q))[i] = x4[i];
    {
        ncclLsaBarrierSession<ncclCoopCta> bar{ ncclCoopCta(), dc, ncclTeamLsa(dc), dc.lsaBarrier,
                                                (uint32_t)blockIdx.x };
        bar.sync(ncclCoopCta(), cuda::memory_order_acq_rel);
    }
    for (size_t i = (size_t)blockIdx.x * AR_THREADS + threadIdx.x; i < n4; i += (size_t)gridDim.x * AR_THREADS) {
        float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int r = 0; r < R; r++) {
            /* L2, not L1: the peers wrote these lines behind this SM's back */
            float4 v = r == me ? x4[i] : __ldcg((const float4 *)ncclGetLocalPointer(win, off + (size_t)r * n4 * 16) + i);
            s = r == 0 ? v : make_float4(s.x + v.x, s.y + v.y, s.z + v.z, s.w + v.w);
        }
        x4[i] = s;
    }
}

/* Logit rows gathered on rank 0: each rank stores its vocabulary slice (rows of v_r floats)
** into rank 0's window win (rows of V floats) at column col0, then a barrier; when rank 0's
** kernel ends, every slice is there. */
__global__ void __launch_bounds__(AR_THREADS) gather_kernel(ncclDevComm dc, ncclWindow_t win, const float *slice,
                                                            size_t rows, size_t v_r, size_t col0, size_t V)
{
    pdl_wait();
    pdl_trigger();
    float *dst = (float *)(dc.lsaRank == 0 ? ncclGetLocalPointer(win, 0) : ncclGetLsaPointer(win, 0, 0));
    const size_t total = rows * v_r;
    for (size_t i = (size_t)blockIdx.x * AR_THREADS + threadIdx.x; i < total; i += (size_t)gridDim.x * AR_THREADS) {
        size_t j = i / v_r;
        dst[j * V + col0 + (i - j * v_r)] = slice[i];
    }
    ncclLsaBarrierSession<ncclCoopCta> bar{ ncclCoopCta(), dc, ncclTeamLsa(dc), dc.lsaBarrier, (uint32_t)blockIdx.x };
    bar.sync(ncclCoopCta(), cuda::memory_order_acq_rel);
}

extern "C" int k_lsa_comm_create(void *nccl_comm, int n_blocks, int ll_slots, void **devcomm)
{
    lsa_comm *lc = (lsa_comm *)calloc(1, sizeof *lc);
    if (!lc) return (int)ncclSystemError;
#ifdef NCCL_DEV_COMM_REQUIREMENTS_INITIALIZER
    lc->reqs = NCCL_DEV_COMM_REQUIREMENTS_INITIALIZER; /* NCCL >= 2.29 checks it; 2.28 takes zeros */
#endif
    ncclResult_t r = ncclLLA2ACreateRequirement(n_blocks, ll_slots, &lc->ll, &lc->ll_req);
    lc->ll_slots = ll_slots;
    lc->reqs.lsaBarrierCount = n_blocks;
    lc->reqs.resourceRequirementsList = &lc->ll_req;
    /* a collective: the caller groups the ranks' calls, and lc->dc is complete at the group's end */
    if (r == ncclSuccess) r = ncclDevCommCreate((ncclComm_t)nccl_comm, &lc->reqs, &lc->dc);
    if (r != ncclSuccess) { /* ncclCommInitAll's communicators block: no ncclInProgress */
        free(lc);
        return (int)r;
    }
    *devcomm = lc;
    return 0;
}

extern "C" void k_lsa_comm_destroy(void *nccl_comm, void *devcomm)
{
    if (!devcomm) return;
    ncclDevCommDestroy((ncclComm_t)nccl_comm, &((lsa_comm *)devcomm)->dc);
    free(devcomm);
}

extern "C" int k_lsa_comm_ranks(const void *devcomm)
{
    return ((const lsa_comm *)devcomm)->dc.lsaSize;
}

extern "C" int k_lsa_allreduce_ll(void *stream, const void *devcomm, float *x, size_t n, int max_blocks)
{
    const lsa_comm *lc = (const lsa_comm *)devcomm;
    if (n == 0) return 0;
    /* 2 floats a thread, at most max_blocks blocks; a block's share must fit its slots */
    size_t blocks = (n + 2 * AR_THREADS - 1) / (2 * AR_THREADS);
    if (blocks > (size_t)max_blocks) blocks = (size_t)max_blocks;
    size_t per = ((n + blocks - 1) / blocks + 1) & ~(size_t)1;
    blocks = (n + per - 1) / per;
    if (n % 2 || per / 2 * (size_t)lc->dc.lsaSize > (size_t)lc->ll_slots) return (int)cudaErrorInvalidValue;
    launch_pdl(ll_allreduce_kernel, (unsigned)blocks, AR_THREADS, 0, S(stream), lc->dc, lc->ll, lc->ll_slots, x, n,
               per);
    return LAUNCHED();
}

extern "C" int k_lsa_allreduce_push(void *stream, const void *devcomm, void *win, size_t off, float *x, size_t n,
                                    int max_blocks)
{
    if (n == 0) return 0;
    if (n % 4) return (int)cudaErrorInvalidValue;
    /* one float4 a thread: more blocks exchange flags side by side (4 beat 1 by 3% of a step) */
    size_t blocks = (n / 4 + AR_THREADS - 1) / AR_THREADS;
    if (blocks > (size_t)max_blocks) blocks = (size_t)max_blocks;
    launch_pdl(push_allreduce_kernel, (unsigned)blocks, AR_THREADS, 0, S(stream), ((const lsa_comm *)devcomm)->dc,
               (ncclWindow_t)win, off, x, n);
    return LAUNCHED();
}

extern "C" int k_lsa_gather(void *stream, const void *devcomm, void *win, const float *slice, int rows,
                            int64_t v_r, int64_t col0, int64_t V, int64_t v_pad, int max_blocks)
{
    if (rows <= 0) return 0;
    /* the grid from what every rank has alike (rows, v_pad): block b is barrier b on each */
    size_t blocks = ((size_t)rows * (size_t)v_pad + 4 * AR_THREADS - 1) / (4 * AR_THREADS);
    if (blocks > (size_t)max_blocks) blocks = (size_t)max_blocks;
    launch_pdl(gather_kernel, (unsigned)blocks, AR_THREADS, 0, S(stream), ((const lsa_comm *)devcomm)->dc,
               (ncclWindow_t)win, slice, (size_t)rows, (size_t)v_r, (size_t)col0, (size_t)V);
    return LAUNCHED();
}

#else

extern "C" int k_lsa_comm_create(void *nccl_comm, int n_blocks, int ll_slots, void **devcomm)
{
    (void)nccl_comm, (void)n_blocks, (void)ll_slots;
    *devcomm = NULL;
    return -1;
}

extern "C" void k_lsa_comm_destroy(void *nccl_comm, void *devcomm)
{
    (void)nccl_comm, (void)devcomm;
}

extern "C" int k_lsa_comm_ranks(const void *devcomm)
{
    (void)devcomm;
    return 0;
}

extern "C" int k_lsa_allreduce_ll(void *stream, const void *devcomm, float *x, size_t n, int max_blocks)
{
    (void)stream, (void)devcomm, (void)x, (void)n, (void)max_blocks;
    return (int)cudaErrorNotSupported;
}

extern "C" int k_lsa_allreduce_push(void *stream, const void *devcomm, void *win, size_t off, float *x, size_t n,
                                    int max_blocks)
{
    (void)stream, (void)devcomm, (void)win, (void)off, (void)x, (void)n, (void)max_blocks;
    return (int)cudaErrorNotSupported;
}

extern "C" int k_lsa_gather(void *stream, const void *devcomm, void *win, const float *slice, int rows,
                            int64_t v_r, int64_t col0, int64_t V, int64_t v_pad, int max_blocks)
{
    (void)stream, (void)devcomm, (void)win, (void)slice, (void)rows, (void)v_r, (void)col0, (void)V, (void)v_pad;
    (void)max_blocks;
    return (int)cudaErrorNotSupported;
}

#endif
