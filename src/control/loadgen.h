/* loadgen.h: the traffic generator behind `ksv load` and `ksv-top --demo`: POSTs one V2
 * inference body at an engine, at a target rate or as fast as possible, for a bounded time,
 * and reports the achieved rate, latency quantiles and failures by HTTP status and by
 * transport error.
 *
 * How it runs: one thread, one src/http batch, `concurrency` clients that are
 * reused for the whole run (HTTP/1.1 keep-alive, one connection each). Proxies from the
 * environment are ignored: ksv talks to engines directly. The steady state allocates nothing
 * of its own (libcurl may allocate inside a transfer).
 *
 * Rate mode (rps > 0) is open-loop, as wrk2 does it: request i is due at t0 + i/rps whatever
 * happened to the earlier ones, and its latency is measured from that due time, so a slow
 * server shows up as latency instead of silently lowering the request rate (no coordinated
 * omission). When a request is due and all `concurrency` handles are busy it waits for a free
 * one; the wait counts in its latency, and the achieved rate falls below the target. Pick
 * concurrency >= rps * expected latency to keep the schedule. (The generator's own timer
 * slack, under 1 ms, is not charged: only the wait for a busy handle is.)
 * As-fast-as-possible mode (rps == 0): every handle sends its next request as soon as its
 * previous one finishes; latency runs from the actual send.
 *
 * End of a run: no request is issued after t0 + duration_s, after max_requests were sent, or
 * once *stop reads true. Requests still in flight then get up to grace_s to finish; those
 * still running are aborted and counted as `aborted` (not as errors: the generator cut them
 * off, not the server). So a run lasts at most duration_s + grace_s, and a stop is noticed
 * within 50 ms.
 *
 * Requests go through src/http (one client per connection, in one batch); best, main()
 * calls ksv_ctl_global_init before threads start. */
#ifndef KSV_CONTROL_LOADGEN_H
#define KSV_CONTROL_LOADGEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"
#include "common/histogram.h"
#include "common/strbuf.h"

/* Defaults applied when the matching config field is 0. */
#define KSV_LOAD_DEFAULT_CONCURRENCY 8u
#define KSV_LOAD_DEFAULT_TIMEOUT_S 10.0
#define KSV_LOAD_DEFAULT_GRACE_S 2.0
#define KSV_LOAD_DEFAULT_INPUT_NAME "input-0"
/* Limits a config is checked against (ksv_load_run refuses more with status 400). */
#define KSV_LOAD_MAX_CONCURRENCY 4096u
#define KSV_LOAD_MAX_FEATURES 1000000u

/* A figure sent to the progress callback about once a second. */
typedef struct ksv_load_progress {
    double elapsed_s;      /* since the run started */
    double interval_rps;   /* completions per second over the last interval */
    uint64_t sent;         /* so far */
    uint64_t completed;    /* answered with any HTTP status, so far */
    uint64_t errors;       /* non-2xx answers plus transport errors, so far */
} ksv_load_progress;

/* Called on the generator's thread; keep it short (it delays the schedule). */
typedef void (*ksv_load_progress_fn)(const ksv_load_progress *progress, void *user);

typedef struct ksv_load_config {
    const char *url;          /* full infer URL: http://127.0.0.1:PORT/v2/models/m/infer */
    /* The request body, sent as is. NULL: build one (ksv_load_make_body) from `features`. */
    const char *body;
    size_t body_len;
    size_t features;          /* used when body is NULL: the model's input width, >= 1 */
    const char *input_name;   /* for a built body; NULL: "input-0" (xgboost models) */
    double rps;               /* target request rate; 0: as fast as possible */
    double duration_s;        /* issue window, > 0 */
    unsigned concurrency;     /* connections / requests in flight; 0: default 8 */
    uint64_t max_requests;    /* stop issuing after this many; 0: unbounded */
    /* Share (0..1) of requests sent with a deliberately malformed body (the body cut in half,
     * which an engine answers with 400), drawn at random per request: demo error traffic. */
    double bad_fraction;
    uint64_t seed;            /* for the built body and the bad draws; 0 is a fine seed */
    double timeout_s;         /* per request (connect included); 0: default 10 s */
    double grace_s;           /* for in-flight requests at the end; 0: default 2 s */
    const atomic_bool *stop;  /* optional; set true from any thread to end the run early */
    ksv_load_progress_fn progress;  /* optional, about once a second */
    void *progress_user;
} ksv_load_config;

/* Transport failures (no HTTP answer), by category. */
typedef enum ksv_load_transport {
    KSV_LOAD_CONNECT,   /* could not resolve or connect (nothing listening, refused) */
    KSV_LOAD_TIMEOUT,   /* per-request timeout */
    KSV_LOAD_OTHER,     /* anything else: connection reset, malformed answer, ... */
    KSV_LOAD_TRANSPORT_KINDS
} ksv_load_transport;

typedef struct ksv_load_transport_errors {
    uint64_t count;
    int last_curl_code;   /* CURLcode of the latest one, 0 when count == 0 */
    char last_message[256];   /* libcurl's message for it, "" when count == 0 */
} ksv_load_transport_errors;

#define KSV_LOAD_STATUS_SLOTS 600   /* HTTP statuses 0..599 are counted individually */

typedef struct ksv_load_report {
    /* What was asked (defaults applied). */
    double target_rps;        /* 0: as fast as possible */
    double duration_s;
    unsigned concurrency;
    double bad_fraction;
    bool stopped;             /* ended early by *stop */

    uint64_t sent;            /* requests handed to libcurl */
    uint64_t completed;       /* answered with an HTTP status (any) */
    uint64_t ok;              /* answered 2xx */
    uint64_t errors;          /* non-2xx answers + transport errors */
    uint64_t aborted;         /* still in flight after the grace period; not in errors */
    uint64_t bad_sent;        /* how many of `sent` carried the malformed body */
    /* sent == completed + transport errors + aborted. */

    double elapsed_s;         /* start until issuing stopped or the last request ended,
                               * whichever is later */
    double achieved_rps;      /* completed / elapsed_s */

    /* Latency of completed requests (any status), seconds: from the due time in rate mode,
     * from the send otherwise. Quantiles from `latency` (within 1.6 %); NaN when none. */
    double p50_s, p99_s, p999_s, mean_s, max_s;
    ksv_hist_snap latency;

    uint64_t status[KSV_LOAD_STATUS_SLOTS];   /* by HTTP status code */
    uint64_t status_out_of_range;             /* a status >= 600 (a broken server) */
    ksv_load_transport_errors transport[KSV_LOAD_TRANSPORT_KINDS];
} ksv_load_report;

/* Runs the load described by cfg and fills *out (always, even on failure: zeros then).
 * Returns 0 when the run happened (whatever the server answered: failures are in the
 * report), -1 with err set for a bad config (400) or when libcurl could not be set up (500). */
int ksv_load_run(const ksv_load_config *cfg, ksv_load_report *out, ksv_err *err);

/* Appends a one-row V2 request to sb: {"inputs":[{"name":NAME,"shape":[1,F],
 * "datatype":"FP32","data":[F floats]}]}, the floats pseudo-random in [0, 10) from seed
 * (same seed, same body). Returns -1 (status 400/500) for features == 0, too many features,
 * or out of memory. */
int ksv_load_make_body(size_t features, const char *input_name, uint64_t seed, ksv_sb *sb,
                       ksv_err *err);

/* "connect", "timeout", "other". */
const char *ksv_load_transport_name(ksv_load_transport kind);

/* Prints the report: a small human table, or (json) one JSON document:
 * {"target_rps":N|null,"duration_s":N,"concurrency":N,"bad_fraction":N,"stopped":B,
 *  "sent":N,"completed":N,"ok":N,"errors":N,"aborted":N,"bad_sent":N,
 *  "elapsed_s":N,"achieved_rps":N,
 *  "latency_ms":{"p50":N,"p99":N,"p999":N,"mean":N,"max":N},   (null when no data)
 *  "status":{"200":N,...},                                       (non-zero codes only)
 *  "status_out_of_range":N,
 *  "transport_errors":{"connect":{"count":N,"curl_code":N,"message":S},"timeout":{...},
 *                      "other":{...}}}
 * followed by a newline. */
void ksv_load_report_print(const ksv_load_report *report, FILE *out, bool json);

#endif
