/* xgb_booster_pool.c: calls/s of the ksv-xgboost runtime with one booster per worker
 * ("per-worker") against one booster shared by all workers ("shared").
 *
 * With 1, 2 and 4 threads (thread i is worker i) calling predict() with 1-row and then
 * 64-row batches of the 100-tree fraud model, each pool runs SECONDS seconds (default 1),
 * the two pools alternating, REPEATS times (default 3); the median calls/s of each is
 * printed. Alternating keeps both pools under the same background load on a shared
 * machine. predict_threads is 1, as the engine runs it.
 *
 *   bench/xgb_booster_pool [MODEL] [SECONDS] [REPEATS]
 *
 * Figures depend on the cores free while it runs: the first line prints the load average. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/runtime.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

enum { MAX_THREADS = 4, MAX_ROWS = 64 };

typedef struct bench_thread {
    void *model;
    unsigned worker;
    size_t rows;
    size_t cols;
    size_t outputs;
    const float *x;             /* MAX_ROWS rows */
    const atomic_bool *stop;
    unsigned long long calls;
    unsigned long long errors;
} bench_thread;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run_thread(void *arg)
{
    bench_thread *t = arg;
    float out[MAX_ROWS * 16];
    ksv_err err;

    while (!atomic_load_explicit(t->stop, memory_order_relaxed)) {
        if (ksv_runtime_xgboost.predict(t->model, t->worker, t->x, t->rows, t->cols, out,
                                        &err) != 0)
            t->errors++;
        t->calls++;
    }
    return NULL;
}

/* Runs `threads` threads on `rows`-row calls for `seconds`; returns calls/s, or -1. */
static double measure(void *model, const ksv_model_info *info, const float *x, unsigned threads,
                      size_t rows, double seconds)
{
    bench_thread jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    atomic_bool stop = false;
    unsigned started = 0;
    unsigned long long calls = 0, errors = 0;
    struct timespec pause = {.tv_sec = (time_t)seconds,
                             .tv_nsec = (long)((seconds - floor(seconds)) * 1e9)};

    double begin = now_seconds();
    for (unsigned i = 0; i < threads; i++) {
        jobs[i] = (bench_thread){.model = model, .worker = i, .rows = rows,
                                 .cols = info->num_features, .outputs = info->num_outputs,
                                 .x = x, .stop = &stop};
        if (pthread_create(&ids[i], NULL, run_thread, &jobs[i]) != 0)
            break;
        started++;
    }
    nanosleep(&pause, NULL);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ids[i], NULL);
        calls += jobs[i].calls;
        errors += jobs[i].errors;
    }
    double elapsed = now_seconds() - begin;
    if (started != threads || errors != 0) {
        fprintf(stderr, "%u of %u threads started, %llu errors\n", started, threads, errors);
        return -1;
    }
    return (double)calls / elapsed;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { MAX_REPEATS = 15 };

int main(int argc, char **argv)
{
    const char *model_path = argc > 1 ? argv[1] : KSV_SRCDIR "/data/models/fraud/model.json";
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    int repeats = argc > 3 ? atoi(argv[3]) : 3;
    static const char *const POOLS[] = {"per-worker", "shared"};
    static const unsigned THREADS[] = {1, 2, 4};
    static const size_t ROWS[] = {1, 64};
    void *models[2] = {NULL, NULL};
    ksv_model_info info;
    char load[64] = "?";
    float *x = NULL;
    int rc = 1;
    FILE *f = fopen("/proc/loadavg", "r");

    if (f != NULL) {
        if (fgets(load, sizeof load, f) != NULL)
            load[strcspn(load, "\n")] = '\0';
        fclose(f);
    }
    if (seconds <= 0)
        seconds = 1.0;
    if (repeats < 1 || repeats > MAX_REPEATS)
        repeats = 3;
    for (size_t p = 0; p < 2; p++) {
        ksv_runtime_options opts = {.workers = MAX_THREADS, .predict_threads = 1,
                                    .booster_pool = POOLS[p]};
        ksv_err err = {0};
        if (ksv_runtime_xgboost.load(model_path, &opts, &models[p], &info, &err) != 0) {
            fprintf(stderr, "load %s: %s\n", model_path, err.msg);
            goto done;
        }
    }
    if (info.num_outputs > 16) {
        fprintf(stderr, "%zu outputs per row: this bench handles up to 16\n", info.num_outputs);
        goto done;
    }
    x = malloc(MAX_ROWS * info.num_features * sizeof(float));
    if (x == NULL)
        goto done;
    uint64_t state = 88172645463325252ULL;
    for (size_t i = 0; i < MAX_ROWS * info.num_features; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        x[i] = state % 10 == 0 ? NAN
                               : (float)((double)(state >> 11) / 9007199254740992.0 * 6.0 - 3.0);
    }

    printf("model %s, %.1f s x %d per case and pool, load average %s\n", model_path, seconds,
           repeats, load);
    printf("%7s %5s %14s %14s %8s\n", "threads", "rows", "per-worker/s", "shared/s", "ratio");
    for (size_t t = 0; t < 3; t++) {
        for (size_t r = 0; r < 2; r++) {
            double rates[2][MAX_REPEATS];
            for (int k = 0; k < repeats; k++) {
                for (size_t p = 0; p < 2; p++) {
                    rates[p][k] = measure(models[p], &info, x, THREADS[t], ROWS[r], seconds);
                    if (rates[p][k] < 0)
                        goto done;
                }
            }
            qsort(rates[0], (size_t)repeats, sizeof(double), compare_doubles);
            qsort(rates[1], (size_t)repeats, sizeof(double), compare_doubles);
            double per_worker = rates[0][repeats / 2], shared = rates[1][repeats / 2];
            printf("%7u %5zu %14.0f %14.0f %8.2f\n", THREADS[t], ROWS[r], per_worker, shared,
                   shared / per_worker);
            fflush(stdout);
        }
    }
    rc = 0;
done:
    free(x);
    for (size_t p = 0; p < 2; p++) {
        if (models[p] != NULL)
            ksv_runtime_xgboost.unload(models[p]);
    }
    return rc;
}
