/*
** test_api.c — the public API end to end on stories260K: sessions, submit/poll/cancel,
** continuous batching (batched == alone, from several threads), queue limits, errors,
** the notification fd, both threading modes, preemption under a tiny KV pool.
*/
#include "test_util.h"

#include <infer.h>
#include <poll.h>
#include <uv.h>

#define MODEL "models/stories260K.bin"
#define TOKENIZER "models/tok512.bin"

static infer_session *open_session(infer_threading mode, size_t kv_bytes, int queue_cap)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = mode;
    if (kv_bytes) sp.kv_cache_bytes = kv_bytes;
    if (queue_cap) sp.queue_capacity = queue_cap;
    infer_session *s = NULL;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = shared_path(TOKENIZER);
    infer_status st = infer_model_load(s, "story", NULL, shared_path(MODEL), &mp);
    if (st) fprintf(stderr, "load: %s\n", infer_last_error(s));
    assert_int_equal(st, INFER_OK);
    return s;
}

typedef struct result {
    int32_t tokens[512];
    int n;
    char text[4096];
    size_t text_len;
    infer_status status;
    infer_finish finish;
    int done;
} result;

static void request_defaults(infer_request *rq, const char *prompt, int max_tokens, float temp, uint64_t seed)
{
    infer_request_init(rq);
    rq->model = "story";
    rq->prompt = prompt;
    rq->max_tokens = max_tokens;
    rq->temperature = temp;
    rq->seed = seed;
}

/* Poll until every request in ids[] is done, filling res[] (matched by user_data index). */
static void collect(infer_session *s, result *res, int n)
{
    int left = n;
    infer_event ev[64];
    while (left > 0) {
        int k = infer_poll(s, ev, 64, 20000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            result *r = &res[(intptr_t)ev[i].user_data];
            assert_false(r->done);
            if (ev[i].type == INFER_EVENT_TOKEN) {
                r->tokens[r->n++] = ev[i].token;
                memcpy(r->text + r->text_len, ev[i].text, ev[i].text_len);
                r->text_len += ev[i].text_len;
            } else if (ev[i].type == INFER_EVENT_DONE) {
                r->status = ev[i].status;
                r->finish = ev[i].finish;
                assert_int_equal(ev[i].n_generated, r->n);
                r->done = 1;
                left--;
            }
        }
    }
}

static void run_alone(infer_session *s, const char *prompt, int max_tokens, float temp, uint64_t seed, result *r)
{
    memset(r, 0, sizeof *r);
    infer_request rq;
    request_defaults(&rq, prompt, max_tokens, temp, seed);
    rq.user_data = (void *)(intptr_t)0;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    collect(s, r, 1);
    assert_int_equal(r->status, INFER_OK);
}

/* ------------------------------------------------------------------------------ basics */

static void test_version_and_status(void **state)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", INFER_VERSION_MAJOR, INFER_VERSION_MINOR, INFER_VERSION_PATCH);
    assert_string_equal(infer_version(), want);
    assert_string_equal(infer_status_str(INFER_OK), "INFER_OK");
    assert_string_equal(infer_status_str(INFER_EFORMAT), "INFER_EFORMAT");
    assert_string_equal(infer_status_str(INFER_EINTERNAL), "INFER_EINTERNAL");
    for (int c = INFER_EINTERNAL; c <= INFER_OK; c++) assert_string_not_equal(infer_status_str((infer_status)c), "INFER_UNKNOWN");
    assert_string_equal(infer_status_str((infer_status)-999), "INFER_UNKNOWN");
}

static void test_bad_params(void **state)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.max_running = 0;
    infer_session *s = (infer_session *)1;
    assert_int_equal(infer_session_create(&sp, &s), INFER_EINVAL);
    assert_null(s);
    assert_non_null(strstr(infer_last_error(NULL), "max_running"));
    infer_session_params_init(&sp);
    sp.size = sizeof sp + 8; /* a newer header than this library */
    assert_int_equal(infer_session_create(&sp, &s), INFER_EINVAL);
    infer_session_destroy(NULL); /* a no-op */
}

static void test_errors(void **state)
{
    infer_session *s = open_session(INFER_THREADING_CALLER, 0, 0);
    infer_request rq;
    infer_request_id id;
    request_defaults(&rq, "hi", 4, 0, 0);
    rq.model = "nope";
    assert_int_equal(infer_submit(s, &rq, &id), INFER_ENOTFOUND);
    assert_non_null(strstr(infer_last_error(s), "nope"));
    size_t n;
    assert_int_equal(infer_tokenize(s, "nope", NULL, "x", 1, NULL, 0, &n), INFER_ENOTFOUND);
    assert_int_equal(infer_model_unload(s, "nope", NULL, INFER_UNLOAD_WAIT), INFER_ENOTFOUND);
    assert_int_equal(infer_cancel(s, 12345), INFER_ENOTFOUND);

    /* a prompt over the 512-token context */
    char *big = malloc(8000);
    big[0] = 0;
    for (int i = 0; i < 300; i++) strcat(big, "a b ");
    request_defaults(&rq, big, 4, 0, 0);
    assert_int_equal(infer_submit(s, &rq, &id), INFER_EINVAL);
    assert_non_null(strstr(infer_last_error(s), "512"));
    free(big);

    request_defaults(&rq, "hi", 0, 0, 0);
    assert_int_equal(infer_submit(s, &rq, &id), INFER_EINVAL);
    request_defaults(&rq, "hi", 4, -1, 0);
    assert_int_equal(infer_submit(s, &rq, &id), INFER_EINVAL);
    request_defaults(&rq, NULL, 4, 0, 0);
    assert_int_equal(infer_submit(s, &rq, &id), INFER_EINVAL);

    /* loading the same name+version twice */
    assert_int_equal(infer_model_load(s, "story", NULL, shared_path(MODEL), NULL), INFER_EINVAL);
    /* a model param out of range is named */
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.weights_f32 = 2;
    assert_int_equal(infer_model_load(s, "story2", NULL, shared_path(MODEL), &mp), INFER_EINVAL);
    assert_non_null(strstr(infer_last_error(s), "weights_f32"));
    assert_pool_free(s);
    infer_session_destroy(s);
}

static void test_queue_full(void **state)
{
    /* Caller-driven: nothing runs until we poll, so the queue fills deterministically. */
    infer_session *s = open_session(INFER_THREADING_CALLER, 0, 3);
    infer_request rq;
    infer_request_id id;
    request_defaults(&rq, "Once", 8, 0, 0);
    result res[3];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 3; i++) {
        rq.user_data = (void *)(intptr_t)i;
        assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    }
    assert_int_equal(infer_submit(s, &rq, &id), INFER_EBUSY);
    assert_non_null(strstr(infer_last_error(s), "queue"));
    collect(s, res, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(res[i].n, 8);
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK); /* room again */
    rq.user_data = 0;
    memset(res, 0, sizeof res);
    collect(s, res, 1);
    assert_pool_free(s);
    infer_session_destroy(s);
}

static void test_finish_reasons(void **state)
{
    infer_session *s = open_session(INFER_THREADING_CALLER, 0, 0);
    result r;
    run_alone(s, "Once upon a time", 7, 0, 0, &r);
    assert_int_equal(r.n, 7);
    assert_int_equal(r.finish, INFER_FINISH_LENGTH);

    /* greedy continuation is "..., there was a little girl named Lily. ..." (golden) */
    infer_request rq;
    request_defaults(&rq, "Once upon a time", 60, 0, 0);
    const char *stops[] = { "girl" };
    rq.stop = stops;
    rq.n_stop = 1;
    infer_request_id id;
    memset(&r, 0, sizeof r);
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    collect(s, &r, 1);
    assert_int_equal(r.finish, INFER_FINISH_STOP);
    r.text[r.text_len] = 0;
    assert_string_equal(r.text, ", there was a little ");

    /* a stop token: the id of " there"'s successor in the golden run is 383 (" was"?) -
    ** take the 3rd generated token of the plain run instead of hard-coding */
    result plain;
    run_alone(s, "Once upon a time", 10, 0, 0, &plain);
    request_defaults(&rq, "Once upon a time", 10, 0, 0);
    rq.stop_tokens = &plain.tokens[2];
    rq.n_stop_tokens = 1;
    memset(&r, 0, sizeof r);
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    collect(s, &r, 1);
    assert_int_equal(r.finish, INFER_FINISH_STOP);
    assert_int_equal(r.n, 3);
    assert_pool_free(s);
    infer_session_destroy(s);
}

/* ----------------------------------------------------------------- batched == alone */

#define N_PROMPTS 16
static const char *prompts[N_PROMPTS] = {
    "Once upon a time", "", "The little dog", "Lily wanted to", "One day, a girl named",
    "Tom and Sue", "The sun was", "A big red ball", "In the park", "Mom said",
    "The cat", "He ran to the", "She had a toy", "They played", "It was a cold day", "Ben liked",
};

typedef struct submitter {
    infer_session *s;
    int first, count;
    float temp;
} submitter;

static void submit_thread(void *arg)
{
    submitter *sb = arg;
    for (int i = sb->first; i < sb->first + sb->count; i++) {
        infer_request rq;
        request_defaults(&rq, prompts[i], 48, sb->temp, 1000 + (uint64_t)i);
        rq.user_data = (void *)(intptr_t)i;
        infer_request_id id;
        assert_int_equal(infer_submit(sb->s, &rq, &id), INFER_OK);
    }
}

static void batched_vs_alone(float temp)
{
    infer_session *s = open_session(INFER_THREADING_ENGINE, 0, 0);
    static result alone[N_PROMPTS], batched[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) run_alone(s, prompts[i], 48, temp, 1000 + (uint64_t)i, &alone[i]);

    memset(batched, 0, sizeof batched);
    submitter sb[4];
    uv_thread_t th[4];
    for (int t = 0; t < 4; t++) {
        sb[t] = (submitter){ s, t * 4, 4, temp };
        assert_int_equal(uv_thread_create(&th[t], submit_thread, &sb[t]), 0);
    }
    for (int t = 0; t < 4; t++) uv_thread_join(&th[t]);
    collect(s, batched, N_PROMPTS);
    int differing = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        assert_int_equal(batched[i].status, INFER_OK);
        assert_int_equal(batched[i].n, alone[i].n);
        assert_memory_equal(batched[i].tokens, alone[i].tokens, (size_t)alone[i].n * sizeof(int32_t));
        for (int j = 0; j < N_PROMPTS; j++)
            differing += j != i && (alone[i].n != alone[j].n || memcmp(alone[i].tokens, alone[j].tokens, (size_t)alone[i].n * 4));
    }
    assert_true(differing > 0); /* the prompts really are different */
    infer_stats st = { .size = sizeof st };
    assert_int_equal(infer_session_stats(s, &st), INFER_OK);
    printf("    temp %.1f: 16 requests from 4 threads; largest step batch %lld sequences\n", (double)temp,
           (long long)st.max_batch_seqs);
    assert_true(st.max_batch_seqs > 1); /* they really were batched */
    assert_pool_free(s);
    infer_session_destroy(s);
}

static void test_batched_equals_alone_greedy(void **state) { batched_vs_alone(0.0f); }
static void test_batched_equals_alone_seeded(void **state) { batched_vs_alone(1.0f); }

static void test_seed_reproducible(void **state)
{
    infer_session *s = open_session(INFER_THREADING_CALLER, 0, 0);
    result a, b, c;
    run_alone(s, "The cat", 40, 1.0f, 7, &a);
    run_alone(s, "The cat", 40, 1.0f, 7, &b);
    run_alone(s, "The cat", 40, 1.0f, 8, &c);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.tokens, b.tokens, (size_t)a.n * 4);
    assert_true(a.n != c.n || memcmp(a.tokens, c.tokens, (size_t)a.n * 4) != 0);
    infer_session_destroy(s);
}

/* --------------------------------------------------------------------- cancel, fd, ... */

static void test_cancel_midstream(void **state)
{
    infer_session *s = open_session(INFER_THREADING_ENGINE, 0, 0);
    infer_request rq;
    request_defaults(&rq, "Once upon a time", 400, 0.8f, 1);
    rq.ignore_eos = 1;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    int tokens = 0, done = 0, cancelled = 0;
    infer_event ev[16];
    while (!done) {
        int k = infer_poll(s, ev, 16, 10000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            if (ev[i].type == INFER_EVENT_TOKEN && ++tokens == 5) {
                assert_int_equal(infer_cancel(s, id), INFER_OK);
                cancelled = 1;
            }
            if (ev[i].type == INFER_EVENT_DONE) {
                assert_true(cancelled);
                assert_int_equal(ev[i].status, INFER_ECANCELED);
                assert_int_equal(ev[i].finish, INFER_FINISH_ERROR);
                done = 1;
            }
        }
    }
    assert_true(tokens < 400);
    assert_int_equal(infer_cancel(s, id), INFER_ENOTFOUND); /* already finished */
    assert_pool_free(s);
    infer_session_destroy(s);
}

static int fd_readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void test_fd_notification(void **state)
{
    infer_session *s = open_session(INFER_THREADING_ENGINE, 0, 0);
    int fd = infer_session_fd(s);
    assert_true(fd >= 0);
    assert_false(fd_readable(fd, 50)); /* nothing queued */
    infer_request rq;
    request_defaults(&rq, "Once", 3, 0, 0);
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    assert_true(fd_readable(fd, 5000));
    int done = 0;
    infer_event ev[16];
    while (!done) {
        assert_true(fd_readable(fd, 5000));
        int k = infer_poll(s, ev, 16, 0);
        for (int i = 0; i < k; i++) done |= ev[i].type == INFER_EVENT_DONE;
    }
    assert_false(fd_readable(fd, 50)); /* drained */
    infer_session_destroy(s);
}

static void test_two_sessions(void **state)
{
    infer_session *a = open_session(INFER_THREADING_ENGINE, 0, 0);
    infer_session *b = open_session(INFER_THREADING_CALLER, 0, 0);
    result ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    infer_request rq;
    request_defaults(&rq, "The little dog", 30, 0, 0);
    infer_request_id id;
    assert_int_equal(infer_submit(a, &rq, &id), INFER_OK);
    assert_int_equal(infer_submit(b, &rq, &id), INFER_OK);
    assert_int_equal(infer_model_unload(b, "story", NULL, INFER_UNLOAD_CANCEL), INFER_OK); /* only b's model */
    collect(a, &ra, 1);
    collect(b, &rb, 1);
    assert_int_equal(ra.status, INFER_OK);
    assert_int_equal(rb.status, INFER_ECANCELED);
    assert_int_equal(ra.n, 30);
    infer_session_destroy(a);
    infer_session_destroy(b);
}

static void test_destroy_in_flight(void **state)
{
    infer_session *s = open_session(INFER_THREADING_ENGINE, 0, 0);
    infer_request rq;
    request_defaults(&rq, "Once upon a time", 500, 0.8f, 3);
    rq.ignore_eos = 1;
    infer_request_id id;
    for (int i = 0; i < 8; i++) assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    infer_event ev[4];
    assert_true(infer_poll(s, ev, 4, 10000) > 0);
    uint64_t t0 = uv_hrtime();
    infer_session_destroy(s); /* leaks would show under make asan */
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    printf("    destroy with 8 requests in flight took %.2f ms\n", ms);
    assert_true(ms < 1000);
}

static void test_caller_equals_engine(void **state)
{
    infer_session *a = open_session(INFER_THREADING_ENGINE, 0, 0);
    infer_session *b = open_session(INFER_THREADING_CALLER, 0, 0);
    result ra, rb;
    run_alone(a, "Tom and Sue", 50, 0.9f, 11, &ra);
    run_alone(b, "Tom and Sue", 50, 0.9f, 11, &rb);
    assert_int_equal(ra.n, rb.n);
    assert_memory_equal(ra.tokens, rb.tokens, (size_t)ra.n * 4);
    infer_session_destroy(a);
    infer_session_destroy(b);
}

static void test_preemption_tiny_pool(void **state)
{
    /* stories260K: 5 layers x 2 x 16 tokens x kv_dim 32 x 4 bytes = 20480 bytes a block.
    ** 12 blocks = 192 positions; 6 requests of ~5 + 60 tokens need 5 blocks each (30). */
    infer_session *big = open_session(INFER_THREADING_CALLER, 0, 0);
    infer_session *tiny = open_session(INFER_THREADING_CALLER, 12 * 20480, 0);
    static result want[6], got[6];
    for (int i = 0; i < 6; i++) run_alone(big, prompts[i], 60, 0, 0, &want[i]);
    memset(got, 0, sizeof got);
    for (int i = 0; i < 6; i++) {
        infer_request rq;
        request_defaults(&rq, prompts[i], 60, 0, 0);
        rq.user_data = (void *)(intptr_t)i;
        infer_request_id id;
        assert_int_equal(infer_submit(tiny, &rq, &id), INFER_OK);
    }
    collect(tiny, got, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(got[i].status, INFER_OK);
        assert_int_equal(got[i].n, want[i].n);
        assert_memory_equal(got[i].tokens, want[i].tokens, (size_t)want[i].n * 4);
    }
    infer_stats st = { .size = sizeof st };
    assert_int_equal(infer_session_stats(tiny, &st), INFER_OK);
    printf("    12-block pool: 6 requests finished, %lld preemptions, %lld blocks total\n",
           (long long)st.preempted, (long long)st.kv_blocks_total);
    assert_int_equal(st.kv_blocks_total, 12);
    assert_pool_free(tiny);

    /* a request that alone needs more than the pool */
    infer_request rq;
    request_defaults(&rq, "Once", 300, 0, 0);
    infer_request_id id;
    assert_int_equal(infer_submit(tiny, &rq, &id), INFER_ENOMEM);
    assert_non_null(strstr(infer_last_error(tiny), "KV blocks"));
    infer_session_destroy(big);
    infer_session_destroy(tiny);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_status),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_finish_reasons),
        cmocka_unit_test(test_batched_equals_alone_greedy),
        cmocka_unit_test(test_batched_equals_alone_seeded),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_cancel_midstream),
        cmocka_unit_test(test_fd_notification),
        cmocka_unit_test(test_two_sessions),
        cmocka_unit_test(test_destroy_in_flight),
        cmocka_unit_test(test_caller_equals_engine),
        cmocka_unit_test(test_preemption_tiny_pool),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
