/*
** threadpool.c — the CPU backend's worker pool: tp_run(fn) runs fn on every thread and waits.
**
** Why spin: one decode step of a 110M model issues ~100 tp_run calls a few tens of µs apart;
** a condvar wake-up costs 5-50 µs (futex + scheduler), the same order as the work. So each
** worker spins on an atomic job counter (with a pause instruction, which frees the SMT
** sibling and the power budget) for TP_SPIN_NS after its last job before it sleeps. 300 µs
** covers the gaps inside a forward pass (kernels, attention, sampling), while a pool left
** alone between requests goes to sleep within a third of a millisecond. Measured: an empty
** tp_run costs ~0.15 µs with 2 threads on 2 idle cores.
**
** When cores are contended, spinning hurts: a spinning thread holds the core that a thread
** with work (ours, another process's, OpenBLAS's) needs. Three rules, each measured on the
** 2-core box: more threads than CPUs -> nobody spins (libgomp throttles GOMP_SPINCOUNT the
** same way; 3 spinning threads on 2 cores took 340-860 µs per empty tp_run, ~15 µs without);
** the caller waits for the workers' shares by spinning only TP_WAIT_SPIN_NS, then sleeps;
** a worker that had to wake a sleeping caller goes to sleep after the job instead of
** spinning (with a busy process beside a 2-thread pool: 78 µs per empty tp_run -> 2-3 µs).
**
** Protocol: the caller publishes fn/arg with plain stores, then bumps `gen` (seq_cst); a
** worker that sees a new `gen` reads fn/arg, runs, and decrements `pending`; the caller
** waits until `pending` is 0 (acquire), so the next publish cannot race a reader.
** Sleeping: a worker increments `n_sleeping` and re-checks `gen` under the mutex before
** waiting; the caller bumps `gen` and then reads `n_sleeping`. Both are seq_cst, so at least
** one side sees the other (Dekker): either the worker sees the new job, or the caller sees a
** sleeper and broadcasts under the mutex, which the worker holds until it is in cond_wait.
** The caller's sleep is the mirror image (`caller_sleeping` against `pending`).
**
** n_threads == 1 starts no thread: tp_run calls fn(arg, 0, 1) inline.
*/
#include "threadpool.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TP_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define TP_PAUSE() __asm__ __volatile__("yield")
#else
#define TP_PAUSE() ((void)0)
#endif

/* Spin budget after a job before sleeping (see the header comment for the reason). */
#define TP_SPIN_NS 300000ull
/* Read the clock once per this many pauses: measured on Zen 4, uv_hrtime (vDSO) ~24 ns and
** a pause ~26 ns, so a check every ~1.7 µs costs ~1.5% and overshoots the budget by little.
** (Intel's pause is 10-140 cycles by generation; the budget is in ns, so it holds there.) */
#define TP_SPIN_CHECK 64

/* The caller's spin budget waiting for the workers' shares (see tp_wait): well above the
** few µs by which equal shares of a kernel differ, well below a scheduler time slice. */
#define TP_WAIT_SPIN_NS 30000ull

typedef struct tp_worker {
    threadpool *tp;
    uv_thread_t thread;
    int ith;
} tp_worker;

struct threadpool {
    int n_threads;
    int n_started;               /* workers running (n_threads - 1 once created) */
    tp_worker *workers;          /* (n_threads - 1) */
    uint64_t spin_ns;            /* a worker's spin budget before sleeping; 0: sleep at once */
    uint64_t wait_spin_ns;       /* the caller's spin budget before sleeping in tp_wait */

    /* The current job: written by the caller only while no worker can read it. */
    tp_fn fn;
    void *arg;

    /* Separate cache lines: `gen` is read by every spinning worker, `pending` is written
    ** by each finishing one; sharing a line would make the spinners bounce it. */
    _Alignas(64) atomic_uint gen;
    atomic_uint park;            /* bumped by tp_park: spinning workers go to sleep */
    _Alignas(64) atomic_int pending;
    _Alignas(64) atomic_int n_sleeping;
    atomic_int caller_sleeping;
    atomic_int stop;

    uv_mutex_t mu;
    uv_cond_t cv;        /* workers wait here for a new generation */
    uv_cond_t done_cv;   /* the caller waits here for pending == 0 */
};

static void tp_worker_main(void *p)
{
    tp_worker *w = p;
    threadpool *tp = w->tp;
    unsigned seen = 0;        /* gen starts at 0 */
    unsigned park_seen = 0;   /* tp->park when the last job was taken */
    int spin = 1;

    for (;;) {
        unsigned g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        if (g == seen && tp->spin_ns && spin) {
            uint64_t deadline = 0;
            for (unsigned i = 1;; i++) {
                TP_PAUSE();
                g = atomic_load_explicit(&tp->gen, memory_order_acquire);
                if (g != seen) break;
                if (atomic_load_explicit(&tp->park, memory_order_relaxed) != park_seen) break;
                if (i % TP_SPIN_CHECK == 0) {
                    uint64_t now = uv_hrtime();
                    if (!deadline) deadline = now + tp->spin_ns;
                    else if (now >= deadline) break;
                }
            }
        }
        if (g == seen) {
            uv_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->n_sleeping, 1);
            while ((g = atomic_load(&tp->gen)) == seen) uv_cond_wait(&tp->cv, &tp->mu);
            atomic_fetch_sub(&tp->n_sleeping, 1);
            uv_mutex_unlock(&tp->mu);
        }
        seen = g;
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) return;
        /* Read before `pending` drops: a tp_park after this tp_run returns is then a change. */
        park_seen = atomic_load_explicit(&tp->park, memory_order_relaxed);
        tp->fn(tp->arg, w->ith, tp->n_threads);
        /* seq_cst, and then the caller_sleeping check: the Dekker pair of tp_wait's. */
        spin = 1;
        if (atomic_fetch_sub(&tp->pending, 1) == 1 && atomic_load(&tp->caller_sleeping)) {
            uv_mutex_lock(&tp->mu);
            uv_cond_signal(&tp->done_cv);
            uv_mutex_unlock(&tp->mu);
            /* The caller gave up waiting for us: the cores are contended (another process,
            ** OpenBLAS's threads). Spinning now would hold the core the caller wakes up on
            ** (measured: 78 µs per empty tp_run with a busy process beside 2 threads). */
            spin = 0;
        }
    }
}

/* Publish a new generation and wake sleepers (the caller's half of the protocol above). */
static void tp_publish(threadpool *tp)
{
    atomic_store_explicit(&tp->pending, tp->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&tp->gen, 1);   /* seq_cst: orders fn/arg/pending before it */
    if (atomic_load(&tp->n_sleeping) > 0) {
        uv_mutex_lock(&tp->mu);
        uv_cond_broadcast(&tp->cv);
        uv_mutex_unlock(&tp->mu);
    }
}

/* Wait for the workers' shares. They usually end within a few µs of ours (equal chunks of
** one memory-bound loop), so spin first. If a worker is not running (its core taken by
** another process or by OpenBLAS's threads), spinning on holds the one core it could move
** to, so after wait_spin_ns sleep instead: an idle core makes the scheduler pull the
** runnable worker over at once. */
static void tp_wait(threadpool *tp)
{
    uint64_t deadline = 0;
    for (unsigned i = 1; atomic_load_explicit(&tp->pending, memory_order_acquire) != 0; i++) {
        TP_PAUSE();
        if (i % TP_SPIN_CHECK == 0 || !tp->wait_spin_ns) {
            uint64_t now = uv_hrtime();
            if (!deadline) deadline = now + tp->wait_spin_ns;
            if (now >= deadline) {
                uv_mutex_lock(&tp->mu);
                atomic_store(&tp->caller_sleeping, 1);
                while (atomic_load(&tp->pending) != 0) uv_cond_wait(&tp->done_cv, &tp->mu);
                atomic_store(&tp->caller_sleeping, 0);
                uv_mutex_unlock(&tp->mu);
                return;
            }
        }
    }
}

infer_status tp_create(int n_threads, threadpool **out)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return infer_err(INFER_EINVAL, "thread count %d out of range 1..1024", n_threads);
    threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return infer_err(INFER_ENOMEM, "out of memory allocating a thread pool");
    tp->n_threads = n_threads;
    /* More threads than CPUs: a spinning thread then holds a core that a thread with work
    ** needs, and every tp_run waits for a time slice (measured: 0.15 µs per empty tp_run
    ** with 2 threads on 2 cores, 340-860 µs with 3 spinning threads). So, as libgomp does
    ** (GOMP_SPINCOUNT throttled when oversubscribed), nobody spins then. */
    if ((unsigned)n_threads > uv_available_parallelism()) {
        tp->spin_ns = 0;
        tp->wait_spin_ns = 0;
    } else {
        tp->spin_ns = TP_SPIN_NS;
        tp->wait_spin_ns = TP_WAIT_SPIN_NS;
    }
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->park, 0);
    atomic_init(&tp->pending, 0);
    atomic_init(&tp->n_sleeping, 0);
    atomic_init(&tp->caller_sleeping, 0);
    atomic_init(&tp->stop, 0);
    if (n_threads == 1) {
        *out = tp;
        return INFER_OK;
    }
    if (uv_mutex_init(&tp->mu) != 0) {
        free(tp);
        return infer_err(INFER_ENOMEM, "cannot create the thread pool mutex");
    }
    if (uv_cond_init(&tp->cv) != 0) {
        uv_mutex_destroy(&tp->mu);
        free(tp);
        return infer_err(INFER_ENOMEM, "cannot create the thread pool condition variable");
    }
    if (uv_cond_init(&tp->done_cv) != 0) {
        uv_cond_destroy(&tp->cv);
        uv_mutex_destroy(&tp->mu);
        free(tp);
        return infer_err(INFER_ENOMEM, "cannot create the thread pool condition variable");
    }
    tp->workers = calloc((size_t)n_threads - 1, sizeof *tp->workers);
    if (!tp->workers) {
        uv_cond_destroy(&tp->done_cv);
        uv_cond_destroy(&tp->cv);
        uv_mutex_destroy(&tp->mu);
        free(tp);
        return infer_err(INFER_ENOMEM, "out of memory allocating %d workers", n_threads - 1);
    }
    for (int i = 0; i < n_threads - 1; i++) {
        tp_worker *w = &tp->workers[i];
        w->tp = tp;
        w->ith = i + 1;
        int rc = uv_thread_create(&w->thread, tp_worker_main, w);
        if (rc != 0) {
            /* Stop the ones already started: they only ever see the stop generation. */
            tp_destroy(tp);
            return infer_err(INFER_ENOMEM, "cannot start thread pool worker %d of %d: %s", i + 1,
                             n_threads - 1, uv_strerror(rc));
        }
        tp->n_started++;
    }
    *out = tp;
    return INFER_OK;
}

void tp_destroy(threadpool *tp)
{
    if (!tp) return;
    if (tp->workers) {
        atomic_store_explicit(&tp->stop, 1, memory_order_release);
        tp_publish(tp);
        for (int i = 0; i < tp->n_started; i++) uv_thread_join(&tp->workers[i].thread);
        uv_cond_destroy(&tp->done_cv);
        uv_cond_destroy(&tp->cv);
        uv_mutex_destroy(&tp->mu);
    }
    free(tp->workers);
    free(tp);
}

int tp_size(const threadpool *tp) { return tp ? tp->n_threads : 1; }

void tp_park(threadpool *tp)
{
    /* Relaxed: a hint. A worker that misses it sleeps at the end of its spin budget anyway,
    ** and one that sees it still re-checks `gen` under the mutex before sleeping. */
    if (tp && tp->workers) atomic_fetch_add_explicit(&tp->park, 1, memory_order_relaxed);
}

void tp_run(threadpool *tp, tp_fn fn, void *arg)
{
    if (!tp || tp->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->arg = arg;
    tp_publish(tp);
    fn(arg, 0, tp->n_threads);
    tp_wait(tp);
}
