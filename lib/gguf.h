/*
** gguf.h — GGUF (v2, v3) reader over a memory-mapped file, and a small writer for tests
** and converters.
**
** Format: the GGUF spec (ggml docs/gguf.md). Little-endian: "GGUF", uint32 version,
** uint64 tensor_count, uint64 metadata_kv_count, the key/value pairs, the tensor infos,
** zero padding to `general.alignment` (default 32), then the tensor data. v1 (uint32 counts
** and string lengths) and big-endian files are refused with INFER_EUNSUPPORTED.
**
** The reader copies nothing: strings, values and tensor data point into the mapping, so
** the mapped_file must outlive the gguf_file. Every count, length and offset is checked
** against the file size before it is used; a malformed file gives INFER_EFORMAT with a
** message naming the file, the field and its byte offset.
** Thread-safety: a parsed gguf_file is read-only; any number of threads may query it.
** A gguf_writer belongs to one thread at a time. No global state.
*/
#ifndef INFER_GGUF_H
#define INFER_GGUF_H

#include "dtype.h"
#include "mmap.h"

/* Metadata value types (gguf_metadata_value_type). */
typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

#define GGUF_TYPE_ANY 0xFFFFFFFFu      /* gguf_get_arr: accept any element type */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_ARRAY_DEPTH 3         /* an array of arrays of arrays, no deeper */

/* A string inside the file: not NUL-terminated, may hold any bytes. */
typedef struct gguf_str {
    const char *p;
    uint64_t n;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;          /* gguf_type */
    uint32_t arr_type;      /* element type when type == GGUF_TYPE_ARRAY */
    uint64_t arr_n;         /* element count when type == GGUF_TYPE_ARRAY */
    const uint8_t *val;     /* the value's bytes; for an array, its first element */
    uint64_t val_bytes;     /* bytes of the value (of all elements for an array) */
    uint64_t *str_off;      /* string arrays: offset of element i from val (malloc'd), else NULL */
    size_t offset;          /* byte offset of the pair in the file (for messages) */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;        /* 1..4 */
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length (contiguous); unused dims are 1 */
    int64_t n_elems;
    dtype type;
    uint64_t offset;        /* from the start of the data section; a multiple of the alignment */
    const void *data;       /* into the mapping */
    size_t nbytes;
    size_t info_offset;     /* byte offset of the tensor info in the file (for messages) */
} gguf_tensor;

typedef struct gguf_file {
    char *path;             /* copy, for messages */
    uint32_t version;       /* 2 or 3 */
    uint64_t n_kv;
    gguf_kv *kv;            /* (n_kv) in file order */
    uint64_t n_tensors;
    gguf_tensor *tensors;   /* (n_tensors) in file order */
    uint64_t alignment;
    size_t data_offset;     /* start of the data section (== file size when it has no tensors) */
    /* Open-addressing hash indexes: slot holds index + 1, 0 = empty; size is a power of 2. */
    size_t *kv_slots, *tensor_slots;
    size_t kv_mask, tensor_mask;
} gguf_file;

/*
** gguf_parse: read and validate the header, metadata and tensor infos of a mapped GGUF file.
** `path` is used in messages only. On success *out holds malloc'd tables that point into
** `f`; release them with gguf_free (the mapping stays the caller's). On failure *out is
** left empty (gguf_free on it is harmless).
** Returns INFER_OK, INFER_EFORMAT (the message names file, field and byte offset),
** INFER_EUNSUPPORTED (GGUF v1, big-endian, a future version, a ggml type this build lacks),
** INFER_ENOMEM.
*/
infer_status gguf_parse(const char *path, const mapped_file *f, gguf_file *out);
void gguf_free(gguf_file *g);

/* Lookups by exact name; NULL when absent. O(1) through the hash indexes. */
const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);
/* Name of a value type ("uint32", "array", ...) or "unknown". */
const char *gguf_type_name(uint32_t type);

/*
** Typed getters by key. Each returns INFER_OK and *out, INFER_ENOTFOUND when the key is
** absent, or INFER_EFORMAT naming the key and the type found vs expected (or the value
** that does not fit). Messages go to infer_err like everywhere in lib/.
**   gguf_get_u32: any integer type whose value fits in uint32
**   gguf_get_i64: any integer type whose value fits in int64
**   gguf_get_f32: float32 or float64 (converted)
**   gguf_get_arr: an array whose element type is want_elem (or GGUF_TYPE_ANY); *out is the
**                 pair, with arr_type, arr_n and val describing the elements
*/
infer_status gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out);
infer_status gguf_get_i64(const gguf_file *g, const char *key, int64_t *out);
infer_status gguf_get_f32(const gguf_file *g, const char *key, float *out);
infer_status gguf_get_bool(const gguf_file *g, const char *key, int *out);
infer_status gguf_get_str(const gguf_file *g, const char *key, gguf_str *out);
infer_status gguf_get_arr(const gguf_file *g, const char *key, uint32_t want_elem, const gguf_kv **out);

/*
** Array element access, O(1). gguf_arr_str: INFER_EINVAL for i out of range or a kv that
** is not a string array. gguf_arr_f32 (float32/float64 arrays) and gguf_arr_i32 (any
** integer array, cast to int32) return 0 when the kv has another element type or
** i >= arr_n: check the type with gguf_get_arr first.
*/
infer_status gguf_arr_str(const gguf_kv *kv, uint64_t i, gguf_str *out);
float gguf_arr_f32(const gguf_kv *kv, uint64_t i);
int32_t gguf_arr_i32(const gguf_kv *kv, uint64_t i);

/* 1 when s equals the NUL-terminated c (byte for byte). */
int gguf_str_eq(gguf_str s, const char *c);

/* ------------------------------------------------------------------------------------ */
/*
** gguf_writer: builds a GGUF v3 file in memory and saves it. Keys and strings are copied;
** tensor data is borrowed and must stay valid until gguf_writer_save returns. The first
** failing call is remembered: later adds do nothing and save returns that status, so a
** converter may check only the save. Duplicate keys or tensor names give INFER_EINVAL.
** Setting "general.alignment" (any unsigned integer add) to a power of two changes the
** alignment used for the data section (default 32).
*/
typedef struct gguf_wtensor {
    char *name;
    dtype type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
} gguf_wtensor;

typedef struct gguf_writer {
    strbuf kv;              /* serialized key/value pairs */
    uint64_t n_kv;
    char **keys;            /* (n_kv) for the duplicate check */
    gguf_wtensor *t;        /* (n_t) */
    uint64_t n_t, cap_t;
    uint64_t alignment;
    infer_status err;       /* first failure, sticky */
} gguf_writer;

void gguf_writer_init(gguf_writer *w);
void gguf_writer_free(gguf_writer *w);
infer_status gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v);
infer_status gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v);
infer_status gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v);
infer_status gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v);
infer_status gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
infer_status gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
infer_status gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
infer_status gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v);
infer_status gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
infer_status gguf_writer_add_f64(gguf_writer *w, const char *key, double v);
infer_status gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
infer_status gguf_writer_add_str(gguf_writer *w, const char *key, const char *s);
/* A string of n bytes (may hold NULs). */
infer_status gguf_writer_add_strn(gguf_writer *w, const char *key, const char *s, uint64_t n);
infer_status gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
infer_status gguf_writer_add_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
infer_status gguf_writer_add_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* An array of any fixed-size element type (not string, not array): n elements in host
** (little-endian) layout. */
infer_status gguf_writer_add_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *v,
                                 uint64_t n);
/* A tensor of n_dims (1..4) dims ne[] (ne[0] = row length); nbytes must equal its size. */
infer_status gguf_writer_add_tensor(gguf_writer *w, const char *name, dtype type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, size_t nbytes);
/* Write the file (v3). INFER_EIO naming the path when it cannot be written. */
infer_status gguf_writer_save(const gguf_writer *w, const char *path);

#endif
