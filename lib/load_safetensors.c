/*
** load_safetensors.c — the weights of a Hugging Face directory: safetensors files, one or many
** shards, memory-mapped and indexed by tensor name.
**
** Format (huggingface/safetensors README, "Format"): 8 bytes little-endian uint64 N, then N
** bytes of UTF-8 JSON: an object whose members are tensors
**   "name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}
** plus an optional "__metadata__" object of strings; then the byte buffer. Offsets are
** relative to the start of the buffer (8 + N), end exclusive; the data is little-endian and
** row-major. The reference implementation refuses headers over 100 MB; so do we.
** Sharded checkpoints list "weight_map": {tensor name: shard file} in
** model.safetensors.index.json (transformers' modeling_utils); each shard is a plain file.
**
** Everything is checked before use: the header length against the file, the JSON, every
** dtype (the known safetensors dtypes are accepted here; those the model cannot use — I64
** position ids, F64, ... — are refused by the loader only if a needed weight has them),
** shape (at most 8 dims, each >= 0, product x element size == end - begin without overflow),
** offsets (inside the buffer), names (non-empty, unique across shards), shard file names in
** the index (plain names inside the directory). Failures are INFER_EFORMAT naming the file,
** the tensor and the field.
*/
#include "hf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
    const char *name;
    int size;       /* bytes per element */
    int type;       /* our dtype, or -1 */
} ST_DTYPES[] = {
    {"F32", 4, DT_F32}, {"F16", 2, DT_F16}, {"BF16", 2, DT_BF16}, {"F64", 8, -1},     {"I64", 8, -1},
    {"I32", 4, -1},     {"I16", 2, -1},     {"I8", 1, -1},        {"U8", 1, -1},      {"BOOL", 1, -1},
    {"U16", 2, -1},     {"U32", 4, -1},     {"U64", 8, -1},       {"F8_E4M3", 1, -1}, {"F8_E5M2", 1, -1},
    {"F8_E8M0", 1, -1},
};

static size_t name_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

const st_tensor *st_find(const st_set *s, const char *name)
{
    if (!s->slots) return NULL;
    for (size_t h = name_hash(name) & s->mask;; h = (h + 1) & s->mask) {
        size_t i = s->slots[h];
        if (i == 0) return NULL;
        if (strcmp(s->t[i - 1].name, name) == 0) return &s->t[i - 1];
    }
}

static void slot_insert(st_set *s, size_t idx)
{
    size_t h = name_hash(s->t[idx].name) & s->mask;
    while (s->slots[h]) h = (h + 1) & s->mask;
    s->slots[h] = idx + 1;
}

/* Append a tensor (name already malloc'd, ownership passes) and index it. */
static infer_status push_tensor(st_set *s, st_tensor *t)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        st_tensor *v = realloc(s->t, cap * sizeof *v);
        if (!v) {
            free(t->name);
            return infer_err(INFER_ENOMEM, "out of memory indexing tensors");
        }
        s->t = v;
        s->cap = cap;
    }
    s->t[s->n++] = *t;
    if (2 * s->n > (s->slots ? s->mask + 1 : 0)) {
        size_t cap = 64;
        while (cap < 4 * s->n) cap *= 2;
        size_t *slots = calloc(cap, sizeof *slots);
        if (!slots) return infer_err(INFER_ENOMEM, "out of memory indexing tensors");
        free(s->slots);
        s->slots = slots;
        s->mask = cap - 1;
        for (size_t i = 0; i < s->n; i++) slot_insert(s, i);
    } else {
        slot_insert(s, s->n - 1);
    }
    return INFER_OK;
}

/* One header entry: validate it and fill *t (name not set). */
static infer_status parse_entry(const char *path, const char *name, const cJSON *e, const uint8_t *buf,
                                uint64_t buf_size, st_tensor *t)
{
    if (!cJSON_IsObject(e))
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': dtype is %s", path, name,
                         dt ? "not a string" : "missing");
    int k = -1;
    for (size_t i = 0; i < sizeof ST_DTYPES / sizeof *ST_DTYPES; i++)
        if (strcmp(dt->valuestring, ST_DTYPES[i].name) == 0) k = (int)i;
    if (k < 0)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': dtype '%.40s' is not a safetensors dtype", path, name,
                         dt->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", ST_DTYPES[k].name);
    t->type = ST_DTYPES[k].type;
    if (!cJSON_IsArray(sh))
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': shape is %s", path, name,
                         sh ? "not an array" : "missing");
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': shape has %d dimensions (at most %d)", path, name, nd,
                         ST_MAX_DIMS);
    t->n_dims = nd;
    uint64_t elems = 1;
    int d = 0, overflow = 0;
    for (const cJSON *x = sh->child; x; x = x->next, d++) {
        int64_t v;
        if (!hf_json_int(x, 0, INT64_C(1) << 53, &v))
            return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': shape[%d] is not an integer in 0..2^53", path,
                             name, d);
        t->shape[d] = v;
        if (v != 0 && elems > UINT64_MAX / (uint64_t)v) overflow = 1;
        elems *= (uint64_t)v;
    }
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': data_offsets is %s", path, name,
                         !of ? "missing" : "not an array of 2 integers");
    int64_t beg, end;
    if (!hf_json_int(of->child, 0, INT64_MAX, &beg) || !hf_json_int(of->child->next, 0, INT64_MAX, &end))
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': data_offsets are not non-negative integers", path,
                         name);
    if (beg > end || (uint64_t)end > buf_size)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': data_offsets [%lld, %lld] are not a range inside "
                         "the %llu-byte data buffer", path, name, (long long)beg, (long long)end,
                         (unsigned long long)buf_size);
    uint64_t es = (uint64_t)ST_DTYPES[k].size;
    if (overflow || elems > UINT64_MAX / es)
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': the byte size of shape overflows", path, name);
    if (elems * es != (uint64_t)(end - beg))
        return infer_err(INFER_EFORMAT, "'%s': tensor '%.200s': shape (%llu %s elements) does not match "
                         "data_offsets [%lld, %lld] (%lld bytes)", path, name, (unsigned long long)elems,
                         t->dtype_name, (long long)beg, (long long)end, (long long)(end - beg));
    t->data = buf + beg;
    t->nbytes = (size_t)(end - beg);
    return INFER_OK;
}

static infer_status add_mapped(st_set *s, const char *path, int shard, const mapped_file *f)
{
    if (f->size < 8)
        return infer_err(INFER_EFORMAT, "'%s': %zu bytes is too short for the 8-byte safetensors header length", path,
                         f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | f->data[i];
    if (n > (uint64_t)(f->size - 8))
        return infer_err(INFER_EFORMAT, "'%s': header length %llu exceeds the %zu bytes after it", path,
                         (unsigned long long)n, f->size - 8);
    if (n > ST_MAX_HEADER)
        return infer_err(INFER_EFORMAT, "'%s': header length %llu is over the 100 MB limit", path,
                         (unsigned long long)n);
    char what[1100];
    snprintf(what, sizeof what, "%s (safetensors header)", path);
    cJSON *j;
    infer_status st = hf_json_parse(what, (const char *)f->data + 8, (size_t)n, &j);
    if (st) return st;
    if (!cJSON_IsObject(j)) {
        st = infer_err(INFER_EFORMAT, "'%s': the safetensors header is not a JSON object", path);
        goto done;
    }
    const uint8_t *buf = f->data + 8 + n;
    uint64_t buf_size = (uint64_t)f->size - 8 - n;
    for (const cJSON *e = j->child; e && !st; e = e->next) {
        const char *name = e->string;
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) st = infer_err(INFER_EFORMAT, "'%s': __metadata__ is not an object", path);
            continue;
        }
        if (!*name) {
            st = infer_err(INFER_EFORMAT, "'%s': a tensor has an empty name", path);
            break;
        }
        if (st_find(s, name)) {
            st = infer_err(INFER_EFORMAT, "'%s': tensor '%.200s' appears twice", path, name);
            break;
        }
        st_tensor t = {0};
        if ((st = parse_entry(path, name, e, buf, buf_size, &t))) break;
        t.shard = shard;
        t.name = infer_strdup(name);
        if (!t.name) st = infer_err(INFER_ENOMEM, "out of memory");
        else st = push_tensor(s, &t);
    }
done:
    cJSON_Delete(j);
    return st;
}

infer_status st_add_file(st_set *s, const char *path)
{
    char **files = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *files);
    if (!files) return infer_err(INFER_ENOMEM, "out of memory");
    s->files = files;
    mapped_file *maps = realloc(s->maps, (size_t)(s->n_files + 1) * sizeof *maps);
    if (!maps) return infer_err(INFER_ENOMEM, "out of memory");
    s->maps = maps;
    s->files[s->n_files] = infer_strdup(path);
    if (!s->files[s->n_files]) return infer_err(INFER_ENOMEM, "out of memory");
    infer_status st = map_file(path, &s->maps[s->n_files]);
    if (st) {
        free(s->files[s->n_files]);
        return st;
    }
    int shard = s->n_files++;
    return add_mapped(s, path, shard, &s->maps[shard]);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.safetensors in dir, sorted. */
static infer_status add_all_in_dir(st_set *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return infer_err(INFER_EIO, "cannot open directory '%s'", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    infer_status st = INFER_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL && !st;) {
        size_t l = strlen(e->d_name);
        if (l <= 12 || strcmp(e->d_name + l - 12, ".safetensors") != 0 || e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **v = realloc(names, cap * sizeof *v);
            if (!v) {
                st = infer_err(INFER_ENOMEM, "out of memory");
                break;
            }
            names = v;
        }
        if (!(names[n] = infer_strdup(e->d_name))) st = infer_err(INFER_ENOMEM, "out of memory");
        else n++;
    }
    closedir(d);
    if (!st && n == 0) st = infer_err(INFER_EIO, "'%s' holds no *.safetensors weights", dir);
    if (!st) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !st; i++) {
        char *p = hf_path_join(dir, names[i]);
        st = p ? st_add_file(s, p) : INFER_ENOMEM;
        free(p);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

/* The shards named by model.safetensors.index.json, each once, and a check that every
** tensor of the weight map is in the shard the index names. */
static infer_status add_indexed(st_set *s, const char *dir, const char *ipath, const cJSON *idx)
{
    const cJSON *wm = hf_get(idx, "weight_map");
    if (!cJSON_IsObject(wm)) return infer_err(INFER_EFORMAT, "'%s': weight_map is missing or not an object", ipath);
    infer_status st = INFER_OK;
    for (const cJSON *e = wm->child; e && !st; e = e->next) {
        if (!cJSON_IsString(e))
            return infer_err(INFER_EFORMAT, "'%s': weight_map['%.200s'] is not a string", ipath, e->string);
        const char *f = e->valuestring;
        if (!*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0)
            return infer_err(INFER_EFORMAT, "'%s': weight_map['%.200s'] = '%.200s' is not a file name in the directory",
                             ipath, e->string, f);
        int seen = 0;
        for (const cJSON *p = wm->child; p != e && !seen; p = p->next) seen = strcmp(p->valuestring, f) == 0;
        if (seen) continue;
        char *path = hf_path_join(dir, f);
        st = path ? st_add_file(s, path) : INFER_ENOMEM;
        free(path);
    }
    for (const cJSON *e = wm->child; e && !st; e = e->next) {
        const st_tensor *t = st_find(s, e->string);
        const char *base = t ? strrchr(s->files[t->shard], '/') : NULL;
        base = base ? base + 1 : (t ? s->files[t->shard] : "");
        if (!t || strcmp(base, e->valuestring) != 0)
            st = infer_err(INFER_EFORMAT, "'%s': weight_map puts tensor '%.200s' in '%.200s', which has no such tensor",
                           ipath, e->string, e->valuestring);
    }
    return st;
}

infer_status st_open_dir(const char *dir, st_set *s)
{
    memset(s, 0, sizeof *s);
    char *ipath = hf_path_join(dir, "model.safetensors.index.json");
    char *single = hf_path_join(dir, "model.safetensors");
    infer_status st = ipath && single ? INFER_OK : INFER_ENOMEM;
    cJSON *idx = NULL;
    if (!st) st = hf_json_load(ipath, 1, &idx);
    if (!st && idx) {
        st = add_indexed(s, dir, ipath, idx);
    } else if (!st) {
        FILE *f = fopen(single, "rb");
        if (f) fclose(f);
        st = f ? st_add_file(s, single) : add_all_in_dir(s, dir);
    }
    cJSON_Delete(idx);
    free(ipath);
    free(single);
    if (st) st_free(s);
    return st;
}

void st_take_maps(st_set *s, mapped_file **maps, int *n)
{
    *maps = s->maps;
    *n = s->n_files;
    s->maps = NULL;
}

void st_free(st_set *s)
{
    for (int i = 0; i < s->n_files; i++) {
        free(s->files[i]);
        if (s->maps) unmap_file(&s->maps[i]);
    }
    for (size_t i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->files);
    free(s->maps);
    free(s->t);
    free(s->slots);
    memset(s, 0, sizeof *s);
}
