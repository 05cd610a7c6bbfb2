/* test_cost.c: the cost arithmetic (control/cost_calc.c) on event sequences real engines
 * rarely write: a node that restarted without saying so, a load without an unload, an
 * unload never loaded, residencies that cross the window, a node that cannot be reached.
 * tests/cli_cost.py checks the same code against a real engine's day. */
#include <math.h>
#include <string.h>

#include "control/cost.h"
#include "ktest.h"

#define H 3600000LL /* ms */
#define GIB (1LL << 30)

static ksv_usage_event ev(const char *node, int64_t at, const char *kind, const char *model,
                          int64_t memory, int64_t requests, double idle)
{
    ksv_usage_event e = {
        .node = (char *)node,
        .log_id = (char *)"log",
        .seq = 1,
        .at_ms = at,
        .kind = (char *)kind,
        .ns = model ? (char *)"team" : NULL,
        .model = (char *)model,
        .revision = model ? (char *)"r1" : NULL,
        .memory_bytes = memory,
        .requests = requests,
        .idle_seconds = idle,
    };
    return e;
}

static const ksv_cost_row *row(const ksv_cost_report *r, const char *model)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->rows[i].model, model) == 0)
            return &r->rows[i];
    return NULL;
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

int main(void)
{
    ksv_err err;
    /* node a: m loads at 0 (1 GiB), scales to zero at 2 h (10 requests, 1 h idle), cold start
     * at 5 h (2 GiB), then node a restarts at 6 h without unloading: everything open ends.
     * node b: m loads at 1 h (1 GiB) and is still loaded (live: 7 requests) at 10 h.
     * node b: x is unloaded without a load first (ignored), y loads twice. */
    ksv_usage_event events[] = {
        ev("a", 0, "model-load", "m", GIB, 0, 0),
        ev("a", 2 * H, "scale-to-zero", "m", GIB, 10, 3600),
        ev("a", 5 * H, "cold-start", "m", 2 * GIB, 0, 0),
        ev("a", 6 * H, "engine-start", NULL, 0, 0, 0),
        ev("b", 1 * H, "model-load", "m", GIB, 0, 0),
        ev("b", 1 * H, "model-unload", "x", GIB, 99, 0),
        ev("b", 2 * H, "model-load", "y", GIB, 0, 0),
        ev("b", 3 * H, "model-load", "y", GIB, 0, 0),
        ev("b", 4 * H, "model-unload", "y", GIB, 4, 99999),
    };
    size_t n = sizeof events / sizeof *events;
    ksv_cost_live live[] = {{.node = "b", .model = "m", .revision = "r1", .requests = 7,
                             .idle_seconds = 1800}};
    ksv_cost_node_now nodes[] = {{.node = "a", .now_ms = 10 * H, .reached = true},
                                 {.node = "b", .now_ms = 10 * H, .reached = true}};

    ksv_cost_report r = {.since_ms = 0, .until_ms = 10 * H, .gb_hour_price = 0.5};
    KT_CHECK(ksv_cost_compute(events, n, live, 1, nodes, 2, NULL, &r, &err) == 0, "computed");
    const ksv_cost_row *m = row(&r, "m"), *x = row(&r, "x"), *y = row(&r, "y");
    KT_CHECK(m && near(m->loaded_hours, 2 + 1 + 9), "m loaded 2 h + 1 h on a, 9 h on b (%f)",
             m ? m->loaded_hours : -1);
    KT_CHECK(m && near(m->scaled_to_zero_hours, 3), "m at zero 3 h on a (%f)",
             m ? m->scaled_to_zero_hours : -1);
    KT_CHECK(m && near(m->saved_gb_hours, 3), "3 h at zero saved 1 GiB x 3 h (%f)",
             m ? m->saved_gb_hours : -1);
    KT_CHECK(m && near(m->memory_gb_hours, 2 + 2 + 9), "GB-hours 1x2 + 2x1 + 1x9 (%f)",
             m ? m->memory_gb_hours : -1);
    KT_CHECK(m && near(m->requests, 17), "requests: 10 closed + 7 live (%f)",
             m ? m->requests : -1);
    KT_CHECK(m && near(m->idle_loaded_hours, 1.5), "idle 1 h + 0.5 h live (%f)",
             m ? m->idle_loaded_hours : -1);
    KT_CHECK(m && near(m->cost, 0.5 * 13), "cost = GB-hours x price (%f)", m ? m->cost : -1);
    KT_CHECK(x == NULL, "an unload never loaded makes no row");
    KT_CHECK(y && near(y->loaded_hours, 2), "a second load ends the first residency (%f)",
             y ? y->loaded_hours : -1);
    KT_CHECK(y && near(y->idle_loaded_hours, 1), "idle never exceeds the hours loaded (%f)",
             y ? y->idle_loaded_hours : -1);
    KT_CHECK(near(r.total.loaded_hours, 14), "total loaded 14 h (%f)", r.total.loaded_hours);
    ksv_cost_report_free(&r);

    /* The window [4 h, 10 h]: a's first residency is outside; its zero time from 4 h to 5 h
     * counts; b's m counts 6 h with its live figures whole (the live part is inside). */
    ksv_cost_report w = {.since_ms = 4 * H, .until_ms = 10 * H};
    KT_CHECK(ksv_cost_compute(events, n, live, 1, nodes, 2, NULL, &w, &err) == 0, "window");
    m = row(&w, "m");
    KT_CHECK(m && near(m->loaded_hours, 1 + 6), "clipped loaded hours 7 (%f)",
             m ? m->loaded_hours : -1);
    KT_CHECK(m && near(m->scaled_to_zero_hours, 1), "clipped zero hours 1 (%f)",
             m ? m->scaled_to_zero_hours : -1);
    KT_CHECK(m && near(m->requests, 7 * 6.0 / 9.0), "requests in proportion (%f)",
             m ? m->requests : -1);
    ksv_cost_report_free(&w);

    /* Node b unreachable: its open residency ends at `until`, with no live figures; a
     * namespace filter that matches nothing gives no rows. */
    nodes[1].reached = false;
    ksv_cost_report u = {.since_ms = 0, .until_ms = 12 * H};
    KT_CHECK(ksv_cost_compute(events, n, NULL, 0, nodes, 2, NULL, &u, &err) == 0, "unreached");
    m = row(&u, "m");
    KT_CHECK(m && near(m->loaded_hours, 2 + 1 + 11), "an unreached node's residency ends at "
             "until (%f)", m ? m->loaded_hours : -1);
    ksv_cost_report_free(&u);
    ksv_cost_report none = {.until_ms = 12 * H};
    KT_CHECK(ksv_cost_compute(events, n, NULL, 0, nodes, 2, "other", &none, &err) == 0 &&
                 none.n == 0,
             "another namespace: no rows");
    ksv_cost_report_free(&none);
    ksv_cost_report empty = {.until_ms = 1};
    KT_CHECK(ksv_cost_compute(NULL, 0, NULL, 0, NULL, 0, NULL, &empty, &err) == 0 &&
                 empty.n == 0,
             "no events: no rows");
    ksv_cost_report_free(&empty);
    return kt_summary("test_cost");
}
