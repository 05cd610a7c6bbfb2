/* forest_traverse.h: the node-walking rules of ksv-forest, shared by the C CPU predictor and
 * the CUDA kernels so both targets make exactly the same decisions (LightGBM's rules:
 * forest_lightgbm_traverse.h, on the same FOREST_HD).
 *
 * XGBoost's rule: a missing value (NaN) follows the node's default direction; otherwise go
 * left iff value < threshold, compared in float. FOREST_HD expands to __host__ __device__
 * under nvcc and to static inline in C. */
#ifndef KSV_ENGINE_FOREST_TRAVERSE_H
#define KSV_ENGINE_FOREST_TRAVERSE_H

#include "engine/forest/forest_layout.h"

#ifndef __CUDACC__
#include <math.h>
#endif

#ifdef __CUDACC__
#define FOREST_HD __host__ __device__ __forceinline__
#else
#define FOREST_HD static inline
#endif

/* 1 when the walk goes right. Branch-free: NaN fails the compare, then the default bit wins. */
FOREST_HD uint32_t forest_goes_right(uint32_t feature_word, float threshold, float value)
{
    uint32_t missing = value != value;
    uint32_t right_if_present = !(value < threshold);
    uint32_t right_if_missing = !(feature_word & FOREST_DEFAULT_LEFT);
    return missing ? right_if_missing : right_if_present;
}

/* One step down a PERFECT tree: from slot `slot` to one of its children. */
FOREST_HD uint32_t forest_perfect_step(const forest_pnode *nodes, uint32_t slot, const float *row)
{
    forest_pnode n = nodes[slot];
    float v = row[n.feature & FOREST_FEATURE_MASK];
    return 2 * slot + 1 + forest_goes_right(n.feature, n.threshold, v);
}

/* The leaf value one row reaches in a PERFECT tree of `depth` levels. */
FOREST_HD float forest_perfect_leaf(const forest_pnode *nodes, const float *leaves, uint32_t depth,
                                    const float *row)
{
    uint32_t slot = 0;
    for (uint32_t level = 0; level < depth; level++)
        slot = forest_perfect_step(nodes, slot, row);
    return leaves[slot - ((1u << depth) - 1)];
}

/* The leaf value one row reaches in a SPARSE tree whose root is nodes[0]. */
FOREST_HD float forest_sparse_leaf(const forest_snode *nodes, const float *row)
{
    forest_snode n = nodes[0];
    while (!(n.feature & FOREST_LEAF)) {
        float v = row[n.feature & FOREST_FEATURE_MASK];
        n = nodes[n.left + forest_goes_right(n.feature, n.value, v)];
    }
    return n.value;
}

/* XGBoost's common::Sigmoid (1.7 .. 3.x), in float. */
FOREST_HD float forest_sigmoid(float x)
{
    float neg = -x < 88.7f ? -x : 88.7f;
    float denom = expf(neg) + 1.0f + 1e-16f;
    return 1.0f / denom;
}

/* The objective's transform of one row's k margins into its outputs, with XGBoost's
 * numerics: softmax subtracts the max, sums expf in double, divides in float; argmax takes
 * the first maximum (FindMaxIndex). */
FOREST_HD void forest_output_row(forest_output kind, uint32_t k, const float *margin, float *out)
{
    switch (kind) {
    case FOREST_OUT_IDENTITY:
        for (uint32_t g = 0; g < k; g++)
            out[g] = margin[g];
        break;
    case FOREST_OUT_SIGMOID:
        for (uint32_t g = 0; g < k; g++)
            out[g] = forest_sigmoid(margin[g]);
        break;
    case FOREST_OUT_SOFTMAX: {
        float wmax = margin[0];
        for (uint32_t g = 1; g < k; g++)
            wmax = fmaxf(margin[g], wmax);
        double wsum = 0.0;
        for (uint32_t g = 0; g < k; g++) {
            out[g] = expf(margin[g] - wmax);
            wsum += out[g];
        }
        for (uint32_t g = 0; g < k; g++)
            out[g] /= (float)wsum;
        break;
    }
    case FOREST_OUT_ARGMAX: {
        uint32_t best = 0;
        for (uint32_t g = 1; g < k; g++)
            if (margin[g] > margin[best])
                best = g;
        out[0] = (float)best;
        break;
    }
    }
}

#endif
