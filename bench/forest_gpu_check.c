/* forest_gpu_check.c: the device half of bench/gpu-check.sh.
 *
 * For each demo model: ksv-forest on the GPU (a handle loaded with --gpu 0), ksv-forest on
 * the CPU (--gpu off) and libxgboost (ksv-xgboost, the oracle) predict the same seeded rows
 * (~10% missing, values of all magnitudes) at 1, 1,000 and 1,000,000 rows; every output must
 * be bit-equal across the three. Batches of at least 256 rows must have run on the device
 * (the runtime counts its GPU calls). Then rows/s of the GPU path against the CPU path (one
 * thread and every core) at 1k, 100k and 1M rows on the fraud model.
 *
 * Exit status: 0 when everything ran on a device and passed; 1 when a check failed; 2 when
 * there is no usable GPU (the CPU parity checks still ran and are reported).
 * Usage: forest_gpu_check DATA_DIR */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/runtime.h"

static const char *const models[] = {"fraud", "iris", "churn-v2", "regression", "softmax",
                                     "ranking"};
static const size_t parity_rows[] = {1, 1000, 1000000};
static const size_t speed_rows[] = {1000, 100000, 1000000};

static int failures;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_rows(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix(&seed);
        if (r % 10 == 0)
            x[i] = NAN;
        else
            x[i] = (float)ldexp((double)(int64_t)(r >> 11) * 0x1p-52 - 1.0, (int)(r % 9) - 2);
    }
}

typedef struct handles {
    void *gpu, *cpu, *cpu_all, *xgb;
    ksv_model_info info;
} handles;

static int load_all(const char *path, unsigned cores, handles *h)
{
    ksv_err err = {0};
    ksv_model_info i2, i3, i4;
    ksv_runtime_options gpu = {.workers = 1, .predict_threads = 1, .gpu = 0};
    ksv_runtime_options cpu = {.workers = 1, .predict_threads = 1, .gpu = -1};
    ksv_runtime_options cpu_all = {.workers = 1, .predict_threads = (int)cores, .gpu = -1};
    ksv_runtime_options xgb = {.workers = 1, .predict_threads = (int)cores,
                               .booster_pool = "shared"};
    memset(h, 0, sizeof *h);
    if (ksv_runtime_forest.load(path, &gpu, &h->gpu, &h->info, &err) != 0 ||
        ksv_runtime_forest.load(path, &cpu, &h->cpu, &i2, &err) != 0 ||
        ksv_runtime_forest.load(path, &cpu_all, &h->cpu_all, &i3, &err) != 0 ||
        ksv_runtime_xgboost.load(path, &xgb, &h->xgb, &i4, &err) != 0) {
        printf("FAIL %s: %s\n", path, err.msg);
        failures++;
        return -1;
    }
    return 0;
}

static void free_all(handles *h)
{
    if (h->gpu)
        ksv_runtime_forest.unload(h->gpu);
    if (h->cpu)
        ksv_runtime_forest.unload(h->cpu);
    if (h->cpu_all)
        ksv_runtime_forest.unload(h->cpu_all);
    if (h->xgb)
        ksv_runtime_xgboost.unload(h->xgb);
}

static size_t first_difference(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            return i;
    return n;
}

static void parity(const char *name, handles *h, bool device)
{
    size_t cols = h->info.num_features, width = h->info.num_outputs;
    for (size_t b = 0; b < sizeof parity_rows / sizeof parity_rows[0]; b++) {
        size_t rows = parity_rows[b];
        float *x = malloc(rows * cols * sizeof *x);
        float *g = malloc(rows * width * sizeof *g), *c = malloc(rows * width * sizeof *c);
        float *o = malloc(rows * width * sizeof *o);
        if (!x || !g || !c || !o) {
            printf("FAIL %s: out of memory for %zu rows\n", name, rows);
            failures++;
            free(x), free(g), free(c), free(o);
            return;
        }
        fill_rows(x, rows * cols, 0x5eed + rows);
        ksv_err err = {0};
        uint64_t before = ksv_runtime_forest_gpu_calls(h->gpu);
        int rc = ksv_runtime_forest.predict(h->gpu, 0, x, rows, cols, g, &err) |
                 ksv_runtime_forest.predict(h->cpu, 0, x, rows, cols, c, &err) |
                 ksv_runtime_xgboost.predict(h->xgb, 0, x, rows, cols, o, &err);
        uint64_t on_gpu = ksv_runtime_forest_gpu_calls(h->gpu) - before;
        size_t n = rows * width;
        size_t dg = first_difference(g, o, n), dc = first_difference(c, o, n);
        bool want_gpu = device && rows >= 256;
        bool ok = rc == 0 && dg == n && dc == n && (on_gpu > 0) == want_gpu;
        printf("%s %-10s %8zu rows: GPU path %s, CPU path %s vs libxgboost; %s\n",
               ok ? "ok  " : "FAIL", name, rows,
               !device ? "(no device: CPU)" : dg == n ? "bit-equal" : "DIFFERS",
               dc == n ? "bit-equal" : "DIFFERS",
               on_gpu ? "ran on the GPU" : want_gpu ? "did NOT run on the GPU" : "ran on the CPU");
        if (rc != 0)
            printf("     predict failed: %s\n", err.msg);
        if (dg < n)
            printf("     first difference at output %zu: GPU %.9g, libxgboost %.9g\n", dg,
                   (double)g[dg], (double)o[dg]);
        failures += !ok;
        free(x), free(g), free(c), free(o);
    }
}

static double rows_per_s(void *h, const ksv_runtime_ops *ops, const float *x, size_t rows,
                         size_t cols, float *out)
{
    ksv_err err = {0};
    ops->predict(h, 0, x, rows, cols, out, &err); /* warm-up */
    size_t done = 0;
    double t0 = now(), t;
    do {
        if (ops->predict(h, 0, x, rows, cols, out, &err) != 0) {
            printf("     predict failed: %s\n", err.msg);
            return 0;
        }
        done += rows;
        t = now();
    } while (t - t0 < 0.5);
    return (double)done / (t - t0);
}

static void speed(handles *h, bool device, unsigned cores)
{
    size_t cols = h->info.num_features, width = h->info.num_outputs;
    size_t max = speed_rows[sizeof speed_rows / sizeof speed_rows[0] - 1];
    float *x = malloc(max * cols * sizeof *x), *out = malloc(max * width * sizeof *out);
    if (!x || !out) {
        free(x), free(out);
        return;
    }
    fill_rows(x, max * cols, 42);
    printf("\nfraud (100 trees, depth 6, 20 features): rows/s\n");
    printf("%10s %14s %14s %14s %14s\n", "rows", "GPU", "CPU 1 thread", "CPU all cores",
           "libxgboost");
    for (size_t b = 0; b < sizeof speed_rows / sizeof speed_rows[0]; b++) {
        size_t rows = speed_rows[b];
        double g = device ? rows_per_s(h->gpu, &ksv_runtime_forest, x, rows, cols, out) : 0;
        double c1 = rows_per_s(h->cpu, &ksv_runtime_forest, x, rows, cols, out);
        double ca = rows_per_s(h->cpu_all, &ksv_runtime_forest, x, rows, cols, out);
        double xg = rows_per_s(h->xgb, &ksv_runtime_xgboost, x, rows, cols, out);
        char gs[32];
        if (device)
            snprintf(gs, sizeof gs, "%.3g", g);
        else
            snprintf(gs, sizeof gs, "-");
        printf("%10zu %14s %14.3g %14.3g %14.3g\n", rows, gs, c1, ca, xg);
    }
    printf("(CPU all cores: %u threads; libxgboost with as many)\n", cores);
    free(x);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: forest_gpu_check DATA_DIR\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows through gpu-check.sh's pipe */
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cores = n > 0 ? (unsigned)n : 1;
    bool device = false;
    handles fraud = {0};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/models/%s/model.json", argv[1], models[i]);
        handles h;
        if (load_all(path, cores, &h) != 0) {
            free_all(&h);
            continue;
        }
        if (i == 0) {
            device = ksv_runtime_forest_on_gpu(h.gpu);
            printf("ksv-forest GPU path: %s\n", device ? "a device is attached"
                                                       : "NO usable GPU (CPU fallback)");
        }
        parity(models[i], &h, device);
        if (i == 0)
            fraud = h;
        else
            free_all(&h);
    }
    if (fraud.gpu)
        speed(&fraud, device, cores);
    free_all(&fraud);
    printf("\n%d failure(s)\n", failures);
    if (failures)
        return 1;
    if (!device) {
        printf("no usable GPU: the device checks did NOT run\n");
        return 2;
    }
    return 0;
}
