/* observe.c: listings, node probes, spec editing and local-engine control for ksv-top. */
#include "common/clock.h"
#include "control/observe.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "control/control_internal.h"
#include "http/http_client.h"
#include "remote/local_node.h"

/* ---- listings ------------------------------------------------------------------------ */

int ksv_ctl_model_list(ksv_ctl *ctl, const char *ns, ksv_model_record_list *out, ksv_err *err)
{
    return ksv_store_model_list(ctl->store, ns, out, err);
}

int ksv_ctl_model_resolve(ksv_ctl *ctl, const char *model, const char *ns, ksv_model_record *out,
                          ksv_err *err)
{
    return ksv_store_model_resolve(ctl->store, model, ns, out, err);
}

int ksv_ctl_node_list(ksv_ctl *ctl, ksv_node_list *out, ksv_err *err)
{
    return ksv_store_node_list(ctl->store, out, err);
}

int ksv_ctl_store_version(ksv_ctl *ctl, int64_t *version, ksv_err *err)
{
    return ksv_store_data_version(ctl->store, version, err);
}

int ksv_ctl_history_list(ksv_ctl *ctl, const char *model, size_t limit,
                         ksv_history_list *out, ksv_err *err)
{
    return ksv_store_history_list(ctl->store, model, limit, out, err);
}

/* ---- probing -------------------------------------------------------------------------- */

/* Connects without ever starting an engine: a console observes, and an operator who
 * stopped an engine on purpose must not see it come back because a screen was open. */
static int probe_connect(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *conn, ksv_err *err)
{
    if (node->kind != KSV_NODE_LOCAL)
        return ctl_node_connect(ctl, node, conn, err);
    memset(conn, 0, sizeof *conn);
    snprintf(conn->name, sizeof conn->name, "%s", node->name);
    char dir[PATH_MAX];
    ctl_local_state_dir(node, dir, sizeof dir);
    ksv_local_engine le;
    if (ksv_local_engine_attach(dir, ctl->node_timeout_ms, &le, err) != 0) {
        if (err->status == 404)
            ksv_err_set(err, 503, "engine not running (state dir %s)", dir);
        return -1;
    }
    int rc = ksv_engine_client_new(le.base_url, le.token, ctl->node_timeout_ms, &conn->client,
                                   err);
    explicit_bzero(le.token, sizeof le.token);
    if (rc == 0)
        ksv_engine_client_expect_listen(conn->client, le.listen);
    return rc;
}

static void copy_str(char *dst, size_t cap, json_object *obj, const char *key)
{
    json_object *v;
    dst[0] = '\0';
    if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
        snprintf(dst, cap, "%s", json_object_get_string(v));
}

static double json_num(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) &&
                   (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))
               ? json_object_get_double(v)
               : NAN;
}

static void copy_json_str(char *dst, size_t cap, json_object *o, const char *key)
{
    json_object *v;
    snprintf(dst, cap, "%s",
             json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                 ? json_object_get_string(v)
                 : "");
}

/* A model's "rollout" object into out->gates (the release gate on this node). */
static void probe_gate(json_object *model, const char *name, ksv_node_probe *out)
{
    json_object *ro, *checks;
    if (!json_object_object_get_ex(model, "rollout", &ro) ||
        !json_object_is_type(ro, json_type_object))
        return;
    ksv_probe_gate *p = realloc(out->gates, (out->n_gates + 1) * sizeof *p);
    if (!p)
        return;
    out->gates = p;
    ksv_probe_gate *g = &out->gates[out->n_gates++];
    memset(g, 0, sizeof *g);
    snprintf(g->model, sizeof g->model, "%s", name);
    copy_json_str(g->canary, sizeof g->canary, ro, "canary");
    copy_json_str(g->phase, sizeof g->phase, ro, "phase");
    copy_json_str(g->reason, sizeof g->reason, ro, "reason");
    g->step = (int)json_num(ro, "step");
    g->steps = (int)json_num(ro, "steps");
    g->set_weight = (int)json_num(ro, "set_weight");
    g->actual_weight = (int)json_num(ro, "actual_weight");
    g->failed_checks = (int)json_num(ro, "failed_checks");
    g->threshold = (int)json_num(ro, "threshold");
    if (!json_object_object_get_ex(ro, "checks", &checks) ||
        !json_object_is_type(checks, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(checks) && g->n_checks < KSV_PROBE_GATE_CHECKS;
         i++) {
        json_object *c = json_object_array_get_idx(checks, i);
        size_t k = g->n_checks++;
        copy_json_str(g->checks[k].metric, sizeof g->checks[k].metric, c, "metric");
        copy_json_str(g->checks[k].verdict, sizeof g->checks[k].verdict, c, "verdict");
        g->checks[k].value = json_num(c, "value");
        g->checks[k].min = json_num(c, "min");
        g->checks[k].max = json_num(c, "max");
        double req = json_num(c, "requests");
        g->checks[k].requests = isnan(req) ? 0 : (long long)req;
    }
}

/* The state's "pulls" (the newest KSV_PROBE_MAX_PULLS) into out->pulls. */
static void probe_pulls(json_object *root, ksv_node_probe *out)
{
    json_object *pulls;
    if (!json_object_object_get_ex(root, "pulls", &pulls) ||
        !json_object_is_type(pulls, json_type_array))
        return;
    size_t n = json_object_array_length(pulls);
    size_t first = n > KSV_PROBE_MAX_PULLS ? n - KSV_PROBE_MAX_PULLS : 0;
    if (n == 0 || !(out->pulls = calloc(n - first, sizeof *out->pulls)))
        return;
    for (size_t i = first; i < n; i++) {
        json_object *e = json_object_array_get_idx(pulls, i), *progress;
        if (!json_object_is_type(e, json_type_object))
            continue;
        ksv_probe_pull *p = &out->pulls[out->n_pulls++];
        copy_json_str(p->model, sizeof p->model, e, "model");
        copy_json_str(p->uri, sizeof p->uri, e, "storage_uri");
        copy_json_str(p->state, sizeof p->state, e, "state");
        copy_json_str(p->error, sizeof p->error, e, "error");
        p->bytes = 0;
        p->total = -1;
        p->rate = 0;
        if (json_object_object_get_ex(e, "progress", &progress)) {
            double b = json_num(progress, "bytes"), t = json_num(progress, "total"),
                   r = json_num(progress, "bytes_per_s");
            p->bytes = isnan(b) || b < 0 ? 0 : (long long)b;
            p->total = isnan(t) || t < 0 ? -1 : (long long)t;
            p->rate = isnan(r) || r < 0 ? 0 : r;
        }
    }
}

/* The engine's applied state (a GET /ksv/v1/state answer) into out->revs and out->gates. */
static void probe_state_of(json_object *root, ksv_node_probe *out)
{
    json_object *models;
    ksv_err err;
    if (json_object_object_get_ex(root, "models", &models) &&
        json_object_is_type(models, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(models); i++) {
            ksv_engine_model_status st;
            if (ksv_engine_model_status_parse(json_object_array_get_idx(models, i), &st,
                                              &err) != 0)
                continue;
            probe_gate(json_object_array_get_idx(models, i), st.name, out);
            ksv_probe_rev *p = realloc(out->revs, (out->n_revs + st.n_revisions + 1) * sizeof *p);
            if (p) {
                out->revs = p;
                for (size_t r = 0; r < st.n_revisions; r++) {
                    ksv_probe_rev *pr = &out->revs[out->n_revs++];
                    memset(pr, 0, sizeof *pr);
                    snprintf(pr->model, sizeof pr->model, "%s", st.name);
                    snprintf(pr->revision, sizeof pr->revision, "%s", st.revisions[r].name);
                    snprintf(pr->state, sizeof pr->state, "%s", st.revisions[r].state);
                    snprintf(pr->error, sizeof pr->error, "%s", st.revisions[r].error);
                    snprintf(pr->runtime, sizeof pr->runtime, "%s",
                             st.revisions[r].serving_runtime);
                    pr->traffic = st.revisions[r].traffic;
                    pr->memory_bytes = st.revisions[r].memory_bytes;
                    pr->cold_starts = st.revisions[r].cold_starts;
                    pr->cold_start_p99_s = st.revisions[r].cold_start_p99_s;
                    pr->replicas = st.revisions[r].replicas;
                    pr->download_bytes = st.revisions[r].download_bytes;
                    pr->download_total = st.revisions[r].download_total;
                    pr->download_rate = st.revisions[r].download_rate;
                }
            }
            ksv_engine_model_status_free(&st);
        }
    }
    probe_pulls(root, out);
}

static void probe_errors(ksv_engine_client *client, const char *model, ksv_node_probe *out)
{
    json_object *root = NULL, *list;
    ksv_err err;
    if (ksv_engine_client_get_errors(client, model, &root, &err) != 0)
        return;
    if (json_object_object_get_ex(root, "errors", &list) &&
        json_object_is_type(list, json_type_array)) {
        size_t n = json_object_array_length(list);
        out->errors = n ? calloc(n, sizeof *out->errors) : NULL;
        for (size_t i = 0; out->errors && i < n; i++) {
            json_object *e = json_object_array_get_idx(list, i), *v;
            ksv_probe_error *pe = &out->errors[out->n_errors++];
            if (json_object_object_get_ex(e, "time", &v))
                pe->unix_time = json_object_get_double(v);
            if (json_object_object_get_ex(e, "status", &v))
                pe->status = json_object_get_int(v);
            copy_str(pe->request_id, sizeof pe->request_id, e, "request_id");
            copy_str(pe->revision, sizeof pe->revision, e, "revision");
            copy_str(pe->message, sizeof pe->message, e, "message");
        }
    }
    json_object_put(root);
}

/* The last output lines of model's revisions that an external runtime serves. */
static void probe_runtime_logs(ksv_engine_client *client, const char *model, ksv_node_probe *out)
{
    size_t n = 0;
    for (size_t i = 0; i < out->n_revs; i++)
        n += strcmp(out->revs[i].model, model) == 0 && strcmp(out->revs[i].runtime, "external") == 0;
    if (n == 0 || !(out->runtime_logs = calloc(n, sizeof *out->runtime_logs)))
        return;
    for (size_t i = 0; i < out->n_revs; i++) {
        const ksv_probe_rev *r = &out->revs[i];
        if (strcmp(r->model, model) != 0 || strcmp(r->runtime, "external") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "/ksv/v1/models/%s/revisions/%s/logs", r->model, r->revision);
        json_object *root = NULL, *rt, *lines, *v;
        ksv_err err;
        if (ksv_engine_client_call_json(client, "GET", path, NULL, &root, &err) != 0)
            continue;
        ksv_probe_runtime_log *pl = &out->runtime_logs[out->n_runtime_logs++];
        snprintf(pl->revision, sizeof pl->revision, "%s", r->revision);
        if (json_object_object_get_ex(root, "runtime", &rt) &&
            json_object_is_type(rt, json_type_object)) {
            copy_str(pl->state, sizeof pl->state, rt, "state");
            if (json_object_object_get_ex(rt, "restarts", &v))
                pl->restarts = json_object_get_int64(v);
            if (json_object_object_get_ex(rt, "lines", &lines) &&
                json_object_is_type(lines, json_type_array)) {
                size_t total = json_object_array_length(lines);
                size_t from = total > KSV_PROBE_LOG_LINES ? total - KSV_PROBE_LOG_LINES : 0;
                for (size_t k = from; k < total; k++) {
                    const char *line = json_object_get_string(json_object_array_get_idx(lines, k));
                    snprintf(pl->lines[pl->n_lines++], sizeof pl->lines[0], "%s",
                             line ? line : "");
                }
            }
        }
        json_object_put(root);
    }
}

/* A node's last state and histograms as parsed, with the engine's ETags for them: while
 * the engine answers 304 (nothing changed) a probe copies the state and shares the scrape
 * instead of transferring and parsing the answers again, which was most of a console's
 * cost per node. */
typedef struct probe_cache {
    char state_etag[KSV_ENGINE_ETAG_MAX];  /* "" when nothing is cached */
    ksv_probe_rev *revs;
    size_t n_revs;
    ksv_probe_gate *gates;
    size_t n_gates;
    ksv_probe_pull *pulls;
    size_t n_pulls;
    char hist_etag[KSV_ENGINE_ETAG_MAX];   /* "" when nothing is cached */
    ksv_scrape_shared *scrape;             /* a reference; NULL when nothing is cached */
    ksv_engine_node_info info;             /* GET /ksv/v1/node, as of info_ms */
    bool have_info;
    double info_ms;                        /* monotonic */
} probe_cache;

/* How long a probe through a link reuses the node's facts (version, load, GPUs, event log
 * position) instead of asking for them: they matter on the nodes screen at this pace, and
 * a change of the applied state (a gate's step writes one) asks at once. Reachability is
 * still checked on every probe, by the state's conditional GET. */
#define NODE_INFO_EVERY_MS 5000

static void probe_cache_clear_state(probe_cache *pc)
{
    free(pc->revs);
    free(pc->gates);
    free(pc->pulls);
    pc->revs = NULL;
    pc->gates = NULL;
    pc->pulls = NULL;
    pc->n_revs = pc->n_gates = pc->n_pulls = 0;
    pc->state_etag[0] = '\0';
}

static void probe_cache_clear_hist(probe_cache *pc)
{
    ksv_scrape_shared_unref(pc->scrape);
    pc->scrape = NULL;
    pc->hist_etag[0] = '\0';
}

static void *copy_array(const void *src, size_t n, size_t size, bool *ok)
{
    if (n == 0)
        return NULL;
    void *p = malloc(n * size);
    if (p)
        memcpy(p, src, n * size);
    else
        *ok = false;
    return p;
}

/* The cached state as the probe's (the engine said it is still its state). */
static void state_from_cache(const probe_cache *pc, ksv_node_probe *out)
{
    bool ok = true;
    out->revs = copy_array(pc->revs, pc->n_revs, sizeof *pc->revs, &ok);
    out->gates = copy_array(pc->gates, pc->n_gates, sizeof *pc->gates, &ok);
    out->pulls = copy_array(pc->pulls, pc->n_pulls, sizeof *pc->pulls, &ok);
    out->n_revs = out->revs ? pc->n_revs : 0;
    out->n_gates = out->gates ? pc->n_gates : 0;
    out->n_pulls = out->pulls ? pc->n_pulls : 0;
}

/* State: through the cache when there is one (pc), else a whole GET every time. Returns
 * 0 unchanged (304), 1 a new answer, -1 none. */
static int probe_state(ksv_engine_client *client, probe_cache *pc, ksv_node_probe *out)
{
    json_object *root = NULL;
    ksv_err err;
    if (!pc) {
        int rc = ksv_engine_client_get_state(client, &root, &err) == 0 ? 1 : -1;
        if (rc == 1)
            probe_state_of(root, out);
        json_object_put(root);
        return rc;
    }
    if (ksv_engine_client_get_state_if_changed(client, pc->state_etag, sizeof pc->state_etag,
                                               &root, &err) != 0) {
        probe_cache_clear_state(pc);
        return -1;
    }
    bool ok = true;
    if (!root) { /* unchanged: the cached copy is the engine's state */
        state_from_cache(pc, out);
        return 0;
    }
    probe_state_of(root, out);
    json_object_put(root);
    char etag[KSV_ENGINE_ETAG_MAX];
    snprintf(etag, sizeof etag, "%s", pc->state_etag);
    probe_cache_clear_state(pc);
    pc->revs = copy_array(out->revs, out->n_revs, sizeof *out->revs, &ok);
    pc->gates = copy_array(out->gates, out->n_gates, sizeof *out->gates, &ok);
    pc->pulls = copy_array(out->pulls, out->n_pulls, sizeof *out->pulls, &ok);
    pc->n_revs = out->n_revs;
    pc->n_gates = out->n_gates;
    pc->n_pulls = out->n_pulls;
    if (ok)
        snprintf(pc->state_etag, sizeof pc->state_etag, "%s", etag);
    else
        probe_cache_clear_state(pc);
    return 1;
}

/* Histograms into out->scrape, through the cache when there is one; false with fe set when
 * the node's figures cannot be read. told: the state's ETag the engine told with them ("",
 * none), through the cache only. */
static bool probe_histograms(ksv_engine_client *client, probe_cache *pc, ksv_node_probe *out,
                             char told[KSV_ENGINE_ETAG_MAX], ksv_err *fe)
{
    char *text = NULL;
    size_t len = 0;
    told[0] = '\0';
    int rc = pc ? ksv_engine_client_get_histograms_if_changed(
                      client, pc->hist_etag, sizeof pc->hist_etag, &text, &len, told,
                      KSV_ENGINE_ETAG_MAX, fe)
                : ksv_engine_client_get_histograms_text(client, &text, &len, fe);
    if (rc == 0 && pc && !text) { /* unchanged: the cached scrape, shared */
        out->scrape = ksv_scrape_shared_ref(pc->scrape);
        if (!out->scrape)
            rc = ksv_err_set(fe, 502, "the engine said unchanged, but nothing is cached");
    } else if (rc == 0) {
        ksv_scrape parsed;
        rc = ksv_scrape_parse_histograms_json(text, len, &parsed, fe);
        if (rc == 0 && !(out->scrape = ksv_scrape_share(&parsed)))
            rc = ksv_err_set(fe, 500, "out of memory");
    }
    free(text);
    if (pc && rc != 0) {
        probe_cache_clear_hist(pc);
    } else if (pc && len > 0) { /* a new answer: keep it for the next 304 */
        char etag[KSV_ENGINE_ETAG_MAX];
        snprintf(etag, sizeof etag, "%s", pc->hist_etag);
        probe_cache_clear_hist(pc);
        pc->scrape = ksv_scrape_shared_ref(out->scrape);
        snprintf(pc->hist_etag, sizeof pc->hist_etag, "%s", etag);
    }
    return rc == 0;
}

struct ksv_probe_link {
    ctl_kept *kept;
    ksv_node node;                /* the node as stored, read on first use */
    bool have_node;
    probe_cache cache;
};

ksv_probe_link *ksv_probe_link_new(const char *node)
{
    ksv_probe_link *l = calloc(1, sizeof *l);
    if (l && !(l->kept = ctl_kept_new(node))) {
        free(l);
        return NULL;
    }
    return l;
}

void ksv_probe_link_free(ksv_probe_link *l)
{
    if (!l)
        return;
    ctl_kept_free(l->kept);
    probe_cache_clear_state(&l->cache);
    probe_cache_clear_hist(&l->cache);
    if (l->have_node)
        ksv_node_clear(&l->node);
    free(l);
}

void ksv_probe_link_reread(ksv_probe_link *l)
{
    if (l && l->have_node) {
        ksv_node_clear(&l->node);
        l->have_node = false;
    }
}

/* Reads the node's info, histograms, applied state and (errors_model) recent errors; pc:
 * the link's cache, or NULL for whole answers. */
static int probe_over(ksv_engine_client *client, const char *errors_model, probe_cache *pc,
                      ksv_node_probe *out, ksv_err *e)
{
    ksv_engine_node_info info;
    double now = ksv_mono_ms();
    int state = -1; /* probe_state's answer, -1 until asked */
    bool reuse = pc && pc->have_info && now - pc->info_ms < NODE_INFO_EVERY_MS;
    bool hist_done = false;
    ksv_err fe;
    ksv_err_clear(&fe);
    char told[KSV_ENGINE_ETAG_MAX];
    if (reuse && pc->state_etag[0]) {
        /* The histograms first: they say the node answers, and the state's ETag they
         * carry says whether the cached state is still the engine's, so a node where
         * nothing but traffic changed costs one round trip, not two. An engine that does
         * not tell it (older), or a new state, is asked for its state as before; no
         * answer goes to the node's facts, whose failure is the node's error. */
        hist_done = probe_histograms(client, pc, out, told, &fe);
        if (hist_done && told[0] && strcmp(told, pc->state_etag) == 0) {
            state_from_cache(pc, out);
            state = 0;
        } else if (hist_done) {
            state = probe_state(client, pc, out);
        }
        reuse = state == 0;
    } else if (reuse) {
        /* The state's conditional GET says the node answers; a new state (or no answer)
         * asks for the node's facts too, and no answer there is the node's error. */
        state = probe_state(client, pc, out);
        reuse = state == 0;
    }
    if (reuse) {
        info = pc->info;
        info.uptime_s += (now - pc->info_ms) / 1000.0;
    } else {
        if (ksv_engine_client_get_node(client, &info, e) != 0)
            return -1;
        if (pc) {
            pc->info = info;
            pc->have_info = true;
            pc->info_ms = now;
        }
    }
    out->reachable = true;
    snprintf(out->engine_version, sizeof out->engine_version, "%s", info.version);
    snprintf(out->events_log_id, sizeof out->events_log_id, "%s", info.events_log_id);
    out->events_last_seq = info.events_last_seq;
    out->uptime_s = info.uptime_s;
    out->threads = info.threads;
    out->inflight = info.inflight;
    out->loadavg1 = info.loadavg[0];
    out->cpus = info.cpus;
    for (size_t g = 0; g < info.n_gpus && g < KSV_PROBE_MAX_GPUS; g++) {
        ksv_probe_gpu *pg = &out->gpus[out->n_gpus++];
        snprintf(pg->name, sizeof pg->name, "%s", info.gpus[g].name);
        pg->utilization = info.gpus[g].utilization_ratio;
        pg->mem_used = info.gpus[g].memory_used_bytes;
        pg->mem_total = info.gpus[g].memory_total_bytes;
    }
    if (hist_done || probe_histograms(client, pc, out, told, &fe))
        out->has_scrape = true;
    else /* the node answers, but its figures cannot be shown: say why, on screen */
        snprintf(out->figures_error, sizeof out->figures_error, "%.250s", fe.msg);
    if (state < 0)
        probe_state(client, pc, out);
    if (errors_model) {
        probe_errors(client, errors_model, out);
        probe_runtime_logs(client, errors_model, out);
    }
    return 0;
}

/* A console's dial: never starts a local engine (probe_connect). */
static int observe_dial(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out, ksv_err *err)
{
    if (node->kind == KSV_NODE_SSH)
        return ctl_node_connect_fresh(ctl, node, out, err);
    return probe_connect(ctl, node, out, err);
}

int ksv_ctl_node_probe_link(ksv_ctl *ctl, ksv_probe_link *link, const char *name,
                            const char *errors_model, ksv_node_probe *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    out->events_last_seq = -1;
    if (!link->have_node) {
        if (ksv_store_node_get(ctl->store, name, &link->node, err) != 0)
            return -1;
        link->have_node = true;
    }
    ctl_node_conn conn;
    ksv_err e;
    ksv_err_clear(&e);
    if (ctl_kept_entry_connect(ctl, link->kept, &link->node, observe_dial, &conn, &e) == 0 &&
        probe_over(conn.client, errors_model, &link->cache, out, &e) != 0)
        /* No answer over the kept connection: drop it; the next probe dials again, which
         * re-reads a local engine's address and token (it may have restarted). */
        ctl_kept_entry_failed(ctl, link->kept, link->node.kind, e.msg);
    if (!out->reachable) {
        link->cache.have_info = false; /* the node that answers next: its facts afresh */
        snprintf(out->error, sizeof out->error, "%s", ctl_skip_node_prefix(e.msg, name));
    }
    out->at_ms = ksv_wall_ms();
    return 0;
}

int ksv_ctl_import_events_link(ksv_ctl *ctl, ksv_probe_link *link, const char *name,
                               size_t *imported, ksv_err *err)
{
    if (imported)
        *imported = 0;
    /* As `ksv history` does: the nodes of gated models (others have no gate to report). */
    if (!ctl_node_has_gate(ctl, name))
        return 0;
    if (!link->have_node) {
        if (ksv_store_node_get(ctl->store, name, &link->node, err) != 0)
            return -1;
        link->have_node = true;
    }
    ctl_node_conn conn;
    if (ctl_kept_entry_connect(ctl, link->kept, &link->node, observe_dial, &conn, err) != 0)
        return -1;
    int rc = ctl_gate_import_over(ctl, name, conn.client, imported, err);
    ctl_node_disconnect(&conn);
    return rc;
}

int ksv_ctl_node_probe(ksv_ctl *ctl, const char *name, const char *errors_model,
                       ksv_node_probe *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    out->events_last_seq = -1;
    ksv_node node;
    if (ksv_store_node_get(ctl->store, name, &node, err) != 0)
        return -1;
    ctl_node_conn conn;
    ksv_err e;
    ksv_err_clear(&e);
    int rc = probe_connect(ctl, &node, &conn, &e);
    ksv_node_clear(&node);
    if (rc == 0) {
        rc = probe_over(conn.client, errors_model, NULL, out, &e);
        bool kept = conn.borrowed;
        ctl_node_disconnect(&conn);
        /* The engine did not answer through a kept link: dial afresh after the backoff,
         * which re-reads its token and finds (or restarts) it, as a new connection does. */
        if (rc != 0 && kept)
            ctl_kept_failed(ctl, name, e.msg);
    }
    if (!out->reachable)
        snprintf(out->error, sizeof out->error, "%s", e.msg);
    out->at_ms = ksv_wall_ms();
    return 0;
}

void ksv_node_probe_free(ksv_node_probe *p)
{
    free(p->revs);
    free(p->gates);
    free(p->errors);
    free(p->runtime_logs);
    free(p->pulls);
    ksv_scrape_shared_unref(p->scrape);
    memset(p, 0, sizeof *p);
}

/* ---- editing ---------------------------------------------------------------------------- */

int ksv_console_spec_yaml(const char *spec_json, const char *storage_uri, ksv_sb *out,
                          ksv_err *err)
{
    json_object *doc = json_tokener_parse(spec_json), *spec, *pred, *model;
    if (!doc || !json_object_is_type(doc, json_type_object)) {
        json_object_put(doc);
        return ksv_err_set(err, 500, "stored spec is not a JSON object");
    }
    if (storage_uri && json_object_object_get_ex(doc, "spec", &spec) &&
        json_object_object_get_ex(spec, "predictor", &pred)) {
        /* The stored document may name the model relative to the file it came from. */
        if (json_object_object_get_ex(pred, "model", &model) ||
            json_object_object_get_ex(pred, "xgboost", &model))
            json_object_object_add(model, "storageUri", json_object_new_string(storage_uri));
    }
    const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    ksv_manifest_list list;
    int rc = ksv_manifest_parse_buffer(text, strlen(text), "spec.json", NULL, &list, err);
    json_object_put(doc);
    if (rc != 0)
        return -1;
    rc = list.n == 1 ? ksv_manifest_to_yaml(&list.items[0], out) : -1;
    ksv_manifest_list_free(&list);
    if (rc != 0)
        return ksv_err_set(err, 500, "cannot render the spec as YAML");
    return 0;
}

int ksv_console_parse_edit(const char *text, size_t len, const char *ns, const char *name,
                           ksv_manifest_list *out, ksv_err *err)
{
    if (ksv_manifest_parse_buffer(text, len, "edited.yaml", NULL, out, err) != 0)
        return -1;
    if (out->n != 1) {
        ksv_manifest_list_free(out);
        return ksv_err_set(err, 400, "expected exactly one InferenceService, found %zu",
                           out->n);
    }
    const ksv_isvc *s = &out->items[0];
    if (strcmp(s->namespace_name, ns) != 0 || strcmp(s->name, name) != 0) {
        ksv_err_set(err, 400, "metadata.name and metadata.namespace cannot change (%s/%s, "
                              "expected %s/%s)", s->namespace_name, s->name, ns, name);
        ksv_manifest_list_free(out);
        return -1;
    }
    return 0;
}

/* ---- local engines -------------------------------------------------------------------- */

static int local_state_dir(ksv_ctl *ctl, const char *name, char *dir, size_t cap,
                           ksv_err *err)
{
    ksv_node node;
    if (ksv_store_node_get(ctl->store, name, &node, err) != 0)
        return -1;
    bool local = node.kind == KSV_NODE_LOCAL;
    if (local)
        ctl_local_state_dir(&node, dir, cap);
    ksv_node_clear(&node);
    if (!local)
        return ksv_err_set(err, 400, "node %s is not a local node", name);
    return 0;
}

int ksv_ctl_local_node_url(ksv_ctl *ctl, const char *name, char *url, size_t cap,
                           ksv_err *err)
{
    char dir[PATH_MAX];
    if (local_state_dir(ctl, name, dir, sizeof dir, err) != 0)
        return -1;
    ksv_local_engine le;
    if (ksv_local_engine_attach(dir, ctl->node_timeout_ms, &le, err) != 0)
        return -1;
    snprintf(url, cap, "%s", le.base_url);
    return 0;
}

int ksv_ctl_local_node_stop(ksv_ctl *ctl, const char *name, long timeout_ms, ksv_err *err)
{
    char dir[PATH_MAX];
    if (local_state_dir(ctl, name, dir, sizeof dir, err) != 0)
        return -1;
    return ksv_local_engine_stop(dir, timeout_ms, err);
}

int ksv_ctl_global_init(ksv_err *err)
{
    return ksv_http_global_init(err);
}

int ksv_ctl_store_window_samples(ksv_ctl *ctl, const ksv_mwin *w, const char *node,
                                 ksv_err *err)
{
    return ksv_ctl_store_window_samples_of(ctl, w, &node, 1, err);
}

int ksv_ctl_store_window_samples_of(ksv_ctl *ctl, const ksv_mwin *w, const char *const *nodes,
                                    size_t n_nodes, ksv_err *err)
{
    ksv_metric_sample *samples = NULL;
    size_t n = 0;
    int rc = 0;
    for (size_t k = 0; k < n_nodes && rc == 0; k++) {
        ksv_metric_sample *one = NULL;
        size_t m = 0;
        rc = ksv_mwin_store_samples(w, nodes[k], &one, &m, err);
        if (rc == 0 && m > 0) {
            ksv_metric_sample *grown = realloc(samples, (n + m) * sizeof *grown);
            if (!grown) {
                ksv_mwin_store_samples_free(one, m);
                rc = ksv_err_set(err, 500, "out of memory");
                break;
            }
            samples = grown;
            memcpy(samples + n, one, m * sizeof *one);
            n += m;
            free(one); /* its strings moved into samples */
        }
    }
    /* One transaction for every node: a refresh is one commit, not one per node. */
    if (rc == 0 && n > 0)
        rc = ksv_store_metrics_insert(ctl->store, samples, n, err);
    ksv_mwin_store_samples_free(samples, n);
    int64_t now = ksv_wall_ms();
    if (rc == 0 && now - ctl->last_compact_ms >= 60000) {
        ksv_metrics_compact_stats stats;
        ctl->last_compact_ms = now;
        rc = ksv_store_metrics_compact(ctl->store, now, &stats, err);
    }
    return rc;
}

int ksv_ctl_recent_qps(ksv_ctl *ctl, const char *model, int64_t now_ms, int64_t step_ms,
                       size_t n, double *out, ksv_err *err)
{
    for (size_t i = 0; i < n; i++)
        out[i] = NAN;
    if (n == 0 || step_ms <= 0)
        return 0;
    int64_t from = now_ms - (int64_t)n * step_ms;
    ksv_metric_list list;
    if (ksv_store_metrics_query(ctl->store, KSV_METRICS_RAW, NULL, model, NULL, from, now_ms,
                                &list, err) != 0)
        return -1;
    /* Each sample's requests spread over its span, (at - span, at]; a step's rate is what
     * fell in it over the step's length, every series summed (dividing by the summed spans
     * gave a model on two revisions half its rate). Idle scrapes are not stored, so a step
     * no sample overlaps stays NaN: the caller reads it as idle or unknown. */
    double *requests = calloc(n, sizeof *requests), *covered = calloc(n, sizeof *covered);
    for (size_t i = 0; requests && covered && i < list.n; i++) {
        const ksv_metric_sample *m = &list.items[i];
        int64_t span = m->span_ms > 0 ? m->span_ms : 1, start = m->at_ms - span;
        double total = (double)(m->requests_2xx + m->requests_4xx + m->requests_5xx +
                                m->requests_other);
        int64_t first = (start - from) / step_ms, last = (m->at_ms - 1 - from) / step_ms;
        if (start < from)
            first = 0;
        for (int64_t k = first; k <= last && k < (int64_t)n; k++) {
            if (k < 0)
                continue;
            int64_t lo = from + k * step_ms, hi = lo + step_ms;
            int64_t a = start > lo ? start : lo, b = m->at_ms < hi ? m->at_ms : hi;
            if (b <= a)
                continue;
            requests[k] += total * (double)(b - a) / (double)span;
            covered[k] += (double)(b - a);
        }
    }
    for (size_t i = 0; requests && covered && i < n; i++)
        if (covered[i] > 0)
            out[i] = requests[i] / ((double)step_ms / 1000.0);
    free(requests);
    free(covered);
    ksv_metric_list_free(&list);
    return 0;
}
