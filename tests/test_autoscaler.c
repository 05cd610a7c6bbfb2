/* test_autoscaler.c: Knative's KPA rule as src/engine/autoscaler.c applies it, on a clock
 * and a demand the test writes second by second (no engine, no sleeping).
 * Oracles: Knative's ResolveMetricTarget and decider worked by hand from
 * knative/serving:pkg/reconciler/autoscaling/resources/target.go and
 * pkg/autoscaler/scaling/autoscaler.go (DESIGN.md §11, reference/turn2-protocols.md §2.3);
 * the scale-down delay against a twin autoscaler without it, fed the same demand: Knative's
 * max time window says the delayed count is the highest undelayed one of the last D
 * seconds. */
#include "engine/autoscaler.h"
#include "engine/model_spec.h"
#include "engine/scale_to_zero.h"

#include <math.h>
#include <stdio.h>

#include "ktest.h"

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

static void test_target(void)
{
    /* KServe scaleTarget 10 with Knative's 70%: 7 in flight per replica (Knative's own
     * example in its autoscaling docs). */
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 10, 0, 70), 7.0), "10 x 70%% = 7");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 0, 0, 70), 70.0),
             "no target, no containerConcurrency: 100 x 70%% = 70");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 10, 4, 70), 2.8),
             "containerConcurrency 4 below the target 10: min(10, 4) x 70%% = 2.8");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 0, 4, 50), 2.0),
             "no target: containerConcurrency 4 x 50%% = 2");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 3, 8, 100), 3.0),
             "target 3 below containerConcurrency 8 at 100%%: 3");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_RPS, 0, 0, 70), 140.0),
             "rps without a target: Knative's 200 x 70%% = 140");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_RPS, 10, 1, 85.5), 8.55),
             "rps ignores containerConcurrency: 10 x 85.5%% = 8.55");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 1, 0, 1), 0.01),
             "never below Knative's minimum 0.01");
    KT_CHECK(near(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 10, 0, 0), 7.0),
             "an out-of-range utilization is read as the default 70%%");
}

static ksv_kpa_params params(double target, int window, int delay)
{
    return (ksv_kpa_params){.min_replicas = 1, .max_replicas = 10, .target = target,
                            .metric = KSV_SCALE_CONCURRENCY, .window_s = window,
                            .scale_down_delay_s = delay};
}

/* Steady concurrency 10 for a whole window: 70% of scaleTarget 10 needs 2 replicas
 * (ceil(10 / 7)), 100% only 1. */
static void test_utilization_decides(void)
{
    ksv_kpa a = {0}, b = {0};
    ksv_kpa_params pa = params(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 10, 0, 70), 10, 0);
    ksv_kpa_params pb = params(ksv_kpa_target(KSV_SCALE_CONCURRENCY, 10, 0, 100), 10, 0);
    KT_CHECK(ksv_kpa_start(&a, &pa, 0) == 0 && ksv_kpa_start(&b, &pb, 0) == 0, "start");
    int ra = 0, rb = 0;
    for (int s = 1000; s < 1020; s++) {
        ra = ksv_kpa_tick(&a, &pa, s + 0.5, 10, 0);
        rb = ksv_kpa_tick(&b, &pb, s + 0.5, 10, 0);
    }
    KT_CHECK(ra == 2, "concurrency 10 over a target of 10 at 70%%: 2 replicas (got %d)", ra);
    KT_CHECK(rb == 1, "the same at 100%%: 1 replica (got %d)", rb);
    ksv_kpa_stop(&a);
    ksv_kpa_stop(&b);
}

/* A burst, then nothing: the delayed autoscaler holds the highest count of the last D
 * seconds, the twin without delay falls as the window empties. */
static void test_scale_down_delay(void)
{
    const int window = 10, delay = 5;
    ksv_kpa d = {0}, z = {0};
    ksv_kpa_params pd = params(7.0, window, delay), pz = params(7.0, window, 0);
    KT_CHECK(ksv_kpa_start(&d, &pd, 0) == 0 && ksv_kpa_start(&z, &pz, 0) == 0, "start");
    int hist_z[200], n = 0;
    int first_z_drop = -1, first_d_drop = -1, peak = 0;
    bool follows = true;
    for (int s = 0; s < 60; s++) {
        double demand = s < 25 ? 20 : 0; /* 20 in flight: ceil(20 / 7) = 3 replicas */
        int rd = ksv_kpa_tick(&d, &pd, 5000 + s + 0.25, demand, 0);
        int rz = ksv_kpa_tick(&z, &pz, 5000 + s + 0.25, demand, 0);
        hist_z[n++] = rz;
        if (rz > peak)
            peak = rz;
        int want = rz;
        for (int k = 1; k <= delay && n - 1 - k >= 0; k++)
            if (hist_z[n - 1 - k] > want)
                want = hist_z[n - 1 - k];
        if (rd != want) {
            follows = false;
            KT_FAIL("second %d: delayed %d, the highest undelayed count of the last %d s is %d",
                    s, rd, delay, want);
        }
        if (s >= 25 && rz < peak && first_z_drop < 0)
            first_z_drop = s;
        if (s >= 25 && rd < peak && first_d_drop < 0)
            first_d_drop = s;
    }
    kt_count_check();
    KT_CHECK(peak == 3, "the burst needs 3 replicas (ceil(20 / 7)), got %d", peak);
    KT_CHECK(follows && first_z_drop > 0 && first_d_drop == first_z_drop + delay,
             "without delay the count falls at second %d; with a %d s delay %d s later (%d)",
             first_z_drop, delay, delay, first_d_drop);
    KT_CHECK(ksv_kpa_replicas(&d) == 1 && ksv_kpa_replicas(&z) == 1, "both end at 1");
    ksv_kpa_stop(&d);
    ksv_kpa_stop(&z);
}

/* A clock that jumps past the delay (a test clock, a suspended host) forgets the old
 * decisions at once. */
static void test_delay_forgets_old_seconds(void)
{
    ksv_kpa d = {0};
    ksv_kpa_params p = params(7.0, 10, 30);
    KT_CHECK(ksv_kpa_start(&d, &p, 0) == 0, "start");
    for (int s = 0; s < 12; s++)
        ksv_kpa_tick(&d, &p, 100 + s, 20, 0);
    KT_CHECK(ksv_kpa_replicas(&d) == 3, "3 replicas under the burst");
    int r = ksv_kpa_tick(&d, &p, 100 + 12 + 60, 0, 0);
    KT_CHECK(r == 1, "60 s later (past window and delay) with no demand: 1 (got %d)", r);
    ksv_kpa_stop(&d);
}

static void test_idle_limit(void)
{
    ksv_model_spec m = {.scale_window_s = 60, .scale_down_delay_s = 30,
                        .scale_retention_s = 5};
    KT_CHECK(near(ksv_cold_idle_limit(&m), 95.0),
             "scale to zero after window + scale-down delay + retention: 95 s (got %g)",
             ksv_cold_idle_limit(&m));
}

int main(void)
{
    test_target();
    test_utilization_decides();
    test_scale_down_delay();
    test_delay_forgets_old_seconds();
    test_idle_limit();
    return kt_summary("test_autoscaler");
}
