/* observe.h: the control layer's read side (included by control.h; include that): listings
 * for display (models, nodes, history) without touching the store from src/tui,
 * an observe-only probe of one node (never starts an engine), the rendering of a model's
 * current spec as KServe YAML for editing, and the local-engine lifecycle of --demo.
 *
 * Threads: a ksv_ctl is used by one thread at a time; a console opens one per thread
 * (each holds its own database handle). The pure functions (spec YAML, validation) touch
 * no handle at all. */
#ifndef KSV_CONTROL_OBSERVE_H
#define KSV_CONTROL_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/manifest.h"
#include "common/strbuf.h"
#include "control/control.h"
#include "control/metrics_window.h"

/* ---- listings (read from the store) ---------------------------------------------- */

/* ns NULL: every namespace. */
int ksv_ctl_model_list(ksv_ctl *ctl, const char *ns, ksv_model_record_list *out, ksv_err *err);
int ksv_ctl_node_list(ksv_ctl *ctl, ksv_node_list *out, ksv_err *err);
/* model: "namespace/name" or NULL for every entry; limit 0: no limit. Newest first. */
int ksv_ctl_history_list(ksv_ctl *ctl, const char *model, size_t limit,
                         ksv_history_list *out, ksv_err *err);

/* ---- probing a node ----------------------------------------------------------------- */

#define KSV_PROBE_MAX_GPUS 8

typedef struct ksv_probe_gpu {
    char name[128];
    double utilization;           /* 0..1, -1 unknown */
    long long mem_used, mem_total;/* bytes, -1 unknown */
} ksv_probe_gpu;

/* One revision as the engine serves it. */
typedef struct ksv_probe_rev {
    char model[96];
    char revision[96];
    char state[16];               /* loading|ready|draining|standby|unloaded|failed|
                                   * scaled-to-zero */
    char runtime[32];             /* the runtime that answers ("" until loaded) */
    long long memory_bytes;       /* measured host memory it holds; -1: unknown */
    long long cold_starts;        /* -1: unknown */
    double cold_start_p99_s;      /* -1: unknown */
    long long replicas;           /* -1: unknown */
    int traffic;                  /* effective percent */
    char error[512];
    long long download_bytes;     /* its model's download now: -1 when none runs */
    long long download_total;     /* -1: unknown */
    double download_rate;         /* bytes/s */
} ksv_probe_rev;

/* A pull (`ksv pull`) the engine lists in its state: fetched into its cache, not loaded. */
#define KSV_PROBE_MAX_PULLS 16
typedef struct ksv_probe_pull {
    char model[320];              /* "NAMESPACE/NAME" as ksv pull sent it ("" none) */
    char uri[512];
    char state[16];               /* queued|pulling|done|failed */
    long long bytes, total;       /* total -1: unknown */
    double rate;                  /* bytes/s */
    char error[256];
} ksv_probe_pull;

/* One recent failed request, as the engine remembers it. */
typedef struct ksv_probe_error {
    double unix_time;
    int status;
    char request_id[64];
    char revision[96];
    char message[256];
} ksv_probe_error;

/* A model's release gate as the engine reports it (GET .../models/{m} "rollout"). */
#define KSV_PROBE_GATE_CHECKS 8
typedef struct ksv_probe_gate {
    char model[96];
    char canary[96];
    char phase[16];               /* Initializing..Failed (Flagger's names) */
    char reason[256];
    int step, steps;              /* step counts from 0 (negative: mirrored iterations) */
    int set_weight, actual_weight, failed_checks, threshold;
    size_t n_checks;
    struct {
        char metric[32];
        char verdict[16];
        double value, min, max;   /* NaN: none */
        long long requests;
    } checks[KSV_PROBE_GATE_CHECKS];
} ksv_probe_gate;

/* An external runtime's last output lines (GET .../revisions/{r}/logs), for the console's
 * detail screen. */
#define KSV_PROBE_LOG_LINES 8
typedef struct ksv_probe_runtime_log {
    char revision[96];
    char state[24];               /* the supervisor's: starting|ready|restarting|... */
    long long restarts;
    size_t n_lines;
    char lines[KSV_PROBE_LOG_LINES][256]; /* the last ones, oldest first, as sent: the
                                           * terminal layer sanitizes what it shows */
} ksv_probe_runtime_log;

typedef struct ksv_node_probe {
    int64_t at_ms;                /* wall clock when the answers were read */
    bool reachable;
    char error[512];              /* why not, when !reachable */
    char engine_version[64];
    double uptime_s;
    int threads;
    long long inflight;
    double loadavg1;
    int cpus;
    size_t n_gpus;
    ksv_probe_gpu gpus[KSV_PROBE_MAX_GPUS];
    ksv_probe_rev *revs;          /* owned */
    size_t n_revs;
    ksv_probe_gate *gates;        /* models with a release gate; owned */
    size_t n_gates;
    ksv_probe_pull *pulls;        /* the newest pulls (at most KSV_PROBE_MAX_PULLS), oldest
                                   * first; owned, NULL when none */
    size_t n_pulls;
    bool has_scrape;
    ksv_scrape_shared *scrape;    /* cumulative counters and histograms (metrics_window.h),
                                   * read with ksv_scrape_shared_get; a reference, NULL
                                   * without has_scrape. Through a probe link, the same one
                                   * as the link's previous probe while the engine answers
                                   * that its histograms did not change */
    char figures_error[256];      /* reachable but no scrape: why (shown, never dropped) */
    ksv_probe_error *errors;      /* of errors_model, newest first; owned */
    size_t n_errors;
    ksv_probe_runtime_log *runtime_logs; /* errors_model's revisions on an external runtime */
    size_t n_runtime_logs;
    char events_log_id[64];       /* the node's event log: its id and last seq (-1 when the */
    long long events_last_seq;    /* engine did not say), to import only when it grew */
} ksv_node_probe;

/* Reads node's info, applied state and histograms (and, when errors_model is non-NULL, the
 * engine's recent errors for that model and the output of its revisions served by an
 * external runtime), each call bounded by the handle's node_timeout_ms
 * (ksv_ctl_options). Observe only: a
 * local node whose engine is not running is reported unreachable, never started. Returns 0
 * with out->reachable telling the outcome; -1 only for an unknown node (404) or no memory.
 * Free with ksv_node_probe_free. */
int ksv_ctl_node_probe(ksv_ctl *ctl, const char *node, const char *errors_model,
                       ksv_node_probe *out, ksv_err *err);
void ksv_node_probe_free(ksv_node_probe *p);

/* One node's connection kept between a console's probes, whatever the node's kind (an
 * SSH node's session and tunnel, a local or http node's keep-alive HTTP connection), and
 * the node's stored record. Any thread may probe through it, one at a time. A failed SSH
 * dial backs off as keep_connections does (control.h); other kinds redial at the next
 * probe. */
typedef struct ksv_probe_link ksv_probe_link;
ksv_probe_link *ksv_probe_link_new(const char *node);
void ksv_probe_link_free(ksv_probe_link *l);
/* The node's record changed in the store: read it again at the next probe. */
void ksv_probe_link_reread(ksv_probe_link *l);
/* ksv_ctl_node_probe through the link: no store access after the first, no new
 * connection while the node answers. */
int ksv_ctl_node_probe_link(ksv_ctl *ctl, ksv_probe_link *link, const char *node,
                            const char *errors_model, ksv_node_probe *out, ksv_err *err);
/* ksv_ctl_import_events for one node through its link (a console's: no second SSH session,
 * never starts a local engine), as `ksv history` imports: only when the node holds a model
 * a Canary gates (0 and nothing imported otherwise). */
int ksv_ctl_import_events_link(ksv_ctl *ctl, ksv_probe_link *link, const char *node,
                               size_t *imported, ksv_err *err);

/* ---- editing ---------------------------------------------------------------------------- */

/* The model's current spec as one KServe YAML document: spec_json as stored (the document
 * as last applied), with its storage URI replaced by storage_uri (the newest revision's,
 * already absolute) so the file means the same wherever it is edited. */
int ksv_console_spec_yaml(const char *spec_json, const char *storage_uri, ksv_sb *out,
                          ksv_err *err);
/* Parses an edited document for model ns/name: exactly one InferenceService, the same
 * namespace and name. On success *out holds it (caller frees). */
int ksv_console_parse_edit(const char *text, size_t len, const char *ns, const char *name,
                           ksv_manifest_list *out, ksv_err *err);

/* ---- local engines (ksv-top --demo) ------------------------------------------------- */

/* The base URL ("http://127.0.0.1:PORT") of the engine of local node `node`. */
int ksv_ctl_local_node_url(ksv_ctl *ctl, const char *node, char *url, size_t cap,
                           ksv_err *err);
/* Initialises the HTTP library (src/http) once per program; safe from any thread and to
 * repeat (every HTTP client calls it too), but best done by main() before threads start. */
int ksv_ctl_global_init(ksv_err *err);

/* Stores the increments between the node's last two scrapes in w as SQLite samples, and
 * compacts old samples about once a minute (raw 24 h, minute roll-ups 30 days). */
int ksv_ctl_store_window_samples(ksv_ctl *ctl, const ksv_mwin *w, const char *node,
                                 ksv_err *err);
/* The same for several nodes, in one transaction. */
int ksv_ctl_store_window_samples_of(ksv_ctl *ctl, const ksv_mwin *w, const char *const *nodes,
                                    size_t n_nodes, ksv_err *err);
/* Changes when another handle or process committed to the store since the last call on
 * this handle (ksv_store_data_version): a console re-reads models, nodes and history only
 * then. */
int ksv_ctl_store_version(ksv_ctl *ctl, int64_t *version, ksv_err *err);
/* A model's QPS over the n steps of step_ms that end at now_ms, oldest first, from the
 * stored samples (every node and revision summed); NaN where no sample covers a step
 * (idle scrapes are not stored: read NaN as idle when the console ran).
 * Sparklines start from it, so they survive a restart of the console. */
int ksv_ctl_recent_qps(ksv_ctl *ctl, const char *model, int64_t now_ms, int64_t step_ms,
                       size_t n, double *out, ksv_err *err);
/* Stops the engine of local node `node` (SIGTERM, then SIGKILL after timeout_ms). */
int ksv_ctl_local_node_stop(ksv_ctl *ctl, const char *node, long timeout_ms, ksv_err *err);

#endif
