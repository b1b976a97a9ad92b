/*
** status.c — the status table, infer_status_str, and the per-thread last-error text.
**
** The last error is thread-local (infer_last_error documents it as "the calling thread's
** last failure"): no state is shared between threads or sessions.
*/
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define INFER_STATUS_MAP(XX)                                   \
    XX(INFER_OK, "success")                                    \
    XX(INFER_EINVAL, "invalid argument")                       \
    XX(INFER_ENOMEM, "out of memory")                          \
    XX(INFER_EBUSY, "queue full")                              \
    XX(INFER_ENOTFOUND, "not found")                           \
    XX(INFER_EFORMAT, "malformed file")                        \
    XX(INFER_EIO, "input/output error")                        \
    XX(INFER_ECANCELED, "canceled")                            \
    XX(INFER_ETIMEDOUT, "deadline passed")                     \
    XX(INFER_EDEVICE, "device error")                          \
    XX(INFER_EUNSUPPORTED, "unsupported")                      \
    XX(INFER_EINTERNAL, "internal error")

static _Thread_local char last_error[1024];

INFER_API const char *infer_status_str(infer_status st)
{
    switch (st) {
#define XX(code, text) case code: return #code;
        INFER_STATUS_MAP(XX)
#undef XX
    }
    return "INFER_UNKNOWN";
}

static const char *status_text(infer_status st)
{
    switch (st) {
#define XX(code, text) case code: return text;
        INFER_STATUS_MAP(XX)
#undef XX
    }
    return "unknown status";
}

infer_status infer_err(infer_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    /* Say so rather than cut a message silently. */
    if (n >= (int)sizeof last_error) memcpy(last_error + sizeof last_error - 5, "...", 4);
    (void)status_text;
    return st;
}

void infer_err_clear(void) { last_error[0] = 0; }

const char *infer_err_text(void) { return last_error; }

INFER_API const char *infer_last_error(const infer_session *s)
{
    (void)s;
    return last_error;
}

INFER_API const char *infer_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
    return STR(INFER_VERSION_MAJOR) "." STR(INFER_VERSION_MINOR) "." STR(INFER_VERSION_PATCH);
#undef STR
#undef STR2
}
