/* gate_policy.c: JSON <-> release gate policy and progress, with validation. */
#include "engine/gate_policy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *phase_names[] = {"Initializing", "Progressing", "Waiting", "Paused",
                                    "Promoting",    "Succeeded",   "Failed"};
static const char *verdict_names[] = {"none", "pass", "fail", "inconclusive"};
static const char *metric_names[] = {"request-success-rate", "request-duration",
                                     "prediction-disagreement"};

const char *ksv_gate_phase_name(ksv_gate_phase p)
{
    return (unsigned)p < sizeof phase_names / sizeof *phase_names ? phase_names[p] : "Unknown";
}

const char *ksv_verdict_name(ksv_verdict v)
{
    return (unsigned)v < sizeof verdict_names / sizeof *verdict_names ? verdict_names[v]
                                                                      : "none";
}

const char *ksv_gate_metric_name(ksv_gate_metric_kind k)
{
    return (unsigned)k < sizeof metric_names / sizeof *metric_names ? metric_names[k] : "?";
}

bool ksv_gate_phase_active(ksv_gate_phase p)
{
    return p != KSV_PHASE_SUCCEEDED && p != KSV_PHASE_FAILED;
}

/* ------------------------------------------------------------------ field readers */

static json_object *field(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

static int number_field(json_object *obj, const char *key, double lo, double hi, double *dst,
                        bool *present, const char *where, ksv_err *err)
{
    json_object *v = field(obj, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return ksv_err_set(err, 400, "%s%s: expected a number", where, key);
    double x = json_object_get_double(v);
    if (!isfinite(x) || x < lo || x > hi)
        return ksv_err_set(err, 400, "%s%s: %g is outside %g..%g", where, key, x, lo, hi);
    *dst = x;
    return 0;
}

static int int_field(json_object *obj, const char *key, int lo, int hi, int *dst,
                     bool *present, const char *where, ksv_err *err)
{
    json_object *v = field(obj, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return ksv_err_set(err, 400, "%s%s: expected an integer", where, key);
    int64_t x = json_object_get_int64(v);
    if (x < lo || x > hi)
        return ksv_err_set(err, 400, "%s%s: %lld is outside %d..%d", where, key, (long long)x,
                           lo, hi);
    *dst = (int)x;
    return 0;
}

static int name_field(json_object *obj, const char *key, bool required, char *dst,
                      ksv_err *err)
{
    json_object *v = field(obj, key);
    if (!v)
        return required ? ksv_err_set(err, 400, "%s is required (a revision name)", key) : 0;
    if (!json_object_is_type(v, json_type_string) || !ksv_valid_name(json_object_get_string(v)))
        return ksv_err_set(err, 400, "%s: expected a revision name", key);
    snprintf(dst, KSV_NAME_MAX, "%s", json_object_get_string(v));
    return 0;
}

static const char *const policy_keys[] = {
    "canary",  "stable",        "progress_deadline_s", "interval_s", "threshold",
    "step_weight", "max_weight", "step_weights",       "mirror",     "mirror_weight",
    "iterations", "metrics",     "skip_analysis", NULL};
static const char *const metric_keys[] = {"name", "min", "max", "interval_s", "min_requests",
                                          NULL};

/* Unknown keys are refused: a misspelt threshold must not silently become the default. */
static int known_keys(json_object *obj, const char *const *keys, const char *where,
                      ksv_err *err)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(keys[i], key) == 0;
        if (!known)
            return ksv_err_set(err, 400, "%s: unknown field \"%.60s\"", where, key);
    }
    return 0;
}

static int metric_from_json(json_object *mo, size_t i, const ksv_gate_policy *p,
                            ksv_gate_metric *m, ksv_err *err)
{
    char where[48];
    snprintf(where, sizeof where, "metrics[%zu].", i);
    if (!json_object_is_type(mo, json_type_object))
        return ksv_err_set(err, 400, "metrics[%zu]: expected an object", i);
    if (known_keys(mo, metric_keys, where, err))
        return -1;
    json_object *name = field(mo, "name");
    if (!name || !json_object_is_type(name, json_type_string))
        return ksv_err_set(err, 400, "%sname is required", where);
    const char *n = json_object_get_string(name);
    size_t k = 0;
    while (k < sizeof metric_names / sizeof *metric_names && strcmp(metric_names[k], n) != 0)
        k++;
    if (k == sizeof metric_names / sizeof *metric_names)
        return ksv_err_set(err, 400,
                           "%sname: unknown metric \"%.60s\" (built in: request-success-rate, "
                           "request-duration, prediction-disagreement)",
                           where, n);
    memset(m, 0, sizeof *m);
    m->kind = (ksv_gate_metric_kind)k;
    double hi = m->kind == KSV_METRIC_SUCCESS_RATE ? 100.0
                : m->kind == KSV_METRIC_DISAGREEMENT ? 1.0
                                                     : 1e9;
    if (number_field(mo, "min", 0, hi, &m->min, &m->has_min, where, err) ||
        number_field(mo, "max", 0, hi, &m->max, &m->has_max, where, err))
        return -1;
    if (!m->has_min && !m->has_max)
        return ksv_err_set(err, 400, "metrics[%zu] (%s): a threshold range (min and/or max) is "
                                     "required", i, n);
    if (m->has_min && m->has_max && m->min > m->max)
        return ksv_err_set(err, 400, "%s: min %g is above max %g", where, m->min, m->max);
    if (number_field(mo, "interval_s", 1, 86400, &m->interval_s, NULL, where, err))
        return -1;
    if (m->interval_s > p->interval_s * KSV_GATE_MAX_WINDOW_INTERVALS)
        return ksv_err_set(err, 400, "%sinterval_s: %g s is more than %d analysis intervals",
                           where, m->interval_s, KSV_GATE_MAX_WINDOW_INTERVALS);
    int min_requests = KSV_GATE_DEFAULT_MIN_REQUESTS;
    if (int_field(mo, "min_requests", 1, 1000000000, &min_requests, NULL, where, err))
        return -1;
    m->min_requests = (uint64_t)min_requests;
    if (m->kind == KSV_METRIC_DISAGREEMENT && !p->mirror)
        return ksv_err_set(err, 400, "%sname: prediction-disagreement needs mirror: true "
                                     "(it compares mirrored answers)", where);
    return 0;
}

int ksv_gate_policy_from_json(json_object *body, ksv_gate_policy *p, ksv_err *err)
{
    memset(p, 0, sizeof *p);
    if (!json_object_is_type(body, json_type_object))
        return ksv_err_set(err, 400, "the rollout policy must be a JSON object");
    if (known_keys(body, policy_keys, "rollout", err) ||
        name_field(body, "canary", true, p->canary, err) ||
        name_field(body, "stable", false, p->stable, err))
        return -1;
    if (p->stable[0] && strcmp(p->stable, p->canary) == 0)
        return ksv_err_set(err, 400, "stable and canary are the same revision");
    p->interval_s = 60;
    p->threshold = KSV_GATE_DEFAULT_THRESHOLD;
    p->progress_deadline_s = KSV_GATE_DEFAULT_DEADLINE_S;
    p->mirror_weight = 100;
    int step_weight = 0, max_weight = 100;
    bool has_step = false, has_max = false;
    if (number_field(body, "interval_s", 1, 86400, &p->interval_s, NULL, "", err) ||
        int_field(body, "threshold", 1, 1000, &p->threshold, NULL, "", err) ||
        number_field(body, "progress_deadline_s", 1, 30 * 86400.0, &p->progress_deadline_s,
                     NULL, "", err) ||
        int_field(body, "step_weight", 1, 100, &step_weight, &has_step, "", err) ||
        int_field(body, "max_weight", 1, 100, &max_weight, &has_max, "", err) ||
        int_field(body, "mirror_weight", 1, 100, &p->mirror_weight, NULL, "", err) ||
        int_field(body, "iterations", 0, 1000, &p->iterations, NULL, "", err))
        return -1;
    json_object *mirror = field(body, "mirror"), *skip = field(body, "skip_analysis");
    if (mirror) {
        if (!json_object_is_type(mirror, json_type_boolean))
            return ksv_err_set(err, 400, "mirror: expected true or false");
        p->mirror = json_object_get_boolean(mirror);
    }
    if (skip) {
        if (!json_object_is_type(skip, json_type_boolean))
            return ksv_err_set(err, 400, "skip_analysis: expected true or false");
        p->skip_analysis = json_object_get_boolean(skip);
    }
    if (p->mirror && p->iterations == 0)
        p->iterations = 1;
    if (!p->mirror)
        p->iterations = 0;
    json_object *sw = field(body, "step_weights");
    if (sw && has_step)
        return ksv_err_set(err, 400, "give step_weight (+ max_weight) or step_weights, not both");
    if (sw) {
        if (!json_object_is_type(sw, json_type_array) || json_object_array_length(sw) == 0 ||
            json_object_array_length(sw) > KSV_GATE_MAX_STEPS)
            return ksv_err_set(err, 400, "step_weights: expected 1..%d weights",
                               KSV_GATE_MAX_STEPS);
        for (size_t i = 0; i < json_object_array_length(sw); i++) {
            json_object *w = json_object_array_get_idx(sw, i);
            int64_t x = json_object_is_type(w, json_type_int) ? json_object_get_int64(w) : -1;
            if (x < 1 || x > 100)
                return ksv_err_set(err, 400, "step_weights[%zu]: expected a percent in 1..100",
                                   i);
            if (i > 0 && x <= p->steps[i - 1])
                return ksv_err_set(err, 400, "step_weights[%zu]: weights must increase", i);
            p->steps[p->n_steps++] = (int)x;
        }
    } else if (has_step) {
        if (step_weight > max_weight)
            return ksv_err_set(err, 400, "step_weight %d is above max_weight %d", step_weight,
                               max_weight);
        for (int w = step_weight; w <= max_weight && p->n_steps < KSV_GATE_MAX_STEPS;
             w += step_weight)
            p->steps[p->n_steps++] = w;
    } else if (has_max) {
        return ksv_err_set(err, 400, "max_weight needs step_weight");
    } else if (!p->mirror) {
        return ksv_err_set(err, 400, "give step_weight (+ max_weight) or step_weights");
    }
    json_object *metrics = field(body, "metrics");
    if (metrics) {
        if (!json_object_is_type(metrics, json_type_array) ||
            json_object_array_length(metrics) > KSV_GATE_MAX_METRICS)
            return ksv_err_set(err, 400, "metrics: expected at most %d metrics",
                               KSV_GATE_MAX_METRICS);
        for (size_t i = 0; i < json_object_array_length(metrics); i++)
            if (metric_from_json(json_object_array_get_idx(metrics, i), i, p,
                                 &p->metrics[p->n_metrics++], err))
                return -1;
    }
    return 0;
}

static void put_number(ksv_sb *sb, double v)
{
    if (isfinite(v))
        ksv_sb_printf(sb, "%.17g", v);
    else
        ksv_sb_puts(sb, "null");
}

void ksv_gate_policy_to_json(ksv_sb *sb, const ksv_gate_policy *p)
{
    ksv_sb_puts(sb, "{\"canary\":");
    ksv_sb_json_str(sb, p->canary);
    ksv_sb_puts(sb, ",\"stable\":");
    ksv_sb_json_str(sb, p->stable);
    ksv_sb_puts(sb, ",\"interval_s\":");
    put_number(sb, p->interval_s);
    ksv_sb_printf(sb, ",\"threshold\":%d,\"progress_deadline_s\":", p->threshold);
    put_number(sb, p->progress_deadline_s);
    ksv_sb_puts(sb, ",\"step_weights\":[");
    for (int i = 0; i < p->n_steps; i++)
        ksv_sb_printf(sb, "%s%d", i ? "," : "", p->steps[i]);
    ksv_sb_printf(sb, "],\"mirror\":%s,\"mirror_weight\":%d,\"iterations\":%d,"
                      "\"skip_analysis\":%s,\"metrics\":[",
                  p->mirror ? "true" : "false", p->mirror_weight, p->iterations,
                  p->skip_analysis ? "true" : "false");
    for (int i = 0; i < p->n_metrics; i++) {
        const ksv_gate_metric *m = &p->metrics[i];
        ksv_sb_printf(sb, "%s{\"name\":\"%s\"", i ? "," : "", ksv_gate_metric_name(m->kind));
        if (m->has_min) {
            ksv_sb_puts(sb, ",\"min\":");
            put_number(sb, m->min);
        }
        if (m->has_max) {
            ksv_sb_puts(sb, ",\"max\":");
            put_number(sb, m->max);
        }
        if (m->interval_s > 0) {
            ksv_sb_puts(sb, ",\"interval_s\":");
            put_number(sb, m->interval_s);
        }
        ksv_sb_printf(sb, ",\"min_requests\":%llu}", (unsigned long long)m->min_requests);
    }
    ksv_sb_puts(sb, "]}");
}

/* ------------------------------------------------------------------------ progress */

void ksv_gate_progress_to_json(ksv_sb *sb, const ksv_gate_progress *g, const ksv_gate_policy *p)
{
    ksv_sb_printf(sb, "{\"phase\":\"%s\",\"paused_from\":\"%s\",\"step\":%d,\"set_weight\":%d,"
                      "\"failed_checks\":%d,\"threshold\":%d,\"manual\":%s,\"started\":%.3f,"
                      "\"step_started\":%.3f,\"waiting_since\":%.3f,\"reason\":",
                  ksv_gate_phase_name(g->phase), ksv_gate_phase_name(g->paused_from), g->step,
                  g->set_weight, g->failed_checks, p->threshold, g->manual ? "true" : "false",
                  g->started, g->step_started, g->waiting_since);
    ksv_sb_json_str(sb, g->reason);
    ksv_sb_puts(sb, ",\"checks\":[");
    for (int i = 0; i < p->n_metrics; i++) {
        const ksv_gate_metric *m = &p->metrics[i];
        const ksv_gate_check *c = &g->checks[i];
        ksv_sb_printf(sb, "%s{\"metric\":\"%s\",\"value\":", i ? "," : "",
                      ksv_gate_metric_name(m->kind));
        put_number(sb, c->verdict == KSV_VERDICT_NONE ? NAN : c->value);
        ksv_sb_puts(sb, ",\"min\":");
        put_number(sb, m->has_min ? m->min : NAN);
        ksv_sb_puts(sb, ",\"max\":");
        put_number(sb, m->has_max ? m->max : NAN);
        ksv_sb_printf(sb, ",\"verdict\":\"%s\",\"requests\":%llu,\"time\":%.3f}",
                      ksv_verdict_name(c->verdict), (unsigned long long)c->requests, c->time);
    }
    ksv_sb_puts(sb, "]}");
}

static int phase_from_name(const char *s, ksv_gate_phase *out)
{
    for (size_t i = 0; i < sizeof phase_names / sizeof *phase_names; i++)
        if (s && strcmp(s, phase_names[i]) == 0) {
            *out = (ksv_gate_phase)i;
            return 0;
        }
    return -1;
}

static double num(json_object *o, const char *key)
{
    json_object *v = field(o, key);
    return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
               ? json_object_get_double(v)
               : 0.0;
}

int ksv_gate_progress_from_json(json_object *o, const ksv_gate_policy *p, ksv_gate_progress *g,
                                ksv_err *err)
{
    memset(g, 0, sizeof *g);
    json_object *v;
    if (!json_object_is_type(o, json_type_object) || !(v = field(o, "phase")) ||
        phase_from_name(json_object_get_string(v), &g->phase) != 0)
        return ksv_err_set(err, 400, "rollout progress: no valid phase");
    g->paused_from = KSV_PHASE_PROGRESSING;
    if ((v = field(o, "paused_from")))
        phase_from_name(json_object_get_string(v), &g->paused_from);
    g->step = (int)num(o, "step");
    if (g->step < -p->iterations || g->step >= (p->n_steps > 0 ? p->n_steps : 1))
        return ksv_err_set(err, 400, "rollout progress: step %d is outside the policy", g->step);
    g->set_weight = (int)num(o, "set_weight");
    if (g->set_weight < 0 || g->set_weight > 100)
        return ksv_err_set(err, 400, "rollout progress: set_weight %d", g->set_weight);
    g->failed_checks = (int)num(o, "failed_checks");
    g->started = num(o, "started");
    g->step_started = num(o, "step_started");
    g->waiting_since = num(o, "waiting_since");
    g->manual = (v = field(o, "manual")) && json_object_get_boolean(v);
    if ((v = field(o, "reason")) && json_object_is_type(v, json_type_string))
        snprintf(g->reason, sizeof g->reason, "%s", json_object_get_string(v));
    json_object *checks = field(o, "checks");
    for (int i = 0; checks && json_object_is_type(checks, json_type_array) && i < p->n_metrics &&
                    (size_t)i < json_object_array_length(checks);
         i++) {
        json_object *c = json_object_array_get_idx(checks, i);
        json_object *val = field(c, "value"), *verdict = field(c, "verdict");
        g->checks[i].value = val ? json_object_get_double(val) : NAN;
        g->checks[i].requests = (uint64_t)num(c, "requests");
        g->checks[i].time = num(c, "time");
        for (int k = 0; verdict && k < 4; k++)
            if (strcmp(json_object_get_string(verdict), verdict_names[k]) == 0)
                g->checks[i].verdict = (ksv_verdict)k;
    }
    return 0;
}
