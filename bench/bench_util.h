/*
** bench_util.h — helpers the decode benchmarks share: model shapes and what a decode step
** reads, synthetic llama2.c checkpoints and tokenizers of those shapes (so a benchmark needs
** no downloaded weights: the speed of an fp32 forward pass does not depend on the values),
** finding ../shared, timing, how much CPU other processes took during a measurement, option
** parsing, and the decode-window run of N concurrent greedy requests through <infer.h>.
** Header-only on purpose, like tests/test_util.h: each benchmark is one program. Messages
** start with PROG, which the including benchmark defines first.
*/
#ifndef INFER_BENCH_UTIL_H
#define INFER_BENCH_UTIL_H

#ifndef PROG
#error "define PROG (the benchmark's name, for messages) before including bench_util.h"
#endif

#include <infer.h>

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A Llama model shape as a llama2.c header states it. */
typedef struct bench_shape {
    const char *key;   /* command-line name, e.g. "110m" */
    const char *name;  /* e.g. "stories110M" */
    int dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
} bench_shape;

static inline uint64_t bench_kv_dim(const bench_shape *sh)
{
    return (uint64_t)sh->n_kv_heads * (uint64_t)(sh->dim / sh->n_heads);
}

/* fp32 weight bytes one decode step reads: every matrix and norm once, the classifier (shared
** with the embedding or not), but of the embedding only the row gathered, which is ignored. */
static inline uint64_t bench_weight_bytes(const bench_shape *sh)
{
    uint64_t D = (uint64_t)sh->dim, H = (uint64_t)sh->hidden, L = (uint64_t)sh->n_layers;
    uint64_t kvd = bench_kv_dim(sh), V = (uint64_t)sh->vocab;
    return 4 * (L * (2 * D + 2 * D * D + 2 * D * kvd + 3 * D * H) + D + V * D);
}

/* fp32 K and V of one position over all layers: what attention reads per position attended. */
static inline uint64_t bench_kv_bytes_per_token(const bench_shape *sh)
{
    return 4 * (uint64_t)sh->n_layers * 2 * bench_kv_dim(sh);
}

/* Size of the llama2.c legacy checkpoint bench_write_checkpoint writes (shared classifier). */
static inline uint64_t bench_checkpoint_bytes(const bench_shape *sh)
{
    uint64_t D = (uint64_t)sh->dim, H = (uint64_t)sh->hidden, L = (uint64_t)sh->n_layers;
    uint64_t kvd = bench_kv_dim(sh), V = (uint64_t)sh->vocab, hd = D / (uint64_t)sh->n_heads;
    uint64_t n = V * D + L * D + L * D * D + 2 * L * D * kvd + L * D * D + L * D + 3 * L * D * H + D +
                 (uint64_t)sh->seq_len * hd;
    return 28 + 4 * n;
}

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* splitmix64 (Steele, Lea, Flood, OOPSLA 2014): a fixed seed gives the same file every run. */
static inline uint64_t bench_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The next n synthetic values: uniform in [-amp, amp) when amp > 0, else all `fill`. Every
** value draws from rng either way, so a writer of another format that generates the tensors
** in the checkpoint's order gets the same values. */
static inline void bench_fill_floats(float *dst, size_t n, float amp, float fill, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        float u = (float)(bench_rng_next(rng) >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        dst[i] = amp > 0 ? (2.0f * u - 1.0f) * amp : fill;
    }
}

/* n floats to f (bench_fill_floats). 0 or -1. */
static inline int bench_write_floats(FILE *f, uint64_t n, float amp, float fill, uint64_t *rng)
{
    float buf[16384];
    while (n > 0) {
        size_t k = n < 16384 ? (size_t)n : 16384;
        bench_fill_floats(buf, k, amp, fill, rng);
        if (fwrite(buf, sizeof(float), k, f) != k) return -1;
        n -= k;
    }
    return 0;
}

#define BENCH_SEED 0x5eed15u /* of the synthetic weights */
#define BENCH_AMP 0.02f      /* their range: +-BENCH_AMP */

/* A llama2.c legacy checkpoint (karpathy/llama2.c export.py, version 0) of shape sh: 7 int32
** header fields, then fp32 tensors in the format's order; matrices uniform in +-0.02 (fixed
** seed), norms 1.0, shared classifier, the unused freq_cis tables zero. 0, or -1 with a
** message on stderr. */
static inline int bench_write_checkpoint(const char *path, const bench_shape *sh)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot create '%s': %s\n", path, strerror(errno));
        return -1;
    }
    uint64_t D = (uint64_t)sh->dim, H = (uint64_t)sh->hidden, L = (uint64_t)sh->n_layers;
    uint64_t kvd = bench_kv_dim(sh), V = (uint64_t)sh->vocab, hd = D / (uint64_t)sh->n_heads;
    int32_t hdr[7] = { sh->dim, sh->hidden, sh->n_layers, sh->n_heads, sh->n_kv_heads,
                       sh->vocab /* positive: shared classifier */, sh->seq_len };
    uint64_t rng = BENCH_SEED;
    const float a = BENCH_AMP;
    int rc = fwrite(hdr, sizeof hdr, 1, f) == 1 ? 0 : -1;
    if (!rc) rc = bench_write_floats(f, V * D, a, 0, &rng);       /* token_embedding */
    if (!rc) rc = bench_write_floats(f, L * D, 0, 1.0f, &rng);    /* rms_att */
    if (!rc) rc = bench_write_floats(f, L * D * D, a, 0, &rng);   /* wq */
    if (!rc) rc = bench_write_floats(f, L * D * kvd, a, 0, &rng); /* wk */
    if (!rc) rc = bench_write_floats(f, L * D * kvd, a, 0, &rng); /* wv */
    if (!rc) rc = bench_write_floats(f, L * D * D, a, 0, &rng);   /* wo */
    if (!rc) rc = bench_write_floats(f, L * D, 0, 1.0f, &rng);    /* rms_ffn */
    if (!rc) rc = bench_write_floats(f, L * H * D, a, 0, &rng);   /* w1 */
    if (!rc) rc = bench_write_floats(f, L * D * H, a, 0, &rng);   /* w2 */
    if (!rc) rc = bench_write_floats(f, L * H * D, a, 0, &rng);   /* w3 */
    if (!rc) rc = bench_write_floats(f, D, 0, 1.0f, &rng);        /* rms_final */
    if (!rc) rc = bench_write_floats(f, (uint64_t)sh->seq_len * hd, 0, 0, &rng); /* freq_cis */
    if (fclose(f) != 0) rc = -1;
    if (rc) fprintf(stderr, "writing '%s' failed: %s\n", path, strerror(errno));
    return rc;
}

static inline int bench_put_token(FILE *f, float score, const char *s, size_t len)
{
    int32_t n = (int32_t)len;
    return fwrite(&score, sizeof score, 1, f) == 1 && fwrite(&n, sizeof n, 1, f) == 1 &&
           fwrite(s, 1, len, f) == len ? 0 : -1;
}

/* A llama2.c tokenizer.bin of `vocab` (>= 260) entries: int32 max_token_length, then per token
** {float score, int32 len, bytes}: 0 "<unk>", 1 "\n<s>\n", 2 "\n</s>\n", 3..258 "<0xHH>" (the
** byte fallback), 259 " ", then distinct lowercase strings (bijective base 26, every other
** one with a leading space; shorter ones score higher, so merges prefer them). */
static inline int bench_write_tokenizer(const char *path, int vocab)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot create '%s': %s\n", path, strerror(errno));
        return -1;
    }
    int32_t max_len = 8;
    int rc = fwrite(&max_len, sizeof max_len, 1, f) == 1 ? 0 : -1;
    if (!rc) rc = bench_put_token(f, 0, "<unk>", 5);
    if (!rc) rc = bench_put_token(f, 0, "\n<s>\n", 5);
    if (!rc) rc = bench_put_token(f, 0, "\n</s>\n", 6);
    for (int b = 0; b < 256 && !rc; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", (unsigned)b);
        rc = bench_put_token(f, 0, s, 6);
    }
    if (!rc) rc = bench_put_token(f, -1.0f, " ", 1);
    for (int id = 260, k = 0; id < vocab && !rc; id++, k++) {
        char tmp[8], s[8];
        int n = 0, len = 0;
        for (int v = k / 2 + 1; v > 0 && n < 6; v = (v - 1) / 26) tmp[n++] = (char)('a' + (v - 1) % 26);
        if (k & 1) s[len++] = ' ';
        while (n > 0) s[len++] = tmp[--n];
        rc = bench_put_token(f, -(float)id, s, (size_t)len);
    }
    if (fclose(f) != 0) rc = -1;
    if (rc) fprintf(stderr, "writing '%s' failed: %s\n", path, strerror(errno));
    return rc;
}

/* Path of `rel` under the shared data folder ($INFER_SHARED, else ../shared, else shared/
** for a checkout that carries it) into buf if that file exists; NULL otherwise. */
static inline const char *bench_shared_file(const char *rel, char *buf, size_t cap)
{
    const char *env = getenv("INFER_SHARED");
    const char *roots[3] = { env && *env ? env : NULL, "../shared", "shared" };
    for (int i = 0; i < 3; i++) {
        if (!roots[i]) continue;
        if (snprintf(buf, cap, "%s/%s", roots[i], rel) < (int)cap && bench_file_exists(buf)) return buf;
    }
    return NULL;
}

/* The cores this process may run on (its affinity mask: taskset, cgroup cpusets), which is
** what "all cores" means for a benchmark; sysconf(_SC_NPROCESSORS_ONLN) counts the machine's. */
static inline int bench_cpu_count(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* CPU time the whole machine spent busy (plus what the hypervisor stole) and this process
** used, to tell how much of the machine other programs took during a measurement: a
** spinning thread pool is very sensitive to a shared core. Busy fields are 0 without
** /proc/stat (then bench_cpu_others reports 0). */
typedef struct bench_cpu_sample {
    double wall, busy, steal, self;  /* seconds */
} bench_cpu_sample;

static inline void bench_cpu_sample_take(bench_cpu_sample *c)
{
    memset(c, 0, sizeof *c);
    c->wall = bench_now_s();
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long v[8] = { 0 };
        /* cpu  user nice system idle iowait irq softirq steal ... (in USER_HZ ticks) */
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7]) == 8) {
            double hz = (double)sysconf(_SC_CLK_TCK);
            c->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
            c->steal = (double)v[7] / hz;
        }
        fclose(f);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        c->self = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Cores' worth of CPU that other processes (and steal) took between samples a and b. */
static inline double bench_cpu_others(const bench_cpu_sample *a, const bench_cpu_sample *b)
{
    double dt = b->wall - a->wall;
    if (dt <= 0 || b->busy == 0) return 0;
    double other = (b->busy - a->busy) - (b->self - a->self) + (b->steal - a->steal);
    return other > 0 ? other / dt : 0;
}

/* -------------------------------------------------------------------------- options */

static inline int bench_parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, PROG ": %s needs an integer in [%d, %d], got '%s'\n", opt, lo, hi, v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 0;
}

static inline int bench_parse_double(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, PROG ": %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

/* The JSON lines' stream: stdout when path is NULL or "-", else the file (NULL, with a message,
** when it cannot be created). */
static inline FILE *bench_open_json(const char *path)
{
    if (!path || !strcmp(path, "-")) return stdout;
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, PROG ": cannot write '%s': %s\n", path, strerror(errno));
    return f;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ libinfer requests */

#define BENCH_POLL_STALL_S 300.0 /* no event for this long: give up (a hung engine) */
#define BENCH_EV_CAP 512         /* events taken per infer_poll */

static inline int bench_fail_api(const char *what, infer_status st)
{
    fprintf(stderr, PROG ": %s failed: %s: %s\n", what, infer_status_str(st), infer_last_error(NULL));
    return -1;
}

static inline int bench_get_stats(infer_session *s, infer_stats *st)
{
    memset(st, 0, sizeof *st);
    st->size = sizeof *st;
    infer_status rc = infer_session_stats(s, st);
    return rc ? bench_fail_api("infer_session_stats", rc) : 0;
}

/* What one run of N concurrent requests measured. The decode window runs from the poll that
** returns the last of the N first tokens (prefill is over for all N) to the poll that returns
** the last DONE; both ends are seen through the same poll wake-up, so its latency cancels. */
typedef struct bench_decode_out {
    double ttft_s;          /* first submit -> the start of the window */
    double window_s;
    long decode_tokens;     /* generated tokens in the window: each sequence's after its first */
    double tok_s;           /* decode_tokens / window_s, aggregate over the N sequences */
    double mean_ctx;        /* positions attended per sequence per step, averaged */
    int first_prompt;       /* prompt tokens of the first request */
    int prompt_mismatch;    /* prompt tokens of a request that had not the expected count; else 0 */
    int64_t steps, preempted, sched_ns, forward_ns; /* engine counters over the run */
    double others;          /* cores other processes took in the window (BENCH_DECODE_OTHERS) */
} bench_decode_out;

/* bench_decode_run flags. Sampling /proc/stat at the window's start costs a little time inside
** the window, so only the benchmark that reports it asks for it. */
#define BENCH_DECODE_OTHERS 1

typedef struct bench_seq {
    int first, prompt, generated;
} bench_seq;

/* N concurrent greedy requests (temperature 0, ignore_eos) to model "m" of `new_tokens` each,
** request i with prompts[i % n_prompts], which should encode to `prompt_tokens`; submitted
** together (waiting out INFER_EBUSY), then polled until all are done. 0, or -1 with a message. */
static inline int bench_decode_run(infer_session *s, char *const *prompts, int n_prompts, int prompt_tokens,
                                   int N, int new_tokens, int flags, bench_decode_out *r)
{
    bench_seq *q = calloc((size_t)N, sizeof *q);
    infer_event *ev = malloc(BENCH_EV_CAP * sizeof *ev);
    if (!q || !ev) {
        free(q);
        free(ev);
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    infer_stats st0, st1;
    if (bench_get_stats(s, &st0)) goto fail;

    double t_submit = bench_now_s();
    for (int i = 0; i < N; i++) {
        infer_request rq;
        infer_request_init(&rq);
        rq.model = "m";
        rq.prompt = prompts[i % n_prompts];
        rq.max_tokens = new_tokens;
        rq.temperature = 0.0f;
        rq.ignore_eos = 1;
        rq.user_data = &q[i];
        infer_request_id id;
        infer_status rc;
        while ((rc = infer_submit(s, &rq, &id)) == INFER_EBUSY) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        if (rc) {
            bench_fail_api("infer_submit", rc);
            goto fail;
        }
    }

    int n_first = 0, n_done = 0;
    long window_tokens = 0;
    double t_first = 0, t_end = 0, t_last_ev = bench_now_s();
    bench_cpu_sample c0, c1;
    memset(&c0, 0, sizeof c0);
    memset(&c1, 0, sizeof c1);
    while (n_done < N) {
        int n = infer_poll(s, ev, BENCH_EV_CAP, 1000);
        double t = bench_now_s();
        if (n < 0) {
            bench_fail_api("infer_poll", (infer_status)n);
            goto fail;
        }
        if (n == 0) {
            if (t - t_last_ev > BENCH_POLL_STALL_S) {
                fprintf(stderr, PROG ": no event for %.0f s (%d of %d requests done); giving up\n",
                        BENCH_POLL_STALL_S, n_done, N);
                goto fail;
            }
            continue;
        }
        t_last_ev = t;
        for (int i = 0; i < n; i++) {
            bench_seq *x = ev[i].user_data;
            if (ev[i].type == INFER_EVENT_TOKEN) {
                if (!x->first) {
                    x->first = 1;
                    if (++n_first == N) {
                        t_first = t;
                        if (flags & BENCH_DECODE_OTHERS) bench_cpu_sample_take(&c0);
                    }
                } else if (n_first == N) {
                    window_tokens++;
                }
            } else if (ev[i].type == INFER_EVENT_DONE) {
                if (ev[i].status != INFER_OK) {
                    fprintf(stderr, PROG ": a request ended with %s after %d tokens: %s\n",
                            infer_status_str(ev[i].status), (int)ev[i].n_generated, infer_last_error(NULL));
                    goto fail;
                }
                x->prompt = ev[i].n_prompt_tokens;
                x->generated = ev[i].n_generated;
                if (++n_done == N) t_end = t;
            }
        }
    }
    if (flags & BENCH_DECODE_OTHERS) bench_cpu_sample_take(&c1);
    if (bench_get_stats(s, &st1)) goto fail;

    memset(r, 0, sizeof *r);
    double sum_ctx = 0;
    for (int i = 0; i < N; i++) {
        if (q[i].generated != new_tokens)
            fprintf(stderr, PROG ": warning: a request generated %d tokens, not %d\n", q[i].generated, new_tokens);
        if (q[i].prompt != prompt_tokens) r->prompt_mismatch = q[i].prompt;
        sum_ctx += q[i].prompt + q[i].generated / 2.0; /* mean of P+1 .. P+G-1 */
    }
    r->first_prompt = q[0].prompt;
    r->mean_ctx = sum_ctx / N;
    r->decode_tokens = window_tokens;
    r->window_s = t_end - t_first;
    r->ttft_s = t_first - t_submit;
    r->tok_s = r->window_s > 0 ? (double)window_tokens / r->window_s : 0;
    r->steps = st1.steps - st0.steps;
    r->preempted = st1.preempted - st0.preempted;
    r->sched_ns = st1.sched_ns - st0.sched_ns;
    r->forward_ns = st1.forward_ns - st0.forward_ns;
    r->others = flags & BENCH_DECODE_OTHERS ? bench_cpu_others(&c0, &c1) : 0;
    free(q);
    free(ev);
    return 0;
fail:
    free(q);
    free(ev);
    return -1;
}

#endif
