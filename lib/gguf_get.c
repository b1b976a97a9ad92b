/*
** gguf_get.c — typed access to GGUF metadata: scalar getters by key that check the value
** type (and that an integer fits the type asked for), and O(1) array element access.
**
** Values are read from the mapping byte by byte (little-endian, per the GGUF spec), so
** unaligned values are fine: after the first string nothing in the metadata is aligned.
** gguf_parse has already checked every value lies inside the file and every bool is 0/1.
*/
#include "gguf.h"

#include <stdio.h>
#include <string.h>

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* An integer of any GGUF integer type: negative ones in s (neg = 1), others in u. */
typedef struct int_val {
    int neg;
    uint64_t u;
    int64_t s;
} int_val;

/* 1 and *v when `type` is an integer type, else 0. */
static int read_int(uint32_t type, const uint8_t *p, int_val *v)
{
    int64_t s;
    switch (type) {
    case GGUF_TYPE_UINT8: v->u = p[0]; break;
    case GGUF_TYPE_UINT16: v->u = (uint64_t)p[0] | (uint64_t)p[1] << 8; break;
    case GGUF_TYPE_UINT32: v->u = le32(p); break;
    case GGUF_TYPE_UINT64: v->u = le64(p); break;
    case GGUF_TYPE_INT8: s = (int8_t)p[0]; goto sign;
    case GGUF_TYPE_INT16: s = (int16_t)(uint16_t)((unsigned)p[0] | (unsigned)p[1] << 8); goto sign;
    case GGUF_TYPE_INT32: s = (int32_t)le32(p); goto sign;
    case GGUF_TYPE_INT64: s = (int64_t)le64(p); goto sign;
    default: return 0;
    }
    v->neg = 0;
    v->s = v->u <= (uint64_t)INT64_MAX ? (int64_t)v->u : INT64_MAX;
    return 1;
sign:
    v->neg = s < 0;
    v->s = s;
    v->u = s < 0 ? 0 : (uint64_t)s;
    return 1;
}

static float read_f32(const uint8_t *p)
{
    uint32_t b = le32(p);
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static double read_f64(const uint8_t *p)
{
    uint64_t b = le64(p);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static infer_status lookup(const gguf_file *g, const char *key, const gguf_kv **kv)
{
    *kv = gguf_find_kv(g, key);
    if (!*kv) return infer_err(INFER_ENOTFOUND, "'%s': key '%s' not found", g->path, key);
    return INFER_OK;
}

static infer_status wrong_type(const gguf_file *g, const gguf_kv *kv, const char *key, const char *expected)
{
    if (kv->type == GGUF_TYPE_ARRAY)
        return infer_err(INFER_EFORMAT, "'%s': key '%s' (pair at byte %zu) has type array of %s, expected %s",
                         g->path, key, kv->offset, gguf_type_name(kv->arr_type), expected);
    return infer_err(INFER_EFORMAT, "'%s': key '%s' (pair at byte %zu) has type %s, expected %s", g->path, key,
                     kv->offset, gguf_type_name(kv->type), expected);
}

static infer_status get_int(const gguf_file *g, const char *key, const gguf_kv **kv, int_val *v, const char *want)
{
    infer_status st = lookup(g, key, kv);
    if (st) return st;
    if (!read_int((*kv)->type, (*kv)->val, v)) return wrong_type(g, *kv, key, want);
    return INFER_OK;
}

infer_status gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out)
{
    const gguf_kv *kv;
    int_val v;
    infer_status st = get_int(g, key, &kv, &v, "uint32");
    if (st) return st;
    if (v.neg)
        return infer_err(INFER_EFORMAT, "'%s': key '%s' (pair at byte %zu): %s value %lld does not fit in uint32",
                         g->path, key, kv->offset, gguf_type_name(kv->type), (long long)v.s);
    if (v.u > UINT32_MAX)
        return infer_err(INFER_EFORMAT, "'%s': key '%s' (pair at byte %zu): %s value %llu does not fit in uint32",
                         g->path, key, kv->offset, gguf_type_name(kv->type), (unsigned long long)v.u);
    *out = (uint32_t)v.u;
    return INFER_OK;
}

infer_status gguf_get_i64(const gguf_file *g, const char *key, int64_t *out)
{
    const gguf_kv *kv;
    int_val v;
    infer_status st = get_int(g, key, &kv, &v, "an integer");
    if (st) return st;
    if (!v.neg && v.u > (uint64_t)INT64_MAX)
        return infer_err(INFER_EFORMAT, "'%s': key '%s' (pair at byte %zu): uint64 value %llu does not fit in int64",
                         g->path, key, kv->offset, (unsigned long long)v.u);
    *out = v.s;
    return INFER_OK;
}

infer_status gguf_get_f32(const gguf_file *g, const char *key, float *out)
{
    const gguf_kv *kv;
    infer_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type == GGUF_TYPE_FLOAT32)
        *out = read_f32(kv->val);
    else if (kv->type == GGUF_TYPE_FLOAT64)
        *out = (float)read_f64(kv->val);
    else
        return wrong_type(g, kv, key, "float32");
    return INFER_OK;
}

infer_status gguf_get_bool(const gguf_file *g, const char *key, int *out)
{
    const gguf_kv *kv;
    infer_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type != GGUF_TYPE_BOOL) return wrong_type(g, kv, key, "bool");
    *out = kv->val[0] != 0;
    return INFER_OK;
}

infer_status gguf_get_str(const gguf_file *g, const char *key, gguf_str *out)
{
    const gguf_kv *kv;
    infer_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(g, kv, key, "string");
    out->n = le64(kv->val);
    out->p = (const char *)kv->val + 8;
    return INFER_OK;
}

infer_status gguf_get_arr(const gguf_file *g, const char *key, uint32_t want_elem, const gguf_kv **out)
{
    const gguf_kv *kv;
    infer_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type != GGUF_TYPE_ARRAY || (want_elem != GGUF_TYPE_ANY && kv->arr_type != want_elem)) {
        char want[48];
        if (want_elem == GGUF_TYPE_ANY)
            snprintf(want, sizeof want, "an array");
        else
            snprintf(want, sizeof want, "array of %s", gguf_type_name(want_elem));
        return wrong_type(g, kv, key, want);
    }
    *out = kv;
    return INFER_OK;
}

infer_status gguf_arr_str(const gguf_kv *kv, uint64_t i, gguf_str *out)
{
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || !kv->str_off)
        return infer_err(INFER_EINVAL, "key '%.*s' is not a non-empty string array", (int)INFER_MIN(kv->key.n, 200),
                         kv->key.p);
    if (i >= kv->arr_n)
        return infer_err(INFER_EINVAL, "key '%.*s': index %llu out of range (%llu strings)",
                         (int)INFER_MIN(kv->key.n, 200), kv->key.p, (unsigned long long)i,
                         (unsigned long long)kv->arr_n);
    const uint8_t *p = kv->val + kv->str_off[i];
    out->n = le64(p);
    out->p = (const char *)p + 8;
    return INFER_OK;
}

float gguf_arr_f32(const gguf_kv *kv, uint64_t i)
{
    if (kv->type != GGUF_TYPE_ARRAY || i >= kv->arr_n) return 0.0f;
    if (kv->arr_type == GGUF_TYPE_FLOAT32) return read_f32(kv->val + 4 * i);
    if (kv->arr_type == GGUF_TYPE_FLOAT64) return (float)read_f64(kv->val + 8 * i);
    return 0.0f;
}

int32_t gguf_arr_i32(const gguf_kv *kv, uint64_t i)
{
    static const uint8_t size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 0, 0, 0, 0, 8, 8, 0};
    int_val v;
    if (kv->type != GGUF_TYPE_ARRAY || i >= kv->arr_n || kv->arr_type >= GGUF_TYPE_COUNT || !size[kv->arr_type])
        return 0;
    if (!read_int(kv->arr_type, kv->val + size[kv->arr_type] * i, &v)) return 0;
    return v.neg ? (int32_t)v.s : (int32_t)(uint32_t)v.u;
}
