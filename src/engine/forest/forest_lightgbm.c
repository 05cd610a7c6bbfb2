/* forest_lightgbm.c: LightGBM text model -> ksv-forest LIGHTGBM layout (forest_lightgbm.h).
 *
 * The format: a header of key=value lines after a first line "tree"; then per tree a block
 * "Tree=N" of key=value lines whose arrays are space-separated; then "end of trees" and
 * sections ksv does not need (importances, parameters). LightGBM's numbering: internal nodes
 * 0 .. num_leaves-2 with node 0 the root; a child >= 0 is a node, < 0 is leaf ~child. */
#include "engine/forest/forest_lightgbm.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/forest/forest_load.h"
#include "engine/model_document.h"

/* Beyond these no real model goes; below them every count fits the arrays' indexes. */
enum { MAX_FEATURES = 1 << 24, MAX_GROUPS = 1 << 16, MAX_LEAVES = 1 << 26 };

bool forest_lightgbm_sniff(const void *data, size_t len)
{
    const char *s = data;
    if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
        s += 3;
        len -= 3;
    }
    return len >= 5 && memcmp(s, "tree", 4) == 0 && (s[4] == '\n' || s[4] == '\r');
}

/* ---- growable arrays (every element comes from the text, so their size is bounded) ------ */

typedef struct grow {
    void *data;
    size_t len, cap, size;   /* elements used, elements allocated, bytes per element */
} grow;

/* Room for count more elements at the end; NULL when memory is refused (or, for a count
 * of 0, when nothing was ever allocated: an offset on NULL is undefined). */
static void *grow_push(grow *g, size_t count)
{
    if (count == 0)
        return g->data ? (char *)g->data + g->len * g->size : NULL;
    if (count > SIZE_MAX / g->size - g->len)
        return NULL;
    if (g->len + count > g->cap) {
        size_t cap = g->cap ? g->cap : 64;
        while (cap < g->len + count)
            cap = cap > SIZE_MAX / 2 / g->size ? g->len + count : cap * 2;
        void *p = realloc(g->data, cap * g->size);
        if (!p)
            return NULL;
        g->data = p;
        g->cap = cap;
    }
    void *at = (char *)g->data + g->len * g->size;
    g->len += count;
    return at;
}

/* ---- the parse --------------------------------------------------------------------------- */

typedef struct lgb_parse {
    const char *name;
    ksv_err *err;
    forest *f;
    grow nodes, leaves, cat_words, cat_start, node_start, leaf_start;
    uint32_t num_class, per_iteration;
    int64_t max_feature_idx;
    bool have_per_iteration, have_features, average_output;
    char objective[200];
} lgb_parse;

/* One tree's key=value lines, each value pointing into the text. */
typedef struct lgb_tree_text {
    long index;
    const char *num_leaves, *num_cat, *split_feature, *threshold, *decision_type, *left_child,
        *right_child, *leaf_value, *cat_boundaries, *cat_threshold, *is_linear;
} lgb_tree_text;

/* A refusal: "model file PATH: LightGBM model: WHAT" (the format must be a literal). */
#define bad(p, ...) ksv_model_fail((p)->err, (p)->name, 400, "LightGBM model: " __VA_ARGS__)

static int oom(lgb_parse *p)
{
    return ksv_model_fail(p->err, p->name, 500, "out of memory");
}

static size_t count_tokens(const char *s)
{
    size_t n = 0;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        n++;
        while (*s && *s != ' ')
            s++;
    }
    return n;
}

/* A whole integer in [lo, hi]. */
static int parse_int(lgb_parse *p, const char *key, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < lo || v > hi)
        return bad(p, "%s=\"%.40s\" is not an integer in [%ld, %ld]", key, s, lo, hi);
    *out = v;
    return 0;
}

/* Walks the space-separated tokens of an array value that must have `expect` of them. */
typedef struct tokens {
    const char *at;
    char token[64];
} tokens;

static int array_start(lgb_parse *p, const char *key, const char *value, size_t expect,
                       uint32_t tree, tokens *t)
{
    if (!value)
        return bad(p, "tree %u: %s is missing", tree, key);
    size_t n = count_tokens(value);
    if (n != expect)
        return bad(p, "tree %u: %s has %zu values, expected %zu", tree, key, n, expect);
    t->at = value;
    return 0;
}

static const char *next_token(tokens *t)
{
    while (*t->at == ' ')
        t->at++;
    size_t n = 0;
    while (t->at[n] && t->at[n] != ' ')
        n++;
    size_t keep = n < sizeof t->token - 1 ? n : sizeof t->token - 1;
    memcpy(t->token, t->at, keep);
    /* A token longer than any number is kept cut short with a mark, so it fails to parse. */
    t->token[keep] = 0;
    if (n > keep)
        t->token[keep - 1] = '#';
    t->at += n;
    return t->token;
}

/* A number; infinities only where allow_inf (LightGBM writes a threshold of `inf`). */
static int next_double(lgb_parse *p, const char *key, uint32_t tree, tokens *t, bool allow_inf,
                       double *out)
{
    const char *s = next_token(t);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || isnan(v) || (!allow_inf && isinf(v)))
        return bad(p, "tree %u: %s value \"%.40s\" is not a %snumber", tree, key, s,
                   allow_inf ? "" : "finite ");
    *out = v;
    return 0;
}

static int next_long(lgb_parse *p, const char *key, uint32_t tree, tokens *t, long lo, long hi,
                     long *out)
{
    const char *s = next_token(t);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < lo || v > hi)
        return bad(p, "tree %u: %s value \"%.40s\" is not an integer in [%ld, %ld]", tree, key,
                   s, lo, hi);
    *out = v;
    return 0;
}

/* LightGBM's `(double)x <= t` for every float x is `x <= threshold` with the largest float
 * <= t (infinities included: t = inf sends every value left, as LightGBM does). */
static float float_threshold(double t)
{
    float below = (float)t;
    if ((double)below > t)
        below = nextafterf(below, -INFINITY);
    return below;
}

/* Every node and leaf reached exactly once from the root: no cycle (the walk at predict
 * time ends), nothing shared, nothing unreachable. */
static int check_shape(lgb_parse *p, uint32_t tree, const forest_lnode *nodes, uint32_t inner,
                       uint32_t leaves)
{
    uint8_t *seen = calloc((size_t)inner + leaves, 1);
    int32_t *stack = malloc(((size_t)inner + leaves) * sizeof *stack);
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return oom(p);
    }
    size_t top = 0, reached = 1;
    int rc = 0;
    stack[top++] = 0;
    seen[0] = 1;
    while (top > 0 && rc == 0) {
        const forest_lnode *n = &nodes[stack[--top]];
        for (int side = 0; side < 2 && rc == 0; side++) {
            int32_t c = n->child[side];
            size_t slot = c >= 0 ? (size_t)c : (size_t)inner + (uint32_t)~c;
            if (seen[slot]) {
                rc = bad(p, "tree %u: %s %d is reached twice", tree, c >= 0 ? "node" : "leaf",
                         c >= 0 ? c : ~c);
                break;
            }
            seen[slot] = 1;
            reached++;
            if (c >= 0)
                stack[top++] = c;
        }
    }
    if (rc == 0 && reached != (size_t)inner + leaves)
        rc = bad(p, "tree %u: %zu of its %u nodes and %u leaves are not reachable from the "
                 "root", tree, (size_t)inner + leaves - reached, inner, leaves);
    free(seen);
    free(stack);
    return rc;
}

static int compile_tree(lgb_parse *p, const lgb_tree_text *tt, uint32_t tree)
{
    long num_leaves, num_cat = 0, v;
    if (!tt->num_leaves)
        return bad(p, "tree %u: num_leaves is missing", tree);
    if (parse_int(p, "num_leaves", tt->num_leaves, 1, MAX_LEAVES, &num_leaves) < 0)
        return -1;
    if (tt->num_cat && parse_int(p, "num_cat", tt->num_cat, 0, MAX_LEAVES, &num_cat) < 0)
        return -1;
    if (tt->is_linear) {
        if (parse_int(p, "is_linear", tt->is_linear, 0, 1, &v) < 0)
            return -1;
        if (v)
            return bad(p, "tree %u is a linear tree (linear_tree=true); ksv-forest does not "
                       "serve linear trees", tree);
    }
    uint32_t leaves = (uint32_t)num_leaves, inner = leaves - 1, cats = (uint32_t)num_cat;
    tokens t;
    if (p->leaves.len + leaves > UINT32_MAX || p->nodes.len + inner > UINT32_MAX)
        return bad(p, "more nodes than ksv-forest holds");
    uint32_t *leaf_start = grow_push(&p->leaf_start, 1), *node_start;
    if (!leaf_start || !(node_start = grow_push(&p->node_start, 1)))
        return oom(p);
    *leaf_start = (uint32_t)p->leaves.len;
    *node_start = (uint32_t)p->nodes.len;

    /* Leaves. */
    if (array_start(p, "leaf_value", tt->leaf_value, leaves, tree, &t) < 0)
        return -1;
    double *leaf = grow_push(&p->leaves, leaves);
    if (!leaf)
        return oom(p);
    for (uint32_t i = 0; i < leaves; i++)
        if (next_double(p, "leaf_value", tree, &t, false, &leaf[i]) < 0)
            return -1;

    /* Categorical bitsets: cat_boundaries[0] = 0, rising, ending at cat_threshold's length. */
    uint32_t cat_base = (uint32_t)(p->cat_start.len - 1);
    if (cats > 0) {
        if (array_start(p, "cat_boundaries", tt->cat_boundaries, (size_t)cats + 1, tree, &t) < 0)
            return -1;
        if (!tt->cat_threshold)
            return bad(p, "tree %u: cat_threshold is missing", tree);
        size_t words = count_tokens(tt->cat_threshold);
        if (p->cat_words.len + words > UINT32_MAX || p->cat_start.len + cats > UINT32_MAX)
            return bad(p, "more categories than ksv-forest holds");
        uint32_t word_base = (uint32_t)p->cat_words.len;
        uint32_t *start = grow_push(&p->cat_start, cats);
        if (!start)
            return oom(p);
        start--; /* the previous sentinel is this tree's first start */
        long prev = 0;
        for (uint32_t i = 0; i <= cats; i++) {
            if (next_long(p, "cat_boundaries", tree, &t, prev, (long)words, &v) < 0)
                return -1;
            if (i == 0 && v != 0)
                return bad(p, "tree %u: cat_boundaries must start at 0", tree);
            if (i == cats && (size_t)v != words)
                return bad(p, "tree %u: cat_boundaries ends at %ld but cat_threshold has %zu "
                           "values", tree, v, words);
            start[i] = word_base + (uint32_t)v;
            prev = v;
        }
        if (array_start(p, "cat_threshold", tt->cat_threshold, words, tree, &t) < 0)
            return -1;
        uint32_t *w = grow_push(&p->cat_words, words);
        if (!w && words)
            return oom(p);
        for (size_t i = 0; i < words; i++) {
            if (next_long(p, "cat_threshold", tree, &t, 0, (long)UINT32_MAX, &v) < 0)
                return -1;
            w[i] = (uint32_t)v;
        }
    }

    /* Splits. */
    if (inner == 0)
        return 0;
    size_t node_base = p->nodes.len;
    if (!grow_push(&p->nodes, inner))
        return oom(p);
    forest_lnode *nodes = (forest_lnode *)p->nodes.data + node_base;
    memset(nodes, 0, inner * sizeof *nodes);
    tokens feat, thr, dt, left, right;
    if (array_start(p, "split_feature", tt->split_feature, inner, tree, &feat) < 0 ||
        array_start(p, "threshold", tt->threshold, inner, tree, &thr) < 0 ||
        array_start(p, "decision_type", tt->decision_type, inner, tree, &dt) < 0 ||
        array_start(p, "left_child", tt->left_child, inner, tree, &left) < 0 ||
        array_start(p, "right_child", tt->right_child, inner, tree, &right) < 0)
        return -1;
    for (uint32_t i = 0; i < inner; i++) {
        forest_lnode *n = &nodes[i];
        long feature, type, children[2];
        double threshold;
        if (next_long(p, "split_feature", tree, &feat, 0, (long)p->f->num_features - 1,
                      &feature) < 0 ||
            next_double(p, "threshold", tree, &thr, true, &threshold) < 0 ||
            next_long(p, "decision_type", tree, &dt, 0, 15, &type) < 0 ||
            next_long(p, "left_child", tree, &left, -(long)leaves, (long)inner - 1,
                      &children[0]) < 0 ||
            next_long(p, "right_child", tree, &right, -(long)leaves, (long)inner - 1,
                      &children[1]) < 0)
            return -1;
        n->child[0] = (int32_t)children[0];
        n->child[1] = (int32_t)children[1];
        n->word = (uint32_t)feature;
        unsigned missing = (unsigned)(type >> 2) & 3;
        if (missing == 3)
            return bad(p, "tree %u: node %u has missing type 3 (decision_type %ld)", tree, i,
                       type);
        if (type & 1) {
            if (threshold != floor(threshold) || threshold < 0 || threshold >= (double)cats)
                return bad(p, "tree %u: categorical node %u names bitset %.17g of %u", tree, i,
                           threshold, cats);
            n->word |= FOREST_LGB_CATEGORICAL;
            n->u.cat = cat_base + (uint32_t)threshold;
            continue;
        }
        n->u.threshold = float_threshold(threshold);
        if (missing == 0) {
            /* None: NaN is 0 to LightGBM, so it goes where 0 goes. */
            if (0.0f <= n->u.threshold)
                n->word |= FOREST_DEFAULT_LEFT;
        } else {
            if (type & 2)
                n->word |= FOREST_DEFAULT_LEFT;
            if (missing == 1)
                n->word |= FOREST_LGB_ZERO_MISSING;
        }
    }
    return check_shape(p, tree, nodes, inner, leaves);
}

/* objective=NAME [key:value ...] -> the output transform. */
static int read_objective(lgb_parse *p)
{
    forest *f = p->f;
    char name[48] = "";
    double sigmoid = 1.0;
    long num_class = -1;
    bool sqrt_output = false;
    char *save = NULL, buf[sizeof p->objective];
    snprintf(buf, sizeof buf, "%s", p->objective);
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (!name[0]) {
            snprintf(name, sizeof name, "%s", tok);
        } else if (strcmp(tok, "sqrt") == 0) {
            sqrt_output = true;
        } else if (strncmp(tok, "sigmoid:", 8) == 0) {
            char *end;
            sigmoid = strtod(tok + 8, &end);
            if (end == tok + 8 || *end || !isfinite(sigmoid) || sigmoid <= 0)
                return bad(p, "objective parameter \"%.40s\" is not a positive number", tok);
        } else if (strncmp(tok, "num_class:", 10) == 0) {
            if (parse_int(p, "objective num_class", tok + 10, 1, MAX_GROUPS, &num_class) < 0)
                return -1;
        }
    }
    static const struct {
        const char *name;
        forest_lgb_output output;
    } rules[] = {
        {"regression", FOREST_LGB_IDENTITY},  {"regression_l1", FOREST_LGB_IDENTITY},
        {"huber", FOREST_LGB_IDENTITY},       {"fair", FOREST_LGB_IDENTITY},
        {"quantile", FOREST_LGB_IDENTITY},    {"mape", FOREST_LGB_IDENTITY},
        {"lambdarank", FOREST_LGB_IDENTITY},  {"rank_xendcg", FOREST_LGB_IDENTITY},
        {"custom", FOREST_LGB_IDENTITY},      {"poisson", FOREST_LGB_EXP},
        {"gamma", FOREST_LGB_EXP},            {"tweedie", FOREST_LGB_EXP},
        {"binary", FOREST_LGB_SIGMOID},       {"multiclassova", FOREST_LGB_SIGMOID},
        {"cross_entropy", FOREST_LGB_SIGMOID}, {"multiclass", FOREST_LGB_SOFTMAX},
        {"cross_entropy_lambda", FOREST_LGB_LOG1P_EXP},
    };
    if (!name[0]) {
        /* No objective line: LightGBM's predict gives the raw scores. */
        snprintf(f->objective, sizeof f->objective, "lightgbm raw");
        f->lgb_output = FOREST_LGB_IDENTITY;
        return 0;
    }
    size_t i = 0, n = sizeof rules / sizeof rules[0];
    while (i < n && strcmp(rules[i].name, name) != 0)
        i++;
    if (i == n)
        return bad(p, "objective \"%.60s\" is not served by ksv-forest (regression, "
                   "regression_l1, huber, fair, quantile, mape, poisson, gamma, tweedie, binary, "
                   "multiclass, multiclassova, cross_entropy, cross_entropy_lambda, lambdarank, "
                   "rank_xendcg)", name);
    f->lgb_output = rules[i].output;
    if (sqrt_output && f->lgb_output == FOREST_LGB_IDENTITY)
        f->lgb_output = FOREST_LGB_SIGNED_SQUARE;
    f->lgb_sigmoid = strcmp(name, "cross_entropy") == 0 ? 1.0 : sigmoid;
    bool multi = strcmp(name, "multiclass") == 0 || strcmp(name, "multiclassova") == 0;
    if (multi && num_class != (long)p->per_iteration)
        return bad(p, "objective %s has num_class:%ld but the model has %u trees per "
                   "iteration", name, num_class, p->per_iteration);
    if (!multi && p->per_iteration != 1)
        return bad(p, "objective %s with %u trees per iteration", name, p->per_iteration);
    snprintf(f->objective, sizeof f->objective, "lightgbm %s", name);
    return 0;
}

static int read_header_line(lgb_parse *p, const char *line)
{
    const char *eq = strchr(line, '=');
    long v;
    if (!eq) {
        if (strcmp(line, "average_output") == 0)
            p->average_output = true;
        return 0; /* other bare words: nothing prediction needs */
    }
    size_t klen = (size_t)(eq - line);
    const char *value = eq + 1;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(line, k, klen) == 0)
    if (KEY("version")) {
        snprintf(p->f->version, sizeof p->f->version, "LightGBM %.20s", value);
    } else if (KEY("num_class")) {
        if (parse_int(p, "num_class", value, 1, MAX_GROUPS, &v) < 0)
            return -1;
        p->num_class = (uint32_t)v;
    } else if (KEY("num_tree_per_iteration")) {
        if (parse_int(p, "num_tree_per_iteration", value, 1, MAX_GROUPS, &v) < 0)
            return -1;
        p->per_iteration = (uint32_t)v;
        p->have_per_iteration = true;
    } else if (KEY("max_feature_idx")) {
        if (parse_int(p, "max_feature_idx", value, 0, MAX_FEATURES - 1, &v) < 0)
            return -1;
        p->max_feature_idx = v;
        p->have_features = true;
    } else if (KEY("objective")) {
        if (strlen(value) >= sizeof p->objective)
            return bad(p, "objective line is too long");
        snprintf(p->objective, sizeof p->objective, "%s", value);
    }
#undef KEY
    return 0;
}

static int header_done(lgb_parse *p)
{
    forest *f = p->f;
    if (!p->have_features)
        return bad(p, "max_feature_idx is missing");
    if (!p->have_per_iteration)
        p->per_iteration = p->num_class ? p->num_class : 1;
    f->num_features = (uint32_t)p->max_feature_idx + 1;
    f->num_groups = p->per_iteration;
    f->num_outputs = p->per_iteration;
    f->output = FOREST_OUT_IDENTITY; /* unused: LIGHTGBM has its own transforms */
    return read_objective(p);
}

/* Splits the tree block's key=value line into tt. */
static int read_tree_line(lgb_parse *p, lgb_tree_text *tt, const char *line, uint32_t tree)
{
    const char *eq = strchr(line, '=');
    if (!eq)
        return bad(p, "tree %u: line \"%.40s\" is not key=value", tree, line);
    size_t klen = (size_t)(eq - line);
    const char *value = eq + 1;
    static const struct {
        const char *key;
        size_t offset;
    } keys[] = {
        {"num_leaves", offsetof(lgb_tree_text, num_leaves)},
        {"num_cat", offsetof(lgb_tree_text, num_cat)},
        {"split_feature", offsetof(lgb_tree_text, split_feature)},
        {"threshold", offsetof(lgb_tree_text, threshold)},
        {"decision_type", offsetof(lgb_tree_text, decision_type)},
        {"left_child", offsetof(lgb_tree_text, left_child)},
        {"right_child", offsetof(lgb_tree_text, right_child)},
        {"leaf_value", offsetof(lgb_tree_text, leaf_value)},
        {"cat_boundaries", offsetof(lgb_tree_text, cat_boundaries)},
        {"cat_threshold", offsetof(lgb_tree_text, cat_threshold)},
        {"is_linear", offsetof(lgb_tree_text, is_linear)},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strlen(keys[i].key) == klen && memcmp(keys[i].key, line, klen) == 0) {
            const char **slot = (const char **)(void *)((char *)tt + keys[i].offset);
            if (*slot)
                return bad(p, "tree %u: %s given twice", tree, keys[i].key);
            *slot = value;
        }
    }
    return 0;
}

static void parse_free(lgb_parse *p)
{
    free(p->nodes.data);
    free(p->leaves.data);
    free(p->cat_words.data);
    free(p->cat_start.data);
    free(p->node_start.data);
    free(p->leaf_start.data);
}

static int parse_text(lgb_parse *p, char *text)
{
    enum { HEADER, TREE, DONE } state = HEADER;
    lgb_tree_text tt = {0};
    uint32_t trees = 0;
    bool in_tree = false, first = true;
    char *line = text;
    while (line && state != DONE) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = 0;
        if (first) {
            if (strcmp(line, "tree") != 0)
                return bad(p, "the first line is not \"tree\"");
            first = false;
        } else if (strncmp(line, "Tree=", 5) == 0 || strcmp(line, "end of trees") == 0) {
            if (state == HEADER && header_done(p) < 0)
                return -1;
            state = TREE;
            if (in_tree) {
                if (compile_tree(p, &tt, trees) < 0)
                    return -1;
                trees++;
                in_tree = false;
            }
            if (line[0] == 'e') {
                state = DONE;
            } else {
                long index;
                if (parse_int(p, "Tree", line + 5, 0, LONG_MAX, &index) < 0)
                    return -1;
                if (index != (long)trees)
                    return bad(p, "Tree=%ld where tree %u was expected", index, trees);
                memset(&tt, 0, sizeof tt);
                in_tree = true;
            }
        } else if (state == HEADER) {
            if (read_header_line(p, line) < 0)
                return -1;
        } else if (n > 0) {
            if (!in_tree)
                return bad(p, "line \"%.40s\" outside a tree", line);
            if (read_tree_line(p, &tt, line, trees) < 0)
                return -1;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (state != DONE)
        return bad(p, "no \"end of trees\" line (a truncated file?)");
    if (trees == 0)
        return bad(p, "the model has no trees");
    if (trees % p->per_iteration)
        return bad(p, "%u trees are not whole iterations of %u", trees, p->per_iteration);
    p->f->num_trees = trees;
    p->f->lgb_divisor = p->average_output ? (double)(trees / p->per_iteration) : 1.0;
    return 0;
}

int forest_lightgbm_parse(const char *name, const void *data, size_t len, forest **out,
                          ksv_err *err)
{
    *out = NULL;
    lgb_parse p = {.name = name, .err = err};
    p.nodes.size = sizeof(forest_lnode);
    p.leaves.size = sizeof(double);
    p.cat_words.size = p.cat_start.size = p.node_start.size = p.leaf_start.size =
        sizeof(uint32_t);
    if (memchr(data, 0, len))
        return bad(&p, "a NUL byte in a text model");
    const char *bytes = data;
    if (len >= 3 && memcmp(bytes, "\xef\xbb\xbf", 3) == 0) {
        bytes += 3;
        len -= 3;
    }
    char *text = malloc(len + 1);
    p.f = calloc(1, sizeof *p.f);
    uint32_t *sentinel = grow_push(&p.cat_start, 1);
    if (!text || !p.f || !sentinel) {
        free(text);
        free(p.f);
        parse_free(&p);
        return oom(&p);
    }
    *sentinel = 0;
    memcpy(text, bytes, len);
    text[len] = 0;
    p.f->layout = FOREST_LAYOUT_LIGHTGBM;
    snprintf(p.f->version, sizeof p.f->version, "LightGBM");
    int rc = parse_text(&p, text);
    free(text);
    if (rc == 0) {
        /* The last starts are the totals, the [num_trees] sentinels. */
        forest *f = p.f;
        uint32_t *ns = grow_push(&p.node_start, 1), *ls = grow_push(&p.leaf_start, 1);
        if (!ns || !ls) {
            rc = oom(&p);
        } else {
            *ns = (uint32_t)p.nodes.len;
            *ls = (uint32_t)p.leaves.len;
            f->lnodes = p.nodes.data;
            f->lleaves = p.leaves.data;
            f->cat_words = p.cat_words.data;
            f->cat_start = p.cat_start.data;
            f->num_cat = (uint32_t)p.cat_start.len - 1;
            f->lnode_start = p.node_start.data;
            f->lleaf_start = p.leaf_start.data;
            memset(&p.nodes, 0, sizeof p.nodes);
            memset(&p.leaves, 0, sizeof p.leaves);
            memset(&p.cat_words, 0, sizeof p.cat_words);
            memset(&p.cat_start, 0, sizeof p.cat_start);
            memset(&p.node_start, 0, sizeof p.node_start);
            memset(&p.leaf_start, 0, sizeof p.leaf_start);
            /* Never read when empty, but never NULL: the walk adds offsets to them, and an
             * offset on NULL is undefined (found by fuzz_model_lightgbm: a forest of
             * single-leaf trees has no nodes). */
            if (!f->lnodes)
                f->lnodes = calloc(1, sizeof *f->lnodes);
            if (!f->cat_words)
                f->cat_words = calloc(1, sizeof *f->cat_words);
            if (!f->lnodes || !f->cat_words) {
                forest_free(f);
                parse_free(&p);
                return oom(&p);
            }
            *out = f;
            p.f = NULL;
        }
    }
    parse_free(&p);
    forest_free(p.f);
    return rc;
}
