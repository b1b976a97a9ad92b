/*
** sampler.c — logits -> next token for one request.
**
** The chain follows llama.cpp's default order: repetition / frequency / presence penalties
** over the recent history (Keskar et al., "CTRL", 2019, for the repetition penalty; the
** OpenAI API for frequency/presence) -> argmax when temperature <= 0 -> top-k -> temperature
** -> softmax -> top-p (Holtzman et al., "The Curious Case of Neural Text Degeneration",
** 2019) -> min-p (Nguyen et al., 2024) -> one uniform draw.
**
** Vocabularies reach 128k+ entries and this runs once per generated token, so:
**  - every buffer is allocated once in sampler_create (no malloc per token);
**  - top-k keeps a size-k min-heap instead of sorting the vocabulary;
**  - top-p without top-k sorts nothing: a radix selection on the probabilities' bit
**    patterns finds the nucleus in four linear passes, flat logits included.
** Every non-greedy call consumes exactly one rng_float whatever the filters keep, so a
** request's random stream advances the same way whatever its settings or batch.
*/
#include "sampler.h"

#include "rng.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A candidate token: `v` is a logit during top-k selection, then an unnormalised
** probability exp((logit - max) / T), so the most likely candidate always has v = 1. */
typedef struct cand {
    float v;
    int32_t id;
} cand;

struct sampler {
    sampler_params p;
    int32_t n_vocab;
    rng rng;
    cand *cand;      /* n_vocab */
    int32_t *count;  /* n_vocab occurrence counts, all zero between calls; NULL = no penalties */
    int32_t *seen;   /* distinct tokens of the penalty window */
    cand *tmp;       /* n_vocab, partition scratch for top-p without top-k; else NULL */
};

infer_status sampler_create(const sampler_params *p, int32_t n_vocab, sampler **out)
{
    if (!p || !out) return infer_err(INFER_EINVAL, "sampler_create: NULL argument");
    *out = NULL;
    if (n_vocab <= 0) return infer_err(INFER_EINVAL, "sampler: n_vocab = %d must be > 0", (int)n_vocab);
    /* Written as !(x >= lo) so that NaN fails too. */
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return infer_err(INFER_EINVAL, "sampler: temperature = %g must be finite and >= 0", (double)p->temperature);
    if (p->top_k < 0) return infer_err(INFER_EINVAL, "sampler: top_k = %d must be >= 0", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return infer_err(INFER_EINVAL, "sampler: top_p = %g must be in (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return infer_err(INFER_EINVAL, "sampler: min_p = %g must be in [0, 1]", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty))
        return infer_err(INFER_EINVAL, "sampler: repetition_penalty = %g must be finite and > 0",
                         (double)p->repetition_penalty);
    if (!isfinite(p->frequency_penalty))
        return infer_err(INFER_EINVAL, "sampler: frequency_penalty = %g must be finite", (double)p->frequency_penalty);
    if (!isfinite(p->presence_penalty))
        return infer_err(INFER_EINVAL, "sampler: presence_penalty = %g must be finite", (double)p->presence_penalty);
    if (p->penalty_last_n < 0)
        return infer_err(INFER_EINVAL, "sampler: penalty_last_n = %d must be >= 0", p->penalty_last_n);

    sampler *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->p = *p;
    s->n_vocab = n_vocab;
    rng_seed(&s->rng, p->seed);
    s->cand = malloc(sizeof *s->cand * (size_t)n_vocab);
    if (!s->cand) goto nomem;
    int penalties = p->penalty_last_n > 0 &&
                    (p->repetition_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
    if (p->temperature > 0.0f && p->top_p < 1.0f && (p->top_k == 0 || p->top_k >= n_vocab)) {
        s->tmp = malloc(sizeof *s->tmp * (size_t)n_vocab);
        if (!s->tmp) goto nomem;
    }
    if (penalties) {
        /* A window holds at most min(penalty_last_n, n_vocab) distinct tokens. */
        size_t n_seen = (size_t)INFER_MIN(p->penalty_last_n, n_vocab);
        s->count = calloc((size_t)n_vocab, sizeof *s->count);
        s->seen = malloc(sizeof *s->seen * n_seen);
        if (!s->count || !s->seen) goto nomem;
    }
    *out = s;
    return INFER_OK;
nomem:
    sampler_free(s);
    return infer_err(INFER_ENOMEM, "sampler: out of memory for a vocabulary of %d", (int)n_vocab);
}

void sampler_free(sampler *s)
{
    if (!s) return;
    free(s->cand);
    free(s->count);
    free(s->seen);
    free(s->tmp);
    free(s);
}

/* NaN logits (a broken model, never a valid score) are treated as impossible tokens. */
static inline float sane(float v) { return isnan(v) ? -INFINITY : v; }

/* Penalties over the last penalty_last_n tokens, each distinct token once, as llama.cpp:
** repetition divides a positive logit (multiplies a negative one) by the penalty, then
** frequency subtracts f * count and presence subtracts p once. Counting uses the zeroed
** count array and resets exactly the entries it touched, so a call costs O(window). */
static void apply_penalties(sampler *s, float *logits, const int32_t *history, size_t n_history)
{
    if (!s->count || !history || n_history == 0) return;
    size_t n = INFER_MIN(n_history, (size_t)s->p.penalty_last_n);
    const int32_t *w = history + (n_history - n);
    size_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t t = w[i];
        if (t < 0 || t >= s->n_vocab) continue; /* not a vocabulary token: nothing to penalise */
        if (s->count[t]++ == 0) s->seen[n_seen++] = t;
    }
    const float rep = s->p.repetition_penalty, freq = s->p.frequency_penalty, pres = s->p.presence_penalty;
    for (size_t j = 0; j < n_seen; j++) {
        int32_t t = s->seen[j];
        float l = logits[t];
        if (rep != 1.0f) l = l > 0.0f ? l / rep : l * rep;
        l -= (float)s->count[t] * freq + pres;
        logits[t] = l;
        s->count[t] = 0;
    }
}

/* Largest logit, NaN ignored (-INFINITY when none). AVX2 when the CPU has it: a greedy step
** takes one argmax per sequence over vocabularies of 32k-150k (the CPU backend runs them on
** its worker threads, after the forward pass). */
__attribute__((target("avx2"))) static float max_avx2(const float *x, int32_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m); /* NaN in x: keeps m */
    float v[8];
    _mm256_storeu_ps(v, m);
    float best = v[0];
    for (int k = 1; k < 8; k++) best = v[k] > best ? v[k] : best;
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

/* The lowest i with x[i] == v (ordered compare: NaN never equals), or -1. */
__attribute__((target("avx2"))) static int32_t find_avx2(const float *x, int32_t n, float v)
{
    __m256 vv = _mm256_set1_ps(v);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vv, _CMP_EQ_OQ));
        if (mask) return i + __builtin_ctz((unsigned)mask);
    }
    for (; i < n; i++)
        if (x[i] == v) return i;
    return -1;
}

/* Argmax; ties go to the lowest id (the first seen), NaN never wins (every logit NaN: 0). */
int32_t sampler_argmax(const float *logits, int32_t n)
{
    float bv = -INFINITY;
    if (__builtin_cpu_supports("avx2")) {
        int32_t i = find_avx2(logits, n, max_avx2(logits, n));
        return i < 0 ? 0 : i;
    }
    for (int32_t i = 0; i < n; i++) bv = logits[i] > bv ? logits[i] : bv;
    /* the lowest id holding it (ties -> lowest id) */
    for (int32_t i = 0; i < n; i++)
        if (logits[i] == bv) return i;
    return 0;
}

/* a ranks below b: smaller value, or equal value and a larger id (so ties keep low ids). */
static inline int cand_below(const cand *a, const cand *b)
{
    return a->v < b->v || (a->v == b->v && a->id > b->id);
}

/* Min-heap by cand_below: h[0] is the weakest candidate kept. */
static void heap_sift_down(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && cand_below(&h[l], &h[m])) m = l;
        if (l + 1 < n && cand_below(&h[l + 1], &h[m])) m = l + 1;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(cand *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_below(&h[i], &h[parent])) return;
        cand t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

/* The k best logits into s->cand[0..k), best first. O(n log k) worst case, close to O(n)
** in practice since few tokens beat the weakest of the k kept. */
static size_t select_top_k(sampler *s, const float *logits, size_t k)
{
    cand *h = s->cand;
    size_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        cand c = { sane(logits[i]), i };
        if (n < k) {
            h[n] = c;
            heap_sift_up(h, n++);
        } else if (c.v >= h[0].v && cand_below(&h[0], &c)) { /* cheap test first: most fail it */
            h[0] = c;
            heap_sift_down(h, n, 0);
        }
    }
    /* Heap sort: repeatedly move the weakest to the end, leaving the best first. */
    for (size_t end = n; end > 1; end--) {
        cand t = h[0];
        h[0] = h[end - 1];
        h[end - 1] = t;
        heap_sift_down(h, end - 1, 0);
    }
    return n;
}

/* (logit - max) / T, exactly 0 for the maximum itself (so +inf logits stay usable). */
static inline float scaled(float l, float max, float temp)
{
    return l == max ? 0.0f : (l - max) / temp;
}

/* Byte `shift / 8` of v's bit pattern. For v >= 0 the pattern increases with the value,
** so comparing these digits from the top byte down orders candidates by probability. */
static inline unsigned prob_digit(float v, int shift)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits >> shift) & 0xffu;
}

/* Length of the nucleus of sorted c[0..n): the shortest prefix whose mass reaches
** `target`; all of it if rounding leaves the sum just short. */
static size_t nucleus_len(const cand *c, size_t n, double target)
{
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += c[i].v;
        if (cum >= target) return i + 1;
    }
    return n;
}

/* Top-p over the unsorted full vocabulary in s->cand (v = probability, in id order).
** The nucleus is a prefix of the descending order, so it is found without sorting by a
** radix selection on mass: four passes, one per byte of v's bit pattern from the top, each
** histogramming the still-undecided range, keeping whole the digits above the one where the
** cumulative mass reaches the target and recursing into that one. Each pass is a stable
** partition (through s->tmp), so what is left at the end is a run of equal probabilities in
** id order, of which the lowest ids are taken: ties break as in argmax. O(n) even when the
** logits are flat and the nucleus is most of the vocabulary. The kept tokens are moved to
** the front (grouped by digit, not fully sorted: the draw does not need order). */
static size_t top_p_unsorted(sampler *s, size_t n, double total)
{
    cand *c = s->cand, *tmp = s->tmp;
    double need = (double)s->p.top_p * total; /* mass still to take from c[lo..hi) */
    size_t lo = 0, hi = n;                    /* c[0..lo) kept; c[lo..hi) undecided */
    for (int shift = 24; shift >= 0; shift -= 8) {
        double mass[256] = { 0 };
        for (size_t i = lo; i < hi; i++) mass[prob_digit(c[i].v, shift)] += c[i].v;
        double above = 0.0;
        int b = -1;
        for (int d = 255; d >= 0; d--) {
            if (above + mass[d] >= need) {
                b = d;
                break;
            }
            above += mass[d];
        }
        if (b < 0) return hi; /* short only by rounding: the whole range is needed */
        size_t n_above = 0, n_equal = 0;
        for (size_t i = lo; i < hi; i++) {
            unsigned d = prob_digit(c[i].v, shift);
            n_above += d > (unsigned)b;
            n_equal += d == (unsigned)b;
        }
        size_t ia = 0, ie = n_above, ib = n_above + n_equal;
        for (size_t i = lo; i < hi; i++) {
            unsigned d = prob_digit(c[i].v, shift);
            tmp[d > (unsigned)b ? ia++ : d == (unsigned)b ? ie++ : ib++] = c[i];
        }
        memcpy(c + lo, tmp, sizeof *c * (hi - lo));
        lo += n_above;
        hi = lo + n_equal;
        need -= above; /* stays > 0: above < need by the choice of b */
    }
    return lo + nucleus_len(c + lo, hi - lo, need);
}

int sampler_is_greedy(const sampler *s)
{
    return s->p.temperature <= 0.0f && !s->count;
}

int sampler_device_params(sampler *s, int max_k, float p[6])
{
    if (!(s->p.temperature > 0.0f) || s->count || s->p.top_k < 1 || s->p.top_k > max_k || s->p.top_k >= s->n_vocab)
        return 0;
    p[0] = 1.0f;
    p[1] = s->p.temperature;
    p[2] = (float)s->p.top_k;
    p[3] = s->p.top_p;
    p[4] = s->p.min_p;
    p[5] = rng_float(&s->rng); /* the one draw of this step, as in sampler_sample */
    return 1;
}

int32_t sampler_sample(sampler *s, float *logits, const int32_t *history, size_t n_history)
{
    apply_penalties(s, logits, history, n_history);
    if (s->p.temperature <= 0.0f) return sampler_argmax(logits, s->n_vocab);

    /* Drawn first so that every non-greedy call advances the stream by exactly one. */
    const float u = rng_float(&s->rng);
    const float temp = s->p.temperature;
    cand *c = s->cand;
    size_t n;
    int sorted;
    float max;
    if (s->p.top_k > 0 && s->p.top_k < s->n_vocab) {
        n = select_top_k(s, logits, (size_t)s->p.top_k);
        max = c[0].v;
        sorted = 1;
    } else {
        n = (size_t)s->n_vocab;
        max = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            float l = sane(logits[i]);
            c[i].v = l;
            c[i].id = (int32_t)i;
            if (l > max) max = l;
        }
        sorted = 0;
    }
    /* Every logit -inf or NaN: no distribution to draw from, fall back to argmax. */
    if (max == -INFINITY) return sorted ? c[0].id : sampler_argmax(logits, s->n_vocab);

    /* Softmax, stabilised by the max; unnormalised (the max gets 1), summed in double. */
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].v = expf(scaled(c[i].v, max, temp));
        total += c[i].v;
    }

    if (s->p.top_p < 1.0f) {
        if (sorted) n = nucleus_len(c, n, (double)s->p.top_p * total);
        else n = top_p_unsorted(s, n, total);
    }

    if (s->p.min_p > 0.0f) {
        /* The most likely token is always kept and has v = 1, so the cut is min_p itself. */
        const float cut = s->p.min_p;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].v >= cut) c[m++] = c[i];
        n = m;
    }

    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += c[i].v;
    const double r = (double)u * sum;
    double cum = 0.0;
    int32_t last = c[0].id;
    for (size_t i = 0; i < n; i++) {
        if (c[i].v <= 0.0f) continue;
        cum += c[i].v;
        last = c[i].id;
        if (r < cum) return c[i].id;
    }
    return last; /* r rounded to the very top of the mass: the last possible token */
}
