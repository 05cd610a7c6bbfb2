/* forest_load.c: a checked XGBoost model document (model_document.h) -> ksv-forest layout.
 * The document reader has checked the structure (children, cycles, features, groups); this
 * file refuses only what ksv-forest cannot serve and compiles the rest. */
#include "engine/forest/forest_load.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/forest/forest_lightgbm.h"
#include "engine/model_document.h"

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
    free(f->lnodes);
    free(f->lnode_start);
    free(f->lleaves);
    free(f->lleaf_start);
    free(f->cat_words);
    free(f->cat_start);
    free(f);
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
static int parse_base_score(const char *name, const char *s, uint32_t groups, float *out,
                            ksv_err *err)
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
            return ksv_model_fail(err, name, 400, "base_score \"%.60s\" is not a number list", s);
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
            return ksv_model_fail(err, name, 400, "base_score \"%.60s\" lacks its ']'", s);
        p++;
    }
    if (*p)
        return ksv_model_fail(err, name, 400, "base_score \"%.60s\" has trailing text", s);
    if (count == 1) {
        for (uint32_t g = 1; g < groups; g++)
            out[g] = out[0];
    } else if (count != groups) {
        return ksv_model_fail(err, name, 400, "base_score has %zu values for %u output groups",
                           count, groups);
    }
    return 0;
}

/* ---- layout building --------------------------------------------------------------------- */

static void fill_perfect(const ksv_model_tree *t, uint32_t node, size_t slot, uint32_t level,
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
static int fill_sparse(const char *name, const ksv_model_tree *t, forest_snode *out,
                       ksv_err *err)
{
    uint32_t *order = malloc(t->reachable * sizeof *order);
    if (!order)
        return ksv_model_fail(err, name, 500, "out of memory");
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

static int build_layout(const char *name, forest *f, const ksv_model_tree *trees,
                        forest_layout_pref pref, ksv_err *err)
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
            return ksv_model_fail(err, name, 500, "out of memory");
        for (uint32_t i = 0; i < f->num_trees; i++)
            fill_perfect(&trees[i], 0, 0, 0, depth, f->pnodes + i * inner,
                         f->pleaves + i * leaves);
        return 0;
    }
    if (total > UINT32_MAX)
        return ksv_model_fail(err, name, 400, "%zu nodes are more than ksv-forest holds", total);
    f->layout = FOREST_LAYOUT_SPARSE;
    f->snodes = malloc((total ? total : 1) * sizeof *f->snodes);
    f->tree_start = malloc((f->num_trees + 1) * sizeof *f->tree_start);
    if (!f->snodes || !f->tree_start)
        return ksv_model_fail(err, name, 500, "out of memory");
    uint32_t at = 0;
    for (uint32_t i = 0; i < f->num_trees; i++) {
        f->tree_start[i] = at;
        if (fill_sparse(name, &trees[i], f->snodes + at, err) < 0)
            return -1;
        at += trees[i].reachable;
    }
    f->tree_start[f->num_trees] = at;
    return 0;
}

/* ---- the document ------------------------------------------------------------------------ */

/* What ksv-forest serves of a checked document: its objectives, gbtree or gblinear, scalar
 * leaves, numeric splits. Fills f's header. */
static int read_header(const char *name, const ksv_model_doc *doc, forest *f, ksv_err *err)
{
    snprintf(f->version, sizeof f->version, "%s", doc->version);
    if (doc->categorical_features)
        return ksv_model_fail(err, name, 400, "the model has categorical features; ksv-forest "
                              "does not support them (use runtime ksv-xgboost)");
    if (!doc->objective[0])
        return ksv_model_fail(err, name, 400, "learner.objective.name is missing");
    const objective_rule *rule = NULL;
    for (size_t i = 0; i < sizeof objective_rules / sizeof objective_rules[0]; i++)
        if (strcmp(objective_rules[i].name, doc->objective) == 0)
            rule = &objective_rules[i];
    if (!rule)
        return ksv_model_fail(err, name, 400, "objective \"%.60s\" is not supported by "
                              "ksv-forest (supported: binary:logistic, multi:softprob, "
                              "multi:softmax, reg:squarederror, rank:pairwise)", doc->objective);
    snprintf(f->objective, sizeof f->objective, "%s", doc->objective);
    f->output = rule->output;
    f->num_features = doc->num_feature;
    f->num_groups = doc->num_groups;
    if ((f->output == FOREST_OUT_SOFTMAX || f->output == FOREST_OUT_ARGMAX) && doc->num_class < 1)
        return ksv_model_fail(err, name, 400, "%s needs num_class >= 1", doc->objective);
    f->num_outputs = f->output == FOREST_OUT_ARGMAX ? 1 : f->num_groups;

    f->base_margin = malloc(f->num_groups * sizeof *f->base_margin);
    if (!f->base_margin)
        return ksv_model_fail(err, name, 500, "out of memory");
    if (!doc->base_score)
        return ksv_model_fail(err, name, 400, "learner_model_param.base_score is missing");
    if (parse_base_score(name, doc->base_score, f->num_groups, f->base_margin, err) < 0)
        return -1;
    if (rule->logit_base) {
        for (uint32_t g = 0; g < f->num_groups; g++) {
            float b = f->base_margin[g];
            if (!(b > 0.0f && b < 1.0f))
                return ksv_model_fail(err, name, 400, "base_score %g must be in (0, 1) for %s",
                                      (double)b, doc->objective);
            /* XGBoost's ProbToMargin for logistic, in float. */
            f->base_margin[g] = -logf(1.0f / b - 1.0f);
        }
    }
    if (strcmp(doc->booster, "gbtree") != 0 && strcmp(doc->booster, "gblinear") != 0)
        return ksv_model_fail(err, name, 400, "booster \"%s\" is not supported by ksv-forest "
                              "(gbtree and gblinear; use runtime ksv-xgboost)", doc->booster);
    if (doc->weight_drop)
        return ksv_model_fail(err, name, 400, "dart weights (weight_drop) are not supported by "
                              "ksv-forest (use runtime ksv-xgboost)");
    for (size_t i = 0; i < doc->num_trees; i++) {
        if (doc->trees[i].leaf_vector > 1)
            return ksv_model_fail(err, name, 400, "tree %zu has vector leaves (multi_strategy="
                                  "multi_output_tree); ksv-forest does not support them", i);
        if (doc->trees[i].categorical)
            return ksv_model_fail(err, name, 400, "tree %zu has categorical splits; ksv-forest "
                                  "does not support categorical features (use runtime "
                                  "ksv-xgboost)", i);
    }
    if (doc->num_trees > UINT32_MAX)
        return ksv_model_fail(err, name, 400, "%zu trees are more than ksv-forest holds",
                              doc->num_trees);
    f->num_trees = (uint32_t)doc->num_trees;
    return 0;
}

static int build_forest(const char *name, ksv_model_doc *doc, forest_layout_pref pref,
                        forest **out, ksv_err *err)
{
    forest *f = calloc(1, sizeof *f);
    if (!f)
        return ksv_model_fail(err, name, 500, "out of memory");
    if (read_header(name, doc, f, err) < 0)
        goto fail;
    if (strcmp(doc->booster, "gblinear") == 0) {
        /* The weights, as the document holds them: the predictor's layout. */
        f->layout = FOREST_LAYOUT_LINEAR;
        f->linear = doc->weights;
        doc->weights = NULL;
        *out = f;
        return 0;
    }
    f->tree_group = malloc((f->num_trees ? f->num_trees : 1) * sizeof *f->tree_group);
    if (!f->tree_group) {
        ksv_model_fail(err, name, 500, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < f->num_trees; i++)
        f->tree_group[i] = (uint32_t)doc->trees[i].group;
    if (build_layout(name, f, doc->trees, pref, err) < 0)
        goto fail;
    *out = f;
    return 0;
fail:
    forest_free(f);
    return -1;
}

int forest_load_buffer(const void *data, size_t len, forest_format format, forest_layout_pref pref,
                       forest **out, ksv_err *err)
{
    static const ksv_doc_parse HOW[] = {[FOREST_FORMAT_SNIFF] = KSV_DOC_SNIFF,
                                        [FOREST_FORMAT_JSON] = KSV_DOC_JSON_TEXT,
                                        [FOREST_FORMAT_UBJSON] = KSV_DOC_UBJSON_BYTES};
    ksv_model_doc doc;
    *out = NULL;
    if (format == FOREST_FORMAT_LIGHTGBM ||
        (format == FOREST_FORMAT_SNIFF && forest_lightgbm_sniff(data, len)))
        return forest_lightgbm_parse(NULL, data, len, out, err);
    if (ksv_model_doc_parse(NULL, data, len, HOW[format], &doc, err) < 0)
        return -1;
    int rc = build_forest(NULL, &doc, pref, out, err);
    ksv_model_doc_free(&doc);
    return rc;
}

/* A LightGBM text model: any .txt file, or a .bst file whose content is one (KServe's name
 * for it; XGBoost's own .bst is binary). 1: it was one (*out or err set), 0: not one. */
static int load_lightgbm_file(const char *path, forest **out, ksv_err *err)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash) ||
        (strcasecmp(dot, ".txt") != 0 && strcasecmp(dot, ".bst") != 0))
        return 0;
    char *data;
    size_t len;
    if (ksv_model_file_read(path, &data, &len, err) < 0)
        return 1;
    bool text_name = strcasecmp(dot, ".txt") == 0;
    int rc = 0;
    if (forest_lightgbm_sniff(data, len)) {
        forest_lightgbm_parse(path, data, len, out, err);
        rc = 1;
    } else if (text_name) {
        ksv_model_fail(err, path, 400, "a .txt model must be a LightGBM text model (its "
                       "first line \"tree\")");
        rc = 1;
    }
    free(data);
    return rc;
}

bool forest_file_is_lightgbm(const char *path)
{
    char head[8];
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    return forest_lightgbm_sniff(head, n);
}

int forest_load_file(const char *path, forest_layout_pref pref, forest **out, ksv_err *err)
{
    ksv_model_doc doc;
    *out = NULL;
    if (load_lightgbm_file(path, out, err))
        return *out ? 0 : -1;
    if (ksv_model_doc_read_file(path, &doc, err) < 0)
        return -1;
    int rc = build_forest(path, &doc, pref, out, err);
    ksv_model_doc_free(&doc);
    return rc;
}
