/* forest_bench.c: rows/s of ksv-forest's CPU path against libxgboost on the same model and
 * rows, same thread count, side by side. Usage: forest_bench [MODEL] [THREADS]
 * (default $KSV_DATA_DIR/models/fraud/model.json, or KSV_SRCDIR/data/..., and 1 thread).
 * A LightGBM model is timed on ksv-forest alone (bench/lightgbm_bench.py puts LightGBM's own
 * predict beside it). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xgboost/c_api.h>

#include "engine/forest/forest_load.h"
#include "engine/forest/forest_predict.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

/* Each measurement runs at least this long, after one warm-up call. */
#define BENCH_SECONDS 0.6

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct bench_ctx {
    forest *f;
    float *scratch;
    BoosterHandle booster;
    const float *x;
    size_t rows;
    float *out;
    unsigned threads;
    char array[256];
} bench_ctx;

static int run_forest(bench_ctx *c)
{
    return forest_predict_parallel(c->f, c->x, c->rows, c->out, c->scratch, c->threads, NULL);
}

static int run_xgboost(bench_ctx *c)
{
    static const char config[] = "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
                                 "\"iteration_end\":0,\"strict_shape\":false,\"missing\":NaN,"
                                 "\"cache_id\":0}";
    const bst_ulong *shape;
    bst_ulong dim;
    const float *result;
    if (XGBoosterPredictFromDense(c->booster, c->array, config, NULL, &shape, &dim, &result) != 0)
        return -1;
    c->out[0] = result[0];
    return 0;
}

/* Seconds per call, measured over >= BENCH_SECONDS. */
static double time_calls(int (*fn)(bench_ctx *), bench_ctx *c)
{
    if (fn(c) != 0)
        return NAN;
    size_t calls = 0;
    double start = now(), elapsed;
    do {
        for (int i = 0; i < 8; i++)
            fn(c);
        calls += 8;
        elapsed = now() - start;
    } while (elapsed < BENCH_SECONDS);
    return elapsed / calls;
}

/* The rows every measurement predicts: 10% NaN, the rest uniform in [-3, 3), fixed seed. */
static float *bench_rows(size_t rows, uint32_t cols)
{
    float *x = malloc(rows * cols * sizeof *x);
    uint64_t s = 12345;
    for (size_t i = 0; x && i < rows * cols; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        x[i] = u < 0.1 ? NAN : (float)(u * 6.0 - 3.0);
    }
    return x;
}

static int bench_lightgbm(const char *path, forest *f, unsigned threads)
{
    printf("model %s: %u trees, %u features, %s (LightGBM); threads %u\n", path, f->num_trees,
           f->num_features, f->objective, threads);
    printf("%7s  %14s  %10s\n", "rows", "forest rows/s", "forest us");
    static const size_t batches[] = {1, 64, 10000};
    float *x = bench_rows(10000, f->num_features);
    float *out = malloc(10000 * f->num_outputs * sizeof *out);
    float *scratch = malloc(forest_scratch_floats(f) * sizeof *scratch);
    for (size_t b = 0; x && out && scratch && b < sizeof batches / sizeof batches[0]; b++) {
        bench_ctx c = {f, scratch, NULL, x, batches[b], out, threads, {0}};
        double t = time_calls(run_forest, &c);
        printf("%7zu  %14.0f  %10.2f\n", c.rows, c.rows / t, t * 1e6);
    }
    free(x);
    free(out);
    free(scratch);
    forest_free(f);
    return 0;
}

int main(int argc, char **argv)
{
    char path[4096];
    const char *env = getenv("KSV_DATA_DIR");
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/models/fraud/model.json", env && *env ? env : KSV_SRCDIR "/data");
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 1;
    if (threads == 0)
        threads = 1;

    ksv_err err = {0};
    forest *layouts[2] = {NULL, NULL};
    if (forest_load_file(path, FOREST_PREFER_AUTO, &layouts[0], &err) != 0 ||
        forest_load_file(path, FOREST_PREFER_SPARSE, &layouts[1], &err) != 0) {
        fprintf(stderr, "forest_bench: %s\n", err.msg);
        return 1;
    }
    if (layouts[0]->layout == FOREST_LAYOUT_LIGHTGBM) {
        forest_free(layouts[1]); /* one layout only */
        return bench_lightgbm(path, layouts[0], threads);
    }
    BoosterHandle booster;
    char nthread[16];
    snprintf(nthread, sizeof nthread, "%u", threads);
    if (XGBoosterCreate(NULL, 0, &booster) != 0 || XGBoosterLoadModel(booster, path) != 0 ||
        XGBoosterSetParam(booster, "nthread", nthread) != 0) {
        fprintf(stderr, "forest_bench: libxgboost: %s\n", XGBGetLastError());
        return 1;
    }
    forest *f = layouts[0];
    int major, minor, patch;
    XGBoostVersion(&major, &minor, &patch);
    printf("model %s: %u trees, depth %u, %u features, %s; threads %u; libxgboost %d.%d.%d\n",
           path, f->num_trees, f->depth, f->num_features, f->objective, threads, major, minor,
           patch);
    printf("%7s  %14s  %14s  %14s  %10s  %9s\n", "rows", "xgboost rows/s", "forest rows/s",
           "sparse rows/s", "forest us", "speedup");

    static const size_t batches[] = {1, 64, 10000};
    size_t max_rows = 10000;
    float *x = bench_rows(max_rows, f->num_features);
    float *out = malloc(max_rows * f->num_outputs * sizeof *out);
    float *scratch = malloc(forest_scratch_floats(f) * sizeof *scratch);
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        bench_ctx c = {f, scratch, booster, x, batches[b], out, threads, {0}};
        snprintf(c.array, sizeof c.array,
                 "{\"data\":[%llu,true],\"shape\":[%zu,%u],\"typestr\":\"<f4\",\"version\":3}",
                 (unsigned long long)(uintptr_t)x, c.rows, f->num_features);
        double t_xgb = time_calls(run_xgboost, &c);
        double t_forest = time_calls(run_forest, &c);
        c.f = layouts[1];
        double t_sparse = time_calls(run_forest, &c);
        printf("%7zu  %14.0f  %14.0f  %14.0f  %10.2f  %8.2fx\n", c.rows, c.rows / t_xgb,
               c.rows / t_forest, c.rows / t_sparse, t_forest * 1e6, t_xgb / t_forest);
    }
    free(x);
    free(out);
    free(scratch);
    forest_free(layouts[0]);
    forest_free(layouts[1]);
    XGBoosterFree(booster);
    return 0;
}
