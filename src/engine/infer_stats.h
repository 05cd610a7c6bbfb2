/* infer_stats.h: per-revision inference statistics in the shape of Triton's statistics
 * extension (GET /v2/models/{m}/stats): counts and cumulative nanoseconds per phase.
 *
 * Lock-free: requests add with relaxed atomics; readers see each counter consistent on
 * its own (a reader racing a request may see its count before its ns, as in Triton). */
#ifndef KSV_ENGINE_INFER_STATS_H
#define KSV_ENGINE_INFER_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"

typedef struct ksv_stat_pair {
    _Atomic uint64_t count;
    _Atomic uint64_t ns;
} ksv_stat_pair;

typedef struct ksv_infer_stats {
    _Atomic uint64_t inference_count;  /* rows answered successfully (Triton counts each
                                          item of a batch as one inference) */
    _Atomic uint64_t executions;       /* runtime calls made without the batcher */
    _Atomic uint64_t last_inference_ms; /* Unix milliseconds of the last request */
    ksv_stat_pair success;             /* whole request, headers to answer */
    ksv_stat_pair fail;
    ksv_stat_pair queue;               /* headers to the start of decoding: body transfer
                                          and routing */
    ksv_stat_pair compute_input;       /* decoding the body into the tensor */
    ksv_stat_pair compute_infer;       /* the runtime (batcher wait included) */
    ksv_stat_pair compute_output;      /* encoding the answer */
} ksv_infer_stats;

/* Phase boundaries of one request, monotonic seconds. */
typedef struct ksv_infer_timing {
    double arrived;       /* headers received */
    double decode_start;
    double infer_start;   /* decoding done */
    double infer_end;
    double encode_end;
} ksv_infer_timing;

/* One request's outcome. rows: answered rows (0 on failure); batched: the runtime call went
 * through the batcher, whose own batch count is the execution count. */
void ksv_infer_stats_record(ksv_infer_stats *s, bool ok, uint64_t rows, bool batched,
                            const ksv_infer_timing *t, double finished);

/* {"name":..,"version":..,"last_inference":..,"inference_count":..,"execution_count":..,
 *  "inference_stats":{"success":{"count","ns"},...},"batch_stats":[],"memory_usage":[]}.
 * extra_executions: runtime calls counted elsewhere (the batcher's batches). */
void ksv_infer_stats_write(ksv_sb *sb, const char *model, const char *version,
                           const ksv_infer_stats *s, uint64_t extra_executions);

#endif
