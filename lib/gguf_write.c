/*
** gguf_write.c — a small GGUF v3 writer, for tests (fixtures, corrupted copies) and converters.
**
** Follows the GGUF spec as gguf.c reads it: little-endian header (magic, version 3,
** uint64 tensor_count, uint64 metadata_kv_count), the pairs in the order they were added,
** the tensor infos in the order added with offsets relative to the data section, zero
** padding to the alignment, then each tensor's bytes, each padded to the alignment.
** Values are encoded byte by byte, so the output does not depend on the host's byte order.
** Not a goal: editing existing files, or streaming data larger than memory (tensor data is
** borrowed, not copied, so it can be large; only metadata is buffered).
*/
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void le_put(uint8_t *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
}

void gguf_writer_init(gguf_writer *w)
{
    memset(w, 0, sizeof *w);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    sb_free(&w->kv);
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (uint64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    gguf_writer_init(w);
}

static infer_status fail(gguf_writer *w, infer_status st)
{
    if (!w->err) w->err = st;
    return st;
}

static infer_status put(gguf_writer *w, const void *p, size_t n)
{
    infer_status st = sb_append(&w->kv, (const char *)p, n);
    return st ? fail(w, st) : INFER_OK;
}

static infer_status put_int(gguf_writer *w, uint64_t v, int n)
{
    uint8_t b[8];
    le_put(b, v, n);
    return put(w, b, (size_t)n);
}

static infer_status put_str(gguf_writer *w, const char *s, uint64_t n)
{
    infer_status st = put_int(w, n, 8);
    return st ? st : put(w, s, (size_t)n);
}

/* Start a pair: refuse after an earlier failure or on a duplicate key, then write the key
** and the value type. */
static infer_status begin_kv(gguf_writer *w, const char *key, uint32_t type)
{
    if (w->err) return w->err;
    if (!key) return fail(w, infer_err(INFER_EINVAL, "gguf writer: NULL key"));
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return fail(w, infer_err(INFER_EINVAL, "gguf writer: duplicate key '%s'", key));
    char **keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
    if (!keys) return fail(w, infer_err(INFER_ENOMEM, "gguf writer: out of memory adding key '%s'", key));
    w->keys = keys;
    if (!(keys[w->n_kv] = infer_strdup(key)))
        return fail(w, infer_err(INFER_ENOMEM, "gguf writer: out of memory adding key '%s'", key));
    w->n_kv++;
    infer_status st = put_str(w, key, strlen(key));
    return st ? st : put_int(w, type, 4);
}

static infer_status add_scalar(gguf_writer *w, const char *key, uint32_t type, uint64_t bits, int n)
{
    infer_status st = begin_kv(w, key, type);
    return st ? st : put_int(w, bits, n);
}

/* Unsigned adds of "general.alignment" also set the alignment the file is written with. */
static infer_status add_unsigned(gguf_writer *w, const char *key, uint32_t type, uint64_t v, int n)
{
    if (!w->err && key && strcmp(key, "general.alignment") == 0) {
        if (v == 0 || (v & (v - 1)) != 0)
            return fail(w, infer_err(INFER_EINVAL, "gguf writer: general.alignment %llu is not a power of two",
                                     (unsigned long long)v));
        w->alignment = v;
    }
    return add_scalar(w, key, type, v, n);
}

infer_status gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v)
{
    return add_unsigned(w, key, GGUF_TYPE_UINT8, v, 1);
}

infer_status gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v)
{
    return add_unsigned(w, key, GGUF_TYPE_UINT16, v, 2);
}

infer_status gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return add_unsigned(w, key, GGUF_TYPE_UINT32, v, 4);
}

infer_status gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v)
{
    return add_unsigned(w, key, GGUF_TYPE_UINT64, v, 8);
}

infer_status gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v)
{
    return add_scalar(w, key, GGUF_TYPE_INT8, (uint8_t)v, 1);
}

infer_status gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v)
{
    return add_scalar(w, key, GGUF_TYPE_INT16, (uint16_t)v, 2);
}

infer_status gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v)
{
    return add_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v, 4);
}

infer_status gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v)
{
    return add_scalar(w, key, GGUF_TYPE_INT64, (uint64_t)v, 8);
}

infer_status gguf_writer_add_f32(gguf_writer *w, const char *key, float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return add_scalar(w, key, GGUF_TYPE_FLOAT32, b, 4);
}

infer_status gguf_writer_add_f64(gguf_writer *w, const char *key, double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return add_scalar(w, key, GGUF_TYPE_FLOAT64, b, 8);
}

infer_status gguf_writer_add_bool(gguf_writer *w, const char *key, int v)
{
    return add_scalar(w, key, GGUF_TYPE_BOOL, v != 0, 1);
}

infer_status gguf_writer_add_strn(gguf_writer *w, const char *key, const char *s, uint64_t n)
{
    if (!s && n) return fail(w, infer_err(INFER_EINVAL, "gguf writer: NULL string for key '%s'", key ? key : "?"));
    infer_status st = begin_kv(w, key, GGUF_TYPE_STRING);
    return st ? st : put_str(w, s, n);
}

infer_status gguf_writer_add_str(gguf_writer *w, const char *key, const char *s)
{
    return gguf_writer_add_strn(w, key, s, s ? strlen(s) : 0);
}

infer_status gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (!v[i])
            return fail(w, infer_err(INFER_EINVAL, "gguf writer: key '%s': string %llu is NULL", key ? key : "?",
                                     (unsigned long long)i));
    infer_status st = begin_kv(w, key, GGUF_TYPE_ARRAY);
    if (!st) st = put_int(w, GGUF_TYPE_STRING, 4);
    if (!st) st = put_int(w, n, 8);
    for (uint64_t i = 0; i < n && !st; i++) st = put_str(w, v[i], strlen(v[i]));
    return st;
}

infer_status gguf_writer_add_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *v, uint64_t n)
{
    static const uint8_t size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (elem_type >= GGUF_TYPE_COUNT || !size[elem_type])
        return fail(w, infer_err(INFER_EINVAL, "gguf writer: key '%s': element type %u is not a fixed-size type",
                                 key ? key : "?", elem_type));
    if (!v && n) return fail(w, infer_err(INFER_EINVAL, "gguf writer: key '%s': NULL elements", key ? key : "?"));
    int sz = size[elem_type];
    const uint8_t *p = v;
    if (elem_type == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (p[i] > 1)
                return fail(w, infer_err(INFER_EINVAL, "gguf writer: key '%s': bool element %llu is %u, not 0/1",
                                         key ? key : "?", (unsigned long long)i, p[i]));
    infer_status st = begin_kv(w, key, GGUF_TYPE_ARRAY);
    if (!st) st = put_int(w, elem_type, 4);
    if (!st) st = put_int(w, n, 8);
    for (uint64_t i = 0; i < n && !st; i++) {
        uint64_t e = 0;
        switch (sz) {
        case 1: e = p[i]; break;
        case 2: { uint16_t x; memcpy(&x, p + 2 * i, 2); e = x; } break;
        case 4: { uint32_t x; memcpy(&x, p + 4 * i, 4); e = x; } break;
        default: memcpy(&e, p + 8 * i, 8); break;
        }
        st = put_int(w, e, sz);
    }
    return st;
}

infer_status gguf_writer_add_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    return gguf_writer_add_arr(w, key, GGUF_TYPE_FLOAT32, v, n);
}

infer_status gguf_writer_add_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    return gguf_writer_add_arr(w, key, GGUF_TYPE_INT32, v, n);
}

infer_status gguf_writer_add_tensor(gguf_writer *w, const char *name, dtype type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, size_t nbytes)
{
    if (w->err) return w->err;
    if (!name || !ne || !data) return fail(w, infer_err(INFER_EINVAL, "gguf writer: tensor with NULL name, ne or data"));
    for (uint64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return fail(w, infer_err(INFER_EINVAL, "gguf writer: duplicate tensor '%s'", name));
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return fail(w, infer_err(INFER_EINVAL, "gguf writer: tensor '%s': n_dims %u, expected 1..%d", name, n_dims,
                                 GGUF_MAX_DIMS));
    if (!dtype_known((int)type))
        return fail(w, infer_err(INFER_EINVAL, "gguf writer: tensor '%s': unknown dtype %d", name, (int)type));
    int64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || (d > 0 && ne[d] > INT64_MAX / rows))
            return fail(w, infer_err(INFER_EINVAL, "gguf writer: tensor '%s': bad ne[%u] = %lld", name, d,
                                     (long long)ne[d]));
        if (d > 0) rows *= ne[d];
    }
    size_t row = dtype_row_bytes(type, ne[0]);
    if (row == 0 || (uint64_t)rows > SIZE_MAX / row || (size_t)rows * row != nbytes)
        return fail(w, infer_err(INFER_EINVAL,
                                 "gguf writer: tensor '%s': %zu bytes given, %s with ne[0] = %lld and %lld rows needs %zu",
                                 name, nbytes, dtype_name(type), (long long)ne[0], (long long)rows,
                                 row && (uint64_t)rows <= SIZE_MAX / row ? (size_t)rows * row : 0));
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? 2 * w->cap_t : 16;
        gguf_wtensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return fail(w, infer_err(INFER_ENOMEM, "gguf writer: out of memory adding tensor '%s'", name));
        w->t = t;
        w->cap_t = cap;
    }
    gguf_wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = infer_strdup(name)))
        return fail(w, infer_err(INFER_ENOMEM, "gguf writer: out of memory adding tensor '%s'", name));
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    w->n_t++;
    return INFER_OK;
}

static uint64_t pad_to(uint64_t n, uint64_t a) { return (a - n % a) % a; }

static int write_zeros(FILE *f, uint64_t n)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (fwrite(zeros, 1, k, f) != k) return -1;
        n -= k;
    }
    return 0;
}

/* Header + pairs + tensor infos, in memory. */
static infer_status build_head(const gguf_writer *w, strbuf *h)
{
    uint8_t b[24];
    memcpy(b, "GGUF", 4);
    le_put(b + 4, 3, 4);
    le_put(b + 8, w->n_t, 8);
    le_put(b + 16, w->n_kv, 8);
    infer_status st = sb_append(h, (const char *)b, 24);
    if (!st) st = sb_append(h, w->kv.p ? w->kv.p : "", w->kv.len);
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t && !st; i++) {
        const gguf_wtensor *t = &w->t[i];
        size_t n = strlen(t->name);
        le_put(b, n, 8);
        st = sb_append(h, (const char *)b, 8);
        if (!st) st = sb_append(h, t->name, n);
        le_put(b, t->n_dims, 4);
        if (!st) st = sb_append(h, (const char *)b, 4);
        for (uint32_t d = 0; d < t->n_dims && !st; d++) {
            le_put(b, (uint64_t)t->ne[d], 8);
            st = sb_append(h, (const char *)b, 8);
        }
        le_put(b, (uint64_t)t->type, 4);
        le_put(b + 4, off, 8);
        if (!st) st = sb_append(h, (const char *)b, 12);
        off += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    return st;
}

infer_status gguf_writer_save(const gguf_writer *w, const char *path)
{
    if (w->err) return w->err;
    strbuf h = {0};
    infer_status st = build_head(w, &h);
    if (st) {
        sb_free(&h);
        return st;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        sb_free(&h);
        return infer_err(INFER_EIO, "cannot create '%s': %s", path, strerror(e));
    }
    int bad = fwrite(h.p, 1, h.len, f) != h.len;
    if (w->n_t) bad = bad || write_zeros(f, pad_to(h.len, w->alignment));
    for (uint64_t i = 0; i < w->n_t && !bad; i++) {
        bad = fwrite(w->t[i].data, 1, w->t[i].nbytes, f) != w->t[i].nbytes;
        bad = bad || write_zeros(f, pad_to(w->t[i].nbytes, w->alignment));
    }
    int e = errno;
    sb_free(&h);
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        remove(path);
        return infer_err(INFER_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    return INFER_OK;
}
