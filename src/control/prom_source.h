/* prom_source.h: the console's live figures (QPS, ERR%, P50, P99 per model and per
 * revision) read from a Prometheus server's HTTP API instead of scraping the engines
 * (`ksv-top --prometheus URL`, docs/OPERATIONS.md, "Scraping with Prometheus"). Prometheus already scrapes every engine's
 * /metrics; this module only asks it instant queries (GET /api/v1/query) over the same
 * windows ksv uses itself:
 *
 *   QPS   sum by (model,revision) (rate(ksv_requests_total[10s]))
 *   ERR%  the same over {code!~"2.."} (every non-2xx answer is an error), divided by QPS
 *   P50, P99  histogram_quantile(q, sum by (model,revision,le)
 *                                 (rate(ksv_request_duration_seconds_bucket[60s])))
 *
 * and the same "by (model)" for the model totals. rate() needs two samples inside the
 * range, so Prometheus must scrape the engines at least every 5 s for the 10 s window
 * (ksv's own sampling period is 1 s). Engines label series with the model's name only, so
 * a name used in two namespaces shows the sum of both.
 *
 * Any answer that is not what the API documents (not JSON, status "error", another result
 * type, a malformed sample), a NaN, or a missing series means "no data" for that figure,
 * never a crash and never a 0. Each request is bounded by a timeout; the first transport
 * failure ends the round, so a dead server costs one timeout per refresh.
 *
 * Threads: a source is used by one thread at a time. Best, main() calls ksv_ctl_global_init
 * before threads start (a source would do it otherwise). */
#ifndef KSV_CONTROL_PROM_SOURCE_H
#define KSV_CONTROL_PROM_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define KSV_PROM_LABEL_LEN 96

/* ---- parsing one /api/v1/query answer (exposed for tests) ---------------------------- */

typedef struct ksv_prom_point {
    char model[KSV_PROM_LABEL_LEN];     /* "" when the series has no such label */
    char revision[KSV_PROM_LABEL_LEN];
    double value;                       /* may be NaN or ±Inf as Prometheus sent it */
} ksv_prom_point;

typedef struct ksv_prom_vector {
    ksv_prom_point *items;             /* owned */
    size_t n;
} ksv_prom_vector;

/* Parses the body of an instant query whose answer must be a vector. http_status is the
 * HTTP status of the answer (Prometheus sends its JSON error document with 400, 422, 503).
 * Returns 0 with *out filled (possibly empty), or -1 with err saying what was wrong: an
 * error document ("prometheus: bad_data: ..."), not JSON, another resultType, a sample
 * that is not {"metric":{...},"value":[time,"number"]}, or one (model, revision) twice.
 * Series whose model or revision label is too long to be a ksv name are skipped. */
int ksv_prom_parse_vector(const char *body, size_t len, long http_status, ksv_prom_vector *out,
                          ksv_err *err);
void ksv_prom_vector_free(ksv_prom_vector *v);

/* ---- figures ----------------------------------------------------------------------------- */

typedef struct ksv_prom_figures {
    char model[KSV_PROM_LABEL_LEN];
    char revision[KSV_PROM_LABEL_LEN];  /* "": the model's total over its revisions */
    bool has_rate;                      /* Prometheus had a rate for the window */
    double qps;                         /* NaN without a rate */
    double err_pct;                     /* non-2xx share in percent; NaN: no requests */
    double p50_s, p99_s;                /* NaN: no requests in the latency window */
} ksv_prom_figures;

typedef struct ksv_prom_round {
    int64_t at_ms;                      /* wall clock when the round ended */
    ksv_prom_figures *items;            /* owned */
    size_t n;
    char error[512];                    /* "" or the first query's failure */
} ksv_prom_round;

typedef struct ksv_prom_options {
    const char *url;                    /* base URL: http(s)://host[:port][/prefix] */
    long timeout_ms;                    /* per request; 0: 2000 */
    int rate_window_s;                  /* 0: 10 (KSV_MWIN_RATE_WINDOW_MS) */
    int latency_window_s;               /* 0: 60 (KSV_MWIN_LATENCY_WINDOW_MS) */
} ksv_prom_options;

typedef struct ksv_prom_source ksv_prom_source;

/* Checks the URL (http or https, a host, no query or fragment) and prepares a client; no
 * request is made yet. -1 (400) for a URL that cannot be Prometheus' base URL. */
int ksv_prom_source_new(const ksv_prom_options *o, ksv_prom_source **out, ksv_err *err);
void ksv_prom_source_free(ksv_prom_source *s);
/* The normalised base URL (no trailing slash). */
const char *ksv_prom_source_url(const ksv_prom_source *s);

/* Runs one round of queries. Always fills *out (free with ksv_prom_round_free): figures
 * whose query failed stay NaN, and out->error says why. Returns 0 when every query was
 * answered, -1 otherwise (err as out->error). */
int ksv_prom_source_fetch(ksv_prom_source *s, ksv_prom_round *out, ksv_err *err);
void ksv_prom_round_free(ksv_prom_round *r);
/* The figures of (model, revision) in a round; revision NULL or "": the model's total.
 * NULL when Prometheus had no series for it. */
const ksv_prom_figures *ksv_prom_round_find(const ksv_prom_round *r, const char *model,
                                            const char *revision);

/* The query texts of a round (exposed so tests and docs use the exact strings). `by` is
 * "model,revision" or "model"; q is the quantile. Returns the length, or -1 when cap is too
 * small. */
int ksv_prom_query_rate(char *buf, size_t cap, const char *by, bool errors_only, int window_s);
int ksv_prom_query_quantile(char *buf, size_t cap, const char *by, double q, int window_s);

#endif
