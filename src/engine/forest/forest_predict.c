/* forest_predict.c: CPU traversal of the ksv-forest layouts. */
#include "engine/forest/forest_predict.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "engine/forest/forest_lightgbm_traverse.h"
#include "engine/forest/forest_traverse.h"

/* Trees walked side by side for one row: enough independent loads to hide L1/L2 latency. */
#define FOREST_TREE_LANES 8
/* Blocks smaller than this walk trees in lockstep per row instead of rows per tree. */
#define FOREST_MIN_ROW_LOCKSTEP 8
/* Below this many rows per thread, starting threads costs more than it saves. */
#define FOREST_MIN_ROWS_PER_THREAD 512

size_t forest_scratch_floats(const forest *f)
{
    /* LIGHTGBM sums in double: one row's margins, as doubles (an even count of floats keeps
     * every worker's slice of a shared scratch array 8-byte aligned). */
    if (f->layout == FOREST_LAYOUT_LIGHTGBM)
        return 2 * (size_t)f->num_groups;
    return (size_t)FOREST_BLOCK_ROWS * f->num_groups;
}

static void init_margins(const forest *f, size_t rows, float *acc)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(acc + r * f->num_groups, f->base_margin, f->num_groups * sizeof *acc);
}

/* Many rows: one tree at a time, all rows of the block advance one level together. */
static void perfect_rows(const forest *f, const float *x, size_t rows, float *acc)
{
    const uint32_t depth = f->depth, cols = f->num_features, groups = f->num_groups;
    const size_t inner = forest_perfect_inner(depth), nleaves = forest_perfect_leaves(depth);
    uint32_t slot[FOREST_BLOCK_ROWS];
    for (uint32_t t = 0; t < f->num_trees; t++) {
        const forest_pnode *nodes = f->pnodes + t * inner;
        const float *leaves = f->pleaves + t * nleaves - inner;
        memset(slot, 0, rows * sizeof slot[0]);
        for (uint32_t level = 0; level < depth; level++)
            for (size_t r = 0; r < rows; r++)
                slot[r] = forest_perfect_step(nodes, slot[r], x + r * cols);
        float *a = acc + f->tree_group[t];
        for (size_t r = 0; r < rows; r++)
            a[r * groups] += leaves[slot[r]];
    }
}

/* Few rows: per row, FOREST_TREE_LANES trees advance together; leaves are then added in
 * tree order so the float sum is the same as XGBoost's. */
static void perfect_lanes(const forest *f, const float *x, size_t rows, float *acc)
{
    const uint32_t depth = f->depth, cols = f->num_features, groups = f->num_groups;
    const size_t inner = forest_perfect_inner(depth), nleaves = forest_perfect_leaves(depth);
    const uint32_t full = f->num_trees - f->num_trees % FOREST_TREE_LANES;
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        float *a = acc + r * groups;
        uint32_t t = 0;
        for (; t < full; t += FOREST_TREE_LANES) {
            const forest_pnode *nodes = f->pnodes + t * inner;
            uint32_t slot[FOREST_TREE_LANES] = {0};
            for (uint32_t level = 0; level < depth; level++)
                for (int j = 0; j < FOREST_TREE_LANES; j++)
                    slot[j] = forest_perfect_step(nodes + j * inner, slot[j], row);
            const float *leaves = f->pleaves + t * nleaves - inner;
            for (int j = 0; j < FOREST_TREE_LANES; j++)
                a[f->tree_group[t + j]] += leaves[j * nleaves + slot[j]];
        }
        for (; t < f->num_trees; t++)
            a[f->tree_group[t]] += forest_perfect_leaf(f->pnodes + t * inner,
                                                       f->pleaves + t * nleaves, depth, row);
    }
}

/* gblinear as XGBoost computes it in float: bias plus base margin, then weight times value
 * for each present feature in index order; a missing value adds nothing. */
static void linear_rows(const forest *f, const float *x, size_t rows, float *acc)
{
    const uint32_t cols = f->num_features, groups = f->num_groups;
    const float *bias = f->linear + (size_t)cols * groups;
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        for (uint32_t g = 0; g < groups; g++) {
            float psum = bias[g] + acc[r * groups + g];
            for (uint32_t c = 0; c < cols; c++)
                if (!isnan(row[c]))
                    psum += row[c] * f->linear[(size_t)c * groups + g];
            acc[r * groups + g] = psum;
        }
    }
}

static void sparse_rows(const forest *f, const float *x, size_t rows, float *acc)
{
    const uint32_t cols = f->num_features, groups = f->num_groups;
    for (uint32_t t = 0; t < f->num_trees; t++) {
        const forest_snode *nodes = f->snodes + f->tree_start[t];
        float *a = acc + f->tree_group[t];
        for (size_t r = 0; r < rows; r++)
            a[r * groups] += forest_sparse_leaf(nodes, x + r * cols);
    }
}

/* LightGBM's PredictRaw then ConvertOutput (forest_lightgbm_traverse.h, the CUDA kernel's
 * code): per row, FOREST_TREE_LANES trees walk side by side, so their node loads overlap;
 * their leaves are then added in tree order, as LightGBM adds them; the trees left over and
 * the transform run the shared row code itself. */
static void lightgbm_rows(const forest *f, const float *x, size_t rows, float *out,
                          double *margin)
{
    const forest_lgb_view v = forest_lgb_view_of(f);
    const uint32_t cols = f->num_features, groups = f->num_groups;
    const uint32_t full = f->num_trees - f->num_trees % FOREST_TREE_LANES;
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        for (uint32_t g = 0; g < groups; g++)
            margin[g] = 0.0;
        for (uint32_t t = 0; t < full; t += FOREST_TREE_LANES) {
            const forest_lnode *nodes[FOREST_TREE_LANES];
            int32_t at[FOREST_TREE_LANES];
            for (int j = 0; j < FOREST_TREE_LANES; j++) {
                nodes[j] = v.nodes + v.node_start[t + j];
                at[j] = v.node_start[t + j + 1] > v.node_start[t + j] ? 0 : ~0;
            }
            for (bool walking = true; walking;) {
                walking = false;
                for (int j = 0; j < FOREST_TREE_LANES; j++) {
                    if (at[j] < 0)
                        continue;
                    at[j] = forest_lgb_next(&nodes[j][at[j]], v.cat_words, v.cat_start, row);
                    walking = true;
                }
            }
            for (int j = 0; j < FOREST_TREE_LANES; j++)
                margin[(t + j) % groups] += v.leaves[v.leaf_start[t + j] + (uint32_t)~at[j]];
        }
        forest_lgb_add_trees(&v, full, f->num_trees, row, margin);
        forest_lgb_finish(&v, margin, out + r * f->num_outputs);
    }
}

void forest_transform_row(const forest *f, const float *margin, float *out)
{
    forest_output_row(f->output, f->num_groups, margin, out);
}

void forest_predict(const forest *f, const float *x, size_t rows, float *out, float *scratch)
{
    const size_t cols = f->num_features;
    if (f->layout == FOREST_LAYOUT_LIGHTGBM) {
        lightgbm_rows(f, x, rows, out, (double *)(void *)scratch);
        return;
    }
    for (size_t begin = 0; begin < rows; begin += FOREST_BLOCK_ROWS) {
        size_t n = rows - begin < FOREST_BLOCK_ROWS ? rows - begin : FOREST_BLOCK_ROWS;
        const float *xb = x + begin * cols;
        init_margins(f, n, scratch);
        if (f->layout == FOREST_LAYOUT_LINEAR)
            linear_rows(f, xb, n, scratch);
        else if (f->layout == FOREST_LAYOUT_SPARSE)
            sparse_rows(f, xb, n, scratch);
        else if (n < FOREST_MIN_ROW_LOCKSTEP)
            perfect_lanes(f, xb, n, scratch);
        else
            perfect_rows(f, xb, n, scratch);
        for (size_t r = 0; r < n; r++)
            forest_transform_row(f, scratch + r * f->num_groups,
                                 out + (begin + r) * f->num_outputs);
    }
}

typedef struct predict_slice {
    const forest *f;
    const float *x;
    size_t rows;
    float *out;
    float *scratch;   /* owned by the slice when the slice runs on its own thread */
} predict_slice;

static void *predict_slice_main(void *arg)
{
    predict_slice *s = arg;
    forest_predict(s->f, s->x, s->rows, s->out, s->scratch);
    return NULL;
}

int forest_predict_parallel(const forest *f, const float *x, size_t rows, float *out,
                            float *scratch, unsigned threads, ksv_err *err)
{
    if (threads > rows / FOREST_MIN_ROWS_PER_THREAD)
        threads = (unsigned)(rows / FOREST_MIN_ROWS_PER_THREAD);
    if (threads <= 1) {
        forest_predict(f, x, rows, out, scratch);
        return 0;
    }
    size_t per = (rows + threads - 1) / threads;
    per = (per + FOREST_BLOCK_ROWS - 1) / FOREST_BLOCK_ROWS * FOREST_BLOCK_ROWS;
    predict_slice *slices = calloc(threads, sizeof *slices);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (!slices || !tids) {
        free(slices);
        free(tids);
        return ksv_err_set(err, 500, "forest: out of memory");
    }
    int rc = 0;
    size_t nscratch = forest_scratch_floats(f);
    /* Slice 0 runs on this thread after the others have started. A slice whose thread could
     * not start runs here too, so the answer is always complete; a slice with non-NULL
     * scratch after this loop is one to join. */
    for (unsigned i = 0; i < threads; i++) {
        size_t begin = (size_t)i * per;
        if (begin >= rows)
            break;
        predict_slice *s = &slices[i];
        *s = (predict_slice){f, x + begin * f->num_features,
                             rows - begin < per ? rows - begin : per,
                             out + begin * f->num_outputs, i == 0 ? scratch : NULL};
        if (i == 0)
            continue;
        s->scratch = malloc(nscratch * sizeof *s->scratch);
        if (s->scratch && pthread_create(&tids[i], NULL, predict_slice_main, s) == 0)
            continue;
        if (s->scratch)
            forest_predict(f, s->x, s->rows, s->out, s->scratch);
        else
            rc = ksv_err_set(err, 500, "forest: out of memory");
        free(s->scratch);
        s->scratch = NULL;
    }
    predict_slice_main(&slices[0]);
    for (unsigned i = 1; i < threads; i++) {
        if (slices[i].scratch) {
            pthread_join(tids[i], NULL);
            free(slices[i].scratch);
        }
    }
    free(slices);
    free(tids);
    return rc;
}
