/*
** session.h — the session object shared by session.c (public entry points), queue.c (event
** queue, poll, notification fd), engine.c (engine step and thread) and sched.c (admission,
** batch building, preemption).
**
** Locking: `mu` guards everything under "shared"; the engine-owned part is touched only by
** the thread that runs engine steps (the engine thread, or the polling thread in
** INFER_THREADING_CALLER mode), without the lock.
*/
#ifndef INFER_SESSION_H
#define INFER_SESSION_H

#include <uv.h>

#include "batch.h"
#include "metrics.h"
#include "rng.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

/* A request from submit to DONE. */
typedef struct seq {
    infer_request_id id;
    void *user_data;
    infer_model *model;        /* holds a reference */
    int32_t *tokens;           /* prompt then generated tokens; cap = limit */
    int n_tokens;
    int n_prompt;
    int limit;                 /* n_prompt + max_tokens, at most the context length */
    int n_computed;            /* tokens whose K/V are in the cache (0 again after preemption) */
    int n_logits_sent;         /* positions already reported in LOGITS events */
    int n_hashed;              /* leading full blocks published to the prefix cache */
    uint64_t prefix_h;         /* chained hash of those blocks */
    kv_seq kv;
    sampler *smp;
    stop_matcher *stop;        /* NULL without stop strings */
    tok_stream detok;
    int32_t *stop_tokens;
    size_t n_stop_tokens;
    int ignore_eos, want_logits;
    infer_request_kind kind;
    int normalize;             /* INFER_REQ_EMBED */
    int cancel;                /* engine-owned: set when a cancel was seen */
    int shadow;                /* a mirrored copy: runs, records metrics, emits no events */
    uint64_t t_admit, t_first; /* uv_hrtime when first scheduled / first token (0 = not yet) */
    uint64_t t_submit;         /* uv_hrtime at submit */
    uint64_t deadline;         /* uv_hrtime after which it times out; 0 = none */
    int priority;
    struct seq *next;          /* waiting list link */
} seq;

/* A model's routing table (router.c). */
typedef struct route_entry {
    char *version;
    double weight;
    int shadow;
} route_entry;

typedef struct route_table {
    char *name;
    route_entry *r;
    int n;
} route_table;

/* An event with the buffers its pointers refer to. */
typedef struct ev_item {
    infer_event ev;
    char *text;
    float *logits;
} ev_item;

typedef struct ev_list {
    ev_item *v;
    size_t n, cap;
} ev_list;

struct infer_session {
    infer_session_params p;
    infer_logger log;
    backend *be;
    int efd;                        /* eventfd, readable while events are queued */

    /* ---- shared, under mu ---- */
    uv_mutex_t mu;
    uv_cond_t work_cv;              /* engine: new work, cancel or stop */
    uv_cond_t ev_cv;                /* pollers: events queued */
    uv_cond_t step_cv;              /* an engine step ended (unload waits on it) */
    atomic_long models_resident;    /* loaded models not yet freed (unloaded ones drain) */
    infer_model **models;           /* registry, in load order */
    int n_models, cap_models;
    seq **subq;                     /* submitted, not yet taken by the engine */
    int n_subq, cap_subq;
    int n_queued;                   /* submitted, not yet admitted (subq + waiting) */
    infer_request_id *cancels;      /* cancel requests not yet seen by the engine */
    int n_cancels, cap_cancels;
    infer_request_id *live;         /* ids submitted and not yet DONE */
    int n_live, cap_live;
    infer_request_id next_id;
    route_table *routes;            /* per model name (router.c) */
    int n_routes, cap_routes;
    rng route_rng;                  /* unkeyed routing draws */
    metrics mx;                     /* Prometheus metrics (own lock) */
    ev_list evq;                    /* events not yet polled (a FIFO: head index below) */
    size_t ev_head;
    int engine_busy;                /* the engine has waiting or running sequences */
    int stopping;
    infer_stats stats;

    /* ---- poller-owned ---- */
    ev_list held;                   /* buffers of the events returned by the last poll */

    /* ---- engine-owned ---- */
    uv_thread_t thread;
    int has_thread;
    seq *wait_head, *wait_tail;     /* admitted order: FIFO */
    int n_waiting;
    seq **running;
    int n_running, cap_running;
    batch b;
    seq **step_seqs;                /* sequences fed this step, in batch order (cap_running) */
    int *step_chunk;                /* tokens each feeds */
    int n_step;
    ev_list out;                    /* events produced by the current step */
    strbuf piece, text;             /* per-token text scratch */
    int64_t step_prompt, step_gen;  /* tokens counted this step, folded into stats */
    int64_t step_hits;              /* prompt tokens taken from the prefix cache this step */
};

/* router.c: under mu, the version serving a request without a pinned version (NULL if the
** model is not loaded) and up to max_shadows versions to mirror it to (returns how many). */
int router_pick_locked(infer_session *s, const char *name, const char *key, infer_model **primary,
                       infer_model **shadows, int max_shadows);
void router_free(infer_session *s);

/* registry.c */
infer_model *registry_find_locked(infer_session *s, const char *name, const char *version);
infer_status registry_not_found(const char *name, const char *version);

/* session.c */
infer_status session_model_get(infer_session *s, const char *name, const char *version, infer_model **out);
infer_status copy_versioned(void *dst, size_t dst_size, const void *src, size_t src_size, const char *what);

/* queue.c */
infer_status evl_push(ev_list *l, const ev_item *it);
void evl_free_items(ev_list *l);
/* Move s->out into the shared queue (under mu) and make the fd readable. */
void events_publish_locked(infer_session *s);
int events_take_locked(infer_session *s, infer_event *ev, int max);
int notify_init(infer_session *s);
void notify_close(infer_session *s);

/* engine.c */
/* Run one engine step; returns 1 if it did work, 0 if there was nothing to do. */
int engine_step(infer_session *s);
infer_status engine_start(infer_session *s);
void engine_stop(infer_session *s);
void seq_free(seq *q);
/* End a sequence: release its KV, queue its DONE event. */
void seq_finish(infer_session *s, seq *q, infer_status st, infer_finish why);

/* sched.c */
/* Under mu: move submitted requests to the waiting list, mark cancelled ones. */
void sched_take_submitted(infer_session *s);
void sched_apply_cancels(infer_session *s);
void sched_admit(infer_session *s);
/* Build s->b and s->step_seqs/step_chunk for the running sequences of model m, decode rows
** first, then prefill chunks, within *budget tokens (decremented), reserving KV blocks and
** preempting the newest sequences when the pool runs out. Returns the rows in the batch. */
int sched_build(infer_session *s, infer_model *m, int *budget);
/* Publish q's newly completed full blocks to its model's prefix cache. */
void sched_publish_blocks(seq *q);
/* Remove q from the running set (it keeps its place nowhere). */
void sched_remove_running(infer_session *s, seq *q);

#endif
