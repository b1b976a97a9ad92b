/*
** metrics.h — counters and histograms per model, version and role (primary or shadow),
** rendered in the Prometheus text exposition format. Updated by the engine when a request
** ends; read by infer_metrics_text from any thread. Own lock: rendering never blocks the
** engine's session lock for long.
*/
#ifndef INFER_METRICS_H
#define INFER_METRICS_H

#include <uv.h>

#include "internal.h"

#define MX_BUCKETS 15
#define MX_STATUSES 12 /* INFER_OK .. INFER_EINTERNAL, by -status */

typedef struct mx_hist {
    int64_t counts[MX_BUCKETS + 1]; /* per bucket (not cumulative); the last is +Inf */
    double sum;
    int64_t count;
} mx_hist;

typedef struct mx_series {
    char *model, *version;
    int shadow;
    int64_t requests[MX_STATUSES];   /* ended requests by status */
    int64_t prompt_tokens, generated_tokens;
    mx_hist queue, ttft, tpot, e2e;  /* seconds */
} mx_series;

typedef struct metrics {
    uv_mutex_t mu;
    mx_series *v;
    int n, cap;
} metrics;

/* One ended request (times in seconds; negative = not applicable). */
typedef struct mx_done {
    const char *model, *version;
    int shadow;
    infer_status status;
    int prompt_tokens, generated_tokens;
    double queue_s, ttft_s, tpot_s, e2e_s;
} mx_done;

infer_status metrics_init(metrics *mx);
void metrics_free(metrics *mx);
void metrics_record(metrics *mx, const mx_done *d);
/* Render everything, plus the session-wide gauges and counters of `st`. */
infer_status metrics_render(metrics *mx, const infer_stats *st, strbuf *out);

#endif
