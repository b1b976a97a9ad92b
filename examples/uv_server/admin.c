/*
** admin.c — the admin endpoints of infer-server: load a version, set routes, unload.
**
**   POST   /admin/models   {"name","version","path"[,"tokenizer"][,"max_running"]}  -> 200 when loaded
**   POST   /admin/routes   {"model","routes":[{"version","weight"[,"shadow"]}]}       -> infer_route_set
**   DELETE /admin/models/NAME[@VERSION]?mode=wait|nowait|cancel                       -> 200 when unloaded
**
** Loading takes time and an unload in "wait" mode blocks until the version's requests end, so
** both run on uv's thread pool (uv_queue_work) and the loop keeps serving; the answer goes out
** from the after-work callback. Routing is a table copy: done on the loop. A client that leaves
** while its work runs does not stop it; the server's model list is updated either way.
** Status codes: 400 bad body or a model file that cannot be loaded (EINVAL, EIO, EFORMAT,
** EUNSUPPORTED), 404 unknown model/version, 409 "nowait" unload with requests in flight.
** There is no authentication: bind --host to loopback (the default) or put a proxy in front.
*/
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_LOAD, OP_UNLOAD };

struct admin_work {
    uv_work_t req;
    srv *sv;
    conn *c; /* NULL once the client left */
    int op;
    char *name, *version, *path, *tokenizer;
    int max_running;
    infer_unload_mode mode;
    infer_status st;
    char err[512];
};

static int admin_status(infer_status st)
{
    switch (st) {
    case INFER_EINVAL:
    case INFER_EIO:
    case INFER_EFORMAT:
    case INFER_EUNSUPPORTED: return 400;
    case INFER_ENOTFOUND: return 404;
    case INFER_EBUSY: return 409;
    default: return 500;
    }
}

static void admin_fail(conn *c, infer_status st, const char *msg)
{
    int code = admin_status(st);
    http_error(c, code, code >= 500 ? "server_error" : "invalid_request_error",
               st == INFER_ENOTFOUND ? "model_not_found" : NULL, "%s (%s)", msg && *msg ? msg : "failed",
               infer_status_str(st));
}

static void work_free(admin_work *w)
{
    free(w->name);
    free(w->version);
    free(w->path);
    free(w->tokenizer);
    free(w);
}

void admin_conn_gone(admin_work *w)
{
    w->c = NULL;
}

/* On a thread-pool thread: only libinfer calls that are safe from any thread. */
static void work_run(uv_work_t *req)
{
    admin_work *w = req->data;
    if (w->op == OP_LOAD) {
        infer_model_params mp;
        infer_model_params_init(&mp);
        mp.tokenizer_path = w->tokenizer;
        mp.max_running = w->max_running;
        w->st = infer_model_load(w->sv->s, w->name, w->version, w->path, &mp);
    } else {
        w->st = infer_model_unload(w->sv->s, w->name, w->version, w->mode);
    }
    /* the error text is per thread: copy it here, where it was set */
    if (w->st != INFER_OK) snprintf(w->err, sizeof w->err, "%s", infer_last_error(NULL));
}

static void work_done(uv_work_t *req, int status)
{
    admin_work *w = req->data;
    srv *sv = w->sv;
    sv->admin_running--;
    if (w->st == INFER_OK) {
        if (w->op == OP_LOAD) srv_model_add(sv, w->name, w->version);
        else srv_model_remove(sv, w->name, w->version);
        fprintf(stderr, "infer-server: %s %s@%s\n", w->op == OP_LOAD ? "loaded" : "unloaded", w->name,
                w->version ? w->version : w->op == OP_LOAD ? "1" : "*");
    }
    conn *c = w->c;
    if (c) {
        c->admin = NULL;
        snprintf(c->log_model, sizeof c->log_model, "%s@%s", w->name, w->version ? w->version : "*");
        if (status != 0) {
            http_error(c, 500, "server_error", NULL, "admin work was cancelled: %s", uv_strerror(status));
        } else if (w->st != INFER_OK) {
            admin_fail(c, w->st, w->err);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "status", w->op == OP_LOAD ? "loaded" : "unloaded");
            cJSON_AddStringToObject(o, "model", c->log_model);
            http_respond_json(c, 200, o);
        }
    }
    work_free(w);
}

static void queue_work(conn *c, admin_work *w)
{
    w->req.data = w;
    w->sv = c->sv;
    w->c = c;
    if (uv_queue_work(c->sv->loop, &w->req, work_run, work_done) != 0) {
        work_free(w);
        http_error(c, 500, "server_error", NULL, "cannot queue the admin work");
        return;
    }
    c->sv->admin_running++;
    c->admin = w;
}

static char *opt_str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? srv_strdup(it->valuestring) : NULL;
}

static void admin_load(conn *c, const cJSON *root)
{
    admin_work *w = calloc(1, sizeof *w);
    if (!w) {
        http_error(c, 500, "server_error", NULL, "out of memory");
        return;
    }
    w->op = OP_LOAD;
    w->name = opt_str(root, "name");
    w->version = opt_str(root, "version");
    w->path = opt_str(root, "path");
    w->tokenizer = opt_str(root, "tokenizer");
    const cJSON *mr = cJSON_GetObjectItemCaseSensitive(root, "max_running");
    if (cJSON_IsNumber(mr) && mr->valuedouble >= 0 && mr->valuedouble < 1e6) w->max_running = (int)mr->valuedouble;
    if (!w->name || !w->path || !w->name[0] || strchr(w->name, '@') || (w->version && strchr(w->version, '@'))) {
        work_free(w);
        http_error(c, 400, "invalid_request_error", NULL,
                   "POST /admin/models wants {\"name\", \"version\", \"path\"} strings (no '@' in name or version)");
        return;
    }
    queue_work(c, w);
}

static void admin_routes(conn *c, const cJSON *root)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "routes");
    int n = cJSON_GetArraySize(rs);
    if (!cJSON_IsString(m) || !cJSON_IsArray(rs) || n > 64) {
        http_error(c, 400, "invalid_request_error", NULL,
                   "POST /admin/routes wants {\"model\": NAME, \"routes\": [{\"version\", \"weight\", \"shadow\"}]} "
                   "(at most 64 routes)");
        return;
    }
    infer_route routes[64];
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rs)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "version");
        const cJSON *wt = cJSON_GetObjectItemCaseSensitive(r, "weight");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(r, "shadow");
        if (!cJSON_IsString(v) || (wt && !cJSON_IsNumber(wt))) {
            http_error(c, 400, "invalid_request_error", NULL, "routes[%d] needs a string 'version' and a number 'weight'",
                       i);
            return;
        }
        routes[i].version = v->valuestring;
        routes[i].weight = wt ? wt->valuedouble : 1.0;
        routes[i].shadow = cJSON_IsTrue(sh) || (cJSON_IsNumber(sh) && sh->valuedouble != 0);
        i++;
    }
    snprintf(c->log_model, sizeof c->log_model, "%s", m->valuestring);
    infer_status st = infer_route_set(c->sv->s, m->valuestring, routes, (size_t)n);
    if (st != INFER_OK) {
        admin_fail(c, st, infer_last_error(c->sv->s));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "model", m->valuestring);
    cJSON_AddNumberToObject(o, "routes", n);
    http_respond_json(c, 200, o);
}

/* %XX and '+' decoding of a path segment or query value, in place. */
static void pct_decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '%' && s[1] && s[2]) {
            char hex[3] = { s[1], s[2], 0 };
            char *end;
            long v = strtol(hex, &end, 16);
            if (!*end && v > 0) {
                *o++ = (char)v;
                s += 2;
                continue;
            }
        }
        *o++ = *s == '+' ? ' ' : *s;
    }
    *o = 0;
}

static void admin_unload(conn *c, const char *spec, const char *query)
{
    admin_work *w = calloc(1, sizeof *w);
    char *name = srv_strdup(spec);
    if (!w || !name) {
        free(w);
        free(name);
        http_error(c, 500, "server_error", NULL, "out of memory");
        return;
    }
    pct_decode(name);
    char *at = strchr(name, '@');
    if (at) *at++ = 0;
    w->op = OP_UNLOAD;
    w->name = name;
    w->version = at && *at ? srv_strdup(at) : NULL;
    w->mode = INFER_UNLOAD_WAIT;
    const char *m = strstr(query, "mode=");
    if (m && (m == query || m[-1] == '&')) {
        m += 5;
        size_t n = strcspn(m, "&");
        if (n == 4 && !strncmp(m, "wait", 4)) w->mode = INFER_UNLOAD_WAIT;
        else if (n == 6 && !strncmp(m, "nowait", 6)) w->mode = INFER_UNLOAD_NOWAIT;
        else if (n == 6 && !strncmp(m, "cancel", 6)) w->mode = INFER_UNLOAD_CANCEL;
        else name[0] = 0;
    }
    if (!name[0] || (at && *at && !w->version)) {
        work_free(w);
        http_error(c, 400, "invalid_request_error", NULL,
                   "DELETE /admin/models/NAME[@VERSION]?mode=wait|nowait|cancel");
        return;
    }
    queue_work(c, w);
}

void admin_dispatch(conn *c, int method, const char *path, const char *query, const char *body, size_t len)
{
    if (method == HTTP_DELETE && !strncmp(path, "/admin/models/", 14) && path[14]) {
        admin_unload(c, path + 14, query);
        return;
    }
    int load = !strcmp(path, "/admin/models"), routes = !strcmp(path, "/admin/routes");
    if (!load && !routes) {
        http_error(c, 404, "invalid_request_error", NULL, "unknown endpoint %s %s", http_method_name(method), path);
        return;
    }
    if (method != HTTP_POST) {
        http_error(c, 405, "invalid_request_error", NULL, "%s is not allowed on %s", http_method_name(method), path);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        http_error(c, 400, "invalid_request_error", NULL, "We could not parse the JSON body of your request.");
        return;
    }
    if (load) admin_load(c, root);
    else admin_routes(c, root);
    cJSON_Delete(root);
}
