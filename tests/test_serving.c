/*
** test_serving.c — serving features through the public API: A/B routing weights over 10,000
** decisions, sticky route keys, shadow traffic (never reaches the caller, appears in
** metrics), unload modes, hot reload under load (200 streaming requests while versions are
** reloaded and routes flipped 20 times: nothing dropped, each response entirely from the
** version its DONE event names, old versions freed), and the Prometheus metrics text.
*/
#include "test_util.h"

#include <infer.h>
#include <unistd.h>
#include <uv.h>

#define STORY "models/stories260K.bin"
#define TOK512 "models/tok512.bin"
#define TINY "models/llama-2-tiny-random.f32.bin"

static infer_session *new_session(infer_threading mode, int queue_cap)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = mode;
    sp.queue_capacity = queue_cap;
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    return s;
}

static void load(infer_session *s, const char *version, const char *file)
{
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = strcmp(file, STORY) == 0 ? shared_path(TOK512) : NULL;
    infer_status st = infer_model_load(s, "chat", version, shared_path(file), &mp);
    if (st) fprintf(stderr, "load: %s\n", infer_last_error(s));
    assert_int_equal(st, INFER_OK);
}

static infer_request_id submit(infer_session *s, const char *prompt, int max_tokens, const char *key, intptr_t tag)
{
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "chat";
    rq.prompt = prompt;
    rq.max_tokens = max_tokens;
    rq.temperature = 0;
    rq.ignore_eos = 1;
    rq.route_key = key;
    rq.user_data = (void *)tag;
    infer_request_id id;
    infer_status st = infer_submit(s, &rq, &id);
    if (st) fprintf(stderr, "submit: %s\n", infer_last_error(s));
    assert_int_equal(st, INFER_OK);
    return id;
}

/* Poll until n DONE events; count them per version name "1"/"2". Asserts no error. */
static void drain(infer_session *s, int n, int *v1, int *v2, int *other_events)
{
    infer_event ev[256];
    while (n > 0) {
        int k = infer_poll(s, ev, 256, 20000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            if (ev[i].type != INFER_EVENT_DONE) { if (other_events) (*other_events)++; continue; }
            assert_int_equal(ev[i].status, INFER_OK);
            if (!strcmp(ev[i].version, "1")) (*v1)++;
            else if (!strcmp(ev[i].version, "2")) (*v2)++;
            else fail_msg("unexpected version %s", ev[i].version);
            n--;
        }
    }
}

static void test_ab_split(void **state)
{
    infer_session *s = new_session(INFER_THREADING_CALLER, 512);
    load(s, "1", STORY);
    load(s, "2", STORY);
    infer_route r[2] = { { "1", 0.9, 0 }, { "2", 0.1, 0 } };
    assert_int_equal(infer_route_set(s, "chat", r, 2), INFER_OK);
    int v1 = 0, v2 = 0;
    for (int done = 0; done < 10000; done += 500) {
        for (int i = 0; i < 500; i++) submit(s, "Hi", 1, NULL, 0);
        drain(s, 500, &v1, &v2, NULL);
    }
    printf("    10000 routing decisions at 90/10: %d / %d\n", v1, v2);
    assert_int_equal(v1 + v2, 10000);
    assert_true(v2 >= 800 && v2 <= 1200); /* within +-2 points of 10% */

    /* sticky: one key, one version; many keys spread like the weights */
    int a = 0, b = 0;
    for (int i = 0; i < 100; i++) submit(s, "Hi", 1, "user-42", 0);
    drain(s, 100, &a, &b, NULL);
    assert_true(a == 100 || b == 100);
    a = b = 0;
    char key[32];
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        submit(s, "Hi", 1, key, 0);
    }
    drain(s, 400, &a, &b, NULL);
    assert_true(b > 10 && b < 80);
    for (int rep = 0; rep < 3; rep++) { /* the same keys land the same way again */
        int a2 = 0, b2 = 0;
        for (int i = 0; i < 400; i++) {
            snprintf(key, sizeof key, "user-%d", i);
            submit(s, "Hi", 1, key, 0);
        }
        drain(s, 400, &a2, &b2, NULL);
        assert_int_equal(b2, b);
    }
    /* pinning a version bypasses routing; bad tables are refused */
    infer_route bad[1] = { { "3", 1, 0 } };
    assert_int_equal(infer_route_set(s, "chat", bad, 1), INFER_ENOTFOUND);
    infer_route zero[1] = { { "1", 0, 0 } };
    assert_int_equal(infer_route_set(s, "chat", zero, 1), INFER_EINVAL);
    assert_int_equal(infer_route_set(s, "chat", NULL, 0), INFER_OK); /* cleared: newest */
    a = b = 0;
    for (int i = 0; i < 20; i++) submit(s, "Hi", 1, NULL, 0);
    drain(s, 20, &a, &b, NULL);
    assert_int_equal(b, 20);
    infer_session_destroy(s);
}

static int64_t metric_value(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    if (!p) return -1;
    return atoll(p + strlen(series));
}

static void test_shadow_and_metrics(void **state)
{
    infer_session *s = new_session(INFER_THREADING_CALLER, 512);
    load(s, "1", STORY);
    load(s, "2", STORY);
    infer_route r[2] = { { "1", 1, 0 }, { "2", 0.5, 1 } };
    assert_int_equal(infer_route_set(s, "chat", r, 2), INFER_OK);
    int v1 = 0, v2 = 0, other = 0;
    for (int i = 0; i < 200; i++) submit(s, "Once upon a time", 4, NULL, i);
    drain(s, 200, &v1, &v2, &other);
    assert_int_equal(v1, 200); /* the caller only ever hears from the serving version */
    assert_int_equal(v2, 0);
    assert_int_equal(other, 200 * 4);
    /* let the mirrored copies finish (they are queued behind) */
    infer_event ev[8];
    assert_int_equal(infer_poll(s, ev, 8, 200), 0);
    size_t len;
    assert_int_equal(infer_metrics_text(s, NULL, 0, &len), INFER_OK);
    char *text = malloc(len + 1);
    assert_int_equal(infer_metrics_text(s, text, len + 1, &len), INFER_OK);
    int64_t prim = metric_value(text, "infer_requests_total{model=\"chat\",version=\"1\",role=\"primary\",outcome=\"ok\"} ");
    int64_t shad = metric_value(text, "infer_requests_total{model=\"chat\",version=\"2\",role=\"shadow\",outcome=\"ok\"} ");
    int64_t gen = metric_value(text, "infer_generated_tokens_total{model=\"chat\",version=\"1\",role=\"primary\"} ");
    printf("    200 requests, shadow 50%%: primary %lld, shadow %lld; %lld tokens generated\n", (long long)prim,
           (long long)shad, (long long)gen);
    assert_int_equal(prim, 200);
    assert_true(shad >= 70 && shad <= 130);
    assert_int_equal(gen, 800);

    /* The text must parse with a real Prometheus parser (prometheus_client, installed by
    ** scripts/deps.sh); its counters must match. */
    FILE *f = fopen("/tmp/infer-test-metrics.txt", "w");
    fwrite(text, 1, len, f);
    fclose(f);
    /* Debian's python3-prometheus-client serves /usr/bin/python3; a python3 earlier on PATH
    ** may have its own copy. */
    const char *py =
        "for py in python3 /usr/bin/python3; do $py -c 'import prometheus_client' 2>/dev/null && break; done; "
        "$py -c \"import sys\n"
        "from prometheus_client.parser import text_string_to_metric_families as p\n"
        "fams = {f.name: f for f in p(open('/tmp/infer-test-metrics.txt').read())}\n"
        "ok = [s.value for s in fams['infer_requests'].samples if s.labels.get('role') == 'primary']\n"
        "h = fams['infer_time_to_first_token_seconds']\n"
        "cnt = [s.value for s in h.samples if s.name.endswith('_count') and s.labels['role'] == 'primary']\n"
        "assert ok == [200.0] and cnt == [200.0], (ok, cnt)\n"
        "print('    prometheus_client parsed', len(fams), 'metric families')\"";
    int rc = system(py);
    assert_int_equal(rc, 0);
    free(text);
    infer_session_destroy(s);
}

static void test_unload_modes(void **state)
{
    infer_session *s = new_session(INFER_THREADING_CALLER, 64);
    load(s, "1", STORY);
    load(s, "2", STORY);
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "chat";
    rq.version = "1";
    rq.prompt = "Once";
    rq.max_tokens = 50;
    rq.ignore_eos = 1;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    assert_int_equal(infer_model_unload(s, "chat", "1", INFER_UNLOAD_NOWAIT), INFER_EBUSY);
    infer_stats st = { .size = sizeof st };
    assert_int_equal(infer_session_stats(s, &st), INFER_OK);
    assert_int_equal(st.models_resident, 2);
    /* WAIT: runs it to the end (caller mode: inside the call), then frees */
    assert_int_equal(infer_model_unload(s, "chat", "1", INFER_UNLOAD_WAIT), INFER_OK);
    assert_int_equal(infer_session_stats(s, &st), INFER_OK);
    assert_int_equal(st.models_resident, 1);
    int tokens = 0, done = 0;
    infer_event ev[64];
    while (!done) {
        int k = infer_poll(s, ev, 64, 1000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            tokens += ev[i].type == INFER_EVENT_TOKEN;
            if (ev[i].type == INFER_EVENT_DONE) {
                assert_int_equal(ev[i].status, INFER_OK);
                assert_string_equal(ev[i].version, "1");
                done = 1;
            }
        }
    }
    assert_int_equal(tokens, 50); /* nothing dropped */
    rq.version = "1";
    assert_int_equal(infer_submit(s, &rq, &id), INFER_ENOTFOUND);
    infer_session_destroy(s);
}

/* ---------------------------------------------------------------- hot reload under load */

#define N_CONC 200   /* requests streaming at once */
#define N_REQ 600    /* in all: each one that ends is replaced while the flips go on */
#define N_FLIPS 20

typedef struct reloader {
    infer_session *s;
    int errors;
} reloader;

static const char *file_of(int v) { return v % 2 ? STORY : TINY; }

static void reload_thread(void *arg)
{
    reloader *r = arg;
    char ver[16], old[16];
    for (int v = 2; v <= N_FLIPS + 1; v++) {
        snprintf(ver, sizeof ver, "%d", v);
        snprintf(old, sizeof old, "%d", v - 1);
        infer_model_params mp;
        infer_model_params_init(&mp);
        mp.tokenizer_path = strcmp(file_of(v), STORY) == 0 ? shared_path(TOK512) : NULL;
        if (infer_model_load(r->s, "chat", ver, shared_path(file_of(v)), &mp) != INFER_OK) r->errors++;
        infer_route rt[1] = { { ver, 1, 0 } };
        if (infer_route_set(r->s, "chat", rt, 1) != INFER_OK) r->errors++;
        usleep(20000);
        /* the old version finishes what it started, then goes */
        if (infer_model_unload(r->s, "chat", old, INFER_UNLOAD_WAIT) != INFER_OK) r->errors++;
    }
}

static const char *prompts[4] = { "Once upon a time", "The little dog", "Lily wanted to", "One day" };

static void test_hot_reload_under_load(void **state)
{
    /* Each file's greedy answer to each prompt, computed alone. */
    static char want[2][4][2048];
    for (int f = 0; f < 2; f++) {
        infer_session *s = new_session(INFER_THREADING_CALLER, 64);
        load(s, "x", file_of(f + 1));
        for (int p = 0; p < 4; p++) {
            submit(s, prompts[p], 12, NULL, 0);
            size_t tl = 0;
            for (int done = 0; !done;) {
                infer_event ev[32];
                int k = infer_poll(s, ev, 32, 10000);
                for (int i = 0; i < k; i++) {
                    if (ev[i].type == INFER_EVENT_TOKEN) { memcpy(want[f][p] + tl, ev[i].text, ev[i].text_len); tl += ev[i].text_len; }
                    done |= ev[i].type == INFER_EVENT_DONE;
                }
            }
            want[f][p][tl] = 0;
        }
        infer_session_destroy(s);
    }
    assert_string_not_equal(want[0][0], want[1][0]); /* the versions really differ */

    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.queue_capacity = 1024;
    sp.max_running = 256; /* all of them decode together */
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    load(s, "1", file_of(1));
    reloader r = { s, 0 };
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, reload_thread, &r), 0);
    static char got[N_REQ][2048];
    static size_t glen[N_REQ];
    int submitted = 0, done = 0, errors = 0, mismatched = 0, max_conc = 0;
    infer_stats st = { .size = sizeof st };
    while (done < N_REQ) {
        while (submitted < N_REQ && submitted - done < N_CONC) {
            submit(s, prompts[submitted % 4], 12, NULL, submitted);
            submitted++;
        }
        infer_event ev[64];
        int k = infer_poll(s, ev, 64, 10000);
        assert_int_equal(infer_session_stats(s, &st), INFER_OK);
        if (st.running > max_conc) max_conc = (int)st.running;
        assert_true(k >= 0);
        for (int i = 0; i < k; i++) {
            int tag = (int)(intptr_t)ev[i].user_data;
            if (ev[i].type == INFER_EVENT_TOKEN) {
                memcpy(got[tag] + glen[tag], ev[i].text, ev[i].text_len);
                glen[tag] += ev[i].text_len;
            } else if (ev[i].type == INFER_EVENT_DONE) {
                done++;
                if (ev[i].status != INFER_OK) { errors++; continue; }
                got[tag][glen[tag]] = 0;
                int v = atoi(ev[i].version);
                if (strcmp(got[tag], want[(v + 1) % 2][tag % 4]) != 0) mismatched++;
            }
        }
    }
    uv_thread_join(&th);
    assert_int_equal(infer_session_stats(s, &st), INFER_OK);
    printf("    %d requests, %d streaming at once (up to %d running together), over %d reloads and route "
           "flips: %d errors, %d mixed-version answers, %lld models resident after\n",
           N_REQ, N_CONC, max_conc, N_FLIPS, errors, mismatched, (long long)st.models_resident);
    assert_int_equal(r.errors, 0);
    assert_int_equal(errors, 0);
    assert_int_equal(mismatched, 0);
    assert_int_equal(st.models_resident, 1); /* every old version freed */
    assert_int_equal(st.kv_blocks_used, 0);
    infer_session_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ab_split),
        cmocka_unit_test(test_shadow_and_metrics),
        cmocka_unit_test(test_unload_modes),
        cmocka_unit_test(test_hot_reload_under_load),
    };
    return cmocka_run_group_tests_name("serving", tests, NULL, NULL);
}
