/* autoscaler.h: Knative's KPA (Knative Pod Autoscaler) for one revision on one node.
 *
 * A replica here is an executor instance of the revision: on the CPU, room for
 * containerConcurrency more requests to run it at once (KServe's per-replica limit; with no
 * containerConcurrency a replica sets no limit and the count is advisory); on a GPU it
 * would be a CUDA stream with its own buffers (not built: no device here). The revision may
 * run replicas x containerConcurrency requests at once; more wait in its queue
 * (scale_to_zero.h; past the queue 503 with Retry-After) and count as demand, so that the
 * autoscaler sees them.
 *
 * The rule, as Knative's KPA (pkg/autoscaler/scaling/autoscaler.go):
 *   - every second holds the average observed concurrency (requests in flight, sampled at
 *     each tick, plus those waiting at the limit or refused past its queue) and the
 *     requests answered;
 *   - stable value: the average over the stable window (autoscaling.knative.dev/window,
 *     60 s by default); panic value: over the panic window, 10% of it (6 s);
 *   - metric concurrency: value = concurrency; rps: value = requests per second;
 *   - the per-replica target (Knative's ResolveMetricTarget): concurrency: scaleTarget, or
 *     containerConcurrency when that is lower or scaleTarget is unset, else 100; rps:
 *     scaleTarget, else 200; times the target utilization
 *     (autoscaling.knative.dev/target-utilization-percentage, 70% by default), at least
 *     0.01. So scaleTarget 10 means 7 requests in flight per replica, as in Knative;
 *   - desired = ceil(value / target) for each window;
 *   - panic mode starts when desired(panic) >= 2 x the current replicas, and while it lasts
 *     the count never goes down: desired = max(current, desired(panic)); it ends once a
 *     whole stable window passed without that condition; otherwise desired(stable);
 *   - scale-down delay (autoscaling.knative.dev/scale-down-delay, 0 s by default): the
 *     count applied is the highest decided over that many past seconds, so a dip in demand
 *     shorter than the delay never scales down (Knative's max time window);
 *   - clamped to [max(minReplicas, 1), maxReplicas] (maxReplicas 0: no bound) while the
 *     revision is loaded; a scaled-to-zero revision has 0.
 *
 * Threads: the lifecycle thread starts, ticks and stops it; requests and the state read
 * `replicas` and the figures (atomic). */
#ifndef KSV_ENGINE_AUTOSCALER_H
#define KSV_ENGINE_AUTOSCALER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"

#define KSV_DEFAULT_SCALE_TARGET 100      /* container-concurrency-target-default */
#define KSV_DEFAULT_RPS_TARGET 200        /* requests-per-second-target-default */
#define KSV_DEFAULT_TARGET_UTILIZATION 70 /* container-concurrency-target-percentage */
#define KSV_MAX_SCALE_DOWN_DELAY_S 3600
#define KSV_KPA_PANIC_THRESHOLD 2.0

typedef enum { KSV_SCALE_CONCURRENCY, KSV_SCALE_RPS } ksv_scale_metric;

typedef struct ksv_kpa_params {
    int min_replicas;             /* 0 is read as 1: the autoscaler runs while loaded */
    int max_replicas;             /* 0: no bound */
    double target;                /* per replica, utilization applied (ksv_kpa_target) */
    ksv_scale_metric metric;
    int window_s;                 /* stable window, >= 1 */
    int scale_down_delay_s;       /* 0..KSV_MAX_SCALE_DOWN_DELAY_S */
} ksv_kpa_params;

/* Knative's per-replica target: scale_target (0: unset), container_concurrency (0: no
 * limit) and the utilization percent (1..100) as described above. */
double ksv_kpa_target(ksv_scale_metric metric, int scale_target, int container_concurrency,
                      double utilization_percent);

typedef struct ksv_kpa_second {
    int64_t second;               /* which second this slot holds (INT64_MIN: none) */
    double concurrency_sum;       /* of the samples taken in it */
    int samples;
    uint64_t requests;            /* answers given in it */
} ksv_kpa_second;

/* One second of the scale-down delay's window: the highest count decided in it. */
typedef struct ksv_kpa_decision {
    int64_t second;               /* INT64_MIN: none */
    int desired;
} ksv_kpa_decision;

typedef struct ksv_kpa {
    ksv_kpa_second *ring;         /* window_s slots, one per second */
    int ring_len;
    ksv_kpa_decision *delay_ring; /* scale_down_delay_s slots; NULL when no delay */
    int delay_len;
    uint64_t last_answers;        /* the revision's answer count at the last tick */
    /* Written by the lifecycle thread, read by the state (atomic: no lock between them). */
    _Atomic bool panic;
    _Atomic double stable_value, panic_value; /* the last decision's inputs */
    _Atomic double target;        /* the per-replica target they were divided by */
    _Atomic int undelayed;        /* the count before the scale-down delay */
    int64_t panic_checked_s;      /* last second the panic condition held */
    _Atomic int replicas;
} ksv_kpa;

/* (Re)starts the autoscaler for a loaded revision: the rings for params.window_s and
 * params.scale_down_delay_s, replicas at the lower bound. Returns 0, -1 out of memory. */
int ksv_kpa_start(ksv_kpa *k, const ksv_kpa_params *p, uint64_t answers);
/* A scaled-to-zero or unloaded revision: 0 replicas, the ring freed. */
void ksv_kpa_stop(ksv_kpa *k);
/* One sample at now_s (seconds on any steady clock): concurrency observed, and the
 * revision's answers so far; then decides. Returns the replica count. */
int ksv_kpa_tick(ksv_kpa *k, const ksv_kpa_params *p, double now_s, double concurrency,
                 uint64_t answers);
int ksv_kpa_replicas(const ksv_kpa *k);
/* ,"replicas":N,"autoscaler":{"mode":"stable|panic","stable":x,"panic":y,"target":t,
 * "undelayed":n}: undelayed is the count the rule wants now, before the scale-down delay */
void ksv_kpa_write_state(ksv_sb *sb, const ksv_kpa *k);

#endif
