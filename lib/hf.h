/*
** hf.h — Hugging Face model directories (internal): JSON files read with cJSON, safetensors
** shards, and the tokenizer.json reader.
**
** A directory holds config.json (architecture and hyperparameters), the weights as one
** model.safetensors or several shards listed in model.safetensors.index.json, tokenizer.json
** (with tokenizer_config.json and generation_config.json beside it). Formats:
**   safetensors   https://github.com/huggingface/safetensors (README "Format"): an 8-byte
**                 little-endian header length N, N bytes of JSON
**                 {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
**                 then the data; offsets are relative to the end of the header.
**   tokenizer.json  the serialization of Hugging Face `tokenizers` (model, normalizer,
**                 pre_tokenizer, post_processor, decoder, added_tokens).
** Every value read from these files is checked (type, range, offsets against the file) before
** use; a bad one gives INFER_EFORMAT with the file and the field (JSON path) in the message,
** a valid but unsupported one INFER_EUNSUPPORTED.
*/
#ifndef INFER_HF_H
#define INFER_HF_H

#include <cjson/cJSON.h>

#include "dtype.h"
#include "mmap.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------ JSON (hf_json.c) */

#define HF_JSON_MAX_BYTES ((size_t)1 << 30) /* tokenizer.json of a 256k vocab is ~20 MB */

/* Read and parse `path`. A missing file gives INFER_OK with *out = NULL when `optional`,
** else INFER_EIO; a parse error INFER_EFORMAT naming line and column. Free with cJSON_Delete. */
infer_status hf_json_load(const char *path, int optional, cJSON **out);
/* Parse text[0..n) (need not be NUL-terminated); `what` names it in messages. */
infer_status hf_json_parse(const char *what, const char *text, size_t n, cJSON **out);

/* Member `key` of object `obj`, NULL when absent or JSON null (both mean "not given"). */
const cJSON *hf_get(const cJSON *obj, const char *key);

/* Typed fields of an object. `file` and `path` (the object's JSON path, "" for the root) name
** the field in messages. Absent/null: INFER_OK and *out untouched when !required, else
** INFER_EFORMAT. Wrong type or a value outside [lo, hi]: INFER_EFORMAT. */
infer_status hf_get_int(const cJSON *obj, const char *file, const char *path, const char *key, int required,
                        int64_t lo, int64_t hi, int64_t *out);
infer_status hf_get_float(const cJSON *obj, const char *file, const char *path, const char *key, int required,
                          double lo, double hi, double *out);
infer_status hf_get_bool(const cJSON *obj, const char *file, const char *path, const char *key, int *out);
/* A string member; *out points into the cJSON tree. */
infer_status hf_get_str(const cJSON *obj, const char *file, const char *path, const char *key, int required,
                        const char **out);
/* A JSON integer (number without fraction, within [lo, hi]) as int64; 0 when it is not. */
int hf_json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out);
/* "a/b" into a malloc'd string; NULL on ENOMEM (after recording the error). */
char *hf_path_join(const char *dir, const char *name);

/* ------------------------------------------------------------------ safetensors (load_safetensors.c) */

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    char dtype_name[8];     /* as in the header ("F32", "I64", ...) */
    int type;               /* dtype (DT_F32, DT_F16, DT_BF16), or -1 for another safetensors dtype */
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    const uint8_t *data;    /* into the shard's mapping */
    size_t nbytes;
    int shard;              /* index into st_set.files */
} st_tensor;

typedef struct st_set {
    char **files;           /* (n_files) shard paths, for messages */
    mapped_file *maps;      /* (n_files) */
    int n_files;
    st_tensor *t;           /* (n) every tensor of every shard */
    size_t n, cap;
    size_t *slots;          /* open addressing over names: index + 1, 0 = empty */
    size_t mask;
} st_set;

/* Map and index the weights of `dir`: the shards of model.safetensors.index.json when present,
** else model.safetensors, else every *.safetensors in the directory (sorted by name). Every
** header is validated in full. On failure *s is left empty (st_free is harmless). */
infer_status st_open_dir(const char *dir, st_set *s);
/* Map one file and add its tensors (a name already present is INFER_EFORMAT). */
infer_status st_add_file(st_set *s, const char *path);
const st_tensor *st_find(const st_set *s, const char *name);
/* Hand the mappings over (the caller unmaps them); the set keeps no reference. */
void st_take_maps(st_set *s, mapped_file **maps, int *n);
void st_free(st_set *s);

/* ------------------------------------------------------------------ tokenizer (tok_hf.c, tok_hf_bpe.c) */

/*
** tok_load_hf: the tokenizer of the Hugging Face directory `dir`: tokenizer.json (model BPE
** with a ByteLevel pre-tokenizer; BPE with byte_fallback and a Metaspace pre-tokenizer or
** Prepend/Replace "▁" normalizer, i.e. SentencePiece converted; WordPiece), special tokens and
** BOS/EOS flags from tokenizer_config.json / config.json, and end tokens from
** generation_config.json. Ids the model has past the tokenizer's (padded embeddings) become
** unused placeholder tokens up to `model_vocab`; a tokenizer with more ids than the model is
** INFER_EFORMAT. *chat_template (may be NULL to ignore) gets a malloc'd copy of
** tokenizer_config.json's chat_template, or NULL.
*/
infer_status tok_load_hf(const char *dir, int32_t model_vocab, tokenizer **out, char **chat_template);

/* Internals shared by tok_hf.c and tok_hf_bpe.c. */
typedef struct hf_tok_ctx {
    const char *file;       /* tokenizer.json path, for messages */
    const cJSON *root, *model;
} hf_tok_ctx;

/* Byte-level BPE (GPT-2 family): the pre-tokenizer kind from pre_tokenizer, the merges, the
** byte maps and decoded pieces. The vocab, types and specials are already in t. */
infer_status tok_hf_bpe_setup(tokenizer *t, const hf_tok_ctx *c);
/* SentencePiece-style BPE: merges become scores (score of a token = minus the rank of the
** first merge producing it), so tok_spm.c's merge loop applies them in rank order. */
infer_status tok_hf_spm_scores(tokenizer *t, const hf_tok_ctx *c);
/* Whether (and how) the normalizer / pre_tokenizer make this a SentencePiece-style BPE:
** 1 yes (*prefix = add the dummy "▁" prefix), 0 not (byte-level expected), or an error
** for a form we do not support. */
infer_status tok_hf_spm_style(const hf_tok_ctx *c, int *spm, int *prefix);

#endif
