/* engine_json.c: the typed side of the admin API: PUT bodies built from structs, and the
 * engine's model-state and node answers read into structs (declared in engine_client.h).
 * Replies are checked field by field, so a malformed answer is a 502, never a crash. */
#include "remote/engine_client.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sanitize.h"

/* --- PUT bodies ------------------------------------------------------------------------ */

void ksv_engine_model_put_init(ksv_engine_model_put *m)
{
    memset(m, 0, sizeof *m);
    m->rollback_window_s = -1;
}

static int check_revision(const ksv_engine_revision_put *rev, size_t i, ksv_err *err)
{
    if (!rev->name || !*rev->name)
        return ksv_err_set(err, 400, "revision %zu: a name is required", i);
    if (!rev->storage_uri || !*rev->storage_uri)
        return ksv_err_set(err, 400, "revision %s: a storage URI is required", rev->name);
    if (rev->traffic < 0 || rev->traffic > 100)
        return ksv_err_set(err, 400, "revision %s: traffic %d is not a percent", rev->name,
                           rev->traffic);
    return 0;
}

int ksv_engine_model_put_add(ksv_engine_model_put *m, const ksv_engine_revision_put *rev,
                             ksv_err *err)
{
    if (m->n_revisions >= KSV_ENGINE_MAX_REVISIONS)
        return ksv_err_set(err, 400, "a model takes at most %d revisions",
                           KSV_ENGINE_MAX_REVISIONS);
    if (check_revision(rev, m->n_revisions, err) != 0)
        return -1;
    m->revisions[m->n_revisions++] = *rev;
    return 0;
}

static json_object *revision_json(const ksv_engine_revision_put *rev)
{
    json_object *o = json_object_new_object(), *settings = json_object_new_object();
    if (!o || !settings) {
        json_object_put(o);
        json_object_put(settings);
        return NULL;
    }
    json_object_object_add(o, "name", json_object_new_string(rev->name));
    if (rev->runtime && *rev->runtime)
        json_object_object_add(o, "runtime", json_object_new_string(rev->runtime));
    json_object_object_add(o, "storage_uri", json_object_new_string(rev->storage_uri));
    if (rev->booster_pool && *rev->booster_pool)
        json_object_object_add(settings, "booster_pool",
                               json_object_new_string(rev->booster_pool));
    if (rev->predict_threads)
        json_object_object_add(settings, "predict_threads",
                               json_object_new_int(rev->predict_threads));
    if (rev->container_concurrency)
        json_object_object_add(settings, "container_concurrency",
                               json_object_new_int(rev->container_concurrency));
    if (rev->timeout_ms)
        json_object_object_add(settings, "timeout_ms", json_object_new_int(rev->timeout_ms));
    if (json_object_object_length(settings) > 0)
        json_object_object_add(o, "settings", settings);
    else
        json_object_put(settings);
    return o;
}

int ksv_engine_model_put_to_json(const ksv_engine_model_put *m, char **out, ksv_err *err)
{
    *out = NULL;
    if (m->n_revisions == 0 || m->n_revisions > KSV_ENGINE_MAX_REVISIONS)
        return ksv_err_set(err, 400, "a model takes 1 to %d revisions, not %zu",
                           KSV_ENGINE_MAX_REVISIONS, m->n_revisions);
    for (size_t i = 0; i < m->n_revisions; i++)
        if (check_revision(&m->revisions[i], i, err) != 0)
            return -1;
    json_object *body = json_object_new_object(), *revs = json_object_new_array(),
                *traffic = json_object_new_object();
    bool ok = body && revs && traffic;
    if (ok) {
        json_object_object_add(body, "revisions", revs);
        json_object_object_add(body, "traffic", traffic);
        for (size_t i = 0; i < m->n_revisions && ok; i++) {
            json_object *r = revision_json(&m->revisions[i]);
            ok = r != NULL && json_object_array_add(revs, r) == 0;
            json_object_object_add(traffic, m->revisions[i].name,
                                   json_object_new_int(m->revisions[i].traffic));
        }
        if (m->rollback_window_s >= 0)
            json_object_object_add(body, "rollback_window_s",
                                   json_object_new_int(m->rollback_window_s));
    } else {
        json_object_put(revs);
        json_object_put(traffic);
    }
    const char *text = ok ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
    *out = text ? strdup(text) : NULL;
    json_object_put(body);
    if (!*out)
        return ksv_err_set(err, 500, "out of memory");
    return 0;
}

/* --- reading answers --------------------------------------------------------------------- */

/* Field readers: `required` fields that are missing or mistyped fail with 502; optional
 * ones leave the default in place. */
/* Member key of o into *v: 1 when it is there (and not null), 0 when an optional one is
 * not, -1 (502) when a required one is not. */
static int field(json_object *o, const char *key, bool required, const char *what,
                 json_object **v, ksv_err *err)
{
    if (json_object_object_get_ex(o, key, v) && !json_object_is_type(*v, json_type_null))
        return 1;
    if (required)
        return ksv_err_set(err, 502, "bad reply from engine: %s without \"%s\"", what, key);
    return 0;
}

static int get_string(json_object *o, const char *key, bool required, char *dst, size_t cap,
                      const char *what, ksv_err *err)
{
    json_object *v;
    int present = field(o, key, required, what, &v, err);
    if (present <= 0)
        return present;
    if (!json_object_is_type(v, json_type_string))
        return ksv_err_set(err, 502, "bad reply from engine: %s.%s: expected a string", what,
                           key);
    ksv_sanitize_copy(dst, cap, json_object_get_string(v));   /* a node's text, never raw */
    return 0;
}

static int get_number(json_object *o, const char *key, bool required, double *dst,
                      const char *what, ksv_err *err)
{
    json_object *v;
    int present = field(o, key, required, what, &v, err);
    if (present <= 0)
        return present;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return ksv_err_set(err, 502, "bad reply from engine: %s.%s: expected a number", what,
                           key);
    double d = json_object_get_double(v);
    if (!isfinite(d))
        return ksv_err_set(err, 502, "bad reply from engine: %s.%s: not a finite number",
                           what, key);
    *dst = d;
    return 0;
}

/* An integer field within [lo, hi]. */
static int get_int(json_object *o, const char *key, bool required, long long lo, long long hi,
                   long long *dst, const char *what, ksv_err *err)
{
    json_object *v;
    int present = field(o, key, required, what, &v, err);
    if (present <= 0)
        return present;
    if (!json_object_is_type(v, json_type_int))
        return ksv_err_set(err, 502, "bad reply from engine: %s.%s: expected an integer",
                           what, key);
    long long x = (long long)json_object_get_int64(v);
    if (x < lo || x > hi)
        return ksv_err_set(err, 502, "bad reply from engine: %s.%s: %lld is out of range",
                           what, key, x);
    *dst = x;
    return 0;
}

static int get_bool(json_object *o, const char *key, bool *dst, const char *what, ksv_err *err)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
        return ksv_err_set(err, 502, "bad reply from engine: %s.%s: expected true or false",
                           what, key);
    *dst = json_object_get_boolean(v);
    return 0;
}

static int parse_revision(json_object *r, ksv_engine_revision_status *out, ksv_err *err)
{
    const char *what = "revision state";
    memset(out, 0, sizeof *out);
    out->num_features = -1;
    out->num_outputs = -1;
    if (!json_object_is_type(r, json_type_object))
        return ksv_err_set(err, 502, "bad reply from engine: a revision is not an object");
    long long traffic = 0, desired = 0, inflight = 0, nf = -1, no = -1;
    out->memory_bytes = out->cold_starts = out->replicas = -1;
    out->cold_start_p99_s = -1;
    if (get_string(r, "name", true, out->name, sizeof out->name, what, err) ||
        get_string(r, "state", true, out->state, sizeof out->state, what, err) ||
        get_string(r, "error", false, out->error, sizeof out->error, what, err) ||
        get_int(r, "traffic", true, 0, 100, &traffic, what, err) ||
        get_int(r, "desired_traffic", true, 0, 100, &desired, what, err) ||
        get_int(r, "inflight", false, 0, INT64_MAX, &inflight, what, err) ||
        get_number(r, "load_seconds", false, &out->load_seconds, what, err) ||
        get_int(r, "num_features", false, 0, INT32_MAX, &nf, what, err) ||
        get_int(r, "num_outputs", false, 0, INT32_MAX, &no, what, err) ||
        get_int(r, "memory_bytes", false, 0, INT64_MAX, &out->memory_bytes, what, err) ||
        get_int(r, "cold_starts", false, 0, INT64_MAX, &out->cold_starts, what, err) ||
        get_int(r, "replicas", false, 0, INT32_MAX, &out->replicas, what, err) ||
        get_number(r, "cold_start_p99_seconds", false, &out->cold_start_p99_s, what, err) ||
        get_string(r, "runtime", false, out->serving_runtime, sizeof out->serving_runtime, what,
                   err))
        return -1;
    out->download_bytes = out->download_total = -1;
    json_object *dl;
    if (json_object_object_get_ex(r, "download", &dl)) {
        const char *dwhat = "revision download";
        if (!json_object_is_type(dl, json_type_object))
            return ksv_err_set(err, 502, "bad reply from engine: revision %s: download is not "
                               "an object", out->name);
        if (get_int(dl, "bytes", true, 0, INT64_MAX, &out->download_bytes, dwhat, err) ||
            get_int(dl, "total", false, -1, INT64_MAX, &out->download_total, dwhat, err) ||
            get_number(dl, "bytes_per_s", false, &out->download_rate, dwhat, err))
            return -1;
    }
    out->traffic = (int)traffic;
    out->desired_traffic = (int)desired;
    out->inflight = inflight;
    out->num_features = (long)nf;
    out->num_outputs = (long)no;
    json_object *spec;
    if (json_object_object_get_ex(r, "spec", &spec)) {
        if (!json_object_is_type(spec, json_type_object))
            return ksv_err_set(err, 502, "bad reply from engine: revision %s: spec is not an "
                               "object", out->name);
        if (get_string(spec, "runtime", false, out->runtime, sizeof out->runtime, "spec", err) ||
            get_string(spec, "storage_uri", false, out->storage_uri, sizeof out->storage_uri,
                       "spec", err))
            return -1;
    }
    return 0;
}

void ksv_engine_model_status_free(ksv_engine_model_status *s)
{
    if (!s)
        return;
    free(s->revisions);
    s->revisions = NULL;
    s->n_revisions = 0;
}

int ksv_engine_model_status_parse(json_object *model, ksv_engine_model_status *out,
                                  ksv_err *err)
{
    const char *what = "model state";
    memset(out, 0, sizeof *out);
    if (!json_object_is_type(model, json_type_object))
        return ksv_err_set(err, 502, "bad reply from engine: model state is not an object");
    long long window = 0;
    json_object *revs;
    if (get_string(model, "name", true, out->name, sizeof out->name, what, err) ||
        get_bool(model, "pinned", &out->pinned, what, err) ||
        get_bool(model, "ready", &out->ready, what, err) ||
        get_bool(model, "traffic_applied", &out->traffic_applied, what, err) ||
        get_int(model, "rollback_window_s", false, 0, INT32_MAX, &window, what, err))
        return -1;
    out->rollback_window_s = (int)window;
    json_object *rollout, *phase;
    if (json_object_object_get_ex(model, "rollout", &rollout) &&
        json_object_object_get_ex(rollout, "phase", &phase) &&
        json_object_is_type(phase, json_type_string)) {
        const char *p = json_object_get_string(phase);
        out->gated = strcmp(p, "Succeeded") != 0 && strcmp(p, "Failed") != 0;
    }
    if (!json_object_object_get_ex(model, "revisions", &revs) ||
        !json_object_is_type(revs, json_type_array))
        return ksv_err_set(err, 502, "bad reply from engine: model %s: no \"revisions\" array",
                           out->name);
    size_t n = json_object_array_length(revs);
    if (n == 0)
        return 0;
    out->revisions = calloc(n, sizeof *out->revisions);
    if (!out->revisions)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (parse_revision(json_object_array_get_idx(revs, i), &out->revisions[i], err) != 0) {
            ksv_engine_model_status_free(out);
            return -1;
        }
        out->n_revisions = i + 1;
    }
    return 0;
}

static int parse_gpu(json_object *g, size_t i, ksv_engine_gpu_info *out, ksv_err *err)
{
    const char *what = "node.gpus[]";
    long long index = (long long)i, used = -1, total = -1;
    out->utilization_ratio = -1;
    if (!json_object_is_type(g, json_type_object))
        return ksv_err_set(err, 502, "bad reply from engine: node.gpus[%zu] is not an object",
                           i);
    if (get_int(g, "index", false, 0, INT32_MAX, &index, what, err) ||
        get_string(g, "name", false, out->name, sizeof out->name, what, err) ||
        get_number(g, "utilization_ratio", false, &out->utilization_ratio, what, err) ||
        get_int(g, "memory_used_bytes", false, 0, INT64_MAX, &used, what, err) ||
        get_int(g, "memory_total_bytes", false, 0, INT64_MAX, &total, what, err))
        return -1;
    out->index = (int)index;
    out->memory_used_bytes = used;
    out->memory_total_bytes = total;
    return 0;
}

int ksv_engine_node_info_parse(json_object *node, ksv_engine_node_info *out, ksv_err *err)
{
    const char *what = "node";
    memset(out, 0, sizeof *out);
    if (!json_object_is_type(node, json_type_object))
        return ksv_err_set(err, 502, "bad reply from engine: node info is not an object");
    long long threads = 0, max_body = 0, inflight = 0, cpus = 0;
    if (get_string(node, "name", false, out->name, sizeof out->name, what, err) ||
        get_string(node, "version", true, out->version, sizeof out->version, what, err) ||
        get_string(node, "xgboost", false, out->xgboost, sizeof out->xgboost, what, err) ||
        get_string(node, "cuda", false, out->cuda, sizeof out->cuda, what, err) ||
        get_string(node, "runtimes", false, out->runtimes, sizeof out->runtimes, what, err) ||
        get_string(node, "listen", false, out->listen, sizeof out->listen, what, err) ||
        get_int(node, "threads", true, 0, INT32_MAX, &threads, what, err) ||
        get_int(node, "max_body", false, 0, INT64_MAX, &max_body, what, err) ||
        get_number(node, "uptime_s", true, &out->uptime_s, what, err))
        return -1;
    out->threads = (int)threads;
    out->max_body = max_body;
    json_object *load, *gpus;
    if (json_object_object_get_ex(node, "load", &load)) {
        json_object *avg;
        if (!json_object_is_type(load, json_type_object))
            return ksv_err_set(err, 502, "bad reply from engine: node.load is not an object");
        if (get_int(load, "inflight", false, 0, INT64_MAX, &inflight, "node.load", err) ||
            get_int(load, "cpus", false, 0, INT32_MAX, &cpus, "node.load", err))
            return -1;
        if (json_object_object_get_ex(load, "loadavg", &avg)) {
            if (!json_object_is_type(avg, json_type_array) ||
                json_object_array_length(avg) != 3)
                return ksv_err_set(err, 502, "bad reply from engine: node.load.loadavg: "
                                   "expected 3 numbers");
            for (size_t i = 0; i < 3; i++) {
                json_object *v = json_object_array_get_idx(avg, i);
                if (!json_object_is_type(v, json_type_int) &&
                    !json_object_is_type(v, json_type_double))
                    return ksv_err_set(err, 502, "bad reply from engine: node.load.loadavg: "
                                       "expected 3 numbers");
                out->loadavg[i] = json_object_get_double(v);
            }
        }
    }
    out->inflight = inflight;
    out->cpus = (int)cpus;
    out->events_last_seq = -1;
    json_object *events;
    if (json_object_object_get_ex(node, "events", &events)) {
        long long last = -1;
        if (!json_object_is_type(events, json_type_object))
            return ksv_err_set(err, 502, "bad reply from engine: node.events is not an object");
        if (get_string(events, "log_id", true, out->events_log_id, sizeof out->events_log_id,
                       "node.events", err) ||
            get_int(events, "last_seq", true, 0, INT64_MAX, &last, "node.events", err))
            return -1;
        out->events_last_seq = last;
    }
    if (json_object_object_get_ex(node, "gpus", &gpus) &&
        !json_object_is_type(gpus, json_type_null)) {
        if (!json_object_is_type(gpus, json_type_array))
            return ksv_err_set(err, 502, "bad reply from engine: node.gpus is not an array");
        size_t n = json_object_array_length(gpus);
        for (size_t i = 0; i < n && i < KSV_ENGINE_MAX_GPUS; i++) {
            if (parse_gpu(json_object_array_get_idx(gpus, i), i, &out->gpus[i], err) != 0)
                return -1;
            out->n_gpus = i + 1;
        }
    }
    return 0;
}
