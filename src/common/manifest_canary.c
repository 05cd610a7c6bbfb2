/* manifest_canary.c: Flagger `Canary` documents (flagger.app/v1beta1) read into ksv_canary,
 * and the engine rollout policy made from one (docs/API.md, "PUT .../rollout").
 *
 * Fields acted on: spec.targetRef (an InferenceService), spec.progressDeadlineSeconds,
 * spec.skipAnalysis (Flagger's: the canary is promoted once ready, without checks),
 * spec.analysis.{interval, threshold, stepWeight, maxWeight, stepWeights, mirror,
 * mirrorWeight, iterations, metrics[].{name, thresholdRange.min/max, interval, minRequests}}.
 * Other fields of Flagger's schema are kept and listed once as not acted on. Refused with
 * "FILE:LINE:COL: FIELD: reason": an unknown metric, a metric without thresholdRange,
 * stepWeight 0 or over 100, an interval under 1 s, a targetRef that is not an
 * InferenceService (a targetRef naming nothing is refused by `ksv apply`, which knows the
 * models). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/field_limits.h"
#include "common/manifest.h"
#include "common/manifest_tree.h"

#define CANARY_API "flagger.app/v1beta1"

typedef struct cctx {
    const char *file;
    ksv_err *err;
    ksv_canary *c;
    size_t cap_not_acted;
} cctx;

static int cfail(cctx *v, const mnode *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cfail(cctx *v, const mnode *at, const char *path, const char *fmt, ...)
{
    char reason[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    int line = at ? at->line : v->c->line, col = at ? at->col : 1;
    return ksv_err_set(v->err, 400, "%s:%d:%d: %s: %s", v->file, line, col, path, reason);
}

static int coom(cctx *v)
{
    return ksv_err_set(v->err, 500, "%s: out of memory reading a Canary", v->file);
}

static bool absent(const mnode *n)
{
    return !n || n->type == MN_NULL;
}

static int kept(cctx *v, const char *path)
{
    ksv_canary *c = v->c;
    if (c->n_not_acted_on == v->cap_not_acted) {
        size_t cap = v->cap_not_acted ? 2 * v->cap_not_acted : 8;
        char **p = realloc(c->not_acted_on, cap * sizeof *p);
        if (!p)
            return coom(v);
        c->not_acted_on = p;
        v->cap_not_acted = cap;
    }
    if (!(c->not_acted_on[c->n_not_acted_on] = strdup(path)))
        return coom(v);
    c->n_not_acted_on++;
    return 0;
}

static int want(cctx *v, const mnode *n, mn_type type, const char *path)
{
    if (n->type != type && !(type == MN_FLOAT && n->type == MN_INT))
        return cfail(v, n, path, "expected %s, found %s",
                     type == MN_MAP ? "a map" : type == MN_SEQ ? "a list"
                     : type == MN_STRING ? "a string" : type == MN_BOOL ? "true or false"
                     : type == MN_INT ? "an integer" : "a number",
                     mn_type_name(n->type));
    return 0;
}

static int int_in(cctx *v, const mnode *n, const char *path, int64_t lo, int64_t hi, int64_t *out)
{
    if (want(v, n, MN_INT, path))
        return -1;
    if (n->i < lo || n->i > hi)
        return cfail(v, n, path, "must be between %lld and %lld, found %lld", (long long)lo,
                     (long long)hi, (long long)n->i);
    *out = n->i;
    return 0;
}

static double num_of(const mnode *n)
{
    return n->type == MN_INT ? (double)n->i : n->d;
}

/* A Go duration as Flagger writes them: "30s", "1m", "1m30s", "500ms", "2h". */
static int duration(cctx *v, const mnode *n, const char *path, double *out)
{
    if (n->type == MN_INT) { /* a bare number: seconds */
        *out = (double)n->i;
        return 0;
    }
    if (want(v, n, MN_STRING, path))
        return -1;
    const char *p = n->str;
    double total = 0;
    bool any = false;
    while (*p) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || x < 0)
            return cfail(v, n, path, "\"%s\" is not a duration (e.g. 30s, 1m, 1m30s)", n->str);
        p = end;
        double unit;
        if (strncmp(p, "ms", 2) == 0)
            unit = 0.001, p += 2;
        else if (*p == 's')
            unit = 1, p++;
        else if (*p == 'm')
            unit = 60, p++;
        else if (*p == 'h')
            unit = 3600, p++;
        else
            return cfail(v, n, path, "\"%s\" is not a duration (e.g. 30s, 1m, 1m30s)", n->str);
        total += x * unit;
        any = true;
    }
    if (!any || total > 30 * 86400.0)
        return cfail(v, n, path, "\"%s\" is not a duration of at most 30 days", n->str);
    *out = total;
    return 0;
}

static const char *const metric_names[] = {"request-success-rate", "request-duration",
                                           "prediction-disagreement"};

static int read_metric(cctx *v, const mnode *m, size_t idx, ksv_canary_metric *out)
{
    char path[96], sub[128];
    snprintf(path, sizeof path, "spec.analysis.metrics[%zu]", idx);
    if (want(v, m, MN_MAP, path))
        return -1;
    out->min_requests = 100;
    const mnode *name = mn_map_get(m, "name");
    snprintf(sub, sizeof sub, "%s.name", path);
    if (absent(name))
        return cfail(v, m, sub, "missing: a metric needs a name");
    if (want(v, name, MN_STRING, sub))
        return -1;
    bool known = false;
    for (size_t k = 0; k < sizeof metric_names / sizeof *metric_names; k++)
        known |= strcmp(name->str, metric_names[k]) == 0;
    if (!known)
        return cfail(v, name, sub, "unknown metric \"%s\": ksv measures request-success-rate, "
                     "request-duration and prediction-disagreement itself (metric templates "
                     "are not read)", name->str);
    if (!(out->name = strdup(name->str)))
        return coom(v);
    double hi = strcmp(out->name, "request-success-rate") == 0      ? 100
                : strcmp(out->name, "prediction-disagreement") == 0 ? 1
                                                                    : 1e9;
    for (size_t k = 0; k < m->n; k++) {
        const mn_entry *e = &m->entries[k];
        snprintf(sub, sizeof sub, "%s.%s", path, e->key);
        if (strcmp(e->key, "name") == 0 || absent(e->value))
            continue;
        if (strcmp(e->key, "thresholdRange") == 0) {
            if (want(v, e->value, MN_MAP, sub))
                return -1;
            for (size_t j = 0; j < e->value->n; j++) {
                const mn_entry *r = &e->value->entries[j];
                char rp[160];
                snprintf(rp, sizeof rp, "%s.%s", sub, r->key);
                bool is_min = strcmp(r->key, "min") == 0, is_max = strcmp(r->key, "max") == 0;
                if (!is_min && !is_max)
                    return cfail(v, r->value, rp, "thresholdRange has min and max only");
                if (absent(r->value))
                    continue;
                if (want(v, r->value, MN_FLOAT, rp))
                    return -1;
                double x = num_of(r->value);
                if (!(x >= 0 && x <= hi))
                    return cfail(v, r->value, rp, "must be between 0 and %g for %s, found %g",
                                 hi, out->name, x);
                if (is_min) {
                    out->has_min = true;
                    out->min = x;
                } else {
                    out->has_max = true;
                    out->max = x;
                }
            }
        } else if (strcmp(e->key, "interval") == 0) {
            if (duration(v, e->value, sub, &out->interval_s))
                return -1;
            if (out->interval_s < 1)
                return cfail(v, e->value, sub, "must be at least 1s");
        } else if (strcmp(e->key, "minRequests") == 0) {
            if (int_in(v, e->value, sub, 1, 1000000000, &out->min_requests))
                return -1;
        } else if (kept(v, sub)) {
            return -1;
        }
    }
    snprintf(sub, sizeof sub, "%s.thresholdRange", path);
    if (!out->has_min && !out->has_max)
        return cfail(v, m, sub, "missing: %s needs thresholdRange.min and/or .max", out->name);
    if (out->has_min && out->has_max && out->min > out->max)
        return cfail(v, m, sub, "min %g is above max %g", out->min, out->max);
    return 0;
}

static int read_analysis(cctx *v, const mnode *a)
{
    ksv_canary *c = v->c;
    if (want(v, a, MN_MAP, "spec.analysis"))
        return -1;
    const mnode *interval_node = NULL, *step_node = NULL;
    for (size_t k = 0; k < a->n; k++) {
        const mn_entry *e = &a->entries[k];
        const mnode *x = e->value;
        char path[128];
        snprintf(path, sizeof path, "spec.analysis.%s", e->key);
        if (absent(x))
            continue;
        int rc = 0;
        if (strcmp(e->key, "interval") == 0) {
            interval_node = x;
            rc = duration(v, x, path, &c->interval_s);
            if (rc == 0 && c->interval_s < 1)
                rc = cfail(v, x, path, "must be at least 1s, found %s", x->str ? x->str : "0");
        } else if (strcmp(e->key, "threshold") == 0) {
            rc = int_in(v, x, path, 1, 1000, &c->threshold);
        } else if (strcmp(e->key, "stepWeight") == 0) {
            step_node = x;
            rc = int_in(v, x, path, 1, 100, &c->step_weight);
        } else if (strcmp(e->key, "maxWeight") == 0) {
            rc = int_in(v, x, path, 1, 100, &c->max_weight);
        } else if (strcmp(e->key, "stepWeights") == 0) {
            if (want(v, x, MN_SEQ, path))
                return -1;
            if (x->n == 0 || x->n > 100)
                return cfail(v, x, path, "expected 1..100 weights");
            if (!(c->step_weights = calloc(x->n, sizeof *c->step_weights)))
                return coom(v);
            for (size_t i = 0; i < x->n; i++) {
                char ip[160];
                snprintf(ip, sizeof ip, "%s[%zu]", path, i);
                if (int_in(v, x->items[i], ip, 1, 100, &c->step_weights[i]))
                    return -1;
                if (i > 0 && c->step_weights[i] <= c->step_weights[i - 1])
                    return cfail(v, x->items[i], ip, "weights must increase");
                c->n_step_weights = i + 1;
            }
        } else if (strcmp(e->key, "mirror") == 0) {
            rc = want(v, x, MN_BOOL, path);
            c->mirror = x->b;
        } else if (strcmp(e->key, "mirrorWeight") == 0) {
            rc = int_in(v, x, path, 1, 100, &c->mirror_weight);
        } else if (strcmp(e->key, "iterations") == 0) {
            rc = int_in(v, x, path, 0, 1000, &c->iterations);
        } else if (strcmp(e->key, "metrics") == 0) {
            if (want(v, x, MN_SEQ, path))
                return -1;
            if (x->n > 8)
                return cfail(v, x, path, "at most 8 metrics");
            if (!(c->metrics = calloc(x->n ? x->n : 1, sizeof *c->metrics)))
                return coom(v);
            for (size_t i = 0; i < x->n; i++) {
                c->n_metrics = i + 1;
                if (read_metric(v, x->items[i], i, &c->metrics[i]))
                    return -1;
            }
        } else {
            rc = kept(v, path);
        }
        if (rc)
            return -1;
    }
    if (!interval_node)
        return cfail(v, a, "spec.analysis.interval", "missing: the analysis needs an interval");
    if (c->step_weight && c->n_step_weights)
        return cfail(v, step_node, "spec.analysis.stepWeight",
                     "give stepWeight (+ maxWeight) or stepWeights, not both");
    if (!c->step_weight && !c->n_step_weights && !c->mirror)
        return cfail(v, a, "spec.analysis.stepWeight",
                     "missing: give stepWeight (+ maxWeight) or stepWeights");
    if (c->step_weight && c->max_weight && c->step_weight > c->max_weight)
        return cfail(v, step_node, "spec.analysis.stepWeight", "%lld is above maxWeight %lld",
                     (long long)c->step_weight, (long long)c->max_weight);
    for (size_t i = 0; i < c->n_metrics; i++) {
        if (strcmp(c->metrics[i].name, "prediction-disagreement") == 0 && !c->mirror)
            return cfail(v, a, "spec.analysis.mirror",
                         "prediction-disagreement compares mirrored answers: set mirror: true");
        if (c->metrics[i].interval_s > 16 * c->interval_s)
            return cfail(v, a, "spec.analysis.metrics",
                         "metric %s: interval is more than 16 analysis intervals",
                         c->metrics[i].name);
    }
    return 0;
}

static int read_canary(cctx *v, const mnode *root)
{
    ksv_canary *c = v->c;
    c->threshold = 5;
    c->progress_deadline_s = 600;
    c->mirror_weight = 100;
    if (!(c->source = strdup(v->file)))
        return coom(v);
    const mnode *api = mn_map_get(root, "apiVersion");
    if (absent(api) || api->type != MN_STRING || strcmp(api->str, CANARY_API) != 0)
        return cfail(v, absent(api) ? root : api, "apiVersion",
                     "a Canary must be apiVersion: " CANARY_API);
    const mnode *meta = mn_map_get(root, "metadata"), *spec = mn_map_get(root, "spec");
    if (absent(meta) || want(v, meta, MN_MAP, "metadata"))
        return absent(meta) ? cfail(v, root, "metadata", "missing: expected metadata.name") : -1;
    const mnode *name = mn_map_get(meta, "name"), *ns = mn_map_get(meta, "namespace");
    if (absent(name) || want(v, name, MN_STRING, "metadata.name"))
        return absent(name) ? cfail(v, meta, "metadata.name", "missing") : -1;
    if (!absent(ns) && want(v, ns, MN_STRING, "metadata.namespace"))
        return -1;
    const char *why = ksv_dns_label_problem(name->str, KSV_DNS_LABEL_MAX);
    if (why)
        return cfail(v, name, "metadata.name", "\"%.80s\" %s", name->str, why);
    if (!absent(ns) && (why = ksv_dns_label_problem(ns->str, KSV_NAMESPACE_MAX)))
        return cfail(v, ns, "metadata.namespace", "\"%.80s\" %s", ns->str, why);
    if (!(c->name = strdup(name->str)) ||
        !(c->namespace_name = strdup(absent(ns) ? "default" : ns->str)))
        return coom(v);
    for (size_t k = 0; k < meta->n; k++)
        if (strcmp(meta->entries[k].key, "name") && strcmp(meta->entries[k].key, "namespace")) {
            char path[128];
            snprintf(path, sizeof path, "metadata.%s", meta->entries[k].key);
            if (kept(v, path))
                return -1;
        }
    if (absent(spec))
        return cfail(v, root, "spec", "missing: expected spec.targetRef and spec.analysis");
    if (want(v, spec, MN_MAP, "spec"))
        return -1;
    const mnode *target = mn_map_get(spec, "targetRef"), *analysis = mn_map_get(spec, "analysis");
    if (absent(target))
        return cfail(v, spec, "spec.targetRef", "missing: name the InferenceService to gate");
    if (want(v, target, MN_MAP, "spec.targetRef"))
        return -1;
    const mnode *tkind = mn_map_get(target, "kind"), *tname = mn_map_get(target, "name");
    if (absent(tkind) || tkind->type != MN_STRING || strcmp(tkind->str, "InferenceService") != 0)
        return cfail(v, absent(tkind) ? target : tkind, "spec.targetRef.kind",
                     "ksv gates InferenceServices: expected kind: InferenceService");
    if (absent(tname))
        return cfail(v, target, "spec.targetRef.name", "missing: name the InferenceService");
    if (want(v, tname, MN_STRING, "spec.targetRef.name"))
        return -1;
    if ((why = ksv_dns_label_problem(tname->str, KSV_MODEL_NAME_MAX)))
        return cfail(v, tname, "spec.targetRef.name", "\"%.80s\" %s", tname->str, why);
    if (!(c->target = strdup(tname->str)))
        return coom(v);
    c->target_line = tname->line;
    c->target_col = tname->col;
    if (absent(analysis))
        return cfail(v, spec, "spec.analysis", "missing: the gate needs an analysis");
    for (size_t k = 0; k < spec->n; k++) {
        const mn_entry *e = &spec->entries[k];
        char path[128];
        snprintf(path, sizeof path, "spec.%s", e->key);
        if (strcmp(e->key, "targetRef") == 0 || absent(e->value))
            continue;
        if (strcmp(e->key, "analysis") == 0) {
            if (read_analysis(v, e->value))
                return -1;
        } else if (strcmp(e->key, "skipAnalysis") == 0) {
            if (want(v, e->value, MN_BOOL, path))
                return -1;
            c->skip_analysis = e->value->b;
        } else if (strcmp(e->key, "progressDeadlineSeconds") == 0) {
            int64_t s;
            if (int_in(v, e->value, path, 1, 30 * 86400, &s))
                return -1;
            c->progress_deadline_s = (double)s;
        } else if (kept(v, path)) {
            return -1;
        }
    }
    for (size_t k = 0; k < target->n; k++)
        if (strcmp(target->entries[k].key, "kind") && strcmp(target->entries[k].key, "name") &&
            strcmp(target->entries[k].key, "apiVersion")) {
            char path[128];
            snprintf(path, sizeof path, "spec.targetRef.%s", target->entries[k].key);
            if (kept(v, path))
                return -1;
        }
    bool ok = true;
    c->original = mn_to_json(root, &ok);
    return ok ? 0 : coom(v);
}

/* Called by manifest.c for a document of kind Canary. */
int ksv_manifest_read_canary_(const mnode *root, int line, const char *file,
                              ksv_manifest_list *out, ksv_err *err)
{
    ksv_canary *grown = realloc(out->canaries, (out->n_canaries + 1) * sizeof *grown);
    if (!grown)
        return ksv_err_set(err, 500, "%s: out of memory reading a Canary", file);
    out->canaries = grown;
    ksv_canary *c = &out->canaries[out->n_canaries++];
    memset(c, 0, sizeof *c);
    c->line = line;
    cctx v = {.file = file, .err = err, .c = c};
    if (read_canary(&v, root))
        return -1;
    for (size_t k = 0; k + 1 < out->n_canaries; k++)
        if (strcmp(out->canaries[k].namespace_name, c->namespace_name) == 0 &&
            strcmp(out->canaries[k].target, c->target) == 0)
            return ksv_err_set(err, 400, "%s:%d:%d: spec.targetRef.name: %s/%s is gated twice in "
                               "this file (first at line %d)", file, c->target_line,
                               c->target_col, c->namespace_name, c->target,
                               out->canaries[k].line);
    return 0;
}

void ksv_canary_free(ksv_canary *c)
{
    if (!c)
        return;
    free(c->source);
    free(c->name);
    free(c->namespace_name);
    free(c->target);
    free(c->step_weights);
    for (size_t i = 0; i < c->n_metrics; i++)
        free(c->metrics[i].name);
    free(c->metrics);
    json_object_put(c->original);
    for (size_t i = 0; i < c->n_not_acted_on; i++)
        free(c->not_acted_on[i]);
    free(c->not_acted_on);
    memset(c, 0, sizeof *c);
}

const ksv_canary *ksv_manifest_find_canary(const ksv_manifest_list *list, const char *ns,
                                           const char *name)
{
    for (size_t i = 0; i < list->n_canaries; i++)
        if (strcmp(list->canaries[i].namespace_name, ns) == 0 &&
            strcmp(list->canaries[i].target, name) == 0)
            return &list->canaries[i];
    return NULL;
}

char *ksv_canary_policy_json(const ksv_canary *c, const char *canary, const char *stable)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_sb_puts(&sb, "{\"canary\":");
    ksv_sb_json_str(&sb, canary);
    if (stable) {
        ksv_sb_puts(&sb, ",\"stable\":");
        ksv_sb_json_str(&sb, stable);
    }
    ksv_sb_printf(&sb, ",\"interval_s\":%.17g,\"threshold\":%lld,\"progress_deadline_s\":%.17g",
                  c->interval_s, (long long)c->threshold, c->progress_deadline_s);
    if (c->n_step_weights) {
        ksv_sb_puts(&sb, ",\"step_weights\":[");
        for (size_t i = 0; i < c->n_step_weights; i++)
            ksv_sb_printf(&sb, "%s%lld", i ? "," : "", (long long)c->step_weights[i]);
        ksv_sb_putc(&sb, ']');
    } else if (c->step_weight) {
        ksv_sb_printf(&sb, ",\"step_weight\":%lld", (long long)c->step_weight);
        if (c->max_weight)
            ksv_sb_printf(&sb, ",\"max_weight\":%lld", (long long)c->max_weight);
    }
    if (c->mirror)
        ksv_sb_printf(&sb, ",\"mirror\":true,\"mirror_weight\":%lld,\"iterations\":%lld",
                      (long long)c->mirror_weight, (long long)c->iterations);
    if (c->skip_analysis)
        ksv_sb_puts(&sb, ",\"skip_analysis\":true");
    ksv_sb_puts(&sb, ",\"metrics\":[");
    for (size_t i = 0; i < c->n_metrics; i++) {
        const ksv_canary_metric *m = &c->metrics[i];
        ksv_sb_printf(&sb, "%s{\"name\":", i ? "," : "");
        ksv_sb_json_str(&sb, m->name);
        if (m->has_min)
            ksv_sb_printf(&sb, ",\"min\":%.17g", m->min);
        if (m->has_max)
            ksv_sb_printf(&sb, ",\"max\":%.17g", m->max);
        if (m->interval_s > 0)
            ksv_sb_printf(&sb, ",\"interval_s\":%.17g", m->interval_s);
        ksv_sb_printf(&sb, ",\"min_requests\":%lld}", (long long)m->min_requests);
    }
    ksv_sb_puts(&sb, "]}");
    if (sb.oom) {
        ksv_sb_free(&sb);
        return NULL;
    }
    return ksv_sb_steal(&sb, NULL);
}
