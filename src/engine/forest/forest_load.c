/* forest_load.c: XGBoost JSON/UBJSON model document -> validated ksv-forest layout. */
#include "engine/forest/forest_load.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "engine/forest/forest_ubjson.h"

/* Larger model files are not something this runtime is meant to hold in memory. */
#define FOREST_MAX_FILE_BYTES ((size_t)2 << 30)

/* One tree as XGBoost stores it, borrowed into plain arrays while the layout is built. */
typedef struct xgb_tree {
    size_t num_nodes;
    int32_t *left;
    int32_t *right;
    int32_t *feature;
    float *value;          /* split condition, or leaf output */
    uint8_t *default_left;
    uint32_t depth;        /* deepest leaf reachable from the root (root alone = 0) */
    uint32_t reachable;    /* nodes reachable from the root */
} xgb_tree;

static void xgb_tree_release(xgb_tree *t)
{
    free(t->left);
    free(t->right);
    free(t->feature);
    free(t->value);
    free(t->default_left);
    memset(t, 0, sizeof *t);
}

void forest_free(forest *f)
{
    if (!f)
        return;
    free(f->base_margin);
    free(f->tree_group);
    free(f->pnodes);
    free(f->pleaves);
    free(f->snodes);
    free(f->tree_start);
    free(f->linear);
    free(f);
}

/* ---- json-c access helpers: every lookup names its path in the error ---------------------- */

static json_object *member(json_object *obj, const char *key, json_type type, const char *where,
                           ksv_err *err)
{
    json_object *v = NULL;
    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v)) {
        ksv_err_set(err, 400, "model: %s.%s is missing", where, key);
        return NULL;
    }
    if (!json_object_is_type(v, type)) {
        ksv_err_set(err, 400, "model: %s.%s has the wrong type (want %s)", where, key,
                    json_type_to_name(type));
        return NULL;
    }
    return v;
}

static json_object *optional_member(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (json_object_is_type(obj, json_type_object) && json_object_object_get_ex(obj, key, &v))
        return v;
    return NULL;
}

/* XGBoost writes parameters as strings ("100"); accept plain integers too. */
static int param_uint(json_object *obj, const char *key, const char *where, int required,
                      uint64_t max, uint64_t *out, ksv_err *err)
{
    json_object *v = optional_member(obj, key);
    if (!v) {
        if (required)
            return ksv_err_set(err, 400, "model: %s.%s is missing", where, key);
        return 1;
    }
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        if (i < 0 || (uint64_t)i > max)
            return ksv_err_set(err, 400, "model: %s.%s = %lld is out of range", where, key,
                               (long long)i);
        *out = (uint64_t)i;
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return ksv_err_set(err, 400, "model: %s.%s is not an integer", where, key);
    const char *s = json_object_get_string(v);
    char *end;
    errno = 0;
    unsigned long long u = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || u > max)
        return ksv_err_set(err, 400, "model: %s.%s = \"%.40s\" is not a valid count", where, key, s);
    *out = u;
    return 0;
}

static int element_int(json_object *e, int64_t *out)
{
    if (json_object_is_type(e, json_type_int)) {
        *out = json_object_get_int64(e);
        return 0;
    }
    if (json_object_is_type(e, json_type_boolean)) {
        *out = json_object_get_boolean(e);
        return 0;
    }
    return -1;
}

/* Tree tree_id's member key: an array of exactly n entries (num_nodes), or NULL with err
 * set. where gets "trees[ID]" for the caller's own messages. */
static json_object *node_array(json_object *tree, const char *key, size_t n, size_t tree_id,
                               char where[48], ksv_err *err)
{
    snprintf(where, 48, "trees[%zu]", tree_id);
    json_object *arr = member(tree, key, json_type_array, where, err);
    if (arr && json_object_array_length(arr) != n) {
        ksv_err_set(err, 400, "model: %s.%s has %zu entries, num_nodes is %zu", where, key,
                    json_object_array_length(arr), n);
        return NULL;
    }
    return arr;
}

/* An array of exactly n integers in [lo, hi], stored as int32. */
static int read_int_array(json_object *tree, const char *key, size_t n, int64_t lo, int64_t hi,
                          int32_t **out, size_t tree_id, ksv_err *err)
{
    char where[48];
    json_object *arr = node_array(tree, key, n, tree_id, where, err);
    if (!arr)
        return -1;
    int32_t *a = malloc((n ? n : 1) * sizeof *a);
    if (!a)
        return ksv_err_set(err, 500, "model: out of memory");
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (element_int(json_object_array_get_idx(arr, i), &v) < 0 || v < lo || v > hi) {
            free(a);
            return ksv_err_set(err, 400, "model: %s.%s[%zu] is not an integer in [%lld, %lld]",
                               where, key, i, (long long)lo, (long long)hi);
        }
        a[i] = (int32_t)v;
    }
    *out = a;
    return 0;
}

/* Split conditions: JSON holds float32 values printed round-trip; read as double, cast. */
static int read_float_array(json_object *tree, const char *key, size_t n, float **out,
                            size_t tree_id, ksv_err *err)
{
    char where[48];
    json_object *arr = node_array(tree, key, n, tree_id, where, err);
    if (!arr)
        return -1;
    float *a = malloc((n ? n : 1) * sizeof *a);
    if (!a)
        return ksv_err_set(err, 500, "model: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(e, json_type_double) && !json_object_is_type(e, json_type_int)) {
            free(a);
            return ksv_err_set(err, 400, "model: %s.%s[%zu] is not a number", where, key, i);
        }
        a[i] = (float)json_object_get_double(e);
    }
    *out = a;
    return 0;
}

/* Checks the tree is a proper binary tree from node 0 and measures it. Deleted nodes may sit
 * in the arrays unreachable; a node reached twice (a cycle or shared child) is refused. */
static int measure_tree(xgb_tree *t, size_t tree_id, ksv_err *err)
{
    size_t n = t->num_nodes;
    uint32_t *stack_node = malloc(n * sizeof *stack_node);
    uint32_t *stack_depth = malloc(n * sizeof *stack_depth);
    uint8_t *seen = calloc(n, 1);
    int rc = 0;
    if (!stack_node || !stack_depth || !seen) {
        rc = ksv_err_set(err, 500, "model: out of memory");
        goto done;
    }
    size_t top = 0;
    stack_node[top] = 0;
    stack_depth[top++] = 0;
    seen[0] = 1;
    t->depth = 0;
    t->reachable = 0;
    while (top > 0) {
        top--;
        uint32_t node = stack_node[top], depth = stack_depth[top];
        t->reachable++;
        if (t->left[node] == -1) {
            if (depth > t->depth)
                t->depth = depth;
            continue;
        }
        int32_t kids[2] = {t->left[node], t->right[node]};
        for (int k = 0; k < 2; k++) {
            if (kids[k] < 0 || (size_t)kids[k] >= n || seen[kids[k]]) {
                rc = ksv_err_set(err, 400, "model: trees[%zu] node %u has an invalid child %d",
                                 tree_id, node, kids[k]);
                goto done;
            }
            seen[kids[k]] = 1;
            stack_node[top] = (uint32_t)kids[k];
            stack_depth[top++] = depth + 1;
        }
    }
done:
    free(stack_node);
    free(stack_depth);
    free(seen);
    return rc;
}

static int read_tree(json_object *tree, size_t tree_id, uint32_t num_features, xgb_tree *t,
                     ksv_err *err)
{
    char where[48];
    snprintf(where, sizeof where, "trees[%zu]", tree_id);
    json_object *tp = member(tree, "tree_param", json_type_object, where, err);
    if (!tp)
        return -1;
    uint64_t num_nodes, leaf_vector = 1;
    if (param_uint(tp, "num_nodes", "tree_param", 1, (uint64_t)INT32_MAX, &num_nodes, err) < 0)
        return -1;
    if (num_nodes == 0)
        return ksv_err_set(err, 400, "model: %s has no nodes", where);
    if (param_uint(tp, "size_leaf_vector", "tree_param", 0, UINT32_MAX, &leaf_vector, err) < 0)
        return -1;
    if (leaf_vector > 1)
        return ksv_err_set(err, 400, "model: %s has vector leaves (multi_strategy="
                           "multi_output_tree); ksv-forest does not support them", where);
    t->num_nodes = (size_t)num_nodes;
    size_t n = t->num_nodes;
    int32_t *dl = NULL, *split_type = NULL;
    if (read_int_array(tree, "left_children", n, -1, INT32_MAX, &t->left, tree_id, err) < 0 ||
        read_int_array(tree, "right_children", n, -1, INT32_MAX, &t->right, tree_id, err) < 0 ||
        read_int_array(tree, "split_indices", n, 0, INT32_MAX, &t->feature, tree_id, err) < 0 ||
        read_float_array(tree, "split_conditions", n, &t->value, tree_id, err) < 0 ||
        read_int_array(tree, "default_left", n, 0, 1, &dl, tree_id, err) < 0)
        return -1;
    t->default_left = malloc(n);
    if (!t->default_left) {
        free(dl);
        return ksv_err_set(err, 500, "model: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        t->default_left[i] = (uint8_t)dl[i];
    free(dl);
    if (measure_tree(t, tree_id, err) < 0)
        return -1;
    /* Old files lack split_type (all numeric); newer ones mark categorical nodes with 1. */
    if (optional_member(tree, "split_type")) {
        if (read_int_array(tree, "split_type", n, 0, 1, &split_type, tree_id, err) < 0)
            return -1;
    }
    json_object *cat_nodes = optional_member(tree, "categories_nodes");
    int categorical = cat_nodes && json_object_is_type(cat_nodes, json_type_array) &&
                      json_object_array_length(cat_nodes) > 0;
    for (size_t i = 0; i < n && !categorical; i++) {
        if (t->left[i] == -1)
            continue;
        if (split_type && split_type[i] == 1)
            categorical = 1;
        else if ((uint32_t)t->feature[i] >= num_features) {
            free(split_type);
            return ksv_err_set(err, 400, "model: %s node %zu splits on feature %d but the model "
                               "has %u features", where, i, t->feature[i], num_features);
        }
    }
    free(split_type);
    if (categorical)
        return ksv_err_set(err, 400, "model: %s has categorical splits; ksv-forest does not "
                           "support categorical features (use runtime ksv-xgboost)", where);
    return 0;
}

/* ---- objective and base_score ------------------------------------------------------------ */

typedef struct objective_rule {
    const char *name;
    forest_output output;
    int logit_base;  /* base_score is a probability: margin starts at logit(base_score) */
} objective_rule;

static const objective_rule objective_rules[] = {
    {"binary:logistic", FOREST_OUT_SIGMOID, 1},
    {"multi:softprob", FOREST_OUT_SOFTMAX, 0},
    {"multi:softmax", FOREST_OUT_ARGMAX, 0},
    {"reg:squarederror", FOREST_OUT_IDENTITY, 0},
    {"rank:pairwise", FOREST_OUT_IDENTITY, 0},
};

/* "5E-1" (up to 3.0) or "[5E-1]" / "[a,b,c]" (3.1+, one entry per output group). */
static int parse_base_score(const char *s, uint32_t groups, float *out, ksv_err *err)
{
    const char *p = s;
    while (*p == ' ')
        p++;
    int bracketed = *p == '[';
    if (bracketed)
        p++;
    size_t count = 0;
    for (;;) {
        char *end;
        errno = 0;
        float v = strtof(p, &end);
        if (end == p || errno == ERANGE)
            return ksv_err_set(err, 400, "model: base_score \"%.60s\" is not a number list", s);
        if (count < groups)
            out[count] = v;
        count++;
        p = end;
        while (*p == ' ')
            p++;
        if (bracketed && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (bracketed) {
        if (*p != ']')
            return ksv_err_set(err, 400, "model: base_score \"%.60s\" lacks its ']'", s);
        p++;
    }
    if (*p)
        return ksv_err_set(err, 400, "model: base_score \"%.60s\" has trailing text", s);
    if (count == 1) {
        for (uint32_t g = 1; g < groups; g++)
            out[g] = out[0];
    } else if (count != groups) {
        return ksv_err_set(err, 400, "model: base_score has %zu values for %u output groups",
                           count, groups);
    }
    return 0;
}

/* ---- layout building --------------------------------------------------------------------- */

static void fill_perfect(const xgb_tree *t, uint32_t node, size_t slot, uint32_t level,
                         uint32_t depth, forest_pnode *nodes, float *leaves)
{
    size_t inner = forest_perfect_inner(depth);
    if (t->left[node] != -1) {
        nodes[slot].feature = (uint32_t)t->feature[node] |
                              (t->default_left[node] ? FOREST_DEFAULT_LEFT : 0);
        nodes[slot].threshold = t->value[node];
        fill_perfect(t, (uint32_t)t->left[node], 2 * slot + 1, level + 1, depth, nodes, leaves);
        fill_perfect(t, (uint32_t)t->right[node], 2 * slot + 2, level + 1, depth, nodes, leaves);
        return;
    }
    /* A leaf above the bottom: both sides of the padding below it lead to copies of it, so
     * the padding nodes' test does not matter (feature 0 always exists). */
    for (uint32_t l = level; l < depth; l++) {
        size_t first = ((slot + 1) << (l - level)) - 1, count = (size_t)1 << (l - level);
        for (size_t i = 0; i < count; i++) {
            nodes[first + i].feature = 0;
            nodes[first + i].threshold = 0.0f;
        }
    }
    size_t first_leaf = ((slot + 1) << (depth - level)) - 1 - inner;
    size_t count = (size_t)1 << (depth - level);
    for (size_t i = 0; i < count; i++)
        leaves[first_leaf + i] = t->value[node];
}

/* Breadth-first renumbering: processing the queue in slot order and giving each split the
 * next two free slots keeps queue position == slot, so `order` doubles as the queue. */
static int fill_sparse(const xgb_tree *t, forest_snode *out, ksv_err *err)
{
    uint32_t *order = malloc(t->reachable * sizeof *order);
    if (!order)
        return ksv_err_set(err, 500, "model: out of memory");
    uint32_t next_free = 1;
    order[0] = 0;
    for (uint32_t slot = 0; slot < next_free; slot++) {
        uint32_t node = order[slot];
        if (t->left[node] == -1) {
            out[slot] = (forest_snode){FOREST_LEAF, t->value[node], 0};
            continue;
        }
        out[slot].feature = (uint32_t)t->feature[node] |
                            (t->default_left[node] ? FOREST_DEFAULT_LEFT : 0);
        out[slot].value = t->value[node];
        out[slot].left = next_free;
        order[next_free++] = (uint32_t)t->left[node];
        order[next_free++] = (uint32_t)t->right[node];
    }
    free(order);
    return 0;
}

static int build_layout(forest *f, xgb_tree *trees, forest_layout_pref pref, ksv_err *err)
{
    uint32_t depth = 0;
    size_t total = 0;
    for (uint32_t i = 0; i < f->num_trees; i++) {
        if (trees[i].depth > depth)
            depth = trees[i].depth;
        total += trees[i].reachable;
    }
    f->depth = depth;
    if (pref == FOREST_PREFER_AUTO && depth <= FOREST_PERFECT_MAX_DEPTH) {
        f->layout = FOREST_LAYOUT_PERFECT;
        size_t inner = forest_perfect_inner(depth), leaves = forest_perfect_leaves(depth);
        f->pnodes = malloc((f->num_trees * inner + 1) * sizeof *f->pnodes);
        f->pleaves = malloc(f->num_trees * leaves * sizeof *f->pleaves + 1);
        if (!f->pnodes || !f->pleaves)
            return ksv_err_set(err, 500, "model: out of memory");
        for (uint32_t i = 0; i < f->num_trees; i++)
            fill_perfect(&trees[i], 0, 0, 0, depth, f->pnodes + i * inner,
                         f->pleaves + i * leaves);
        return 0;
    }
    if (total > UINT32_MAX)
        return ksv_err_set(err, 400, "model: %zu nodes are more than ksv-forest holds", total);
    f->layout = FOREST_LAYOUT_SPARSE;
    f->snodes = malloc((total ? total : 1) * sizeof *f->snodes);
    f->tree_start = malloc((f->num_trees + 1) * sizeof *f->tree_start);
    if (!f->snodes || !f->tree_start)
        return ksv_err_set(err, 500, "model: out of memory");
    uint32_t at = 0;
    for (uint32_t i = 0; i < f->num_trees; i++) {
        f->tree_start[i] = at;
        if (fill_sparse(&trees[i], f->snodes + at, err) < 0)
            return -1;
        at += trees[i].reachable;
    }
    f->tree_start[f->num_trees] = at;
    return 0;
}

/* ---- the document ------------------------------------------------------------------------ */

static int read_header(json_object *root, forest *f, json_object **trees_out,
                       json_object **tree_info_out, ksv_err *err)
{
    json_object *version = optional_member(root, "version");
    if (version && json_object_is_type(version, json_type_array) &&
        json_object_array_length(version) == 3) {
        snprintf(f->version, sizeof f->version, "%d.%d.%d",
                 json_object_get_int(json_object_array_get_idx(version, 0)),
                 json_object_get_int(json_object_array_get_idx(version, 1)),
                 json_object_get_int(json_object_array_get_idx(version, 2)));
    }
    json_object *learner = member(root, "learner", json_type_object, "document", err);
    if (!learner)
        return -1;
    json_object *types = optional_member(learner, "feature_types");
    if (types && json_object_is_type(types, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(types); i++) {
            const char *ty = json_object_get_string(json_object_array_get_idx(types, i));
            if (ty && strcmp(ty, "c") == 0)
                return ksv_err_set(err, 400, "model: feature %zu is categorical; ksv-forest does "
                                   "not support categorical features (use runtime ksv-xgboost)", i);
        }
    }
    json_object *objective = member(learner, "objective", json_type_object, "learner", err);
    json_object *obj_name = objective ? member(objective, "name", json_type_string,
                                               "learner.objective", err) : NULL;
    if (!obj_name)
        return -1;
    const char *name = json_object_get_string(obj_name);
    const objective_rule *rule = NULL;
    for (size_t i = 0; i < sizeof objective_rules / sizeof objective_rules[0]; i++)
        if (strcmp(objective_rules[i].name, name) == 0)
            rule = &objective_rules[i];
    if (!rule)
        return ksv_err_set(err, 400, "model: objective \"%.60s\" is not supported by ksv-forest "
                           "(supported: binary:logistic, multi:softprob, multi:softmax, "
                           "reg:squarederror, rank:pairwise)", name);
    snprintf(f->objective, sizeof f->objective, "%s", name);
    f->output = rule->output;

    json_object *mp = member(learner, "learner_model_param", json_type_object, "learner", err);
    if (!mp)
        return -1;
    uint64_t num_feature, num_class = 0, num_target = 1;
    if (param_uint(mp, "num_feature", "learner_model_param", 1, FOREST_FEATURE_MASK,
                   &num_feature, err) < 0 ||
        param_uint(mp, "num_class", "learner_model_param", 0, 1u << 20, &num_class, err) < 0 ||
        param_uint(mp, "num_target", "learner_model_param", 0, 1u << 20, &num_target, err) < 0)
        return -1;
    if (num_feature == 0)
        return ksv_err_set(err, 400, "model: learner_model_param.num_feature is 0");
    uint64_t groups = num_class > num_target ? num_class : num_target;
    f->num_features = (uint32_t)num_feature;
    f->num_groups = (uint32_t)(groups ? groups : 1);
    if ((f->output == FOREST_OUT_SOFTMAX || f->output == FOREST_OUT_ARGMAX) && num_class < 1)
        return ksv_err_set(err, 400, "model: %s needs num_class >= 1", name);
    f->num_outputs = f->output == FOREST_OUT_ARGMAX ? 1 : f->num_groups;

    f->base_margin = malloc(f->num_groups * sizeof *f->base_margin);
    if (!f->base_margin)
        return ksv_err_set(err, 500, "model: out of memory");
    json_object *bs = member(mp, "base_score", json_type_string, "learner_model_param", err);
    if (!bs || parse_base_score(json_object_get_string(bs), f->num_groups, f->base_margin, err) < 0)
        return -1;
    if (rule->logit_base) {
        for (uint32_t g = 0; g < f->num_groups; g++) {
            float b = f->base_margin[g];
            if (!(b > 0.0f && b < 1.0f))
                return ksv_err_set(err, 400, "model: base_score %g must be in (0, 1) for %s",
                                   (double)b, name);
            /* XGBoost's ProbToMargin for logistic, in float. */
            f->base_margin[g] = -logf(1.0f / b - 1.0f);
        }
    }

    json_object *gb = member(learner, "gradient_booster", json_type_object, "learner", err);
    json_object *gb_name = gb ? member(gb, "name", json_type_string, "gradient_booster", err) : NULL;
    if (!gb_name)
        return -1;
    bool linear = strcmp(json_object_get_string(gb_name), "gblinear") == 0;
    if (!linear && strcmp(json_object_get_string(gb_name), "gbtree") != 0)
        return ksv_err_set(err, 400, "model: booster \"%.40s\" is not supported by ksv-forest "
                           "(gbtree and gblinear; use runtime ksv-xgboost)",
                           json_object_get_string(gb_name));
    json_object *model = member(gb, "model", json_type_object, "gradient_booster", err);
    if (!model)
        return -1;
    if (linear) {
        /* gblinear: one weight per feature and group, then one bias per group. */
        json_object *w = optional_member(model, "weights");
        size_t want = (size_t)f->num_features * f->num_groups + f->num_groups;
        if (!w || !json_object_is_type(w, json_type_array))
            return ksv_err_set(err, 400, "model: gblinear model has no weights array");
        if (json_object_array_length(w) != want)
            return ksv_err_set(err, 400, "model: gblinear weights has %zu values, want %zu",
                               json_object_array_length(w), want);
        f->linear = malloc(want * sizeof *f->linear);
        if (!f->linear)
            return ksv_err_set(err, 500, "model: out of memory");
        for (size_t i = 0; i < want; i++) {
            json_object *e = json_object_array_get_idx(w, i);
            if (!json_object_is_type(e, json_type_double) && !json_object_is_type(e, json_type_int))
                return ksv_err_set(err, 400, "model: gblinear weights[%zu] is not a number", i);
            f->linear[i] = (float)json_object_get_double(e);
        }
        f->layout = FOREST_LAYOUT_LINEAR;
        f->num_trees = 0;
        *trees_out = NULL;
        *tree_info_out = NULL;
        return 0;
    }
    if (optional_member(model, "weight_drop"))
        return ksv_err_set(err, 400, "model: dart weights (weight_drop) are not supported by "
                           "ksv-forest (use runtime ksv-xgboost)");
    json_object *trees = member(model, "trees", json_type_array, "model", err);
    json_object *tree_info = member(model, "tree_info", json_type_array, "model", err);
    json_object *gp = member(model, "gbtree_model_param", json_type_object, "model", err);
    if (!trees || !tree_info || !gp)
        return -1;
    uint64_t num_trees;
    if (param_uint(gp, "num_trees", "gbtree_model_param", 1, UINT32_MAX, &num_trees, err) < 0)
        return -1;
    if (json_object_array_length(trees) != num_trees ||
        json_object_array_length(tree_info) != num_trees)
        return ksv_err_set(err, 400, "model: num_trees is %llu but trees has %zu and tree_info %zu",
                           (unsigned long long)num_trees, json_object_array_length(trees),
                           json_object_array_length(tree_info));
    json_object *indptr = optional_member(model, "iteration_indptr");
    if (indptr && json_object_is_type(indptr, json_type_array)) {
        size_t m = json_object_array_length(indptr);
        int64_t last = -1;
        if (m == 0 || element_int(json_object_array_get_idx(indptr, m - 1), &last) < 0 ||
            (uint64_t)last != num_trees)
            return ksv_err_set(err, 400, "model: iteration_indptr does not end at num_trees");
    }
    f->num_trees = (uint32_t)num_trees;
    *trees_out = trees;
    *tree_info_out = tree_info;
    return 0;
}

static int build_forest(json_object *root, forest_layout_pref pref, forest **out, ksv_err *err)
{
    forest *f = calloc(1, sizeof *f);
    if (!f)
        return ksv_err_set(err, 500, "model: out of memory");
    json_object *trees = NULL, *tree_info = NULL;
    xgb_tree *raw = NULL;
    int rc = read_header(root, f, &trees, &tree_info, err);
    if (rc < 0)
        goto fail;
    if (f->layout == FOREST_LAYOUT_LINEAR) {
        *out = f;
        return 0;
    }
    f->tree_group = malloc((f->num_trees ? f->num_trees : 1) * sizeof *f->tree_group);
    raw = calloc(f->num_trees ? f->num_trees : 1, sizeof *raw);
    if (!f->tree_group || !raw) {
        rc = ksv_err_set(err, 500, "model: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < f->num_trees; i++) {
        int64_t g;
        if (element_int(json_object_array_get_idx(tree_info, i), &g) < 0 || g < 0 ||
            g >= f->num_groups) {
            rc = ksv_err_set(err, 400, "model: tree_info[%u] is not a group below %u", i,
                             f->num_groups);
            goto fail;
        }
        f->tree_group[i] = (uint32_t)g;
        json_object *tree = json_object_array_get_idx(trees, i);
        if (!json_object_is_type(tree, json_type_object)) {
            rc = ksv_err_set(err, 400, "model: trees[%u] is not an object", i);
            goto fail;
        }
        if ((rc = read_tree(tree, i, f->num_features, &raw[i], err)) < 0)
            goto fail;
    }
    if ((rc = build_layout(f, raw, pref, err)) < 0)
        goto fail;
    for (uint32_t i = 0; i < f->num_trees; i++)
        xgb_tree_release(&raw[i]);
    free(raw);
    *out = f;
    return 0;
fail:
    if (raw)
        for (uint32_t i = 0; i < f->num_trees; i++)
            xgb_tree_release(&raw[i]);
    free(raw);
    forest_free(f);
    return -1;
}

static json_object *parse_json(const char *data, size_t len, ksv_err *err)
{
    if (len > INT32_MAX) {
        ksv_err_set(err, 400, "model: JSON document too large");
        return NULL;
    }
    /* json-c (0.13+) accepts the bare NaN / Infinity / -Infinity tokens XGBoost writes for
     * categorical nodes and extreme values, as long as strict mode stays off. */
    json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
    if (!tok) {
        ksv_err_set(err, 500, "model: out of memory");
        return NULL;
    }
    json_object *root = json_tokener_parse_ex(tok, data, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root || jerr != json_tokener_success) {
        json_object_put(root);
        ksv_err_set(err, 400, "model: invalid JSON: %s",
                    jerr == json_tokener_continue ? "unexpected end of data"
                                                  : json_tokener_error_desc(jerr));
        return NULL;
    }
    while (used < len && (data[used] == ' ' || data[used] == '\n' || data[used] == '\r' ||
                          data[used] == '\t'))
        used++;
    if (used != len) {
        json_object_put(root);
        ksv_err_set(err, 400, "model: trailing data after the JSON document");
        return NULL;
    }
    return root;
}

int forest_load_buffer(const void *data, size_t len, forest_format format, forest_layout_pref pref,
                       forest **out, ksv_err *err)
{
    const unsigned char *bytes = data;
    *out = NULL;
    if (format == FOREST_FORMAT_SNIFF) {
        size_t i = 0;
        while (i < len && (bytes[i] == ' ' || bytes[i] == '\n' || bytes[i] == '\r' ||
                           bytes[i] == '\t'))
            i++;
        if (i == len || bytes[i] != '{')
            return ksv_err_set(err, 400, "model: not an XGBoost JSON or UBJSON model "
                               "(legacy binary .bst/.model files are not supported by "
                               "ksv-forest; save the model as .json or .ubj)");
        /* JSON: '{' then whitespace, '"' or '}'; UBJSON: '{' then a type or length marker. */
        unsigned char next = i + 1 < len ? bytes[i + 1] : '}';
        format = (next == '"' || next == '}' || next == ' ' || next == '\n' || next == '\r' ||
                  next == '\t') ? FOREST_FORMAT_JSON : FOREST_FORMAT_UBJSON;
    }
    json_object *root = format == FOREST_FORMAT_JSON ? parse_json(data, len, err)
                                                     : forest_ubjson_parse(bytes, len, err);
    if (!root)
        return -1;
    int rc = build_forest(root, pref, out, err);
    json_object_put(root);
    return rc;
}

int forest_load_file(const char *path, forest_layout_pref pref, forest **out, ksv_err *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return ksv_err_set(err, 404, "model: cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            if (ncap > FOREST_MAX_FILE_BYTES) {
                free(buf);
                fclose(fp);
                return ksv_err_set(err, 400, "model: %s is larger than %zu bytes", path,
                                   FOREST_MAX_FILE_BYTES);
            }
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                free(buf);
                fclose(fp);
                return ksv_err_set(err, 500, "model: out of memory reading %s", path);
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0)
            break;
    }
    int read_error = ferror(fp);
    fclose(fp);
    if (read_error) {
        free(buf);
        return ksv_err_set(err, 500, "model: error reading %s", path);
    }
    forest_format format = FOREST_FORMAT_SNIFF;
    size_t plen = strlen(path);
    if (plen >= 5 && strcmp(path + plen - 5, ".json") == 0)
        format = FOREST_FORMAT_JSON;
    else if (plen >= 4 && strcmp(path + plen - 4, ".ubj") == 0)
        format = FOREST_FORMAT_UBJSON;
    int rc = forest_load_buffer(buf, len, format, pref, out, err);
    free(buf);
    return rc;
}
