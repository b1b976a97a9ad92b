/*
** tokenizer.h — text <-> token ids for the loaded model, and streaming detokenization.
**
** Implemented now: the llama2.c tokenizer.bin format (SentencePiece-style BPE driven by
** merge scores, byte fallback <0xNN>, BOS). A tokenizer is immutable after loading, so
** encode/decode may run on any thread concurrently.
*/
#ifndef INFER_TOKENIZER_H
#define INFER_TOKENIZER_H

#include "internal.h"

typedef struct tokenizer tokenizer;

/* Load a llama2.c tokenizer.bin holding `vocab_size` entries (from the checkpoint header).
** Every length and count is checked against the file: INFER_EFORMAT names what is wrong. */
infer_status tok_load_llama2c(const char *path, int32_t vocab_size, tokenizer **out);
void tok_free(tokenizer *t);

int32_t tok_n_vocab(const tokenizer *t);
int32_t tok_bos(const tokenizer *t);  /* 1 for llama2.c */
int32_t tok_eos(const tokenizer *t);  /* 2 for llama2.c */

/* Encode text[0..len) (UTF-8; invalid bytes go through byte fallback) the way llama2.c
** run.c encode() does: optional BOS, a dummy-prefix " " for non-empty text, characters
** looked up whole or as <0xNN> bytes, then best-score pair merges. *ids is malloc'd
** (caller frees), *n_ids its length. */
infer_status tok_encode(const tokenizer *t, const char *text, size_t len, int add_bos,
                        int32_t **ids, size_t *n_ids);

/* Raw bytes of one token (for tests and stop handling): "<0xNN>" pieces give the byte. */
infer_status tok_piece(const tokenizer *t, int32_t id, const char **bytes, size_t *len);

/* Streaming detokenization. Feeding tokens one at a time appends exactly the text of the
** sequence so far, never half a UTF-8 character: bytes of an incomplete character wait in
** the state until the token that completes them; invalid sequences become U+FFFD.
** As in llama2.c, a piece's leading ' ' is dropped right after BOS. */
typedef struct tok_stream {
    int32_t prev;             /* previous token (BOS at the start) */
    unsigned char pend[4];    /* bytes of an incomplete UTF-8 character */
    int n_pend;
} tok_stream;

void tok_stream_init(tok_stream *st, int32_t prev_token);
infer_status tok_stream_feed(const tokenizer *t, tok_stream *st, int32_t token, strbuf *out);
/* End of sequence: pending bytes of an unfinished character become U+FFFD. */
infer_status tok_stream_flush(tok_stream *st, strbuf *out);

#endif
