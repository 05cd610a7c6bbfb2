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

/* An integer of UBJSON type `marker` (big-endian). */
static bool ubj_int(ubj_cursor *c, unsigned char marker, int64_t *out)
{
    if (marker != 'i' && marker != 'U' && marker != 'I' && marker != 'l' && marker != 'L')
        return false;
    size_t n = ubj_scalar_size(marker);
    if (c->left < n)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | c->p[i];
    if (marker != 'U' && n < 8 && (c->p[0] & 0x80))
        v |= ~(uint64_t)0 << (8 * n);  /* sign-extend */
    *out = (int64_t)v;
    return ubj_skip(c, n);
}

/* A length or count: an integer with its own type marker, not negative. */
static bool ubj_count(ubj_cursor *c, uint64_t *out)
{
    unsigned char marker;
    int64_t v;
    if (!ubj_byte(c, &marker) || !ubj_int(c, marker, &v) || v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
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

/* Navigation in a UBJSON document already walked by ubj_document_ok, so lengths are known
 * to fit: a value is its marker and the bytes after it. */
typedef struct ubj_ref {
    unsigned char marker;
    ubj_cursor at;
} ubj_ref;

static bool ubj_get(ubj_ref object, const char *key, ubj_ref *out)
{
    size_t key_len = strlen(key);
    ubj_cursor c = object.at;

    if (object.marker != '{')
        return false;
    while (c.left > 0 && c.p[0] != '}') {
        uint64_t n;
        unsigned char marker;
        if (!ubj_count(&c, &n) || n > c.left)
            return false;
        bool match = n == key_len && memcmp(c.p, key, key_len) == 0;
        if (!ubj_skip(&c, n) || !ubj_byte(&c, &marker))
            return false;
        if (match) {
            *out = (ubj_ref){marker, c};
            return true;
        }
        if (!ubj_value(&c, marker, 1))
            return false;
    }
    return false;
}

/* Follows a NULL-terminated list of keys. */
static bool ubj_path(ubj_ref from, const char *const *keys, ubj_ref *out)
{
    for (; *keys != NULL; keys++) {
        if (!ubj_get(from, *keys, &from))
            return false;
    }
    *out = from;
    return true;
}

/* An integer stored as a number or, as XGBoost writes its parameters, a decimal string. */
static bool ubj_ref_int(ubj_ref v, int64_t *out)
{
    if (v.marker != 'S')
        return ubj_int(&v.at, v.marker, out);
    uint64_t n;
    char digits[24];
    char *end;
    if (!ubj_count(&v.at, &n) || n == 0 || n >= sizeof digits || n > v.at.left)
        return false;
    memcpy(digits, v.at.p, (size_t)n);
    digits[n] = '\0';
    errno = 0;
    long long parsed = strtoll(digits, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = parsed;
    return true;
}

/* The elements of an array, typed ('$' TYPE '#' COUNT), counted ('#' COUNT) or open. */
typedef struct ubj_items {
    ubj_cursor c;
    unsigned char type;     /* typed arrays: the element marker; else 0 */
    bool counted;
    uint64_t left;
} ubj_items;

static bool ubj_items_open(ubj_ref v, ubj_items *it)
{
    unsigned char marker;
    *it = (ubj_items){.c = v.at};
    if (v.marker != '[')
        return false;
    if (it->c.left > 0 && it->c.p[0] == '$') {
        it->counted = true;
        return ubj_skip(&it->c, 1) && ubj_byte(&it->c, &it->type) && ubj_byte(&it->c, &marker) &&
               marker == '#' && ubj_count(&it->c, &it->left);
    }
    if (it->c.left > 0 && it->c.p[0] == '#') {
        it->counted = true;
        return ubj_skip(&it->c, 1) && ubj_count(&it->c, &it->left);
    }
    return true;
}

/* 1: *out is the next element (its value is skipped over); 0: end; -1: malformed. */
static int ubj_items_next(ubj_items *it, ubj_ref *out)
{
    unsigned char marker = it->type;
    if (it->counted) {
        if (it->left == 0)
            return 0;
        it->left--;
    } else {
        if (it->c.left == 0)
            return -1;
        if (it->c.p[0] == ']')
            return 0;
    }
    if (marker == 0 && !ubj_byte(&it->c, &marker))
        return -1;
    *out = (ubj_ref){marker, it->c};
    return ubj_value(&it->c, marker, 1) ? 1 : -1;
}

/* Reads an integer array of exactly n elements into out. */
static bool ubj_read_ints(ubj_ref v, int64_t n, int32_t *out)
{
    ubj_items it;
    ubj_ref item;
    int64_t value, i = 0;
    int rc;

    if (!ubj_items_open(v, &it))
        return false;
    while ((rc = ubj_items_next(&it, &item)) == 1) {
        if (i >= n || !ubj_int(&item.at, item.marker, &value) || value < INT32_MIN ||
            value > INT32_MAX)
            return false;
        out[i++] = (int32_t)value;
    }
    return rc == 0 && i == n;
}

enum { MAX_FEATURES = 1 << 24, MAX_TREE_NODES = 1 << 28 };

/* Reads an optional integer array of exactly n elements (absent: *present = false). */
static bool ubj_read_optional_ints(ubj_ref object, const char *key, int64_t n, int32_t *out,
                                   bool *present)
{
    ubj_ref ref;
    *present = ubj_get(object, key, &ref);
    return !*present || ubj_read_ints(ref, n, out);
}

/* The number of elements of an array value, or -1. */
static int64_t ubj_array_length(ubj_ref v)
{
    ubj_items it;
    ubj_ref item;
    int64_t n = 0;
    int rc;
    if (!ubj_items_open(v, &it))
        return -1;
    while ((rc = ubj_items_next(&it, &item)) == 1)
        n++;
    return rc == 0 ? n : -1;
}

/* Categorical splits: node i's categories are categories[segments[k], + sizes[k]) where
 * nodes[k] == i; XGBoost's loader indexes with those numbers unchecked. */
static const char *check_categories(ubj_ref tree, int64_t n_nodes, const int32_t *split_type,
                                    bool have_split_type)
{
    ubj_ref nodes_ref, segments_ref, sizes_ref, values_ref;
    bool have_nodes = ubj_get(tree, "categories_nodes", &nodes_ref);
    int64_t k = have_nodes ? ubj_array_length(nodes_ref) : 0;
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
    if (k > n_nodes || !ubj_get(tree, "categories_segments", &segments_ref) ||
        !ubj_get(tree, "categories_sizes", &sizes_ref) ||
        !ubj_get(tree, "categories", &values_ref))
        return "incomplete categories";
    int64_t n_values = ubj_array_length(values_ref);
    int32_t *nodes = malloc((size_t)k * 3 * sizeof(int32_t));
    int32_t *values = n_values > 0 ? malloc((size_t)n_values * sizeof(int32_t)) : NULL;
    if (nodes == NULL || (n_values > 0 && values == NULL)) {
        free(nodes);
        free(values);
        return "out of memory";
    }
    int32_t *segments = nodes + k, *sizes = segments + k;
    if (n_values < 1 || !ubj_read_ints(nodes_ref, k, nodes) ||
        !ubj_read_ints(segments_ref, k, segments) || !ubj_read_ints(sizes_ref, k, sizes) ||
        !ubj_read_ints(values_ref, n_values, values))
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
static const char *check_tree(ubj_ref tree, int64_t num_feature)
{
    static const char *const NUM_NODES[] = {"tree_param", "num_nodes", NULL};
    ubj_ref ref;
    int64_t n;
    bool have_split_type = false, have_parents = false;

    if (!ubj_path(tree, NUM_NODES, &ref) || !ubj_ref_int(ref, &n) || n < 1 || n > MAX_TREE_NODES)
        return "bad num_nodes";
    int32_t *left = malloc((size_t)n * 6 * sizeof(int32_t));
    if (left == NULL)
        return "out of memory";
    int32_t *right = left + n, *split = right + n, *parent = split + n, *type = parent + n;
    int32_t *stack = type + n;
    unsigned char *seen = calloc((size_t)n, 1);
    const char *problem = NULL;
    size_t depth = 0;
    ubj_ref left_ref, right_ref, split_ref;

    if (seen == NULL)
        problem = "out of memory";
    else if (!ubj_get(tree, "left_children", &left_ref) ||
             !ubj_get(tree, "right_children", &right_ref) ||
             !ubj_get(tree, "split_indices", &split_ref))
        problem = "missing node arrays";
    else if (!ubj_read_ints(left_ref, n, left) || !ubj_read_ints(right_ref, n, right) ||
             !ubj_read_ints(split_ref, n, split) ||
             !ubj_read_optional_ints(tree, "parents", n, parent, &have_parents) ||
             !ubj_read_optional_ints(tree, "split_type", n, type, &have_split_type))
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

/* Checks an XGBoost model document (UBJSON, already walked by ubj_document_ok) for what
 * XGBoost's loader and predictor use without checking: tree structure, feature indexes,
 * categories, output groups. A corrupt file would otherwise crash the loader or hang or
 * read out of bounds on the request path. Returns NULL or what is wrong. */
static const char *check_model_document(const unsigned char *bytes, size_t len, char *detail,
                                        size_t detail_size)
{
    static const char *const MPARAM[] = {"learner", "learner_model_param", NULL};
    static const char *const GBM[] = {"learner", "gradient_booster", NULL};
    ubj_ref root, mparam, gbm, ref, name_ref, model;
    int64_t num_feature, num_class = 0, num_target = 1;
    char name[16] = "";
    uint64_t name_len;

    if (len < 1 || bytes[0] != '{')
        return "not a UBJSON object";
    root = (ubj_ref){'{', {bytes + 1, len - 1}};
    if (!ubj_path(root, MPARAM, &mparam) || !ubj_get(mparam, "num_feature", &ref) ||
        !ubj_ref_int(ref, &num_feature) || !ubj_path(root, GBM, &gbm) ||
        !ubj_get(gbm, "name", &name_ref) || name_ref.marker != 'S')
        return "unexpected model layout";
    if (ubj_get(mparam, "num_class", &ref) && !ubj_ref_int(ref, &num_class))
        return "bad num_class";
    if (ubj_get(mparam, "num_target", &ref) && !ubj_ref_int(ref, &num_target))
        return "bad num_target";
    if (num_feature < 1 || num_feature > MAX_FEATURES || num_class < 0 || num_class > 1 << 20 ||
        num_target < 1 || num_target > 1 << 20)
        return "num_feature, num_class or num_target out of range";
    int64_t groups = num_class > num_target ? num_class : num_target;
    if (!ubj_count(&name_ref.at, &name_len) || name_len >= sizeof name ||
        name_len > name_ref.at.left)
        return "unknown booster";
    memcpy(name, name_ref.at.p, (size_t)name_len);

    if (strcmp(name, "gblinear") == 0) {
        /* One weight per feature and output group, plus one bias per group. */
        if (!ubj_get(gbm, "model", &model) || !ubj_get(model, "weights", &ref) ||
            ubj_array_length(ref) != (num_feature + 1) * groups)
            return "gblinear weights do not match num_feature";
        return NULL;
    }
    if (strcmp(name, "dart") == 0) {
        if (!ubj_get(gbm, "gbtree", &ref) || !ubj_get(ref, "model", &model))
            return "dart without trees";
    } else if (strcmp(name, "gbtree") != 0 || !ubj_get(gbm, "model", &model)) {
        return "unknown booster";
    }

    static const char *const NUM_TREES[] = {"gbtree_model_param", "num_trees", NULL};
    ubj_items trees, info;
    ubj_ref tree, group_ref;
    int64_t index = 0, group, num_trees;
    int rc;
    if (!ubj_path(model, NUM_TREES, &ref) || !ubj_ref_int(ref, &num_trees) ||
        !ubj_get(model, "trees", &ref) || ubj_array_length(ref) != num_trees ||
        !ubj_items_open(ref, &trees) || !ubj_get(model, "tree_info", &ref) ||
        ubj_array_length(ref) != num_trees || !ubj_items_open(ref, &info))
        return "trees, tree_info and num_trees disagree";
    while ((rc = ubj_items_next(&trees, &tree)) == 1) {
        const char *problem = NULL;
        if (ubj_items_next(&info, &group_ref) != 1 ||
            !ubj_int(&group_ref.at, group_ref.marker, &group) || group < 0 || group >= groups)
            problem = "output group out of range";
        else
            problem = check_tree(tree, num_feature);
        if (problem != NULL) {
            snprintf(detail, detail_size, "tree %" PRId64 ": %s", index, problem);
            return detail;
        }
        index++;
    }
    return rc == 0 ? NULL : "malformed trees";
}

/* Writes a json-c value as UBJSON, so a JSON model can go through check_model_document. */
static void json_to_ubj(json_object *value, ksv_sb *out)
{
    unsigned char be[9];

    switch (json_object_get_type(value)) {
    case json_type_null:
        ksv_sb_putc(out, 'Z');
        return;
    case json_type_boolean:
        ksv_sb_putc(out, json_object_get_boolean(value) ? 'T' : 'F');
        return;
    case json_type_double: {
        double d = json_object_get_double(value);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        be[0] = 'D';
        for (int i = 0; i < 8; i++)
            be[1 + i] = (unsigned char)(bits >> (56 - 8 * i));
        ksv_sb_append(out, (const char *)be, 9);
        return;
    }
    case json_type_int: {
        uint64_t v = (uint64_t)json_object_get_int64(value);
        be[0] = 'L';
        for (int i = 0; i < 8; i++)
            be[1 + i] = (unsigned char)(v >> (56 - 8 * i));
        ksv_sb_append(out, (const char *)be, 9);
        return;
    }
    case json_type_string: {
        uint64_t n = (uint64_t)json_object_get_string_len(value);
        be[0] = 'S';
        ksv_sb_append(out, (const char *)be, 1);
        be[0] = 'L';
        for (int i = 0; i < 8; i++)
            be[1 + i] = (unsigned char)(n >> (56 - 8 * i));
        ksv_sb_append(out, (const char *)be, 9);
        ksv_sb_append(out, json_object_get_string(value), (size_t)n);
        return;
    }
    case json_type_array: {
        size_t n = json_object_array_length(value);
        ksv_sb_putc(out, '[');
        for (size_t i = 0; i < n && !out->oom; i++)
            json_to_ubj(json_object_array_get_idx(value, i), out);
        ksv_sb_putc(out, ']');
        return;
    }
    case json_type_object: {
        ksv_sb_putc(out, '{');
        json_object_object_foreach(value, key, member) {
            uint64_t n = strlen(key);
            be[0] = 'L';
            for (int i = 0; i < 8; i++)
                be[1 + i] = (unsigned char)(n >> (56 - 8 * i));
            ksv_sb_append(out, (const char *)be, 9);
            ksv_sb_append(out, key, (size_t)n);
            json_to_ubj(member, out);
        }
        ksv_sb_putc(out, '}');
        return;
    }
    }
}

/* Checks the model file's own document before XGBoost parses it (see check_model_document).
 * JSON text is read with json-c and re-encoded as UBJSON for the same checks. */
static int check_input_document(const char *path, const char *bytes, size_t len, ksv_err *err)
{
    char detail[96];
    const char *problem;
    const unsigned char *u = (const unsigned char *)bytes;

    if (len >= 2 && u[0] == '{' && (u[1] == '"' || u[1] == '}' || isspace(u[1]))) {
        json_tokener *tok = json_tokener_new();
        json_object *root = NULL;
        if (tok == NULL)
            return ksv_err_set(err, 500, "out of memory");
        if (len <= INT32_MAX)
            root = json_tokener_parse_ex(tok, bytes, (int)len);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        json_tokener_free(tok);
        if (root == NULL || jerr != json_tokener_success) {
            json_object_put(root);
            return ksv_err_set(err, 400, "model file %s: not valid JSON (%s)", path,
                               len > INT32_MAX ? "too large" : json_tokener_error_desc(jerr));
        }
        ksv_sb ubj;
        ksv_sb_init(&ubj);
        json_to_ubj(root, &ubj);
        json_object_put(root);
        if (ubj.oom) {
            ksv_sb_free(&ubj);
            return ksv_err_set(err, 500, "out of memory");
        }
        problem = check_model_document((const unsigned char *)ubj.data, ubj.len, detail,
                                       sizeof detail);
        ksv_sb_free(&ubj);
    } else {
        problem = check_model_document(u, len, detail, sizeof detail);
    }
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
    if (!ubj_document_ok((const unsigned char *)bytes, (size_t)len))
        return ksv_err_set(err, 500, "model file %s: XGBoost's own UBJSON is unreadable", path);
    const char *problem = check_model_document((const unsigned char *)bytes, (size_t)len, detail,
                                               sizeof detail);
    if (problem != NULL)
        return ksv_err_set(err, 400, "model file %s: %s", path, problem);
    return 0;
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
