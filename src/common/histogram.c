/* histogram.c: lock-free latency histogram, its Prometheus and fine-JSON exports, and the
 * quantile math (ours on fine buckets, Prometheus' on scraped classic buckets).
 * The bucket scheme is documented in histogram.h. */
#include "common/histogram.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define MANTISSA_BITS 52
#define REST_BITS (MANTISSA_BITS - KSV_HIST_SUB_BITS)
#define EXP_BIAS 1023

/* Octave sub-bucket offsets (in 64ths) of the coarse bounds: the fine bounds nearest to
 * 2^(k/8), k = 0..7, i.e. round(64 * 2^(k/8)) - 64. Spacing them geometrically rather than
 * linearly keeps every coarse bucket near 9 % wide instead of 6..12.5 %. */
static const unsigned char prom_octave_sub[KSV_HIST_PROM_PER_OCTAVE] = {0,  6,  12, 19,
                                                                        27, 35, 44, 53};

#define PROM_FINITE \
    ((size_t)(KSV_HIST_PROM_MAX_EXP - KSV_HIST_PROM_MIN_EXP) * KSV_HIST_PROM_PER_OCTAVE + 1)

static inline size_t fine_index(double v)
{
    /* The negated comparison also sends NaN down this path. */
    if (!(v > 0x1p-20))
        return isnan(v) ? KSV_HIST_OVERFLOW : KSV_HIST_UNDERFLOW;
    if (v > 0x1p10)
        return KSV_HIST_OVERFLOW;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    unsigned biased_exp = (unsigned)(bits >> MANTISSA_BITS); /* sign is 0 here */
    unsigned sub = (unsigned)(bits >> REST_BITS) & (KSV_HIST_SUB - 1);
    bool on_lower_bound = (bits & ((UINT64_C(1) << REST_BITS) - 1)) == 0;
    size_t octave = (size_t)((int)biased_exp - EXP_BIAS - KSV_HIST_MIN_EXP);
    /* A value exactly on a bound belongs to the bucket below it: buckets are (lower, upper]. */
    return 1 + octave * KSV_HIST_SUB + sub - (on_lower_bound ? 1 : 0);
}

_Static_assert(KSV_HIST_MIN_EXP == -20 && KSV_HIST_MAX_EXP == 10,
               "fine_index's range literals must match the exponent range");

size_t ksv_hist_bucket_index(double seconds)
{
    return fine_index(seconds);
}

double ksv_hist_bucket_upper(size_t idx)
{
    if (idx == KSV_HIST_UNDERFLOW)
        return ldexp(1.0, KSV_HIST_MIN_EXP);
    if (idx >= KSV_HIST_OVERFLOW)
        return INFINITY;
    size_t linear = idx - 1;
    int e = KSV_HIST_MIN_EXP + (int)(linear / KSV_HIST_SUB);
    unsigned j = (unsigned)(linear % KSV_HIST_SUB);
    return ldexp((double)(KSV_HIST_SUB + j + 1) / KSV_HIST_SUB, e);
}

double ksv_hist_bucket_lower(size_t idx)
{
    if (idx == KSV_HIST_UNDERFLOW)
        return 0.0;
    if (idx >= KSV_HIST_OVERFLOW)
        return ldexp(1.0, KSV_HIST_MAX_EXP);
    return ksv_hist_bucket_upper(idx - 1);
}

void ksv_hist_init(ksv_hist *h)
{
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum_ns, 0);
}

void ksv_hist_record(ksv_hist *h, double seconds)
{
    atomic_fetch_add_explicit(&h->counts[fine_index(seconds)], 1, memory_order_relaxed);
    uint64_t ns;
    if (seconds > 0 && seconds <= KSV_HIST_SUM_CLAMP_SECONDS)
        ns = (uint64_t)(seconds * 1e9 + 0.5);
    else if (seconds > KSV_HIST_SUM_CLAMP_SECONDS)
        ns = (uint64_t)(KSV_HIST_SUM_CLAMP_SECONDS * 1e9);
    else
        ns = 0; /* zero, negative, NaN */
    if (ns)
        atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void ksv_hist_snapshot(const ksv_hist *h, ksv_hist_snap *out)
{
    uint64_t total = 0;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++) {
        out->counts[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        total += out->counts[i];
    }
    out->count = total;
    out->sum_seconds = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
}

void ksv_hist_snap_clear(ksv_hist_snap *s)
{
    memset(s->counts, 0, sizeof s->counts);
    s->count = 0;
    s->sum_seconds = 0.0;
}

void ksv_hist_snap_merge(ksv_hist_snap *into, const ksv_hist_snap *add)
{
    uint64_t total = 0;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++) {
        into->counts[i] += add->counts[i];
        total += into->counts[i];
    }
    into->count = total;
    into->sum_seconds += add->sum_seconds;
}

void ksv_hist_snap_delta(const ksv_hist_snap *now, const ksv_hist_snap *before,
                         ksv_hist_snap *out)
{
    bool reset = now->sum_seconds < before->sum_seconds;
    for (size_t i = 0; i < KSV_HIST_BUCKETS && !reset; i++)
        reset = now->counts[i] < before->counts[i];
    if (reset) {
        if (out != now)
            *out = *now;
        return;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++) {
        out->counts[i] = now->counts[i] - before->counts[i];
        total += out->counts[i];
    }
    out->count = total;
    out->sum_seconds = now->sum_seconds - before->sum_seconds;
}

double ksv_hist_quantile(const ksv_hist_snap *s, double q)
{
    if (!(q >= 0.0 && q <= 1.0))
        return NAN;
    /* Recounted rather than trusting s->count, so a hand-built snapshot cannot mislead. */
    uint64_t total = 0;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++)
        total += s->counts[i];
    if (total == 0)
        return NAN;
    double rank = q * (double)total;
    uint64_t below = 0;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++) {
        uint64_t c = s->counts[i];
        if (c == 0)
            continue;
        if ((double)(below + c) >= rank) {
            if (i == KSV_HIST_OVERFLOW)
                return ldexp(1.0, KSV_HIST_MAX_EXP);
            double lo = ksv_hist_bucket_lower(i), hi = ksv_hist_bucket_upper(i);
            double frac = (rank - (double)below) / (double)c;
            if (frac < 0.0)
                frac = 0.0;
            return lo + (hi - lo) * frac;
        }
        below += c;
    }
    return ldexp(1.0, KSV_HIST_MAX_EXP); /* unreachable: the last non-empty bucket matches */
}

size_t ksv_hist_prom_bucket_count(void)
{
    return PROM_FINITE + 1;
}

double ksv_hist_prom_le(size_t i)
{
    if (i >= PROM_FINITE)
        return INFINITY;
    if (i == PROM_FINITE - 1)
        return ldexp(1.0, KSV_HIST_PROM_MAX_EXP);
    int e = KSV_HIST_PROM_MIN_EXP + (int)(i / KSV_HIST_PROM_PER_OCTAVE);
    unsigned j = prom_octave_sub[i % KSV_HIST_PROM_PER_OCTAVE];
    return ldexp((double)(KSV_HIST_SUB + j) / KSV_HIST_SUB, e);
}

size_t ksv_hist_prom_fine_index(size_t i)
{
    if (i >= PROM_FINITE)
        return KSV_HIST_OVERFLOW;
    return fine_index(ksv_hist_prom_le(i));
}

void ksv_hist_format_float(char buf[32], double v)
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".e"))
        strcat(buf, ".0");
}

void ksv_hist_write_prometheus(ksv_sb *sb, const char *metric, const char *labels,
                               const ksv_hist_snap *s)
{
    bool has_labels = labels && *labels;
    const char *lab = has_labels ? labels : "";
    const char *sep = has_labels ? "," : "";
    char num[32];
    uint64_t cumulative = 0;
    size_t next_fine = 0;
    size_t n = ksv_hist_prom_bucket_count();
    for (size_t i = 0; i < n; i++) {
        size_t last_fine = ksv_hist_prom_fine_index(i);
        while (next_fine <= last_fine)
            cumulative += s->counts[next_fine++];
        ksv_hist_format_float(num, ksv_hist_prom_le(i));
        ksv_sb_printf(sb, "%s_bucket{%s%sle=\"%s\"} ", metric, lab, sep, num);
        ksv_sb_u64(sb, cumulative);
        ksv_sb_putc(sb, '\n');
    }
    ksv_hist_format_float(num, s->sum_seconds);
    if (has_labels)
        ksv_sb_printf(sb, "%s_sum{%s} %s\n%s_count{%s} ", metric, lab, num, metric, lab);
    else
        ksv_sb_printf(sb, "%s_sum %s\n%s_count ", metric, num, metric);
    /* The +Inf cumulative, so _count and le="+Inf" agree by construction. */
    ksv_sb_u64(sb, cumulative);
    ksv_sb_putc(sb, '\n');
}

typedef struct prom_bucket {
    double le;
    double count;
} prom_bucket;

static int prom_bucket_cmp(const void *a, const void *b)
{
    double x = ((const prom_bucket *)a)->le, y = ((const prom_bucket *)b)->le;
    return (x > y) - (x < y);
}

double ksv_prom_histogram_quantile(const double *le, const double *cumulative, size_t n,
                                   double q)
{
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    if (n == 0 || !le || !cumulative || n > SIZE_MAX / sizeof(prom_bucket))
        return NAN;
    for (size_t i = 0; i < n; i++)
        if (isnan(le[i])) /* Prometheus assumes this never happens; refuse rather than guess */
            return NAN;
    prom_bucket *b = malloc(n * sizeof *b);
    if (!b)
        return NAN;
    for (size_t i = 0; i < n; i++) {
        b[i].le = le[i];
        b[i].count = cumulative[i];
    }
    qsort(b, n, sizeof *b, prom_bucket_cmp);
    double result = NAN;
    if (!(isinf(b[n - 1].le) && b[n - 1].le > 0))
        goto out;

    /* Merge buckets with the same bound (coalesceBuckets). */
    size_t m = 0;
    for (size_t i = 1; i < n; i++) {
        if (b[i].le == b[m].le)
            b[m].count += b[i].count;
        else
            b[++m] = b[i];
    }
    m++;

    /* Relative differences within 1e-12 are float noise, not observations
     * (correctPrecisionErrors), then any remaining decrease is flattened (ensureMonotonic). */
    double prev = b[0].count;
    for (size_t i = 1; i < m; i++) {
        double delta = fabs(b[i].count - prev);
        if (delta == 0)
            continue;
        if (delta / b[i].count <= 1e-12)
            b[i].count = prev;
        else
            prev = b[i].count;
    }
    double max = b[0].count;
    for (size_t i = 1; i < m; i++) {
        if (b[i].count > max)
            max = b[i].count;
        else if (b[i].count < max)
            b[i].count = max;
    }

    if (m < 2)
        goto out;
    double observations = b[m - 1].count;
    if (observations == 0)
        goto out;
    double rank = q * observations;
    size_t k = 0;
    while (k < m - 1 && !(b[k].count >= rank))
        k++;
    if (k == m - 1) {
        result = b[m - 2].le;
        goto out;
    }
    if (k == 0 && b[0].le <= 0) {
        result = b[0].le;
        goto out;
    }
    double start = 0, end = b[k].le, count = b[k].count;
    if (k > 0) {
        start = b[k - 1].le;
        count -= b[k - 1].count;
        rank -= b[k - 1].count;
    }
    result = start + (end - start) * (rank / count);
out:
    free(b);
    return result;
}

void ksv_hist_write_fine_json(ksv_sb *sb, const ksv_hist_snap *s)
{
    uint64_t total = 0;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++)
        total += s->counts[i];
    ksv_sb_printf(sb, "{\"scheme\":\"log2x64\",\"min_exp\":%d,\"max_exp\":%d,\"count\":",
                  KSV_HIST_MIN_EXP, KSV_HIST_MAX_EXP);
    ksv_sb_u64(sb, total);
    ksv_sb_puts(sb, ",\"sum\":");
    if (isfinite(s->sum_seconds)) {
        char num[32];
        ksv_hist_format_float(num, s->sum_seconds);
        ksv_sb_puts(sb, num);
    } else {
        ksv_sb_puts(sb, "null"); /* the parser refuses it, as it should */
    }
    ksv_sb_puts(sb, ",\"buckets\":[");
    bool first = true;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++) {
        if (!s->counts[i])
            continue;
        ksv_sb_printf(sb, "%s[%zu,", first ? "" : ",", i);
        ksv_sb_u64(sb, s->counts[i]);
        ksv_sb_putc(sb, ']');
        first = false;
    }
    ksv_sb_puts(sb, "]}");
}

#define FINE_ERR(...) ksv_err_set(err, 400, "fine histogram: " __VA_ARGS__)

/* A JSON integer >= 0, stored in *out; -1 when o is anything else. */
static int json_u64(json_object *o, uint64_t *out)
{
    if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 0)
        return -1;
    *out = json_object_get_uint64(o);
    return 0;
}

static int json_exact_int(json_object *root, const char *key, int64_t want, ksv_err *err)
{
    json_object *o;
    if (!json_object_object_get_ex(root, key, &o))
        return FINE_ERR("missing \"%s\"", key);
    if (!json_object_is_type(o, json_type_int))
        return FINE_ERR("\"%s\" is not an integer", key);
    int64_t got = json_object_get_int64(o);
    if (got != want)
        return FINE_ERR("\"%s\" is %lld, this build uses %lld", key, (long long)got,
                        (long long)want);
    return 0;
}

static int decode_fine(json_object *root, ksv_hist_snap *out, ksv_err *err)
{
    if (!json_object_is_type(root, json_type_object))
        return FINE_ERR("document is not a JSON object");

    json_object *o;
    if (!json_object_object_get_ex(root, "scheme", &o))
        return FINE_ERR("missing \"scheme\"");
    if (!json_object_is_type(o, json_type_string))
        return FINE_ERR("\"scheme\" is not a string");
    if (strcmp(json_object_get_string(o), "log2x64") != 0)
        return FINE_ERR("scheme \"%.64s\" is not log2x64", json_object_get_string(o));
    if (json_exact_int(root, "min_exp", KSV_HIST_MIN_EXP, err) < 0 ||
        json_exact_int(root, "max_exp", KSV_HIST_MAX_EXP, err) < 0)
        return -1;

    uint64_t declared_count;
    if (!json_object_object_get_ex(root, "count", &o))
        return FINE_ERR("missing \"count\"");
    if (json_u64(o, &declared_count) < 0)
        return FINE_ERR("\"count\" is not a non-negative integer");

    if (!json_object_object_get_ex(root, "sum", &o))
        return FINE_ERR("missing \"sum\"");
    if (!json_object_is_type(o, json_type_int) && !json_object_is_type(o, json_type_double))
        return FINE_ERR("\"sum\" is not a number");
    double sum = json_object_get_double(o);
    if (!isfinite(sum) || sum < 0)
        return FINE_ERR("\"sum\" must be a finite number >= 0");

    json_object *buckets;
    if (!json_object_object_get_ex(root, "buckets", &buckets))
        return FINE_ERR("missing \"buckets\"");
    if (!json_object_is_type(buckets, json_type_array))
        return FINE_ERR("\"buckets\" is not an array");

    unsigned char seen[(KSV_HIST_BUCKETS + 7) / 8] = {0};
    uint64_t total = 0;
    size_t n = json_object_array_length(buckets);
    for (size_t k = 0; k < n; k++) {
        json_object *pair = json_object_array_get_idx(buckets, k);
        if (!json_object_is_type(pair, json_type_array) || json_object_array_length(pair) != 2)
            return FINE_ERR("buckets[%zu] is not an [index,count] pair", k);
        json_object *jidx = json_object_array_get_idx(pair, 0);
        json_object *jcnt = json_object_array_get_idx(pair, 1);
        if (!json_object_is_type(jidx, json_type_int))
            return FINE_ERR("buckets[%zu]: index is not an integer", k);
        int64_t idx = json_object_get_int64(jidx);
        if (idx < 0 || idx >= KSV_HIST_BUCKETS)
            return FINE_ERR("buckets[%zu]: index %lld out of range [0,%d]", k, (long long)idx,
                            KSV_HIST_BUCKETS - 1);
        uint64_t count;
        if (json_u64(jcnt, &count) < 0)
            return FINE_ERR("buckets[%zu]: count is not a non-negative integer", k);
        if (seen[idx / 8] & (1u << (idx % 8)))
            return FINE_ERR("buckets[%zu]: index %lld appears twice", k, (long long)idx);
        seen[idx / 8] |= (unsigned char)(1u << (idx % 8));
        if (total + count < total)
            return FINE_ERR("bucket counts overflow 64 bits");
        total += count;
        out->counts[idx] = count;
    }
    if (total != declared_count)
        return FINE_ERR("\"count\" is %llu but the buckets hold %llu",
                        (unsigned long long)declared_count, (unsigned long long)total);
    out->count = total;
    out->sum_seconds = sum;
    return 0;
}

int ksv_hist_parse_fine_json(const char *json, ksv_hist_snap *out, ksv_err *err)
{
    ksv_hist_snap_clear(out);
    if (!json)
        return FINE_ERR("no document");
    size_t len = strlen(json);
    if (len > INT_MAX)
        return FINE_ERR("document too large");
    /* The document is three levels deep; anything deeper is not ours. */
    json_tokener *tok = json_tokener_new_ex(8);
    if (!tok)
        return ksv_err_set(err, 500, "fine histogram: out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc;
    if (jerr == json_tokener_continue || (!root && jerr == json_tokener_success))
        rc = FINE_ERR("empty or truncated JSON");
    else if (jerr != json_tokener_success)
        rc = FINE_ERR("malformed JSON at offset %zu: %s", end, json_tokener_error_desc(jerr));
    else if (json[end + strspn(json + end, " \t\r\n")] != '\0')
        rc = FINE_ERR("unexpected text after the JSON document at offset %zu", end);
    else
        rc = decode_fine(root, out, err);
    json_object_put(root);
    if (rc < 0)
        ksv_hist_snap_clear(out);
    return rc;
}
