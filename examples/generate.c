/*
** infer-generate — stream a completion from a model on the command line.
**
**   infer-generate -m MODEL [-z TOKENIZER] -p PROMPT [-n MAX_NEW_TOKENS] [--temp T]
**                  [--top-p P] [--top-k K] [--min-p P] [--seed S] [-t THREADS]
**                  [--chat [--system TEXT]]
**
** Prints the prompt, then the generated text as it is produced, to stdout (with --chat the
** prompt is a user message rendered with the model's chat template, and only the answer is
** printed); a one-line summary
** (prompt tokens, generated tokens, time to first token, tokens/s) to stderr. With --temp 0
** the output equals karpathy/llama2.c run.c's greedy output for the same model and prompt
** (run.c's -n counts the prompt too: use -n (steps - prompt tokens + 1)).
*/
#include <infer.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: infer-generate -m MODEL -p PROMPT [options]\n"
            "  -m, --model PATH       model file (llama2.c .bin)\n"
            "  -z, --tokenizer PATH   tokenizer (default: tokenizer.bin beside the model)\n"
            "  -p, --prompt TEXT      prompt (default \"\")\n"
            "  -n, --max-tokens N     new tokens at most (default 256)\n"
            "      --temp T           temperature; 0 = greedy (default 0.8)\n"
            "      --top-p P          nucleus sampling (default 0.95; 1 = off)\n"
            "      --top-k K          top-k sampling (default 40; 0 = off)\n"
            "      --min-p P          min-p sampling (default 0.05; 0 = off)\n"
            "      --seed S           sampling seed (default: from the clock)\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "      --chat             PROMPT is a user message: render it with the model's chat template\n"
            "      --system TEXT      a system message before it (with --chat)\n"
            "  -h, --help             this text\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parse a number or exit with a message naming the option. */
static double num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || *end || x < lo || x > hi) {
        fprintf(stderr, "infer-generate: %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi, v ? v : "");
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *prompt = "", *system = NULL;
    int chat = 0;
    infer_request rq;
    infer_request_init(&rq);
    rq.max_tokens = 256;
    rq.seed = (uint64_t)time(NULL);
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--chat")) { chat = 1; continue; }
        if (a[0] == '-' && !v) {
            fprintf(stderr, "infer-generate: %s needs a value (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { model = v; i++; }
        else if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { tokenizer = v; i++; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { prompt = v; i++; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) { rq.max_tokens = (int)num(a, v, 1, 1e9); i++; }
        else if (!strcmp(a, "--temp")) { rq.temperature = (float)num(a, v, 0, 100); i++; }
        else if (!strcmp(a, "--top-p")) { rq.top_p = (float)num(a, v, 1e-6, 1); i++; }
        else if (!strcmp(a, "--top-k")) { rq.top_k = (int)num(a, v, 0, 1e9); i++; }
        else if (!strcmp(a, "--min-p")) { rq.min_p = (float)num(a, v, 0, 1); i++; }
        else if (!strcmp(a, "--seed")) { rq.seed = (uint64_t)num(a, v, 0, 1.8e19); i++; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { threads = (int)num(a, v, 0, 1024); i++; }
        else if (!strcmp(a, "--system")) { system = v; i++; }
        else {
            fprintf(stderr, "infer-generate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "infer-generate: -m MODEL is required\n");
        usage(stderr);
        return 2;
    }

    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.n_threads = threads;
    infer_session *s;
    if (infer_session_create(&sp, &s) != INFER_OK) {
        fprintf(stderr, "infer-generate: %s\n", infer_last_error(NULL));
        return 1;
    }
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tokenizer;
    infer_status st = infer_model_load(s, "model", NULL, model, &mp);
    if (st != INFER_OK) {
        fprintf(stderr, "infer-generate: cannot load the model: %s (%s)\n", infer_last_error(s), infer_status_str(st));
        infer_session_destroy(s);
        return 1;
    }
    rq.model = "model";
    infer_message msgs[2];
    size_t n_msgs = 0;
    if (chat) {
        if (system) msgs[n_msgs++] = (infer_message){ "system", system };
        msgs[n_msgs++] = (infer_message){ "user", prompt };
        rq.messages = msgs;
        rq.n_messages = n_msgs;
    } else {
        rq.prompt = prompt;
    }
    infer_request_id id;
    double t0 = now_s(), t_first = 0;
    st = infer_submit(s, &rq, &id);
    if (st != INFER_OK) {
        fprintf(stderr, "infer-generate: %s (%s)\n", infer_last_error(s), infer_status_str(st));
        infer_session_destroy(s);
        return 1;
    }
    if (!chat) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    int rc = 0, done = 0, n_gen = 0, n_prompt = 0;
    infer_event ev[32];
    while (!done) {
        int n = infer_poll(s, ev, 32, -1);
        if (n < 0) { fprintf(stderr, "infer-generate: %s\n", infer_last_error(s)); rc = 1; break; }
        for (int i = 0; i < n; i++) {
            if (ev[i].type == INFER_EVENT_TOKEN) {
                if (t_first == 0) t_first = now_s();
                fwrite(ev[i].text, 1, ev[i].text_len, stdout);
                fflush(stdout);
            } else if (ev[i].type == INFER_EVENT_DONE) {
                done = 1;
                n_gen = ev[i].n_generated;
                n_prompt = ev[i].n_prompt_tokens;
                if (ev[i].status != INFER_OK) {
                    fprintf(stderr, "\ninfer-generate: generation failed: %s\n", infer_status_str(ev[i].status));
                    rc = 1;
                }
            }
        }
    }
    double t1 = now_s();
    fputc('\n', stdout);
    fflush(stdout);
    double decode_s = t1 - t_first;
    fprintf(stderr, "prompt %d tokens, generated %d tokens, time to first token %.1f ms, %.1f tokens/s\n",
            n_prompt, n_gen, (t_first - t0) * 1e3, n_gen > 1 && decode_s > 0 ? (n_gen - 1) / decode_s : 0.0);
    infer_session_destroy(s);
    return rc;
}
