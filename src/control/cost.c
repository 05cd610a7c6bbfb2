/* cost.c: `ksv cost`: the nodes' residency events into the store, their open residencies
 * read live, and the report computed (cost.h, cost_calc.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_internal.h"

/* The kinds that make up residencies (engine/usage.h) and restarts. */
static bool usage_kind(const char *kind)
{
    static const char *const kinds[] = {"model-load", "cold-start", "model-unload",
                                        "scale-to-zero", "engine-start"};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(kind, kinds[i]) == 0)
            return true;
    return false;
}

static int64_t figure_int(json_object *fig, const char *key)
{
    json_object *v = json_object_object_get(fig, key);
    int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
    return n > 0 ? n : 0;
}

int ctl_usage_import(ksv_ctl *ctl, const char *node, const char *log_id, json_object *e,
                     const char *model_ref, ksv_err *err)
{
    const char *kind = json_object_get_string(json_object_object_get(e, "kind"));
    if (!kind || !usage_kind(kind))
        return 0;
    json_object *fig = json_object_object_get(e, "figures");
    double t = json_object_get_double(json_object_object_get(e, "time"));
    json_object *idle = json_object_object_get(fig, "idle_seconds");
    double idle_s = json_object_is_type(idle, json_type_double) ||
                            json_object_is_type(idle, json_type_int)
                        ? json_object_get_double(idle)
                        : 0;
    /* model_ref "NS/NAME" when the store knows the model on this node. */
    char ns[256] = "";
    const char *slash = model_ref ? strchr(model_ref, '/') : NULL;
    if (slash && (size_t)(slash - model_ref) < sizeof ns)
        snprintf(ns, sizeof ns, "%.*s", (int)(slash - model_ref), model_ref);
    ksv_usage_event u = {
        .node = (char *)node,
        .log_id = (char *)log_id,
        .seq = json_object_get_int64(json_object_object_get(e, "seq")),
        .at_ms = t > 0 && t < 1e13 ? (int64_t)(t * 1000.0 + 0.5) : 0,
        .kind = (char *)kind,
        .ns = ns[0] ? ns : NULL,
        .model = (char *)json_object_get_string(json_object_object_get(e, "model")),
        .revision = (char *)json_object_get_string(json_object_object_get(e, "revision")),
        .reason = (char *)json_object_get_string(json_object_object_get(fig, "reason")),
        .memory_bytes = figure_int(fig, "memory_bytes"),
        .gpu_memory_bytes = figure_int(fig, "gpu_memory_bytes"),
        .requests = figure_int(fig, "requests"),
        .idle_seconds = idle_s >= 0 && idle_s < 1e12 ? idle_s : 0,
    };
    return ksv_store_usage_add(ctl->store, &u, err);
}

static bool add_warning(ksv_cost_report *r, const char *node, const char *what,
                        const char *msg)
{
    char **grown = realloc(r->warnings, (r->n_warnings + 1) * sizeof *grown);
    if (!grown)
        return false;
    r->warnings = grown;
    size_t n = strlen(node) + strlen(what) + strlen(msg) + 32;
    char *w = malloc(n);
    if (!w)
        return false;
    snprintf(w, n, "node %s: %s: %s", node, what, ctl_skip_node_prefix(msg, node));
    r->warnings[r->n_warnings++] = w;
    return true;
}

/* One node's open residencies (GET /ksv/v1/usage): appended to *live (strings owned by
 * reply, kept in *replies). */
typedef struct live_set {
    ksv_cost_live *live;
    size_t n, cap;
    json_object **replies;
    size_t n_replies;
} live_set;

static int read_live(ksv_ctl *ctl, const ksv_node *node, live_set *ls, ksv_cost_node_now *now,
                     ksv_err *err)
{
    ctl_node_conn conn;
    if (ctl_node_connect(ctl, node, &conn, err) != 0)
        return -1;
    json_object *reply = NULL;
    int rc = ksv_engine_client_call_json(conn.client, "GET", "/ksv/v1/usage", NULL, &reply, err);
    ctl_node_disconnect(&conn);
    if (rc != 0)
        return -1;
    json_object **kept = realloc(ls->replies, (ls->n_replies + 1) * sizeof *kept);
    if (!kept) {
        json_object_put(reply);
        return ksv_err_set(err, 500, "out of memory");
    }
    ls->replies = kept;
    ls->replies[ls->n_replies++] = reply;
    double t = json_object_get_double(json_object_object_get(reply, "now"));
    now->reached = t > 0 && t < 1e13;
    now->now_ms = (int64_t)(t * 1000.0 + 0.5);
    json_object *revs = json_object_object_get(reply, "revisions");
    size_t n = json_object_is_type(revs, json_type_array) ? json_object_array_length(revs) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(revs, i);
        const char *model = json_object_get_string(json_object_object_get(r, "model"));
        const char *revision = json_object_get_string(json_object_object_get(r, "revision"));
        if (!model || !revision)
            continue;
        if (ls->n == ls->cap) {
            size_t cap = ls->cap ? ls->cap * 2 : 16;
            ksv_cost_live *grown = realloc(ls->live, cap * sizeof *grown);
            if (!grown)
                return ksv_err_set(err, 500, "out of memory");
            ls->live = grown;
            ls->cap = cap;
        }
        double idle = json_object_get_double(json_object_object_get(r, "idle_seconds"));
        int64_t req = json_object_get_int64(json_object_object_get(r, "requests"));
        ls->live[ls->n++] = (ksv_cost_live){
            .node = now->node,
            .model = model,
            .revision = revision,
            .requests = req > 0 ? (uint64_t)req : 0,
            .idle_seconds = idle > 0 && idle < 1e12 ? idle : 0,
        };
    }
    return 0;
}

int ksv_ctl_cost(ksv_ctl *ctl, const ksv_cost_query *q, ksv_cost_report *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    ksv_settings settings;
    if (ksv_ctl_settings_load(&settings, err) != 0)
        return -1;
    out->gpu_hour_price = q->gpu_hour_price >= 0 ? q->gpu_hour_price : settings.gpu_hour_price;
    out->gb_hour_price = q->gb_hour_price >= 0 ? q->gb_hour_price : settings.gb_hour_price;
    out->until_ms = ksv_wall_ms();
    out->since_ms = q->since_s > 0 ? out->until_ms - (int64_t)(q->since_s * 1000.0) : 0;

    ksv_node_list nodes;
    if (ksv_store_node_list(ctl->store, &nodes, err) != 0)
        return -1;
    ksv_cost_node_now *now = calloc(nodes.n ? nodes.n : 1, sizeof *now);
    live_set ls = {0};
    int rc = now ? 0 : ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < nodes.n && rc == 0; i++) {
        const char *name = nodes.items[i].name;
        now[i].node = name;
        if (q->stored_only)
            continue;
        ksv_err one;
        /* Live figures first, then the events: a residency that ends between the two reads
         * is closed by its event (with its own figures), and one still open after the
         * events were read was open when the live figures were taken. */
        if (read_live(ctl, &nodes.items[i], &ls, &now[i], &one) != 0) {
            if (!add_warning(out, name, "open residencies not read", one.msg))
                rc = ksv_err_set(err, 500, "out of memory");
            continue; /* unreachable: its stored events still count */
        }
        if (ksv_ctl_import_events(ctl, name, NULL, &one) != 0 &&
            !add_warning(out, name, "events not read", one.msg))
            rc = ksv_err_set(err, 500, "out of memory");
    }
    ksv_usage_event_list events = {0};
    if (rc == 0)
        rc = ksv_store_usage_list(ctl->store, &events, err);
    if (rc == 0)
        rc = ksv_cost_compute(events.items, events.n, ls.live, ls.n, now, nodes.n, q->ns, out,
                              err);
    ksv_usage_event_list_free(&events);
    for (size_t i = 0; i < ls.n_replies; i++)
        json_object_put(ls.replies[i]);
    free(ls.replies);
    free(ls.live);
    free(now);
    ksv_node_list_free(&nodes);
    if (rc != 0)
        ksv_cost_report_free(out);
    return rc;
}
