/* error.h: an error travels as a return code plus this record, filled by the callee.
 * `status` is an HTTP-like code (400 bad input, 404 unknown, 409 conflict, 413 too large,
 * 500 internal, 503 unavailable) so the engine can answer with it directly; other layers
 * use it as a category. */
#ifndef KSV_COMMON_ERROR_H
#define KSV_COMMON_ERROR_H

#include <stddef.h>

typedef struct ksv_err {
    int status;
    char msg[512];
} ksv_err;

/* Sets err (when non-NULL) and returns -1, so callers can `return ksv_err_set(...)`. */
int ksv_err_set(ksv_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ksv_err_clear(ksv_err *err);
/* Puts "PREFIX: " in front of err's message (keeping its status); returns -1. */
int ksv_err_prefix(ksv_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
