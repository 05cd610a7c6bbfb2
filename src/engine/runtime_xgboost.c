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
#include "common/strbuf.h"
#include "engine/forest/forest_ubjson.h"
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

/* ---- the model document, as XGBoost's loaders would read it --------------------------
 *
 * XGBoost 1.7.4 trusts what a model file says: its UBJSON reader trusts lengths (a
 * truncated .ubj makes it read past its buffer, found with ASan), its loader and predictor
 * index with node numbers, features and categories unchecked. So the document is read
 * first with ksv's one model-document reader (json-c for JSON, forest_ubjson for UBJSON,
 * bounded and strict) and checked here; only then does XGBoost see the bytes. */

enum { MAX_FEATURES = 1 << 24, MAX_TREE_NODES = 1 << 28 };

static json_object *member(json_object *object, const char *key)
{
    json_object *v = NULL;
    return json_object_is_type(object, json_type_object) &&
                   json_object_object_get_ex(object, key, &v)
               ? v
               : NULL;
}

/* Follows a NULL-terminated list of keys. */
static json_object *path_get(json_object *from, const char *const *keys)
{
    for (; from && *keys; keys++)
        from = member(from, *keys);
    return from;
}

/* An integer stored as a number or, as XGBoost writes its parameters, a decimal string. */
static bool doc_int(json_object *v, int64_t *out)
{
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *digits = json_object_get_string(v);
    char *end;
    if (!*digits || strlen(digits) >= 24)
        return false;
    errno = 0;
    long long parsed = strtoll(digits, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = parsed;
    return true;
}

/* The number of elements of an array value, or -1. */
static int64_t doc_array_length(json_object *v)
{
    return json_object_is_type(v, json_type_array) ? (int64_t)json_object_array_length(v) : -1;
}

/* Reads an integer array of exactly n elements into out. */
static bool doc_read_ints(json_object *v, int64_t n, int32_t *out)
{
    if (doc_array_length(v) != n)
        return false;
    for (int64_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(v, (size_t)i);
        if (!json_object_is_type(item, json_type_int))
            return false;
        int64_t value = json_object_get_int64(item);
        if (value < INT32_MIN || value > INT32_MAX)
            return false;
        out[i] = (int32_t)value;
    }
    return true;
}

/* Reads an optional integer array of exactly n elements (absent: *present = false). */
static bool doc_read_optional_ints(json_object *object, const char *key, int64_t n,
                                   int32_t *out, bool *present)
{
    json_object *ref = member(object, key);
    *present = ref != NULL;
    return !*present || doc_read_ints(ref, n, out);
}

/* Categorical splits: node i's categories are categories[segments[k], + sizes[k]) where
 * nodes[k] == i; XGBoost's loader indexes with those numbers unchecked. */
static const char *check_categories(json_object *tree, int64_t n_nodes, const int32_t *split_type,
                                    bool have_split_type)
{
    json_object *nodes_ref = member(tree, "categories_nodes");
    int64_t k = nodes_ref ? doc_array_length(nodes_ref) : 0;
    const char *problem = NULL;

    if (k < 0)
        return "bad categories_nodes";
    if (k == 0) {
        for (int64_t i = 0; have_split_type && i < n_nodes; i++) {
            if (split_type[i] != 0)
                return "categorical split without categories";
        }
        return NULL;
    }
    json_object *segments_ref = member(tree, "categories_segments");
    json_object *sizes_ref = member(tree, "categories_sizes");
    json_object *values_ref = member(tree, "categories");
    if (k > n_nodes || !segments_ref || !sizes_ref || !values_ref)
        return "incomplete categories";
    int64_t n_values = doc_array_length(values_ref);
    int32_t *nodes = malloc((size_t)k * 3 * sizeof(int32_t));
    int32_t *values = n_values > 0 ? malloc((size_t)n_values * sizeof(int32_t)) : NULL;
    if (nodes == NULL || (n_values > 0 && values == NULL)) {
        free(nodes);
        free(values);
        return "out of memory";
    }
    int32_t *segments = nodes + k, *sizes = segments + k;
    if (n_values < 1 || !doc_read_ints(nodes_ref, k, nodes) ||
        !doc_read_ints(segments_ref, k, segments) || !doc_read_ints(sizes_ref, k, sizes) ||
        !doc_read_ints(values_ref, n_values, values))
        problem = "category arrays disagree";
    for (int64_t i = 0; problem == NULL && i < k; i++) {
        if (nodes[i] < 0 || nodes[i] >= n_nodes || (i > 0 && nodes[i] <= nodes[i - 1]))
            problem = "categorical node out of range";
        else if (segments[i] < 0 || sizes[i] < 1 || segments[i] > n_values ||
                 sizes[i] > n_values - segments[i])
            problem = "category segment out of range";
    }
    /* XGBoost keeps categories as exact integers in a float: below 2^24. */
    for (int64_t i = 0; problem == NULL && i < n_values; i++) {
        if (values[i] < 0 || values[i] >= (1 << 24))
            problem = "category value out of range";
    }
    free(nodes);
    free(values);
    return problem;
}

/* One tree as XGBoost loads and walks it. Loading links every node to its parent
 * (parents[i] must be a node); prediction goes from node 0 through internal nodes
 * (left != -1) to left, left + 1 (numeric branch) or right (missing values, categorical
 * splits), so right must be left + 1, both in range, each node reached at most once (a
 * cycle would make prediction loop forever), and the feature read in range. */
static const char *check_tree(json_object *tree, int64_t num_feature)
{
    static const char *const NUM_NODES[] = {"tree_param", "num_nodes", NULL};
    int64_t n;
    bool have_split_type = false, have_parents = false;
    json_object *ref = path_get(tree, NUM_NODES);

    if (!ref || !doc_int(ref, &n) || n < 1 || n > MAX_TREE_NODES)
        return "bad num_nodes";
    int32_t *left = malloc((size_t)n * 6 * sizeof(int32_t));
    if (left == NULL)
        return "out of memory";
    int32_t *right = left + n, *split = right + n, *parent = split + n, *type = parent + n;
    int32_t *stack = type + n;
    unsigned char *seen = calloc((size_t)n, 1);
    const char *problem = NULL;
    size_t depth = 0;
    json_object *left_ref = member(tree, "left_children");
    json_object *right_ref = member(tree, "right_children");
    json_object *split_ref = member(tree, "split_indices");

    if (seen == NULL)
        problem = "out of memory";
    else if (!left_ref || !right_ref || !split_ref)
        problem = "missing node arrays";
    else if (!doc_read_ints(left_ref, n, left) || !doc_read_ints(right_ref, n, right) ||
             !doc_read_ints(split_ref, n, split) ||
             !doc_read_optional_ints(tree, "parents", n, parent, &have_parents) ||
             !doc_read_optional_ints(tree, "split_type", n, type, &have_split_type))
        problem = "node arrays do not match num_nodes";
    for (int64_t i = 1; problem == NULL && have_parents && i < n; i++) {
        if (parent[i] < 0 || parent[i] >= n)
            problem = "parent index out of range";
    }
    for (int64_t i = 0; problem == NULL && have_split_type && i < n; i++) {
        if (type[i] != 0 && type[i] != 1)
            problem = "unknown split type";
    }
    if (problem == NULL)
        problem = check_categories(tree, n, type, have_split_type);
    if (problem == NULL)
        stack[depth++] = 0;
    while (problem == NULL && depth > 0) {
        int32_t node = stack[--depth];
        if (seen[node]) {
            problem = "a node is reached twice (cycle)";
            break;
        }
        seen[node] = 1;
        if (left[node] == -1)
            continue;
        if (left[node] <= 0 || left[node] >= n - 1 || right[node] != left[node] + 1)
            problem = "child index out of range";
        else if (split[node] < 0 || split[node] >= num_feature)
            problem = "split feature out of range";
        else {
            /* Each node is pushed at most once before `seen` stops the walk: depth <= n. */
            stack[depth++] = left[node];
            stack[depth++] = right[node];
        }
    }
    free(seen);
    free(left);
    return problem;
}

/* Checks an XGBoost model document for what XGBoost's loader and predictor use without
 * checking: tree structure, feature indexes, categories, output groups. A corrupt file
 * would otherwise crash the loader or hang or read out of bounds on the request path.
 * Returns NULL or what is wrong. */
static const char *check_model_document(json_object *root, char *detail, size_t detail_size)
{
    static const char *const MPARAM[] = {"learner", "learner_model_param", NULL};
    static const char *const GBM[] = {"learner", "gradient_booster", NULL};
    int64_t num_feature, num_class = 0, num_target = 1;
    json_object *ref;

    if (!json_object_is_type(root, json_type_object))
        return "not a UBJSON object";
    json_object *mparam = path_get(root, MPARAM), *gbm = path_get(root, GBM);
    json_object *name_ref = member(gbm, "name");
    if (!(ref = member(mparam, "num_feature")) || !doc_int(ref, &num_feature) ||
        !json_object_is_type(name_ref, json_type_string))
        return "unexpected model layout";
    if ((ref = member(mparam, "num_class")) && !doc_int(ref, &num_class))
        return "bad num_class";
    if ((ref = member(mparam, "num_target")) && !doc_int(ref, &num_target))
        return "bad num_target";
    if (num_feature < 1 || num_feature > MAX_FEATURES || num_class < 0 || num_class > 1 << 20 ||
        num_target < 1 || num_target > 1 << 20)
        return "num_feature, num_class or num_target out of range";
    int64_t groups = num_class > num_target ? num_class : num_target;
    const char *name = json_object_get_string(name_ref);
    json_object *model;

    if (strcmp(name, "gblinear") == 0) {
        /* One weight per feature and output group, plus one bias per group. */
        if (!(model = member(gbm, "model")) || !(ref = member(model, "weights")) ||
            doc_array_length(ref) != (num_feature + 1) * groups)
            return "gblinear weights do not match num_feature";
        return NULL;
    }
    if (strcmp(name, "dart") == 0) {
        if (!(model = member(member(gbm, "gbtree"), "model")))
            return "dart without trees";
    } else if (strcmp(name, "gbtree") != 0 || !(model = member(gbm, "model"))) {
        return "unknown booster";
    }

    static const char *const NUM_TREES[] = {"gbtree_model_param", "num_trees", NULL};
    int64_t num_trees;
    json_object *trees = member(model, "trees"), *info = member(model, "tree_info");
    if (!(ref = path_get(model, NUM_TREES)) || !doc_int(ref, &num_trees) ||
        doc_array_length(trees) != num_trees || doc_array_length(info) != num_trees)
        return "trees, tree_info and num_trees disagree";
    for (int64_t index = 0; index < num_trees; index++) {
        json_object *group_ref = json_object_array_get_idx(info, (size_t)index);
        const char *problem = NULL;
        int64_t group;
        if (!json_object_is_type(group_ref, json_type_int) ||
            (group = json_object_get_int64(group_ref)) < 0 || group >= groups)
            problem = "output group out of range";
        else
            problem = check_tree(json_object_array_get_idx(trees, (size_t)index), num_feature);
        if (problem != NULL) {
            snprintf(detail, detail_size, "tree %" PRId64 ": %s", index, problem);
            return detail;
        }
    }
    return NULL;
}

/* Reads a model document with ksv's one reader: JSON text with json-c, UBJSON with
 * forest_ubjson (which refuses malformed or truncated input without reading past it).
 * NULL with err set when it is not one. */
static json_object *read_document(const char *path, const unsigned char *u, size_t len,
                                  ksv_err *err)
{
    if (len >= 2 && u[0] == '{' && (u[1] == '"' || u[1] == '}' || isspace(u[1]))) {
        json_tokener *tok = json_tokener_new();
        json_object *root = NULL;
        if (tok == NULL) {
            ksv_err_set(err, 500, "out of memory");
            return NULL;
        }
        if (len <= INT32_MAX)
            root = json_tokener_parse_ex(tok, (const char *)u, (int)len);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        json_tokener_free(tok);
        if (root == NULL || jerr != json_tokener_success) {
            json_object_put(root);
            ksv_err_set(err, 400, "model file %s: not valid JSON (%s)", path,
                        len > INT32_MAX ? "too large" : json_tokener_error_desc(jerr));
            return NULL;
        }
        return root;
    }
    ksv_err why;
    json_object *root = forest_ubjson_parse(u, len, &why);
    if (root == NULL)
        ksv_err_set(err, why.status == 500 ? 500 : 400,
                    why.status == 500 ? "out of memory" : "model file %s: malformed or truncated UBJSON",
                    path);
    return root;
}

/* Checks the model file's own document before XGBoost parses it (see check_model_document). */
static int check_input_document(const char *path, const char *bytes, size_t len, ksv_err *err)
{
    char detail[96];
    json_object *root = read_document(path, (const unsigned char *)bytes, len, err);
    if (root == NULL)
        return -1;
    const char *problem = check_model_document(root, detail, sizeof detail);
    json_object_put(root);
    if (problem != NULL)
        return ksv_err_set(err, 400, "model file %s: %s", path, problem);
    return 0;
}

/* Checks the model as XGBoost holds it after loading (for the legacy binary format, whose
 * nodes XGBoost reads as raw structs), re-serialized as UBJSON by XGBoost itself. */
static int check_loaded_model(BoosterHandle booster, const char *path, ksv_err *err)
{
    bst_ulong len = 0;
    const char *bytes = NULL;
    char detail[96];

    if (XGBoosterSaveModelToBuffer(booster, "{\"format\":\"ubj\"}", &len, &bytes) != 0)
        return xgb_fail(err, 500, "xgboost save model");
    ksv_err why;
    json_object *root = forest_ubjson_parse((const unsigned char *)bytes, (size_t)len, &why);
    if (root == NULL)
        return ksv_err_set(err, 500, "model file %s: XGBoost's own UBJSON is unreadable", path);
    const char *problem = check_model_document(root, detail, sizeof detail);
    json_object_put(root);
    if (problem != NULL)
        return ksv_err_set(err, 400, "model file %s: %s", path, problem);
    return 0;
}

/* A look at the content before XGBoost's loaders see it: anything not starting with '{'
 * goes to XGBoost's legacy binary reader. *skip: leading bytes to drop, a UTF-8 byte order
 * mark and whitespace before a JSON document, which XGBoost's buffer loader does not
 * expect. XGBoost tells JSON from UBJSON by content, whatever the file is called, and so
 * does this; the document itself is read by check_input_document. */
static int check_content(const char *path, model_format format, const char *data, size_t len,
                         size_t *skip, ksv_err *err)
{
    const unsigned char *u = (const unsigned char *)data;

    *skip = 0;
    if (format == FORMAT_LEGACY) {
        const char *problem = legacy_layout_problem(u, len);
        if (problem == NULL)
            return 0;
        return ksv_err_set(err, 400, "model file %s: %s", path, problem);
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
    if (format != FORMAT_LEGACY && check_input_document(path, model_bytes, model_len, err) != 0) {
        free(data);
        return -1;
    }

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
    if (format == FORMAT_LEGACY && check_loaded_model(first, path, err) != 0) {
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
