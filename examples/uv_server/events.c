/*
** events.c — the second half of a job's life in infer-server: libinfer events in, answers out.
**
** main.c drains infer_poll() and hands each event here; the request-id map gives its job.
** TOKEN: for a streamed job an SSE chunk (OpenAI shapes: completions {"object":"text_completion",
** "choices":[{"text"}]}, chat {"object":"chat.completion.chunk","choices":[{"delta"}]} with
** delta.role "assistant" first), else the text accumulates. EMBEDDING: the vector is kept.
** DONE: when the job's last request ended, the final chunk (finish_reason "stop"/"length",
** usage if stream_options.include_usage asked) and "data: [DONE]", or the whole JSON answer with
** usage; a failed request gets an OpenAI error (as an SSE event if the stream had started).
** A detached job (its client left) drops its events and is freed at its last DONE.
** The served version is reported as "system_fingerprint".
*/
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void job_free(job *j)
{
    if (!j) return;
    for (int i = 0; j->vecs && i < j->n_ids; i++) free(j->vecs[i]);
    free(j->vecs);
    free(j->dims);
    free(j->ids);
    free(j->text);
    free(j->model);
    free(j);
}

void api_conn_gone(job *j)
{
    j->c = NULL;
    for (int i = 0; i < j->n_ids; i++)
        if (srv_map_get(j->sv, j->ids[i])) infer_cancel(j->sv->s, j->ids[i]);
}

static cJSON *chunk_new(const job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->rid);
    cJSON_AddStringToObject(o, "object", j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->model);
    return o;
}

/* One streamed chunk: text (or, for chat, a delta with role and/or content) and a finish. */
static void send_chunk(job *j, const char *text, size_t len, int role, const char *finish)
{
    cJSON *o = chunk_new(j);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    char *t = NULL;
    if (text && (t = malloc(len + 1))) {
        memcpy(t, text, len);
        t[len] = 0;
    }
    if (j->kind == JOB_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (t) cJSON_AddStringToObject(d, "content", t);
    } else {
        cJSON_AddStringToObject(ch, "text", t ? t : "");
    }
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    if (finish && j->version[0]) cJSON_AddStringToObject(o, "system_fingerprint", j->version);
    free(t);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s) http_sse(j->c, s);
    free(s);
}

static void job_token(job *j, const infer_event *ev)
{
    conn *c = j->c;
    if (!j->stream) {
        if (j->text_len + ev->text_len + 1 > j->text_cap) {
            size_t cap = j->text_cap ? j->text_cap * 2 : 256;
            while (cap < j->text_len + ev->text_len + 1) cap *= 2;
            char *t = realloc(j->text, cap);
            if (!t) return; /* answered short; the request ends as usual */
            j->text = t;
            j->text_cap = cap;
        }
        memcpy(j->text + j->text_len, ev->text, ev->text_len);
        j->text_len += ev->text_len;
        return;
    }
    http_stream_begin(c);
    if (j->kind == JOB_CHAT && !j->role_sent) {
        j->role_sent = 1;
        send_chunk(j, "", 0, 1, NULL);
    }
    if (ev->text_len && j->c) send_chunk(j, ev->text, ev->text_len, 0, NULL);
}

static cJSON *usage_obj(const job *j)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->prompt_tokens);
    if (j->kind != JOB_EMBED) cJSON_AddNumberToObject(u, "completion_tokens", j->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", j->prompt_tokens + j->completion_tokens);
    return u;
}

static char *b64_floats(const float *v, int n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = (size_t)n * 4;
    const unsigned char *b = (const unsigned char *)v; /* x86/ARM: already little-endian float32 */
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < len ? b[i + 2] : 0);
        *o++ = tbl[x >> 18 & 63];
        *o++ = tbl[x >> 12 & 63];
        *o++ = i + 1 < len ? tbl[x >> 6 & 63] : '=';
        *o++ = i + 2 < len ? tbl[x & 63] : '=';
    }
    *o = 0;
    return out;
}

static void respond_embeddings(job *j, conn *c)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    for (int i = 0; data && i < j->n_ids; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "embedding");
        cJSON_AddNumberToObject(o, "index", i);
        if (j->b64) {
            char *s = b64_floats(j->vecs[i], j->dims[i]);
            cJSON_AddStringToObject(o, "embedding", s ? s : "");
            free(s);
        } else {
            cJSON_AddItemToObject(o, "embedding", cJSON_CreateFloatArray(j->vecs[i], j->dims[i]));
        }
        cJSON_AddItemToArray(data, o);
    }
    cJSON_AddStringToObject(root, "model", j->model);
    cJSON_AddItemToObject(root, "usage", usage_obj(j));
    http_respond_json(c, 200, root);
}

static const char *finish_name(infer_finish f)
{
    return f == INFER_FINISH_LENGTH ? "length" : "stop";
}

/* Every request of the job ended: answer. */
static void job_finish(job *j)
{
    conn *c = j->c;
    c->job = NULL;
    int base = (int)strcspn(j->model, "@"); /* "name" or "name@pinned": log the version that served */
    snprintf(c->log_model, sizeof c->log_model, "%.*s@%s", base, j->model, j->version[0] ? j->version : "-");
    c->log_prompt = j->prompt_tokens;
    c->log_completion = j->completion_tokens;
    if (j->status != INFER_OK) {
        api_error_status(c, j->status,
                         j->status == INFER_ECANCELED ? "the request was cancelled (its model version was unloaded, "
                                                        "or the server is stopping)"
                                                      : "the request failed");
        return;
    }
    if (j->kind == JOB_EMBED) {
        for (int i = 0; i < j->n_ids; i++)
            if (!j->vecs[i]) {
                http_error(c, 500, "server_error", NULL, "no embedding came back for input %d", i);
                return;
            }
        respond_embeddings(j, c);
        return;
    }
    if (j->stream) {
        http_stream_begin(c);
        if (j->kind == JOB_CHAT && !j->role_sent) send_chunk(j, "", 0, 1, NULL);
        send_chunk(j, NULL, 0, 0, finish_name(j->finish));
        if (j->include_usage) {
            cJSON *o = chunk_new(j);
            cJSON_AddArrayToObject(o, "choices");
            cJSON_AddItemToObject(o, "usage", usage_obj(j));
            char *s = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (s) http_sse(c, s);
            free(s);
        }
        http_sse(c, "[DONE]");
        http_stream_end(c);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->rid);
    cJSON_AddStringToObject(root, "object", j->kind == JOB_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", j->model);
    cJSON_AddStringToObject(root, "system_fingerprint", j->version);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    char *t = malloc(j->text_len + 1);
    if (t) {
        if (j->text_len) memcpy(t, j->text, j->text_len);
        t[j->text_len] = 0;
    }
    if (j->kind == JOB_CHAT) {
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(ch, "text", t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", finish_name(j->finish));
    cJSON_AddItemToObject(root, "usage", usage_obj(j));
    http_respond_json(c, 200, root);
}

void api_event(srv *sv, const infer_event *ev)
{
    srv_slot *sl = srv_map_get(sv, ev->id);
    if (!sl) return;
    job *j = sl->j;
    int idx = sl->idx;
    if (ev->type == INFER_EVENT_TOKEN) {
        if (j->c) job_token(j, ev);
        return;
    }
    if (ev->type == INFER_EVENT_EMBEDDING) {
        if (j->c && j->kind == JOB_EMBED && ev->n_embedding > 0 && !j->vecs[idx]) {
            j->vecs[idx] = malloc((size_t)ev->n_embedding * sizeof(float));
            if (j->vecs[idx]) {
                memcpy(j->vecs[idx], ev->embedding, (size_t)ev->n_embedding * sizeof(float));
                j->dims[idx] = ev->n_embedding;
            }
        }
        return;
    }
    if (ev->type != INFER_EVENT_DONE) return;
    srv_map_del(sv, ev->id);
    j->n_done++;
    j->prompt_tokens += ev->n_prompt_tokens;
    j->completion_tokens += ev->n_generated;
    if (j->status == INFER_OK) j->status = ev->status;
    j->finish = ev->finish;
    if (ev->version && !j->version[0]) snprintf(j->version, sizeof j->version, "%s", ev->version);
    if (j->n_done < j->n_ids) return;
    sv->inflight--;
    if (j->c) job_finish(j);
    job_free(j);
}

/* After the loop stopped: jobs whose DONE never came (the session is about to be destroyed). */
void api_free_all(srv *sv)
{
    for (size_t i = 0; i < sv->n_slots; i++) {
        if (!sv->slots[i].used) continue;
        job *j = sv->slots[i].j;
        for (size_t k = i; k < sv->n_slots; k++) /* drop its other ids, then the job, once */
            if (sv->slots[k].used && sv->slots[k].j == j) sv->slots[k].used = 0;
        job_free(j);
    }
    sv->n_used = 0;
}
