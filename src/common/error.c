/* error.c: filling ksv_err records. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/sanitize.h"
#include "common/uri_redact.h"

int ksv_err_set(ksv_err *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* Messages reach terminals, logs and API replies: a storage URI's credentials
         * (a presigned query, a password) never do, even from a caller that formatted the
         * URI itself (a URI written in the format itself is the programmer's, e.g. a
         * "http://HOST:PORT" hint, and stays); and text from nodes, files and requests is
         * filtered. */
        ksv_uri_redact_text_keep(err->msg, sizeof err->msg, fmt);
        ksv_sanitize(err->msg);
    }
    return -1;
}

int ksv_err_prefix(ksv_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* Truncation is fine here: the message is for people and keeps its start. */
    size_t n = strlen(prefix), m = strlen(old), cap = sizeof err->msg - 1;
    if (n > cap)
        n = cap;
    memcpy(err->msg, prefix, n);
    if (n + 2 <= cap) {
        memcpy(err->msg + n, ": ", 2);
        n += 2;
    }
    if (m > cap - n)
        m = cap - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    /* The old message was redacted when it was set: only the prefix's URIs are new. */
    ksv_uri_redact_text_keep(err->msg, sizeof err->msg, old);
    ksv_sanitize(err->msg);
    return -1;
}

void ksv_err_clear(ksv_err *err)
{
    if (err) {
        err->status = 0;
        err->msg[0] = '\0';
    }
}
