/*
** engine.c — one engine step (take requests -> schedule -> forward -> sample -> events) and
** the engine thread that runs steps while there is work.
**
** A step never blocks on the host: requests and cancels are picked up under the session lock
** at its start, events are published under it at its end, and everything between runs on
** engine-owned state without the lock.
*/
#include "session.h"

#include <stdlib.h>
#include <string.h>

static void emit(infer_session *s, const ev_item *it)
{
    if (!it->ev.id) { /* a shadow's event: nobody receives it */
        free(it->text);
        free(it->logits);
        return;
    }
    if (evl_push(&s->out, it) != INFER_OK) {
        free(it->text);
        free(it->logits);
        infer_log(&s->log, INFER_LOG_ERROR, "out of memory: an event of request %llu was dropped",
                  (unsigned long long)it->ev.id);
    }
}

static void emit_text(infer_session *s, seq *q, int32_t token, const strbuf *txt)
{
    ev_item it = { 0 };
    it.ev.type = INFER_EVENT_TOKEN;
    it.ev.id = q->shadow ? 0 : q->id;
    it.ev.user_data = q->user_data;
    it.ev.token = token;
    it.text = malloc(txt->len + 1);
    if (!it.text) {
        infer_log(&s->log, INFER_LOG_ERROR, "out of memory: text of request %llu lost", (unsigned long long)q->id);
        it.ev.text = "";
    } else {
        memcpy(it.text, txt->p ? txt->p : "", txt->len);
        it.text[txt->len] = 0;
        it.ev.text = it.text;
        it.ev.text_len = txt->len;
    }
    emit(s, &it);
}

static void emit_logits(infer_session *s, seq *q, int32_t pos, const float *lg)
{
    int32_t nv = q->model->hp.vocab_size;
    ev_item it = { 0 };
    it.ev.type = INFER_EVENT_LOGITS;
    it.ev.id = q->shadow ? 0 : q->id;
    it.ev.user_data = q->user_data;
    it.ev.pos = pos;
    it.logits = malloc((size_t)nv * sizeof(float));
    if (!it.logits) {
        infer_log(&s->log, INFER_LOG_ERROR, "out of memory: logits of request %llu lost", (unsigned long long)q->id);
        return;
    }
    memcpy(it.logits, lg, (size_t)nv * sizeof(float));
    it.ev.logits = it.logits;
    it.ev.n_logits = nv;
    emit(s, &it);
}

/* Metrics of an ended request. */
static void record(infer_session *s, const seq *q, infer_status st)
{
    uint64_t now = uv_hrtime();
    int gen = q->kind == INFER_REQ_EMBED ? 0 : q->n_tokens - q->n_prompt;
    mx_done d = { q->model->name, q->model->version, q->shadow, st, q->n_prompt, gen,
                  q->t_admit ? (double)(q->t_admit - q->t_submit) * 1e-9 : -1,
                  q->t_first ? (double)(q->t_first - q->t_submit) * 1e-9 : -1,
                  q->t_first && gen > 1 ? (double)(now - q->t_first) * 1e-9 / (gen - 1) : -1,
                  (double)(now - q->t_submit) * 1e-9 };
    metrics_record(&s->mx, &d);
}

void seq_finish(infer_session *s, seq *q, infer_status st, infer_finish why)
{
    record(s, q, st);
    ev_item it = { 0 };
    it.ev.type = INFER_EVENT_DONE;
    it.ev.id = q->shadow ? 0 : q->id;
    it.text = infer_strdup(q->model->version); /* carried with the event until the next poll */
    it.ev.version = it.text ? it.text : "";
    it.ev.user_data = q->user_data;
    it.ev.status = st;
    it.ev.finish = st == INFER_OK ? why : INFER_FINISH_ERROR;
    it.ev.n_prompt_tokens = q->n_prompt;
    it.ev.n_generated = q->kind == INFER_REQ_EMBED ? 0 : q->n_tokens - q->n_prompt;
    emit(s, &it);
    kv_seq_free(&q->model->kv, &q->kv);
    sched_remove_running(s, q);
    seq_free(q);
}

static int is_end_token(const seq *q, int32_t t)
{
    if (!q->ignore_eos)
        for (int i = 0; i < q->model->n_end; i++)
            if (q->model->end_tokens[i] == t) return 1;
    for (size_t i = 0; i < q->n_stop_tokens; i++)
        if (q->stop_tokens[i] == t) return 1;
    return 0;
}

/* Sample q's next token from its logits row (or take the device's greedy pick when the row
** stayed on the device: lg NULL) and turn it into events. */
static void next_token(infer_session *s, seq *q, float *lg, int32_t picked)
{
    int32_t t = lg ? sampler_sample(q->smp, lg, q->tokens, (size_t)q->n_tokens) : picked;
    if (!q->t_first) q->t_first = uv_hrtime();
    q->tokens[q->n_tokens++] = t;
    s->step_gen++;
    strbuf *piece = &s->piece, *txt = &s->text;
    sb_clear(piece);
    sb_clear(txt);
    infer_status st = INFER_OK;
    int matched = 0, end = is_end_token(q, t);
    if (!end) {
        st = tok_stream_feed(q->model->tok, &q->detok, t, piece);
        if (!st && q->stop) st = stop_feed(q->stop, piece->p ? piece->p : "", piece->len, txt, &matched);
        else if (!st) st = sb_append(txt, piece->p, piece->len);
    }
    int length = q->n_tokens >= q->limit;
    if (!st && !matched && (end || length)) {
        /* The sequence ends here: release held bytes and held-back stop-string prefixes. */
        sb_clear(piece);
        st = tok_stream_flush(&q->detok, piece);
        if (!st && q->stop) st = stop_feed(q->stop, piece->p ? piece->p : "", piece->len, txt, &matched);
        else if (!st) st = sb_append(txt, piece->p, piece->len);
        if (!st && !matched && q->stop) st = stop_flush(q->stop, txt);
    }
    emit_text(s, q, t, txt);
    if (st) seq_finish(s, q, st, INFER_FINISH_ERROR);
    else if (end || matched) seq_finish(s, q, INFER_OK, INFER_FINISH_STOP);
    else if (length) seq_finish(s, q, INFER_OK, INFER_FINISH_LENGTH);
}

/* After the forward pass: logits events, sampling, finishing. */
static void process_outputs(infer_session *s, const fwd_out *fo)
{
    float *logits = (float *)fo->logits;
    int li = 0, row = 0; /* li: logit row; row: batch row */
    for (int k = 0; k < s->n_step; k++) {
        seq *q = s->step_seqs[k];
        int chunk = s->step_chunk[k];
        int nv = q->model->hp.vocab_size;
        int completes = q->n_computed + chunk == q->n_tokens;
        float *last = NULL;
        int last_li = -1;
        if (q->want_logits) {
            for (int j = 0; j < chunk; j++) {
                int pos = q->n_computed + j;
                float *lrow = logits + (size_t)(li + j) * (size_t)nv;
                /* After a preemption the same positions are recomputed: report each once. */
                if (pos >= q->n_logits_sent) {
                    emit_logits(s, q, pos, lrow);
                    q->n_logits_sent = pos + 1;
                }
            }
            last_li = li + chunk - 1;
            li += chunk;
        } else if (completes) {
            last_li = li++;
        }
        if (last_li >= 0) {
            /* The row of the sequence's last fed token: its full logits or the device's pick. */
            if (!fo->argmax || s->b.full_logits[row + chunk - 1]) last = logits + (size_t)last_li * (size_t)nv;
        }
        row += chunk;
        q->n_computed += chunk;
        sched_publish_blocks(q);
        if (completes) next_token(s, q, last, last_li >= 0 && fo->argmax ? fo->argmax[last_li] : 0);
    }
}

/* Why q must end now: cancelled, its model unloading, or past its deadline. */
static infer_status end_reason(const seq *q, uint64_t now)
{
    if (q->cancel || atomic_load(&q->model->unloading)) return INFER_ECANCELED;
    if (q->deadline && now >= q->deadline) return INFER_ETIMEDOUT;
    return INFER_OK;
}

/* Cancelled, unloaded and timed-out requests end now, freeing their blocks. */
static void end_cancelled(infer_session *s)
{
    uint64_t now = uv_hrtime();
    seq *prev = NULL;
    for (seq *q = s->wait_head, *next; q; q = next) {
        next = q->next;
        infer_status why = end_reason(q, now);
        if (why) {
            if (prev) prev->next = next;
            else s->wait_head = next;
            if (s->wait_tail == q) s->wait_tail = prev;
            s->n_waiting--;
            uv_mutex_lock(&s->mu);
            s->n_queued--;
            uv_mutex_unlock(&s->mu);
            seq_finish(s, q, why, INFER_FINISH_ERROR);
        } else {
            prev = q;
        }
    }
    for (int i = s->n_running - 1; i >= 0; i--) {
        seq *q = s->running[i];
        infer_status why = end_reason(q, now);
        if (why) seq_finish(s, q, why, INFER_FINISH_ERROR);
    }
}

/* Embedding requests need no KV and no decode steps: they run whole, as they arrive. */
static int run_embeddings(infer_session *s)
{
    int did = 0;
    seq *prev = NULL;
    for (seq *q = s->wait_head, *next; q; q = next) {
        next = q->next;
        if (q->kind != INFER_REQ_EMBED) {
            prev = q;
            continue;
        }
        if (prev) prev->next = next;
        else s->wait_head = next;
        if (s->wait_tail == q) s->wait_tail = prev;
        s->n_waiting--;
        uv_mutex_lock(&s->mu);
        s->n_queued--;
        uv_mutex_unlock(&s->mu);
        int dim = q->model->hp.dim;
        q->t_admit = q->t_first = uv_hrtime();
        ev_item it = { 0 };
        it.logits = malloc((size_t)dim * sizeof(float));
        infer_status st = it.logits ? bert_embed(q->model, s->be, q->tokens, q->n_tokens, q->normalize, it.logits)
                                    : infer_err(INFER_ENOMEM, "out of memory for an embedding");
        if (st == INFER_OK) {
            it.ev.type = INFER_EVENT_EMBEDDING;
            it.ev.id = q->shadow ? 0 : q->id;
            it.ev.user_data = q->user_data;
            it.ev.embedding = it.logits;
            it.ev.n_embedding = dim;
            emit(s, &it);
            s->step_prompt += q->n_tokens;
        } else {
            free(it.logits);
        }
        seq_finish(s, q, st, INFER_FINISH_STOP);
        did = 1;
    }
    return did;
}

/* Under mu: a DONE event ends the request's id. */
static void retire_ids_locked(infer_session *s)
{
    for (size_t i = 0; i < s->out.n; i++) {
        if (s->out.v[i].ev.type != INFER_EVENT_DONE) continue;
        s->stats.requests_done++;
        for (int j = 0; j < s->n_live; j++) {
            if (s->live[j] == s->out.v[i].ev.id) {
                s->live[j] = s->live[--s->n_live];
                break;
            }
        }
    }
}

int engine_step(infer_session *s)
{
    uint64_t t0 = uv_hrtime(), t_fwd = 0;
    uv_mutex_lock(&s->mu);
    sched_take_submitted(s);
    sched_apply_cancels(s);
    uv_mutex_unlock(&s->mu);

    s->step_prompt = s->step_gen = s->step_hits = 0;
    end_cancelled(s);
    int did = run_embeddings(s), max_seqs = 0;
    sched_admit(s);

    int budget = s->p.max_batch_tokens;
    /* One batch per model, in the order their sequences arrived. */
    infer_model *done[64];
    int n_done = 0;
    for (int i = 0; i < s->n_running && budget > 0 && n_done < 64; i++) {
        infer_model *m = s->running[i]->model;
        int seen = 0;
        for (int j = 0; j < n_done; j++) seen |= done[j] == m;
        if (seen) continue;
        done[n_done++] = m;
        if (sched_build(s, m, &budget) == 0) continue;
        fwd_out fo = { 0 };
        uint64_t f0 = uv_hrtime();
        infer_status st = m->dev ? s->be->ops->forward(s->be, m, &s->b, &fo)
                                 : llama_forward(m, s->be, &s->b, &fo.logits);
        /* On the host too, greedy rows are picked as part of the forward pass (in parallel) */
        if (!st && !m->dev && s->be->ops->argmax) st = s->be->ops->argmax(s->be, &s->b, m->hp.vocab_size, &fo);
        t_fwd += uv_hrtime() - f0;
        did = 1;
        max_seqs = INFER_MAX(max_seqs, s->n_step);
        if (st) {
            /* A failed step fails the sequences in it, not the engine. */
            infer_log(&s->log, INFER_LOG_ERROR, "forward pass of %s failed: %s", m->name, infer_err_text());
            for (int k = 0; k < s->n_step; k++) seq_finish(s, s->step_seqs[k], st, INFER_FINISH_ERROR);
        } else {
            process_outputs(s, &fo);
        }
        i = -1; /* finished sequences left the running array: rescan it from the start */
    }

    uint64_t t_end = uv_hrtime();
    uv_mutex_lock(&s->mu);
    if (max_seqs > 0) {
        int b = 0;
        while (b < 7 && (max_seqs >> (b + 1)) > 0) b++;
        s->stats.batch_hist[b]++;
    }
    retire_ids_locked(s);
    events_publish_locked(s);
    uv_cond_broadcast(&s->step_cv);
    s->engine_busy = s->n_running + s->n_waiting > 0;
    s->stats.running = s->n_running;
    s->stats.queued = s->n_queued;
    s->stats.steps += did;
    s->stats.max_batch_seqs = INFER_MAX(s->stats.max_batch_seqs, max_seqs);
    s->stats.tokens_prompt += s->step_prompt;
    s->stats.tokens_generated += s->step_gen;
    s->stats.prefix_hit_tokens += s->step_hits;
    int64_t used = 0, cached = 0;
    for (int i = 0; i < s->n_models; i++) {
        used += kv_used(&s->models[i]->kv);
        cached += s->models[i]->kv.n_lru;
    }
    s->stats.kv_blocks_used = used;
    s->stats.kv_blocks_cached = cached;
    if (did) {
        /* the lock's own wait is not host overhead of the step: measured before taking it */
        s->stats.forward_ns += (int64_t)t_fwd;
        s->stats.sched_ns += (int64_t)(t_end - t0 - t_fwd);
    }
    uv_mutex_unlock(&s->mu);
    return did;
}

static void engine_main(void *arg)
{
    infer_session *s = arg;
    uv_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (s->n_subq == 0 && s->n_cancels == 0 && !s->engine_busy) {
            uv_cond_wait(&s->work_cv, &s->mu);
            continue;
        }
        uv_mutex_unlock(&s->mu);
        engine_step(s);
        uv_mutex_lock(&s->mu);
    }
    uv_mutex_unlock(&s->mu);
}

infer_status engine_start(infer_session *s)
{
    if (uv_thread_create(&s->thread, engine_main, s) != 0)
        return infer_err(INFER_ENOMEM, "cannot start the engine thread");
    s->has_thread = 1;
    return INFER_OK;
}

void engine_stop(infer_session *s)
{
    uv_mutex_lock(&s->mu);
    s->stopping = 1;
    uv_cond_broadcast(&s->work_cv);
    uv_mutex_unlock(&s->mu);
    uv_thread_join(&s->thread);
    s->has_thread = 0;
}
