/* store.h: ksv's desired state in SQLite. Nothing outside src/store opens the database;
 * the CLI `ksv` and the console `ksv-top` read and change it only through this API.
 *
 * Schema (version KSV_STORE_SCHEMA_VERSION, kept in PRAGMA user_version; application_id 'ksv1'):
 *   nodes           one row per engine host: unique name, kind local|http|ssh, address as the
 *                   operator wrote it, token file, ssh options, last status seen.
 *   models          one row per (namespace, name): the current normalized InferenceService
 *                   spec (JSON object), annotations (JSON object), the stable ("rolled out")
 *                   revision. Deleting a model deletes its rows everywhere except history.
 *   placement       (model, node): which nodes serve a model. One model *name* per node:
 *                   engines address models by name, so two namespaces cannot share a node
 *                   with the same name (UNIQUE(node, model name)). A node with models placed
 *                   on it cannot be removed.
 *   revisions       immutable specs, numbered per model from 1 (unique(model, seq)), named
 *                   "NAME-00001"; spec_sha256 is the sha256 of the canonical spec JSON (keys
 *                   sorted, no whitespace) so an unchanged spec is found, not duplicated.
 *                   rolled_out_at is set the first time a revision becomes stable.
 *   traffic         a model's split: (revision, percent) rows, each revision of that model,
 *                   percents in 0..100 summing to 100, replaced as a whole.
 *   history         append-only log of every change (triggers refuse UPDATE and DELETE);
 *                   the model is kept as "namespace/name" text so entries outlive the model.
 *   serving_runtimes  ServingRuntime (namespace) and ClusterServingRuntime (namespace '')
 *                   documents as applied, one row per (kind, namespace, name).
 *   usage_events    what each node's engine held and when (residency events from its event
 *                   log, with their figures), imported once each, for `ksv cost`.
 *   metric_samples  raw observations, kept 24 h; metric_rollups: the same summed per minute,
 *                   kept 30 days. A sample is an *increment* over (at - span, at], not a
 *                   cumulative counter: the scraper subtracts its previous scrape (a decrease
 *                   is a counter reset). Increments make rollups exact sums.
 *
 * Conventions:
 *   - Functions return 0 on success, -1 with *err filled (status 400 bad input, 404 unknown,
 *     409 conflict, 500 database or corrupt row, 503 database busy). Lookups that may
 *     legitimately find nothing (`*_find`, `*_latest`, `*_previous`) return 1 found, 0 none.
 *   - Times are int64 milliseconds since the Unix epoch (UTC).
 *   - Row structs filled by the store own their strings: release one with `ksv_X_clear`, a
 *     list with `ksv_X_list_free`. Structs passed in are only read; the store copies.
 *   - Names are stored verbatim (any bytes but NUL, at most 253); namespaces and model names
 *     also exclude '/', which separates them in "NAMESPACE/NAME".
 *   - JSON columns hold strict RFC 8259 JSON (UTF-8; json-c's leniencies such as single
 *     quotes are refused), so they can be embedded as-is in `-o json` output.
 *   - Every value reaches SQLite through bound parameters. Rows read back are validated
 *     (types, ranges, JSON), so a tampered database gives an error, never a crash.
 *   - Each write is atomic. ksv_store_begin/commit/rollback group several writes into one
 *     transaction (taking the write lock up front); writes inside it join it.
 *   - A handle is used by one thread at a time; open one handle per thread. Never carry a
 *     handle across fork().
 *   - The database file is in WAL mode with synchronous=FULL, foreign_keys=ON and a 5 s busy
 *     timeout; its parent directories are created (mode 0700) when missing. */
#ifndef KSV_STORE_STORE_H
#define KSV_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/labels.h"

#define KSV_STORE_SCHEMA_VERSION 7
#define KSV_STORE_RAW_RETENTION_MS (24LL * 3600 * 1000)
#define KSV_STORE_ROLLUP_RETENTION_MS (30LL * 24 * 3600 * 1000)
#define KSV_STORE_ROLLUP_STEP_MS 60000LL
/* Largest fine-histogram bucket index + 1 a sample may carry. */
#define KSV_STORE_MAX_BUCKETS 65536

typedef struct ksv_store ksv_store;

/* ---- serving runtimes ---- */

typedef struct ksv_runtime_row {
    bool cluster;
    char *ns;                     /* "" for a ClusterServingRuntime */
    char *name;
    char *spec_json;              /* the document as applied (a JSON object) */
    int64_t updated_at_ms;
} ksv_runtime_row;

typedef struct ksv_runtime_rows {
    ksv_runtime_row *items;
    size_t n;
} ksv_runtime_rows;

/* Inserts or replaces one document; *changed is false when it was stored already. */
int ksv_store_runtime_put(ksv_store *s, bool cluster, const char *ns, const char *name,
                          const char *spec_json, bool *changed, ksv_err *err);
/* Every stored runtime, namespaced ones first, by namespace and name. */
int ksv_store_runtime_list(ksv_store *s, ksv_runtime_rows *out, ksv_err *err);
void ksv_runtime_rows_free(ksv_runtime_rows *rows);

/* ---- database ---- */

/* Opens (creating when missing) and migrates the database at path. A database written by a
 * newer ksv is refused. On failure *out is NULL. */
int ksv_store_open(const char *path, ksv_store **out, ksv_err *err);
/* Rolls back an open explicit transaction, then closes. NULL is a no-op. */
void ksv_store_close(ksv_store *s);
const char *ksv_store_path(const ksv_store *s);
int ksv_store_schema_version(ksv_store *s, int *version, ksv_err *err);

/* One explicit transaction at a time per handle (a second begin is 409). */
int ksv_store_begin(ksv_store *s, ksv_err *err);
int ksv_store_commit(ksv_store *s, ksv_err *err);
int ksv_store_rollback(ksv_store *s, ksv_err *err);
bool ksv_store_in_transaction(const ksv_store *s);
/* Rolls back the open transaction, if there is one, for an error path: what made the caller
 * give up is the error it reports, so a failure here is ignored. */
void ksv_store_abandon(ksv_store *s);
/* A number that changes whenever another connection (another process, or another handle
 * of this one) has committed a change since the last call on this handle: a reader that
 * sees it unchanged can keep what it read (SQLite's PRAGMA data_version). */
int ksv_store_data_version(ksv_store *s, int64_t *version, ksv_err *err);

/* ---- nodes ---- */

typedef enum { KSV_NODE_LOCAL, KSV_NODE_HTTP, KSV_NODE_SSH } ksv_node_kind;

typedef struct ksv_node {
    int64_t id;
    char *name;
    ksv_node_kind kind;
    char *address;          /* "local", "http://HOST:PORT", "ssh://[USER@]HOST[:PORT]" */
    char *token_file;       /* NULL: none given */
    char *ssh_identity;     /* NULL: unset (ssh nodes only, not enforced) */
    char *ssh_known_hosts;  /* NULL: unset */
    int engine_port;        /* 0: the default (8080) */
    char *engine_path;      /* NULL: unset */
    char *engine_state_dir; /* NULL: unset */
    int64_t created_at_ms;
    int64_t last_seen_ms;   /* 0: never reached */
    char *last_error;       /* NULL: the last contact succeeded (or none yet) */
    char *engine_version;   /* NULL: unknown */
    /* Labels (common/labels.h), sorted by key; node_add stores them with the node. */
    char **label_keys;
    char **label_values;
    size_t n_labels;
} ksv_node;

typedef struct ksv_node_list {
    ksv_node *items;
    size_t n;
} ksv_node_list;

const char *ksv_node_kind_name(ksv_node_kind kind);
/* "local"|"http"|"ssh" to kind; -1 when unknown. */
int ksv_node_kind_parse(const char *name, ksv_node_kind *out);

/* Reads name, kind, address, token_file, ssh_*, engine_*; sets created_at. 409 when the
 * name exists. *id may be NULL. */
int ksv_store_node_add(ksv_store *s, const ksv_node *node, int64_t *id, ksv_err *err);
int ksv_store_node_get(ksv_store *s, const char *name, ksv_node *out, ksv_err *err);
int ksv_store_node_list(ksv_store *s, ksv_node_list *out, ksv_err *err);
/* 404 when unknown, 409 while models are placed on it (the message names them). */
int ksv_store_node_remove(ksv_store *s, const char *name, ksv_err *err);
/* Records a contact: error NULL means it succeeded at seen_ms (last_seen = seen_ms,
 * last_error cleared, engine_version set when non-NULL); otherwise last_error = error and
 * last_seen is kept. */
int ksv_store_node_set_status(ksv_store *s, const char *name, int64_t seen_ms,
                              const char *error, const char *engine_version, ksv_err *err);
/* Sets (values[i] non-NULL) or removes (NULL) each keys[i] of the node's labels, all or none:
 * 404 unknown node, 400 a key or value common/labels.h refuses. */
int ksv_store_node_label(ksv_store *s, const char *name, const char *const *keys,
                         const char *const *values, size_t n, ksv_err *err);
/* The node's value of label key, NULL when it has none. */
const char *ksv_node_label(const ksv_node *n, const char *key);
/* Whether the node's labels satisfy sel. */
bool ksv_node_selected(const ksv_node *n, const ksv_selector *sel);
void ksv_node_clear(ksv_node *n);
void ksv_node_list_free(ksv_node_list *l);

/* ---- models ---- */

/* A model and a revision as the operator's history stores them: "record" keeps them apart
 * from the engine's live ksv_engine_model / ksv_engine_revision (src/engine/registry.h). */
typedef struct ksv_model_record {
    int64_t id;
    char *ns;                 /* namespace */
    char *name;
    char *spec_json;          /* the normalized InferenceService, a JSON object */
    char *annotations_json;   /* a JSON object */
    char **nodes;             /* placement, sorted by node name */
    size_t n_nodes;
    int64_t stable_revision_id; /* 0: none rolled out yet */
    int64_t created_at_ms;
    int64_t updated_at_ms;
} ksv_model_record;

typedef struct ksv_model_record_list {
    ksv_model_record *items;
    size_t n;
} ksv_model_record_list;

/* Creates or updates the model (ns, name): spec, annotations (NULL: "{}") and placement
 * (replaced by nodes[0..n_nodes), each a registered node). Namespace and name are non-empty,
 * at most 253 bytes, without '/'. *id and *created may be NULL. */
int ksv_store_model_upsert(ksv_store *s, const ksv_model_record *in, int64_t *id, bool *created,
                           ksv_err *err);
int ksv_store_model_get(ksv_store *s, const char *ns, const char *name, ksv_model_record *out,
                        ksv_err *err);
int ksv_store_model_get_by_id(ksv_store *s, int64_t id, ksv_model_record *out, ksv_err *err);
/* ns NULL: every namespace. Ordered by namespace, then name. */
int ksv_store_model_list(ksv_store *s, const char *ns, ksv_model_record_list *out, ksv_err *err);
/* Deletes the model with its placement, revisions and traffic; history stays. */
int ksv_store_model_delete(ksv_store *s, int64_t id, ksv_err *err);
/* ref is "NAME" or "NAMESPACE/NAME". A bare NAME looks in default_ns when it is non-NULL,
 * else across namespaces, where it must be unique (409 listing the namespaces otherwise). */
int ksv_store_model_resolve(ksv_store *s, const char *ref, const char *default_ns,
                            ksv_model_record *out, ksv_err *err);
void ksv_model_record_clear(ksv_model_record *m);
void ksv_model_record_list_free(ksv_model_record_list *l);

/* ---- revisions ---- */

typedef struct ksv_revision_record {
    int64_t id;
    int64_t model_id;
    int64_t seq;              /* 1, 2, ... per model */
    char *name;               /* MODELNAME-00001 */
    char *spec_json;
    char spec_sha256[65];     /* lowercase hex of the canonical spec */
    char *runtime;
    char *storage_uri;
    int64_t created_at_ms;
    int64_t rolled_out_at_ms; /* 0: never stable */
} ksv_revision_record;

typedef struct ksv_revision_record_list {
    ksv_revision_record *items;
    size_t n;
} ksv_revision_record_list;

/* sha256 hex of spec_json's canonical form (objects' keys sorted bytewise, no whitespace,
 * integral numbers below 2^53 as integers, other numbers in shortest round-trip form).
 * 400 when spec_json is not JSON. */
int ksv_store_spec_hash(const char *spec_json, char hex[65], ksv_err *err);
/* Creates the model's next revision (seq = last + 1). runtime and storage_uri non-empty. */
int ksv_store_revision_create(ksv_store *s, int64_t model_id, const char *spec_json,
                              const char *runtime, const char *storage_uri,
                              ksv_revision_record *out, ksv_err *err);
int ksv_store_revision_get(ksv_store *s, int64_t model_id, const char *name,
                           ksv_revision_record *out, ksv_err *err);
int ksv_store_revision_get_by_id(ksv_store *s, int64_t id, ksv_revision_record *out, ksv_err *err);
/* Ordered by seq, oldest first. */
int ksv_store_revision_list(ksv_store *s, int64_t model_id, ksv_revision_record_list *out,
                            ksv_err *err);
/* The newest revision whose spec hash is sha256_hex: 1 found (out filled), 0 none. */
int ksv_store_revision_find_by_hash(ksv_store *s, int64_t model_id, const char *sha256_hex,
                                    ksv_revision_record *out, ksv_err *err);
/* The model's newest revision: 1 found, 0 the model has none. */
int ksv_store_revision_latest(ksv_store *s, int64_t model_id, ksv_revision_record *out,
                              ksv_err *err);
void ksv_revision_record_clear(ksv_revision_record *r);
void ksv_revision_record_list_free(ksv_revision_record_list *l);

/* ---- traffic and the stable revision ---- */

typedef struct ksv_traffic_entry {
    int64_t revision_id;
    char *revision_name;      /* filled by ksv_store_traffic_get; ignored by _set */
    int percent;              /* 0..100 */
} ksv_traffic_entry;

typedef struct ksv_traffic {
    ksv_traffic_entry *items; /* ordered by revision seq */
    size_t n;                 /* 0: no split set yet */
} ksv_traffic;

/* Replaces the model's whole split: n >= 1 distinct revisions of this model, percents in
 * 0..100 summing to 100 (400 otherwise). */
int ksv_store_traffic_set(ksv_store *s, int64_t model_id, const ksv_traffic_entry *entries,
                          size_t n, ksv_err *err);
int ksv_store_traffic_get(ksv_store *s, int64_t model_id, ksv_traffic *out, ksv_err *err);
void ksv_traffic_free(ksv_traffic *t);

/* *revision_id = 0 when none is rolled out yet. */
int ksv_store_stable_get(ksv_store *s, int64_t model_id, int64_t *revision_id, ksv_err *err);
/* Makes revision_id (a revision of this model) the rolled-out one; stamps its
 * rolled_out_at the first time. */
int ksv_store_stable_set(ksv_store *s, int64_t model_id, int64_t revision_id, ksv_err *err);
/* The revision rolled out before the current stable one: the once-rolled-out revision with
 * the highest seq below the stable's. 1 found, 0 none (or no stable revision). */
int ksv_store_stable_previous(ksv_store *s, int64_t model_id, ksv_revision_record *out,
                              ksv_err *err);

/* ---- release gates ---- */

/* The Canary gating a model: its name and the engine policy JSON (without canary/stable).
 * get: 1 found (caller frees both), 0 none. */
int ksv_store_canary_set(ksv_store *s, int64_t model_id, const char *name, const char *policy,
                         ksv_err *err);
int ksv_store_canary_get(ksv_store *s, int64_t model_id, char **name, char **policy,
                         ksv_err *err);
/* How far a node's event log was read into history: 1 found (*log_id caller frees), 0 none. */
int ksv_store_event_cursor_get(ksv_store *s, const char *node, char **log_id, int64_t *seq,
                               ksv_err *err);
int ksv_store_event_cursor_set(ksv_store *s, const char *node, const char *log_id, int64_t seq,
                               ksv_err *err);

/* ---- residency (usage) events, for cost ---- */

typedef struct ksv_usage_event {
    char *node;
    char *log_id;
    int64_t seq;
    int64_t at_ms;
    char *kind;               /* model-load, cold-start, model-unload, scale-to-zero,
                               * engine-start */
    char *ns;                 /* NULL: the model was not in the store when imported */
    char *model;              /* the engine's model name; NULL for engine-start */
    char *revision;
    char *reason;             /* NULL: none given */
    int64_t memory_bytes, gpu_memory_bytes, requests;
    double idle_seconds;
} ksv_usage_event;

typedef struct ksv_usage_event_list {
    ksv_usage_event *items;
    size_t n;
} ksv_usage_event_list;

/* Adds one event; one already stored (same node, log and seq) is left as it is. */
int ksv_store_usage_add(ksv_store *s, const ksv_usage_event *e, ksv_err *err);
/* Every stored event, by node, then time, then seq. */
int ksv_store_usage_list(ksv_store *s, ksv_usage_event_list *out, ksv_err *err);
void ksv_usage_event_clear(ksv_usage_event *e);
void ksv_usage_event_list_free(ksv_usage_event_list *l);

/* ---- history ---- */

typedef struct ksv_history_entry {
    int64_t id;
    int64_t at_ms;            /* on append, 0: now */
    char *actor;              /* required, e.g. $USER */
    char *action;             /* required: "apply", "set-traffic", "node add", ... */
    char *model;              /* "namespace/name" or NULL */
    char *node;               /* for node actions, or NULL */
    char *old_value;          /* NULL: none */
    char *new_value;          /* NULL: none */
    char *result;             /* required: "ok", "failed: ..." */
    char *node_results_json;  /* NULL or a JSON object {"node": "result", ...} */
    char *reason;             /* why (--reason); NULL: none given */
} ksv_history_entry;

typedef struct ksv_history_list {
    ksv_history_entry *items; /* newest first */
    size_t n;
} ksv_history_list;

int ksv_store_history_append(ksv_store *s, const ksv_history_entry *e, int64_t *id,
                             ksv_err *err);
/* model NULL: all entries; limit 0: no limit. Newest first. */
int ksv_store_history_list(ksv_store *s, const char *model, size_t limit,
                           ksv_history_list *out, ksv_err *err);
void ksv_history_entry_clear(ksv_history_entry *e);
void ksv_history_list_free(ksv_history_list *l);

/* ---- metrics ---- */

typedef enum { KSV_METRICS_RAW, KSV_METRICS_MINUTE } ksv_metrics_resolution;

typedef struct ksv_metric_sample {
    int64_t at_ms;            /* end of the interval, > 0 */
    int64_t span_ms;          /* its length, > 0 (rollups: KSV_STORE_ROLLUP_STEP_MS) */
    char *node;
    char *model;              /* the engine's model name */
    char *revision;
    uint64_t requests_2xx;    /* increments of ksv_requests_total by code class */
    uint64_t requests_4xx;
    uint64_t requests_5xx;
    uint64_t requests_other;
    double latency_sum_s;     /* increment of ksv_request_duration_seconds_sum */
    uint64_t *buckets;        /* increments per fine bucket, indexed as the engine numbers */
    size_t n_buckets;         /* them; 0..KSV_STORE_MAX_BUCKETS */
} ksv_metric_sample;

typedef struct ksv_metric_list {
    ksv_metric_sample *items; /* ordered by at_ms, node, model, revision */
    size_t n;
} ksv_metric_list;

typedef struct ksv_metrics_compact_stats {
    size_t rolled_up;         /* raw samples folded into minute rollups */
    size_t deleted_raw;
    size_t deleted_rollups;
} ksv_metrics_compact_stats;

/* Inserts samples[0..n) in one transaction. */
int ksv_store_metrics_insert(ksv_store *s, const ksv_metric_sample *samples, size_t n,
                             ksv_err *err);
/* Samples with from_ms < at_ms <= to_ms; node, model, revision NULL match any. */
int ksv_store_metrics_query(ksv_store *s, ksv_metrics_resolution res, const char *node,
                            const char *model, const char *revision, int64_t from_ms,
                            int64_t to_ms, ksv_metric_list *out, ksv_err *err);
/* Folds every raw sample of a finished minute (relative to now_ms) into its rollup, then
 * deletes raw samples older than 24 h and rollups older than 30 days. stats may be NULL. */
int ksv_store_metrics_compact(ksv_store *s, int64_t now_ms, ksv_metrics_compact_stats *stats,
                              ksv_err *err);
void ksv_metric_sample_clear(ksv_metric_sample *m);
void ksv_metric_list_free(ksv_metric_list *l);

/* ---- quotas (ResourceQuota per namespace) ---- */

typedef struct ksv_quota {
    int64_t id;
    char *ns;
    char *name;
    int64_t count;                /* count/inferenceservices...; -1: not limited */
    int64_t memory_bytes;         /* requests.memory; -1: not limited */
    int64_t gpu;                  /* requests.nvidia.com/gpu; -1: not limited */
    int64_t created_at_ms, updated_at_ms;
} ksv_quota;

typedef struct ksv_quota_list {
    ksv_quota *items;
    size_t n;
} ksv_quota_list;

void ksv_quota_clear(ksv_quota *q);
void ksv_quota_list_free(ksv_quota_list *l);
/* Creates or replaces the quota ns/name (its limits; created_at is kept). */
int ksv_store_quota_put(ksv_store *s, const ksv_quota *q, ksv_err *err);
/* Quotas of namespace ns (NULL: all), ordered by namespace and name. */
int ksv_store_quota_list(ksv_store *s, const char *ns, ksv_quota_list *out, ksv_err *err);

#endif
