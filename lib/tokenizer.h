/*
** tokenizer.h — text <-> token ids for a loaded model, and streaming detokenization.
**
** One `tokenizer` type, four families behind it:
**   llama2c    llama2.c tokenizer.bin: SentencePiece-style BPE by merge score (tok_spm.c)
**   spm        GGUF tokenizer.ggml.model "llama": the same score-driven BPE over text whose
**              spaces are U+2581, byte fallback <0xHH>, dummy-prefix space (tok_spm.c)
**   bpe        GGUF "gpt2": byte-level BPE with ranked merges after a pre-tokenizer split
**              (GPT-2, Llama 3, Qwen2, ...; tok_bpe.c + tok_pretok.c)
**   wordpiece  GGUF "bert" or a vocab list (Hugging Face vocab.txt / tokenizer.json):
**              BERT BasicTokenizer + greedy longest-match WordPiece (tok_wordpiece.c)
** The front (tokenizer.c) holds what they share: the vocab hash, special-token matching,
** BOS/EOS/EOT rules, GGUF loading, dispatch and streaming decode; the merge loop shared by
** the two BPE families lives in tok_bpe.c. The GGUF behaviour follows
** llama.cpp's llama-vocab.cpp (which the test vectors in ../shared/tokenizer come from).
**
** A tokenizer is immutable after loading, so every function here may run on any thread
** concurrently with any other (encode and decode included).
*/
#ifndef INFER_TOKENIZER_H
#define INFER_TOKENIZER_H

#include "gguf.h"
#include "internal.h"

typedef struct tokenizer tokenizer;

typedef enum tok_family {
    TOK_FAMILY_LLAMA2C = 0,
    TOK_FAMILY_SPM = 1,
    TOK_FAMILY_BPE = 2,
    TOK_FAMILY_WORDPIECE = 3
} tok_family;

/* Token types, as stored in tokenizer.ggml.token_type (llama.cpp's llama_token_type). */
typedef enum tok_type {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6
} tok_type;

/* Special token roles; tok_special_id gives -1 for a role the vocab does not have. */
typedef enum tok_special {
    TOK_SPECIAL_BOS = 0,
    TOK_SPECIAL_EOS,
    TOK_SPECIAL_EOT,
    TOK_SPECIAL_EOM,
    TOK_SPECIAL_UNK,
    TOK_SPECIAL_PAD,
    TOK_SPECIAL_SEP,
    TOK_SPECIAL_CLS,
    TOK_SPECIAL_MASK,
    TOK_SPECIAL_COUNT
} tok_special;

/* ---------------------------------------------------------------------- loading */

/* Load a llama2.c tokenizer.bin holding `vocab_size` entries (from the checkpoint header).
** Every length and count is checked against the file: INFER_EFORMAT names what is wrong. */
infer_status tok_load_llama2c(const char *path, int32_t vocab_size, tokenizer **out);

/* Load the tokenizer stored in a parsed GGUF file (tokenizer.ggml.*): model "llama"
** (SentencePiece BPE with scores), "gpt2" (byte-level BPE with merges and the pre-tokenizer
** named by tokenizer.ggml.pre) or "bert" (WordPiece). Everything is copied: the gguf_file and
** its mapping may go away afterwards. `path_for_messages` names the file in errors.
** Returns INFER_EFORMAT naming the key for a malformed field (arrays of different lengths, a
** token id out of range, a merge not of the form "a b", a bad token type, ...),
** INFER_EUNSUPPORTED naming an unknown tokenizer.ggml.model or tokenizer.ggml.pre,
** INFER_ENOMEM. */
infer_status tok_load_gguf(const gguf_file *g, const char *path_for_messages, tokenizer **out);

/* Options of a WordPiece vocab given as a list (BERT's vocab.txt, tokenizer.json's
** model.vocab). tok_wordpiece_opts_init gives BERT-base-uncased's settings. */
typedef struct tok_wordpiece_opts {
    int lowercase;          /* BasicTokenizer do_lower_case (1) */
    int strip_accents;      /* -1 (default): follow lowercase, as BERT does; else 0/1 */
    int split_cjk;          /* tokenize_chinese_chars: each CJK ideograph is a word (1) */
    int max_word_chars;     /* longer words become [UNK] (100) */
    const char *prefix;     /* continuing-subword prefix ("##") */
    /* texts of the special tokens, looked up in the vocab; NULL or absent = none */
    const char *unk, *cls, *sep, *pad, *mask; /* "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]" */
} tok_wordpiece_opts;

void tok_wordpiece_opts_init(tok_wordpiece_opts *o);

/* A WordPiece tokenizer over vocab[0..n_vocab) (NUL-terminated UTF-8, id = index). The
** special tokens named in `o` (NULL = defaults) become control tokens ([UNK]: unknown).
** INFER_EINVAL for an empty vocab, a NULL entry or a missing unk token. */
infer_status tok_load_wordpiece(const char *const *vocab, int32_t n_vocab, const tok_wordpiece_opts *o,
                                tokenizer **out);

void tok_free(tokenizer *t);

/* ---------------------------------------------------------------------- properties */

tok_family tok_get_family(const tokenizer *t);
int32_t tok_n_vocab(const tokenizer *t);
int32_t tok_bos(const tokenizer *t); /* 1 for llama2.c; -1 when there is none */
int32_t tok_eos(const tokenizer *t); /* 2 for llama2.c; -1 when there is none */
int32_t tok_special_id(const tokenizer *t, tok_special which);
/* The tok_type of a token; TOK_TYPE_UNDEFINED for an id out of range. */
tok_type tok_token_type(const tokenizer *t, int32_t id);
/* Id of the token whose stored text is exactly s[0..n) (e.g. "<|im_start|>"), or -1. */
int32_t tok_lookup(const tokenizer *t, const char *s, size_t n);

/* Whether the model wants BOS (EOS) added to a prompt: tokenizer.ggml.add_bos_token
** (add_eos_token) when stored, else the family's default (llama2c/spm: BOS; bert: [CLS] and
** [SEP]; gpt2: BOS only for the Llama-3 pre-tokenizer, as llama.cpp does). 0 when the vocab
** has no such token, whatever the flag says. */
int tok_default_add_bos(const tokenizer *t);
int tok_default_add_eos(const tokenizer *t);

/* The tokens that end generation: EOS, EOT, EOM and the control tokens <|eot_id|>,
** <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|>, <EOT>, <|end_of_text|>
** when present (llama.cpp's end-of-generation set). For llama2.c: BOS (its story
** separator, where run.c stops) and EOS.
** Sorted, no duplicates; *n may be 0. The array lives as long as the tokenizer. */
const int32_t *tok_end_tokens(const tokenizer *t, int *n);

/* ---------------------------------------------------------------------- encoding */

enum {
    TOK_ADD_BOS = 1u,       /* prepend BOS ([CLS] for WordPiece) */
    TOK_ADD_EOS = 2u,       /* append EOS ([SEP] for WordPiece) */
    TOK_PARSE_SPECIAL = 4u  /* control (and unknown) tokens written in the text, e.g.
                            ** "<|im_start|>", are emitted as their ids */
};

/* Encode text[0..len) into *ids (malloc'd, caller frees; *n_ids its length).
** Special tokens are matched before BPE, leftmost first and longest first at a position:
** with TOK_PARSE_SPECIAL control/unknown/user-defined tokens, without it only user-defined
** ones (llama.cpp and HF tokenizers split those out always); everything else is tokenized
** as plain text. The llama2.c family has no token types: flags other than TOK_ADD_BOS and
** TOK_ADD_EOS are ignored there. Invalid UTF-8 is encoded byte-exactly (byte fallback /
** byte-level symbols) except by WordPiece, which drops what it cannot represent.
** INFER_EINVAL for NULL arguments, or TOK_ADD_BOS/EOS when the vocab has no such token. */
infer_status tok_encode_ex(const tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                           size_t *n_ids);

/* tok_encode_ex with TOK_ADD_BOS when add_bos, no special-token parsing. For llama2.c this
** is karpathy/llama2.c run.c encode(), token for token. */
infer_status tok_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                        size_t *n_ids);

/* ---------------------------------------------------------------------- decoding */

/* Bytes of one token as it decodes in mid-text: SentencePiece "▁the" -> " the", "<0xHH>"
** -> that byte, byte-level "Ġthe" -> " the", WordPiece "##ing" -> "ing" and a word start
** "the" -> " the"; control and user-defined tokens give their stored text (llama2.c: the
** stored piece, e.g. "\n<s>\n"). The bytes live as long as the tokenizer. */
infer_status tok_piece(const tokenizer *t, int32_t id, const char **bytes, size_t *len);

/* Streaming detokenization. Feeding tokens one at a time appends exactly the text of the
** sequence so far, never half a UTF-8 character: bytes of an incomplete character wait in
** the state until the token that completes them; invalid sequences become U+FFFD.
** Control, unknown and unused tokens append nothing (llama2.c: BOS and EOS append nothing,
** <unk> prints "<unk>" as run.c does). The first text of a sequence loses one leading ' ':
**   llama2c    after BOS, unless the piece is a byte token (run.c decode())
**   spm        at the start (prev = TOK_STREAM_START) or after BOS, when add_space_prefix:
**              the dummy prefix, as SentencePiece and llama.cpp's detokenizer drop it
**   wordpiece  at the start or after a control token ([CLS]): the space before a word
**   bpe        never: byte-level BPE spells every space out. */
typedef struct tok_stream {
    int32_t prev;             /* previous token, or TOK_STREAM_START */
    unsigned char pend[4];    /* bytes of an incomplete UTF-8 character */
    int n_pend;
} tok_stream;

#define TOK_STREAM_START (-1)

void tok_stream_init(tok_stream *st, int32_t prev_token);
infer_status tok_stream_feed(const tokenizer *t, tok_stream *st, int32_t token, strbuf *out);
/* End of sequence: pending bytes of an unfinished character become U+FFFD. */
infer_status tok_stream_flush(tok_stream *st, strbuf *out);

/* ====================================================================== */
/* Internals shared by tokenizer.c and tok_*.c only.                     */
/* ====================================================================== */

#define TOK_MAX_END 16

struct tokenizer {
    tok_family family;
    int32_t n_vocab;
    /* Stored token text (GGUF tokens[i], llama2.c records), each followed by a NUL. */
    char *blob;
    uint32_t *off, *len;
    uint32_t max_len;         /* longest token text: bounds lookups */
    float *score;             /* (n_vocab) SentencePiece merge priority; NULL for bpe/wordpiece */
    uint8_t *type;            /* (n_vocab) tok_type */
    int32_t *hash;            /* (hash_mask + 1) open addressing over token text, -1 = empty */
    uint32_t hash_mask;
    /* Decoded text of each token (see tok_piece); llama2c uses blob and byte instead. */
    char *dec;
    uint32_t *dec_off, *dec_len;

    int32_t special[TOK_SPECIAL_COUNT];
    int add_bos, add_eos, add_space_prefix;
    int32_t end_ids[TOK_MAX_END];
    int n_end;

    /* Special-token matcher: ids of control/unknown/user-defined tokens ordered by first
    ** byte, then longest first; spec_first[b]..spec_first[b + 1] are those starting with b. */
    int32_t *spec_ids;
    uint32_t spec_first[257];
    int n_user_defined;

    /* spm: the token each byte falls back to ("<0xHH>", else the 1-byte token, else unk). */
    int32_t byte_id[256];

    /* bpe */
    int pretok;               /* pretok_kind */
    int ignore_merges;        /* a word that is a whole token is not merged (Llama 3) */
    char *merge_blob;         /* "a b" strings, NUL after each */
    uint32_t *merge_off, *merge_len, *merge_split; /* split = offset of the separating ' ' */
    int32_t *merge_hash;      /* open addressing over "a b", value = rank */
    uint32_t merge_mask, n_merges;
    unsigned char byte_sym[256][2]; /* GPT-2 bytes_to_unicode: UTF-8 of the symbol for a byte */
    uint8_t byte_sym_len[256];
    int16_t sym_byte[324];    /* code point (< 0x144) -> byte, -1 if not a byte symbol */

    /* wordpiece */
    int wp_phantom;           /* GGUF convention: word starts "▁x", continuations "x";
                              ** else Hugging Face: word starts "x", continuations "##x" */
    int wp_lower, wp_strip_accents, wp_cjk, wp_max_chars;
    char wp_prefix[16];

    /* llama2c */
    int32_t max_token_length; /* as stored in the header; informational only */
    int16_t *byte;            /* (n_vocab) the byte a "<0xHH>" piece stands for, else -1 */
    int32_t space_id;         /* id of " ", the dummy prefix; -1 if absent */
    unsigned char bytes256[256];
};

/* Growable id vector. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;
infer_status tok_ids_push(tok_ids *o, int32_t id);

/* Symbols of the span-merge engine: contiguous byte spans of one buffer, linked. */
typedef struct tok_sym {
    uint32_t off, len;
    int32_t prev, next;
} tok_sym;

typedef struct tok_cand {
    double key;               /* lower merges first */
    int32_t left, right;
    uint32_t size;            /* bytes of the merged span when queued: stale if changed */
} tok_cand;

/* Scratch buffers reused across the words of one encode call. */
typedef struct tok_work {
    tok_sym *sym;
    size_t sym_cap;
    tok_cand *heap;
    size_t heap_n, heap_cap;
    char *buf;
    size_t buf_cap;
    void *spans;              /* pretok_span */
    size_t span_cap;
} tok_work;
void tok_work_free(tok_work *w);
infer_status tok_work_buf(tok_work *w, size_t n); /* ensure w->buf holds n bytes */

/* Whether the adjacent spans s[0..nl) and s[nl..nl+nr) merge, and with what key. */
typedef int (*tok_pair_fn)(const tokenizer *t, const char *s, uint32_t nl, uint32_t nr, double *key);

/* llama.cpp's merge loop (llm_tokenizer_spm/bpe_session): split s[0..n) into UTF-8
** characters, then repeatedly merge the adjacent pair with the lowest key (leftmost on
** ties) until none merges. Afterwards w->sym[0] starts the list (next = -1 ends it). */
infer_status tok_merge_spans(const tokenizer *t, tok_work *w, const char *s, size_t n, tok_pair_fn pair);

/* Length of the UTF-8 sequence `lead` starts, as llama.cpp's unicode_len_utf8 (1..4). */
size_t tok_utf8_len(unsigned char lead);
uint32_t tok_hash_bytes(const char *s, size_t n, uint32_t h);
#define TOK_HASH_SEED 2166136261u

/* Vocab construction (tokenizer.c): allocate the per-token arrays for n tokens and
** blob_bytes of text; then fill blob/off/len/type; then build the lookup hash (`last_wins`:
** of equal texts the highest id wins, as llama.cpp's token_to_id map; else the lowest). */
infer_status tok_alloc_vocab(tokenizer *t, int32_t n, size_t blob_bytes, int with_score);
infer_status tok_index_vocab(tokenizer *t, int last_wins);
/* Build spec_ids / end_ids from type[] and special[]. */
infer_status tok_index_specials(tokenizer *t);
/* Add id to end_ids (kept sorted, no duplicates, at most TOK_MAX_END); INFER_EINVAL when out of
** range. Call after tok_index_specials. */
infer_status tok_add_end_token(tokenizer *t, int32_t id);

/* Per-family pieces (tok_spm.c, tok_bpe.c, tok_wordpiece.c). Encoders append to *o. */
infer_status tok_llama2c_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                                size_t *n_ids);
int tok_llama2c_stream_piece(const tokenizer *t, int32_t prev, int32_t token, const char **p, size_t *n);
infer_status tok_spm_setup(tokenizer *t, const char *path);
infer_status tok_spm_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, int prefix_space,
                            tok_ids *o);
infer_status tok_bpe_setup(tokenizer *t, const gguf_file *g, const char *path);
infer_status tok_bpe_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, tok_ids *o);
/* GPT-2's bytes_to_unicode maps (sym_byte, byte_sym), and every token's decoded bytes (dec):
** shared by the GGUF and tokenizer.json byte-level loaders. */
void tok_bpe_byte_maps(tokenizer *t);
infer_status tok_bpe_pieces(tokenizer *t);
infer_status tok_wordpiece_setup(tokenizer *t, int phantom);
infer_status tok_wordpiece_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, tok_ids *o);

#endif
