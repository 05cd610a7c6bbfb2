/* ktest.h: the check helpers shared by the C unit tests (tests/test_*.c), header-only.
 *
 * Each test is its own program, so the counters live in one static struct here.
 *
 *   KT_CHECK(cond, fmt, ...)            counts a check; when cond is false records a failure
 *                                       and prints "FAIL file:line: message". The message
 *                                       arguments are evaluated only when something is
 *                                       printed (a failure, or a pass in verbose mode).
 *   KT_CHECK_STR(got, want, fmt, ...)   a check that two strings are equal (NULL-safe); the
 *                                       message is followed by the got and wanted strings.
 *   KT_FAIL(fmt, ...)                   records a failure that is not the outcome of a
 *                                       KT_CHECK (a broken fixture, a step that must work, or
 *                                       a check counted with kt_count_check()).
 *   kt_count_check()                    counts a check whose failure is reported by KT_FAIL.
 *   kt_set_verbose(true)                also prints "ok   message" for every passing check.
 *   kt_failures()                       the failures so far.
 *   kt_summary(name)                    prints "NAME: N checks, M failures: PASS|FAIL" and
 *                                       returns the exit status: 0 without failures, else 1.
 *
 * Fixture helpers the tests share:
 *   kt_read_file(path, &len)            the whole file, NUL-terminated (free it); NULL on error.
 *   kt_write_file(path, data, len)      true when every byte was written and the file closed.
 *   kt_free_port()                      a loopback TCP port nothing listens on (-1 on error).
 *   kt_listen_loopback(&port, backlog)  a listening socket on 127.0.0.1 (port 0: any), -1.
 *
 * A test that cannot run returns 77 from main itself (automake's skip). Counters are atomic,
 * so checks may run in several threads. */
#ifndef KSV_TESTS_KTEST_H
#define KSV_TESTS_KTEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
    atomic_int checks;
    atomic_int failures;
    atomic_bool verbose;
} kt_state_ __attribute__((unused));

static inline void kt_set_verbose(bool on)
{
    atomic_store(&kt_state_.verbose, on);
}

static inline int kt_failures(void)
{
    return atomic_load(&kt_state_.failures);
}

static inline void kt_count_check(void)
{
    atomic_fetch_add(&kt_state_.checks, 1);
}

/* Counts one check and its outcome; true when the outcome is to be printed. */
static inline bool kt_count_(bool ok)
{
    kt_count_check();
    if (!ok)
        atomic_fetch_add(&kt_state_.failures, 1);
    return !ok || atomic_load(&kt_state_.verbose);
}

static inline void kt_vprint_(bool ok, const char *file, int line, const char *fmt, va_list ap)
{
    /* One locked stream for the whole line, so lines from threads do not interleave. */
    flockfile(stdout);
    if (ok)
        fputs("ok   ", stdout);
    else
        printf("FAIL %s:%d: ", file, line);
    vprintf(fmt, ap);
    funlockfile(stdout);
}

static inline void kt_report_(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void kt_report_(bool ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stdout);
    kt_vprint_(ok, file, line, fmt, ap);
    putchar('\n');
    funlockfile(stdout);
    va_end(ap);
    /* Flushed at once: tests fork, kill children and may die in a sanitizer report. */
    fflush(stdout);
}

static inline void kt_report_str_(bool ok, const char *file, int line, const char *got,
                                  const char *want, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static inline void kt_report_str_(bool ok, const char *file, int line, const char *got,
                                  const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stdout);
    kt_vprint_(ok, file, line, fmt, ap);
    printf(": \"%s\" (want \"%s\")\n", got ? got : "(null)", want ? want : "(null)");
    funlockfile(stdout);
    va_end(ap);
    fflush(stdout);
}

static inline bool kt_streq_(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

#define KT_CHECK(cond, ...)                                                                   \
    do {                                                                                      \
        const bool kt_ok_ = (cond) ? true : false;                                            \
        if (kt_count_(kt_ok_))                                                                \
            kt_report_(kt_ok_, __FILE__, __LINE__, __VA_ARGS__);                              \
    } while (0)

#define KT_CHECK_STR(got, want, ...)                                                          \
    do {                                                                                      \
        const char *kt_got_ = (got), *kt_want_ = (want);                                      \
        const bool kt_ok_ = kt_streq_(kt_got_, kt_want_);                                     \
        if (kt_count_(kt_ok_))                                                                \
            kt_report_str_(kt_ok_, __FILE__, __LINE__, kt_got_, kt_want_, __VA_ARGS__);       \
    } while (0)

#define KT_FAIL(...)                                                                          \
    do {                                                                                      \
        atomic_fetch_add(&kt_state_.failures, 1);                                             \
        kt_report_(false, __FILE__, __LINE__, __VA_ARGS__);                                   \
    } while (0)

static inline int kt_summary(const char *test_name)
{
    int checks = atomic_load(&kt_state_.checks), failures = kt_failures();
    printf("%s: %d checks, %d failures: %s\n", test_name, checks, failures,
           failures ? "FAIL" : "PASS");
    fflush(stdout);
    return failures ? 1 : 0;
}

/* ---- fixtures ------------------------------------------------------------------------- */

#ifdef KSV_SRCDIR
/* The test data folder (models, compat samples): $KSV_DATA_DIR, else KSV_SRCDIR/data. */
static inline void kt_data_dir(char *out, size_t cap)
{
    const char *env = getenv("KSV_DATA_DIR");
    snprintf(out, cap, "%s", env && *env ? env : KSV_SRCDIR "/data");
}
#endif

static inline char *kt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 1 >= cap) {
            size_t grown_cap = cap ? cap * 2 : 65536;
            char *grown = realloc(buf, grown_cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
            cap = grown_cap;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static inline bool kt_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static inline int kt_listen_loopback(int *port, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        (backlog > 0 && listen(fd, backlog) != 0) ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A listener whose accept queue is full (backlog 0, one connection queued and never
 * accepted): the kernel drops further SYNs, so a connect to it can only time out. */
static inline int kt_listen_full(int *port, int *filler)
{
    int fd = kt_listen_loopback(port, 0);
    *filler = -1;
    if (fd < 0 || listen(fd, 0) != 0)
        return fd;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    *filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (*filler >= 0 && connect(*filler, (struct sockaddr *)&a, sizeof a) != 0 &&
        errno == EINPROGRESS) {
        struct pollfd p = {.fd = *filler, .events = POLLOUT};
        poll(&p, 1, 2000); /* queued once the handshake completes */
    }
    return fd;
}

/* Bound and closed again: nothing listens there now (a connect is refused at once). */
static inline int kt_free_port(void)
{
    int port = -1, fd = kt_listen_loopback(&port, 0);
    if (fd < 0)
        return -1;
    close(fd);
    return port;
}

#endif
