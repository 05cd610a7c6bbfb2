/* test_prom_text.c: the Prometheus text parser and the ksv family extraction
 * (control/prom_text.h).
 * Oracles: expected samples and errors written from the format's rules (not from this
 * parser's output); a real ksv-engine scrape (tests/data/engine-metrics.txt, taken after
 * sending 21 good and 4 bad requests) checked against the requests sent, the histogram
 * geometry of common/histogram.h and a naive last-token strtod of every line; random
 * round trips through ksv_hist_write_prometheus and a separate escaper; truncation at every
 * byte offset and random mutations (must never crash: run under ASan/UBSan). */
#include "common/histogram.h"
#include "common/random.h"
#include "control/prom_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r)
{
    return ksv_splitmix64(&r->state);
}

static bool same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* ---- good inputs ---- */

typedef struct good_case {
    const char *in;
    size_t n_samples;
    /* the first sample */
    const char *name;
    size_t n_labels;
    const char *labels[3][2];
    double value;
    bool has_ts;
    int64_t ts;
    ksv_prom_type type;
} good_case;

static void test_good(void)
{
    static const good_case cases[] = {
        {"a 1\n", 1, "a", 0, {{0}}, 1, false, 0, KSV_PROM_UNTYPED},
        {"a{} 1\n", 1, "a", 0, {{0}}, 1, false, 0, KSV_PROM_UNTYPED},
        {"a{b=\"c\",} 2\n", 1, "a", 1, {{"b", "c"}}, 2, false, 0, KSV_PROM_UNTYPED},
        {"  a { b = \"c\" , d=\"e\" }  3   4  \n", 1, "a", 2, {{"b", "c"}, {"d", "e"}}, 3, true,
         4, KSV_PROM_UNTYPED},
        {"a{b=\"x\\\\y\\\"z\\n\"} 1\n", 1, "a", 1, {{"b", "x\\y\"z\n"}}, 1, false, 0,
         KSV_PROM_UNTYPED},
        {"a NaN\n", 1, "a", 0, {{0}}, NAN, false, 0, KSV_PROM_UNTYPED},
        {"a nan\n", 1, "a", 0, {{0}}, NAN, false, 0, KSV_PROM_UNTYPED},
        {"a +Inf\n", 1, "a", 0, {{0}}, INFINITY, false, 0, KSV_PROM_UNTYPED},
        {"a -Inf\n", 1, "a", 0, {{0}}, -INFINITY, false, 0, KSV_PROM_UNTYPED},
        {"a Inf\n", 1, "a", 0, {{0}}, INFINITY, false, 0, KSV_PROM_UNTYPED},
        {"a -infinity\n", 1, "a", 0, {{0}}, -INFINITY, false, 0, KSV_PROM_UNTYPED},
        {"a 1.5e-3\n", 1, "a", 0, {{0}}, 1.5e-3, false, 0, KSV_PROM_UNTYPED},
        {"a -2E+2\n", 1, "a", 0, {{0}}, -200, false, 0, KSV_PROM_UNTYPED},
        {"a .5\n", 1, "a", 0, {{0}}, 0.5, false, 0, KSV_PROM_UNTYPED},
        {"a 5.\n", 1, "a", 0, {{0}}, 5, false, 0, KSV_PROM_UNTYPED},
        {"a 1e-400\n", 1, "a", 0, {{0}}, 0, false, 0, KSV_PROM_UNTYPED},
        {"a 0.1\n", 1, "a", 0, {{0}}, 0.1, false, 0, KSV_PROM_UNTYPED},
        {"a 1 -5\n", 1, "a", 0, {{0}}, 1, true, -5, KSV_PROM_UNTYPED},
        {"a 1 9223372036854775807\n", 1, "a", 0, {{0}}, 1, true, INT64_MAX, KSV_PROM_UNTYPED},
        {"a 1 -9223372036854775808\n", 1, "a", 0, {{0}}, 1, true, INT64_MIN, KSV_PROM_UNTYPED},
        {"a{b=\"c\"} 7\r\nz 8\r\n", 2, "a", 1, {{"b", "c"}}, 7, false, 0, KSV_PROM_UNTYPED},
        {"# HELP a some \\\\ doc \xff\n# TYPE a counter\na 1\n", 1, "a", 0, {{0}}, 1, false, 0,
         KSV_PROM_COUNTER},
        {"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\nh_other 3\n", 4,
         "h_bucket", 1, {{"le", "+Inf"}}, 1, false, 0, KSV_PROM_HISTOGRAM},
        {"# TYPE g gauge\n# TYPE g summary\ng_sum 1\n", 1, "g_sum", 0, {{0}}, 1, false, 0,
         KSV_PROM_SUMMARY},
        {"# TYPE c counter\nc_total 1\n", 1, "c_total", 0, {{0}}, 1, false, 0,
         KSV_PROM_COUNTER},
        {"# TYPE x unknown\nx 1\n", 1, "x", 0, {{0}}, 1, false, 0, KSV_PROM_UNTYPED},
        {"# just a comment\n\n   \n\t\n# EOF\n", 0, NULL, 0, {{0}}, 0, false, 0, 0},
        {"", 0, NULL, 0, {{0}}, 0, false, 0, 0},
        {"{\"my.metric\",\"a.b\"=\"1\"} 7\n", 1, "my.metric", 1, {{"a.b", "1"}}, 7, false, 0,
         KSV_PROM_UNTYPED},
        {"a{b=\"\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x98\x80\"} 1\n", 1, "a", 1,
         {{"b", "\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x98\x80"}}, 1, false, 0, KSV_PROM_UNTYPED},
        {"a:b_c9 1\n", 1, "a:b_c9", 0, {{0}}, 1, false, 0, KSV_PROM_UNTYPED},
        {"a{b=\"\"} 0\n", 1, "a", 1, {{"b", ""}}, 0, false, 0, KSV_PROM_UNTYPED},
        {"a{b=\"c\"}\t1\n", 1, "a", 1, {{"b", "c"}}, 1, false, 0, KSV_PROM_UNTYPED},
        {"a{__name__=\"x\",_b=\"1\"} 1\n", 1, "a", 2, {{"__name__", "x"}, {"_b", "1"}}, 1,
         false, 0, KSV_PROM_UNTYPED},
    };
    printf("good inputs: %zu cases\n", sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const good_case *c = &cases[i];
        ksv_prom_doc doc;
        ksv_err err = {0};
        int rc = ksv_prom_parse(c->in, strlen(c->in), NULL, &doc, &err);
        KT_CHECK(rc == 0, "good case %zu refused: %s", i, err.msg);
        if (rc != 0)
            continue;
        KT_CHECK(doc.n_samples == c->n_samples, "case %zu: %zu samples, want %zu", i,
                 doc.n_samples, c->n_samples);
        if (c->n_samples && doc.n_samples) {
            const ksv_prom_sample *s = &doc.samples[0];
            KT_CHECK(strcmp(s->name, c->name) == 0, "case %zu: name %s", i, s->name);
            KT_CHECK(s->n_labels == c->n_labels, "case %zu: %zu labels", i, s->n_labels);
            for (size_t k = 0; k < c->n_labels && k < s->n_labels; k++) {
                KT_CHECK(strcmp(s->labels[k].name, c->labels[k][0]) == 0, "case %zu label %zu", i,
                         k);
                KT_CHECK(strcmp(s->labels[k].value, c->labels[k][1]) == 0,
                         "case %zu label %zu value '%s'", i, k, s->labels[k].value);
                KT_CHECK(strcmp(ksv_prom_label_value(s, c->labels[k][0]), c->labels[k][1]) == 0,
                         "case %zu label lookup", i);
            }
            KT_CHECK(same_double(s->value, c->value), "case %zu: value %.17g, want %.17g", i,
                     s->value, c->value);
            KT_CHECK(s->has_timestamp == c->has_ts && (!c->has_ts || s->timestamp_ms == c->ts),
                     "case %zu: timestamp", i);
            KT_CHECK(s->type == c->type, "case %zu: type %d, want %d", i, s->type, c->type);
            KT_CHECK(s->line == 1 || c->in[0] == '#', "case %zu: line %zu", i, s->line);
        }
        ksv_prom_doc_free(&doc);
    }
}

/* ---- broken inputs ---- */

typedef struct bad_case {
    const char *in;
    size_t len; /* 0: strlen */
    size_t line;
    const char *reason;
} bad_case;

static void test_broken(void)
{
    static const bad_case cases[] = {
        {"a{b=\"c} 1\n", 0, 1, "unterminated label value"},
        {"a{b=\"c\"}\n", 0, 1, "missing value"},
        {"a 1x\n", 0, 1, "bad number"},
        {"a{b=\"1\",b=\"2\"} 1\n", 0, 1, "duplicate label b"},
        {"1a 1\n", 0, 1, "invalid metric name"},
        {"a-b 1\n", 0, 1, "invalid character in metric name"},
        {"\x01\x02\xff 1\n", 0, 1, "invalid metric name"},
        {"a{b=\"\xff\"} 1\n", 0, 1, "invalid UTF-8 in label value"},
        {"a{b=\"\xed\xa0\x80\"} 1\n", 0, 1, "invalid UTF-8 in label value"}, /* surrogate */
        {"a{b=\"\xc0\xaf\"} 1\n", 0, 1, "invalid UTF-8 in label value"},     /* overlong */
        {"a{b=\"x\\q\"} 1\n", 0, 1, "invalid escape sequence in label value"},
        {"a{b\"c\"} 1\n", 0, 1, "expected '=' after label name"},
        {"a{b=c} 1\n", 0, 1, "expected '\"' to start the label value"},
        {"a{b=\"c\" d=\"e\"} 1\n", 0, 1, "expected ',' or '}' after a label"},
        {"a{b=\"c\"\n", 0, 1, "unterminated label set"},
        {"a 1 2 3\n", 0, 1, "unexpected text after the timestamp"},
        {"a 1 1.5\n", 0, 1, "bad timestamp"},
        {"a 1 9223372036854775808\n", 0, 1, "bad timestamp"},
        {"a 1e999\n", 0, 1, "bad number"},
        {"a 0x1p3\n", 0, 1, "bad number"},
        {"a +NaN\n", 0, 1, "bad number"},
        {"a 1_000\n", 0, 1, "bad number"},
        {"a .\n", 0, 1, "bad number"},
        {"a 1e\n", 0, 1, "bad number"},
        {"a 1", 0, 1, "no newline at end of input"},
        {"a 1\nb 2", 0, 2, "no newline at end of input"},
        {"# TYPE a blah\n", 0, 1, "unknown metric type in TYPE line"},
        {"# TYPE 1a counter\n", 0, 1, "invalid metric name in TYPE line"},
        {"# TYPE a\n", 0, 1, "missing type in TYPE line"},
        {"# TYPE a counter extra\n", 0, 1, "unexpected text after the type"},
        {"# HELP\n", 0, 1, "invalid metric name in HELP line"},
        {"a{=\"x\"} 1\n", 0, 1, "invalid label name"},
        {"a{b=\"x\"}1\n", 0, 1, "expected a blank before the value"},
        {"{\"a\",\"b\"} 1\n", 0, 1, "metric name given twice"},
        {"{b=\"c\"} 1\n", 0, 1, "missing metric name"},
        {"{\"\"} 1\n", 0, 1, "empty metric name"},
        {"a{b=\"c\0d\"} 1\n", 13, 1, "NUL byte in label value"},
        {"a\0 1\n", 5, 1, "invalid character in metric name"},
        {"ok 1\nbad{ 2\n", 0, 2, "invalid label name"},
        {"a{b=\"c\"} 1\r\r\n", 0, 1, "bad number"},
        {"# HELP a x\n\nok{} 1\nbad 1 2 3 4\n", 0, 4, "unexpected text after the timestamp"},
        {"a{b=\"c\\", 0, 1, "no newline"},
        {"a{b=\"c\\\n", 0, 1, "unterminated label value"},
        {"a{\"b} 1\n", 0, 1, "unterminated quoted name"},
    };
    printf("broken inputs: %zu cases\n", sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->in);
        ksv_prom_doc doc;
        ksv_err err = {0};
        int rc = ksv_prom_parse(c->in, len, NULL, &doc, &err);
        char want[160];
        snprintf(want, sizeof want, "line %zu: %s", c->line, c->reason);
        KT_CHECK(rc == -1, "broken case %zu accepted", i);
        KT_CHECK(rc != -1 || (err.status == 400 && strstr(err.msg, want)),
                 "broken case %zu: got '%s' (status %d), want '%s'", i, err.msg, err.status, want);
        KT_CHECK(doc.n_samples == 0 && doc.samples == NULL, "broken case %zu left samples", i);
        ksv_prom_doc_free(&doc);
    }

    /* Limits. */
    ksv_prom_limits lim;
    ksv_prom_limits_default(&lim);
    KT_CHECK(lim.max_line == KSV_PROM_DEFAULT_MAX_LINE && lim.max_samples > 0 && lim.max_labels > 0,
             "default limits");
    static const struct {
        const char *in;
        size_t max_line, max_samples, max_labels;
        const char *want;
    } limited[] = {
        {"a{x=\"1\",y=\"2\",z=\"3\"} 1\n", 100, 10, 2, "line 1: more than 2 labels"},
        {"a 1\nb 2\n# c\nc 3\n", 100, 2, 10, "line 4: more than 2 samples"},
        {"a 1\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 2\n", 32, 10, 10,
         "line 2: longer than 32 bytes"},
        {"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 32, 10, 10,
         "line 1: longer than 32 bytes"},
        {"# aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 32, 10, 10,
         "line 1: longer than 32 bytes"},
    };
    for (size_t i = 0; i < sizeof limited / sizeof limited[0]; i++) {
        lim.max_line = limited[i].max_line;
        lim.max_samples = limited[i].max_samples;
        lim.max_labels = limited[i].max_labels;
        ksv_prom_doc doc;
        ksv_err err = {0};
        int rc = ksv_prom_parse(limited[i].in, strlen(limited[i].in), &lim, &doc, &err);
        KT_CHECK(rc == -1 && strstr(err.msg, limited[i].want), "limit case %zu: rc %d '%s'", i,
                 rc, err.msg);
        ksv_prom_doc_free(&doc);
    }
    /* Exactly at the limits is fine: a 32-byte line with CRLF, 2 samples, 2 labels. */
    lim.max_line = 32;
    lim.max_samples = 2;
    lim.max_labels = 2;
    const char *edge = "abcdefghijklmnopqrstuvwxyz0123 1\r\nb{x=\"1\",y=\"2\"} 2\n";
    ksv_prom_doc doc;
    ksv_err err = {0};
    KT_CHECK(ksv_prom_parse(edge, strlen(edge), &lim, &doc, &err) == 0 && doc.n_samples == 2,
             "exactly at the limits: %s", err.msg);
    ksv_prom_doc_free(&doc);
}

/* ---- ksv extraction, broken ---- */

static void test_extract_broken(void)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"ksv_requests_total{revision=\"r\",code=\"200\"} 1\n",
         "line 1: ksv_requests_total without a model label"},
        {"ksv_requests_total{model=\"m\",code=\"200\"} 1\n",
         "line 1: ksv_requests_total without a revision label"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\"abc\"} 1\n", "code label"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\"1000\"} 1\n", "code label"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\" 200\"} 1\n", "code label"},
        {"ksv_requests_total{model=\"m\",revision=\"r\"} 1\n", "code label"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\"200\"} 1.5\n", "whole"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\"200\"} -1\n", "whole"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\"200\"} NaN\n", "whole"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\"200\"} 1e30\n", "whole"},
        {"ksv_requests_total{model=\"m\",revision=\"r\",code=\"200\"} 1\n"
         "ksv_requests_total{model=\"m\",revision=\"r\",code=\"200\"} 2\n",
         "line 2: ksv_requests_total repeats a series"},
        {"ksv_model_ready{model=\"m\",revision=\"r\"} 1\nksv_model_ready{model=\"m\",revision=\"r\"} 1\n",
         "line 2: ksv_model_ready repeats a series"},
        {"ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\"} 1\n", "le label"},
        {"ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"x\"} 1\n",
         "le label"},
        {"ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"1\"} 1\n"
         "ksv_request_duration_seconds_sum{model=\"m\",revision=\"r\"} 1\n"
         "ksv_request_duration_seconds_count{model=\"m\",revision=\"r\"} 1\n",
         "no le=\"+Inf\" bucket"},
        {"ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"1\"} 2\n"
         "ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"+Inf\"} 1\n"
         "ksv_request_duration_seconds_sum{model=\"m\",revision=\"r\"} 1\n"
         "ksv_request_duration_seconds_count{model=\"m\",revision=\"r\"} 1\n",
         "not cumulative"},
        {"ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"+Inf\"} 2\n"
         "ksv_request_duration_seconds_sum{model=\"m\",revision=\"r\"} 1\n"
         "ksv_request_duration_seconds_count{model=\"m\",revision=\"r\"} 1\n",
         "differs from _count"},
        {"ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"+Inf\"} 2\n",
         "buckets but no _sum and _count"},
        {"ksv_request_duration_seconds_sum{model=\"m\",revision=\"r\"} 1\n", "_sum without _count"},
        {"ksv_request_duration_seconds_count{model=\"m\",revision=\"r\"} 1\n",
         "_count without _sum"},
        {"ksv_request_duration_seconds_sum{model=\"m\",revision=\"r\"} -1\n", "finite non-negative"},
        {"ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"+Inf\"} 1\n"
         "ksv_request_duration_seconds_bucket{model=\"m\",revision=\"r\",le=\"+inf\"} 1\n",
         "repeats a series"},
    };
    printf("broken ksv families: %zu cases\n", sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ksv_prom_doc doc;
        ksv_err err = {0};
        int rc = ksv_prom_parse(cases[i].in, strlen(cases[i].in), NULL, &doc, &err);
        KT_CHECK(rc == 0, "extract case %zu does not parse: %s", i, err.msg);
        ksv_prom_rev_list list;
        rc = ksv_prom_extract_ksv(&doc, &list, &err);
        KT_CHECK(rc == -1 && err.status == 400 && strstr(err.msg, cases[i].want),
                 "extract case %zu: rc %d '%s', want '%s'", i, rc, err.msg, cases[i].want);
        KT_CHECK(list.n == 0 && list.items == NULL, "extract case %zu left records", i);
        ksv_prom_rev_list_free(&list);
        ksv_prom_doc_free(&doc);
    }
}

/* ---- the real engine scrape ---- */

static char *load_capture(size_t *len)
{
    const char *srcdir = getenv("srcdir");
    char path[4096];
    const char *candidates[] = {"tests/data/engine-metrics.txt", "data/engine-metrics.txt",
                                "../tests/data/engine-metrics.txt"};
    if (srcdir) {
        snprintf(path, sizeof path, "%s/tests/data/engine-metrics.txt", srcdir);
        char *buf = kt_read_file(path, len);
        if (buf)
            return buf;
    }
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char *buf = kt_read_file(candidates[i], len);
        if (buf)
            return buf;
    }
    return NULL;
}

/* Sample lines of an exposition as a naive reader sees them: not blank, not '#'. */
static size_t count_sample_lines(const char *buf, size_t len)
{
    size_t n = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        if (nl > p && *p != '#')
            n++;
        p = nl + 1;
    }
    return n;
}

static void test_engine_capture(void)
{
    size_t len = 0;
    char *buf = load_capture(&len);
    KT_CHECK(buf != NULL, "cannot read tests/data/engine-metrics.txt (set srcdir)");
    if (!buf)
        return;
    ksv_prom_doc doc;
    ksv_err err = {0};
    int rc = ksv_prom_parse(buf, len, NULL, &doc, &err);
    KT_CHECK(rc == 0, "engine capture refused: %s", err.msg);
    if (rc != 0) {
        free(buf);
        return;
    }
    size_t lines = count_sample_lines(buf, len);
    printf("engine capture: %zu bytes, %zu samples\n", len, doc.n_samples);
    KT_CHECK(doc.n_samples == lines, "%zu samples, %zu sample lines", doc.n_samples, lines);

    /* Every value equals strtod of the line's last token (the engine writes no timestamps). */
    size_t k = 0, mismatches = 0;
    const char *p = buf, *end = buf + len;
    while (p < end && k < doc.n_samples) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl > p && *p != '#') {
            const char *sp = nl;
            while (sp > p && sp[-1] != ' ')
                sp--;
            char tok[64];
            size_t tn = (size_t)(nl - sp) < sizeof tok - 1 ? (size_t)(nl - sp) : sizeof tok - 1;
            memcpy(tok, sp, tn);
            tok[tn] = '\0';
            double want = strcmp(tok, "+Inf") == 0 ? INFINITY : strtod(tok, NULL);
            if (!same_double(doc.samples[k].value, want))
                mismatches++;
            k++;
        }
        p = nl + 1;
    }
    KT_CHECK(mismatches == 0, "%zu values differ from a naive strtod", mismatches);

    ksv_prom_rev_list list;
    rc = ksv_prom_extract_ksv(&doc, &list, &err);
    KT_CHECK(rc == 0, "engine capture extraction: %s", err.msg);
    if (rc == 0) {
        KT_CHECK(list.n == 1, "%zu revisions, want 1", list.n);
        const ksv_prom_rev *r = ksv_prom_rev_find(&list, "iris", "iris-00001");
        KT_CHECK(r != NULL, "iris/iris-00001 missing");
        KT_CHECK(ksv_prom_rev_find(&list, "iris", "iris-00009") == NULL, "unknown revision found");
        if (r) {
            /* Sent: 20 V2 + 1 V1 good requests, 3 shape errors + 1 bad JSON; the request
             * pinned to an unknown revision (404) belongs to no revision. */
            KT_CHECK(r->n_codes == 2 && r->codes[0].code == 200 && r->codes[0].count == 21 &&
                         r->codes[1].code == 400 && r->codes[1].count == 4,
                     "codes");
            KT_CHECK(ksv_prom_rev_requests(r, 200, 299) == 21, "2xx");
            KT_CHECK(ksv_prom_rev_requests(r, 400, 499) == 4, "4xx");
            KT_CHECK(ksv_prom_rev_requests(r, 500, 599) == 0, "5xx");
            KT_CHECK(r->has_latency && r->latency_count == 25, "count %llu",
                     (unsigned long long)r->latency_count);
            KT_CHECK(r->latency_sum_s > 0 && r->latency_sum_s < 1, "sum %g", r->latency_sum_s);
            size_t nb = ksv_hist_prom_bucket_count();
            KT_CHECK(r->n_buckets == nb, "%zu buckets, want %zu", r->n_buckets, nb);
            for (size_t i = 0; i < r->n_buckets && i < nb; i++)
                KT_CHECK(r->buckets[i].le == ksv_hist_prom_le(i), "le %zu: %.17g vs %.17g", i,
                         r->buckets[i].le, ksv_hist_prom_le(i));
            KT_CHECK(r->n_buckets && r->buckets[r->n_buckets - 1].cumulative == 25, "+Inf");
            KT_CHECK(r->inflight == 0 && r->ready == 1 && r->traffic_percent == 100,
                     "gauges %g %g %g", r->inflight, r->ready, r->traffic_percent);
            KT_CHECK(r->load_seconds == 0.025307, "load %g", r->load_seconds);
        }
        ksv_prom_rev_list_free(&list);
    }

    /* Truncation at every byte offset: a cut right after a newline is a shorter valid
     * exposition whose samples are the full parse's first ones; any other cut is refused
     * as having no newline at the end. */
    size_t ok_cuts = 0, refused_cuts = 0, wrong = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        ksv_prom_doc part;
        ksv_err e2 = {0};
        int r2 = ksv_prom_parse(buf, cut, NULL, &part, &e2);
        bool at_line_end = cut == 0 || buf[cut - 1] == '\n';
        if (at_line_end) {
            size_t want = count_sample_lines(buf, cut);
            bool good = r2 == 0 && part.n_samples == want;
            for (size_t i = 0; good && i < part.n_samples; i++)
                good = strcmp(part.samples[i].name, doc.samples[i].name) == 0 &&
                       same_double(part.samples[i].value, doc.samples[i].value) &&
                       part.samples[i].n_labels == doc.samples[i].n_labels;
            if (good)
                ok_cuts++;
            else
                wrong++;
        } else {
            if (r2 == -1 && strstr(e2.msg, "no newline at end of input"))
                refused_cuts++;
            else
                wrong++;
        }
        ksv_prom_doc_free(&part);
    }
    printf("truncation: %zu cuts parsed as a valid prefix, %zu refused, %zu wrong\n", ok_cuts,
           refused_cuts, wrong);
    KT_CHECK(wrong == 0, "%zu truncations handled wrongly", wrong);
    size_t newlines = 0;
    for (size_t i = 0; i < len; i++)
        newlines += buf[i] == '\n';
    KT_CHECK(ok_cuts == newlines + 1, "%zu valid cuts, want %zu", ok_cuts, newlines + 1);

    /* Random mutations: flips, deletions, insertions of special bytes. Nothing may crash;
     * whatever is accepted must still be a well-formed document. */
    rng r = {42};
    static const char specials[] = "{}\"\\=, \n\r\t#\0\xff+-.eE";
    char *mut = malloc(len + 64);
    size_t accepted = 0;
    for (int iter = 0; iter < 3000 && mut; iter++) {
        memcpy(mut, buf, len);
        size_t n = len;
        int edits = 1 + (int)(rng_next(&r) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(rng_next(&r) % (n ? n : 1));
            switch (rng_next(&r) % 3) {
            case 0:
                mut[at] = (char)rng_next(&r);
                break;
            case 1:
                if (n > 1) {
                    memmove(mut + at, mut + at + 1, n - at - 1);
                    n--;
                }
                break;
            default:
                memmove(mut + at + 1, mut + at, n - at);
                mut[at] = specials[rng_next(&r) % (sizeof specials - 1)];
                n++;
                break;
            }
        }
        ksv_prom_doc m;
        ksv_err e3 = {0};
        if (ksv_prom_parse(mut, n, NULL, &m, &e3) == 0) {
            accepted++;
            bool sane = m.n_samples <= count_sample_lines(mut, n) + 1;
            for (size_t i = 0; i < m.n_samples; i++)
                sane = sane && m.samples[i].name && m.samples[i].name[0];
            KT_CHECK(sane, "mutation %d accepted as a malformed document", iter);
            ksv_prom_rev_list l2;
            if (ksv_prom_extract_ksv(&m, &l2, &e3) == 0)
                ksv_prom_rev_list_free(&l2);
        } else {
            KT_CHECK(e3.msg[0] != '\0' && strncmp(e3.msg, "line ", 5) == 0,
                     "mutation %d: error without a line: '%s'", iter, e3.msg);
        }
        ksv_prom_doc_free(&m);
    }
    printf("mutations: 3000 tried, %zu still valid\n", accepted);
    /* Pure garbage. */
    for (int iter = 0; iter < 2000 && mut; iter++) {
        size_t n = (size_t)(rng_next(&r) % 64);
        for (size_t i = 0; i < n; i++)
            mut[i] = (char)rng_next(&r);
        ksv_prom_doc m;
        ksv_err e3 = {0};
        if (ksv_prom_parse(mut, n, NULL, &m, &e3) == 0)
            ksv_prom_doc_free(&m);
    }
    free(mut);
    ksv_prom_doc_free(&doc);
    free(buf);
}

/* ---- round trips through the engine's own writer ---- */

static void escape_label(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static void test_round_trip(void)
{
    rng r = {7};
    static const char alphabet[] = "ab\\\"\n ={},#\xc3\xa9z";
    ksv_hist_snap *snap = malloc(sizeof *snap);
    if (!snap)
        return;
    size_t bad = 0;
    for (int iter = 0; iter < 200; iter++) {
        char model[40], revision[40];
        size_t mn = 1 + rng_next(&r) % 20;
        size_t o = 0;
        for (size_t i = 0; i < mn; i++) {
            char c = alphabet[rng_next(&r) % (sizeof alphabet - 1)];
            if ((unsigned char)c >= 0x80) /* keep UTF-8 whole: é is two bytes */
                c = 'e';
            model[o++] = c;
        }
        model[o] = '\0';
        snprintf(revision, sizeof revision, "%s-%05d", iter % 2 ? "\xc3\xa9" : "r", iter);
        char em[100], er[100], labels[256];
        escape_label(em, sizeof em, model);
        escape_label(er, sizeof er, revision);
        snprintf(labels, sizeof labels, "model=\"%s\",revision=\"%s\"", em, er);

        ksv_hist_snap_clear(snap);
        for (int s = 0; s < 50; s++) {
            size_t idx = (size_t)(rng_next(&r) % KSV_HIST_BUCKETS);
            uint64_t c = rng_next(&r) % 1000;
            snap->counts[idx] += c;
            snap->count += c;
        }
        snap->sum_seconds = (double)(rng_next(&r) % 100000) / 1000.0;
        uint64_t c200 = rng_next(&r) % 100000, c503 = rng_next(&r) % 10;

        ksv_sb sb;
        ksv_sb_init(&sb);
        ksv_sb_puts(&sb, "# TYPE ksv_requests_total counter\n");
        ksv_sb_printf(&sb, "ksv_requests_total{%s,code=\"200\"} %llu\n", labels,
                      (unsigned long long)c200);
        ksv_sb_printf(&sb, "ksv_requests_total{%s,code=\"503\"} %llu\n", labels,
                      (unsigned long long)c503);
        ksv_sb_puts(&sb, "# TYPE ksv_request_duration_seconds histogram\n");
        ksv_hist_write_prometheus(&sb, "ksv_request_duration_seconds", labels, snap);
        ksv_sb_printf(&sb, "ksv_traffic_percent{%s} 40\n", labels);

        ksv_prom_doc doc;
        ksv_prom_rev_list list = {0};
        ksv_err err = {0};
        bool ok = !sb.oom && ksv_prom_parse(sb.data, sb.len, NULL, &doc, &err) == 0;
        if (ok) {
            ok = doc.n_samples > 0 && doc.samples[0].type == KSV_PROM_COUNTER &&
                 strcmp(ksv_prom_label_value(&doc.samples[0], "model"), model) == 0;
            ok = ok && ksv_prom_extract_ksv(&doc, &list, &err) == 0 && list.n == 1;
            const ksv_prom_rev *rv = ok ? ksv_prom_rev_find(&list, model, revision) : NULL;
            ok = rv && rv->n_codes == 2 && rv->codes[0].count == c200 &&
                 rv->codes[1].count == c503 && rv->traffic_percent == 40 &&
                 rv->latency_count == snap->count && rv->latency_sum_s == snap->sum_seconds &&
                 rv->n_buckets == ksv_hist_prom_bucket_count();
            /* Each coarse bucket = the sum of the fine buckets up to its fine index. */
            uint64_t running = 0;
            size_t fine = 0;
            for (size_t i = 0; ok && i < rv->n_buckets; i++) {
                size_t upto = ksv_hist_prom_fine_index(i);
                for (; fine <= upto; fine++)
                    running += snap->counts[fine];
                ok = rv->buckets[i].cumulative == running;
            }
            ksv_prom_rev_list_free(&list);
            ksv_prom_doc_free(&doc);
        }
        if (!ok) {
            bad++;
            if (bad < 4)
                printf("round trip %d failed: %s\n", iter, err.msg);
        }
        ksv_sb_free(&sb);
    }
    printf("round trips: 200 random expositions, %zu failed\n", bad);
    KT_CHECK(bad == 0, "round trips failed");
    free(snap);
}

static void test_floats(void)
{
    /* Against strtod in the C locale (the process never changed it here). */
    static const char *nums[] = {"0",      "-0",         "1e308",  "2.2250738585072014e-308",
                                 "4.9e-324", "123456789.123456789", "0.30000000000000004",
                                 "-1.5E-7", "00012",     "1."};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        double v = -1;
        int rc = ksv_prom_parse_float(nums[i], strlen(nums[i]), &v);
        KT_CHECK(rc == 0 && v == strtod(nums[i], NULL), "float %s", nums[i]);
    }
    double v;
    KT_CHECK(ksv_prom_parse_float("", 0, &v) == -1, "empty float");
    KT_CHECK(ksv_prom_parse_float("1 ", 2, &v) == -1, "trailing blank");
    KT_CHECK(ksv_prom_parse_float(" 1", 2, &v) == -1, "leading blank");
    KT_CHECK(ksv_prom_parse_float("nan(1)", 6, &v) == -1, "nan(...)");
    KT_CHECK(ksv_prom_parse_float("-nan", 4, &v) == -1, "-nan");
    char longnum[300];
    memset(longnum, '1', sizeof longnum);
    KT_CHECK(ksv_prom_parse_float(longnum, sizeof longnum, &v) == -1, "300-digit number");
}

/* A release gate's shadow copies (mirrored="true") never reach a client's figures. */
static void test_mirrored_skipped(void)
{
    static const char text[] =
        "ksv_requests_total{model=\"m\",revision=\"m-2\",code=\"200\"} 3\n"
        "ksv_requests_total{model=\"m\",revision=\"m-2\",code=\"200\",mirrored=\"true\"} 500\n"
        "ksv_requests_total{model=\"m\",revision=\"m-2\",code=\"400\",mirrored=\"true\"} 7\n";
    ksv_prom_doc doc;
    ksv_err err = {0};
    ksv_prom_rev_list revs = {0};
    int rc = ksv_prom_parse(text, sizeof text - 1, NULL, &doc, &err);
    if (rc == 0)
        rc = ksv_prom_extract_ksv(&doc, &revs, &err);
    const ksv_prom_rev *r = rc == 0 ? ksv_prom_rev_find(&revs, "m", "m-2") : NULL;
    KT_CHECK(r && ksv_prom_rev_requests(r, 100, 999) == 3,
             "mirrored series are left out of the revision's requests (%s)", err.msg);
    if (rc == 0 || revs.items)
        ksv_prom_rev_list_free(&revs);
    ksv_prom_doc_free(&doc);
}

/* Found by fuzz_prom_text: samples without labels left the label pool NULL, and the parser
 * added an offset to it (undefined behaviour that UBSan stops on). */
static void test_no_labels(void)
{
    static const char text[] = "x 1\ny 2\n";
    ksv_prom_doc doc;
    ksv_err err = {0};
    int rc = ksv_prom_parse(text, sizeof text - 1, NULL, &doc, &err);
    KT_CHECK(rc == 0 && doc.n_samples == 2 && doc.samples[1].value == 2.0,
             "a document whose samples have no labels parses (%s)", err.msg);
    if (rc == 0)
        ksv_prom_doc_free(&doc);
}

int main(void)
{
    test_no_labels();
    test_mirrored_skipped();
    test_good();
    test_broken();
    test_extract_broken();
    test_floats();
    test_engine_capture();
    test_round_trip();
    return kt_summary("test_prom_text");
}
