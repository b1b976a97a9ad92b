/*
** main.c — infer-server: arguments, the libinfer session, the uv loop and its wiring.
**
**   infer-server --model NAME[@VERSION]=PATH[:TOKENIZER] [--model ...] [--host 127.0.0.1]
**                [--port 8080] [--max-concurrency 256] [--max-body 1048576] [--threads N]
**                [--max-running N] [--queue N] [--kv-mb N]
**
** PATH is a GGUF file, a Hugging Face directory or a llama2.c checkpoint; a llama2.c
** checkpoint's tokenizer is TOKENIZER when given (after the last ':', taken as such only when
** PATH as a whole is not an existing file), else tokenizer.bin beside it.
**
** The loop: a uv_poll_t watches infer_session_fd(); when readable, infer_poll(s, ev, N, 0) is
** drained and each event goes, by its request id, through the map below to the job that
** submitted it (api.c). SIGINT/SIGTERM: stop accepting, close connections (cancelling their
** requests), let the loop run dry (work threads finish), destroy the session.
*/
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

char *srv_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ------------------------------------------------------------------- request-id map */

static size_t slot_of(const srv *sv, infer_request_id id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing */
    return (size_t)(h >> 17) & (sv->n_slots - 1);
}

static int map_grow(srv *sv)
{
    size_t n = sv->n_slots ? sv->n_slots * 2 : 256;
    srv_slot *old = sv->slots, *nw = calloc(n, sizeof *nw);
    if (!nw) return -1;
    size_t old_n = sv->n_slots;
    sv->slots = nw;
    sv->n_slots = n;
    for (size_t i = 0; i < old_n; i++) {
        if (!old[i].used) continue;
        size_t k = slot_of(sv, old[i].id);
        while (nw[k].used) k = (k + 1) & (n - 1);
        nw[k] = old[i];
    }
    free(old);
    return 0;
}

int srv_map_put(srv *sv, infer_request_id id, job *j, int idx)
{
    if ((sv->n_used + 1) * 2 > sv->n_slots && map_grow(sv) != 0) return -1;
    size_t k = slot_of(sv, id);
    while (sv->slots[k].used && sv->slots[k].id != id) k = (k + 1) & (sv->n_slots - 1);
    if (!sv->slots[k].used) sv->n_used++;
    sv->slots[k] = (srv_slot){ .id = id, .j = j, .idx = idx, .used = 1 };
    return 0;
}

srv_slot *srv_map_get(srv *sv, infer_request_id id)
{
    if (!sv->n_slots) return NULL;
    for (size_t k = slot_of(sv, id); sv->slots[k].used; k = (k + 1) & (sv->n_slots - 1))
        if (sv->slots[k].id == id) return &sv->slots[k];
    return NULL;
}

/* Linear-probing deletion by backward shift: no tombstones. */
void srv_map_del(srv *sv, infer_request_id id)
{
    srv_slot *s = srv_map_get(sv, id);
    if (!s) return;
    size_t mask = sv->n_slots - 1, i = (size_t)(s - sv->slots), j = i;
    sv->slots[i].used = 0;
    sv->n_used--;
    for (;;) {
        j = (j + 1) & mask;
        if (!sv->slots[j].used) break;
        size_t home = slot_of(sv, sv->slots[j].id);
        /* move j back to i unless its home lies cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            sv->slots[i] = sv->slots[j];
            sv->slots[j].used = 0;
            i = j;
        }
    }
}

/* ---------------------------------------------------------------------- model list */

int srv_model_add(srv *sv, const char *name, const char *version)
{
    if (sv->n_models == sv->cap_models) {
        int cap = sv->cap_models ? sv->cap_models * 2 : 8;
        srv_model *m = realloc(sv->models, (size_t)cap * sizeof *m);
        if (!m) return -1;
        sv->models = m;
        sv->cap_models = cap;
    }
    srv_model *m = &sv->models[sv->n_models];
    m->name = srv_strdup(name);
    m->version = srv_strdup(version ? version : "1");
    m->created = (int64_t)time(NULL);
    if (!m->name || !m->version) {
        free(m->name);
        free(m->version);
        return -1;
    }
    sv->n_models++;
    return 0;
}

/* Forget `name`@`version`, or every version of `name` when version is NULL. */
void srv_model_remove(srv *sv, const char *name, const char *version)
{
    int k = 0;
    for (int i = 0; i < sv->n_models; i++) {
        srv_model *m = &sv->models[i];
        if (!strcmp(m->name, name) && (!version || !strcmp(m->version, version))) {
            free(m->name);
            free(m->version);
        } else {
            sv->models[k++] = *m;
        }
    }
    sv->n_models = k;
}

/* -------------------------------------------------------------------------- the loop */

static void on_session_fd(uv_poll_t *h, int status, int events)
{
    srv *sv = h->data;
    int n;
    do {
        n = infer_poll(sv->s, sv->ev, (int)(sizeof sv->ev / sizeof sv->ev[0]), 0);
        for (int i = 0; i < n; i++) api_event(sv, &sv->ev[i]);
    } while (n == (int)(sizeof sv->ev / sizeof sv->ev[0]));
    if (n < 0) fprintf(stderr, "infer-server: infer_poll: %s\n", infer_status_str((infer_status)n));
}

static void on_signal(uv_signal_t *h, int signum)
{
    srv *sv = h->data;
    if (sv->stopping) return;
    sv->stopping = 1;
    fprintf(stderr, "infer-server: signal %d: shutting down\n", signum);
    http_close_all(sv);
    uv_close((uv_handle_t *)&sv->poll, NULL);
    uv_close((uv_handle_t *)&sv->sig_int, NULL);
    uv_close((uv_handle_t *)&sv->sig_term, NULL);
}

/* ----------------------------------------------------------------------- arguments */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: infer-server --model NAME[@VERSION]=PATH[:TOKENIZER] [options]\n"
            "  --model SPEC          load a model (repeatable); PATH: GGUF file, HF directory or llama2.c\n"
            "                        .bin; TOKENIZER: a llama2.c tokenizer.bin (default: the one beside PATH)\n"
            "  --host ADDR           address to listen on (default 127.0.0.1)\n"
            "  --port N              TCP port (default 8080)\n"
            "  --max-concurrency N   API requests in flight at most; more get 429 (default 256)\n"
            "  --max-body BYTES      largest request body; larger get 413 (default 1048576)\n"
            "  --threads N           CPU compute threads (default: all cores)\n"
            "  --max-running N       sequences decoded together (default 64)\n"
            "  --queue N             submitted-not-admitted requests (default 256)\n"
            "  --kv-mb N             KV cache per model in MiB (default 256)\n"
            "  --help                this text\n"
            "Endpoints: POST /v1/completions, /v1/chat/completions (\"stream\": true = server-sent events),\n"
            "/v1/embeddings; GET /v1/models, /metrics, /health; POST /admin/models {name,version,path[,tokenizer]},\n"
            "POST /admin/routes {model,routes:[{version,weight,shadow}]}, DELETE /admin/models/NAME[@VERSION]\n"
            "?mode=wait|nowait|cancel. One log line per request on stderr.\n");
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Load "NAME[@VERSION]=PATH[:TOKENIZER]". */
static int load_spec(srv *sv, const char *spec)
{
    char *buf = srv_strdup(spec);
    if (!buf) return -1;
    char *eq = strchr(buf, '=');
    if (!eq || eq == buf || !eq[1]) {
        fprintf(stderr, "infer-server: --model wants NAME[@VERSION]=PATH[:TOKENIZER], not '%s'\n", spec);
        free(buf);
        return -1;
    }
    *eq = 0;
    char *path = eq + 1, *tok = NULL, *ver = strchr(buf, '@');
    if (ver) *ver++ = 0;
    struct stat stt;
    char *colon = strrchr(path, ':');
    if (colon && stat(path, &stt) != 0) {
        *colon = 0;
        tok = colon + 1;
    }
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tok;
    infer_status st = infer_model_load(sv->s, buf, ver, path, &mp);
    if (st != INFER_OK) {
        fprintf(stderr, "infer-server: cannot load '%s': %s (%s)\n", spec, infer_last_error(sv->s), infer_status_str(st));
        free(buf);
        return -1;
    }
    fprintf(stderr, "infer-server: loaded %s@%s from %s\n", buf, ver ? ver : "1", path);
    int rc = srv_model_add(sv, buf, ver);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    srv sv;
    memset(&sv, 0, sizeof sv);
    sv.host = "127.0.0.1";
    sv.port = 8080;
    sv.max_concurrency = 256;
    sv.max_body = 1 << 20;
    infer_session_params sp;
    infer_session_params_init(&sp);
    const char **specs = calloc((size_t)argc, sizeof *specs);
    int n_specs = 0, rc = 1;
    const char *arg = NULL;
    if (!specs) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = arg = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(specs);
            return 0;
        }
        if (!v) goto bad;
        i++;
        if (!strcmp(a, "--model")) specs[n_specs++] = v;
        else if (!strcmp(a, "--host")) sv.host = v;
        else if (!strcmp(a, "--port") && !parse_int(v, 1, 65535, &x)) sv.port = (int)x;
        else if (!strcmp(a, "--max-concurrency") && !parse_int(v, 1, 1 << 20, &x)) sv.max_concurrency = (int)x;
        else if (!strcmp(a, "--max-body") && !parse_int(v, 1, 1L << 30, &x)) sv.max_body = (size_t)x;
        else if (!strcmp(a, "--threads") && !parse_int(v, 0, 1024, &x)) sp.n_threads = (int)x;
        else if (!strcmp(a, "--max-running") && !parse_int(v, 1, 1 << 16, &x)) sp.max_running = (int)x;
        else if (!strcmp(a, "--queue") && !parse_int(v, 1, 1 << 20, &x)) sp.queue_capacity = (int)x;
        else if (!strcmp(a, "--kv-mb") && !parse_int(v, 1, 1 << 20, &x)) sp.kv_cache_bytes = (size_t)x << 20;
        else goto bad;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer that went away is an EPIPE from write, not a signal */
    sv.loop = uv_default_loop();
    if (infer_session_create(&sp, &sv.s) != INFER_OK) {
        fprintf(stderr, "infer-server: %s\n", infer_last_error(NULL));
        free(specs);
        return 1;
    }
    for (int i = 0; i < n_specs; i++)
        if (load_spec(&sv, specs[i]) != 0) goto out;
    if (uv_poll_init(sv.loop, &sv.poll, infer_session_fd(sv.s)) != 0) goto out;
    sv.poll.data = &sv;
    uv_poll_start(&sv.poll, UV_READABLE, on_session_fd);
    uv_signal_init(sv.loop, &sv.sig_int);
    uv_signal_init(sv.loop, &sv.sig_term);
    sv.sig_int.data = sv.sig_term.data = &sv;
    uv_signal_start(&sv.sig_int, on_signal, SIGINT);
    uv_signal_start(&sv.sig_term, on_signal, SIGTERM);
    if (http_listen(&sv) != 0) {
        sv.stopping = 1;
        uv_close((uv_handle_t *)&sv.listener, NULL);
        uv_close((uv_handle_t *)&sv.poll, NULL);
        uv_close((uv_handle_t *)&sv.sig_int, NULL);
        uv_close((uv_handle_t *)&sv.sig_term, NULL);
        uv_run(sv.loop, UV_RUN_DEFAULT);
        goto out;
    }
    fprintf(stderr, "infer-server: listening on http://%s:%d (libinfer %s)\n", sv.host, sv.port, infer_version());
    uv_run(sv.loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    api_free_all(&sv);
    infer_session_destroy(sv.s);
    uv_loop_close(sv.loop);
    for (int i = 0; i < sv.n_models; i++) {
        free(sv.models[i].name);
        free(sv.models[i].version);
    }
    free(sv.models);
    free(sv.slots);
    free(specs);
    fprintf(stderr, "infer-server: stopped\n");
    return rc;
bad:
    fprintf(stderr, "infer-server: bad or incomplete argument '%s'\n", arg);
    usage(stderr);
    free(specs);
    return 2;
}
