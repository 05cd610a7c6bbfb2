/* prom_source.c: ksv's figures from Prometheus' HTTP API (the HTTP client of src/http + json-c). */
#include "common/clock.h"
#include "control/prom_source.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/strbuf.h"
#include "http/http_client.h"

/* An answer larger than this is not an instant vector of ksv series; stop reading. */
#define MAX_ANSWER_BYTES (32u << 20)
#define MAX_URL_LEN 2048

struct ksv_prom_source {
    char base[MAX_URL_LEN];
    long timeout_ms;
    int rate_window_s, latency_window_s;
    ksv_http_client *http;
};

/* ---- parsing ------------------------------------------------------------------------- */

void ksv_prom_vector_free(ksv_prom_vector *v)
{
    free(v->items);
    v->items = NULL;
    v->n = 0;
}

static int sample_cmp(const void *a, const void *b)
{
    const ksv_prom_point *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    return c ? c : strcmp(x->revision, y->revision);
}

/* Copies a label into dst; false when the label is not a string or too long. A missing
 * label is "" (a query "by (model)" has no revision). */
static bool copy_label(json_object *metric, const char *name, char *dst, size_t cap, bool *bad)
{
    json_object *v;
    dst[0] = '\0';
    if (!json_object_object_get_ex(metric, name, &v))
        return true;
    if (!json_object_is_type(v, json_type_string)) {
        *bad = true;
        return false;
    }
    size_t len = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (len >= cap || memchr(s, '\0', len))
        return false;
    memcpy(dst, s, len + 1);
    return true;
}

/* Prometheus writes sample values as Go float strings: digits, "NaN", "+Inf", "-Inf". */
static bool parse_value(json_object *v, double *out)
{
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len == 0 || len > 64 || isspace((unsigned char)s[0]) || memchr(s, '\0', len))
        return false;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end != s + len)
        return false;
    /* An overflowing literal is still a huge number, not garbage. */
    *out = d;
    return true;
}

static int error_document(json_object *root, long http_status, ksv_err *err)
{
    json_object *type = NULL, *msg = NULL;
    json_object_object_get_ex(root, "errorType", &type);
    json_object_object_get_ex(root, "error", &msg);
    const char *t = type && json_object_is_type(type, json_type_string)
                        ? json_object_get_string(type)
                        : "error";
    const char *m = msg && json_object_is_type(msg, json_type_string)
                        ? json_object_get_string(msg)
                        : "(no message)";
    return ksv_err_set(err, 502, "prometheus: %.60s: %.300s (HTTP %ld)", t, m, http_status);
}

static int parse_samples(json_object *result, ksv_prom_vector *out, ksv_err *err)
{
    size_t n = json_object_array_length(result);
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (!out->items)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *el = json_object_array_get_idx(result, i), *metric, *value;
        if (!json_object_is_type(el, json_type_object) ||
            !json_object_object_get_ex(el, "metric", &metric) ||
            !json_object_is_type(metric, json_type_object) ||
            !json_object_object_get_ex(el, "value", &value) ||
            !json_object_is_type(value, json_type_array) || json_object_array_length(value) != 2)
            return ksv_err_set(err, 502, "prometheus: sample %zu is not "
                                         "{\"metric\":{...},\"value\":[time,\"value\"]}", i);
        json_object *ts = json_object_array_get_idx(value, 0);
        if (!json_object_is_type(ts, json_type_double) && !json_object_is_type(ts, json_type_int))
            return ksv_err_set(err, 502, "prometheus: sample %zu has no numeric timestamp", i);
        ksv_prom_point *s = &out->items[out->n];
        if (!parse_value(json_object_array_get_idx(value, 1), &s->value))
            return ksv_err_set(err, 502, "prometheus: sample %zu has no number as its value", i);
        bool bad = false;
        bool fits = copy_label(metric, "model", s->model, sizeof s->model, &bad) &&
                    copy_label(metric, "revision", s->revision, sizeof s->revision, &bad);
        if (bad)
            return ksv_err_set(err, 502, "prometheus: sample %zu has a label that is not a string",
                               i);
        if (fits)
            out->n++;
    }
    qsort(out->items, out->n, sizeof *out->items, sample_cmp);
    for (size_t i = 1; i < out->n; i++)
        if (sample_cmp(&out->items[i - 1], &out->items[i]) == 0)
            return ksv_err_set(err, 502, "prometheus: series model=\"%.96s\" revision=\"%.96s\" "
                                         "appears twice", out->items[i].model,
                               out->items[i].revision);
    return 0;
}

int ksv_prom_parse_vector(const char *body, size_t len, long http_status, ksv_prom_vector *out,
                          ksv_err *err)
{
    out->items = NULL;
    out->n = 0;
    if (!body || len == 0)
        return ksv_err_set(err, 502, "prometheus: empty answer (HTTP %ld)", http_status);
    if (len > MAX_ANSWER_BYTES || len > (size_t)INT32_MAX)
        return ksv_err_set(err, 502, "prometheus: answer too large");
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return ksv_err_set(err, 500, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (root && used < len && isspace((unsigned char)body[used]))
        used++;
    if (!root || jerr != json_tokener_success || used != len) {
        json_object_put(root);
        if (http_status < 200 || http_status > 299)
            return ksv_err_set(err, 502, "prometheus: HTTP %ld with a body that is not JSON",
                               http_status);
        return ksv_err_set(err, 502, "prometheus: the answer is not a JSON document");
    }
    int rc = -1;
    json_object *status, *data, *type, *result;
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "status", &status) ||
        !json_object_is_type(status, json_type_string)) {
        rc = ksv_err_set(err, 502, "prometheus: the answer has no \"status\" (HTTP %ld)",
                         http_status);
    } else if (strcmp(json_object_get_string(status), "success") != 0) {
        rc = error_document(root, http_status, err);
    } else if (http_status < 200 || http_status > 299) {
        rc = ksv_err_set(err, 502, "prometheus: HTTP %ld with status \"success\"", http_status);
    } else if (!json_object_object_get_ex(root, "data", &data) ||
               !json_object_is_type(data, json_type_object) ||
               !json_object_object_get_ex(data, "resultType", &type) ||
               !json_object_is_type(type, json_type_string) ||
               !json_object_object_get_ex(data, "result", &result)) {
        rc = ksv_err_set(err, 502, "prometheus: the answer has no data.resultType and data.result");
    } else if (strcmp(json_object_get_string(type), "vector") != 0 ||
               !json_object_is_type(result, json_type_array)) {
        rc = ksv_err_set(err, 502, "prometheus: expected a vector, got a %.32s",
                         json_object_get_string(type));
    } else {
        rc = parse_samples(result, out, err);
    }
    json_object_put(root);
    if (rc != 0)
        ksv_prom_vector_free(out);
    return rc;
}

/* ---- queries ------------------------------------------------------------------------- */

static int fit(int n, size_t cap)
{
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int ksv_prom_query_rate(char *buf, size_t cap, const char *by, bool errors_only, int window_s)
{
    return fit(snprintf(buf, cap, "sum by (%s) (rate(ksv_requests_total%s[%ds]))", by,
                        errors_only ? "{code!~\"2..\"}" : "", window_s),
               cap);
}

int ksv_prom_query_quantile(char *buf, size_t cap, const char *by, double q, int window_s)
{
    return fit(snprintf(buf, cap, "histogram_quantile(%g, sum by (%s,le) "
                                  "(rate(ksv_request_duration_seconds_bucket[%ds])))",
                        q, by, window_s),
               cap);
}

/* ---- the client ------------------------------------------------------------------------ */

static bool has_bad_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

static int validate_url(const char *url, char *base, size_t cap, ksv_err *err)
{
    if (!url || !*url)
        return ksv_err_set(err, 400, "--prometheus: a URL is needed (http://HOST:9090)");
    if (strlen(url) >= MAX_URL_LEN - 16 || has_bad_chars(url))
        return ksv_err_set(err, 400, "--prometheus: %.200s: not a URL", url);
    /* libcurl reads "http:///x" as host "x"; an operator who typed that meant something else. */
    const char *sep = strstr(url, "://");
    if (!sep || sep[3] == '/' || sep[3] == '\0')
        return ksv_err_set(err, 400, "--prometheus: %.200s: not a URL (expected http://HOST:PORT)",
                           url);
    int rc = 0;
    ksv_http_url u;
    ksv_err ignored;
    if (ksv_http_url_parse(url, &u, &ignored) != 0) {
        rc = ksv_err_set(err, 400, "--prometheus: %.200s: not a URL (expected http://HOST:PORT)",
                         url);
    } else if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0) {
        rc = ksv_err_set(err, 400, "--prometheus: %.200s: only http and https are supported", url);
    } else if (!u.host[0]) {
        rc = ksv_err_set(err, 400, "--prometheus: %.200s: no host", url);
    } else if (u.has_query || u.has_fragment) {
        rc = ksv_err_set(err, 400, "--prometheus: %.200s: give the server's base URL, without "
                                   "a query or fragment", url);
    } else if (strlen(u.full) >= cap) {
        rc = ksv_err_set(err, 400, "--prometheus: %.200s: not a URL", url);
    } else {
        size_t len = strlen(u.full);
        while (len > 0 && u.full[len - 1] == '/')
            len--;
        memcpy(base, u.full, len);
        base[len] = '\0';
    }
    return rc;
}

int ksv_prom_source_new(const ksv_prom_options *o, ksv_prom_source **out, ksv_err *err)
{
    *out = NULL;
    ksv_prom_source *s = calloc(1, sizeof *s);
    if (!s)
        return ksv_err_set(err, 500, "out of memory");
    if (validate_url(o->url, s->base, sizeof s->base, err) != 0) {
        free(s);
        return -1;
    }
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
    s->rate_window_s = o->rate_window_s > 0 ? o->rate_window_s : 10;
    s->latency_window_s = o->latency_window_s > 0 ? o->latency_window_s : 60;
    /* Prometheus is a service outside ksv: proxies from the environment apply; a redirect
     * is not followed (an answer that is not a vector says what went wrong). */
    ksv_http_options ho = {.timeout_ms = s->timeout_ms, .proxy = KSV_HTTP_PROXY_ENV,
                           .max_reply = MAX_ANSWER_BYTES, .accept_encoding = true};
    if (ksv_http_client_new(&ho, &s->http, err) != 0) {
        free(s);
        return ksv_err_set(err, 500, "cannot create an HTTP client");
    }
    *out = s;
    return 0;
}

void ksv_prom_source_free(ksv_prom_source *s)
{
    if (!s)
        return;
    ksv_http_client_free(s->http);
    free(s);
}

const char *ksv_prom_source_url(const ksv_prom_source *s)
{
    return s->base;
}

/* One instant query. -2: the server could not be reached (end the round); -1: it answered
 * something that is not a vector. */
static int run_query(ksv_prom_source *s, const char *query, ksv_prom_vector *out, ksv_err *err)
{
    out->items = NULL;
    out->n = 0;
    ksv_sb url;
    ksv_sb_init(&url);
    ksv_sb_printf(&url, "%s/api/v1/query?query=", s->base);
    ksv_http_escape(&url, query);
    if (url.oom) {
        ksv_sb_free(&url);
        return ksv_err_set(err, 500, "out of memory");
    }
    ksv_http_call req = {.url = url.data};
    ksv_http_result res;
    ksv_sb body;
    ksv_err why;
    int got = ksv_http_perform(s->http, &req, &body, &res, &why);
    ksv_sb_free(&url);
    int rc;
    if (got != 0 && res.failure == KSV_HTTP_E_TOO_LARGE) {
        rc = ksv_err_set(err, 502, "prometheus: answer too large");
    } else if (got != 0 && res.failure == KSV_HTTP_E_NOMEM) {
        rc = ksv_err_set(err, 500, "out of memory");
    } else if (got != 0) {
        ksv_err_set(err, 503, "prometheus %s: %s", s->base, res.message);
        rc = -2;
    } else {
        rc = ksv_prom_parse_vector(body.data, body.len, res.status, out, err);
    }
    ksv_sb_free(&body);
    return rc;
}

/* ---- a round --------------------------------------------------------------------------- */

enum { F_QPS, F_ERRS, F_P50, F_P99, F_COUNT };

/* One value of one query, before the values of a key are merged into figures. */
typedef struct entry {
    const ksv_prom_point *sample;
    bool model_level;
    int field;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->sample->model, y->sample->model);
    if (c)
        return c;
    /* Model totals carry revision "" and so sort before their revisions. */
    const char *rx = x->model_level ? "" : x->sample->revision;
    const char *ry = y->model_level ? "" : y->sample->revision;
    return strcmp(rx, ry);
}

static int figures_cmp(const void *a, const void *b)
{
    const ksv_prom_figures *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    return c ? c : strcmp(x->revision, y->revision);
}

static bool usable(double v)
{
    return isfinite(v) && v >= 0;
}

static void blank_figures(ksv_prom_figures *f, const entry *e)
{
    memset(f, 0, sizeof *f);
    snprintf(f->model, sizeof f->model, "%s", e->sample->model);
    snprintf(f->revision, sizeof f->revision, "%s", e->model_level ? "" : e->sample->revision);
    f->qps = f->err_pct = f->p50_s = f->p99_s = NAN;
}

/* Merges the query answers into one figures row per (model, revision) and per model. */
static int merge(ksv_prom_vector vec[2][F_COUNT], const bool answered[2][F_COUNT],
                 ksv_prom_round *out, ksv_err *err)
{
    size_t total = 0;
    for (int lvl = 0; lvl < 2; lvl++)
        for (int f = 0; f < F_COUNT; f++)
            total += vec[lvl][f].n;
    entry *es = calloc(total ? total : 1, sizeof *es);
    out->items = calloc(total ? total : 1, sizeof *out->items);
    if (!es || !out->items) {
        free(es);
        return ksv_err_set(err, 500, "out of memory");
    }
    size_t n = 0;
    for (int lvl = 0; lvl < 2; lvl++)
        for (int f = 0; f < F_COUNT; f++)
            for (size_t i = 0; i < vec[lvl][f].n; i++) {
                const ksv_prom_point *s = &vec[lvl][f].items[i];
                /* A series without the label the query grouped by is not a ksv series. */
                if (!s->model[0] || (lvl == 0 && !s->revision[0]))
                    continue;
                es[n++] = (entry){s, lvl == 1, f};
            }
    qsort(es, n, sizeof *es, entry_cmp);
    double errs = NAN;
    bool has_errs = false;
    ksv_prom_figures *cur = NULL;
    for (size_t i = 0; i <= n; i++) {
        if (cur && (i == n || entry_cmp(&es[i - 1], &es[i]) != 0)) {
            int lvl = cur->revision[0] ? 0 : 1;
            /* The errors query answers nothing for a series without errors: that is 0
             * errors, but only when the query itself was answered. */
            if (cur->has_rate && cur->qps > 0 && answered[lvl][F_ERRS]) {
                double e = has_errs ? errs : 0;
                double pct = 100.0 * e / cur->qps;
                cur->err_pct = usable(e) ? (pct > 100 ? 100 : pct) : NAN;
            }
            cur = NULL;
        }
        if (i == n)
            break;
        if (!cur) {
            cur = &out->items[out->n++];
            blank_figures(cur, &es[i]);
            errs = NAN;
            has_errs = false;
        }
        double v = es[i].sample->value;
        switch (es[i].field) {
        case F_QPS:
            if (usable(v)) {
                cur->has_rate = true;
                cur->qps = v;
            }
            break;
        case F_ERRS:
            errs = v;
            has_errs = true;
            break;
        case F_P50:
            cur->p50_s = usable(v) ? v : NAN;
            break;
        case F_P99:
            cur->p99_s = usable(v) ? v : NAN;
            break;
        }
    }
    free(es);
    /* entry_cmp and figures_cmp order alike, but keep find's bsearch independent of it. */
    qsort(out->items, out->n, sizeof *out->items, figures_cmp);
    return 0;
}

int ksv_prom_source_fetch(ksv_prom_source *s, ksv_prom_round *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    static const char *const by[2] = {"model,revision", "model"};
    ksv_prom_vector vec[2][F_COUNT];
    bool answered[2][F_COUNT];
    memset(vec, 0, sizeof vec);
    memset(answered, 0, sizeof answered);
    ksv_err first;
    ksv_err_clear(&first);
    bool reachable = true;
    for (int lvl = 0; lvl < 2 && reachable; lvl++) {
        for (int f = 0; f < F_COUNT && reachable; f++) {
            char q[512];
            int len = f == F_QPS || f == F_ERRS
                          ? ksv_prom_query_rate(q, sizeof q, by[lvl], f == F_ERRS,
                                                s->rate_window_s)
                          : ksv_prom_query_quantile(q, sizeof q, by[lvl],
                                                    f == F_P50 ? 0.5 : 0.99,
                                                    s->latency_window_s);
            ksv_err e;
            ksv_err_clear(&e);
            int rc = len < 0 ? ksv_err_set(&e, 500, "query too long")
                             : run_query(s, q, &vec[lvl][f], &e);
            answered[lvl][f] = rc == 0;
            if (rc != 0 && !first.msg[0])
                first = e;
            reachable = rc != -2;
        }
    }
    int rc = 0;
    ksv_err merr;
    if (merge(vec, answered, out, &merr) != 0 && !first.msg[0])
        first = merr;
    for (int lvl = 0; lvl < 2; lvl++)
        for (int f = 0; f < F_COUNT; f++)
            ksv_prom_vector_free(&vec[lvl][f]);
    out->at_ms = ksv_wall_ms();
    if (first.msg[0]) {
        snprintf(out->error, sizeof out->error, "%s", first.msg);
        rc = ksv_err_set(err, first.status ? first.status : 502, "%s", first.msg);
    }
    return rc;
}

void ksv_prom_round_free(ksv_prom_round *r)
{
    free(r->items);
    memset(r, 0, sizeof *r);
}

const ksv_prom_figures *ksv_prom_round_find(const ksv_prom_round *r, const char *model,
                                            const char *revision)
{
    if (!r->items || !model)
        return NULL;
    ksv_prom_figures key;
    if (snprintf(key.model, sizeof key.model, "%s", model) >= (int)sizeof key.model ||
        snprintf(key.revision, sizeof key.revision, "%s", revision ? revision : "") >=
            (int)sizeof key.revision)
        return NULL;
    return bsearch(&key, r->items, r->n, sizeof *r->items, figures_cmp);
}
