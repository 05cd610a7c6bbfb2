/* runtime_forest.c: the ksv-forest runtime: XGBoost and LightGBM models compiled into
 * ksv-forest's own layout (engine/forest/), predicted on the CPU, or (tree models) on a GPU
 * with CUDA kernels when the build has CUDA (HAVE_CUDA) and a device is present. Each worker
 * owns its scratch block, so concurrent predict() calls with distinct worker indexes share
 * only read-only data. */
#include "config.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/forest/forest_load.h"
#include "engine/forest/forest_predict.h"
#include "engine/runtime.h"
#ifdef HAVE_CUDA
#include "engine/forest/forest_cuda.h"
#endif

/* Batches at least this large go to the GPU; smaller ones cost less than a launch on CPU. */
#define FOREST_GPU_MIN_ROWS 256

typedef struct forest_model {
    forest *f;
    unsigned workers;
    unsigned threads;       /* threads one predict() may use on CPU */
    size_t scratch_floats;
    float *scratch;         /* [workers][scratch_floats] */
#ifdef HAVE_CUDA
    forest_cuda *gpu;       /* NULL: CPU only */
#endif
    _Atomic uint64_t gpu_calls; /* predictions that ran on the GPU (bench/gpu-check.sh) */
} forest_model;

static void forest_unload(void *model)
{
    forest_model *m = model;
    if (!m)
        return;
#ifdef HAVE_CUDA
    forest_cuda_destroy(m->gpu);
#endif
    free(m->scratch);
    forest_free(m->f);
    free(m);
}

static int forest_run(void *model, unsigned worker, const float *x, size_t rows, size_t cols,
                      float *out, ksv_err *err)
{
    forest_model *m = model;
    if (cols != m->f->num_features)
        return ksv_err_set(err, 400, "model expects %u features per row, got %zu",
                           m->f->num_features, cols);
    if (worker >= m->workers)
        return ksv_err_set(err, 500, "worker index %u out of range (%u workers)", worker,
                           m->workers);
    if (rows == 0)
        return 0;
#ifdef HAVE_CUDA
    if (m->gpu && rows >= FOREST_GPU_MIN_ROWS) {
        atomic_fetch_add_explicit(&m->gpu_calls, 1, memory_order_relaxed);
        return forest_cuda_predict(m->gpu, worker, x, rows, out, err);
    }
#endif
    return forest_predict_parallel(m->f, x, rows, out, m->scratch + worker * m->scratch_floats,
                                   m->threads, err);
}

#ifdef HAVE_CUDA
/* The GPU is an accelerator, never a requirement: any failure leaves the model on CPU. */
static void forest_attach_gpu(forest_model *m, int device, const char *path)
{
    ksv_err gerr = {0};
    if (device < 0)
        return; /* --gpu off */
    int count = forest_cuda_device_count(&gerr);
    if (count <= 0) {
        ksv_log(KSV_LOG_INFO, NULL, "ksv-forest: no usable GPU (%s); %s runs on CPU", gerr.msg,
                path);
        return;
    }
    if (device >= count) {
        ksv_log(KSV_LOG_WARN, NULL, "ksv-forest: --gpu %d but %d device(s); %s runs on CPU",
                device, count, path);
        return;
    }
    if (forest_cuda_create(m->f, device, m->workers, &m->gpu, &gerr) < 0) {
        ksv_log(KSV_LOG_WARN, NULL, "ksv-forest: GPU setup failed (%s); %s runs on CPU",
                gerr.msg, path);
        m->gpu = NULL;
    }
}
#endif

static int forest_open(const char *path, const ksv_runtime_options *opts, void **model,
                       ksv_model_info *info, ksv_err *err)
{
    *model = NULL;
    forest_model *m = calloc(1, sizeof *m);
    if (!m)
        return ksv_err_set(err, 500, "out of memory");
    m->workers = opts && opts->workers ? opts->workers : 1;
    m->threads = opts && opts->predict_threads > 0 ? (unsigned)opts->predict_threads : 1;
    if (forest_load_file(path, FOREST_PREFER_AUTO, &m->f, err) < 0) {
        free(m);
        return -1;
    }
    m->scratch_floats = forest_scratch_floats(m->f);
    m->scratch = malloc(m->workers * m->scratch_floats * sizeof *m->scratch);
    if (!m->scratch) {
        forest_unload(m);
        return ksv_err_set(err, 500, "out of memory");
    }
#ifdef HAVE_CUDA
    /* A linear model is cheaper than a launch. */
    if (m->f->layout != FOREST_LAYOUT_LINEAR)
        forest_attach_gpu(m, opts ? opts->gpu : 0, path);
#endif
    /* Warm-up: one prediction per worker's scratch so first requests pay no page faults. */
    float *row = calloc(m->f->num_features, sizeof *row);
    float *out = malloc(m->f->num_outputs * sizeof *out);
    if (!row || !out) {
        free(row);
        free(out);
        forest_unload(m);
        return ksv_err_set(err, 500, "out of memory");
    }
    for (unsigned w = 0; w < m->workers; w++)
        forest_predict(m->f, row, 1, out, m->scratch + w * m->scratch_floats);
    free(row);
    free(out);

    memset(info, 0, sizeof *info);
    info->num_features = m->f->num_features;
    info->num_outputs = m->f->num_outputs;
    snprintf(info->objective, sizeof info->objective, "%s", m->f->objective);
    snprintf(info->version, sizeof info->version, "%s", m->f->version);
    if (m->f->layout == FOREST_LAYOUT_LIGHTGBM)
        snprintf(info->platform, sizeof info->platform, "lightgbm");
#ifdef HAVE_CUDA
    info->prefers_batches = m->gpu != NULL;
#endif
    *model = m;
    return 0;
}

const struct forest *ksv_runtime_forest_layout(const void *handle)
{
    return ((const forest_model *)handle)->f;
}

static void forest_build_info(ksv_runtime_build *b)
{
#ifdef HAVE_CUDA
    snprintf(b->cuda, sizeof b->cuda, "%s", KSV_CUDA_VERSION);
#else
    (void)b;
#endif
}

bool ksv_runtime_forest_on_gpu(const void *handle)
{
#ifdef HAVE_CUDA
    return ((const forest_model *)handle)->gpu != NULL;
#else
    (void)handle;
    return false;
#endif
}

uint64_t ksv_runtime_forest_gpu_calls(void *handle)
{
    return atomic_load(&((forest_model *)handle)->gpu_calls);
}

const ksv_runtime_ops ksv_runtime_forest = {
    .name = "ksv-forest",
    .build_info = forest_build_info,
    .load = forest_open,
    .unload = forest_unload,
    .predict = forest_run,
};
