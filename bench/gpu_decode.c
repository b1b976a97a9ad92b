/*
** gpu_decode — decode and prefill throughput of libinfer on one model (the CUDA backend by
** default), with the bytes each decode step must read, so that bench/gpu/table.py can set the
** figures against the GPU's measured read bandwidth (bench/gpu/peak.cu) and against llama.cpp
** and HF transformers run on the same shapes (bench/gpu/run.sh runs them all in one call).
**
** What it measures, on the model given with -m (an HF directory or a GGUF file; bench/gpu/
** make_hf_model.py and shared/anchors/gen_gguf.py write synthetic-weight ones of real shapes):
**  - batch-1 decode tokens/s: one request, a prompt of exactly --prompt-tokens tokens (BOS
**    included; default 128), --new-tokens new tokens (default 256), greedy, ignore_eos;
**  - aggregate decode tokens/s with N concurrent requests of the same kind, for each N of
**    --seqs (default 1,8,32,64,128);
**  - prefill tokens/s: one prompt of exactly --prefill tokens (default 512), max_tokens 1,
**    timed from infer_submit to the TOKEN event (tokenization, the forward pass over the
**    prompt, the first sampling, one poll wake-up).
**
** How:
**  - Requests go through the public API only (<infer.h>): one session with its engine thread,
**    backend --backend (default cuda), prefix cache off (every request really prefills),
**    max_running >= the largest N, max_batch_tokens >= --prefill + N (a --prefill prompt runs
**    in one step; default at least 2048), a KV pool of --kv-bytes (default 8 GiB, raised when
**    the largest case needs more at 4 bytes a value). A preemption during a case is reported
**    (the KV pool was too small and the figure includes recomputation).
**  - Prompts: infer_request has no token-id field, so prompts are prefixes of a fixed English
**    text, cut (at a word boundary where possible) to encode to exactly the target count with
**    infer_tokenize (the model's own BOS rule, as the request uses; bench_prompt.h); every DONE
**    event's n_prompt_tokens is checked against it. Sequences use a few different prompts.
**  - Decode window: from the poll that returns the last of the N first tokens (prefill is over
**    for all N) to the poll that returns the last DONE; tokens in the window are the generated
**    tokens after each sequence's first. tok/s = tokens / window; step time = N / tok/s (one
**    token per sequence per step). Warm-up first: each N once with a few tokens (so CUDA graphs
**    of every batch size exist) and one prefill. Each case runs --repeat times (default 3;
**    prefill max(5, --repeat)); the median counts (the GPU is not shared: no reason to keep the
**    best), min and max are in the JSON.
**  - Bytes a decode step reads: W + N * KV * mean_ctx, where
**      W = every weight matrix once (q, k, v, o, gate, up, down of every layer, and the output
**          matrix V x D, which is the embedding itself for a tied model: read once, as the
**          output) at its stored bits per weight, + the RMSNorm vectors (f32); the embedding
**          lookup reads one row per sequence and is not counted;
**      KV = 2 (K and V) * L * kv_dim * --kv-elem-bytes (default 2: a bf16/f16 cache) per
**          position attended, and mean_ctx = P + G/2 for a prompt of P and G new tokens (the
**          window's steps attend P+1 .. P+G-1 positions).
**    The library does not report weight bytes, so the shape comes from --shape (1b, 8b, tiny)
**    and the storage from --dtype: bf16/f16 16 bits; q8_0 8.5 (34-byte blocks of 32); q4_0
**    4.5 (18-byte blocks of 32) with the output matrix in Q6_K (6.5625 bits), which is what
**    llama-quantize writes for Q4_0 (tied or not); --wbits / --out-wbits override. Without
**    --shape the label's prefix ("1b-...", "8b-...") is tried, then byte figures are omitted.
**  - Prefill FLOPs: 2 * (layer matrix parameters) * T + 2 * V * D (one row of logits) +
**    causal attention 2 * 2 * L * D * T(T+1)/2.
**
** Output: progress on stderr; a table on stdout; one JSON line per case to -o (default: stdout
** after the table) with: bench, label, case (decode|prefill), seqs, tok_s, step_ms,
** weight_bytes, kv_bytes (per step), achieved_GBps, and more (see print_json).
*/
#define PROG "gpu_decode" /* before bench_util.h: its messages start with it */

#include <infer.h>

#include "bench_prompt.h"
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Headers from before the CUDA backend lack the enumerator; the library then answers
** INFER_EUNSUPPORTED for it. INFER_MAX_DEVICES came with it. */
#ifndef INFER_MAX_DEVICES
#define INFER_BACKEND_CUDA ((infer_backend)2)
#endif

#define MAX_SEQ_CASES 12
#define MAX_RUNS 32
#define N_PROMPTS 4

/* Llama shapes (hidden = FFN size); seq_len unused here. */
typedef struct gpu_shape {
    bench_shape sh;
    int tied;
} gpu_shape;

static const gpu_shape k_shapes[] = {
    { { "1b", "Llama-3.2-1B", 2048, 8192, 16, 32, 8, 128256, 8192 }, 1 },
    { { "8b", "Llama-3-8B", 4096, 14336, 32, 32, 8, 128256, 8192 }, 0 },
    { { "tiny", "tiny (make_hf_model.py)", 256, 512, 2, 8, 2, 128256, 8192 }, 0 },
};
#define N_SHAPES (int)(sizeof k_shapes / sizeof k_shapes[0])

typedef struct opts {
    const char *model, *label, *json_path;
    infer_backend backend;
    const char *backend_name;
    int threads;
    int devices[8], n_devices;  /* --devices: GPUs (several: tensor parallelism) */
    int prompt_tokens, new_tokens, prefill, repeat;
    int seqs[MAX_SEQ_CASES], n_seqs;
    size_t kv_bytes;
    int batch_tokens;           /* 0 = automatic */
    const gpu_shape *shape;     /* NULL: unknown, byte figures omitted */
    const char *dtype;
    double wbits, out_wbits;    /* bits per weight of layer matrices / the output matrix */
    int kv_elem_bytes;
} opts;

typedef struct case_result {
    const char *kind;           /* "decode" or "prefill" */
    int seqs, tokens;           /* tokens: prompt tokens (prefill) */
    int n_runs;
    double runs[MAX_RUNS];      /* tok/s of each run */
    double tok_s, tok_s_min, tok_s_max; /* median, min, max */
    double window_s, ttft_s;    /* of the median run */
    double mean_ctx;
    long decode_tokens;
    int64_t steps, preempted;
    double sched_ms_step, fwd_ms_step; /* engine host time / forward time per step */
} case_result;

/* ------------------------------------------------------------------------- model bytes */

static uint64_t layer_params(const bench_shape *sh)
{
    uint64_t D = (uint64_t)sh->dim, F = (uint64_t)sh->hidden, L = (uint64_t)sh->n_layers, kvd = bench_kv_dim(sh);
    return L * (2 * D * D + 2 * D * kvd + 3 * D * F); /* q, o; k, v; gate, up, down */
}

static uint64_t output_params(const bench_shape *sh)
{
    return (uint64_t)sh->vocab * (uint64_t)sh->dim;
}

/* Weight bytes one decode step reads (see the header comment). */
static double weight_bytes(const opts *o)
{
    if (!o->shape) return 0;
    const bench_shape *sh = &o->shape->sh;
    double norms = 4.0 * (double)(2 * sh->n_layers + 1) * sh->dim;
    return (double)layer_params(sh) * o->wbits / 8 + (double)output_params(sh) * o->out_wbits / 8 + norms;
}

static double kv_bytes_per_token(const opts *o)
{
    if (!o->shape) return 0;
    return 2.0 * o->shape->sh.n_layers * (double)bench_kv_dim(&o->shape->sh) * o->kv_elem_bytes;
}

static double prefill_flops(const opts *o, int T)
{
    if (!o->shape) return 0;
    const bench_shape *sh = &o->shape->sh;
    double attn = 2.0 * 2.0 * sh->n_layers * (double)sh->dim * ((double)T * (T + 1) / 2);
    return 2.0 * (double)layer_params(sh) * T + 2.0 * (double)output_params(sh) + attn;
}

/* --------------------------------------------------------------------------- helpers */

static double t0_s;

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[" PROG " %7.1fs] ", bench_now_s() - t0_s);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ------------------------------------------------------------------------------ runs */

/* One prompt of `target` tokens, max_tokens 1: seconds from submit to its TOKEN event. */
static int run_prefill(infer_session *s, const char *prompt, int target, double *secs)
{
    infer_event ev[16];
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "m";
    rq.prompt = prompt;
    rq.max_tokens = 1;
    rq.temperature = 0.0f;
    rq.ignore_eos = 1;
    infer_request_id id;
    double t_submit = bench_now_s(), t_tok = 0, t_last = t_submit;
    infer_status rc = infer_submit(s, &rq, &id);
    if (rc) return bench_fail_api("infer_submit", rc);
    for (int done = 0; !done;) {
        int n = infer_poll(s, ev, 16, 1000);
        double t = bench_now_s();
        if (n < 0) return bench_fail_api("infer_poll", (infer_status)n);
        if (n == 0 && t - t_last > BENCH_POLL_STALL_S) {
            fprintf(stderr, PROG ": no event for %.0f s during prefill; giving up\n", BENCH_POLL_STALL_S);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            t_last = t;
            if (ev[i].type == INFER_EVENT_TOKEN && t_tok == 0) t_tok = t;
            if (ev[i].type == INFER_EVENT_DONE) {
                if (ev[i].status != INFER_OK) {
                    fprintf(stderr, PROG ": the prefill request ended with %s\n", infer_status_str(ev[i].status));
                    return -1;
                }
                if (ev[i].n_prompt_tokens != target)
                    fprintf(stderr, PROG ": warning: the prefill prompt has %d tokens, not %d\n",
                            (int)ev[i].n_prompt_tokens, target);
                done = 1;
            }
        }
    }
    *secs = t_tok - t_submit;
    return t_tok > 0 ? 0 : -1;
}

/* The median of r->runs[0..n_runs) into tok_s; min, max. Returns the index of the median run. */
static int summarize(case_result *r)
{
    double v[MAX_RUNS];
    memcpy(v, r->runs, (size_t)r->n_runs * sizeof *v);
    qsort(v, (size_t)r->n_runs, sizeof *v, bench_cmp_double);
    r->tok_s = r->n_runs % 2 ? v[r->n_runs / 2] : (v[r->n_runs / 2 - 1] + v[r->n_runs / 2]) / 2;
    r->tok_s_min = v[0];
    r->tok_s_max = v[r->n_runs - 1];
    int best = 0;
    for (int i = 1; i < r->n_runs; i++)
        if (fabs(r->runs[i] - r->tok_s) < fabs(r->runs[best] - r->tok_s)) best = i;
    return best;
}

/* --------------------------------------------------------------------------- output */

static void print_table(FILE *out, const opts *o, const case_result *res, int n_res)
{
    double W = weight_bytes(o), kvt = kv_bytes_per_token(o);
    fprintf(out, "\n" PROG ": libinfer %s, backend %s, model %s (label %s)\n", infer_version(), o->backend_name,
            o->model, o->label);
    if (o->shape)
        fprintf(out, "shape %s (%s), %s: weights read per decode step %.4g GB (%.4g bits/weight, output %.4g), "
                     "KV %.0f bytes/position\n",
                o->shape->sh.key, o->shape->sh.name, o->dtype, W / 1e9, o->wbits, o->out_wbits, kvt);
    else
        fprintf(out, "shape unknown (no --shape): byte figures omitted\n");
    fprintf(out, "%-14s %5s %11s %9s %9s %9s %10s %11s\n", "case", "seqs", "tok/s", "ms/step", "GB/step", "GB/s",
            "ttft ms", "host ms/st");
    for (int i = 0; i < n_res; i++) {
        const case_result *r = &res[i];
        if (!strcmp(r->kind, "decode")) {
            double step_s = r->tok_s > 0 ? r->seqs / r->tok_s : 0;
            double bytes = W + r->seqs * kvt * r->mean_ctx;
            char name[32];
            snprintf(name, sizeof name, "decode %s", r->seqs == 1 ? "b1" : "agg");
            fprintf(out, "%-14s %5d %11.1f %9.3f %9.4f %9.1f %10.1f %11.3f\n", name, r->seqs, r->tok_s, 1e3 * step_s,
                    bytes / 1e9, step_s > 0 ? bytes / step_s / 1e9 : 0, 1e3 * r->ttft_s, r->sched_ms_step);
        } else {
            double secs = r->tok_s > 0 ? r->tokens / r->tok_s : 0;
            double fl = prefill_flops(o, r->tokens);
            fprintf(out, "%-14s %5d %11.1f %9.3f %9s %9s %10.1f %11s  (%.4g TFLOP/s)\n", "prefill", r->seqs,
                    r->tok_s, 1e3 * secs, "-", "-", 1e3 * secs, "-", secs > 0 ? fl / secs / 1e12 : 0);
        }
    }
    fprintf(out, "(tok/s: median of the runs; decode: aggregate over the sequences; ms/step = seqs / tok/s;\n"
                 " GB/step: weights + KV read per step; host ms/st: engine time outside forward passes per step)\n");
}

static void print_json(FILE *js, const opts *o, const case_result *res, int n_res)
{
    double W = weight_bytes(o), kvt = kv_bytes_per_token(o);
    for (int i = 0; i < n_res; i++) {
        const case_result *r = &res[i];
        int dec = !strcmp(r->kind, "decode");
        double step_s = r->tok_s > 0 ? (dec ? r->seqs / r->tok_s : r->tokens / r->tok_s) : 0;
        double kv = dec ? r->seqs * kvt * r->mean_ctx : 0;
        fprintf(js, "{\"bench\":\"gpu_decode\",\"label\":\"%s\",\"case\":\"%s\",\"seqs\":%d,\"tok_s\":%.6g,"
                    "\"step_ms\":%.6g,\"weight_bytes\":%.6g,\"kv_bytes\":%.6g,\"achieved_GBps\":%.6g,",
                o->label, r->kind, r->seqs, r->tok_s, 1e3 * step_s, W, kv,
                W > 0 && step_s > 0 ? (W + kv) / step_s / 1e9 : 0);
        fprintf(js, "\"shape\":\"%s\",\"dtype\":\"%s\",\"backend\":\"%s\",\"gpus\":%d,\"wbits\":%.6g,"
                    "\"out_wbits\":%.6g,\"kv_elem_bytes\":%d,\"params\":%llu,\"output_params\":%llu,",
                o->shape ? o->shape->sh.key : "", o->dtype, o->backend_name, o->n_devices > 1 ? o->n_devices : 1,
                o->wbits, o->out_wbits, o->kv_elem_bytes,
                (unsigned long long)(o->shape ? layer_params(&o->shape->sh) : 0),
                (unsigned long long)(o->shape ? output_params(&o->shape->sh) : 0));
        if (dec) {
            fprintf(js, "\"prompt_tokens\":%d,\"new_tokens\":%d,\"mean_ctx\":%.6g,\"decode_tokens\":%ld,"
                        "\"window_s\":%.6g,\"ttft_s\":%.6g,\"steps\":%lld,\"preempted\":%lld,"
                        "\"host_ms_per_step\":%.6g,\"forward_ms_per_step\":%.6g,",
                    o->prompt_tokens, o->new_tokens, r->mean_ctx, r->decode_tokens, r->window_s, r->ttft_s,
                    (long long)r->steps, (long long)r->preempted, r->sched_ms_step, r->fwd_ms_step);
        } else {
            double fl = prefill_flops(o, r->tokens);
            fprintf(js, "\"tokens\":%d,\"flops\":%.6g,\"TFLOPs\":%.6g,", r->tokens, fl,
                    step_s > 0 ? fl / step_s / 1e12 : 0);
        }
        fprintf(js, "\"tok_s_min\":%.6g,\"tok_s_max\":%.6g,\"runs\":[", r->tok_s_min, r->tok_s_max);
        for (int k = 0; k < r->n_runs; k++) fprintf(js, "%s%.6g", k ? "," : "", r->runs[k]);
        fprintf(js, "]}\n");
    }
    fflush(js);
}

/* ---------------------------------------------------------------------------- session */

/* The library's warnings and errors: why a request failed is said there. */
static void lib_log(void *user, infer_log_level level, const char *msg)
{
    (void)user;
    fprintf(stderr, PROG ": libinfer %s: %s\n", level == INFER_LOG_ERROR ? "error" : "warning", msg);
}

static int bench_model(const opts *o, case_result *res, int *n_res)
{
    int max_n = 1;
    for (int i = 0; i < o->n_seqs; i++) max_n = o->seqs[i] > max_n ? o->seqs[i] : max_n;
    int P = o->prompt_tokens, G = o->new_tokens;

    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.backend = o->backend;
    sp.n_threads = o->threads;
    sp.prefix_cache = 0;
    sp.log_fn = lib_log;
    sp.n_devices = o->n_devices;
    for (int i = 0; i < o->n_devices; i++) sp.devices[i] = o->devices[i];
    if (sp.max_running < max_n) sp.max_running = max_n;
    if (sp.queue_capacity < 2 * max_n) sp.queue_capacity = 2 * max_n;
    int bt = o->batch_tokens;
    if (bt <= 0) {
        bt = 2048;
        if (bt < o->prefill + max_n) bt = o->prefill + max_n;
    }
    sp.max_batch_tokens = bt;
    size_t kvb = o->kv_bytes;
    if (o->shape) {
        /* The largest case at 4 bytes a value (in case the cache is f32), 1.25x for block slack. */
        double need = 1.25 * max_n * (P + G + 32.0) * kv_bytes_per_token(o) / o->kv_elem_bytes * 4;
        if ((double)kvb < need) kvb = (size_t)need;
    }
    sp.kv_cache_bytes = kvb;
    progress("session: backend %s, max_running %d, max_batch_tokens %d, kv_cache_bytes %.2f GiB, prefix cache off",
             o->backend_name, sp.max_running, sp.max_batch_tokens, (double)kvb / (1u << 30));
    infer_session *s = NULL;
    infer_status rc = infer_session_create(&sp, &s);
    if (rc) return bench_fail_api("infer_session_create", rc);
    progress("loading %s ...", o->model);
    double tl = bench_now_s();
    rc = infer_model_load(s, "m", NULL, o->model, NULL);
    if (rc) {
        bench_fail_api("infer_model_load", rc);
        infer_session_destroy(s);
        return -1;
    }
    progress("  loaded in %.1f s", bench_now_s() - tl);

    char *prompts[N_PROMPTS] = { 0 }, *pre[N_PROMPTS] = { 0 };
    int ret = -1;
    if (bench_make_prompts(s, "m", P, prompts, N_PROMPTS)) goto done;
    if (o->prefill > 0 && bench_make_prompts(s, "m", o->prefill, pre, N_PROMPTS)) goto done;

    progress("warm-up (every batch size once, a prefill of %d) ...", o->prefill);
    bench_decode_out w;
    for (int i = 0; i < o->n_seqs; i++)
        if (bench_decode_run(s, prompts, N_PROMPTS, P, o->seqs[i], 8, 0, &w)) goto done;
    double secs;
    if (o->prefill > 0 && (run_prefill(s, pre[0], o->prefill, &secs) || run_prefill(s, pre[1], o->prefill, &secs)))
        goto done;

    for (int i = 0; i < o->n_seqs; i++) {
        int N = o->seqs[i];
        case_result *r = &res[*n_res];
        memset(r, 0, sizeof *r);
        r->kind = "decode";
        r->seqs = N;
        bench_decode_out ro[MAX_RUNS];
        for (int k = 0; k < o->repeat; k++) {
            if (bench_decode_run(s, prompts, N_PROMPTS, P, N, G, 0, &ro[k])) goto done;
            r->runs[r->n_runs++] = ro[k].tok_s;
            progress("%s: decode %3d seq%s x %d tokens, run %d/%d: %10.1f tok/s (%.3f ms/step, ttft %.1f ms%s)",
                     o->label, N, N > 1 ? "s" : " ", G, k + 1, o->repeat, ro[k].tok_s,
                     ro[k].tok_s > 0 ? 1e3 * N / ro[k].tok_s : 0, 1e3 * ro[k].ttft_s,
                     ro[k].preempted ? ", PREEMPTED" : "");
            if (ro[k].prompt_mismatch)
                fprintf(stderr, PROG ": warning: a prompt had %d tokens, not %d\n", ro[k].prompt_mismatch, P);
        }
        const bench_decode_out *m = &ro[summarize(r)];
        r->window_s = m->window_s;
        r->ttft_s = m->ttft_s;
        r->mean_ctx = m->mean_ctx;
        r->decode_tokens = m->decode_tokens;
        r->steps = m->steps;
        for (int k = 0; k < r->n_runs; k++) r->preempted += ro[k].preempted;
        r->sched_ms_step = m->steps ? 1e-6 * (double)m->sched_ns / (double)m->steps : 0;
        r->fwd_ms_step = m->steps ? 1e-6 * (double)m->forward_ns / (double)m->steps : 0;
        if (r->preempted)
            fprintf(stderr, PROG ": WARNING: %lld preemptions at %d sequences: the KV pool (--kv-bytes) is too small "
                            "and the figure includes recomputation\n", (long long)r->preempted, N);
        (*n_res)++;
    }
    if (o->prefill > 0) {
        case_result *r = &res[*n_res];
        memset(r, 0, sizeof *r);
        r->kind = "prefill";
        r->seqs = 1;
        r->tokens = o->prefill;
        int reps = o->repeat < 5 ? 5 : o->repeat;
        for (int k = 0; k < reps && k < MAX_RUNS; k++) {
            if (run_prefill(s, pre[k % N_PROMPTS], o->prefill, &secs)) goto done;
            r->runs[r->n_runs++] = secs > 0 ? o->prefill / secs : 0;
            progress("%s: prefill %d tokens, run %d/%d: %.2f ms, %.0f tok/s", o->label, o->prefill, k + 1, reps,
                     1e3 * secs, secs > 0 ? o->prefill / secs : 0);
        }
        summarize(r);
        r->ttft_s = r->tok_s > 0 ? o->prefill / r->tok_s : 0;
        (*n_res)++;
    }
    ret = 0;
done:
    for (int i = 0; i < N_PROMPTS; i++) {
        free(prompts[i]);
        free(pre[i]);
    }
    infer_session_destroy(s);
    return ret;
}

/* ------------------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpu_decode -m MODEL [options]\n"
            "Decode and prefill throughput of libinfer on MODEL (HF directory or GGUF file), with the bytes a\n"
            "decode step reads (for bench/gpu/table.py). Run by bench/gpu/run.sh on the GPU machine.\n"
            "  -m, --model PATH       the model (required)\n"
            "      --backend B        cuda (default), cpu or auto\n"
            "  -t, --threads N        CPU threads (cpu backend; default all)\n"
            "      --label NAME       name in the output (default: the model's file name)\n"
            "      --shape S          1b, 8b or tiny: for the bytes per step (default: from the label's prefix)\n"
            "      --dtype D          bf16, f16, q8_0, q4_0: bits per weight (default: from the label's suffix,\n"
            "                         else bf16)\n"
            "      --wbits X          bits per weight of the layer matrices (overrides --dtype)\n"
            "      --out-wbits X      bits per weight of the output matrix (default: as --dtype / --wbits)\n"
            "      --kv-elem-bytes N  bytes per K/V value in the cache, for the bytes per step (default 2)\n"
            "      --prompt-tokens N  prompt length of the decode cases, BOS included (default 128)\n"
            "  -n, --new-tokens N     tokens generated per request (default 256)\n"
            "      --seqs LIST        concurrent sequences per decode case (default 1,8,32,64,128)\n"
            "      --prefill N        prompt tokens of the prefill case; 0 = none (default 512)\n"
            "      --repeat N         runs per case; the median counts (default 3; prefill at least 5)\n"
            "      --kv-bytes B       KV pool in bytes, K/M/G suffixes allowed (default 8G; raised if too small)\n"
            "      --devices LIST     GPUs to use, e.g. 0,1: the model's layers split across them (tensor\n"
            "                         parallelism; default: GPU 0)\n"
            "      --batch-tokens N   max_batch_tokens (default max(2048, prefill + largest seqs))\n"
            "  -o, --json PATH        JSON lines to PATH instead of stdout after the table ('-' = stdout)\n"
            "  -h, --help             this text\n");
}

static int parse_size(const char *opt, const char *v, size_t *out)
{
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || x <= 0) goto bad;
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end) goto bad;
    *out = (size_t)(x * mul);
    return 0;
bad:
    fprintf(stderr, PROG ": %s needs a size in bytes (K/M/G suffixes allowed), got '%s'\n", opt, v ? v : "");
    return -1;
}

static int set_dtype(opts *o, const char *d)
{
    if (!strcmp(d, "bf16") || !strcmp(d, "f16")) o->wbits = o->out_wbits = 16;
    else if (!strcmp(d, "q8_0")) o->wbits = o->out_wbits = 8.5;
    else if (!strcmp(d, "q4_0")) o->wbits = 4.5, o->out_wbits = 6.5625; /* output in Q6_K (llama-quantize) */
    else return -1;
    o->dtype = d;
    return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = INFER_BACKEND_CUDA;
    o->backend_name = "cuda";
    o->prompt_tokens = 128;
    o->new_tokens = 256;
    o->prefill = 512;
    o->repeat = 3;
    o->kv_bytes = (size_t)8 << 30;
    o->kv_elem_bytes = 2;
    static const int def_seqs[] = { 1, 8, 32, 64, 128 };
    for (int i = 0; i < 5; i++) o->seqs[i] = def_seqs[i];
    o->n_seqs = 5;
    const char *shape = NULL, *dtype = NULL;
    double wbits = 0, out_wbits = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "--label")) {
            o->label = v;
        } else if (!strcmp(a, "--backend")) {
            if (!v) v = "";
            if (!strcmp(v, "cuda")) o->backend = INFER_BACKEND_CUDA;
            else if (!strcmp(v, "cpu")) o->backend = INFER_BACKEND_CPU;
            else if (!strcmp(v, "auto")) o->backend = INFER_BACKEND_AUTO;
            else { fprintf(stderr, PROG ": --backend is cuda, cpu or auto, not '%s'\n", v); return -1; }
            o->backend_name = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (bench_parse_int(a, v, 0, 1024, &o->threads)) return -1;
        } else if (!strcmp(a, "--shape")) {
            shape = v;
        } else if (!strcmp(a, "--dtype")) {
            dtype = v;
        } else if (!strcmp(a, "--wbits")) {
            if (bench_parse_double(a, v, 0.5, 64, &wbits)) return -1;
        } else if (!strcmp(a, "--out-wbits")) {
            if (bench_parse_double(a, v, 0.5, 64, &out_wbits)) return -1;
        } else if (!strcmp(a, "--kv-elem-bytes")) {
            if (bench_parse_int(a, v, 1, 8, &o->kv_elem_bytes)) return -1;
        } else if (!strcmp(a, "--prompt-tokens")) {
            if (bench_parse_int(a, v, 2, 1 << 16, &o->prompt_tokens)) return -1;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--new-tokens")) {
            if (bench_parse_int(a, v, 2, 1 << 16, &o->new_tokens)) return -1;
        } else if (!strcmp(a, "--prefill")) {
            if (bench_parse_int(a, v, 0, 1 << 16, &o->prefill)) return -1;
        } else if (!strcmp(a, "--repeat")) {
            if (bench_parse_int(a, v, 1, MAX_RUNS, &o->repeat)) return -1;
        } else if (!strcmp(a, "--kv-bytes")) {
            if (parse_size(a, v, &o->kv_bytes)) return -1;
        } else if (!strcmp(a, "--devices")) {
            if (!v) { fprintf(stderr, PROG ": --devices needs a list of GPU ordinals such as 0,1\n"); return -1; }
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            o->n_devices = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (o->n_devices == 8) { fprintf(stderr, PROG ": --devices: at most 8\n"); return -1; }
                if (bench_parse_int(a, tok, 0, 1023, &o->devices[o->n_devices++])) return -1;
            }
        } else if (!strcmp(a, "--batch-tokens")) {
            if (bench_parse_int(a, v, 1, 1 << 20, &o->batch_tokens)) return -1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--json")) {
            o->json_path = v;
        } else if (!strcmp(a, "--seqs")) {
            if (!v) { fprintf(stderr, PROG ": --seqs needs a list such as 1,8,32\n"); return -1; }
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            o->n_seqs = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int n, dup = 0;
                if (bench_parse_int("--seqs", tok, 1, 4096, &n)) return -1;
                for (int k = 0; k < o->n_seqs; k++) dup |= o->seqs[k] == n;
                if (dup) continue;
                if (o->n_seqs == MAX_SEQ_CASES) { fprintf(stderr, PROG ": at most %d --seqs values\n", MAX_SEQ_CASES); return -1; }
                o->seqs[o->n_seqs++] = n;
            }
        } else {
            fprintf(stderr, PROG ": unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (takes) {
            if (!v) { fprintf(stderr, PROG ": %s needs a value\n", a); return -1; }
            i++;
        }
    }
    if (!o->model) {
        fprintf(stderr, PROG ": -m MODEL is required (see --help)\n");
        return -1;
    }
    if (!o->label) {
        const char *sl = strrchr(o->model, '/');
        o->label = sl && sl[1] ? sl + 1 : o->model;
    }
    /* Shape and dtype from the label ("1b-bf16", "8b-q4_0") when not given. */
    for (int k = 0; k < N_SHAPES && !shape; k++) {
        size_t n = strlen(k_shapes[k].sh.key);
        if (!strncmp(o->label, k_shapes[k].sh.key, n) && (o->label[n] == '-' || o->label[n] == '_' || !o->label[n]))
            shape = k_shapes[k].sh.key;
    }
    if (shape) {
        for (int k = 0; k < N_SHAPES; k++)
            if (!strcmp(shape, k_shapes[k].sh.key)) o->shape = &k_shapes[k];
        if (!o->shape) { fprintf(stderr, PROG ": unknown --shape '%s' (1b, 8b, tiny)\n", shape); return -1; }
    }
    static const char *const dtypes[] = { "bf16", "f16", "q8_0", "q4_0" };
    size_t n = strlen(o->label);
    if (n > 5 && !strcmp(o->label + n - 5, ".gguf")) n -= 5;
    for (int k = 0; k < 4 && !dtype; k++) {
        size_t d = strlen(dtypes[k]);
        if (n > d && !strncmp(o->label + n - d, dtypes[k], d) && (o->label[n - d - 1] == '-' || o->label[n - d - 1] == '_'))
            dtype = dtypes[k];
    }
    if (set_dtype(o, dtype ? dtype : "bf16")) {
        fprintf(stderr, PROG ": unknown --dtype '%s' (bf16, f16, q8_0, q4_0)\n", dtype);
        return -1;
    }
    if (wbits > 0) o->wbits = o->out_wbits = wbits;
    if (out_wbits > 0) o->out_wbits = out_wbits;
    return 0;
}

int main(int argc, char **argv)
{
    t0_s = bench_now_s();
    opts o;
    if (parse_args(argc, argv, &o)) return 2;
    FILE *js = bench_open_json(o.json_path);
    if (!js) return 2;
    if (o.shape)
        progress("%s: shape %s, %s: %.4g GB of weights read per decode step", o.label, o.shape->sh.key, o.dtype,
                 weight_bytes(&o) / 1e9);
    case_result res[MAX_SEQ_CASES + 1];
    int n_res = 0;
    int rc = bench_model(&o, res, &n_res);
    if (n_res > 0) {
        print_table(stdout, &o, res, n_res);
        fflush(stdout);
        print_json(js, &o, res, n_res);
    }
    if (js != stdout && fclose(js) != 0) {
        fprintf(stderr, PROG ": writing '%s' failed\n", o.json_path);
        return 1;
    }
    return rc ? 1 : 0;
}
