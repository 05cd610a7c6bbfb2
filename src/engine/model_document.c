/* model_document.c: model files into checked tree ensembles (model_document.h). */
#include "engine/model_document.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "engine/ubjson.h"

/* Beyond these no real model goes, and below them every count fits the arrays. */
enum { MAX_FEATURES = 1 << 24, MAX_GROUPS = 1 << 20, MAX_TREE_NODES = 1 << 28 };

int ksv_model_fail(ksv_err *err, const char *name, int status, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (name)
        return ksv_err_set(err, status, "model file %s: %s", name, what);
    return ksv_err_set(err, status, "model: %s", what);
}

/* ---- the file ---------------------------------------------------------------------------- */

int ksv_model_file_format(const char *path, ksv_model_format *out, ksv_err *err)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) {
        if (strcasecmp(dot, ".json") == 0)
            *out = KSV_MODEL_JSON;
        else if (strcasecmp(dot, ".ubj") == 0)
            *out = KSV_MODEL_UBJSON;
        else if (strcasecmp(dot, ".bst") == 0)
            *out = KSV_MODEL_LEGACY;
        else if (strcasecmp(dot, ".txt") == 0)
            return ksv_model_fail(err, path, 400, "a .txt model is a LightGBM text model: runtime "
                                  "ksv-forest (or auto) serves it; XGBoost's formats are .json, "
                                  ".ubj and .bst");
        else
            dot = NULL;
        if (dot)
            return 0;
    }
    return ksv_model_fail(err, path, 400, "unsupported extension (want .json, .ubj or .bst)");
}

int ksv_model_file_read(const char *path, char **data, size_t *len, ksv_err *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ksv_model_fail(err, path, errno == ENOENT || errno == ENOTDIR ? 404 : 400, "%s",
                        strerror(errno));
    const char *problem = NULL;
    int status = 400;
    if (fstat(fd, &st) != 0) {
        problem = strerror(errno);
        status = 500;
    } else if (!S_ISREG(st.st_mode)) {
        problem = "not a regular file";
    } else if (st.st_size == 0) {
        problem = "empty";
    } else if ((uintmax_t)st.st_size > (uintmax_t)SIZE_MAX / 2) {
        problem = "too large";
    }
    if (problem) {
        close(fd);
        return ksv_model_fail(err, path, status, "%s", problem);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size);
    if (!buf) {
        close(fd);
        return ksv_model_fail(err, path, 500, "out of memory for %zu bytes", size);
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return ksv_model_fail(err, path, 500, "read: %s", strerror(saved));
        }
        got += (size_t)n;
    }
    close(fd);
    *data = buf;
    *len = size;
    return 0;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

size_t ksv_model_doc_lead(const void *data, size_t len)
{
    const unsigned char *u = data;
    size_t i = len >= 3 && memcmp(u, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    while (i < len && is_space(u[i]))
        i++;
    return i;
}

/* ---- parsing ----------------------------------------------------------------------------- */

static json_object *parse_json(const char *name, const char *data, size_t len, ksv_err *err)
{
    if (len > INT32_MAX) {
        ksv_model_fail(err, name, 400, "JSON document too large");
        return NULL;
    }
    /* json-c accepts the bare NaN / Infinity tokens XGBoost writes for categorical nodes
     * and extreme values while strict mode stays off. */
    json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
    if (!tok) {
        ksv_model_fail(err, name, 500, "out of memory");
        return NULL;
    }
    json_object *root = json_tokener_parse_ex(tok, data, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root || jerr != json_tokener_success) {
        json_object_put(root);
        ksv_model_fail(err, name, 400, "invalid JSON: %s",
                       jerr == json_tokener_continue  ? "unexpected end of data"
                       : jerr == json_tokener_success ? "the document is null"
                                                      : json_tokener_error_desc(jerr));
        return NULL;
    }
    while (used < len && is_space((unsigned char)data[used]))
        used++;
    if (used != len) {
        json_object_put(root);
        ksv_model_fail(err, name, 400, "trailing data after the JSON document");
        return NULL;
    }
    return root;
}

static json_object *parse_ubjson(const char *name, const void *data, size_t len, ksv_err *err)
{
    ksv_err why;
    json_object *root = ksv_ubjson_parse(data, len, &why);
    if (!root)
        ksv_model_fail(err, name, why.status == 500 ? 500 : 400, "%s", why.msg);
    return root;
}

/* ---- reading values ---------------------------------------------------------------------- */

static json_object *member(json_object *object, const char *key)
{
    json_object *v = NULL;
    return json_object_is_type(object, json_type_object) &&
                   json_object_object_get_ex(object, key, &v)
               ? v
               : NULL;
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

/* An optional integer parameter in [lo, hi]; absent leaves *out alone. */
static int param(json_object *object, const char *key, bool required, int64_t lo, int64_t hi,
                 int64_t *out, const char *name, ksv_err *err)
{
    json_object *v = member(object, key);
    int64_t value;
    if (!v && !required)
        return 0;
    if (!v || !doc_int(v, &value))
        return ksv_model_fail(err, name, 400, "learner_model_param.%s is %s", key,
                        v ? "not an integer" : "missing");
    if (value < lo || value > hi)
        return ksv_model_fail(err, name, 400, "learner_model_param.%s = %" PRId64 " is out of range",
                        key, value);
    *out = value;
    return 0;
}

static int64_t array_length(json_object *v)
{
    return json_object_is_type(v, json_type_array) ? (int64_t)json_object_array_length(v) : -1;
}

typedef enum { ELEM_INT, ELEM_FLAG, ELEM_NUMBER } elem_kind;

/* Tree `tree`'s member key as an array of exactly n elements into out (int32_t, uint8_t or
 * float by kind). ELEM_FLAG: 0, 1, false or true. Absent: *present = false when present is
 * non-NULL (optional), else an error. */
static int node_array(json_object *tree, size_t tree_id, const char *key, int64_t n,
                      elem_kind kind, void *out, bool *present, const char *name, ksv_err *err)
{
    json_object *arr = member(tree, key);
    if (present)
        *present = arr != NULL;
    if (!arr)
        return present ? 0 : ksv_model_fail(err, name, 400, "tree %zu: %s is missing", tree_id, key);
    int64_t have = array_length(arr);
    if (have < 0)
        return ksv_model_fail(err, name, 400, "tree %zu: %s is not an array", tree_id, key);
    if (have != n)
        return ksv_model_fail(err, name, 400, "tree %zu: %s has %" PRId64 " entries, num_nodes is %"
                        PRId64, tree_id, key, have, n);
    for (int64_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, (size_t)i);
        if (kind == ELEM_NUMBER) {
            if (!json_object_is_type(e, json_type_double) && !json_object_is_type(e, json_type_int))
                return ksv_model_fail(err, name, 400, "tree %zu: %s[%" PRId64 "] is not a number",
                                tree_id, key, i);
            ((float *)out)[i] = (float)json_object_get_double(e);
            continue;
        }
        int64_t v;
        if (json_object_is_type(e, json_type_int))
            v = json_object_get_int64(e);
        else if (kind == ELEM_FLAG && json_object_is_type(e, json_type_boolean))
            v = json_object_get_boolean(e);
        else
            v = INT64_MIN;
        if (kind == ELEM_FLAG ? v != 0 && v != 1 : v < INT32_MIN || v > INT32_MAX)
            return ksv_model_fail(err, name, 400, "tree %zu: %s[%" PRId64 "] is not %s", tree_id, key,
                            i, kind == ELEM_FLAG ? "0 or 1" : "a 32-bit integer");
        if (kind == ELEM_FLAG)
            ((uint8_t *)out)[i] = (uint8_t)v;
        else
            ((int32_t *)out)[i] = (int32_t)v;
    }
    return 0;
}

/* ---- checking ---------------------------------------------------------------------------- */

/* Categorical splits: node i's categories are categories[segments[k], + sizes[k]) where
 * nodes[k] == i; XGBoost's loader indexes with those numbers unchecked. *any: the tree
 * has categorical splits. Returns NULL or what is wrong. */
static const char *check_categories(json_object *tree, int64_t n_nodes, const uint8_t *split_type,
                                    bool have_split_type, bool *any)
{
    json_object *nodes_ref = member(tree, "categories_nodes");
    int64_t k = nodes_ref ? array_length(nodes_ref) : 0;
    const char *problem = NULL;

    *any = k > 0;
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
    int64_t n_values = array_length(values_ref);
    if (k > n_nodes || !segments_ref || !sizes_ref || n_values < 1 ||
        array_length(segments_ref) != k || array_length(sizes_ref) != k)
        return "incomplete categories";
    int64_t *nums = malloc(((size_t)k * 3 + (size_t)n_values) * sizeof *nums);
    if (!nums)
        return "out of memory";
    int64_t *nodes = nums, *segments = nodes + k, *sizes = segments + k, *values = sizes + k;
    json_object *const refs[4] = {nodes_ref, segments_ref, sizes_ref, values_ref};
    int64_t *const into[4] = {nodes, segments, sizes, values};
    for (int a = 0; a < 4 && !problem; a++) {
        for (int64_t i = 0; i < (a == 3 ? n_values : k) && !problem; i++) {
            json_object *e = json_object_array_get_idx(refs[a], (size_t)i);
            if (!json_object_is_type(e, json_type_int))
                problem = "category arrays disagree";
            else
                into[a][i] = json_object_get_int64(e);
        }
    }
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
    free(nums);
    return problem;
}

/* Walks the tree from node 0 as XGBoost's predictor does: an internal node (left != -1)
 * goes to left, left + 1 or right, so right must be left + 1, both inside the tree, each
 * node reached at most once, and the split feature below num_feature. Measures depth and
 * reachable nodes on the way. */
static const char *walk_tree(ksv_model_tree *t, uint32_t num_feature)
{
    size_t n = (size_t)t->num_nodes;
    uint32_t *stack = malloc(n * 2 * sizeof *stack);
    uint8_t *seen = calloc(n, 1);
    const char *problem = NULL;
    size_t top = 0;
    if (!stack || !seen)
        problem = "out of memory";
    else
        stack[top++] = 0, stack[top++] = 0;  /* node, depth */
    while (!problem && top > 0) {
        uint32_t depth = stack[--top], node = stack[--top];
        if (seen[node]) {
            problem = "a node is reached twice (cycle)";
            break;
        }
        seen[node] = 1;
        t->reachable++;
        int32_t left = t->left[node];
        if (left == -1) {
            if (depth > t->depth)
                t->depth = depth;
            continue;
        }
        if (left <= 0 || left >= t->num_nodes - 1 || t->right[node] != left + 1)
            problem = "child index out of range";
        else if (t->feature[node] < 0 || (uint32_t)t->feature[node] >= num_feature)
            problem = "split feature out of range";
        else {
            /* Each node is pushed at most once before `seen` stops the walk: top <= 2n. */
            stack[top++] = (uint32_t)left, stack[top++] = depth + 1;
            stack[top++] = (uint32_t)left + 1, stack[top++] = depth + 1;
        }
    }
    free(stack);
    free(seen);
    return problem;
}

static int read_tree(json_object *tree, size_t id, uint32_t num_feature, ksv_model_tree *t,
                     const char *name, ksv_err *err)
{
    int64_t n, leaf_vector = 1;
    json_object *tp = member(tree, "tree_param"), *ref = member(tp, "num_nodes");
    if (!ref || !doc_int(ref, &n) || n < 1 || n > MAX_TREE_NODES)
        return ksv_model_fail(err, name, 400, "tree %zu: bad num_nodes", id);
    if ((ref = member(tp, "size_leaf_vector")) &&
        (!doc_int(ref, &leaf_vector) || leaf_vector < 0 || leaf_vector > MAX_GROUPS))
        return ksv_model_fail(err, name, 400, "tree %zu: bad size_leaf_vector", id);
    t->num_nodes = (int32_t)n;
    t->leaf_vector = leaf_vector;
    size_t count = (size_t)n;
    t->left = malloc(count * 3 * sizeof *t->left);
    t->value = malloc(count * sizeof *t->value);
    t->default_left = malloc(count);
    uint8_t *split_type = malloc(count);
    int32_t *parents = malloc(count * sizeof *parents);
    int rc = -1;
    bool have_parents = false, have_split_type = false;
    if (!t->left || !t->value || !t->default_left || !split_type || !parents) {
        ksv_model_fail(err, name, 500, "out of memory");
        goto done;
    }
    t->right = t->left + count;
    t->feature = t->right + count;
    if (node_array(tree, id, "left_children", n, ELEM_INT, t->left, NULL, name, err) < 0 ||
        node_array(tree, id, "right_children", n, ELEM_INT, t->right, NULL, name, err) < 0 ||
        node_array(tree, id, "split_indices", n, ELEM_INT, t->feature, NULL, name, err) < 0 ||
        node_array(tree, id, "split_conditions", n, ELEM_NUMBER, t->value, NULL, name, err) < 0 ||
        node_array(tree, id, "default_left", n, ELEM_FLAG, t->default_left, NULL, name, err) < 0 ||
        node_array(tree, id, "parents", n, ELEM_INT, parents, &have_parents, name, err) < 0 ||
        node_array(tree, id, "split_type", n, ELEM_FLAG, split_type, &have_split_type, name,
                   err) < 0)
        goto done;
    /* XGBoost's loader links every node to its parent. */
    for (int64_t i = 1; have_parents && i < n; i++) {
        if (parents[i] < 0 || parents[i] >= n) {
            ksv_model_fail(err, name, 400, "tree %zu: parent index out of range", id);
            goto done;
        }
    }
    const char *problem = check_categories(tree, n, split_type, have_split_type,
                                           &t->categorical);
    if (!problem)
        problem = walk_tree(t, num_feature);
    if (problem) {
        ksv_model_fail(err, name, strcmp(problem, "out of memory") == 0 ? 500 : 400, "tree %zu: %s",
                 id, problem);
        goto done;
    }
    rc = 0;
done:
    free(split_type);
    free(parents);
    return rc;
}

/* learner.gradient_booster: the trees or the linear weights. */
static int read_booster(json_object *learner, ksv_model_doc *doc, const char *name, ksv_err *err)
{
    json_object *gbm = member(learner, "gradient_booster"), *booster = member(gbm, "name");
    if (!json_object_is_type(booster, json_type_string))
        return ksv_model_fail(err, name, 400, "learner.gradient_booster.name is missing");
    const char *kind = json_object_get_string(booster);
    json_object *model = NULL;
    if (strcmp(kind, "gblinear") == 0 || strcmp(kind, "gbtree") == 0)
        model = member(gbm, "model");
    else if (strcmp(kind, "dart") == 0)
        model = member(member(gbm, "gbtree"), "model");
    else
        return ksv_model_fail(err, name, 400, "unknown booster \"%.40s\"", kind);
    snprintf(doc->booster, sizeof doc->booster, "%s", kind);
    if (!json_object_is_type(model, json_type_object))
        return ksv_model_fail(err, name, 400, "the %s booster has no model", kind);

    if (strcmp(kind, "gblinear") == 0) {
        /* One weight per feature and output group, then one bias per group. */
        json_object *w = member(model, "weights");
        size_t want = ((size_t)doc->num_feature + 1) * doc->num_groups;
        if (array_length(w) != (int64_t)want)
            return ksv_model_fail(err, name, 400, "gblinear weights do not match num_feature");
        doc->weights = malloc(want * sizeof *doc->weights);
        if (!doc->weights)
            return ksv_model_fail(err, name, 500, "out of memory");
        doc->num_weights = want;
        for (size_t i = 0; i < want; i++) {
            json_object *e = json_object_array_get_idx(w, i);
            if (!json_object_is_type(e, json_type_double) && !json_object_is_type(e, json_type_int))
                return ksv_model_fail(err, name, 400, "gblinear weights[%zu] is not a number", i);
            doc->weights[i] = (float)json_object_get_double(e);
        }
        return 0;
    }
    doc->weight_drop = member(gbm, "weight_drop") || member(model, "weight_drop");
    int64_t num_trees;
    json_object *trees = member(model, "trees"), *info = member(model, "tree_info");
    json_object *ref = member(member(model, "gbtree_model_param"), "num_trees");
    if (!ref || !doc_int(ref, &num_trees) || num_trees < 0 ||
        array_length(trees) != num_trees || array_length(info) != num_trees)
        return ksv_model_fail(err, name, 400, "trees, tree_info and num_trees disagree");
    json_object *indptr = member(model, "iteration_indptr");
    int64_t last = -1, m = array_length(indptr);
    if (indptr && (m < 1 || !doc_int(json_object_array_get_idx(indptr, (size_t)m - 1), &last) ||
                   last != num_trees))
        return ksv_model_fail(err, name, 400, "iteration_indptr does not end at num_trees");
    doc->trees = calloc(num_trees ? (size_t)num_trees : 1, sizeof *doc->trees);
    if (!doc->trees)
        return ksv_model_fail(err, name, 500, "out of memory");
    doc->num_trees = (size_t)num_trees;
    for (size_t i = 0; i < doc->num_trees; i++) {
        json_object *g = json_object_array_get_idx(info, i);
        int64_t group;
        if (!json_object_is_type(g, json_type_int) || (group = json_object_get_int64(g)) < 0 ||
            group >= doc->num_groups)
            return ksv_model_fail(err, name, 400, "tree %zu: output group (tree_info) out of range", i);
        doc->trees[i].group = (int32_t)group;
        json_object *tree = json_object_array_get_idx(trees, i);
        if (read_tree(tree, i, doc->num_feature, &doc->trees[i], name, err) < 0)
            return -1;
        /* XGBoost's loader stores each tree at trees[id] unchecked: a repeated id leaves a
         * slot empty and its predictor dereferences it. It always writes id == position. */
        json_object *id = member(tree, "id");
        if (!json_object_is_type(id, json_type_int) || json_object_get_int64(id) != (int64_t)i)
            return ksv_model_fail(err, name, 400, "tree %zu: id is %s, not its position %zu", i,
                                  id ? "wrong" : "missing", i);
    }
    return 0;
}

static int check_document(json_object *root, ksv_model_doc *doc, const char *name, ksv_err *err)
{
    json_object *learner = member(root, "learner");
    if (!json_object_is_type(learner, json_type_object))
        return ksv_model_fail(err, name, 400, "learner is missing");
    json_object *version = member(root, "version");
    if (array_length(version) == 3)
        snprintf(doc->version, sizeof doc->version, "%d.%d.%d",
                 json_object_get_int(json_object_array_get_idx(version, 0)),
                 json_object_get_int(json_object_array_get_idx(version, 1)),
                 json_object_get_int(json_object_array_get_idx(version, 2)));
    json_object *types = member(learner, "feature_types");
    for (int64_t i = 0; i < array_length(types); i++) {
        json_object *ty = json_object_array_get_idx(types, (size_t)i);
        if (json_object_is_type(ty, json_type_string) && strcmp(json_object_get_string(ty), "c") == 0)
            doc->categorical_features = true;
    }
    json_object *objective = member(member(learner, "objective"), "name");
    if (json_object_is_type(objective, json_type_string))
        snprintf(doc->objective, sizeof doc->objective, "%s", json_object_get_string(objective));

    json_object *mparam = member(learner, "learner_model_param");
    int64_t num_feature = 0, num_class = 0, num_target = 1;
    if (!json_object_is_type(mparam, json_type_object))
        return ksv_model_fail(err, name, 400, "learner.learner_model_param is missing");
    if (param(mparam, "num_feature", true, 1, MAX_FEATURES, &num_feature, name, err) < 0 ||
        param(mparam, "num_class", false, 0, MAX_GROUPS, &num_class, name, err) < 0 ||
        param(mparam, "num_target", false, 1, MAX_GROUPS, &num_target, name, err) < 0)
        return -1;
    json_object *base_score = member(mparam, "base_score");
    if (json_object_is_type(base_score, json_type_string) &&
        !(doc->base_score = strdup(json_object_get_string(base_score))))
        return ksv_model_fail(err, name, 500, "out of memory");
    doc->num_feature = (uint32_t)num_feature;
    doc->num_class = (uint32_t)num_class;
    doc->num_groups = (uint32_t)(num_class > num_target ? num_class : num_target);
    return read_booster(learner, doc, name, err);
}

/* ---- the whole reader -------------------------------------------------------------------- */

int ksv_model_doc_parse(const char *name, const void *data, size_t len, ksv_doc_parse how,
                        ksv_model_doc *doc, ksv_err *err)
{
    memset(doc, 0, sizeof *doc);
    const unsigned char *u = data;
    if (how == KSV_DOC_SNIFF) {
        size_t lead = ksv_model_doc_lead(data, len);
        u += lead;
        len -= lead;
        if (len < 1 || u[0] != '{')
            return ksv_model_fail(err, name, 400, "not an XGBoost JSON or UBJSON document (a "
                                  "legacy binary model loads from a .bst file, in ksv-xgboost "
                                  "only)");
        unsigned char next = len > 1 ? u[1] : '}';
        how = next == '"' || next == '}' || is_space(next) ? KSV_DOC_JSON_TEXT
                                                           : KSV_DOC_UBJSON_BYTES;
    }
    json_object *root = how == KSV_DOC_JSON_TEXT ? parse_json(name, (const char *)u, len, err)
                                                 : parse_ubjson(name, u, len, err);
    if (!root)
        return -1;
    int rc = check_document(root, doc, name, err);
    json_object_put(root);
    if (rc < 0)
        ksv_model_doc_free(doc);
    return rc;
}

int ksv_model_doc_read_file(const char *path, ksv_model_doc *doc, ksv_err *err)
{
    ksv_model_format format;
    char *data = NULL;
    size_t len = 0;
    memset(doc, 0, sizeof *doc);
    if (ksv_model_file_format(path, &format, err) < 0)
        return -1;
    if (format == KSV_MODEL_LEGACY)
        return ksv_model_fail(err, path, 400, "a legacy binary model: only ksv-xgboost reads it; save "
                        "the model as .json or .ubj");
    if (ksv_model_file_read(path, &data, &len, err) < 0)
        return -1;
    int rc = ksv_model_doc_parse(path, data, len, KSV_DOC_SNIFF, doc, err);
    free(data);
    return rc;
}

void ksv_model_doc_free(ksv_model_doc *doc)
{
    for (size_t i = 0; doc->trees && i < doc->num_trees; i++) {
        free(doc->trees[i].left);  /* right and feature share its block */
        free(doc->trees[i].value);
        free(doc->trees[i].default_left);
    }
    free(doc->trees);
    free(doc->weights);
    free(doc->base_score);
    memset(doc, 0, sizeof *doc);
}
