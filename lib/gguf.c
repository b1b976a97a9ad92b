/*
** gguf.c — GGUF v2/v3 parser: header, metadata key/value pairs, tensor infos, data section,
** and the name indexes behind gguf_find_kv / gguf_find_tensor.
**
** Follows the GGUF spec (ggml docs/gguf.md, v3): little-endian, uint64 counts and string
** lengths (v1 had uint32 ones and is refused), tensor data offsets relative to the data
** section, which starts at the first multiple of `general.alignment` (default 32) after
** the tensor infos. Each field is bounds-checked against the bytes left before it is read;
** counts are checked against the smallest size their items could have, so no allocation is
** larger than a small multiple of the file. Overlapping tensors are tolerated (the spec
** does not forbid them and nothing here writes through the mapping).
*/
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Smallest encodings, used to bound counts before allocating: a pair is an empty key
** (8) + type (4) + a 1-byte value; a tensor info an empty name (8) + n_dims (4) + one
** dim (8) + type (4) + offset (8). */
#define KV_MIN_BYTES 13
#define TENSOR_INFO_MIN_BYTES 32
#define HEADER_BYTES 24

/* Element size of fixed-size value types; 0 for string and array. */
static const uint8_t type_size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ggml type names by id, for telling "a real type this build lacks" (INFER_EUNSUPPORTED)
** from garbage (INFER_EFORMAT). NULL: ids ggml retired. From ggml's enum ggml_type. */
static const char *const ggml_type_names[] = {
    "F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
    "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
    "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0", NULL, NULL, NULL, "MXFP4",
};

typedef struct reader {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
} reader;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static size_t left(const reader *r) { return r->size - r->pos; }

/* A printable, bounded copy of a file string for messages. */
static const char *show(gguf_str s, char *buf, size_t cap)
{
    size_t n = s.n < cap - 4 ? (size_t)s.n : cap - 4, i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n < s.n) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = 0;
    return buf;
}

int gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.n == n && memcmp(s.p, c, n) == 0;
}

const char *gguf_type_name(uint32_t type)
{
    static const char *const names[GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64",
    };
    return type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

/* ---- name indexes ------------------------------------------------------------------- */

/* FNV-1a, 64-bit. */
static uint64_t hash_bytes(const char *p, uint64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h;
}

static gguf_str kv_name(const gguf_file *g, size_t i) { return g->kv[i].key; }
static gguf_str tensor_name(const gguf_file *g, size_t i) { return g->tensors[i].name; }

/* Slot of `s` in the table: its entry's slot, or the empty slot where it would go. */
static size_t probe(const gguf_file *g, const size_t *slots, size_t mask,
                    gguf_str (*name)(const gguf_file *, size_t), const char *p, uint64_t n)
{
    size_t h = (size_t)hash_bytes(p, n) & mask;
    while (slots[h]) {
        gguf_str e = name(g, slots[h] - 1);
        if (e.n == n && memcmp(e.p, p, (size_t)n) == 0) return h;
        h = (h + 1) & mask;
    }
    return h;
}

/* Build the index of n names; on a duplicate, *dup = its later index + 1 and *first = the
** earlier one's index. Load factor stays <= 1/2. */
static infer_status build_index(const gguf_file *g, uint64_t n, gguf_str (*name)(const gguf_file *, size_t),
                                size_t **slots_out, size_t *mask_out, uint64_t *dup, uint64_t *first)
{
    size_t cap = 8;
    while (cap < 2 * n) cap *= 2;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return infer_err(INFER_ENOMEM, "'%s': out of memory for a %zu-slot name index", g->path, cap);
    *dup = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str s = name(g, i);
        size_t h = probe(g, slots, cap - 1, name, s.p, s.n);
        if (slots[h]) {
            *dup = i + 1;
            *first = slots[h] - 1;
            break;
        }
        slots[h] = i + 1;
    }
    *slots_out = slots;
    *mask_out = cap - 1;
    return INFER_OK;
}

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key)
{
    if (!g->kv_slots) return NULL;
    size_t h = probe(g, g->kv_slots, g->kv_mask, kv_name, key, strlen(key));
    return g->kv_slots[h] ? &g->kv[g->kv_slots[h] - 1] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name)
{
    if (!g->tensor_slots) return NULL;
    size_t h = probe(g, g->tensor_slots, g->tensor_mask, tensor_name, name, strlen(name));
    return g->tensor_slots[h] ? &g->tensors[g->tensor_slots[h] - 1] : NULL;
}

/* ---- metadata ----------------------------------------------------------------------- */

/* Read a string length at r->pos and check the bytes follow; `what` names it. */
static infer_status read_str(reader *r, gguf_str *out, const char *what, const char *key)
{
    if (left(r) < 8)
        return infer_err(INFER_EFORMAT, "'%s': %s%s%s%s: file ends at byte %zu inside the string length",
                         r->path, what, key ? " of key '" : "", key ? key : "", key ? "'" : "", r->pos);
    uint64_t n = le64(r->p + r->pos);
    if (n > left(r) - 8)
        return infer_err(INFER_EFORMAT,
                         "'%s': %s%s%s%s: string length %llu at byte %zu runs past the end of the file (%zu bytes)",
                         r->path, what, key ? " of key '" : "", key ? key : "", key ? "'" : "", (unsigned long long)n,
                         r->pos, r->size);
    out->p = (const char *)r->p + r->pos + 8;
    out->n = n;
    r->pos += 8 + (size_t)n;
    return INFER_OK;
}

static infer_status check_bools(reader *r, uint64_t n, const char *key)
{
    for (uint64_t i = 0; i < n; i++) {
        uint8_t b = r->p[r->pos + i];
        if (b > 1)
            return infer_err(INFER_EFORMAT, "'%s': key '%s': bool value %u at byte %zu is neither 0 nor 1",
                             r->path, key, b, r->pos + (size_t)i);
    }
    return INFER_OK;
}

/* Validate and skip one value of `type` at r->pos (depth = array nesting, top level 0).
** When str_off is not NULL and the value is an array of strings, *str_off gets a malloc'd
** table of each element's offset from the first (the O(1) index gguf_arr_str uses). */
static infer_status skip_value(reader *r, uint32_t type, int depth, const char *key, uint64_t **str_off)
{
    if (type >= GGUF_TYPE_COUNT)
        return infer_err(INFER_EFORMAT, "'%s': key '%s': unknown value type %u before byte %zu", r->path, key, type,
                         r->pos);
    if (type_size[type]) {
        if (left(r) < type_size[type])
            return infer_err(INFER_EFORMAT, "'%s': key '%s': %s value at byte %zu runs past the end of the file",
                             r->path, key, gguf_type_name(type), r->pos);
        if (type == GGUF_TYPE_BOOL) {
            infer_status st = check_bools(r, 1, key);
            if (st) return st;
        }
        r->pos += type_size[type];
        return INFER_OK;
    }
    if (type == GGUF_TYPE_STRING) {
        gguf_str s;
        return read_str(r, &s, "string", key);
    }
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return infer_err(INFER_EFORMAT, "'%s': key '%s': arrays nested deeper than %d at byte %zu", r->path, key,
                         GGUF_MAX_ARRAY_DEPTH, r->pos);
    if (left(r) < 12)
        return infer_err(INFER_EFORMAT, "'%s': key '%s': file ends at byte %zu inside an array header", r->path,
                         key, r->pos);
    uint32_t et = le32(r->p + r->pos);
    uint64_t n = le64(r->p + r->pos + 4);
    size_t hdr = r->pos;
    r->pos += 12;
    if (et >= GGUF_TYPE_COUNT)
        return infer_err(INFER_EFORMAT, "'%s': key '%s': unknown array element type %u at byte %zu", r->path, key,
                         et, hdr);
    uint64_t min = type_size[et] ? type_size[et] : et == GGUF_TYPE_STRING ? 8 : 12;
    if (n > left(r) / min)
        return infer_err(INFER_EFORMAT,
                         "'%s': key '%s': array of %llu %s elements (count at byte %zu) cannot fit in the %zu "
                         "bytes left",
                         r->path, key, (unsigned long long)n, gguf_type_name(et), hdr + 4, left(r));
    if (type_size[et]) {
        if (et == GGUF_TYPE_BOOL) {
            infer_status st = check_bools(r, n, key);
            if (st) return st;
        }
        r->pos += (size_t)(n * type_size[et]);
        return INFER_OK;
    }
    uint64_t *off = NULL;
    if (str_off && et == GGUF_TYPE_STRING && n) {
        /* n * 8 <= the bytes left, so this table is smaller than the file. */
        if (!(off = *str_off = malloc((size_t)n * sizeof *off)))
            return infer_err(INFER_ENOMEM, "'%s': out of memory indexing the %llu strings of key '%s'", r->path,
                             (unsigned long long)n, key);
    }
    size_t first = r->pos;
    for (uint64_t i = 0; i < n; i++) {
        if (off) off[i] = r->pos - first;
        infer_status st = skip_value(r, et, depth + 1, key, NULL);
        if (st) return st;
    }
    return INFER_OK;
}

static infer_status parse_kv(reader *r, uint64_t idx, gguf_kv *kv)
{
    char kbuf[96];
    char what[64];
    snprintf(what, sizeof what, "key of metadata pair %llu at byte %zu", (unsigned long long)idx, r->pos);
    kv->offset = r->pos;
    infer_status st = read_str(r, &kv->key, what, NULL);
    if (st) return st;
    const char *key = show(kv->key, kbuf, sizeof kbuf);
    if (left(r) < 4)
        return infer_err(INFER_EFORMAT, "'%s': key '%s' (pair at byte %zu): file ends at byte %zu inside the value type",
                         r->path, key, kv->offset, r->pos);
    kv->type = le32(r->p + r->pos);
    if (kv->type >= GGUF_TYPE_COUNT)
        return infer_err(INFER_EFORMAT, "'%s': key '%s': unknown value type %u at byte %zu", r->path, key, kv->type,
                         r->pos);
    r->pos += 4;
    size_t start = r->pos;
    if (kv->type != GGUF_TYPE_ARRAY) {
        st = skip_value(r, kv->type, 0, key, NULL);
        if (st) return st;
        kv->val = r->p + start;
        kv->val_bytes = r->pos - start;
        return INFER_OK;
    }
    /* Top-level arrays: record the element type and count, and index string elements. */
    if (left(r) >= 12) {
        kv->arr_type = le32(r->p + r->pos);
        kv->arr_n = le64(r->p + r->pos + 4);
    }
    st = skip_value(r, GGUF_TYPE_ARRAY, 0, key, &kv->str_off);
    if (st) return st;
    kv->val = r->p + start + 12;
    kv->val_bytes = r->pos - start - 12;
    return INFER_OK;
}

/* general.alignment: an integer (the spec says uint32) that is a nonzero power of two. */
static infer_status read_alignment(const gguf_file *g, uint64_t *out)
{
    *out = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(g, "general.alignment");
    if (!kv) return INFER_OK;
    int64_t v;
    infer_status st = gguf_get_i64(g, "general.alignment", &v);
    if (st) return st;
    if (v <= 0 || (v & (v - 1)) != 0)
        return infer_err(INFER_EFORMAT, "'%s': key 'general.alignment' (pair at byte %zu): %lld is not a power of two",
                         g->path, kv->offset, (long long)v);
    *out = (uint64_t)v;
    return INFER_OK;
}

/* ---- tensor infos ------------------------------------------------------------------- */

static infer_status parse_tensor_info(reader *r, uint64_t idx, gguf_tensor *t)
{
    char nbuf[96], what[64];
    snprintf(what, sizeof what, "name of tensor info %llu at byte %zu", (unsigned long long)idx, r->pos);
    t->info_offset = r->pos;
    infer_status st = read_str(r, &t->name, what, NULL);
    if (st) return st;
    const char *name = show(t->name, nbuf, sizeof nbuf);
    if (left(r) < 4)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%s' (info at byte %zu): file ends at byte %zu inside n_dims",
                         r->path, name, t->info_offset, r->pos);
    t->n_dims = le32(r->p + r->pos);
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%s' (info at byte %zu): n_dims %u at byte %zu, expected 1..%d",
                         r->path, name, t->info_offset, t->n_dims, r->pos, GGUF_MAX_DIMS);
    r->pos += 4;
    if (left(r) < (size_t)t->n_dims * 8 + 12)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%s' (info at byte %zu): file ends at byte %zu inside the info",
                         r->path, name, t->info_offset, r->size);
    t->n_elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v = le64(r->p + r->pos);
        if (v == 0 || v > (uint64_t)INT64_MAX)
            return infer_err(INFER_EFORMAT, "'%s': tensor '%s' (info at byte %zu): ne[%u] = %lld at byte %zu is not positive",
                             r->path, name, t->info_offset, d, (long long)v, r->pos);
        if ((int64_t)v > INT64_MAX / t->n_elems)
            return infer_err(INFER_EFORMAT,
                             "'%s': tensor '%s' (info at byte %zu): element count overflows at ne[%u] = %llu (byte %zu)",
                             r->path, name, t->info_offset, d, (unsigned long long)v, r->pos);
        t->ne[d] = (int64_t)v;
        t->n_elems *= (int64_t)v;
        r->pos += 8;
    }
    uint32_t type = le32(r->p + r->pos);
    if (type > 0x7fffffff || !dtype_known((int)type)) {
        size_t nnames = sizeof ggml_type_names / sizeof ggml_type_names[0];
        if (type < nnames && ggml_type_names[type])
            return infer_err(INFER_EUNSUPPORTED,
                             "'%s': tensor '%s' (info at byte %zu): ggml type %u (%s) at byte %zu is not supported by "
                             "this build",
                             r->path, name, t->info_offset, type, ggml_type_names[type], r->pos);
        return infer_err(INFER_EFORMAT, "'%s': tensor '%s' (info at byte %zu): unknown ggml type %u at byte %zu",
                         r->path, name, t->info_offset, type, r->pos);
    }
    t->type = (dtype)type;
    r->pos += 4;
    t->offset = le64(r->p + r->pos);
    r->pos += 8;
    size_t row = dtype_row_bytes(t->type, t->ne[0]);
    if (row == 0)
        return infer_err(INFER_EFORMAT,
                         "'%s': tensor '%s' (info at byte %zu): row length ne[0] = %lld is not a multiple of the %s "
                         "block size %d",
                         r->path, name, t->info_offset, (long long)t->ne[0], dtype_name(t->type),
                         dtype_block_elems(t->type));
    uint64_t rows = (uint64_t)(t->n_elems / t->ne[0]);
    if (rows > (uint64_t)(SIZE_MAX / row) || rows * row > r->size)
        return infer_err(INFER_EFORMAT,
                         "'%s': tensor '%s' (info at byte %zu): %llu rows of %zu bytes are larger than the file (%zu "
                         "bytes)",
                         r->path, name, t->info_offset, (unsigned long long)rows, row, r->size);
    t->nbytes = (size_t)rows * row;
    return INFER_OK;
}

/* Where each tensor's bytes are: aligned and inside the file. */
static infer_status place_tensors(gguf_file *g, const mapped_file *f)
{
    size_t avail = f->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        char nbuf[96];
        const char *name = show(t->name, nbuf, sizeof nbuf);
        size_t off_at = t->info_offset + 8 + (size_t)t->name.n + 4 + 8 * (size_t)t->n_dims + 4;
        if (t->offset % g->alignment)
            return infer_err(INFER_EFORMAT,
                             "'%s': tensor '%s' (info at byte %zu): data offset %llu at byte %zu is not a multiple "
                             "of the alignment %llu",
                             g->path, name, t->info_offset, (unsigned long long)t->offset, off_at,
                             (unsigned long long)g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return infer_err(INFER_EFORMAT,
                             "'%s': tensor '%s' (info at byte %zu): %zu bytes at data offset %llu (field at byte %zu; "
                             "the data section starts at byte %zu) run past the end of the file (%zu bytes)",
                             g->path, name, t->info_offset, t->nbytes, (unsigned long long)t->offset, off_at,
                             g->data_offset, f->size);
        t->data = f->data + g->data_offset + t->offset;
    }
    return INFER_OK;
}

/* ---- the file ----------------------------------------------------------------------- */

static infer_status parse_header(reader *r, gguf_file *g)
{
    if (r->size < 4 || memcmp(r->p, "GGUF", 4) != 0) {
        if (r->size < 4)
            return infer_err(INFER_EFORMAT, "'%s': not a GGUF file: only %zu bytes, no magic", r->path, r->size);
        return infer_err(INFER_EFORMAT,
                         "'%s': not a GGUF file: magic at byte 0 is %02x %02x %02x %02x, expected \"GGUF\"", r->path,
                         r->p[0], r->p[1], r->p[2], r->p[3]);
    }
    if (r->size < 8)
        return infer_err(INFER_EFORMAT, "'%s': file ends at byte %zu inside the version", r->path, r->size);
    uint32_t v = le32(r->p + 4);
    if (v == 1)
        return infer_err(INFER_EUNSUPPORTED,
                         "'%s': GGUF version 1 (uint32 counts, 2023 pre-release format) is not supported: "
                         "re-convert the model with a current llama.cpp",
                         r->path);
    if (v == 0x02000000u || v == 0x03000000u)
        return infer_err(INFER_EUNSUPPORTED, "'%s': big-endian GGUF (version %u byte-swapped) is not supported",
                         r->path, (unsigned)(v >> 24));
    if (v == 0)
        return infer_err(INFER_EFORMAT, "'%s': version 0 at byte 4 is invalid", r->path);
    if (v > 3)
        return infer_err(INFER_EUNSUPPORTED, "'%s': GGUF version %u at byte 4 is newer than this reader (2, 3)",
                         r->path, v);
    g->version = v;
    if (r->size < HEADER_BYTES)
        return infer_err(INFER_EFORMAT, "'%s': header truncated: the file has %zu bytes, the header needs %d",
                         r->path, r->size, HEADER_BYTES);
    g->n_tensors = le64(r->p + 8);
    g->n_kv = le64(r->p + 16);
    size_t rest = r->size - HEADER_BYTES;
    if (g->n_tensors > rest / TENSOR_INFO_MIN_BYTES)
        return infer_err(INFER_EFORMAT,
                         "'%s': tensor_count %llu at byte 8 cannot fit in the %zu bytes after the header (a tensor "
                         "info takes at least %d)",
                         r->path, (unsigned long long)g->n_tensors, rest, TENSOR_INFO_MIN_BYTES);
    if (g->n_kv > rest / KV_MIN_BYTES)
        return infer_err(INFER_EFORMAT,
                         "'%s': metadata_kv_count %llu at byte 16 cannot fit in the %zu bytes after the header (a "
                         "pair takes at least %d)",
                         r->path, (unsigned long long)g->n_kv, rest, KV_MIN_BYTES);
    if (g->n_tensors * TENSOR_INFO_MIN_BYTES + g->n_kv * KV_MIN_BYTES > rest)
        return infer_err(INFER_EFORMAT,
                         "'%s': tensor_count %llu (byte 8) and metadata_kv_count %llu (byte 16) cannot both fit in "
                         "the %zu bytes after the header",
                         r->path, (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv, rest);
    r->pos = HEADER_BYTES;
    return INFER_OK;
}

static infer_status parse_all(reader *r, const mapped_file *f, gguf_file *g)
{
    uint64_t dup, first;
    infer_status st = parse_header(r, g);
    if (st) return st;

    g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return infer_err(INFER_ENOMEM, "'%s': out of memory for %llu pairs and %llu tensor infos", r->path,
                         (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((st = parse_kv(r, i, &g->kv[i]))) return st;
    if ((st = build_index(g, g->n_kv, kv_name, &g->kv_slots, &g->kv_mask, &dup, &first))) return st;
    if (dup) {
        char kbuf[96];
        return infer_err(INFER_EFORMAT, "'%s': duplicate key '%s' at byte %zu (first at byte %zu)", r->path,
                         show(g->kv[dup - 1].key, kbuf, sizeof kbuf), g->kv[dup - 1].offset, g->kv[first].offset);
    }
    if ((st = read_alignment(g, &g->alignment))) return st;

    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor_info(r, i, &g->tensors[i]))) return st;
    if ((st = build_index(g, g->n_tensors, tensor_name, &g->tensor_slots, &g->tensor_mask, &dup, &first))) return st;
    if (dup) {
        char nbuf[96];
        return infer_err(INFER_EFORMAT, "'%s': duplicate tensor name '%s' (infos at bytes %zu and %zu)", r->path,
                         show(g->tensors[dup - 1].name, nbuf, sizeof nbuf), g->tensors[first].info_offset,
                         g->tensors[dup - 1].info_offset);
    }

    /* Vocab-only files end right after the metadata, without padding. */
    uint64_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
    if (pad > left(r)) {
        if (g->n_tensors)
            return infer_err(INFER_EFORMAT,
                             "'%s': the data section would start at byte %zu + %llu padding (alignment %llu), past "
                             "the end of the file (%zu bytes)",
                             r->path, r->pos, (unsigned long long)pad, (unsigned long long)g->alignment, r->size);
        pad = left(r);
    }
    g->data_offset = r->pos + (size_t)pad;
    return place_tensors(g, f);
}

infer_status gguf_parse(const char *path, const mapped_file *f, gguf_file *out)
{
    memset(out, 0, sizeof *out);
    if (!path) path = "(gguf)";
    out->path = infer_strdup(path);
    if (!out->path) return infer_err(INFER_ENOMEM, "out of memory");
    reader r = {f->data, f->size, 0, out->path};
    infer_status st = parse_all(&r, f, out);
    if (st) gguf_free(out);
    return st;
}

void gguf_free(gguf_file *g)
{
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->tensors);
    free(g->kv_slots);
    free(g->tensor_slots);
    free(g->path);
    memset(g, 0, sizeof *g);
}
