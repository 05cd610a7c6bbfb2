/* test_histogram.c: accuracy and robustness of the latency histogram (common/histogram.h).
 * Oracles: quantiles are compared with the exact nearest-rank quantile of the sorted samples;
 * bucket indexes with a frexp-based derivation; the Prometheus algorithm with cases worked
 * by hand from its documented rules (and the worked example in Prometheus' docs); the JSON
 * with json-c; the text output with a separate line parser. */
#define _GNU_SOURCE
#include "common/histogram.h"
#include "common/random.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "ktest.h"

/* ---- deterministic random numbers (splitmix64) ---- */

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r)
{
    return ksv_splitmix64(&r->state);
}

/* Uniform in (0, 1), never 0 or 1, so log() below is always finite. */
static double rng_unit(rng *r)
{
    return ((double)(rng_next(r) >> 11) + 0.5) * 0x1p-53;
}

static double rng_normal(rng *r)
{
    return sqrt(-2.0 * log(rng_unit(r))) * cos(2.0 * M_PI * rng_unit(r));
}

static double rng_lognormal(rng *r, double median, double sigma)
{
    return median * exp(sigma * rng_normal(r));
}

/* ---- exact quantiles ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank with the histogram's rank rule: the first sample whose 1-based position
 * reaches q*n. */
static double exact_quantile(const double *sorted, size_t n, double q)
{
    double k = ceil(q * (double)n);
    if (k < 1)
        k = 1;
    if (k > (double)n)
        k = (double)n;
    return sorted[(size_t)k - 1];
}

static double rel_err(double estimate, double exact)
{
    return fabs(estimate - exact) / fabs(exact);
}

/* ---- a small Prometheus text parser, independent of the writer ---- */

typedef struct prom_parsed {
    double le[512];
    double cum[512];
    char le_text[512][40];
    size_t n;
    double sum;
    double count;
    bool have_sum, have_count;
} prom_parsed;

/* Parses the lines the writer produced for `metric` with exactly `labels` (may be "").
 * Returns false and prints why on any deviation from the format. */
static bool parse_prom(const char *text, const char *metric, const char *labels,
                       prom_parsed *p)
{
    memset(p, 0, sizeof *p);
    char bucket_prefix[256], sum_name[256], count_name[256];
    snprintf(bucket_prefix, sizeof bucket_prefix, "%s_bucket{%s%sle=\"", metric, labels,
             *labels ? "," : "");
    if (*labels) {
        snprintf(sum_name, sizeof sum_name, "%s_sum{%s} ", metric, labels);
        snprintf(count_name, sizeof count_name, "%s_count{%s} ", metric, labels);
    } else {
        snprintf(sum_name, sizeof sum_name, "%s_sum ", metric);
        snprintf(count_name, sizeof count_name, "%s_count ", metric);
    }
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        if (!nl) {
            printf("  text does not end with a newline\n");
            return false;
        }
        char *end;
        if (!strncmp(line, bucket_prefix, strlen(bucket_prefix))) {
            const char *le = line + strlen(bucket_prefix);
            const char *q = strchr(le, '"');
            if (!q || q > nl || q[1] != '}' || q[2] != ' ' || p->n >= 512 ||
                (size_t)(q - le) >= sizeof p->le_text[0]) {
                printf("  bad bucket line: %.*s\n", (int)(nl - line), line);
                return false;
            }
            memcpy(p->le_text[p->n], le, (size_t)(q - le));
            p->le_text[p->n][q - le] = '\0';
            p->le[p->n] = strcmp(p->le_text[p->n], "+Inf") == 0
                              ? INFINITY
                              : strtod(p->le_text[p->n], &end);
            p->cum[p->n] = strtod(q + 3, &end);
            if (end != nl) {
                printf("  bad bucket value: %.*s\n", (int)(nl - line), line);
                return false;
            }
            p->n++;
        } else if (!strncmp(line, sum_name, strlen(sum_name))) {
            p->sum = strtod(line + strlen(sum_name), &end);
            p->have_sum = end == nl;
        } else if (!strncmp(line, count_name, strlen(count_name))) {
            p->count = strtod(line + strlen(count_name), &end);
            p->have_count = end == nl;
        } else {
            printf("  unexpected line: %.*s\n", (int)(nl - line), line);
            return false;
        }
        line = nl + 1;
    }
    return p->n > 0 && p->have_sum && p->have_count;
}

/* Checks the invariants of an exported histogram against the samples that went in. */
static void check_prom_text(const char *text, const char *metric, const char *labels,
                            uint64_t n, long double exact_sum, prom_parsed *p)
{
    bool ok = parse_prom(text, metric, labels, p);
    KT_CHECK(ok, "Prometheus text for %s{%s} does not parse", metric, labels);
    if (!ok)
        return;
    KT_CHECK(p->n == ksv_hist_prom_bucket_count(), "%zu bucket lines, want %zu", p->n,
             ksv_hist_prom_bucket_count());
    for (size_t i = 0; i < p->n; i++) {
        KT_CHECK(p->le[i] == ksv_hist_prom_le(i), "le \"%s\" reads back as %.17g, want %.17g",
                 p->le_text[i], p->le[i], ksv_hist_prom_le(i));
        if (i > 0) {
            KT_CHECK(p->le[i] > p->le[i - 1], "le not increasing at %zu", i);
            KT_CHECK(p->cum[i] >= p->cum[i - 1], "cumulative decreases at le=%s", p->le_text[i]);
        }
    }
    KT_CHECK(isinf(p->le[p->n - 1]), "last bucket is not +Inf");
    KT_CHECK(p->cum[p->n - 1] == (double)n, "+Inf bucket %.0f, want %llu", p->cum[p->n - 1],
             (unsigned long long)n);
    KT_CHECK(p->count == (double)n, "_count %.0f, want %llu", p->count, (unsigned long long)n);
    /* Each sample is rounded to a whole nanosecond in the sum. */
    double tol = 0.5e-9 * (double)n + 1e-12 * (double)exact_sum;
    KT_CHECK(fabsl((long double)p->sum - exact_sum) <= tol, "_sum %.12g, exact %.12Lg", p->sum,
             exact_sum);
}

/* ---- accuracy per distribution ---- */

enum dist_kind { D_LOGNORMAL, D_EXPONENTIAL, D_BIMODAL, D_UNIFORM, D_LLM, D_PARETO, D_NARROW };

typedef struct dist {
    const char *name;
    enum dist_kind kind;
    bool smooth; /* false: narrower than a coarse bucket, only the bucket-width bound holds */
} dist;

static double draw(rng *r, enum dist_kind kind)
{
    switch (kind) {
    case D_LOGNORMAL:
        return rng_lognormal(r, 0.002, 0.6);
    case D_EXPONENTIAL:
        return -0.005 * log(rng_unit(r));
    case D_BIMODAL:
        return rng_unit(r) < 0.95 ? rng_lognormal(r, 0.001, 0.15) : rng_lognormal(r, 0.040, 0.25);
    case D_UNIFORM:
        return 0.010 + 0.040 * rng_unit(r);
    case D_LLM:
        return rng_lognormal(r, 3.0, 0.5);
    case D_PARETO:
        return 0.001 * pow(rng_unit(r), -1.0 / 1.5);
    case D_NARROW:
        return 0.0103 + 0.00005 * rng_normal(r);
    }
    return 0;
}

/* The relative width of the coarse bucket holding v. */
static double coarse_width_at(double v)
{
    for (size_t i = 1; i < ksv_hist_prom_bucket_count(); i++)
        if (v <= ksv_hist_prom_le(i))
            return (ksv_hist_prom_le(i) - ksv_hist_prom_le(i - 1)) / ksv_hist_prom_le(i - 1);
    return INFINITY;
}

static void test_distribution(const dist *d, ksv_hist *h, ksv_hist_snap *snap, ksv_sb *sb)
{
    const size_t n = 200000;
    double *x = malloc(n * sizeof *x);
    if (!x) {
        KT_CHECK(false, "out of memory");
        return;
    }
    rng r = {0x5eed0000u + (uint64_t)d->kind};
    ksv_hist_init(h);
    long double exact_sum = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = draw(&r, d->kind);
        exact_sum += x[i];
        ksv_hist_record(h, x[i]);
    }
    qsort(x, n, sizeof *x, cmp_double);
    ksv_hist_snapshot(h, snap);
    KT_CHECK(snap->count == n, "%s: snapshot count %llu", d->name, (unsigned long long)snap->count);

    const char *labels = "model=\"m\",revision=\"m-00001\"";
    ksv_sb_reset(sb);
    ksv_hist_write_prometheus(sb, "ksv_request_duration_seconds", labels, snap);
    KT_CHECK(!sb->oom, "out of memory");
    static prom_parsed p;
    check_prom_text(sb->data, "ksv_request_duration_seconds", labels, n, exact_sum, &p);

    printf("  %-34s", d->name);
    static const double qs[] = {0.5, 0.99};
    for (size_t k = 0; k < 2; k++) {
        double q = qs[k];
        double exact = exact_quantile(x, n, q);
        double prom = ksv_prom_histogram_quantile(p.le, p.cum, p.n, q);
        double fine = ksv_hist_quantile(snap, q);
        double e_prom = rel_err(prom, exact), e_fine = rel_err(fine, exact);
        double prom_bound = d->smooth ? 0.05 : coarse_width_at(exact);
        printf(" P%-2.0f exact %9.4f ms prom %6.3f%% fine %6.3f%% |", q * 100, exact * 1e3,
               e_prom * 100, e_fine * 100);
        KT_CHECK(e_prom <= prom_bound,
                 "%s P%g: Prometheus estimate %.6g vs exact %.6g (%.3f%% > %.2f%%)", d->name,
                 q * 100, prom, exact, e_prom * 100, prom_bound * 100);
        KT_CHECK(e_fine <= 0.02, "%s P%g: fine estimate %.6g vs exact %.6g (%.3f%%)", d->name,
                 q * 100, fine, exact, e_fine * 100);
    }
    printf("\n");
    free(x);
}

/* Many narrow spikes at random places: the guarantees that hold for any data. */
static void test_spike_sweep(ksv_hist *h, ksv_hist_snap *snap, ksv_sb *sb)
{
    rng r = {42};
    double worst_fine = 0, worst_prom = 0, worst_prom_bound = 0;
    double x[1000];
    for (int trial = 0; trial < 300; trial++) {
        double center = exp2(-14.0 + 22.0 * rng_unit(&r)); /* 61 us .. 256 s */
        double spread = center * 0.002 * rng_unit(&r);
        ksv_hist_init(h);
        for (size_t i = 0; i < 1000; i++) {
            x[i] = center + spread * (rng_unit(&r) - 0.5);
            ksv_hist_record(h, x[i]);
        }
        qsort(x, 1000, sizeof *x, cmp_double);
        ksv_hist_snapshot(h, snap);
        ksv_sb_reset(sb);
        ksv_hist_write_prometheus(sb, "m", "", snap);
        static prom_parsed p;
        if (!parse_prom(sb->data, "m", "", &p)) {
            KT_CHECK(false, "spike %d: text does not parse", trial);
            continue;
        }
        double exact = exact_quantile(x, 1000, 0.99);
        double e_fine = rel_err(ksv_hist_quantile(snap, 0.99), exact);
        double e_prom = rel_err(ksv_prom_histogram_quantile(p.le, p.cum, p.n, 0.99), exact);
        double bound = coarse_width_at(exact);
        KT_CHECK(e_fine <= 1.0 / 64, "spike at %.6g: fine error %.4f%%", center, e_fine * 100);
        KT_CHECK(e_prom <= bound, "spike at %.6g: Prometheus error %.4f%% > bucket width %.4f%%",
                 center, e_prom * 100, bound * 100);
        if (e_fine > worst_fine)
            worst_fine = e_fine;
        if (e_prom > worst_prom) {
            worst_prom = e_prom;
            worst_prom_bound = bound;
        }
    }
    printf("  300 narrow spikes (61 us..256 s), P99 worst error: fine %.3f%% (bound 1.5625%%), "
           "Prometheus %.3f%% (its bucket is %.2f%% wide)\n",
           worst_fine * 100, worst_prom * 100, worst_prom_bound * 100);
}

/* ---- bucket geometry ---- */

/* Index derived with frexp instead of the implementation's bit fiddling. */
static size_t oracle_index(double v)
{
    if (isnan(v) || v > 0x1p10)
        return KSV_HIST_OVERFLOW;
    if (v <= 0x1p-20)
        return KSV_HIST_UNDERFLOW;
    int e;
    double m = frexp(v, &e); /* v = m * 2^e, m in [0.5, 1) */
    int octave_exp = e - 1;
    double f = (2 * m - 1) * 64; /* exact: position inside the octave in 64ths */
    double j = floor(f);
    size_t idx = 1 + (size_t)(octave_exp - KSV_HIST_MIN_EXP) * 64 + (size_t)j;
    return f == j ? idx - 1 : idx;
}

static void test_geometry(void)
{
    printf("bucket geometry\n");
    KT_CHECK(KSV_HIST_BUCKETS == 1922, "fine bucket count %d", KSV_HIST_BUCKETS);
    struct {
        double v;
        size_t want;
        const char *what;
    } edge[] = {
        {0.0, KSV_HIST_UNDERFLOW, "0"},
        {-0.0, KSV_HIST_UNDERFLOW, "-0"},
        {-1.0, KSV_HIST_UNDERFLOW, "-1"},
        {-INFINITY, KSV_HIST_UNDERFLOW, "-Inf"},
        {NAN, KSV_HIST_OVERFLOW, "NaN"},
        {-NAN, KSV_HIST_OVERFLOW, "-NaN"},
        {INFINITY, KSV_HIST_OVERFLOW, "+Inf"},
        {DBL_MAX, KSV_HIST_OVERFLOW, "DBL_MAX"},
        {4.9e-324, KSV_HIST_UNDERFLOW, "smallest subnormal"},
        {DBL_MIN, KSV_HIST_UNDERFLOW, "DBL_MIN"},
        {1e-9, KSV_HIST_UNDERFLOW, "1 ns"},
        {0x1p-20, KSV_HIST_UNDERFLOW, "2^-20 (underflow is upper-inclusive)"},
        {nextafter(0x1p-20, 1), 1, "just above 2^-20"},
        {0x1p-20 * (65.0 / 64), 1, "first fine bound"},
        {0x1p10, KSV_HIST_FINE, "2^10 (last fine bucket)"},
        {nextafter(0x1p10, 2e10), KSV_HIST_OVERFLOW, "just above 2^10"},
        {1.0, 1 + 20 * 64 - 1, "1 s exactly (bound: bucket below)"},
        {nextafter(1.0, 2), 1 + 20 * 64, "just above 1 s"},
        {1e300, KSV_HIST_OVERFLOW, "1e300"},
    };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        size_t got = ksv_hist_bucket_index(edge[i].v);
        KT_CHECK(got == edge[i].want, "index(%s) = %zu, want %zu", edge[i].what, got, edge[i].want);
    }

    /* Random values across and beyond the range, and every fine bound exactly. */
    rng r = {7};
    size_t mismatches = 0, outside = 0;
    for (int i = 0; i < 1000000; i++) {
        double v = exp2(-24.0 + 38.0 * rng_unit(&r));
        size_t idx = ksv_hist_bucket_index(v);
        if (idx != oracle_index(v))
            mismatches++;
        if (!(ksv_hist_bucket_lower(idx) < v && v <= ksv_hist_bucket_upper(idx)))
            outside++;
    }
    for (size_t idx = 0; idx < KSV_HIST_OVERFLOW; idx++) {
        double up = ksv_hist_bucket_upper(idx);
        if (ksv_hist_bucket_index(up) != idx || oracle_index(up) != idx)
            mismatches++;
        if (ksv_hist_bucket_index(nextafter(up, INFINITY)) != idx + 1)
            mismatches++;
        if (idx > 0 && ksv_hist_bucket_lower(idx) != ksv_hist_bucket_upper(idx - 1))
            mismatches++;
        double width = (up - ksv_hist_bucket_lower(idx)) / ksv_hist_bucket_lower(idx);
        if (idx > 0 && width > 1.0 / 64)
            outside++;
    }
    KT_CHECK(mismatches == 0, "%zu index mismatches against the frexp oracle", mismatches);
    KT_CHECK(outside == 0, "%zu values outside their bucket or buckets too wide", outside);
    printf("  %zu edge values, 1e6 random values and all %d bounds agree with the frexp oracle\n",
           sizeof edge / sizeof edge[0], KSV_HIST_BUCKETS - 1);

    /* Coarse bounds: count, range, exact fine bounds, geometric spacing. */
    size_t n = ksv_hist_prom_bucket_count();
    KT_CHECK(n == 194, "Prometheus bucket count %zu, want 194", n);
    KT_CHECK(ksv_hist_prom_le(0) == 0x1p-15, "first le %.17g", ksv_hist_prom_le(0));
    KT_CHECK(ksv_hist_prom_le(n - 2) == 0x1p9, "last finite le %.17g", ksv_hist_prom_le(n - 2));
    KT_CHECK(isinf(ksv_hist_prom_le(n - 1)), "last le is not +Inf");
    double max_width = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        double le = ksv_hist_prom_le(i);
        size_t fine = ksv_hist_prom_fine_index(i);
        KT_CHECK(ksv_hist_bucket_upper(fine) == le, "le %.17g is not a fine bound", le);
        if (i % 8 == 0 && i + 1 < n - 1) {
            int e = KSV_HIST_PROM_MIN_EXP + (int)(i / 8);
            for (int k = 0; k < 8; k++) {
                double want = ldexp(round(64 * exp2(k / 8.0)) / 64, e);
                KT_CHECK(ksv_hist_prom_le(i + (size_t)k) == want, "le[%zu] = %.17g, want %.17g",
                         i + (size_t)k, ksv_hist_prom_le(i + (size_t)k), want);
            }
        }
        if (i > 0) {
            double w = le / ksv_hist_prom_le(i - 1) - 1;
            if (w > max_width)
                max_width = w;
        }
    }
    KT_CHECK(ksv_hist_prom_fine_index(n - 1) == KSV_HIST_OVERFLOW, "+Inf maps to overflow");
    KT_CHECK(max_width < 0.097, "widest coarse bucket %.4f", max_width);
    printf("  %zu Prometheus buckets (%zu finite, 2^-15..2^9 s, 8 per octave), widest %.2f%%\n",
           n, n - 1, max_width * 100);

    char buf[32];
    ksv_hist_format_float(buf, 1.0);
    KT_CHECK(!strcmp(buf, "1.0"), "1 formats as %s", buf);
    ksv_hist_format_float(buf, 0x1p-15);
    KT_CHECK(strtod(buf, NULL) == 0x1p-15, "2^-15 formats as %s", buf);
    ksv_hist_format_float(buf, 0.1);
    KT_CHECK(!strcmp(buf, "0.1"), "0.1 formats as %s", buf);
    ksv_hist_format_float(buf, INFINITY);
    KT_CHECK(!strcmp(buf, "+Inf"), "Inf formats as %s", buf);
}

/* ---- recording edge values, quantile edge cases ---- */

static void test_record_edges(ksv_hist *h, ksv_hist_snap *s, ksv_sb *sb)
{
    printf("recording edge values\n");
    ksv_hist_init(h);
    const double values[] = {0.0, -1.0, NAN, INFINITY, -INFINITY, 1e-30, 1e300, 0.25, 0.25};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        ksv_hist_record(h, values[i]);
    ksv_hist_snapshot(h, s);
    KT_CHECK(s->count == 9, "count %llu", (unsigned long long)s->count);
    KT_CHECK(s->counts[KSV_HIST_UNDERFLOW] == 4, "underflow %llu",
             (unsigned long long)s->counts[KSV_HIST_UNDERFLOW]);
    KT_CHECK(s->counts[KSV_HIST_OVERFLOW] == 3, "overflow %llu",
             (unsigned long long)s->counts[KSV_HIST_OVERFLOW]);
    /* 0.25 + 0.25, +Inf and 1e300 clamped to 1e6 s each; NaN, negatives and 1e-30 add 0. */
    double want_sum = 0.5 + 2 * KSV_HIST_SUM_CLAMP_SECONDS;
    KT_CHECK(s->sum_seconds == want_sum, "sum %.17g, want %.17g", s->sum_seconds, want_sum);
    ksv_sb_reset(sb);
    ksv_hist_write_prometheus(sb, "m", NULL, s);
    static prom_parsed p;
    KT_CHECK(parse_prom(sb->data, "m", "", &p), "unlabelled text does not parse");
    KT_CHECK(p.cum[p.n - 1] == 9 && p.count == 9, "+Inf %.0f _count %.0f", p.cum[p.n - 1], p.count);
    KT_CHECK(p.cum[0] == 4, "le=2^-15 holds %.0f, want the 4 underflow samples", p.cum[0]);
    KT_CHECK(p.cum[p.n - 2] == 6, "le=512 holds %.0f, want 6", p.cum[p.n - 2]);

    ksv_hist_snap_clear(s);
    KT_CHECK(isnan(ksv_hist_quantile(s, 0.5)), "empty histogram quantile is not NaN");
    s->counts[100] = 10;
    KT_CHECK(isnan(ksv_hist_quantile(s, -0.1)) && isnan(ksv_hist_quantile(s, 1.1)) &&
                 isnan(ksv_hist_quantile(s, NAN)),
             "q outside [0,1] is not NaN");
    KT_CHECK(ksv_hist_quantile(s, 0) == ksv_hist_bucket_lower(100),
             "q=0 is the bucket's lower bound");
    KT_CHECK(ksv_hist_quantile(s, 1) == ksv_hist_bucket_upper(100),
             "q=1 is the bucket's upper bound");
    ksv_hist_snap_clear(s);
    s->counts[KSV_HIST_OVERFLOW] = 5;
    KT_CHECK(ksv_hist_quantile(s, 0.99) == 0x1p10, "overflow quantile %.17g",
             ksv_hist_quantile(s, 0.99));
}

/* ---- Prometheus' algorithm on hand-worked cases ---- */

static void test_prom_algorithm(void)
{
    printf("histogram_quantile semantics\n");
    const double inf = INFINITY;
    struct {
        const char *what;
        double le[5], cum[5];
        size_t n;
        double q, want; /* want NaN: expect NaN */
    } cases[] = {
        /* docs/practices/histograms.md: spike at 220 ms, buckets .1 .2 .3 .45, P95 = 295 ms */
        {"docs example, spike at 220 ms", {0.1, 0.2, 0.3, 0.45, inf}, {0, 0, 100, 100, 100}, 5, 0.95, 0.295},
        /* same, spike at 320 ms: 442.5 ms ("443 ms" in the docs) */
        {"docs example, spike at 320 ms", {0.1, 0.2, 0.3, 0.45, inf}, {0, 0, 0, 100, 100}, 5, 0.95, 0.4425},
        {"rank in +Inf: second-highest bound", {1, 2, inf}, {10, 20, 100}, 3, 0.5, 2},
        {"first bucket interpolates from 0", {1, 2, inf}, {50, 100, 100}, 3, 0.25, 0.5},
        {"first bucket bound <= 0 is returned", {-1, 1, inf}, {10, 20, 20}, 3, 0.1, -1},
        {"no +Inf bucket", {1, 2, 3}, {1, 2, 3}, 3, 0.5, NAN},
        {"only the +Inf bucket", {inf}, {5}, 1, 0.5, NAN},
        {"no observations", {1, 2, inf}, {0, 0, 0}, 3, 0.5, NAN},
        {"q is NaN", {1, 2, inf}, {1, 2, 2}, 3, NAN, NAN},
        {"q < 0", {1, 2, inf}, {1, 2, 2}, 3, -0.1, -inf},
        {"q > 1", {1, 2, inf}, {1, 2, 2}, 3, 1.5, inf},
        {"unsorted input", {inf, 2, 1}, {100, 100, 50}, 3, 0.25, 0.5},
        {"equal bounds are merged", {1, 1, 2, inf}, {5, 5, 20, 20}, 4, 0.5, 1},
        /* forced to 10 10 20 20: rank 15 lands in (2,3] at half way */
        {"non-monotonic counts are forced up", {1, 2, 3, inf}, {10, 5, 20, 20}, 4, 0.75, 2.5},
        {"a NaN bound", {1, NAN, inf}, {1, 2, 2}, 3, 0.5, NAN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = ksv_prom_histogram_quantile(cases[i].le, cases[i].cum, cases[i].n, cases[i].q);
        bool ok = isnan(cases[i].want) ? isnan(got)
                  : isinf(cases[i].want) ? got == cases[i].want
                                         : fabs(got - cases[i].want) <= 1e-12;
        KT_CHECK(ok, "%s: got %.17g, want %.17g", cases[i].what, got, cases[i].want);
    }
    /* A 1e-15-relative wobble is float noise: bucket (1,2] is really empty, so a rank just
     * past 100 lands in (2,3] (near 2), not inside the phantom (1,2] bucket (1.6). */
    double le[] = {1, 2, 3, inf}, cum[] = {100, 100.0000000000001, 200, 200};
    double got = ksv_prom_histogram_quantile(le, cum, 4, 0.5000000000000003);
    KT_CHECK(fabs(got - 2) < 1e-6, "precision wobble: got %.17g, want ~2", got);
    KT_CHECK(isnan(ksv_prom_histogram_quantile(NULL, NULL, 0, 0.5)), "empty input is not NaN");
    printf("  %zu hand-worked cases + precision wobble\n", sizeof cases / sizeof cases[0]);
}

/* ---- fine JSON ---- */

static bool snaps_equal(const ksv_hist_snap *a, const ksv_hist_snap *b)
{
    return a->count == b->count && a->sum_seconds == b->sum_seconds &&
           memcmp(a->counts, b->counts, sizeof a->counts) == 0;
}

static void test_fine_json(ksv_hist *h, ksv_hist_snap *s, ksv_hist_snap *back, ksv_sb *sb)
{
    printf("fine JSON\n");
    ksv_hist_init(h);
    rng r = {99};
    for (int i = 0; i < 50000; i++)
        ksv_hist_record(h, rng_lognormal(&r, 0.003, 1.5));
    ksv_hist_record(h, 0);
    ksv_hist_record(h, INFINITY);
    ksv_hist_snapshot(h, s);
    ksv_sb_reset(sb);
    ksv_hist_write_fine_json(sb, s);

    /* json-c's own view of the document. */
    json_object *root = json_tokener_parse(sb->data), *o;
    KT_CHECK(root != NULL, "json-c cannot parse the fine JSON");
    if (root) {
        KT_CHECK(json_object_object_get_ex(root, "scheme", &o) &&
                     !strcmp(json_object_get_string(o), "log2x64"),
                 "scheme");
        KT_CHECK(json_object_object_get_ex(root, "count", &o) &&
                     (uint64_t)json_object_get_int64(o) == s->count,
                 "count");
        KT_CHECK(json_object_object_get_ex(root, "sum", &o) &&
                     json_object_get_double(o) == s->sum_seconds,
                 "sum");
        size_t nonzero = 0;
        for (size_t i = 0; i < KSV_HIST_BUCKETS; i++)
            nonzero += s->counts[i] != 0;
        KT_CHECK(json_object_object_get_ex(root, "buckets", &o) &&
                     json_object_array_length(o) == nonzero,
                 "bucket entries");
        json_object_put(root);
    }

    ksv_err err = {0};
    int rc = ksv_hist_parse_fine_json(sb->data, back, &err);
    KT_CHECK(rc == 0, "round trip refused: %s", err.msg);
    KT_CHECK(rc != 0 || snaps_equal(s, back), "round trip changed the snapshot");
    KT_CHECK(rc != 0 || ksv_hist_quantile(s, 0.99) == ksv_hist_quantile(back, 0.99),
             "round trip changed P99");
    printf("  round trip of %llu samples in %zu bytes: exact\n", (unsigned long long)s->count,
           sb->len);

    /* A trailing newline (as an HTTP body may have) is not garbage. */
    ksv_sb_puts(sb, "\r\n");
    rc = ksv_hist_parse_fine_json(sb->data, back, &err);
    KT_CHECK(rc == 0 && snaps_equal(s, back), "trailing whitespace refused: %s", err.msg);

    ksv_hist_snap_clear(s);
    ksv_sb_reset(sb);
    ksv_hist_write_fine_json(sb, s);
    rc = ksv_hist_parse_fine_json(sb->data, back, &err);
    KT_CHECK(rc == 0 && back->count == 0, "empty histogram round trip: %s", err.msg);

#define HDR "{\"scheme\":\"log2x64\",\"min_exp\":-20,\"max_exp\":10,"
    struct {
        const char *json, *expect;
    } bad[] = {
        {NULL, "no document"},
        {"", "empty or truncated"},
        {"   ", "empty or truncated"},
        {"not json", "malformed JSON"},
        {HDR "\"count\":1,\"sum\":1,\"buckets\":[[1,1]]", "truncated"},
        {HDR "\"count\":1,\"sum\":1,\"buckets\":[[1,1]]} x", "offset"},
        {"[1,2]", "not a JSON object"},
        {"{\"min_exp\":-20,\"max_exp\":10,\"count\":0,\"sum\":0,\"buckets\":[]}", "missing \"scheme\""},
        {"{\"scheme\":7,\"min_exp\":-20,\"max_exp\":10,\"count\":0,\"sum\":0,\"buckets\":[]}", "\"scheme\" is not a string"},
        {"{\"scheme\":\"log2x32\",\"min_exp\":-20,\"max_exp\":10,\"count\":0,\"sum\":0,\"buckets\":[]}", "is not log2x64"},
        {"{\"scheme\":\"log2x64\",\"min_exp\":-19,\"max_exp\":10,\"count\":0,\"sum\":0,\"buckets\":[]}", "\"min_exp\" is -19"},
        {"{\"scheme\":\"log2x64\",\"min_exp\":-20,\"count\":0,\"sum\":0,\"buckets\":[]}", "missing \"max_exp\""},
        {HDR "\"sum\":0,\"buckets\":[]}", "missing \"count\""},
        {HDR "\"count\":\"3\",\"sum\":0,\"buckets\":[]}", "\"count\" is not a non-negative integer"},
        {HDR "\"count\":-1,\"sum\":0,\"buckets\":[]}", "\"count\" is not a non-negative integer"},
        {HDR "\"count\":0,\"buckets\":[]}", "missing \"sum\""},
        {HDR "\"count\":0,\"sum\":-0.5,\"buckets\":[]}", "\"sum\" must be a finite number >= 0"},
        {HDR "\"count\":0,\"sum\":NaN,\"buckets\":[]}", "\"sum\" must be a finite number"},
        {HDR "\"count\":0,\"sum\":\"1\",\"buckets\":[]}", "\"sum\" is not a number"},
        {HDR "\"count\":0,\"sum\":0}", "missing \"buckets\""},
        {HDR "\"count\":0,\"sum\":0,\"buckets\":{}}", "\"buckets\" is not an array"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[[1]]}", "buckets[0] is not an [index,count] pair"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[[1,1,1]]}", "buckets[0] is not an [index,count] pair"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[5]}", "buckets[0] is not an [index,count] pair"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[[1922,1]]}", "index 1922 out of range [0,1921]"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[[-1,1]]}", "index -1 out of range"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[[1.5,1]]}", "index is not an integer"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[[5,-3]]}", "buckets[0]: count is not a non-negative integer"},
        {HDR "\"count\":1,\"sum\":0,\"buckets\":[[5,1.0]]}", "count is not a non-negative integer"},
        {HDR "\"count\":3,\"sum\":0,\"buckets\":[[5,1],[5,2]]}", "buckets[1]: index 5 appears twice"},
        {HDR "\"count\":3,\"sum\":0,\"buckets\":[[5,1],[6,1]]}", "\"count\" is 3 but the buckets hold 2"},
        {HDR "\"count\":0,\"sum\":0,\"buckets\":[[5,18446744073709551615],[6,1]]}", "overflow"},
        {HDR "\"count\":0,\"sum\":0,\"buckets\":[[[[[[[[[1]]]]]]]]]}", "malformed JSON"},
    };
#undef HDR
    size_t n_bad = sizeof bad / sizeof bad[0], n_refused = 0;
    for (size_t i = 0; i < n_bad; i++) {
        ksv_err e = {0};
        back->count = 12345;
        rc = ksv_hist_parse_fine_json(bad[i].json, back, &e);
        bool refused = rc == -1 && e.status == 400 && strstr(e.msg, bad[i].expect) != NULL;
        n_refused += refused;
        KT_CHECK(refused,
                 "broken input %zu (%s): rc %d, message \"%s\", want \"%s\"", i,
                 bad[i].json ? bad[i].json : "NULL", rc, e.msg, bad[i].expect);
        KT_CHECK(back->count == 0, "broken input %zu left data in the output", i);
        if (i < 3 || i % 8 == 0)
            printf("  refused: %-60.60s -> %s\n", bad[i].json ? bad[i].json : "NULL", e.msg);
    }
    printf("  %zu of %zu broken documents refused with the expected message\n", n_refused, n_bad);
}

/* ---- windows ---- */

static void test_delta(ksv_hist *h, ksv_hist_snap *before, ksv_hist_snap *now, ksv_hist_snap *out)
{
    printf("windows (delta, merge)\n");
    ksv_hist_init(h);
    for (int i = 0; i < 100; i++)
        ksv_hist_record(h, 0.001);
    ksv_hist_snapshot(h, before);
    for (int i = 0; i < 50; i++)
        ksv_hist_record(h, 0.002);
    for (int i = 0; i < 7; i++)
        ksv_hist_record(h, 0.001);
    ksv_hist_snapshot(h, now);
    ksv_hist_snap_delta(now, before, out);
    size_t i1 = ksv_hist_bucket_index(0.001), i2 = ksv_hist_bucket_index(0.002);
    KT_CHECK(out->count == 57 && out->counts[i1] == 7 && out->counts[i2] == 50,
             "delta: count %llu", (unsigned long long)out->count);
    KT_CHECK(fabs(out->sum_seconds - 0.107) < 1e-12, "delta sum %.17g", out->sum_seconds);
    KT_CHECK(fabs(ksv_hist_quantile(out, 0.5) - 0.002) <= 0.002 / 64, "delta P50 %.6g",
             ksv_hist_quantile(out, 0.5));

    /* Engine restarted: a fresh histogram with fewer samples in one bucket. */
    ksv_hist_init(h);
    for (int i = 0; i < 30; i++)
        ksv_hist_record(h, 0.004);
    ksv_hist_record(h, 0.001);
    ksv_hist_snapshot(h, now);
    ksv_hist_snap_delta(now, before, out);
    KT_CHECK(snaps_equal(out, now), "reset not detected: count %llu",
             (unsigned long long)out->count);

    /* Counts all grew but the sum went back: also a reset. */
    *now = *before;
    now->counts[i1] += 1;
    now->count += 1;
    now->sum_seconds = before->sum_seconds / 2;
    ksv_hist_snap_delta(now, before, out);
    KT_CHECK(snaps_equal(out, now), "sum going backwards not treated as a reset");

    /* Aliasing: out == now. */
    *now = *before;
    now->counts[i2] += 4;
    now->count += 4;
    now->sum_seconds += 0.008;
    ksv_hist_snap_delta(now, before, now);
    KT_CHECK(now->count == 4 && now->counts[i2] == 4 && now->counts[i1] == 0, "aliased delta");

    /* Merge: two halves equal the whole. */
    ksv_hist_init(h);
    ksv_hist_snap_clear(out);
    rng r = {3};
    for (int part = 0; part < 2; part++) {
        ksv_hist part_h;
        ksv_hist_init(&part_h);
        for (int i = 0; i < 1000; i++) {
            double v = rng_lognormal(&r, 0.01, 1);
            ksv_hist_record(&part_h, v);
            ksv_hist_record(h, v);
        }
        ksv_hist_snapshot(&part_h, now);
        ksv_hist_snap_merge(out, now);
    }
    ksv_hist_snapshot(h, now);
    KT_CHECK(out->count == now->count && !memcmp(out->counts, now->counts, sizeof now->counts) &&
                 fabs(out->sum_seconds - now->sum_seconds) < 1e-9,
             "merge differs from recording everything in one histogram");
    printf("  delta, counter reset, sum reset, aliasing, merge checked\n");
}

/* ---- concurrency and speed ---- */

typedef struct thread_arg {
    ksv_hist *h;
    double value;
    long records;
} thread_arg;

static void *recorder(void *p)
{
    thread_arg *a = p;
    for (long i = 0; i < a->records; i++)
        ksv_hist_record(a->h, a->value);
    return NULL;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_threads(ksv_hist *h, ksv_hist_snap *s, ksv_hist_snap *prev)
{
    printf("multithreaded recording\n");
    ksv_hist_init(h);
    enum { THREADS = 4, PER_THREAD = 1000000 };
    pthread_t tid[THREADS];
    thread_arg args[THREADS];
    double t0 = now_seconds();
    for (int t = 0; t < THREADS; t++) {
        args[t] = (thread_arg){h, 0.001 * (t + 1), PER_THREAD};
        if (pthread_create(&tid[t], NULL, recorder, &args[t]) != 0) {
            KT_CHECK(false, "pthread_create");
            return;
        }
    }
    /* Snapshots taken while the writers run: never decreasing, always consistent. */
    ksv_hist_snap_clear(prev);
    int snapshots = 0;
    for (; snapshots < 200; snapshots++) {
        ksv_hist_snapshot(h, s);
        uint64_t total = 0;
        for (size_t i = 0; i < KSV_HIST_BUCKETS; i++)
            total += s->counts[i];
        KT_CHECK(total == s->count && s->count >= prev->count, "inconsistent live snapshot");
        *prev = *s;
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    double elapsed = now_seconds() - t0;
    ksv_hist_snapshot(h, s);
    KT_CHECK(s->count == (uint64_t)THREADS * PER_THREAD, "total %llu, want %d",
             (unsigned long long)s->count, THREADS * PER_THREAD);
    for (int t = 0; t < THREADS; t++) {
        size_t idx = ksv_hist_bucket_index(0.001 * (t + 1));
        KT_CHECK(s->counts[idx] == PER_THREAD, "thread %d bucket %llu", t,
                 (unsigned long long)s->counts[idx]);
    }
    /* 1e6 x (1+2+3+4) ms, every sample a whole number of nanoseconds. */
    KT_CHECK(s->sum_seconds == 10000.0, "sum %.17g, want 10000", s->sum_seconds);
    printf("  %d threads x %d records: count %llu exact, sum %.3f s exact, %d live snapshots, "
           "%.1f ns/record wall (contended)\n",
           THREADS, PER_THREAD, (unsigned long long)s->count, s->sum_seconds, snapshots,
           elapsed * 1e9 / ((double)THREADS * PER_THREAD));

    /* Single-thread cost with realistic, varying values. */
    enum { VALUES = 4096 };
    static double v[VALUES];
    rng r = {11};
    for (int i = 0; i < VALUES; i++)
        v[i] = rng_lognormal(&r, 0.002, 1);
    ksv_hist_init(h);
    const long reps = 20000000;
    t0 = now_seconds();
    for (long i = 0; i < reps; i++)
        ksv_hist_record(h, v[i & (VALUES - 1)]);
    elapsed = now_seconds() - t0;
    printf("  single thread: %.2f ns per ksv_hist_record\n", elapsed * 1e9 / (double)reps);
}

int main(void)
{
    /* Large structures live on the heap: a snapshot is ~15 KiB. */
    ksv_hist *h = malloc(sizeof *h);
    ksv_hist_snap *s1 = malloc(sizeof *s1), *s2 = malloc(sizeof *s2), *s3 = malloc(sizeof *s3);
    if (!h || !s1 || !s2 || !s3) {
        printf("out of memory\n");
        return 1;
    }
    ksv_sb sb;
    ksv_sb_init(&sb);

    test_geometry();
    test_record_edges(h, s1, &sb);
    test_prom_algorithm();

    printf("quantile accuracy, 200k samples each (prom: histogram_quantile over the exported "
           "text, bound 5%%; fine: ksv_hist_quantile, bound 2%%)\n");
    static const dist dists[] = {
        {"lognormal median 2 ms sigma 0.6", D_LOGNORMAL, true},
        {"exponential mean 5 ms", D_EXPONENTIAL, true},
        {"bimodal 95% ~1 ms, 5% ~40 ms", D_BIMODAL, true},
        {"uniform 10..50 ms", D_UNIFORM, true},
        {"lognormal median 3 s sigma 0.5", D_LLM, true},
        {"pareto 1 ms alpha 1.5", D_PARETO, true},
        {"narrow 10.3 ms +- 0.05 ms", D_NARROW, false},
    };
    for (size_t i = 0; i < sizeof dists / sizeof dists[0]; i++)
        test_distribution(&dists[i], h, s1, &sb);
    printf("  (narrow: Prometheus bound is the width of the coarse bucket holding the value)\n");
    test_spike_sweep(h, s1, &sb);

    test_fine_json(h, s1, s2, &sb);
    test_delta(h, s1, s2, s3);
    test_threads(h, s1, s2);

    ksv_sb_free(&sb);
    free(h);
    free(s1);
    free(s2);
    free(s3);
    return kt_summary("test_histogram");
}
