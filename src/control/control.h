/* control.h: ksv's control layer, shared by the `ksv` CLI and `ksv-top`, and the only
 * header of src/control (or of anything below it) that src/cli and src/tui include: the
 * layer's other public headers are included at the end of this one (tests/check_layers.sh
 * enforces it).
 *
 * Desired state lives in the SQLite store (src/store); this layer changes it (apply,
 * rollout, delete, nodes), records every change in history, and reconciles it onto each
 * node's engine through the admin API (src/remote). Callers never touch SQLite or sockets.
 *
 * Every change follows one pattern, so a crash at any point is safe: (1) one store
 * transaction writes the new desired state and a history row saying what was asked;
 * (2) each node is reconciled (idempotent PUTs); (3) a second history row records each
 * node's result. Re-running a command after a crash finds the desired state already
 * written (a no-op in the store) and finishes step 2. */
#ifndef KSV_CONTROL_CONTROL_H
#define KSV_CONTROL_CONTROL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/manifest.h"
#include "common/strbuf.h"
#include "store/store.h"
#include "control/cost.h"

typedef struct ksv_ctl ksv_ctl;

#define KSV_CTL_DEFAULT_PARALLEL 16

typedef struct ksv_ctl_options {
    const char *db_path;          /* NULL: $KSV_DB, then $XDG_STATE_HOME/ksv/ksv.db */
    const char *actor;            /* NULL: $USER, else the login name of the uid */
    /* Why the changes of this handle are made (`--reason TEXT`): recorded in every history
     * row it writes; NULL or "": none. Must pass ksv_ctl_reason_problem. */
    const char *reason;
    const char *engine_path;      /* NULL: KSV_ENGINE, beside argv0, then PATH */
    const char *argv0;
    long node_timeout_ms;         /* per admin call; default 5000 */
    int parallel;                 /* nodes changed or probed at once; <= 0: 16 */
    /* Model files sent to SSH nodes report progress here (may be NULL). */
    void (*upload_progress)(const char *node, const char *file, long long done,
                            long long total, double bytes_per_s, void *user);
    void *upload_progress_user;
    /* Keep each SSH node's session and tunnel open between calls instead of dialling per
     * call, and redial a failed node with exponential backoff (kept_conns.c): for long-lived
     * callers such as ksv-top's probers. Such a handle changes its nodes one at a time (the
     * kept connections are the handle's, used by one thread). */
    bool keep_connections;
    long reconnect_min_ms;        /* first wait after a failed connect; default 1000 */
    long reconnect_max_ms;        /* the longest wait; default 30000 */
} ksv_ctl_options;

/* One line for an upload_progress report: "node edge: uploading F: 0.4/1.2 MB (3.1 MB/s)",
 * "node edge: uploaded F: 1.2 MB (3.1 MB/s)" once done. */
void ksv_ctl_format_upload(const char *node, const char *file, long long done,
                           long long total, double bytes_per_s, char *out, size_t cap);

int ksv_ctl_open(const ksv_ctl_options *opts, ksv_ctl **out, ksv_err *err);
void ksv_ctl_close(ksv_ctl *ctl);
const char *ksv_ctl_actor(const ksv_ctl *ctl);

#define KSV_CTL_REASON_MAX 500
/* NULL when reason may be recorded, else why not: at most KSV_CTL_REASON_MAX bytes of
 * printable UTF-8 (no control characters, so it cannot rewrite a terminal later). */
const char *ksv_ctl_reason_problem(const char *reason);
/* Changes the reason of the history rows this handle writes from now on (NULL or "": none):
 * ksv-top's confirm dialogs set it for one change. 400 when reason_problem refuses it. */
int ksv_ctl_set_reason(ksv_ctl *ctl, const char *reason, ksv_err *err);

/* The result of one change on each node it touched. */
typedef struct ksv_node_result {
    char node[64];
    bool ok;
    bool unconfirmed;             /* !ok: a change was sent but the node gave no answer in
                                   * time, so it may still take effect (never "failed") */
    char message[512];
} ksv_node_result;

typedef struct ksv_ctl_result {
    ksv_node_result *nodes;
    size_t n;
    bool changed;                 /* the desired state changed (false: a no-op) */
    char summary[1536];           /* one line for people */
} ksv_ctl_result;

void ksv_ctl_result_free(ksv_ctl_result *r);
/* True when every node reported success. */
bool ksv_ctl_result_ok(const ksv_ctl_result *r);

/* ---- nodes ---------------------------------------------------------------------- */
typedef struct ksv_node_add_options {
    const char *token_file;
    const char *engine_state_dir;
    const char *engine_path;
    const char *identity, *known_hosts;
    int engine_port;
    bool trust_new, install;
    const char *const *labels;    /* "KEY=VALUE" (--label), n_labels of them */
    size_t n_labels;
} ksv_node_add_options;

/* local: starts (or attaches to) an engine on this machine; http://: checks it answers. */
int ksv_ctl_node_add(ksv_ctl *ctl, const char *name, const char *address,
                     const ksv_node_add_options *opts, ksv_ctl_result *res, ksv_err *err);
int ksv_ctl_node_remove(ksv_ctl *ctl, const char *name, ksv_ctl_result *res, ksv_err *err);
/* `ksv node label NAME KEY=VALUE|KEY-...`: sets and removes labels in one change, with a
 * history row (before and after). Status 2 for a malformed argument. */
int ksv_ctl_node_label(ksv_ctl *ctl, const char *name, const char *const *args, size_t n,
                       ksv_ctl_result *res, ksv_err *err);
/* The registered nodes whose labels satisfy selector (common/labels.h), sorted by name;
 * *names (each and the array) for the caller to free. 400 for a malformed selector. */
int ksv_ctl_nodes_selected(ksv_ctl *ctl, const char *selector, char ***names, size_t *n,
                           ksv_err *err);

typedef struct ksv_node_status {
    ksv_node node;                /* from the store */
    bool reachable;
    char error[512];
    char engine_version[64];
    double uptime_s;
    int threads;
    char **drift;                 /* lines: desired vs applied differences */
    size_t n_drift;
} ksv_node_status;

/* name NULL: every node. */
int ksv_ctl_node_status(ksv_ctl *ctl, const char *name, ksv_node_status **out, size_t *n,
                        ksv_err *err);
void ksv_node_status_free(ksv_node_status *st, size_t n);

/* ---- models ----------------------------------------------------------------------- */
typedef struct ksv_apply_options {
    const char *const *nodes;     /* --node NAME..., overrides ksv.io/nodes */
    size_t n_nodes;
    const char *selector;         /* -l SELECTOR: the nodes it picks, overrides both
                                   * annotations (not with nodes) */
    double timeout_s;             /* wait for nodes to report the change in effect */
} ksv_apply_options;

/* Applies every InferenceService of the list; res collects every node's result. */
int ksv_ctl_apply(ksv_ctl *ctl, const ksv_manifest_list *list, const ksv_apply_options *opts,
                  ksv_ctl_result *res, ksv_err *err);

typedef enum { KSV_ROLLOUT_SET_TRAFFIC, KSV_ROLLOUT_PROMOTE, KSV_ROLLOUT_ROLLBACK } ksv_rollout_op;

typedef struct ksv_rollout_request {
    ksv_rollout_op op;
    const char *model;            /* NAME or NAMESPACE/NAME */
    const char *ns;               /* -n, may be NULL */
    int percent;                  /* set-traffic */
    const char *to_revision;      /* rollback --to; promote: the canary it must be (the
                                   * waves' revision); may be NULL */
    double timeout_s;
} ksv_rollout_request;

int ksv_ctl_rollout(ksv_ctl *ctl, const ksv_rollout_request *req, ksv_ctl_result *res,
                    ksv_err *err);
int ksv_ctl_delete(ksv_ctl *ctl, const char *model, const char *ns, double timeout_s,
                   ksv_ctl_result *res, ksv_err *err);
/* Pushes the desired state of one model (or every model: model NULL) to its nodes. */
int ksv_ctl_reconcile(ksv_ctl *ctl, const char *model, const char *ns, double timeout_s,
                      ksv_ctl_result *res, ksv_err *err);

/* ---- pulls (pull.c): models fetched into nodes' caches ahead of a rollout ---- */

/* One pull on one node as it goes, for progress lines (strings valid during the call). */
typedef struct ksv_pull_report {
    const char *node, *model, *uri;
    const char *state;            /* "queued", "pulling", "done", "failed" */
    long long bytes, total;       /* total -1 while unknown */
    double bytes_per_s, seconds;
    const char *error;            /* "" unless failed */
} ksv_pull_report;

typedef struct ksv_pull_request {
    const ksv_manifest_list *list; /* -f FILE: each InferenceService's storage URI; or ... */
    const char *model;            /* ... MODEL: the stored model's revisions that serve or
                                   * may serve (traffic, stable, canary) */
    const char *ns;
    const char *const *nodes;     /* --node: overrides the placement */
    size_t n_nodes;
    const char *selector;         /* -l: the same */
    double timeout_s;             /* for every pull to end; <= 0: 3600 */
    /* Called about twice a second for each running pull, and once when it ends. */
    void (*progress)(const ksv_pull_report *r, void *user);
    void *user;
} ksv_pull_request;

/* Asks each node's engine to fetch the models into its cache (POST /ksv/v1/pulls) and
 * waits for them: res gets one row per (node, storage URI). Local paths are skipped (an
 * SSH node gets its copy at apply). Nothing is loaded and no desired state changes. */
int ksv_ctl_pull(ksv_ctl *ctl, const ksv_pull_request *req, ksv_ctl_result *res, ksv_err *err);
/* "node edge: s3://b/m.json: 1.2/5.0 MB (3.1 MB/s)", "...: pulled 5.0 MB in 1.6 s
 * (3.1 MB/s)", "...: failed: WHY". Sanitized for a terminal. */
void ksv_ctl_format_pull(const ksv_pull_report *r, char *out, size_t cap);

/* A model's desired state in one view: revisions with traffic, the stable one. */
typedef struct ksv_model_view {
    ksv_model_record model;
    ksv_revision_record_list revisions;
    ksv_traffic traffic;
    int64_t stable_id;
    int64_t canary_id;            /* newest revision when it is not the stable one; 0 none */
} ksv_model_view;

int ksv_ctl_model_view(ksv_ctl *ctl, const char *model, const char *ns, ksv_model_view *out,
                       ksv_err *err);
void ksv_model_view_free(ksv_model_view *v);
/* The percent of traffic a revision gets in the view (0 when absent). */
int ksv_model_view_percent(const ksv_model_view *v, int64_t revision_id);

/* The model NAME or NAMESPACE/NAME (ns: -n, may be NULL) as stored; free with
 * ksv_model_record_clear. 404 when there is none. */
int ksv_ctl_model_resolve(ksv_ctl *ctl, const char *model, const char *ns, ksv_model_record *out,
                          ksv_err *err);

/* ---- namespace quotas (ResourceQuota; quota.c) ---------------------------------------- */

/* A stored quota with what its namespace uses now (see quota.c for how usage counts). */
typedef struct ksv_quota_usage {
    ksv_quota quota;
    int64_t used_count;
    uint64_t used_memory_bytes;
    int64_t used_gpu;
} ksv_quota_usage;

typedef struct ksv_quota_usage_list {
    ksv_quota_usage *items;
    size_t n;
} ksv_quota_usage_list;

/* Quotas of namespace ns (NULL: all) with their usage. */
int ksv_ctl_quota_list(ksv_ctl *ctl, const char *ns, ksv_quota_usage_list *out, ksv_err *err);
void ksv_quota_usage_list_free(ksv_quota_usage_list *l);
/* kubectl's REQUEST cell: "count/inferenceservices.serving.kserve.io: 2/3, requests.memory:
 * 1Gi/2Gi" (used/hard of each limit the quota sets). */
void ksv_quota_usage_text(const ksv_quota_usage *u, char *out, size_t cap);
/* Bytes as Kubernetes writes them: "2Gi", "512Mi", or plain bytes. */
void ksv_quota_format_bytes(uint64_t bytes, char *out, size_t cap);

/* ---- load generation (ksv load) -------------------------------------------------------- */

/* A connection to the engine serving a model, open for the length of a load run (for an
 * SSH node it is the tunnel the requests travel through). */
typedef struct ksv_load_target ksv_load_target;

/* Connects to `node` (NULL: the model's first node) for model NAME or NAMESPACE/NAME; when
 * want_features, asks the engine for the model's input width (0 when it does not report
 * one yet). Free with ksv_load_target_close. */
int ksv_ctl_load_target_open(ksv_ctl *ctl, const char *model, const char *ns, const char *node,
                             bool want_features, ksv_load_target **out, ksv_err *err);
/* The model's V2 infer URL through the connection. */
const char *ksv_load_target_url(const ksv_load_target *t);
/* The model's input width, 0 when unknown. */
long ksv_load_target_features(const ksv_load_target *t);
void ksv_load_target_close(ksv_load_target *t);

/* An external runtime's last output lines on every node of the model: one object per
 * (node, revision) with the engine's answer (docs/API.md, .../revisions/{rev}/logs) and
 * "node", or "error" when the node could not say. revision NULL: every revision with
 * traffic. *out is a JSON array the caller puts. */
int ksv_ctl_runtime_logs(ksv_ctl *ctl, const char *model, const char *ns, const char *revision,
                         json_object **out, ksv_err *err);

/* Appends a history row with the given action and result (used by every change). */
int ksv_ctl_history(ksv_ctl *ctl, const char *action, const char *model, const char *node,
                    const char *old_value, const char *new_value, const ksv_ctl_result *res,
                    const char *result_override, ksv_err *err);

/* ---- release gates (run by the engines; docs/API.md, "PUT .../rollout") ------------ */
/* {"model":"NS/NAME","canary":NAME|null,"nodes":[{"node":..,"rollout":{..}|null,
 * "error":..}]}: each node's rollout as its engine reports it (caller json_object_put()s).
 * Imports every node's new events into history first. */
int ksv_ctl_gate_status(ksv_ctl *ctl, const char *model, const char *ns, json_object **out,
                        ksv_err *err);
/* The newest waved rollout of the model (ksv.io/waves), from history:
 * {"revision":R,"waves":M,"nodes":[{"node":N,"wave":K,"phase":"succeeded|in progress|
 * pending|failed, rolled back|rolled back|not started"}]}; *out NULL when it had none. */
int ksv_ctl_wave_status(ksv_ctl *ctl, const char *model, const char *ns, json_object **out,
                        ksv_err *err);
/* pause | resume | abort | retry | promote on every node holding the model. */
int ksv_ctl_gate_action(ksv_ctl *ctl, const char *model, const char *ns, const char *action,
                        ksv_ctl_result *res, ksv_err *err);
/* Waits until the rollout is Succeeded or Failed on every node: 0 Succeeded, -1 with err
 * (status 1) on Failed (the reason) or after timeout_s. phase_out gets the outcome. */
int ksv_ctl_gate_wait(ksv_ctl *ctl, const char *model, const char *ns, double timeout_s,
                      char *phase_out, size_t phase_cap, ksv_err *err);
/* Reads a node's (NULL: every node holding a model a Canary gates) new events into history,
 * once each (keyed by node and seq; actor gate@NODE or engine@NODE, action the event's
 * kind), and moves the desired split to what a gate decided. An unreachable node is read
 * next time. */
int ksv_ctl_import_events(ksv_ctl *ctl, const char *node, size_t *imported, ksv_err *err);

/* ---- settings (settings.c) ------------------------------------------------------------ */

/* ksv's config file: KSV_CONFIG, else $XDG_CONFIG_HOME/ksv/config, else
 * ~/.config/ksv/config. Lines "KEY = VALUE" ('#' starts a comment): gpu-hour-price,
 * gb-hour-price (for `ksv cost`). A missing file is no error (found false, all 0); a bad
 * line is, with FILE:LINE. */
typedef struct ksv_settings {
    char path[PATH_MAX];
    bool found;
    double gpu_hour_price, gb_hour_price;
} ksv_settings;

int ksv_ctl_settings_load(ksv_settings *out, ksv_err *err);

/* ---- cost (cost.c; cost.h says what each figure means) ------------------------------- */

typedef struct ksv_cost_query {
    double since_s;               /* the window: the last since_s seconds; <= 0: all */
    const char *ns;               /* one namespace, or NULL */
    double gpu_hour_price, gb_hour_price; /* < 0: from the config file (else 0) */
    /* Contact no node: only the events already stored (a console's prober imports them),
     * open residencies ending now without their live requests and idle time. */
    bool stored_only;
} ksv_cost_query;

/* Reads every node's new events into the store (an unreachable node becomes a warning and
 * its stored events still count), asks each node for its open residencies, and computes
 * the report. Free it with ksv_cost_report_free. */
int ksv_ctl_cost(ksv_ctl *ctl, const ksv_cost_query *q, ksv_cost_report *out, ksv_err *err);

/* The rest of the layer's public interface. */
#include "control/figures.h"
#include "control/loadgen.h"
#include "control/metrics_window.h"
#include "control/observe.h"
#include "control/prom_source.h"

#endif
