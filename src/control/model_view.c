/* model_view.c: a model's desired state read from the store in one piece, and the engine
 * PUT body built from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "control/control_internal.h"

/* Revisions the engine keeps besides those with traffic, so a rollback is instant. Only
 * revisions that were once rolled out (stable) qualify: a candidate that never was (a
 * canary or a wave that failed and was rolled back) is not something to roll back to, and
 * sending it would load a failed revision on nodes that never had it, e.g. the later
 * waves' nodes when the rollback after a failed first wave reaches every node. */
#define KEEP_RECENT 4
#define ENGINE_MAX_REVISIONS 16

int ksv_ctl_model_view(ksv_ctl *ctl, const char *model, const char *ns, ksv_model_view *out,
                       ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (ksv_store_model_resolve(ctl->store, model, ns, &out->model, err) != 0)
        return -1;
    if (ksv_store_revision_list(ctl->store, out->model.id, &out->revisions, err) != 0 ||
        ksv_store_traffic_get(ctl->store, out->model.id, &out->traffic, err) != 0) {
        ksv_model_view_free(out);
        return -1;
    }
    out->stable_id = out->model.stable_revision_id;
    if (out->revisions.n > 0) {
        const ksv_revision_record *newest = &out->revisions.items[out->revisions.n - 1];
        if (newest->id != out->stable_id)
            out->canary_id = newest->id;
    }
    return 0;
}

void ksv_model_view_free(ksv_model_view *v)
{
    ksv_model_record_clear(&v->model);
    ksv_revision_record_list_free(&v->revisions);
    ksv_traffic_free(&v->traffic);
    memset(v, 0, sizeof *v);
}

int ksv_model_view_percent(const ksv_model_view *v, int64_t revision_id)
{
    for (size_t i = 0; i < v->traffic.n; i++)
        if (v->traffic.items[i].revision_id == revision_id)
            return v->traffic.items[i].percent;
    return 0;
}

bool ctl_model_view_in_split(const ksv_model_view *v, int64_t revision_id)
{
    for (size_t i = 0; i < v->traffic.n; i++)
        if (v->traffic.items[i].revision_id == revision_id)
            return true;
    return false;
}

void ctl_traffic_text(const ksv_model_view *v, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->traffic.n && len < cap; i++) {
        if (v->traffic.items[i].percent == 0)
            continue;
        int n = snprintf(out + len, cap - len, "%s%s=%d", len ? "," : "",
                         v->traffic.items[i].revision_name, v->traffic.items[i].percent);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (!out[0])
        snprintf(out, cap, "none");
}

/* Reads predictor settings the engine acts on from a revision's canonical spec, and the
 * model file digest pinned by ksv.io/sha256 ("" when none). */
typedef struct scale_settings {
    int64_t max_replicas, scale_target; /* 0: none given */
    char metric[16];                    /* "concurrency", "rps" or "" */
    uint64_t gpu_memory;                /* resources.limits ksv.io/gpu-memory; 0: none */
} scale_settings;

static void revision_settings(const ksv_revision_record *rev, int64_t *concurrency,
                              int64_t *timeout_s, int64_t *min_replicas,
                              uint64_t *memory_limit, char sha256[65], scale_settings *scale)
{
    memset(scale, 0, sizeof *scale);
    *concurrency = 0;
    *timeout_s = 0;
    *min_replicas = 1;
    *memory_limit = 0;
    sha256[0] = '\0';
    json_object *root = json_tokener_parse(rev->spec_json), *pred, *v;
    if (root && json_object_object_get_ex(root, "sha256", &v) &&
        json_object_is_type(v, json_type_string) && strlen(json_object_get_string(v)) == 64)
        memcpy(sha256, json_object_get_string(v), 65);
    if (root && json_object_object_get_ex(root, "predictor", &pred)) {
        if (json_object_object_get_ex(pred, "containerConcurrency", &v))
            *concurrency = json_object_get_int64(v);
        if (json_object_object_get_ex(pred, "timeout", &v))
            *timeout_s = json_object_get_int64(v);
        if (json_object_object_get_ex(pred, "minReplicas", &v))
            *min_replicas = json_object_get_int64(v);
        if (json_object_object_get_ex(pred, "maxReplicas", &v))
            scale->max_replicas = json_object_get_int64(v);
        if (json_object_object_get_ex(pred, "scaleTarget", &v))
            scale->scale_target = json_object_get_int64(v);
        if (json_object_object_get_ex(pred, "scaleMetric", &v) &&
            (strcmp(json_object_get_string(v), "concurrency") == 0 ||
             strcmp(json_object_get_string(v), "rps") == 0))
            snprintf(scale->metric, sizeof scale->metric, "%s", json_object_get_string(v));
        json_object *model, *res, *limits;
        if (json_object_object_get_ex(pred, "model", &model) &&
            json_object_object_get_ex(model, "resources", &res) &&
            json_object_object_get_ex(res, "limits", &limits) &&
            json_object_object_get_ex(limits, "memory", &v) &&
            ksv_parse_memory_quantity(json_object_get_string(v), memory_limit) != 0)
            *memory_limit = 0; /* apply validated it; an old row that does not parse: none */
        if (json_object_object_get_ex(pred, "model", &model) &&
            json_object_object_get_ex(model, "resources", &res) &&
            json_object_object_get_ex(res, "limits", &limits) &&
            json_object_object_get_ex(limits, "ksv.io/gpu-memory", &v) &&
            ksv_parse_memory_quantity(json_object_get_string(v), &scale->gpu_memory) != 0)
            scale->gpu_memory = 0;
    }
    json_object_put(root);
}

/* Model-wide settings the engine acts on, from the annotations (apply validated them). */
typedef struct model_settings {
    int64_t rollback_window_s, scale_window_s, scale_retention_s, cold_start_queue;
    int64_t scale_down_delay_s;
    double target_utilization;
} model_settings;

static int64_t duration_annotation(json_object *root, const char *key, int64_t fallback,
                                   int64_t lo, int64_t hi)
{
    json_object *v;
    int64_t seconds;
    if (root && json_object_object_get_ex(root, key, &v) &&
        ksv_parse_duration_s(json_object_get_string(v), &seconds) == 0 && seconds >= lo &&
        seconds <= hi)
        return seconds;
    return fallback;
}

static model_settings read_model_settings(const ksv_model_record *m)
{
    json_object *root = json_tokener_parse(m->annotations_json ? m->annotations_json : "{}");
    model_settings s = {
        .rollback_window_s = duration_annotation(root, "ksv.io/rollback-window",
                                                 KSV_DEFAULT_ROLLBACK_WINDOW_S, 0, 30 * 86400),
        .scale_window_s = duration_annotation(root, KSV_ANNOTATION_SCALE_WINDOW,
                                              KSV_DEFAULT_SCALE_WINDOW_S, 1, 3600),
        .scale_retention_s = duration_annotation(root, KSV_ANNOTATION_SCALE_RETENTION, 0, 0, 3600),
        .cold_start_queue = KSV_DEFAULT_COLD_START_QUEUE,
        .scale_down_delay_s = duration_annotation(root, KSV_ANNOTATION_SCALE_DOWN_DELAY, 0, 0,
                                                  KSV_MAX_SCALE_DOWN_DELAY_S),
        .target_utilization = KSV_DEFAULT_TARGET_UTILIZATION_PERCENT,
    };
    json_object *v;
    if (root && json_object_object_get_ex(root, KSV_ANNOTATION_TARGET_UTILIZATION, &v) &&
        ksv_parse_utilization_percent(json_object_get_string(v), &s.target_utilization) != 0)
        s.target_utilization = KSV_DEFAULT_TARGET_UTILIZATION_PERCENT;
    if (root && json_object_object_get_ex(root, KSV_ANNOTATION_COLD_START_QUEUE, &v)) {
        const char *text = json_object_get_string(v);
        char *end;
        long long n = strtoll(text, &end, 10);
        if (end != text && !*end && n >= 1 && n <= 100000)
            s.cold_start_queue = n;
    }
    json_object_put(root);
    return s;
}

int ctl_engine_body(ksv_ctl *ctl, const ksv_model_view *v, ksv_sb *body, ksv_err *err)
{
    return ctl_engine_body_mapped(ctl, v, NULL, 0, body, err);
}

int ctl_engine_body_mapped(ksv_ctl *ctl, const ksv_model_view *v, const ctl_upload *map,
                           size_t n_map, ksv_sb *body, ksv_err *err)
{
    (void)ctl;
    size_t n = v->revisions.n;
    bool *keep = calloc(n ? n : 1, sizeof *keep);
    if (!keep)
        return ksv_err_set(err, 500, "out of memory");
    size_t kept = 0;
    /* Traffic first, then the stable one, then the newest few (once rolled out, or named
     * by the split), up to the engine's limit. */
    for (size_t pass = 0; pass < 3; pass++) {
        for (size_t i = n; i-- > 0 && kept < ENGINE_MAX_REVISIONS;) {
            const ksv_revision_record *r = &v->revisions.items[i];
            bool want = pass == 0   ? ksv_model_view_percent(v, r->id) > 0
                        : pass == 1 ? r->id == v->stable_id
                                    : i + KEEP_RECENT >= n &&
                                          (r->rolled_out_at_ms > 0 ||
                                           ctl_model_view_in_split(v, r->id));
            if (want && !keep[i]) {
                keep[i] = true;
                kept++;
            }
        }
    }
    if (kept == 0) {
        free(keep);
        return ksv_err_set(err, 409, "model %s has no revision to serve", v->model.name);
    }
    ksv_sb_puts(body, "{\"revisions\":[");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        const ksv_revision_record *r = &v->revisions.items[i];
        int64_t concurrency, timeout_s, min_replicas;
        uint64_t memory_limit;
        char sha256[65];
        scale_settings scale;
        revision_settings(r, &concurrency, &timeout_s, &min_replicas, &memory_limit, sha256,
                          &scale);
        ksv_sb_puts(body, first ? "{\"name\":" : ",{\"name\":");
        first = false;
        ksv_sb_json_str(body, r->name);
        ksv_sb_puts(body, ",\"runtime\":");
        char *external = ctl_revision_external(r->spec_json);
        ksv_sb_json_str(body, external ? "external" : r->runtime);
        if (external) {
            ksv_sb_puts(body, ",\"external\":");
            ksv_sb_puts(body, external);
            free(external);
        }
        ksv_sb_puts(body, ",\"storage_uri\":");
        const char *uri = r->storage_uri;
        for (size_t k = 0; k < n_map; k++)
            if (strcmp(map[k].local, uri) == 0 && map[k].remote[0])
                uri = map[k].remote;
        ksv_sb_json_str(body, uri);
        if (sha256[0]) {
            ksv_sb_puts(body, ",\"sha256\":");
            ksv_sb_json_str(body, sha256);
        }
        ksv_sb_printf(body,
                      ",\"settings\":{\"container_concurrency\":%lld,\"timeout_ms\":%lld,"
                      "\"min_replicas\":%lld,\"memory_limit_bytes\":%llu,"
                      "\"max_replicas\":%lld,\"scale_target\":%lld,\"scale_metric\":\"%s\","
                      "\"gpu_memory_bytes\":%llu}}",
                      (long long)concurrency, (long long)timeout_s * 1000,
                      (long long)min_replicas, (unsigned long long)memory_limit,
                      (long long)scale.max_replicas, (long long)scale.scale_target,
                      scale.metric[0] ? scale.metric : "concurrency",
                      (unsigned long long)scale.gpu_memory);
    }
    ksv_sb_puts(body, "],\"traffic\":{");
    first = true;
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        int pct = ksv_model_view_percent(v, v->revisions.items[i].id);
        sum += pct;
        ksv_sb_printf(body, "%s", first ? "" : ",");
        first = false;
        ksv_sb_json_str(body, v->revisions.items[i].name);
        ksv_sb_printf(body, ":%d", pct);
    }
    model_settings ms = read_model_settings(&v->model);
    ksv_sb_printf(body,
                  "},\"rollback_window_s\":%lld,\"scale_window_s\":%lld,"
                  "\"scale_to_zero_retention_s\":%lld,\"cold_start_queue\":%lld,"
                  "\"target_utilization_percent\":%g,\"scale_down_delay_s\":%lld}",
                  (long long)ms.rollback_window_s, (long long)ms.scale_window_s,
                  (long long)ms.scale_retention_s, (long long)ms.cold_start_queue,
                  ms.target_utilization, (long long)ms.scale_down_delay_s);
    free(keep);
    if (sum != 100)
        return ksv_err_set(err, 500, "model %s: stored traffic sums to %d", v->model.name, sum);
    return body->oom ? ksv_err_set(err, 500, "out of memory") : 0;
}
