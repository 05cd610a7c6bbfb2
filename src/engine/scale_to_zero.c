/* scale_to_zero.c: the cold-start queue and the scale-to-zero bookkeeping of a revision.
 * See scale_to_zero.h for the model; registry.c decides when to unload and load. */
#include "common/clock.h"
#include "engine/scale_to_zero.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ksv_cold_queue_init(ksv_cold_queue *q)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
}

/* Sleeps until the earliest deadline in the queue (or a new waiter, or stop), then lets the
 * owner expire what is due. */
static void *reaper_main(void *arg)
{
    ksv_cold_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        double earliest = 0;
        for (const ksv_cold_waiter *w = q->head; w; w = w->next)
            if (earliest == 0 || w->deadline < earliest)
                earliest = w->deadline;
        if (earliest == 0) {
            pthread_cond_wait(&q->cond, &q->mu);
            continue;
        }
        double now = (double)ksv_mono_ns() * 1e-9;
        if (earliest > now) {
            /* A little past the deadline, so that it has surely passed when checked. */
            double at = earliest + 0.001;
            struct timespec until = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)};
            pthread_cond_timedwait(&q->cond, &q->mu, &until);
            continue;
        }
        pthread_mutex_unlock(&q->mu);
        q->expire(q->expire_ctx);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int ksv_cold_queue_start(ksv_cold_queue *q, void (*expire)(void *ctx), void *ctx)
{
    q->expire = expire;
    q->expire_ctx = ctx;
    if (pthread_create(&q->reaper, NULL, reaper_main, q) != 0)
        return -1;
    q->reaper_started = true;
    return 0;
}

void ksv_cold_queue_destroy(ksv_cold_queue *q)
{
    if (q->reaper_started) {
        pthread_mutex_lock(&q->mu);
        q->stop = true;
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->reaper, NULL);
    }
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
}

void ksv_cold_state_init(ksv_cold_state *c, int64_t now_ns)
{
    memset(c, 0, sizeof *c);
    atomic_init(&c->requested_ns, 0);
    atomic_init(&c->last_active_ns, now_ns);
    atomic_init(&c->idle_ns, 0);
    atomic_init(&c->cold_starts, 0);
    atomic_init(&c->queue_depth, 0);
    atomic_init(&c->capacity_depth, 0);
    ksv_hist_init(&c->duration);
}

void ksv_cold_touch(ksv_cold_state *c, int64_t now_ns, int64_t idle_gap_ns)
{
    int64_t before = atomic_exchange_explicit(&c->last_active_ns, now_ns, memory_order_relaxed);
    if (idle_gap_ns > 0 && now_ns - before >= idle_gap_ns)
        atomic_fetch_add_explicit(&c->idle_ns, now_ns - before, memory_order_relaxed);
}

void ksv_cold_residency_start(ksv_cold_state *c, int64_t now_ns)
{
    atomic_store(&c->last_active_ns, now_ns);
    atomic_store(&c->idle_ns, 0);
}

int64_t ksv_cold_idle_ns(const ksv_cold_state *c, int64_t now_ns, int64_t idle_gap_ns)
{
    int64_t idle = atomic_load_explicit(&c->idle_ns, memory_order_relaxed);
    int64_t open = now_ns - atomic_load_explicit(&c->last_active_ns, memory_order_relaxed);
    return idle + (idle_gap_ns > 0 && open >= idle_gap_ns ? open : 0);
}

void ksv_cold_request(ksv_cold_state *c)
{
    int64_t zero = 0;
    atomic_compare_exchange_strong(&c->requested_ns, &zero, ksv_mono_ns());
}

void ksv_cold_started(ksv_cold_state *c)
{
    int64_t asked = atomic_exchange(&c->requested_ns, 0);
    atomic_fetch_add(&c->cold_starts, 1);
    if (asked)
        ksv_hist_record(&c->duration, (double)(ksv_mono_ns() - asked) * 1e-9);
}

double ksv_cold_idle_seconds(const ksv_cold_state *c, double now)
{
    int64_t last = atomic_load_explicit(&c->last_active_ns, memory_order_relaxed);
    return now - (double)last * 1e-9;
}

double ksv_cold_idle_limit(const ksv_model_spec *m)
{
    /* Knative: the stable window empties, the scale-down delay holds the last count, then
     * the pod lingers for its retention period. */
    return (double)m->scale_window_s + (double)m->scale_down_delay_s +
           (double)m->scale_retention_s;
}

int ksv_cold_retry_after(double load_seconds)
{
    double s = ceil(load_seconds);
    return s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
}

/* Links w last (the queue is oldest first) and tells the reaper its deadline. Caller holds
 * q->mu. */
static void append(ksv_cold_queue *q, ksv_cold_waiter *w)
{
    w->outcome = KSV_COLD_WAITING;
    w->next = NULL;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    pthread_cond_signal(&q->cond); /* the reaper learns the new deadline */
}

int ksv_cold_enqueue(ksv_cold_queue *q, ksv_cold_state *c, int limit, ksv_cold_waiter *w,
                     void (*suspend)(void *cookie), void *cookie, ksv_err *err)
{
    pthread_mutex_lock(&q->mu);
    int depth = atomic_load(&c->queue_depth);
    if (q->closed || depth >= limit) {
        pthread_mutex_unlock(&q->mu);
        if (q->closed)
            return ksv_err_set(err, 503, "the engine is shutting down");
        return ksv_err_set(err, 503,
                           "revision %s is starting from zero and its cold-start queue is "
                           "full (%d waiting); retry later",
                           w->revision, depth);
    }
    w->for_capacity = false;
    w->granted = NULL;
    append(q, w);
    atomic_store(&c->queue_depth, depth + 1);
    /* Under the mutex, so that no waker can resume the request before it is suspended. */
    suspend(cookie);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* The counter of waiters w was counted in. */
static _Atomic int *depth_of(ksv_cold_state *c, const ksv_cold_waiter *w)
{
    return w->for_capacity ? &c->capacity_depth : &c->queue_depth;
}

/* Unlinks w, whose predecessor is prev (NULL: the head). Caller holds q->mu. */
static void unlink_waiter(ksv_cold_queue *q, ksv_cold_waiter *prev, ksv_cold_waiter *w)
{
    if (prev)
        prev->next = w->next;
    else
        q->head = w->next;
    if (q->tail == w)
        q->tail = prev;
    w->next = NULL;
}

/* Hands slots to the oldest capacity waiters of (model, revision). Caller holds q->mu. The
 * waiter's memory belongs to a request that may finish the moment it is woken. */
static size_t grant_locked(ksv_cold_queue *q, ksv_cold_state *c, const char *model,
                           const char *revision, bool (*take)(void *), void *arg, void *granted)
{
    size_t n = 0;
    ksv_cold_waiter *prev = NULL, *w = q->head;
    while (w && atomic_load(&c->capacity_depth) > 0) {
        if (!w->for_capacity || strcmp(w->revision, revision) != 0 ||
            strcmp(w->model, model) != 0) {
            prev = w;
            w = w->next;
            continue;
        }
        if (!take(arg))
            break;
        ksv_cold_waiter *next = w->next;
        unlink_waiter(q, prev, w);
        atomic_fetch_sub(&c->capacity_depth, 1);
        w->granted = granted;
        w->outcome = KSV_COLD_RETRY;
        w->wake(w->cookie);
        n++;
        w = next;
    }
    return n;
}

int ksv_cold_enqueue_capacity(ksv_cold_queue *q, ksv_cold_state *c, int limit,
                              ksv_cold_waiter *w, void (*suspend)(void *cookie), void *cookie,
                              bool (*take)(void *arg), void *arg, void *granted,
                              const char *limit_text, ksv_err *err)
{
    pthread_mutex_lock(&q->mu);
    int depth = atomic_load(&c->capacity_depth);
    if (q->closed || depth >= limit) {
        pthread_mutex_unlock(&q->mu);
        if (q->closed)
            return ksv_err_set(err, 503, "the engine is shutting down");
        return ksv_err_set(err, 503, "revision %s is at its concurrency limit (%s) and its "
                                     "queue is full (%d waiting); retry later",
                           w->revision, limit_text, depth);
    }
    w->for_capacity = true;
    w->granted = NULL;
    append(q, w);
    /* Counted before the slots are looked at: a request finishing meanwhile either sees
     * this waiter or left its slot for take() below (both sequentially consistent). */
    atomic_fetch_add(&c->capacity_depth, 1);
    suspend(cookie);
    grant_locked(q, c, w->model, w->revision, take, arg, granted);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

size_t ksv_cold_grant(ksv_cold_queue *q, ksv_cold_state *c, const char *model,
                      const char *revision, bool (*take)(void *arg), void *arg, void *granted)
{
    pthread_mutex_lock(&q->mu);
    size_t n = grant_locked(q, c, model, revision, take, arg, granted);
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* Unlinks and resumes the waiters `match` selects. Caller holds q->mu. The waiter's memory
 * belongs to a request that may finish the moment it is woken: nothing touches it after. */
static size_t wake_matching(ksv_cold_queue *q, bool (*match)(const ksv_cold_waiter *, void *),
                            void *arg, ksv_cold_outcome outcome, ksv_cold_state *c,
                            void (*timed_out)(void *, const ksv_cold_waiter *), void *ctx)
{
    size_t n = 0;
    ksv_cold_waiter *prev = NULL, *w = q->head;
    while (w) {
        ksv_cold_waiter *next = w->next;
        if (!match(w, arg)) {
            prev = w;
            w = next;
            continue;
        }
        unlink_waiter(q, prev, w);
        if (c)
            atomic_fetch_sub(depth_of(c, w), 1);
        if (timed_out)
            timed_out(ctx, w);
        w->outcome = outcome;
        void (*wake)(void *) = w->wake;
        void *cookie = w->cookie;
        wake(cookie);
        n++;
        w = next;
    }
    return n;
}

typedef struct name_pair {
    const char *model, *revision;
} name_pair;

static bool match_revision(const ksv_cold_waiter *w, void *arg)
{
    const name_pair *p = arg;
    return strcmp(w->model, p->model) == 0 && strcmp(w->revision, p->revision) == 0;
}

size_t ksv_cold_wake(ksv_cold_queue *q, ksv_cold_state *c, const char *model,
                     const char *revision, ksv_cold_outcome outcome)
{
    name_pair p = {model, revision};
    pthread_mutex_lock(&q->mu);
    size_t n = wake_matching(q, match_revision, &p, outcome, c, NULL, NULL);
    pthread_mutex_unlock(&q->mu);
    return n;
}

static bool match_expired(const ksv_cold_waiter *w, void *arg)
{
    return w->deadline <= *(const double *)arg;
}

size_t ksv_cold_expire(ksv_cold_queue *q, double now,
                       void (*timed_out)(void *ctx, const ksv_cold_waiter *w), void *ctx)
{
    pthread_mutex_lock(&q->mu);
    /* The depth of each waiter's revision is fixed by the callback, which knows where it is. */
    size_t n = q->head ? wake_matching(q, match_expired, &now, KSV_COLD_TIMEOUT, NULL,
                                       timed_out, ctx)
                       : 0;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static bool match_all(const ksv_cold_waiter *w, void *arg)
{
    (void)w;
    (void)arg;
    return true;
}

void ksv_cold_close(ksv_cold_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    wake_matching(q, match_all, NULL, KSV_COLD_CLOSED, NULL, NULL, NULL);
    pthread_mutex_unlock(&q->mu);
}

/* -------------------------------------------------------------------------- metrics */

void ksv_cold_write_head(ksv_sb *sb, ksv_cold_family f)
{
    static const char *heads[] = {
        "# HELP ksv_cold_starts_total Loads of a scaled-to-zero revision that a request "
        "waited for.\n# TYPE ksv_cold_starts_total counter\n",
        "# HELP ksv_cold_start_duration_seconds From the first waiting request to the "
        "revision ready (load and warm-up).\n"
        "# TYPE ksv_cold_start_duration_seconds histogram\n",
        "# HELP ksv_cold_start_queue_depth Requests waiting for a cold start now.\n"
        "# TYPE ksv_cold_start_queue_depth gauge\n",
    };
    if ((unsigned)f < KSV_COLD_FAM_COUNT)
        ksv_sb_puts(sb, heads[f]);
}

void ksv_cold_write_series(ksv_sb *sb, ksv_cold_family f, const char *labels,
                           const ksv_cold_state *c, ksv_hist_snap *scratch)
{
    switch (f) {
    case KSV_COLD_FAM_STARTS:
        ksv_sb_printf(sb, "ksv_cold_starts_total{%s} %llu\n", labels,
                      (unsigned long long)atomic_load(&c->cold_starts));
        break;
    case KSV_COLD_FAM_DURATION:
        ksv_hist_snapshot(&c->duration, scratch);
        ksv_hist_write_prometheus(sb, "ksv_cold_start_duration_seconds", labels, scratch);
        break;
    case KSV_COLD_FAM_QUEUE:
        ksv_sb_printf(sb, "ksv_cold_start_queue_depth{%s} %d\n", labels,
                      atomic_load(&c->queue_depth));
        break;
    case KSV_COLD_FAM_COUNT:
        break;
    }
}

void ksv_cold_write_state(ksv_sb *sb, const ksv_cold_state *c)
{
    uint64_t starts = atomic_load(&((ksv_cold_state *)c)->cold_starts);
    ksv_sb_printf(sb, ",\"cold_starts\":%llu,\"cold_start_queue_depth\":%d,"
                      "\"queue_depth\":%d",
                  (unsigned long long)starts, atomic_load(&((ksv_cold_state *)c)->queue_depth),
                  atomic_load(&((ksv_cold_state *)c)->capacity_depth));
    /* P99 of the cold starts' durations, for consoles (the histogram is in /metrics). */
    ksv_hist_snap *snap = starts ? malloc(sizeof *snap) : NULL;
    if (snap) {
        ksv_hist_snapshot(&c->duration, snap);
        if (snap->count)
            ksv_sb_printf(sb, ",\"cold_start_p99_seconds\":%.6f", ksv_hist_quantile(snap, 0.99));
        free(snap);
    }
}
