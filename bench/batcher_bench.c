/* batcher_bench.c: the request batcher (src/engine/batcher.c) under T concurrent callers,
 * with a fake runtime, so the cost measured is the batcher's own: throughput, batch size,
 * and context switches and CPU time per predict (a thundering herd shows in those two).
 *
 * The fake runtime busy-waits 20 us + 0.1 us per row (a small GPU call) and answers each
 * row with (sum of its features, x0 - x1); every caller sends rows that encode its thread
 * and request, so a caller given another's slice fails the exact check. The runtime also
 * checks that no two batched calls ever overlap (one batch per revision at a time) and
 * counts the rows of calls that failed, which must equal the rows whose callers got the
 * error (an error reaches every member, and only them).
 *
 * Phases: the table (1-row requests, T = 4, 16, 64 by default), then checks: a lone
 * caller is answered within the delay, and a stress run with small batches, requests of
 * 1-3 rows, some larger than a batch (they bypass it) and some that make the runtime fail.
 * Exit status 1 when any check fails.
 *
 * Build: `make -C build bench` (build/bench/batcher_bench, the new batcher alone).
 * Old against new, side by side: compile the other batcher with its symbols renamed, then
 * link both with -DBATCHER_BENCH_OLD:
 *   git show ae8dbcd:src/engine/batcher.c > /tmp/batcher_old.c   # the broadcast batcher
 *   gcc -std=gnu11 -O2 -pthread -Isrc -c /tmp/batcher_old.c -o /tmp/batcher_old.o \
 *       -Dksv_batcher_create=old_batcher_create -Dksv_batcher_destroy=old_batcher_destroy \
 *       -Dksv_batcher_predict=old_batcher_predict -Dksv_batcher_counts=old_batcher_counts
 *   gcc -std=gnu11 -O2 -pthread -Isrc -DBATCHER_BENCH_OLD bench/batcher_bench.c \
 *       src/engine/batcher.c src/common/error.c /tmp/batcher_old.o -o /tmp/batcher_bench
 * Data races: the first command with -O1 -g -fsanitize=thread, run for a short time.
 *
 * Usage: batcher_bench [seconds per run, 2] [max_rows, 1024] [delay_us, 200] [T...] */
#include "engine/batcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define COLS 4
#define WIDTH 2
#define MAX_REQ_ROWS 64         /* largest request the callers send (a bypassing one) */

typedef struct batcher_impl {
    const char *name;
    int (*create)(size_t, unsigned, size_t, size_t, ksv_batcher **, ksv_err *);
    void (*destroy)(ksv_batcher *);
    int (*predict)(ksv_batcher *, const ksv_runtime_ops *, void *, unsigned, const float *,
                   size_t, float *, ksv_err *);
    void (*counts)(const ksv_batcher *, uint64_t *, uint64_t *);
} batcher_impl;

#ifdef BATCHER_BENCH_OLD
/* The other batcher, compiled with its symbols renamed (see the top). */
int old_batcher_create(size_t max_rows, unsigned max_delay_us, size_t cols, size_t width,
                       ksv_batcher **out, ksv_err *err);
void old_batcher_destroy(ksv_batcher *b);
int old_batcher_predict(ksv_batcher *b, const ksv_runtime_ops *ops, void *model,
                        unsigned worker, const float *x, size_t rows, float *out,
                        ksv_err *err);
void old_batcher_counts(const ksv_batcher *b, uint64_t *batches, uint64_t *rows);
static const batcher_impl IMPLS[] = {
    {"old", old_batcher_create, old_batcher_destroy, old_batcher_predict, old_batcher_counts},
    {"new", ksv_batcher_create, ksv_batcher_destroy, ksv_batcher_predict, ksv_batcher_counts},
};
#else
static const batcher_impl IMPLS[] = {
    {"new", ksv_batcher_create, ksv_batcher_destroy, ksv_batcher_predict, ksv_batcher_counts},
};
#endif
#define N_IMPLS (sizeof IMPLS / sizeof IMPLS[0])

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- the fake runtime -------------------------------------------------------------- */

typedef struct fake_model {
    size_t max_rows;               /* calls with more rows bypassed the batcher */
    atomic_int in_batch;           /* batched calls in progress: must never exceed 1 */
    atomic_bool overlap;
    _Atomic uint64_t ok_rows, failed_rows;
} fake_model;

static int fake_predict(void *model, unsigned worker, const float *x, size_t rows, size_t cols,
                        float *out, ksv_err *err)
{
    (void)worker;
    fake_model *m = model;
    bool batched = rows <= m->max_rows;
    if (batched && atomic_fetch_add(&m->in_batch, 1) != 0)
        atomic_store(&m->overlap, true);
    /* Busy, as a device call is from the batcher's point of view: the thread is not
     * asleep, so its cost is not hidden in the scheduler. */
    double until = now_s() + (20.0 + 0.1 * (double)rows) * 1e-6;
    while (now_s() < until)
        ;
    bool poisoned = false;
    for (size_t i = 0; i < rows; i++) {
        const float *r = x + i * cols;
        float sum = 0.0f;
        for (size_t j = 0; j < cols; j++)
            sum += r[j];
        out[i * WIDTH] = sum;
        out[i * WIDTH + 1] = r[0] - r[1];
        poisoned |= r[2] < 0.0f;
    }
    if (batched)
        atomic_fetch_sub(&m->in_batch, 1);
    atomic_fetch_add(poisoned ? &m->failed_rows : &m->ok_rows, rows);
    return poisoned ? ksv_err_set(err, 500, "poisoned batch") : 0;
}

static const ksv_runtime_ops FAKE_OPS = {.name = "fake", .predict = fake_predict};

/* --- callers ------------------------------------------------------------------------- */

typedef struct run_config {
    size_t max_rows;
    unsigned delay_us;
    double seconds;
    unsigned threads;
    bool mixed;                    /* requests of 1-3 rows, some bypassing, some poisoned */
} run_config;

typedef struct run_shared {
    const batcher_impl *impl;
    ksv_batcher *b;
    fake_model *model;
    const run_config *cfg;
    pthread_barrier_t start;
    atomic_bool stop;
} run_shared;

typedef struct caller {
    run_shared *sh;
    unsigned tid;
    uint64_t predicts, ok_rows, failed_rows, wrong, failed_members;
    double lat_sum, lat_max;
} caller;

/* Row r of request i of thread tid: integers below 2^24, so every sum is exact, and the
 * (thread, request) pair is readable from the answer. */
static void fill_row(float *row, unsigned tid, uint64_t i, size_t r, bool poison)
{
    row[0] = (float)tid * 65536.0f;
    row[1] = (float)((i * 4 + r) % 65536);
    row[2] = poison ? -1.0f : 1.0f;
    row[3] = 2.0f;
}

static void *caller_main(void *arg)
{
    caller *c = arg;
    run_shared *sh = c->sh;
    float x[MAX_REQ_ROWS * COLS], out[MAX_REQ_ROWS * WIDTH];
    pthread_barrier_wait(&sh->start);
    for (uint64_t i = 0; !atomic_load_explicit(&sh->stop, memory_order_relaxed); i++) {
        size_t rows = 1;
        bool poison = false;
        if (sh->cfg->mixed) {
            rows = 1 + (size_t)((i + c->tid) % 3);
            if ((i + c->tid) % 50 == 0)
                rows = sh->cfg->max_rows + 1 < MAX_REQ_ROWS ? sh->cfg->max_rows + 1 : MAX_REQ_ROWS;
            poison = (i * 7 + c->tid) % 23 == 0;
        }
        for (size_t r = 0; r < rows; r++)
            fill_row(x + r * COLS, c->tid, i, r, poison);
        for (size_t k = 0; k < rows * WIDTH; k++)
            out[k] = -12345.0f;
        ksv_err err = {0};
        double t0 = now_s();
        int rc = sh->impl->predict(sh->b, &FAKE_OPS, sh->model, c->tid, x, rows, out, &err);
        double lat = now_s() - t0;
        c->lat_sum += lat;
        if (lat > c->lat_max)
            c->lat_max = lat;
        c->predicts++;
        if (rc == 0) {
            c->ok_rows += rows;
            if (poison)
                c->wrong++;
            for (size_t r = 0; r < rows; r++) {
                const float *row = x + r * COLS;
                if (out[r * WIDTH] != row[0] + row[1] + row[2] + row[3] ||
                    out[r * WIDTH + 1] != row[0] - row[1])
                    c->wrong++;
            }
        } else {
            c->failed_rows += rows;
            if (!poison)
                c->failed_members++;
            if (err.status != 500 || strcmp(err.msg, "poisoned batch") != 0)
                c->wrong++;
        }
    }
    return NULL;
}

typedef struct run_result {
    double seconds, predicts, batches, batch_rows, csw, cpu_s, lat_mean, lat_max;
    uint64_t wrong, failed_members;
    bool overlap, rows_match;
} run_result;

static double cpu_of(const struct rusage *u)
{
    return (double)u->ru_utime.tv_sec + (double)u->ru_utime.tv_usec * 1e-6 +
           (double)u->ru_stime.tv_sec + (double)u->ru_stime.tv_usec * 1e-6;
}

static int run_once(const batcher_impl *impl, const run_config *cfg, run_result *res)
{
    memset(res, 0, sizeof *res);
    fake_model model = {.max_rows = cfg->max_rows};
    run_shared sh = {.impl = impl, .model = &model, .cfg = cfg};
    ksv_err err;
    if (impl->create(cfg->max_rows, cfg->delay_us, COLS, WIDTH, &sh.b, &err)) {
        fprintf(stderr, "%s: create: %s\n", impl->name, err.msg);
        return -1;
    }
    caller *callers = calloc(cfg->threads, sizeof *callers);
    pthread_t *ids = calloc(cfg->threads, sizeof *ids);
    if (!callers || !ids) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    pthread_barrier_init(&sh.start, NULL, cfg->threads + 1);
    for (unsigned t = 0; t < cfg->threads; t++) {
        callers[t] = (caller){.sh = &sh, .tid = t};
        if (pthread_create(&ids[t], NULL, caller_main, &callers[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(2);
        }
    }
    struct rusage u0, u1;
    pthread_barrier_wait(&sh.start);
    getrusage(RUSAGE_SELF, &u0);
    double t0 = now_s();
    struct timespec nap = {(time_t)cfg->seconds,
                           (long)((cfg->seconds - (double)(time_t)cfg->seconds) * 1e9)};
    nanosleep(&nap, NULL);
    atomic_store(&sh.stop, true);
    for (unsigned t = 0; t < cfg->threads; t++)
        pthread_join(ids[t], NULL);
    res->seconds = now_s() - t0;
    getrusage(RUSAGE_SELF, &u1);

    uint64_t ok_rows = 0, failed_rows = 0, batches, batch_rows;
    for (unsigned t = 0; t < cfg->threads; t++) {
        res->predicts += (double)callers[t].predicts;
        res->lat_mean += callers[t].lat_sum;
        if (callers[t].lat_max > res->lat_max)
            res->lat_max = callers[t].lat_max;
        res->wrong += callers[t].wrong;
        res->failed_members += callers[t].failed_members;
        ok_rows += callers[t].ok_rows;
        failed_rows += callers[t].failed_rows;
    }
    res->lat_mean /= res->predicts > 0 ? res->predicts : 1;
    impl->counts(sh.b, &batches, &batch_rows);
    res->batches = (double)batches;
    res->batch_rows = (double)batch_rows;
    res->csw = (double)(u1.ru_nvcsw - u0.ru_nvcsw + u1.ru_nivcsw - u0.ru_nivcsw);
    res->cpu_s = cpu_of(&u1) - cpu_of(&u0);
    res->overlap = atomic_load(&model.overlap);
    res->rows_match = ok_rows == atomic_load(&model.ok_rows) &&
                      failed_rows == atomic_load(&model.failed_rows);
    pthread_barrier_destroy(&sh.start);
    impl->destroy(sh.b);
    free(callers);
    free(ids);
    return 0;
}

/* --- checks and the table -------------------------------------------------------------- */

static int failures;

static void check(bool ok, const char *impl, const char *what)
{
    printf("  %s %s: %s\n", ok ? "ok  " : "FAIL", impl, what);
    if (!ok)
        failures++;
}

static void check_common(const batcher_impl *impl, const run_result *r)
{
    char what[160];
    snprintf(what, sizeof what, "%.0f predicts, every caller got its own rows (%llu wrong)",
             r->predicts, (unsigned long long)r->wrong);
    check(r->wrong == 0, impl->name, what);
    check(!r->overlap, impl->name, "batched runtime calls never overlapped");
    check(r->rows_match, impl->name,
          "rows answered / failed match what the runtime computed / failed");
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    size_t max_rows = argc > 2 ? (size_t)atol(argv[2]) : KSV_BATCH_DEFAULT_MAX_ROWS;
    unsigned delay_us = argc > 3 ? (unsigned)atol(argv[3]) : KSV_BATCH_DEFAULT_DELAY_US;
    unsigned def_threads[] = {4, 16, 64}, *threads = def_threads, n_threads = 3;
    unsigned arg_threads[16];
    if (argc > 4) {
        n_threads = 0;
        for (int i = 4; i < argc && n_threads < 16; i++)
            arg_threads[n_threads++] = (unsigned)atoi(argv[i]);
        threads = arg_threads;
    }
    if (seconds <= 0 || max_rows < 2) {
        fprintf(stderr, "usage: batcher_bench [seconds] [max_rows >= 2] [delay_us] [T...]\n");
        return 2;
    }

    printf("batcher_bench: 1-row predicts, max_rows %zu, delay %u us, %.1f s per run, "
           "runtime 20 us + 0.1 us/row\n\n", max_rows, delay_us, seconds);
    printf("%4s %5s %12s %11s %13s %14s %12s\n", "T", "impl", "predicts/s", "mean batch",
           "csw/predict", "CPU us/predict", "latency us");
    for (unsigned k = 0; k < n_threads; k++) {
        run_result res[N_IMPLS];
        run_config cfg = {max_rows, delay_us, seconds, threads[k], false};
        for (size_t i = 0; i < N_IMPLS; i++) {
            if (run_once(&IMPLS[i], &cfg, &res[i]))
                return 2;
            const run_result *r = &res[i];
            printf("%4u %5s %12.0f %11.2f %13.3f %14.2f %12.1f\n", threads[k], IMPLS[i].name,
                   r->predicts / r->seconds, r->batches > 0 ? r->batch_rows / r->batches : 0,
                   r->csw / r->predicts, r->cpu_s * 1e6 / r->predicts, r->lat_mean * 1e6);
        }
        if (N_IMPLS == 2) {
            const run_result *o = &res[0], *n = &res[1];
            printf("%4s %5s %11.2fx %10.2fx %12.2fx %13.2fx %11.2fx\n", "", "n/o",
                   (n->predicts / n->seconds) / (o->predicts / o->seconds),
                   (n->batch_rows / n->batches) / (o->batch_rows / o->batches),
                   (n->csw / n->predicts) / (o->csw / o->predicts),
                   (n->cpu_s / n->predicts) / (o->cpu_s / o->predicts),
                   n->lat_mean / o->lat_mean);
        }
        for (size_t i = 0; i < N_IMPLS; i++)
            if (res[i].wrong || res[i].overlap || !res[i].rows_match) {
                printf("  FAIL %s T=%u: %llu wrong answers%s%s\n", IMPLS[i].name, threads[k],
                       (unsigned long long)res[i].wrong,
                       res[i].overlap ? ", batched calls overlapped" : "",
                       res[i].rows_match ? "" : ", row counts differ from the runtime's");
                failures++;
            }
    }

    printf("\nchecks\n");
    for (size_t i = 0; i < N_IMPLS; i++) {
        const batcher_impl *impl = &IMPLS[i];
        run_result r;
        char what[200];

        /* A lone caller leads every batch and nobody joins: it waits out the delay, then
         * the call. Allow 5 ms of scheduling noise on a shared machine. */
        run_config lone = {max_rows, delay_us, seconds < 0.3 ? seconds : 0.3, 1, false};
        if (run_once(impl, &lone, &r))
            return 2;
        check_common(impl, &r);
        snprintf(what, sizeof what, "a lone caller is answered within the delay (mean %.0f us, "
                 "max %.0f us, delay %u us)", r.lat_mean * 1e6, r.lat_max * 1e6, delay_us);
        check(r.lat_max < delay_us * 1e-6 + 20e-6 + 5e-3, impl->name, what);

        /* Small batches and requests of 1-3 rows: callers often find no room in the forming
         * batch and wait for the next; some bypass; some make their whole batch fail. */
        run_config stress = {4, 50, seconds < 0.5 ? seconds : 0.5, 16, true};
        if (run_once(impl, &stress, &r))
            return 2;
        check_common(impl, &r);
        snprintf(what, sizeof what, "a failed call's error reached its other members "
                 "(%llu of them; %.2f rows per batch)", (unsigned long long)r.failed_members,
                 r.batch_rows / r.batches);
        check(r.failed_members > 0 && r.batch_rows / r.batches > 1.0, impl->name, what);
    }
    printf("\n%s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
