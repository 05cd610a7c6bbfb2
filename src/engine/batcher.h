/* batcher.h: merges concurrent requests to one revision into one runtime call.
 *
 * One batch per revision runs at a time. A request that finds no batch forming starts one
 * and leads it: it waits until the previous batch has finished and at most max_delay_us
 * for others to join (or until max_rows are in), then predicts every row in one call and
 * hands each request its slice of the output. Requests that arrive while a batch runs
 * join the next one, so a busy device sees batches as large as the traffic allows, and an
 * idle one answers a lone request after at most max_delay_us.
 *
 * Worth it where one call of N rows costs much less than N calls of one row: the GPU path
 * of ksv-forest (which asks for it through ksv_model_info.prefers_batches) and, with a
 * delay, CPU runtimes under heavy concurrency. Off unless asked for. */
#ifndef KSV_ENGINE_BATCHER_H
#define KSV_ENGINE_BATCHER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "engine/runtime.h"

#define KSV_BATCH_DEFAULT_MAX_ROWS 1024
#define KSV_BATCH_DEFAULT_DELAY_US 200

typedef struct ksv_batcher ksv_batcher;

/* cols: the model's features; width: its outputs per row. */
int ksv_batcher_create(size_t max_rows, unsigned max_delay_us, size_t cols, size_t width,
                       ksv_batcher **out, ksv_err *err);
/* Only once no ksv_batcher_predict() on b is in progress: a leader still signals its
 * batch's members after it has let go of the batcher's lock. */
void ksv_batcher_destroy(ksv_batcher *b);

/* Predicts rows of x into out, possibly together with other callers' rows. The runtime
 * call runs on the leading caller's thread with that caller's worker index. A request
 * larger than max_rows is predicted alone. */
int ksv_batcher_predict(ksv_batcher *b, const ksv_runtime_ops *ops, void *model,
                        unsigned worker, const float *x, size_t rows, float *out,
                        ksv_err *err);

/* Batches run and rows predicted through them, for /metrics. */
void ksv_batcher_counts(const ksv_batcher *b, uint64_t *batches, uint64_t *rows);

#endif
