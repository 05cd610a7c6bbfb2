/* forest_gpu_check.c: the device half of bench/gpu-check.sh.
 *
 * XGBoost: for each demo model, ksv-forest on the GPU (a handle loaded with --gpu 0),
 * ksv-forest on the CPU (--gpu off) and libxgboost (ksv-xgboost, the oracle) predict the same
 * seeded rows (~10% missing, values of all magnitudes) at 1, 1,000 and 1,000,000 rows; every
 * output must be bit-equal across the three.
 * LightGBM: the models of LGB_DIR (tests/data/lightgbm: categorical bitsets, multiclass,
 * zero-as-missing) and a generated bench-sized one (100 trees of 63 leaves on 20 features,
 * numerical splits of every missing type and categorical ones) on the GPU and on the CPU,
 * against the oracle forest_lgb_row run on the host: the kernel's own code, which
 * test_forest_lightgbm proves bit-equal to LightGBM's predict. Bit-equal expected: both
 * targets walk the same nodes and add the same doubles in the same order (no fused
 * multiply-adds on either); only exp/log1p of the transforms come from two libraries (glibc,
 * CUDA's libdevice), whose double results may differ in the last bit, which survives the
 * rounding to float in about one output of 2^28 - a difference is reported, never hidden.
 * In both halves batches of at least 256 rows must have run on the device (the runtime
 * counts its GPU calls). Then rows/s of the GPU path against the CPU path (one thread and
 * every core) at 1k, 100k and 1M rows on the fraud model and on the generated LightGBM one.
 *
 * Exit status: 0 when everything ran on a device and passed; 1 when a check failed; 2 when
 * there is no usable GPU (the CPU parity checks still ran and are reported).
 * Usage: forest_gpu_check DATA_DIR [LGB_DIR] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/forest/forest_lightgbm_traverse.h"
#include "engine/forest/forest_predict.h"
#include "engine/runtime.h"

static const char *const models[] = {"fraud", "iris", "churn-v2", "regression", "softmax",
                                     "ranking"};
static const char *const lgb_models[] = {"binary-cat", "multiclass", "regression-zero"};
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

/* zeros: also ~10% zeros and ~10% values within LightGBM's 1e-35 of zero (its Zero missing
 * type and zero rule). */
static void fill_rows(float *x, size_t n, uint64_t seed, bool zeros)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix(&seed);
        if (r % 10 == 0)
            x[i] = NAN;
        else if (zeros && r % 10 == 1)
            x[i] = r & 1024 ? -0.0f : 0.0f;
        else if (zeros && r % 10 == 2)
            x[i] = r & 1024 ? -1e-36f : 1e-36f;
        else
            x[i] = (float)ldexp((double)(int64_t)(r >> 11) * 0x1p-52 - 1.0, (int)(r % 9) - 2);
    }
}

typedef struct handles {
    void *gpu, *cpu, *cpu_all, *xgb;
    ksv_model_info info;
} handles;

/* xgb: also load it in libxgboost (XGBoost models; LightGBM's have the host oracle). */
static int load_all(const char *path, unsigned cores, bool xgb_too, handles *h)
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
        (xgb_too && ksv_runtime_xgboost.load(path, &xgb, &h->xgb, &i4, &err) != 0)) {
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

/* The oracle's answers: libxgboost, or for a LightGBM model the kernel's row code on the
 * host. */
static int oracle(handles *h, const float *x, size_t rows, float *out, ksv_err *err)
{
    if (h->xgb)
        return ksv_runtime_xgboost.predict(h->xgb, 0, x, rows, h->info.num_features, out, err);
    const forest *f = ksv_runtime_forest_layout(h->cpu);
    forest_lgb_view v = forest_lgb_view_of(f);
    double *margin = malloc(f->num_groups * sizeof *margin);
    if (!margin)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t r = 0; r < rows; r++)
        forest_lgb_row(&v, x + r * f->num_features, margin, out + r * f->num_outputs);
    free(margin);
    return 0;
}

static void parity(const char *name, handles *h, bool device)
{
    const char *oracle_name = h->xgb ? "libxgboost" : "the kernel's code on the host";
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
        fill_rows(x, rows * cols, 0x5eed + rows, h->xgb == NULL);
        ksv_err err = {0};
        uint64_t before = ksv_runtime_forest_gpu_calls(h->gpu);
        int rc = ksv_runtime_forest.predict(h->gpu, 0, x, rows, cols, g, &err) |
                 ksv_runtime_forest.predict(h->cpu, 0, x, rows, cols, c, &err) |
                 oracle(h, x, rows, o, &err);
        uint64_t on_gpu = ksv_runtime_forest_gpu_calls(h->gpu) - before;
        size_t n = rows * width;
        size_t dg = first_difference(g, o, n), dc = first_difference(c, o, n);
        bool want_gpu = device && rows >= 256;
        bool ok = rc == 0 && dg == n && dc == n && (on_gpu > 0) == want_gpu;
        printf("%s %-15s %8zu rows: GPU path %s, CPU path %s vs %s; %s\n",
               ok ? "ok  " : "FAIL", name, rows,
               !device ? "(no device: CPU)" : dg == n ? "bit-equal" : "DIFFERS",
               dc == n ? "bit-equal" : "DIFFERS", oracle_name,
               on_gpu ? "ran on the GPU" : want_gpu ? "did NOT run on the GPU" : "ran on the CPU");
        if (rc != 0)
            printf("     predict failed: %s\n", err.msg);
        if (dg < n)
            printf("     first difference at output %zu: GPU %.9g, %s %.9g\n", dg,
                   (double)g[dg], oracle_name, (double)o[dg]);
        if (dc < n)
            printf("     first difference at output %zu: CPU %.9g, %s %.9g\n", dc,
                   (double)c[dc], oracle_name, (double)o[dc]);
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

/* A table cell: the figure, or "-" where that column did not run. */
static void cell(char *buf, size_t size, bool ran, double value)
{
    if (ran)
        snprintf(buf, size, "%.3g", value);
    else
        snprintf(buf, size, "-");
}

static void speed(const char *title, handles *h, bool device, unsigned cores)
{
    size_t cols = h->info.num_features, width = h->info.num_outputs;
    size_t max = speed_rows[sizeof speed_rows / sizeof speed_rows[0] - 1];
    float *x = malloc(max * cols * sizeof *x), *out = malloc(max * width * sizeof *out);
    if (!x || !out) {
        free(x), free(out);
        return;
    }
    fill_rows(x, max * cols, 42, h->xgb == NULL);
    printf("\n%s: rows/s\n", title);
    printf("%10s %14s %14s %14s %14s\n", "rows", "GPU", "CPU 1 thread", "CPU all cores",
           "libxgboost");
    for (size_t b = 0; b < sizeof speed_rows / sizeof speed_rows[0]; b++) {
        size_t rows = speed_rows[b];
        double g = device ? rows_per_s(h->gpu, &ksv_runtime_forest, x, rows, cols, out) : 0;
        double c1 = rows_per_s(h->cpu, &ksv_runtime_forest, x, rows, cols, out);
        double ca = rows_per_s(h->cpu_all, &ksv_runtime_forest, x, rows, cols, out);
        double xg = h->xgb ? rows_per_s(h->xgb, &ksv_runtime_xgboost, x, rows, cols, out) : 0;
        char gs[32], xs[32];
        cell(gs, sizeof gs, device, g);
        cell(xs, sizeof xs, h->xgb != NULL, xg);
        printf("%10zu %14s %14.3g %14.3g %14s\n", rows, gs, c1, ca, xs);
    }
    printf("(CPU all cores: %u threads%s)\n", cores, h->xgb ? "; libxgboost with as many" : "");
    free(x);
    free(out);
}

/* A random LightGBM model.txt of the bench's size: `trees` binary trees of `leaves` leaves
 * on `features` features, grown as LightGBM grows them (a leaf split into a node whose left
 * child is the old leaf and right child a new one); splits numerical (missing types None,
 * Zero and NaN, default left or right, thresholds on the scale fill_rows draws) or, one in
 * ten, categorical (a one-word bitset over categories 0..31). */
static int write_lgb_model(const char *path, uint32_t trees, uint32_t leaves, uint32_t features,
                           uint64_t seed)
{
    FILE *fp = fopen(path, "w");
    int32_t *left = malloc(leaves * sizeof *left), *right = malloc(leaves * sizeof *right);
    uint32_t *parent = malloc(leaves * sizeof *parent);
    if (!fp || !left || !right || !parent) {
        if (fp)
            fclose(fp);
        free(left), free(right), free(parent);
        return -1;
    }
    /* The header LightGBM's own loader wants too, so the file can be checked with it. */
    fprintf(fp, "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
                "max_feature_idx=%u\nobjective=binary sigmoid:1\nfeature_names=", features - 1);
    for (uint32_t c = 0; c < features; c++)
        fprintf(fp, "%sColumn_%u", c ? " " : "", c);
    fprintf(fp, "\nfeature_infos=");
    for (uint32_t c = 0; c < features; c++)
        fprintf(fp, "%s[-64:64]", c ? " " : "");
    fprintf(fp, "\n\n");
    for (uint32_t t = 0; t < trees; t++) {
        /* parent[l]: 2 * node + side of the pointer to leaf l (the root leaf has none). */
        uint32_t inner = leaves - 1, cats = 0;
        for (uint32_t n = 0; n < inner; n++) {
            uint32_t l = n == 0 ? 0 : (uint32_t)(splitmix(&seed) % (n + 1));
            left[n] = ~(int32_t)l;
            right[n] = ~(int32_t)(n + 1);
            if (n > 0) {
                int32_t *slot = parent[l] & 1 ? &right[parent[l] / 2] : &left[parent[l] / 2];
                *slot = (int32_t)n;
            }
            parent[l] = 2 * n;
            parent[n + 1] = 2 * n + 1;
        }
        fprintf(fp, "Tree=%u\nnum_leaves=%u\n", t, leaves);
        /* Each node's kind and threshold: the same draws for both lines below. */
        uint64_t kinds = seed ^ 0x5851f42d4c957f2dull;
        fprintf(fp, "split_feature=");
        for (uint32_t n = 0; n < inner; n++)
            fprintf(fp, "%s%u", n ? " " : "", (uint32_t)(splitmix(&seed) % features));
        for (uint32_t pass = 0; pass < 2; pass++) {
            uint64_t draw = kinds;
            fprintf(fp, pass == 0 ? "\nthreshold=" : "\ndecision_type=");
            for (uint32_t n = 0, c = 0; n < inner; n++) {
                uint64_t r = splitmix(&draw), r2 = splitmix(&draw);
                bool categorical = r % 10 == 0;
                unsigned missing = (unsigned)(r >> 8) % 3, default_left = (unsigned)(r >> 16) & 1;
                /* Full double mantissas: most are no float, as LightGBM's thresholds. */
                double threshold = ldexp((double)(r2 >> 11) * 0x1p-52 - 1.0, (int)(r2 % 5) - 1);
                if (pass == 0 && categorical)
                    fprintf(fp, "%s%u", n ? " " : "", c++);
                else if (pass == 0)
                    fprintf(fp, "%s%.17g", n ? " " : "", threshold);
                else
                    fprintf(fp, "%s%u", n ? " " : "",
                            categorical ? 1u : missing << 2 | default_left << 1);
                if (pass == 1 && categorical)
                    cats++;
            }
        }
        fprintf(fp, "\nleft_child=");
        for (uint32_t n = 0; n < inner; n++)
            fprintf(fp, "%s%d", n ? " " : "", left[n]);
        fprintf(fp, "\nright_child=");
        for (uint32_t n = 0; n < inner; n++)
            fprintf(fp, "%s%d", n ? " " : "", right[n]);
        fprintf(fp, "\nleaf_value=");
        for (uint32_t l = 0; l < leaves; l++)
            fprintf(fp, "%s%.17g", l ? " " : "",
                    (double)(int64_t)(splitmix(&seed) >> 11) * 0x1p-52 - 1.0);
        fprintf(fp, "\nnum_cat=%u\n", cats);
        if (cats) {
            fprintf(fp, "cat_boundaries=");
            for (uint32_t c = 0; c <= cats; c++)
                fprintf(fp, "%s%u", c ? " " : "", c);
            fprintf(fp, "\ncat_threshold=");
            for (uint32_t c = 0; c < cats; c++)
                fprintf(fp, "%s%u", c ? " " : "", (uint32_t)splitmix(&seed));
            fprintf(fp, "\n");
        }
        fprintf(fp, "shrinkage=1\n\n");
        seed = splitmix(&kinds) ^ seed;
    }
    fprintf(fp, "end of trees\n");
    free(left), free(right), free(parent);
    return fclose(fp) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: forest_gpu_check DATA_DIR [LGB_DIR]\n");
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
        if (load_all(path, cores, true, &h) != 0) {
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
        speed("fraud (XGBoost, 100 trees, depth 6, 20 features)", &fraud, device, cores);
    free_all(&fraud);

    /* LightGBM: the test models, then the generated one, which is also timed. */
    printf("\nLightGBM (LIGHTGBM layout, forest_lgb_kernel)\n");
    char tmp[] = "/tmp/ksv-lgb-gpu-XXXXXX", generated[64];
    if (!mkdtemp(tmp)) {
        printf("FAIL mkdtemp: cannot write the generated model\n");
        return 1;
    }
    snprintf(generated, sizeof generated, "%s/model.txt", tmp);
    if (write_lgb_model(generated, 100, 63, 20, 0x16b) != 0) {
        printf("FAIL cannot write %s\n", generated);
        failures++;
    }
    size_t nlgb = sizeof lgb_models / sizeof lgb_models[0];
    for (size_t i = 0; i <= nlgb; i++) {
        char path[4096];
        if (i < nlgb && argc < 3)
            continue;
        if (i < nlgb)
            snprintf(path, sizeof path, "%s/%s.txt", argv[2], lgb_models[i]);
        else
            snprintf(path, sizeof path, "%s", generated);
        handles h;
        if (load_all(path, cores, false, &h) != 0) {
            free_all(&h);
            continue;
        }
        bool on_gpu = ksv_runtime_forest_on_gpu(h.gpu);
        if (on_gpu != device) {
            printf("FAIL %s: on the GPU: %s, the XGBoost models: %s\n", path, on_gpu ? "yes" : "no",
                   device ? "yes" : "no");
            failures++;
        }
        parity(i < nlgb ? lgb_models[i] : "generated-100", &h, on_gpu);
        if (i == nlgb)
            speed("generated LightGBM (binary, 100 trees, 63 leaves, 20 features)", &h, on_gpu,
                  cores);
        free_all(&h);
    }
    unlink(generated);
    rmdir(tmp);

    printf("\n%d failure(s)\n", failures);
    if (failures)
        return 1;
    if (!device) {
        printf("no usable GPU: the device checks did NOT run (they need an NVIDIA GPU)\n");
        return 2;
    }
    return 0;
}
