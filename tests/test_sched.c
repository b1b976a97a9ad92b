/*
** test_sched.c — scheduling policy through the public API on stories260K: priorities,
** deadlines, per-model concurrency limits, chunked prefill step accounting.
*/
#include "test_util.h"

#include <infer.h>

static infer_session *open_session(int max_running, int max_batch_tokens, int model_limit)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    if (max_running) sp.max_running = max_running;
    if (max_batch_tokens) sp.max_batch_tokens = max_batch_tokens;
    infer_session *s = NULL;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = shared_path("models/tok512.bin");
    mp.max_running = model_limit;
    assert_int_equal(infer_model_load(s, "story", NULL, shared_path("models/stories260K.bin"), &mp), INFER_OK);
    return s;
}

static infer_request_id submit(infer_session *s, const char *prompt, int max_tokens, int priority,
                               int64_t deadline_ms, intptr_t tag)
{
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "story";
    rq.prompt = prompt;
    rq.max_tokens = max_tokens;
    rq.temperature = 0;
    rq.ignore_eos = 1;
    rq.priority = priority;
    rq.deadline_ms = deadline_ms;
    rq.user_data = (void *)tag;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    return id;
}

/* Poll to the end; record the order in which requests produced their first token and
** their final statuses. */
static void run_all(infer_session *s, int n, int *first_order, infer_status *status)
{
    int started[64] = { 0 }, n_first = 0, left = n;
    infer_event ev[64];
    while (left > 0) {
        int k = infer_poll(s, ev, 64, 20000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            int tag = (int)(intptr_t)ev[i].user_data;
            if (ev[i].type == INFER_EVENT_TOKEN && !started[tag]) {
                started[tag] = 1;
                first_order[n_first++] = tag;
            } else if (ev[i].type == INFER_EVENT_DONE) {
                status[tag] = ev[i].status;
                left--;
            }
        }
    }
}

static void test_priority_order(void **state)
{
    /* One sequence at a time: the order of first tokens is the admission order. */
    infer_session *s = open_session(1, 0, 0);
    submit(s, "Once upon a time", 5, 0, 0, 0);
    submit(s, "The little dog", 5, 0, 0, 1);
    submit(s, "Lily wanted to", 5, 5, 0, 2);
    submit(s, "Tom and Sue", 5, 0, 0, 3);
    submit(s, "The cat", 5, 9, 0, 4);
    submit(s, "A big ball", 5, 5, 0, 5);
    int order[8];
    infer_status st[8];
    run_all(s, 6, order, st);
    /* Everything was queued before the first step, so admission goes strictly by priority,
    ** then arrival: 4 (p9), 2, 5 (p5), 0, 1, 3 (p0). */
    int want[6] = { 4, 2, 5, 0, 1, 3 };
    assert_memory_equal(order, want, sizeof want);
    for (int i = 0; i < 6; i++) assert_int_equal(st[i], INFER_OK);
    assert_pool_free(s);
    infer_session_destroy(s);
}

static void test_deadlines(void **state)
{
    infer_session *s = open_session(1, 0, 0);
    /* 500 tokens take well over 1 ms on any machine: the second request, with a 1 ms
    ** deadline, cannot be admitted in time. */
    submit(s, "Once upon a time", 500, 0, 0, 0);         /* occupies the only slot */
    submit(s, "The little dog", 5, 0, 1, 1);             /* times out in the queue */
    submit(s, "Lily wanted to", 400, 0, 0, 2);
    int order[8];
    infer_status st[8];
    run_all(s, 3, order, st);
    assert_int_equal(st[0], INFER_OK);
    assert_int_equal(st[1], INFER_ETIMEDOUT);
    assert_int_equal(st[2], INFER_OK);

    /* and while running */
    submit(s, "Once upon a time", 500, 0, 2, 0);
    run_all(s, 1, order, st);
    assert_int_equal(st[0], INFER_ETIMEDOUT);
    infer_stats stats = { .size = sizeof stats };
    assert_int_equal(infer_session_stats(s, &stats), INFER_OK);
    assert_int_equal(stats.kv_blocks_used, 0);
    infer_session_destroy(s);
}

static void test_model_concurrency_limit(void **state)
{
    infer_session *s = open_session(0, 0, 2);
    for (int i = 0; i < 6; i++) submit(s, "Once upon a time", 20, 0, 0, i);
    int order[8];
    infer_status st[8];
    run_all(s, 6, order, st);
    infer_stats stats = { .size = sizeof stats };
    assert_int_equal(infer_session_stats(s, &stats), INFER_OK);
    assert_int_equal(stats.max_batch_seqs, 2);
    assert_int_equal(stats.kv_blocks_used, 0);
    infer_session_destroy(s);
}

static void test_chunked_prefill_does_not_stall_decodes(void **state)
{
    /* Budget 16 tokens a step: 8 decoding sequences + a ~300-token prompt. The prompt is
    ** ingested in chunks of at most 16 - 8 = 8 tokens while every step still decodes all 8. */
    infer_session *s = open_session(0, 16, 0);
    for (int i = 0; i < 8; i++) submit(s, "Once", 200, 0, 0, i);
    /* get them all decoding */
    infer_event ev[64];
    int tokens = 0;
    while (tokens < 8 * 3) {
        int k = infer_poll(s, ev, 64, 10000);
        for (int i = 0; i < k; i++) tokens += ev[i].type == INFER_EVENT_TOKEN;
    }
    char *longp = malloc(4000);
    longp[0] = 0;
    for (int i = 0; i < 60; i++) strcat(longp, "Lily saw a dog. ");
    submit(s, longp, 4, 0, 0, 8);
    free(longp);
    infer_stats a = { .size = sizeof a }, b = { .size = sizeof b };
    assert_int_equal(infer_session_stats(s, &a), INFER_OK);
    /* Count, per step, the decode tokens of the 8 while the long prompt is being ingested. */
    int first_long = 0, per_seq[9] = { 0 };
    long steps_before = (long)a.steps;
    while (!first_long) {
        int k = infer_poll(s, ev, 64, 10000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            int tag = (int)(intptr_t)ev[i].user_data;
            if (ev[i].type != INFER_EVENT_TOKEN) continue;
            per_seq[tag]++;
            if (tag == 8) first_long = 1;
        }
    }
    assert_int_equal(infer_session_stats(s, &b), INFER_OK);
    long steps = (long)b.steps - steps_before;
    printf("    long prompt ingested over %ld steps; decodes per sequence meanwhile:", steps);
    for (int i = 0; i < 8; i++) printf(" %d", per_seq[i]);
    printf("\n");
    assert_true(steps >= 300 / 8);                 /* it was chunked */
    for (int i = 0; i < 8; i++) assert_true(per_seq[i] >= steps - 1); /* one token every step */
    /* let all 9 finish: every block comes back */
    int left = 9;
    while (left > 0) {
        int k = infer_poll(s, ev, 64, 20000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) left -= ev[i].type == INFER_EVENT_DONE;
    }
    assert_pool_free(s);
    infer_session_destroy(s);
}

/* Generate greedily and return the tokens (n) for a prompt on session s. */
static int generate(infer_session *s, const char *prompt, int max_tokens, int32_t *out)
{
    submit(s, prompt, max_tokens, 0, 0, 0);
    int n = 0, done = 0;
    infer_event ev[64];
    while (!done) {
        int k = infer_poll(s, ev, 64, 20000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            if (ev[i].type == INFER_EVENT_TOKEN) out[n++] = ev[i].token;
            if (ev[i].type == INFER_EVENT_DONE) {
                assert_int_equal(ev[i].status, INFER_OK);
                done = 1;
            }
        }
    }
    return n;
}

static void test_prefix_cache(void **state)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    sp.prefix_cache = 0;
    infer_session *cold;
    assert_int_equal(infer_session_create(&sp, &cold), INFER_OK);
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = shared_path("models/tok512.bin");
    assert_int_equal(infer_model_load(cold, "story", NULL, shared_path("models/stories260K.bin"), &mp), INFER_OK);
    infer_session *warm = open_session(0, 0, 0);

    char system[2048] = "";
    for (int i = 0; i < 12; i++) strcat(system, "Tom had a big red ball and a small dog. ");
    const char *tails[3] = { "One day, Tom", "The dog", "Lily saw" };
    int32_t a[128], b[128];
    for (int t = 0; t < 3; t++) {
        char prompt[4096];
        snprintf(prompt, sizeof prompt, "%s%s", system, tails[t]);
        int na = generate(cold, prompt, 40, a);
        int nb = generate(warm, prompt, 40, b);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, (size_t)na * sizeof(int32_t));
    }
    infer_stats st = { .size = sizeof st };
    assert_int_equal(infer_session_stats(warm, &st), INFER_OK);
    size_t n_sys;
    assert_int_equal(infer_tokenize(warm, "story", NULL, system, 1, NULL, 0, &n_sys), INFER_OK);
    printf("    shared prefix of %zu tokens: %lld prompt tokens from the cache, %lld computed; %lld blocks cached\n",
           n_sys, (long long)st.prefix_hit_tokens, (long long)st.tokens_prompt, (long long)st.kv_blocks_cached);
    /* the 2nd and 3rd requests take the system prompt's full blocks */
    assert_true(st.prefix_hit_tokens >= 2 * (long long)(n_sys / 16) * 16 - 32);
    assert_int_equal(st.kv_blocks_used, 0);
    infer_stats sc = { .size = sizeof sc };
    assert_int_equal(infer_session_stats(cold, &sc), INFER_OK);
    assert_int_equal(sc.prefix_hit_tokens, 0);
    infer_session_destroy(cold);
    infer_session_destroy(warm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_model_concurrency_limit),
        cmocka_unit_test(test_chunked_prefill_does_not_stall_decodes),
        cmocka_unit_test(test_prefix_cache),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
