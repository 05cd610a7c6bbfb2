/* autoscaler.h: Knative's KPA (Knative Pod Autoscaler) for one revision on one node.
 *
 * A replica here is an executor instance of the revision: on the CPU, room for
 * containerConcurrency more requests to run it at once (KServe's per-replica limit; with no
 * containerConcurrency a replica sets no limit and the count is advisory); on a GPU it
 * would be a CUDA stream with its own buffers (not built: no device here). The revision may
 * run replicas x containerConcurrency requests at once; more get 503 with Retry-After and
 * count as demand, so that the autoscaler sees them.
 *
 * The rule, as Knative's KPA (pkg/autoscaler/scaling/autoscaler.go):
 *   - every second holds the average observed concurrency (requests in flight, sampled at
 *     each tick, plus those refused at the limit) and the requests answered;
 *   - stable value: the average over the stable window (autoscaling.knative.dev/window,
 *     60 s by default); panic value: over the panic window, 10% of it (6 s);
 *   - metric concurrency: value = concurrency; rps: value = requests per second;
 *   - desired = ceil(value / scaleTarget) for each window;
 *   - panic mode starts when desired(panic) >= 2 x the current replicas, and while it lasts
 *     the count never goes down: desired = max(current, desired(panic)); it ends once a
 *     whole stable window passed without that condition; otherwise desired(stable);
 *   - clamped to [max(minReplicas, 1), maxReplicas] (maxReplicas 0: no bound) while the
 *     revision is loaded; a scaled-to-zero revision has 0.
 * Knative's target utilization (70%) and scale-down delay are left out: scaleTarget is the
 * per-replica target as written.
 *
 * Threads: the lifecycle thread starts, ticks and stops it; requests and the state read
 * `replicas` and the figures (atomic). */
#ifndef KSV_ENGINE_AUTOSCALER_H
#define KSV_ENGINE_AUTOSCALER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"

#define KSV_DEFAULT_SCALE_TARGET 100
#define KSV_KPA_PANIC_THRESHOLD 2.0

typedef enum { KSV_SCALE_CONCURRENCY, KSV_SCALE_RPS } ksv_scale_metric;

typedef struct ksv_kpa_params {
    int min_replicas;             /* 0 is read as 1: the autoscaler runs while loaded */
    int max_replicas;             /* 0: no bound */
    int target;                   /* per replica, > 0 */
    ksv_scale_metric metric;
    int window_s;                 /* stable window, >= 1 */
} ksv_kpa_params;

typedef struct ksv_kpa_second {
    int64_t second;               /* which second this slot holds (INT64_MIN: none) */
    double concurrency_sum;       /* of the samples taken in it */
    int samples;
    uint64_t requests;            /* answers given in it */
} ksv_kpa_second;

typedef struct ksv_kpa {
    ksv_kpa_second *ring;         /* window_s slots, one per second */
    int ring_len;
    uint64_t last_answers;        /* the revision's answer count at the last tick */
    /* Written by the lifecycle thread, read by the state (atomic: no lock between them). */
    _Atomic bool panic;
    _Atomic double stable_value, panic_value; /* the last decision's inputs */
    int64_t panic_checked_s;      /* last second the panic condition held */
    _Atomic int replicas;
} ksv_kpa;

/* (Re)starts the autoscaler for a loaded revision: the ring for params.window_s, replicas
 * at the lower bound. Returns 0, -1 out of memory. */
int ksv_kpa_start(ksv_kpa *k, const ksv_kpa_params *p, uint64_t answers);
/* A scaled-to-zero or unloaded revision: 0 replicas, the ring freed. */
void ksv_kpa_stop(ksv_kpa *k);
/* One sample at now_s (seconds on any steady clock): concurrency observed, and the
 * revision's answers so far; then decides. Returns the replica count. */
int ksv_kpa_tick(ksv_kpa *k, const ksv_kpa_params *p, double now_s, double concurrency,
                 uint64_t answers);
int ksv_kpa_replicas(const ksv_kpa *k);
/* ,"replicas":N,"autoscaler":{"mode":"stable|panic","stable":x,"panic":y} */
void ksv_kpa_write_state(ksv_sb *sb, const ksv_kpa *k);

#endif
