/*
** api.c — the OpenAI-compatible endpoints of infer-server, and the jobs behind them.
**
**   POST /v1/completions        prompt -> text            ("stream": true: SSE chunks)
**   POST /v1/chat/completions   messages -> message       ("stream": true: SSE chunks)
**   POST /v1/embeddings         input (string or array of strings) -> vectors (float or base64)
**   GET  /v1/models, /metrics (Prometheus text), /health
**
** Here: routing, JSON bodies read with cJSON, validation, and the submit. A job is one API
** request in flight: one libinfer request (or one per embedding input), registered in the id
** map (main.c) so that infer_poll events reach it; events.c streams or accumulates its output
** and answers at its DONE. A client that leaves has its requests cancelled (api_conn_gone).
**
** Defaults where the client omits a field follow OpenAI's API: temperature 1, top_p 1, no
** top-k/min-p, max_tokens 16 for completions; chat uses the library's 128. Extensions: top_k,
** min_p, repetition_penalty, ignore_eos; "model": "NAME@VERSION" pins a version; "user" is the routing key.
** Status codes: 400 bad JSON or field, or a model that cannot do what is asked (a chat request
** to a model without a chat template: INFER_EUNSUPPORTED); 404 unknown model; 429 over
** --max-concurrency or a full queue; 500 otherwise.
*/
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STOP 16
#define MAX_EMBED_INPUTS 256

int api_http_status(infer_status st)
{
    switch (st) {
    case INFER_EINVAL:
    case INFER_EUNSUPPORTED: return 400;
    case INFER_ENOTFOUND: return 404;
    case INFER_EBUSY: return 429;
    case INFER_ECANCELED: return 503;
    case INFER_ETIMEDOUT: return 504;
    default: return 500;
    }
}

void api_error_status(conn *c, infer_status st, const char *msg)
{
    int code = api_http_status(st);
    const char *type = code == 429 ? "rate_limit_error" : code >= 500 ? "server_error" : "invalid_request_error";
    const char *ecode = st == INFER_ENOTFOUND ? "model_not_found" : code == 429 ? "rate_limit_exceeded" : NULL;
    http_error(c, code, type, ecode, "%s (%s)", msg && *msg ? msg : "request failed", infer_status_str(st));
}

static job *job_new(conn *c, int kind, const char *model, int n)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->sv = c->sv;
    j->c = c;
    j->kind = kind;
    j->model = srv_strdup(model);
    j->ids = calloc((size_t)n, sizeof *j->ids);
    j->created = (int64_t)time(NULL);
    if (kind == JOB_EMBED) {
        j->vecs = calloc((size_t)n, sizeof *j->vecs);
        j->dims = calloc((size_t)n, sizeof *j->dims);
    }
    if (!j->model || !j->ids || (kind == JOB_EMBED && (!j->vecs || !j->dims))) {
        job_free(j);
        return NULL;
    }
    snprintf(j->rid, sizeof j->rid, "%s-%llu", kind == JOB_CHAT ? "chatcmpl" : kind == JOB_EMBED ? "embd" : "cmpl",
             (unsigned long long)++c->sv->n_jobs);
    snprintf(c->log_model, sizeof c->log_model, "%s", model);
    return j;
}

/* ------------------------------------------------------------------ JSON field reading */

/* A number field: 0 absent (or null), 1 read into *out, -1 wrong type or range (answered 400). */
static int num_field(conn *c, const cJSON *root, const char *name, double lo, double hi, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < lo || it->valuedouble > hi) {
        http_error(c, 400, "invalid_request_error", NULL, "'%s' must be a number in [%g, %g]", name, lo, hi);
        return -1;
    }
    *out = it->valuedouble;
    return 1;
}

/* model, sampling and stop fields shared by completions and chat; -1 = answered 400. */
static int read_common(conn *c, cJSON *root, infer_request *rq, const char **stops, char *modelbuf, size_t cap)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(m) || !m->valuestring[0]) {
        http_error(c, 400, "invalid_request_error", NULL, "you must provide a model parameter (a string)");
        return -1;
    }
    snprintf(modelbuf, cap, "%s", m->valuestring);
    char *at = strchr(modelbuf, '@');
    if (at) *at = 0;
    rq->model = modelbuf;
    rq->version = at ? at + 1 : NULL;
    double v;
    int r;
    if ((r = num_field(c, root, "temperature", 0, 100, &v)) < 0) return -1;
    rq->temperature = r ? (float)v : 1.0f;
    if ((r = num_field(c, root, "top_p", 0, 1, &v)) < 0) return -1;
    rq->top_p = r ? (float)v : 1.0f;
    if ((r = num_field(c, root, "top_k", 0, 1e9, &v)) < 0) return -1;
    rq->top_k = r ? (int)v : 0;
    if ((r = num_field(c, root, "min_p", 0, 1, &v)) < 0) return -1;
    rq->min_p = r ? (float)v : 0.0f;
    if ((r = num_field(c, root, "presence_penalty", -100, 100, &v)) < 0) return -1;
    if (r) rq->presence_penalty = (float)v;
    if ((r = num_field(c, root, "frequency_penalty", -100, 100, &v)) < 0) return -1;
    if (r) rq->frequency_penalty = (float)v;
    if ((r = num_field(c, root, "repetition_penalty", 0, 100, &v)) < 0) return -1;
    if (r) rq->repetition_penalty = (float)v;
    if ((r = num_field(c, root, "seed", -9.2e18, 1.8e19, &v)) < 0) return -1;
    rq->seed = r ? (v < 0 ? (uint64_t)(int64_t)v : (uint64_t)v) : (uint64_t)uv_hrtime() ^ (c->sv->n_jobs << 32);
    if ((r = num_field(c, root, "n", 1, 1, &v)) < 0) return -1;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "user");
    if (cJSON_IsString(u)) rq->route_key = u->valuestring;
    rq->ignore_eos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "ignore_eos"));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (cJSON_IsString(st)) {
        stops[0] = st->valuestring;
        rq->n_stop = 1;
    } else if (cJSON_IsArray(st)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, st)
        {
            if (!cJSON_IsString(e) || rq->n_stop == MAX_STOP) {
                http_error(c, 400, "invalid_request_error", NULL, "'stop' must be a string or up to %d strings", MAX_STOP);
                return -1;
            }
            stops[rq->n_stop++] = e->valuestring;
        }
    } else if (st && !cJSON_IsNull(st)) {
        http_error(c, 400, "invalid_request_error", NULL, "'stop' must be a string or an array of strings");
        return -1;
    }
    rq->stop = rq->n_stop ? stops : NULL;
    return 0;
}

/* The text of a message's content: a string, null, or an array of {"type":"text","text"} parts
** (joined, stored back into the tree so it lives as long as the request is built). */
static const char *message_text(conn *c, cJSON *msg)
{
    cJSON *ct = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(ct)) return ct->valuestring;
    if (!ct || cJSON_IsNull(ct)) return "";
    if (!cJSON_IsArray(ct)) return NULL;
    size_t n = 1;
    const cJSON *p;
    cJSON_ArrayForEach(p, ct)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(t)) return NULL;
        n += strlen(t->valuestring);
    }
    char *buf = malloc(n);
    if (!buf) return NULL;
    buf[0] = 0;
    cJSON_ArrayForEach(p, ct) strcat(buf, cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring);
    cJSON *s = cJSON_CreateString(buf);
    free(buf);
    if (!s || !cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", s)) {
        cJSON_Delete(s);
        return NULL;
    }
    return s->valuestring;
}

/* --------------------------------------------------------------------------- handlers */

static void handle_generate(conn *c, cJSON *root, int chat)
{
    srv *sv = c->sv;
    infer_request rq;
    infer_request_init(&rq);
    const char *stops[MAX_STOP];
    char model[256];
    infer_message *msgs = NULL;
    if (read_common(c, root, &rq, stops, model, sizeof model) != 0) return;
    double v;
    int r = num_field(c, root, "max_tokens", 1, 1e9, &v);
    if (r == 0 && chat) r = num_field(c, root, "max_completion_tokens", 1, 1e9, &v);
    if (r < 0) return;
    rq.max_tokens = r ? (int)v : chat ? rq.max_tokens : 16;
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (chat) {
        cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
        int n = cJSON_GetArraySize(ms);
        if (!cJSON_IsArray(ms) || n == 0) {
            http_error(c, 400, "invalid_request_error", NULL, "'messages' must be a non-empty array");
            return;
        }
        if (!(msgs = calloc((size_t)n, sizeof *msgs))) {
            http_error(c, 500, "server_error", NULL, "out of memory");
            return;
        }
        cJSON *m;
        int i = 0;
        cJSON_ArrayForEach(m, ms)
        {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            const char *text = cJSON_IsObject(m) ? message_text(c, m) : NULL;
            if (!cJSON_IsString(role) || !text) {
                http_error(c, 400, "invalid_request_error", NULL,
                           "messages[%d] needs a string 'role' and a string (or text parts) 'content'", i);
                free(msgs);
                return;
            }
            msgs[i].role = strcmp(role->valuestring, "developer") ? role->valuestring : "system";
            msgs[i++].content = text;
        }
        rq.messages = msgs;
        rq.n_messages = (size_t)n;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
        if (!cJSON_IsString(p)) {
            http_error(c, 400, "invalid_request_error", NULL, "'prompt' must be a string (or an array of one string)");
            return;
        }
        rq.prompt = p->valuestring;
    }
    if (sv->inflight >= sv->max_concurrency) {
        free(msgs);
        http_error(c, 429, "rate_limit_error", "rate_limit_exceeded", "too many requests in flight (limit %d)",
                   sv->max_concurrency);
        return;
    }
    job *j = job_new(c, chat ? JOB_CHAT : JOB_COMPLETION, cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring, 1);
    if (!j) {
        free(msgs);
        http_error(c, 500, "server_error", NULL, "out of memory");
        return;
    }
    j->stream = cJSON_IsTrue(stream);
    j->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    rq.user_data = j;
    infer_status st = infer_submit(sv->s, &rq, &j->ids[0]);
    free(msgs);
    if (st != INFER_OK) {
        api_error_status(c, st, infer_last_error(sv->s));
        job_free(j);
        return;
    }
    if (srv_map_put(sv, j->ids[0], j, 0) != 0) {
        infer_cancel(sv->s, j->ids[0]);
        job_free(j);
        http_error(c, 500, "server_error", NULL, "out of memory");
        return;
    }
    j->n_ids = 1;
    sv->inflight++;
    c->job = j;
}

static void handle_embeddings(conn *c, cJSON *root)
{
    srv *sv = c->sv;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    if (!cJSON_IsString(m) || !m->valuestring[0]) {
        http_error(c, 400, "invalid_request_error", NULL, "you must provide a model parameter (a string)");
        return;
    }
    int n = cJSON_IsString(in) ? 1 : cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
    const cJSON *e;
    int ok = n >= 1 && n <= MAX_EMBED_INPUTS;
    if (cJSON_IsArray(in)) cJSON_ArrayForEach(e, in) ok = ok && cJSON_IsString(e);
    if (!ok) {
        http_error(c, 400, "invalid_request_error", NULL,
                   "'input' must be a string or an array of 1 to %d strings (token arrays are not supported)",
                   MAX_EMBED_INPUTS);
        return;
    }
    if (fmt && !cJSON_IsNull(fmt) &&
        !(cJSON_IsString(fmt) && (!strcmp(fmt->valuestring, "float") || !strcmp(fmt->valuestring, "base64")))) {
        http_error(c, 400, "invalid_request_error", NULL, "'encoding_format' must be \"float\" or \"base64\"");
        return;
    }
    if (sv->inflight >= sv->max_concurrency) {
        http_error(c, 429, "rate_limit_error", "rate_limit_exceeded", "too many requests in flight (limit %d)",
                   sv->max_concurrency);
        return;
    }
    job *j = job_new(c, JOB_EMBED, m->valuestring, n);
    if (!j) {
        http_error(c, 500, "server_error", NULL, "out of memory");
        return;
    }
    j->b64 = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "base64");
    char model[256];
    snprintf(model, sizeof model, "%s", m->valuestring);
    char *at = strchr(model, '@');
    if (at) *at = 0;
    infer_status st = INFER_OK;
    for (int i = 0; i < n && st == INFER_OK; i++) {
        infer_request rq;
        infer_request_init(&rq);
        rq.kind = INFER_REQ_EMBED;
        rq.model = model;
        rq.version = at ? at + 1 : NULL;
        rq.prompt = cJSON_IsString(in) ? in->valuestring : cJSON_GetArrayItem(in, i)->valuestring;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "user");
        if (cJSON_IsString(u)) rq.route_key = u->valuestring;
        rq.user_data = j;
        st = infer_submit(sv->s, &rq, &j->ids[i]);
        if (st == INFER_OK && srv_map_put(sv, j->ids[i], j, i) != 0) {
            infer_cancel(sv->s, j->ids[i]);
            st = INFER_ENOMEM;
        }
        if (st == INFER_OK) j->n_ids++;
    }
    if (st != INFER_OK) {
        api_error_status(c, st, infer_last_error(sv->s));
        if (j->n_ids == 0) {
            job_free(j);
            return;
        }
        api_conn_gone(j); /* cancel the inputs already submitted; their DONEs free the job */
    }
    sv->inflight++;
    if (j->c) c->job = j;
}

static void handle_models(conn *c)
{
    srv *sv = c->sv;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    for (int i = 0; data && i < sv->n_models; i++) {
        const srv_model *m = &sv->models[i];
        int first = 1;
        for (int k = 0; k < i; k++) first = first && strcmp(sv->models[k].name, m->name) != 0;
        char id[512];
        for (int pass = first ? 0 : 1; pass < 2; pass++) {
            snprintf(id, sizeof id, pass ? "%s@%s" : "%s", m->name, m->version);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", id);
            cJSON_AddStringToObject(o, "object", "model");
            cJSON_AddNumberToObject(o, "created", (double)m->created);
            cJSON_AddStringToObject(o, "owned_by", "libinfer");
            cJSON_AddItemToArray(data, o);
        }
    }
    http_respond_json(c, 200, root);
}

static void handle_metrics(conn *c)
{
    size_t len = 0;
    for (int tries = 0; tries < 4; tries++) {
        infer_status st = infer_metrics_text(c->sv->s, NULL, 0, &len);
        if (st != INFER_OK) break;
        char *buf = malloc(len + 4096); /* headroom: series may appear in between */
        if (!buf) break;
        if (infer_metrics_text(c->sv->s, buf, len + 4096, &len) == INFER_OK) {
            http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
            free(buf);
            return;
        }
        free(buf);
    }
    http_error(c, 500, "server_error", NULL, "cannot render metrics: %s", infer_last_error(c->sv->s));
}

void api_dispatch(conn *c, int method, const char *path, const char *query, const char *body, size_t len)
{
    int get = method == HTTP_GET, post = method == HTTP_POST;
    if (!strcmp(path, "/health") && get) {
        static const char ok[] = "{\"status\":\"ok\"}";
        http_respond(c, 200, "application/json", ok, sizeof ok - 1);
        return;
    }
    if (!strcmp(path, "/metrics") && get) {
        handle_metrics(c);
        return;
    }
    if (!strcmp(path, "/v1/models") && get) {
        handle_models(c);
        return;
    }
    int kind = !strcmp(path, "/v1/completions")        ? JOB_COMPLETION
               : !strcmp(path, "/v1/chat/completions") ? JOB_CHAT
               : !strcmp(path, "/v1/embeddings")       ? JOB_EMBED
                                                       : -1;
    if (kind < 0 && strcmp(path, "/health") && strcmp(path, "/metrics") && strcmp(path, "/v1/models")) {
        http_error(c, 404, "invalid_request_error", NULL, "unknown endpoint %s %s", http_method_name(method), path);
        return;
    }
    if (kind < 0 || !post) {
        http_error(c, 405, "invalid_request_error", NULL, "%s is not allowed on %s", http_method_name(method), path);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        const char *ep = root ? NULL : cJSON_GetErrorPtr();
        long off = ep && ep >= body && ep <= body + len ? (long)(ep - body) : -1;
        cJSON_Delete(root);
        if (off >= 0)
            http_error(c, 400, "invalid_request_error", NULL,
                       "We could not parse the JSON body of your request (error near byte %ld).", off);
        else
            http_error(c, 400, "invalid_request_error", NULL, "The request body must be a JSON object.");
        return;
    }
    if (kind == JOB_EMBED) handle_embeddings(c, root);
    else handle_generate(c, root, kind == JOB_CHAT);
    cJSON_Delete(root);
}

