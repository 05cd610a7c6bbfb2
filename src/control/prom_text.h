/* prom_text.h: a parser of the Prometheus text exposition format 0.0.4, and the step that
 * turns a parsed engine scrape (GET /metrics) into typed per (model, revision) records.
 *
 * What is accepted (the format as docs/instrumenting/exposition_formats.md describes it):
 *   - sample lines `name{label="value",...} value [timestamp_ms]`: blanks (space, tab) may
 *     surround tokens and lead the line; `{}` and a trailing comma in the label set are fine;
 *     label and metric names quoted inside the braces (`{"my.metric","a.b"="1"}`, the newer
 *     UTF-8 names) are accepted too;
 *   - label value escapes `\\`, `\"`, `\n`; any other escape is an error, and so is a value
 *     that is not UTF-8 or holds a NUL byte (values end up on terminals and in JSON);
 *   - values as Go's ParseFloat reads decimal floats: sign, digits, fraction, exponent,
 *     `NaN`, `+Inf`, `-Inf`, `Inf`, `infinity` (case-insensitive); hex floats and `1_000` are
 *     refused; a magnitude beyond a double is an error, an underflow reads as its rounding.
 *     Parsing does not depend on the process locale (ksv-top calls setlocale);
 *   - timestamps are int64 milliseconds;
 *   - `# HELP name text` and `# TYPE name counter|gauge|histogram|summary|untyped|unknown`:
 *     the name must be valid and the type known; HELP text is not kept. Any other line
 *     starting with `#` (including OpenMetrics' `# EOF`) is a comment. A repeated TYPE simply
 *     replaces the current one, as Prometheus' own scraper does.
 *   - line endings `\n`; a `\r` right before the `\n` is dropped (CRLF is tolerated, because
 *     a proxy or an editor may add it and nothing else could be meant). A `\r` anywhere else
 *     (outside a quoted label value, where it is data) is an error.
 *
 * Truncation: the format requires the last line to end with `\n`, and the parser insists.
 * A buffer cut anywhere but right after a newline is therefore an error ("no newline at end
 * of input"), never a silently shortened last value (`... 21` cut to `... 2`). A buffer cut
 * right after a newline is a valid, shorter exposition and parses as such.
 *
 * Every error names the 1-based line and the reason, e.g.
 * "line 12: expected '=' after label name". Limits keep garbage from exhausting memory: the
 * whole document's memory is bounded by a small multiple of its length plus
 * max_samples * (sizeof sample) + labels. */
#ifndef KSV_CONTROL_PROM_TEXT_H
#define KSV_CONTROL_PROM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define KSV_PROM_DEFAULT_MAX_LINE 65536
#define KSV_PROM_DEFAULT_MAX_SAMPLES 200000
#define KSV_PROM_DEFAULT_MAX_LABELS 64

typedef struct ksv_prom_limits {
    size_t max_line;    /* bytes per line, excluding the newline */
    size_t max_samples; /* sample lines per document */
    size_t max_labels;  /* labels per sample */
} ksv_prom_limits;

typedef enum {
    KSV_PROM_UNTYPED = 0,
    KSV_PROM_COUNTER,
    KSV_PROM_GAUGE,
    KSV_PROM_HISTOGRAM,
    KSV_PROM_SUMMARY,
} ksv_prom_type;

typedef struct ksv_prom_label {
    const char *name;
    const char *value; /* unescaped, NUL-terminated */
} ksv_prom_label;

typedef struct ksv_prom_sample {
    const char *name;
    const ksv_prom_label *labels; /* in the order written */
    size_t n_labels;
    double value;
    bool has_timestamp;
    int64_t timestamp_ms;
    /* The family's type from the most recent `# TYPE` that covers this name (a histogram's
     * `_bucket`, `_sum`, `_count`; a summary's `_sum`, `_count`); UNTYPED otherwise. */
    ksv_prom_type type;
    size_t line; /* 1-based line number in the input */
    size_t label_off; /* internal: index of labels[0] in the document's label pool */
} ksv_prom_sample;

/* A parsed document. It owns every string and array the samples point into. */
typedef struct ksv_prom_doc {
    ksv_prom_sample *samples;
    size_t n_samples;
    ksv_prom_label *label_pool;
    size_t n_labels_total;
    char *strings; /* arena of unescaped names and values */
} ksv_prom_doc;

/* Defaults above. */
void ksv_prom_limits_default(ksv_prom_limits *limits);

/* Parses buf[0..len) (NUL bytes inside are data, and an error in a sample line). limits may
 * be NULL for the defaults. On success returns 0 and fills *out (free it with
 * ksv_prom_doc_free); on failure returns -1, leaves *out empty (safe to free) and sets err
 * (status 400 for bad input or a limit, 500 when out of memory). */
int ksv_prom_parse(const char *buf, size_t len, const ksv_prom_limits *limits,
                   ksv_prom_doc *out, ksv_err *err);
void ksv_prom_doc_free(ksv_prom_doc *doc);

/* The value of label `name`, or NULL. */
const char *ksv_prom_label_value(const ksv_prom_sample *s, const char *name);

/* Reads a Prometheus float the way sample values are read (used for `le` too). Returns 0
 * and sets *out, or -1 for anything that is not exactly one number. */
int ksv_prom_parse_float(const char *text, size_t len, double *out);

/* ---- ksv engine families ---- */

typedef struct ksv_code_count {
    int code; /* 100..999; the engine reports codes it cannot classify as 599 */
    uint64_t count;
} ksv_code_count;

typedef struct ksv_prom_bucket {
    double le;           /* upper bound; +Inf for the last */
    uint64_t cumulative; /* observations <= le */
} ksv_prom_bucket;

/* One revision as ksv-engine's /metrics shows it. Gauges absent from the scrape are NaN. */
typedef struct ksv_prom_rev {
    char *model;
    char *revision;
    ksv_code_count *codes; /* ksv_requests_total, sorted by code */
    size_t n_codes;
    ksv_prom_bucket *buckets; /* ksv_request_duration_seconds_bucket, sorted by le; when
                                 non-empty the last is +Inf and equals latency_count */
    size_t n_buckets;
    bool has_latency; /* _sum and _count both present */
    double latency_sum_s;
    uint64_t latency_count;
    double inflight;        /* ksv_inflight_requests */
    double ready;           /* ksv_model_ready */
    double load_seconds;    /* ksv_model_load_seconds */
    double traffic_percent; /* ksv_traffic_percent */
} ksv_prom_rev;

typedef struct ksv_prom_rev_list {
    ksv_prom_rev *items; /* in order of first appearance */
    size_t n;
} ksv_prom_rev_list;

/* Collects the ksv_* families (other families are ignored) into one record per
 * (model, revision). Refused with 400 and the line: a ksv sample without model or revision
 * labels, a code that is not an integer in 100..999, a negative, fractional or non-finite
 * counter, the same series twice, a bucket without a parsable `le`, and a histogram that is
 * not one (no +Inf bucket, decreasing cumulative counts, +Inf count != _count, _sum without
 * _count or the reverse). */
int ksv_prom_extract_ksv(const ksv_prom_doc *doc, ksv_prom_rev_list *out, ksv_err *err);
void ksv_prom_rev_list_free(ksv_prom_rev_list *list);
const ksv_prom_rev *ksv_prom_rev_find(const ksv_prom_rev_list *list, const char *model,
                                      const char *revision);
/* Sum of the counts whose code lies in [lo, hi]. */
uint64_t ksv_prom_rev_requests(const ksv_prom_rev *rev, int lo, int hi);

#endif
