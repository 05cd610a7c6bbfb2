/* conn_guard.c: the header-block deadline (conn_guard.h). */
#include "engine/conn_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"

struct ksv_guarded_conn {
    int fd;
    double deadline;              /* monotonic seconds; 0 when disarmed */
    bool cut;
    ksv_guarded_conn *prev, *next;
};

struct ksv_conn_guard {
    double header_timeout, keepalive_timeout;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    ksv_guarded_conn *head;
    unsigned long long cut_total;
    pthread_t reaper;
};

/* Scans every quarter second: a connection overstays by at most that. The scan is linear
 * in open connections, which the connection limit bounds (a few thousand: microseconds). */
static void *reaper_main(void *arg)
{
    ksv_conn_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        double now = ksv_mono_s();
        for (ksv_guarded_conn *c = g->head; c; c = c->next) {
            if (c->deadline > 0 && now >= c->deadline && !c->cut) {
                shutdown(c->fd, SHUT_RDWR);
                c->cut = true;
                g->cut_total++;
            }
        }
        struct timespec until = ksv_timespec_in(CLOCK_REALTIME, 0.25);
        pthread_cond_timedwait(&g->wake, &g->lock, &until);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int ksv_conn_guard_start(double header_timeout_s, double keepalive_timeout_s,
                         ksv_conn_guard **out, ksv_err *err)
{
    ksv_conn_guard *g = calloc(1, sizeof *g);
    if (!g)
        return ksv_err_set(err, 500, "out of memory");
    g->header_timeout = header_timeout_s;
    g->keepalive_timeout = keepalive_timeout_s;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    int e = pthread_create(&g->reaper, NULL, reaper_main, g);
    if (e != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return ksv_err_set(err, 500, "starting the header-deadline thread: %s", strerror(e));
    }
    *out = g;
    return 0;
}

void ksv_conn_guard_stop(ksv_conn_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->reaper, NULL);
    while (g->head) {
        ksv_guarded_conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

ksv_guarded_conn *ksv_conn_guard_open(ksv_conn_guard *g, int fd)
{
    ksv_guarded_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    pthread_mutex_lock(&g->lock);
    c->deadline = ksv_mono_s() + g->header_timeout;
    c->next = g->head;
    if (g->head)
        g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->lock);
    return c;
}

void ksv_conn_guard_headers_done(ksv_conn_guard *g, ksv_guarded_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    c->deadline = 0;
    pthread_mutex_unlock(&g->lock);
}

void ksv_conn_guard_request_done(ksv_conn_guard *g, ksv_guarded_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    c->deadline = ksv_mono_s() + g->keepalive_timeout;
    pthread_mutex_unlock(&g->lock);
}

void ksv_conn_guard_close(ksv_conn_guard *g, ksv_guarded_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&g->lock);
    free(c);
}

unsigned long long ksv_conn_guard_cut_total(ksv_conn_guard *g)
{
    pthread_mutex_lock(&g->lock);
    unsigned long long n = g->cut_total;
    pthread_mutex_unlock(&g->lock);
    return n;
}
