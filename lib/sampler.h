/*
** sampler.h — logits -> next token, per request; stop strings.
**
** A sampler owns its seeded PRNG, so a request's choices depend only on its own logits
** and seed (the same with or without batching). Sampling order (as llama.cpp's default
** chain): penalties over the last penalty_last_n tokens -> greedy if temperature <= 0 ->
** top-k -> temperature -> softmax -> top-p -> min-p -> draw.
*/
#ifndef INFER_SAMPLER_H
#define INFER_SAMPLER_H

#include "internal.h"

typedef struct sampler_params {
    float temperature;
    int top_k;
    float top_p;
    float min_p;
    float repetition_penalty;
    float frequency_penalty;
    float presence_penalty;
    int penalty_last_n;
    uint64_t seed;
} sampler_params;

typedef struct sampler sampler;

/* Validates ranges (temperature >= 0, top_k >= 0, 0 < top_p <= 1, 0 <= min_p <= 1,
** repetition_penalty > 0, penalty_last_n >= 0): INFER_EINVAL naming the field. */
infer_status sampler_create(const sampler_params *p, int32_t n_vocab, sampler **out);
void sampler_free(sampler *s);

/* 1 when the choice is the plain argmax of the logits (temperature 0, no penalties), so a
** device backend may pick it where the logits are. */
int sampler_is_greedy(const sampler *s);

/* For a backend that samples on the device (kernels/sample.cu: top-k up to max_k): when this
** sampler's choice is a top-k draw without penalties (temperature > 0, 1 <= top_k <= max_k),
** fill p = {1, temperature, top_k, top_p, min_p, u}, drawing u from the request's stream as
** sampler_sample would, and return 1; else return 0 and draw nothing. */
int sampler_device_params(sampler *s, int max_k, float p[6]);

/* The greedy choice: the largest logit, ties to the lowest id, NaN never chosen (0 when every
** logit is NaN). What sampler_sample returns at temperature 0 without penalties; the CPU
** backend calls it for the rows a step samples greedily. Reads only `logits`: thread-safe. */
int32_t sampler_argmax(const float *logits, int32_t n);

/* Choose the next token. `logits` (n_vocab) may be modified. `history` holds the
** sequence so far (prompt + generated), used by the penalties. */
int32_t sampler_sample(sampler *s, float *logits, const int32_t *history, size_t n_history);

/* Stop strings over streamed text: text that might be the start of a stop string is held
** back until it is known not to be; text after a match is never released. */
typedef struct stop_matcher stop_matcher;
infer_status stop_create(const char *const *stops, size_t n, stop_matcher **out); /* copies */
void stop_free(stop_matcher *m);
/* Feed newly produced text; appends what is now safe to emit to `out`. Sets *matched = 1
** when a stop string completed (the text before it has been appended; stop there). */
infer_status stop_feed(stop_matcher *m, const char *text, size_t len, strbuf *out, int *matched);
/* End of generation without a match: release the held-back text. */
infer_status stop_flush(stop_matcher *m, strbuf *out);

#endif
