/*
** test_util.h — helpers for the cmocka runners: where ../shared is, reading golden files, a
** session's pool being free after its requests.
** Header-only on purpose: each runner is one program.
*/
#ifndef INFER_TEST_UTIL_H
#define INFER_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <infer.h>

/* Path of a file under ../shared (overridable with INFER_SHARED=DIR). Static buffer per call
** site is enough for tests; copy if you keep two. */
static inline const char *shared_path(const char *rel)
{
    static char buf[4][1024];
    static int i;
    const char *root = getenv("INFER_SHARED");
    if (!root || !*root) root = "../shared";
    i = (i + 1) & 3;
    snprintf(buf[i], sizeof buf[i], "%s/%s", root, rel);
    return buf[i];
}

/* Read a whole file into a malloc'd NUL-terminated buffer; NULL on failure. */
static inline char *read_file(const char *path, size_t *len)
{
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    if (p) { p[n] = 0; if (len) *len = (size_t)n; }
    return p;
}

static inline int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode lowercase hex (stops at whitespace/NUL) into a malloc'd NUL-terminated string. */
static inline char *hex_decode(const char *hex, size_t *len)
{
    size_t n = 0;
    while (hex[n] && hex[n] != ' ' && hex[n] != '\n' && hex[n] != '\r') n++;
    char *out = malloc(n / 2 + 1);
    size_t j = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        out[j++] = (char)(hexval(hex[i]) * 16 + hexval(hex[i + 1]));
    }
    out[j] = 0;
    if (len) *len = j;
    return out;
}

/* Parse "<count> v0 v1 ..." after a keyword into a malloc'd int array. */
static inline int32_t *parse_ids(const char *s, size_t *n)
{
    char *end;
    long cnt = strtol(s, &end, 10);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(cnt > 0 ? cnt : 1));
    for (long i = 0; i < cnt; i++) v[i] = (int32_t)strtol(end, &end, 10);
    *n = (size_t)cnt;
    return v;
}

/* Every request of s has ended: nothing queued or running, and no KV block still held. */
static inline void assert_pool_free(infer_session *s)
{
    infer_stats st = { .size = sizeof st };
    assert_int_equal(infer_session_stats(s, &st), INFER_OK);
    assert_int_equal(st.kv_blocks_used, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
}

#endif
