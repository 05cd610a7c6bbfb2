/* manifest_render.c: a spec's canonical JSON (what the store hashes to name a revision) and
 * its rendering back to KServe YAML (for `ksv describe` and ksv-top's editor).
 *
 * Both start from the normalized predictor: the document's spec.predictor as written, with
 * the shorthand turned into the model form and every field ksv interprets replaced by the
 * value ksv understood (mapped runtime, absolute storage path, defaults). Fields ksv does not
 * interpret stay as written, so they still count towards a revision's identity. */
#include "common/manifest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

static bool set_field(json_object *obj, const char *key, json_object *value)
{
    if (!value)
        return false;
    return json_object_object_add(obj, key, value) == 0;
}

static json_object *deep_copy(json_object *src)
{
    json_object *copy = NULL;
    if (!src)
        return NULL;
    if (json_object_deep_copy(src, &copy, NULL) != 0)
        return NULL;
    return copy;
}

/* Removes null members of objects at every depth: in a manifest, null means absent. */
static void strip_nulls(json_object *obj)
{
    if (json_object_is_type(obj, json_type_array)) {
        size_t n = json_object_array_length(obj);
        for (size_t k = 0; k < n; k++)
            strip_nulls(json_object_array_get_idx(obj, k));
        return;
    }
    if (!json_object_is_type(obj, json_type_object))
        return;
    bool removed;
    do {
        removed = false;
        json_object_object_foreach(obj, key, value) {
            if (!value) {
                json_object_object_del(obj, key);
                removed = true;
                break;
            }
            strip_nulls(value);
        }
    } while (removed);
}

static bool set_gpu(json_object *resources, const char *list_name, const ksv_resource_list *list)
{
    if (!list->has_gpu)
        return true;
    json_object *lst = NULL;
    if (!json_object_object_get_ex(resources, list_name, &lst) ||
        !json_object_is_type(lst, json_type_object))
        return true;
    return set_field(lst, "nvidia.com/gpu", json_object_new_int64(list->gpu));
}

/* The normalized spec.predictor, without canaryTrafficPercent; caller owns it. */
static json_object *normalized_predictor(const ksv_isvc *spec)
{
    json_object *spec_obj = NULL, *pred_src = NULL;
    if (!json_object_object_get_ex(spec->original, "spec", &spec_obj) ||
        !json_object_object_get_ex(spec_obj, "predictor", &pred_src))
        return NULL;
    json_object *pred = deep_copy(pred_src);
    if (!pred)
        return NULL;
    strip_nulls(pred);
    json_object *model = NULL;
    const char *impl_key = spec->shorthand ? "xgboost" : "model";
    json_object *impl = NULL;
    json_object_object_get_ex(pred, impl_key, &impl);
    model = deep_copy(impl);
    if (!model)
        goto fail;
    json_object_object_del(pred, impl_key);
    if (!set_field(pred, "model", model)) {
        json_object_put(model);
        goto fail;
    }

    json_object *format = NULL;
    if (!json_object_object_get_ex(model, "modelFormat", &format) ||
        !json_object_is_type(format, json_type_object)) {
        format = json_object_new_object();
        if (!set_field(model, "modelFormat", format))
            goto fail;
    }
    if (!set_field(format, "name", json_object_new_string(spec->model_format)) ||
        !set_field(model, "runtime", json_object_new_string(spec->runtime)) ||
        !set_field(model, "storageUri", json_object_new_string(spec->storage_uri)) ||
        !set_field(model, "protocolVersion", json_object_new_string(spec->protocol_version)))
        goto fail;
    json_object *resources = NULL;
    if (json_object_object_get_ex(model, "resources", &resources) &&
        (!set_gpu(resources, "limits", &spec->limits) ||
         !set_gpu(resources, "requests", &spec->requests)))
        goto fail;

    json_object_object_del(pred, "canaryTrafficPercent");
    if (!set_field(pred, "minReplicas", json_object_new_int64(spec->min_replicas)) ||
        !set_field(pred, "maxReplicas", json_object_new_int64(spec->max_replicas)) ||
        !set_field(pred, "containerConcurrency",
                   json_object_new_int64(spec->container_concurrency)))
        goto fail;
    return pred;
fail:
    json_object_put(pred);
    return NULL;
}

/* Shortest "%.{15,16,17}g" that reads back exactly; always marked as a float. */
static void put_double(ksv_sb *out, double d)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    ksv_sb_puts(out, buf);
    if (!strpbrk(buf, ".eEni"))
        ksv_sb_puts(out, ".0");
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ksv_manifest_write_sorted_json(const json_object *json, ksv_sb *out)
{
    json_object *obj = (json_object *)json; /* json-c's getters take non-const pointers */
    switch (json_object_get_type(obj)) {
    case json_type_null:
        ksv_sb_puts(out, "null");
        return;
    case json_type_boolean:
        ksv_sb_puts(out, json_object_get_boolean(obj) ? "true" : "false");
        return;
    case json_type_int:
        ksv_sb_printf(out, "%lld", (long long)json_object_get_int64(obj));
        return;
    case json_type_double:
        put_double(out, json_object_get_double(obj));
        return;
    case json_type_string:
        ksv_sb_json_str(out, json_object_get_string(obj));
        return;
    case json_type_array: {
        size_t n = json_object_array_length(obj);
        ksv_sb_putc(out, '[');
        for (size_t k = 0; k < n; k++) {
            if (k)
                ksv_sb_putc(out, ',');
            ksv_manifest_write_sorted_json(json_object_array_get_idx(obj, k), out);
        }
        ksv_sb_putc(out, ']');
        return;
    }
    case json_type_object: {
        size_t n = (size_t)json_object_object_length(obj), k = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys) {
            out->oom = true;
            return;
        }
        json_object_object_foreach(obj, key, value) {
            (void)value;
            keys[k++] = key;
        }
        qsort(keys, n, sizeof *keys, compare_keys);
        ksv_sb_putc(out, '{');
        for (k = 0; k < n; k++) {
            if (k)
                ksv_sb_putc(out, ',');
            ksv_sb_json_str(out, keys[k]);
            ksv_sb_putc(out, ':');
            ksv_manifest_write_sorted_json(json_object_object_get(obj, keys[k]), out);
        }
        ksv_sb_putc(out, '}');
        free(keys);
        return;
    }
    }
}

char *ksv_manifest_canonical_json(const ksv_isvc *spec)
{
    json_object *pred = normalized_predictor(spec);
    if (!pred)
        return NULL;
    json_object *identity = json_object_new_object();
    bool ok = identity && set_field(identity, "predictor", pred);
    if (!ok)
        json_object_put(pred);
    if (ok && spec->sha256)
        ok = set_field(identity, "sha256", json_object_new_string(spec->sha256));
    ksv_sb sb;
    ksv_sb_init(&sb);
    if (ok)
        ksv_manifest_write_sorted_json(identity, &sb);
    json_object_put(identity);
    if (!ok || sb.oom) {
        ksv_sb_free(&sb);
        return NULL;
    }
    return ksv_sb_steal(&sb, NULL);
}

/* ---- YAML ------------------------------------------------------------------------------ */

/* Would this text, written plain, read back as something other than this string? */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE",
        "<<", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
        ".nan", ".NaN", ".NAN",
    };
    for (size_t k = 0; k < sizeof words / sizeof *words; k++)
        if (strcmp(s, words[k]) == 0)
            return true;
    /* Anything that starts like a number is quoted: cheaper than matching each form. */
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (*p == '.')
        p++;
    return *p >= '0' && *p <= '9';
}

static int emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    return yaml_emitter_emit(em, ev) ? 0 : -1;
}

static int emit_scalar(yaml_emitter_t *em, const char *text, bool is_string)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
    if (is_string)
        style = needs_quotes(text) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text),
                                      !is_string || style != YAML_DOUBLE_QUOTED_SCALAR_STYLE,
                                      1, style))
        return -1;
    return emit(em, &ev);
}

static int emit_json(yaml_emitter_t *em, json_object *obj, int depth)
{
    yaml_event_t ev;
    char buf[48];
    if (depth > 100)
        return -1;
    switch (json_object_get_type(obj)) {
    case json_type_null:
        return emit_scalar(em, "null", false);
    case json_type_boolean:
        return emit_scalar(em, json_object_get_boolean(obj) ? "true" : "false", false);
    case json_type_int:
        snprintf(buf, sizeof buf, "%lld", (long long)json_object_get_int64(obj));
        return emit_scalar(em, buf, false);
    case json_type_double: {
        ksv_sb sb;
        ksv_sb_init(&sb);
        put_double(&sb, json_object_get_double(obj));
        int rc = sb.oom ? -1 : emit_scalar(em, sb.data, false);
        ksv_sb_free(&sb);
        return rc;
    }
    case json_type_string:
        return emit_scalar(em, json_object_get_string(obj), true);
    case json_type_array: {
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_SEQUENCE_STYLE) ||
            emit(em, &ev))
            return -1;
        size_t n = json_object_array_length(obj);
        for (size_t k = 0; k < n; k++)
            if (emit_json(em, json_object_array_get_idx(obj, k), depth + 1))
                return -1;
        if (!yaml_sequence_end_event_initialize(&ev))
            return -1;
        return emit(em, &ev);
    }
    case json_type_object: {
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_MAPPING_STYLE) ||
            emit(em, &ev))
            return -1;
        json_object_object_foreach(obj, key, value) {
            if (emit_scalar(em, key, true) || emit_json(em, value, depth + 1))
                return -1;
        }
        if (!yaml_mapping_end_event_initialize(&ev))
            return -1;
        return emit(em, &ev);
    }
    }
    return -1;
}

static int write_to_sb(void *data, unsigned char *buffer, size_t size)
{
    ksv_sb *sb = data;
    ksv_sb_append(sb, (const char *)buffer, size);
    return !sb->oom;
}

/* The document to render: the original with its predictor normalized (canary kept) and
 * its namespace filled in. */
static json_object *render_document(const ksv_isvc *spec)
{
    json_object *doc = json_object_new_object();
    json_object *pred = normalized_predictor(spec);
    if (!doc || !pred)
        goto fail;
    if (spec->has_canary &&
        !set_field(pred, "canaryTrafficPercent", json_object_new_int64(spec->canary_percent)))
        goto fail;
    if (!set_field(doc, "apiVersion", json_object_new_string(KSV_MANIFEST_API_VERSION)) ||
        !set_field(doc, "kind", json_object_new_string(KSV_MANIFEST_KIND)))
        goto fail;
    json_object_object_foreach(spec->original, key, value) {
        if (!strcmp(key, "apiVersion") || !strcmp(key, "kind"))
            continue;
        json_object *copy = deep_copy(value);
        if (value && !copy)
            goto fail;
        if (json_object_object_add(doc, key, copy) != 0) {
            json_object_put(copy);
            goto fail;
        }
    }
    json_object *meta = json_object_object_get(doc, "metadata");
    json_object *spec_obj = json_object_object_get(doc, "spec");
    if (!set_field(meta, "namespace", json_object_new_string(spec->namespace_name)))
        goto fail;
    if (json_object_object_add(spec_obj, "predictor", pred) != 0)
        goto fail;
    return doc;
fail:
    json_object_put(pred);
    json_object_put(doc);
    return NULL;
}

int ksv_manifest_to_yaml(const ksv_isvc *spec, ksv_sb *out)
{
    json_object *doc = render_document(spec);
    if (!doc)
        return -1;
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em)) {
        json_object_put(doc);
        return -1;
    }
    yaml_emitter_set_output(&em, write_to_sb, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    int rc = -1;
    if (yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && !emit(&em, &ev) &&
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0) && !emit(&em, &ev) &&
        !emit_json(&em, doc, 0) && yaml_document_end_event_initialize(&ev, 1) &&
        !emit(&em, &ev) && yaml_stream_end_event_initialize(&ev) && !emit(&em, &ev) &&
        yaml_emitter_flush(&em))
        rc = 0;
    yaml_emitter_delete(&em);
    json_object_put(doc);
    return rc == 0 && !out->oom ? 0 : -1;
}
