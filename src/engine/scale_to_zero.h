/* scale_to_zero.h: Knative's scale to zero and its activator queue, on one node.
 *
 * A revision whose spec says min_replicas 0 is unloaded (its runtime memory freed, its file
 * left in the cache) once it has had no request for the model's scale_window_s plus
 * scale_down_delay_s plus scale_retention_s. It stays in the traffic split, "cold":
 * readiness and metadata keep answering as for a loaded revision, as KServe's activator
 * makes a scaled-to-zero revision look. The first request for a cold revision asks the
 * lifecycle thread to load it (warm-up inference included) and waits; later ones wait too,
 * up to the model's cold_start_queue of them, each until its revision's timeout (60 s when
 * none). Past the queue a request is answered 503 with Retry-After at once. Nothing waits
 * on a thread: the HTTP layer suspends the connection and the queue resumes it when the
 * load finished (or failed), when the revision left the split, or when the request's
 * deadline passed.
 *
 * The same queue holds requests for a loaded revision that is at its concurrency limit
 * (replicas x containerConcurrency), as Knative's queue-proxy and activator buffer them:
 * "capacity" waiters, first come first served, at most KSV_QUEUE_PER_SLOT per slot of the
 * limit. A slot that frees (a request finished, or the autoscaler added a replica) is
 * handed to the oldest waiter of the revision directly (ksv_cold_grant), so a request that
 * arrives later cannot take it first.
 *
 * Locking: ksv_cold_state.cold and .loading are guarded by the registry lock; the queue by
 * its own mutex, always taken after the registry lock, never before. */
#ifndef KSV_ENGINE_SCALE_TO_ZERO_H
#define KSV_ENGINE_SCALE_TO_ZERO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/histogram.h"
#include "common/strbuf.h"
#include "engine/model_spec.h"

#define KSV_COLD_DEFAULT_TIMEOUT_S 60.0
/* Knative's queue-proxy queues 10 x containerConcurrency requests per pod. */
#define KSV_QUEUE_PER_SLOT 10

/* Why a waiting request was resumed. */
typedef enum {
    KSV_COLD_WAITING,  /* still queued */
    KSV_COLD_RETRY,    /* route again: the revision loaded, failed, or left the split */
    KSV_COLD_TIMEOUT,  /* its deadline passed first */
    KSV_COLD_CLOSED,   /* the engine is shutting down */
} ksv_cold_outcome;

/* One waiting request. Owned by the HTTP layer (it lives in the connection's context);
 * linked into the queue between ksv_cold_enqueue and the wake call. */
typedef struct ksv_cold_waiter {
    struct ksv_cold_waiter *next;
    char model[KSV_NAME_MAX];
    char revision[KSV_NAME_MAX];
    double deadline;                 /* monotonic seconds */
    bool for_capacity;               /* waits for a free slot, not for a cold start */
    void *granted;                   /* capacity: the revision whose slot it was handed
                                      * (counted in its in-flight requests; outcome
                                      * KSV_COLD_RETRY), NULL if none */
    ksv_cold_outcome outcome;        /* written before wake() is called */
    void (*wake)(void *cookie);      /* resumes the request; called once */
    void *cookie;
} ksv_cold_waiter;

/* Per revision; embedded in ksv_engine_revision. */
typedef struct ksv_cold_state {
    bool cold;                       /* in the split, not loaded (registry lock) */
    bool loading;                    /* the lifecycle thread is loading it for a request */
    double failed_at;                /* monotonic: last failed cold load, 0 if none */
    _Atomic int64_t requested_ns;    /* monotonic ns when a request first asked; 0: none */
    _Atomic int64_t last_active_ns;  /* monotonic ns (registry clock) of the last request
                                      * finished or begun, or of the load */
    _Atomic int64_t idle_ns;         /* this residency's idle gaps so far (see touch) */
    _Atomic uint64_t cold_starts;    /* cold loads that finished */
    _Atomic int queue_depth;         /* requests waiting now (queue mutex) */
    _Atomic int capacity_depth;      /* requests waiting for a free slot (queue mutex) */
    ksv_hist duration;               /* first request to ready, per cold start */
} ksv_cold_state;

/* Registry-wide queue of waiting requests. */
typedef struct ksv_cold_queue {
    pthread_mutex_t mu;
    ksv_cold_waiter *head, *tail;    /* oldest first */
    bool closed;                     /* shutting down: no new waiters */
    /* Deadlines are kept by a thread of the queue's own: the lifecycle thread may spend
     * the whole wait inside the load the requests are waiting for. */
    pthread_cond_t cond;             /* a waiter arrived, or stop */
    pthread_t reaper;
    bool reaper_started, stop;
    void (*expire)(void *ctx);       /* calls ksv_cold_expire with the caller's locks */
    void *expire_ctx;
} ksv_cold_queue;

void ksv_cold_queue_init(ksv_cold_queue *q);
/* Starts the deadline thread; expire(ctx) is called whenever a waiter's deadline may have
 * passed. Returns 0 or -1. */
int ksv_cold_queue_start(ksv_cold_queue *q, void (*expire)(void *ctx), void *ctx);
/* Stops the deadline thread (if started) and frees the queue. */
void ksv_cold_queue_destroy(ksv_cold_queue *q);

void ksv_cold_state_init(ksv_cold_state *c, int64_t now_ns);
/* Marks the revision busy at now_ns (request begun or finished); lock-free. A gap since
 * the last request of at least idle_gap_ns (the model's window) counts whole as idle time
 * of the residency: "loaded with no traffic" in `ksv cost`. Shorter gaps are the ordinary
 * spacing of traffic. (A single request running longer than the window would count as
 * idle too.) */
void ksv_cold_touch(ksv_cold_state *c, int64_t now_ns, int64_t idle_gap_ns);
/* A residency (a load) begins at now_ns: no idle time yet. */
void ksv_cold_residency_start(ksv_cold_state *c, int64_t now_ns);
/* Idle time of the residency up to now_ns, the open gap included when it is long enough. */
int64_t ksv_cold_idle_ns(const ksv_cold_state *c, int64_t now_ns, int64_t idle_gap_ns);
/* Notes that a request asks for a cold start (the first one's time is kept). */
void ksv_cold_request(ksv_cold_state *c);
/* Counts a finished cold start; its duration runs from the first request's ask. */
void ksv_cold_started(ksv_cold_state *c);
/* Seconds since the last request; monotonic now given. */
double ksv_cold_idle_seconds(const ksv_cold_state *c, double now);

/* Queues w for the revision (model, revision) whose cold state is c, up to limit waiters,
 * and calls suspend(cookie) before anyone can wake it. Caller holds the registry lock
 * (read is enough). Returns 0 queued; -1 with a 503 in err when the queue is full or
 * closed. */
int ksv_cold_enqueue(ksv_cold_queue *q, ksv_cold_state *c, int limit, ksv_cold_waiter *w,
                     void (*suspend)(void *cookie), void *cookie, ksv_err *err);
/* Queues w (for_capacity) for a free slot of the revision whose state is c, up to limit
 * waiters, and suspends it; then hands out what take(arg) still finds free, oldest first,
 * as ksv_cold_grant (w itself may be resumed at once that way). Caller holds the registry
 * lock (read). Returns 0 queued; -1 with a 503 in err when the queue is full or closed
 * (limit_text, e.g. "2: 2 replica(s) x containerConcurrency 1", says what is full). */
int ksv_cold_enqueue_capacity(ksv_cold_queue *q, ksv_cold_state *c, int limit,
                              ksv_cold_waiter *w, void (*suspend)(void *cookie), void *cookie,
                              bool (*take)(void *arg), void *arg, void *granted,
                              const char *limit_text, ksv_err *err);
/* While take(arg) reserves a slot, resumes the oldest capacity waiter of (model, revision)
 * with KSV_COLD_RETRY and w->granted = granted. Returns how many. */
size_t ksv_cold_grant(ksv_cold_queue *q, ksv_cold_state *c, const char *model,
                      const char *revision, bool (*take)(void *arg), void *arg, void *granted);
/* Resumes every waiter of (model, revision) with outcome; returns how many. */
size_t ksv_cold_wake(ksv_cold_queue *q, ksv_cold_state *c, const char *model,
                     const char *revision, ksv_cold_outcome outcome);
/* Resumes waiters whose deadline passed, with KSV_COLD_TIMEOUT. The callback counts each
 * timed-out request against its revision (may be NULL). */
size_t ksv_cold_expire(ksv_cold_queue *q, double now,
                       void (*timed_out)(void *ctx, const ksv_cold_waiter *w), void *ctx);
/* Shutdown: resumes everyone with KSV_COLD_CLOSED and refuses new waiters. */
void ksv_cold_close(ksv_cold_queue *q);

/* The seconds a client should wait before retrying: the last load time, at least 1. */
int ksv_cold_retry_after(double load_seconds);

/* The model's idle time after which a min_replicas 0 revision is unloaded: its window,
 * scale-down delay and retention period. */
double ksv_cold_idle_limit(const ksv_model_spec *m);

/* Prometheus families for the cold start metrics, one revision's lines each; heads are
 * written by ksv_cold_write_head(family) once. */
typedef enum {
    KSV_COLD_FAM_STARTS,
    KSV_COLD_FAM_DURATION,
    KSV_COLD_FAM_QUEUE,
    KSV_COLD_FAM_COUNT,
} ksv_cold_family;
void ksv_cold_write_head(ksv_sb *sb, ksv_cold_family f);
void ksv_cold_write_series(ksv_sb *sb, ksv_cold_family f, const char *labels,
                           const ksv_cold_state *c, ksv_hist_snap *scratch);
/* The admin state's fields for one revision: ,"cold_starts":N,...,"queue_depth":N */
void ksv_cold_write_state(ksv_sb *sb, const ksv_cold_state *c);

#endif
