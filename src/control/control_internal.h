/* control_internal.h: what the control layer's files share; not for callers. */
#ifndef KSV_CONTROL_INTERNAL_H
#define KSV_CONTROL_INTERNAL_H

#include <limits.h>
#include <stdint.h>

#include "common/clock.h"
#include "control/control.h"
#include "remote/engine_client.h"
#include "remote/ssh_tunnel.h"

struct ksv_ctl {
    ksv_store *store;
    char db_path[PATH_MAX];
    char actor[64];
    char reason[KSV_CTL_REASON_MAX + 1]; /* "" when none (ksv_ctl_set_reason) */
    char engine_path[PATH_MAX];
    char argv0[PATH_MAX];
    long node_timeout_ms;
    /* Set only while `node add` connects: trust an unknown host key, install the engine. */
    bool ssh_trust_new, ssh_install;
    int parallel;                 /* nodes changed or probed at once (fanout.c) */
    void (*upload_progress)(const char *node, const char *file, long long done,
                            long long total, double bytes_per_s, void *user);
    void *upload_progress_user;
    int64_t last_compact_ms;      /* metric sample retention, run about once a minute */
    /* SSH connections kept across calls (kept_conns.c), when keep_connections is set. */
    bool keep_connections;
    long reconnect_min_ms, reconnect_max_ms;
    struct ctl_kept **kept;
    size_t n_kept;
    uint64_t jitter_state;
};

/* A local model file and where it lives on an SSH node once uploaded. */
typedef struct ctl_upload {
    char local[4096];             /* the revision's storage URI as stored */
    char fetched[4096];           /* the file to send when local is a store's URI that ksv
                                   * fetched (ksv.io/fetch: operator); "" otherwise */
    char remote[1300];            /* "" until uploaded */
} ctl_upload;

/* pull.c: the sha256 a stored revision's spec pins ("" when none). */
void ctl_revision_sha256(const char *spec_json, char out[65]);

/* ---- ksv.io/fetch: operator (operator_fetch.c) ---- */
/* The model asks for its store's models to be fetched here and sent to SSH nodes. */
bool ctl_fetch_on_operator(const ksv_model_record *m);
/* Fetches uri (checked against sha256 when set) on this machine with `ksv-engine --fetch`
 * into $XDG_CACHE_HOME/ksv/operator-fetch; path gets the model file. 502 with the engine's
 * reason when it fails. */
int ctl_operator_fetch(ksv_ctl *ctl, const char *uri, const char *sha256, char *path, size_t cap,
                       ksv_err *err);

/* ---- serving runtimes (runtimes.c) ---- */
/* data/runtimes of this installation; -1 when none is found. */
int ctl_runtimes_dir(char *out, size_t cap);
/* Stores the list's ServingRuntime documents (history row per changed one). */
int ctl_runtimes_store(ksv_ctl *ctl, const ksv_manifest_list *list, size_t *changed,
                       ksv_err *err);
/* Chooses spec's runtime (spec->runtime_external) and adds it to *canonical (replaced):
 * predictor.model.runtime and the engine block "servingRuntime"; runtime gets its name. */
int ctl_runtime_resolve(ksv_ctl *ctl, const ksv_isvc *spec, char **canonical, char *runtime,
                        size_t runtime_cap, ksv_err *err);
/* A revision's engine "external" block from its canonical spec (malloc'd), or NULL when it
 * runs in the engine. */
char *ctl_revision_external(const char *spec_json);


/* rollout.c: the nodes a spec is placed on: --node, else -l SELECTOR, else ksv.io/nodes
 * or ksv.io/node-selector, else the only registered node (*nodes for the caller to free). */
int ctl_placement(ksv_ctl *ctl, const ksv_isvc *spec, const ksv_apply_options *opts,
                  char ***nodes, size_t *n, ksv_err *err);

/* ---- fan-out (fanout.c) ---- */
/* Runs job(ctx, i) for every i in [0, n) on up to `parallel` threads (1: on the caller's
 * thread, in order) and returns when all are done. Jobs must not touch the ctl's store. */
/* quota.c: refuses (403, kubectl's "exceeded quota: ..." wording) an apply that would take
 * a namespace past a ResourceQuota, before anything is stored; then stores the file's
 * quotas. */
int ctl_quota_admit(ksv_ctl *ctl, const ksv_manifest_list *list, ksv_err *err);

void ctl_fanout(size_t n, int parallel, void (*job)(void *ctx, size_t i), void *ctx);

/* ---- pushing desired state to nodes (push.c) ---- */
/* One model to push: its desired state, or its removal. */
typedef struct ctl_push_model {
    const ksv_model_view *view;   /* borrowed */
    bool remove;                  /* DELETE it from its nodes instead of PUT */
    ksv_ctl_result result;        /* filled: each of its nodes' outcome (caller frees) */
} ctl_push_model;
/* Pushes every model to each of its nodes and waits for the change to be in effect: the
 * nodes in parallel (ctl->parallel at a time), each node's models in turn on one
 * connection, everything within one deadline timeout_s from now. A node that does not
 * answer is not asked again in this push (it costs the push one node timeout, not one per
 * model); every node that gave no answer is asked once more at the end, so a change that
 * took effect late is recorded as in effect. A change sent to a node that never answered
 * is "unconfirmed", never "failed": it may still take effect. Records each node's status
 * in the store; res gets one row per node over all the models (the caller's history row
 * counts nodes, not models). */
void ctl_push(ksv_ctl *ctl, ctl_push_model *models, size_t n, double timeout_s,
              ksv_ctl_result *res);
int ctl_result_add(ksv_ctl_result *r, const char *node, bool ok, const char *message);
/* message without the "node NAME: " that connect errors start with, for messages that
 * name the node already. */
const char *ctl_skip_node_prefix(const char *message, const char *node);

/* A connected node: its admin client. */
typedef struct ctl_node_conn {
    char name[64];
    ksv_engine_client *client;
    ksv_ssh_tunnel *tunnel;       /* ssh nodes: the forwarded port the client talks to */
    char engine_path[1100];       /* ssh nodes: the engine found or installed */
    bool engine_installed;        /* ssh nodes: this connect uploaded it (--install) */
    char unit_note[1400];         /* ssh nodes, --install: what became of the systemd unit */
    bool borrowed;                /* kept by the ctl (kept_conns.c): disconnect leaves it */
} ctl_node_conn;

/* Connects to a stored node (starting a local engine when it is not running). On a handle
 * with keep_connections, an SSH node's connection is kept and reused (borrowed), except
 * while the node is being added. */
int ctl_node_connect(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out, ksv_err *err);
/* Always a new connection, owned by the caller. */
int ctl_node_connect_fresh(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out,
                           ksv_err *err);
/* The same, sending an SSH node the model files in uploads first (each one's remote path
 * is filled in). Reads only the ctl's settings: several threads may connect at once. */
int ctl_node_connect_uploading(ksv_ctl *ctl, const ksv_node *node, ctl_upload *uploads,
                               size_t n_uploads, ctl_node_conn *out, ksv_err *err);
/* Frees what the connection owns; a borrowed one stays with the ctl. */
void ctl_node_disconnect(ctl_node_conn *c);

/* ---- kept connections (kept_conns.c) ---- */
/* Labels parsed from KEY=VALUE (and, allow_remove, KEY-: value NULL) arguments. */
typedef struct ctl_labels {
    char **keys;
    char **values;
    size_t n;
} ctl_labels;
int ctl_labels_parse(const char *const *args, size_t n, bool allow_remove, ctl_labels *out,
                     ksv_err *err);
void ctl_labels_free(ctl_labels *l);
/* "k=v,k2-" into out. */
void ctl_labels_text(char *const *keys, char *const *values, size_t n, ksv_sb *out);

/* waves.c: the cumulative wave ends for n_nodes (ksv.io/waves; the last is n_nodes), and the
 * waved rollout of model ref from revision stable to fresh (the store holds the new desired
 * state; each wave's nodes get it in turn). policy: the stored Canary's policy when a
 * Canary gates fresh (each wave's nodes then load fresh at 0% and run the gate, and the
 * wave succeeds when every gate promotes), NULL for soaked waves. first_wave: 0 for a new
 * rollout (the plan goes into history), else the wave an interrupted one resumes at.
 * -1 with err when a wave failed (the model was rolled back) or a step could not be
 * recorded. */
void ctl_waves_plan(const ksv_isvc *spec, size_t n_nodes, size_t *ends, size_t *n_waves);
int ctl_waves_run(ksv_ctl *ctl, const ksv_isvc *spec, const char *ref, const char *stable,
                  const char *fresh, const char *policy, size_t first_wave, double timeout_s,
                  ksv_ctl_result *res, ksv_err *err);
/* An interrupted waved rollout of ref that an apply of the same spec resumes: its plan is
 * the newest, fresh is still the newest revision, no wave failed, not every wave ended and
 * no operator change (rollback, promote, set-traffic) came after it. 1 with the revisions
 * and the wave to run next (0-based), 0 when there is none, -1 on error. */
int ctl_waves_unfinished(ksv_ctl *ctl, const char *ref, char *stable, size_t stable_cap,
                         char *fresh, size_t fresh_cap, size_t *next_wave, ksv_err *err);
/* For a reconcile of v's model: when a waved rollout of it is unfinished, the nodes its
 * waves have not reached (the interrupted wave's and those after it) leave v (freed) and
 * go to held as results that say so, and what says it in one line. A reconcile pushes
 * the model's one desired state, the new revision's, which would take it to every node
 * at once; advancing the waves (their soaks, their gates) is the apply's to do, and a
 * console catching a returning node up must not start that. 1 when nodes were held, 0
 * when there is no unfinished waved rollout, -1 on error. */
int ctl_waves_hold(ksv_ctl *ctl, ksv_model_view *v, ksv_ctl_result *held, char *what,
                   size_t what_cap, ksv_err *err);

typedef struct ctl_kept ctl_kept;
typedef int (*ctl_dial_fn)(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out,
                           ksv_err *err);
/* One node's kept connection outside the ctl's table (a console's probe link: any thread
 * may use it, one at a time). */
ctl_kept *ctl_kept_new(const char *name);
void ctl_kept_free(ctl_kept *k);
/* The entry's connection, dialled with dial when there is none (SSH nodes: when the
 * backoff allows it). The connection is lent (borrowed) and stays with the entry. */
int ctl_kept_entry_connect(ksv_ctl *ctl, ctl_kept *k, const ksv_node *node,
                           ctl_dial_fn dial, ctl_node_conn *out, ksv_err *err);
/* A request over the entry's connection failed: drop it (SSH: and back off). */
void ctl_kept_entry_failed(ksv_ctl *ctl, ctl_kept *k, ksv_node_kind kind, const char *why);
/* The node's kept connection, dialled when there is none and the backoff allows it. */
int ctl_kept_connect(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out, ksv_err *err);
/* Drops the node's kept connection (the next connect dials again, without waiting). */
void ctl_kept_forget(ksv_ctl *ctl, const char *name);
/* The node's kept connection failed a request (why): drop it and back off before the
 * redial, as after a failed dial, so a node that answers badly is not redialled at every
 * call. No-op when the node has no kept entry. */
void ctl_kept_failed(ksv_ctl *ctl, const char *name, const char *why);
void ctl_kept_close_all(ksv_ctl *ctl);
/* The wait before reconnect attempt number `failures` (>= 1): min_ms doubled per failure,
 * at most max_ms, times 0.8 + 0.4 * unit (unit in [0,1): the jitter). */
long ctl_backoff_delay_ms(long min_ms, long max_ms, int failures, double unit);
/* Where a local node's engine keeps its state. */
void ctl_local_state_dir(const ksv_node *node, char *out, size_t cap);

/* Builds the engine's PUT body for the model's desired state (revisions with traffic,
 * the stable one and the recent ones kept for rollback). */
int ctl_engine_body(ksv_ctl *ctl, const ksv_model_view *v, ksv_sb *body, ksv_err *err);
/* The same for one node, with storage URIs replaced by their uploaded copies. */
int ctl_engine_body_mapped(ksv_ctl *ctl, const ksv_model_view *v, const ctl_upload *map,
                           size_t n_map, ksv_sb *body, ksv_err *err);
/* "a-00001=90,a-00002=10" */
void ctl_traffic_text(const ksv_model_view *v, char *out, size_t cap);
/* Whether the view's split names the revision, even at 0% (a gated canary starts there,
 * and the engines must load it for their gate). */
bool ctl_model_view_in_split(const ksv_model_view *v, int64_t revision_id);

/* cost.c: stores one imported event when it is a residency event (engine/usage.h);
 * model_ref is "NS/NAME" when the store knows the model on that node, else NULL. */
int ctl_usage_import(ksv_ctl *ctl, const char *node, const char *log_id, json_object *e,
                     const char *model_ref, ksv_err *err);

/* gates.c: PUTs the stored Canary's policy for canary (over stable) to every node of m. */
int ctl_gate_start(ksv_ctl *ctl, const ksv_model_record *m, const char *canary, const char *stable,
                   const char *policy_template, ksv_ctl_result *res, ksv_err *err);
/* Waits until the gated rollout of canary on each of nodes ends (the engines' phase
 * Succeeded or Failed), polling each node's model state, at most timeout_s: 1 when every
 * one succeeded, 0 when one failed or time ran out (why says which, "failed: ..."). */
int ctl_gate_wait_nodes(ksv_ctl *ctl, const char *model, const char *canary,
                        char *const *nodes, size_t n, double timeout_s, char *why, size_t cap);
/* Imports the events of each node of a gated model (one with a stored Canary) before a
 * change computes its split from the store: a gate that promoted or rolled back while no
 * console was connected moved the split on the node, and the store must follow first, or
 * the change would push the old split back. Unreachable nodes are skipped. */
void ctl_gate_catch_up(ksv_ctl *ctl, int64_t model_id);
/* The node holds a model a Canary gates (so it has gate events to report). */
bool ctl_node_has_gate(ksv_ctl *ctl, const char *node);
/* Imports each node's new events into history (and the split, following the gates), the
 * nodes read side by side (ctl->parallel at a time) and written on the caller's thread,
 * in order per node, each event once. -1 with err naming the first node that could not
 * be read or stored; the others are imported all the same. */
int ctl_gate_import_nodes(ksv_ctl *ctl, char *const *nodes, size_t n, size_t *imported,
                          ksv_err *err);
/* The event import over a connection the caller holds (a console's kept probe link). */
int ctl_gate_import_over(ksv_ctl *ctl, const char *node, ksv_engine_client *client,
                         size_t *imported, ksv_err *err);

#endif
