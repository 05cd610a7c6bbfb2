/* mirror.c: the shadow-traffic queue and its thread (see mirror.h). */
#include "engine/mirror.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

typedef struct mirror_job {
    ksv_route route;              /* the mirror revision, held (in flight) until done */
    float *x;                     /* rows x features */
    float *answer;                /* what the client got: rows x width */
    size_t rows, features, width, bytes;
} mirror_job;

struct ksv_mirror {
    ksv_registry *reg;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    mirror_job jobs[KSV_MIRROR_QUEUE];
    size_t head, count, bytes;
    bool stop;
    pthread_t thread;
    _Atomic uint64_t dropped;
};


static bool is_classifier(const char *objective)
{
    return strncmp(objective, "binary:", 7) == 0 || strncmp(objective, "multi:", 6) == 0;
}

/* An answer that names no class (NaN, infinite, a negative or absurd class index): it
 * differs from every real class. Converting such a float to size_t would be undefined. */
#define NO_CLASS SIZE_MAX

/* The class a row's answer names. */
static size_t row_class(const char *objective, const float *v, size_t width)
{
    if (width > 1) {
        size_t best = NO_CLASS;
        for (size_t k = 0; k < width; k++)
            if (!isnan(v[k]) && (best == NO_CLASS || v[k] > v[best]))
                best = k;
        return best;
    }
    if (strcmp(objective, "multi:softmax") == 0)
        return isfinite(v[0]) && v[0] >= 0 && v[0] < 1e9 ? (size_t)v[0] : NO_CLASS;
    if (isnan(v[0]))
        return NO_CLASS;
    double cut = strcmp(objective, "binary:logitraw") == 0 ? 0.0 : 0.5;
    return v[0] > cut;
}

/* Regression answers differ when their relative difference exceeds 1e-3; NaN equals only
 * NaN and an infinity only itself (the relative difference is undefined for both). */
static bool values_differ(double p, double q)
{
    if (isnan(p) || isnan(q))
        return isnan(p) != isnan(q);
    if (isinf(p) || isinf(q))
        return p != q;
    double scale = fmax(fabs(p), fabs(q));
    return scale > 0 && fabs(p - q) / scale > 1e-3;
}

uint64_t ksv_mirror_count_diff(const char *objective, const float *a, const float *b,
                               size_t rows, size_t width)
{
    uint64_t diff = 0;
    bool classes = is_classifier(objective);
    for (size_t r = 0; r < rows; r++) {
        const float *x = a + r * width, *y = b + r * width;
        bool differs = false;
        if (classes) {
            differs = row_class(objective, x, width) != row_class(objective, y, width);
        } else {
            for (size_t k = 0; k < width && !differs; k++)
                differs = values_differ(x[k], y[k]);
        }
        diff += differs;
    }
    return diff;
}

static void run_job(ksv_mirror *m, mirror_job *j)
{
    ksv_engine_revision *rev = j->route.rev;
    double t0 = ksv_mono_s();
    int status = 200;
    uint64_t diff = 0, rows = 0;
    ksv_err err;
    ksv_err_clear(&err);
    size_t width = rev->info.num_outputs;
    float *out = NULL;
    if (rev->info.num_features != j->features) {
        status = 400; /* the canary would refuse this request: a schema change */
    } else if (!(out = malloc(j->rows * (width ? width : 1) * sizeof *out))) {
        status = 503;
    } else if (rev->ops->predict(rev->handle, ksv_registry_mirror_worker(m->reg), j->x, j->rows,
                                 j->features, out, &err) != 0) {
        status = err.status ? err.status : 500;
    } else {
        rows = j->rows;
        diff = width == j->width ? ksv_mirror_count_diff(rev->info.objective, j->answer, out,
                                                         j->rows, width)
                                 : j->rows; /* another output shape: every row differs */
    }
    free(out);
    ksv_registry_finish_mirror(&j->route, status, ksv_mono_s() - t0, rows, diff);
}

static void *mirror_main(void *arg)
{
    ksv_mirror *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->count == 0 && !m->stop)
            pthread_cond_wait(&m->cond, &m->mu);
        if (m->count == 0 && m->stop)
            break;
        mirror_job j = m->jobs[m->head];
        m->head = (m->head + 1) % KSV_MIRROR_QUEUE;
        m->count--;
        m->bytes -= j.bytes;
        pthread_mutex_unlock(&m->mu);
        if (m->stop) /* shutting down: the copy is dropped, not answered */
            atomic_fetch_sub_explicit(&j.route.rev->inflight, 1, memory_order_acq_rel);
        else
            run_job(m, &j);
        free(j.x);
        free(j.answer);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int ksv_mirror_start(ksv_registry *reg, ksv_mirror **out, ksv_err *err)
{
    ksv_mirror *m = calloc(1, sizeof *m);
    if (!m)
        return ksv_err_set(err, 500, "out of memory");
    m->reg = reg;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cond, NULL);
    if (pthread_create(&m->thread, NULL, mirror_main, m) != 0) {
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cond);
        free(m);
        return ksv_err_set(err, 500, "cannot start the mirror thread");
    }
    *out = m;
    return 0;
}

void ksv_mirror_stop(ksv_mirror *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cond);
    free(m);
}

void ksv_mirror_offer(ksv_mirror *m, const ksv_route *served, uint64_t *rng, const float *x,
                      size_t rows, size_t features, const float *out, size_t width)
{
    if (!m || rows == 0)
        return;
    ksv_route route;
    if (!ksv_registry_mirror_route(m->reg, served, rng, &route))
        return;
    size_t xb = rows * features * sizeof(float), ab = rows * width * sizeof(float);
    mirror_job j = {.route = route, .rows = rows, .features = features, .width = width,
                    .bytes = xb + ab};
    pthread_mutex_lock(&m->mu);
    bool room = !m->stop && m->count < KSV_MIRROR_QUEUE && m->bytes + j.bytes <= KSV_MIRROR_MAX_BYTES;
    if (room)
        m->bytes += j.bytes; /* reserved before copying, outside the lock */
    pthread_mutex_unlock(&m->mu);
    if (room) {
        j.x = malloc(xb ? xb : 1);
        j.answer = malloc(ab ? ab : 1);
        room = j.x && j.answer;
        if (room) {
            memcpy(j.x, x, xb);
            memcpy(j.answer, out, ab);
        }
        pthread_mutex_lock(&m->mu);
        if (room && !m->stop && m->count < KSV_MIRROR_QUEUE) {
            m->jobs[(m->head + m->count) % KSV_MIRROR_QUEUE] = j;
            m->count++;
            pthread_cond_signal(&m->cond);
        } else {
            m->bytes -= j.bytes;
            room = false;
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (!room) {
        free(j.x);
        free(j.answer);
        atomic_fetch_add(&m->dropped, 1);
        /* Not counted as an answer: the copy never reached the canary. */
        atomic_fetch_sub_explicit(&route.rev->inflight, 1, memory_order_acq_rel);
    }
}

uint64_t ksv_mirror_dropped(ksv_mirror *m)
{
    return m ? atomic_load(&m->dropped) : 0;
}
