/* figures.c: live figures from two readings of each node's fine histograms. */
#include "control/figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/control_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads one node's histograms into f (after == false: the first reading). */
static void read_node(ksv_ctl *ctl, const ksv_node *node, ksv_figures *f, bool after)
{
    ctl_node_conn conn;
    ksv_err err;
    json_object *root = NULL, *series;
    if (ctl_node_connect(ctl, node, &conn, &err) != 0)
        return;
    int rc = ksv_engine_client_get_histograms(conn.client, &root, &err);
    ctl_node_disconnect(&conn);
    if (rc != 0 || !json_object_object_get_ex(root, "series", &series)) {
        json_object_put(root);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(series); i++) {
        json_object *s = json_object_array_get_idx(series, i), *model, *rev, *codes, *hist;
        if (!json_object_object_get_ex(s, "model", &model) ||
            !json_object_object_get_ex(s, "revision", &rev) ||
            !json_object_object_get_ex(s, "codes", &codes) ||
            !json_object_object_get_ex(s, "histogram", &hist))
            continue;
        ksv_hist_snap *snap = malloc(sizeof *snap);
        if (!snap || ksv_hist_parse_fine_json(json_object_to_json_string(hist), snap, &err) != 0) {
            free(snap);
            continue;
        }
        double classes[3] = {0, 0, 0};
        json_object_object_foreach(codes, code, count)
        {
            int c = atoi(code);
            classes[c >= 500 ? 2 : c >= 400 ? 1 : 0] += json_object_get_double(count);
        }
        /* One entry per node, model and revision; a model's figures sum its revisions. */
        ksv_figure_series *fs = NULL;
        if (after) {
            for (size_t k = 0; k < f->n && !fs; k++)
                if (strcmp(f->series[k].node, node->name) == 0 &&
                    strcmp(f->series[k].model, json_object_get_string(model)) == 0 &&
                    strcmp(f->series[k].revision, json_object_get_string(rev)) == 0 &&
                    !f->series[k].after)
                    fs = &f->series[k];
        } else {
            ksv_figure_series *p = realloc(f->series, (f->n + 1) * sizeof *p);
            if (p) {
                f->series = p;
                fs = &f->series[f->n++];
                memset(fs, 0, sizeof *fs);
                snprintf(fs->node, sizeof fs->node, "%s", node->name);
                snprintf(fs->model, sizeof fs->model, "%s", json_object_get_string(model));
                snprintf(fs->revision, sizeof fs->revision, "%s", json_object_get_string(rev));
            }
        }
        if (!fs) {
            free(snap);
            continue;
        }
        if (after) {
            fs->after = snap;
            memcpy(fs->codes_after, classes, sizeof classes);
        } else {
            fs->before = snap;
            memcpy(fs->codes_before, classes, sizeof classes);
        }
    }
    json_object_put(root);
}

void ksv_figures_collect(ksv_ctl *ctl, ksv_figures *out)
{
    memset(out, 0, sizeof *out);
    ksv_node_list nodes;
    ksv_err err;
    if (ksv_store_node_list(ctl->store, &nodes, &err) != 0)
        return;
    const char *env = getenv("KSV_SAMPLE_SECONDS");
    double interval = env ? atof(env) : 1.0;
    if (!(interval > 0 && interval <= 60))
        interval = 1.0;
    double t0 = now_s();
    for (size_t i = 0; i < nodes.n; i++)
        read_node(ctl, &nodes.items[i], out, false);
    double left = interval - (now_s() - t0);
    if (left > 0) {
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
    double t1 = now_s();
    for (size_t i = 0; i < nodes.n; i++)
        read_node(ctl, &nodes.items[i], out, true);
    out->seconds = t1 - t0;
    ksv_node_list_free(&nodes);
}

void ksv_figures_model(const ksv_figures *f, const ksv_model *m, ksv_model_figures *out)
{
    memset(out, 0, sizeof *out);
    out->p50_s = out->p99_s = out->err_pct = out->client_err_pct = NAN;
    ksv_hist_snap *sum = calloc(1, sizeof *sum), *delta = malloc(sizeof *delta);
    if (!sum || !delta) {
        free(sum);
        free(delta);
        return;
    }
    double requests = 0, e4 = 0, e5 = 0;
    for (size_t i = 0; i < f->n; i++) {
        const ksv_figure_series *s = &f->series[i];
        bool placed = false;
        for (size_t k = 0; k < m->n_nodes; k++)
            placed |= strcmp(m->nodes[k], s->node) == 0;
        if (!placed || strcmp(s->model, m->name) != 0 || !s->before || !s->after)
            continue;
        out->has_data = true;
        ksv_hist_snap_delta(s->after, s->before, delta);
        ksv_hist_snap_merge(sum, delta);
        double d[3];
        for (int c = 0; c < 3; c++) {
            d[c] = s->codes_after[c] - s->codes_before[c];
            if (d[c] < 0)
                d[c] = s->codes_after[c]; /* the engine restarted: counters began again */
        }
        requests += d[0] + d[1] + d[2];
        e4 += d[1];
        e5 += d[2];
    }
    if (out->has_data && f->seconds > 0) {
        out->requests = requests;
        out->qps = requests / f->seconds;
        if (requests > 0) {
            out->p50_s = ksv_hist_quantile(sum, 0.50);
            out->p99_s = ksv_hist_quantile(sum, 0.99);
            out->err_pct = 100.0 * e5 / requests;
            out->client_err_pct = 100.0 * e4 / requests;
        }
    }
    free(sum);
    free(delta);
}

void ksv_figures_format(const ksv_model_figures *f, char *qps, char *p50, char *p99, char *err,
                        size_t cap)
{
    if (!f->has_data) {
        snprintf(qps, cap, "-");
    } else {
        snprintf(qps, cap, "%.1f", f->qps);
    }
    if (isnan(f->p50_s))
        snprintf(p50, cap, "-");
    else
        snprintf(p50, cap, "%.1fms", f->p50_s * 1000);
    if (isnan(f->p99_s))
        snprintf(p99, cap, "-");
    else
        snprintf(p99, cap, "%.1fms", f->p99_s * 1000);
    if (isnan(f->err_pct))
        snprintf(err, cap, "-");
    else
        snprintf(err, cap, "%.2f%%", f->err_pct);
}

static json_object *num_or_null(double v)
{
    return isnan(v) ? NULL : json_object_new_double(v);
}

void ksv_figures_to_json(const ksv_model_figures *f, json_object *obj)
{
    json_object_object_add(obj, "qps", f->has_data ? json_object_new_double(f->qps) : NULL);
    json_object_object_add(obj, "p50_ms", isnan(f->p50_s) ? NULL : num_or_null(f->p50_s * 1000));
    json_object_object_add(obj, "p99_ms", isnan(f->p99_s) ? NULL : num_or_null(f->p99_s * 1000));
    json_object_object_add(obj, "error_pct", num_or_null(f->err_pct));
    json_object_object_add(obj, "client_error_pct", num_or_null(f->client_err_pct));
}

void ksv_figures_free(ksv_figures *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->series[i].before);
        free(f->series[i].after);
    }
    free(f->series);
    memset(f, 0, sizeof *f);
}
