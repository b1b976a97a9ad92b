/*
** tok_pretok.h — pre-tokenizers of byte-level BPE: split text into the pieces BPE merges within.
**
** Each kind reproduces the split regex(es) of a model family exactly, as llama.cpp applies them
** (src/llama-vocab.cpp llm_tokenizer_bpe, src/unicode.cpp unicode_regex_split), hand-written
** with no regex engine, over Unicode categories from lib/unicode_data.c. tok_pretok.c lists
** each pattern. Input is any byte string: invalid UTF-8 bytes count as one character each of
** class [^\s\p{L}\p{N}] (see lib/unicode.h) and stay in the output unchanged.
*/
#ifndef INFER_TOK_PRETOK_H
#define INFER_TOK_PRETOK_H

#include "internal.h"

typedef enum pretok_kind {
    PRETOK_GPT2 = 0, /* GPT-2 / HF ByteLevel default: 's|'t|...| ?\p{L}+| ?\p{N}+|... */
    PRETOK_LLAMA3,   /* Llama 3 (tiktoken cl100k style): \p{N}{1,3}, [\r\n] handling */
    PRETOK_QWEN2,    /* Qwen2: the Llama 3 pattern with single digits \p{N} */
    PRETOK_SMOLLM,   /* SmolLM, StarCoder & co: each digit isolated, then GPT-2 */
    PRETOK_FALCON,   /* Falcon: punctuation runs, then GPT-2, then 3-digit groups */
    PRETOK_DEFAULT,  /* llama.cpp's fallback for "default" or a missing tokenizer.ggml.pre */
    PRETOK_COUNT
} pretok_kind;

/* Kind for a GGUF tokenizer.ggml.pre value ("gpt-2", "llama-bpe", "qwen2", "smollm", ...; the
** aliases are llama.cpp's). NULL or "" gives PRETOK_DEFAULT, as in llama.cpp (which warns that
** quality degrades; the caller may log that). An unknown or unimplemented name (e.g.
** "deepseek-llm", "gpt-4o") gives INFER_EUNSUPPORTED naming it, *out untouched. */
infer_status pretok_from_name(const char *gguf_pre_name, pretok_kind *out);

/* Short name of a kind ("gpt2", "llama3", "qwen2", "smollm", "falcon", "default"); "?" if bad. */
const char *pretok_kind_name(pretok_kind k);

/* One piece: bytes text[off .. off+len), len >= 1. */
typedef struct pretok_span {
    uint32_t off, len;
} pretok_span;

/* Split text[0..len) into pieces. *spans is a malloc'd buffer of *cap entries that grows as
** needed and may be reused between calls (start with NULL/0; free() it when done); *n_spans
** receives the count. The pieces are in order and tile the text exactly (the concatenation is
** the input), none empty; empty text gives zero pieces. Linear time, reads only text[0..len)
** (text may be NULL when len is 0), no allocation except growing *spans.
** Errors: INFER_EINVAL (bad kind, NULL pointers, len > UINT32_MAX), INFER_ENOMEM (then *spans
** stays a valid buffer of *cap entries and *n_spans is 0). */
infer_status pretok_split(pretok_kind k, const char *text, size_t len, pretok_span **spans,
                          size_t *n_spans, size_t *cap);

#endif
