/* worker.h: ksv-top's background work, so the UI thread never waits on the network.
 *
 * Threads, each with its own ksv_ctl (a store handle is used by one thread at a time):
 *   - one prober per node: probes its engine every interval (node info, applied state,
 *     histograms, recent errors of the focused model) and leaves the latest answer in the
 *     node's slot. An SSH node's session and tunnel stay open between probes, and a node
 *     that cannot be reached is redialled with exponential backoff (control.h,
 *     keep_connections). A hung node only holds up its own prober; its slot ages, and the
 *     snapshot shows the node stale with the age of its figures.
 *   - the collector: every interval (or when asked) reads the store (models, revisions,
 *     traffic, nodes, history), feeds new scrapes into the metrics window (10 s rates,
 *     60 s latency), keeps sparkline history, builds an immutable tui_snapshot and
 *     publishes it by swapping a mutex-protected pointer.
 *     With --prometheus the collector takes QPS, ERR%, P50 and P99 from a Prometheus server
 *     (control/prom_source.h) instead: the probers still ask the engines what only they know
 *     (reachability, revision states, recent errors), but their histograms are not used.
 *   - the actor: runs one change at a time (set-traffic, promote, rollback, apply) through
 *     the control layer and leaves a one-line result for the status line.
 * The UI thread only takes references to snapshots, submits jobs and reads results. */
#ifndef KSV_TUI_WORKER_H
#define KSV_TUI_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "tui/model.h"

typedef struct tui_worker tui_worker;

typedef struct tui_worker_options {
    const char *db_path;         /* NULL: the control layer's default */
    const char *argv0;
    double interval_s;           /* refresh period (-d), > 0 */
    long node_timeout_ms;        /* per engine call while probing; 0: 2000 */
    double change_timeout_s;     /* wait for nodes to apply a change; 0: 60 */
    const char *prometheus_url;  /* NULL: figures from the engines' histograms; else the base
                                  * URL of a Prometheus that scrapes them (checked by start) */
    bool readonly;               /* never change a node, not even to catch one up */
} tui_worker_options;

typedef enum {
    TUI_JOB_SET_TRAFFIC,
    TUI_JOB_PROMOTE,
    TUI_JOB_ROLLBACK,
    TUI_JOB_APPLY,
    TUI_JOB_GATE_PAUSE,           /* the engines' release gate: pause, resume, abort */
    TUI_JOB_GATE_RESUME,
    TUI_JOB_GATE_ABORT,
} tui_job_kind;

typedef struct tui_job {
    tui_job_kind kind;
    char model[TUI_KEY_LEN];     /* "namespace/name" */
    int percent;                 /* set-traffic */
    const char *manifest;        /* apply: the document (copied by submit) */
    size_t manifest_len;
    char reason[256];            /* typed in the confirm dialog: recorded in history; "" */
} tui_job;

typedef struct tui_job_result {
    bool ok;
    char text[1024];             /* summary and each node's result, one line */
} tui_job_result;

int tui_worker_start(const tui_worker_options *o, tui_worker **out, ksv_err *err);
/* Stops every thread (a prober inside an engine call finishes it first: at most the node
 * timeout) and frees everything. */
void tui_worker_stop(tui_worker *w);
/* The newest snapshot with a reference for the caller (tui_snapshot_unref), or NULL
 * before the first one. */
tui_snapshot *tui_worker_snapshot(tui_worker *w);
/* Which model's recent errors to fetch ("namespace/name"; NULL: none). */
void tui_worker_set_focus(tui_worker *w, const char *model_key);
/* Collect now instead of at the end of the interval. */
void tui_worker_refresh(tui_worker *w);
/* Queues a change; -1 (409) while another is running. */
int tui_worker_submit(tui_worker *w, const tui_job *job, ksv_err *err);
bool tui_worker_busy(tui_worker *w);
/* True once per finished job, with its result. */
bool tui_worker_take_result(tui_worker *w, tui_job_result *out);

/* True when a model upload to an SSH node made progress since *seen (updated), with its
 * line ("node edge: uploading churn-v2/model.json: 0.4/1.2 MB (3.1 MB/s)") in out and
 * *done telling whether that file is complete. */
bool tui_worker_take_transfer(tui_worker *w, uint64_t *seen, char *out, size_t cap,
                              bool *done);

/* --once: probes every node twice, one interval apart, and builds one snapshot on the
 * calling thread. */
int tui_collect_once(const tui_worker_options *o, tui_snapshot **out, ksv_err *err);

#endif
