/*
** cpu_decode — CPU decode throughput of libinfer, set against the machine's memory bandwidth
** measured in the same run.
**
** What it measures, per model shape (llama2.c stories15M and stories110M; fp32 weights, and with
** --formats also F16, Q8_0, Q4_0, Q4_1) and for a model file given with --model:
**  - batch-1 decode tokens/s: one request, a prompt of exactly 16 tokens (BOS included),
**    256 new tokens, greedy;
**  - aggregate decode tokens/s with 8 and 32 concurrent requests of the same kind;
**  - the achieved read rate: bytes a decode step must read (every weight but the embedding
**    rows, once per step, plus each sequence's K and V over its context) / step time;
** and once per run, with all cores, the read bandwidth of a 1 GiB buffer (DRAM) and of a
** 64 MiB one (about the 15M model's size; partly served from L3 where it is large enough).
**
** How:
**  - Weights: synthetic llama2.c "legacy" checkpoints of the real shapes (uniform +-0.02 from a
**    fixed-seed PRNG, norms 1.0, shared classifier; bench_util.h) written to a mkdtemp()
**    folder. Each is unlinked as soon as the library has mapped it, so an interrupted run
**    leaves no weights behind. The speed of an fp32 forward pass does not depend on the
**    values, so the numbers hold for the trained models. The tokenizer is the Llama-2
**    tokenizer.bin from ../shared/models (or $INFER_SHARED/models, or --tokenizer); without
**    one a synthetic 32000-entry one is written there (byte tokens 3..258 as the format
**    requires, letter strings elsewhere). Prompts are prefixes of fixed sentences cut to
**    exactly --prompt-tokens tokens with infer_tokenize.
**  - Other weight types (--formats): GGUF files of the same values (the same generator in the
**    checkpoint's order) written with the library's GGUF writer, every matrix and the shared
**    classifier stored in the type by quantize_row (ggml's reference quantizers), norms f32;
**    the vocab is the tokenizer.bin above as tokenizer.ggml.* keys (llama.cpp's Llama 2
**    layout), so each type gets the same prompts. F32 stays the llama2.c checkpoint; each other
**    type's batch-1 tok/s is set against it ("vs F32"): a memory-bound step speeds up by its
**    weight bytes' ratio at best.
**  - --model PATH: a GGUF file used as it is (not unlinked); its shape and the bytes a step
**    reads come from the file's keys and tensor infos (see model_file_info).
**  - Requests go through the public API only (<infer.h>): one session per shape with its
**    engine thread, temperature 0, ignore_eos, max_tokens = --new-tokens, a KV pool large
**    enough that nothing is ever preempted (checked: the run fails otherwise).
**  - Decode window: from the poll that returns the last of the N first tokens (prefill is
**    over for all N) to the poll that returns the last DONE. Tokens in the window are the
**    generated tokens after each sequence's first; aggregate tok/s = tokens / window, and
**    steps/s = aggregate / N (one decode token per sequence per step). Both window ends are
**    seen through the same poll wake-up, so its latency cancels. A warm-up (1 and max N
**    sequences, a few tokens) precedes the cases; each case runs --repeat times (default 3)
**    and the fastest run counts, since a shared machine only ever makes a run slower. The CPU
**    time other processes took during each window is measured from /proc/stat ("others").
**  - Bytes per step = W + N * KV, where W = 4 * (L*(2D + 2D*D + 2D*kvd + 3*D*H) + D + V*D)
**    (norms, attention, FFN, final norm, classifier; the embedding gather is one row) for fp32,
**    the same matrices at dtype_row_bytes of their type for the others, and
**    KV = 4 * L * 2 * kvd * (mean positions attended per step); a sequence with prompt P
**    and G new tokens runs G-1 decode steps in the window attending P+1 .. P+G-1 positions,
**    so the mean is P + G/2. Achieved bytes/s = bytes per step * steps/s.
**  - Bandwidth: every core sums its slice of the buffer with AVX-512 (or AVX2, or plain C)
**    loads into 8 independent accumulators, started together on a barrier; best of several
**    repetitions; GB/s in units of 1e9 bytes. The buffer is ordinary malloc memory (4 KiB
**    pages unless THP is "always"), like the page-cache pages the weights are mapped from.
**    It runs before, between and after the models (no library threads alive then); the
**    best pass of each size is used, since another process can only make a pass slower.
**
** Output: a table on stdout, then the goals of the issue with their outcome; one JSON line per
** case plus one for the bandwidth to stdout, or to the file given with -o (see --help).
*/
#define PROG "cpu_decode" /* before bench_util.h: its messages start with it */

#include <infer.h>

#include "bench_util.h"
#include "bench_gguf.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define BW_X86 1
#include <immintrin.h>
#endif

#define MAX_SEQ_CASES 8
#define MAX_PROMPTS 8

/* seq_len is raised at run time when prompt + new tokens would not fit. */
static const bench_shape k_shapes[] = {
    { "15m", "stories15M", 288, 768, 6, 6, 6, 32000, 512 },
    { "110m", "stories110M", 768, 2048, 12, 12, 12, 32000, 512 },
};
#define N_SHAPES (int)(sizeof k_shapes / sizeof k_shapes[0])

/* ------------------------------------------------------------------------- bandwidth */

/* Sum n floats (n a multiple of 128, p 64-byte aligned). Eight accumulators keep eight adds in
** flight, more than latency x throughput of vaddps, so the loads alone set the pace. */
#ifdef BW_X86
__attribute__((target("avx512f"))) static float sum_avx512(const float *p, size_t n)
{
    __m512 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 128)
        for (int j = 0; j < 8; j++) a[j] = _mm512_add_ps(a[j], _mm512_load_ps(p + i + 16 * j));
    for (int j = 1; j < 8; j++) a[0] = _mm512_add_ps(a[0], a[j]);
    return _mm512_reduce_add_ps(a[0]);
}

__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n)
{
    __m256 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 64)
        for (int j = 0; j < 8; j++) a[j] = _mm256_add_ps(a[j], _mm256_load_ps(p + i + 8 * j));
    for (int j = 1; j < 8; j++) a[0] = _mm256_add_ps(a[0], a[j]);
    float t[8];
    _mm256_storeu_ps(t, a[0]);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static float sum_scalar(const float *p, size_t n)
{
    float a[8] = { 0 };
    for (size_t i = 0; i < n; i += 8)
        for (int j = 0; j < 8; j++) a[j] += p[i + (size_t)j];
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

typedef enum { SIMD_SCALAR, SIMD_AVX2, SIMD_AVX512 } simd_level;

static simd_level simd_detect(void)
{
#ifdef BW_X86
    if (__builtin_cpu_supports("avx512f")) return SIMD_AVX512;
    if (__builtin_cpu_supports("avx2")) return SIMD_AVX2;
#endif
    return SIMD_SCALAR;
}

static const char *simd_name(simd_level l)
{
    return l == SIMD_AVX512 ? "avx512" : l == SIMD_AVX2 ? "avx2" : "scalar";
}

static float sum_floats(simd_level l, const float *p, size_t n)
{
#ifdef BW_X86
    if (l == SIMD_AVX512) return sum_avx512(p, n);
    if (l == SIMD_AVX2) return sum_avx2(p, n);
#endif
    (void)l;
    return sum_scalar(p, n);
}

typedef struct bw_job {
    float *buf;
    size_t slice;        /* floats per thread, a multiple of 128 */
    int n_threads, reps;
    simd_level level;
    pthread_barrier_t go, done;
    float *sums;         /* (n_threads) running sums: keep the loads observable */
} bw_job;

typedef struct bw_arg {
    bw_job *job;
    int ith;
} bw_arg;

static void bw_slice(bw_job *j, int ith)
{
    j->sums[ith] += sum_floats(j->level, j->buf + (size_t)ith * j->slice, j->slice);
}

static void *bw_worker(void *p)
{
    bw_arg *a = p;
    bw_job *j = a->job;
    /* First touch from the thread that will read the slice (NUMA placement). */
    float *s = j->buf + (size_t)a->ith * j->slice;
    for (size_t i = 0; i < j->slice; i++) s[i] = 1.0f;
    pthread_barrier_wait(&j->done);
    for (int r = 0; r < j->reps; r++) {
        pthread_barrier_wait(&j->go);
        bw_slice(j, a->ith);
        pthread_barrier_wait(&j->done);
    }
    return NULL;
}

/* Read bandwidth over `bytes` with n_threads threads: best of `reps`, in bytes/s. */
static double measure_bw(size_t bytes, int n_threads, int reps, simd_level level)
{
    bw_job j;
    memset(&j, 0, sizeof j);
    j.n_threads = n_threads;
    j.reps = reps;
    j.level = level;
    j.slice = bytes / sizeof(float) / (size_t)n_threads / 128 * 128;
    size_t total = j.slice * (size_t)n_threads;
    j.buf = aligned_alloc(4096, (total * sizeof(float) + 4095) / 4096 * 4096);
    j.sums = calloc((size_t)n_threads, sizeof *j.sums);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    bw_arg *args = calloc((size_t)n_threads, sizeof *args);
    if (!j.buf || !j.sums || !th || !args || j.slice == 0) {
        fprintf(stderr, PROG ": out of memory for a %zu-byte bandwidth buffer\n", bytes);
        free(j.buf);
        free(j.sums);
        free(th);
        free(args);
        return 0;
    }
    pthread_barrier_init(&j.go, NULL, (unsigned)n_threads);
    pthread_barrier_init(&j.done, NULL, (unsigned)n_threads);
    for (int i = 1; i < n_threads; i++) {
        args[i] = (bw_arg){ &j, i };
        if (pthread_create(&th[i], NULL, bw_worker, &args[i]) != 0) {
            fprintf(stderr, PROG ": cannot start bandwidth thread %d of %d\n", i, n_threads);
            exit(1); /* the barriers count on every thread: no way to go on */
        }
    }
    for (size_t i = 0; i < j.slice; i++) j.buf[i] = 1.0f;
    pthread_barrier_wait(&j.done);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now_s();
        pthread_barrier_wait(&j.go);
        bw_slice(&j, 0);
        pthread_barrier_wait(&j.done);
        double t = bench_now_s() - t0;
        if (t < best) best = t;
    }
    for (int i = 1; i < n_threads; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&j.go);
    pthread_barrier_destroy(&j.done);
    float check = 0;
    for (int i = 0; i < n_threads; i++) check += j.sums[i];
    free(j.buf);
    free(j.sums);
    free(th);
    free(args);
    /* The buffer is all ones: any positive finite total shows the loads happened. */
    if (!(check > 0) || check != check) fprintf(stderr, PROG ": warning: bandwidth checksum %g\n", (double)check);
    return (double)(total * sizeof(float)) / best;
}

/* One bandwidth measurement of both sizes, with what other processes took meanwhile. */
typedef struct bw_pass {
    double b1g, b64m, others;
} bw_pass;

/* Passes run before, between and after the models; the best of each size is used. Models:
** each shape in each type, and --model. */
#define MAX_MODELS (N_SHAPES * MAX_FORMATS + 1)
#define MAX_BW_PASSES (MAX_MODELS + 1)
typedef struct bw_set {
    bw_pass pass[MAX_BW_PASSES];
    int n;
    double b1g, b64m;   /* best over the passes */
} bw_set;

/* A pass that other processes disturbed (> 0.1 cores) is tried again, up to 3 times; the
** best figures of the tries count, with the least disturbance seen. */
static int bw_measure_pass(bw_set *bw, int threads, int quick, simd_level lvl)
{
    if (bw->n == MAX_BW_PASSES) return 0;
    bw_pass *p = &bw->pass[bw->n];
    memset(p, 0, sizeof *p);
    p->others = 1e9;
    fprintf(stderr, "measuring read bandwidth (%d threads, %s)...\n", threads, simd_name(lvl));
    for (int attempt = 0; attempt < 3 && p->others > 0.1; attempt++) {
        bench_cpu_sample c0, c1;
        bench_cpu_sample_take(&c0);
        double b1g = measure_bw((size_t)1 << 30, threads, quick ? 4 : 20, lvl);
        double b64m = measure_bw((size_t)64 << 20, threads, quick ? 20 : 200, lvl);
        bench_cpu_sample_take(&c1);
        double others = bench_cpu_others(&c0, &c1);
        if (b1g <= 0 || b64m <= 0) return -1;
        fprintf(stderr, "  1 GiB %.2f GB/s, 64 MiB %.2f GB/s (other processes used %.2f cores)\n", b1g / 1e9,
                b64m / 1e9, others);
        if (b1g > p->b1g) p->b1g = b1g;
        if (b64m > p->b64m) p->b64m = b64m;
        if (others < p->others) p->others = others;
    }
    if (p->b1g > bw->b1g) bw->b1g = p->b1g;
    if (p->b64m > bw->b64m) bw->b64m = p->b64m;
    bw->n++;
    return 0;
}

/* ------------------------------------------------------------------------ decode runs */

typedef struct opts {
    int threads;          /* 0 = every core this process may run on */
    int new_tokens;
    int prompt_tokens;
    int seqs[MAX_SEQ_CASES];
    int n_seqs;
    int shape_on[N_SHAPES];
    int quick;
    int caller_mode;      /* INFER_THREADING_CALLER instead of an engine thread */
    int bw_only;          /* measure the bandwidth and stop */
    int repeat;           /* runs per case; the fastest counts */
    int order[MAX_FORMATS], n_formats; /* k_formats indexes in --formats order, each run for every shape */
    const char *tokenizer;
    const char *json_path;
    const char *model, *label; /* --model, --label */
} opts;

/* One model to measure: a synthetic file of a shape and type, or --model's file. */
typedef struct model_spec {
    bench_shape sh;           /* as run (seq_len may have been raised) */
    dtype type;               /* of the weights; for --model, the type holding most weight bytes */
    uint64_t weight_bytes;    /* read per decode step */
    char key[64];             /* JSON case prefix: "110m" (F32), "110m/q4_0", or the --label */
    const char *path;
    const char *tok_path;     /* NULL: the tokenizer is in the file */
    int temporary;            /* unlink once loaded */
    int from_file;            /* --model */
} model_spec;

typedef struct case_result {
    bench_shape sh;                 /* as run (seq_len may have been raised) */
    dtype type;
    uint64_t weight_bytes;
    char key[64];
    int from_file;
    int n_seqs;
    int prompt_tokens;        /* of the first prompt (all are searched to the same count) */
    int new_tokens;
    long decode_tokens;       /* generated tokens in the window */
    double window_s;          /* decode window (see the header comment) */
    double ttft_s;            /* first submit -> the last of the N first tokens (prefill) */
    double tok_s, steps_s;
    double mean_ctx;          /* positions attended per sequence per step, averaged */
    double bytes_per_step;    /* W + N * KV */
    double achieved;          /* bytes/s */
    int64_t steps, preempted;
    double others;            /* cores busy with other processes during the window */
} case_result;

/* N concurrent greedy requests of `new_tokens` with prompts of `prompt_tokens`; fills r (when
** not NULL). A preemption fails a measured run: the KV pool is sized so that none happens. */
static int run_case(infer_session *s, const model_spec *ms, char *const *prompts, int n_prompts, int prompt_tokens,
                    int N, int new_tokens, case_result *r)
{
    bench_decode_out d;
    if (bench_decode_run(s, prompts, n_prompts, prompt_tokens, N, new_tokens, BENCH_DECODE_OTHERS, &d)) return -1;
    if (!r) return 0;
    memset(r, 0, sizeof *r);
    r->sh = ms->sh;
    r->type = ms->type;
    r->weight_bytes = ms->weight_bytes;
    r->from_file = ms->from_file;
    snprintf(r->key, sizeof r->key, "%s", ms->key);
    r->n_seqs = N;
    r->new_tokens = new_tokens;
    r->prompt_tokens = d.first_prompt;
    r->mean_ctx = d.mean_ctx;
    r->decode_tokens = d.decode_tokens;
    r->window_s = d.window_s;
    r->ttft_s = d.ttft_s;
    r->tok_s = d.tok_s;
    r->steps_s = r->tok_s / N;
    r->bytes_per_step = (double)ms->weight_bytes + N * (double)bench_kv_bytes_per_token(&ms->sh) * r->mean_ctx;
    r->achieved = r->bytes_per_step * r->steps_s;
    r->steps = d.steps;
    r->preempted = d.preempted;
    r->others = d.others;
    if (r->preempted) {
        fprintf(stderr, PROG ": %lld preemptions during the run: the KV pool was too small and the "
                        "numbers include recomputation\n", (long long)r->preempted);
        return -1;
    }
    return 0;
}

/* Texts to cut into prompts; any that cannot give the target count is skipped. */
static const char *const k_texts[] = {
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her friends and her big brown dog, Max.",
    "One day, a small boy called Tim found a shiny red ball under a big tree near his house, and he "
    "ran home to show it to his mother.",
    "The sun was warm and the birds were singing when Sue and her mom went to the market to buy "
    "some fresh fruit and a loaf of bread.",
    "In a quiet town by the sea lived an old fisherman who told the children stories about the "
    "whales, the storms and the lighthouse.",
};

/* The shortest prefix of `text` that encodes to `target` tokens (BOS included), preferring
** one that ends at a word boundary. malloc'd; NULL if none. */
static char *find_prompt(infer_session *s, const char *text, int target)
{
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    if (!buf) return NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 1; n <= len; n++) {
            if (pass == 0 && n < len && text[n] != ' ') continue;
            memcpy(buf, text, n);
            buf[n] = 0;
            size_t cnt = 0;
            infer_status rc = infer_tokenize(s, "m", NULL, buf, 1, NULL, 0, &cnt);
            if (rc) {
                bench_fail_api("infer_tokenize", rc);
                free(buf);
                return NULL;
            }
            if ((int)cnt == target) return buf;
            if ((int)cnt > target) break;
        }
    }
    free(buf);
    return NULL;
}

static void cleanup_dir(const char *dir, const char *tok_path)
{
    if (tok_path) unlink(tok_path);
    if (dir) rmdir(dir);
}

/* Load ms into a fresh session, warm up, run every N; results appended to res[*n_res]. */
static int measure_model(const opts *o, int threads, const model_spec *ms, case_result *res, int *n_res)
{
    const bench_shape sh = ms->sh;
    const char *path = ms->path;
    int max_n = 1;
    for (int i = 0; i < o->n_seqs; i++) max_n = o->seqs[i] > max_n ? o->seqs[i] : max_n;
    int block = 16;
    uint64_t blocks_per_seq = (uint64_t)(o->prompt_tokens + 8 + o->new_tokens + block - 1) / block + 1;
    uint64_t kv_bytes = (uint64_t)max_n * blocks_per_seq * block * bench_kv_bytes_per_token(&sh);

    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.backend = INFER_BACKEND_CPU;
    sp.threading = o->caller_mode ? INFER_THREADING_CALLER : INFER_THREADING_ENGINE;
    sp.n_threads = threads;
    sp.kv_block_tokens = block;
    sp.kv_cache_bytes = (size_t)kv_bytes;
    if (sp.max_running < max_n) sp.max_running = max_n;
    if (sp.max_batch_tokens < max_n * (o->prompt_tokens + 8)) sp.max_batch_tokens = max_n * (o->prompt_tokens + 8);
    if (sp.queue_capacity < max_n) sp.queue_capacity = max_n;
    infer_session *s = NULL;
    infer_status rc = infer_session_create(&sp, &s);
    if (rc) {
        if (ms->temporary) unlink(path);
        return bench_fail_api("infer_session_create", rc);
    }
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = ms->tok_path;
    rc = infer_model_load(s, "m", NULL, path, &mp);
    /* The library has the file mapped (or failed): the name is no longer needed. */
    if (ms->temporary) unlink(path);
    if (rc) {
        bench_fail_api("infer_model_load", rc);
        infer_session_destroy(s);
        return -1;
    }

    char *prompts[MAX_PROMPTS];
    int n_prompts = 0;
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0] && n_prompts < MAX_PROMPTS; i++) {
        char *p = find_prompt(s, k_texts[i], o->prompt_tokens);
        if (p) prompts[n_prompts++] = p;
    }
    int ret = -1;
    if (n_prompts == 0) {
        fprintf(stderr, PROG ": no prompt text encodes to exactly %d tokens with this tokenizer\n",
                o->prompt_tokens);
        goto done;
    }

    /* Warm-up: faults the weights in, starts the pools, runs the sgemm path once. */
    fprintf(stderr, "%s %s: warm-up...\n", sh.name, dtype_name(ms->type));
    if (run_case(s, ms, prompts, n_prompts, o->prompt_tokens, 1, 8, NULL)) goto done;
    if (max_n > 1 && run_case(s, ms, prompts, n_prompts, o->prompt_tokens, max_n, 4, NULL)) goto done;

    for (int i = 0; i < o->n_seqs; i++) {
        int N = o->seqs[i];
        fprintf(stderr, "%s %s: %d sequence%s x %d new tokens...\n", sh.name, dtype_name(ms->type), N,
                N > 1 ? "s" : "", o->new_tokens);
        case_result *r = &res[*n_res];
        for (int k = 0; k < o->repeat; k++) {
            case_result one;
            if (run_case(s, ms, prompts, n_prompts, o->prompt_tokens, N, o->new_tokens, &one)) goto done;
            fprintf(stderr, "  %.1f tok/s (%.2f ms/step; other processes used %.2f cores)\n", one.tok_s,
                    1e3 / one.steps_s, one.others);
            if (k == 0 || one.tok_s > r->tok_s) *r = one;
        }
        (*n_res)++;
    }
    ret = 0;
done:
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    infer_session_destroy(s);
    return ret;
}

/* One shape in type t: write its file (llama2.c checkpoint for F32, else GGUF), measure it. */
static int run_shape(const opts *o, int threads, const bench_shape *base, dtype t, const char *dir,
                     const char *tok_path, case_result *res, int *n_res)
{
    model_spec ms;
    memset(&ms, 0, sizeof ms);
    ms.sh = *base;
    int need_ctx = o->prompt_tokens + o->new_tokens + 16;
    if (ms.sh.seq_len < need_ctx) ms.sh.seq_len = (need_ctx + 63) / 64 * 64;
    ms.type = t;
    ms.weight_bytes = weight_bytes_at(&ms.sh, t);
    ms.temporary = 1;
    char path[4096];
    if (t == DT_F32) {
        snprintf(ms.key, sizeof ms.key, "%s", ms.sh.key);
        snprintf(path, sizeof path, "%s/%s.bin", dir, ms.sh.name);
        ms.tok_path = tok_path;
    } else {
        snprintf(ms.key, sizeof ms.key, "%s/%s", ms.sh.key, k_formats[format_index(t)].name);
        snprintf(path, sizeof path, "%s/%s.%s.gguf", dir, ms.sh.name, dtype_name(t));
    }
    ms.path = path;
    fprintf(stderr, "writing %s-shaped %s %s...\n", ms.sh.name, dtype_name(t), t == DT_F32 ? "checkpoint" : "GGUF");
    double tw = bench_now_s();
    int rc = t == DT_F32 ? bench_write_checkpoint(path, &ms.sh) : write_gguf(path, &ms.sh, t, tok_path);
    if (rc) {
        unlink(path);
        return -1;
    }
    fprintf(stderr, "  written in %.1f s\n", bench_now_s() - tw);
    return measure_model(o, threads, &ms, res, n_res);
}

/* --model: the file as it is, left in place. */
static int run_model_file(const opts *o, int threads, case_result *res, int *n_res)
{
    model_spec ms;
    memset(&ms, 0, sizeof ms);
    if (model_file_info(o->model, o->label, &ms.sh, &ms.weight_bytes, &ms.type)) return -1;
    snprintf(ms.key, sizeof ms.key, "%s", o->label);
    ms.path = o->model;
    ms.from_file = 1;
    fprintf(stderr, "%s: %s, %.1f MB of weights read per step\n", o->label, o->model, (double)ms.weight_bytes / 1e6);
    return measure_model(o, threads, &ms, res, n_res);
}

/* ---------------------------------------------------------------------------- output */

/* The case of shape (or --label) `name` in type t with N sequences; NULL if it did not run. */
static const case_result *find_case(const case_result *res, int n, const char *name, dtype t, int N)
{
    for (int i = 0; i < n; i++)
        if (strcmp(res[i].sh.name, name) == 0 && res[i].type == t && res[i].n_seqs == N) return &res[i];
    return NULL;
}

/* tok/s of r over the F32 case of the same shape and N; 0 when none ran (or r is --model's). */
static double vs_f32(const case_result *res, int n, const case_result *r)
{
    const case_result *f = r->from_file ? NULL : find_case(res, n, r->sh.name, DT_F32, r->n_seqs);
    return f && f->tok_s > 0 ? r->tok_s / f->tok_s : 0;
}

static void print_rows(FILE *out, const case_result *res, int n_res, double bw1g, double bw64m)
{
    fprintf(out, "%-27s %5s %10s %9s %10s %8s %8s %9s %7s %7s %7s\n", "case", "seqs", "tok/s", "ms/step",
            "MB/step", "GB/s", "%bw1G", "%bw64M", "vs b1", "vs F32", "others");
    double worst = 0;
    for (int i = 0; i < n_res; i++) {
        const case_result *r = &res[i];
        const case_result *b1 = find_case(res, n_res, r->sh.name, r->type, 1);
        char name[96], ratio[32] = "-", f32[32] = "-";
        snprintf(name, sizeof name, "%s %s %s", r->sh.name, dtype_name(r->type),
                 r->n_seqs == 1 ? "batch-1" : "aggregate");
        if (b1 && r->n_seqs > 1 && b1->tok_s > 0) snprintf(ratio, sizeof ratio, "%.2fx", r->tok_s / b1->tok_s);
        double x = vs_f32(res, n_res, r);
        if (x > 0 && r->type != DT_F32) snprintf(f32, sizeof f32, "%.2fx", x);
        fprintf(out, "%-27s %5d %10.1f %9.2f %10.1f %8.2f %7.1f%% %8.1f%% %7s %7s %7.2f\n", name, r->n_seqs,
                r->tok_s, 1e3 / r->steps_s, r->bytes_per_step / 1e6, r->achieved / 1e9, 100 * r->achieved / bw1g,
                100 * r->achieved / bw64m, ratio, f32, r->others);
        if (r->others > worst) worst = r->others;
    }
    fprintf(out, "(ms/step: one decode step of all seqs, = ms/token at batch 1; MB/step: weights at their type\n"
                 " + fp32 KV read per step; GB/s: MB/step x steps/s; vs F32: tok/s over the F32 row of the same\n"
                 " shape and seqs; others: cores busy with other processes or stolen during the decode window)\n");
    if (worst > 0.1)
        fprintf(out, "WARNING: other processes used up to %.2f cores during the measurements: the numbers are "
                     "low and noisy\n", worst);
}

/* The goals for the other types and --model, where the cases that decide them ran:
** batch-1 tok/s over F32's in the same run, and >= 75% of the 1 GiB bandwidth. */
static void print_type_goals(FILE *out, const case_result *res, int n_res, double bw1g)
{
    for (int i = 0; i < n_res; i++) {
        const case_result *r = &res[i];
        if (r->n_seqs != 1 || (r->type == DT_F32 && !r->from_file)) continue; /* F32: the goals above */
        int fi = format_index(r->type);
        double x = vs_f32(res, n_res, r), goal = !r->from_file && fi >= 0 ? k_formats[fi].goal_vs_f32 : 0;
        char what[128];
        if (goal > 0 && x > 0) {
            snprintf(what, sizeof what, "%s %s batch-1 >= %.1fx F32:", r->sh.name, dtype_name(r->type), goal);
            fprintf(out, "  %-50s %6.2fx  %s\n", what, x, x >= goal ? "met" : "NOT MET");
        }
        snprintf(what, sizeof what, "%s %s batch-1 >= %.0f%% of 1 GiB bandwidth:", r->sh.name,
                 dtype_name(r->type), 100 * GOAL_PCT_BW);
        fprintf(out, "  %-50s %6.1f%%  %s\n", what, 100 * r->achieved / bw1g,
                r->achieved >= GOAL_PCT_BW * bw1g ? "met" : "NOT MET");
    }
}

static void print_table(FILE *out, const case_result *res, int n_res, double bw1g, double bw64m)
{
    print_rows(out, res, n_res, bw1g, bw64m);

    /* The goals, where the cases that decide them ran. */
    fprintf(out, "\ngoals:\n");
    const case_result *c;
    const char *n15 = k_shapes[0].name, *n110 = k_shapes[1].name;
    if ((c = find_case(res, n_res, n110, DT_F32, 1)))
        fprintf(out, "  stories110M batch-1 >= 92%% of 1 GiB bandwidth:     %6.1f%%  %s\n",
                100 * c->achieved / bw1g, c->achieved >= 0.92 * bw1g ? "met" : "NOT MET");
    if ((c = find_case(res, n_res, n15, DT_F32, 1)))
        fprintf(out, "  stories15M batch-1 >= 100%% of 64 MiB bandwidth:    %6.1f%%  %s\n",
                100 * c->achieved / bw64m, c->achieved >= bw64m ? "met" : "NOT MET");
    const case_result *b1 = find_case(res, n_res, n110, DT_F32, 1);
    if ((c = find_case(res, n_res, n110, DT_F32, 32)) && b1)
        fprintf(out, "  stories110M 32 seqs >= 8x batch-1:                  %6.2fx  %s\n", c->tok_s / b1->tok_s,
                c->tok_s >= 8 * b1->tok_s ? "met" : "NOT MET");
    print_type_goals(out, res, n_res, bw1g);
}

static void print_results(FILE *out, FILE *js, const opts *o, int threads, simd_level lvl, const bw_set *bw,
                          const case_result *res, int n_res)
{
    double bw1g = bw->b1g, bw64m = bw->b64m;
    if (n_res > 0)
        fprintf(out, "\ncpu_decode: libinfer %s, %d threads (%s), %d-token prompts, %d new tokens\n",
                infer_version(), threads, o->caller_mode ? "caller-driven" : "engine thread", o->prompt_tokens,
                o->new_tokens);
    fprintf(out, "read bandwidth (%s, %d threads): 1 GiB %.2f GB/s, 64 MiB %.2f GB/s%s\n", simd_name(lvl),
            threads, bw1g / 1e9, bw64m / 1e9, bw->n > 1 ? ", the best of these passes:" : "");
    for (int i = 0; i < bw->n && bw->n > 1; i++)
        fprintf(out, "  %-8s 1 GiB %6.2f GB/s, 64 MiB %6.2f GB/s, others %.2f cores\n",
                i == 0 ? "before" : i == bw->n - 1 ? "after" : "between", bw->pass[i].b1g / 1e9,
                bw->pass[i].b64m / 1e9, bw->pass[i].others);
    double calm = 1e9;
    for (int i = 0; i < bw->n; i++) calm = bw->pass[i].others < calm ? bw->pass[i].others : calm;
    if (calm > 0.1)
        fprintf(out, "WARNING: other processes took >= %.2f cores during every bandwidth pass: the GB/s figures are\n"
                     "low and the percentages of them high\n", calm);
    if (n_res > 0) {
        fputc('\n', out);
        print_table(out, res, n_res, bw1g, bw64m);
    }
    fprintf(js, "{\"bench\":\"cpu_decode\",\"case\":\"bandwidth\",\"threads\":%d,\"simd\":\"%s\","
                "\"bw_1GiB_Bps\":%.6g,\"bw_64MiB_Bps\":%.6g,\"passes\":[", threads, simd_name(lvl), bw1g, bw64m);
    for (int i = 0; i < bw->n; i++)
        fprintf(js, "%s{\"bw_1GiB_Bps\":%.6g,\"bw_64MiB_Bps\":%.6g,\"other_cores\":%.3g}", i ? "," : "",
                bw->pass[i].b1g, bw->pass[i].b64m, bw->pass[i].others);
    fprintf(js, "]}\n");
    for (int i = 0; i < n_res; i++) {
        const case_result *r = &res[i];
        const case_result *one = find_case(res, n_res, r->sh.name, r->type, 1);
        fprintf(js,
                "{\"bench\":\"cpu_decode\",\"case\":\"%s/seqs%d\",\"model\":\"%s\",\"format\":\"%s\","
                "\"from_file\":%d,\"dim\":%d,\"hidden\":%d,"
                "\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,\"vocab\":%d,\"seq_len\":%d,"
                "\"threads\":%d,\"seqs\":%d,\"prompt_tokens\":%d,\"new_tokens\":%d,\"decode_tokens\":%ld,"
                "\"window_s\":%.6g,\"ttft_s\":%.6g,\"tok_s\":%.6g,\"ms_per_step\":%.6g,"
                "\"weight_bytes\":%llu,\"kv_bytes_per_token\":%llu,\"mean_ctx\":%.6g,"
                "\"bytes_per_step\":%.6g,\"achieved_Bps\":%.6g,\"pct_bw_1GiB\":%.4g,\"pct_bw_64MiB\":%.4g,"
                "\"vs_batch1\":%.4g,\"vs_f32\":%.4g,\"steps\":%lld,\"preempted\":%lld,\"other_cores\":%.3g}\n",
                r->key, r->n_seqs, r->sh.name, dtype_name(r->type), r->from_file, r->sh.dim, r->sh.hidden, r->sh.n_layers, r->sh.n_heads,
                r->sh.n_kv_heads, r->sh.vocab, r->sh.seq_len, threads, r->n_seqs, r->prompt_tokens,
                r->new_tokens, r->decode_tokens, r->window_s, r->ttft_s, r->tok_s, 1e3 / r->steps_s,
                (unsigned long long)r->weight_bytes, (unsigned long long)bench_kv_bytes_per_token(&r->sh),
                r->mean_ctx, r->bytes_per_step, r->achieved, 100 * r->achieved / bw1g,
                100 * r->achieved / bw64m, one && one->tok_s > 0 ? r->tok_s / one->tok_s : 0,
                vs_f32(res, n_res, r), (long long)r->steps, (long long)r->preempted, r->others);
    }
}

/* ------------------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cpu_decode [options]\n"
            "Decode throughput of libinfer's CPU backend on synthetic stories15M/110M-shaped\n"
            "checkpoints (fp32, or other types with --formats) and optionally a model file, set\n"
            "against the memory read bandwidth measured in the same run.\n"
            "  --shapes LIST        model shapes, from 15m,110m (default both)\n"
            "  --formats LIST       weight types per shape, from f32,f16,q8_0,q4_0,q4_1 (default f32: the\n"
            "                       llama2.c checkpoint; the others are GGUF files of the same values)\n"
            "  --model PATH         also measure this GGUF model file (left in place), e.g.\n"
            "                       build/models/SmolLM2-135M-Instruct.Q4_1.gguf\n"
            "  --label NAME         its name in the table and JSON (default: the file name)\n"
            "  --seqs LIST          concurrent sequences per case (default 1,8,32; 1 is always run;\n"
            "                       applies to every shape, type and --model)\n"
            "  -t, --threads N      compute threads (default: every core in this process's affinity mask)\n"
            "  -n, --new-tokens N   tokens generated per request (default 256)\n"
            "      --prompt-tokens N prompt length in tokens, BOS included (default 16)\n"
            "      --repeat N       run each case N times and keep the fastest (default 3)\n"
            "      --quick          smoke test: 32 new tokens, one run per case, fewer bandwidth repetitions\n"
            "      --bandwidth-only measure the read bandwidth only\n"
            "      --caller         drive steps from infer_poll (INFER_THREADING_CALLER), no engine thread\n"
            "      --tokenizer PATH llama2.c tokenizer.bin with 32000 tokens (default\n"
            "                       $INFER_SHARED/models/tokenizer.bin, ../shared/models/tokenizer.bin,\n"
            "                       shared/models/tokenizer.bin; else a synthetic one is written)\n"
            "  -o, --json PATH      write the JSON lines (one per case, one for bandwidth) to PATH\n"
            "                       instead of stdout after the table; '-' = stdout\n"
            "  -h, --help           this text\n"
            "Temporary files go to a mkdtemp() folder under $TMPDIR (default /tmp) and are removed.\n");
}

/* --formats: a list of k_formats names, run in the order given. */
static int parse_formats(const char *v, opts *o)
{
    if (!v) { fprintf(stderr, PROG ": --formats needs a list such as f32,q4_0\n"); return -1; }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    o->n_formats = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int k = 0;
        while (k < N_FORMATS && strcasecmp(tok, k_formats[k].name)) k++;
        if (k == N_FORMATS) {
            fprintf(stderr, PROG ": unknown format '%s' (known: f32, f16, q8_0, q4_0, q4_1)\n", tok);
            return -1;
        }
        int dup = 0;
        for (int j = 0; j < o->n_formats; j++) dup |= o->order[j] == k;
        if (!dup) o->order[o->n_formats++] = k;
    }
    if (o->n_formats == 0) { fprintf(stderr, PROG ": --formats is empty\n"); return -1; }
    return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->new_tokens = -1;
    o->prompt_tokens = 16;
    o->repeat = 0;
    o->seqs[0] = 1;
    o->seqs[1] = 8;
    o->seqs[2] = 32;
    o->n_seqs = 3;
    for (int i = 0; i < N_SHAPES; i++) o->shape_on[i] = 1;
    o->order[o->n_formats++] = format_index(DT_F32);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
        } else if (!strcmp(a, "--bandwidth-only")) {
            o->bw_only = 1;
        } else if (!strcmp(a, "--caller")) {
            o->caller_mode = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (bench_parse_int(a, v, 0, 1024, &o->threads)) return -1;
            i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--new-tokens")) {
            if (bench_parse_int(a, v, 2, 1 << 16, &o->new_tokens)) return -1;
            i++;
        } else if (!strcmp(a, "--repeat")) {
            if (bench_parse_int(a, v, 1, 100, &o->repeat)) return -1;
            i++;
        } else if (!strcmp(a, "--prompt-tokens")) {
            if (bench_parse_int(a, v, 2, 64, &o->prompt_tokens)) return -1;
            i++;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!v) { fprintf(stderr, PROG ": --tokenizer needs a path\n"); return -1; }
            o->tokenizer = v;
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--json")) {
            if (!v) { fprintf(stderr, PROG ": %s needs a path\n", a); return -1; }
            o->json_path = v;
            i++;
        } else if (!strcmp(a, "--shapes")) {
            if (!v) { fprintf(stderr, PROG ": --shapes needs a list such as 15m,110m\n"); return -1; }
            for (int k = 0; k < N_SHAPES; k++) o->shape_on[k] = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int found = 0;
                for (int k = 0; k < N_SHAPES; k++)
                    if (!strcmp(tok, k_shapes[k].key)) o->shape_on[k] = found = 1;
                if (!found) { fprintf(stderr, PROG ": unknown shape '%s' (known: 15m, 110m)\n", tok); return -1; }
            }
            i++;
        } else if (!strcmp(a, "--formats")) {
            if (parse_formats(v, o)) return -1;
            i++;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--label")) {
            if (!v) { fprintf(stderr, PROG ": %s needs a value\n", a); return -1; }
            *(a[2] == 'm' ? &o->model : &o->label) = v;
            i++;
        } else if (!strcmp(a, "--seqs")) {
            if (!v) { fprintf(stderr, PROG ": --seqs needs a list such as 1,8,32\n"); return -1; }
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            o->n_seqs = 1;
            o->seqs[0] = 1;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int n;
                if (bench_parse_int("--seqs", tok, 1, 1024, &n)) return -1;
                int dup = 0;
                for (int k = 0; k < o->n_seqs; k++) dup |= o->seqs[k] == n;
                if (dup) continue;
                if (o->n_seqs == MAX_SEQ_CASES) { fprintf(stderr, PROG ": at most %d --seqs values\n", MAX_SEQ_CASES); return -1; }
                o->seqs[o->n_seqs++] = n;
            }
            i++;
        } else {
            fprintf(stderr, PROG ": unknown option '%s' (see --help)\n", a);
            return -1;
        }
    }
    if (o->model && !o->label) {
        const char *slash = strrchr(o->model, '/');
        o->label = slash ? slash + 1 : o->model;
    }
    if (o->new_tokens < 0) o->new_tokens = o->quick ? 32 : 256;
    if (o->repeat == 0) o->repeat = o->quick ? 1 : 3;
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse_args(argc, argv, &o)) return 2;
    if (o.tokenizer && !bench_file_exists(o.tokenizer)) {
        fprintf(stderr, PROG ": --tokenizer '%s' is not a readable file\n", o.tokenizer);
        return 2;
    }
    /* "All cores" = those this process may use. The library's own default (n_threads 0) counts
    ** every online core even under taskset or a cpuset, so the count is always passed. */
    int threads = o.threads > 0 ? o.threads : bench_cpu_count();
    simd_level lvl = simd_detect();

    FILE *js = bench_open_json(o.json_path);
    if (!js) return 2;

    bw_set bw;
    memset(&bw, 0, sizeof bw);
    if (bw_measure_pass(&bw, threads, o.quick, lvl)) return 1;
    if (o.bw_only) {
        print_results(stdout, js, &o, threads, lvl, &bw, NULL, 0);
        if (js != stdout) fclose(js);
        return 0;
    }

    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s/cpu_decode.XXXXXX", tmp && *tmp ? tmp : "/tmp") >= (int)sizeof dir) {
        fprintf(stderr, PROG ": $TMPDIR is too long\n");
        return 1;
    }
    if (!mkdtemp(dir)) {
        fprintf(stderr, PROG ": cannot create a temporary folder '%s': %s\n", dir, strerror(errno));
        return 1;
    }
    char tokbuf[4096], tok_gen[4096];
    const char *tok_path = o.tokenizer ? o.tokenizer : bench_shared_file("models/tokenizer.bin", tokbuf, sizeof tokbuf);
    const char *tok_written = NULL;
    if (!tok_path) {
        snprintf(tok_gen, sizeof tok_gen, "%s/tokenizer.bin", dir);
        fprintf(stderr, "no Llama-2 tokenizer.bin found (../shared/models, $INFER_SHARED): writing a synthetic one\n");
        if (bench_write_tokenizer(tok_gen, 32000)) {
            cleanup_dir(dir, tok_gen);
            return 1;
        }
        tok_path = tok_written = tok_gen;
    }
    fprintf(stderr, "tokenizer: %s\n", tok_path);

    case_result res[MAX_MODELS * MAX_SEQ_CASES];
    int n_res = 0, failed = 0, n_run = 0;
    for (int k = 0; k < N_SHAPES && !failed; k++) {
        if (!o.shape_on[k]) continue;
        for (int f = 0; f < o.n_formats && !failed; f++) {
            /* Between models too: on a shared machine, more chances of a quiet moment. */
            if (n_run++ > 0 && bw_measure_pass(&bw, threads, o.quick, lvl)) failed = 1;
            dtype t = k_formats[o.order[f]].type;
            if (!failed && run_shape(&o, threads, &k_shapes[k], t, dir, tok_path, res, &n_res)) failed = 1;
        }
    }
    if (!failed && o.model) {
        if (n_run++ > 0 && bw_measure_pass(&bw, threads, o.quick, lvl)) failed = 1;
        if (!failed && run_model_file(&o, threads, res, &n_res)) failed = 1;
    }
    cleanup_dir(dir, tok_written);
    if (failed || bw_measure_pass(&bw, threads, o.quick, lvl)) {
        if (js != stdout) fclose(js);
        return 1;
    }
    print_results(stdout, js, &o, threads, lvl, &bw, res, n_res);
    if (js != stdout && fclose(js) != 0) {
        fprintf(stderr, PROG ": writing '%s' failed\n", o.json_path);
        return 1;
    }
    return 0;
}
