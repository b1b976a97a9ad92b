/*
** sched.c — continuous batching (iteration-level scheduling, as in Orca and vLLM).
**
** Each engine step: requests that arrived are appended to the waiting list; waiting requests
** are admitted in arrival order while the running set has room and their model's KV pool can
** hold their tokens; then one batch is built per model: first one decode token for every
** running sequence that has caught up, then prefill chunks of the others, within the step's
** token budget (chunked prefill, as in Sarathi). Every token fed needs its KV slot: when the
** pool runs out, the newest running sequence is preempted — its blocks are freed and it goes
** back to the front of the waiting list with its tokens, to be recomputed later. So running
** out of KV memory delays requests; it never fails one that fits the pool alone (checked at
** submit).
*/
#include "session.h"

#include <stdlib.h>
#include <string.h>

/* Does a go before b? Higher priority first, then arrival (ids grow with submit order). */
static int before(const seq *a, const seq *b)
{
    return a->priority != b->priority ? a->priority > b->priority : a->id < b->id;
}

/* Insert q into the waiting list, which stays ordered by before(). A preempted sequence
** thus goes back ahead of everything that arrived after it at its priority. */
static void waiting_insert(infer_session *s, seq *q)
{
    seq *prev = NULL, *cur = s->wait_head;
    /* Fast path: arrivals at the lowest priority append. */
    if (s->wait_tail && !before(q, s->wait_tail)) {
        prev = s->wait_tail;
        cur = NULL;
    } else {
        while (cur && !before(q, cur)) {
            prev = cur;
            cur = cur->next;
        }
    }
    q->next = cur;
    if (prev) prev->next = q;
    else s->wait_head = q;
    if (!cur) s->wait_tail = q;
    s->n_waiting++;
}

void sched_take_submitted(infer_session *s)
{
    for (int i = 0; i < s->n_subq; i++) waiting_insert(s, s->subq[i]);
    s->n_subq = 0;
}

void sched_apply_cancels(infer_session *s)
{
    for (int c = 0; c < s->n_cancels; c++) {
        infer_request_id id = s->cancels[c];
        for (seq *q = s->wait_head; q; q = q->next)
            if (q->id == id) q->cancel = 1;
        for (int i = 0; i < s->n_running; i++)
            if (s->running[i]->id == id) s->running[i]->cancel = 1;
    }
    s->n_cancels = 0;
}

void sched_remove_running(infer_session *s, seq *q)
{
    for (int i = 0; i < s->n_running; i++) {
        if (s->running[i] == q) {
            /* Keep arrival order: it decides who is preempted first. */
            memmove(s->running + i, s->running + i + 1, (size_t)(s->n_running - i - 1) * sizeof *s->running);
            s->n_running--;
            return;
        }
    }
}

static void forget_kv(seq *q)
{
    kv_seq_release(&q->model->kv, &q->kv);
    q->n_computed = 0;
    q->n_hashed = 0;
    q->prefix_h = 0;
}

static void preempt(infer_session *s, seq *q)
{
    forget_kv(q);
    sched_remove_running(s, q);
    waiting_insert(s, q);
    uv_mutex_lock(&s->mu);
    s->n_queued++;
    s->stats.preempted++;
    uv_mutex_unlock(&s->mu);
    infer_log(&s->log, INFER_LOG_DEBUG, "request %llu preempted (KV pool of %s full); it will be recomputed",
              (unsigned long long)q->id, q->model->name);
}

/* Take the cached blocks that hold q's leading full blocks of tokens. The last token is
** always left to compute (its logits are needed), and requests that want every position's
** logits compute everything. */
static void attach_prefix(infer_session *s, seq *q)
{
    kv_pool *pool = &q->model->kv;
    int bt = pool->block_tokens;
    if (!pool->prefix_on || q->want_logits) return;
    uint64_t h = 0;
    int i = 0;
    while ((i + 1) * bt <= q->n_tokens - 1) {
        uint64_t hi = prefix_hash(h, q->tokens + i * bt, bt);
        if (q->kv.n_blocks == q->kv.cap) {
            int32_t cap = q->kv.cap ? q->kv.cap * 2 : 8;
            int32_t *v = realloc(q->kv.blocks, (size_t)cap * sizeof *v);
            if (!v) break;
            q->kv.blocks = v;
            q->kv.cap = cap;
        }
        int32_t blk = prefix_lookup(pool, hi, q->tokens + i * bt);
        if (blk < 0) break;
        q->kv.blocks[q->kv.n_blocks++] = blk;
        h = hi;
        i++;
    }
    q->n_hashed = i;
    q->n_computed = i * bt;
    q->prefix_h = h;
    s->step_hits += INFER_MIN(q->n_computed, q->n_prompt);
}

void sched_publish_blocks(seq *q)
{
    kv_pool *pool = &q->model->kv;
    int bt = pool->block_tokens;
    if (!pool->prefix_on) return;
    while ((q->n_hashed + 1) * bt <= q->n_computed) {
        const int32_t *toks = q->tokens + q->n_hashed * bt;
        q->prefix_h = prefix_hash(q->prefix_h, toks, bt);
        prefix_insert(pool, q->kv.blocks[q->n_hashed], q->prefix_h, toks);
        q->n_hashed++;
    }
}

/* Admission, in waiting-list order (priority, then arrival): a request is admitted when the
** running set and its model's limit have room and its blocks (prompt + first generated
** token; cached prefix blocks shared) can be reserved now. A model whose head request does
** not fit admits nothing more this step, so a long request is not starved by short ones. */
void sched_admit(infer_session *s)
{
    const infer_model *blocked[16];
    int n_blocked = 0;
    seq *prev = NULL;
    for (seq *q = s->wait_head; q && s->n_running < s->p.max_running;) {
        seq *next = q->next;
        int is_blocked = n_blocked == 16;
        for (int i = 0; i < n_blocked; i++) is_blocked |= blocked[i] == q->model;
        int model_running = 0;
        for (int i = 0; i < s->n_running; i++) model_running += s->running[i]->model == q->model;
        int ok = !is_blocked && !(q->model->max_running > 0 && model_running >= q->model->max_running);
        if (ok) {
            attach_prefix(s, q);
            ok = kv_seq_reserve(&q->model->kv, &q->kv, q->n_tokens + 1) == INFER_OK;
            if (!ok) {
                s->step_hits -= INFER_MIN(q->n_computed, q->n_prompt);
                forget_kv(q);
            }
        }
        if (ok) {
            if (prev) prev->next = next;
            else s->wait_head = next;
            if (s->wait_tail == q) s->wait_tail = prev;
            s->n_waiting--;
            q->next = NULL;
            if (!q->t_admit) q->t_admit = uv_hrtime();
            s->running[s->n_running++] = q;
            uv_mutex_lock(&s->mu);
            s->n_queued--;
            uv_mutex_unlock(&s->mu);
        } else {
            if (!is_blocked) blocked[n_blocked++] = q->model;
            prev = q;
        }
        q = next;
    }
}

/* Is q already fed in this step? */
static int in_step(const infer_session *s, const seq *q)
{
    for (int i = 0; i < s->n_step; i++)
        if (s->step_seqs[i] == q) return 1;
    return 0;
}

/* Reserve KV for q to hold `upto` positions, preempting newer sequences of the same model
** that are not part of this step. Returns 1 if q can be fed; sets *changed when the running
** array changed (a preemption), so the caller rescans it. */
static int reserve_or_preempt(infer_session *s, seq *q, int upto, int *changed)
{
    kv_pool *pool = &q->model->kv;
    while (kv_seq_reserve(pool, &q->kv, upto) != INFER_OK) {
        /* The victim: lowest priority, then newest; never one already fed this step. */
        seq *victim = NULL;
        for (int i = 0; i < s->n_running; i++) {
            seq *v = s->running[i];
            if (v == q || v->model != q->model || v->kv.n_blocks == 0 || in_step(s, v)) continue;
            if (!victim || before(victim, v)) victim = v;
        }
        if (!victim) {
            /* Only sequences fed this step hold blocks: q steps back and lets them finish.
            ** (With none fed, q alone fits the pool: checked at submit.) */
            if (q->kv.n_blocks > 0) {
                preempt(s, q);
                *changed = 1;
            }
            return 0;
        }
        preempt(s, victim);
        *changed = 1;
    }
    return 1;
}

static void add_rows(infer_session *s, seq *q, int chunk)
{
    int completes = q->n_computed + chunk == q->n_tokens;
    for (int j = 0; j < chunk; j++) {
        int pos = q->n_computed + j;
        int samples = completes && j == chunk - 1, on_dev = 0;
        float dp[6];
        /* A device backend draws top-k samples itself: the request's draw is taken here. */
        if (samples && !q->want_logits && q->model->dev)
            on_dev = sampler_device_params(q->smp, SAMPLE_DEVICE_MAX_K, dp);
        batch_add(&s->b, q->tokens[pos], pos, &q->kv, q->want_logits || samples,
                  q->want_logits || (!on_dev && !sampler_is_greedy(q->smp)));
        if (on_dev) memcpy(s->b.dsamp + 6 * (size_t)(s->b.n - 1), dp, sizeof dp);
        if (pos < q->n_prompt) s->step_prompt++;
    }
    s->step_seqs[s->n_step] = q;
    s->step_chunk[s->n_step] = chunk;
    s->n_step++;
}

int sched_build(infer_session *s, infer_model *m, int *budget)
{
    batch_clear(&s->b);
    s->n_step = 0;
    /* Pass 0: decodes (one pending token). Pass 1: prefill chunks. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < s->n_running && *budget > 0; i++) {
            seq *q = s->running[i];
            int pending = q->n_tokens - q->n_computed;
            if (q->model != m || q->cancel || pending <= 0) continue;
            if ((pass == 0) != (pending == 1) || in_step(s, q)) continue;
            int chunk = INFER_MIN(pending, *budget);
            int changed = 0;
            if (reserve_or_preempt(s, q, q->n_computed + chunk, &changed)) {
                add_rows(s, q, chunk);
                *budget -= chunk;
            }
            /* Preemption shifted the running array: rescan; in_step skips those fed. Each
            ** rescan follows a preemption, which shrinks the array, so this terminates. */
            if (changed) i = -1;
        }
    }
    return s->b.n;
}
