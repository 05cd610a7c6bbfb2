/* runtime_xgboost.c: the ksv-xgboost runtime: XGBoost models (.json, .ubj, legacy .bst)
 * served through libxgboost's C API, exact by construction.
 *
 * The model file is read once into memory and every booster is loaded from those bytes.
 * Booster pools (ksv_runtime_options.booster_pool):
 *  - "shared" (default): one booster for all workers. XGBoost documents prediction as
 *    thread-safe for tree boosters since 1.4 (doc/prediction.rst, "Thread Safety", dmlc/xgboost
 *    release_1.7.0); the output buffer it returns is per calling thread. Configuration is
 *    lazy and happens on the first prediction, which load() does (warm-up) before the
 *    booster is shared. Measured against "per-worker" (bench/xgb_booster_pool.c,
 *    docs/BENCHMARKS.md) it is as fast at 1, 2 and 4 threads, and it loads once and holds
 *    one copy of the model, so it is the default.
 *  - "per-worker": one booster per worker index, so calls never share one.
 * A gblinear model is outside XGBoost's guarantee and gets per-worker boosters even when
 * "shared" is asked for.
 * Tree boosters (gbtree, dart) predict in place from the caller's rows. XGBoost 1.7 has no
 * in-place prediction for gblinear ("Inplace predict is not supported by current booster"),
 * so such a model predicts through a DMatrix made for each call.
 * Each booster's "nthread" is set to predict_threads (default 1): the engine already runs
 * one request per core, and OpenMP inside a call only adds overhead there.
 *
 * Cold starts (a scaled-to-zero revision loaded again): bytes whose SHA-256 an earlier load
 * checked are not checked again, and a model first read from JSON is read back from a
 * UBJSON copy that the first load wrote into ksv_runtime_options.reload_dir (named by the
 * source's digest, read only when its own digest is the one that load reported): libxgboost
 * 1.7 reads it 3-14x faster than the JSON (fraud: ~4 ms against ~24-45), the booster holds
 * the same memory (memory_budget.h counts it to a few bytes) and predicts bit for bit as the
 * JSON one (docs/BENCHMARKS.md, "Cold starts"). XGBoost's older binary format reads faster
 * still (~0.1 ms) but is deprecated by XGBoost and cannot hold categorical splits. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <xgboost/c_api.h>

#include "common/fileutil.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/strbuf.h"
#include "engine/forest/forest_lightgbm.h"
#include "engine/model_document.h"
#include "engine/runtime.h"

/* In-place prediction settings, the same for every model. type 0 is the objective's own
 * output (probabilities, class ids, margins for ranking, values for regression); 1.7's
 * in-place path requires "cache_id": 0 and "missing" (XGBoost's JSON reader takes NaN). */
static const char inplace_config[] =
    "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
    "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}";
/* The same for XGBoosterPredictFromDMatrix, whose DMatrix already knows what is missing. */
static const char dmatrix_config[] =
    "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
    "\"strict_shape\":false}";

/* More boosters than this is a configuration mistake, not a machine. */
enum { MAX_WORKERS = 4096 };

typedef struct xgb_model {
    BoosterHandle *boosters;
    unsigned n_boosters;    /* 1 when shared, else one per worker index */
    bool shared;
    bool inplace;           /* tree booster: in-place prediction; else through a DMatrix */
    size_t num_features;
    size_t num_outputs;
} xgb_model;

/* Copies the first line of XGBoost's last error into err, without its "[HH:MM:SS] "
 * prefix and with bytes outside printable ASCII replaced, since it ends up in a JSON
 * response and XGBoost may quote raw model bytes. */
static int xgb_fail(ksv_err *err, int status, const char *what)
{
    const char *last = XGBGetLastError();
    char clean[200];
    size_t n = 0;

    if (last == NULL)
        last = "";
    if (last[0] == '[') {
        const char *close = strstr(last, "] ");
        if (close != NULL && close - last < 16)
            last = close + 2;
    }
    for (; last[n] != '\0' && last[n] != '\n' && n + 1 < sizeof clean; n++) {
        unsigned char c = (unsigned char)last[n];
        clean[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    clean[n] = '\0';
    return ksv_err_set(err, status, "%s: %s", what, n > 0 ? clean : "unknown xgboost error");
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A little-endian reader over a legacy binary model, bounds-checked. */
typedef struct legacy_cursor {
    const unsigned char *p;
    size_t left;
} legacy_cursor;

static bool legacy_skip(legacy_cursor *c, uint64_t n)
{
    if (n > c->left)
        return false;
    c->p += n;
    c->left -= (size_t)n;
    return true;
}

static bool legacy_u64(legacy_cursor *c, uint64_t *out)
{
    if (c->left < 8)
        return false;
    *out = read_le64(c->p);
    return legacy_skip(c, 8);
}

static int32_t legacy_i32_at(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    return (int32_t)v;
}

/* A dmlc string: 64-bit length, then the bytes. */
static bool legacy_string(legacy_cursor *c, char *copy, size_t copy_size)
{
    uint64_t n;
    if (!legacy_u64(c, &n) || n > c->left)
        return false;
    if (copy != NULL) {
        if (n >= copy_size)
            return false;
        memcpy(copy, c->p, (size_t)n);
        copy[n] = '\0';
    }
    return legacy_skip(c, n);
}

/* A dmlc vector of strings (pairs: two strings per element). */
static bool legacy_strings(legacy_cursor *c, int per_element)
{
    uint64_t count;
    if (!legacy_u64(c, &count) || count > c->left / 8)
        return false;
    for (uint64_t i = 0; i < count * (uint64_t)per_element; i++) {
        if (!legacy_string(c, NULL, 0))
            return false;
    }
    return true;
}

/* Walks the legacy binary layout (XGBoost 1.7 LearnerIO::LoadModel for a non-JSON stream):
 * optional "binf", the 136-byte learner parameters, objective and booster names, the
 * gbtree parameters (160 bytes), per tree its parameters (148 bytes) and num_nodes nodes
 * (20 bytes) and stats (16 bytes), tree_info, then dart weights, attributes and metrics.
 * XGBoost sizes vectors and strings from these numbers before reading them, so garbage
 * would have it allocate and zero terabytes; every count must fit in the bytes left. */
static const char *legacy_layout_problem(const unsigned char *data, size_t len)
{
    enum { LEARNER_PARAM = 136, GBTREE_PARAM = 160, TREE_PARAM = 148, NODE_BYTES = 20 + 16 };
    legacy_cursor c = {data, len};
    char objective[257], booster[257];

    if (len >= 4 && memcmp(data, "bs64", 4) == 0)
        return "base64-wrapped binary models are not supported; save the model as JSON";
    if (len >= 4 && memcmp(data, "binf", 4) == 0)
        legacy_skip(&c, 4);
    const unsigned char *learner = c.p;
    if (!legacy_skip(&c, LEARNER_PARAM) || !legacy_string(&c, objective, sizeof objective) ||
        !legacy_string(&c, booster, sizeof booster))
        return "not an XGBoost binary (.bst) model";
    int32_t extra_attrs = legacy_i32_at(learner + 12), eval_metrics = legacy_i32_at(learner + 16);
    bool dart = strcmp(booster, "dart") == 0;
    if (strcmp(booster, "gbtree") != 0 && !dart)
        return "only gbtree and dart binary models are supported; save the model as JSON";

    if (c.left < GBTREE_PARAM)
        return "truncated binary model";
    int32_t num_trees = legacy_i32_at(c.p);
    legacy_skip(&c, GBTREE_PARAM);
    if (num_trees < 0 || (uint64_t)num_trees > c.left / (TREE_PARAM + NODE_BYTES))
        return "bad number of trees";
    for (int32_t t = 0; t < num_trees; t++) {
        if (c.left < TREE_PARAM)
            return "truncated binary model";
        int32_t num_nodes = legacy_i32_at(c.p + 4);
        legacy_skip(&c, TREE_PARAM);
        if (num_nodes < 1 || (uint64_t)num_nodes > c.left / NODE_BYTES)
            return "bad number of tree nodes";
        legacy_skip(&c, (uint64_t)num_nodes * NODE_BYTES);
    }
    if (!legacy_skip(&c, (uint64_t)num_trees * 4))
        return "truncated binary model";
    if (dart && num_trees != 0) {
        uint64_t weights;
        if (!legacy_u64(&c, &weights) || weights > c.left / 4 || !legacy_skip(&c, weights * 4))
            return "bad dart weights";
    }
    if (extra_attrs != 0 && !legacy_strings(&c, 2))
        return "bad attributes";
    if (strcmp(objective, "count:poisson") == 0 && !legacy_string(&c, NULL, 0))
        return "bad count:poisson parameter";
    if (eval_metrics != 0 && !legacy_strings(&c, 1))
        return "bad metrics";
    return NULL;
}

/* ---- the model document ----------------------------------------------------------------
 *
 * XGBoost 1.7.4 trusts what a model file says: its UBJSON reader trusts lengths (a
 * truncated .ubj makes it read past its buffer, found with ASan), its loader and predictor
 * index with node numbers, features and categories unchecked. So a JSON or UBJSON document
 * is read and checked first by ksv's one model-document reader (model_document.h, which
 * ksv-forest uses too); only then does XGBoost see the bytes. A legacy binary model has its
 * layout walked before XGBoost reads it, then the model as XGBoost holds it goes through
 * the same checks. */

/* Checks the model as XGBoost holds it after loading (for the legacy binary format, whose
 * nodes XGBoost reads as raw structs), re-serialized as UBJSON by XGBoost itself. */
static int check_loaded_model(BoosterHandle booster, const char *path, ksv_err *err)
{
    bst_ulong len = 0;
    const char *bytes = NULL;
    ksv_model_doc doc;

    if (XGBoosterSaveModelToBuffer(booster, "{\"format\":\"ubj\"}", &len, &bytes) != 0)
        return xgb_fail(err, 500, "xgboost save model");
    int rc = ksv_model_doc_parse(path, bytes, (size_t)len, KSV_DOC_UBJSON_BYTES, &doc, err);
    ksv_model_doc_free(&doc);
    return rc;
}

/* Reads and checks the file's document (see above). *skip: leading bytes XGBoost's buffer
 * loader does not expect (a byte-order mark, white space) before a JSON or UBJSON one.
 * checked: these very bytes passed the check at an earlier load (their SHA-256 matched):
 * the check, half of a cold start's time for a 100-tree JSON model, is not done again. */
static int check_content(const char *path, ksv_model_format format, const char *data,
                         size_t len, bool checked, size_t *skip, ksv_err *err)
{
    *skip = 0;
    if (checked) {
        *skip = format == KSV_MODEL_LEGACY ? 0 : ksv_model_doc_lead(data, len);
        return 0;
    }
    if (format == KSV_MODEL_LEGACY) {
        const char *problem = legacy_layout_problem((const unsigned char *)data, len);
        return problem ? ksv_model_fail(err, path, 400, "%s", problem) : 0;
    }
    ksv_model_doc doc;
    int rc = ksv_model_doc_parse(path, data, len, KSV_DOC_SNIFF, &doc, err);
    ksv_model_doc_free(&doc);
    *skip = ksv_model_doc_lead(data, len);
    return rc;
}

/* Copies a prediction out of XGBoost's buffer after checking its shape: `width`
 * values per row when *width > 0, else any width that fits out_capacity floats, stored into
 * *width. */
static int copy_output(const bst_ulong *shape, bst_ulong dim, const float *result, size_t rows,
                       float *out, size_t out_capacity, size_t *width, ksv_err *err)
{
    if (dim < 1 || shape == NULL || result == NULL || shape[0] != rows)
        return ksv_err_set(err, 500, "xgboost predict: unexpected output shape");
    size_t per_row = 1;
    for (bst_ulong d = 1; d < dim; d++) {
        if (shape[d] == 0 || per_row > SIZE_MAX / shape[d])
            return ksv_err_set(err, 500, "xgboost predict: unexpected output shape");
        per_row *= (size_t)shape[d];
    }
    if (*width > 0 && per_row != *width)
        return ksv_err_set(err, 500, "xgboost predict: %zu outputs per row, expected %zu",
                           per_row, *width);
    if (per_row > out_capacity / rows)
        return ksv_err_set(err, 500, "xgboost predict: %zu outputs per row, more than %zu",
                           per_row, out_capacity / rows);
    memcpy(out, result, rows * per_row * sizeof(float));
    *width = per_row;
    return 0;
}

/* Predicts rows into out (see copy_output for `width`). */
static int booster_predict(BoosterHandle booster, bool inplace, const float *x, size_t rows,
                           size_t cols, float *out, size_t out_capacity, size_t *width,
                           ksv_err *err)
{
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *result = NULL;
    DMatrixHandle dmatrix = NULL;
    int rc;

    if (inplace) {
        char array_interface[160];
        snprintf(array_interface, sizeof array_interface,
                 "{\"data\":[%" PRIuPTR ",true],\"shape\":[%zu,%zu],\"typestr\":\"<f4\","
                 "\"version\":3}",
                 (uintptr_t)x, rows, cols);
        if (XGBoosterPredictFromDense(booster, array_interface, inplace_config, NULL, &shape,
                                      &dim, &result) != 0)
            return xgb_fail(err, 500, "xgboost predict");
    } else {
        if (XGDMatrixCreateFromMat_omp(x, (bst_ulong)rows, (bst_ulong)cols, __builtin_nanf(""),
                                       &dmatrix, 1) != 0)
            return xgb_fail(err, 500, "xgboost dmatrix");
        if (XGBoosterPredictFromDMatrix(booster, dmatrix, dmatrix_config, &shape, &dim,
                                        &result) != 0) {
            xgb_fail(err, 500, "xgboost predict");
            XGDMatrixFree(dmatrix);
            return -1;
        }
    }
    rc = copy_output(shape, dim, result, rows, out, out_capacity, width, err);
    if (dmatrix != NULL)
        XGDMatrixFree(dmatrix);
    return rc;
}

/* *num_outputs: as booster_predict's *width (0 on the first booster, to learn it). */
static int warm_up(BoosterHandle booster, bool inplace, size_t num_features, size_t *num_outputs,
                   ksv_err *err)
{
    /* Room for the widest output we accept per row at load time. */
    enum { MAX_OUTPUTS = 4096 };
    float *row = malloc(num_features * sizeof(float));
    float *out = malloc(MAX_OUTPUTS * sizeof(float));
    int rc = -1;

    if (row == NULL || out == NULL) {
        ksv_err_set(err, 500, "out of memory");
    } else {
        for (size_t i = 0; i < num_features; i++)
            row[i] = __builtin_nanf("");
        rc = booster_predict(booster, inplace, row, 1, num_features, out, MAX_OUTPUTS,
                             num_outputs, err);
        if (rc != 0 && err != NULL)
            err->status = 400;  /* a model that cannot predict one row is a bad model */
    }
    free(row);
    free(out);
    return rc;
}

/* Creates a booster from the model bytes and sets its threads (warm_up predicts first). */
static int make_booster(const char *path, const char *data, size_t len, const char *nthread,
                        BoosterHandle *out, ksv_err *err)
{
    BoosterHandle booster = NULL;

    if (XGBoosterCreate(NULL, 0, &booster) != 0)
        return xgb_fail(err, 500, "xgboost create booster");
    if (XGBoosterLoadModelFromBuffer(booster, data, (bst_ulong)len) != 0) {
        char what[96];
        snprintf(what, sizeof what, "model file %.60s", path);
        xgb_fail(err, 400, what);
        XGBoosterFree(booster);
        return -1;
    }
    if (XGBoosterSetParam(booster, "nthread", nthread) != 0) {
        xgb_fail(err, 500, "xgboost set nthread");
        XGBoosterFree(booster);
        return -1;
    }
    *out = booster;
    return 0;
}

/* Reads objective and booster names from the booster's JSON configuration. */
static int read_config(BoosterHandle booster, char *objective, size_t objective_size,
                       bool *is_tree, ksv_err *err)
{
    bst_ulong len = 0;
    const char *text = NULL;

    if (XGBoosterSaveJsonConfig(booster, &len, &text) != 0)
        return xgb_fail(err, 500, "xgboost save config");
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return ksv_err_set(err, 500, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    json_tokener_free(tok);
    if (root == NULL)
        return ksv_err_set(err, 500, "xgboost config is not JSON");

    json_object *learner = NULL, *node = NULL, *name = NULL;
    objective[0] = '\0';
    *is_tree = false;
    if (json_object_object_get_ex(root, "learner", &learner)) {
        if (json_object_object_get_ex(learner, "objective", &node) &&
            json_object_object_get_ex(node, "name", &name) &&
            json_object_is_type(name, json_type_string))
            snprintf(objective, objective_size, "%s", json_object_get_string(name));
        if (json_object_object_get_ex(learner, "gradient_booster", &node) &&
            json_object_object_get_ex(node, "name", &name) &&
            json_object_is_type(name, json_type_string)) {
            const char *gbm = json_object_get_string(name);
            *is_tree = strcmp(gbm, "gbtree") == 0 || strcmp(gbm, "dart") == 0;
        }
    }
    json_object_put(root);
    return 0;
}

static void xgb_unload(void *handle)
{
    xgb_model *model = handle;

    if (model == NULL)
        return;
    for (unsigned i = 0; i < model->n_boosters; i++) {
        if (model->boosters[i] != NULL)
            XGBoosterFree(model->boosters[i]);
    }
    free(model->boosters);
    free(model);
}

static int parse_options(const ksv_runtime_options *opts, bool *want_shared, unsigned *workers,
                         char *nthread, size_t nthread_size, ksv_err *err)
{
    const char *pool = opts != NULL ? opts->booster_pool : NULL;
    int threads = opts != NULL ? opts->predict_threads : 0;

    *workers = (opts != NULL && opts->workers > 0) ? opts->workers : 1;
    if (*workers > MAX_WORKERS)
        return ksv_err_set(err, 400, "%u workers: at most %d", *workers, MAX_WORKERS);
    if (pool == NULL || pool[0] == '\0' || strcmp(pool, "shared") == 0)
        *want_shared = true;
    else if (strcmp(pool, "per-worker") == 0)
        *want_shared = false;
    else
        return ksv_err_set(err, 400, "booster_pool \"%.40s\": want per-worker or shared", pool);
    if (threads < 0)
        return ksv_err_set(err, 400, "predict_threads %d: must be >= 0", threads);
    snprintf(nthread, nthread_size, "%d", threads == 0 ? 1 : threads);
    return 0;
}

/* ---- the fast-reload copy (see the top) ------------------------------------------------ */

static void reload_copy_path(const char *dir, const uint8_t source[32], char *out, size_t cap)
{
    char hex[65];
    ksv_sha256_digest_hex(source, hex);
    snprintf(out, cap, "%s/%s.ubj", dir, hex);
}

static void digest_of(const void *data, size_t len, uint8_t out[32])
{
    ksv_sha256 h;
    ksv_sha256_init(&h);
    ksv_sha256_update(&h, data, len);
    ksv_sha256_final(&h, out);
}

/* The copy of the checked source `source`, if it is there with the digest `want`. */
static char *read_reload_copy(const char *dir, const uint8_t source[32], const uint8_t want[32],
                              size_t *len)
{
    char path[4096];
    reload_copy_path(dir, source, path, sizeof path);
    char *data = NULL;
    ksv_err err = {0};
    uint8_t got[32];
    if (ksv_model_file_read(path, &data, len, &err) != 0)
        return NULL;
    digest_of(data, *len, got);
    if (memcmp(got, want, sizeof got) != 0) {
        free(data);
        return NULL;
    }
    return data;
}

/* Writes the booster's UBJSON copy for the checked source `source`; true with its digest. */
static bool write_reload_copy(BoosterHandle booster, const char *dir, const uint8_t source[32],
                              uint8_t digest[32])
{
    bst_ulong len = 0;
    const char *bytes = NULL;
    if (XGBoosterSaveModelToBuffer(booster, "{\"format\":\"ubj\"}", &len, &bytes) != 0 ||
        len == 0)
        return false;
    char path[4096];
    reload_copy_path(dir, source, path, sizeof path);
    ksv_err err = {0};
    if (ksv_write_file_atomic(path, bytes, (size_t)len, 0600, &err) != 0) {
        ksv_log(KSV_LOG_WARN, NULL, "no fast-reload copy of a model: %s", err.msg);
        return false;
    }
    digest_of(bytes, (size_t)len, digest);
    return true;
}

static int xgb_load(const char *path, const ksv_runtime_options *opts, void **out_model,
                    ksv_model_info *info, ksv_err *err)
{
    bool want_shared = false, is_tree = false;
    unsigned workers = 1;
    char nthread[16];
    ksv_model_format format = KSV_MODEL_JSON;
    char *data = NULL;
    size_t len = 0;
    bst_ulong num_features = 0;
    ksv_model_info fresh = {0};
    int major = 0, minor = 0, patch = 0;

    if (out_model == NULL || info == NULL)
        return ksv_err_set(err, 500, "xgboost load: missing output arguments");
    *out_model = NULL;
    if (path == NULL || path[0] == '\0')
        return ksv_err_set(err, 400, "model file: empty path");
    if (parse_options(opts, &want_shared, &workers, nthread, sizeof nthread, err) != 0 ||
        ksv_model_file_format(path, &format, err) != 0 ||
        ksv_model_file_read(path, &data, &len, err) != 0)
        return -1;
    uint8_t digest[32];
    digest_of(data, len, digest);
    bool checked = opts && opts->checked_sha256 &&
                   memcmp(opts->checked_sha256, digest, sizeof digest) == 0;
    /* The same checked bytes as before: load them from the UBJSON copy if it is intact. */
    bool from_copy = false;
    if (checked && format == KSV_MODEL_JSON && opts->reload_dir && opts->reload_sha256) {
        size_t copy_len = 0;
        char *copy = read_reload_copy(opts->reload_dir, digest, opts->reload_sha256, &copy_len);
        if (copy) {
            free(data);
            data = copy;
            len = copy_len;
            format = KSV_MODEL_UBJSON;
            from_copy = true;
        }
    }
    size_t skip = 0;
    if (!from_copy && forest_lightgbm_sniff(data, len)) {
        free(data);
        return ksv_model_fail(err, path, 400, "a LightGBM text model: runtime ksv-forest (or "
                              "auto) serves it; ksv-xgboost reads XGBoost models only");
    }
    if (check_content(path, format, data, len, checked, &skip, err) != 0) {
        free(data);
        return -1;
    }
    const char *model_bytes = data + skip;
    size_t model_len = len - skip;

    xgb_model *model = calloc(1, sizeof *model);
    BoosterHandle first = NULL;
    if (model == NULL) {
        free(data);
        return ksv_err_set(err, 500, "out of memory");
    }
    if (make_booster(path, model_bytes, model_len, nthread, &first, err) != 0)
        goto fail;
    if (XGBoosterGetNumFeature(first, &num_features) != 0) {
        xgb_fail(err, 500, "xgboost num_feature");
        XGBoosterFree(first);
        goto fail;
    }
    if (num_features == 0) {
        ksv_err_set(err, 400, "model file %s: model has no features", path);
        XGBoosterFree(first);
        goto fail;
    }
    if (read_config(first, fresh.objective, sizeof fresh.objective, &is_tree, err) != 0) {
        XGBoosterFree(first);
        goto fail;
    }
    if (format == KSV_MODEL_LEGACY && !checked && check_loaded_model(first, path, err) != 0) {
        XGBoosterFree(first);
        goto fail;
    }
    model->num_features = (size_t)num_features;
    model->shared = want_shared && is_tree;
    model->inplace = is_tree;
    model->n_boosters = model->shared ? 1 : workers;
    model->boosters = calloc(model->n_boosters, sizeof *model->boosters);
    if (model->boosters == NULL) {
        ksv_err_set(err, 500, "out of memory");
        XGBoosterFree(first);
        goto fail;
    }
    model->boosters[0] = first;
    if (want_shared && !is_tree)
        ksv_log(KSV_LOG_INFO, NULL, "model %s: not a tree booster, using per-worker boosters "
                "instead of a shared one", path);
    model->num_outputs = 0;
    if (warm_up(first, model->inplace, model->num_features, &model->num_outputs, err) != 0)
        goto fail;
    for (unsigned i = 1; i < model->n_boosters; i++) {
        size_t width = model->num_outputs;
        if (make_booster(path, model_bytes, model_len, nthread, &model->boosters[i], err) != 0 ||
            warm_up(model->boosters[i], model->inplace, model->num_features, &width, err) != 0)
            goto fail;
    }
    free(data);

    XGBoostVersion(&major, &minor, &patch);
    snprintf(fresh.version, sizeof fresh.version, "%d.%d.%d", major, minor, patch);
    fresh.num_features = model->num_features;
    fresh.num_outputs = model->num_outputs;
    fresh.has_checked_sha256 = true;
    memcpy(fresh.checked_sha256, digest, sizeof digest);
    if (from_copy) {
        fresh.from_reload_copy = true;
        fresh.has_reload_sha256 = true;
        memcpy(fresh.reload_sha256, opts->reload_sha256, sizeof fresh.reload_sha256);
    } else if (format == KSV_MODEL_JSON && opts && opts->reload_dir) {
        fresh.has_reload_sha256 = write_reload_copy(model->boosters[0], opts->reload_dir,
                                                    digest, fresh.reload_sha256);
    }
    *info = fresh;
    *out_model = model;
    return 0;

fail:
    free(data);
    xgb_unload(model);
    return -1;
}

static int xgb_predict(void *handle, unsigned worker, const float *x, size_t rows, size_t cols,
                       float *out, ksv_err *err)
{
    xgb_model *model = handle;

    if (model == NULL || (rows > 0 && (x == NULL || out == NULL)))
        return ksv_err_set(err, 500, "xgboost predict: missing arguments");
    if (cols != model->num_features)
        return ksv_err_set(err, 400, "expected %zu features per row, got %zu",
                           model->num_features, cols);
    if (rows == 0)
        return 0;
    if (rows > SIZE_MAX / sizeof(float) / model->num_outputs ||
        rows > SIZE_MAX / sizeof(float) / cols)
        return ksv_err_set(err, 413, "%zu rows: too many", rows);
    BoosterHandle booster;
    if (model->shared) {
        booster = model->boosters[0];
    } else if (worker < model->n_boosters) {
        booster = model->boosters[worker];
    } else {
        return ksv_err_set(err, 500, "xgboost predict: worker %u out of range (%u boosters)",
                           worker, model->n_boosters);
    }
    size_t width = model->num_outputs;
    return booster_predict(booster, model->inplace, x, rows, cols, out, rows * width, &width,
                           err);
}

static void xgb_build_info(ksv_runtime_build *b)
{
    int major, minor, patch;
    XGBoostVersion(&major, &minor, &patch);
    snprintf(b->xgboost, sizeof b->xgboost, "%d.%d.%d", major, minor, patch);
}

const ksv_runtime_ops ksv_runtime_xgboost = {
    .name = "ksv-xgboost",
    .build_info = xgb_build_info,
    .load = xgb_load,
    .unload = xgb_unload,
    .predict = xgb_predict,
};
