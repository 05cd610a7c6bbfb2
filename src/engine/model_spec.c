/* model_spec.c: JSON <-> ksv_model_spec, with validation. */
#include "engine/model_spec.h"

#include <stdio.h>
#include <string.h>

#include "common/field_limits.h"
#include "common/uri_redact.h"
#include "engine/autoscaler.h"
#include "engine/batcher.h"
#include "engine/runtime.h"

bool ksv_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > KSV_ENGINE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (i == 0 && !alnum)
            return false;
        if (!alnum && c != '-' && c != '.' && c != '_')
            return false;
    }
    return true;
}

static int copy_string_field(json_object *obj, const char *key, char *dst, size_t cap,
                             bool required, const char *where, ksv_err *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return ksv_err_set(err, 400, "%s.%s is required", where, key);
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return ksv_err_set(err, 400, "%s.%s: expected a string", where, key);
    const char *s = json_object_get_string(v);
    if (strlen(s) >= cap)
        return ksv_err_set(err, 400, "%s.%s: longer than %zu bytes", where, key, cap - 1);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int int_field(json_object *obj, const char *key, int lo, int hi, int *dst,
                     const char *where, ksv_err *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return ksv_err_set(err, 400, "%s.%s: expected an integer", where, key);
    int64_t x = json_object_get_int64(v);
    if (x < lo || x > hi)
        return ksv_err_set(err, 400, "%s.%s: %lld is outside %d..%d", where, key,
                           (long long)x, lo, hi);
    *dst = (int)x;
    return 0;
}

static int percent_field(json_object *obj, const char *key, double *dst, const char *where,
                         ksv_err *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    double x = json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)
                   ? json_object_get_double(v)
                   : -1;
    if (!(x >= 1 && x <= 100))
        return ksv_err_set(err, 400, "%s.%s: expected a percent 1..100", where, key);
    *dst = x;
    return 0;
}

static int bytes_field(json_object *obj, const char *key, long long *dst, const char *where,
                       ksv_err *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return ksv_err_set(err, 400, "%s.%s: expected a number of bytes", where, key);
    *dst = (long long)json_object_get_int64(v);
    return 0;
}

static int revision_from_json(json_object *obj, size_t index, ksv_revision_spec *rev,
                              ksv_err *err)
{
    char where[48];
    snprintf(where, sizeof where, "revisions[%zu]", index);
    if (!json_object_is_type(obj, json_type_object))
        return ksv_err_set(err, 400, "%s: expected an object", where);
    memset(rev, 0, sizeof *rev);
    strcpy(rev->runtime, KSV_DEFAULT_RUNTIME);
    strcpy(rev->booster_pool, "shared");
    rev->batch_max_delay_us = KSV_BATCH_DEFAULT_DELAY_US;
    rev->min_replicas = 1;
    strcpy(rev->scale_metric, "concurrency");
    if (copy_string_field(obj, "name", rev->name, sizeof rev->name, true, where, err) ||
        copy_string_field(obj, "runtime", rev->runtime, sizeof rev->runtime, false, where,
                          err) ||
        copy_string_field(obj, "storage_uri", rev->storage_uri, sizeof rev->storage_uri, true,
                          where, err) ||
        copy_string_field(obj, "sha256", rev->sha256, sizeof rev->sha256, false, where, err) ||
        copy_string_field(obj, "pinned_storage_uri", rev->pinned_uri, sizeof rev->pinned_uri,
                          false, where, err))
        return -1;
    if (rev->pinned_uri[0] && strncmp(rev->pinned_uri, "hf://", 5) != 0)
        return ksv_err_set(err, 400, "%s.pinned_storage_uri: only hf:// URIs are pinned", where);
    for (size_t i = 0; rev->sha256[i]; i++) {
        char c = rev->sha256[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return ksv_err_set(err, 400, "%s.sha256: expected 64 hex digits", where);
    }
    if (rev->sha256[0] && strlen(rev->sha256) != 64)
        return ksv_err_set(err, 400, "%s.sha256: expected 64 hex digits", where);
    if (!ksv_valid_name(rev->name))
        return ksv_err_set(err, 400, "%s.name: \"%s\" is not a valid revision name", where,
                           rev->name);
    if (!ksv_runtime_find(rev->runtime))
        return ksv_err_set(err, 400, "%s.runtime: unknown runtime \"%s\" (known: %s)", where,
                           rev->runtime, ksv_runtime_names());
    json_object *external;
    bool has_external = json_object_object_get_ex(obj, "external", &external) &&
                        !json_object_is_type(external, json_type_null);
    if (ksv_runtime_find(rev->runtime)->proxied != has_external)
        return ksv_err_set(err, 400, has_external ? "%s.external: only runtime \"external\" takes one"
                                                  : "%s.external is required with runtime \"external\"",
                           where);
    if (has_external) {
        char ext_where[64];
        snprintf(ext_where, sizeof ext_where, "%s.external", where);
        if (ksv_ext_spec_from_json(external, ext_where, rev->external, sizeof rev->external, err))
            return -1;
    }
    json_object *settings;
    if (json_object_object_get_ex(obj, "settings", &settings) &&
        !json_object_is_type(settings, json_type_null)) {
        if (!json_object_is_type(settings, json_type_object))
            return ksv_err_set(err, 400, "%s.settings: expected an object", where);
        strncat(where, ".settings", sizeof where - strlen(where) - 1);
        if (copy_string_field(settings, "booster_pool", rev->booster_pool,
                              sizeof rev->booster_pool, false, where, err) ||
            int_field(settings, "predict_threads", 0, 256, &rev->predict_threads, where, err) ||
            int_field(settings, "container_concurrency", 0, KSV_CONTAINER_CONCURRENCY_MAX,
                      &rev->container_concurrency, where, err) ||
            int_field(settings, "timeout_ms", 0, KSV_TIMEOUT_MS_MAX, &rev->timeout_ms, where,
                      err) ||
            int_field(settings, "batch_max_rows", 0, 1 << 20, &rev->batch_max_rows, where,
                      err) ||
            int_field(settings, "batch_max_delay_us", 0, 1000000, &rev->batch_max_delay_us,
                      where, err) ||
            int_field(settings, "min_replicas", 0, KSV_REPLICAS_MAX, &rev->min_replicas, where,
                      err) ||
            bytes_field(settings, "memory_limit_bytes", &rev->memory_limit_bytes, where, err) ||
            bytes_field(settings, "gpu_memory_bytes", &rev->gpu_memory_bytes, where, err) ||
            int_field(settings, "max_replicas", 0, KSV_REPLICAS_MAX, &rev->max_replicas, where,
                      err) ||
            int_field(settings, "scale_target", 0, 1000000000, &rev->scale_target, where,
                      err) ||
            copy_string_field(settings, "scale_metric", rev->scale_metric,
                              sizeof rev->scale_metric, false, where, err))
            return -1;
        if (strcmp(rev->scale_metric, "concurrency") != 0 && strcmp(rev->scale_metric, "rps") != 0)
            return ksv_err_set(err, 400, "%s.scale_metric: expected concurrency or rps", where);
        if (rev->max_replicas > 0 && rev->max_replicas < rev->min_replicas)
            return ksv_err_set(err, 400, "%s.max_replicas: %d is below min_replicas %d", where,
                               rev->max_replicas, rev->min_replicas);
        if (strcmp(rev->booster_pool, "per-worker") != 0 &&
            strcmp(rev->booster_pool, "shared") != 0)
            return ksv_err_set(err, 400, "%s.booster_pool: expected \"per-worker\" or \"shared\"",
                               where);
    }
    return 0;
}

int ksv_traffic_validate(const int *traffic, size_t n, ksv_err *err)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (traffic[i] < 0 || traffic[i] > 100)
            return ksv_err_set(err, 400, "traffic: %d is not a percent", traffic[i]);
        sum += traffic[i];
    }
    if (sum != 100)
        return ksv_err_set(err, 400, "traffic: percents sum to %d, not 100", sum);
    return 0;
}

int ksv_traffic_from_json(json_object *body, const ksv_model_spec *spec, int *traffic,
                          ksv_err *err)
{
    json_object *t;
    if (!json_object_is_type(body, json_type_object) ||
        !json_object_object_get_ex(body, "traffic", &t))
        return ksv_err_set(err, 400, "traffic is required: {\"traffic\":{\"REVISION\":PERCENT}}");
    if (!json_object_is_type(t, json_type_object))
        return ksv_err_set(err, 400, "traffic: expected an object of revision: percent");
    for (size_t i = 0; i < spec->n_revisions; i++)
        traffic[i] = 0;
    json_object_object_foreach(t, key, val)
    {
        size_t i = 0;
        while (i < spec->n_revisions && strcmp(spec->revisions[i].name, key) != 0)
            i++;
        if (i == spec->n_revisions)
            return ksv_err_set(err, 404, "traffic: no revision \"%s\" in model %s", key,
                               spec->name);
        if (!json_object_is_type(val, json_type_int))
            return ksv_err_set(err, 400, "traffic.%s: expected an integer percent", key);
        int64_t pct = json_object_get_int64(val);
        if (pct < 0 || pct > 100)
            return ksv_err_set(err, 400, "traffic.%s: %lld is not a percent", key,
                               (long long)pct);
        traffic[i] = (int)pct;
    }
    return ksv_traffic_validate(traffic, spec->n_revisions, err);
}

int ksv_model_spec_from_json(const char *name, json_object *body, ksv_model_spec *out,
                             ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (!ksv_valid_name(name))
        return ksv_err_set(err, 400, "\"%s\" is not a valid model name", name);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->rollback_window_s = KSV_DEFAULT_ROLLBACK_WINDOW_S;
    out->scale_window_s = KSV_DEFAULT_SCALE_WINDOW_S;
    out->cold_start_queue = KSV_DEFAULT_COLD_START_QUEUE;
    out->target_utilization = KSV_DEFAULT_TARGET_UTILIZATION;
    if (!json_object_is_type(body, json_type_object))
        return ksv_err_set(err, 400, "expected a JSON object");
    json_object *revs;
    if (!json_object_object_get_ex(body, "revisions", &revs) ||
        !json_object_is_type(revs, json_type_array))
        return ksv_err_set(err, 400, "revisions: expected an array of revisions");
    size_t n = json_object_array_length(revs);
    if (n == 0 || n > KSV_MAX_REVISIONS)
        return ksv_err_set(err, 400, "revisions: expected 1 to %d revisions, got %zu",
                           KSV_MAX_REVISIONS, n);
    for (size_t i = 0; i < n; i++) {
        if (revision_from_json(json_object_array_get_idx(revs, i), i, &out->revisions[i], err))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->revisions[j].name, out->revisions[i].name) == 0)
                return ksv_err_set(err, 400, "revisions: \"%s\" is listed twice",
                                   out->revisions[i].name);
    }
    out->n_revisions = n;
    if (int_field(body, "rollback_window_s", 0, 86400 * 30, &out->rollback_window_s, "model",
                  err) ||
        int_field(body, "scale_window_s", 1, 3600, &out->scale_window_s, "model", err) ||
        int_field(body, "scale_to_zero_retention_s", 0, 86400, &out->scale_retention_s,
                  "model", err) ||
        int_field(body, "cold_start_queue", 1, 100000, &out->cold_start_queue, "model", err) ||
        percent_field(body, "target_utilization_percent", &out->target_utilization, "model",
                      err) ||
        int_field(body, "scale_down_delay_s", 0, KSV_MAX_SCALE_DOWN_DELAY_S,
                  &out->scale_down_delay_s, "model", err))
        return -1;
    json_object *t;
    if (!json_object_object_get_ex(body, "traffic", &t) && n == 1) {
        out->traffic[0] = 100; /* one revision and no split: it takes everything */
        return 0;
    }
    return ksv_traffic_from_json(body, out, out->traffic, err);
}

/* A storage URI as given, or its display form. */
static void uri_json(ksv_sb *sb, const char *uri, bool shown)
{
    char display[KSV_URI_SHOWN_MAX];
    if (shown)
        ksv_uri_redact(display, sizeof display, uri);
    ksv_sb_json_str(sb, shown ? display : uri);
}

void ksv_revision_spec_to_json(ksv_sb *sb, const ksv_revision_spec *rev, bool shown)
{
    ksv_sb_puts(sb, "{\"name\":");
    ksv_sb_json_str(sb, rev->name);
    ksv_sb_puts(sb, ",\"runtime\":");
    ksv_sb_json_str(sb, rev->runtime);
    ksv_sb_puts(sb, ",\"storage_uri\":");
    uri_json(sb, rev->storage_uri, shown);
    if (rev->sha256[0]) {
        ksv_sb_puts(sb, ",\"sha256\":");
        ksv_sb_json_str(sb, rev->sha256);
    }
    if (rev->pinned_uri[0]) {
        ksv_sb_puts(sb, ",\"pinned_storage_uri\":");
        uri_json(sb, rev->pinned_uri, shown);
    }
    if (rev->external[0]) {
        ksv_sb_puts(sb, ",\"external\":");
        ksv_sb_puts(sb, rev->external);
    }
    ksv_sb_puts(sb, ",\"settings\":{\"booster_pool\":");
    ksv_sb_json_str(sb, rev->booster_pool);
    ksv_sb_printf(sb, ",\"predict_threads\":%d,\"container_concurrency\":%d,\"timeout_ms\":%d,"
                      "\"batch_max_rows\":%d,\"batch_max_delay_us\":%d,\"min_replicas\":%d,"
                      "\"memory_limit_bytes\":%lld,\"max_replicas\":%d,\"scale_target\":%d,"
                      "\"scale_metric\":\"%s\",\"gpu_memory_bytes\":%lld}}",
                  rev->predict_threads, rev->container_concurrency, rev->timeout_ms,
                  rev->batch_max_rows, rev->batch_max_delay_us, rev->min_replicas,
                  rev->memory_limit_bytes, rev->max_replicas, rev->scale_target,
                  rev->scale_metric, rev->gpu_memory_bytes);
}

void ksv_model_spec_to_json(ksv_sb *sb, const ksv_model_spec *spec)
{
    ksv_sb_puts(sb, "{\"name\":");
    ksv_sb_json_str(sb, spec->name);
    ksv_sb_puts(sb, ",\"revisions\":[");
    for (size_t i = 0; i < spec->n_revisions; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        ksv_revision_spec_to_json(sb, &spec->revisions[i], false);
    }
    ksv_sb_puts(sb, "],\"traffic\":{");
    for (size_t i = 0; i < spec->n_revisions; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        ksv_sb_json_str(sb, spec->revisions[i].name);
        ksv_sb_printf(sb, ":%d", spec->traffic[i]);
    }
    ksv_sb_printf(sb,
                  "},\"rollback_window_s\":%d,\"scale_window_s\":%d,"
                  "\"scale_to_zero_retention_s\":%d,\"cold_start_queue\":%d,"
                  "\"target_utilization_percent\":%g,\"scale_down_delay_s\":%d}",
                  spec->rollback_window_s, spec->scale_window_s, spec->scale_retention_s,
                  spec->cold_start_queue, spec->target_utilization, spec->scale_down_delay_s);
}

bool ksv_revision_spec_equal(const ksv_revision_spec *a, const ksv_revision_spec *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->runtime, b->runtime) == 0 &&
           strcmp(a->storage_uri, b->storage_uri) == 0 && strcmp(a->sha256, b->sha256) == 0 &&
           strcmp(a->booster_pool, b->booster_pool) == 0 &&
           a->predict_threads == b->predict_threads &&
           a->container_concurrency == b->container_concurrency &&
           a->timeout_ms == b->timeout_ms && a->batch_max_rows == b->batch_max_rows &&
           a->batch_max_delay_us == b->batch_max_delay_us && a->min_replicas == b->min_replicas &&
           a->memory_limit_bytes == b->memory_limit_bytes &&
           a->max_replicas == b->max_replicas && a->scale_target == b->scale_target &&
           strcmp(a->scale_metric, b->scale_metric) == 0 &&
           a->gpu_memory_bytes == b->gpu_memory_bytes &&
           strcmp(a->external, b->external) == 0;
}

void ksv_model_spec_standalone(ksv_model_spec *spec, const char *name, const char *uri,
                               const char *runtime)
{
    memset(spec, 0, sizeof *spec);
    snprintf(spec->name, sizeof spec->name, "%s", name);
    spec->n_revisions = 1;
    ksv_revision_spec *rev = &spec->revisions[0];
    snprintf(rev->name, sizeof rev->name, "%.80s-00001", name);
    snprintf(rev->runtime, sizeof rev->runtime, "%s", runtime);
    snprintf(rev->storage_uri, sizeof rev->storage_uri, "%s", uri);
    snprintf(rev->booster_pool, sizeof rev->booster_pool, "shared");
    rev->batch_max_delay_us = KSV_BATCH_DEFAULT_DELAY_US;
    rev->min_replicas = 1; /* standalone models stay loaded */
    strcpy(rev->scale_metric, "concurrency");
    spec->traffic[0] = 100;
    spec->rollback_window_s = KSV_DEFAULT_ROLLBACK_WINDOW_S;
    spec->scale_window_s = KSV_DEFAULT_SCALE_WINDOW_S;
    spec->cold_start_queue = KSV_DEFAULT_COLD_START_QUEUE;
    spec->target_utilization = KSV_DEFAULT_TARGET_UTILIZATION;
    spec->pinned = true;
}
