/* ssh_tunnel.c: the forwarding thread behind a local port: one SSH session, any number of
 * direct-tcpip channels, keepalive pings and link-loss detection (see ssh_tunnel.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, pipe2 */
#endif
#include "common/clock.h"
#include "remote/ssh_tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "remote/ssh_session_internal.h"

#define CONN_BUF 32768
#define PING_INTERVAL_MS 500.0

typedef enum { CONN_OPENING, CONN_OPEN, CONN_CLOSING } conn_state;

typedef struct conn {
    int fd;                     /* the local client's socket; -1 once closed */
    LIBSSH2_CHANNEL *ch;
    conn_state state;
    unsigned char up[CONN_BUF];    /* client -> node, not yet written to the channel */
    size_t up_len;
    unsigned char down[CONN_BUF];  /* node -> client, not yet written to the socket */
    size_t down_len, down_off;
    bool client_eof;            /* the client will send nothing more */
    bool eof_sent;              /* ... and the channel was told so */
    bool node_eof;              /* the node will send nothing more */
} conn;

struct ksv_ssh_tunnel {
    ksv_ssh_session *s;
    char remote_host[256];
    int remote_port;
    int listen_fd;
    int local_port;
    char base_url[64];
    int wake[2];                /* a byte on wake[1] interrupts the thread's poll */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    atomic_bool alive;
    atomic_long accepted;
    atomic_long open_now;
    pthread_mutex_t mu;         /* guards down_reason */
    ksv_err down_reason;
    /* owned by the thread */
    conn **conns;
    size_t n_conns, cap_conns;
};

static bool retry_code(long rc)
{
    return rc == LIBSSH2_ERROR_EAGAIN || rc == LIBSSH2_ERROR_BAD_USE;
}

/* Marks the link down; the reason reads "NODE: " and then fmt's text. */
static void link_down(ksv_ssh_tunnel *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void link_down(ksv_ssh_tunnel *t, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&t->mu);
    if (atomic_load(&t->alive))
        ksv_err_set(&t->down_reason, 503, "%s: %s", t->s->name, why);
    pthread_mutex_unlock(&t->mu);
    t->s->broken = true;
    atomic_store(&t->alive, false);
}

static void link_down_rc(ksv_ssh_tunnel *t, int rc)
{
    ksv_err e;
    ksv_ssh_fail(t->s, rc, 503, "SSH link lost", &e);
    pthread_mutex_lock(&t->mu);
    if (atomic_load(&t->alive))
        t->down_reason = e;
    pthread_mutex_unlock(&t->mu);
    t->s->broken = true;
    atomic_store(&t->alive, false);
}

static void conn_close_local(ksv_ssh_tunnel *t, conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        atomic_fetch_sub(&t->open_now, 1);
    }
}

static void conn_begin_close(ksv_ssh_tunnel *t, conn *c)
{
    conn_close_local(t, c);
    c->state = CONN_CLOSING;
}

static int add_conn(ksv_ssh_tunnel *t, int fd)
{
    if (t->n_conns == t->cap_conns) {
        size_t cap = t->cap_conns ? t->cap_conns * 2 : 8;
        conn **p = realloc(t->conns, cap * sizeof *p);
        if (!p)
            return -1;
        t->conns = p;
        t->cap_conns = cap;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->fd = fd;
    c->state = CONN_OPENING;
    t->conns[t->n_conns++] = c;
    atomic_fetch_add(&t->accepted, 1);
    atomic_fetch_add(&t->open_now, 1);
    return 0;
}

static void remove_conn(ksv_ssh_tunnel *t, size_t i)
{
    conn_close_local(t, t->conns[i]);
    free(t->conns[i]);
    t->conns[i] = t->conns[--t->n_conns];
}

/* Moves bytes both ways for one open connection. Returns true when something moved;
 * a fatal libssh2 code lands in *fatal. */
static bool pump_conn(ksv_ssh_tunnel *t, conn *c, int *fatal)
{
    bool progress = false;
    if (!c->client_eof && c->up_len < CONN_BUF) {
        ssize_t n = recv(c->fd, c->up + c->up_len, CONN_BUF - c->up_len, 0);
        if (n > 0) {
            c->up_len += (size_t)n;
            progress = true;
        } else if (n == 0) {
            c->client_eof = true;
            progress = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_begin_close(t, c);   /* the client reset: drop the channel too */
            return true;
        }
    }
    if (c->up_len > 0) {
        ssize_t w = libssh2_channel_write(c->ch, (const char *)c->up, c->up_len);
        if (w > 0) {
            memmove(c->up, c->up + w, c->up_len - (size_t)w);
            c->up_len -= (size_t)w;
            progress = true;
        } else if (!retry_code(w)) {
            if (ksv_ssh_rc_fatal((int)w))
                *fatal = (int)w;
            conn_begin_close(t, c);
            return true;
        }
    }
    if (c->client_eof && c->up_len == 0 && !c->eof_sent) {
        int r = libssh2_channel_send_eof(c->ch);
        if (r == 0) {
            c->eof_sent = true;
            progress = true;
        } else if (!retry_code(r)) {
            if (ksv_ssh_rc_fatal(r))
                *fatal = r;
            conn_begin_close(t, c);
            return true;
        }
    }
    if (c->down_off == c->down_len && !c->node_eof) {
        c->down_off = c->down_len = 0;
        ssize_t n = libssh2_channel_read(c->ch, (char *)c->down, CONN_BUF);
        if (n > 0) {
            c->down_len = (size_t)n;
            progress = true;
        } else if (n < 0 && !retry_code(n)) {
            if (ksv_ssh_rc_fatal((int)n))
                *fatal = (int)n;
            conn_begin_close(t, c);
            return true;
        } else if (libssh2_channel_eof(c->ch)) {
            c->node_eof = true;
            progress = true;
        }
    }
    if (c->down_off < c->down_len) {
        ssize_t w = send(c->fd, c->down + c->down_off, c->down_len - c->down_off,
                         MSG_NOSIGNAL);
        if (w > 0) {
            c->down_off += (size_t)w;
            progress = true;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_begin_close(t, c);
            return true;
        }
    }
    /* The node closed and everything it sent is delivered: close both ends, as the engine
     * closes its whole socket (an HTTP server does not read after it closes). A client
     * that closed first waits for the node's EOF, i.e. for its answer. */
    if (c->node_eof && c->down_off == c->down_len) {
        conn_begin_close(t, c);
        progress = true;
    }
    return progress;
}

static void close_all_local(ksv_ssh_tunnel *t)
{
    if (t->listen_fd >= 0) {
        close(t->listen_fd);
        t->listen_fd = -1;
    }
    for (size_t i = 0; i < t->n_conns; i++)
        conn_close_local(t, t->conns[i]);
}

static void *forward_thread(void *arg)
{
    ksv_ssh_tunnel *t = arg;
    ksv_ssh_session *s = t->s;
    double last_ping_done = ksv_mono_ms();
    double ping_started = 0;
    bool ping_in_flight = false;
    /* Worst case, a link that freezes right after a ping is declared dead after
     * interval + dead_after_ms. */
    double interval = (double)s->dead_after_ms / 3.0;
    if (interval > PING_INTERVAL_MS)
        interval = PING_INTERVAL_MS;
    struct pollfd *pfds = NULL;
    size_t pfd_cap = 0;
    while (!atomic_load(&t->stop) && atomic_load(&t->alive)) {
        bool progress = false;
        int fatal = 0;
        double now = ksv_mono_ms();

        /* New local connections. */
        for (;;) {
            int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            if (add_conn(t, fd) != 0)
                close(fd);
            progress = true;
        }

        /* libssh2 opens one channel at a time: only the oldest waiting connection asks. */
        for (size_t i = 0; i < t->n_conns; i++) {
            conn *c = t->conns[i];
            if (c->state != CONN_OPENING)
                continue;
            c->ch = libssh2_channel_direct_tcpip_ex(s->ssh, t->remote_host, t->remote_port,
                                                    "127.0.0.1", t->local_port);
            if (c->ch) {
                c->state = CONN_OPEN;
                progress = true;
            } else {
                int e = libssh2_session_last_errno(s->ssh);
                if (ksv_ssh_rc_fatal(e)) {
                    fatal = e;
                } else if (!retry_code(e)) {
                    /* Refused by the node (nothing listens there): the client sees the
                     * connection close, as with a refused connect. */
                    conn_close_local(t, c);
                    free(c);
                    t->conns[i] = t->conns[--t->n_conns];
                    progress = true;
                }
            }
            break;
        }

        for (size_t i = 0; i < t->n_conns && !fatal; i++) {
            conn *c = t->conns[i];
            if (c->state == CONN_OPEN && pump_conn(t, c, &fatal))
                progress = true;
        }
        for (size_t i = 0; i < t->n_conns && !fatal;) {
            conn *c = t->conns[i];
            if (c->state == CONN_CLOSING) {
                int r = libssh2_channel_free(c->ch);
                if (!retry_code(r)) {
                    if (ksv_ssh_rc_fatal(r))
                        fatal = r;
                    c->ch = NULL;
                    remove_conn(t, i);
                    progress = true;
                    continue;
                }
            }
            i++;
        }

        /* Keepalive: a ping unanswered for dead_after_ms means the link is gone. */
        if (!fatal) {
            if (!ping_in_flight && now - last_ping_done >= interval) {
                ping_in_flight = true;
                ping_started = now;
            }
            if (ping_in_flight) {
                int r = ksv_ssh_ping_step(s);
                if (r == 1) {
                    ping_in_flight = false;
                    last_ping_done = ksv_mono_ms();
                } else if (r < 0) {
                    fatal = r;
                } else if (now - ping_started > (double)s->dead_after_ms) {
                    link_down(t, "SSH link lost: no keepalive answer within %ld ms",
                              s->dead_after_ms);
                    break;
                }
            }
        }
        if (fatal) {
            link_down_rc(t, fatal);
            break;
        }
        if (progress)
            continue;

        /* Nothing moved: sleep until a socket is ready, a ping is due, or we are woken. */
        size_t need = 3 + t->n_conns;
        if (need > pfd_cap) {
            struct pollfd *p = realloc(pfds, need * sizeof *p);
            if (!p) {
                link_down(t, "tunnel: out of memory");
                break;
            }
            pfds = p;
            pfd_cap = need;
        }
        size_t n = 0;
        pfds[n++] = (struct pollfd){.fd = t->wake[0], .events = POLLIN};
        pfds[n++] = (struct pollfd){.fd = t->listen_fd, .events = POLLIN};
        int dir = libssh2_session_block_directions(s->ssh);
        short ssh_events = POLLIN;
        if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
            ssh_events |= POLLOUT;
        pfds[n++] = (struct pollfd){.fd = s->fd, .events = ssh_events};
        for (size_t i = 0; i < t->n_conns; i++) {
            conn *c = t->conns[i];
            short ev = 0;
            if (c->state == CONN_OPEN && c->fd >= 0) {
                if (!c->client_eof && c->up_len < CONN_BUF)
                    ev |= POLLIN;
                if (c->down_off < c->down_len)
                    ev |= POLLOUT;
            }
            pfds[n++] = (struct pollfd){.fd = ev ? c->fd : -1, .events = ev};
        }
        double wait = ping_in_flight ? (double)s->dead_after_ms - (now - ping_started)
                                     : interval - (now - last_ping_done);
        if (wait < 1)
            wait = 1;
        if (wait > 1000)
            wait = 1000;
        int ready = poll(pfds, n, (int)wait);
        /* Bytes on the SSH socket that no channel read claims (a rekey, a server keepalive,
         * data queued for a busy client): a ping makes libssh2 take them in, instead of
         * poll waking at once, again and again. */
        if (ready > 0 && (pfds[2].revents & (POLLIN | POLLHUP | POLLERR)) && !ping_in_flight) {
            ping_in_flight = true;
            ping_started = ksv_mono_ms();
        }
        if (ready > 0 && (pfds[0].revents & POLLIN)) {
            char drain[64];
            while (read(t->wake[0], drain, sizeof drain) > 0) {
            }
        }
    }
    free(pfds);
    close_all_local(t);
    return NULL;
}

int ksv_ssh_tunnel_start(ksv_ssh_session *s, const char *remote_host, int remote_port,
                         ksv_ssh_tunnel **out, ksv_err *err)
{
    *out = NULL;
    if (!remote_host || strlen(remote_host) >= 256 || remote_port <= 0 || remote_port > 65535) {
        ksv_ssh_session_close(s);
        return ksv_err_set(err, 400, "tunnel: bad remote address");
    }
    if (s->broken) {
        ksv_err_set(err, 503, "%s: the SSH link is down", s->name);
        ksv_ssh_session_close(s);
        return -1;
    }
    ksv_ssh_tunnel *t = calloc(1, sizeof *t);
    if (!t) {
        ksv_ssh_session_close(s);
        return ksv_err_set(err, 500, "out of memory");
    }
    t->s = s;
    t->listen_fd = -1;
    t->wake[0] = t->wake[1] = -1;
    snprintf(t->remote_host, sizeof t->remote_host, "%s", remote_host);
    t->remote_port = remote_port;
    atomic_init(&t->stop, false);
    atomic_init(&t->alive, true);
    atomic_init(&t->accepted, 0);
    atomic_init(&t->open_now, 0);
    pthread_mutex_init(&t->mu, NULL);

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    t->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->listen_fd < 0 || bind(t->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(t->listen_fd, 128) != 0 ||
        getsockname(t->listen_fd, (struct sockaddr *)&a, &alen) != 0 ||
        pipe2(t->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        ksv_err_set(err, 500, "tunnel: cannot listen on 127.0.0.1: %s", strerror(errno));
        ksv_ssh_tunnel_close(t);
        return -1;
    }
    t->local_port = ntohs(a.sin_port);
    snprintf(t->base_url, sizeof t->base_url, "http://127.0.0.1:%d", t->local_port);
    int rc = pthread_create(&t->thread, NULL, forward_thread, t);
    if (rc != 0) {
        ksv_err_set(err, 500, "tunnel: cannot start its thread: %s", strerror(rc));
        ksv_ssh_tunnel_close(t);
        return -1;
    }
    t->thread_started = true;
    *out = t;
    return 0;
}

const char *ksv_ssh_tunnel_base_url(const ksv_ssh_tunnel *t)
{
    return t->base_url;
}

int ksv_ssh_tunnel_local_port(const ksv_ssh_tunnel *t)
{
    return t->local_port;
}

bool ksv_ssh_tunnel_alive(ksv_ssh_tunnel *t, ksv_err *why)
{
    if (atomic_load(&t->alive))
        return true;
    if (why) {
        pthread_mutex_lock(&t->mu);
        *why = t->down_reason;
        pthread_mutex_unlock(&t->mu);
    }
    return false;
}

void ksv_ssh_tunnel_counts(ksv_ssh_tunnel *t, long *accepted, long *open_now)
{
    if (accepted)
        *accepted = atomic_load(&t->accepted);
    if (open_now)
        *open_now = atomic_load(&t->open_now);
}

void ksv_ssh_tunnel_close(ksv_ssh_tunnel *t)
{
    if (!t)
        return;
    if (t->thread_started) {
        atomic_store(&t->stop, true);
        ssize_t ignored = write(t->wake[1], "x", 1);
        (void)ignored;
        pthread_join(t->thread, NULL);
    }
    close_all_local(t);
    /* The thread is gone: this thread may use the session again, to free the channels
     * (bounded by session close's short timeout) and the session itself. */
    libssh2_session_set_timeout(t->s->ssh, 1000);
    libssh2_session_set_blocking(t->s->ssh, 1);
    for (size_t i = 0; i < t->n_conns; i++) {
        if (t->conns[i]->ch && !t->s->broken)
            libssh2_channel_free(t->conns[i]->ch);
        free(t->conns[i]);
    }
    free(t->conns);
    ksv_ssh_session_close(t->s);
    for (int i = 0; i < 2; i++)
        if (t->wake[i] >= 0)
            close(t->wake[i]);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
