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
 * A test that cannot run returns 77 from main itself (automake's skip). Counters are atomic,
 * so checks may run in several threads. */
#ifndef KSV_TESTS_KTEST_H
#define KSV_TESTS_KTEST_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

#endif
