/* fetch_pool.c: a fixed set of fetcher threads working through a queue of downloads. */
#include "engine/fetch_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/uri_redact.h"

#define MAX_FETCH_THREADS 64

typedef struct fetch_job {
    struct fetch_job *next;
    uint64_t id;
    char *uri;
    char sha256[65];
    bool any_file;
    ksv_fetch_progress *progress; /* the submitter's; NULL: none */
    ksv_fetch_done_fn done;
    void *user;
    _Atomic bool cancel;
    char why[64];                 /* why it was cancelled; guarded by the pool mutex */
} fetch_job;

struct ksv_fetch_pool {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    fetch_job *queue_head, *queue_tail; /* waiting, oldest first */
    fetch_job *running;                 /* being fetched (linked through next) */
    uint64_t next_id;
    bool stop;
    double deadline_s, stall_s;
    unsigned long long max_bytes;
    ksv_cache *cache;
    pthread_t threads[MAX_FETCH_THREADS];
    unsigned n_threads;
};

static long long mono_us(void)
{
    return (long long)(ksv_mono_s() * 1e6);
}

void ksv_fetch_progress_add(const ksv_fetch_ctl *ctl, long long bytes, long long moved)
{
    if (!ctl->progress)
        return;
    atomic_fetch_add(&ctl->progress->bytes, bytes);
    atomic_fetch_add(&ctl->progress->moved, moved);
}

void ksv_fetch_progress_expect(const ksv_fetch_ctl *ctl, long long total, bool force)
{
    if (!ctl->progress)
        return;
    long long unknown = -1;
    if (force)
        atomic_store(&ctl->progress->total, total);
    else
        atomic_compare_exchange_strong(&ctl->progress->total, &unknown, total);
}

void ksv_fetch_progress_json(const ksv_fetch_progress *p, ksv_sb *sb)
{
    long long started = atomic_load(&p->started_us), ended = atomic_load(&p->ended_us);
    double seconds = started ? (double)((ended ? ended : mono_us()) - started) * 1e-6 : 0;
    long long moved = atomic_load(&p->moved);
    ksv_sb_printf(sb, "{\"bytes\":%lld,\"total\":%lld,\"bytes_per_s\":%.0f,\"seconds\":%.3f}",
                  atomic_load(&p->bytes), atomic_load(&p->total),
                  seconds > 0.001 ? (double)moved / seconds : 0.0, seconds);
}

static void job_free(fetch_job *job)
{
    free(job->uri);
    free(job);
}

static void unlink_running(ksv_fetch_pool *pool, fetch_job *job)
{
    for (fetch_job **p = &pool->running; *p; p = &(*p)->next)
        if (*p == job) {
            *p = job->next;
            return;
        }
}

static void run_job(ksv_fetch_pool *pool, fetch_job *job)
{
    ksv_err err;
    ksv_err_clear(&err);
    ksv_fetch_result *res = malloc(sizeof *res);
    ksv_fetch_progress *p = job->progress;
    if (p) {
        atomic_store(&p->bytes, 0);
        atomic_store(&p->moved, 0);
        atomic_store(&p->total, -1);
        atomic_store(&p->ended_us, 0);
        atomic_store(&p->started_us, mono_us());
    }
    ksv_fetch_ctl ctl = {
        .cancel = &job->cancel,
        .deadline = pool->deadline_s > 0 ? ksv_mono_s() + pool->deadline_s : 0,
        .deadline_s = pool->deadline_s,
        .stall_s = pool->stall_s,
        .max_bytes = pool->max_bytes,
        .any_file = job->any_file,
        .progress = p,
        .cache = pool->cache,
    };
    int rc = !res                       ? ksv_err_set(&err, 500, "out of memory")
             : atomic_load(&job->cancel) ? -1
                                        : ksv_storage_fetch(job->uri, pool->cache, job->sha256,
                                                            &ctl, res, &err);
    if (p)
        atomic_store(&p->ended_us, mono_us());
    pthread_mutex_lock(&pool->mu);
    unlink_running(pool, job);
    bool cancelled = atomic_load(&job->cancel);
    char why[sizeof job->why];
    snprintf(why, sizeof why, "%s", job->why);
    pthread_mutex_unlock(&pool->mu);
    if (rc != 0 && cancelled) {
        char shown[KSV_URI_SHOWN_MAX];
        ksv_uri_redact(shown, sizeof shown, job->uri);
        ksv_err_set(&err, 499, "storage %s: download cancelled (%s)", shown, why);
    }
    job->done(job->user, job->id, rc, rc == 0 ? res : NULL, &err);
    free(res);
    job_free(job);
}

static void *fetch_thread(void *arg)
{
    ksv_fetch_pool *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->stop && !pool->queue_head)
            pthread_cond_wait(&pool->cond, &pool->mu);
        if (pool->stop)
            break;
        fetch_job *job = pool->queue_head;
        pool->queue_head = job->next;
        if (!pool->queue_head)
            pool->queue_tail = NULL;
        job->next = pool->running;
        pool->running = job;
        pthread_mutex_unlock(&pool->mu);
        run_job(pool, job);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

int ksv_fetch_pool_create(const ksv_fetch_pool_config *cfg, ksv_fetch_pool **out, ksv_err *err)
{
    ksv_fetch_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return ksv_err_set(err, 500, "out of memory");
    pool->cache = cfg->cache;
    pool->max_bytes = cfg->max_bytes;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->deadline_s = cfg->deadline_s;
    pool->stall_s = cfg->stall_s;
    pool->next_id = 1;
    unsigned want = cfg->threads ? cfg->threads : 1;
    if (want > MAX_FETCH_THREADS)
        want = MAX_FETCH_THREADS;
    for (unsigned i = 0; i < want; i++) {
        if (pthread_create(&pool->threads[i], NULL, fetch_thread, pool) != 0) {
            ksv_fetch_pool_destroy(pool);
            return ksv_err_set(err, 500, "cannot start a fetcher thread");
        }
        pool->n_threads++;
    }
    *out = pool;
    return 0;
}

void ksv_fetch_pool_destroy(ksv_fetch_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stop = true;
    for (fetch_job *j = pool->running; j; j = j->next) {
        snprintf(j->why, sizeof j->why, "the engine is shutting down");
        atomic_store(&j->cancel, true);
    }
    fetch_job *queued = pool->queue_head;
    pool->queue_head = pool->queue_tail = NULL;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->mu);
    for (unsigned i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    while (queued) {
        fetch_job *next = queued->next;
        ksv_err err;
        char shown[KSV_URI_SHOWN_MAX];
        ksv_uri_redact(shown, sizeof shown, queued->uri);
        ksv_err_set(&err, 499, "storage %s: download cancelled (the engine is shutting down)",
                    shown);
        queued->done(queued->user, queued->id, -1, NULL, &err);
        job_free(queued);
        queued = next;
    }
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cond);
    free(pool);
}

uint64_t ksv_fetch_submit(ksv_fetch_pool *pool, const char *uri, const char *sha256,
                          bool any_file, ksv_fetch_progress *progress, ksv_fetch_done_fn done,
                          void *user, ksv_err *err)
{
    fetch_job *job = calloc(1, sizeof *job);
    if (!job || !(job->uri = strdup(uri))) {
        free(job);
        ksv_err_set(err, 500, "out of memory");
        return 0;
    }
    snprintf(job->sha256, sizeof job->sha256, "%s", sha256 ? sha256 : "");
    job->any_file = any_file;
    job->progress = progress;
    job->done = done;
    job->user = user;
    atomic_init(&job->cancel, false);
    pthread_mutex_lock(&pool->mu);
    if (pool->stop) {
        pthread_mutex_unlock(&pool->mu);
        job_free(job);
        char shown[KSV_URI_SHOWN_MAX];
        ksv_uri_redact(shown, sizeof shown, uri);
        ksv_err_set(err, 503, "storage %s: the engine is shutting down", shown);
        return 0;
    }
    job->id = pool->next_id++;
    if (pool->queue_tail)
        pool->queue_tail->next = job;
    else
        pool->queue_head = job;
    pool->queue_tail = job;
    uint64_t id = job->id;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->mu);
    return id;
}

void ksv_fetch_cancel(ksv_fetch_pool *pool, uint64_t id, const char *why)
{
    /* Only flags the job: `done` may take the caller's locks, so it never runs here. A
     * queued job that is flagged ends as soon as a thread picks it up. */
    pthread_mutex_lock(&pool->mu);
    for (int list = 0; list < 2; list++)
        for (fetch_job *j = list ? pool->running : pool->queue_head; j; j = j->next)
            if (j->id == id) {
                snprintf(j->why, sizeof j->why, "%s", why);
                atomic_store(&j->cancel, true);
            }
    pthread_mutex_unlock(&pool->mu);
}
