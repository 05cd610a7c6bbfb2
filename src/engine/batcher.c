/* batcher.c: leader/follower batching of concurrent requests to one revision. */
#include "engine/batcher.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One forming, one running, and room for one whose members are still copying out. */
#define SLOTS 4

typedef enum { SLOT_FREE, SLOT_FORMING, SLOT_RUNNING, SLOT_DONE } slot_state;

typedef struct batch_slot {
    slot_state state;
    float *x;                     /* max_rows * cols */
    float *out;                   /* max_rows * width */
    size_t rows;
    size_t members;               /* requests in it */
    size_t readers;               /* members that have not copied their output yet */
    int rc;
    ksv_err err;
} batch_slot;

struct ksv_batcher {
    pthread_mutex_t mu;
    pthread_cond_t changed;       /* any slot changed state */
    size_t max_rows, cols, width;
    unsigned delay_us;
    batch_slot slots[SLOTS];
    batch_slot *forming;
    bool running;
    _Atomic uint64_t batches, rows;
};

int ksv_batcher_create(size_t max_rows, unsigned max_delay_us, size_t cols, size_t width,
                       ksv_batcher **out, ksv_err *err)
{
    if (max_rows < 2 || cols == 0 || width == 0)
        return ksv_err_set(err, 400, "batching needs at least 2 rows per batch");
    ksv_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return ksv_err_set(err, 500, "out of memory");
    b->max_rows = max_rows;
    b->cols = cols;
    b->width = width;
    b->delay_us = max_delay_us;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->changed, &attr);
    pthread_condattr_destroy(&attr);
    for (int i = 0; i < SLOTS; i++) {
        b->slots[i].x = malloc(max_rows * cols * sizeof(float));
        b->slots[i].out = malloc(max_rows * width * sizeof(float));
        if (!b->slots[i].x || !b->slots[i].out) {
            ksv_batcher_destroy(b);
            return ksv_err_set(err, 500, "out of memory for batches of %zu rows", max_rows);
        }
    }
    *out = b;
    return 0;
}

void ksv_batcher_destroy(ksv_batcher *b)
{
    if (!b)
        return;
    for (int i = 0; i < SLOTS; i++) {
        free(b->slots[i].x);
        free(b->slots[i].out);
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->changed);
    free(b);
}

void ksv_batcher_counts(const ksv_batcher *b, uint64_t *batches, uint64_t *rows)
{
    *batches = atomic_load_explicit(&b->batches, memory_order_relaxed);
    *rows = atomic_load_explicit(&b->rows, memory_order_relaxed);
}

/* Copies this member's output slice and releases the slot when it is the last reader.
 * Caller holds the mutex. */
static int collect(ksv_batcher *b, batch_slot *s, size_t offset, size_t rows, float *out,
                   ksv_err *err)
{
    int rc = s->rc;
    if (rc == 0)
        memcpy(out, s->out + offset * b->width, rows * b->width * sizeof *out);
    else if (err)
        *err = s->err;
    if (--s->readers == 0) {
        s->state = SLOT_FREE;
        pthread_cond_broadcast(&b->changed);
    }
    return rc;
}

static struct timespec deadline_after(unsigned us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)us * 1000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

static bool before(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec < deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec < deadline->tv_nsec);
}

int ksv_batcher_predict(ksv_batcher *b, const ksv_runtime_ops *ops, void *model,
                        unsigned worker, const float *x, size_t rows, float *out,
                        ksv_err *err)
{
    if (rows > b->max_rows || rows == 0)
        return ops->predict(model, worker, x, rows, b->cols, out, err);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        batch_slot *s = b->forming;
        if (s && s->rows + rows <= b->max_rows) {
            /* Join the batch that is forming and wait for its leader. */
            size_t offset = s->rows;
            memcpy(s->x + offset * b->cols, x, rows * b->cols * sizeof *x);
            s->rows += rows;
            s->members++;
            if (s->rows == b->max_rows)
                pthread_cond_broadcast(&b->changed);
            while (s->state != SLOT_DONE)
                pthread_cond_wait(&b->changed, &b->mu);
            int rc = collect(b, s, offset, rows, out, err);
            pthread_mutex_unlock(&b->mu);
            return rc;
        }
        if (s) { /* full: wait for it to start, then form the next one */
            pthread_cond_wait(&b->changed, &b->mu);
            continue;
        }
        batch_slot *free_slot = NULL;
        for (int i = 0; i < SLOTS && !free_slot; i++)
            if (b->slots[i].state == SLOT_FREE)
                free_slot = &b->slots[i];
        if (!free_slot) {
            pthread_cond_wait(&b->changed, &b->mu);
            continue;
        }
        /* Lead a new batch. */
        s = free_slot;
        s->state = SLOT_FORMING;
        s->rows = rows;
        s->members = 1;
        memcpy(s->x, x, rows * b->cols * sizeof *x);
        b->forming = s;
        struct timespec deadline = deadline_after(b->delay_us);
        /* While the previous batch runs, everyone who arrives joins this one; after it,
         * wait at most the delay for company. */
        while (b->running || (s->rows < b->max_rows && b->delay_us > 0 && before(&deadline))) {
            if (b->running)
                pthread_cond_wait(&b->changed, &b->mu);
            else
                pthread_cond_timedwait(&b->changed, &b->mu, &deadline);
        }
        b->forming = NULL;
        b->running = true;
        s->state = SLOT_RUNNING;
        s->readers = s->members;
        size_t n = s->rows;
        pthread_cond_broadcast(&b->changed);
        pthread_mutex_unlock(&b->mu);

        ksv_err_clear(&s->err);
        int rc = ops->predict(model, worker, s->x, n, b->cols, s->out, &s->err);
        atomic_fetch_add_explicit(&b->batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->rows, n, memory_order_relaxed);

        pthread_mutex_lock(&b->mu);
        s->rc = rc;
        s->state = SLOT_DONE;
        b->running = false;
        pthread_cond_broadcast(&b->changed);
        rc = collect(b, s, 0, rows, out, err);
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
}
