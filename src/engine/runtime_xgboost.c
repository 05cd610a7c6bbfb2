/* runtime_xgboost.c: the ksv-xgboost runtime: XGBoost models (.json, .ubj, legacy .bst)
 * served through libxgboost's C API, exact by construction.
 *
 * The model file is read once into memory and every booster is loaded from those bytes.
 * Booster pools (ksv_runtime_options.booster_pool):
 *  - "per-worker" (default): one booster per worker index, so calls never share one.
 *  - "shared": one booster for all workers. XGBoost documents prediction as thread-safe for
 *    tree boosters since 1.4 (doc/prediction.rst, "Thread Safety", dmlc/xgboost
 *    release_1.7.0); the output buffer it returns is per calling thread. Configuration is
 *    lazy and happens on the first prediction, which load() does (warm-up) before the
 *    booster is shared. A gblinear model is outside that guarantee and gets per-worker
 *    boosters even when "shared" is asked for.
 * Tree boosters (gbtree, dart) predict in place from the caller's rows. XGBoost 1.7 has no
 * in-place prediction for gblinear ("Inplace predict is not supported by current booster"),
 * so such a model predicts through a DMatrix made for each call.
 * Each booster's "nthread" is set to predict_threads (default 1): the engine already runs
 * one request per core, and OpenMP inside a call only adds overhead there. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <xgboost/c_api.h>

#include "common/log.h"
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

typedef enum { FORMAT_JSON, FORMAT_UBJ, FORMAT_LEGACY } model_format;

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

static int format_from_path(const char *path, model_format *format, ksv_err *err)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');

    if (dot != NULL && (slash == NULL || dot > slash)) {
        if (strcasecmp(dot, ".json") == 0) {
            *format = FORMAT_JSON;
            return 0;
        }
        if (strcasecmp(dot, ".ubj") == 0) {
            *format = FORMAT_UBJ;
            return 0;
        }
        if (strcasecmp(dot, ".bst") == 0) {
            *format = FORMAT_LEGACY;
            return 0;
        }
    }
    return ksv_err_set(err, 400, "model file %s: unsupported extension (want .json, .ubj or .bst)",
                       path);
}

/* Reads the whole file; *data is malloc'd and owned by the caller. */
static int read_model_file(const char *path, char **data, size_t *len, ksv_err *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        int status = (errno == ENOENT || errno == ENOTDIR) ? 404 : 400;
        return ksv_err_set(err, status, "model file %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return ksv_err_set(err, 500, "model file %s: %s", path, strerror(saved));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ksv_err_set(err, 400, "model file %s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return ksv_err_set(err, 400, "model file %s: empty", path);
    }
    if ((uintmax_t)st.st_size > (uintmax_t)SIZE_MAX / 2) {
        close(fd);
        return ksv_err_set(err, 400, "model file %s: too large", path);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size);
    if (buf == NULL) {
        close(fd);
        return ksv_err_set(err, 500, "model file %s: out of memory for %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return ksv_err_set(err, 500, "model file %s: read: %s", path, strerror(saved));
        }
        got += (size_t)n;
    }
    close(fd);
    *data = buf;
    *len = size;
    return 0;
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* The legacy layout starts with an optional "binf" tag, a 136-byte parameter block and two
 * length-prefixed names (objective, booster). XGBoost trusts those lengths and resizes a
 * string to them, so garbage asks for terabytes; check them here first. */
static bool legacy_header_ok(const unsigned char *data, size_t len)
{
    enum { PARAM_BYTES = 136, MAX_NAME = 256 };
    size_t pos = 0;

    if (len >= 4 && memcmp(data, "bs64", 4) == 0)
        return true;    /* base64 wrapping: XGBoost decodes and checks it itself */
    if (len >= 4 && memcmp(data, "binf", 4) == 0)
        pos = 4;
    if (len - pos < PARAM_BYTES)
        return false;
    pos += PARAM_BYTES;
    for (int name = 0; name < 2; name++) {
        if (len - pos < 8)
            return false;
        uint64_t n = read_le64(data + pos);
        pos += 8;
        if (n == 0 || n > MAX_NAME || n > len - pos)
            return false;
        for (uint64_t i = 0; i < n; i++) {
            if (!isgraph(data[pos + i]))
                return false;
        }
        pos += (size_t)n;
    }
    return true;
}

/* A bounds-checked walk over a UBJSON document. XGBoost 1.7.4's UBJSON reader trusts the
 * lengths in the file (a truncated .ubj makes it read past its buffer, found with ASan), so
 * a document is walked here first: every length and count must fit in the bytes left, and
 * nesting is bounded (the reader recurses). */
typedef struct ubj_cursor {
    const unsigned char *p;
    size_t left;
} ubj_cursor;

enum { UBJ_MAX_DEPTH = 64 };

static size_t ubj_scalar_size(unsigned char marker)
{
    switch (marker) {
    case 'i': case 'U': case 'C': return 1;
    case 'I': return 2;
    case 'l': case 'd': return 4;
    case 'L': case 'D': return 8;
    default: return 0;
    }
}

static bool ubj_skip(ubj_cursor *c, uint64_t n)
{
    if (n > c->left)
        return false;
    c->p += n;
    c->left -= (size_t)n;
    return true;
}

static bool ubj_byte(ubj_cursor *c, unsigned char *out)
{
    if (c->left == 0)
        return false;
    *out = *c->p;
    return ubj_skip(c, 1);
}

/* A length or count: an integer with its own type marker, big-endian, not negative. */
static bool ubj_count(ubj_cursor *c, uint64_t *out)
{
    unsigned char marker;
    if (!ubj_byte(c, &marker))
        return false;
    if (marker != 'i' && marker != 'U' && marker != 'I' && marker != 'l' && marker != 'L')
        return false;
    size_t n = ubj_scalar_size(marker);
    if (c->left < n || (marker != 'U' && (c->p[0] & 0x80)))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | c->p[i];
    *out = v;
    return ubj_skip(c, n);
}

static bool ubj_string(ubj_cursor *c)
{
    uint64_t n;
    return ubj_count(c, &n) && ubj_skip(c, n);
}

static bool ubj_value(ubj_cursor *c, unsigned char marker, int depth);

static bool ubj_container(ubj_cursor *c, bool object, int depth)
{
    unsigned char marker, type;
    uint64_t count;

    if (depth > UBJ_MAX_DEPTH)
        return false;
    if (c->left > 0 && c->p[0] == '$') {
        /* Typed array, as XGBoost writes its numeric arrays: '$' TYPE '#' COUNT DATA. */
        size_t size;
        if (object || !ubj_skip(c, 1) || !ubj_byte(c, &type) ||
            (size = ubj_scalar_size(type)) == 0 || !ubj_byte(c, &marker) || marker != '#' ||
            !ubj_count(c, &count) || count > c->left / size)
            return false;
        return ubj_skip(c, count * size);
    }
    if (c->left > 0 && c->p[0] == '#') {
        /* Counted container; each element takes at least one byte, so this ends. */
        if (!ubj_skip(c, 1) || !ubj_count(c, &count))
            return false;
        for (uint64_t i = 0; i < count; i++) {
            if ((object && !ubj_string(c)) || !ubj_byte(c, &marker) ||
                !ubj_value(c, marker, depth))
                return false;
        }
        return true;
    }
    for (;;) {
        if (c->left == 0)
            return false;
        if (c->p[0] == (object ? '}' : ']'))
            return ubj_skip(c, 1);
        if ((object && !ubj_string(c)) || !ubj_byte(c, &marker) || !ubj_value(c, marker, depth))
            return false;
    }
}

static bool ubj_value(ubj_cursor *c, unsigned char marker, int depth)
{
    switch (marker) {
    case '{': return ubj_container(c, true, depth + 1);
    case '[': return ubj_container(c, false, depth + 1);
    case 'Z': case 'T': case 'F': case 'N': return true;
    case 'S': case 'H': return ubj_string(c);
    default: {
        size_t size = ubj_scalar_size(marker);
        return size > 0 && ubj_skip(c, size);
    }
    }
}

static bool ubj_document_ok(const unsigned char *data, size_t len)
{
    ubj_cursor c = {data, len};
    unsigned char marker;
    return ubj_byte(&c, &marker) && marker == '{' && ubj_value(&c, marker, 0);
}

/* A look at the content before XGBoost's loaders see it: anything not starting with '{'
 * goes to XGBoost's legacy binary reader, and a UBJSON document to a reader that trusts its
 * lengths. *skip: leading bytes to drop, a UTF-8 byte order mark and whitespace before a
 * JSON document, which XGBoost's buffer loader does not expect. XGBoost tells JSON from
 * UBJSON by content, whatever the file is called, and so does this. */
static int check_content(const char *path, model_format format, const char *data, size_t len,
                         size_t *skip, ksv_err *err)
{
    const unsigned char *u = (const unsigned char *)data;

    *skip = 0;
    if (format == FORMAT_LEGACY) {
        if (legacy_header_ok(u, len))
            return 0;
        return ksv_err_set(err, 400, "model file %s: not an XGBoost binary (.bst) model", path);
    }
    if (format == FORMAT_JSON) {
        if (len >= 3 && memcmp(u, "\xef\xbb\xbf", 3) == 0)
            *skip = 3;
        while (*skip < len && isspace(u[*skip]))
            (*skip)++;
        u += *skip;
        len -= *skip;
    }
    if (len < 2 || u[0] != '{')
        return ksv_err_set(err, 400, "model file %s: not an XGBoost %s model", path,
                           format == FORMAT_JSON ? "JSON" : "UBJSON");
    if (u[1] == '"' || u[1] == '}' || isspace(u[1]))
        return 0;   /* JSON text: XGBoost's JSON parser checks its own bounds */
    if (!ubj_document_ok(u, len))
        return ksv_err_set(err, 400, "model file %s: malformed or truncated UBJSON", path);
    return 0;
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
    }
    free(row);
    free(out);
    return rc;
}

/* Creates a booster from the model bytes, sets its threads and runs the first prediction. */
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
    if (pool == NULL || pool[0] == '\0' || strcmp(pool, "per-worker") == 0)
        *want_shared = false;
    else if (strcmp(pool, "shared") == 0)
        *want_shared = true;
    else
        return ksv_err_set(err, 400, "booster_pool \"%.40s\": want per-worker or shared", pool);
    if (threads < 0)
        return ksv_err_set(err, 400, "predict_threads %d: must be >= 0", threads);
    snprintf(nthread, nthread_size, "%d", threads == 0 ? 1 : threads);
    return 0;
}

static int xgb_load(const char *path, const ksv_runtime_options *opts, void **out_model,
                    ksv_model_info *info, ksv_err *err)
{
    bool want_shared = false, is_tree = false;
    unsigned workers = 1;
    char nthread[16];
    model_format format = FORMAT_JSON;
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
        format_from_path(path, &format, err) != 0 ||
        read_model_file(path, &data, &len, err) != 0)
        return -1;
    size_t skip = 0;
    if (check_content(path, format, data, len, &skip, err) != 0) {
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

const ksv_runtime_ops ksv_runtime_xgboost = {
    .name = "ksv-xgboost",
    .load = xgb_load,
    .unload = xgb_unload,
    .predict = xgb_predict,
};
