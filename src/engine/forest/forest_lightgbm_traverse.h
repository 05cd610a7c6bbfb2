/* forest_lightgbm_traverse.h: LightGBM's prediction rules on the LIGHTGBM layout, shared by
 * the C CPU predictor (forest_predict.c) and the CUDA kernel (forest_cuda.cu), so both take
 * the same decisions and do the same double arithmetic in the same order: what the CPU tests
 * prove against LightGBM's own predict holds for the kernel's code too.
 *
 * Everything here is FOREST_HD (forest_traverse.h: __host__ __device__ under nvcc, static
 * inline in C) and reads the forest through a forest_lgb_view, whose pointers are the host's
 * arrays on the CPU and their device copies on the GPU. */
#ifndef KSV_ENGINE_FOREST_LIGHTGBM_TRAVERSE_H
#define KSV_ENGINE_FOREST_LIGHTGBM_TRAVERSE_H

#include "engine/forest/forest_layout.h"
#include "engine/forest/forest_traverse.h"

/* The arrays and numbers prediction reads (forest_layout.h's LIGHTGBM fields). */
typedef struct forest_lgb_view {
    const forest_lnode *nodes;
    const uint32_t *node_start;  /* [num_trees + 1] */
    const double *leaves;
    const uint32_t *leaf_start;  /* [num_trees + 1] */
    const uint32_t *cat_words;
    const uint32_t *cat_start;   /* [num_cat + 1] */
    uint32_t num_trees;
    uint32_t num_groups;         /* K: classes; also the outputs per row */
    forest_lgb_output output;
    double sigmoid, divisor;
} forest_lgb_view;

/* The view of a forest's own (host) arrays. */
FOREST_HD forest_lgb_view forest_lgb_view_of(const forest *f)
{
    forest_lgb_view v = {f->lnodes,    f->lnode_start, f->lleaves,    f->lleaf_start,
                         f->cat_words, f->cat_start,   f->num_trees,  f->num_groups,
                         f->lgb_output, f->lgb_sigmoid, f->lgb_divisor};
    return v;
}

/* LightGBM's decision at one split (its Tree::Decision for the dense rows its predictor
 * builds): a value within FOREST_LGB_ZERO of 0 is 0; numerical: NaN (and 0 under
 * zero-as-missing) takes the default side, else left iff value <= threshold; categorical:
 * left iff the value truncated to an int is a non-negative category in the bitset; NaN and
 * values outside int's range go right, as LightGBM's int conversion makes them on x86-64. */
FOREST_HD int32_t forest_lgb_next(const forest_lnode *n, const uint32_t *cat_words,
                                  const uint32_t *cat_start, const float *row)
{
    float v = row[n->word & FOREST_LGB_FEATURE_MASK];
    if (fabsf(v) <= FOREST_LGB_ZERO)
        v = 0.0f;
    if (n->word & FOREST_LGB_CATEGORICAL) {
        if (!(v < 2147483648.0f && v > -2147483648.0f))
            return n->child[1];
        int32_t category = (int32_t)v;
        if (category < 0)
            return n->child[1];
        uint32_t word = (uint32_t)category / 32, first = cat_start[n->u.cat];
        if (word >= cat_start[n->u.cat + 1] - first)
            return n->child[1];
        return n->child[(cat_words[first + word] >> (category % 32) & 1) ? 0 : 1];
    }
    if (v != v || (v == 0.0f && (n->word & FOREST_LGB_ZERO_MISSING)))
        return n->child[(n->word & FOREST_DEFAULT_LEFT) ? 0 : 1];
    return n->child[v <= n->u.threshold ? 0 : 1];
}

/* The leaf index one row reaches in a LIGHTGBM tree (nodes: its first node; a tree of one
 * leaf has no nodes and answers leaf 0). The loader has checked that every walk ends. */
FOREST_HD uint32_t forest_lgb_leaf(const forest_lnode *nodes, uint32_t num_nodes,
                                   const uint32_t *cat_words, const uint32_t *cat_start,
                                   const float *row)
{
    if (num_nodes == 0)
        return 0;
    int32_t at = 0;
    while (at >= 0)
        at = forest_lgb_next(&nodes[at], cat_words, cat_start, row);
    return (uint32_t)~at;
}

/* Adds trees [first, end) to one row's K double margins, in tree order, tree t to class
 * t % K: LightGBM's PredictRaw sum. */
FOREST_HD void forest_lgb_add_trees(const forest_lgb_view *v, uint32_t first, uint32_t end,
                                    const float *row, double *margin)
{
    for (uint32_t t = first; t < end; t++) {
        uint32_t start = v->node_start[t];
        uint32_t leaf = forest_lgb_leaf(v->nodes + start, v->node_start[t + 1] - start,
                                        v->cat_words, v->cat_start, row);
        margin[t % v->num_groups] += v->leaves[v->leaf_start[t] + leaf];
    }
}

/* The summed margins into the K outputs: divided by the iterations for average_output, then
 * the objective's ConvertOutput in double, then rounded once to float. */
FOREST_HD void forest_lgb_finish(const forest_lgb_view *v, double *m, float *out)
{
    const uint32_t k = v->num_groups;
    if (v->divisor != 1.0)
        for (uint32_t g = 0; g < k; g++)
            m[g] /= v->divisor;
    switch (v->output) {
    case FOREST_LGB_IDENTITY:
        break;
    case FOREST_LGB_SIGNED_SQUARE:
        for (uint32_t g = 0; g < k; g++) {
            double sign = (double)((m[g] > 0.0) - (m[g] < 0.0));
            m[g] = sign * m[g] * m[g];
        }
        break;
    case FOREST_LGB_SIGMOID:
        for (uint32_t g = 0; g < k; g++)
            m[g] = 1.0 / (1.0 + exp(-v->sigmoid * m[g]));
        break;
    case FOREST_LGB_SOFTMAX: {
        double wmax = m[0], wsum = 0.0;
        for (uint32_t g = 1; g < k; g++)
            wmax = m[g] > wmax ? m[g] : wmax;
        for (uint32_t g = 0; g < k; g++) {
            m[g] = exp(m[g] - wmax);
            wsum += m[g];
        }
        for (uint32_t g = 0; g < k; g++)
            m[g] /= wsum;
        break;
    }
    case FOREST_LGB_EXP:
        for (uint32_t g = 0; g < k; g++)
            m[g] = exp(m[g]);
        break;
    case FOREST_LGB_LOG1P_EXP:
        for (uint32_t g = 0; g < k; g++)
            m[g] = log1p(exp(m[g]));
        break;
    }
    for (uint32_t g = 0; g < k; g++)
        out[g] = (float)m[g];
}

/* One row from its features to its K outputs, every tree walked in turn: the CUDA kernel's
 * whole work per thread, and the CPU's reference for it (margin: K doubles of scratch). */
FOREST_HD void forest_lgb_row(const forest_lgb_view *v, const float *row, double *margin,
                              float *out)
{
    for (uint32_t g = 0; g < v->num_groups; g++)
        margin[g] = 0.0;
    forest_lgb_add_trees(v, 0, v->num_trees, row, margin);
    forest_lgb_finish(v, margin, out);
}

#endif
