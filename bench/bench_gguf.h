/*
** bench_gguf.h — cpu_decode's other weight types: the synthetic checkpoint's values written as
** GGUF files of F16 / Q8_0 / Q4_0 / Q4_1 with the library's own writer and quantizer (and the
** Llama-2 tokenizer as tokenizer.ggml.* keys), and the shape and per-step bytes of a given GGUF
** model. Header-only, like bench_util.h, and included after it (uses bench_shape, PROG).
*/
#ifndef INFER_BENCH_GGUF_H
#define INFER_BENCH_GGUF_H

#include "dtype.h" /* lib/ (internal): quantize_row, dtype_row_bytes */
#include "gguf.h"  /* lib/ (internal): the GGUF writer and parser */
#include "mmap.h"

#define MAX_FORMATS 5 /* entries of k_formats */

/* ------------------------------------------------------------ other weight types (GGUF) */

/* Weight types --formats may name. F32 is the llama2.c checkpoint as always; the others are
** GGUF files of the same values, written with the library's own writer and quantizer. */
static const struct {
    const char *name;
    dtype type;
    double goal_vs_f32;   /* the batch-1 goal as tok/s over F32's; 0 = none stated */
} k_formats[] = {
    { "f32", DT_F32, 0 }, { "f16", DT_F16, 1.9 }, { "q8_0", DT_Q8_0, 3.5 }, { "q4_0", DT_Q4_0, 5.0 },
    { "q4_1", DT_Q4_1, 0 },
};
#define N_FORMATS (int)(sizeof k_formats / sizeof k_formats[0])
_Static_assert(sizeof k_formats / sizeof k_formats[0] == MAX_FORMATS, "MAX_FORMATS counts k_formats");
#define GOAL_PCT_BW 0.75 /* of the 1 GiB bandwidth, for every type other than F32 and --model */

static int format_index(dtype t)
{
    for (int i = 0; i < N_FORMATS; i++)
        if (k_formats[i].type == t) return i;
    return -1;
}

/* Weight bytes a decode step reads with every matrix (the shared classifier included) in type
** t and the norms in f32, as model.c's weight_bytes_per_step counts them; for F32 this is
** bench_weight_bytes. Rows of D (or H) elements of q, k, v, o, gate, up; rows of H of down. */
static uint64_t weight_bytes_at(const bench_shape *sh, dtype t)
{
    uint64_t D = (uint64_t)sh->dim, H = (uint64_t)sh->hidden, L = (uint64_t)sh->n_layers;
    uint64_t kvd = bench_kv_dim(sh), V = (uint64_t)sh->vocab;
    uint64_t rD = dtype_row_bytes(t, (int64_t)D), rH = dtype_row_bytes(t, (int64_t)H);
    return L * (2 * 4 * D + (2 * D + 2 * kvd + 2 * H) * rD + D * rH) + 4 * D + V * rD;
}

/* Holds what a gguf_writer borrows until it is saved. */
typedef struct gguf_build {
    gguf_writer w;
    void **bufs;
    int n_bufs, cap;
} gguf_build;

/* `rows` rows of ne0 synthetic values (bench_fill_floats), each stored as type t; a 1-D tensor
** when rows is 0. */
static void add_synthetic(gguf_build *b, const char *name, dtype t, int64_t ne0, int64_t rows, float amp,
                          uint64_t *rng)
{
    int64_t n_rows = rows > 0 ? rows : 1;
    size_t rb = dtype_row_bytes(t, ne0);
    uint8_t *data = b->n_bufs < b->cap ? malloc(rb * (size_t)n_rows) : NULL;
    float *row = malloc((size_t)ne0 * sizeof *row);
    if (!data || !row) {
        free(data);
        free(row);
        b->w.err = INFER_ENOMEM; /* sticky: the save reports it */
        return;
    }
    for (int64_t r = 0; r < n_rows; r++) {
        bench_fill_floats(row, (size_t)ne0, amp, 1.0f, rng);
        quantize_row(t, row, data + (size_t)r * rb, ne0);
    }
    free(row);
    b->bufs[b->n_bufs++] = data;
    int64_t ne[2] = { ne0, n_rows };
    gguf_writer_add_tensor(&b->w, name, t, rows > 0 ? 2 : 1, ne, data, rb * (size_t)n_rows);
}

/* The tensors in bench_write_checkpoint's order (each kind over all layers), so the values are
** the same as the F32 checkpoint's: matrices in t, norms in f32, classifier shared. */
static void add_weights(gguf_build *b, const bench_shape *sh, dtype t)
{
    enum { NORM, DIM, KVD, HID };
    static const struct { const char *name; int in, out; } kinds[] = {
        { "attn_norm", DIM, NORM }, { "attn_q", DIM, DIM },    { "attn_k", DIM, KVD },
        { "attn_v", DIM, KVD },     { "attn_output", DIM, DIM }, { "ffn_norm", DIM, NORM },
        { "ffn_gate", DIM, HID },   { "ffn_down", HID, DIM },  { "ffn_up", DIM, HID },
    };
    const int64_t size[4] = { 0, sh->dim, (int64_t)bench_kv_dim(sh), sh->hidden };
    uint64_t rng = BENCH_SEED;
    add_synthetic(b, "token_embd.weight", t, sh->dim, sh->vocab, BENCH_AMP, &rng);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (int l = 0; l < sh->n_layers; l++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, kinds[k].name);
            int norm = kinds[k].out == NORM;
            add_synthetic(b, name, norm ? DT_F32 : t, size[kinds[k].in], size[kinds[k].out], norm ? 0 : BENCH_AMP,
                          &rng);
        }
    add_synthetic(b, "output_norm.weight", DT_F32, sh->dim, 0, 0, &rng);
}

static void add_hparams(gguf_writer *w, const bench_shape *sh)
{
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)sh->dim);
    gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)sh->hidden);
    gguf_writer_add_u32(w, "llama.block_count", (uint32_t)sh->n_layers);
    gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)sh->n_heads);
    gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)sh->n_kv_heads);
    gguf_writer_add_u32(w, "llama.context_length", (uint32_t)sh->seq_len);
    gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f); /* llama2.c's */
}

/* One llama2.c tokenizer.bin record as a GGUF piece, the way llama.cpp's converter writes the
** Llama 2 vocab: ids 0..2 are <unk>, <s>, </s> (llama2.c stores "\n<s>\n"...), "<0xHH>" are byte
** tokens, and ' ' is SentencePiece's U+2581 elsewhere. malloc'd; *type its tok_type. */
static char *gguf_piece(int id, const char *s, int32_t len, int32_t *type)
{
    static const char *const special[3] = { "<unk>", "<s>", "</s>" };
    if (id < 3) {
        *type = id == 0 ? 2 /* unknown */ : 3 /* control */;
        return strdup(special[id]);
    }
    *type = len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' ? 6 /* byte */ : 1 /* normal */;
    char *p = malloc(3 * (size_t)len + 1), *q = p;
    for (int32_t i = 0; p && i < len; i++) {
        if (s[i] == ' ') {
            memcpy(q, "\xE2\x96\x81", 3);
            q += 3;
        } else {
            *q++ = s[i];
        }
    }
    if (p) *q = 0;
    return p;
}

/* The llama2.c tokenizer.bin at `path` (the one the F32 rows use) as tokenizer.ggml.* keys, so
** every type tokenizes the prompts alike. The format is parsed here: the library's loader
** keeps its tables private to the tokenizer code. 0, or -1 with a message. */
static int add_vocab(gguf_writer *w, const char *path, int vocab)
{
    FILE *f = fopen(path, "rb");
    char **pieces = calloc((size_t)vocab, sizeof *pieces);
    float *scores = malloc((size_t)vocab * sizeof *scores);
    int32_t *types = malloc((size_t)vocab * sizeof *types);
    char buf[1024];
    int32_t max_len, len = 0;
    int ok = f && pieces && scores && types && fread(&max_len, 4, 1, f) == 1;
    for (int i = 0; ok && i < vocab; i++) {
        ok = fread(&scores[i], 4, 1, f) == 1 && fread(&len, 4, 1, f) == 1 && len >= 0 &&
             len < (int32_t)sizeof buf && fread(buf, 1, (size_t)len, f) == (size_t)len &&
             (pieces[i] = gguf_piece(i, buf, len, &types[i])) != NULL;
    }
    if (ok) {
        gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
        gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, (uint64_t)vocab);
        gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)vocab);
        gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)vocab);
        gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
        gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
        gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    } else {
        fprintf(stderr, PROG ": cannot read %d tokens from tokenizer '%s'\n", vocab, path);
    }
    if (f) fclose(f);
    for (int i = 0; pieces && i < vocab; i++) free(pieces[i]);
    free(pieces);
    free(scores);
    free(types);
    return ok ? 0 : -1;
}

/* A GGUF file of shape sh with matrices in type t and tok_path's vocab. 0, or -1 with a message. */
static int write_gguf(const char *path, const bench_shape *sh, dtype t, const char *tok_path)
{
    gguf_build b;
    memset(&b, 0, sizeof b);
    gguf_writer_init(&b.w);
    b.cap = 2 + 9 * sh->n_layers;
    b.bufs = calloc((size_t)b.cap, sizeof *b.bufs);
    int rc = b.bufs ? 0 : -1;
    if (!rc) {
        add_hparams(&b.w, sh);
        rc = add_vocab(&b.w, tok_path, sh->vocab);
    }
    if (!rc) {
        add_weights(&b, sh, t);
        infer_status st = gguf_writer_save(&b.w, path);
        if (st) rc = bench_fail_api("writing the GGUF file", st);
    }
    gguf_writer_free(&b.w);
    for (int i = 0; i < b.n_bufs; i++) free(b.bufs[i]);
    free(b.bufs);
    return rc;
}

/* ------------------------------------------------------------------ a given model file */

/* Shape, weight bytes per decode step and main weight type of the GGUF model at `path`. The
** bytes are those of every tensor but the token embedding (one row is gathered), which counts
** when it is also the classifier (no output.weight), and rope_freqs (not read per step): what
** model.c's weight_bytes_per_step counts. The main type is the one holding most of them. */
static int model_file_info(const char *path, const char *label, bench_shape *sh, uint64_t *wbytes, dtype *main_type)
{
    mapped_file f;
    gguf_file g;
    infer_status st = map_file(path, &f);
    if (st) return bench_fail_api("mapping --model", st);
    if ((st = gguf_parse(path, &f, &g))) {
        unmap_file(&f);
        return bench_fail_api("reading --model as GGUF", st);
    }
    gguf_str arch;
    char key[96], a[32] = "llama";
    if (gguf_get_str(&g, "general.architecture", &arch) == INFER_OK && arch.n < sizeof a)
        snprintf(a, sizeof a, "%.*s", (int)arch.n, arch.p);
    static const char *const keys[5] = { "embedding_length", "feed_forward_length", "block_count",
                                         "attention.head_count", "context_length" };
    uint32_t v[5] = { 0, 0, 0, 0, 2048 };
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "%s.%s", a, keys[i]);
        gguf_get_u32(&g, key, &v[i]); /* missing: the loader fails later with the reason */
    }
    uint32_t kvh = v[3];
    snprintf(key, sizeof key, "%s.attention.head_count_kv", a);
    gguf_get_u32(&g, key, &kvh);
    const gguf_tensor *emb = gguf_find_tensor(&g, "token_embd.weight");
    int tied = gguf_find_tensor(&g, "output.weight") == NULL;
    *sh = (bench_shape){ label, label, (int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)kvh,
                         emb ? (int)emb->ne[1] : 0, (int)v[4] };
    uint64_t by_type[64] = { 0 };
    *wbytes = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *t = &g.tensors[i];
        if ((t == emb && !tied) || gguf_str_eq(t->name, "rope_freqs.weight")) continue;
        *wbytes += t->nbytes;
        if ((unsigned)t->type < 64) by_type[t->type] += t->nbytes;
    }
    *main_type = DT_F32;
    for (int i = 0; i < 64; i++)
        if (by_type[i] > by_type[*main_type]) *main_type = (dtype)i;
    gguf_free(&g);
    unmap_file(&f);
    if (v[0] == 0 || v[2] == 0 || v[3] == 0 || !emb) {
        fprintf(stderr, PROG ": --model '%s' lacks the keys or tensors of a Llama-family model\n", path);
        return -1;
    }
    return 0;
}

#endif
