/* manifest.c: reading InferenceService manifests into typed specs (README.md, "Operating
 * models with ksv"; docs/ARCHITECTURE.md section 2).
 *
 * The readers (manifest_yaml.c, manifest_json.c) give a positioned tree; this file checks
 * it field by field, fills a ksv_isvc, and records every field it keeps without acting on,
 * so nothing in a manifest is dropped silently. The first problem found stops the read and
 * is reported as "FILE:LINE:COL: FIELD: reason". */
#include "common/manifest.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/field_limits.h"
#include "common/labels.h"
#include "common/manifest_tree.h"
#include "common/records.h"
#include "common/sanitize.h"

#define MAX_PATH_TEXT 256

/* The framework keys KServe accepts under spec.predictor besides `model`. */
static const char *const framework_keys[] = {
    "xgboost", "sklearn", "tensorflow", "pytorch", "triton", "onnx",
    "pmml", "lightgbm", "paddle", "huggingface",
};

/* KServe runtime names that serve xgboost, mapped to ksv's own runtime. */
static const char *const mapped_runtimes[] = {"kserve-xgbserver", "kserve-mlserver",
                                              "kserve-lgbserver"};

static const char *const scale_metrics[] = {"concurrency", "rps", "cpu", "memory"};
static const char *const protocol_versions[] = {"v1", "v2", "grpc-v1", "grpc-v2"};

typedef struct vctx {
    const char *file;
    const char *base_dir;
    ksv_err *err;
    ksv_isvc *spec;
    size_t cap_not_acted;
} vctx;

static int failv(vctx *v, const mnode *at, const char *path, const char *fmt, va_list ap)
{
    char reason[200];
    vsnprintf(reason, sizeof reason, fmt, ap);
    int line = at ? at->line : (v->spec ? v->spec->line : 1);
    int col = at ? at->col : 1;
    if (path && *path)
        return ksv_err_set(v->err, 400, "%s:%d:%d: %s: %s", v->file, line, col, path, reason);
    return ksv_err_set(v->err, 400, "%s:%d:%d: %s", v->file, line, col, reason);
}

static int fail(vctx *v, const mnode *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(vctx *v, const mnode *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(v, at, path, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(vctx *v)
{
    return ksv_err_set(v->err, 500, "%s: out of memory reading manifest", v->file);
}

/* out = prefix.key, cut short (never overrun) when a hostile key is very long. */
static void join_path(char *out, const char *prefix, const char *key)
{
    size_t n = 0;
    const char *parts[3] = {prefix, *prefix ? "." : "", key};
    for (int p = 0; p < 3; p++)
        for (const char *c = parts[p]; *c && n + 1 < MAX_PATH_TEXT; c++)
            out[n++] = *c;
    out[n] = '\0';
}

static bool is_null(const mnode *node)
{
    return !node || node->type == MN_NULL;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(s, list[k]) == 0)
            return true;
    return false;
}

#define IN_LIST(s, list) in_list((s), (list), sizeof(list) / sizeof *(list))

/* Records a kept-but-not-acted-on field; null values are absent, so not listed. */
static int not_acted_on(vctx *v, const char *path, const mnode *value)
{
    if (is_null(value))
        return 0;
    ksv_isvc *spec = v->spec;
    if (spec->n_not_acted_on == v->cap_not_acted) {
        size_t cap = v->cap_not_acted ? v->cap_not_acted * 2 : 8;
        char **grown = realloc(spec->not_acted_on, cap * sizeof *grown);
        if (!grown)
            return oom(v);
        spec->not_acted_on = grown;
        v->cap_not_acted = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return oom(v);
    spec->not_acted_on[spec->n_not_acted_on++] = copy;
    return 0;
}

static int want_map(vctx *v, const mnode *node, const char *path)
{
    if (node->type != MN_MAP)
        return fail(v, node, path, "expected a map, found %s", mn_type_name(node->type));
    return 0;
}

static int get_string(vctx *v, const mnode *node, const char *path, char **out)
{
    if (node->type != MN_STRING)
        return fail(v, node, path, "expected a string, found %s%s%s%s", mn_type_name(node->type),
                    node->str ? " (" : "", node->str ? node->str : "",
                    node->str ? "; quote it to make it a string)" : "");
    free(*out);
    if (!(*out = strdup(node->str)))
        return oom(v);
    return 0;
}

static int get_int(vctx *v, const mnode *node, const char *path, int64_t min, int64_t max,
                   int64_t *out)
{
    if (node->type != MN_INT) {
        if (node->type == MN_STRING)
            return fail(v, node, path, "expected an integer, found a string \"%s\"", node->str);
        if (node->type == MN_FLOAT)
            return fail(v, node, path, "expected an integer, found %s", node->str);
        return fail(v, node, path, "expected an integer, found %s", mn_type_name(node->type));
    }
    if (node->i < min || node->i > max) {
        if (max >= INT32_MAX)
            return fail(v, node, path, "must be at least %lld, found %lld", (long long)min,
                        (long long)node->i);
        return fail(v, node, path, "must be between %lld and %lld, found %lld", (long long)min,
                    (long long)max, (long long)node->i);
    }
    *out = node->i;
    return 0;
}

/* A DNS-1123 label of at most max characters (field_limits.h: the store and the engine
 * check the same). */
static int check_dns_label(vctx *v, const mnode *node, const char *path, const char *s,
                           size_t max)
{
    const char *problem = ksv_dns_label_problem(s, max);
    if (!problem)
        return 0;
    if (!*s)
        return fail(v, node, path, "%s", problem);
    if (strlen(s) > max)
        return fail(v, node, path, "\"%.20s...\" (%zu characters) %s", s, strlen(s), problem);
    return fail(v, node, path, "\"%s\" %s", s, problem);
}

/* ---- annotations ---------------------------------------------------------------------- */

static int parse_nodes_annotation(vctx *v, const mnode *at, const char *path, const char *text)
{
    ksv_isvc *spec = v->spec;
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *start = p;
        while (n > 0 && isspace((unsigned char)*start)) {
            start++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)start[n - 1]))
            n--;
        if (n == 0)
            return fail(v, at, path, "\"%s\" has an empty node name", text);
        char name[KSV_NODE_NAME_MAX + 2];
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name - 1 ? n : sizeof name - 1),
                 start);
        const char *problem = ksv_dns_label_problem(name, KSV_NODE_NAME_MAX);
        if (problem)
            return fail(v, at, path, "node name \"%.*s\" %s", (int)(n > 80 ? 80 : n), start,
                        problem);
        char **grown = realloc(spec->nodes, (spec->n_nodes + 1) * sizeof *grown);
        if (!grown)
            return oom(v);
        spec->nodes = grown;
        if (!(spec->nodes[spec->n_nodes] = strndup(start, n)))
            return oom(v);
        spec->n_nodes++;
        if (!comma)
            break;
        p = comma + 1;
        if (!*p)
            return fail(v, at, path, "\"%s\" has an empty node name", text);
    }
    if (spec->n_nodes == 0)
        return fail(v, at, path, "names no node");
    return 0;
}

static int parse_selector_annotation(vctx *v, const mnode *at, const char *path,
                                     const char *text)
{
    ksv_selector sel;
    ksv_err why;
    if (ksv_selector_parse(text, &sel, &why) != 0)
        return fail(v, at, path, "%s", why.msg);
    if (!(v->spec->node_selector = strdup(text)))
        return oom(v);
    return 0;
}

/* "1,25%,100%": counts or percents, each at least the one before when both are of a kind. */
static int parse_waves_annotation(vctx *v, const mnode *at, const char *path, const char *text)
{
    ksv_isvc *spec = v->spec;
    const char *p = text;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        char *end;
        errno = 0;
        long n = strtol(p, &end, 10);
        bool percent = *end == '%';
        if (end == p || errno || n < 1 || (percent && n > 100) || n > 100000)
            return fail(v, at, path, "\"%s\": expected wave sizes such as \"1,25%%,100%%\" "
                        "(node counts from 1, percents 1..100, cumulative)", text);
        if (spec->n_waves == KSV_MANIFEST_MAX_WAVES)
            return fail(v, at, path, "more than %d waves", KSV_MANIFEST_MAX_WAVES);
        if (spec->n_waves > 0 && spec->waves[spec->n_waves - 1].percent == percent &&
            spec->waves[spec->n_waves - 1].value >= n)
            return fail(v, at, path, "\"%s\": each wave must be larger than the one before "
                        "(sizes are cumulative)", text);
        spec->waves[spec->n_waves].value = (int)n;
        spec->waves[spec->n_waves++].percent = percent;
        p = end + percent;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return 0;
        if (*p != ',')
            return fail(v, at, path, "\"%s\": expected a comma after a wave size", text);
        p++;
    }
}

static int parse_soak_annotation(vctx *v, const mnode *at, const char *path, const char *text)
{
    int64_t seconds;
    if (ksv_parse_duration_s(text, &seconds) != 0 || seconds > 86400)
        return fail(v, at, path, "expected a duration 0s..24h (e.g. \"60s\", \"5m\"), found "
                    "\"%s\"", text);
    v->spec->wave_soak_s = seconds;
    v->spec->wave_soak_set = true;
    return 0;
}

static int parse_fetch_annotation(vctx *v, const mnode *at, const char *path, const char *text)
{
    if (strcmp(text, "node") != 0 && strcmp(text, "operator") != 0)
        return fail(v, at, path, "expected node or operator, found \"%s\"", text);
    v->spec->fetch_on_operator = strcmp(text, "operator") == 0;
    return 0;
}

static int parse_sha256_annotation(vctx *v, const mnode *at, const char *path, const char *text)
{
    if (strlen(text) != 64)
        return fail(v, at, path, "expected 64 hex digits (a SHA-256), found \"%s\"", text);
    char *lower = strdup(text);
    if (!lower)
        return oom(v);
    for (size_t k = 0; k < 64; k++) {
        if (!isxdigit((unsigned char)lower[k])) {
            free(lower);
            return fail(v, at, path, "expected 64 hex digits (a SHA-256), found \"%s\"", text);
        }
        lower[k] = (char)tolower((unsigned char)lower[k]);
    }
    v->spec->sha256 = lower;
    return 0;
}

int ksv_parse_duration_s(const char *text, int64_t *seconds)
{
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    int64_t scale = 1;
    if (end != text && *end && !end[1]) {
        if (*end == 's')
            scale = 1, end++;
        else if (*end == 'm')
            scale = 60, end++;
        else if (*end == 'h')
            scale = 3600, end++;
    }
    if (end == text || *end || errno == ERANGE || value < 0 || value > INT64_MAX / 3600 ||
        !isdigit((unsigned char)text[0]))
        return -1;
    *seconds = value * scale;
    return 0;
}

/* "600", "600s", "10m" or "1h". */
static int parse_window_annotation(vctx *v, const mnode *at, const char *path, const char *text)
{
    int64_t seconds;
    if (ksv_parse_duration_s(text, &seconds) != 0)
        return fail(v, at, path, "expected seconds (e.g. \"600\", \"10m\"), found \"%s\"", text);
    v->spec->rollback_window_s = seconds;
    return 0;
}

/* Knative's "1".."100" (decimals allowed), as its validation accepts. */
int ksv_parse_utilization_percent(const char *text, double *percent)
{
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    if (end == text || *end || errno || !(x >= 1 && x <= 100) || !isdigit((unsigned char)*text))
        return -1;
    *percent = x;
    return 0;
}

/* Autoscaling annotations: Knative's window (1s..1h; Knative itself wants >= 6s), pod
 * retention and scale-down delay (0..1h), target utilization (1..100 percent), ksv's
 * cold-start queue length (1..100000). */
static int parse_scale_annotation(vctx *v, const mnode *at, const char *path, const char *key,
                                  const char *text)
{
    int64_t value;
    if (strcmp(key, KSV_ANNOTATION_COLD_START_QUEUE) == 0) {
        char *end;
        errno = 0;
        long long n = strtoll(text, &end, 10);
        if (end == text || *end || errno || n < 1 || n > 100000)
            return fail(v, at, path, "expected a number of requests 1..100000, found \"%s\"",
                        text);
        v->spec->cold_start_queue = n;
        return 0;
    }
    if (strcmp(key, KSV_ANNOTATION_TARGET_UTILIZATION) == 0) {
        if (ksv_parse_utilization_percent(text, &v->spec->target_utilization) != 0)
            return fail(v, at, path, "expected a percent 1..100 (e.g. \"70\"), found \"%s\"",
                        text);
        return 0;
    }
    bool window = strcmp(key, KSV_ANNOTATION_SCALE_WINDOW) == 0;
    if (ksv_parse_duration_s(text, &value) != 0 || value > 3600 || (window && value < 1))
        return fail(v, at, path, "expected a duration %s..1h (e.g. \"60s\"), found \"%s\"",
                    window ? "1s" : "0s", text);
    if (window)
        v->spec->scale_window_s = value;
    else if (strcmp(key, KSV_ANNOTATION_SCALE_DOWN_DELAY) == 0)
        v->spec->scale_down_delay_s = value;
    else
        v->spec->scale_retention_s = value;
    return 0;
}

static int read_annotations(vctx *v, const mnode *map)
{
    ksv_isvc *spec = v->spec;
    if (want_map(v, map, "metadata.annotations"))
        return -1;
    spec->annotations = calloc(map->n ? map->n : 1, sizeof *spec->annotations);
    if (!spec->annotations)
        return oom(v);
    for (size_t k = 0; k < map->n; k++) {
        const mn_entry *e = &map->entries[k];
        char path[MAX_PATH_TEXT];
        snprintf(path, sizeof path, "metadata.annotations[%s]", e->key);
        char *value = NULL;
        /* Kubernetes annotation values are strings: `600` unquoted is refused there too. */
        if (get_string(v, e->value, path, &value))
            return -1;
        ksv_kv *kv = &spec->annotations[spec->n_annotations++];
        kv->value = value;
        if (!(kv->key = strdup(e->key)))
            return oom(v);
        int rc;
        if (strcmp(e->key, "ksv.io/nodes") == 0)
            rc = parse_nodes_annotation(v, e->value, path, value);
        else if (strcmp(e->key, "ksv.io/node-selector") == 0)
            rc = parse_selector_annotation(v, e->value, path, value);
        else if (strcmp(e->key, "ksv.io/waves") == 0)
            rc = parse_waves_annotation(v, e->value, path, value);
        else if (strcmp(e->key, "ksv.io/wave-soak") == 0)
            rc = parse_soak_annotation(v, e->value, path, value);
        else if (strcmp(e->key, "ksv.io/sha256") == 0)
            rc = parse_sha256_annotation(v, e->value, path, value);
        else if (strcmp(e->key, KSV_ANNOTATION_FETCH) == 0)
            rc = parse_fetch_annotation(v, e->value, path, value);
        else if (strcmp(e->key, "ksv.io/rollback-window") == 0)
            rc = parse_window_annotation(v, e->value, path, value);
        else if (strcmp(e->key, KSV_ANNOTATION_SCALE_WINDOW) == 0 ||
                 strcmp(e->key, KSV_ANNOTATION_SCALE_RETENTION) == 0 ||
                 strcmp(e->key, KSV_ANNOTATION_SCALE_DOWN_DELAY) == 0 ||
                 strcmp(e->key, KSV_ANNOTATION_TARGET_UTILIZATION) == 0 ||
                 strcmp(e->key, KSV_ANNOTATION_COLD_START_QUEUE) == 0)
            rc = parse_scale_annotation(v, e->value, path, e->key, value);
        else
            rc = not_acted_on(v, path, e->value);
        if (rc)
            return -1;
    }
    if (spec->n_nodes && spec->node_selector)
        return fail(v, map, "metadata.annotations", "ksv.io/nodes and ksv.io/node-selector "
                    "both place the model: keep one");
    return 0;
}

static int read_metadata(vctx *v, const mnode *meta)
{
    ksv_isvc *spec = v->spec;
    if (want_map(v, meta, "metadata"))
        return -1;
    for (size_t k = 0; k < meta->n; k++) {
        const mn_entry *e = &meta->entries[k];
        char path[MAX_PATH_TEXT];
        join_path(path, "metadata", e->key);
        if (strcmp(e->key, "name") == 0) {
            if (is_null(e->value))
                continue;
            if (get_string(v, e->value, path, &spec->name) ||
                check_dns_label(v, e->value, path, spec->name, KSV_MODEL_NAME_MAX))
                return -1;
        } else if (strcmp(e->key, "namespace") == 0) {
            if (is_null(e->value))
                continue;
            if (get_string(v, e->value, path, &spec->namespace_name) ||
                check_dns_label(v, e->value, path, spec->namespace_name, KSV_NAMESPACE_MAX))
                return -1;
        } else if (strcmp(e->key, "annotations") == 0) {
            if (!is_null(e->value) && read_annotations(v, e->value))
                return -1;
        } else if (not_acted_on(v, path, e->value)) {
            return -1;
        }
    }
    if (!spec->name)
        return fail(v, meta, "metadata.name", "missing: every InferenceService needs a name");
    if (!spec->namespace_name && !(spec->namespace_name = strdup("default")))
        return oom(v);
    return 0;
}

/* ---- storage URIs ------------------------------------------------------------------------ */

/* Collapses "", "." and ".." segments of an absolute path, without touching the disk
 * (the model may not be there yet, and a symlinked folder should keep its name). */
static char *normalize_abs_path(const char *path)
{
    size_t len = strlen(path);
    char *out = malloc(len + 2);
    if (!out)
        return NULL;
    size_t n = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t seg_len = (size_t)(p - seg);
        if (seg_len == 0 || (seg_len == 1 && seg[0] == '.'))
            continue;
        if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--; /* the slash before the dropped segment */
            continue;
        }
        out[n++] = '/';
        memcpy(out + n, seg, seg_len);
        n += seg_len;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return out;
}

static char *absolute_path(const char *base_dir, const char *path)
{
    char cwd[4096];
    const char *parts[3] = {NULL, NULL, path};
    if (path[0] != '/') {
        parts[1] = base_dir && *base_dir ? base_dir : NULL;
        if (!parts[1] || parts[1][0] != '/') {
            if (!getcwd(cwd, sizeof cwd))
                return NULL;
            parts[0] = cwd;
        }
    }
    size_t total = 1;
    for (int k = 0; k < 3; k++)
        if (parts[k])
            total += strlen(parts[k]) + 1;
    char *joined = malloc(total);
    if (!joined)
        return NULL;
    joined[0] = '\0';
    for (int k = 0; k < 3; k++) {
        if (!parts[k])
            continue;
        if (joined[0])
            strcat(joined, "/");
        strcat(joined, parts[k]);
    }
    char *normalized = normalize_abs_path(joined);
    free(joined);
    return normalized;
}

static int read_storage_uri(vctx *v, const mnode *node, const char *path)
{
    ksv_isvc *spec = v->spec;
    if (get_string(v, node, path, &spec->storage_uri_written))
        return -1;
    const char *uri = spec->storage_uri_written;
    if (!*uri)
        return fail(v, node, path, "must not be empty");
    const char *sep = strstr(uri, "://");
    size_t scheme_len = sep ? (size_t)(sep - uri) : 0;
    bool has_scheme = sep && scheme_len > 0 && isalpha((unsigned char)uri[0]);
    for (size_t k = 0; has_scheme && k < scheme_len; k++)
        if (!isalnum((unsigned char)uri[k]) && !strchr("+.-", uri[k]))
            has_scheme = false;
    const char *local = uri;
    if (has_scheme) {
        const char *rest = sep + 3;
        if (scheme_len == 4 && strncasecmp(uri, "file", 4) == 0) {
            if (strncmp(rest, "localhost/", 10) == 0)
                rest += 9;
            if (!*rest)
                return fail(v, node, path, "file:// names no path");
            local = rest;
        } else if ((scheme_len == 4 && strncasecmp(uri, "http", 4) == 0) ||
                   (scheme_len == 5 && strncasecmp(uri, "https", 5) == 0) ||
                   (scheme_len == 2 && (strncmp(uri, "s3", 2) == 0 ||
                                        strncmp(uri, "gs", 2) == 0 ||
                                        strncmp(uri, "hf", 2) == 0))) {
            if (!*rest || *rest == '/' || *rest == '?' || *rest == '#')
                return fail(v, node, path, "\"%s\" names no host", uri);
            spec->storage_kind = KSV_STORAGE_HTTP;
            if (!(spec->storage_uri = strdup(uri)))
                return oom(v);
            return 0;
        } else {
            return fail(v, node, path,
                        "ksv cannot fetch %.*s:// URIs (\"%s\"): download the model and give a "
                        "local path or file://, or serve it over http(s)://, s3://, gs:// or hf://",
                        (int)scheme_len, uri, uri);
        }
    }
    spec->storage_kind = KSV_STORAGE_LOCAL;
    if (!(spec->storage_uri = absolute_path(v->base_dir, local)))
        return oom(v);
    return 0;
}

/* ---- resources ---------------------------------------------------------------------------- */

int ksv_parse_memory_quantity(const char *text, uint64_t *bytes)
{
    static const struct {
        const char *suffix;
        double factor;
    } suffixes[] = {
        {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
        {"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0}, {"k", 1e3}, {"M", 1e6},
        {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18}, {"", 1.0},
    };
    const char *p = text;
    if (!isdigit((unsigned char)*p) && *p != '.')
        return -1;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++;
    }
    double factor = 0;
    const char *suffix = p;
    if ((*p == 'e' || *p == 'E') && isdigit((unsigned char)p[1])) {
        char *end;
        long exponent = strtol(p + 1, &end, 10);
        if (*end || exponent > 30)
            return -1;
        factor = pow(10.0, (double)exponent);
    } else {
        for (size_t k = 0; k < sizeof suffixes / sizeof *suffixes; k++)
            if (strcmp(suffix, suffixes[k].suffix) == 0)
                factor = suffixes[k].factor;
        if (factor == 0)
            return -1;
    }
    char number[64];
    size_t n = (size_t)(suffix - text);
    if (n == 0 || n >= sizeof number)
        return -1;
    memcpy(number, text, n);
    number[n] = '\0';
    double value = ceil(strtod(number, NULL) * factor);
    if (!(value >= 0) || value >= 9.2e18)
        return -1;
    *bytes = (uint64_t)value;
    return 0;
}

static int read_resource_list(vctx *v, const mnode *map, const char *prefix,
                              ksv_resource_list *out)
{
    if (want_map(v, map, prefix))
        return -1;
    for (size_t k = 0; k < map->n; k++) {
        const mn_entry *e = &map->entries[k];
        const mnode *value = e->value;
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, e->key);
        if (is_null(value))
            continue;
        if (strcmp(e->key, "nvidia.com/gpu") == 0) {
            int64_t count;
            if (value->type == MN_STRING) {
                char *end;
                errno = 0;
                long long parsed = strtoll(value->str, &end, 10);
                if (!isdigit((unsigned char)value->str[0]) || *end || errno == ERANGE)
                    return fail(v, value, path, "expected a whole number of GPUs, found \"%s\"",
                                value->str);
                count = parsed;
            } else if (get_int(v, value, path, 0, INT64_MAX, &count)) {
                return -1;
            }
            out->has_gpu = true;
            out->gpu = count;
        } else if (strcmp(e->key, "ksv.io/gpu-memory") == 0) {
            if (value->type != MN_STRING ||
                ksv_parse_memory_quantity(value->str, &out->gpu_memory_bytes))
                return fail(v, value, path, "expected a quantity such as \"2Gi\"");
            out->has_gpu_memory = true;
        } else if (strcmp(e->key, "memory") == 0) {
            char text[64];
            if (value->type == MN_INT && value->i >= 0)
                snprintf(text, sizeof text, "%lld", (long long)value->i);
            else if (value->type == MN_STRING)
                snprintf(text, sizeof text, "%s", value->str);
            else
                return fail(v, value, path, "expected a quantity such as \"2Gi\", found %s",
                            mn_type_name(value->type));
            if (ksv_parse_memory_quantity(value->type == MN_STRING ? value->str : text,
                                      &out->memory_bytes))
                return fail(v, value, path,
                            "\"%s\" is not a memory quantity (e.g. 512Mi, 2Gi, 1G)",
                            value->type == MN_STRING ? value->str : text);
            out->has_memory = true;
            free(out->memory);
            if (!(out->memory = strdup(value->type == MN_STRING ? value->str : text)))
                return oom(v);
        } else if (not_acted_on(v, path, value)) {
            return -1; /* cpu and other resources: kept in `original`, not acted on */
        }
    }
    return 0;
}

static int read_resources(vctx *v, const mnode *map, const char *prefix)
{
    if (want_map(v, map, prefix))
        return -1;
    for (size_t k = 0; k < map->n; k++) {
        const mn_entry *e = &map->entries[k];
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, e->key);
        if (is_null(e->value))
            continue;
        if (strcmp(e->key, "limits") == 0) {
            if (read_resource_list(v, e->value, path, &v->spec->limits))
                return -1;
        } else if (strcmp(e->key, "requests") == 0) {
            if (read_resource_list(v, e->value, path, &v->spec->requests))
                return -1;
        } else if (not_acted_on(v, path, e->value)) {
            return -1;
        }
    }
    /* limits.memory is checked against the measured size; requests (defaulting to limits)
     * count against namespace quotas. */
    return 0;
}

/* ---- predictor ------------------------------------------------------------------------------- */

static int read_runtime(vctx *v, const mnode *node, const char *path)
{
    ksv_isvc *spec = v->spec;
    if (get_string(v, node, path, &spec->runtime_written))
        return -1;
    const char *name = spec->runtime_written;
    const char *runtime = NULL;
    if (strcmp(name, KSV_RUNTIME_XGBOOST) == 0 || strcmp(name, KSV_RUNTIME_FOREST) == 0 ||
        strcmp(name, KSV_RUNTIME_AUTO) == 0) {
        runtime = name;
    } else if (IN_LIST(name, mapped_runtimes)) {
        runtime = KSV_RUNTIME_AUTO; /* the same model, as fast as it can be served exactly */
        spec->runtime_mapped = true; /* for xgboost models; read_model undoes it for others */
    } else {
        /* A ServingRuntime by name, resolved when applied (docs/OPERATIONS.md, "External
         * runtimes"). */
        if (!*name || strlen(name) > 63)
            return fail(v, node, path, "expected a runtime name of 1 to 63 characters");
        runtime = name;
        spec->runtime_external = true;
    }
    free(spec->runtime);
    if (!(spec->runtime = strdup(runtime)))
        return oom(v);
    return 0;
}

static int read_model_format(vctx *v, const mnode *map, const char *prefix)
{
    ksv_isvc *spec = v->spec;
    if (want_map(v, map, prefix))
        return -1;
    const mnode *name = NULL;
    for (size_t k = 0; k < map->n; k++) {
        const mn_entry *e = &map->entries[k];
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, e->key);
        if (strcmp(e->key, "name") == 0) {
            name = e->value;
            char *text = NULL;
            if (is_null(name))
                continue;
            if (get_string(v, name, path, &text))
                return -1;
            /* xgboost runs in the engine; any other format needs a ServingRuntime. */
            if (!*text || strlen(text) > 63) {
                fail(v, name, path, "expected a model format name (xgboost, sklearn, ...)");
                free(text);
                return -1;
            }
            for (char *p = text; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            free(spec->model_format);
            spec->model_format = text;
        } else if (strcmp(e->key, "version") == 0) {
            if (is_null(e->value))
                continue;
            if (get_string(v, e->value, path, &spec->model_format_version) ||
                not_acted_on(v, path, e->value))
                return -1;
        } else if (not_acted_on(v, path, e->value)) {
            return -1;
        }
    }
    if (!spec->model_format) {
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, "name");
        return fail(v, map, path, "missing: say which model format (xgboost)");
    }
    return 0;
}

/* spec.predictor.model, or spec.predictor.xgboost when shorthand. */
static int read_model(vctx *v, const mnode *model, const char *prefix, bool shorthand)
{
    ksv_isvc *spec = v->spec;
    if (want_map(v, model, prefix))
        return -1;
    const mnode *storage = NULL;
    for (size_t k = 0; k < model->n; k++) {
        const mn_entry *e = &model->entries[k];
        const mnode *value = e->value;
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, e->key);
        int rc = 0;
        if (is_null(value))
            continue;
        if (strcmp(e->key, "storageUri") == 0) {
            storage = value;
            rc = read_storage_uri(v, value, path);
        } else if (!shorthand && strcmp(e->key, "modelFormat") == 0) {
            rc = read_model_format(v, value, path);
        } else if (!shorthand && strcmp(e->key, "runtime") == 0) {
            rc = read_runtime(v, value, path);
        } else if (strcmp(e->key, "protocolVersion") == 0) {
            /* ksv answers V1 and V2 whatever this says, as KServe's servers do. */
            rc = get_string(v, value, path, &spec->protocol_version);
            if (!rc && !IN_LIST(spec->protocol_version, protocol_versions))
                rc = fail(v, value, path, "\"%s\" is not one of v1, v2, grpc-v1, grpc-v2",
                          spec->protocol_version);
            if (!rc)
                rc = not_acted_on(v, path, value);
        } else if (strcmp(e->key, "runtimeVersion") == 0) {
            rc = get_string(v, value, path, &spec->runtime_version);
            if (!rc)
                rc = not_acted_on(v, path, value);
        } else if (strcmp(e->key, "resources") == 0) {
            rc = read_resources(v, value, path);
        } else {
            rc = not_acted_on(v, path, value);
        }
        if (rc)
            return -1;
    }
    if (shorthand && !(spec->model_format = strdup("xgboost")))
        return oom(v);
    if (!shorthand && !spec->model_format) {
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, "modelFormat");
        return fail(v, model, path, "missing: say which model format (modelFormat.name: xgboost)");
    }
    if (!storage) {
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, "storageUri");
        return fail(v, model, path, "missing: say where the model file is");
    }
    if (strcmp(spec->model_format, "lightgbm") == 0 && !spec->runtime_external) {
        /* LightGBM's text model runs in the engine too, on ksv-forest (docs/FOREST.md,
         * "LightGBM"); KServe's own runtime for it, kserve-lgbserver, means the same.
         * kserve-mlserver (mapped above for xgboost) and any other name stay
         * ServingRuntimes. */
        const char *w = spec->runtime_written;
        if (w && strcmp(w, KSV_RUNTIME_XGBOOST) == 0)
            return fail(v, mn_map_get(model, "runtime"), "spec.predictor.model.runtime",
                        "ksv-xgboost serves xgboost models only; model format lightgbm runs on "
                        "ksv-forest (leave runtime out)");
        if (!w || !spec->runtime_mapped || strcmp(w, "kserve-lgbserver") == 0) {
            free(spec->runtime);
            if (!(spec->runtime = strdup(KSV_RUNTIME_FOREST)))
                return oom(v);
            return 0;
        }
    }
    if (strcmp(spec->model_format, "xgboost") != 0 && !spec->runtime_external) {
        /* Another format: served by a ServingRuntime, named or chosen by format at apply.
         * A KServe name mapped for xgboost keeps its own meaning here. */
        if (spec->runtime_written && !spec->runtime_mapped)
            return fail(v, mn_map_get(model, "runtime"), "spec.predictor.model.runtime",
                        "%s serves xgboost models only; model format %s needs a ServingRuntime "
                        "(see data/runtimes)", spec->runtime_written, spec->model_format);
        free(spec->runtime);
        spec->runtime_mapped = false;
        spec->runtime_external = true;
        if (!(spec->runtime = strdup(spec->runtime_written ? spec->runtime_written : "")))
            return oom(v);
    }
    return 0;
}

static int read_predictor(vctx *v, const mnode *pred)
{
    ksv_isvc *spec = v->spec;
    const char *prefix = "spec.predictor";
    if (want_map(v, pred, prefix))
        return -1;
    const mn_entry *impl = NULL;
    for (size_t k = 0; k < pred->n; k++) {
        const mn_entry *e = &pred->entries[k];
        if (is_null(e->value))
            continue;
        bool is_model = strcmp(e->key, "model") == 0;
        if (!is_model && !IN_LIST(e->key, framework_keys))
            continue;
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, e->key);
        /* These are about the key itself, so they point at it. */
        const mnode key_at = {.line = e->line, .col = e->col};
        if (!is_model && strcmp(e->key, "xgboost") != 0)
            return fail(v, &key_at, path,
                        "the %s shorthand is not read: write spec.predictor.model with "
                        "modelFormat.name: %s", e->key, e->key);
        if (impl)
            return fail(v, &key_at, path, "only one of spec.predictor.%s and spec.predictor.%s "
                        "may be given", impl->key, e->key);
        impl = e;
    }
    if (!impl)
        return fail(v, pred, prefix,
                    "no model: give spec.predictor.model (modelFormat, storageUri) or the "
                    "shorthand spec.predictor.xgboost (storageUri)");
    spec->shorthand = strcmp(impl->key, "xgboost") == 0;
    for (size_t k = 0; k < pred->n; k++) {
        const mn_entry *e = &pred->entries[k];
        const mnode *value = e->value;
        char path[MAX_PATH_TEXT];
        join_path(path, prefix, e->key);
        int rc = 0;
        if (is_null(value))
            continue;
        if (e == impl) {
            rc = read_model(v, value, path, spec->shorthand);
        } else if (strcmp(e->key, "minReplicas") == 0) {
            spec->has_min_replicas = true;
            rc = get_int(v, value, path, 0, KSV_REPLICAS_MAX, &spec->min_replicas);
        } else if (strcmp(e->key, "maxReplicas") == 0) {
            spec->has_max_replicas = true;
            rc = get_int(v, value, path, 0, KSV_REPLICAS_MAX, &spec->max_replicas);
        } else if (strcmp(e->key, "scaleTarget") == 0) {
            spec->has_scale_target = true;
            rc = get_int(v, value, path, 1, INT32_MAX, &spec->scale_target);
        } else if (strcmp(e->key, "scaleMetric") == 0) {
            rc = get_string(v, value, path, &spec->scale_metric);
            if (!rc && !IN_LIST(spec->scale_metric, scale_metrics))
                rc = fail(v, value, path, "\"%s\" is not one of concurrency, rps, cpu, memory",
                          spec->scale_metric);
            /* The KPA scales on concurrency or rps; cpu and memory are the HPA's. */
            if (!rc && strcmp(spec->scale_metric, "concurrency") != 0 &&
                strcmp(spec->scale_metric, "rps") != 0)
                rc = not_acted_on(v, path, value);
        } else if (strcmp(e->key, "containerConcurrency") == 0) {
            spec->has_container_concurrency = true;
            rc = get_int(v, value, path, 0, KSV_CONTAINER_CONCURRENCY_MAX,
                         &spec->container_concurrency);
        } else if (strcmp(e->key, "timeout") == 0) {
            spec->has_timeout = true;
            rc = get_int(v, value, path, 1, KSV_TIMEOUT_S_MAX, &spec->timeout_s);
        } else if (strcmp(e->key, "canaryTrafficPercent") == 0) {
            int64_t percent;
            rc = get_int(v, value, path, 0, 100, &percent);
            spec->has_canary = true;
            spec->canary_percent = (int)percent;
        } else {
            rc = not_acted_on(v, path, value);
        }
        if (rc)
            return -1;
    }
    if (spec->max_replicas > 0 && spec->max_replicas < spec->min_replicas) {
        const mnode *at = mn_map_get(pred, "maxReplicas");
        return fail(v, at, "spec.predictor.maxReplicas",
                    "%lld is below minReplicas %lld (0 means no bound)",
                    (long long)spec->max_replicas, (long long)spec->min_replicas);
    }
    return 0;
}

static int read_spec(vctx *v, const mnode *node)
{
    if (want_map(v, node, "spec"))
        return -1;
    const mnode *pred = NULL;
    for (size_t k = 0; k < node->n; k++) {
        const mn_entry *e = &node->entries[k];
        char path[MAX_PATH_TEXT];
        join_path(path, "spec", e->key);
        if (strcmp(e->key, "predictor") == 0)
            pred = e->value;
        else if (not_acted_on(v, path, e->value))
            return -1;
    }
    if (is_null(pred))
        return fail(v, node, "spec.predictor", "missing: an InferenceService needs a predictor");
    return read_predictor(v, pred);
}

/* ---- documents -------------------------------------------------------------------------------- */

static const mnode *require(vctx *v, const mnode *map, const char *key, const char *why)
{
    const mnode *value = mn_map_get(map, key);
    if (is_null(value)) {
        fail(v, map, key, "missing: %s", why);
        return NULL;
    }
    return value;
}

static int read_isvc(vctx *v, const mnode *root, int line)
{
    ksv_isvc *spec = v->spec;
    spec->line = line;
    spec->rollback_window_s = KSV_DEFAULT_ROLLBACK_WINDOW_S;
    spec->wave_soak_s = 60;
    spec->scale_window_s = KSV_DEFAULT_SCALE_WINDOW_S;
    spec->cold_start_queue = KSV_DEFAULT_COLD_START_QUEUE;
    spec->target_utilization = KSV_DEFAULT_TARGET_UTILIZATION_PERCENT;
    spec->min_replicas = 1;
    if (!(spec->source = strdup(v->file)) || !(spec->runtime = strdup(KSV_RUNTIME_AUTO)) ||
        !(spec->protocol_version = strdup("v1")))
        return oom(v);
    if (root->type != MN_MAP)
        return fail(v, root, NULL, "expected a map (an InferenceService), found %s",
                    mn_type_name(root->type));
    const mnode *kind = require(v, root, "kind", "expected kind: InferenceService");
    if (!kind)
        return -1;
    if (kind->type != MN_STRING)
        return fail(v, kind, "kind", "expected a string, found %s", mn_type_name(kind->type));
    if (strcmp(kind->str, KSV_MANIFEST_KIND) != 0)
        return fail(v, kind, "kind", "kind \"%s\" is not supported: ksv applies InferenceService, "
                    "ServingRuntime, ResourceQuota and Canary (flagger.app/v1beta1) manifests "
                    "only", kind->str);
    const mnode *api = require(v, root, "apiVersion", "expected " KSV_MANIFEST_API_VERSION);
    if (!api)
        return -1;
    if (api->type != MN_STRING)
        return fail(v, api, "apiVersion", "expected a string, found %s", mn_type_name(api->type));
    if (strncmp(api->str, "serving.kserve.io/v1alpha", 25) == 0 ||
        strncmp(api->str, "serving.kubeflow.org/", 21) == 0)
        return fail(v, api, "apiVersion",
                    "%s is an older InferenceService API that ksv does not read: rewrite it as "
                    KSV_MANIFEST_API_VERSION " (spec.predictor.model or spec.predictor.xgboost)",
                    api->str);
    if (strcmp(api->str, KSV_MANIFEST_API_VERSION) != 0)
        return fail(v, api, "apiVersion", "\"%s\" is not supported: expected "
                    KSV_MANIFEST_API_VERSION, api->str);
    const mnode *meta = require(v, root, "metadata", "expected metadata.name");
    if (!meta || read_metadata(v, meta))
        return -1;
    const mnode *spec_node = require(v, root, "spec", "expected spec.predictor");
    if (!spec_node || read_spec(v, spec_node))
        return -1;
    for (size_t k = 0; k < root->n; k++) {
        const char *key = root->entries[k].key;
        if (strcmp(key, "apiVersion") && strcmp(key, "kind") && strcmp(key, "metadata") &&
            strcmp(key, "spec") && not_acted_on(v, key, root->entries[k].value))
            return -1;
    }
    bool json_ok = true;
    spec->original = mn_to_json(root, &json_ok);
    if (!json_ok)
        return oom(v);
    return 0;
}

void ksv_isvc_free(ksv_isvc *spec)
{
    if (!spec)
        return;
    free(spec->source);
    free(spec->name);
    free(spec->namespace_name);
    for (size_t k = 0; k < spec->n_annotations; k++) {
        free(spec->annotations[k].key);
        free(spec->annotations[k].value);
    }
    free(spec->annotations);
    for (size_t k = 0; k < spec->n_nodes; k++)
        free(spec->nodes[k]);
    free(spec->nodes);
    free(spec->node_selector);
    free(spec->sha256);
    free(spec->model_format);
    free(spec->model_format_version);
    free(spec->runtime);
    free(spec->runtime_written);
    free(spec->protocol_version);
    free(spec->runtime_version);
    free(spec->storage_uri);
    free(spec->storage_uri_written);
    free(spec->scale_metric);
    free(spec->limits.memory);
    free(spec->requests.memory);
    json_object_put(spec->original);
    for (size_t k = 0; k < spec->n_not_acted_on; k++)
        free(spec->not_acted_on[k]);
    free(spec->not_acted_on);
    memset(spec, 0, sizeof *spec);
}

void ksv_manifest_list_free(ksv_manifest_list *list)
{
    KSV_RECORDS_FREE(list->items, list->n, ksv_isvc_free);
    KSV_RECORDS_FREE(list->quotas, list->n_quotas, ksv_resource_quota_free);
    KSV_RECORDS_FREE(list->canaries, list->n_canaries, ksv_canary_free);
    KSV_RECORDS_FREE(list->runtimes, list->n_runtimes, ksv_serving_runtime_free);
}

static int add_spec(vctx *v, ksv_manifest_list *out, size_t *cap, const mnode *root, int line)
{
    if (out->n == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 4;
        ksv_isvc *grown = realloc(out->items, grown_cap * sizeof *grown);
        if (!grown)
            return oom(v);
        out->items = grown;
        *cap = grown_cap;
    }
    ksv_isvc *spec = &out->items[out->n++];
    memset(spec, 0, sizeof *spec);
    v->spec = spec;
    v->cap_not_acted = 0;
    if (read_isvc(v, root, line))
        return -1;
    for (size_t k = 0; k + 1 < out->n; k++) {
        const ksv_isvc *other = &out->items[k];
        if (strcmp(other->name, spec->name) == 0 &&
            strcmp(other->namespace_name, spec->namespace_name) == 0)
            return fail(v, mn_map_get(mn_map_get(root, "metadata"), "name"), "metadata.name",
                        "%s/%s is defined twice in this file (first at line %d)",
                        spec->namespace_name, spec->name, other->line);
    }
    return 0;
}

static int add_runtime(vctx *v, ksv_manifest_list *out, const mnode *root)
{
    bool ok = true;
    json_object *doc = mn_to_json(root, &ok);
    if (!ok)
        return oom(v);
    ksv_serving_runtime *grown = realloc(out->runtimes, (out->n_runtimes + 1) * sizeof *grown);
    if (!grown) {
        json_object_put(doc);
        return oom(v);
    }
    out->runtimes = grown;
    char where[600];
    snprintf(where, sizeof where, "%s:%d", v->file, root->line);
    ksv_serving_runtime *rt = &out->runtimes[out->n_runtimes];
    int rc = ksv_serving_runtime_from_json(doc, where, rt, v->err);
    json_object_put(doc);
    if (rc != 0)
        return -1;
    out->n_runtimes++;
    rt->line = root->line;
    if (!(rt->source = strdup(v->file)))
        return oom(v);
    return 0;
}

/* One document, or one item of a List: dispatched on its kind. */
static int read_document(vctx *v, ksv_manifest_list *out, size_t *cap, const mnode *root,
                         bool in_list)
{
    const mnode *kind = root->type == MN_MAP ? mn_map_get(root, "kind") : NULL;
    const char *k = kind && kind->type == MN_STRING ? kind->str : "";
    if (strcmp(k, "List") == 0) {
        if (in_list)
            return fail(v, kind, "kind", "a List inside a List is not supported: put its "
                        "items in the outer List");
        const mnode *items = mn_map_get(root, "items");
        if (is_null(items))
            return 0;
        if (items->type != MN_SEQ)
            return fail(v, items, "items", "expected a list, found %s",
                        mn_type_name(items->type));
        for (size_t i = 0; i < items->n; i++)
            if (read_document(v, out, cap, items->items[i], true))
                return -1;
        return 0;
    }
    /* Canary, ResourceQuota and ServingRuntime documents sit in a List as kubectl allows, like
     * InferenceServices; each is named by its own first line. */
    if (strcmp(k, "Canary") == 0)
        return ksv_manifest_read_canary_(root, root->line, v->file, out, v->err);
    if (strcmp(k, "ResourceQuota") == 0)
        return ksv_manifest_read_quota_(root, root->line, v->file, out, v->err);
    if (ksv_is_serving_runtime_kind(k))
        return add_runtime(v, out, root);
    /* A document is named by its first line of content, not by its `---`. */
    return add_spec(v, out, cap, root, root->line);
}

static int read_documents(vctx *v, const mn_docs *docs, ksv_manifest_list *out)
{
    size_t cap = 0;
    for (size_t d = 0; d < docs->n; d++) {
        const mnode *root = docs->docs[d].root;
        if (is_null(root))
            continue; /* an empty document, as between two `---` */
        if (read_document(v, out, &cap, root, false))
            return -1;
    }
    if (out->n == 0 && out->n_quotas == 0 && out->n_canaries == 0 && out->n_runtimes == 0)
        return ksv_err_set(v->err, 400, "%s:1:1: no InferenceService or ServingRuntime in this "
                           "file", v->file);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int ksv_manifest_parse_buffer(const char *text, size_t len, const char *display_name,
                              const char *base_dir, ksv_manifest_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    const char *name = display_name ? display_name : "<manifest>";
    if (!text)
        text = "", len = 0;
    if (len > KSV_MANIFEST_MAX_BYTES)
        return ksv_err_set(err, 413, "%s: %zu bytes is larger than the %u bytes a manifest may "
                           "have", name, len, KSV_MANIFEST_MAX_BYTES);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        return ksv_err_set(err, 400, "%s:%d: binary data (a NUL byte): not a YAML or JSON "
                           "manifest", name, line);
    }
    size_t start = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        start = 3; /* a UTF-8 byte order mark, as some editors write */
    while (start < len && isspace((unsigned char)text[start]))
        start++;
    mn_docs docs = {0};
    int rc;
    bool json_name = ends_with(name, ".json");
    bool json_text = start < len && (text[start] == '{' || text[start] == '[');
    if (json_name) {
        rc = mn_read_json(text, len, name, &docs, err);
    } else if (json_text && mn_read_json(text, len, name, &docs, NULL) == 0) {
        rc = 0;
    } else {
        rc = mn_read_yaml(text, len, name, &docs, err);
    }
    if (rc != 0)
        return -1;
    vctx v = {.file = name, .base_dir = base_dir, .err = err};
    rc = read_documents(&v, &docs, out);
    mn_docs_free(&docs);
    if (rc != 0)
        ksv_manifest_list_free(out);
    return rc;
}

int ksv_manifest_load_file(const char *path, ksv_manifest_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ksv_err_set(err, 404, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 64 * 1024, len = 0;
    char *text = malloc(cap);
    int rc = 0;
    while (text) {
        if (len == cap) {
            if (cap > KSV_MANIFEST_MAX_BYTES) {
                rc = ksv_err_set(err, 413, "%s: larger than the %u bytes a manifest may have",
                                 path, KSV_MANIFEST_MAX_BYTES);
                break;
            }
            char *grown = realloc(text, cap * 2);
            if (!grown) {
                free(text);
                text = NULL;
                break;
            }
            text = grown;
            cap *= 2;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = ksv_err_set(err, 404, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!text)
        return ksv_err_set(err, 500, "%s: out of memory", path);
    if (rc == 0) {
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (!dir) {
            rc = ksv_err_set(err, 500, "%s: out of memory", path);
        } else {
            if (slash == dir)
                dir[1] = '\0';
            else if (slash)
                *slash = '\0';
            else
                strcpy(dir, ".");
            rc = ksv_manifest_parse_buffer(text, len, path, dir, out, err);
        }
        free(dir);
    }
    free(text);
    return rc;
}

const char *const *ksv_isvc_not_acted_on(const ksv_isvc *spec, size_t *n)
{
    *n = spec->n_not_acted_on;
    return (const char *const *)spec->not_acted_on;
}

/* Appends one note line, filtered: notes quote the file's keys and values. */
static void put_note(ksv_sb *out, ksv_sb *line)
{
    if (line->oom) {
        out->oom = true;
    } else if (line->len) {
        ksv_sb_puts(out, ksv_sanitize(line->data));
        ksv_sb_putc(out, '\n');
    }
    ksv_sb_reset(line);
}

/* "FILE:LINE: [KIND ]NS/NAME: not acted on: a, b" when there is anything to list. */
static void not_acted_note(ksv_sb *out, ksv_sb *line, const char *source, int at,
                           const char *kind, const char *ns, const char *name,
                           char *const *paths, size_t n)
{
    if (n == 0)
        return;
    ksv_sb_printf(line, "%s:%d: %s%s/%s: not acted on: ", source, at, kind, ns, name);
    for (size_t j = 0; j < n; j++)
        ksv_sb_printf(line, "%s%s", j ? ", " : "", paths[j]);
    put_note(out, line);
}

void ksv_manifest_format_notes(const ksv_manifest_list *list, ksv_sb *out)
{
    ksv_sb line;
    ksv_sb_init(&line);
    for (size_t k = 0; k < list->n; k++) {
        const ksv_isvc *spec = &list->items[k];
        if (spec->runtime_mapped)
            ksv_sb_printf(&line, "%s:%d: %s/%s: runtime %s mapped to %s", spec->source,
                          spec->line, spec->namespace_name, spec->name, spec->runtime_written,
                          spec->runtime);
        put_note(out, &line);
        not_acted_note(out, &line, spec->source, spec->line, "", spec->namespace_name,
                       spec->name, spec->not_acted_on, spec->n_not_acted_on);
    }
    for (size_t k = 0; k < list->n_quotas; k++) {
        const ksv_resource_quota *q = &list->quotas[k];
        not_acted_note(out, &line, q->source, q->line, "ResourceQuota ", q->namespace_name,
                       q->name, q->not_acted_on, q->n_not_acted_on);
    }
    for (size_t k = 0; k < list->n_canaries; k++) {
        const ksv_canary *c = &list->canaries[k];
        for (size_t i = 0; i < list->n; i++) {
            const ksv_isvc *spec = &list->items[i];
            if (spec->has_canary && strcmp(spec->name, c->target) == 0 &&
                strcmp(spec->namespace_name, c->namespace_name) == 0) {
                ksv_sb_printf(&line, "%s:%d: %s/%s: canaryTrafficPercent ignored: Canary %s "
                              "gates its rollouts", spec->source, spec->line,
                              spec->namespace_name, spec->name, c->name);
                put_note(out, &line);
            }
        }
        not_acted_note(out, &line, c->source, c->line, "Canary ", c->namespace_name, c->name,
                       c->not_acted_on, c->n_not_acted_on);
    }
    ksv_sb_free(&line);
}
