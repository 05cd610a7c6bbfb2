/* autoscaler.c: Knative's KPA for one revision (autoscaler.h). */
#include "engine/autoscaler.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int lower_bound(const ksv_kpa_params *p)
{
    return p->min_replicas > 1 ? p->min_replicas : 1;
}

static int clamp(const ksv_kpa_params *p, int n)
{
    int lo = lower_bound(p);
    if (n < lo)
        n = lo;
    if (p->max_replicas > 0 && n > p->max_replicas)
        n = p->max_replicas;
    return n;
}

double ksv_kpa_target(ksv_scale_metric metric, int scale_target, int container_concurrency,
                      double utilization_percent)
{
    double total;
    if (metric == KSV_SCALE_RPS)
        total = scale_target > 0 ? scale_target : KSV_DEFAULT_RPS_TARGET;
    else if (scale_target > 0)
        total = container_concurrency > 0 && container_concurrency < scale_target
                    ? container_concurrency
                    : scale_target;
    else
        total = container_concurrency > 0 ? container_concurrency : KSV_DEFAULT_SCALE_TARGET;
    double tu = utilization_percent > 0 && utilization_percent <= 100
                    ? utilization_percent
                    : KSV_DEFAULT_TARGET_UTILIZATION;
    double target = total * tu / 100.0;
    return target < 0.01 ? 0.01 : target;
}

int ksv_kpa_start(ksv_kpa *k, const ksv_kpa_params *p, uint64_t answers)
{
    ksv_kpa_stop(k);
    int len = p->window_s > 0 ? p->window_s : 60;
    k->ring = malloc((size_t)len * sizeof *k->ring);
    /* The delay's window holds the seconds [now - delay, now]. */
    int delay = p->scale_down_delay_s > 0 ? p->scale_down_delay_s + 1 : 0;
    k->delay_ring = delay ? malloc((size_t)delay * sizeof *k->delay_ring) : NULL;
    if (!k->ring || (delay && !k->delay_ring)) {
        ksv_kpa_stop(k);
        return -1;
    }
    for (int i = 0; i < len; i++)
        k->ring[i] = (ksv_kpa_second){.second = INT64_MIN};
    for (int i = 0; i < delay; i++)
        k->delay_ring[i] = (ksv_kpa_decision){.second = INT64_MIN};
    k->ring_len = len;
    k->delay_len = delay;
    k->last_answers = answers;
    atomic_store(&k->target, p->target);
    atomic_store(&k->undelayed, lower_bound(p));
    atomic_store(&k->replicas, lower_bound(p));
    return 0;
}

void ksv_kpa_stop(ksv_kpa *k)
{
    free(k->ring);
    free(k->delay_ring);
    k->ring = NULL;
    k->delay_ring = NULL;
    k->ring_len = k->delay_len = 0;
    atomic_store(&k->panic, false);
    atomic_store(&k->stable_value, 0.0);
    atomic_store(&k->panic_value, 0.0);
    atomic_store(&k->undelayed, 0);
    atomic_store(&k->replicas, 0);
}

/* Knative's max time window: records this second's decision and answers the highest one
 * of the delay's window. */
static int delayed(ksv_kpa *k, int64_t second, int desired)
{
    if (!k->delay_ring)
        return desired;
    int64_t i = second % k->delay_len;
    ksv_kpa_decision *slot = &k->delay_ring[i < 0 ? i + k->delay_len : i];
    if (slot->second != second)
        *slot = (ksv_kpa_decision){.second = second, .desired = desired};
    else if (desired > slot->desired)
        slot->desired = desired;
    int highest = desired;
    for (int j = 0; j < k->delay_len; j++) {
        const ksv_kpa_decision *d = &k->delay_ring[j];
        if (d->second != INT64_MIN && d->second <= second &&
            second - d->second < k->delay_len && d->desired > highest)
            highest = d->desired;
    }
    return highest;
}

/* The ring slot of a second; seconds may be negative (a clock moved back by a test). */
static ksv_kpa_second *slot_of(const ksv_kpa *k, int64_t second)
{
    int64_t i = second % k->ring_len;
    return &k->ring[i < 0 ? i + k->ring_len : i];
}

/* The metric's average over the `seconds` whole seconds before now_second (the current,
 * partial second included for concurrency, which is an average already). */
static double average(const ksv_kpa *k, const ksv_kpa_params *p, int64_t now_second,
                      int seconds)
{
    if (seconds > k->ring_len)
        seconds = k->ring_len;
    double sum = 0;
    int counted = 0;
    for (int i = 0; i < seconds; i++) {
        int64_t s = now_second - i - (p->metric == KSV_SCALE_RPS ? 1 : 0);
        const ksv_kpa_second *slot = slot_of(k, s);
        counted++;
        if (slot->second != s)
            continue; /* no sample that second: nothing observed */
        sum += p->metric == KSV_SCALE_RPS
                   ? (double)slot->requests
                   : (slot->samples ? slot->concurrency_sum / slot->samples : 0);
    }
    return counted ? sum / counted : 0;
}

int ksv_kpa_tick(ksv_kpa *k, const ksv_kpa_params *p, double now_s, double concurrency,
                 uint64_t answers)
{
    if (!k->ring)
        return 0;
    int64_t second = (int64_t)floor(now_s);
    ksv_kpa_second *slot = slot_of(k, second);
    if (slot->second != second)
        *slot = (ksv_kpa_second){.second = second};
    slot->concurrency_sum += concurrency;
    slot->samples++;
    slot->requests += answers >= k->last_answers ? answers - k->last_answers : 0;
    k->last_answers = answers;

    int window = k->ring_len;
    int panic_window = (int)lround(window * 0.1);
    if (panic_window < 1)
        panic_window = 1;
    double target = p->target >= 0.01 ? p->target : 0.01;
    atomic_store(&k->target, target);
    double stable = average(k, p, second, window), panic = average(k, p, second, panic_window);
    atomic_store(&k->stable_value, stable);
    atomic_store(&k->panic_value, panic);
    int want_stable = (int)ceil(stable / target - 1e-9);
    int want_panic = (int)ceil(panic / target - 1e-9);
    int current = atomic_load(&k->replicas);
    if (current < 1)
        current = 1;
    bool in_panic = atomic_load(&k->panic);
    if ((double)want_panic >= KSV_KPA_PANIC_THRESHOLD * current) {
        in_panic = true;
        k->panic_checked_s = second;
    } else if (in_panic && second - k->panic_checked_s >= window) {
        in_panic = false;
    }
    atomic_store(&k->panic, in_panic);
    int want = in_panic ? (want_panic > current ? want_panic : current) : want_stable;
    want = clamp(p, want);
    atomic_store(&k->undelayed, want);
    want = delayed(k, second, want);
    atomic_store(&k->replicas, want);
    return want;
}

int ksv_kpa_replicas(const ksv_kpa *k)
{
    return atomic_load(&((ksv_kpa *)k)->replicas);
}

void ksv_kpa_write_state(ksv_sb *sb, const ksv_kpa *k)
{
    ksv_kpa *m = (ksv_kpa *)k; /* atomics are read through a non-const pointer */
    ksv_sb_printf(sb, ",\"replicas\":%d,\"autoscaler\":{\"mode\":\"%s\",\"stable\":%.3f,"
                      "\"panic\":%.3f,\"target\":%.3f,\"undelayed\":%d}",
                  ksv_kpa_replicas(k), atomic_load(&m->panic) ? "panic" : "stable",
                  atomic_load(&m->stable_value), atomic_load(&m->panic_value),
                  atomic_load(&m->target), atomic_load(&m->undelayed));
}
