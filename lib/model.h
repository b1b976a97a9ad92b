/*
** model.h — a loaded model: hyperparameters, weights (pointers into the mapped file),
** tokenizer, end tokens, its KV pool and forward-pass scratch. Reference-counted: the
** session's registry holds one reference and every sequence running on it another, so an
** unloaded model is freed only when its last sequence has ended.
*/
#ifndef INFER_MODEL_H
#define INFER_MODEL_H

#include <stdatomic.h>

#include "backend.h"
#include "kv_cache.h"
#include "mmap.h"
#include "tensor.h"
#include "tokenizer.h"

typedef enum rope_mode {
    ROPE_NORM = 0,  /* rotate pairs (2i, 2i+1): llama2.c, GGUF llama */
    ROPE_NEOX = 1   /* rotate (i, i + head_dim/2): Hugging Face Llama, GGUF qwen2 */
} rope_mode;

typedef struct llama_hparams {
    int dim;          /* model width */
    int hidden_dim;   /* FFN width */
    int n_layers;
    int n_heads;
    int n_kv_heads;   /* < n_heads: grouped-query attention */
    int head_dim;     /* dim / n_heads */
    int vocab_size;
    int seq_len;      /* context length */
    float rms_eps;
    float rope_theta;
    rope_mode rope;
    /* Llama-3 frequency scaling (factor 0 = none): long wavelengths divided by `factor`,
    ** short ones kept, a smooth blend between (Meta's llama3 rope_scaling). */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_ctx;
} llama_hparams;

/* Matrices may be of any dtype; norm vectors and biases are always f32 (converted at
** load when a file stores them otherwise). */
typedef struct llama_layer {
    const float *attn_norm;  /* (dim) */
    tensor wq;               /* (n_heads*head_dim, dim) */
    tensor wk;               /* (n_kv_heads*head_dim, dim) */
    tensor wv;               /* (n_kv_heads*head_dim, dim) */
    tensor wo;               /* (dim, n_heads*head_dim) */
    const float *bq, *bk, *bv; /* optional biases (Qwen2); NULL = none */
    const float *ffn_norm;   /* (dim) */
    tensor w1;               /* gate (hidden_dim, dim) */
    tensor w2;               /* down (dim, hidden_dim) */
    tensor w3;               /* up (hidden_dim, dim) */
} llama_layer;

typedef struct llama_weights {
    tensor tok_embd;         /* (vocab, dim) */
    llama_layer *layers;     /* (n_layers) */
    const float *out_norm;   /* (dim) */
    tensor wcls;             /* (vocab, dim); the same data as tok_embd when tied */
    const float *rope_freq_factors; /* optional (head_dim/2), GGUF rope_freqs.weight */
} llama_weights;

/* BERT encoder (bidirectional attention, post-LayerNorm, GELU), for embeddings. */
typedef struct bert_layer {
    tensor wq, wk, wv, wo, w_up, w_down;       /* (out, in) */
    const float *bq, *bk, *bv, *bo, *b_up, *b_down;
    const float *ln1_w, *ln1_b;                /* after attention */
    const float *ln2_w, *ln2_b;                /* after the FFN */
} bert_layer;

typedef struct bert_weights {
    tensor tok_embd;                           /* (vocab, dim) */
    tensor pos_embd;                           /* (max_positions, dim) */
    tensor type_embd;                          /* (type_vocab, dim); row 0 is used */
    const float *ln_w, *ln_b;                  /* embedding LayerNorm */
    bert_layer *layers;
} bert_weights;

typedef enum model_arch {
    ARCH_LLAMA = 0,   /* decoder: generation */
    ARCH_BERT = 1,    /* encoder: embeddings */
    ARCH_VOCAB = 2    /* a vocabulary-only file (no weights): tokenize/detokenize only */
} model_arch;

/* Forward-pass scratch, grown to the largest batch seen (engine thread only). */
typedef struct llama_work {
    int cap_rows, cap_logits;
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2; /* (rows, width) activations */
    float *xl;                                  /* (logit rows, dim) */
    float *logits;                              /* (logit rows, vocab) */
} llama_work;

typedef struct infer_model {
    char *name, *version, *path;
    model_arch arch;
    llama_hparams hp;        /* BERT: hidden_dim = intermediate size, seq_len = max positions,
                                rms_eps = LayerNorm epsilon */
    llama_weights w;
    bert_weights bw;
    mapped_file map;
    mapped_file *extra_maps; /* further mapped files (safetensors shards of an HF directory) */
    int n_extra_maps;
    tokenizer *tok;
    int32_t end_tokens[TOK_MAX_END]; /* generating one ends the sequence (unless ignore_eos) */
    int n_end;
    kv_pool kv;
    llama_work work;
    float *rope_freqs;       /* (head_dim/2) per-pair rotation frequencies */
    char *chat_template;     /* the model's template string (GGUF/HF), or NULL */
    void **owned;            /* buffers the model allocated (converted norms, ...) */
    int n_owned, cap_owned;
    int max_running;         /* per-model concurrency limit; 0 = none */
    size_t weight_bytes;     /* bytes read per forward step (all but the embedding gather) */
    backend *be;             /* the backend holding device state (dev), or NULL */
    void *dev;               /* that backend's per-model state (weights, KV, workspace) */
    atomic_int refs;
    atomic_long *resident;   /* the session's count of models in memory (or NULL) */
    atomic_int unloading;    /* set by infer_model_unload: the engine cancels its sequences */
} infer_model;

/* Load a llama2.c checkpoint + its tokenizer and create its KV pool. */
infer_status model_load(const char *path, const infer_model_params *mp, backend *be, size_t kv_bytes,
                        int kv_block_tokens, int prefix_cache, infer_model **out);
void model_ref(infer_model *m);
void model_unref(infer_model *m);

/* Keep a malloc'd buffer until the model is freed; frees p and fails on ENOMEM. */
infer_status model_own(infer_model *m, void *p);
/* Rotation frequencies from the hparams (theta, Llama-3 scaling, freq factors). */
infer_status rope_init(infer_model *m);

/* Fill m (hp, w, tok, chat_template) from the GGUF file mapped at m->map. */
infer_status gguf_load_model(infer_model *m, const char *path);

/* A Hugging Face model directory (config.json, *.safetensors, tokenizer.json; lib/load_hf.c).
** hf_detect: *dir = a malloc'd copy of the directory when `path` is one, or names config.json,
** model.safetensors.index.json or a *.safetensors file inside one; else *dir = NULL.
** hf_load_model: fill m (arch, hp, w or bw, tok, end tokens, chat_template, extra_maps). */
infer_status hf_detect(const char *path, char **dir);
infer_status hf_load_model(infer_model *m, const char *dir);

/* Parse and validate a llama2.c checkpoint already mapped: fills hp, w (layers malloc'd). */
infer_status llama2c_parse(const char *path, const mapped_file *f, llama_hparams *hp, llama_weights *w);

/* One forward step over batch b (KV of every row is written to the pool). On success
** *logits points to (b->n_logits, vocab) floats in model scratch, rows in batch order. */
infer_status llama_forward(infer_model *m, backend *be, const batch *b, const float **logits);
void llama_work_free(llama_work *w);

/* Embed one sequence with a BERT model: mean-pooled last hidden states (dim floats), L2-
** normalised when `normalize`. tokens include [CLS] ... [SEP]. */
infer_status bert_embed(infer_model *m, backend *be, const int32_t *tokens, int n, int normalize, float *out);

#endif
