/* test_runtime_auto.c: runtime `auto` picks ksv-forest only where it is bit-equal to
 * libxgboost, and its probe really tells two models apart.
 *
 * - Every demo model in JSON/UBJSON loads on ksv-forest through `auto`, says so in
 *   ksv_model_info.runtime with the reason, and answers rows bit for bit as ksv-xgboost.
 * - The legacy .bst, which ksv-forest cannot read, falls back to ksv-xgboost with the reason.
 * - The probe, given ksv-forest's churn-v1 and libxgboost's churn-v2 (same inputs, other
 *   trees), reports where they differ: a judge that cannot say "no" would be worthless. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

static char data_dir[1024];

static const char *model_file(const char *name, const char *file)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/models/%s/%s", data_dir, name, file);
    return path;
}

static const ksv_runtime_options opts = {.workers = 2, .predict_threads = 1};

static void check_auto(const char *name, const char *file, const char *want_runtime,
                       const char *want_note)
{
    char path[1200];
    snprintf(path, sizeof path, "%s", model_file(name, file));
    void *a = NULL, *x = NULL;
    ksv_model_info ai, xi;
    ksv_err err = {0};
    if (ksv_runtime_auto.load(path, &opts, &a, &ai, &err) != 0) {
        KT_FAIL("%s: auto failed to load it: %s", path, err.msg);
        return;
    }
    KT_CHECK(strcmp(ai.runtime, want_runtime) == 0 && strstr(ai.runtime_note, want_note),
             "%s: auto chose %s (%s), want %s", name, ai.runtime, ai.runtime_note, want_runtime);
    if (ksv_runtime_xgboost.load(path, &opts, &x, &xi, &err) != 0) {
        KT_FAIL("%s: libxgboost failed to load it: %s", path, err.msg);
        ksv_runtime_auto.unload(a);
        return;
    }
    /* Rows of every kind (the probe's own mix is internal): a seeded spread with NaNs. */
    size_t rows = 500, cols = ai.num_features, width = ai.num_outputs;
    float *in = malloc(rows * cols * sizeof *in);
    float *p = malloc(rows * width * sizeof *p), *q = malloc(rows * width * sizeof *q);
    unsigned s = 12345;
    for (size_t i = 0; i < rows * cols; i++) {
        s = s * 1103515245u + 12345u;
        in[i] = (s >> 16) % 10 == 0 ? NAN : (float)((int)((s >> 8) % 2001) - 1000) / 128.0f;
    }
    int r1 = ksv_runtime_auto.predict(a, 1, in, rows, cols, p, &err);
    int r2 = ksv_runtime_xgboost.predict(x, 1, in, rows, cols, q, &err);
    KT_CHECK(r1 == 0 && r2 == 0 && memcmp(p, q, rows * width * sizeof *p) == 0,
             "%s: auto (%s) answers %zu rows bit for bit as ksv-xgboost", name, ai.runtime,
             rows);
    free(in);
    free(p);
    free(q);
    ksv_runtime_auto.unload(a);
    ksv_runtime_xgboost.unload(x);
}

static void check_probe_says_no(void)
{
    void *f = NULL, *x = NULL;
    ksv_model_info fi, xi;
    ksv_err err = {0};
    char p1[1200], p2[1200], why[240] = "";
    snprintf(p1, sizeof p1, "%s", model_file("churn-v1", "model.json"));
    snprintf(p2, sizeof p2, "%s", model_file("churn-v2", "model.json"));
    if (ksv_runtime_forest.load(p1, &opts, &f, &fi, &err) != 0 ||
        ksv_runtime_xgboost.load(p2, &opts, &x, &xi, &err) != 0) {
        KT_FAIL("churn models: %s", err.msg);
    } else {
        bool same = ksv_runtime_auto_probe(f, x, fi.num_features, fi.num_outputs, why,
                                           sizeof why);
        KT_CHECK(!same && strstr(why, "differs from libxgboost on probe row"),
                 "the probe tells churn-v1 on ksv-forest from churn-v2 on libxgboost (%s)", why);
        void *x1 = NULL;
        if (ksv_runtime_xgboost.load(p1, &opts, &x1, &xi, &err) == 0) {
            KT_CHECK(ksv_runtime_auto_probe(f, x1, fi.num_features, fi.num_outputs, why,
                                            sizeof why),
                     "the probe finds churn-v1 equal on both (%s)", why);
            ksv_runtime_xgboost.unload(x1);
        }
    }
    if (f)
        ksv_runtime_forest.unload(f);
    if (x)
        ksv_runtime_xgboost.unload(x);
}

int main(void)
{
    kt_data_dir(data_dir, sizeof data_dir);
    static const char *const forest_models[][2] = {
        {"fraud", "model.json"},    {"iris", "model.json"},     {"iris-ubj", "model.ubj"},
        {"churn-v1", "model.json"}, {"churn-v2", "model.json"}, {"softmax", "model.json"},
        {"regression", "model.json"}, {"ranking", "model.json"}, {"linear", "model.json"},
    };
    for (size_t i = 0; i < sizeof forest_models / sizeof forest_models[0]; i++)
        check_auto(forest_models[i][0], forest_models[i][1], "ksv-forest",
                   "probe rows bit for bit");
    check_auto("iris-bst", "model.bst", "ksv-xgboost", "ksv-forest does not serve this model");
    check_probe_says_no();
    KT_CHECK(ksv_runtime_find("auto") == &ksv_runtime_auto, "runtime \"auto\" is registered");
    return kt_summary("test_runtime_auto");
}
