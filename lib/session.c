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
#include <unistd.h>

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
        long n = sysconf(_SC_NPROCESSORS_ONLN);
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
    st = backend_create(p.backend, p.n_threads, &s->be);
    if (st) goto fail_fd;
    if (uv_mutex_init(&s->mu) != 0) { st = infer_err(INFER_ENOMEM, "cannot create a mutex"); goto fail_be; }
    if (uv_cond_init(&s->work_cv) != 0) { st = infer_err(INFER_ENOMEM, "cannot create a condition"); goto fail_mu; }
    if (uv_cond_init(&s->ev_cv) != 0) { st = infer_err(INFER_ENOMEM, "cannot create a condition"); goto fail_cv; }
    if (p.threading == INFER_THREADING_ENGINE) {
        st = engine_start(s);
        if (st) goto fail_cv2;
    }
    infer_log(&s->log, INFER_LOG_INFO, "session created: backend %s, %d threads, %s", s->be->ops->name,
              p.n_threads, p.threading == INFER_THREADING_ENGINE ? "engine thread" : "caller-driven");
    *out = s;
    return INFER_OK;

fail_cv2:
    uv_cond_destroy(&s->ev_cv);
fail_cv:
    uv_cond_destroy(&s->work_cv);
fail_mu:
    uv_mutex_destroy(&s->mu);
fail_be:
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
    batch_free(&s->b);
    backend_destroy(s->be);
    notify_close(s);
    uv_cond_destroy(&s->ev_cv);
    uv_cond_destroy(&s->work_cv);
    uv_mutex_destroy(&s->mu);
    free(s);
}

INFER_API int infer_session_fd(const infer_session *s)
{
    return s ? s->efd : -1;
}

/* ------------------------------------------------------------------------------- models */

/* Newest version of `name` (or exactly `version`); NULL if none. Under mu. */
static infer_model *find_model_locked(infer_session *s, const char *name, const char *version)
{
    for (int i = s->n_models - 1; i >= 0; i--) {
        infer_model *m = s->models[i];
        if (strcmp(m->name, name) == 0 && (!version || strcmp(m->version, version) == 0)) return m;
    }
    return NULL;
}

static infer_status not_found(const char *name, const char *version)
{
    if (version) return infer_err(INFER_ENOTFOUND, "no model '%s' version '%s' is loaded", name, version);
    return infer_err(INFER_ENOTFOUND, "no model named '%s' is loaded", name);
}

INFER_API infer_status infer_model_load(infer_session *s, const char *name, const char *version,
                                        const char *path, const infer_model_params *pin)
{
    infer_err_clear();
    if (!s || !name || !*name || !path)
        return infer_err(INFER_EINVAL, "infer_model_load: session, a non-empty name and a path are required");
    if (!version) version = "1";
    infer_model_params mp;
    infer_model_params_init(&mp);
    if (pin) {
        infer_status st = copy_versioned(&mp, sizeof mp, pin, pin->size, "infer_model_params");
        if (st) return st;
        if (mp.max_running < 0)
            return infer_err(INFER_EINVAL, "model params: max_running = %d must be >= 0", mp.max_running);
    }
    uv_mutex_lock(&s->mu);
    int dup = find_model_locked(s, name, version) != NULL;
    uv_mutex_unlock(&s->mu);
    if (dup) return infer_err(INFER_EINVAL, "model '%s' version '%s' is already loaded", name, version);

    infer_model *m;
    infer_status st = model_load(path, &mp, s->p.kv_cache_bytes, s->p.kv_block_tokens, s->p.prefix_cache, &m);
    if (st) return st;
    m->name = infer_strdup(name);
    m->version = infer_strdup(version);
    if (!m->name || !m->version) {
        model_unref(m);
        return infer_err(INFER_ENOMEM, "out of memory");
    }
    uv_mutex_lock(&s->mu);
    if (find_model_locked(s, name, version)) {
        st = infer_err(INFER_EINVAL, "model '%s' version '%s' is already loaded", name, version);
    } else if (s->n_models == s->cap_models) {
        int cap = s->cap_models ? s->cap_models * 2 : 4;
        infer_model **v = realloc(s->models, (size_t)cap * sizeof *v);
        if (v) { s->models = v; s->cap_models = cap; }
        else st = infer_err(INFER_ENOMEM, "out of memory");
    }
    if (!st) {
        s->models[s->n_models++] = m;
        s->stats.kv_blocks_total += m->kv.n_blocks;
    }
    uv_mutex_unlock(&s->mu);
    if (st) {
        model_unref(m);
        return st;
    }
    infer_log(&s->log, INFER_LOG_INFO, "loaded %s@%s from %s: dim %d, %d layers, vocab %d, context %d, %d KV blocks",
              name, version, path, m->hp.dim, m->hp.n_layers, m->hp.vocab_size, m->hp.seq_len, m->kv.n_blocks);
    return INFER_OK;
}

INFER_API infer_status infer_model_unload(infer_session *s, const char *name, const char *version)
{
    infer_err_clear();
    if (!s || !name) return infer_err(INFER_EINVAL, "infer_model_unload: session and name are required");
    for (int found = 0;; found = 1) {
        uv_mutex_lock(&s->mu);
        infer_model *m = find_model_locked(s, name, version);
        if (m) {
            /* The engine cancels this model's sequences when it sees the flag. */
            atomic_store(&m->unloading, 1);
            s->stats.kv_blocks_total -= m->kv.n_blocks;
            int i = 0;
            while (s->models[i] != m) i++;
            memmove(s->models + i, s->models + i + 1, (size_t)(s->n_models - i - 1) * sizeof *s->models);
            s->n_models--;
            uv_cond_signal(&s->work_cv);
        }
        uv_mutex_unlock(&s->mu);
        if (!m) return found ? INFER_OK : not_found(name, version);
        /* Drop the registry's reference; running sequences hold theirs until they end. */
        infer_log(&s->log, INFER_LOG_INFO, "unloading %s@%s", m->name, m->version);
        model_unref(m);
    }
}

/* Find a model and take a reference (for a request or a tokenize call). */
infer_status session_model_get(infer_session *s, const char *name, const char *version, infer_model **out)
{
    uv_mutex_lock(&s->mu);
    infer_model *m = find_model_locked(s, name, version);
    if (m) model_ref(m);
    uv_mutex_unlock(&s->mu);
    *out = m;
    return m ? INFER_OK : not_found(name, version);
}
