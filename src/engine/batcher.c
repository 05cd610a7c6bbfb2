/* batcher.c: leader/follower batching of concurrent requests to one revision.
 *
 * Waiting. Under load 16+ HTTP workers sit in here at once, so a waiting thread sleeps on
 * a condition variable that only the event it waits for signals, and a state change wakes
 * no thread that cannot act on it:
 *
 *   slot->done  members wait for their batch's answer. The leader broadcasts it once, when
 *               the runtime call returns; every member can then take its slice.
 *   idle        the forming batch's leader waits for the running batch to finish. At most
 *               one thread waits (one batch forms at a time), so it is signalled.
 *   full        that leader, once nothing runs, waits (timed: the delay) for its batch to
 *               fill. One waiter, signalled by the member whose rows fill the batch.
 *   entrant     a caller that can neither join the forming batch (no room for its rows)
 *               nor lead a new one (every slot is taken) queues with a condition variable
 *               of its own, and is woken only when it can: when a batch opens with room for
 *               its rows, or, for the first in the queue, when it can lead one.
 *
 * Lost wakeups: each predicate is read and written under `mu`; each signaller changes the
 * state under `mu` before it signals, and each waiter tests its predicate under `mu` and
 * then sleeps in pthread_cond_wait, which lets go of `mu` only once the thread is asleep
 * on the condition variable: no change can fall between a waiter's test and its sleep.
 * Where a signal is skipped, or sent after letting go of `mu`, the comment there says why
 * nothing is lost. Spurious wakeups: each wait sits in a loop that tests its predicate
 * again, so a spurious return costs one more test and sleep. */
#include "common/clock.h"
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
    pthread_cond_t done;          /* state became SLOT_DONE; only this batch's members wait */
    float *x;                     /* max_rows * cols */
    float *out;                   /* max_rows * width */
    size_t rows;
    size_t members;               /* requests in it, the leader included */
    size_t readers;               /* members that have not copied their output yet */
    int rc;
    ksv_err err;
} batch_slot;

/* A caller waiting to join or lead, on its own stack for the length of the wait. */
typedef struct entrant {
    pthread_cond_t wake;
    size_t rows;
    bool woken;                   /* taken off the queue: go and look again */
    struct entrant *next;
} entrant;

struct ksv_batcher {
    pthread_mutex_t mu;           /* guards everything below but the counters */
    pthread_cond_t idle;          /* `running` went false */
    pthread_cond_t full;          /* the forming batch reached max_rows */
    entrant *queue, *queue_tail;  /* entrants in arrival order */
    size_t max_rows, cols, width;
    unsigned delay_us;
    batch_slot slots[SLOTS];
    batch_slot *forming;          /* the batch new requests join; NULL: none */
    bool running;                 /* a batch is in the runtime call */
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
    /* Synchronisation first, so ksv_batcher_destroy() can undo a half-built batcher. The
     * delay is measured on the monotonic clock, immune to clock steps. */
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->full, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&b->idle, NULL);
    for (int i = 0; i < SLOTS; i++)
        pthread_cond_init(&b->slots[i].done, NULL);
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
        pthread_cond_destroy(&b->slots[i].done);
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->idle);
    pthread_cond_destroy(&b->full);
    free(b);
}

void ksv_batcher_counts(const ksv_batcher *b, uint64_t *batches, uint64_t *rows)
{
    *batches = atomic_load_explicit(&b->batches, memory_order_relaxed);
    *rows = atomic_load_explicit(&b->rows, memory_order_relaxed);
}

static batch_slot *free_slot(ksv_batcher *b)
{
    for (int i = 0; i < SLOTS; i++)
        if (b->slots[i].state == SLOT_FREE)
            return &b->slots[i];
    return NULL;
}

/* Takes e off the queue (prev: the entrant before it, or NULL) and wakes it. The signal
 * goes out under the mutex: once e has the mutex back it may return and take e off its
 * stack, so nobody may touch e after letting go of the mutex. */
static void wake_entrant(ksv_batcher *b, entrant *prev, entrant *e)
{
    if (prev)
        prev->next = e->next;
    else
        b->queue = e->next;
    if (b->queue_tail == e)
        b->queue_tail = prev;
    e->woken = true;
    pthread_cond_signal(&e->wake);
}

/* Wakes the entrants that can now act. Called, with the mutex held, when a batch opens,
 * when the forming batch closes, and when a slot frees while none forms.
 *
 * No batch forming: the first in the queue can lead one, if a slot is free; the batch it
 * opens wakes the others. A batch forming: every entrant whose rows fit in what is left
 * of it, first come first served, counting the rows of those woken before it. Those woken
 * may still find the room taken by callers that came in meanwhile (or the batch closed);
 * they queue again and wait for the next event.
 * Nobody sleeps on for good: an entrant left queued found no room in the forming batch
 * (counting those woken before it), or no batch forms and no slot is free. The forming
 * batch closes within the running batch's call plus the delay, every taken slot frees
 * once its batch is answered, and both call this again. */
static void wake_entrants(ksv_batcher *b)
{
    if (!b->queue)
        return;
    if (!b->forming) {
        if (free_slot(b))
            wake_entrant(b, NULL, b->queue);
        return;
    }
    size_t room = b->max_rows - b->forming->rows;
    entrant *prev = NULL, *e = b->queue;
    while (e && room > 0) {
        entrant *next = e->next;
        if (e->rows <= room) {
            room -= e->rows;
            wake_entrant(b, prev, e);
        } else {
            prev = e;
        }
        e = next;
    }
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
        /* While a batch forms a free slot helps no entrant (only one batch forms at a
         * time): they wait for it to close, and closing finds this slot free. */
        if (!b->forming)
            wake_entrants(b);
    }
    return rc;
}

static struct timespec deadline_after(unsigned us)
{
    return ksv_timespec_in(CLOCK_MONOTONIC, (double)us / 1e6);
}

static bool before(const struct timespec *deadline)
{
    struct timespec now = ksv_timespec_in(CLOCK_MONOTONIC, 0);
    return now.tv_sec < deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec < deadline->tv_nsec);
}

/* Adds rows to the forming batch s, waits for its leader to run it and takes the answer.
 * Called with the mutex held; returns with it released. */
static int join(ksv_batcher *b, batch_slot *s, const float *x, size_t rows, float *out,
                ksv_err *err)
{
    size_t offset = s->rows;
    memcpy(s->x + offset * b->cols, x, rows * b->cols * sizeof *x);
    s->rows += rows;
    s->members++;
    /* While a batch runs the leader sleeps on `idle`, and looks at the rows itself when it
     * wakes; it sleeps on `full` only while nothing runs. */
    if (s->rows == b->max_rows && !b->running)
        pthread_cond_signal(&b->full);
    /* The slot cannot be reused before this member has read it (readers), so s->done is
     * this batch's until then; a broadcast meant for an earlier batch in this slot (see
     * lead()) is a spurious wakeup here. */
    while (s->state != SLOT_DONE)
        pthread_cond_wait(&s->done, &b->mu);
    int rc = collect(b, s, offset, rows, out, err);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Opens a batch in the free slot s, waits for the running batch and for company, runs it
 * and answers its members. Called with the mutex held; returns with it released. */
static int lead(ksv_batcher *b, batch_slot *s, const ksv_runtime_ops *ops, void *model,
                unsigned worker, const float *x, size_t rows, float *out, ksv_err *err)
{
    s->state = SLOT_FORMING;
    s->rows = rows;
    s->members = 1;
    memcpy(s->x, x, rows * b->cols * sizeof *x);
    b->forming = s;
    wake_entrants(b);

    struct timespec deadline = deadline_after(b->delay_us);
    /* While the previous batch runs, everyone who arrives joins this one; after it, wait
     * at most the delay for company. Only the forming batch's leader sets `running`, and
     * that is this thread, so once false it stays false here. */
    while (b->running)
        pthread_cond_wait(&b->idle, &b->mu);
    while (s->rows < b->max_rows && b->delay_us > 0 && before(&deadline))
        pthread_cond_timedwait(&b->full, &b->mu, &deadline);

    b->forming = NULL;
    b->running = true;
    s->state = SLOT_RUNNING;
    s->readers = s->members;
    size_t n = s->rows;
    wake_entrants(b);
    pthread_mutex_unlock(&b->mu);

    /* The slot is this thread's alone until it is DONE: members only wait on it. */
    ksv_err_clear(&s->err);
    int rc = ops->predict(model, worker, s->x, n, b->cols, s->out, &s->err);
    atomic_fetch_add_explicit(&b->batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->rows, n, memory_order_relaxed);

    pthread_mutex_lock(&b->mu);
    s->rc = rc;
    s->state = SLOT_DONE;
    b->running = false;
    /* Only the forming batch's leader waits on `idle`, and while a batch forms its leader
     * is in that wait: it opened the batch and went to sleep without letting go of `mu`. */
    bool wake_next = b->forming != NULL;
    bool wake_members = s->members > 1;
    rc = collect(b, s, 0, rows, out, err);
    pthread_mutex_unlock(&b->mu);
    /* Signalled after letting go of the mutex, so the woken do not wake only to sleep on
     * it while this thread still holds it (with it held, every member paid a second
     * context switch). Nothing is lost: each waiter meant was asleep on its condition
     * variable before `mu` was let go, and nothing frees it: the batcher outlives this
     * call, and a slot reused by then only gets a spurious wakeup (see join()). */
    if (wake_next)
        pthread_cond_signal(&b->idle);
    if (wake_members)
        pthread_cond_broadcast(&s->done);
    return rc;
}

int ksv_batcher_predict(ksv_batcher *b, const ksv_runtime_ops *ops, void *model,
                        unsigned worker, const float *x, size_t rows, float *out,
                        ksv_err *err)
{
    if (rows > b->max_rows || rows == 0)
        return ops->predict(model, worker, x, rows, b->cols, out, err);
    entrant self = {.rows = rows};
    bool queued = false;
    int rc;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        batch_slot *s = b->forming;
        if (s && s->rows + rows <= b->max_rows) {
            rc = join(b, s, x, rows, out, err);
            break;
        }
        if (!s && (s = free_slot(b)) != NULL) {
            rc = lead(b, s, ops, model, worker, x, rows, out, err);
            break;
        }
        /* No room in the forming batch, or no slot to open one in: queue until one of
         * those changes in this caller's favour (wake_entrants()). */
        if (!queued) {
            pthread_cond_init(&self.wake, NULL);
            queued = true;
        }
        self.woken = false;
        self.next = NULL;
        if (b->queue_tail)
            b->queue_tail->next = &self;
        else
            b->queue = &self;
        b->queue_tail = &self;
        while (!self.woken)
            pthread_cond_wait(&self.wake, &b->mu);
    }
    /* Whoever woke self signalled under the mutex and dropped every pointer to it before
     * this thread got the mutex back, so the condition variable has no users left. */
    if (queued)
        pthread_cond_destroy(&self.wake);
    return rc;
}
