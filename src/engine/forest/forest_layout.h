/* forest_layout.h: ksv-forest's in-memory tree ensemble, built once at load and read-only after.
 *
 * Two node layouts (docs/FOREST.md explains the choice):
 *  - PERFECT: every tree padded to the forest's depth D as a complete binary tree in
 *    breadth-first order (children of slot i at 2i+1 and 2i+2). Internal slots hold an 8-byte
 *    node; a leaf reached early is copied into all the leaf slots under it, so every walk takes
 *    exactly D steps with no loop exit test. Used when D <= FOREST_PERFECT_MAX_DEPTH.
 *  - SPARSE: 12-byte nodes per tree in breadth-first order, children adjacent (right = left+1),
 *    leaves inline with the leaf bit set. Used for deeper trees.
 *  - LIGHTGBM: LightGBM's own rules (forest_lightgbm.h): 16-byte nodes in LightGBM's
 *    numbering, categorical splits by bitset, zero-as-missing, leaves and sums in double.
 * Plain C structs of fixed-width fields: the CUDA kernels include this header too. */
#ifndef KSV_ENGINE_FOREST_LAYOUT_H
#define KSV_ENGINE_FOREST_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define FOREST_DEFAULT_LEFT 0x80000000u /* take the left child when the feature is missing */
#define FOREST_LEAF 0x40000000u         /* sparse layout: node is a leaf, value is its output */
#define FOREST_FEATURE_MASK 0x3fffffffu
#define FOREST_PERFECT_MAX_DEPTH 10

/* LIGHTGBM layout: bits of forest_lnode.word besides the feature and FOREST_DEFAULT_LEFT. */
#define FOREST_LGB_CATEGORICAL 0x40000000u  /* left iff the value's category is in the bitset */
#define FOREST_LGB_ZERO_MISSING 0x20000000u /* missing_type Zero: 0 (and NaN) take the default */
#define FOREST_LGB_FEATURE_MASK 0x1fffffffu
/* LightGBM's kZeroThreshold (1e-35f): a value this close to 0 is 0 to its predictor. */
#define FOREST_LGB_ZERO 1e-35f

typedef struct forest_pnode {
    uint32_t feature;   /* feature index | FOREST_DEFAULT_LEFT */
    float threshold;    /* go left iff value < threshold (float compare, as XGBoost) */
} forest_pnode;

typedef struct forest_snode {
    uint32_t feature;   /* feature index | FOREST_DEFAULT_LEFT | FOREST_LEAF */
    float value;        /* threshold, or the leaf output */
    uint32_t left;      /* index of the left child inside the tree; right child is left + 1 */
} forest_snode;

/* A LightGBM split. Children >= 0 are nodes of the same tree, < 0 are ~leaf indexes. */
typedef struct forest_lnode {
    uint32_t word;          /* feature | FOREST_DEFAULT_LEFT | FOREST_LGB_* */
    union {
        float threshold;    /* numerical: left iff value <= threshold, the largest float
                             * <= LightGBM's double threshold (the same for float inputs) */
        uint32_t cat;       /* categorical: index into forest.cat_start */
    } u;
    int32_t child[2];       /* left, right */
} forest_lnode;

typedef enum {
    FOREST_LAYOUT_PERFECT,
    FOREST_LAYOUT_SPARSE,
    FOREST_LAYOUT_LINEAR,
    FOREST_LAYOUT_LIGHTGBM
} forest_layout_kind;

/* LightGBM objectives' ConvertOutput, computed in double. */
typedef enum {
    FOREST_LGB_IDENTITY,   /* regression, regression_l1, huber, fair, quantile, mape, ranking */
    FOREST_LGB_SIGNED_SQUARE, /* the same with `sqrt` (reg_sqrt): sign(x) * x * x */
    FOREST_LGB_SIGMOID,    /* binary, multiclassova, cross_entropy: 1 / (1 + exp(-s * x)) */
    FOREST_LGB_SOFTMAX,    /* multiclass */
    FOREST_LGB_EXP,        /* poisson, gamma, tweedie */
    FOREST_LGB_LOG1P_EXP   /* cross_entropy_lambda: log1p(exp(x)) */
} forest_lgb_output;

/* What turns the summed margins into outputs; mirrors XGBoost's PredTransform. */
typedef enum {
    FOREST_OUT_IDENTITY,  /* reg:squarederror, rank:pairwise */
    FOREST_OUT_SIGMOID,   /* binary:logistic */
    FOREST_OUT_SOFTMAX,   /* multi:softprob: K probabilities per row */
    FOREST_OUT_ARGMAX     /* multi:softmax: one class index per row */
} forest_output;

typedef struct forest {
    uint32_t num_features;
    uint32_t num_groups;     /* K: margins per row (classes or targets) */
    uint32_t num_outputs;    /* values written per row */
    uint32_t num_trees;
    forest_output output;
    char objective[64];
    char version[32];        /* XGBoost version that wrote the file, "1.7.4" */
    float *base_margin;      /* [num_groups], already in margin space */
    uint32_t *tree_group;    /* [num_trees]: the margin each tree adds to */
    forest_layout_kind layout;
    uint32_t depth;          /* PERFECT: levels walked per tree; SPARSE: deepest leaf */
    forest_pnode *pnodes;    /* PERFECT: [num_trees][2^depth - 1] */
    float *pleaves;          /* PERFECT: [num_trees][2^depth] */
    forest_snode *snodes;    /* SPARSE: all trees' nodes back to back */
    uint32_t *tree_start;    /* SPARSE: [num_trees + 1] offsets into snodes */
    float *linear;           /* LINEAR (gblinear): [num_features][num_groups] weights, then
                              * [num_groups] biases, as XGBoost stores them */
    /* LIGHTGBM: tree t's nodes are lnodes[lnode_start[t]..], its leaves lleaves[lleaf_start[t]..];
     * categorical split c's bitset is cat_words[cat_start[c] .. cat_start[c + 1]). */
    forest_lnode *lnodes;
    uint32_t *lnode_start;   /* [num_trees + 1] */
    double *lleaves;
    uint32_t *lleaf_start;   /* [num_trees + 1] */
    uint32_t *cat_words;
    uint32_t *cat_start;     /* [num_cat + 1] */
    uint32_t num_cat;
    forest_lgb_output lgb_output;
    double lgb_sigmoid;      /* the sigmoid objectives' scale (objective=binary sigmoid:S) */
    double lgb_divisor;      /* average_output (random forest): iterations; else 1 */
} forest;

static inline size_t forest_perfect_inner(uint32_t depth) { return ((size_t)1 << depth) - 1; }
static inline size_t forest_perfect_leaves(uint32_t depth) { return (size_t)1 << depth; }

#endif
