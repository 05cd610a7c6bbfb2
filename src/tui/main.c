/* main.c: ksv-top, the console (README.md, "The console"). Parses flags, starts the worker (and for
 * --demo the demo), then runs the UI, or prints one snapshot for --once -o json. */
#include <json-c/json.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "control/control.h"
#include "tui/app.h"
#include "tui/crt.h"
#include "tui/demo.h"
#include "tui/quit_signal.h"
#include "tui/worker.h"

static const char usage[] =
    "Usage: ksv-top [--db PATH] [-d SECONDS] [--demo] [--prometheus URL] [--readonly] [-C]\n"
    "               [--once -o json]\n"
    "  --db PATH        the ksv database (env KSV_DB; default $XDG_STATE_HOME/ksv/ksv.db)\n"
    "  -d SECONDS       refresh period (default 1)\n"
    "  --demo           a local engine with the demo models and demo traffic, in a\n"
    "                   temporary directory removed on quit\n"
    "  --prometheus URL take QPS, P50, P99 and ERR% from the Prometheus server at URL\n"
    "                   (http://HOST:9090), which scrapes the engines at least every 5 s,\n"
    "                   instead of reading the engines' histograms; models, revisions\n"
    "                   and node states still come from the database and the engines\n"
    "  --readonly       disable every change (traffic, promote, rollback, edit, and the\n"
    "                   catch-up reconcile of a node that comes back)\n"
    "  -C               monochrome (also when NO_COLOR is set)\n"
    "  --once -o json   print one snapshot as JSON and exit\n"
    "  --help, --version\n"
    "SSH nodes: each node's session and tunnel stay open between refreshes; a node that\n"
    "cannot be reached is redialled with backoff (1 s doubling to 30 s), and one that comes\n"
    "back is caught up with what changed meanwhile. Model uploads show in the status line.\n"
    "The engine events of nodes holding a gated model (release gates' steps, promotions,\n"
    "rollbacks) are copied into history as `ksv history` does, as soon as a probe sees the\n"
    "node's event log grow.\n"
    "--demo: churn's canary is rolled out by the engine's release gate; type :badcanary\n"
    "to apply a canary that fails every request and watch the gate roll it back.\n";

static json_object *num_or_null(double v)
{
    return isnan(v) ? NULL : json_object_new_double(round(v * 1000) / 1000);
}

static void figs_json(const tui_figs *f, json_object *o)
{
    json_object_object_add(o, "qps", f->has_rate ? num_or_null(f->qps) : NULL);
    json_object_object_add(o, "p50_ms", num_or_null(f->p50_ms));
    json_object_object_add(o, "p99_ms", num_or_null(f->p99_ms));
    json_object_object_add(o, "error_pct", num_or_null(f->err_pct));
    if (f->has_llm) {
        json_object_object_add(o, "ttft_p99_ms", num_or_null(f->ttft_p99_ms));
        json_object_object_add(o, "tokens_per_s", num_or_null(f->tokens_per_s));
    }
}

/* The model's release gate as the console shows it (null when none): phase, weights,
 * step, the check table and why it halted, for scripts that watch a rollout. */
static json_object *gate_json(const tui_gate *g)
{
    if (!g->present)
        return NULL;
    json_object *o = json_object_new_object(), *checks = json_object_new_array();
    json_object_object_add(o, "node", json_object_new_string(g->node));
    json_object_object_add(o, "canary", json_object_new_string(g->state.canary));
    json_object_object_add(o, "phase", json_object_new_string(g->state.phase));
    /* As the engine counts (and `ksv rollout status -o json` shows): from 0, negative for
     * mirrored iterations. */
    json_object_object_add(o, "step", json_object_new_int(g->state.step));
    json_object_object_add(o, "steps", json_object_new_int(g->state.steps));
    json_object_object_add(o, "set_weight", json_object_new_int(g->state.set_weight));
    json_object_object_add(o, "actual_weight", json_object_new_int(g->state.actual_weight));
    json_object_object_add(o, "failed_checks", json_object_new_int(g->state.failed_checks));
    json_object_object_add(o, "threshold", json_object_new_int(g->state.threshold));
    json_object_object_add(o, "reason", g->state.reason[0] ? json_object_new_string(g->state.reason) : NULL);
    for (size_t i = 0; i < g->state.n_checks; i++) {
        json_object *c = json_object_new_object();
        json_object_object_add(c, "metric", json_object_new_string(g->state.checks[i].metric));
        json_object_object_add(c, "verdict", json_object_new_string(g->state.checks[i].verdict));
        json_object_object_add(c, "value", num_or_null(g->state.checks[i].value));
        json_object_object_add(c, "min", num_or_null(g->state.checks[i].min));
        json_object_object_add(c, "max", num_or_null(g->state.checks[i].max));
        json_object_object_add(c, "requests", json_object_new_int64(g->state.checks[i].requests));
        json_object_array_add(checks, c);
    }
    json_object_object_add(o, "checks", checks);
    return o;
}

static void print_snapshot(const tui_snapshot *s, const char *prometheus_url)
{
    json_c_set_serialization_double_format("%.3f", JSON_C_OPTION_THREAD);
    json_object *root = json_object_new_object(), *models = json_object_new_array(),
                *nodes = json_object_new_array();
    json_object_object_add(root, "taken_ms", json_object_new_int64(s->taken_ms));
    json_object_object_add(root, "source",
                           json_object_new_string(prometheus_url ? "prometheus" : "engines"));
    if (prometheus_url)
        json_object_object_add(root, "prometheus", json_object_new_string(prometheus_url));
    for (size_t i = 0; i < s->n_models; i++) {
        const tui_model *m = &s->models[i];
        json_object *o = json_object_new_object(), *revs = json_object_new_array();
        json_object_object_add(o, "namespace", json_object_new_string(m->ns));
        json_object_object_add(o, "name", json_object_new_string(m->name));
        json_object_object_add(o, "nodes", json_object_new_string(m->nodes));
        json_object_object_add(o, "ready_nodes", json_object_new_int((int)m->ready_nodes));
        json_object_object_add(o, "stale", json_object_new_boolean(m->stale));
        figs_json(&m->figs, o);
        /* The QPS sparkline's points, oldest first (stored samples from earlier runs first). */
        json_object *spark = json_object_new_array();
        for (size_t k = 0; k < m->n_hist; k++)
            json_object_array_add(spark, num_or_null(m->qps_hist[k]));
        json_object_object_add(o, "qps_history", spark);
        for (size_t r = 0; r < m->n_revs; r++) {
            const tui_rev *rv = &m->revs[r];
            json_object *ro = json_object_new_object();
            json_object_object_add(ro, "name", json_object_new_string(rv->name));
            json_object_object_add(ro, "traffic", json_object_new_int(rv->percent));
            json_object_object_add(ro, "role", json_object_new_string(
                                                   rv->stable ? "stable" : rv->canary ? "canary" : ""));
            json_object_object_add(ro, "runtime", json_object_new_string(rv->runtime));
            json_object_object_add(ro, "serving_runtime",
                                   json_object_new_string(rv->serving_runtime));
            json_object_object_add(ro, "state", json_object_new_string(rv->state));
            json_object_object_add(ro, "memory_bytes", rv->memory_bytes < 0 ? NULL :
                                   json_object_new_int64(rv->memory_bytes));
            json_object_object_add(ro, "cold_starts", rv->cold_starts < 0 ? NULL :
                                   json_object_new_int64(rv->cold_starts));
            json_object_object_add(ro, "cold_start_p99_ms", rv->cold_p99_ms < 0 ? NULL :
                                   json_object_new_double(rv->cold_p99_ms));
            json_object_object_add(ro, "replicas", rv->replicas < 0 ? NULL :
                                   json_object_new_int64(rv->replicas));
            figs_json(&rv->figs, ro);
            json_object_array_add(revs, ro);
        }
        json_object_object_add(o, "revisions", revs);
        json_object_object_add(o, "gate", gate_json(&m->gate));
        json_object_array_add(models, o);
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        const tui_node *n = &s->nodes[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(n->name));
        json_object_object_add(o, "address", json_object_new_string(n->address));
        json_object_object_add(o, "reachable", json_object_new_boolean(n->reachable && !n->stale));
        json_object_object_add(o, "error", n->error[0] ? json_object_new_string(n->error) : NULL);
        json_object_object_add(o, "engine_version", json_object_new_string(n->version));
        json_object_array_add(nodes, o);
    }
    json_object_object_add(root, "models", models);
    json_object_object_add(root, "nodes", nodes);
    /* The namespaces and cost screens' rows. */
    json_object *spaces = json_object_new_array();
    tui_ns_row *ns_rows;
    size_t n_ns = tui_namespaces(s, &ns_rows);
    for (size_t i = 0; i < n_ns; i++) {
        const tui_ns_row *r = &ns_rows[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "namespace", json_object_new_string(r->ns));
        json_object_object_add(o, "models", json_object_new_int64((int64_t)r->models));
        json_object_object_add(o, "revisions", json_object_new_int64((int64_t)r->revisions));
        json_object_object_add(o, "scaled_to_zero",
                               json_object_new_int64((int64_t)r->scaled_to_zero));
        json_object_object_add(o, "memory_bytes", json_object_new_int64(r->memory_bytes));
        json_object_object_add(o, "cold_starts", json_object_new_int64(r->cold_starts));
        json_object_object_add(o, "quota", json_object_new_string(r->quota));
        json_object_array_add(spaces, o);
    }
    free(ns_rows);
    json_object_object_add(root, "namespaces", spaces);
    json_object *cost = NULL;
    if (s->has_cost) {
        cost = json_object_new_array();
        for (size_t i = 0; i < s->cost.n; i++) {
            const ksv_cost_row *r = &s->cost.rows[i];
            json_object *o = json_object_new_object();
            json_object_object_add(o, "namespace", json_object_new_string(r->ns));
            json_object_object_add(o, "model", json_object_new_string(r->model));
            json_object_object_add(o, "revision", json_object_new_string(r->revision));
            json_object_object_add(o, "loaded_hours", json_object_new_double(r->loaded_hours));
            json_object_object_add(o, "scaled_to_zero_hours",
                                   json_object_new_double(r->scaled_to_zero_hours));
            json_object_object_add(o, "memory_gb_hours",
                                   json_object_new_double(r->memory_gb_hours));
            json_object_object_add(o, "requests", json_object_new_double(r->requests));
            json_object_array_add(cost, o);
        }
    }
    json_object_object_add(root, "cost", cost);
    if (s->error[0])
        json_object_object_add(root, "error", json_object_new_string(s->error));
    printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
}

static void progress_line(const char *line)
{
    fprintf(stderr, "%s\n", line);
}

int main(int argc, char **argv)
{
    /* Two malloc arenas, not glibc's eight per core: the probers' copies are freed by the
     * collector, and at 100 nodes every thread's arena kept its own free pages (107 MB
     * resident for ~60 MB in use; one or two arenas: 68 MB, at no measurable CPU cost). */
    mallopt(M_ARENA_MAX, 2);
    const char *db = NULL, *output = NULL, *prometheus = NULL;
    double interval = 1;
    bool demo = false, readonly = false, mono = false, once = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("ksv-top %s\n", PACKAGE_VERSION);
            return 0;
        } else if (strcmp(a, "--db") == 0 && has_next) {
            db = argv[++i];
        } else if (strcmp(a, "-d") == 0 && has_next) {
            char *end;
            interval = strtod(argv[++i], &end);
            if (*end || !(interval >= 0.1 && interval <= 3600)) {
                fprintf(stderr, "ksv-top: -d: expected seconds between 0.1 and 3600\n%s", usage);
                return 2;
            }
        } else if (strcmp(a, "--demo") == 0) {
            demo = true;
        } else if (strcmp(a, "--prometheus") == 0 && has_next) {
            prometheus = argv[++i];
        } else if (strcmp(a, "--readonly") == 0) {
            readonly = true;
        } else if (strcmp(a, "-C") == 0 || strcmp(a, "--no-color") == 0) {
            mono = true;
        } else if (strcmp(a, "--once") == 0) {
            once = true;
        } else if (strcmp(a, "-o") == 0 && has_next) {
            output = argv[++i];
        } else {
            fprintf(stderr, "ksv-top: unexpected argument %s\n%s", a, usage);
            return 2;
        }
    }
    if (output && strcmp(output, "json") != 0) {
        fprintf(stderr, "ksv-top: -o: only json is supported\n");
        return 2;
    }
    if (output && !once) {
        fprintf(stderr, "ksv-top: -o json goes with --once\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread: the quit signals become a clean quit (quit_signal.h). Static, so
     * the watcher never outlives what it writes to. */
    static tui_quit_signal quit;
    tui_quit_signal_start(&quit);
    /* The terminal's locale while this is the only thread (crt.h says why). --once keeps
     * the C locale: its JSON numbers must not take a locale's decimal comma. */
    if (!once)
        tui_crt_locale_init();
    tui_demo *d = NULL;
    ksv_err err;
    /* libcurl's global state, before any thread (the Prometheus client uses libcurl). */
    if (prometheus && ksv_ctl_global_init(&err) != 0) {
        fprintf(stderr, "ksv-top: %s\n", err.msg);
        return 1;
    }
    if (demo) {
        if (tui_demo_start(argv[0], once ? NULL : progress_line, &d, &err) != 0) {
            fprintf(stderr, "ksv-top: --demo: %s\n", err.msg);
            tui_demo_stop(d);
            return 1;
        }
        db = tui_demo_db(d);
    }
    tui_worker_options wo = {.db_path = db, .argv0 = argv[0], .interval_s = interval,
                             .prometheus_url = prometheus, .readonly = readonly || once};
    int code = 0;
    if (once) {
        tui_snapshot *s;
        if (tui_collect_once(&wo, &s, &err) != 0) {
            fprintf(stderr, "ksv-top: %s\n", err.msg);
            code = 1;
        } else {
            print_snapshot(s, prometheus);
            tui_snapshot_unref(s);
        }
    } else {
        tui_worker *w;
        if (tui_worker_start(&wo, &w, &err) != 0) {
            fprintf(stderr, "ksv-top: %s\n", err.msg);
            code = 1;
        } else {
            /* The header says where the figures come from. */
            char banner[96];
            const char *host = prometheus ? strstr(prometheus, "://") : NULL;
            host = host ? host + 3 : prometheus;
            /* Never user:password on screen. */
            const char *at = host ? strchr(host, '@') : NULL, *slash = host ? strchr(host, '/') : NULL;
            if (at && (!slash || at < slash))
                host = at + 1;
            if (prometheus)
                snprintf(banner, sizeof banner, "%s[prom %.40s]", demo ? "[demo] " : "", host);
            char bad_canary[PATH_MAX + 32] = "";
            if (d)
                snprintf(bad_canary, sizeof bad_canary, "%s/churn-bad-canary.yaml",
                         tui_demo_dir(d));
            tui_app_options ao = {.readonly = readonly, .mono = mono,
                                  .banner = prometheus ? banner : demo ? "[demo] :badcanary" : NULL,
                                  .demo_bad_canary = d ? bad_canary : NULL,
                                  .quit = &quit};
            if (!tui_quit_requested(&quit))
                code = tui_app_run(w, &ao);
            tui_worker_stop(w);
        }
    }
    tui_demo_stop(d);
    return code;
}
