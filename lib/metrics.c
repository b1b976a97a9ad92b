/*
** metrics.c — Prometheus metrics (text exposition format 0.0.4: "# HELP", "# TYPE", one
** sample per line, histogram buckets cumulative with le="+Inf", _sum and _count; label values
** escape backslash, double quote and newline).
**
** Per model/version/role: requests by outcome, prompt and generated tokens, and latency
** histograms (queue time, time to first token, time per output token, end to end).
** Session-wide: running/queued requests, KV blocks, preemptions, prefix-cache hits, steps
** and the batch-size histogram.
*/
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds: from 1 ms (a decode step of a small model) to a minute (a long generation). */
static const double bounds[MX_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                           0.5,   1,      2.5,   5,    10,    30,   60 };

infer_status metrics_init(metrics *mx)
{
    memset(mx, 0, sizeof *mx);
    if (uv_mutex_init(&mx->mu) != 0) return infer_err(INFER_ENOMEM, "cannot create the metrics lock");
    return INFER_OK;
}

void metrics_free(metrics *mx)
{
    for (int i = 0; i < mx->n; i++) {
        free(mx->v[i].model);
        free(mx->v[i].version);
    }
    free(mx->v);
    uv_mutex_destroy(&mx->mu);
}

static void observe(mx_hist *h, double v)
{
    if (v < 0 || !isfinite(v)) return;
    int b = 0;
    while (b < MX_BUCKETS && v > bounds[b]) b++;
    h->counts[b]++;
    h->sum += v;
    h->count++;
}

static mx_series *series_locked(metrics *mx, const char *model, const char *version, int shadow)
{
    for (int i = 0; i < mx->n; i++)
        if (mx->v[i].shadow == shadow && !strcmp(mx->v[i].model, model) && !strcmp(mx->v[i].version, version))
            return &mx->v[i];
    if (mx->n == mx->cap) {
        int cap = mx->cap ? mx->cap * 2 : 8;
        mx_series *v = realloc(mx->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        mx->v = v;
        mx->cap = cap;
    }
    mx_series *s = &mx->v[mx->n];
    memset(s, 0, sizeof *s);
    s->model = infer_strdup(model);
    s->version = infer_strdup(version);
    s->shadow = shadow;
    if (!s->model || !s->version) {
        free(s->model);
        free(s->version);
        return NULL;
    }
    mx->n++;
    return s;
}

void metrics_record(metrics *mx, const mx_done *d)
{
    uv_mutex_lock(&mx->mu);
    mx_series *s = series_locked(mx, d->model, d->version, d->shadow);
    if (s) { /* out of memory loses this sample only */
        int k = -(int)d->status;
        if (k >= 0 && k < MX_STATUSES) s->requests[k]++;
        s->prompt_tokens += d->prompt_tokens;
        s->generated_tokens += d->generated_tokens;
        observe(&s->queue, d->queue_s);
        observe(&s->ttft, d->ttft_s);
        observe(&s->tpot, d->tpot_s);
        observe(&s->e2e, d->e2e_s);
    }
    uv_mutex_unlock(&mx->mu);
}

/* ------------------------------------------------------------------------------ render */

static infer_status putf(strbuf *b, const char *fmt, ...) INFER_PRINTF(2, 3);
static infer_status putf(strbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return infer_err(INFER_EINTERNAL, "metrics formatting failed");
    if ((size_t)n < sizeof tmp) return sb_append(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return infer_err(INFER_ENOMEM, "out of memory rendering metrics");
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    infer_status st = sb_append(b, big, (size_t)n);
    free(big);
    return st;
}

/* A label value with \, " and newline escaped, as the format requires. */
static infer_status put_escaped(strbuf *b, const char *v)
{
    infer_status st = INFER_OK;
    for (const char *p = v; *p && !st; p++) {
        if (*p == '\\') st = sb_append(b, "\\\\", 2);
        else if (*p == '"') st = sb_append(b, "\\\"", 2);
        else if (*p == '\n') st = sb_append(b, "\\n", 2);
        else st = sb_append(b, p, 1);
    }
    return st;
}

static infer_status put_labels(strbuf *b, const mx_series *s)
{
    infer_status st;
    if ((st = sb_append(b, "model=\"", 7)) || (st = put_escaped(b, s->model)) ||
        (st = sb_append(b, "\",version=\"", 11)) || (st = put_escaped(b, s->version)))
        return st;
    return putf(b, "\",role=\"%s\"", s->shadow ? "shadow" : "primary");
}

static infer_status header(strbuf *b, const char *name, const char *type, const char *help)
{
    return putf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *status_label(int k)
{
    static const char *names[MX_STATUSES] = { "ok", "einval", "enomem", "ebusy", "enotfound", "eformat",
                                              "eio", "ecanceled", "etimedout", "edevice", "eunsupported",
                                              "einternal" };
    return names[k];
}

static infer_status render_hist(strbuf *b, metrics *mx, const char *name, const char *help, size_t off)
{
    infer_status st = header(b, name, "histogram", help);
    for (int i = 0; i < mx->n && !st; i++) {
        const mx_series *s = &mx->v[i];
        const mx_hist *h = (const mx_hist *)(const void *)((const char *)s + off);
        int64_t cum = 0;
        for (int k = 0; k <= MX_BUCKETS && !st; k++) {
            cum += h->counts[k];
            if ((st = putf(b, "%s_bucket{", name)) || (st = put_labels(b, s))) break;
            if (k < MX_BUCKETS) st = putf(b, ",le=\"%g\"} %lld\n", bounds[k], (long long)cum);
            else st = putf(b, ",le=\"+Inf\"} %lld\n", (long long)cum);
        }
        if (!st && !(st = putf(b, "%s_sum{", name)) && !(st = put_labels(b, s)))
            st = putf(b, "} %.9g\n", h->sum);
        if (!st && !(st = putf(b, "%s_count{", name)) && !(st = put_labels(b, s)))
            st = putf(b, "} %lld\n", (long long)h->count);
    }
    return st;
}

static infer_status render_counter(strbuf *b, metrics *mx, const char *name, const char *help, size_t off)
{
    infer_status st = header(b, name, "counter", help);
    for (int i = 0; i < mx->n && !st; i++) {
        const mx_series *s = &mx->v[i];
        if ((st = putf(b, "%s{", name)) || (st = put_labels(b, s))) break;
        st = putf(b, "} %lld\n", (long long)*(const int64_t *)(const void *)((const char *)s + off));
    }
    return st;
}

static infer_status render_session(strbuf *b, const infer_stats *st)
{
    infer_status rc;
    struct { const char *name, *type, *help; int64_t v; } g[] = {
        { "infer_requests_running", "gauge", "Requests admitted and not finished.", st->running },
        { "infer_requests_queued", "gauge", "Requests submitted and not yet admitted.", st->queued },
        { "infer_kv_blocks_total", "gauge", "KV cache blocks over all loaded models.", st->kv_blocks_total },
        { "infer_kv_blocks_used", "gauge", "KV cache blocks held by requests.", st->kv_blocks_used },
        { "infer_kv_blocks_cached", "gauge", "Prefix-cache blocks held by no request (reclaimable).", st->kv_blocks_cached },
        { "infer_models_resident", "gauge", "Models in memory (loaded, or unloaded and draining).", st->models_resident },
        { "infer_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.", st->preempted },
        { "infer_prefix_cache_hit_tokens_total", "counter", "Prompt tokens taken from the prefix cache.", st->prefix_hit_tokens },
        { "infer_steps_total", "counter", "Engine steps that ran a forward pass.", st->steps },
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if ((rc = header(b, g[i].name, g[i].type, g[i].help)) || (rc = putf(b, "%s %lld\n", g[i].name, (long long)g[i].v)))
            return rc;
    if ((rc = header(b, "infer_batch_size", "histogram", "Sequences per engine step.")))
        return rc;
    int64_t cum = 0, sum_est = 0;
    for (int k = 0; k < 8; k++) {
        cum += st->batch_hist[k];
        sum_est += st->batch_hist[k] << k; /* bucket lower bound: the histogram keeps no exact sum */
        if (k < 7 && (rc = putf(b, "infer_batch_size_bucket{le=\"%d\"} %lld\n", (2 << k) - 1, (long long)cum)))
            return rc;
    }
    if ((rc = putf(b, "infer_batch_size_bucket{le=\"+Inf\"} %lld\n", (long long)cum)) ||
        (rc = putf(b, "infer_batch_size_sum %lld\ninfer_batch_size_count %lld\n", (long long)sum_est, (long long)cum)))
        return rc;
    return INFER_OK;
}

infer_status metrics_render(metrics *mx, const infer_stats *st, strbuf *b)
{
    uv_mutex_lock(&mx->mu);
    infer_status rc = header(b, "infer_requests_total", "counter", "Requests ended, by outcome.");
    for (int i = 0; i < mx->n && !rc; i++)
        for (int k = 0; k < MX_STATUSES && !rc; k++) {
            if (!mx->v[i].requests[k]) continue;
            if (!(rc = sb_append(b, "infer_requests_total{", 21)) && !(rc = put_labels(b, &mx->v[i])))
                rc = putf(b, ",outcome=\"%s\"} %lld\n", status_label(k), (long long)mx->v[i].requests[k]);
        }
    if (!rc) rc = render_counter(b, mx, "infer_prompt_tokens_total", "Prompt tokens of ended requests.",
                                 offsetof(mx_series, prompt_tokens));
    if (!rc) rc = render_counter(b, mx, "infer_generated_tokens_total", "Tokens generated by ended requests.",
                                 offsetof(mx_series, generated_tokens));
    if (!rc) rc = render_hist(b, mx, "infer_queue_seconds", "Time from submit to first scheduling.",
                              offsetof(mx_series, queue));
    if (!rc) rc = render_hist(b, mx, "infer_time_to_first_token_seconds", "Time from submit to the first token.",
                              offsetof(mx_series, ttft));
    if (!rc) rc = render_hist(b, mx, "infer_time_per_output_token_seconds",
                              "Mean time between output tokens after the first, per request.", offsetof(mx_series, tpot));
    if (!rc) rc = render_hist(b, mx, "infer_request_duration_seconds", "Time from submit to the end.",
                              offsetof(mx_series, e2e));
    uv_mutex_unlock(&mx->mu);
    if (!rc) rc = render_session(b, st);
    return rc;
}
