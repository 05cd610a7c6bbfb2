/* cost.h: what the models cost (`ksv cost`, ksv-top's cost screen; docs/OPERATIONS.md),
 * from the residency events the engines record (engine/usage.h) and keep in the store.
 *
 * Per revision, over the window [since, until]:
 *   loaded_hours          hours it was in memory (a residency: model-load or cold-start to
 *                         model-unload or scale-to-zero, or to now while still loaded);
 *   idle_loaded_hours     of those, hours with no request for at least the model's window
 *                         (gaps between requests that long count whole);
 *   scaled_to_zero_hours  hours at zero: from scale-to-zero to the next cold start (or to
 *                         its leaving the split, or now);
 *   memory_gb_hours       host memory held (measured at load) x hours; GB = 2^30 bytes;
 *   gpu_memory_gb_hours   the same for GPU memory;
 *   saved_gb_hours        memory it held before scaling to zero x hours at zero;
 *   requests              answers given while loaded;
 *   cost                  memory_gb_hours x gb_hour_price + hours holding GPU memory x
 *                         gpu_hour_price.
 * A residency that crosses `since` counts the part inside the window, and its requests and
 * idle time in the same proportion. An engine-start event ends whatever its node had open
 * (the engine stopped without saying so: its last figures are lost). Residencies still open
 * end at their node's clock as the node reports it now (with its live figures), or at
 * `until` when the node cannot be reached. */
#ifndef KSV_CONTROL_COST_H
#define KSV_CONTROL_COST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "store/store.h"

#define KSV_COST_NAME_MAX 254

typedef struct ksv_cost_row {
    char ns[KSV_COST_NAME_MAX];      /* "" when the model was unknown to the store */
    char model[KSV_COST_NAME_MAX];
    char revision[KSV_COST_NAME_MAX];
    double loaded_hours, idle_loaded_hours, scaled_to_zero_hours;
    double memory_gb_hours, gpu_memory_gb_hours, saved_gb_hours;
    double gpu_hours;                /* loaded hours while holding GPU memory */
    double requests;                 /* whole unless a residency crossed `since` */
    double cost;
} ksv_cost_row;

typedef struct ksv_cost_report {
    ksv_cost_row *rows;              /* by namespace, model, revision */
    size_t n;
    ksv_cost_row total;              /* the sums (names empty) */
    int64_t since_ms, until_ms;
    double gpu_hour_price, gb_hour_price;
    char **warnings;                 /* nodes not read, with why */
    size_t n_warnings;
} ksv_cost_report;

/* A residency still open, as its node reports it now. */
typedef struct ksv_cost_live {
    const char *node, *model, *revision;
    uint64_t requests;               /* since the residency began */
    double idle_seconds;
} ksv_cost_live;

/* A node's clock now (wall ms), and whether it answered. */
typedef struct ksv_cost_node_now {
    const char *node;
    int64_t now_ms;
    bool reached;
} ksv_cost_node_now;

/* Computes the report's rows and total from events (ordered by node, time, seq) and the
 * nodes' live figures; ns non-NULL keeps only that namespace. Prices and the window are
 * read from out (set them first). */
int ksv_cost_compute(const ksv_usage_event *events, size_t n, const ksv_cost_live *live,
                     size_t n_live, const ksv_cost_node_now *nodes, size_t n_nodes,
                     const char *ns, ksv_cost_report *out, ksv_err *err);

void ksv_cost_report_free(ksv_cost_report *r);

#endif
