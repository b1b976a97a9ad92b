/*
** hf_json.c — reading the JSON files of a Hugging Face model directory (config.json,
** tokenizer.json, safetensors headers, ...) with cJSON, and typed field access that names the
** file and the field whenever a value is missing, of the wrong type or out of range.
**
** Why cJSON: a small, well-kept C parser packaged by Debian (libcjson-dev), RFC 8259 JSON.
** Parsing uses cJSON_ParseWithLengthOpts with an explicit length and no trailing garbage;
** its nesting limit (CJSON_NESTING_LIMIT, 1000) bounds recursion on hostile input. We never
** call cJSON_GetErrorPtr (process-global): the error position comes back through
** return_parse_end.
*/
#include "hf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *hf_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) {
        infer_err(INFER_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(p, dir, a);
    size_t o = a;
    if (a > 0 && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

infer_status hf_json_parse(const char *what, const char *text, size_t n, cJSON **out)
{
    *out = NULL;
    const char *nul = memchr(text, 0, n);
    if (nul)
        return infer_err(INFER_EFORMAT, "'%s': invalid JSON: a NUL byte at offset %zu", what, (size_t)(nul - text));
    /* cJSON wants the terminating NUL inside the length to accept the end of the text. */
    char *buf = malloc(n + 1);
    if (!buf) return infer_err(INFER_ENOMEM, "out of memory parsing '%s' (%zu bytes)", what, n);
    memcpy(buf, text, n);
    buf[n] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, n + 1, &end, 1);
    infer_status st = INFER_OK;
    if (!j) {
        size_t off = end && end >= buf && end <= buf + n ? (size_t)(end - buf) : 0;
        size_t line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        st = infer_err(INFER_EFORMAT, "'%s': invalid JSON at line %zu column %zu (byte offset %zu)%s", what, line,
                       col, off, n == 0 ? ": empty" : "");
    }
    free(buf);
    *out = j;
    return st;
}

infer_status hf_json_load(const char *path, int optional, cJSON **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (optional && errno == ENOENT) return INFER_OK;
        return infer_err(INFER_EIO, "cannot open '%s': %s", path, strerror(errno));
    }
    infer_status st = INFER_OK;
    char *buf = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = infer_err(INFER_EIO, "'%s' is not a readable regular file", path);
        goto done;
    }
    if ((uint64_t)sb.st_size > HF_JSON_MAX_BYTES) {
        st = infer_err(INFER_EFORMAT, "'%s' is %lld bytes, over the %zu-byte limit for a JSON file", path,
                       (long long)sb.st_size, HF_JSON_MAX_BYTES);
        goto done;
    }
    size_t n = (size_t)sb.st_size;
    buf = malloc(n ? n : 1);
    if (!buf) {
        st = infer_err(INFER_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, n);
        goto done;
    }
    if (fread(buf, 1, n, f) != n) {
        st = infer_err(INFER_EIO, "short read from '%s'", path);
        goto done;
    }
    st = hf_json_parse(path, buf, n, out);
done:
    free(buf);
    fclose(f);
    return st;
}

const cJSON *hf_get(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj)) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* JSON type of v in words, for messages. */
static const char *jtype(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "null";
}

/* A member for a typed getter: OK with *v = NULL when absent and optional. */
static infer_status member(const cJSON *obj, const char *file, const char *path, const char *key, int required,
                           const cJSON **v)
{
    *v = hf_get(obj, key);
    if (*v || !required) return INFER_OK;
    return infer_err(INFER_EFORMAT, "'%s': required field %s%s%s is missing", file, path, *path ? "." : "", key);
}

int hf_json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)lo || d > (double)hi) return 0;
    *out = (int64_t)d;
    return 1;
}

infer_status hf_get_int(const cJSON *obj, const char *file, const char *path, const char *key, int required,
                        int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v;
    infer_status st = member(obj, file, path, key, required, &v);
    if (st || !v) return st;
    const char *dot = *path ? "." : "";
    if (!cJSON_IsNumber(v))
        return infer_err(INFER_EFORMAT, "'%s': %s%s%s is %s, expected an integer", file, path, dot, key, jtype(v));
    if (!hf_json_int(v, lo, hi, out))
        return infer_err(INFER_EFORMAT, "'%s': %s%s%s = %g is not an integer in %lld..%lld", file, path, dot, key,
                         v->valuedouble, (long long)lo, (long long)hi);
    return INFER_OK;
}

infer_status hf_get_float(const cJSON *obj, const char *file, const char *path, const char *key, int required,
                          double lo, double hi, double *out)
{
    const cJSON *v;
    infer_status st = member(obj, file, path, key, required, &v);
    if (st || !v) return st;
    const char *dot = *path ? "." : "";
    if (!cJSON_IsNumber(v))
        return infer_err(INFER_EFORMAT, "'%s': %s%s%s is %s, expected a number", file, path, dot, key, jtype(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return infer_err(INFER_EFORMAT, "'%s': %s%s%s = %g is out of range (%g..%g)", file, path, dot, key, d, lo, hi);
    *out = d;
    return INFER_OK;
}

infer_status hf_get_bool(const cJSON *obj, const char *file, const char *path, const char *key, int *out)
{
    const cJSON *v = hf_get(obj, key);
    if (!v) return INFER_OK;
    if (!cJSON_IsBool(v))
        return infer_err(INFER_EFORMAT, "'%s': %s%s%s is %s, expected true or false", file, path, *path ? "." : "",
                         key, jtype(v));
    *out = cJSON_IsTrue(v);
    return INFER_OK;
}

infer_status hf_get_str(const cJSON *obj, const char *file, const char *path, const char *key, int required,
                        const char **out)
{
    const cJSON *v;
    infer_status st = member(obj, file, path, key, required, &v);
    if (st || !v) return st;
    if (!cJSON_IsString(v) || !v->valuestring)
        return infer_err(INFER_EFORMAT, "'%s': %s%s%s is %s, expected a string", file, path, *path ? "." : "", key,
                         jtype(v));
    *out = v->valuestring;
    return INFER_OK;
}
