/*
** internal.h — helpers shared by every file in lib/ (never installed).
**
** Error reporting: a failing function records a sentence with infer_err() and returns the
** status it was given, so `return infer_err(INFER_EFORMAT, "...")` is the one idiom.
** The text is per thread (infer_last_error), never printed by the library.
*/
#ifndef INFER_INTERNAL_H
#define INFER_INTERNAL_H

#include "infer.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define INFER_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define INFER_PRINTF(a, b)
#endif

#define INFER_MIN(a, b) ((a) < (b) ? (a) : (b))
#define INFER_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Record a formatted message as this thread's last error and return `st`. */
infer_status infer_err(infer_status st, const char *fmt, ...) INFER_PRINTF(2, 3);
/* Forget this thread's last error (called at the start of public entry points). */
void infer_err_clear(void);
/* This thread's last error text ("" if none). */
const char *infer_err_text(void);

/* Per-session logging; a NULL fn drops everything. */
typedef struct infer_logger {
    infer_log_fn fn;
    void *user;
    infer_log_level level;
} infer_logger;
void infer_log(const infer_logger *lg, infer_log_level level, const char *fmt, ...) INFER_PRINTF(3, 4);

/* A growable byte buffer; always NUL-terminated when p != NULL. */
typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;
infer_status sb_append(strbuf *b, const char *s, size_t n);
void sb_clear(strbuf *b);  /* len = 0, keeps the memory */
void sb_free(strbuf *b);

/* strdup that returns NULL for NULL. */
char *infer_strdup(const char *s);

#endif
