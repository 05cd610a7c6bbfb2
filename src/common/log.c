/* log.c: leveled logging. One write(2) per line so lines from threads never interleave. */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/sanitize.h"
#include "common/uri_redact.h"

/* The one piece of process-wide configuration: set by main() before threads start, read
 * after. Atomic so a read from any thread is well defined. */
static _Atomic int log_threshold = KSV_LOG_INFO;

int ksv_log_parse_level(const char *name, ksv_log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (ksv_log_level)i;
            return 0;
        }
    }
    return -1;
}

void ksv_log_set_level(ksv_log_level level)
{
    atomic_store(&log_threshold, (int)level);
}

void ksv_log(ksv_log_level level, const char *request_id, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if ((int)level < atomic_load_explicit(&log_threshold, memory_order_relaxed))
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                  tags[level]);
    if (request_id && *request_id)
        n += snprintf(line + n, sizeof line - (size_t)n, "[%s] ", request_id);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    n = (m < 0 || (size_t)(n + m) >= sizeof line - 1) ? (int)sizeof line - 2 : n + m;
    line[n] = '\0';
    /* A storage URI's credentials never reach the log, whoever formatted the line (room
     * is kept for the newline). */
    ksv_uri_redact_text_keep(line, sizeof line - 1, fmt);
    /* A newline or an escape sequence from a request or a file cannot forge a log line. */
    n = (int)strlen(ksv_sanitize(line));
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
