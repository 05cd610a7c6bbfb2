/* figures.c: live figures from two scrapes of every node, kept in a metrics window and
 * stored as SQLite samples. */
#include "common/clock.h"
#include "control/figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "control/control_internal.h"

/* One round of scrapes: every node at once (ctl->parallel), each into its own slot. */
typedef struct scrape_round {
    ksv_ctl *ctl;
    const ksv_node_list *nodes;
    const bool *want;            /* NULL: every node */
    ksv_scrape *scrapes;
    int64_t *at_ms;
    bool *ok;
} scrape_round;

static void scrape_job(void *arg, size_t i)
{
    scrape_round *r = arg;
    if (r->want && !r->want[i])
        return;
    const ksv_node *node = &r->nodes->items[i];
    ctl_node_conn conn;
    ksv_err err;
    char *text = NULL;
    size_t len = 0;
    if (ctl_node_connect_fresh(r->ctl, node, &conn, &err) != 0)
        return;
    int rc = ksv_engine_client_get_histograms_text(conn.client, &text, &len, &err);
    ctl_node_disconnect(&conn);
    r->at_ms[i] = ksv_wall_ms();
    r->ok[i] = rc == 0 && ksv_scrape_parse_histograms_json(text, len, &r->scrapes[i], &err) == 0;
    if (!r->ok[i])
        ksv_log(KSV_LOG_DEBUG, NULL, "figures: node %s: %s", node->name, err.msg);
    free(text);
}

/* Scrapes the nodes (want[i], or all) in parallel and feeds the window; up[i] tells who
 * answered. */
static void scrape_all(ksv_ctl *ctl, const ksv_node_list *nodes, const bool *want, bool *up,
                       ksv_mwin *w)
{
    size_t n = nodes->n;
    scrape_round r = {ctl, nodes, want, calloc(n ? n : 1, sizeof(ksv_scrape)),
                      calloc(n ? n : 1, sizeof(int64_t)), up};
    memset(up, 0, n * sizeof *up);
    if (r.scrapes && r.at_ms)
        ctl_fanout(n, ctl->parallel, scrape_job, &r);
    for (size_t i = 0; i < n; i++) {
        ksv_err err;
        if (up[i] && ksv_mwin_add_scrape(w, nodes->items[i].name, r.at_ms[i], &r.scrapes[i],
                                         &err) != 0) {
            ksv_log(KSV_LOG_WARN, NULL, "figures: node %s: %s", nodes->items[i].name, err.msg);
            up[i] = false;
        }
        if (r.scrapes)
            ksv_scrape_free(&r.scrapes[i]);
    }
    free(r.scrapes);
    free(r.at_ms);
}

void ksv_figures_collect(ksv_ctl *ctl, ksv_figures *out)
{
    memset(out, 0, sizeof *out);
    ksv_err err;
    ksv_node_list nodes;
    if (ksv_mwin_new(0, &out->window, &err) != 0 ||
        ksv_store_node_list(ctl->store, &nodes, &err) != 0)
        return;
    const char *env = getenv("KSV_SAMPLE_SECONDS");
    double interval = env ? atof(env) : 1.0;
    if (!(interval > 0 && interval <= 60))
        interval = 1.0;
    /* Two rounds, every node at once, their starts one interval apart (a rate needs two
     * points in time): the command takes the interval plus one round's time, however many
     * nodes there are. */
    int64_t t0 = ksv_wall_ms();
    bool *up = calloc(nodes.n ? nodes.n : 1, sizeof *up);
    bool *again = calloc(nodes.n ? nodes.n : 1, sizeof *again);
    if (up && again) {
        scrape_all(ctl, &nodes, NULL, up, out->window);
        int64_t left_ms = (int64_t)(interval * 1000) - (ksv_wall_ms() - t0);
        if (left_ms > 0) {
            struct timespec ts = {(time_t)(left_ms / 1000), (long)(left_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        scrape_all(ctl, &nodes, up, again, out->window);
    }
    for (size_t i = 0; again && i < nodes.n; i++) {
        if (!again[i])
            continue;
        /* The increments between the two scrapes become samples in SQLite. */
        ksv_metric_sample *samples = NULL;
        size_t n = 0;
        if (ksv_mwin_store_samples(out->window, nodes.items[i].name, &samples, &n, &err) == 0 &&
            n > 0 && ksv_store_metrics_insert(ctl->store, samples, n, &err) != 0)
            ksv_log(KSV_LOG_WARN, NULL, "figures: storing samples: %s", err.msg);
        ksv_mwin_store_samples_free(samples, n);
    }
    out->now_ms = ksv_wall_ms();
    out->span_ms = out->now_ms - t0;
    ksv_metrics_compact_stats stats;
    ksv_store_metrics_compact(ctl->store, out->now_ms, &stats, &err);
    free(up);
    free(again);
    ksv_node_list_free(&nodes);
}

void ksv_figures_model(const ksv_figures *f, const ksv_model_record *m, ksv_model_figures *out)
{
    memset(out, 0, sizeof *out);
    out->qps = out->p50_s = out->p99_s = out->err_pct = out->client_err_pct = NAN;
    out->server_err_pct = NAN;
    if (!f->window)
        return;
    /* The window covers both scrapes, with slack for the time the scrapes took. */
    int64_t window_ms = f->span_ms + 1000;
    uint64_t requests = 0, e4 = 0, e5 = 0;
    double qps = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        ksv_mwin_sel sel = {m->nodes[i], m->name, NULL};
        ksv_mwin_rate_stats r;
        ksv_err err;
        if (ksv_mwin_rates(f->window, &sel, f->now_ms, window_ms, &r, &err) != 0 || !r.has_data)
            continue;
        out->has_data = true;
        qps += r.qps;
        requests += r.requests;
        e4 += r.requests_4xx;
        e5 += r.requests_5xx;
    }
    if (!out->has_data)
        return;
    out->qps = qps;
    if (requests > 0) {
        /* ERR% counts every answer that is not 2xx: a client sending malformed requests is
         * as much an operator's problem as a failing model. 5xx alone is server_err_pct. */
        out->err_pct = 100.0 * (double)(e4 + e5) / (double)requests;
        out->server_err_pct = 100.0 * (double)e5 / (double)requests;
        out->client_err_pct = 100.0 * (double)e4 / (double)requests;
    }
    /* Quantiles over every node of the model together, from the merged histograms. */
    ksv_hist_snap *merged = calloc(1, sizeof *merged), *one = malloc(sizeof *one);
    uint64_t total = 0;
    for (size_t i = 0; merged && one && i < m->n_nodes; i++) {
        ksv_mwin_sel sel = {m->nodes[i], m->name, NULL};
        size_t series = 0;
        ksv_err err;
        if (ksv_mwin_window_hist(f->window, &sel, f->now_ms, window_ms, one, &series, &err) == 0 &&
            series > 0) {
            ksv_hist_snap_merge(merged, one);
            total += one->count;
        }
    }
    if (total > 0) {
        out->p50_s = ksv_hist_quantile(merged, 0.50);
        out->p99_s = ksv_hist_quantile(merged, 0.99);
    }
    free(merged);
    free(one);
}

void ksv_figures_format(const ksv_model_figures *f, char *qps, char *p50, char *p99, char *err,
                        size_t cap)
{
    char buf[32];
    ksv_mwin_format_qps(buf, f->has_data ? f->qps : NAN);
    snprintf(qps, cap, "%s", buf);
    ksv_mwin_format_latency(buf, f->p50_s);
    snprintf(p50, cap, "%s", buf);
    ksv_mwin_format_latency(buf, f->p99_s);
    snprintf(p99, cap, "%s", buf);
    ksv_mwin_format_ratio(buf, isnan(f->err_pct) ? NAN : f->err_pct / 100.0);
    snprintf(err, cap, "%s", buf);
}

static json_object *num_or_null(double v)
{
    return isnan(v) ? NULL : json_object_new_double(v);
}

void ksv_figures_to_json(const ksv_model_figures *f, json_object *obj)
{
    json_object_object_add(obj, "qps", f->has_data ? num_or_null(f->qps) : NULL);
    json_object_object_add(obj, "p50_ms", num_or_null(f->p50_s * 1000));
    json_object_object_add(obj, "p99_ms", num_or_null(f->p99_s * 1000));
    json_object_object_add(obj, "error_pct", num_or_null(f->err_pct));
    json_object_object_add(obj, "client_error_pct", num_or_null(f->client_err_pct));
    json_object_object_add(obj, "server_error_pct", num_or_null(f->server_err_pct));
}

void ksv_figures_free(ksv_figures *f)
{
    ksv_mwin_free(f->window);
    memset(f, 0, sizeof *f);
}
