/* screens.c: drawing ksv-top's screens from the current snapshot and the view. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/uri_redact.h"
#include "control/control.h"
#include "tui/app.h"
#include "tui/format.h"
#include "tui/spark.h"
#include "tui/widgets.h"

static int A(const tui_app *a, tui_color c)
{
    return tui_crt_attr(&a->crt, c);
}

static tui_color err_color(double pct)
{
    return isnan(pct) ? TUI_C_DIM : pct >= 5 ? TUI_C_BAD : pct >= 1 ? TUI_C_WARN : TUI_C_OK;
}

static void draw_header(tui_app *a)
{
    const tui_snapshot *s = a->snap;
    char line[512], qps[32], clock[32];
    int64_t now = ksv_wall_ms();
    tui_fmt_clock(now, now, clock, sizeof clock);
    tui_fill_row(0, A(a, TUI_C_HEADER));
    if (!s) {
        snprintf(line, sizeof line, " ksv-top  collecting...");
        tui_put(0, 0, COLS, line, A(a, TUI_C_HEADER), false, false);
        return;
    }
    bool has;
    double total = tui_snapshot_total_qps(s, &has);
    tui_fmt_qps(has, total, qps, sizeof qps);
    size_t up = tui_snapshot_nodes_up(s);
    snprintf(line, sizeof line, " ksv-top%s%s  nodes %zu up %zu down  models %zu  QPS %s  "
                                "every %.3gs%s",
             a->banner ? " " : "", a->banner ? a->banner : "", up, s->n_nodes - up,
             s->n_models, qps, s->interval_s, a->readonly ? "  [readonly]" : "");
    tui_put(0, 0, COLS, line, A(a, TUI_C_HEADER), false, false);
    tui_put(0, COLS - 9, 9, clock, A(a, TUI_C_HEADER), true, true);
    if (s->n_nodes - up > 0) {
        char down[32];
        snprintf(down, sizeof down, "%zu down", s->n_nodes - up);
        /* The count of down nodes stands out in the bar. */
        char *at = strstr(line, down);
        if (at)
            tui_put(0, (int)(at - line), (int)strlen(down), down,
                    A(a, TUI_C_BAD) | A_REVERSE, false, false);
    }
}

/* ---- models ---- */

enum { C_NS, C_NAME, C_NODES, C_REV, C_TRAFFIC, C_QPS, C_P50, C_P99, C_ERR, C_READY, C_AGE,
       C_SPARK, C_N };

static const tui_column model_cols[C_N] = {
    [C_NS] = {"NAMESPACE", 9, false, 5, false},   [C_NAME] = {"NAME", 16, false, 10, false},
    [C_NODES] = {"NODES", 6, false, 3, false},    [C_REV] = {"REV", 3, true, 4, false},
    [C_TRAFFIC] = {"TRAFFIC", 11, false, 9, false}, [C_QPS] = {"QPS", 7, true, 9, false},
    [C_P50] = {"P50", 7, true, 2, false},         [C_P99] = {"P99", 8, true, 8, false},
    [C_ERR] = {"ERR%", 7, true, 8, false},        [C_READY] = {"READY", 8, false, 7, false},
    [C_AGE] = {"AGE", 4, true, 1, false},         [C_SPARK] = {"QPS 2m", 8, false, 6, true},
};

static void put_cols(int y, const int *widths, const char *const *cells, const int *attrs)
{
    int x = 0;
    for (int c = 0; c < C_N; c++) {
        if (!widths[c])
            continue;
        tui_put(y, x, widths[c], cells[c], attrs[c], true, model_cols[c].right);
        x += widths[c] + 1;
    }
}

static void draw_models(tui_app *a, int top, int height)
{
    int widths[C_N];
    tui_layout_columns(model_cols, C_N, COLS, widths);
    const char *heads[C_N];
    int hattr[C_N];
    for (int c = 0; c < C_N; c++) {
        heads[c] = model_cols[c].title;
        hattr[c] = A(a, TUI_C_TITLE);
    }
    char sorted[32];
    snprintf(sorted, sizeof sorted, "%s%s", model_cols[C_QPS].title, "");
    tui_fill_row(top, A(a, TUI_C_TITLE));
    put_cols(top, widths, heads, hattr);
    char info[160];
    snprintf(info, sizeof info, " sort:%s%s%s%s ", tui_sort_name(a->view.sort),
             a->view.descending ? "(desc)" : "", a->view.filter[0] ? " filter:" : "",
             a->view.filter);
    (void)sorted;
    height--;
    top++;
    tui_view_scroll(&a->view, (size_t)height);
    const tui_snapshot *s = a->snap;
    if (!s)
        return;
    if (a->view.n_rows == 0) {
        tui_put(top + 1, 2, COLS - 4,
                s->n_models ? "no model matches the filter" :
                              "no models yet: ksv apply -f FILE (or ksv-top --demo)",
                A(a, TUI_C_DIM), false, false);
    }
    int64_t now = ksv_wall_ms();
    for (int i = 0; i < height && a->view.top + (size_t)i < a->view.n_rows; i++) {
        size_t ri = a->view.top + (size_t)i;
        const tui_row *row = &a->view.rows[ri];
        const tui_model *m = &s->models[row->model];
        bool sel = ri == a->view.cursor;
        char c_rev[16], c_traffic[64], c_qps[32], c_p50[32], c_p99[32], c_err[32], c_ready[32],
            c_age[16], c_spark[1024], c_name[128];
        const char *cells[C_N];
        int attrs[C_N];
        int base = sel ? A(a, TUI_C_SELECTED) : A(a, TUI_C_DEFAULT);
        for (int c = 0; c < C_N; c++)
            attrs[c] = base;
        const tui_figs *f;
        if (row->rev < 0) {
            f = &m->figs;
            snprintf(c_name, sizeof c_name, "%s%s", tui_view_is_expanded(&a->view, m->key) ?
                     "-" : "+", m->name);
            snprintf(c_rev, sizeof c_rev, "%zu", m->n_revs);
            int pending = a->slider.active && strcmp(a->slider.key, m->key) == 0 ?
                          a->slider.pending : -1;
            tui_split_text(m, pending, a->crt.utf8, c_traffic, sizeof c_traffic);
            if (pending >= 0 && !sel)
                attrs[C_TRAFFIC] = A(a, TUI_C_PENDING);
            /* A release gate at work (or halted): its phase and the canary's weight. */
            if (pending < 0 && m->gate.present && strcmp(m->gate.state.phase, "Succeeded") != 0) {
                /* Short phase names, so phase and weight fit the column. */
                static const char *const shortname[][2] = {
                    {"Initializing", "Init"}, {"Progressing", "Prog"}, {"Waiting", "Wait"},
                    {"Promoting", "Promo"}};
                const char *label = m->gate.state.phase;
                for (size_t k = 0; k < sizeof shortname / sizeof *shortname; k++)
                    if (strcmp(label, shortname[k][0]) == 0)
                        label = shortname[k][1];
                snprintf(c_traffic, sizeof c_traffic, "%s %d%%", label, m->gate.state.actual_weight);
                if (!sel)
                    attrs[C_TRAFFIC] = A(a, strcmp(m->gate.state.phase, "Failed") == 0 ? TUI_C_BAD
                                            : strcmp(m->gate.state.phase, "Paused") == 0
                                                ? TUI_C_WARN
                                                : TUI_C_CANARY);
            }
            if (m->stale) {
                char age[16];
                tui_fmt_age(m->stale_age_ms, age, sizeof age);
                snprintf(c_ready, sizeof c_ready, "stale %s", m->stale_age_ms < 0 ? "-" : age);
                if (!sel)
                    attrs[C_READY] = A(a, TUI_C_WARN);
            } else {
                snprintf(c_ready, sizeof c_ready, "%zu/%zu", m->ready_nodes, m->n_nodes);
                if (!sel)
                    attrs[C_READY] = A(a, m->ready_nodes == m->n_nodes ? TUI_C_OK : TUI_C_WARN);
            }
            tui_fmt_age(m->created_ms > 0 ? now - m->created_ms : -1, c_age, sizeof c_age);
            int cells_w = widths[C_SPARK] > 0 ? widths[C_SPARK] : 1;
            tui_spark_render(m->qps_hist, m->n_hist, (size_t)cells_w, 0, a->crt.utf8, c_spark,
                             sizeof c_spark);
            if (!sel)
                attrs[C_SPARK] = A(a, TUI_C_SPARK);
        } else {
            const tui_rev *r = &m->revs[row->rev];
            f = &r->figs;
            snprintf(c_name, sizeof c_name, " %s %s", a->crt.utf8 ? "\u2514" : "`", r->name);
            snprintf(c_rev, sizeof c_rev, "%lld", (long long)r->seq);
            snprintf(c_traffic, sizeof c_traffic, "%3d%% %s", r->percent,
                     r->stable ? "stable" : r->canary ? "canary" : "");
            if (r->canary && !sel)
                attrs[C_TRAFFIC] = A(a, TUI_C_CANARY);
            /* The revision's state; a loaded one with more than one replica says how many. */
            if (r->replicas > 1 && strcmp(r->state, "ready") == 0)
                snprintf(c_ready, sizeof c_ready, "ready x%lld", r->replicas);
            else
                snprintf(c_ready, sizeof c_ready, "%s",
                         strcmp(r->state, "scaled-to-zero") == 0 ? "zero"
                         : r->state[0]                           ? r->state
                                                                 : "-");
            if (!sel)
                attrs[C_READY] = A(a, strcmp(r->state, "ready") == 0 ? TUI_C_OK :
                                      strcmp(r->state, "failed") == 0 ? TUI_C_BAD : TUI_C_DIM);
            tui_fmt_age(r->created_ms > 0 ? now - r->created_ms : -1, c_age, sizeof c_age);
            c_spark[0] = '\0';
        }
        tui_fmt_qps(f->has_rate, f->qps, c_qps, sizeof c_qps);
        if (row->rev < 0 && m->qps_trend) {
            size_t l = strlen(c_qps);
            snprintf(c_qps + l, sizeof c_qps - l, "%s", m->qps_trend > 0 ?
                     (a->crt.utf8 ? "\u2191" : "^") : (a->crt.utf8 ? "\u2193" : "v"));
        }
        tui_fmt_ms(f->p50_ms, c_p50, sizeof c_p50);
        tui_fmt_ms(f->p99_ms, c_p99, sizeof c_p99);
        tui_fmt_pct(f->err_pct, c_err, sizeof c_err);
        if (!sel)
            attrs[C_ERR] = A(a, err_color(f->err_pct));
        cells[C_NS] = row->rev < 0 ? m->ns : "";
        cells[C_NAME] = c_name;
        cells[C_NODES] = row->rev < 0 ? m->nodes : "";
        cells[C_REV] = c_rev;
        cells[C_TRAFFIC] = c_traffic;
        cells[C_QPS] = c_qps;
        cells[C_P50] = c_p50;
        cells[C_P99] = c_p99;
        cells[C_ERR] = c_err;
        cells[C_READY] = c_ready;
        cells[C_AGE] = c_age;
        cells[C_SPARK] = c_spark;
        if (sel)
            tui_fill_row(top + i, base);
        put_cols(top + i, widths, cells, attrs);
    }
    tui_put(LINES - 3, COLS - (int)strlen(info), (int)strlen(info), info, A(a, TUI_C_DIM), false,
            false);
}

/* ---- detail ---- */

static int draw_rev_box(tui_app *a, const tui_model *m, int idx, const char *role, int y, int x,
                        int w)
{
    tui_put(y, x, w, role, A(a, idx >= 0 && m->revs[idx].canary ? TUI_C_CANARY : TUI_C_TITLE),
            true, false);
    if (idx < 0) {
        tui_put(y + 1, x, w, "none", A(a, TUI_C_DIM), true, false);
        return 2;
    }
    const tui_rev *r = &m->revs[idx];
    char line[256], q[32], p50[32], p99[32], e[32];
    tui_fmt_qps(r->figs.has_rate, r->figs.qps, q, sizeof q);
    tui_fmt_ms(r->figs.p50_ms, p50, sizeof p50);
    tui_fmt_ms(r->figs.p99_ms, p99, sizeof p99);
    tui_fmt_pct(r->figs.err_pct, e, sizeof e);
    /* While a release gate moves the split, the engine's weights are the truth (the
     * desired split keeps the canary at 0% until the gate's outcome is imported). */
    int pct = r->percent;
    bool gating = m->gate.present && strcmp(m->gate.state.phase, "Succeeded") != 0 &&
                  strcmp(m->gate.state.phase, "Failed") != 0;
    if (gating && strcmp(r->name, m->gate.state.canary) == 0)
        pct = m->gate.state.actual_weight;
    else if (gating && idx == m->stable)
        pct = 100 - m->gate.state.actual_weight;
    snprintf(line, sizeof line, "%s  %d%%%s  %s", r->name, pct,
             pct != r->percent ? " (gate)" : "", r->state[0] ? r->state : "-");
    tui_put(y + 1, x, w, line, A(a, TUI_C_DEFAULT), true, false);
    /* "runtime auto -> ksv-forest": what the spec names, then what the engine chose. */
    if (r->serving_runtime[0] && strcmp(r->serving_runtime, r->runtime) != 0)
        snprintf(line, sizeof line, "runtime %s -> %s", r->runtime, r->serving_runtime);
    else
        snprintf(line, sizeof line, "runtime %s", r->runtime);
    tui_put(y + 2, x, w, line, A(a, TUI_C_DIM), true, false);
    /* What it holds, its replicas, and how often (and how slowly) it came back from zero. */
    int len = 0;
    line[0] = '\0';
    if (r->memory_bytes >= 0) {
        char mem[32];
        tui_fmt_bytes(r->memory_bytes, mem, sizeof mem);
        len = snprintf(line, sizeof line, "mem %s  ", mem);
    }
    if (r->replicas >= 0 && len >= 0 && (size_t)len < sizeof line)
        len += snprintf(line + len, sizeof line - (size_t)len, "replicas %lld  ", r->replicas);
    if (r->cold_starts > 0 && len >= 0 && (size_t)len < sizeof line) {
        char cold_p99[32];
        tui_fmt_ms(r->cold_p99_ms >= 0 ? r->cold_p99_ms : NAN, cold_p99, sizeof cold_p99);
        snprintf(line + len, sizeof line - (size_t)len, "cold starts %lld (P99 %s)",
                 r->cold_starts, cold_p99);
    }
    if (r->download_nodes > 0) {
        /* Fetching its model: that is what it waits for. */
        if (r->download_total >= 0)
            snprintf(line, sizeof line, "fetching %.1f/%.1f MB (%.1f MB/s)",
                     (double)r->download_bytes / 1e6, (double)r->download_total / 1e6,
                     r->download_rate / 1e6);
        else
            snprintf(line, sizeof line, "fetching %.1f MB (%.1f MB/s)",
                     (double)r->download_bytes / 1e6, r->download_rate / 1e6);
        tui_put(y + 3, x, w, line, A(a, TUI_C_WARN), true, false);
    } else {
        tui_put(y + 3, x, w, line[0] ? line : "-", A(a, TUI_C_DIM), true, false);
    }
    len = snprintf(line, sizeof line, "QPS %s  P50 %s  P99 %s", q, p50, p99);
    if (r->figs.has_llm && len > 0 && (size_t)len < sizeof line) {
        char ttft[32], tps[32];
        tui_fmt_ms(r->figs.ttft_p99_ms, ttft, sizeof ttft);
        tui_fmt_qps(true, r->figs.tokens_per_s, tps, sizeof tps);
        snprintf(line + len, sizeof line - (size_t)len, "  TTFT P99 %s  %s tok/s", ttft, tps);
    }
    tui_put(y + 4, x, w, line, A(a, TUI_C_DEFAULT), true, false);
    snprintf(line, sizeof line, "ERR %s", e);
    tui_put(y + 5, x, w, line, A(a, err_color(r->figs.err_pct)), true, false);
    return 6;
}

/* The release gate's section of the detail screen: phase, step, set vs actual weight, the
 * check table and why it halted. Returns the next free row. */
static int draw_gate(tui_app *a, const tui_model *m, int y, int bottom)
{
    const tui_gate *g = &m->gate;
    if (!g->present || y >= bottom)
        return y;
    char line[512];
    tui_put(y++, 0, COLS, " RELEASE GATE (p: pause/resume, A: abort)", A(a, TUI_C_TITLE), true,
            false);
    bool failed = strcmp(g->state.phase, "Failed") == 0;
    snprintf(line, sizeof line, "%s  node %s  canary %s  step %d/%d  weight set %d%% actual %d%%"
             "  failed checks %d/%d", g->state.phase, g->node, g->state.canary, g->state.step + 1, g->state.steps,
             g->state.set_weight, g->state.actual_weight, g->state.failed_checks, g->state.threshold);
    tui_put(y++, 2, COLS - 3, line, A(a, failed ? TUI_C_BAD : TUI_C_CANARY), false, false);
    if (g->state.n_checks && y < bottom) {
        snprintf(line, sizeof line, "%-24s %10s %8s %8s  %-12s %s", "METRIC", "VALUE", "MIN",
                 "MAX", "VERDICT", "REQUESTS");
        tui_put(y++, 2, COLS - 3, line, A(a, TUI_C_DIM), false, false);
    }
    for (size_t i = 0; i < g->state.n_checks && y < bottom; i++) {
        char v[32], lo[32], hi[32];
        if (isnan(g->state.checks[i].value))
            snprintf(v, sizeof v, "-");
        else
            snprintf(v, sizeof v, "%.2f", g->state.checks[i].value);
        if (isnan(g->state.checks[i].min))
            snprintf(lo, sizeof lo, "-");
        else
            snprintf(lo, sizeof lo, "%g", g->state.checks[i].min);
        if (isnan(g->state.checks[i].max))
            snprintf(hi, sizeof hi, "-");
        else
            snprintf(hi, sizeof hi, "%g", g->state.checks[i].max);
        snprintf(line, sizeof line, "%-24s %10s %8s %8s  %-12s %lld", g->state.checks[i].metric, v, lo,
                 hi, g->state.checks[i].verdict, g->state.checks[i].requests);
        int attr = strcmp(g->state.checks[i].verdict, "fail") == 0 ? TUI_C_BAD
                   : strcmp(g->state.checks[i].verdict, "pass") == 0 ? TUI_C_OK
                                                                : TUI_C_WARN;
        tui_put(y++, 2, COLS - 3, line, A(a, attr), false, false);
    }
    if (g->state.reason[0] && y < bottom) {
        snprintf(line, sizeof line, "why: %s", g->state.reason);
        tui_put(y++, 2, COLS - 3, line, A(a, failed ? TUI_C_BAD : TUI_C_WARN), false, false);
    }
    return y;
}

/* Each external runtime's last output lines (ksv logs MODEL has all 200). Returns the next
 * free row. */
static int draw_runtime_logs(tui_app *a, const tui_model *m, int y, int bottom)
{
    char line[512];
    for (size_t i = 0; i < m->n_logs && y < bottom; i++) {
        const tui_runtime_log *l = &m->logs[i];
        snprintf(line, sizeof line, " RUNTIME OUTPUT  node %.60s  revision %.90s  %s  restarts %lld",
                 l->node, l->revision, l->state[0] ? l->state : "-", l->restarts);
        tui_put(y++, 0, COLS, line, A(a, TUI_C_TITLE), true, false);
        /* The newest lines that fit, at most 5 per runtime. */
        size_t show = l->n_lines < 5 ? l->n_lines : 5;
        for (size_t k = l->n_lines - show; k < l->n_lines && y < bottom; k++)
            tui_put(y++, 2, COLS - 3, l->lines[k], A(a, TUI_C_DIM), false, false);
    }
    return y;
}

static void draw_detail(tui_app *a, int top, int height)
{
    const tui_model *m = tui_snapshot_find(a->snap, a->detail_key);
    if (!m) {
        tui_put(top, 1, COLS - 2, "the model is gone (Esc: back)", A(a, TUI_C_DIM), false, false);
        return;
    }
    char line[1024], split[64];
    int pending = a->slider.active && strcmp(a->slider.key, m->key) == 0 ? a->slider.pending : -1;
    tui_split_text(m, pending, a->crt.utf8, split, sizeof split);
    snprintf(line, sizeof line, " %s  nodes %s  traffic %s%s", m->key, m->nodes, split,
             pending >= 0 ? "  (pending: Enter applies, Esc cancels)" : "");
    tui_fill_row(top, A(a, TUI_C_TITLE));
    tui_put(top, 0, COLS, line, A(a, pending >= 0 ? TUI_C_PENDING : TUI_C_TITLE), false, false);
    int y = top + 1, half = (COLS - 3) / 2;
    int used = draw_rev_box(a, m, m->stable, "STABLE", y, 1, half);
    int used2 = draw_rev_box(a, m, m->canary, "CANARY", y, half + 2, half);
    y += (used > used2 ? used : used2);
    char spark[2048], label[64];
    int sw = COLS - 12;
    tui_spark_render(m->qps_hist, m->n_hist, (size_t)sw, 0, a->crt.utf8, spark, sizeof spark);
    snprintf(label, sizeof label, " QPS");
    tui_put(y, 0, 10, label, A(a, TUI_C_TITLE), true, false);
    tui_put(y++, 11, sw, spark, A(a, TUI_C_SPARK), true, false);
    tui_spark_render(m->p99_hist, m->n_hist, (size_t)sw, 0, a->crt.utf8, spark, sizeof spark);
    tui_put(y, 0, 10, " P99", A(a, TUI_C_TITLE), true, false);
    tui_put(y++, 11, sw, spark, A(a, TUI_C_WARN), true, false);
    int bottom = top + height;
    y = draw_gate(a, m, y, bottom);
    if (m->n_wave_lines && y < bottom) {
        char title[160];
        snprintf(title, sizeof title, " WAVES %s", m->waves_title);
        tui_put(y++, 0, COLS, title, A(a, TUI_C_TITLE), true, false);
        for (size_t i = 0; i < m->n_wave_lines && y < bottom; i++) {
            bool bad = strstr(m->wave_lines[i], "failed") != NULL;
            tui_put(y++, 2, COLS - 3, m->wave_lines[i], A(a, bad ? TUI_C_BAD : TUI_C_DEFAULT),
                    true, false);
        }
    }
    if (m->n_pull_lines && y < bottom) {
        tui_put(y++, 0, COLS, " PULLS (ksv pull)", A(a, TUI_C_TITLE), true, false);
        for (size_t i = 0; i < m->n_pull_lines && y < bottom; i++) {
            bool bad = strstr(m->pull_lines[i], " failed: ") != NULL;
            tui_put(y++, 2, COLS - 3, m->pull_lines[i], A(a, bad ? TUI_C_BAD : TUI_C_DEFAULT),
                    true, false);
        }
    }
    tui_put(y++, 0, COLS, " RECENT ERRORS (request id)", A(a, TUI_C_TITLE), true, false);
    int err_rows = m->n_errors ? (int)(m->n_errors < 5 ? m->n_errors : 5) : 1;
    if (!m->n_errors)
        tui_put(y, 2, COLS - 3, "none", A(a, TUI_C_DIM), false, false);
    for (int i = 0; i < err_rows && (size_t)i < m->n_errors && y + i < bottom; i++) {
        const tui_req_error *e = &m->errors[i];
        char t[32];
        tui_fmt_clock((int64_t)(e->unix_time * 1000), ksv_wall_ms(), t, sizeof t);
        snprintf(line, sizeof line, "%s %.30s %d %.40s %.60s %.200s", t, e->node, e->status, e->request_id,
                 e->revision, e->message);
        tui_put(y + i, 2, COLS - 3, line, A(a, e->status >= 500 ? TUI_C_BAD : TUI_C_WARN), false,
                false);
    }
    y += err_rows;
    y = draw_runtime_logs(a, m, y, bottom);
    if (y >= bottom)
        return;
    tui_put(y++, 0, COLS, " SPEC (e: edit)", A(a, TUI_C_TITLE), true, false);
    ksv_sb yaml;
    ksv_sb_init(&yaml);
    ksv_err err;
    /* Shown in its display form; the editor ('e') gets the real one, to apply it again. */
    char uri[KSV_URI_SHOWN_MAX];
    if (m->n_revs)
        ksv_uri_redact(uri, sizeof uri, m->revs[m->n_revs - 1].storage_uri);
    const char *text = ksv_console_spec_yaml(m->spec_json, m->n_revs ? uri : NULL, &yaml,
                                             &err) == 0
                           ? yaml.data
                           : m->spec_json;
    while (text && *text && y < bottom) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        snprintf(line, sizeof line, "%.*s", (int)(len < 500 ? len : 500), text);
        tui_put(y++, 2, COLS - 3, line, A(a, TUI_C_DEFAULT), false, false);
        text = nl ? nl + 1 : text + len;
    }
    ksv_sb_free(&yaml);
}

/* ---- history, nodes, help ---- */

static void scroll_list(tui_app *a, size_t n, int height)
{
    if (a->list_cursor >= n)
        a->list_cursor = n ? n - 1 : 0;
    if (a->list_cursor < a->list_top)
        a->list_top = a->list_cursor;
    if (height > 0 && a->list_cursor >= a->list_top + (size_t)height)
        a->list_top = a->list_cursor - (size_t)height + 1;
}

static void draw_history(tui_app *a, int top, int height)
{
    char head[256];
    /* Wide enough for "gate@NODE" actors and "gate-succeeded" / "rollout promote" actions. */
    snprintf(head, sizeof head, " %-19s %-14s %-16s %-18s %-22s %s", "TIME", "ACTOR", "ACTION",
             "MODEL/NODE", "OLD -> NEW", "RESULT");
    tui_fill_row(top, A(a, TUI_C_TITLE));
    tui_put(top, 0, COLS, head, A(a, TUI_C_TITLE), false, false);
    const tui_snapshot *s = a->snap;
    if (!s)
        return;
    height--;
    scroll_list(a, s->n_history, height);
    int64_t now = ksv_wall_ms();
    for (int i = 0; i < height && a->list_top + (size_t)i < s->n_history; i++) {
        size_t k = a->list_top + (size_t)i;
        const tui_hist_row *h = &s->history[k];
        char t[32], line[1200], change[520];
        tui_fmt_clock(h->at_ms, now, t, sizeof t);
        snprintf(change, sizeof change, "%s -> %s", h->old_value[0] ? h->old_value : "-",
                 h->new_value[0] ? h->new_value : "-");
        snprintf(line, sizeof line, " %-19s %-14.14s %-16.16s %-18.18s %-22s %s", t, h->actor,
                 h->action, h->target, change, h->result);
        bool ok = strncmp(h->result, "ok", 2) == 0 || strcmp(h->result, "requested") == 0;
        int attr = k == a->list_cursor ? A(a, TUI_C_SELECTED) : A(a, ok ? TUI_C_DEFAULT : TUI_C_BAD);
        tui_put(top + 1 + i, 0, COLS, line, attr, true, false);
    }
}

static void draw_nodes(tui_app *a, int top, int height)
{
    char head[512];
    snprintf(head, sizeof head, " %-12s %-6s %-22s %-12s %-8s %-7s %-6s %-20s %s", "NAME", "KIND",
             "ADDRESS", "STATUS", "ENGINE", "UPTIME", "LOAD", "GPU util/mem", "LABELS");
    tui_fill_row(top, A(a, TUI_C_TITLE));
    tui_put(top, 0, COLS, head, A(a, TUI_C_TITLE), false, false);
    const tui_snapshot *s = a->snap;
    if (!s)
        return;
    size_t *order = malloc((s->n_nodes ? s->n_nodes : 1) * sizeof *order);
    if (!order)
        return;
    char why[256];
    size_t shown = tui_nodes_view(s, a->node_filter, a->node_group, order, why, sizeof why);
    if (a->node_filter[0] || a->node_group[0] || why[0]) {
        /* What narrows or orders the list, on the title row's right. */
        char info[700];
        snprintf(info, sizeof info, " %zu of %zu%s%s%s%s%s%s ", shown, s->n_nodes,
                 a->node_filter[0] ? " filter:" : "", a->node_filter,
                 a->node_group[0] ? " group:" : "", a->node_group, why[0] ? " " : "", why);
        int w = (int)strlen(info);
        tui_put(top, COLS - w > 0 ? COLS - w : 0, COLS, info,
                A(a, why[0] ? TUI_C_WARN : TUI_C_TITLE), false, false);
    }
    int y = top + 1, bottom = top + height;
    scroll_list(a, shown, height - 1);
    char group[96] = "\001"; /* no group drawn yet */
    for (size_t r = 0; r < shown && y < bottom; r++) {
        size_t k = order[r];
        const tui_node *n = &s->nodes[k];
        if (a->node_group[0]) {
            char value[80], line[200];
            bool has = tui_node_label(n, a->node_group, value, sizeof value);
            char this_group[96];
            snprintf(this_group, sizeof this_group, "%s%s", has ? "=" : "", value);
            if (strcmp(this_group, group) != 0) {
                snprintf(group, sizeof group, "%s", this_group);
                size_t count = 0;
                for (size_t q = r; q < shown; q++) {
                    char v2[80];
                    bool h2 = tui_node_label(&s->nodes[order[q]], a->node_group, v2, sizeof v2);
                    if (h2 != has || strcmp(v2, value) != 0)
                        break;
                    count++;
                }
                if (has)
                    snprintf(line, sizeof line, " -- %s=%s (%zu)", a->node_group, value, count);
                else
                    snprintf(line, sizeof line, " -- without %s (%zu)", a->node_group, count);
                tui_put(y++, 0, COLS, line, A(a, TUI_C_TITLE), true, false);
                if (y >= bottom)
                    break;
            }
        }
        char status[48], up[16], load[16], gpu[128] = "-", line[1200];
        if (n->reachable && !n->stale)
            snprintf(status, sizeof status, "up");
        else {
            char age[16];
            tui_fmt_age(n->age_ms, age, sizeof age);
            snprintf(status, sizeof status, "%s %s", n->reachable ? "stale" : "down",
                     n->age_ms < 0 ? "never" : age);
        }
        tui_fmt_age(n->reachable ? (int64_t)(n->uptime_s * 1000) : -1, up, sizeof up);
        snprintf(load, sizeof load, n->reachable ? "%.2f" : "-", n->load1);
        size_t gl = 0;
        for (size_t g = 0; g < n->n_gpus && gl < sizeof gpu; g++) {
            char used[16], total[16];
            tui_fmt_bytes(n->gpus[g].mem_used, used, sizeof used);
            tui_fmt_bytes(n->gpus[g].mem_total, total, sizeof total);
            int w = snprintf(gpu + gl, sizeof gpu - gl, "%s%d: %.0f%% %s/%s", g ? ", " : "",
                             (int)g, n->gpus[g].utilization < 0 ? 0 : n->gpus[g].utilization * 100,
                             used, total);
            if (w < 0)
                break;
            gl += (size_t)w;
        }
        snprintf(line, sizeof line, " %-12.12s %-6s %-22.22s %-12s %-8.8s %-7s %-6s %-20.20s %s",
                 n->name, n->kind, n->address, status, n->version[0] ? n->version : "-", up, load,
                 gpu, n->labels[0] ? n->labels : "-");
        int attr = r == a->list_cursor ? A(a, TUI_C_SELECTED)
                   : (n->reachable && !n->stale) ? A(a, TUI_C_OK) : A(a, TUI_C_BAD);
        tui_put(y++, 0, COLS, line, attr, true, false);
        if (n->error[0] && y < bottom) {
            snprintf(line, sizeof line, "   %s", n->error);
            tui_put(y++, 0, COLS, line, A(a, TUI_C_BAD), true, false);
        }
    }
    free(order);
}

/* Namespaces: what each team's models hold and use, with its quotas (`ksv get quota`). */
static void draw_namespaces(tui_app *a, int top, int height)
{
    char head[256];
    snprintf(head, sizeof head, " %-16s %6s %5s %6s %10s %6s %8s  %s", "NAMESPACE", "MODELS",
             "REVS", "ZERO", "MEMORY", "COLD", "QPS", "QUOTA used/hard");
    tui_fill_row(top, A(a, TUI_C_TITLE));
    tui_put(top, 0, COLS, head, A(a, TUI_C_TITLE), false, false);
    const tui_snapshot *s = a->snap;
    if (!s)
        return;
    tui_ns_row *rows;
    size_t n = tui_namespaces(s, &rows);
    scroll_list(a, n, height - 1);
    for (int i = 0; i + 1 < height && a->list_top + (size_t)i < n; i++) {
        size_t k = a->list_top + (size_t)i;
        const tui_ns_row *r = &rows[k];
        char mem[16], qps[16], cold[24], line[900];
        tui_fmt_bytes(r->models ? r->memory_bytes : -1, mem, sizeof mem);
        snprintf(qps, sizeof qps, r->has_qps ? "%.1f" : "-", r->qps);
        snprintf(cold, sizeof cold, "%lld", r->cold_starts);
        snprintf(line, sizeof line, " %-16.16s %6zu %5zu %6zu %10s %6s %8s  %s", r->ns, r->models,
                 r->revisions, r->scaled_to_zero, mem, cold, qps, r->quota[0] ? r->quota : "-");
        tui_put(top + 1 + i, 0, COLS, line,
                k == a->list_cursor ? A(a, TUI_C_SELECTED) : A(a, TUI_C_DEFAULT), true, false);
    }
    free(rows);
}

/* Cost: `ksv cost` for the last 24 h, from the residency events the store holds. */
static void draw_cost(tui_app *a, int top, int height)
{
    char head[256];
    snprintf(head, sizeof head, " %-12s %-14s %-16s %8s %7s %7s %9s %9s %9s %8s %9s", "NAMESPACE",
             "MODEL", "REVISION", "LOADED-H", "IDLE-H", "ZERO-H", "GB-H", "GPU-GB-H",
             "SAVED-GB-H", "REQUESTS", "COST");
    tui_fill_row(top, A(a, TUI_C_TITLE));
    tui_put(top, 0, COLS, head, A(a, TUI_C_TITLE), false, false);
    const tui_snapshot *s = a->snap;
    if (!s)
        return;
    if (!s->has_cost) {
        tui_put(top + 1, 1, COLS - 2, s->cost_error[0] ? s->cost_error : "no cost figures yet",
                A(a, TUI_C_BAD), true, false);
        return;
    }
    const ksv_cost_report *c = &s->cost;
    size_t n = c->n + 1; /* the total last */
    scroll_list(a, n, height - 2);
    for (int i = 0; i + 2 < height && a->list_top + (size_t)i < n; i++) {
        size_t k = a->list_top + (size_t)i;
        const ksv_cost_row *r = k < c->n ? &c->rows[k] : &c->total;
        char line[512];
        snprintf(line, sizeof line,
                 " %-12.12s %-14.14s %-16.16s %8.2f %7.2f %7.2f %9.4f %9.4f %9.4f %8.0f %9.2f",
                 k < c->n ? (r->ns[0] ? r->ns : "-") : "TOTAL", k < c->n ? r->model : "",
                 k < c->n ? r->revision : "", r->loaded_hours, r->idle_loaded_hours,
                 r->scaled_to_zero_hours, r->memory_gb_hours, r->gpu_memory_gb_hours,
                 r->saved_gb_hours, r->requests, r->cost);
        int attr = k == a->list_cursor ? A(a, TUI_C_SELECTED)
                   : k < c->n          ? A(a, TUI_C_DEFAULT)
                                       : A(a, TUI_C_TITLE);
        tui_put(top + 1 + i, 0, COLS, line, attr, true, false);
    }
    char note[256];
    snprintf(note, sizeof note,
             " last 24 h, prices %.4f/GB-h %.4f/GPU-h (config file); requests of residencies "
             "still open: `ksv cost` reads them live",
             c->gb_hour_price, c->gpu_hour_price);
    tui_put(top + height - 1, 0, COLS, note, A(a, TUI_C_DIM), true, false);
}

static void draw_help(tui_app *a, int top, int height)
{
    char **lines;
    size_t n = tui_help_lines(a->readonly, &lines);
    tui_fill_row(top, A(a, TUI_C_TITLE));
    tui_put(top, 0, COLS, " ksv-top keys (Esc or q leaves help)", A(a, TUI_C_TITLE), false, false);
    scroll_list(a, n, height - 1);
    for (int i = 0; i + 1 < height && a->list_top + (size_t)i < n; i++)
        tui_put(top + 1 + i, 1, COLS - 2, lines[a->list_top + (size_t)i],
                A(a, strstr(lines[a->list_top + (size_t)i], "--readonly") ? TUI_C_DIM : TUI_C_DEFAULT),
                false, false);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* ---- bottom lines ---- */

static void draw_bottom(tui_app *a)
{
    int y = LINES - 1;
    tui_fill_row(LINES - 2, A(a, TUI_C_DEFAULT));
    if (a->status[0])
        tui_put(LINES - 2, 0, COLS, a->status, A(a, a->status_color), false, false);
    tui_fill_row(y, A(a, TUI_C_DEFAULT));
    if (a->mode == TUI_MODE_FILTER || a->mode == TUI_MODE_COMMAND) {
        char line[200];
        snprintf(line, sizeof line, "%c%s", a->mode == TUI_MODE_FILTER ? '/' : ':', a->input);
        tui_put(y, 0, COLS, line, A(a, TUI_C_DEFAULT) | A_BOLD, false, false);
        curs_set(1);
        move(y, (int)tui_text_width(line));
        return;
    }
    static const char *const keys[][2] = {
        {"?", "Help"}, {"Ent", "Open"}, {"+-", "Canary"}, {"P", "Promote"}, {"R", "Rollback"},
        {"e", "Edit"}, {"H", "History"}, {"N", "Nodes"}, {"/", "Filter"}, {":", "Cmd"},
        {"q", "Quit"},
    };
    int x = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && x < COLS; i++) {
        x += tui_put(y, x, COLS - x, keys[i][0], A(a, TUI_C_KEY), false, false);
        x += tui_put(y, x, COLS - x, keys[i][1], A(a, TUI_C_DEFAULT), false, false);
        x += tui_put(y, x, COLS - x, " ", A(a, TUI_C_DEFAULT), false, false);
    }
}

void tui_draw(tui_app *a)
{
    curs_set(0);
    erase();
    if (COLS < TUI_MIN_COLS || LINES < TUI_MIN_LINES) {
        char line[128];
        snprintf(line, sizeof line, "terminal too small: %dx%d, ksv-top needs %dx%d", COLS, LINES,
                 TUI_MIN_COLS, TUI_MIN_LINES);
        int w = (int)strlen(line);
        tui_put(LINES / 2, COLS > w ? (COLS - w) / 2 : 0, COLS, line, A(a, TUI_C_BAD), false,
                false);
        if (LINES > 2)
            tui_put(LINES / 2 + 1, 0, COLS, "(enlarge the window, or q to quit)", A(a, TUI_C_DIM),
                    false, false);
        refresh();
        return;
    }
    draw_header(a);
    int top = 1, height = LINES - 3;
    if (a->snap && a->snap->error[0]) {
        tui_put(1, 0, COLS, a->snap->error, A(a, TUI_C_BAD), true, false);
        top++;
        height--;
    }
    switch (a->screen) {
    case TUI_SCREEN_DETAIL:
        draw_detail(a, top, height);
        break;
    case TUI_SCREEN_HISTORY:
        draw_history(a, top, height);
        break;
    case TUI_SCREEN_NODES:
        draw_nodes(a, top, height);
        break;
    case TUI_SCREEN_NAMESPACES:
        draw_namespaces(a, top, height);
        break;
    case TUI_SCREEN_COST:
        draw_cost(a, top, height);
        break;
    case TUI_SCREEN_HELP:
        draw_help(a, top, height);
        break;
    default:
        draw_models(a, top, height);
        break;
    }
    if (a->mode == TUI_MODE_DIALOG) {
        const char *lines[9];
        size_t n = 0;
        for (; n < a->dialog_n && n < 8; n++)
            lines[n] = a->dialog_lines[n];
        /* The reason field: what is typed goes to history with the change. */
        char reason[sizeof a->dialog_reason + 40];
        if (a->dialog_focus == 2)
            snprintf(reason, sizeof reason, "reason:  %s_", a->dialog_reason);
        else
            snprintf(reason, sizeof reason, "reason:  %s", a->dialog_reason_len
                                                                ? a->dialog_reason
                                                                : "(r or Tab to type one)");
        lines[n++] = reason;
        const char *buttons[2] = {"Cancel", a->dialog_ok};
        tui_draw_dialog(&a->crt, a->dialog_title, lines, n, buttons, 2,
                        a->dialog_focus == 2 ? -1 : a->dialog_focus);
    }
    draw_bottom(a);
    refresh();
}
