/* test_forest.c: ksv-forest against libxgboost (the oracle) and against broken models.
 *
 * For every model under DATA/models/NAME/ and DATA/compat/NAME/ (model.json and model.ubj),
 * DATA being $KSV_DATA_DIR or KSV_SRCDIR/data: loads it with ksv-forest (runtime interface,
 * both node layouts) and with libxgboost's C API, predicts the same random rows (fixed seed,
 * ~10% NaN, many values exactly on or next to split thresholds) in batches of 1, 7, 64 and
 * 10,000 rows, and requires every output bit-equal to libxgboost's, in both layouts (as
 * docs/FOREST.md claims and runtime `auto` relies on). A 3.1-style base_score ("[x]") must predict
 * like the plain one. A table of broken models must be refused with a message, never crash. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xgboost/c_api.h>

#include "engine/forest/forest_load.h"
#include "engine/forest/forest_predict.h"
#include "engine/runtime.h"

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

extern const ksv_runtime_ops ksv_runtime_forest;

static int models_checked;

/* xorshift64*: a fixed, portable random sequence. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static double rng_unit(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }

/* Thresholds per feature, collected from the loaded forest, so rows hit split boundaries. */
typedef struct thresholds {
    float **values;
    size_t *count;
    uint32_t features;
} thresholds;

static void thresholds_add(thresholds *t, uint32_t feature, float v)
{
    size_t n = t->count[feature];
    if ((n & (n - 1)) == 0 || n == 0) {
        float *grown = realloc(t->values[feature], (n ? 2 * n : 1) * sizeof *grown);
        if (!grown)
            return;
        t->values[feature] = grown;
    }
    t->values[feature][n] = v;
    t->count[feature] = n + 1;
}

static void thresholds_collect(const forest *f, thresholds *t)
{
    t->features = f->num_features;
    t->values = calloc(f->num_features, sizeof *t->values);
    t->count = calloc(f->num_features, sizeof *t->count);
    if (f->layout == FOREST_LAYOUT_PERFECT) {
        size_t n = f->num_trees * forest_perfect_inner(f->depth);
        for (size_t i = 0; i < n; i++)
            thresholds_add(t, f->pnodes[i].feature & FOREST_FEATURE_MASK, f->pnodes[i].threshold);
    } else if (f->layout == FOREST_LAYOUT_SPARSE) {
        for (size_t i = 0; i < f->tree_start[f->num_trees]; i++)
            if (!(f->snodes[i].feature & FOREST_LEAF))
                thresholds_add(t, f->snodes[i].feature & FOREST_FEATURE_MASK, f->snodes[i].value);
    }
}

static void thresholds_free(thresholds *t)
{
    for (uint32_t i = 0; i < t->features; i++)
        free(t->values[i]);
    free(t->values);
    free(t->count);
}

static void random_rows(const thresholds *t, float *x, size_t rows)
{
    for (size_t i = 0; i < rows * t->features; i++) {
        uint32_t feature = (uint32_t)(i % t->features);
        double u = rng_unit();
        size_t n = t->count[feature];
        if (u < 0.10) {
            x[i] = NAN;
        } else if (u < 0.55 && n > 0) {
            float th = t->values[feature][rng_next() % n];
            double w = rng_unit();
            x[i] = w < 0.34 ? th : w < 0.67 ? nextafterf(th, INFINITY) : nextafterf(th, -INFINITY);
        } else {
            x[i] = (float)(rng_unit() * 14.0 - 4.0);
        }
    }
}

/* libxgboost's in-place prediction of the same rows; returns a malloc'd copy. */
static float *xgb_predict(BoosterHandle booster, const float *x, size_t rows, size_t cols,
                          size_t expect)
{
    char array[256], config[256];
    snprintf(array, sizeof array,
             "{\"data\":[%llu,true],\"shape\":[%zu,%zu],\"typestr\":\"<f4\",\"version\":3}",
             (unsigned long long)(uintptr_t)x, rows, cols);
    snprintf(config, sizeof config,
             "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
             "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}");
    const bst_ulong *shape;
    bst_ulong dim;
    const float *result;
    /* gblinear has no in-place prediction in XGBoost 1.7: predict through a DMatrix. */
    DMatrixHandle dm = NULL;
    int prc = XGBoosterPredictFromDense(booster, array, config, NULL, &shape, &dim, &result);
    if (prc != 0 && strstr(XGBGetLastError(), "Inplace predict is not supported")) {
        static const char dm_config[] =
            "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
            "\"strict_shape\":false}";
        prc = XGDMatrixCreateFromMat(x, rows, cols, NAN, &dm);
        if (prc == 0)
            prc = XGBoosterPredictFromDMatrix(booster, dm, dm_config, &shape, &dim, &result);
    }
    if (prc != 0) {
        printf("  libxgboost predict failed: %s\n", XGBGetLastError());
        XGDMatrixFree(dm);
        return NULL;
    }
    size_t total = 1;
    for (bst_ulong d = 0; d < dim; d++)
        total *= shape[d];
    if (total != expect) {
        printf("  libxgboost returned %zu values, ksv-forest %zu\n", total, expect);
        XGDMatrixFree(dm);
        return NULL;
    }
    float *copy = malloc(total * sizeof *copy);
    memcpy(copy, result, total * sizeof *copy);
    XGDMatrixFree(dm);
    return copy;
}

/* Returns 1 when ksv-forest loaded the model (it may still have failed checks). */
static int compare_model(const char *path)
{
    static const size_t batches[] = {1, 7, 64, 10000};
    BoosterHandle booster = NULL;
    if (XGBoosterCreate(NULL, 0, &booster) != 0 || XGBoosterLoadModel(booster, path) != 0) {
        printf("SKIP %s: libxgboost cannot load it (%s)\n", path, XGBGetLastError());
        XGBoosterFree(booster);
        return 0;
    }
    XGBoosterSetParam(booster, "nthread", "1");

    ksv_runtime_options opts = {.workers = 2, .predict_threads = 2};
    ksv_model_info info;
    void *model = NULL;
    ksv_err err = {0};
    forest *sparse = NULL;
    if (ksv_runtime_forest.load(path, &opts, &model, &info, &err) != 0) {
        /* Models outside ksv-forest's documented scope (gblinear, dart, categorical, other
         * objectives) must be refused by name; any other refusal is a failure. */
        int unsupported = strstr(err.msg, "not supported") || strstr(err.msg, "does not support");
        KT_CHECK(unsupported, "%s: ksv-forest refused it: %s", path, err.msg);
        if (unsupported)
            printf("ok   %s refused as unsupported: %s\n", path, err.msg);
        XGBoosterFree(booster);
        return 0;
    }
    KT_CHECK(forest_load_file(path, FOREST_PREFER_SPARSE, &sparse, &err) == 0, "%s sparse: %s",
             path, err.msg);
    forest *layout = NULL;
    KT_CHECK(forest_load_file(path, FOREST_PREFER_AUTO, &layout, &err) == 0, "%s: %s", path,
             err.msg);
    if (!sparse || !layout)
        goto done;
    bst_ulong xgb_features = 0;
    XGBoosterGetNumFeature(booster, &xgb_features);
    KT_CHECK(info.num_features == xgb_features, "%s: %zu features, libxgboost says %llu", path,
             info.num_features, (unsigned long long)xgb_features);

    thresholds th;
    thresholds_collect(layout, &th);
    float *scratch = malloc(forest_scratch_floats(sparse) * sizeof *scratch);
    double worst = 0.0;
    size_t exact = 0, exact_sparse = 0, total = 0;
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        size_t rows = batches[b], cols = info.num_features, nout = rows * info.num_outputs;
        float *x = malloc(rows * cols * sizeof *x);
        float *ours = malloc(nout * sizeof *ours), *ours_sparse = malloc(nout * sizeof *ours);
        random_rows(&th, x, rows);
        int rc = ksv_runtime_forest.predict(model, 1, x, rows, cols, ours, &err);
        KT_CHECK(rc == 0, "%s: predict failed: %s", path, err.msg);
        forest_predict(sparse, x, rows, ours_sparse, scratch);
        float *theirs = xgb_predict(booster, x, rows, cols, nout);
        KT_CHECK(theirs != NULL, "%s: no libxgboost answer for %zu rows", path, rows);
        for (size_t i = 0; theirs && i < nout; i++) {
            double d = fabs((double)ours[i] - theirs[i]);
            double ds = fabs((double)ours_sparse[i] - theirs[i]);
            if (d > worst || d != d)
                worst = d != d ? INFINITY : d;
            if (ds > worst || ds != ds)
                worst = ds != ds ? INFINITY : ds;
            /* Bit-equal: the same 32 bits (a NaN only matches the same NaN). */
            exact += memcmp(&ours[i], &theirs[i], sizeof(float)) == 0;
            exact_sparse += memcmp(&ours_sparse[i], &theirs[i], sizeof(float)) == 0;
            total++;
        }
        free(theirs);
        free(x);
        free(ours);
        free(ours_sparse);
    }
    KT_CHECK(exact == total && exact_sparse == total,
             "%s: bit-equal to libxgboost in %zu/%zu outputs (sparse layout %zu/%zu), max |diff| "
             "%.3g", path, exact, total, exact_sparse, total, worst);
    printf("ok   %-58s %-16s layout %-7s depth %2u trees %4u: max |diff| %.3g, %zu/%zu bit-equal\n",
           path, info.objective, layout->layout == FOREST_LAYOUT_PERFECT  ? "perfect"
           : layout->layout == FOREST_LAYOUT_LINEAR ? "linear"
                                                    : "sparse",
           layout->depth, layout->num_trees, worst, exact, total);
    models_checked++;

    /* The runtime refuses rows of the wrong width instead of reading past them. */
    float one[1] = {0};
    KT_CHECK(ksv_runtime_forest.predict(model, 0, one, 1, info.num_features + 1, one, &err) != 0 &&
                 err.status == 400, "%s: wrong column count accepted", path);
    thresholds_free(&th);
    free(scratch);
done:
    forest_free(sparse);
    forest_free(layout);
    ksv_runtime_forest.unload(model);
    XGBoosterFree(booster);
    return 1;
}

/* XGBoost 3.1+ writes base_score as "[x]": the same model in that form predicts the same. */
static void check_bracketed_base_score(const char *path)
{
    size_t len;
    char *text = kt_read_file(path, &len);
    if (!text)
        return;
    const char *key = "\"base_score\":\"";
    char *at = strstr(text, key);
    if (!at) {
        free(text);
        return;
    }
    at += strlen(key);
    char *close = strchr(at, '"');
    size_t head = (size_t)(at - text), value = (size_t)(close - at);
    char *edited = malloc(len + 3);
    memcpy(edited, text, head);
    edited[head] = '[';
    memcpy(edited + head + 1, at, value);
    edited[head + 1 + value] = ']';
    memcpy(edited + head + 2 + value, close, len - head - value);
    forest *plain = NULL, *bracketed = NULL;
    ksv_err err = {0};
    KT_CHECK(forest_load_buffer(text, len, FOREST_FORMAT_JSON, FOREST_PREFER_AUTO, &plain,
                                &err) == 0,
             "%s: %s", path, err.msg);
    KT_CHECK(forest_load_buffer(edited, len + 2, FOREST_FORMAT_JSON, FOREST_PREFER_AUTO, &bracketed,
                                &err) == 0, "%s with [base_score]: %s", path, err.msg);
    if (plain && bracketed) {
        int same = 1;
        for (uint32_t g = 0; g < plain->num_groups; g++)
            same &= plain->base_margin[g] == bracketed->base_margin[g];
        KT_CHECK(same, "%s: \"[x]\" base_score differs from \"x\"", path);
        printf("ok   %s: base_score \"[%.*s]\" read like \"%.*s\"\n", path, (int)value, at,
               (int)value, at);
    }
    forest_free(plain);
    forest_free(bracketed);
    free(edited);
    free(text);
}

static void compare_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        printf("note %s: not present\n", dir);
        return;
    }
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        static const char *files[] = {"model.json", "model.ubj"};
        for (int k = 0; k < 2; k++) {
            char path[4096];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s/%s", dir, names[i], files[k]);
            if (stat(path, &st) != 0)
                continue;
            if (compare_model(path) && k == 0)
                check_bracketed_base_score(path);
        }
        free(names[i]);
    }
    free(names);
}

/* ---- broken and unsupported models ------------------------------------------------------- */

/* A small valid model with parts replaceable by the broken-model table. */
static char *model_text(const char *objective, const char *booster, const char *base_score,
                        const char *tree, const char *tree_info, const char *feature_types)
{
    static const char *good_tree =
        "{\"id\":0,\"tree_param\":{\"num_nodes\":\"3\",\"num_feature\":\"2\","
        "\"size_leaf_vector\":\"1\",\"num_deleted\":\"0\"},\"left_children\":[1,-1,-1],"
        "\"right_children\":[2,-1,-1],\"parents\":[2147483647,0,0],\"split_indices\":[1,0,0],"
        "\"split_conditions\":[5E-1,-2.5E-1,7.5E-1],\"default_left\":[1,0,0],"
        "\"split_type\":[0,0,0],\"categories\":[],\"categories_nodes\":[],"
        "\"categories_segments\":[],\"categories_sizes\":[],\"base_weights\":[0E0,0E0,0E0],"
        "\"loss_changes\":[0E0,0E0,0E0],\"sum_hessian\":[1E0,1E0,1E0]}";
    size_t cap = 4096 + (tree ? strlen(tree) : strlen(good_tree));
    char *s = malloc(cap);
    snprintf(s, cap,
             "{\"version\":[1,7,4],\"learner\":{\"attributes\":{},\"feature_names\":[],"
             "\"feature_types\":%s,\"gradient_booster\":{\"name\":\"%s\",\"model\":{"
             "\"gbtree_model_param\":{\"num_trees\":\"1\",\"num_parallel_tree\":\"1\"},"
             "\"tree_info\":%s,\"trees\":[%s]}},\"learner_model_param\":{\"base_score\":\"%s\","
             "\"num_class\":\"0\",\"num_feature\":\"2\",\"num_target\":\"1\"},"
             "\"objective\":{\"name\":\"%s\"}}}",
             feature_types ? feature_types : "[]", booster ? booster : "gbtree",
             tree_info ? tree_info : "[0]", tree ? tree : good_tree,
             base_score ? base_score : "5E-1", objective ? objective : "binary:logistic");
    return s;
}

/* Like strndup, but keeps embedded NUL bytes (binary UBJSON cases). */
static char *bytes_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

typedef struct broken_case {
    const char *what;
    char *text;            /* owned */
    size_t len;            /* 0: strlen */
    forest_format format;
    const char *message;   /* substring the refusal must contain, or NULL */
} broken_case;

static void check_broken(void)
{
    char *good = model_text(NULL, NULL, NULL, NULL, NULL, NULL);
    forest *f = NULL;
    ksv_err err = {0};
    KT_CHECK(forest_load_buffer(good, strlen(good), FOREST_FORMAT_JSON, FOREST_PREFER_AUTO, &f,
                                &err) == 0,
             "template model refused: %s", err.msg);
    if (f) {
        /* logit(0.5) = 0; row (nan, 0.6): feature 1 present, 0.6 >= 0.5 -> right -> 0.75. */
        float row[2] = {NAN, 0.6f}, out, scratch[FOREST_BLOCK_ROWS];
        forest_predict(f, row, 1, &out, scratch);
        KT_CHECK(out == 1.0f / (expf(-0.75f) + 1.0f + 1e-16f), "template model predicts %g", out);
        row[1] = NAN;  /* missing -> default left -> -0.25 */
        forest_predict(f, row, 1, &out, scratch);
        KT_CHECK(out == 1.0f / (expf(0.25f) + 1.0f + 1e-16f), "template missing path predicts %g",
                 out);
    }
    forest_free(f);
    size_t good_len = strlen(good);
#define TREE_TPL \
        "{\"id\":0,\"tree_param\":{\"num_nodes\":\"3\",\"size_leaf_vector\":\"%s\"}," \
        "\"left_children\":%s,\"right_children\":[2,-1,-1],\"split_indices\":%s," \
        "\"split_conditions\":%s,\"default_left\":[0,0,0],\"split_type\":%s," \
        "\"categories_nodes\":%s}"
#define TREE(lv, left, idx, cond, st, cats)                                                   \
    ({                                                                                        \
        static char buf_[1024];                                                               \
        snprintf(buf_, sizeof buf_, TREE_TPL, lv, left, idx, cond, st, cats);                 \
        buf_;                                                                                 \
    })
    broken_case cases[] = {
        {"empty", strdup(""), 0, FOREST_FORMAT_JSON, "invalid JSON"},
        {"truncated JSON", strndup(good, good_len / 2), 0, FOREST_FORMAT_JSON, "invalid JSON"},
        {"trailing garbage", NULL, 0, FOREST_FORMAT_JSON, "trailing"},
        {"JSON array", strdup("[1,2]"), 0, FOREST_FORMAT_JSON, "learner"},
        {"null", strdup("null"), 0, FOREST_FORMAT_JSON, NULL},
        {"no learner", strdup("{\"version\":[1,7,4]}"), 0, FOREST_FORMAT_JSON, "learner"},
        {"unknown objective", model_text("reg:gamma", NULL, NULL, NULL, NULL, NULL), 0,
         FOREST_FORMAT_JSON, "objective \"reg:gamma\" is not supported"},
        {"gblinear", model_text(NULL, "gblinear", NULL, NULL, NULL, NULL), 0, FOREST_FORMAT_JSON,
         "gblinear"},
        {"dart", model_text(NULL, "dart", NULL, NULL, NULL, NULL), 0, FOREST_FORMAT_JSON, "dart"},
        {"base_score text", model_text(NULL, NULL, "abc", NULL, NULL, NULL), 0,
         FOREST_FORMAT_JSON, "base_score"},
        {"base_score 0 for logistic", model_text(NULL, NULL, "0E0", NULL, NULL, NULL), 0,
         FOREST_FORMAT_JSON, "base_score"},
        {"base_score unclosed", model_text(NULL, NULL, "[5E-1", NULL, NULL, NULL), 0,
         FOREST_FORMAT_JSON, "base_score"},
        {"tree_info out of range", model_text(NULL, NULL, NULL, NULL, "[3]", NULL), 0,
         FOREST_FORMAT_JSON, "tree_info"},
        {"tree_info too short", model_text(NULL, NULL, NULL, NULL, "[]", NULL), 0,
         FOREST_FORMAT_JSON, "num_trees"},
        {"categorical feature type", model_text(NULL, NULL, NULL, NULL, NULL, "[\"q\",\"c\"]"), 0,
         FOREST_FORMAT_JSON, "categorical"},
        {"categorical split with NaN token",
         model_text(NULL, NULL, NULL, TREE("1", "[1,-1,-1]", "[1,0,0]", "[NaN,1E0,2E0]",
                                           "[1,0,0]", "[0],\"categories_segments\":[0],"
                                           "\"categories_sizes\":[1],\"categories\":[3]"),
                    NULL, NULL),
         0, FOREST_FORMAT_JSON, "categorical"},
        {"child out of range",
         model_text(NULL, NULL, NULL, TREE("1", "[7,-1,-1]", "[1,0,0]", "[1,1,1]", "[0,0,0]", "[]"),
                    NULL, NULL), 0, FOREST_FORMAT_JSON, "child index out of range"},
        {"cycle",
         model_text(NULL, NULL, NULL, TREE("1", "[0,-1,-1]", "[1,0,0]", "[1,1,1]", "[0,0,0]", "[]"),
                    NULL, NULL), 0, FOREST_FORMAT_JSON, "child index out of range"},
        {"feature out of range",
         model_text(NULL, NULL, NULL, TREE("1", "[1,-1,-1]", "[9,0,0]", "[1,1,1]", "[0,0,0]", "[]"),
                    NULL, NULL), 0, FOREST_FORMAT_JSON, "feature"},
        {"array too short",
         model_text(NULL, NULL, NULL, TREE("1", "[1,-1]", "[1,0,0]", "[1,1,1]", "[0,0,0]", "[]"),
                    NULL, NULL), 0, FOREST_FORMAT_JSON, "entries"},
        {"wrong element type",
         model_text(NULL, NULL, NULL,
                    TREE("1", "[1,-1,-1]", "[1,0,0]", "[\"a\",1,1]", "[0,0,0]", "[]"), NULL, NULL),
         0, FOREST_FORMAT_JSON, "not a number"},
        {"wrong array type",
         model_text(NULL, NULL, NULL, TREE("1", "\"x\"", "[1,0,0]", "[1,1,1]", "[0,0,0]", "[]"),
                    NULL, NULL), 0, FOREST_FORMAT_JSON, "not an array"},
        {"vector leaves",
         model_text(NULL, NULL, NULL, TREE("3", "[1,-1,-1]", "[1,0,0]", "[1,1,1]", "[0,0,0]", "[]"),
                    NULL, NULL), 0, FOREST_FORMAT_JSON, "vector leaves"},
        {"legacy binary", strdup("binf\x01\x02"), 0, FOREST_FORMAT_SNIFF, "legacy"},
        {"ubj garbage", strdup("{Zq\xff\xff"), 0, FOREST_FORMAT_UBJSON, "ubjson"},
        {"ubj huge count", bytes_dup("[#L\x7f\xff\xff\xff\xff\xff\xff\xff", 11), 11,
         FOREST_FORMAT_UBJSON, "ubjson"},
        {"ubj huge typed count", bytes_dup("[$d#L\x00\x00\x00\x10\x00\x00\x00\x00", 13), 13,
         FOREST_FORMAT_UBJSON, "ubjson"},
        {"ubj negative length", bytes_dup("{i\xfflearner", 10), 10, FOREST_FORMAT_UBJSON, "ubjson"},
        {"ubj deep nesting", NULL, 0, FOREST_FORMAT_UBJSON, "nesting"},
        {"ubj typed without count", strdup("[$d]"), 0, FOREST_FORMAT_UBJSON, "count"},
    };
#undef TREE
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) {
        if (strcmp(cases[i].what, "trailing garbage") == 0) {
            cases[i].text = malloc(good_len + 4);
            memcpy(cases[i].text, good, good_len);
            memcpy(cases[i].text + good_len, " {}", 4);
        } else if (strcmp(cases[i].what, "ubj deep nesting") == 0) {
            cases[i].text = malloc(401);
            memset(cases[i].text, '[', 400);
            cases[i].text[400] = 0;
        }
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        forest *bf = NULL;
        ksv_err berr = {0};
        int rc = forest_load_buffer(cases[i].text, len, cases[i].format, FOREST_PREFER_AUTO, &bf,
                                    &berr);
        KT_CHECK(rc != 0 && bf == NULL, "broken model \"%s\" was accepted", cases[i].what);
        KT_CHECK(berr.msg[0] != 0, "broken model \"%s\": no message", cases[i].what);
        KT_CHECK(!cases[i].message || strstr(berr.msg, cases[i].message),
                 "broken model \"%s\": message \"%s\" lacks \"%s\"", cases[i].what, berr.msg,
                 cases[i].message);
        printf("ok   refused %-32s %s\n", cases[i].what, berr.msg);
        forest_free(bf);
        free(cases[i].text);
    }
    free(good);
}

/* Every prefix of a real .ubj (sampled) and some flipped bytes: refused or loaded, no crash. */
static void check_ubj_mutations(const char *path)
{
    size_t len;
    unsigned char *data = (unsigned char *)kt_read_file(path, &len);
    if (!data)
        return;
    size_t refused = 0, tried = 0;
    for (size_t cut = 0; cut < len; cut += 1 + len / 300) {
        forest *f = NULL;
        ksv_err err = {0};
        int rc = forest_load_buffer(data, cut, FOREST_FORMAT_UBJSON, FOREST_PREFER_AUTO, &f, &err);
        KT_CHECK(rc != 0, "%s truncated to %zu bytes was accepted", path, cut);
        refused += rc != 0;
        tried++;
        forest_free(f);
    }
    unsigned char *copy = malloc(len);
    for (int k = 0; k < 300; k++) {
        memcpy(copy, data, len);
        for (int j = 0; j < 4; j++)
            copy[rng_next() % len] = (unsigned char)rng_next();
        forest *f = NULL;
        ksv_err err = {0};
        forest_load_buffer(copy, len, FOREST_FORMAT_UBJSON, FOREST_PREFER_AUTO, &f, &err);
        forest_free(f);
        tried++;
    }
    printf("ok   %s: %zu truncations refused, %zu mutated copies survived\n", path, refused,
           (size_t)300);
    (void)tried;
    free(copy);
    free(data);
}

int main(void)
{
    char data[4096], dir[4200];
    kt_data_dir(data, sizeof data);
    int major, minor, patch;
    XGBoostVersion(&major, &minor, &patch);
    printf("test_forest: data %s, libxgboost %d.%d.%d\n", data, major, minor, patch);

    snprintf(dir, sizeof dir, "%s/models", data);
    compare_dir(dir);
    snprintf(dir, sizeof dir, "%s/compat", data);
    compare_dir(dir);
    snprintf(dir, sizeof dir, "%s/compat/kserve-xgboost-iris/model.ubj", data);
    check_ubj_mutations(dir);
    check_broken();

    if (models_checked == 0) {
        KT_FAIL("no model compared against libxgboost (data dir %s)", data);
    }
    printf("%d models compared against libxgboost\n", models_checked);
    return kt_summary("test_forest");
}
