/* fanout.c: a bounded set of threads working through numbered jobs, so a command that
 * talks to many nodes waits for the slowest node, not for the sum of them all. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "control/control_internal.h"

typedef struct fanout {
    atomic_size_t next;
    size_t n;
    void (*job)(void *ctx, size_t i);
    void *ctx;
} fanout;

static void *fanout_worker(void *arg)
{
    fanout *f = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&f->next, 1);
        if (i >= f->n)
            return NULL;
        f->job(f->ctx, i);
    }
}

void ctl_fanout(size_t n, int parallel, void (*job)(void *ctx, size_t i), void *ctx)
{
    fanout f = {.n = n, .job = job, .ctx = ctx};
    atomic_init(&f.next, 0);
    size_t want = parallel > 1 ? (size_t)parallel : 1;
    if (want > n)
        want = n;
    /* The caller is one of the `want` workers. */
    size_t extra = want > 1 ? want - 1 : 0;
    pthread_t *threads = extra ? calloc(extra, sizeof *threads) : NULL;
    size_t started = 0;
    for (size_t t = 0; threads && t < extra; t++)
        if (pthread_create(&threads[started], NULL, fanout_worker, &f) == 0)
            started++;
    /* With no thread started (parallel 1, or none could be) the caller does them all. */
    fanout_worker(&f);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    free(threads);
}
