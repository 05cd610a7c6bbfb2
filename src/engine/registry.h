/* registry.h: the engine's models, their revisions and the live traffic split.
 *
 * Concurrency. The request path takes the registry's read lock only to pick a revision
 * and bump that revision's in-flight counter; prediction runs outside any lock. Structural
 * changes (admin API, loader, janitor) take the write lock, and nothing is freed or
 * unloaded while a revision's in-flight counter is non-zero, so a request that got a
 * route may use it without further locking until ksv_registry_finish().
 *
 * Lifecycle of a revision: loading -> ready -> draining -> standby -> unloaded, or failed.
 * A revision gets traffic only once loaded and warmed (the runtime's load does one
 * inference). Until every revision the desired split names is ready, the previous split
 * keeps serving. A revision that loses all its traffic drains its in-flight requests,
 * then stays loaded (standby) for the model's rollback window, then is unloaded; traffic
 * sent back to an unloaded revision reloads it first. */
#ifndef KSV_ENGINE_REGISTRY_H
#define KSV_ENGINE_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/histogram.h"
#include "common/strbuf.h"
#include "engine/autoscaler.h"
#include "engine/batcher.h"
#include "engine/infer_stats.h"
#include "engine/events.h"
#include "engine/llm_stats.h"
#include "engine/model_spec.h"
#include "engine/pulls.h"
#include "engine/runtime.h"
#include "engine/scale_to_zero.h"

typedef enum {
    KSV_REV_LOADING,
    KSV_REV_READY,
    KSV_REV_DRAINING,
    KSV_REV_STANDBY,
    KSV_REV_UNLOADED,
    KSV_REV_FAILED,
    KSV_REV_SCALED_TO_ZERO,       /* min_replicas 0, idle: unloaded, still in the split */
} ksv_rev_state;

const char *ksv_rev_state_name(ksv_rev_state s);

/* Status codes counted per revision; anything else lands in the last slot. */
enum { KSV_CODE_SLOTS = 9 };
int ksv_code_slot(int status);
int ksv_code_of_slot(int slot); /* 0 for the catch-all slot */

/* "engine" keeps the live, loaded objects apart from the operator's stored
 * ksv_model_record / ksv_revision_record (src/store/store.h). */
typedef struct ksv_engine_model ksv_engine_model;
typedef struct ksv_registry ksv_registry;

typedef struct ksv_engine_revision {
    ksv_revision_spec spec;
    ksv_engine_model *model;
    /* Guarded by the registry lock. */
    ksv_rev_state state;
    const ksv_runtime_ops *ops;
    void *handle;                 /* loaded model, NULL unless loading finished */
    ksv_batcher *batcher;         /* merges concurrent requests; NULL: each predicts alone */
    ksv_model_info info;
    int traffic;                  /* effective percent (what the split uses now) */
    int desired;                  /* percent the operator asked for */
    double load_seconds;
    double idle_since;            /* monotonic seconds when traffic last went to 0 */
    bool loader_busy;             /* the loader thread holds it outside the lock */
    uint64_t fetch_id;            /* its download in the fetch pool; 0: none running */
    ksv_fetch_progress download;  /* that download's progress (valid while fetch_id) */
    char *fetched_path;           /* a finished download, for the next load to take */
    char cache_tree[65];          /* the cache tree it was loaded from, pinned; "" none */
    char error[512];              /* last load failure */
    uint64_t memory_bytes;        /* host memory its load took (measured); 0 unloaded */
    uint64_t last_memory_bytes;   /* what its last load measured, kept after unloading */
    /* SHA-256 of the model bytes its runtime checked at a load, kept after unloading, so
     * that a cold start of the same bytes skips that check (runtime.h). */
    bool has_checked_sha256;
    uint8_t checked_sha256[32];
    bool has_reload_sha256;       /* its runtime's fast-reload copy of those bytes */
    uint8_t reload_sha256[32];
    uint64_t gpu_memory_bytes;    /* GPU memory it holds: declared, or estimated when a
                                   * runtime runs it on the GPU; 0 unloaded */
    ksv_cold_state cold;          /* scale to zero and cold starts (scale_to_zero.h) */
    _Atomic int64_t idle_gap_ns;  /* its model's window: a longer gap between requests is
                                   * idle time (set under the write lock, read by requests) */
    int64_t resident_since_ms;    /* wall ms (registry clock) its residency began; 0: not
                                   * loaded (usage.h) */
    uint64_t requests_at_load;    /* answers() when the residency began */
    ksv_kpa kpa;                  /* its replicas while loaded (autoscaler.h) */
    _Atomic uint64_t refused_at_limit; /* 503s past the queue at replicas x
                                   * containerConcurrency since the autoscaler's last
                                   * sample: demand it must see (as are the queued ones) */
    bool held_warm;               /* a release gate judges it: never scaled to zero,
                                   * evicted or unloaded meanwhile */
    /* Lock-free counters, updated by requests. */
    _Atomic int64_t inflight;
    _Atomic uint64_t codes[KSV_CODE_SLOTS];
    ksv_hist latency;
    ksv_infer_stats stats;        /* Triton's statistics extension (data_plane.c records) */
    /* Mirrored (shadow) requests a release gate copied to it: never in the client-facing
     * series above. rows: answers compared with stable's; diff_rows: those that differed. */
    _Atomic uint64_t mirror_codes[KSV_CODE_SLOTS];
    ksv_hist mirror_latency;
    _Atomic uint64_t mirror_rows, mirror_diff_rows;
    ksv_llm_stats *llm;           /* external runtimes only: token figures (OpenAI routes) */
} ksv_engine_revision;

/* What a request holds between begin and finish. */
typedef struct ksv_route {
    ksv_engine_revision *rev;
    ksv_engine_model *model;
    /* Set when routing answers KSV_ROUTE_COLD or KSV_ROUTE_QUEUE: the revision chosen, and
     * how long the request may wait for it. */
    char cold_revision[KSV_NAME_MAX];
    int cold_timeout_ms;
    int retry_after_s;            /* on a 503: when to come back (0: no advice) */
} ksv_route;

/* ksv_registry_route's answer when the chosen revision is scaled to zero: the request must
 * wait (ksv_registry_cold_wait), then route again. */
#define KSV_ROUTE_COLD 1
/* Its answer when the chosen revision is at its concurrency limit (replicas x
 * containerConcurrency) or others already wait for it: the request waits for a slot
 * (ksv_registry_cold_wait with w->for_capacity), the route fields as for KSV_ROUTE_COLD. */
#define KSV_ROUTE_QUEUE 2

typedef struct ksv_registry_config {
    unsigned workers;             /* predict() worker indexes, one per HTTP thread */
    int gpu;                      /* device for runtimes that use one; -1: CPU only */
    const char *state_file;       /* applied state, rewritten atomically after each change */
    const char *cache_dir;        /* where http(s) models are fetched to */
    const char *reload_dir;       /* where runtimes keep fast-reload copies for cold starts
                                   * (emptied at start); NULL: none */
    unsigned fetch_threads;       /* concurrent downloads (0: 4) */
    double fetch_timeout_s;       /* one download's overall deadline; <= 0: none */
    double fetch_stall_s;         /* a download moving under 1 KiB in this long stops */
    uint64_t memory_budget;       /* --memory-budget: host bytes loaded revisions may hold
                                   * (0: no budget); see memory_budget.h */
    uint64_t gpu_memory_budget;   /* --gpu-memory-budget: GPU bytes they may hold (0: none) */
    int load_delay_ms;            /* added to every load: lets tests hold a cold start open
                                   * (KSV_TEST_LOAD_DELAY_MS); 0 in production */
    unsigned long long max_model_bytes; /* largest model downloaded or unpacked; 0: default */
    unsigned long long cache_max; /* cache size cap in bytes; 0: none */
    ksv_event_log *events;        /* where decisions are recorded; NULL: nowhere */
    const ksv_clock *clock;       /* idle windows and residency times; NULL: the real clocks
                                   * (tests move it: see ksv_clock) */
} ksv_registry_config;

int ksv_registry_create(const ksv_registry_config *cfg, ksv_registry **out, ksv_err *err);
/* Stops the lifecycle thread and frees everything; no request may be running. */
void ksv_registry_destroy(ksv_registry *reg);

/* Restores the state file written by a previous run (missing file: nothing to do). */
int ksv_registry_restore(ksv_registry *reg, ksv_err *err);

/* Admin operations; each persists the applied state before returning. Loading is
 * asynchronous: poll ksv_registry_write_model for "traffic_applied". */
int ksv_registry_put(ksv_registry *reg, const ksv_model_spec *spec, ksv_err *err);
int ksv_registry_set_traffic(ksv_registry *reg, const char *model, json_object *body,
                             ksv_err *err);
int ksv_registry_delete(ksv_registry *reg, const char *model, ksv_err *err);
/* The repository extension's unload: takes the model out of serving whatever its origin
 * (command line included) and gives back its spec, so that a later load can put it again.
 * 404 when unknown. */
int ksv_registry_take_out(ksv_registry *reg, const char *model, ksv_model_spec *spec,
                          ksv_err *err);

/* Request path. revision NULL: choose by weight. rng: the caller's per-thread state.
 * On success the route must be given back with ksv_registry_finish. */
int ksv_registry_route(ksv_registry *reg, const char *model, const char *revision,
                       uint64_t *rng, ksv_route *route, ksv_err *err);
/* Queues a request for the cold start of w->model/w->revision (filled from the route) and
 * suspends it through suspend(cookie); with w->for_capacity, for a free slot of that
 * loaded revision instead. Returns 0 when queued (w->wake is called later, exactly once;
 * with outcome KSV_COLD_RETRY and w->granted set when a slot was handed to it); 1 when the
 * revision is no longer cold (or no longer loaded and serving: route again now); -1 with a
 * 503 and *retry_after_s when its queue is full or the engine is closing. */
int ksv_registry_cold_wait(ksv_registry *reg, ksv_cold_waiter *w, void (*suspend)(void *),
                           void *cookie, int *retry_after_s, ksv_err *err);
/* A request resumed with w->granted: its route is that revision, whose slot it holds
 * (give it back with ksv_registry_finish). Clears w->granted. */
void ksv_registry_route_granted(ksv_registry *reg, ksv_cold_waiter *w, ksv_route *route);
/* A granted slot the request never used (its connection ended first): hands it on. */
void ksv_registry_release_grant(ksv_registry *reg, ksv_cold_waiter *w);
/* Shutdown: answers every waiting request and refuses new waiters. */
void ksv_registry_close_cold_queue(ksv_registry *reg);
/* Records the outcome; on error status (>= 400) also into the model's error ring. */
void ksv_registry_finish(ksv_registry *reg, ksv_route *route, int status, double seconds,
                         const char *request_id, const char *message);
/* Counts an error that happened before a revision was chosen (unknown revision...). */
void ksv_registry_record_model_error(ksv_registry *reg, const char *model, int status,
                                     const char *request_id, const char *message);

/* Read side for the HTTP handlers (take the read lock internally). */
bool ksv_registry_all_ready(ksv_registry *reg);
/* 1 ready, 0 known but not ready, -1 unknown (model or revision). */
int ksv_registry_ready(ksv_registry *reg, const char *model, const char *revision);
void ksv_registry_write_model_list(ksv_registry *reg, ksv_sb *sb);
/* V2 model metadata; 404 when unknown. */
int ksv_registry_write_metadata(ksv_registry *reg, const char *model, const char *revision,
                                ksv_sb *sb, ksv_err *err);
/* Admin views. */
void ksv_registry_write_state(ksv_registry *reg, ksv_sb *sb);
/* The engine's pulls (`ksv pull`): fetches into its cache that load nothing. */
ksv_pulls *ksv_registry_pulls(ksv_registry *reg);
int ksv_registry_write_model(ksv_registry *reg, const char *model, ksv_sb *sb, ksv_err *err);
/* The open residencies (usage.h) so far, for `ksv cost`: {"now":T,"revisions":[{"model",
 * "revision","since","memory_bytes","requests","idle_seconds"}]}; times are wall seconds on
 * the registry's clock. Kept out of the state so that the state stays unchanged while
 * nothing changes. */
void ksv_registry_write_usage(ksv_registry *reg, ksv_sb *sb);
int ksv_registry_write_errors(ksv_registry *reg, const char *model, ksv_sb *sb, ksv_err *err);
void ksv_registry_write_histograms(ksv_registry *reg, ksv_sb *sb);
void ksv_registry_write_prometheus(ksv_registry *reg, ksv_sb *sb);
int64_t ksv_registry_total_inflight(ksv_registry *reg);
/* The model cache's figures (see ksv_cache_write_json), or null without a cache. */
void ksv_registry_write_cache(ksv_registry *reg, ksv_sb *sb);
/* Host memory the loaded revisions hold (measured) and --memory-budget (0: none); the same
 * for GPU memory and --gpu-memory-budget. */
void ksv_registry_memory(ksv_registry *reg, uint64_t *used, uint64_t *budget,
                         uint64_t *gpu_used, uint64_t *gpu_budget);
/* What a release gate reads of one revision: where it stands and its counters so far
 * (since the engine started). hist may be NULL when only the counts are wanted. */
typedef struct ksv_rev_sample {
    ksv_rev_state state;
    int traffic;                  /* effective percent now */
    int desired;                  /* percent asked for */
    bool loaded;
    uint64_t ok;                  /* 2xx answers */
    uint64_t total;               /* all answers */
    uint64_t mirror_ok, mirror_total; /* the same for mirrored requests */
    uint64_t mirror_rows, mirror_diff_rows; /* mirrored rows compared, and differing */
    char error[512];              /* last load failure, "" when none */
} ksv_rev_sample;

/* 404 when the model or revision is unknown. */
int ksv_registry_sample(ksv_registry *reg, const char *model, const char *revision,
                        ksv_rev_sample *out, ksv_hist_snap *hist, ksv_hist_snap *mirror_hist,
                        ksv_err *err);
/* Mirroring: copies of the requests other revisions answer go to `revision` (NULL: none)
 * for weight percent of them. */
int ksv_registry_set_mirror(ksv_registry *reg, const char *model, const char *revision,
                            int weight, ksv_err *err);
/* For a request `served` answered: the mirror revision to copy it to (the route holds it
 * until ksv_registry_finish_mirror), or false when none is due. */
bool ksv_registry_mirror_route(ksv_registry *reg, const ksv_route *served, uint64_t *rng,
                               ksv_route *out);
void ksv_registry_finish_mirror(ksv_route *route, int status, double seconds, uint64_t rows,
                                uint64_t diff_rows);
/* The predict() worker index kept for the mirror thread (runtimes are loaded for one more
 * worker than the HTTP threads). */
unsigned ksv_registry_mirror_worker(const ksv_registry *reg);
/* The revision with the largest desired share other than `except` ("" when none). */
int ksv_registry_main_revision(ksv_registry *reg, const char *model, const char *except,
                               char out[KSV_NAME_MAX], ksv_err *err);
/* A release gate holds the revisions it judges warm (hold) or lets them go (!hold): a held
 * revision is never scaled to zero, evicted for the memory budget or unloaded after its
 * rollback window, and holding one that is scaled to zero or unloaded loads it at once
 * (counted as a cold start), so checks measure the model rather than its cold starts and a
 * rollback lands on a loaded stable. *may_scale (may be NULL): its spec allows scale to
 * zero (min_replicas 0). Not persisted: the gate holds again after a restart. 404 unknown. */
int ksv_registry_hold_warm(ksv_registry *reg, const char *model, const char *revision,
                           bool hold, bool *may_scale, ksv_err *err);
/* Gives `canary` weight percent and `stable` the rest, every other revision 0; persisted
 * like a traffic change. 404 unknown, 409 pinned. */
int ksv_registry_set_canary_weight(ksv_registry *reg, const char *model, const char *stable,
                                   const char *canary, int weight, ksv_err *err);
/* A writer that appends fields to each model's admin state (",\"rollout\":{...}"). It is
 * called with the registry's read lock held: it must not call back into the registry. */
typedef void (*ksv_model_state_extra_fn)(void *ctx, const char *model, ksv_sb *sb);
void ksv_registry_set_state_extra(ksv_registry *reg, ksv_model_state_extra_fn fn, void *ctx);

/* The event log the registry's modules record into (NULL when none). */
ksv_event_log *ksv_registry_events(ksv_registry *reg);

/* Calls fn for each revision of `model` (NULL: every model), in order, under the read
 * lock; `revision` non-NULL picks one. fn must not call back into the registry. Returns
 * the number of revisions visited, or -1 with a 404 when the model or revision is
 * unknown. */
typedef void (*ksv_revision_visitor)(void *ctx, const char *model, const ksv_engine_revision *rev,
                                     bool serving);
int ksv_registry_visit(ksv_registry *reg, const char *model, const char *revision,
                       ksv_revision_visitor fn, void *ctx, ksv_err *err);
/* GET /openai/v1/models: the models with a revision whose runtime speaks OpenAI. */
void ksv_registry_write_openai_models(ksv_registry *reg, ksv_sb *sb);
/* An external runtime's last output lines and supervision state
 * (GET /ksv/v1/models/{m}/revisions/{rev}/logs); 404 unknown, 409 not an external one. */
int ksv_registry_write_runtime_logs(ksv_registry *reg, const char *model, const char *revision,
                                    ksv_sb *sb, ksv_err *err);

#endif
