/*
** registry.c — the session's models: name -> versions, load, unload (waiting for, refusing
** or cancelling requests in flight), and the reference a request takes on the version it
** runs on. Hot reload is load-beside + route + unload: a new version loads while the old one
** serves; routing (router.c) moves new requests; requests in flight keep their reference and
** finish on the version they started on; unload then frees the old one. A failed load never
** touches what is loaded.
*/
#include "session.h"

#include <stdlib.h>
#include <string.h>

/* Newest version of `name` (or exactly `version`); NULL if none. Under mu. */
infer_model *registry_find_locked(infer_session *s, const char *name, const char *version)
{
    for (int i = s->n_models - 1; i >= 0; i--) {
        infer_model *m = s->models[i];
        if (strcmp(m->name, name) == 0 && (!version || strcmp(m->version, version) == 0)) return m;
    }
    return NULL;
}

infer_status registry_not_found(const char *name, const char *version)
{
    if (version) return infer_err(INFER_ENOTFOUND, "no model '%s' version '%s' is loaded", name, version);
    return infer_err(INFER_ENOTFOUND, "no model named '%s' is loaded", name);
}

INFER_API void infer_model_params_init(infer_model_params *p)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
}

INFER_API infer_status infer_model_load(infer_session *s, const char *name, const char *version,
                                        const char *path, const infer_model_params *pin)
{
    infer_err_clear();
    if (!s || !name || !*name || !path)
        return infer_err(INFER_EINVAL, "infer_model_load: session, a non-empty name and a path are required");
    if (!version) version = "1";
    if (!*version) return infer_err(INFER_EINVAL, "infer_model_load: the version is an empty string");
    infer_model_params mp;
    infer_model_params_init(&mp);
    if (pin) {
        infer_status st = copy_versioned(&mp, sizeof mp, pin, pin->size, "infer_model_params");
        if (st) return st;
        if (mp.max_running < 0)
            return infer_err(INFER_EINVAL, "model params: max_running = %d must be >= 0", mp.max_running);
        if (mp.weights_f32 != 0 && mp.weights_f32 != 1)
            return infer_err(INFER_EINVAL, "model params: weights_f32 = %d must be 0 or 1", mp.weights_f32);
    }
    uv_mutex_lock(&s->mu);
    int dup = registry_find_locked(s, name, version) != NULL;
    uv_mutex_unlock(&s->mu);
    if (dup) return infer_err(INFER_EINVAL, "model '%s' version '%s' is already loaded", name, version);

    infer_model *m;
    infer_status st = model_load(path, &mp, s->be, s->p.kv_cache_bytes, s->p.kv_block_tokens, s->p.prefix_cache, &m);
    if (st) return st;
    m->name = infer_strdup(name);
    m->version = infer_strdup(version);
    if (!m->name || !m->version) {
        model_unref(m);
        return infer_err(INFER_ENOMEM, "out of memory");
    }
    uv_mutex_lock(&s->mu);
    if (registry_find_locked(s, name, version)) {
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
        m->resident = &s->models_resident;
        atomic_fetch_add(&s->models_resident, 1);
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

/* Take m out of the registry (under mu): no new request can reach it. */
static void registry_remove_locked(infer_session *s, infer_model *m)
{
    int i = 0;
    while (s->models[i] != m) i++;
    memmove(s->models + i, s->models + i + 1, (size_t)(s->n_models - i - 1) * sizeof *s->models);
    s->n_models--;
    s->stats.kv_blocks_total -= m->kv.n_blocks;
}

/* Requests holding m (every one takes a reference; the registry held one more). */
static int in_flight(const infer_model *m, int registry_ref)
{
    return atomic_load(&m->refs) - registry_ref;
}

/* Wait until only our reference is left: the engine finishes what runs on m. In
** caller-driven mode this thread is the engine, so it runs the steps itself. */
static void wait_drained(infer_session *s, infer_model *m)
{
    while (in_flight(m, 1) > 0) {
        if (s->p.threading == INFER_THREADING_CALLER) {
            engine_step(s);
        } else {
            uv_mutex_lock(&s->mu);
            if (in_flight(m, 1) > 0) uv_cond_timedwait(&s->step_cv, &s->mu, 5 * 1000000u);
            uv_mutex_unlock(&s->mu);
        }
    }
}

static infer_status unload_one(infer_session *s, const char *name, const char *version, infer_unload_mode mode,
                               int *found)
{
    uv_mutex_lock(&s->mu);
    infer_model *m = registry_find_locked(s, name, version);
    if (!m) {
        uv_mutex_unlock(&s->mu);
        return INFER_OK;
    }
    *found = 1;
    if (mode == INFER_UNLOAD_NOWAIT && in_flight(m, 1) > 0) {
        int n = in_flight(m, 1);
        uv_mutex_unlock(&s->mu);
        return infer_err(INFER_EBUSY, "model '%s' version '%s' has %d request%s in flight", m->name, m->version, n,
                         n == 1 ? "" : "s");
    }
    registry_remove_locked(s, m);
    if (mode == INFER_UNLOAD_CANCEL) {
        atomic_store(&m->unloading, 1); /* the engine cancels its sequences */
        uv_cond_signal(&s->work_cv);
    }
    uv_mutex_unlock(&s->mu);
    infer_log(&s->log, INFER_LOG_INFO, "unloading %s@%s", m->name, m->version);
    if (mode == INFER_UNLOAD_WAIT) wait_drained(s, m);
    model_unref(m); /* the registry's; with CANCEL, running sequences drop theirs as they end */
    return INFER_OK;
}

INFER_API infer_status infer_model_unload(infer_session *s, const char *name, const char *version,
                                          infer_unload_mode mode)
{
    infer_err_clear();
    if (!s || !name) return infer_err(INFER_EINVAL, "infer_model_unload: session and name are required");
    if (mode != INFER_UNLOAD_WAIT && mode != INFER_UNLOAD_NOWAIT && mode != INFER_UNLOAD_CANCEL)
        return infer_err(INFER_EINVAL, "infer_model_unload: mode %d is not a known mode", (int)mode);
    int any = 0;
    for (;;) { /* version NULL: every version, newest first */
        int found = 0;
        infer_status st = unload_one(s, name, version, mode, &found);
        if (st) return st;
        if (!found) break;
        any = 1;
        if (version) break;
    }
    return any ? INFER_OK : registry_not_found(name, version);
}

/* Find a model (pinned version, or the newest) and take a reference. */
infer_status session_model_get(infer_session *s, const char *name, const char *version, infer_model **out)
{
    uv_mutex_lock(&s->mu);
    infer_model *m = registry_find_locked(s, name, version);
    if (m) model_ref(m);
    uv_mutex_unlock(&s->mu);
    *out = m;
    return m ? INFER_OK : registry_not_found(name, version);
}
