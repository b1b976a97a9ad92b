/*
** serve_load — a load generator that links libinfer: the "embedded benchmarking harness" use.
**
** What it measures, per run (one session, its engine thread, requests through <infer.h> only):
**  - throughput: requests completed per second and output tokens per second, in a steady window;
**  - latency per request, at p50/p90/p99: TTFT (submit -> first TOKEN event), TPOT (time per
**    output token after the first: (t_done - t_first) / (n_generated - 1)) and end-to-end
**    (submit -> DONE);
**  - from infer_session_stats: preemptions, prefix-cache hit rate (prompt tokens taken from the
**    cache / (those + prompt tokens computed)), sequences per step, and the scheduler's host
**    overhead: sched_ns per step and sched_ns / (sched_ns + forward_ns).
**
** Load:
**  - open loop: Poisson arrivals at --rate requests/s (exponential gaps from a fixed-seed PRNG),
**    submitted by a generator thread at their arrival times whatever the engine's state, so
**    queueing delay shows up in TTFT as it would for independent users;
**  - closed loop: --clients N, each submitting its next request as soon as its last one ends
**    (the poller does it on the DONE event): the engine always holds N requests.
**  - --sweep: max throughput (closed loop, --max-clients, default = max_running = 64), an
**    unloaded baseline (closed loop, 1 client), then open loop at --loads percent of the max
**    (default 20,40,60,80,100). Goal of the issue: p99 TTFT at 80% <= 2x unloaded TTFT, taken
**    like for like as the unloaded run's p99 (same prompt lengths; its median is shown too).
**    The max-throughput run with 64 clients is also the scheduling overhead measurement "at
**    64 running sequences" (goal < 1% on CPU, < 3% on a GPU). Max-throughput runs are repeated (--repeat)
**    and the best counts: on a shared machine other processes only ever slow a run down.
**  - --prefix-compare: max throughput with a 50% shared system prefix, in a session with the
**    prefix cache on and one with it off (the session parameter), runs alternating between
**    them; goal: on/off >= 1.5x. Its workload is its own (--prefix-prompt-len,
**    --prefix-output-len): a RAG / chat-with-a-system-prompt shape, prompts of 512-1024 tokens
**    whose first half (of the mean) is the same system prompt, and chat-length answers
**    (sharegpt:32). Prefix caching only removes prompt work, so the gain it can give depends on
**    the share of prompt work in the whole; with the sweep's short chat prompts (sharegpt:64,
**    decode-dominated) the same cache gives about 1.1x.
**
** Workload: prompt and output lengths (in tokens) are drawn per request from a distribution
** (fixed, uniform, log-normal, or a ShareGPT-like mix of two log-normals) with a PRNG keyed by
** --seed and the request's index, so every run of the program sends the same requests. Prompts
** are random words of the model's own vocabulary (pieces that encode to one token on their own,
** or to a few where the vocabulary is small); each text is checked with infer_tokenize and
** rebuilt longer or shorter until the count (BOS included) is the drawn length. With --prefix-pct P every prompt starts with the
** same fixed word sequence of P% of the mean prompt length; the rest is unique per request
** (runs use disjoint request indices, so no run hits blocks cached by another). Outputs are
** greedy with ignore_eos, so each request generates exactly its drawn length.
**
** Timing: CLOCK_MONOTONIC on the polling thread when infer_poll returns the event. Duration
** runs discard the first --warmup seconds (default 15%): throughput counts completions and
** tokens inside [warmup, duration], latency takes the requests submitted in it, and the
** engine counters are snapshots at both ends. Arrivals stop at --duration; what is in flight
** then drains (and is cancelled after a timeout). Each session first runs a few requests
** unmeasured (page faults, thread pools). Duration runs go on (up to 4x) until about
** --min-requests are measured, so that p99s mean something at low rates. The CPU time other
** processes took during each window is reported ("others", in cores): on a shared machine it
** explains slow runs, and a run disturbed by more than --busy-limit cores is run again (up to
** --retries times; the least disturbed counts).
**
** Model: by default a synthetic llama2.c checkpoint of the stories15M shape (bench_util.h; the
** speed of an fp32 forward pass does not depend on the values) with the Llama-2 tokenizer from
** ../shared/models ($INFER_SHARED); the file is unlinked once open and loaded through
** /proc/self/fd, so nothing is left behind. --model PATH loads any model the library loads.
**
** Output: a progress line on stderr while running; tables and goal verdicts on stdout; one JSON
** line per run plus one for the goals to -o (default build/bench/serve_load.jsonl); and, when
** gnuplot is installed, a PNG of p99 TTFT and throughput against offered load (--png).
*/
#define PROG "serve_load" /* before bench_util.h: its messages start with it */

#include <infer.h>

#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOADS 16
#define MAX_RUNS (MAX_LOADS + 8)
#define EV_BATCH 256

/* ------------------------------------------------------------------- length distributions */

typedef enum { DIST_FIXED, DIST_UNIFORM, DIST_LOGNORMAL, DIST_SHAREGPT } dist_kind;

typedef struct len_dist {
    dist_kind kind;
    double a, b;   /* fixed: a; uniform: [a, b]; lognormal: mean a, sigma b; sharegpt: mean a */
    int lo, hi;    /* draws are clipped to [lo, hi] */
    char spec[64];
} len_dist;

/* A uniform double in (0, 1). */
static double rng_unit(uint64_t *s)
{
    return ((double)(bench_rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* A standard normal draw (Box-Muller). */
static double rng_normal(uint64_t *s)
{
    double u = rng_unit(s), v = rng_unit(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* exp(N(mu, sigma)) with mu chosen so that the mean is `mean`. */
static double lognormal(uint64_t *s, double mean, double sigma)
{
    return exp(log(mean) - 0.5 * sigma * sigma + sigma * rng_normal(s));
}

static int dist_draw(const len_dist *d, uint64_t *s)
{
    double x;
    switch (d->kind) {
    case DIST_FIXED: x = d->a; break;
    case DIST_UNIFORM: x = d->a + floor(rng_unit(s) * (d->b - d->a + 1)); break;
    case DIST_LOGNORMAL: x = lognormal(s, d->a, d->b); break;
    default:
        /* ShareGPT-like: most turns short, a quarter long, both log-normal (mean 0.75 * 0.6 +
        ** 0.25 * 2.2 = 1 times the stated mean, before clipping). */
        x = rng_unit(s) < 0.75 ? lognormal(s, 0.6 * d->a, 0.6) : lognormal(s, 2.2 * d->a, 0.5);
        break;
    }
    long n = lround(x);
    return n < d->lo ? d->lo : n > d->hi ? d->hi : (int)n;
}

/* The nominal mean (before clipping). */
static double dist_mean(const len_dist *d)
{
    return d->kind == DIST_UNIFORM ? 0.5 * (d->a + d->b) : d->a;
}

/* fixed:N | uniform:LO:HI | lognormal:MEAN[:SIGMA] | sharegpt:MEAN; lengths >= min_len.
** Log-normal kinds are clipped to [min_len, 4 * MEAN]. */
static int dist_parse(const char *opt, const char *v, int min_len, len_dist *d)
{
    memset(d, 0, sizeof *d);
    if (!v || strlen(v) >= sizeof d->spec) goto bad;
    snprintf(d->spec, sizeof d->spec, "%s", v);
    double x = 0, y = 0;
    int n;
    if (sscanf(v, "fixed:%lf%n", &x, &n) == 1 && !v[n]) {
        d->kind = DIST_FIXED;
        d->lo = d->hi = (int)x;
        if (x != floor(x) || x < min_len || x > 1e6) goto bad;
    } else if (sscanf(v, "uniform:%lf:%lf%n", &x, &y, &n) == 2 && !v[n]) {
        d->kind = DIST_UNIFORM;
        d->lo = (int)x;
        d->hi = (int)y;
        if (x != floor(x) || y != floor(y) || x < min_len || y < x || y > 1e6) goto bad;
    } else if (!strncmp(v, "lognormal:", 10)) {
        d->kind = DIST_LOGNORMAL;
        y = 0.8;
        int k = sscanf(v, "lognormal:%lf%n:%lf%n", &x, &n, &y, &n);
        if (k < 1 || v[n]) goto bad;
        if (x < min_len || x > 1e5 || y <= 0 || y > 3) goto bad;
    } else if (sscanf(v, "sharegpt:%lf%n", &x, &n) == 1 && !v[n]) {
        d->kind = DIST_SHAREGPT;
        if (x < min_len || x > 1e5) goto bad;
    } else {
        goto bad;
    }
    d->a = x;
    d->b = y;
    if (d->kind == DIST_LOGNORMAL || d->kind == DIST_SHAREGPT) {
        d->lo = min_len;
        d->hi = (int)ceil(4 * x);
    }
    return 0;
bad:
    fprintf(stderr, PROG ": %s: '%s' is not a length distribution: fixed:N, uniform:LO:HI, "
                    "lognormal:MEAN[:SIGMA] or sharegpt:MEAN, lengths >= %d\n", opt, v ? v : "", min_len);
    return -1;
}

/* ---------------------------------------------------------------------------------- options */

typedef struct opts {
    int sweep, prefix_compare, overhead;
    int single;             /* --mode: 1 open, 2 closed */
    double rate;
    int clients;
    double duration, warmup; /* warmup < 0: 15% of the duration */
    int requests;           /* > 0: runs of N requests instead of --duration */
    int loads[MAX_LOADS], n_loads;
    int max_clients, min_requests, repeat, retries;
    int pfx_clients;        /* clients of the --prefix-compare runs */
    double busy_limit;
    len_dist plen, olen;
    len_dist pfx_plen, pfx_olen; /* the --prefix-compare workload */
    double prefix_pct;      /* < 0: not given */
    uint64_t seed;
    float temperature;
    const char *model, *tokenizer, *json_path, *png_path, *req_log_path;
    int threads, max_running, max_batch_tokens, kv_mb, prefix_cache, no_png, progress, quick;
    int backend;              /* --backend: infer_backend (default the CPU) */
    const char *backend_name;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: serve_load [options]\n"
        "Load generator for libinfer: open-loop Poisson or closed-loop clients; throughput, TTFT,\n"
        "time per output token and end-to-end latency (p50/p90/p99), preemptions, prefix-cache hits,\n"
        "scheduler overhead. With no mode option it runs --sweep and --prefix-compare (2-4 minutes\n"
        "with the default model on 2 cores; --quick: about 20 s).\n"
        "Modes:\n"
        "  --sweep               max throughput (closed loop, --max-clients), unloaded TTFT (closed\n"
        "                        loop, 1 client), then open loop at --loads percent of the max; checks\n"
        "                        p99 TTFT at 80%% <= 2x unloaded, and scheduling overhead < 1%% at 64 seqs\n"
        "                        (< 3%% with --backend cuda)\n"
        "  --prefix-compare      max throughput with a shared prefix (--prefix-pct, default 50 here)\n"
        "                        with the prefix cache off and on (alternating runs); checks on/off\n"
        "                        >= 1.5x\n"
        "  --overhead            closed loop with 64 clients: scheduler host time per step at 64\n"
        "                        running sequences (included in --sweep when --max-clients >= 64)\n"
        "  --mode open --rate R  one open-loop run, Poisson arrivals at R requests/s\n"
        "  --mode closed --clients N   one closed-loop run with N clients\n"
        "Run length:\n"
        "  --duration S          seconds of arrivals per run (default 12; --quick 3)\n"
        "  --requests N          instead: N requests per run (all of them measured)\n"
        "  --warmup S            seconds discarded at the start of a duration run (default 15%%)\n"
        "  --min-requests N      a duration run goes on (up to 4x) until about N requests are\n"
        "                        measured, for meaningful p99s (default 100; --quick 20)\n"
        "  --loads LIST          sweep loads in percent of max throughput (default 20,40,60,80,100)\n"
        "  --max-clients N       clients of the max-throughput runs (default = --max-running)\n"
        "  --repeat N            max-throughput runs (sweep, prefix arms) run N times, the best\n"
        "                        counts; the prefix arms alternate (default 2; --quick 1)\n"
        "  --retries N           run a measurement again, up to N times, while other processes\n"
        "                        used more than --busy-limit cores (default 0.25) during it; the\n"
        "                        least disturbed run counts (default 2; --quick 0)\n"
        "  --quick               smoke run: 3 s runs, loads 50,100, 16 max clients\n"
        "Workload (lengths in tokens, BOS included in the prompt):\n"
        "  --prompt-len SPEC     fixed:N | uniform:LO:HI | lognormal:MEAN[:SIGMA] | sharegpt:MEAN\n"
        "                        (default sharegpt:64: 75%% log-normal around 0.6 MEAN, 25%% around\n"
        "                        2.2 MEAN; log-normal kinds are clipped to [min, 4 MEAN])\n"
        "  --output-len SPEC     generated tokens, same forms (default sharegpt:32; min 2)\n"
        "  --prefix-prompt-len SPEC, --prefix-output-len SPEC\n"
        "                        the --prefix-compare workload (default uniform:512:1024 and\n"
        "                        sharegpt:32: long prompts that start with a shared system prompt)\n"
        "  --prefix-clients N    clients of the --prefix-compare runs (default 16: with prompts this\n"
        "                        long the step budget is full of prompt tokens already; 64 clients\n"
        "                        take minutes before every client has finished one request)\n"
        "  --prefix-pct P        every prompt starts with the same system prefix of P%% of the mean\n"
        "                        prompt length (default 0; 50 in --prefix-compare)\n"
        "  --seed N              workload seed (default 1)\n"
        "  --temperature T       sampling temperature (default 0: greedy); outputs ignore EOS\n"
        "Engine (session parameters):\n"
        "  --model PATH          a model the library loads (default: a synthetic stories15M-shaped\n"
        "                        llama2.c checkpoint, written to $TMPDIR and unlinked at once)\n"
        "  -z, --tokenizer PATH  llama2.c tokenizer.bin (default $INFER_SHARED/models/tokenizer.bin,\n"
        "                        ../shared/models/tokenizer.bin; with --model, its own default)\n"
        "  -t, --threads N       compute threads (default 0 = all cores)\n"
        "      --backend B       cpu (default), cuda or auto\n"
        "  --max-running N       max_running (default 64)\n"
        "  --max-batch-tokens N  max_batch_tokens, the chunked-prefill step budget (default: the\n"
        "                        library's, 512)\n"
        "  --kv-mb N             KV pool in MiB (default: enough that max_running requests of the\n"
        "                        longest lengths never preempt; with --model, 512)\n"
        "  --no-prefix-cache     prefix_cache = 0 (except in --prefix-compare, which runs both)\n"
        "Output:\n"
        "  -o, --json PATH       JSON lines, one per run and one for the goals (default\n"
        "                        build/bench/serve_load.jsonl; '-' = stdout)\n"
        "  --png PATH            plot of the sweep: p99 TTFT and throughput against offered load\n"
        "                        (default build/bench/serve_load.png; needs gnuplot: apt-get install\n"
        "                        gnuplot-nox)\n"
        "  --no-png              no plot\n"
        "  --request-log PATH    one JSON line per measured request (run, prompt and output tokens,\n"
        "                        submit time in the run, TTFT, end-to-end, running and queued\n"
        "                        requests at its submit), appended to PATH\n"
        "  --no-progress         no progress line on stderr\n"
        "  -h, --help            this text\n");
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    double x;
    if (bench_parse_double(opt, v, lo, hi, &x)) return -1;
    if (x != floor(x)) {
        fprintf(stderr, PROG ": %s needs an integer, got '%s'\n", opt, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->duration = -1;
    o->warmup = -1;
    o->prefix_pct = -1;
    o->seed = 1;
    o->max_running = 64;
    o->prefix_cache = 1;
    o->backend = INFER_BACKEND_CPU;
    o->backend_name = "cpu";
    o->progress = 1;
    o->n_loads = -1;
    o->min_requests = -1;
    o->retries = -1;
    o->busy_limit = 0.25;
    o->json_path = "build/bench/serve_load.jsonl";
    o->png_path = "build/bench/serve_load.png";
    dist_parse("--prompt-len", "sharegpt:64", 4, &o->plen);
    dist_parse("--output-len", "sharegpt:32", 2, &o->olen);
    dist_parse("--prefix-prompt-len", "uniform:512:1024", 4, &o->pfx_plen);
    dist_parse("--prefix-output-len", "sharegpt:32", 2, &o->pfx_olen);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, rc = 0;
        double x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--sweep")) { o->sweep = 1; takes = 0; }
        else if (!strcmp(a, "--prefix-compare")) { o->prefix_compare = 1; takes = 0; }
        else if (!strcmp(a, "--overhead")) { o->overhead = 1; takes = 0; }
        else if (!strcmp(a, "--quick")) { o->quick = 1; takes = 0; }
        else if (!strcmp(a, "--no-png")) { o->no_png = 1; takes = 0; }
        else if (!strcmp(a, "--request-log")) {
            if (!v) { fprintf(stderr, PROG ": --request-log needs a path\n"); rc = -1; }
            o->req_log_path = v;
        }
        else if (!strcmp(a, "--no-progress")) { o->progress = 0; takes = 0; }
        else if (!strcmp(a, "--no-prefix-cache")) { o->prefix_cache = 0; takes = 0; }
        else if (!strcmp(a, "--mode")) {
            if (v && !strcmp(v, "open")) o->single = 1;
            else if (v && !strcmp(v, "closed")) o->single = 2;
            else { fprintf(stderr, PROG ": --mode is 'open' or 'closed', got '%s'\n", v ? v : ""); rc = -1; }
        } else if (!strcmp(a, "--rate")) rc = bench_parse_double(a, v, 1e-3, 1e6, &o->rate);
        else if (!strcmp(a, "--clients")) rc = parse_int(a, v, 1, 100000, &o->clients);
        else if (!strcmp(a, "--duration")) rc = bench_parse_double(a, v, 0.5, 86400, &o->duration);
        else if (!strcmp(a, "--warmup")) rc = bench_parse_double(a, v, 0, 86400, &o->warmup);
        else if (!strcmp(a, "--requests")) rc = parse_int(a, v, 1, 10000000, &o->requests);
        else if (!strcmp(a, "--max-clients")) rc = parse_int(a, v, 1, 100000, &o->max_clients);
        else if (!strcmp(a, "--prefix-clients")) rc = parse_int(a, v, 1, 100000, &o->pfx_clients);
        else if (!strcmp(a, "--min-requests")) rc = parse_int(a, v, 0, 10000000, &o->min_requests);
        else if (!strcmp(a, "--repeat")) rc = parse_int(a, v, 1, 100, &o->repeat);
        else if (!strcmp(a, "--retries")) rc = parse_int(a, v, 0, 100, &o->retries);
        else if (!strcmp(a, "--busy-limit")) rc = bench_parse_double(a, v, 0, 1024, &o->busy_limit);
        else if (!strcmp(a, "--prompt-len")) rc = dist_parse(a, v, 4, &o->plen);
        else if (!strcmp(a, "--output-len")) rc = dist_parse(a, v, 2, &o->olen);
        else if (!strcmp(a, "--prefix-prompt-len")) rc = dist_parse(a, v, 4, &o->pfx_plen);
        else if (!strcmp(a, "--prefix-output-len")) rc = dist_parse(a, v, 2, &o->pfx_olen);
        else if (!strcmp(a, "--prefix-pct")) rc = bench_parse_double(a, v, 0, 95, &o->prefix_pct);
        else if (!strcmp(a, "--seed")) { rc = bench_parse_double(a, v, 0, 1e18, &x); o->seed = (uint64_t)x; }
        else if (!strcmp(a, "--temperature")) { rc = bench_parse_double(a, v, 0, 10, &x); o->temperature = (float)x; }
        else if (!strcmp(a, "--model")) { o->model = v; rc = v ? 0 : -1; }
        else if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { o->tokenizer = v; rc = v ? 0 : -1; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--json")) { o->json_path = v; rc = v ? 0 : -1; }
        else if (!strcmp(a, "--png")) { o->png_path = v; rc = v ? 0 : -1; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = parse_int(a, v, 0, 1024, &o->threads);
        else if (!strcmp(a, "--backend")) {
            if (v && !strcmp(v, "cpu")) o->backend = INFER_BACKEND_CPU;
            else if (v && !strcmp(v, "cuda")) o->backend = INFER_BACKEND_CUDA;
            else if (v && !strcmp(v, "auto")) o->backend = INFER_BACKEND_AUTO;
            else {
                fprintf(stderr, PROG ": --backend is cpu, cuda or auto\n");
                return -1;
            }
            o->backend_name = v;
        }
        else if (!strcmp(a, "--max-running")) rc = parse_int(a, v, 1, 100000, &o->max_running);
        else if (!strcmp(a, "--max-batch-tokens")) rc = parse_int(a, v, 1, 1 << 20, &o->max_batch_tokens);
        else if (!strcmp(a, "--kv-mb")) rc = parse_int(a, v, 1, 1 << 20, &o->kv_mb);
        else if (!strcmp(a, "--loads")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v ? v : "");
            o->n_loads = 0;
            for (char *t = strtok(buf, ","); t && !rc; t = strtok(NULL, ",")) {
                if (o->n_loads == MAX_LOADS) { fprintf(stderr, PROG ": at most %d --loads\n", MAX_LOADS); rc = -1; }
                else rc = parse_int("--loads", t, 1, 1000, &o->loads[o->n_loads++]);
            }
            if (!rc && o->n_loads == 0) { fprintf(stderr, PROG ": --loads needs a list such as 20,40,80\n"); rc = -1; }
        } else {
            fprintf(stderr, PROG ": unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (rc) {
            if (takes && !v) fprintf(stderr, PROG ": %s needs a value\n", a);
            return -1;
        }
        i += takes;
    }
    if (o->single == 1 && o->rate <= 0) { fprintf(stderr, PROG ": --mode open needs --rate R\n"); return -1; }
    if (o->single == 2 && o->clients <= 0) { fprintf(stderr, PROG ": --mode closed needs --clients N\n"); return -1; }
    if (!o->single && (o->rate > 0 || o->clients > 0)) {
        fprintf(stderr, PROG ": --rate and --clients go with --mode open / --mode closed\n");
        return -1;
    }
    if (!o->single && !o->sweep && !o->prefix_compare && !o->overhead) o->sweep = o->prefix_compare = 1;
    if (o->duration < 0) o->duration = o->quick ? 3 : 12;
    if (o->min_requests < 0) o->min_requests = o->quick ? 20 : 100;
    if (o->repeat <= 0) o->repeat = o->quick ? 1 : 2;
    if (o->retries < 0) o->retries = o->quick ? 0 : 2;
    if (o->warmup >= o->duration) { fprintf(stderr, PROG ": --warmup must be less than --duration\n"); return -1; }
    if (o->n_loads < 0) {
        static const int def[] = { 20, 40, 60, 80, 100 }, quick[] = { 50, 100 };
        o->n_loads = o->quick ? 2 : 5;
        memcpy(o->loads, o->quick ? quick : def, (size_t)o->n_loads * sizeof(int));
    }
    if (o->max_batch_tokens <= 0) {
        infer_session_params sp;
        infer_session_params_init(&sp);
        o->max_batch_tokens = sp.max_batch_tokens;
    }
    if (o->threads <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = ncpu > 0 ? (int)ncpu : 1; /* what the library's 0 means */
    }
    if (o->max_clients <= 0) o->max_clients = o->quick && o->max_running > 16 ? 16 : o->max_running;
    if (o->pfx_clients <= 0) o->pfx_clients = o->max_clients < 16 ? o->max_clients : 16;
    if (!strcmp(o->png_path, "") || o->no_png) o->png_path = NULL;
    return 0;
}

/* ---------------------------------------------------------------------------- the session */

typedef struct bench {
    const opts *o;
    const char *model_path, *tok_path;
    char model_desc[160];
    size_t kv_bytes;
    /* the prompt vocabulary: words and the tokens each encodes to alone; the shared prefix */
    char **words;
    int *word_tokens;
    int n_words, n_single, max_word; /* the n_single one-token words come first */
    int bos;                /* tokens of "" (the BOS the model adds) */
    char *prefix_text;      /* NULL without a prefix */
    int prefix_tokens;      /* BOS included */
    double prefix_pct;
} bench;

static infer_session *session_open(const bench *b, int prefix_cache)
{
    const opts *o = b->o;
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.backend = (infer_backend)o->backend;
    sp.threading = INFER_THREADING_ENGINE;
    sp.n_threads = o->threads;
    sp.max_running = o->max_running;
    sp.max_batch_tokens = o->max_batch_tokens;
    if (sp.queue_capacity < 8192) sp.queue_capacity = 8192; /* open loop past capacity queues */
    sp.kv_cache_bytes = b->kv_bytes;
    sp.prefix_cache = prefix_cache;
    infer_session *s = NULL;
    infer_status rc = infer_session_create(&sp, &s);
    if (rc) {
        bench_fail_api("infer_session_create", rc);
        return NULL;
    }
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = b->tok_path;
    rc = infer_model_load(s, "m", NULL, b->model_path, &mp);
    if (rc) {
        bench_fail_api("infer_model_load", rc);
        infer_session_destroy(s);
        return NULL;
    }
    return s;
}

static int count_tokens(infer_session *s, const char *text, int *n)
{
    size_t cnt = 0;
    infer_status rc = infer_tokenize(s, "m", NULL, text, INFER_TOKENIZE_MODEL_BOS, NULL, 0, &cnt);
    if (rc) return bench_fail_api("infer_tokenize", rc);
    *n = (int)cnt;
    return 0;
}

/* Words of the vocabulary: pieces whose text is 1-16 lowercase letters, with the number of
** tokens each encodes to alone (at most 4). Joined by single spaces they encode word by word
** (SentencePiece pieces hold a word boundary only at their start), so the count of a text is
** BOS + the sum; each prompt is checked anyway. Words of one token go first; when there are
** plenty of them (large vocabularies), only they are used. */
static int collect_words(bench *b, infer_session *s)
{
    if (count_tokens(s, "", &b->bos)) return -1;
    int cap = 0;
    for (int pass = 1; pass <= 2; pass++) {
        if (pass == 2 && b->n_single >= 256) break;
        for (int32_t id = 0;; id++) {
            char buf[64];
            size_t len = 0;
            infer_status rc = infer_detokenize(s, "m", NULL, &id, 1, buf, sizeof buf, &len);
            if (rc == INFER_EINVAL && len == 0) break; /* past the vocabulary */
            if (rc || len < 1 || len > 16) continue;
            int ok = 1, n;
            for (size_t i = 0; i < len && ok; i++) ok = buf[i] >= 'a' && buf[i] <= 'z';
            if (!ok) continue;
            if (count_tokens(s, buf, &n)) return -1;
            n -= b->bos;
            if (pass == 1 ? n != 1 : (n < 2 || n > 4)) continue;
            if (b->n_words == cap) {
                cap = cap ? 2 * cap : 1024;
                char **w = realloc(b->words, (size_t)cap * sizeof *w);
                if (w) b->words = w;
                int *wt = w ? realloc(b->word_tokens, (size_t)cap * sizeof *wt) : NULL;
                if (!wt) return -1;
                b->word_tokens = wt;
            }
            if (!(b->words[b->n_words] = strdup(buf))) return -1;
            b->word_tokens[b->n_words] = n;
            if ((int)len > b->max_word) b->max_word = (int)len;
            b->n_words++;
            b->n_single += n == 1;
        }
    }
    if (b->n_single == 0 || b->n_words < 16) {
        fprintf(stderr, PROG ": the tokenizer has only %d lowercase words (%d of one token); cannot build "
                        "prompts\n", b->n_words, b->n_single);
        return -1;
    }
    return 0;
}

/* Random words worth `n_tokens` tokens after `head` (or alone), space-separated. malloc'd. */
static char *make_text(const bench *b, const char *head, int n_tokens, uint64_t *rng)
{
    size_t hl = head ? strlen(head) : 0;
    char *t = malloc(hl + 1 + (size_t)n_tokens * (size_t)(b->max_word + 1) + 1);
    if (!t) return NULL;
    size_t p = 0;
    if (head) {
        memcpy(t, head, hl);
        p = hl;
    }
    for (int left = n_tokens; left > 0;) {
        int w = (int)(bench_rng_next(rng) % (uint64_t)b->n_words);
        if (b->word_tokens[w] > left) w = (int)(bench_rng_next(rng) % (uint64_t)b->n_single);
        if (p) t[p++] = ' ';
        size_t wl = strlen(b->words[w]);
        memcpy(t + p, b->words[w], wl);
        p += wl;
        left -= b->word_tokens[w];
    }
    t[p] = 0;
    return t;
}

/* Text of `target` tokens (BOS included) after `head` of head_tokens: built, counted with
** infer_tokenize, and rebuilt from the same draws asking for more or fewer tokens until the
** count matches (a few rounds at most). *got is the count of the returned text. */
static char *make_prompt(const bench *b, infer_session *s, const char *head, int head_tokens, int target,
                         uint64_t rng0, int *got)
{
    int k = target - (head ? head_tokens : b->bos);
    if (k < 1) k = 1;
    char *best = NULL;
    int best_n = -1;
    for (int round = 0; round < 6; round++) {
        uint64_t rng = rng0;
        char *t = make_text(b, head, k, &rng);
        int n;
        if (!t || count_tokens(s, t, &n)) {
            free(t);
            free(best);
            return NULL;
        }
        if (best_n < 0 || abs(n - target) < abs(best_n - target)) {
            free(best);
            best = t;
            best_n = n;
        } else {
            free(t);
        }
        if (n == target) break;
        k += target - n;
        if (k < 1) break;
    }
    *got = best_n;
    return best;
}

static int prefix_setup(bench *b, infer_session *s, double pct)
{
    free(b->prefix_text);
    b->prefix_text = NULL;
    b->prefix_tokens = 0;
    b->prefix_pct = pct;
    if (pct <= 0) return 0;
    int target = (int)lround(pct / 100.0 * dist_mean(&b->o->plen));
    if (target < b->bos + 1) target = b->bos + 1;
    int got = 0;
    b->prefix_text = make_prompt(b, s, NULL, 0, target, b->o->seed ^ 0x5157e4f1ull, &got);
    if (!b->prefix_text) return -1;
    b->prefix_tokens = got;
    return 0;
}

/* ------------------------------------------------------------------------------------ runs */

typedef struct run_cfg {
    char label[32];
    int closed;          /* closed loop (clients) or open loop (rate) */
    int clients;
    double rate, load_pct;
    uint64_t stream;     /* request indices: stream << 32 | i (disjoint between runs) */
    int prefix_cache;
} run_cfg;

typedef struct req_rec {
    double t_submit, t_first, t_done;
    infer_request_id id;
    int n_tok, n_prompt, n_gen, max_tokens, target;
    int running_at, queued_at; /* the session's counts just before the submit (--request-log) */
    int state;           /* 0 free, 1 in flight, 2 done */
    infer_status status;
} req_rec;

typedef struct run_ctx {
    const bench *b;
    infer_session *s;
    const run_cfg *cfg;
    req_rec *recs;
    int cap, limit;      /* records allocated; requests to send (INT32_MAX: until t_stop) */
    double t0, t_stop;
    atomic_int n_sub;    /* records used (submitted or rejected) */
    atomic_int rejected; /* open loop: INFER_EBUSY */
    atomic_int gen_done, abort;
    infer_status gen_err;
} run_ctx;

typedef struct run_result {
    run_cfg cfg;
    double window_s;
    int submitted, measured, completed_in_window, errors, rejected, cancelled, off_target;
    double req_s, out_tok_s, prompt_tok_s, mean_prompt, mean_out;
    double ttft[3], tpot[3], e2e[3];   /* p50, p90, p99 in seconds */
    int64_t preempted, hit_tokens, prompt_computed, steps, batch_hist[8];
    double prefix_pct;
    int prefix_tokens;
    double hit_rate, sched_us, fwd_us, sched_pct, seqs_per_step, others;
    char plen[64], olen[64];         /* the workload's length specs */
} run_result;

/* Request i, built ahead of its arrival: prompt text and output length. */
typedef struct pending {
    int i, max_tokens, target;
    char *text;
} pending;

static int prepare(run_ctx *c, int i, pending *p)
{
    const bench *b = c->b;
    uint64_t rng = b->o->seed ^ ((c->cfg->stream << 32 | (uint64_t)i) * 0x9e3779b97f4a7c15ull);
    bench_rng_next(&rng);
    int P = dist_draw(&b->o->plen, &rng), got = 0;
    p->i = i;
    p->max_tokens = dist_draw(&b->o->olen, &rng);
    if (b->prefix_text && P <= b->prefix_tokens) P = b->prefix_tokens + 1;
    p->target = P;
    p->text = make_prompt(b, c->s, b->prefix_text, b->prefix_tokens, P, bench_rng_next(&rng), &got);
    if (!p->text) fprintf(stderr, PROG ": cannot build prompt %d\n", i);
    return p->text ? 0 : -1;
}

/* Submit a prepared request (frees its text). Its record says how it went. */
static infer_status send(run_ctx *c, pending *p)
{
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "m";
    rq.prompt = p->text;
    rq.max_tokens = p->max_tokens;
    rq.temperature = c->b->o->temperature;
    rq.ignore_eos = 1;
    rq.seed = (uint64_t)p->i;
    rq.user_data = (void *)(uintptr_t)p->i;
    req_rec *r = &c->recs[p->i];
    memset(r, 0, sizeof *r);
    r->max_tokens = p->max_tokens;
    r->target = p->target;
    r->state = 1;
    if (c->b->o->req_log_path) {
        infer_stats st0 = { .size = sizeof st0 };
        if (infer_session_stats(c->s, &st0) == INFER_OK) {
            r->running_at = (int)st0.running;
            r->queued_at = (int)st0.queued;
        }
    }
    r->t_submit = bench_now_s();
    infer_status st = infer_submit(c->s, &rq, &r->id);
    free(p->text);
    p->text = NULL;
    if (st) {
        r->state = 2;
        r->status = st;
        r->t_done = bench_now_s();
    }
    return st;
}

static infer_status submit_one(run_ctx *c, int i)
{
    pending p;
    return prepare(c, i, &p) ? INFER_ENOMEM : send(c, &p);
}

static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* Open loop: Poisson arrivals from t0 until t_stop (or `limit` requests). */
static void *generator_main(void *arg)
{
    run_ctx *c = arg;
    uint64_t rng = c->b->o->seed ^ (c->cfg->stream * 0xd1b54a32d192ed03ull) ^ 0xa77e5u;
    double t = c->t0;
    for (int i = 0; i < c->limit && !atomic_load(&c->abort); i++) {
        t += -log(rng_unit(&rng)) / c->cfg->rate;
        if (t > c->t_stop) break;
        if (i >= c->cap) {
            fprintf(stderr, "\n" PROG ": warning: more arrivals than the %d records allocated; stopping early\n",
                    c->cap);
            break;
        }
        pending p;
        if (prepare(c, i, &p)) {
            atomic_store(&c->abort, 1);
            break;
        }
        sleep_until(t);
        infer_status st = send(c, &p);
        if (st == INFER_EBUSY) {
            atomic_fetch_add(&c->rejected, 1);
        } else if (st) {
            c->gen_err = st;
            fprintf(stderr, "\n" PROG ": infer_submit failed: %s: %s\n", infer_status_str(st),
                    infer_last_error(NULL));
            atomic_store(&c->n_sub, i + 1);
            atomic_store(&c->abort, 1);
            break;
        }
        atomic_store(&c->n_sub, i + 1);
    }
    atomic_store(&c->gen_done, 1);
    return NULL;
}

/* p in [0, 1], linear between closest ranks; v sorted. */
static double pct_of(const double *v, int n, double p)
{
    if (n <= 0) return NAN;
    double r = p * (n - 1);
    int i = (int)floor(r);
    return i + 1 < n ? v[i] + (r - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static void pcts(double *v, int n, double out[3])
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    out[0] = pct_of(v, n, 0.50);
    out[1] = pct_of(v, n, 0.90);
    out[2] = pct_of(v, n, 0.99);
}

static void progress(const run_ctx *c, infer_session *s, double t, double w0, double w1, long tokens_recent,
                     double dt, int done)
{
    infer_stats st;
    if (bench_get_stats(s, &st)) return;
    fprintf(stderr, "\r  %-12s %6.1f s %-7s", c->cfg->label, t - c->t0,
            t < w0 ? "warm-up" : t <= w1 ? "measure" : "drain");
    fprintf(stderr, "  submitted %6d  done %6d  running %3lld  queued %4lld  %7.0f tok/s   ",
            atomic_load(&c->n_sub) - atomic_load(&c->rejected), done, (long long)st.running,
            (long long)st.queued, dt > 0 ? (double)tokens_recent / dt : 0.0);
    if (!isatty(2)) fputc('\n', stderr);
}

/* One run on session s. Returns 0 and fills *res. */
static int run_one(const bench *b, infer_session *s, const run_cfg *cfg, run_result *res)
{
    const opts *o = b->o;
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.b = b;
    c.s = s;
    c.cfg = cfg;
    double dur = o->duration;
    /* An open loop at a low rate runs longer, so that about --min-requests are measured. */
    if (!cfg->closed && o->requests <= 0 && o->min_requests / (0.85 * cfg->rate) > dur)
        dur = fmin(4 * o->duration, o->min_requests / (0.85 * cfg->rate));
    double warm = o->requests > 0 ? 0 : o->warmup >= 0 ? o->warmup : 0.15 * dur;
    c.limit = o->requests > 0 ? o->requests : INT32_MAX;
    if (o->requests > 0) c.cap = o->requests;
    else if (cfg->closed) c.cap = 4096;
    else c.cap = (int)(cfg->rate * dur + 10 * sqrt(cfg->rate * dur) + 64);
    c.recs = calloc((size_t)c.cap, sizeof *c.recs);
    double *v = NULL;
    infer_event *ev = malloc(EV_BATCH * sizeof *ev);
    if (!c.recs || !ev) {
        fprintf(stderr, PROG ": out of memory\n");
        free(c.recs);
        free(ev);
        return -1;
    }
    infer_stats st_start, st_w0, st_w1;
    bench_cpu_sample cpu0, cpu1;
    int ret = -1, have_w0 = 0, have_w1 = 0, done = 0, done_win = 0, th_started = 0, cancelled_all = 0;
    long tokens_win = 0, tokens_recent = 0;
    pthread_t th;
    if (bench_get_stats(s, &st_start)) goto out;
    c.t0 = bench_now_s();
    /* A closed loop with --duration measures from when every client has finished one request
    ** (the first wave's prefill burst is over) and the warm-up time has passed, for
    ** duration - warmup seconds or until --min-requests completed in it (at most 4x as long). */
    int adaptive = cfg->closed && o->requests <= 0;
    c.t_stop = o->requests > 0 || adaptive ? INFINITY : c.t0 + dur;
    double w0 = adaptive ? INFINITY : c.t0 + warm, w1 = c.t_stop, t_last = c.t0, t_prog = c.t0, t_end = c.t0;
    int tty = isatty(2);
    double prog_every = tty ? 0.25 : 5.0;
    if (!adaptive && warm == 0) {
        st_w0 = st_start;
        bench_cpu_sample_take(&cpu0);
        have_w0 = 1;
    }
    if (cfg->closed) {
        for (int i = 0; i < cfg->clients && i < c.limit; i++) {
            infer_status st = submit_one(&c, i);
            atomic_store(&c.n_sub, i + 1);
            if (st) {
                bench_fail_api("infer_submit", st);
                goto out;
            }
        }
        atomic_store(&c.gen_done, cfg->clients >= c.limit);
    } else {
        if (pthread_create(&th, NULL, generator_main, &c) != 0) {
            fprintf(stderr, PROG ": cannot start the generator thread\n");
            goto out;
        }
        th_started = 1;
    }

    for (;;) {
        int n = infer_poll(s, ev, EV_BATCH, 50);
        double t = bench_now_s();
        if (n < 0) {
            bench_fail_api("infer_poll", (infer_status)n);
            goto out;
        }
        if (!have_w0 && t >= w0) {
            if (bench_get_stats(s, &st_w0)) goto out;
            bench_cpu_sample_take(&cpu0);
            have_w0 = 1;
        }
        for (int k = 0; k < n; k++) {
            int i = (int)(uintptr_t)ev[k].user_data;
            if (i < 0 || i >= c.cap) continue;
            req_rec *r = &c.recs[i];
            if (ev[k].type == INFER_EVENT_TOKEN) {
                if (r->n_tok++ == 0) r->t_first = t;
                tokens_recent++;
                if (t >= w0 && t <= w1) tokens_win++;
            } else if (ev[k].type == INFER_EVENT_DONE) {
                r->t_done = t_end = t;
                r->state = 2;
                r->status = ev[k].status;
                r->n_prompt = ev[k].n_prompt_tokens;
                r->n_gen = ev[k].n_generated;
                done++;
                done_win += t >= w0 && t <= w1;
                if (ev[k].status != INFER_OK && !cancelled_all) {
                    fprintf(stderr, "\n" PROG ": a request ended with %s after %d tokens\n",
                            infer_status_str(ev[k].status), (int)ev[k].n_generated);
                    goto out;
                }
                if (cfg->closed) {
                    int next = atomic_load(&c.n_sub);
                    if (t < c.t_stop && next < c.limit && !cancelled_all) {
                        if (next >= c.cap) { /* only this thread touches recs in closed loop */
                            req_rec *nr = realloc(c.recs, (size_t)c.cap * 2 * sizeof *nr);
                            if (!nr) { fprintf(stderr, PROG ": out of memory\n"); goto out; }
                            memset(nr + c.cap, 0, (size_t)c.cap * sizeof *nr);
                            c.recs = nr;
                            c.cap *= 2;
                        }
                        infer_status st = submit_one(&c, next);
                        atomic_store(&c.n_sub, next + 1);
                        if (st) {
                            bench_fail_api("infer_submit", st);
                            goto out;
                        }
                    }
                    if (t >= c.t_stop || atomic_load(&c.n_sub) >= c.limit) atomic_store(&c.gen_done, 1);
                }
            }
        }
        if (adaptive && !have_w0 && t >= c.t0 + warm && (done >= cfg->clients || t >= c.t0 + warm + 3 * dur)) {
            w0 = t;
            if (bench_get_stats(s, &st_w0)) goto out;
            bench_cpu_sample_take(&cpu0);
            have_w0 = 1;
        }
        if (adaptive && have_w0 && isinf(w1) &&
            ((t >= w0 + dur - warm && done_win >= o->min_requests) || t >= w0 + 4 * (dur - warm)))
            w1 = c.t_stop = t;
        if (!have_w1 && t >= w1) {
            if (bench_get_stats(s, &st_w1)) goto out;
            bench_cpu_sample_take(&cpu1);
            have_w1 = 1;
        }
        if (cfg->closed && t >= c.t_stop) atomic_store(&c.gen_done, 1);
        if (o->progress && t - t_prog >= prog_every) {
            progress(&c, s, t, w0, w1, tokens_recent, t - t_last, done);
            tokens_recent = 0;
            t_last = t_prog = t;
        }
        if (atomic_load(&c.abort)) goto out;
        int gen_done = atomic_load(&c.gen_done);
        int used = atomic_load(&c.n_sub), rej = atomic_load(&c.rejected);
        if (gen_done && done + rej >= used) break;
        /* Drain limit: what is still running long after arrivals stopped is cancelled. */
        double stop = isinf(c.t_stop) ? t_end : c.t_stop;
        if (gen_done && !cancelled_all && t > stop + 30 + 2 * dur) {
            fprintf(stderr, "\n" PROG ": still %d requests in flight %.0f s after the last arrival; cancelling\n",
                    used - rej - done, t - stop);
            for (int i = 0; i < used; i++)
                if (c.recs[i].state == 1) infer_cancel(s, c.recs[i].id);
            cancelled_all = 1;
        }
    }
    if (o->progress && tty) fprintf(stderr, "\r%*s\r", 110, "");
    if (!have_w1) {
        if (bench_get_stats(s, &st_w1)) goto out;
        bench_cpu_sample_take(&cpu1);
        w1 = t_end;
        /* requests mode: the window is the whole run; its tokens were all counted */
    }
    infer_stats st_end;
    if (bench_get_stats(s, &st_end)) goto out;

    /* ---- results ---- */
    memset(res, 0, sizeof *res);
    res->cfg = *cfg;
    snprintf(res->plen, sizeof res->plen, "%s", o->plen.spec);
    snprintf(res->olen, sizeof res->olen, "%s", o->olen.spec);
    res->prefix_pct = b->prefix_pct;
    res->prefix_tokens = b->prefix_tokens;
    int used = atomic_load(&c.n_sub);
    res->submitted = used - atomic_load(&c.rejected);
    res->rejected = atomic_load(&c.rejected);
    res->window_s = w1 - w0;
    v = malloc((size_t)(used > 0 ? used : 1) * sizeof *v);
    if (!v) goto out;
    double sum_p = 0, sum_o = 0, sum_pw = 0;
    int m = 0;
    for (int i = 0; i < used; i++) {
        const req_rec *r = &c.recs[i];
        if (r->state != 2 || r->status == INFER_EBUSY) continue;
        if (r->status == INFER_ECANCELED) { res->cancelled++; continue; }
        if (r->status != INFER_OK) { res->errors++; continue; }
        if (r->t_done >= w0 && r->t_done <= w1) {
            res->completed_in_window++;
            sum_pw += r->n_prompt;
        }
        if (r->t_submit < w0 || r->t_submit > w1) continue;
        sum_p += r->n_prompt;
        sum_o += r->n_gen;
        res->off_target += r->n_prompt != r->target || r->n_gen != r->max_tokens;
        m++;
    }
    res->measured = m;
    res->mean_prompt = m ? sum_p / m : 0;
    res->mean_out = m ? sum_o / m : 0;
    res->req_s = res->window_s > 0 ? res->completed_in_window / res->window_s : 0;
    res->out_tok_s = res->window_s > 0 ? (double)tokens_win / res->window_s : 0;
    res->prompt_tok_s = res->window_s > 0 ? sum_pw / res->window_s : 0;
    for (int which = 0; which < 3; which++) {
        int k = 0;
        for (int i = 0; i < used; i++) {
            const req_rec *r = &c.recs[i];
            if (r->state != 2 || r->status != INFER_OK || r->t_submit < w0 || r->t_submit > w1) continue;
            if (which == 0 && r->n_tok > 0) v[k++] = r->t_first - r->t_submit;
            else if (which == 1 && r->n_gen > 1) v[k++] = (r->t_done - r->t_first) / (r->n_gen - 1);
            else if (which == 2) v[k++] = r->t_done - r->t_submit;
        }
        pcts(v, k, which == 0 ? res->ttft : which == 1 ? res->tpot : res->e2e);
    }
    if (o->req_log_path) {
        FILE *rl = fopen(o->req_log_path, "a");
        if (!rl) {
            fprintf(stderr, PROG ": cannot open %s: %s\n", o->req_log_path, strerror(errno));
            goto out;
        }
        for (int i = 0; i < used; i++) {
            const req_rec *r = &c.recs[i];
            if (r->state != 2 || r->status != INFER_OK || r->t_submit < w0 || r->t_submit > w1 || !r->n_tok) continue;
            fprintf(rl, "{\"run\":\"%s\",\"prompt\":%d,\"gen\":%d,\"t_submit_s\":%.6f,\"ttft_ms\":%.3f,\"e2e_ms\":%.3f,\"running_at\":%d,\"queued_at\":%d}\n",
                    cfg->label, r->n_prompt, r->n_gen, r->t_submit - c.t0, 1e3 * (r->t_first - r->t_submit),
                    1e3 * (r->t_done - r->t_submit), r->running_at, r->queued_at);
        }
        if (fclose(rl) != 0) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", o->req_log_path, strerror(errno));
            goto out;
        }
    }
    res->preempted = st_end.preempted - st_start.preempted;
    res->hit_tokens = st_end.prefix_hit_tokens - st_start.prefix_hit_tokens;
    res->prompt_computed = st_end.tokens_prompt - st_start.tokens_prompt;
    res->hit_rate = res->hit_tokens + res->prompt_computed > 0
                        ? (double)res->hit_tokens / (double)(res->hit_tokens + res->prompt_computed) : 0;
    res->steps = st_w1.steps - st_w0.steps;
    for (int k = 0; k < 8; k++) res->batch_hist[k] = st_w1.batch_hist[k] - st_w0.batch_hist[k];
    if (res->steps > 0) {
        double sched = (double)(st_w1.sched_ns - st_w0.sched_ns), fwd = (double)(st_w1.forward_ns - st_w0.forward_ns);
        res->sched_us = sched / 1e3 / (double)res->steps;
        res->fwd_us = fwd / 1e3 / (double)res->steps;
        res->sched_pct = sched + fwd > 0 ? 100 * sched / (sched + fwd) : 0;
        res->seqs_per_step = (double)(st_w1.tokens_generated - st_w0.tokens_generated) / (double)res->steps;
    }
    res->others = bench_cpu_others(&cpu0, &cpu1);
    if (o->progress)
        fprintf(stderr, "  %-12s %7.2f req/s %8.0f tok/s  TTFT p50 %7.1f p99 %7.1f ms  %5.1f seqs/step\n",
                cfg->label, res->req_s, res->out_tok_s, 1e3 * res->ttft[0], 1e3 * res->ttft[2],
                res->seqs_per_step);
    ret = 0;
out:
    if (ret && o->progress) fputc('\n', stderr);
    atomic_store(&c.abort, 1);
    if (th_started) pthread_join(th, NULL);
    if (ret) {
        /* leave the session idle for whoever uses it next */
        int n_used = atomic_load(&c.n_sub);
        for (int i = 0; i < n_used; i++)
            if (c.recs[i].state == 1) infer_cancel(s, c.recs[i].id);
    }
    free(v);
    free(c.recs);
    free(ev);
    return ret;
}

/* Unmeasured requests: fault the weights in, start the thread pool, touch the batch paths. */
static int warm_up(const bench *b, infer_session *s)
{
    opts o2 = *b->o;
    o2.requests = b->o->max_clients;
    o2.progress = 0;
    len_dist short_out;
    dist_parse("warm-up", "fixed:4", 2, &short_out);
    o2.olen = short_out;
    bench b2 = *b;
    b2.o = &o2;
    run_cfg cfg = { "warm-up", 1, b->o->max_clients, 0, 0, 0xffff, 1 };
    run_result r;
    return run_one(&b2, s, &cfg, &r);
}

/* run_one, again with new requests while other processes took more than --busy-limit cores
** during the run (up to --retries times); the least disturbed run counts. */
static int measure(const bench *b, infer_session *s, run_cfg *cfg, uint64_t *stream, run_result *res)
{
    for (int k = 0; k <= b->o->retries; k++) {
        run_result one;
        cfg->stream = (*stream)++;
        if (run_one(b, s, cfg, &one)) return -1;
        if (k == 0 || one.others < res->others) *res = one;
        if (one.others <= b->o->busy_limit) break;
        if (k < b->o->retries)
            fprintf(stderr, "  other processes used %.2f cores meanwhile: %s again\n", one.others, cfg->label);
    }
    return 0;
}

/* -------------------------------------------------------------------------------- output */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* JSON has no NaN: null instead. */
static void json_num(FILE *f, const char *key, double x)
{
    if (isfinite(x)) fprintf(f, ",\"%s\":%.6g", key, x);
    else fprintf(f, ",\"%s\":null", key);
}

static void json_run(FILE *f, const bench *b, const run_result *r, const char *group)
{
    const opts *o = b->o;
    fprintf(f, "{\"bench\":\"serve_load\",\"kind\":\"run\",\"group\":\"%s\",\"label\":", group);
    json_str(f, r->cfg.label);
    fprintf(f, ",\"mode\":\"%s\",\"model\":", r->cfg.closed ? "closed" : "open");
    json_str(f, b->model_desc);
    fprintf(f, ",\"clients\":%d", r->cfg.closed ? r->cfg.clients : 0);
    json_num(f, "offered_rps", r->cfg.closed ? NAN : r->cfg.rate);
    json_num(f, "load_pct", r->cfg.load_pct > 0 ? r->cfg.load_pct : NAN);
    fprintf(f, ",\"prompt_len\":\"%s\",\"output_len\":\"%s\"", r->plen, r->olen);
    json_num(f, "prefix_pct", r->prefix_pct);
    fprintf(f, ",\"prefix_tokens\":%d,\"prefix_cache\":%d,\"max_running\":%d,\"max_batch_tokens\":%d,"
               "\"backend\":\"%s\",\"threads\":%d,\"seed\":%llu",
            r->prefix_tokens, r->cfg.prefix_cache, o->max_running, o->max_batch_tokens, o->backend_name, o->threads,
            (unsigned long long)o->seed);
    json_num(f, "window_s", r->window_s);
    fprintf(f, ",\"submitted\":%d,\"measured\":%d,\"completed_in_window\":%d,\"rejected\":%d,\"errors\":%d,"
               "\"cancelled\":%d",
            r->submitted, r->measured, r->completed_in_window, r->rejected, r->errors, r->cancelled);
    json_num(f, "req_s", r->req_s);
    json_num(f, "out_tok_s", r->out_tok_s);
    json_num(f, "prompt_tok_s", r->prompt_tok_s);
    json_num(f, "mean_prompt_tokens", r->mean_prompt);
    fprintf(f, ",\"lengths_off_target\":%d", r->off_target);
    json_num(f, "mean_output_tokens", r->mean_out);
    static const char *const pn[3] = { "p50", "p90", "p99" };
    for (int k = 0; k < 3; k++) {
        char key[32];
        snprintf(key, sizeof key, "ttft_%s_ms", pn[k]);
        json_num(f, key, 1e3 * r->ttft[k]);
        snprintf(key, sizeof key, "tpot_%s_ms", pn[k]);
        json_num(f, key, 1e3 * r->tpot[k]);
        snprintf(key, sizeof key, "e2e_%s_ms", pn[k]);
        json_num(f, key, 1e3 * r->e2e[k]);
    }
    fprintf(f, ",\"preempted\":%lld,\"prefix_hit_tokens\":%lld,\"prompt_tokens_computed\":%lld",
            (long long)r->preempted, (long long)r->hit_tokens, (long long)r->prompt_computed);
    json_num(f, "prefix_hit_rate", r->hit_rate);
    fprintf(f, ",\"steps\":%lld", (long long)r->steps);
    json_num(f, "seqs_per_step", r->seqs_per_step);
    json_num(f, "sched_us_per_step", r->sched_us);
    json_num(f, "forward_us_per_step", r->fwd_us);
    json_num(f, "sched_pct", r->sched_pct);
    fprintf(f, ",\"batch_hist\":[");
    for (int k = 0; k < 8; k++) fprintf(f, "%s%lld", k ? "," : "", (long long)r->batch_hist[k]);
    fprintf(f, "]");
    json_num(f, "other_cores", r->others);
    fprintf(f, "}\n");
}

static void print_tables(FILE *out, const run_result *r, int n)
{
    fprintf(out, "%-13s %6s %8s %6s %8s %9s %9s %7s %8s %9s %9s %7s %6s\n", "run", "mode", "offered", "window",
            "req/s", "out tok/s", "seqs/step", "preempt", "prefix%", "sched us", "fwd ms", "sched%", "others");
    for (int i = 0; i < n; i++) {
        char off[32];
        if (r[i].cfg.closed) snprintf(off, sizeof off, "%dc", r[i].cfg.clients);
        else snprintf(off, sizeof off, "%.2f", r[i].cfg.rate);
        fprintf(out, "%-13s %6s %8s %5.1fs %8.2f %9.0f %9.1f %7lld %7.1f%% %9.1f %9.2f %6.2f%% %6.2f\n",
                r[i].cfg.label, r[i].cfg.closed ? "closed" : "open", off, r[i].window_s, r[i].req_s, r[i].out_tok_s,
                r[i].seqs_per_step, (long long)r[i].preempted, 100 * r[i].hit_rate, r[i].sched_us,
                r[i].fwd_us / 1e3, r[i].sched_pct, r[i].others);
    }
    fprintf(out, "\n%-13s %6s %23s %23s %23s %5s\n", "run", "n", "TTFT ms p50/p90/p99", "TPOT ms p50/p90/p99",
            "E2E ms p50/p90/p99", "err");
    for (int i = 0; i < n; i++)
        fprintf(out, "%-13s %6d %7.1f %7.1f %7.1f %7.2f %7.2f %7.2f %7.0f %7.0f %7.0f %5d\n", r[i].cfg.label,
                r[i].measured, 1e3 * r[i].ttft[0], 1e3 * r[i].ttft[1], 1e3 * r[i].ttft[2], 1e3 * r[i].tpot[0],
                1e3 * r[i].tpot[1], 1e3 * r[i].tpot[2], 1e3 * r[i].e2e[0], 1e3 * r[i].e2e[1], 1e3 * r[i].e2e[2],
                r[i].errors + r[i].rejected);
    fprintf(out, "(offered: requests/s, or N clients; window: seconds measured; req/s, out tok/s: completions\n"
                 " and tokens in the window; seqs/step: tokens sampled per engine step; prefix%%: prompt tokens\n"
                 " taken from the prefix cache; sched us: engine host time per step outside forward passes\n"
                 " (admission, batch building, sampling, events; a greedy row's argmax is part of the\n"
                 " forward pass, as on the GPU); sched%%: of sched + forward; others: cores\n"
                 " other processes used meanwhile; n: requests measured)\n");
    double worst = 0;
    for (int i = 0; i < n; i++) worst = r[i].others > worst ? r[i].others : worst;
    if (worst > 0.25)
        fprintf(out, "WARNING: other processes used up to %.2f cores during the runs: the numbers are low and\n"
                     "noisy, and loads in %% of a max measured at another time are off\n", worst);
}

/* A gnuplot single-quoted string: ' doubles. */
static void gp_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static void plot_sweep(const bench *b, const run_result *mx, const run_result *unl, const run_result *open,
                       int n_open)
{
    const char *png = b->o->png_path;
    if (!png || n_open == 0) return;
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, PROG ": gnuplot not found: no plot (apt-get install gnuplot-nox)\n");
        return;
    }
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        fprintf(stderr, PROG ": cannot run gnuplot: %s\n", strerror(errno));
        return;
    }
    fprintf(g, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1100,650 "
               "font 'sans,11' } else { set terminal png size 1100,650 }\nset output ");
    gp_str(g, png);
    fprintf(g, "\nset title ");
    char title[512];
    snprintf(title, sizeof title, "libinfer serve\\_load: %s; prompts %s, outputs %s%s", b->model_desc,
             b->o->plen.spec, b->o->olen.spec, b->prefix_tokens ? ", shared prefix" : "");
    gp_str(g, title);
    fprintf(g, "\nset xlabel 'offered load (requests/s, Poisson)'\nset ylabel 'TTFT (ms, log scale)'\n"
               "set y2label 'throughput (requests/s)'\nset ytics nomirror\nset y2tics\nset grid\n"
               "set key top left box opaque\nset xrange [0:%g]\nset logscale y\nset y2range [0:%g]\n",
            1.1 * mx->req_s, 1.6 * mx->req_s);
    fprintf(g, "$d << EOD\n");
    for (int i = 0; i < n_open; i++)
        fprintf(g, "%g %g %g %g %g\n", open[i].cfg.rate, open[i].cfg.load_pct, 1e3 * open[i].ttft[2],
                1e3 * open[i].ttft[0], open[i].req_s);
    fprintf(g, "EOD\n");
    double goal = 2e3 * unl->ttft[2];
    fprintf(g,
            "plot $d using 1:3 with linespoints lw 2 pt 7 ps 1.3 lc rgb '#c0392b' title 'p99 TTFT', \\\n"
            "  $d using 1:3:(sprintf('%%d%%%%', $2)) with labels offset 0,1 notitle, \\\n"
            "  $d using 1:4 with linespoints lw 1 pt 6 dt 2 lc rgb '#e67e22' title 'p50 TTFT', \\\n"
            "  %g with lines lw 1 dt 3 lc rgb '#c0392b' title sprintf('goal: p99 TTFT at 80%%%% <= 2x unloaded "
            "p99 (%.1f ms)'), \\\n"
            "  $d using 1:5 axes x1y2 with linespoints lw 2 pt 5 ps 1.2 lc rgb '#2471a3' title 'throughput "
            "(completed req/s)', \\\n"
            "  %g axes x1y2 with lines lw 1 dt 4 lc rgb '#2471a3' title sprintf('max throughput, closed loop "
            "(%.1f req/s)'), \\\n"
            "  x axes x1y2 with lines lw 1 dt 2 lc rgb '#7f8c8d' title 'throughput = offered load'\n",
            goal, goal, mx->req_s, mx->req_s);
    int rc = pclose(g);
    if (rc != 0) fprintf(stderr, PROG ": gnuplot failed (status %d); no plot\n", rc);
    else fprintf(stderr, "plot: %s\n", png);
}

/* ----------------------------------------------------------------------------------- main */

static int mkdir_parents(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

/* The synthetic model: write it, open it, unlink it; load through /proc/self/fd/N. */
static int synth_model(bench *b, const bench_shape *sh, char *path, size_t cap, int *fd_out)
{
    const char *tmp = getenv("TMPDIR");
    char dir[1024], file[1100];
    snprintf(dir, sizeof dir, "%s/serve_load.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, PROG ": cannot create a temporary folder '%s': %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(file, sizeof file, "%s/%s.bin", dir, sh->name);
    fprintf(stderr, "writing a %s-shaped checkpoint (%.0f MB)...\n", sh->name,
            (double)bench_checkpoint_bytes(sh) / 1e6);
    int rc = bench_write_checkpoint(file, sh);
    int fd = rc ? -1 : open(file, O_RDONLY | O_CLOEXEC);
    if (!rc && fd < 0) fprintf(stderr, PROG ": cannot reopen '%s': %s\n", file, strerror(errno));
    unlink(file);
    rmdir(dir);
    if (fd < 0) return -1;
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    snprintf(b->model_desc, sizeof b->model_desc, "synthetic %s (dim %d, %d layers, vocab %d), fp32", sh->name,
             sh->dim, sh->n_layers, sh->vocab);
    *fd_out = fd;
    return 0;
}

typedef struct goals {
    int have_ttft, have_prefix, have_sched;
    double ttft_p99_80, ttft_unl_p50, ttft_unl_p99, ttft_load;
    double pfx_on, pfx_off, pfx_tok_on, pfx_tok_off, pfx_hit, pfx_mean_prompt;
    int pfx_tokens;
    double sched_pct, sched_us, sched_seqs;
} goals;

int main(int argc, char **argv)
{
    opts o;
    if (parse_args(argc, argv, &o)) return 2;
    bench b;
    memset(&b, 0, sizeof b);
    b.o = &o;
    struct stat mst;
    if (o.model && stat(o.model, &mst) != 0) {
        fprintf(stderr, PROG ": --model '%s': %s\n", o.model, strerror(errno));
        return 2;
    }
    char tokbuf[4096], model_path[64];
    int model_fd = -1;
    b.tok_path = o.tokenizer;
    bench_shape sh = { "15m", "stories15M", 288, 768, 6, 6, 6, 32000, 1024 };
    if (!o.model) {
        if (!b.tok_path) b.tok_path = bench_shared_file("models/tokenizer.bin", tokbuf, sizeof tokbuf);
        if (!b.tok_path) {
            fprintf(stderr, PROG ": no Llama-2 tokenizer.bin found in $INFER_SHARED/models, ../shared/models or "
                            "shared/models: pass -z PATH\n");
            return 2;
        }
        int max_tokens = o.plen.hi + o.olen.hi + 1;
        if (o.prefix_compare) {
            int pm = o.pfx_plen.hi + o.pfx_olen.hi + 1;
            if (pm > max_tokens) max_tokens = pm;
        }
        if (max_tokens > sh.seq_len) sh.seq_len = (max_tokens + 255) / 256 * 256; /* the longest must fit */
        if (synth_model(&b, &sh, model_path, sizeof model_path, &model_fd)) return 1;
        b.model_path = model_path;
        uint64_t blocks = (uint64_t)(max_tokens + 15) / 16 + 1;
        b.kv_bytes = o.kv_mb > 0 ? (size_t)o.kv_mb << 20
                                 : (size_t)((uint64_t)o.max_running * blocks * 16 * bench_kv_bytes_per_token(&sh));
    } else {
        b.model_path = o.model;
        snprintf(b.model_desc, sizeof b.model_desc, "%s", o.model);
        b.kv_bytes = (size_t)(o.kv_mb > 0 ? o.kv_mb : 512) << 20;
    }
    if (b.tok_path) fprintf(stderr, "tokenizer: %s\n", b.tok_path);

    FILE *js = NULL;
    if (o.json_path && strcmp(o.json_path, "-") != 0) {
        if (mkdir_parents(o.json_path) != 0 || !(js = fopen(o.json_path, "w"))) {
            fprintf(stderr, PROG ": cannot write '%s': %s\n", o.json_path, strerror(errno));
            return 2;
        }
    } else {
        js = stdout;
    }
    if (o.png_path && mkdir_parents(o.png_path) != 0) {
        fprintf(stderr, PROG ": cannot create the folder of '%s': %s\n", o.png_path, strerror(errno));
        return 2;
    }

    run_result res[MAX_RUNS];
    const char *group[MAX_RUNS];
    int n_res = 0, failed = 1;
    goals g;
    memset(&g, 0, sizeof g);
    infer_session *s = session_open(&b, o.prefix_cache);
    if (!s) goto done;
    fprintf(stderr, "collecting single-token words of the vocabulary...\n");
    if (collect_words(&b, s)) goto done;
    fprintf(stderr, "  %d words\n", b.n_words);
    uint64_t stream = 1;

    int need_main = o.single || o.sweep || o.overhead;
    if (need_main) {
        if (prefix_setup(&b, s, o.prefix_pct > 0 ? o.prefix_pct : 0)) goto done;
        fprintf(stderr, "warm-up...\n");
        if (warm_up(&b, s)) goto done;
    }
    if (o.single) {
        run_cfg c = { "", o.single == 2, o.clients, o.rate, 0, stream++, o.prefix_cache };
        if (o.single == 2) snprintf(c.label, sizeof c.label, "closed-%d", o.clients);
        else snprintf(c.label, sizeof c.label, "open-%.3g", o.rate);
        group[n_res] = "single";
        if (measure(&b, s, &c, &stream, &res[n_res])) goto done;
        const run_result *r = &res[n_res++];
        if (r->seqs_per_step >= 60) {
            g.have_sched = 1;
            g.sched_pct = r->sched_pct;
            g.sched_us = r->sched_us;
            g.sched_seqs = r->seqs_per_step;
        }
    }
    int sched_from_sweep = 0;
    if (o.sweep) {
        int i_max = n_res;
        run_cfg c = { "max", 1, o.max_clients, 0, 0, 0, o.prefix_cache };
        snprintf(c.label, sizeof c.label, "max-%dc", o.max_clients);
        group[n_res] = "sweep";
        for (int k = 0; k < o.repeat; k++) { /* the best of --repeat: others only slow a run down */
            run_result one;
            if (measure(&b, s, &c, &stream, &one)) goto done;
            if (k == 0 || one.req_s > res[i_max].req_s) res[i_max] = one;
        }
        n_res++;
        double max_rps = res[i_max].req_s;
        if (max_rps <= 0) {
            fprintf(stderr, PROG ": no request completed in the max-throughput window: lengthen --duration\n");
            goto done;
        }
        if (o.max_clients >= 64 && o.max_running >= 64) {
            sched_from_sweep = 1;
            g.have_sched = 1;
            g.sched_pct = res[i_max].sched_pct;
            g.sched_us = res[i_max].sched_us;
            g.sched_seqs = res[i_max].seqs_per_step;
        }
        int i_unl = n_res;
        run_cfg u = { "unloaded-1c", 1, 1, 0, 0, stream++, o.prefix_cache };
        group[n_res] = "sweep";
        if (measure(&b, s, &u, &stream, &res[n_res++])) goto done;
        int i_open = n_res;
        for (int k = 0; k < o.n_loads; k++) {
            run_cfg x = { "", 0, 0, max_rps * o.loads[k] / 100.0, o.loads[k], stream++, o.prefix_cache };
            snprintf(x.label, sizeof x.label, "open-%d%%", o.loads[k]);
            group[n_res] = "sweep";
            if (measure(&b, s, &x, &stream, &res[n_res++])) goto done;
            if (o.loads[k] == 80) {
                g.have_ttft = 1;
                g.ttft_p99_80 = res[n_res - 1].ttft[2];
                g.ttft_unl_p50 = res[i_unl].ttft[0];
                g.ttft_unl_p99 = res[i_unl].ttft[2];
                g.ttft_load = res[n_res - 1].cfg.rate;
            }
        }
        plot_sweep(&b, &res[i_max], &res[i_unl], &res[i_open], n_res - i_open);
    }
    if (o.overhead && !sched_from_sweep) {
        opts o2 = o;
        if (o2.max_running < 64) o2.max_running = 64;
        bench b2 = b;
        b2.o = &o2;
        infer_session *s2 = o2.max_running != o.max_running ? session_open(&b2, o.prefix_cache) : s;
        if (!s2) goto done;
        run_cfg c = { "overhead-64c", 1, 64, 0, 0, stream++, o.prefix_cache };
        group[n_res] = "overhead";
        int rc = (s2 != s && warm_up(&b2, s2)) || measure(&b2, s2, &c, &stream, &res[n_res]);
        if (s2 != s) infer_session_destroy(s2);
        if (rc) goto done;
        g.have_sched = 1;
        g.sched_pct = res[n_res].sched_pct;
        g.sched_us = res[n_res].sched_us;
        g.sched_seqs = res[n_res].seqs_per_step;
        n_res++;
    }
    if (o.prefix_compare) {
        /* Both sessions at once, runs alternating off/on (--repeat times, the best of each arm
        ** counts), so that a busy spell of the machine does not favour one arm. Repetition k of
        ** both arms sends the same requests; different repetitions send different ones. */
        infer_session_destroy(s);
        s = NULL;
        double pct = o.prefix_pct > 0 ? o.prefix_pct : 50;
        opts op = o; /* its own workload: long prompts with a shared system prompt */
        op.plen = o.pfx_plen;
        op.olen = o.pfx_olen;
        op.max_clients = o.pfx_clients; /* warm_up sends this many */
        bench bp = b;
        bp.o = &op;
        infer_session *sp[2] = { session_open(&bp, 0), NULL };
        sp[1] = sp[0] ? session_open(&bp, 1) : NULL;
        int rc = !sp[1] || prefix_setup(&bp, sp[0], pct);
        b.prefix_text = bp.prefix_text; /* prefix_setup replaced it: freed once, at the end */
        b.prefix_tokens = bp.prefix_tokens;
        rc = rc || warm_up(&bp, sp[0]) || warm_up(&bp, sp[1]);
        int i_arm[2] = { n_res, n_res + 1 };
        uint64_t base = stream;
        stream += (uint64_t)o.repeat;
        for (int k = 0; k < o.repeat && !rc; k++) {
            for (int on = 0; on < 2 && !rc; on++) {
                run_cfg c = { "", 1, o.pfx_clients, 0, 0, base + (uint64_t)k, on };
                snprintf(c.label, sizeof c.label, "prefix%.0f-%s", pct, on ? "on" : "off");
                fprintf(stderr, "prefix cache %s, %.0f%% shared prefix (%d tokens):\n", on ? "on" : "off", pct,
                        bp.prefix_tokens);
                run_result one;
                rc = run_one(&bp, sp[on], &c, &one);
                if (!rc && (k == 0 || one.req_s > res[i_arm[on]].req_s)) res[i_arm[on]] = one;
            }
        }
        infer_session_destroy(sp[0]);
        infer_session_destroy(sp[1]);
        if (rc) goto done;
        group[n_res] = group[n_res + 1] = "prefix_compare";
        n_res += 2;
        g.pfx_off = res[i_arm[0]].req_s;
        g.pfx_tok_off = res[i_arm[0]].out_tok_s;
        g.pfx_on = res[i_arm[1]].req_s;
        g.pfx_tok_on = res[i_arm[1]].out_tok_s;
        g.pfx_hit = res[i_arm[1]].hit_rate;
        g.pfx_tokens = bp.prefix_tokens;
        g.pfx_mean_prompt = res[i_arm[1]].mean_prompt;
        g.have_prefix = 1;
    }
    failed = 0;

done:
    infer_session_destroy(s);
    if (n_res > 0) {
        printf("\nserve_load: libinfer %s, %s\n", infer_version(), b.model_desc);
        printf("%s backend, %d threads, max_running %d, max_batch_tokens %d, prompts %s, outputs %s, "
               "%s, seed %llu\n",
               o.backend_name, o.threads, o.max_running, o.max_batch_tokens, o.plen.spec,
               o.olen.spec, o.temperature > 0 ? "sampled" : "greedy", (unsigned long long)o.seed);
        if (o.prefix_compare)
            printf("prefix-compare workload: prompts %s, outputs %s, %.0f%% shared prefix\n", o.pfx_plen.spec,
                   o.pfx_olen.spec, o.prefix_pct > 0 ? o.prefix_pct : 50);
        if (o.requests > 0) printf("%d requests per run, all measured\n\n", o.requests);
        else printf("runs of %.0f s, the first %s not measured; longer until about %d requests are measured\n\n",
                    o.duration, o.warmup >= 0 ? "--warmup s" : "15%", o.min_requests);
        print_tables(stdout, res, n_res);
        for (int i = 0; i < n_res; i++) json_run(js, &b, &res[i], group[i]);
    }
    if (g.have_ttft || g.have_prefix || g.have_sched) {
        printf("\ngoals:\n");
        fprintf(js, "{\"bench\":\"serve_load\",\"kind\":\"goals\"");
        if (g.have_ttft) {
            /* Like for like: the same percentile of the same prompt lengths, loaded and not. */
            double ratio = g.ttft_p99_80 / g.ttft_unl_p99;
            printf("  p99 TTFT at 80%% load (%.2f req/s) <= 2x unloaded p99 TTFT: %.1f vs %.1f ms: %.2fx  %s\n"
                   "    (against the unloaded median, %.1f ms: %.2fx)\n",
                   g.ttft_load, 1e3 * g.ttft_p99_80, 1e3 * g.ttft_unl_p99, ratio, ratio <= 2 ? "met" : "NOT MET",
                   1e3 * g.ttft_unl_p50, g.ttft_p99_80 / g.ttft_unl_p50);
            json_num(js, "ttft_p99_at_80pct_ms", 1e3 * g.ttft_p99_80);
            json_num(js, "ttft_unloaded_p50_ms", 1e3 * g.ttft_unl_p50);
            json_num(js, "ttft_unloaded_p99_ms", 1e3 * g.ttft_unl_p99);
            json_num(js, "ttft_ratio", ratio);
            fprintf(js, ",\"ttft_goal_met\":%s", ratio <= 2 ? "true" : "false");
        }
        if (g.have_prefix) {
            double ratio = g.pfx_on / g.pfx_off;
            printf("  prefix caching raises max throughput >= 1.5x (%.0f%% shared prefix): %.2f vs %.2f req/s: "
                   "%.2fx (out tok/s %.2fx; hit rate %.1f%%)  %s\n"
                   "    (prompts %s, mean %.0f tokens, the first %d shared; outputs %s)\n",
                   o.prefix_pct > 0 ? o.prefix_pct : 50, g.pfx_on, g.pfx_off, ratio, g.pfx_tok_on / g.pfx_tok_off,
                   100 * g.pfx_hit, ratio >= 1.5 ? "met" : "NOT MET", o.pfx_plen.spec, g.pfx_mean_prompt,
                   g.pfx_tokens, o.pfx_olen.spec);
            json_num(js, "prefix_on_req_s", g.pfx_on);
            json_num(js, "prefix_off_req_s", g.pfx_off);
            json_num(js, "prefix_ratio", ratio);
            json_num(js, "prefix_hit_rate", g.pfx_hit);
            fprintf(js, ",\"prefix_prompt_len\":\"%s\",\"prefix_output_len\":\"%s\",\"prefix_tokens\":%d",
                    o.pfx_plen.spec, o.pfx_olen.spec, g.pfx_tokens);
            fprintf(js, ",\"prefix_goal_met\":%s", ratio >= 1.5 ? "true" : "false");
        }
        if (g.have_sched) {
            /* issue 5's goal: < 1% of the step on the CPU, < 3% on a GPU (its steps are shorter) */
            double lim = o.backend == INFER_BACKEND_CUDA ? 3.0 : 1.0;
            printf("  scheduling overhead < %.0f%% (%s) at 64 running sequences: %.2f%% (%.0f us/step at %.1f "
                   "seqs/step)  %s\n", lim, o.backend_name, g.sched_pct, g.sched_us, g.sched_seqs,
                   g.sched_pct < lim ? "met" : "NOT MET");
            json_num(js, "sched_pct_64", g.sched_pct);
            json_num(js, "sched_us_per_step_64", g.sched_us);
            json_num(js, "seqs_per_step_64", g.sched_seqs);
            fprintf(js, ",\"sched_goal_met\":%s", g.sched_pct < lim ? "true" : "false");
        }
        fprintf(js, "}\n");
    }
    if (js != stdout && fclose(js) != 0) {
        fprintf(stderr, PROG ": writing '%s' failed\n", o.json_path);
        failed = 1;
    }
    if (model_fd >= 0) close(model_fd);
    for (int i = 0; i < b.n_words; i++) free(b.words[i]);
    free(b.words);
    free(b.word_tokens);
    free(b.prefix_text);
    return failed;
}
