/*
** threadpool.h — the CPU backend's explicit worker pool (no OpenMP, no globals).
**
** tp_run(pool, fn, arg) runs fn(arg, ith, nth) on every thread of the pool (the calling
** thread takes ith = 0) and returns when all have finished. Workers spin briefly before
** sleeping on a condition variable, so back-to-back ops of one forward pass do not pay a
** wake-up each. Threads and locks come from libuv.
*/
#ifndef INFER_THREADPOOL_H
#define INFER_THREADPOOL_H

#include "../internal.h"

typedef struct threadpool threadpool;
typedef void (*tp_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (the caller counts as one; n_threads - 1 workers are started). */
infer_status tp_create(int n_threads, threadpool **out);
void tp_destroy(threadpool *tp);
int tp_size(const threadpool *tp);
/* Not reentrant: one tp_run at a time per pool (the engine thread). */
void tp_run(threadpool *tp, tp_fn fn, void *arg);
/* Ask workers spinning for the next job to sleep now, before the caller hands the cores to
** another pool (OpenBLAS's threads, for sgemm): a spinning worker holds a core the other
** pool needs. The next tp_run wakes them. A hint; safe wherever tp_run is. */
void tp_park(threadpool *tp);

#endif
