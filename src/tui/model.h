/* model.h: the screen model of ksv-top, with no curses and no network in it.
 *
 * A snapshot is what the worker thread saw at one moment (models with their revisions and
 * live figures, nodes, history); once published it is immutable and shared by reference
 * count, so the UI thread reads it without locks. The view is the UI's own state on top of
 * it: filter, sort, expanded models, the cursor, the canary slider. tui_view_rebuild turns
 * (snapshot, view) into the rows on screen. Unit-tested without a terminal
 * (tests/test_tui_model.c). */
#ifndef KSV_TUI_MODEL_H
#define KSV_TUI_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/control.h" /* ksv_cost_report (control/cost.h) */

#define TUI_SPARK_LEN 120       /* samples of history kept per model */
#define TUI_KEY_LEN 160         /* "namespace/name" */

typedef struct tui_figs {
    bool has_rate;              /* QPS and ERR% had >= 2 scrapes in the window */
    double qps;
    double err_pct;             /* NaN: no requests */
    double p50_ms, p99_ms;      /* NaN: no data */
    /* A generative revision's (OpenAI routes): time to first token and generated tokens
     * per second; has_llm false, both NaN for any other. */
    bool has_llm;
    double ttft_p99_ms, tokens_per_s;
} tui_figs;

typedef struct tui_rev {
    char name[96];
    char runtime[32];
    char storage_uri[512];
    int64_t seq;
    int percent;                /* desired share */
    bool stable, canary;
    int64_t created_ms, rolled_out_ms;
    char state[24];             /* as the engines report it: "ready", "loading", ... */
    char serving_runtime[32];   /* as the engines report it: what `auto` chose */
    long long memory_bytes;     /* summed over nodes; -1: no engine reported it */
    long long cold_starts;      /* summed over nodes; -1: no engine reported it */
    double cold_p99_ms;         /* the slowest node's P99 cold start; -1: none */
    long long replicas;         /* summed over nodes; -1: no engine reported it */
    /* Its model's download while nodes fetch it: bytes, totals and rates summed over
     * them; download_nodes 0: none runs. */
    long long download_bytes, download_total;  /* total -1: some node does not know it */
    double download_rate;
    size_t download_nodes;
    tui_figs figs;
} tui_rev;

/* An external runtime's last output lines on one node (focus model only). */
#define TUI_LOG_LINES 8
typedef struct tui_runtime_log {
    char node[64];
    char revision[96];
    char state[24];
    long long restarts;
    size_t n_lines;
    char lines[TUI_LOG_LINES][256];  /* oldest first, unsanitized: tui_put filters */
} tui_runtime_log;

typedef struct tui_req_error {
    double unix_time;
    int status;
    char node[64];
    char request_id[64];
    char revision[96];
    char message[256];
} tui_req_error;

/* A model's release gate as one of its nodes reports it (the first node that has one). */
typedef struct tui_gate {
    bool present;
    char node[64];
    ksv_probe_gate state;       /* as the engine sent it */
} tui_gate;

#define TUI_WAVE_LINES 8
#define TUI_PULL_LINES 4

typedef struct tui_model {
    char key[TUI_KEY_LEN];      /* "namespace/name" */
    char ns[64];
    char name[96];
    char nodes[128];            /* "a,b" */
    size_t n_nodes;
    size_t ready_nodes;         /* nodes serving every revision with traffic, ready */
    bool stale;                 /* a node of it has no fresh figures */
    int64_t stale_age_ms;       /* age of the oldest node's figures when stale */
    tui_rev *revs;              /* oldest first */
    size_t n_revs;
    int stable, canary;         /* indexes into revs, -1 none */
    tui_figs figs;
    double qps_hist[TUI_SPARK_LEN], p99_hist[TUI_SPARK_LEN]; /* oldest first */
    size_t n_hist;
    int qps_trend;              /* +1 up, -1 down, 0 steady since the last refresh */
    int64_t created_ms;
    char *spec_json;            /* the document as last applied */
    tui_req_error *errors;      /* recent failed requests, newest first (focus model only) */
    size_t n_errors;
    tui_runtime_log *logs;      /* external runtimes' output (focus model only) */
    size_t n_logs;
    tui_gate gate;              /* the engines' release gate, when one rolls it out */
    /* The newest waved rollout (ksv.io/waves), focus model only: "REV in M waves" and one
     * line per wave, "wave K/M PHASE: nodes". n_wave_lines 0: none. */
    char waves_title[96];
    char wave_lines[TUI_WAVE_LINES][240];
    size_t n_wave_lines;
    /* Pulls of it (`ksv pull`) queued, running or failed on its nodes: "node a: URI
     * 0.2/0.5 MB (0.1 MB/s)", one a line, unsanitized (tui_put filters). */
    char pull_lines[TUI_PULL_LINES][300];
    size_t n_pull_lines;
} tui_model;

typedef struct tui_gpu {
    char name[64];
    double utilization;         /* 0..1, -1 unknown */
    long long mem_used, mem_total;
} tui_gpu;

typedef struct tui_node {
    char name[64];
    char kind[8];
    char address[256];
    bool reachable;
    bool stale;                 /* no answer for longer than the stale limit */
    int64_t age_ms;             /* since the last good answer, -1 never */
    char error[256];
    char version[64];
    double uptime_s;
    int threads, cpus;
    long long inflight;
    double load1;
    size_t n_gpus;
    tui_gpu gpus[8];
    size_t n_models;
    char labels[512];           /* "k=v,k2=v2" sorted by key, "" without labels */
} tui_node;

typedef struct tui_hist_row {
    int64_t at_ms;
    char actor[64];
    char action[32];
    char target[160];           /* model or node */
    char old_value[256];
    char new_value[256];
    char result[256];
} tui_hist_row;

/* A namespace's ResourceQuota with its usage: "count/...: 2/3, requests.memory: 1Gi/2Gi". */
typedef struct tui_quota {
    char ns[64];
    char name[64];
    char request[512];
} tui_quota;

/* One row of the namespaces screen (tui_namespaces). */
typedef struct tui_ns_row {
    char ns[64];
    size_t models, revisions, scaled_to_zero;
    long long memory_bytes;     /* held by the loaded revisions, over nodes; -1 unknown */
    long long cold_starts;      /* -1 unknown */
    double qps;
    bool has_qps;
    char quota[512];            /* its quotas' usage, "" when it has none */
} tui_ns_row;

typedef struct tui_snapshot {
    atomic_int refs;
    uint64_t seq;
    int64_t taken_ms;
    double interval_s;
    tui_model *models;          /* ordered by key */
    size_t n_models;
    tui_node *nodes;
    size_t n_nodes;
    tui_hist_row *history;      /* newest first */
    size_t n_history;
    tui_quota *quotas;          /* by namespace, name */
    size_t n_quotas;
    ksv_cost_report cost;       /* the last 24 h from the stored residency events */
    bool has_cost;
    char cost_error[256];
    char error[256];            /* "" or why the store could not be read */
} tui_snapshot;

tui_snapshot *tui_snapshot_new(void);
tui_snapshot *tui_snapshot_ref(tui_snapshot *s);
void tui_snapshot_unref(tui_snapshot *s);
const tui_model *tui_snapshot_find(const tui_snapshot *s, const char *key);
/* Totals over models: the sum of QPS of models with data; *has false when none had any. */
double tui_snapshot_total_qps(const tui_snapshot *s, bool *has);
size_t tui_snapshot_nodes_up(const tui_snapshot *s);

/* One row per namespace of the snapshot's models and quotas, by name; *out is malloc'd.
 * Returns the count (0 on allocation failure, with *out NULL). */
size_t tui_namespaces(const tui_snapshot *s, tui_ns_row **out);

/* ---- the view ---- */

typedef enum { TUI_SORT_NAME, TUI_SORT_QPS, TUI_SORT_P99, TUI_SORT_ERR, TUI_SORT_AGE,
               TUI_SORT_COUNT } tui_sort_key;

const char *tui_sort_name(tui_sort_key k);

typedef struct tui_row {
    int model;                  /* index into the snapshot's models */
    int ord;                    /* index into the view's order (the model's key) */
    int rev;                    /* -1: the model's own row; else a revision row */
} tui_row;

#define TUI_MAX_EXPANDED 64
#define TUI_RESORT_DELAY_MS 3000

typedef struct tui_view {
    char filter[64];            /* substring of "ns/name", case-insensitive; '!' inverts */
    tui_sort_key sort;
    bool descending;
    char expanded[TUI_MAX_EXPANDED][TUI_KEY_LEN];
    size_t n_expanded;
    /* The order models are shown in, kept while the operator acts (rows do not jump). */
    char (*order)[TUI_KEY_LEN];
    size_t n_order;
    bool force_sort;            /* sort at the next rebuild whatever the delay */
    int64_t last_key_ms;
    tui_row *rows;
    size_t n_rows;
    size_t cursor;
    size_t top;                 /* first row on screen */
} tui_view;

void tui_view_init(tui_view *v);
void tui_view_free(tui_view *v);
bool tui_filter_match(const char *filter, const tui_model *m);

/* The nodes screen's rows: the indexes into s->nodes of the nodes that filter keeps, grouped
 * by the value of label group_key ("" or NULL: no grouping; nodes without it last), by
 * name within a group. filter: with '=' a label selector (common/labels.h: region=eu,
 * gpu!=t4, ...), else a substring of the name ('!' inverts); a malformed selector keeps
 * every node and says why in why (else why is ""). Returns the number of rows in order
 * (which holds s->n_nodes entries). */
size_t tui_nodes_view(const tui_snapshot *s, const char *filter, const char *group_key,
                      size_t *order, char *why, size_t why_cap);
/* Node n's value of label key into buf ("" when absent); false when it has none. */
bool tui_node_label(const tui_node *n, const char *key, char *buf, size_t cap);
/* The label key after `current` in the snapshot's nodes (sorted, each once), "" after the
 * last: the nodes screen's `L` cycles no grouping, then each key. */
void tui_next_group_key(const tui_snapshot *s, const char *current, char *out, size_t cap);
/* Rebuilds v->rows for s: filter, order (re-sorted only when force_sort is set or no key
 * came for TUI_RESORT_DELAY_MS), expansion; the cursor stays on the same model/revision. */
int tui_view_rebuild(tui_view *v, const tui_snapshot *s, int64_t now_ms);
bool tui_view_is_expanded(const tui_view *v, const char *key);
void tui_view_toggle_expanded(tui_view *v, const char *key);
/* The model under the cursor (NULL when none). */
const tui_model *tui_view_current(const tui_view *v, const tui_snapshot *s);
void tui_view_move(tui_view *v, long delta);
/* Keeps the cursor visible in a window of `height` rows. */
void tui_view_scroll(tui_view *v, size_t height);

/* ---- the canary slider ---- */

typedef struct tui_slider {
    bool active;
    char key[TUI_KEY_LEN];
    int live;                   /* canary percent when the slider was picked up */
    int pending;
} tui_slider;

/* Clamps to 0..100. */
int tui_slider_clamp(long pct);
/* Moves the pending canary share of model m by delta (starting from the live share when
 * the slider is not on m). Returns false when m has no canary (nothing moves). */
bool tui_slider_move(tui_slider *sl, const tui_model *m, int delta);
void tui_slider_cancel(tui_slider *sl);
/* The canary's live percent, or -1 when m has no canary. */
int tui_model_canary_percent(const tui_model *m);
/* "80/20" (stable/canary), "100" with one revision serving; pending >= 0 adds "→75/25"
 * ("->" without UTF-8). */
void tui_split_text(const tui_model *m, int pending, bool utf8, char *out, size_t cap);

/* The rollback target as docs/OPERATIONS.md's canary runbook says: the stable revision while a canary holds traffic,
 * else the revision rolled out before the stable one. -1 when there is none. */
int tui_rollback_target(const tui_model *m);

#endif
