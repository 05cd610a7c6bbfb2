/* metrics_window.h: the console's memory of recent scrapes, and the window math that turns
 * engines' cumulative counters into the figures ksv and ksv-top show: per (node, model,
 * revision) QPS and error rate over the last 10 s, P50/P99 over the last 60 s, totals over
 * revisions and nodes, and the increments the store keeps (ksv_store_metrics_insert).
 *
 * Input: a scrape of one engine, normally its GET /ksv/v1/histograms document (cumulative
 * request counts by status code and the fine latency histogram per revision); a /metrics
 * scrape (prom_text.h) can stand in for rates, but carries no fine histogram, so latency
 * stays "no data" for it.
 *
 * Decisions (figures an operator reads, so each is spelled out):
 *   - Windows end at the caller's `now_ms` and reach back window_ms; a series' scrapes with
 *     now - window <= t <= now take part. Rates and quantiles need at least 2 such scrapes
 *     (the first is the baseline): with fewer, the figure is "no data" (NaN, has_data false),
 *     never 0. A node that stopped answering therefore fades to "no data" once its last
 *     scrape leaves the window; ksv_mwin_node_last_ms says how old its figures are.
 *   - A rate is increment / (t_last - t_first) over the scrapes in the window, without
 *     Prometheus' extrapolation to the window edges: exact for a steady rate, and a window
 *     only partly covered (just after start, after a gap) gives the rate over the part it
 *     covers (span_ms says how long that was).
 *   - Counter resets: when any counter of a revision (a code's count, a histogram bucket or
 *     the sum) is lower than in the previous scrape, the engine restarted in between, and
 *     the post-restart values are that interval's increment (as Prometheus' rate() does).
 *     Deciding per revision rather than per counter also catches restarts after which some
 *     counters already climbed past their old values. No rate is ever negative.
 *   - error_ratio is 5xx / all responses (the engine's unclassifiable codes are 599, so 5xx),
 *     and 4xx, the client's mistakes (bad input, unknown revision), are apart in
 *     client_error_ratio: a canary that answers 400 to a malformed client is healthy, one
 *     that answers 500 is not, as Flagger's request-success-rate also counts only 5xx. The
 *     ERR% column that `ksv get models` and ksv-top show is NOT error_ratio: it is
 *     figures.c's err_pct, every 4xx and 5xx answer (README.md), since a client sending
 *     malformed requests is an operator's problem too. With no request in the window both
 *     ratios are NaN ("-"), never 0 %.
 *   - Quantiles come from the fine histogram's window delta (common/histogram.h: within
 *     1.6 % of the exact nearest-rank quantile) and are NaN with no request in the window.
 *   - Totals: rates add up per series (sum of rates, so series scraped at different moments
 *     combine correctly); ratios are ratios of summed counts; quantiles are those of the
 *     merged window histograms.
 *   - Memory: each series keeps its last `capacity` scrapes (default 128: 60 s at 1 s plus
 *     slack; scraping faster than window/capacity shortens the window actually seen, which
 *     span_ms shows). A run of identical consecutive scrapes (nothing answered, nothing
 *     restarted) is kept as one entry with its first and last time and its count, the times
 *     in between read from the node's own scrape times: an idle series costs one entry, and
 *     every figure is the one the scrapes kept one by one would give. Rings grow on demand.
 *     Histograms are stored sparse (non-zero buckets only).
 *     A series not scraped for KSV_MWIN_EVICT_MS is dropped; at most
 *     KSV_MWIN_MAX_SERIES_PER_NODE per node and KSV_MWIN_MAX_SERIES in all. Series are
 *     found by hash, and queries read only the selected model's (or node's) series, so a
 *     refresh costs what the fleet holds, not its square.
 *
 * Times are int64 milliseconds (the store's unit); a node's scrapes must come with strictly
 * increasing now_ms. A ksv_mwin is used by one thread at a time. */
#ifndef KSV_CONTROL_METRICS_WINDOW_H
#define KSV_CONTROL_METRICS_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/histogram.h"
#include "control/prom_text.h"
#include "store/store.h"

#define KSV_MWIN_DEFAULT_CAPACITY 128
/* Far above a fleet's need (100 nodes x 20 models x 4 revisions = 8,000; one node with 20
 * models keeps 16 revisions each at most = 320); a node past its cap, or a fleet past the
 * total, is refused with a message the console shows, never dropped in silence. */
#define KSV_MWIN_MAX_SERIES_PER_NODE 4096
#define KSV_MWIN_MAX_SERIES 262144
#define KSV_MWIN_EVICT_MS (10LL * 60 * 1000)
#define KSV_MWIN_RATE_WINDOW_MS 10000
#define KSV_MWIN_LATENCY_WINDOW_MS 60000

/* ---- one scrape ---- */

/* A cumulative fine histogram as scraped, sparse: a dense one is 15 KB, and a console
 * holding two scrapes of 100 nodes x 40 series kept 120 MB of mostly zeros. */
typedef struct ksv_scrape_hist {
    size_t n;              /* non-zero buckets */
    uint16_t *idx;         /* their indexes, increasing */
    uint64_t *cnt;         /* their counts */
    double sum_seconds;
} ksv_scrape_hist;

typedef struct ksv_scrape_rev {
    char *model;
    char *revision;
    ksv_code_count *codes; /* cumulative requests by status code */
    size_t n_codes;
    ksv_scrape_hist *hist; /* cumulative fine histogram; NULL when the scrape had none */
    /* A generative revision (OpenAI routes) also reports its time to first token and its
     * token counters; ttft NULL and has_tokens false for any other. */
    ksv_scrape_hist *ttft;
    bool has_tokens;
    uint64_t prompt_tokens, generation_tokens;
} ksv_scrape_rev;

typedef struct ksv_scrape {
    ksv_scrape_rev *revs; /* owned, with everything they point to */
    size_t n;
} ksv_scrape;

/* Reads an engine's GET /ksv/v1/histograms answer:
 * {"series":[{"model":M,"revision":R,"codes":{"200":N,...},"histogram":{fine json}},...]}.
 * Refused with 400: not that shape, an empty name, a code that is not 100..999, a negative
 * or non-integer count, a (model, revision) twice, a histogram ksv_hist_parse_fine_json
 * refuses; 413 more than KSV_MWIN_MAX_SERIES_PER_NODE series (refused before any is
 * read). A series without "histogram" gets hist NULL. Optional, for a generative revision:
 * "ttft" (a fine histogram, refused like "histogram") and "prompt_tokens" with
 * "generation_tokens" (non-negative integers, both or neither). */
int ksv_scrape_parse_histograms_json(const char *json, size_t len, ksv_scrape *out,
                                     ksv_err *err);
/* Rates-only scrape from a parsed /metrics (hist NULL for every revision). */
int ksv_scrape_from_prom(const ksv_prom_rev_list *list, ksv_scrape *out, ksv_err *err);
void ksv_scrape_free(ksv_scrape *s);

/* A scrape several holders read and none changes: a console's probe link keeps the node's
 * last one, and each probe while the engine answers "unchanged" (304) takes a reference
 * instead of a deep copy (a copy per node per second was 6 % of a console's CPU at 100
 * nodes). Freed with its last reference; references are thread-safe. */
typedef struct ksv_scrape_shared ksv_scrape_shared;
/* Takes s's contents (s is left empty). NULL when out of memory (s then freed). */
ksv_scrape_shared *ksv_scrape_share(ksv_scrape *s);
ksv_scrape_shared *ksv_scrape_shared_ref(ksv_scrape_shared *p); /* NULL stays NULL */
void ksv_scrape_shared_unref(ksv_scrape_shared *p);                /* NULL is a no-op */
const ksv_scrape *ksv_scrape_shared_get(const ksv_scrape_shared *p);

/* ---- the window ---- */

typedef struct ksv_mwin ksv_mwin;

/* capacity: scrapes kept per series, 2..65536 (0 for the default). */
int ksv_mwin_new(size_t capacity, ksv_mwin **out, ksv_err *err);
void ksv_mwin_free(ksv_mwin *w);

/* Whether identical consecutive scrapes of a series share one entry (a run: first and last
 * time and a count), true by default: an idle series then costs one entry. false keeps one
 * entry per scrape, as before runs; tests compare the two, figure by figure. Set it before
 * the first scrape. */
void ksv_mwin_set_runs(ksv_mwin *w, bool runs);
/* Entries all series hold now (a run is one), for tests of the window's memory. */
size_t ksv_mwin_entry_count(const ksv_mwin *w);

/* Records node's scrape taken at now_ms. 400: empty node, now_ms not after the node's
 * previous scrape, a (model, revision) twice, a code outside 100..999 or twice; nothing is
 * recorded then. 413: the node would have more than KSV_MWIN_MAX_SERIES_PER_NODE series;
 * 503: all nodes together more than KSV_MWIN_MAX_SERIES (nothing recorded either way; the
 * message says which limit). 500: out of memory (the scrape
 * may then be recorded in part). Series of any node not scraped for KSV_MWIN_EVICT_MS before
 * now_ms are dropped. */
int ksv_mwin_add_scrape(ksv_mwin *w, const char *node, int64_t now_ms, const ksv_scrape *s,
                        ksv_err *err);
/* Records node's scrape taken at now_ms when it is the same as node's previous recorded
 * scrape (the engine said its histograms did not change): every series that scrape listed
 * gets a repeat, without reading or checking the scrape again, and the figures are those
 * ksv_mwin_add_scrape with that scrape gives. Returns 0 when recorded; 1 when it cannot
 * stand in (no previous scrape, it was refused or recorded in part, one of its series was
 * dropped since, or runs are off): the caller then records the scrape itself. 400 and 500
 * as for ksv_mwin_add_scrape. */
int ksv_mwin_add_repeat(ksv_mwin *w, const char *node, int64_t now_ms, ksv_err *err);
/* Drops everything about node (node removed). */
void ksv_mwin_forget_node(ksv_mwin *w, const char *node);
/* Time of node's last recorded scrape, 0 when none. */
int64_t ksv_mwin_node_last_ms(const ksv_mwin *w, const char *node);

/* The series known now, in order of first appearance (indexes shift after eviction). */
size_t ksv_mwin_series_count(const ksv_mwin *w);
void ksv_mwin_series_at(const ksv_mwin *w, size_t i, const char **node, const char **model,
                        const char **revision);

/* Which series a query covers: NULL fields match any. {node, model, revision} is one
 * series; {NULL, model, NULL} a model's total over its revisions and nodes. */
typedef struct ksv_mwin_sel {
    const char *node;
    const char *model;
    const char *revision;
} ksv_mwin_sel;

typedef struct ksv_mwin_rate_stats {
    bool has_data;        /* some matching series had >= 2 scrapes in the window */
    double qps;           /* responses per second, all codes; NaN without data */
    double qps_2xx, qps_4xx, qps_5xx, qps_other;
    double error_ratio;        /* 5xx / responses in the window; NaN: no data or 0 requests */
    double client_error_ratio; /* 4xx / responses; NaN likewise */
    uint64_t requests;         /* increments over the window */
    uint64_t requests_2xx, requests_4xx, requests_5xx, requests_other;
    int64_t span_ms;      /* the longest span actually covered by a contributing series */
    int64_t newest_ms;    /* the newest scrape that contributed */
    size_t series;        /* series that contributed */
    size_t resets;        /* counter resets seen inside the window */
} ksv_mwin_rate_stats;

typedef struct ksv_mwin_latency_stats {
    bool has_data;        /* some matching series had >= 2 histogram scrapes in the window */
    uint64_t count;       /* requests timed in the window */
    double sum_s;
    double mean_s, p50_s, p99_s; /* NaN without data or with count 0 */
    int64_t span_ms;
    size_t series;
} ksv_mwin_latency_stats;

/* Rates over (now_ms - window_ms, now_ms]; window_ms > 0 (KSV_MWIN_RATE_WINDOW_MS is ksv's).
 * Returns 0, or -1 (400) for a window_ms <= 0. */
int ksv_mwin_rates(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                   int64_t window_ms, ksv_mwin_rate_stats *out, ksv_err *err);
/* Latency over the window (KSV_MWIN_LATENCY_WINDOW_MS is ksv's). -1: 400 bad window, 500
 * out of memory. */
int ksv_mwin_latency(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                     int64_t window_ms, ksv_mwin_latency_stats *out, ksv_err *err);
/* The merged window histogram itself, for any other quantile (ksv_hist_quantile).
 * *series (may be NULL) receives how many series had data; 0 means "no data". */
int ksv_mwin_window_hist(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                         int64_t window_ms, ksv_hist_snap *out, size_t *series, ksv_err *err);

/* A generative revision's token figures (the engine reports them for revisions served
 * through the OpenAI routes): time to first token over latency_window_ms, merged like
 * latency, and generated tokens per second over rate_window_ms, summed like QPS, counter
 * resets handled as for requests. Series without token counters do not take part. */
typedef struct ksv_mwin_llm_stats {
    bool has_data;              /* some matching series had >= 2 scrapes with token counters */
    double tokens_per_s;        /* generated tokens per second; NaN without data */
    uint64_t prompt_tokens;     /* increments over the rate window */
    uint64_t generation_tokens;
    uint64_t ttft_count;        /* first tokens timed in the latency window */
    double ttft_p50_s, ttft_p99_s; /* NaN when none was */
} ksv_mwin_llm_stats;

/* -1: 400 for a window <= 0, 500 out of memory. */
int ksv_mwin_llm(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                 int64_t rate_window_ms, int64_t latency_window_ms, ksv_mwin_llm_stats *out,
                 ksv_err *err);

/* ---- figures ---- */

/* The figures as ksv and ksv-top print them, independent of the locale (an ncurses program
 * may have set LC_NUMERIC to a decimal comma): QPS with one decimal ("12.3"), latency in ms
 * with one decimal ("3.2ms"), a ratio as percent with two decimals ("0.25%"), and "-" for
 * NaN (no data). Halves round away from zero. */
void ksv_mwin_format_qps(char buf[32], double qps);
void ksv_mwin_format_latency(char buf[32], double seconds);
void ksv_mwin_format_ratio(char buf[32], double ratio);

/* ---- persistence ---- */

/* The increments between the last two scrapes of each of node's series whose newest scrape
 * is node's newest (call it right after ksv_mwin_add_scrape for that node): at_ms the newer
 * scrape, span_ms the gap, requests by class, latency sum and fine buckets (trimmed after
 * the last non-zero one; none when either scrape lacked a histogram). After a reset the
 * newer scrape's values are the increment. *out is NULL when there is nothing; free it with
 * ksv_mwin_store_samples_free. */
int ksv_mwin_store_samples(const ksv_mwin *w, const char *node, ksv_metric_sample **out,
                           size_t *n, ksv_err *err);
void ksv_mwin_store_samples_free(ksv_metric_sample *samples, size_t n);

#endif
