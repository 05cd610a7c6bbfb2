/* mirror.h: shadow traffic for release gates. A request another revision answered is
 * copied (its rows and the answer given) to a bounded queue; one thread predicts the copy on
 * the mirror revision, compares the two answers and counts the result as mirrored
 * (ksv_registry_finish_mirror), never in the client-facing series.
 *
 * The client pays only the copy of its rows and answer (a few microseconds; never the
 * canary's prediction): when the queue is full the copy is dropped and counted. Rows
 * "differ" as prediction-disagreement defines it: for a classifier (objective binary:* or
 * multi:*) another predicted class; otherwise a relative difference above 1e-3. */
#ifndef KSV_ENGINE_MIRROR_H
#define KSV_ENGINE_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "engine/registry.h"

#define KSV_MIRROR_QUEUE 64
#define KSV_MIRROR_MAX_BYTES (8u << 20) /* rows and answers queued, all copies together */

typedef struct ksv_mirror ksv_mirror;

int ksv_mirror_start(ksv_registry *reg, ksv_mirror **out, ksv_err *err);
void ksv_mirror_stop(ksv_mirror *m);

/* After a request `served` answered 200 with out (rows x width) for x (rows x features):
 * copies it to the mirror revision when one is due. Never blocks. */
void ksv_mirror_offer(ksv_mirror *m, const ksv_route *served, uint64_t *rng, const float *x,
                      size_t rows, size_t features, const float *out, size_t width);

/* Rows (of rows x width answers a and b) counted as different. Exposed for tests. */
uint64_t ksv_mirror_count_diff(const char *objective, const float *a, const float *b,
                               size_t rows, size_t width);
/* Copies dropped because the queue was full. */
uint64_t ksv_mirror_dropped(ksv_mirror *m);

#endif
