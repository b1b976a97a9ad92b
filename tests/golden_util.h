/*
** golden_util.h — the ../shared/golden cases (karpathy/llama2.c run.c output) run through the
** public API: prompt ids, greedy ids and text, logits at the listed positions. Shared by
** test_golden (CPU) and test_cuda (the same cases on the GPU). Header-only: each runner is
** one program.
*/
#ifndef INFER_GOLDEN_UTIL_H
#define INFER_GOLDEN_UTIL_H

#include "test_util.h"

#include <infer.h>
#include <math.h>

#define MAX_CASES 8

/* GPUs the sessions of golden_model use (0 = the backend's default; n > 1: devices 0..n-1,
** tensor parallelism). */
static int golden_n_devices;

/* The library's warnings and errors (a failed forward pass says why only there). */
static void golden_log(void *user, infer_log_level level, const char *msg)
{
    (void)user;
    printf("    [libinfer %s] %s\n", level == INFER_LOG_ERROR ? "error" : "warning", msg);
}

static void golden_devices(infer_session_params *sp)
{
    sp->log_fn = golden_log;
    sp->n_devices = golden_n_devices;
    for (int i = 0; i < golden_n_devices && i < INFER_MAX_DEVICES; i++) sp->devices[i] = i;
}

typedef struct gcase {
    char *prompt;
    int32_t *prompt_ids, *gen_ids;
    size_t n_prompt, n_gen;
    float *margins;
    char *text;
    int n_logit_pos;
    int logit_pos[8];
    float *logits[8];   /* (vocab) each */
    int vocab;
} gcase;

static int load_cases(const char *greedy, const char *logits, gcase *c)
{
    char *g = read_file(shared_path(greedy), NULL);
    char *l = read_file(shared_path(logits), NULL);
    assert_non_null(g);
    assert_non_null(l);
    int n = -1;
    for (char *line = strtok(g, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "begin_case ", 11)) { n++; memset(&c[n], 0, sizeof c[n]); }
        else if (n < 0) continue;
        else if (!strncmp(line, "prompt_hex ", 11)) c[n].prompt = hex_decode(line + 11, NULL);
        else if (!strncmp(line, "prompt_ids ", 11)) c[n].prompt_ids = parse_ids(line + 11, &c[n].n_prompt);
        else if (!strncmp(line, "gen_ids ", 8)) c[n].gen_ids = parse_ids(line + 8, &c[n].n_gen);
        else if (!strncmp(line, "text_hex ", 9)) c[n].text = hex_decode(line + 9, NULL);
        else if (!strncmp(line, "gen_margins ", 12)) {
            char *end;
            long m = strtol(line + 12, &end, 10);
            c[n].margins = malloc(sizeof(float) * (size_t)m);
            for (long i = 0; i < m; i++) c[n].margins[i] = strtof(end, &end);
        }
    }
    free(g);
    int k = -1;
    for (char *line = strtok(l, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "begin_case ", 11)) k++;
        else if (k >= 0 && !strncmp(line, "logits ", 7)) {
            char *end;
            int pos = (int)strtol(line + 7, &end, 10);
            int vocab = (int)strtol(end, &end, 10);
            float *v = malloc(sizeof(float) * (size_t)vocab);
            for (int i = 0; i < vocab; i++) v[i] = strtof(end, &end);
            int j = c[k].n_logit_pos++;
            c[k].logit_pos[j] = pos;
            c[k].logits[j] = v;
            c[k].vocab = vocab;
        }
    }
    free(l);
    return n + 1;
}

static void free_cases(gcase *c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i].prompt); free(c[i].prompt_ids); free(c[i].gen_ids); free(c[i].margins); free(c[i].text);
        for (int j = 0; j < c[i].n_logit_pos; j++) free(c[i].logits[j]);
    }
}

/* Run one golden case; returns the max abs logit error seen. */
static float run_case(infer_session *s, const gcase *c, int exact_gen, float margin_bound)
{
    /* prompt ids through the public tokenizer call */
    int32_t ids[512];
    size_t n = 0;
    assert_int_equal(infer_tokenize(s, "m", NULL, c->prompt, 1, ids, 512, &n), INFER_OK);
    assert_int_equal(n, c->n_prompt);
    assert_memory_equal(ids, c->prompt_ids, n * sizeof(int32_t));

    infer_request rq;
    infer_request_init(&rq);
    rq.model = "m";
    rq.prompt = c->prompt;
    rq.temperature = 0;
    rq.max_tokens = 64 - ((int)c->n_prompt - 1); /* run.c steps = 64 positions in all */
    rq.want_logits = 1;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);

    int32_t gen[128];
    int n_gen = 0, done = 0;
    char text[8192];
    size_t tl = strlen(c->prompt);
    memcpy(text, c->prompt, tl);
    float maxerr = 0;
    int seen_logits = 0;
    infer_event ev[16];
    while (!done) {
        int k = infer_poll(s, ev, 16, 10000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            assert_int_equal(ev[i].id, id);
            if (ev[i].type == INFER_EVENT_TOKEN) {
                gen[n_gen++] = ev[i].token;
                memcpy(text + tl, ev[i].text, ev[i].text_len);
                tl += ev[i].text_len;
            } else if (ev[i].type == INFER_EVENT_LOGITS) {
                for (int j = 0; j < c->n_logit_pos; j++) {
                    if (c->logit_pos[j] != ev[i].pos) continue;
                    assert_int_equal(ev[i].n_logits, c->vocab);
                    for (int v = 0; v < c->vocab; v++) {
                        float e = fabsf(ev[i].logits[v] - c->logits[j][v]);
                        if (e > maxerr) maxerr = e;
                    }
                    seen_logits++;
                }
            } else {
                assert_int_equal(ev[i].type, INFER_EVENT_DONE);
                assert_int_equal(ev[i].status, INFER_OK);
                done = 1;
            }
        }
    }
    text[tl] = 0;
    assert_int_equal(seen_logits, c->n_logit_pos);
    if (exact_gen) {
        assert_int_equal(n_gen, c->n_gen);
        assert_memory_equal(gen, c->gen_ids, c->n_gen * sizeof(int32_t));
        assert_string_equal(text, c->text);
    } else {
        /* Random weights: ids are meaningful only while the golden margin exceeds our error. */
        size_t k = 0;
        while (k < c->n_gen && k < (size_t)n_gen && c->margins[k] > margin_bound) {
            assert_int_equal(gen[k], c->gen_ids[k]);
            k++;
        }
        printf("    greedy ids equal for the first %zu of %zu steps (until a margin <= %g)\n", k, c->n_gen,
               (double)margin_bound);
    }
    return maxerr;
}

/* All five cases of a golden file on a session of the given backend (bounds: logits 1e-4 abs,
** and greedy ids exact, or while the golden margin exceeds 2e-4 for random weights). */
static void golden_model(infer_backend be, const char *model, const char *tok, const char *greedy,
                         const char *logits, int exact)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    sp.backend = be;
    golden_devices(&sp);
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tok ? shared_path(tok) : NULL;
    infer_status st = infer_model_load(s, "m", NULL, shared_path(model), &mp);
    if (st) fprintf(stderr, "load: %s\n", infer_last_error(s));
    assert_int_equal(st, INFER_OK);

    gcase c[MAX_CASES];
    int n = load_cases(greedy, logits, c);
    assert_int_equal(n, 5);
    float worst = 0;
    for (int i = 0; i < n; i++) {
        float e = run_case(s, &c[i], exact, 2e-4f); /* a flip needs margin < 2 x the 1e-4 bound */
        if (e > worst) worst = e;
    }
    printf("    %s%s: 5 cases, max |logit error| %.2e (bound 1e-4)\n", model,
           golden_n_devices > 1 ? " on 2+ GPUs" : "", (double)worst);
    assert_true(worst <= 1e-4f);
    free_cases(c, n);
    infer_session_destroy(s);
}

#endif
