/* runtime_auto.c: the runtime `auto`, the default when a model names none: ksv-forest when it
 * supports the model and answers a probe batch bit for bit as libxgboost does, else
 * ksv-xgboost; a LightGBM model, which only ksv-forest reads, goes to ksv-forest. The choice
 * is made once, at load; requests then go straight to the chosen runtime (one indirect call).
 * The log says why a model fell back, and ksv_model_info.runtime says which runtime answers
 * (metadata parameters.runtime, the admin state, ksv-top).
 *
 * The probe: PROBE_ROWS rows mixing missing values, the forest's own split thresholds (the
 * values where a `<` against `<=` or a float/double difference would show), their float
 * neighbours, zeros of both signs and values of every magnitude; more than the GPU batch
 * threshold, so a CUDA build probes its kernels too. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/forest/forest_layout.h"
#include "engine/forest/forest_load.h"
#include "common/random.h"
#include "engine/runtime.h"

#define PROBE_ROWS 256 /* as cheap as a probe can be while still reaching the GPU path (256) */

typedef struct auto_model {
    const ksv_runtime_ops *ops;   /* the runtime that answers */
    void *handle;
} auto_model;

/* Split thresholds per feature: feat_start[f]..feat_start[f+1] in values. */
typedef struct thresholds {
    size_t *feat_start;
    float *values;
} thresholds;

static void add_split(size_t *count, float *values, size_t *start, uint32_t feature,
                      float threshold, uint32_t num_features)
{
    uint32_t f = feature & FOREST_FEATURE_MASK;
    if (f >= num_features)
        return;
    if (values)
        values[start[f] + count[f]] = threshold;
    count[f]++;
}

/* Two passes over the nodes: count per feature, then fill. Missing thresholds (a linear
 * model, out of memory) only make the probe less sharp. */
static void collect_thresholds(const forest *f, thresholds *t)
{
    uint32_t nf = f->num_features;
    t->feat_start = calloc((size_t)nf + 1, sizeof *t->feat_start);
    t->values = NULL;
    size_t *count = calloc((size_t)nf + 1, sizeof *count);
    if (!t->feat_start || !count) {
        free(count);
        free(t->feat_start);
        t->feat_start = NULL;
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        memset(count, 0, ((size_t)nf + 1) * sizeof *count);
        if (f->layout == FOREST_LAYOUT_PERFECT) {
            size_t inner = forest_perfect_inner(f->depth);
            for (size_t i = 0; i < (size_t)f->num_trees * inner; i++)
                add_split(count, t->values, t->feat_start, f->pnodes[i].feature,
                          f->pnodes[i].threshold, nf);
        } else if (f->layout == FOREST_LAYOUT_SPARSE) {
            for (size_t i = 0; i < f->tree_start[f->num_trees]; i++)
                if (!(f->snodes[i].feature & FOREST_LEAF))
                    add_split(count, t->values, t->feat_start, f->snodes[i].feature,
                              f->snodes[i].value, nf);
        }
        if (pass == 0) {
            size_t total = 0;
            for (uint32_t j = 0; j < nf; j++) {
                t->feat_start[j] = total;
                total += count[j];
            }
            t->feat_start[nf] = total;
            t->values = malloc((total ? total : 1) * sizeof *t->values);
            if (!t->values)
                break;
        }
    }
    free(count);
}

static float probe_value(uint64_t *rng, const thresholds *t, uint32_t feature)
{
    uint64_t r = ksv_splitmix64(rng);
    unsigned pick = (unsigned)(r % 100);
    size_t n = t->feat_start && t->values ? t->feat_start[feature + 1] - t->feat_start[feature]
                                          : 0;
    if (pick < 12)
        return NAN;
    if (pick < 16)
        return (r >> 8) & 1 ? 0.0f : -0.0f;
    if (n > 0 && pick < 70) {
        float th = t->values[t->feat_start[feature] + (r >> 16) % n];
        unsigned how = (unsigned)((r >> 8) % 3);
        return how == 0 ? th : how == 1 ? nextafterf(th, -INFINITY) : nextafterf(th, INFINITY);
    }
    /* A value of any sign and magnitude: mantissa in [-1, 1), exponent in [-20, 20]. */
    double m = (double)(int64_t)(ksv_splitmix64(rng) >> 11) * 0x1p-52 - 1.0;
    return (float)ldexp(m, (int)((r >> 24) % 41) - 20);
}

static bool same_bits(const float *a, const float *b, size_t n, size_t *where)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0) {
            *where = i;
            return false;
        }
    return true;
}

bool ksv_runtime_auto_probe(void *forest_handle, void *xgb_handle, size_t cols, size_t width,
                            char *why, size_t why_cap)
{
    float *x = malloc(PROBE_ROWS * cols * sizeof *x);
    float *a = malloc(PROBE_ROWS * width * sizeof *a);
    float *b = malloc(PROBE_ROWS * width * sizeof *b);
    bool ok = false;
    ksv_err err = {0};
    if (!x || !a || !b) {
        snprintf(why, why_cap, "out of memory for the probe");
        goto done;
    }
    thresholds t;
    collect_thresholds(ksv_runtime_forest_layout(forest_handle), &t);
    uint64_t rng = 0x6b73762d70726f62ull; /* fixed: the same probe on every load */
    for (size_t i = 0; i < PROBE_ROWS * cols; i++)
        x[i] = probe_value(&rng, &t, (uint32_t)(i % cols));
    free(t.feat_start);
    free(t.values);
    if (ksv_runtime_forest.predict(forest_handle, 0, x, PROBE_ROWS, cols, a, &err) != 0) {
        snprintf(why, why_cap, "ksv-forest failed the probe: %.180s", err.msg);
        goto done;
    }
    if (ksv_runtime_xgboost.predict(xgb_handle, 0, x, PROBE_ROWS, cols, b, &err) != 0) {
        snprintf(why, why_cap, "libxgboost failed the probe: %.180s", err.msg);
        goto done;
    }
    size_t at;
    ok = same_bits(a, b, PROBE_ROWS * width, &at);
    if (!ok)
        snprintf(why, why_cap,
                 "ksv-forest differs from libxgboost on probe row %zu output %zu "
                 "(%.9g vs %.9g)",
                 at / width, at % width, (double)a[at], (double)b[at]);
done:
    free(x);
    free(a);
    free(b);
    return ok;
}

static void auto_unload(void *model)
{
    auto_model *m = model;
    if (!m)
        return;
    m->ops->unload(m->handle);
    free(m);
}

static int auto_predict(void *model, unsigned worker, const float *x, size_t rows, size_t cols,
                        float *out, ksv_err *err)
{
    auto_model *m = model;
    return m->ops->predict(m->handle, worker, x, rows, cols, out, err);
}

static int auto_load(const char *path, const ksv_runtime_options *opts, void **model,
                     ksv_model_info *info, ksv_err *err)
{
    *model = NULL;
    auto_model *m = calloc(1, sizeof *m);
    if (!m)
        return ksv_err_set(err, 500, "out of memory");
    void *fh = NULL, *xh = NULL;
    ksv_model_info finfo, xinfo;
    ksv_err ferr = {0}, xerr = {0};
    char note[sizeof info->runtime_note];
    int frc = ksv_runtime_forest.load(path, opts, &fh, &finfo, &ferr);
    if (frc == 0 && ksv_runtime_forest_layout(fh)->layout == FOREST_LAYOUT_LIGHTGBM) {
        /* LightGBM: only ksv-forest reads it; its answers are LightGBM's own rules. */
        m->ops = &ksv_runtime_forest;
        m->handle = fh;
        *info = finfo;
        snprintf(info->runtime, sizeof info->runtime, "%s", m->ops->name);
        snprintf(info->runtime_note, sizeof info->runtime_note,
                 "a LightGBM model: ksv-forest serves it (libxgboost does not read LightGBM)");
        ksv_log(KSV_LOG_INFO, NULL, "runtime auto: %s uses ksv-forest: %s", path,
                info->runtime_note);
        *model = m;
        return 0;
    }
    if (frc != 0 && forest_file_is_lightgbm(path)) {
        free(m);
        return ksv_err_set(err, ferr.status ? ferr.status : 400, "%s", ferr.msg);
    }
    /* No fast-reload copy: `auto` parses the document for ksv-forest at every load anyway,
     * and a copy of a model ksv-forest then serves would only be left behind. */
    ksv_runtime_options xopts = opts ? *opts : (ksv_runtime_options){0};
    xopts.reload_dir = NULL;
    xopts.reload_sha256 = NULL;
    int xrc = ksv_runtime_xgboost.load(path, &xopts, &xh, &xinfo, &xerr);
    if (frc != 0 && xrc != 0) {
        free(m);
        return ksv_err_set(err, xerr.status ? xerr.status : 400, "%s (ksv-forest: %s)",
                           xerr.msg, ferr.msg);
    }
    bool use_forest;
    if (frc != 0) {
        use_forest = false;
        snprintf(note, sizeof note, "ksv-forest does not serve this model: %.190s", ferr.msg);
    } else if (xrc != 0) {
        use_forest = true; /* a format only ksv-forest reads: nothing to compare with */
        snprintf(note, sizeof note, "libxgboost cannot read it (%.160s); ksv-forest serves it",
                 xerr.msg);
    } else if (finfo.num_features != xinfo.num_features ||
               finfo.num_outputs != xinfo.num_outputs) {
        use_forest = false;
        snprintf(note, sizeof note,
                 "ksv-forest reads %zu features and %zu outputs, libxgboost %zu and %zu",
                 finfo.num_features, finfo.num_outputs, xinfo.num_features,
                 xinfo.num_outputs);
    } else {
        use_forest = ksv_runtime_auto_probe(fh, xh, finfo.num_features, finfo.num_outputs, note,
                                            sizeof note);
        if (use_forest)
            snprintf(note, sizeof note,
                     "ksv-forest answers %d probe rows bit for bit as libxgboost", PROBE_ROWS);
    }
    if (use_forest) {
        m->ops = &ksv_runtime_forest;
        m->handle = fh;
        *info = finfo;
        if (xh)
            ksv_runtime_xgboost.unload(xh);
        ksv_log(KSV_LOG_INFO, NULL, "runtime auto: %s uses ksv-forest: %s", path, note);
    } else {
        m->ops = &ksv_runtime_xgboost;
        m->handle = xh;
        *info = xinfo;
        if (fh)
            ksv_runtime_forest.unload(fh);
        ksv_log(KSV_LOG_WARN, NULL, "runtime auto: %s falls back to ksv-xgboost: %s", path,
                note);
    }
    if (xrc == 0 && xinfo.has_checked_sha256) {
        /* The next load (a cold start) may skip libxgboost's side of the document check. */
        info->has_checked_sha256 = true;
        memcpy(info->checked_sha256, xinfo.checked_sha256, sizeof info->checked_sha256);

    }
    snprintf(info->runtime, sizeof info->runtime, "%s", m->ops->name);
    snprintf(info->runtime_note, sizeof info->runtime_note, "%s", note);
    *model = m;
    return 0;
}

const ksv_runtime_ops ksv_runtime_auto = {
    .name = "auto",
    .load = auto_load,
    .unload = auto_unload,
    .predict = auto_predict,
};
