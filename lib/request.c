/*
** request.c — requests in and events out: infer_request_init, infer_tokenize, infer_submit,
** infer_cancel, infer_poll, infer_session_stats. Any host thread.
*/
#include "chat.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

INFER_API void infer_request_init(infer_request *rq)
{
    if (!rq) return;
    memset(rq, 0, sizeof *rq);
    rq->size = sizeof *rq;
    rq->add_bos = -1;
    rq->max_tokens = 128;
    rq->temperature = 0.8f;
    rq->top_k = 40;
    rq->top_p = 0.95f;
    rq->min_p = 0.05f;
    rq->repetition_penalty = 1.0f;
    rq->penalty_last_n = 64;
    rq->normalize = 1;
}

INFER_API infer_status infer_tokenize(infer_session *s, const char *name, const char *version,
                                      const char *text, unsigned flags, int32_t *ids, size_t cap, size_t *n_ids)
{
    infer_err_clear();
    if (!s || !name || !text || !n_ids || (cap && !ids))
        return infer_err(INFER_EINVAL, "infer_tokenize: session, name, text and n_ids are required (ids when cap > 0)");
    if (flags & ~7u) return infer_err(INFER_EINVAL, "infer_tokenize: unknown flags 0x%x", flags);
    infer_model *m;
    infer_status st = session_model_get(s, name, version, &m);
    if (st) return st;
    int bos = (flags & INFER_TOKENIZE_MODEL_BOS) ? tok_default_add_bos(m->tok) : (flags & INFER_TOKENIZE_ADD_BOS) != 0;
    unsigned tf = (bos ? TOK_ADD_BOS : 0u) | ((flags & INFER_TOKENIZE_SPECIAL) ? TOK_PARSE_SPECIAL : 0u);
    int32_t *v = NULL;
    size_t n = 0;
    st = tok_encode_ex(m->tok, text, strlen(text), tf, &v, &n);
    model_unref(m);
    if (st) return st;
    *n_ids = n;
    if (cap < n) st = cap ? infer_err(INFER_EINVAL, "infer_tokenize: %zu ids do not fit in cap = %zu", n, cap) : INFER_OK;
    else memcpy(ids, v, n * sizeof *v);
    free(v);
    return st;
}

INFER_API infer_status infer_detokenize(infer_session *s, const char *name, const char *version,
                                        const int32_t *ids, size_t n, char *buf, size_t cap, size_t *len)
{
    infer_err_clear();
    if (!s || !name || (n && !ids) || !len || (cap && !buf))
        return infer_err(INFER_EINVAL, "infer_detokenize: session, name, ids, len are required (buf when cap > 0)");
    infer_model *m;
    infer_status st = session_model_get(s, name, version, &m);
    if (st) return st;
    strbuf out = { 0 };
    tok_stream ts;
    tok_stream_init(&ts, TOK_STREAM_START);
    for (size_t i = 0; i < n && !st; i++) {
        if (ids[i] < 0 || ids[i] >= tok_n_vocab(m->tok))
            st = infer_err(INFER_EINVAL, "infer_detokenize: id %d at [%zu] is outside the vocabulary of %d", ids[i], i,
                           tok_n_vocab(m->tok));
        else
            st = tok_stream_feed(m->tok, &ts, ids[i], &out);
    }
    if (!st) st = tok_stream_flush(&ts, &out);
    model_unref(m);
    if (!st) {
        *len = out.len;
        if (cap > out.len) {
            if (out.len) memcpy(buf, out.p, out.len);
            buf[out.len] = 0;
        } else if (cap) {
            st = infer_err(INFER_EINVAL, "infer_detokenize: %zu bytes do not fit in cap = %zu", out.len + 1, cap);
        }
    }
    sb_free(&out);
    return st;
}

void seq_free(seq *q)
{
    if (!q) return;
    sampler_free(q->smp);
    stop_free(q->stop);
    free(q->tokens);
    free(q->stop_tokens);
    free(q->kv.blocks);
    if (q->model) model_unref(q->model);
    free(q);
}

/* The prompt's ids: the raw prompt, or the messages rendered with the model's chat template.
** A rendered conversation's control tokens (<|im_start|>, ...) are parsed as such, and BOS
** is added only when the model wants one and the template did not write it already. */
static infer_status encode_prompt(const infer_model *m, const infer_request *rq, int32_t **ids, size_t *n)
{
    int add_bos = rq->add_bos < 0 ? tok_default_add_bos(m->tok) : rq->add_bos;
    if (rq->kind == INFER_REQ_EMBED) {
        /* [CLS] text [SEP] for BERT-style tokenizers */
        unsigned f = (add_bos ? TOK_ADD_BOS : 0u) | (tok_default_add_eos(m->tok) ? TOK_ADD_EOS : 0u);
        return tok_encode_ex(m->tok, rq->prompt, strlen(rq->prompt), f, ids, n);
    }
    if (!rq->messages) return tok_encode(m->tok, rq->prompt, strlen(rq->prompt), add_bos, ids, n);
    chat_template ct;
    infer_status st = chat_parse(m->chat_template, &ct);
    if (st) return st;
    strbuf text = { 0 };
    st = chat_render(&ct, rq->messages, rq->n_messages, &text);
    chat_template_free(&ct);
    if (st) {
        sb_free(&text);
        return st;
    }
    const char *bos;
    size_t bos_len;
    int32_t bos_id = tok_bos(m->tok);
    if (add_bos && bos_id >= 0 && tok_piece(m->tok, bos_id, &bos, &bos_len) == INFER_OK && bos_len &&
        text.len >= bos_len && memcmp(text.p, bos, bos_len) == 0)
        add_bos = 0;
    st = tok_encode_ex(m->tok, text.p ? text.p : "", text.len, TOK_PARSE_SPECIAL | (add_bos ? TOK_ADD_BOS : 0u),
                       ids, n);
    sb_free(&text);
    return st;
}

/* Check what does not depend on the model. */
static infer_status check_request(const infer_request *rq)
{
    if (!rq->model) return infer_err(INFER_EINVAL, "request: model is NULL");
    if (!rq->prompt && !rq->messages)
        return infer_err(INFER_EINVAL, "request: prompt and messages are NULL (use \"\" for an empty prompt)");
    if (rq->prompt && rq->messages) return infer_err(INFER_EINVAL, "request: give prompt or messages, not both");
    if (rq->max_tokens < 1) return infer_err(INFER_EINVAL, "request: max_tokens = %d must be >= 1", rq->max_tokens);
    if (rq->n_stop && !rq->stop) return infer_err(INFER_EINVAL, "request: n_stop = %zu but stop is NULL", rq->n_stop);
    if (rq->n_stop_tokens && !rq->stop_tokens)
        return infer_err(INFER_EINVAL, "request: n_stop_tokens = %zu but stop_tokens is NULL", rq->n_stop_tokens);
    return INFER_OK;
}

/* Build a sequence for model m (its reference passes to the sequence, also on failure). */
static infer_status seq_create(const infer_request *rq, infer_model *m, int shadow, seq **out)
{
    *out = NULL;
    seq *q = calloc(1, sizeof *q);
    if (!q) {
        model_unref(m);
        return infer_err(INFER_ENOMEM, "out of memory for a request");
    }
    q->model = m;
    q->shadow = shadow;
    infer_status st = INFER_OK;
    const llama_hparams *hp = &q->model->hp;
    if (rq->kind != INFER_REQ_GENERATE && rq->kind != INFER_REQ_EMBED) {
        st = infer_err(INFER_EINVAL, "request: kind = %d is not a known request kind", (int)rq->kind);
        goto fail;
    }
    if (q->model->arch == ARCH_VOCAB) {
        st = infer_err(INFER_EUNSUPPORTED, "request: model '%s' is a vocabulary without weights: it can "
                                           "tokenize, not run", q->model->name);
        goto fail;
    }
    if ((rq->kind == INFER_REQ_EMBED) != (q->model->arch == ARCH_BERT)) {
        st = infer_err(INFER_EUNSUPPORTED, rq->kind == INFER_REQ_EMBED
                                               ? "request: model '%s' generates text; embeddings need an encoder model (BERT)"
                                               : "request: model '%s' is an encoder: send INFER_REQ_EMBED requests",
                       q->model->name);
        goto fail;
    }
    if (rq->kind == INFER_REQ_EMBED && rq->messages) {
        st = infer_err(INFER_EINVAL, "request: an embedding request takes a prompt, not messages");
        goto fail;
    }

    int32_t *ids = NULL;
    size_t n = 0;
    st = encode_prompt(q->model, rq, &ids, &n);
    if (st) goto fail;
    if (n == 0) {
        free(ids);
        st = infer_err(INFER_EINVAL, "request: the prompt is empty and add_bos = 0: nothing to start from");
        goto fail;
    }
    if (n > (size_t)hp->seq_len) {
        free(ids);
        st = infer_err(INFER_EINVAL, "request: the prompt is %zu tokens, over model '%s' context of %d tokens",
                       n, q->model->name, hp->seq_len);
        goto fail;
    }
    /* Generation may run to the end of the context, then ends with INFER_FINISH_LENGTH. */
    long limit = rq->kind == INFER_REQ_EMBED ? (long)n : INFER_MIN((long)n + rq->max_tokens, (long)hp->seq_len);
    int32_t need = rq->kind == INFER_REQ_EMBED ? 0 : kv_blocks_for(&q->model->kv, (int)limit);
    if (need > q->model->kv.n_blocks) {
        free(ids);
        st = infer_err(INFER_ENOMEM, "request: %ld tokens need %d KV blocks but model '%s' has a pool of %d "
                                     "(kv_cache_bytes too small for this request)", limit, need, q->model->name,
                       q->model->kv.n_blocks);
        goto fail;
    }
    q->tokens = realloc(ids, (size_t)limit * sizeof *ids);
    if (!q->tokens) {
        free(ids);
        st = infer_err(INFER_ENOMEM, "out of memory for %ld tokens", limit);
        goto fail;
    }
    q->n_tokens = q->n_prompt = (int)n;
    q->limit = (int)limit;
    q->user_data = rq->user_data;
    q->ignore_eos = rq->ignore_eos;
    q->want_logits = rq->want_logits;
    q->kind = rq->kind;
    q->normalize = rq->normalize;
    if (q->kind == INFER_REQ_EMBED) goto ready; /* no sampling, no KV */

    sampler_params sp = { rq->temperature, rq->top_k, rq->top_p, rq->min_p, rq->repetition_penalty,
                          rq->frequency_penalty, rq->presence_penalty, rq->penalty_last_n, rq->seed };
    st = sampler_create(&sp, hp->vocab_size, &q->smp);
    if (st) goto fail;
    if (rq->n_stop) {
        for (size_t i = 0; i < rq->n_stop; i++)
            if (!rq->stop[i]) { st = infer_err(INFER_EINVAL, "request: stop[%zu] is NULL", i); goto fail; }
        st = stop_create(rq->stop, rq->n_stop, &q->stop);
        if (st) goto fail;
    }
    if (rq->n_stop_tokens) {
        q->stop_tokens = malloc(rq->n_stop_tokens * sizeof *q->stop_tokens);
        if (!q->stop_tokens) { st = infer_err(INFER_ENOMEM, "out of memory"); goto fail; }
        memcpy(q->stop_tokens, rq->stop_tokens, rq->n_stop_tokens * sizeof *q->stop_tokens);
        q->n_stop_tokens = rq->n_stop_tokens;
    }
    tok_stream_init(&q->detok, q->tokens[n - 1]);
ready:
    q->t_submit = uv_hrtime();
    q->priority = rq->priority;
    if (rq->deadline_ms < 0) {
        st = infer_err(INFER_EINVAL, "request: deadline_ms = %lld must be >= 0", (long long)rq->deadline_ms);
        goto fail;
    }
    if (rq->deadline_ms > 0) q->deadline = q->t_submit + (uint64_t)rq->deadline_ms * 1000000u;
    *out = q;
    return INFER_OK;
fail:
    seq_free(q);
    return st;
}

INFER_API infer_status infer_submit(infer_session *s, const infer_request *rin, infer_request_id *id)
{
    infer_err_clear();
    if (!s || !rin || !id) return infer_err(INFER_EINVAL, "infer_submit: session, request and id are required");
    infer_request rq;
    infer_request_init(&rq);
    infer_status st = copy_versioned(&rq, sizeof rq, rin, rin->size, "infer_request");
    if (st || (st = check_request(&rq))) return st;

    /* The serving version (pinned, routed or newest) and the shadows to mirror to. */
    infer_model *m, *shadow_m[4];
    int n_shadow = 0;
    uv_mutex_lock(&s->mu);
    if (rq.version) m = registry_find_locked(s, rq.model, rq.version);
    else n_shadow = router_pick_locked(s, rq.model, rq.route_key, &m, shadow_m, 4);
    if (m) model_ref(m);
    for (int i = 0; i < n_shadow; i++) model_ref(shadow_m[i]);
    uv_mutex_unlock(&s->mu);
    if (!m) return registry_not_found(rq.model, rq.version);

    seq *q, *sq[4];
    int n_sq = 0;
    st = seq_create(&rq, m, 0, &q);
    for (int i = 0; i < n_shadow; i++) {
        if (st) { model_unref(shadow_m[i]); continue; }
        /* A shadow that cannot run (its own limits) is skipped, never the request. */
        if (seq_create(&rq, shadow_m[i], 1, &sq[n_sq]) == INFER_OK) n_sq++;
    }
    if (st) return st;
    infer_err_clear();

    uv_mutex_lock(&s->mu);
    if (s->stopping) st = infer_err(INFER_ECANCELED, "infer_submit: the session is being destroyed");
    else if (s->n_queued >= s->p.queue_capacity || s->n_subq == s->cap_subq)
        st = infer_err(INFER_EBUSY, "infer_submit: the queue is full (%d requests waiting; queue_capacity %d)",
                       s->n_queued, s->p.queue_capacity);
    else if (s->n_live == s->cap_live) {
        int cap = s->cap_live ? s->cap_live * 2 : 64;
        infer_request_id *v = realloc(s->live, (size_t)cap * sizeof *v);
        if (v) { s->live = v; s->cap_live = cap; }
        else st = infer_err(INFER_ENOMEM, "out of memory");
    }
    infer_request_id qid = 0;
    if (!st) {
        /* q belongs to the engine once queued (it may even be freed before we return) */
        qid = q->id = s->next_id++;
        s->live[s->n_live++] = q->id;
        s->subq[s->n_subq++] = q;
        s->n_queued++;
        /* shadows ride along only where the queue has room: they never cost a request */
        for (int i = 0; i < n_sq; i++) {
            if (s->n_queued < s->p.queue_capacity && s->n_subq < s->cap_subq) {
                sq[i]->id = s->next_id++;
                s->subq[s->n_subq++] = sq[i];
                s->n_queued++;
                sq[i] = NULL;
            }
        }
        s->stats.queued = s->n_queued;
        uv_cond_signal(&s->work_cv);
    }
    uv_mutex_unlock(&s->mu);
    for (int i = 0; i < n_sq; i++) seq_free(sq[i]);
    if (st) {
        seq_free(q);
        return st;
    }
    *id = qid;
    return INFER_OK;
}

INFER_API infer_status infer_cancel(infer_session *s, infer_request_id id)
{
    infer_err_clear();
    if (!s) return infer_err(INFER_EINVAL, "infer_cancel: session is NULL");
    infer_status st = INFER_OK;
    uv_mutex_lock(&s->mu);
    int live = 0;
    for (int i = 0; i < s->n_live && !live; i++) live = s->live[i] == id;
    if (!live) {
        st = infer_err(INFER_ENOTFOUND, "infer_cancel: request %llu is unknown or already finished",
                       (unsigned long long)id);
    } else {
        if (s->n_cancels == s->cap_cancels) {
            int cap = s->cap_cancels ? s->cap_cancels * 2 : 16;
            infer_request_id *v = realloc(s->cancels, (size_t)cap * sizeof *v);
            if (v) { s->cancels = v; s->cap_cancels = cap; }
            else st = infer_err(INFER_ENOMEM, "out of memory");
        }
        if (!st) {
            s->cancels[s->n_cancels++] = id;
            uv_cond_signal(&s->work_cv);
        }
    }
    uv_mutex_unlock(&s->mu);
    return st;
}

/* Milliseconds left until deadline (ns), never negative. */
static uint64_t ms_left(uint64_t deadline)
{
    uint64_t now = uv_hrtime();
    return now >= deadline ? 0 : (deadline - now + 999999) / 1000000;
}

INFER_API int infer_poll(infer_session *s, infer_event *ev, int max, int timeout_ms)
{
    infer_err_clear();
    if (!s || !ev || max < 1) return infer_err(INFER_EINVAL, "infer_poll: session, ev and max >= 1 are required");
    evl_free_items(&s->held); /* the previous poll's text and logits */
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    int caller = s->p.threading == INFER_THREADING_CALLER;
    int n = 0;
    uv_mutex_lock(&s->mu);
    for (;;) {
        n = events_take_locked(s, ev, max);
        if (n > 0) break;
        if (caller && (s->n_subq > 0 || s->n_cancels > 0 || s->engine_busy)) {
            uv_mutex_unlock(&s->mu);
            engine_step(s);
            uv_mutex_lock(&s->mu);
            continue;
        }
        if (timeout_ms >= 0 && uv_hrtime() >= deadline) break;
        uv_cond_t *cv = caller ? &s->work_cv : &s->ev_cv;
        if (timeout_ms < 0) uv_cond_wait(cv, &s->mu);
        else uv_cond_timedwait(cv, &s->mu, ms_left(deadline) * 1000000u);
    }
    uv_mutex_unlock(&s->mu);
    return n;
}

static void stats_snapshot(infer_session *s, infer_stats *snap)
{
    uv_mutex_lock(&s->mu);
    *snap = s->stats;
    snap->queued = s->n_queued;
    snap->models_resident = atomic_load(&s->models_resident);
    uv_mutex_unlock(&s->mu);
}

INFER_API infer_status infer_metrics_text(infer_session *s, char *buf, size_t cap, size_t *len)
{
    infer_err_clear();
    if (!s || !len || (cap && !buf))
        return infer_err(INFER_EINVAL, "infer_metrics_text: session and len are required (buf when cap > 0)");
    infer_stats snap;
    stats_snapshot(s, &snap);
    strbuf b = { 0 };
    infer_status st = metrics_render(&s->mx, &snap, &b);
    if (!st) {
        *len = b.len;
        if (cap > b.len) {
            memcpy(buf, b.p, b.len);
            buf[b.len] = 0;
        } else if (cap) {
            st = infer_err(INFER_EINVAL, "infer_metrics_text: %zu bytes do not fit in cap = %zu", b.len + 1, cap);
        }
    }
    sb_free(&b);
    return st;
}

INFER_API infer_status infer_session_stats(infer_session *s, infer_stats *st)
{
    infer_err_clear();
    if (!s || !st || st->size < sizeof(size_t) || st->size > sizeof *st)
        return infer_err(INFER_EINVAL, "infer_session_stats: set st->size = sizeof(infer_stats) first");
    size_t size = st->size;
    infer_stats snap;
    stats_snapshot(s, &snap);
    snap.size = size;
    memcpy(st, &snap, size);
    return INFER_OK;
}
