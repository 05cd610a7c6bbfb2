/* error.c: filling ksv_err records. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>

int ksv_err_set(ksv_err *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void ksv_err_clear(ksv_err *err)
{
    if (err) {
        err->status = 0;
        err->msg[0] = '\0';
    }
}
