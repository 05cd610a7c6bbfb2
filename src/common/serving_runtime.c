/* serving_runtime.c: reading ServingRuntime documents and turning one into the engine's
 * "external" block (serving_runtime.h). */
#include "common/serving_runtime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FORMATS 32
#define MAX_WORDS 64
#define MAX_ENV 64

bool ksv_is_serving_runtime_kind(const char *kind)
{
    return kind && (strcmp(kind, "ServingRuntime") == 0 || strcmp(kind, "ClusterServingRuntime") == 0);
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v = get(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* KServe's names: lowercase letters, digits and '-', starting and ending alphanumeric. */
static bool dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
              s[i] == '.'))
            return false;
    return true;
}

static int string_list(json_object *v, const char *where, const char *field, int max,
                       ksv_err *err)
{
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_array) || (int)json_object_array_length(v) > max)
        return ksv_err_set(err, 400, "%s: %s: expected a list of at most %d strings", where,
                           field, max);
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string))
            return ksv_err_set(err, 400, "%s: %s[%zu]: expected a string", where, field, i);
        if (json_object_get_string_len(e) > 4096)
            return ksv_err_set(err, 400, "%s: %s[%zu]: longer than 4096 bytes", where, field, i);
    }
    return 0;
}

void ksv_serving_runtime_free(ksv_serving_runtime *rt)
{
    if (!rt)
        return;
    free(rt->source);
    free(rt->name);
    free(rt->namespace_name);
    for (size_t i = 0; i < rt->n_formats; i++) {
        free(rt->formats[i].name);
        free(rt->formats[i].version);
    }
    free(rt->formats);
    json_object_put(rt->original);
    memset(rt, 0, sizeof *rt);
}

static int read_formats(json_object *spec, const char *where, ksv_serving_runtime *out,
                        ksv_err *err)
{
    json_object *formats = get(spec, "supportedModelFormats");
    if (!formats || !json_object_is_type(formats, json_type_array) ||
        json_object_array_length(formats) == 0)
        return ksv_err_set(err, 400, "%s: spec.supportedModelFormats: missing: name at least one "
                                     "model format the runtime serves", where);
    size_t n = json_object_array_length(formats);
    if (n > MAX_FORMATS)
        return ksv_err_set(err, 400, "%s: spec.supportedModelFormats: more than %d", where,
                           MAX_FORMATS);
    if (!(out->formats = calloc(n, sizeof *out->formats)))
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *f = json_object_array_get_idx(formats, i), *v;
        const char *name = get_str(f, "name");
        if (!name || !*name || strlen(name) > 63)
            return ksv_err_set(err, 400, "%s: spec.supportedModelFormats[%zu].name: missing",
                               where, i);
        ksv_runtime_format *rf = &out->formats[out->n_formats++];
        if (!(rf->name = strdup(name)))
            return ksv_err_set(err, 500, "out of memory");
        for (char *p = rf->name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        const char *version = get_str(f, "version");
        if (version && !(rf->version = strdup(version)))
            return ksv_err_set(err, 500, "out of memory");
        if ((v = get(f, "autoSelect"))) {
            if (!json_object_is_type(v, json_type_boolean))
                return ksv_err_set(err, 400, "%s: spec.supportedModelFormats[%zu].autoSelect: "
                                             "expected true or false", where, i);
            rf->auto_select = json_object_get_boolean(v);
        }
        if ((v = get(f, "priority"))) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
                json_object_get_int64(v) > 1000000)
                return ksv_err_set(err, 400, "%s: spec.supportedModelFormats[%zu].priority: "
                                             "expected an integer 0..1000000", where, i);
            rf->priority = json_object_get_int(v);
        }
    }
    return 0;
}

static int read_container(json_object *spec, const char *where, ksv_err *err)
{
    json_object *containers = get(spec, "containers");
    if (!containers || !json_object_is_type(containers, json_type_array) ||
        json_object_array_length(containers) == 0)
        return ksv_err_set(err, 400, "%s: spec.containers: missing: ksv runs containers[0]'s "
                                     "command on the node", where);
    json_object *c = json_object_array_get_idx(containers, 0);
    json_object *command = get(c, "command"), *args = get(c, "args"), *env = get(c, "env");
    if (!command || !json_object_is_type(command, json_type_array) ||
        json_object_array_length(command) == 0 ||
        !json_object_is_type(json_object_array_get_idx(command, 0), json_type_string) ||
        json_object_get_string_len(json_object_array_get_idx(command, 0)) == 0)
        return ksv_err_set(err, 400, "%s: spec.containers[0].command: missing: ksv runs the "
                                     "runtime as a process and needs its command (an image "
                                     "alone cannot run here)", where);
    if (string_list(command, where, "spec.containers[0].command", MAX_WORDS, err) ||
        string_list(args, where, "spec.containers[0].args", MAX_WORDS, err))
        return -1;
    if (json_object_array_length(command) + (args ? json_object_array_length(args) : 0) > MAX_WORDS)
        return ksv_err_set(err, 400, "%s: spec.containers[0]: more than %d command words and "
                                     "args", where, MAX_WORDS);
    if (env) {
        if (!json_object_is_type(env, json_type_array) || json_object_array_length(env) > MAX_ENV)
            return ksv_err_set(err, 400, "%s: spec.containers[0].env: expected a list of at "
                                         "most %d {name, value}", where, MAX_ENV);
        for (size_t i = 0; i < json_object_array_length(env); i++) {
            json_object *e = json_object_array_get_idx(env, i);
            const char *name = get_str(e, "name");
            if (!name || !*name)
                return ksv_err_set(err, 400, "%s: spec.containers[0].env[%zu].name: missing",
                                   where, i);
            for (const char *p = name; *p; p++)
                if (!(isalnum((unsigned char)*p) || *p == '_'))
                    return ksv_err_set(err, 400, "%s: spec.containers[0].env[%zu].name: \"%s\" "
                                                 "is not a variable name", where, i, name);
            if (get(e, "valueFrom"))
                return ksv_err_set(err, 400, "%s: spec.containers[0].env[%zu].valueFrom: not "
                                             "available on a node; give value", where, i);
            json_object *value = get(e, "value");
            if (value && !json_object_is_type(value, json_type_string))
                return ksv_err_set(err, 400, "%s: spec.containers[0].env[%zu].value: expected "
                                             "a string", where, i);
        }
    }
    const char *path = get_str(get(get(c, "readinessProbe"), "httpGet"), "path");
    if (path && (path[0] != '/' || strlen(path) > 255 || strpbrk(path, " \r\n")))
        return ksv_err_set(err, 400, "%s: spec.containers[0].readinessProbe.httpGet.path: "
                                     "expected a path starting with /", where);
    return 0;
}

int ksv_serving_runtime_from_json(json_object *doc, const char *where, ksv_serving_runtime *out,
                                  ksv_err *err)
{
    memset(out, 0, sizeof *out);
    const char *kind = get_str(doc, "kind"), *api = get_str(doc, "apiVersion");
    if (!ksv_is_serving_runtime_kind(kind))
        return ksv_err_set(err, 400, "%s: kind: expected ServingRuntime or ClusterServingRuntime",
                           where);
    if (!api || strcmp(api, KSV_SERVING_RUNTIME_API_VERSION) != 0)
        return ksv_err_set(err, 400, "%s: apiVersion: expected " KSV_SERVING_RUNTIME_API_VERSION
                                     " for a %s", where, kind);
    out->cluster = strcmp(kind, "ClusterServingRuntime") == 0;
    json_object *meta = get(doc, "metadata"), *spec = get(doc, "spec"), *v;
    const char *name = get_str(meta, "name"), *ns = get_str(meta, "namespace");
    if (!name)
        return ksv_err_set(err, 400, "%s: metadata.name: missing", where);
    if (!dns_label(name))
        return ksv_err_set(err, 400, "%s: metadata.name: \"%s\" is not a DNS label", where, name);
    if (ns && !dns_label(ns))
        return ksv_err_set(err, 400, "%s: metadata.namespace: \"%s\" is not a DNS label", where,
                           ns);
    if (!spec || !json_object_is_type(spec, json_type_object))
        return ksv_err_set(err, 400, "%s: spec: missing", where);
    out->name = strdup(name);
    out->namespace_name = strdup(out->cluster ? "" : ns ? ns : "default");
    if (!out->name || !out->namespace_name) {
        ksv_serving_runtime_free(out);
        return ksv_err_set(err, 500, "out of memory");
    }
    int rc = read_formats(spec, where, out, err);
    json_object *protocols = get(spec, "protocolVersions");
    if (rc == 0)
        rc = string_list(protocols, where, "spec.protocolVersions", 8, err);
    for (size_t i = 0; rc == 0 && protocols && i < json_object_array_length(protocols); i++) {
        const char *p = json_object_get_string(json_object_array_get_idx(protocols, i));
        if (strcmp(p, "v1") == 0)
            out->protocols |= 1;
        else if (strcmp(p, "v2") == 0)
            out->protocols |= 2;
        else if (strcmp(p, "openai") == 0)
            out->protocols |= 4;
        else if (strcmp(p, "grpc-v1") != 0 && strcmp(p, "grpc-v2") != 0)
            rc = ksv_err_set(err, 400, "%s: spec.protocolVersions[%zu]: \"%s\" is not one of v1, "
                                       "v2, grpc-v1, grpc-v2, openai", where, i, p);
    }
    if (rc == 0 && !protocols)
        out->protocols = 1; /* KServe's default */
    if (rc == 0 && out->protocols == 0)
        rc = ksv_err_set(err, 400, "%s: spec.protocolVersions: ksv forwards HTTP only (v1, v2, "
                                   "openai); a gRPC-only runtime cannot be served", where);
    if (rc == 0 && (v = get(spec, "disabled")))
        out->disabled = json_object_get_boolean(v);
    if (rc == 0)
        rc = read_container(spec, where, err);
    if (rc != 0) {
        ksv_serving_runtime_free(out);
        return -1;
    }
    out->original = json_object_get(doc);
    return 0;
}

const ksv_runtime_format *ksv_serving_runtime_format(const ksv_serving_runtime *rt,
                                                     const char *name)
{
    for (size_t i = 0; i < rt->n_formats; i++)
        if (strcasecmp(rt->formats[i].name, name) == 0)
            return &rt->formats[i];
    return NULL;
}

/* KServe's modelClass per format, as its controller sets it for MLServer. */
static const char *model_class(const char *format)
{
    static const char *const classes[][2] = {
        {"sklearn", "mlserver_sklearn.SKLearnModel"},
        {"lightgbm", "mlserver_lightgbm.LightGBMModel"},
        {"xgboost", "mlserver_xgboost.XGBoostModel"},
        {"mlflow", "mlserver_mlflow.MLflowRuntime"},
    };
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (strcasecmp(format, classes[i][0]) == 0)
            return classes[i][1];
    return "";
}

static json_object *substituted(const char *text, const char *format)
{
    static const char label[] = "{{.Labels.modelClass}}";
    ksv_sb sb;
    ksv_sb_init(&sb);
    for (const char *p = text; *p;) {
        if (strncmp(p, label, sizeof label - 1) == 0) {
            ksv_sb_puts(&sb, model_class(format));
            p += sizeof label - 1;
        } else {
            ksv_sb_putc(&sb, *p++);
        }
    }
    json_object *s = sb.oom ? NULL : json_object_new_string(sb.data ? sb.data : "");
    ksv_sb_free(&sb);
    return s;
}

static json_object *words(json_object *list, const char *format)
{
    json_object *out = json_object_new_array();
    for (size_t i = 0; out && list && i < json_object_array_length(list); i++)
        json_object_array_add(out, substituted(json_object_get_string(json_object_array_get_idx(list, i)),
                                               format));
    return out;
}

int ksv_serving_runtime_engine_block(const ksv_serving_runtime *rt, const char *format,
                                     ksv_sb *out, ksv_err *err)
{
    if (rt->disabled)
        return ksv_err_set(err, 400, "runtime %s is disabled (spec.disabled)", rt->name);
    if (!ksv_serving_runtime_format(rt, format))
        return ksv_err_set(err, 400, "runtime %s does not serve model format %s", rt->name,
                           format);
    json_object *c = json_object_array_get_idx(get(get(rt->original, "spec"), "containers"), 0);
    json_object *block = json_object_new_object();
    json_object_object_add(block, "command", words(get(c, "command"), format));
    json_object_object_add(block, "args", words(get(c, "args"), format));
    json_object *env = json_object_new_array(), *env_in = get(c, "env");
    for (size_t i = 0; env_in && i < json_object_array_length(env_in); i++) {
        json_object *e = json_object_array_get_idx(env_in, i), *pair = json_object_new_object();
        const char *value = get_str(e, "value");
        json_object_object_add(pair, "name", json_object_new_string(get_str(e, "name")));
        json_object_object_add(pair, "value", substituted(value ? value : "", format));
        json_object_array_add(env, pair);
    }
    json_object_object_add(block, "env", env);
    json_object *protos = json_object_new_array();
    if (rt->protocols & 1)
        json_object_array_add(protos, json_object_new_string("v1"));
    if (rt->protocols & 2)
        json_object_array_add(protos, json_object_new_string("v2"));
    if (rt->protocols & 4)
        json_object_array_add(protos, json_object_new_string("openai"));
    json_object_object_add(block, "protocols", protos);
    const char *health = get_str(get(get(c, "readinessProbe"), "httpGet"), "path");
    if (health)
        json_object_object_add(block, "health_path", json_object_new_string(health));
    /* Kubernetes' startupProbe bounds how long a container may take to start:
     * initialDelaySeconds + failureThreshold * periodSeconds (defaults 0, 3, 10). */
    json_object *startup = get(c, "startupProbe");
    if (startup) {
        json_object *d = get(startup, "initialDelaySeconds"), *f = get(startup, "failureThreshold"),
                    *p = get(startup, "periodSeconds");
        long long limit = (d ? json_object_get_int64(d) : 0) +
                          (f ? json_object_get_int64(f) : 3) * (p ? json_object_get_int64(p) : 10);
        if (limit < 1)
            limit = 1;
        if (limit > 3600)
            limit = 3600;
        json_object_object_add(block, "ready_timeout_s", json_object_new_int64(limit));
    }
    json_object_object_add(block, "serving_runtime", json_object_new_string(rt->name));
    json_object_object_add(block, "model_format", json_object_new_string(format));
    const char *text = json_object_to_json_string_ext(block, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text)
        ksv_sb_puts(out, text);
    json_object_put(block);
    return !text || out->oom ? ksv_err_set(err, 500, "out of memory") : 0;
}
