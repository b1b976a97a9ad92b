/*
** server.h — infer-server: an OpenAI-compatible HTTP server on libuv that embeds libinfer.
**
** One thread runs the uv loop. It accepts connections (http.c: http_parser callbacks, limits,
** responses, server-sent events, keep-alive), hands complete requests to the endpoint handlers
** (api.c: /v1/..., /metrics, /health; admin.c: /admin/...), and watches infer_session_fd()
** with a uv_poll_t: when it is readable, main.c drains infer_poll() and routes each event by
** request id (a map id -> job) to the job (events.c), which writes to its connection. Model loads and
** waiting unloads run on uv's work threads (uv_queue_work) so the loop never blocks.
**
** All server state lives in one `srv` (main.c owns it); nothing here is global.
*/
#ifndef INFER_SERVER_H
#define INFER_SERVER_H

#include <infer.h>

#include <cjson/cJSON.h>
#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct srv srv;
typedef struct conn conn;
typedef struct job job;
typedef struct admin_work admin_work;

/* A model version loaded through the server (for GET /v1/models). */
typedef struct srv_model {
    char *name;
    char *version;
    int64_t created; /* unix seconds */
} srv_model;

/* One entry of the request-id map: which job (and which of its inputs) an id belongs to. */
typedef struct srv_slot {
    infer_request_id id;
    job *j;
    int idx;
    int used;
} srv_slot;

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_poll_t poll;           /* on infer_session_fd(s) */
    uv_signal_t sig_int, sig_term;
    infer_session *s;
    /* options */
    const char *host;
    int port;
    int max_concurrency;      /* API jobs in flight at most; more get 429 */
    size_t max_body;          /* request bodies above this get 413 */
    /* state */
    int inflight;             /* API jobs submitted whose last DONE has not come */
    int stopping;             /* SIGINT/SIGTERM seen: no new connections or requests */
    uint64_t n_jobs;          /* for response ids (cmpl-N, chatcmpl-N) and default seeds */
    srv_slot *slots;          /* open addressing, linear probing, power-of-two size */
    size_t n_slots, n_used;
    srv_model *models;
    int n_models, cap_models;
    conn *conns;              /* open connections (doubly linked) */
    int admin_running;        /* work items queued on uv's thread pool */
    infer_event ev[64];       /* infer_poll buffer */
};

/* A client connection and the HTTP request it is sending or being answered for. */
struct conn {
    uv_tcp_t tcp;
    srv *sv;
    conn *prev, *next;
    http_parser parser;
    char *in;                 /* received bytes not yet parsed: in[in_off..in_len) */
    size_t in_off, in_len, in_cap;
    /* the current request */
    char *url;
    size_t url_len;
    char *body;
    size_t body_len, body_cap;
    char hdr_name[24], hdr_val[32]; /* only Expect is read: short, truncated buffers */
    size_t hdr_name_len, hdr_val_len;
    int hdr_in_value;
    int reject;               /* an HTTP status to answer with instead of parsing on */
    int msg_ready;            /* on_message_complete seen: dispatch it */
    int busy;                 /* a request is being answered: parsing waits */
    int in_process;           /* inside conn_process (guards re-entry) */
    int keep_alive;
    int read_paused;
    int closing;
    int headers_sent;         /* a streamed response has started */
    int chunked;              /* ... with Transfer-Encoding: chunked */
    uint64_t t0;              /* uv_hrtime at dispatch */
    /* the log line */
    int status;
    char log_model[96];
    int log_prompt, log_completion;
    /* what is running for it */
    job *job;
    admin_work *admin;
};

enum { JOB_COMPLETION, JOB_CHAT, JOB_EMBED };

/* One API request in flight (api.c creates it, events.c feeds and answers it). */
struct job {
    srv *sv;
    conn *c;                /* NULL once the client left */
    int kind, stream, include_usage, b64;
    char rid[40];           /* response id: cmpl-N, chatcmpl-N */
    char *model;            /* as the client named it */
    int64_t created;
    int n_ids, n_done;
    infer_request_id *ids;
    float **vecs;           /* embeddings, one per input */
    int *dims;
    char *text;             /* non-streamed output */
    size_t text_len, text_cap;
    int role_sent;
    int prompt_tokens, completion_tokens;
    infer_status status;
    infer_finish finish;
    char version[64];
};

/* http.c */
int http_listen(srv *sv);
void http_close_all(srv *sv);
void conn_close(conn *c);
void http_respond(conn *c, int status, const char *ctype, const char *body, size_t len);
void http_respond_json(conn *c, int status, cJSON *obj); /* takes obj */
void http_error(conn *c, int status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void http_stream_begin(conn *c);
void http_stream_write(conn *c, const char *data, size_t len);
void http_sse(conn *c, const char *json); /* "data: <json>\n\n" */
void http_stream_end(conn *c);
const char *http_method_name(int method);

/* api.c */
void api_dispatch(conn *c, int method, const char *path, const char *query, const char *body, size_t len);
int api_http_status(infer_status st);
void api_error_status(conn *c, infer_status st, const char *msg);

/* events.c */
void api_event(srv *sv, const infer_event *ev);
void api_conn_gone(job *j);   /* the client left: cancel what runs, drop its events */
void api_free_all(srv *sv);   /* at shutdown, after the loop stopped */
void job_free(job *j);

/* admin.c */
void admin_dispatch(conn *c, int method, const char *path, const char *query, const char *body, size_t len);
void admin_conn_gone(admin_work *w);

/* main.c: the id map and the model list */
int srv_map_put(srv *sv, infer_request_id id, job *j, int idx);
srv_slot *srv_map_get(srv *sv, infer_request_id id);
void srv_map_del(srv *sv, infer_request_id id);
int srv_model_add(srv *sv, const char *name, const char *version);
void srv_model_remove(srv *sv, const char *name, const char *version);
char *srv_strdup(const char *s);

#endif /* INFER_SERVER_H */
