/* forest_cuda.h: C API of ksv-forest's CUDA kernels (forest_cuda.cu, built only when nvcc is
 * found; callers use it only under HAVE_CUDA). The kernels walk the same layouts (XGBoost's
 * PERFECT and SPARSE, LIGHTGBM) with the same traversal headers as the CPU path; gblinear is
 * refused (it stays on the CPU). Per-worker streams and buffers make predict() safe to call
 * concurrently with distinct worker indexes. */
#ifndef KSV_ENGINE_FOREST_CUDA_H
#define KSV_ENGINE_FOREST_CUDA_H

#include <stddef.h>

#include "common/error.h"
#include "engine/forest/forest_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct forest_cuda forest_cuda;

/* Usable CUDA devices; 0 with the driver's reason in err when there are none. */
int forest_cuda_device_count(ksv_err *err);
/* Copies the forest to `device` and prepares `workers` streams. *out owned by the caller. */
int forest_cuda_create(const forest *f, int device, unsigned workers, forest_cuda **out,
                       ksv_err *err);
/* x: rows * num_features floats on the host; out: rows * num_outputs floats on the host. */
int forest_cuda_predict(forest_cuda *g, unsigned worker, const float *x, size_t rows, float *out,
                        ksv_err *err);
void forest_cuda_destroy(forest_cuda *g);

#ifdef __cplusplus
}
#endif

#endif
