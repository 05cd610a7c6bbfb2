/* test_tui_model.c: ksv-top's screen model without a terminal: figure formatting (QPS,
 * latencies, ages), sparklines against the Unicode braille dot numbering, filter, sort, the
 * deferred re-sort, row expansion, the canary slider's arithmetic, rollback targets, the
 * key table and column layout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/format.h"
#include "tui/keys.h"
#include "tui/model.h"
#include "tui/spark.h"
#include "tui/widgets.h"

#include "ktest.h"

/* UTF-8 of one code point, for expected braille strings built from the dot numbering. */
static void utf8_of(unsigned cp, char *out)
{
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    out[3] = '\0';
}

static void test_format(void)
{
    char b[64];
    tui_fmt_qps(true, 12.34, b, sizeof b);
    KT_CHECK_STR(b, "12.3", "qps one decimal");
    tui_fmt_qps(false, 12.34, b, sizeof b);
    KT_CHECK_STR(b, "-", "qps without data");
    tui_fmt_qps(true, NAN, b, sizeof b);
    KT_CHECK_STR(b, "-", "qps NaN");
    tui_fmt_ms(3.2, b, sizeof b);
    KT_CHECK_STR(b, "3.2ms", "latency ms");
    tui_fmt_ms(NAN, b, sizeof b);
    KT_CHECK_STR(b, "-", "latency without data");
    tui_fmt_pct(0.25, b, sizeof b);
    KT_CHECK_STR(b, "0.25%", "error percent");
    tui_fmt_pct(NAN, b, sizeof b);
    KT_CHECK_STR(b, "-", "error percent without requests");
    tui_fmt_pct(0, b, sizeof b);
    KT_CHECK_STR(b, "0.00%", "zero errors with requests");
    tui_fmt_age(42000, b, sizeof b);
    KT_CHECK_STR(b, "42s", "age seconds");
    tui_fmt_age(5 * 60000, b, sizeof b);
    KT_CHECK_STR(b, "5m", "age minutes");
    tui_fmt_age(3 * 3600000LL, b, sizeof b);
    KT_CHECK_STR(b, "3h", "age hours");
    tui_fmt_age(-1, b, sizeof b);
    KT_CHECK_STR(b, "-", "age unknown");
    tui_fmt_bytes(1536LL * 1024 * 1024, b, sizeof b);
    KT_CHECK_STR(b, "1.5G", "bytes");
}

static void test_spark(void)
{
    char out[256], want[256], cell[8];
    /* Full height in both columns: every dot, U+28FF. */
    double full[2] = {4, 4};
    tui_spark_render(full, 2, 1, 4, true, out, sizeof out);
    utf8_of(0x28FF, want);
    KT_CHECK_STR(out, want, "braille full cell");
    /* Left empty, right full: dots 4,5,6,8 = 0x08|0x10|0x20|0x80. */
    double right[2] = {0, 4};
    tui_spark_render(right, 2, 1, 4, true, out, sizeof out);
    utf8_of(0x2800 + 0x08 + 0x10 + 0x20 + 0x80, want);
    KT_CHECK_STR(out, want, "braille right column");
    /* Level 1 left (dot 7), level 2 right (dots 8 and 6). */
    double low[2] = {1, 2};
    tui_spark_render(low, 2, 1, 4, true, out, sizeof out);
    utf8_of(0x2800 + 0x40 + 0x80 + 0x20, want);
    KT_CHECK_STR(out, want, "braille low levels");
    /* Three cells for two samples: two blank cells on the left (U+2800), right-aligned. */
    tui_spark_render(full, 2, 3, 4, true, out, sizeof out);
    utf8_of(0x2800, cell);
    snprintf(want, sizeof want, "%s%s", cell, cell);
    utf8_of(0x28FF, cell);
    strcat(want, cell);
    KT_CHECK_STR(out, want, "braille right-aligned history");
    /* Only the newest samples fit. */
    double many[6] = {4, 4, 4, 4, 0, 0};
    tui_spark_render(many, 6, 1, 4, true, out, sizeof out);
    utf8_of(0x2800, want);
    KT_CHECK_STR(out, want, "braille shows the newest samples");
    /* ASCII: one sample per cell, " .-=#". */
    double ramp[5] = {0, 1, 2, 3, 4};
    tui_spark_render(ramp, 5, 5, 4, false, out, sizeof out);
    KT_CHECK_STR(out, " .-=#", "ascii ramp");
    /* Auto scale to the largest sample; NaN is empty. */
    double auto_s[3] = {NAN, 50, 100};
    tui_spark_render(auto_s, 3, 3, 0, false, out, sizeof out);
    KT_CHECK_STR(out, " -#", "ascii auto scale and NaN");
    KT_CHECK(tui_spark_level(0.001, 100) == 1, "a tiny positive value still shows");
    KT_CHECK(tui_spark_level(-5, 100) == 0, "negative draws empty");
}

static tui_snapshot *make_snapshot(void)
{
    tui_snapshot *s = tui_snapshot_new();
    s->n_models = 3;
    s->models = calloc(3, sizeof *s->models);
    const char *ns[3] = {"default", "default", "team"};
    const char *names[3] = {"churn", "fraud", "iris"};
    double qps[3] = {50, 10, NAN};
    double p99[3] = {4, 9, NAN};
    for (int i = 0; i < 3; i++) {
        tui_model *m = &s->models[i];
        snprintf(m->ns, sizeof m->ns, "%s", ns[i]);
        snprintf(m->name, sizeof m->name, "%s", names[i]);
        snprintf(m->key, sizeof m->key, "%s/%s", ns[i], names[i]);
        m->figs.has_rate = !isnan(qps[i]);
        m->figs.qps = qps[i];
        m->figs.p99_ms = p99[i];
        m->figs.p50_ms = m->figs.err_pct = NAN;
        m->created_ms = 1000 * (3 - i);
        m->stable = m->canary = -1;
    }
    /* churn: stable 00001 (80 %), canary 00002 (20 %). */
    tui_model *c = &s->models[0];
    c->n_revs = 2;
    c->revs = calloc(2, sizeof *c->revs);
    snprintf(c->revs[0].name, sizeof c->revs[0].name, "churn-00001");
    snprintf(c->revs[1].name, sizeof c->revs[1].name, "churn-00002");
    c->revs[0].seq = 1;
    c->revs[1].seq = 2;
    c->revs[0].percent = 80;
    c->revs[1].percent = 20;
    c->revs[0].stable = c->revs[1].canary = true;
    c->revs[0].rolled_out_ms = 5;
    c->stable = 0;
    c->canary = 1;
    /* fraud: three revisions, 00003 stable with 100 %, 00001 and 00002 once rolled out. */
    tui_model *f = &s->models[1];
    f->n_revs = 3;
    f->revs = calloc(3, sizeof *f->revs);
    for (int r = 0; r < 3; r++) {
        snprintf(f->revs[r].name, sizeof f->revs[r].name, "fraud-0000%d", r + 1);
        f->revs[r].seq = r + 1;
        f->revs[r].rolled_out_ms = r == 1 ? 0 : 10 + r;
    }
    f->revs[2].percent = 100;
    f->revs[2].stable = true;
    f->stable = 2;
    return s;
}

static void test_view(void)
{
    tui_snapshot *s = make_snapshot();
    tui_view v;
    tui_view_init(&v);
    tui_view_rebuild(&v, s, 100000);
    KT_CHECK(v.n_rows == 3, "three model rows");
    KT_CHECK(strcmp(s->models[v.rows[0].model].name, "churn") == 0, "sorted by name first");

    snprintf(v.filter, sizeof v.filter, "FRA");
    v.force_sort = true;
    tui_view_rebuild(&v, s, 100000);
    KT_CHECK(v.n_rows == 1 && strcmp(s->models[v.rows[0].model].name, "fraud") == 0,
             "filter is a case-insensitive substring");
    snprintf(v.filter, sizeof v.filter, "!default/");
    tui_view_rebuild(&v, s, 100000);
    KT_CHECK(v.n_rows == 1 && strcmp(s->models[v.rows[0].model].name, "iris") == 0,
             "filter ! inverts");
    snprintf(v.filter, sizeof v.filter, "team/");
    tui_view_rebuild(&v, s, 100000);
    KT_CHECK(v.n_rows == 1, "filter matches the namespace");
    v.filter[0] = '\0';

    v.sort = TUI_SORT_QPS;
    v.descending = true;
    v.force_sort = true;
    tui_view_rebuild(&v, s, 100000);
    KT_CHECK(strcmp(s->models[v.rows[0].model].name, "churn") == 0 &&
                 strcmp(s->models[v.rows[2].model].name, "iris") == 0,
             "sort by QPS descending, no data last");
    v.sort = TUI_SORT_P99;
    v.descending = false;
    v.force_sort = true;
    tui_view_rebuild(&v, s, 100000);
    KT_CHECK(strcmp(s->models[v.rows[0].model].name, "iris") == 0 &&
                 strcmp(s->models[v.rows[2].model].name, "fraud") == 0,
             "sort by P99 ascending");

    /* Rows do not re-sort under the cursor while the operator acts. */
    v.sort = TUI_SORT_QPS;
    v.descending = true;
    v.force_sort = true;
    tui_view_rebuild(&v, s, 100000);
    tui_view_move(&v, -100);
    tui_view_move(&v, 1); /* on fraud */
    v.last_key_ms = 100000;
    s->models[1].figs.qps = 500; /* fraud now leads */
    tui_view_rebuild(&v, s, 101000);
    KT_CHECK(strcmp(s->models[v.rows[0].model].name, "churn") == 0, "re-sort deferred after a key");
    KT_CHECK(strcmp(tui_view_current(&v, s)->name, "fraud") == 0, "cursor stays on its model");
    tui_view_rebuild(&v, s, 100000 + TUI_RESORT_DELAY_MS);
    KT_CHECK(strcmp(s->models[v.rows[0].model].name, "fraud") == 0, "re-sorted once idle");
    KT_CHECK(strcmp(tui_view_current(&v, s)->name, "fraud") == 0, "cursor followed the model");

    /* Expansion adds one row per revision, under its model. */
    tui_view_toggle_expanded(&v, "default/churn");
    tui_view_rebuild(&v, s, 200000);
    KT_CHECK(v.n_rows == 5, "expanded churn: 3 models + 2 revisions");
    size_t churn_row = 0;
    for (size_t i = 0; i < v.n_rows; i++)
        if (v.rows[i].rev < 0 && strcmp(s->models[v.rows[i].model].name, "churn") == 0)
            churn_row = i;
    KT_CHECK(v.rows[churn_row + 1].rev == 0 && v.rows[churn_row + 2].rev == 1,
             "revision rows follow their model");
    tui_view_toggle_expanded(&v, "default/churn");
    tui_view_rebuild(&v, s, 200000);
    KT_CHECK(v.n_rows == 3, "collapsed again");
    tui_view_move(&v, 100);
    KT_CHECK(v.cursor == 2, "cursor clamps at the last row");
    tui_view_move(&v, -100);
    KT_CHECK(v.cursor == 0, "cursor clamps at the first row");

    tui_view_free(&v);
    tui_snapshot_unref(s);
}

static void test_slider(void)
{
    tui_snapshot *s = make_snapshot();
    const tui_model *churn = &s->models[0], *fraud = &s->models[1];
    tui_slider sl = {0};
    KT_CHECK(tui_slider_move(&sl, churn, 5) && sl.pending == 25 && sl.live == 20, "+5 from 20");
    tui_slider_move(&sl, churn, 1);
    KT_CHECK(sl.pending == 26, "]: +1");
    tui_slider_move(&sl, churn, -1);
    tui_slider_move(&sl, churn, -5);
    KT_CHECK(sl.pending == 20, "back to the live share");
    for (int i = 0; i < 30; i++)
        tui_slider_move(&sl, churn, 5);
    KT_CHECK(sl.pending == 100, "clamped at 100");
    for (int i = 0; i < 30; i++)
        tui_slider_move(&sl, churn, -5);
    KT_CHECK(sl.pending == 0, "clamped at 0");
    KT_CHECK(!tui_slider_move(&sl, fraud, 5), "no canary: nothing moves");
    tui_slider_cancel(&sl);
    KT_CHECK(!sl.active, "Esc cancels");
    KT_CHECK(tui_slider_clamp(-3) == 0 && tui_slider_clamp(103) == 100 &&
                 tui_slider_clamp(42) == 42,
             "clamp");

    char b[64];
    tui_split_text(churn, -1, false, b, sizeof b);
    KT_CHECK_STR(b, "80/20", "live split");
    tui_split_text(churn, 25, false, b, sizeof b);
    KT_CHECK_STR(b, "80/20->75/25", "pending split (ASCII)");
    tui_split_text(churn, 25, true, b, sizeof b);
    KT_CHECK_STR(b, "80/20\u219275/25", "pending split (UTF-8 arrow)");
    tui_split_text(fraud, -1, false, b, sizeof b);
    KT_CHECK_STR(b, "100", "one revision serving");

    KT_CHECK(tui_rollback_target(churn) == 0, "rollback with a canary serving: the stable one");
    KT_CHECK(tui_rollback_target(fraud) == 0,
             "rollback without a canary: the revision rolled out before (00002 never was)");
    tui_snapshot_unref(s);
}

static void test_keys_and_layout(void)
{
    KT_CHECK(tui_key_action('q', TUI_SCREEN_MODELS, NULL) == TUI_ACT_QUIT, "q quits");
    const tui_binding *b;
    KT_CHECK(tui_key_action('+', TUI_SCREEN_MODELS, &b) == TUI_ACT_CANARY_UP5 && b->changes,
             "+ moves the canary and counts as a change");
    KT_CHECK(tui_key_action('+', TUI_SCREEN_HISTORY, NULL) == TUI_ACT_NONE,
             "+ does nothing on the history screen");
    char **lines;
    size_t n = tui_help_lines(true, &lines), ro = 0, with_p = 0;
    for (size_t i = 0; i < n; i++) {
        ro += strstr(lines[i], "--readonly") != NULL;
        with_p += strncmp(lines[i], "P ", 2) == 0;
        free(lines[i]);
    }
    free(lines);
    KT_CHECK(n > 10 && ro >= 7 && with_p == 1, "help is generated from the table, readonly marked");

    tui_column cols[3] = {{"A", 10, false, 3, false}, {"B", 10, false, 1, false},
                          {"C", 5, false, 2, true}};
    int w[3];
    tui_layout_columns(cols, 3, 40, w);
    KT_CHECK(w[0] == 10 && w[1] == 10 && w[2] == 18, "flex column takes the rest");
    tui_layout_columns(cols, 3, 20, w);
    KT_CHECK(w[0] == 10 && w[1] == 0 && w[2] == 9, "lowest priority dropped first");
}

/* The namespaces screen: models and quotas of each namespace in one row, by name; quota
 * keys shortened; unknown memory (-1) not summed. */
static void test_namespaces(void)
{
    tui_snapshot *s = tui_snapshot_new();
    tui_rev revs[3] = {0};
    snprintf(revs[0].state, sizeof revs[0].state, "ready");
    revs[0].memory_bytes = 1000;
    revs[0].cold_starts = 0;
    snprintf(revs[1].state, sizeof revs[1].state, "scaled-to-zero");
    revs[1].memory_bytes = 0;
    revs[1].cold_starts = 2;
    snprintf(revs[2].state, sizeof revs[2].state, "ready");
    revs[2].memory_bytes = -1;
    revs[2].cold_starts = -1;
    tui_model models[2] = {0};
    snprintf(models[0].ns, sizeof models[0].ns, "team-b");
    models[0].revs = &revs[0];
    models[0].n_revs = 2;
    models[0].figs.has_rate = true;
    models[0].figs.qps = 2.5;
    snprintf(models[1].ns, sizeof models[1].ns, "team-a");
    models[1].revs = &revs[2];
    models[1].n_revs = 1;
    tui_quota q = {.ns = "team-c", .name = "q",
                   .request = "count/inferenceservices.serving.kserve.io: 0/3, "
                              "requests.memory: 0/1Gi, requests.nvidia.com/gpu: 0/1"};
    s->models = models;
    s->n_models = 2;
    s->quotas = &q;
    s->n_quotas = 1;
    tui_ns_row *rows;
    size_t n = tui_namespaces(s, &rows);
    KT_CHECK(n == 3 && strcmp(rows[0].ns, "team-a") == 0 && strcmp(rows[2].ns, "team-c") == 0,
             "namespaces: three rows by name");
    KT_CHECK(n == 3 && rows[1].models == 1 && rows[1].revisions == 2 &&
                 rows[1].scaled_to_zero == 1 && rows[1].memory_bytes == 1000 &&
                 rows[1].cold_starts == 2 && rows[1].has_qps && rows[1].qps == 2.5,
             "namespaces: team-b sums its revisions");
    KT_CHECK(n == 3 && rows[0].memory_bytes == 0 && !rows[0].has_qps,
             "namespaces: unknown figures are not summed");
    KT_CHECK(n == 3 && strcmp(rows[2].quota, "q: isvc 0/3, memory 0/1Gi, gpu 0/1") == 0,
             "namespaces: a quota-only namespace, keys shortened (%s)", n == 3 ? rows[2].quota : "");
    free(rows);
    s->models = NULL;
    s->n_models = 0;
    s->quotas = NULL;
    s->n_quotas = 0;
    tui_snapshot_unref(s);
}

/* The nodes screen's filter (a name or a label selector) and grouping by a label key. */
static void test_nodes_view(void)
{
    tui_snapshot *s = tui_snapshot_new();
    const char *names[5] = {"edge-b", "edge-a", "core1", "edge-c", "lab"};
    const char *labels[5] = {"region=eu,tier=edge", "region=us,tier=edge", "region=eu",
                             "gpu=a100,region=us", ""};
    s->n_nodes = 5;
    s->nodes = calloc(5, sizeof *s->nodes);
    for (int i = 0; i < 5; i++) {
        snprintf(s->nodes[i].name, sizeof s->nodes[i].name, "%s", names[i]);
        snprintf(s->nodes[i].labels, sizeof s->nodes[i].labels, "%s", labels[i]);
    }
    size_t order[5];
    char why[256], got[128], key[80];
#define ORDER(N)                                                                          \
    do {                                                                                  \
        got[0] = '\0';                                                                    \
        for (size_t q = 0; q < (N); q++)                                                  \
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", q ? " " : "",   \
                     s->nodes[order[q]].name);                                            \
    } while (0)
    const struct { const char *filter, *group, *want, *what; } cases[] = {
        {"", "", "core1 edge-a edge-b edge-c lab", "no filter: all, by name"},
        {"edge", NULL, "edge-a edge-b edge-c", "a name filter"},
        {"!edge", NULL, "core1 lab", "an inverted name filter"},
        {"region=eu", NULL, "core1 edge-b", "a selector"},
        {"region!=eu,!gpu", NULL, "edge-a lab", "!= and !K (an unlabelled node has no region)"},
        {"", "region", "core1 edge-b edge-a edge-c lab", "grouped by region, nodes without it last"},
    };
    size_t n;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        n = tui_nodes_view(s, cases[c].filter, cases[c].group, order, why, sizeof why);
        ORDER(n);
        KT_CHECK_STR(got, cases[c].want, "%s", cases[c].what);
    }
    n = tui_nodes_view(s, "a=b=c", "tier", order, why, sizeof why);
    ORDER(n);
    KT_CHECK(n == 5 && strstr(why, "label value") != NULL, "a bad selector keeps all: %s", why);
    KT_CHECK_STR(got, "edge-a edge-b core1 edge-c lab", "grouped by tier");
    KT_CHECK(tui_node_label(&s->nodes[3], "gpu", key, sizeof key) && strcmp(key, "a100") == 0 &&
                 !tui_node_label(&s->nodes[4], "gpu", key, sizeof key) && key[0] == '\0',
             "a node's label value");
    tui_next_group_key(s, "", key, sizeof key);
    KT_CHECK_STR(key, "gpu", "L: the first key");
    tui_next_group_key(s, "gpu", key, sizeof key);
    KT_CHECK_STR(key, "region", "L: the next key");
    tui_next_group_key(s, "tier", key, sizeof key);
    KT_CHECK_STR(key, "", "L after the last key: no grouping");
#undef ORDER
    tui_snapshot_unref(s);
}

int main(void)
{
    kt_set_verbose(true);
    test_nodes_view();
    test_format();
    test_spark();
    test_view();
    test_slider();
    test_keys_and_layout();
    test_namespaces();
    return kt_summary("test_tui_model");
}
