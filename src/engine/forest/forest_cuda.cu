/* forest_cuda.cu: ksv-forest on a GPU. One thread per row walks every tree in order and sums
 * leaves from the base margin, then applies the objective's transform in the same kernel:
 * XGBoost layouts in float (forest_traverse.h), the LIGHTGBM layout in double with
 * LightGBM's rules (forest_lightgbm_traverse.h's forest_lgb_row, which the CPU tests run on
 * the host). Same code, same order of operations as the CPU path, no fused multiply-adds
 * (Makefile.am's --fmad=false): the answers are the CPU's bits, as bench/gpu-check.sh checks
 * on a device. */
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "common/error.h"
}
#include "engine/forest/forest_cuda.h"
#include "engine/forest/forest_lightgbm_traverse.h"
#include "engine/forest/forest_traverse.h"

#define FOREST_CUDA_THREADS 128

/* Device copy of the forest, passed to the kernel by value. */
typedef struct forest_dev {
    forest_layout_kind layout;
    forest_output output;
    uint32_t depth, num_trees, num_features, num_groups, num_outputs;
    const forest_pnode *pnodes;
    const float *pleaves;
    const forest_snode *snodes;
    const uint32_t *tree_start;
    const uint32_t *tree_group;
    const float *base_margin;
    forest_lgb_view lgb;    /* LIGHTGBM: its arrays' device copies */
} forest_dev;

/* The device allocations of one forest, freed together. */
enum {
    SLOT_PNODES, SLOT_PLEAVES, SLOT_SNODES, SLOT_TREE_START, SLOT_TREE_GROUP, SLOT_BASE_MARGIN,
    SLOT_LNODES, SLOT_LNODE_START, SLOT_LLEAVES, SLOT_LLEAF_START, SLOT_CAT_WORDS,
    SLOT_CAT_START, SLOT_COUNT
};

typedef struct forest_cuda_worker {
    cudaStream_t stream;
    float *d_x, *d_out;
    void *d_margin;         /* per row K margins: float, or double for LIGHTGBM */
    size_t cap_rows;
} forest_cuda_worker;

struct forest_cuda {
    int device;
    forest_dev dev;
    size_t margin_size;     /* bytes of one margin */
    void *allocations[SLOT_COUNT];
    unsigned workers;
    forest_cuda_worker *worker;
};

__global__ void forest_predict_kernel(forest_dev f, const float *x, size_t rows, float *margin,
                                      float *out)
{
    size_t r = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows)
        return;
    const float *row = x + r * f.num_features;
    float *m = margin + r * f.num_groups;
    for (uint32_t g = 0; g < f.num_groups; g++)
        m[g] = f.base_margin[g];
    if (f.layout == FOREST_LAYOUT_PERFECT) {
        size_t inner = ((size_t)1 << f.depth) - 1, nleaves = (size_t)1 << f.depth;
        for (uint32_t t = 0; t < f.num_trees; t++)
            m[f.tree_group[t]] += forest_perfect_leaf(f.pnodes + t * inner,
                                                      f.pleaves + t * nleaves, f.depth, row);
    } else {
        for (uint32_t t = 0; t < f.num_trees; t++)
            m[f.tree_group[t]] += forest_sparse_leaf(f.snodes + f.tree_start[t], row);
    }
    forest_output_row(f.output, f.num_groups, m, out + r * f.num_outputs);
}

/* LightGBM: the CPU's row code, per thread (margin: K doubles per row). */
__global__ void forest_lgb_kernel(forest_lgb_view v, uint32_t cols, const float *x, size_t rows,
                                  double *margin, float *out)
{
    size_t r = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows)
        return;
    forest_lgb_row(&v, x + r * cols, margin + r * v.num_groups, out + r * v.num_groups);
}

static int cuda_fail(ksv_err *err, const char *what, cudaError_t rc)
{
    return ksv_err_set(err, 500, "cuda: %s: %s", what, cudaGetErrorString(rc));
}

extern "C" int forest_cuda_device_count(ksv_err *err)
{
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        ksv_err_set(err, 503, "cuda: %s", cudaGetErrorString(rc));
        return 0;
    }
    if (n == 0)
        ksv_err_set(err, 503, "cuda: no CUDA device");
    return n;
}

static int upload(forest_cuda *g, int slot, const void *src, size_t bytes, ksv_err *err)
{
    void *d = NULL;
    cudaError_t rc = cudaMalloc(&d, bytes ? bytes : 1);
    if (rc != cudaSuccess)
        return cuda_fail(err, "cudaMalloc", rc);
    g->allocations[slot] = d;
    if (bytes && (rc = cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice)) != cudaSuccess)
        return cuda_fail(err, "cudaMemcpy", rc);
    return 0;
}

extern "C" void forest_cuda_destroy(forest_cuda *g)
{
    if (!g)
        return;
    cudaSetDevice(g->device);
    for (unsigned w = 0; g->worker && w < g->workers; w++) {
        forest_cuda_worker *k = &g->worker[w];
        cudaFree(k->d_x);
        cudaFree(k->d_margin);
        cudaFree(k->d_out);
        if (k->stream)
            cudaStreamDestroy(k->stream);
    }
    for (int i = 0; i < SLOT_COUNT; i++)
        cudaFree(g->allocations[i]);
    free(g->worker);
    free(g);
}

extern "C" int forest_cuda_create(const forest *f, int device, unsigned workers, forest_cuda **out,
                                  ksv_err *err)
{
    *out = NULL;
    cudaError_t rc = cudaSetDevice(device);
    if (rc != cudaSuccess)
        return cuda_fail(err, "cudaSetDevice", rc);
    forest_cuda *g = (forest_cuda *)calloc(1, sizeof *g);
    if (!g)
        return ksv_err_set(err, 500, "cuda: out of memory");
    g->device = device;
    g->workers = workers ? workers : 1;
    g->worker = (forest_cuda_worker *)calloc(g->workers, sizeof *g->worker);
    if (!g->worker) {
        free(g);
        return ksv_err_set(err, 500, "cuda: out of memory");
    }
    forest_dev *d = &g->dev;
    d->layout = f->layout;
    d->output = f->output;
    d->depth = f->depth;
    d->num_trees = f->num_trees;
    d->num_features = f->num_features;
    d->num_groups = f->num_groups;
    d->num_outputs = f->num_outputs;
    g->margin_size = sizeof(float);
    int ok = 0;
    void **a = g->allocations;
    if (f->layout == FOREST_LAYOUT_PERFECT) {
        size_t inner = forest_perfect_inner(f->depth), nleaves = forest_perfect_leaves(f->depth);
        ok = upload(g, SLOT_PNODES, f->pnodes, f->num_trees * inner * sizeof *f->pnodes, err) ==
                 0 &&
             upload(g, SLOT_PLEAVES, f->pleaves, f->num_trees * nleaves * sizeof *f->pleaves,
                    err) == 0;
        d->pnodes = (const forest_pnode *)a[SLOT_PNODES];
        d->pleaves = (const float *)a[SLOT_PLEAVES];
    } else if (f->layout == FOREST_LAYOUT_SPARSE) {
        size_t total = f->tree_start[f->num_trees];
        ok = upload(g, SLOT_SNODES, f->snodes, total * sizeof *f->snodes, err) == 0 &&
             upload(g, SLOT_TREE_START, f->tree_start,
                    (f->num_trees + 1) * sizeof *f->tree_start, err) == 0;
        d->snodes = (const forest_snode *)a[SLOT_SNODES];
        d->tree_start = (const uint32_t *)a[SLOT_TREE_START];
    } else if (f->layout == FOREST_LAYOUT_LIGHTGBM) {
        /* The host view's numbers, the device copies' pointers; no base margin, no groups
         * (tree t adds to class t % K). */
        size_t trees = (size_t)f->num_trees + 1;
        ok = upload(g, SLOT_LNODES, f->lnodes, f->lnode_start[f->num_trees] * sizeof *f->lnodes,
                    err) == 0 &&
             upload(g, SLOT_LNODE_START, f->lnode_start, trees * sizeof *f->lnode_start, err) ==
                 0 &&
             upload(g, SLOT_LLEAVES, f->lleaves,
                    f->lleaf_start[f->num_trees] * sizeof *f->lleaves, err) == 0 &&
             upload(g, SLOT_LLEAF_START, f->lleaf_start, trees * sizeof *f->lleaf_start, err) ==
                 0 &&
             upload(g, SLOT_CAT_WORDS, f->cat_words,
                    f->cat_start[f->num_cat] * sizeof *f->cat_words, err) == 0 &&
             upload(g, SLOT_CAT_START, f->cat_start, ((size_t)f->num_cat + 1) *
                    sizeof *f->cat_start, err) == 0;
        d->lgb = forest_lgb_view_of(f);
        d->lgb.nodes = (const forest_lnode *)a[SLOT_LNODES];
        d->lgb.node_start = (const uint32_t *)a[SLOT_LNODE_START];
        d->lgb.leaves = (const double *)a[SLOT_LLEAVES];
        d->lgb.leaf_start = (const uint32_t *)a[SLOT_LLEAF_START];
        d->lgb.cat_words = (const uint32_t *)a[SLOT_CAT_WORDS];
        d->lgb.cat_start = (const uint32_t *)a[SLOT_CAT_START];
        g->margin_size = sizeof(double);
    } else {
        ksv_err_set(err, 500, "cuda: no kernel for this layout (gblinear runs on the CPU)");
    }
    if (f->layout != FOREST_LAYOUT_LIGHTGBM) {
        ok = ok &&
             upload(g, SLOT_TREE_GROUP, f->tree_group, f->num_trees * sizeof *f->tree_group,
                    err) == 0 &&
             upload(g, SLOT_BASE_MARGIN, f->base_margin,
                    f->num_groups * sizeof *f->base_margin, err) == 0;
        d->tree_group = (const uint32_t *)a[SLOT_TREE_GROUP];
        d->base_margin = (const float *)a[SLOT_BASE_MARGIN];
    }
    for (unsigned w = 0; ok && w < g->workers; w++) {
        if ((rc = cudaStreamCreateWithFlags(&g->worker[w].stream, cudaStreamNonBlocking)) !=
            cudaSuccess) {
            cuda_fail(err, "cudaStreamCreate", rc);
            ok = 0;
        }
    }
    if (!ok) {
        forest_cuda_destroy(g);
        return -1;
    }
    *out = g;
    return 0;
}

static int grow_worker(forest_cuda *g, forest_cuda_worker *k, size_t rows, ksv_err *err)
{
    if (rows <= k->cap_rows)
        return 0;
    size_t cap = k->cap_rows ? k->cap_rows : 1024;
    while (cap < rows)
        cap *= 2;
    cudaFree(k->d_x);
    cudaFree(k->d_margin);
    cudaFree(k->d_out);
    k->d_x = k->d_out = NULL;
    k->d_margin = NULL;
    k->cap_rows = 0;
    cudaError_t rc;
    if ((rc = cudaMalloc(&k->d_x, cap * g->dev.num_features * sizeof(float))) != cudaSuccess ||
        (rc = cudaMalloc(&k->d_margin, cap * g->dev.num_groups * g->margin_size)) !=
            cudaSuccess ||
        (rc = cudaMalloc(&k->d_out, cap * g->dev.num_outputs * sizeof(float))) != cudaSuccess)
        return cuda_fail(err, "cudaMalloc", rc);
    k->cap_rows = cap;
    return 0;
}

extern "C" int forest_cuda_predict(forest_cuda *g, unsigned worker, const float *x, size_t rows,
                                   float *out, ksv_err *err)
{
    if (worker >= g->workers)
        return ksv_err_set(err, 500, "cuda: worker %u out of range", worker);
    if (rows == 0)
        return 0;
    cudaError_t rc = cudaSetDevice(g->device);
    if (rc != cudaSuccess)
        return cuda_fail(err, "cudaSetDevice", rc);
    forest_cuda_worker *k = &g->worker[worker];
    if (grow_worker(g, k, rows, err) < 0)
        return -1;
    size_t in_bytes = rows * g->dev.num_features * sizeof(float);
    size_t out_bytes = rows * g->dev.num_outputs * sizeof(float);
    if ((rc = cudaMemcpyAsync(k->d_x, x, in_bytes, cudaMemcpyHostToDevice, k->stream)) !=
        cudaSuccess)
        return cuda_fail(err, "cudaMemcpyAsync", rc);
    unsigned blocks = (unsigned)((rows + FOREST_CUDA_THREADS - 1) / FOREST_CUDA_THREADS);
    if (g->dev.layout == FOREST_LAYOUT_LIGHTGBM)
        forest_lgb_kernel<<<blocks, FOREST_CUDA_THREADS, 0, k->stream>>>(
            g->dev.lgb, g->dev.num_features, k->d_x, rows, (double *)k->d_margin, k->d_out);
    else
        forest_predict_kernel<<<blocks, FOREST_CUDA_THREADS, 0, k->stream>>>(
            g->dev, k->d_x, rows, (float *)k->d_margin, k->d_out);
    if ((rc = cudaGetLastError()) != cudaSuccess)
        return cuda_fail(err, "kernel launch", rc);
    if ((rc = cudaMemcpyAsync(out, k->d_out, out_bytes, cudaMemcpyDeviceToHost, k->stream)) !=
        cudaSuccess)
        return cuda_fail(err, "cudaMemcpyAsync", rc);
    if ((rc = cudaStreamSynchronize(k->stream)) != cudaSuccess)
        return cuda_fail(err, "cudaStreamSynchronize", rc);
    return 0;
}
