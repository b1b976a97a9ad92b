/*
** session.c — the public entry points: session lifetime, model registry, submit, cancel,
** poll, stats. Everything here may run on any host thread; engine work is in engine.c.
**
** Tokenization happens in infer_submit, on the caller's thread: it is the natural place to
** reject a prompt that cannot fit (the caller gets INFER_EINVAL at once, with the limit),
** and it keeps tokenizer work off the engine thread, which serves every request.
*/
#include "session.h"

#include <stdlib.h>
#include <string.h>

INFER_API void infer_session_params_init(infer_session_params *p)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->backend = INFER_BACKEND_AUTO;
    p->threading = INFER_THREADING_ENGINE;
    p->n_threads = 0;
    p->queue_capacity = 256;
    p->max_running = 64;
    p->max_batch_tokens = 512;
    p->kv_block_tokens = 16;
    p->kv_cache_bytes = (size_t)256 << 20;
    p->prefix_cache = 1;
    p->log_level = INFER_LOG_WARN;
}

/* Copy a caller's versioned struct over our defaults: a smaller (older) struct leaves the
** newer fields at their defaults; a larger one comes from a newer header than this library. */
infer_status copy_versioned(void *dst, size_t dst_size, const void *src, size_t src_size, const char *what)
{
    if (src_size < sizeof(size_t) || src_size > dst_size)
        return infer_err(INFER_EINVAL, "%s.size = %zu is not a size this libinfer %s knows (%zu); "
                                       "call the _init() function first", what, src_size, infer_version(), dst_size);
    memcpy(dst, src, src_size);
    return INFER_OK;
}

static infer_status check_params(const infer_session_params *p)
{
    if (p->threading != INFER_THREADING_ENGINE && p->threading != INFER_THREADING_CALLER)
        return infer_err(INFER_EINVAL, "session params: threading = %d is not a known mode", (int)p->threading);
    if (p->n_threads < 0 || p->n_threads > 1024)
        return infer_err(INFER_EINVAL, "session params: n_threads = %d (allowed 0..1024, 0 = all cores)", p->n_threads);
    if (p->queue_capacity < 1)
        return infer_err(INFER_EINVAL, "session params: queue_capacity = %d must be >= 1", p->queue_capacity);
    if (p->max_running < 1 || p->max_running > 65536)
        return infer_err(INFER_EINVAL, "session params: max_running = %d (allowed 1..65536)", p->max_running);
    if (p->max_batch_tokens < 1 || p->max_batch_tokens > (1 << 20))
        return infer_err(INFER_EINVAL, "session params: max_batch_tokens = %d (allowed 1..1048576)", p->max_batch_tokens);
    if (p->kv_block_tokens < 1 || p->kv_block_tokens > 4096)
        return infer_err(INFER_EINVAL, "session params: kv_block_tokens = %d (allowed 1..4096)", p->kv_block_tokens);
    if (p->log_level < INFER_LOG_ERROR || p->log_level > INFER_LOG_DEBUG)
        return infer_err(INFER_EINVAL, "session params: log_level = %d is not a known level", (int)p->log_level);
    return INFER_OK;
}

INFER_API infer_status infer_session_create(const infer_session_params *pin, infer_session **out)
{
    infer_err_clear();
    if (!out) return infer_err(INFER_EINVAL, "infer_session_create: out is NULL");
    *out = NULL;
    infer_session_params p;
    infer_session_params_init(&p);
    if (pin) {
        infer_status st = copy_versioned(&p, sizeof p, pin, pin->size, "infer_session_params");
        if (st) return st;
        p.size = sizeof p;
    }
    infer_status st = check_params(&p);
    if (st) return st;
    if (p.n_threads == 0) {
        /* the cores this process may run on (CPU affinity), not every core online */
        unsigned n = uv_available_parallelism();
        p.n_threads = n > 0 ? (int)n : 1;
    }

    infer_session *s = calloc(1, sizeof *s);
    if (!s) return infer_err(INFER_ENOMEM, "out of memory for a session");
    s->p = p;
    s->log = (infer_logger){ p.log_fn, p.log_user, p.log_level };
    s->efd = -1;
    s->next_id = 1;
    s->cap_running = p.max_running;
    s->running = calloc((size_t)p.max_running, sizeof *s->running);
    s->step_seqs = calloc((size_t)p.max_running, sizeof *s->step_seqs);
    s->step_chunk = calloc((size_t)p.max_running, sizeof *s->step_chunk);
    s->cap_subq = p.queue_capacity;
    s->subq = calloc((size_t)p.queue_capacity, sizeof *s->subq);
    if (!s->running || !s->step_seqs || !s->step_chunk || !s->subq) {
        st = infer_err(INFER_ENOMEM, "out of memory for session queues");
        goto fail_mem;
    }
    st = batch_reserve(&s->b, p.max_batch_tokens);
    if (st) goto fail_mem;
    if (!notify_init(s)) {
        st = infer_err(INFER_EIO, "cannot create the session's eventfd");
        goto fail_mem;
    }
    rng_seed(&s->route_rng, uv_hrtime());
    st = backend_create(&p, &s->be);
    if (st) goto fail_fd;
    st = metrics_init(&s->mx);
    if (st) {
        backend_destroy(s->be);
        goto fail_fd;
    }
    if (uv_mutex_init(&s->mu) != 0) { st = infer_err(INFER_ENOMEM, "cannot create a mutex"); goto fail_be; }
    if (uv_cond_init(&s->work_cv) != 0) { st = infer_err(INFER_ENOMEM, "cannot create a condition"); goto fail_mu; }
    if (uv_cond_init(&s->ev_cv) != 0) { st = infer_err(INFER_ENOMEM, "cannot create a condition"); goto fail_cv; }
    if (uv_cond_init(&s->step_cv) != 0) {
        uv_cond_destroy(&s->ev_cv);
        st = infer_err(INFER_ENOMEM, "cannot create a condition");
        goto fail_cv;
    }
    if (p.threading == INFER_THREADING_ENGINE) {
        st = engine_start(s);
        if (st) goto fail_cv2;
    }
    infer_log(&s->log, INFER_LOG_INFO, "session created: backend %s, %d threads, %s", s->be->ops->name,
              p.n_threads, p.threading == INFER_THREADING_ENGINE ? "engine thread" : "caller-driven");
    *out = s;
    return INFER_OK;

fail_cv2:
    uv_cond_destroy(&s->step_cv);
    uv_cond_destroy(&s->ev_cv);
fail_cv:
    uv_cond_destroy(&s->work_cv);
fail_mu:
    uv_mutex_destroy(&s->mu);
fail_be:
    metrics_free(&s->mx);
    backend_destroy(s->be);
fail_fd:
    notify_close(s);
fail_mem:
    batch_free(&s->b);
    free(s->running);
    free(s->step_seqs);
    free(s->step_chunk);
    free(s->subq);
    free(s);
    return st;
}

INFER_API void infer_session_destroy(infer_session *s)
{
    if (!s) return;
    if (s->has_thread) engine_stop(s);
    /* Engine state is ours now: free sequences without events (nobody will poll them). */
    for (int i = 0; i < s->n_running; i++) {
        kv_seq_free(&s->running[i]->model->kv, &s->running[i]->kv);
        seq_free(s->running[i]);
    }
    for (seq *q = s->wait_head, *nx; q; q = nx) {
        nx = q->next;
        kv_seq_free(&q->model->kv, &q->kv);
        seq_free(q);
    }
    for (int i = 0; i < s->n_subq; i++) seq_free(s->subq[i]);
    for (int i = 0; i < s->n_models; i++) model_unref(s->models[i]);
    for (size_t i = s->ev_head; i < s->evq.n; i++) {
        free(s->evq.v[i].text);
        free(s->evq.v[i].logits);
    }
    evl_free_items(&s->held);
    evl_free_items(&s->out);
    free(s->evq.v);
    free(s->held.v);
    free(s->out.v);
    free(s->models);
    free(s->subq);
    free(s->cancels);
    free(s->live);
    free(s->running);
    free(s->step_seqs);
    free(s->step_chunk);
    sb_free(&s->piece);
    sb_free(&s->text);
    batch_free(&s->b);
    router_free(s);
    metrics_free(&s->mx);
    backend_destroy(s->be);
    notify_close(s);
    uv_cond_destroy(&s->step_cv);
    uv_cond_destroy(&s->ev_cv);
    uv_cond_destroy(&s->work_cv);
    uv_mutex_destroy(&s->mu);
    free(s);
}

INFER_API int infer_session_fd(const infer_session *s)
{
    return s ? s->efd : -1;
}

