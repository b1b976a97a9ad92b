/*
** bench_prompt.h — prompts of an exact token count for benchmarks that go through the public
** API only (infer_request takes text, not token ids): prefixes of a fixed English text, cut with
** infer_tokenize (the model's own BOS rule, as a request with add_bos -1 uses) to the count,
** at a word boundary where one gives it, else padded with short pieces. Checked with byte-level
** BPE (bench/gpu/make_hf_model.py's tokenizer.json) and SentencePiece vocabs (gen_gguf.py's
** dummy one, where a letter is one token and a space three). Header-only, like bench_util.h.
*/
#ifndef INFER_BENCH_PROMPT_H
#define INFER_BENCH_PROMPT_H

#include <infer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const bench_sentences[] = {
    "Once upon a time, there was a little girl named Lily who loved to play outside in the park with her "
    "friends and her big brown dog, Max.",
    "One day, a small boy called Tim found a shiny red ball under a big tree near his house, and he ran home "
    "to show it to his mother.",
    "The sun was warm and the birds were singing when Sue and her mom went to the market to buy some fresh "
    "fruit and a loaf of bread.",
    "In a quiet town by the sea lived an old fisherman who told the children stories about the whales, the "
    "storms and the lighthouse.",
    "Every morning the baker opened his shop at six, and the smell of warm bread and cinnamon rolls filled "
    "the whole street.",
    "The train left the station slowly, and through the window the children watched the fields, the rivers "
    "and the distant hills go by.",
    "When the snow came, the whole family went outside to build a snowman with a carrot nose, two buttons "
    "and an old red scarf.",
};
#define BENCH_N_SENTENCES (int)(sizeof bench_sentences / sizeof bench_sentences[0])

/* The sentences from `start` on, cycled, until the text is at least `min_len` bytes. */
static inline char *bench_prompt_text(int start, size_t min_len)
{
    size_t cap = min_len + 512, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    buf[0] = 0;
    for (int i = start; len < min_len; i++) {
        const char *snt = bench_sentences[i % BENCH_N_SENTENCES];
        size_t n = strlen(snt);
        if (len + n + 2 > cap) {
            cap = 2 * (len + n + 2);
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
        }
        if (len) buf[len++] = ' ';
        memcpy(buf + len, snt, n + 1);
        len += n;
    }
    return buf;
}

/* Token count of text[0..n) (the model's BOS rule); -1 on failure. */
static inline long bench_count_tokens(infer_session *s, const char *model, char *text, size_t n)
{
    char saved = text[n];
    text[n] = 0;
    size_t cnt = 0;
    infer_status rc = infer_tokenize(s, model, NULL, text, INFER_TOKENIZE_MODEL_BOS, NULL, 0, &cnt);
    text[n] = saved;
    if (rc) {
        fprintf(stderr, "infer_tokenize failed: %s: %s\n", infer_status_str(rc), infer_last_error(NULL));
        return -1;
    }
    return (long)cnt;
}

/* Short pieces to append when no prefix of the text has the exact count: with the dummy
** SentencePiece vocab of gen_gguf.py a space costs 3 tokens and a letter 1, so some counts fall
** between two prefixes; "." or " a" then closes the gap. */
static const char *const bench_fill[] = { " a", ".", " I", ",", "x", " the", "!", "1" };

/* A prompt of exactly `target` tokens: the longest prefix of `text` ending at a word boundary
** with at most `target` tokens (binary search), then the first longer prefix with exactly
** `target`, else that boundary prefix followed by bench_fill pieces chosen greedily (the smallest
** increase that does not overshoot). malloc'd, or NULL. */
static inline char *bench_find_prompt(infer_session *s, const char *model, char *text, int target)
{
    size_t len = strlen(text);
    size_t *bounds = malloc((len + 1) * sizeof *bounds);
    char *buf = malloc(len + 64 * 8 + 1);
    char *out = NULL;
    if (!bounds || !buf) goto done;
    size_t nb = 0;
    for (size_t i = 1; i <= len; i++)
        if (i == len || text[i] == ' ') bounds[nb++] = i;
    size_t lo = 0, hi = nb; /* bounds[0..lo) have at most target tokens */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        long c = bench_count_tokens(s, model, text, bounds[mid]);
        if (c < 0) goto done;
        if (c <= target) lo = mid + 1;
        else hi = mid;
    }
    size_t from = lo > 0 ? bounds[lo - 1] : 0;
    for (size_t n = from ? from : 1; n <= len && n < from + 64; n++) {
        long c = bench_count_tokens(s, model, text, n);
        if (c < 0) goto done;
        if (c == target) {
            out = strndup(text, n);
            goto done;
        }
        if (c > target + 8) break;
    }
    memcpy(buf, text, from);
    size_t n = from;
    buf[n] = 0;
    long c = bench_count_tokens(s, model, buf, n);
    for (int step = 0; step < 64 && c >= 0 && c < target; step++) {
        long best_c = -1;
        int best = -1;
        for (int k = 0; k < (int)(sizeof bench_fill / sizeof *bench_fill); k++) {
            size_t fl = strlen(bench_fill[k]);
            memcpy(buf + n, bench_fill[k], fl + 1);
            long ck = bench_count_tokens(s, model, buf, n + fl);
            if (ck < 0) goto done;
            if (ck > c && ck <= target && (best < 0 || ck < best_c)) best = k, best_c = ck;
        }
        if (best < 0) break;
        memcpy(buf + n, bench_fill[best], strlen(bench_fill[best]) + 1);
        n += strlen(bench_fill[best]);
        c = best_c;
    }
    buf[n] = 0;
    if (c == target) out = strndup(buf, n);
done:
    free(bounds);
    free(buf);
    return out;
}

/* n prompts of exactly `target` tokens into p[0..n), each from a different start in the text;
** 0, or -1 with a message (p[] all NULL). */
static inline int bench_make_prompts(infer_session *s, const char *model, int target, char **p, int n)
{
    memset(p, 0, (size_t)n * sizeof *p);
    /* At >= 1 token per byte (the dummy SentencePiece vocab of gen_gguf.py spends 3 per space)
    ** 8 bytes a token is ample. */
    size_t min_len = (size_t)target * 8 + 256;
    for (int i = 0; i < n; i++) {
        char *text = bench_prompt_text(i, min_len);
        if (!text) return -1;
        p[i] = bench_find_prompt(s, model, text, target);
        free(text);
        if (!p[i]) {
            fprintf(stderr, "no prefix of the prompt text encodes to exactly %d tokens with this "
                            "tokenizer\n", target);
            for (int k = 0; k < i; k++) {
                free(p[k]);
                p[k] = NULL;
            }
            return -1;
        }
    }
    return 0;
}

#endif
