/* histogram.h: the request-latency histogram shared by ksv-engine (records every request's
 * duration, lock-free) and the control layer (turns scraped histograms into P50/P99).
 *
 * Fine structure ("log2x64"), values in seconds:
 *   - each octave (2^e, 2^(e+1)] for e in [KSV_HIST_MIN_EXP, KSV_HIST_MAX_EXP) is split into
 *     64 equal-width linear sub-buckets, so a bucket is at most 1/64 (1.5625 %) of its lower
 *     bound wide; 30 octaves cover 0.95 us .. 1024 s;
 *   - bucket 0 (underflow) holds v <= 2^-20 s, including 0 and negative values; the last
 *     bucket (overflow) holds v > 2^10 s, +Inf and NaN (garbage stays counted and visible as
 *     "beyond range" rather than hiding in the fast end of the distribution);
 *   - buckets are upper-inclusive, (lower, upper], exactly like Prometheus' `le`, so every
 *     coarse `le` below is an exact sum of fine buckets;
 *   - index 1 + 64*(e - MIN_EXP) + j covers (2^e*(1 + j/64), 2^e*(1 + (j+1)/64)]; it is read
 *     straight from the double's exponent and top 6 mantissa bits (no log()).
 * Recording is one relaxed atomic add on the bucket plus one on the sum (kept in integer
 * nanoseconds). There is no separate total counter: a snapshot derives the count from the
 * buckets, so `_count` always equals the `+Inf` bucket even while other threads record.
 *
 * Quantiles (both ksv_hist_quantile and Prometheus): rank = q*count; the answer lies in the
 * first bucket whose cumulative count reaches the rank, interpolated linearly inside it. The
 * "exact" quantile with the same definition is the nearest-rank sample, sorted[ceil(q*n)-1].
 * That sample and the estimate lie in the same bucket, so the fine quantile is within 1/64
 * (1.6 %) of it for any data inside the range.
 *
 * Prometheus export: 8 buckets per octave from 2^-15 s (30.5 us) to 2^9 s (512 s) plus +Inf:
 * 194 `_bucket` series. The 8 bounds of an octave are the fine bounds nearest to
 * 2^(e + k/8), i.e. 2^e*(64+j)/64 for j in {0,6,12,19,27,35,44,53}; each coarse bucket is
 * at most 9.64 % wide. On smooth latency distributions histogram_quantile's P99 is within
 * 0.2..0.6 % of the exact one, and about 4 % next to a hard cut-off such as a uniform
 * distribution's end (tests/test_histogram.c prints the measured errors). A distribution
 * narrower than one coarse bucket can be off by up to that bucket's width (9.64 %); a
 * guaranteed 5 % for any data would need 16 bounds per octave (~390 series). That is why
 * ksv's own P99 reads the fine structure (ksv_hist_write_fine_json), exact to 1.6 %.
 */
#ifndef KSV_COMMON_HISTOGRAM_H
#define KSV_COMMON_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/strbuf.h"

#define KSV_HIST_MIN_EXP (-20)
#define KSV_HIST_MAX_EXP 10
#define KSV_HIST_SUB_BITS 6
#define KSV_HIST_SUB (1 << KSV_HIST_SUB_BITS)
#define KSV_HIST_FINE ((KSV_HIST_MAX_EXP - KSV_HIST_MIN_EXP) * KSV_HIST_SUB)
#define KSV_HIST_BUCKETS (KSV_HIST_FINE + 2)
#define KSV_HIST_UNDERFLOW 0
#define KSV_HIST_OVERFLOW (KSV_HIST_BUCKETS - 1)

/* Coarse (Prometheus) range and density. */
#define KSV_HIST_PROM_MIN_EXP (-15)
#define KSV_HIST_PROM_MAX_EXP 9
#define KSV_HIST_PROM_PER_OCTAVE 8

/* A sample contributes at most this much to the sum, so absurd values cannot wrap it. */
#define KSV_HIST_SUM_CLAMP_SECONDS 1e6

/* Live histogram: fixed size (about 15 KiB), no allocation, embed it where it is used. */
typedef struct ksv_hist {
    _Atomic uint64_t counts[KSV_HIST_BUCKETS];
    _Atomic uint64_t sum_ns;
} ksv_hist;

/* Plain copy for reading, exporting, windowing. count == sum of counts[]. */
typedef struct ksv_hist_snap {
    uint64_t counts[KSV_HIST_BUCKETS];
    uint64_t count;
    double sum_seconds;
} ksv_hist_snap;

void ksv_hist_init(ksv_hist *h);
/* Thread-safe and lock-free; any double is accepted (see the header comment for where
 * out-of-range values go). */
void ksv_hist_record(ksv_hist *h, double seconds);
void ksv_hist_snapshot(const ksv_hist *h, ksv_hist_snap *out);

/* Fine-bucket geometry: the index a value lands in, and the bucket's (lower, upper] bounds.
 * Underflow is (0, 2^MIN_EXP] for interpolation purposes; overflow is (2^MAX_EXP, +Inf]. */
size_t ksv_hist_bucket_index(double seconds);
double ksv_hist_bucket_lower(size_t idx);
double ksv_hist_bucket_upper(size_t idx);

void ksv_hist_snap_clear(ksv_hist_snap *s);
/* into += add (aggregating one revision across nodes). */
void ksv_hist_snap_merge(ksv_hist_snap *into, const ksv_hist_snap *add);
/* out = now - before, for a window. If any bucket or the sum went backwards the engine
 * restarted in between, and the window is everything since the restart: out = now.
 * out may alias now or before. */
void ksv_hist_snap_delta(const ksv_hist_snap *now, const ksv_hist_snap *before,
                         ksv_hist_snap *out);

/* Quantile from the fine buckets (q in [0,1]); NaN when empty or q is not in [0,1].
 * A quantile in the overflow bucket reads as 2^MAX_EXP (the estimate saturates there). */
double ksv_hist_quantile(const ksv_hist_snap *s, double q);

/* Prometheus export. Bucket i (0 <= i < count) has upper bound ksv_hist_prom_le(i); the
 * last one is +Inf. */
size_t ksv_hist_prom_bucket_count(void);
double ksv_hist_prom_le(size_t i);
/* The fine index whose upper bound is coarse bound i (KSV_HIST_OVERFLOW for +Inf). */
size_t ksv_hist_prom_fine_index(size_t i);
/* Appends `METRIC_bucket{LABELS,le="..."} N` lines (cumulative, ending with le="+Inf"), then
 * `METRIC_sum{LABELS} S` and `METRIC_count{LABELS} N`, in text format 0.0.4. `labels` is
 * the already-escaped inside of the braces (e.g. `model="a",revision="a-00001"`), or NULL /
 * "" for none. HELP and TYPE lines are the caller's: they come once per metric family. */
void ksv_hist_write_prometheus(ksv_sb *sb, const char *metric, const char *labels,
                               const ksv_hist_snap *s);
/* Formats v so that strtod/ParseFloat reads back exactly v; whole numbers get ".0" and
 * infinities are "+Inf"/"-Inf" as Prometheus writes them. buf needs 32 bytes. */
void ksv_hist_format_float(char buf[32], double v);

/* Prometheus' classic histogram_quantile (promql/quantile.go bucketQuantile): sorts by le,
 * requires a +Inf bucket, merges equal bounds, ignores 1e-12-relative wobbles, forces the
 * counts monotonic, interpolates linearly from 0 in the first bucket (or returns its bound
 * when that is <= 0), and answers the second-highest bound when the rank lands in +Inf.
 * NaN: no +Inf bucket, fewer than 2 buckets, no observations, q or any le NaN.
 * q < 0: -Inf; q > 1: +Inf. Inputs are not modified. */
double ksv_prom_histogram_quantile(const double *le, const double *cumulative, size_t n,
                                   double q);

/* Sparse fine export for ksv: {"scheme":"log2x64","min_exp":-20,"max_exp":10,"count":N,
 * "sum":S,"buckets":[[idx,count],...]} with non-zero buckets in increasing index order. */
void ksv_hist_write_fine_json(ksv_sb *sb, const ksv_hist_snap *s);
/* The inverse. Refuses (returns -1, err status 400) anything that is not exactly such a
 * document: other scheme or geometry, bad or duplicate indexes, negative or fractional
 * counts, a count that is not the sum of the buckets, a negative or missing sum. */
int ksv_hist_parse_fine_json(const char *json, ksv_hist_snap *out, ksv_err *err);

#endif
