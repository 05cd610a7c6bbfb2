/* openloop.c: a fixed-rate (open-loop) HTTP/1.1 load generator for the latency run of
 * bench/run-http-bench.sh.
 *
 * Why it exists: wrk is closed-loop (a connection sends its next request only when the previous
 * answer is back), so a slow answer delays the requests behind it and they are never measured
 * as late ("coordinated omission"). Debian has no wrk2, so this client does what wrk2 does:
 * every request has an intended send time on a fixed schedule (rate R spread over C keep-alive
 * connections), and its latency is measured from that intended time, not from when the
 * connection was free to send it. A server that keeps up shows its service time; one that falls
 * behind shows the queueing it causes.
 *
 * Usage: openloop -u http://HOST:PORT/PATH -b BODY_FILE -r RATE -d SECONDS
 *                 [-c CONNECTIONS] [-t THREADS] [-w WARMUP_SECONDS] [-T CONTENT_TYPE]
 * It POSTs BODY_FILE (a GET when -b is omitted) and prints one line:
 *   openloop: target_rps=... achieved_rps=... requests=... errors=... unfinished=...
 *             p50_us=... p90_us=... p99_us=... p999_us=... max_us=...
 * Requests whose intended time falls in the warmup are sent but not counted. The exit status is
 * 0 when every counted request got a 2xx answer, 1 otherwise, 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNECTIONS = 10000, MAX_THREADS = 64, RECV_CHUNK = 16384 };
static const int64_t NS_PER_S = 1000000000LL;
/* How long outstanding requests may still complete after the schedule ends. */
static const int64_t DRAIN_GRACE_NS = 2000000000LL;

typedef struct options {
    char host[256];
    char port[16];
    char path[2048];
    char content_type[128];
    char *body; /* owned; NULL for GET */
    size_t body_len;
    double rate;
    double duration_s;
    double warmup_s;
    int connections;
    int threads;
} options;

typedef enum conn_state { CONN_CLOSED, CONN_IDLE, CONN_SENDING, CONN_RECEIVING } conn_state;

typedef struct connection {
    int fd;
    conn_state state;
    size_t sent;          /* bytes of the request written so far */
    char *inbuf;          /* owned */
    size_t in_len, in_cap;
    int64_t due_ns;       /* intended send time of the next (or current) request */
    int64_t interval_ns;  /* gap between this connection's intended send times */
} connection;

typedef struct latency_log {
    int64_t *ns; /* owned */
    size_t len, cap;
    bool oom;
} latency_log;

typedef struct worker {
    const options *opts;
    const struct addrinfo *addr;
    const char *request; /* shared, read-only */
    size_t request_len;
    int n_conns;
    int64_t start_ns, warmup_end_ns, end_ns;
    double rate_share;
    latency_log log;
    uint64_t errors;     /* counted requests without a 2xx answer, or lost to a broken connection */
    uint64_t unfinished; /* counted requests still outstanding when the drain grace ran out */
    char failure[512];   /* set when the worker could not run at all */
} worker;

typedef enum parse_result { PARSE_INCOMPLETE, PARSE_DONE, PARSE_BAD } parse_result;

typedef struct http_response {
    int status;
    size_t total_len; /* header + body */
    bool close_after;
} http_response;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void log_push(latency_log *log, int64_t value)
{
    if (log->oom)
        return;
    if (log->len == log->cap) {
        size_t cap = log->cap ? log->cap * 2 : 4096;
        int64_t *grown = realloc(log->ns, cap * sizeof *grown);
        if (!grown) {
            log->oom = true;
            return;
        }
        log->ns = grown;
        log->cap = cap;
    }
    log->ns[log->len++] = value;
}

static const char *find_crlf(const char *p, const char *end)
{
    for (; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n')
            return p;
    return NULL;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    *value = v;
    return true;
}

static bool value_has_token(const char *v, const char *end, const char *token)
{
    size_t n = strlen(token);
    for (; v + n <= end; v++)
        if (strncasecmp(v, token, n) == 0)
            return true;
    return false;
}

/* Walks a chunked body starting at p; on success sets *body_end past the final CRLF. */
static parse_result parse_chunked(const char *p, const char *end, const char **body_end)
{
    for (;;) {
        const char *eol = find_crlf(p, end);
        if (!eol)
            return PARSE_INCOMPLETE;
        char *after = NULL;
        errno = 0;
        unsigned long long size = strtoull(p, &after, 16);
        if (after == p || errno || (after != eol && *after != ';'))
            return PARSE_BAD;
        p = eol + 2;
        if (size == 0) {
            /* trailers (usually none), then an empty line */
            for (;;) {
                const char *line_end = find_crlf(p, end);
                if (!line_end)
                    return PARSE_INCOMPLETE;
                bool empty = line_end == p;
                p = line_end + 2;
                if (empty) {
                    *body_end = p;
                    return PARSE_DONE;
                }
            }
        }
        if (size > (unsigned long long)(end - p) || (size_t)(end - p) - size < 2)
            return PARSE_INCOMPLETE;
        p += size;
        if (p[0] != '\r' || p[1] != '\n')
            return PARSE_BAD;
        p += 2;
    }
}

/* Decides whether buf holds one whole HTTP/1.x response (Content-Length or chunked). */
static parse_result parse_response(const char *buf, size_t len, http_response *out)
{
    const char *end = buf + len;
    const char *head_end = NULL;
    for (const char *p = buf; p + 3 < end; p++)
        if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            head_end = p + 4;
            break;
        }
    if (!head_end)
        return len > 65536 ? PARSE_BAD : PARSE_INCOMPLETE;

    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return PARSE_BAD;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return PARSE_BAD;
        status = status * 10 + (buf[i] - '0');
    }
    bool http10 = buf[7] == '0';
    bool close_after = http10, keep_alive = false, chunked = false, have_length = false;
    unsigned long long content_length = 0;

    const char *line = find_crlf(buf, head_end) + 2;
    while (line < head_end - 2) {
        const char *eol = find_crlf(line, head_end);
        size_t n = (size_t)(eol - line);
        const char *v;
        if (header_is(line, n, "Content-Length", &v)) {
            char *after = NULL;
            errno = 0;
            content_length = strtoull(v, &after, 10);
            if (after == v || errno)
                return PARSE_BAD;
            have_length = true;
        } else if (header_is(line, n, "Transfer-Encoding", &v)) {
            chunked = value_has_token(v, eol, "chunked");
        } else if (header_is(line, n, "Connection", &v)) {
            if (value_has_token(v, eol, "close"))
                close_after = true;
            if (value_has_token(v, eol, "keep-alive"))
                keep_alive = true;
        }
        line = eol + 2;
    }
    if (http10 && keep_alive)
        close_after = false;

    size_t head_len = (size_t)(head_end - buf);
    if (chunked) {
        const char *body_end = NULL;
        parse_result r = parse_chunked(head_end, end, &body_end);
        if (r != PARSE_DONE)
            return r;
        out->total_len = (size_t)(body_end - buf);
    } else if (have_length || status == 204 || status == 304 || status < 200) {
        if (content_length > (unsigned long long)(len - head_len))
            return PARSE_INCOMPLETE;
        out->total_len = head_len + (size_t)content_length;
    } else {
        return PARSE_BAD; /* body delimited by close: useless for a keep-alive benchmark */
    }
    out->status = status;
    out->close_after = close_after;
    return PARSE_DONE;
}

static void conn_close(connection *c, int epfd)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CONN_CLOSED;
    c->in_len = 0;
}

static bool conn_open(connection *c, int epfd, const struct addrinfo *addr)
{
    int fd = socket(addr->ai_family, addr->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    addr->ai_protocol);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, addr->ai_addr, addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        return false;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return false;
    }
    c->fd = fd;
    c->state = CONN_IDLE;
    c->in_len = 0;
    return true;
}

static void conn_want_write(connection *c, int epfd, bool want)
{
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Records the end of the current request: a latency when it succeeded, an error otherwise. */
static void finish_request(worker *w, connection *c, bool ok, int64_t now)
{
    if (c->due_ns >= w->warmup_end_ns) {
        if (ok)
            log_push(&w->log, now - c->due_ns);
        else
            w->errors++;
    }
    c->due_ns += c->interval_ns;
}

/* Writes what is left of the request; false when the connection broke. */
static bool conn_flush(worker *w, connection *c, int epfd)
{
    while (c->sent < w->request_len) {
        ssize_t n = send(c->fd, w->request + c->sent, w->request_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_want_write(c, epfd, true);
            return true;
        } else {
            return false;
        }
    }
    conn_want_write(c, epfd, false);
    c->state = CONN_RECEIVING;
    return true;
}

static void conn_fail(worker *w, connection *c, int epfd, int64_t now)
{
    if (c->state == CONN_SENDING || c->state == CONN_RECEIVING)
        finish_request(w, c, false, now);
    conn_close(c, epfd);
}

/* Reads what the socket has; completes the request when a whole response is in. */
static void conn_read(worker *w, connection *c, int epfd)
{
    for (;;) {
        if (c->in_cap - c->in_len < RECV_CHUNK) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 2 * RECV_CHUNK;
            char *grown = realloc(c->inbuf, cap);
            if (!grown) {
                conn_fail(w, c, epfd, now_ns());
                return;
            }
            c->inbuf = grown;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->inbuf + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_fail(w, c, epfd, now_ns()); /* EOF or error */
        return;
    }
    if (c->state != CONN_RECEIVING) {
        if (c->in_len > 0) /* bytes nobody asked for: the stream is out of step */
            conn_fail(w, c, epfd, now_ns());
        return;
    }
    http_response resp;
    parse_result r = parse_response(c->inbuf, c->in_len, &resp);
    if (r == PARSE_INCOMPLETE)
        return;
    int64_t now = now_ns();
    if (r == PARSE_BAD || resp.total_len != c->in_len) {
        conn_fail(w, c, epfd, now);
        return;
    }
    finish_request(w, c, resp.status >= 200 && resp.status < 300, now);
    c->in_len = 0;
    c->state = CONN_IDLE;
    if (resp.close_after)
        conn_close(c, epfd);
}

static void arm_timer(int tfd, int64_t when_ns)
{
    struct itimerspec its = { 0 };
    if (when_ns <= 0)
        when_ns = 1; /* zero would disarm */
    its.it_value.tv_sec = when_ns / NS_PER_S;
    its.it_value.tv_nsec = when_ns % NS_PER_S;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    connection *conns = calloc((size_t)w->n_conns, sizeof *conns);
    if (epfd < 0 || tfd < 0 || !conns) {
        snprintf(w->failure, sizeof w->failure, "cannot set up epoll/timerfd/memory: %s",
                 strerror(errno));
        goto out;
    }
    struct epoll_event tev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

    int64_t interval = (int64_t)((double)w->n_conns * (double)NS_PER_S / w->rate_share);
    if (interval < 1)
        interval = 1;
    for (int i = 0; i < w->n_conns; i++) {
        conns[i].fd = -1;
        conns[i].interval_ns = interval;
        /* stagger the connections so the load is smooth, not bursts of n_conns */
        conns[i].due_ns = w->start_ns + interval * i / w->n_conns;
        if (!conn_open(&conns[i], epfd, w->addr)) {
            snprintf(w->failure, sizeof w->failure, "cannot connect to %s:%s: %s",
                     w->opts->host, w->opts->port, strerror(errno));
            goto out;
        }
    }

    struct epoll_event events[256];
    for (;;) {
        int64_t now = now_ns();
        int64_t next_due = INT64_MAX;
        bool outstanding = false;
        for (int i = 0; i < w->n_conns; i++) {
            connection *c = &conns[i];
            if (c->state == CONN_SENDING || c->state == CONN_RECEIVING) {
                outstanding = true;
                continue;
            }
            if (c->due_ns >= w->end_ns)
                continue;
            if (c->due_ns > now) {
                if (c->due_ns < next_due)
                    next_due = c->due_ns;
                continue;
            }
            /* a reconnect happens when the next request is due, so its cost is measured */
            if (c->state == CONN_CLOSED && !conn_open(c, epfd, w->addr)) {
                finish_request(w, c, false, now); /* the server refuses: count it, move on */
                if (c->due_ns < next_due)
                    next_due = c->due_ns;
                continue;
            }
            c->state = CONN_SENDING;
            c->sent = 0;
            if (!conn_flush(w, c, epfd))
                conn_fail(w, c, epfd, now);
            else
                outstanding = true;
        }
        if (next_due == INT64_MAX && !outstanding)
            break; /* schedule done, nothing in flight */
        if (now >= w->end_ns + DRAIN_GRACE_NS)
            break;
        arm_timer(tfd, next_due == INT64_MAX ? w->end_ns + DRAIN_GRACE_NS : next_due);

        int n = epoll_wait(epfd, events, (int)(sizeof events / sizeof events[0]), 1000);
        if (n < 0 && errno != EINTR) {
            snprintf(w->failure, sizeof w->failure, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            connection *c = events[i].data.ptr;
            if (!c) {
                /* the timer only wakes the loop; drain it (EAGAIN when already drained) */
                uint64_t expirations;
                ssize_t drained = read(tfd, &expirations, sizeof expirations);
                (void)drained;
                continue;
            }
            if (c->fd < 0)
                continue;
            if (events[i].events & EPOLLIN)
                conn_read(w, c, epfd);
            if (c->fd >= 0 && (events[i].events & (EPOLLERR | EPOLLHUP)) &&
                !(events[i].events & EPOLLIN)) {
                conn_fail(w, c, epfd, now_ns());
                continue;
            }
            if (c->fd >= 0 && (events[i].events & EPOLLOUT)) {
                if (c->state == CONN_SENDING) {
                    if (!conn_flush(w, c, epfd))
                        conn_fail(w, c, epfd, now_ns());
                } else {
                    conn_want_write(c, epfd, false); /* the connect finished */
                }
            }
        }
    }
    for (int i = 0; i < w->n_conns; i++) {
        connection *c = &conns[i];
        if ((c->state == CONN_SENDING || c->state == CONN_RECEIVING) &&
            c->due_ns >= w->warmup_end_ns)
            w->unfinished++;
    }
out:
    if (conns) {
        for (int i = 0; i < w->n_conns; i++) {
            if (conns[i].fd >= 0)
                close(conns[i].fd);
            free(conns[i].inbuf);
        }
        free(conns);
    }
    if (tfd >= 0)
        close(tfd);
    if (epfd >= 0)
        close(epfd);
    return NULL;
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values, in microseconds. */
static double percentile_us(const int64_t *sorted, size_t n, double pct)
{
    if (n == 0)
        return 0.0;
    double exact = (pct / 100.0) * (double)n;
    size_t rank = (size_t)exact;
    if ((double)rank < exact)
        rank++; /* ceil without libm */
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1000.0;
}

static bool read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        return false;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        free(buf);
        fclose(f);
        return false;
    }
    fclose(f);
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return true;
}

/* Splits http://HOST[:PORT][/PATH]; IPv6 literals in brackets are accepted. */
static bool parse_url(const char *url, options *o)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0)
        return false;
    p += 7;
    const char *host_end;
    const char *host = p;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end)
            return false;
        p = host_end + 1;
    } else {
        p += strcspn(p, ":/");
        host_end = p;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof o->host)
        return false;
    memcpy(o->host, host, hl);
    o->host[hl] = '\0';
    snprintf(o->port, sizeof o->port, "80");
    if (*p == ':') {
        p++;
        size_t pl = strspn(p, "0123456789");
        if (pl == 0 || pl >= sizeof o->port)
            return false;
        memcpy(o->port, p, pl);
        o->port[pl] = '\0';
        p += pl;
    }
    if (*p != '\0' && *p != '/')
        return false;
    if (strlen(*p ? p : "/") >= sizeof o->path)
        return false;
    snprintf(o->path, sizeof o->path, "%s", *p ? p : "/");
    return true;
}

static bool parse_double(const char *s, double min, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno || !(v >= min))
        return false;
    *out = v;
    return true;
}

static void usage(void)
{
    fprintf(stderr, "usage: openloop -u http://HOST:PORT/PATH [-b BODY_FILE] -r RATE -d SECONDS\n"
                    "                [-c CONNECTIONS] [-t THREADS] [-w WARMUP_SECONDS] "
                    "[-T CONTENT_TYPE]\n");
}

static int parse_options(int argc, char **argv, options *o)
{
    const char *url = NULL, *body_path = NULL;
    double conns = 32, threads = 1;
    memset(o, 0, sizeof *o);
    snprintf(o->content_type, sizeof o->content_type, "application/json");
    int opt;
    while ((opt = getopt(argc, argv, "u:b:r:d:c:t:w:T:h")) != -1) {
        bool ok = true;
        switch (opt) {
        case 'u': url = optarg; break;
        case 'b': body_path = optarg; break;
        case 'r': ok = parse_double(optarg, 1e-9, &o->rate); break;
        case 'd': ok = parse_double(optarg, 1e-9, &o->duration_s); break;
        case 'w': ok = parse_double(optarg, 0, &o->warmup_s); break;
        case 'c': ok = parse_double(optarg, 1, &conns) && conns <= MAX_CONNECTIONS; break;
        case 't': ok = parse_double(optarg, 1, &threads) && threads <= MAX_THREADS; break;
        case 'T':
            ok = strlen(optarg) < sizeof o->content_type;
            if (ok)
                snprintf(o->content_type, sizeof o->content_type, "%s", optarg);
            break;
        default: ok = false; break;
        }
        if (!ok) {
            usage();
            return 2;
        }
    }
    if (optind != argc || !url || o->rate <= 0 || o->duration_s <= 0) {
        usage();
        return 2;
    }
    if (!parse_url(url, o)) {
        fprintf(stderr, "openloop: cannot read URL '%s' (want http://HOST:PORT/PATH)\n", url);
        return 2;
    }
    o->connections = (int)conns;
    o->threads = (int)threads;
    if (o->threads > o->connections)
        o->threads = o->connections;
    if (body_path && !read_file(body_path, &o->body, &o->body_len)) {
        fprintf(stderr, "openloop: cannot read %s: %s\n", body_path, strerror(errno));
        return 2;
    }
    return 0;
}

static char *format_request(const options *o, size_t *len)
{
    const char *method = o->body ? "POST" : "GET";
    char head[4096];
    int n;
    if (o->body)
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, o->path, o->host, o->port, o->content_type, o->body_len);
    else
        n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", method,
                     o->path, o->host, o->port);
    if (n < 0 || (size_t)n >= sizeof head)
        return NULL;
    size_t total = (size_t)n + o->body_len;
    char *req = malloc(total);
    if (!req)
        return NULL;
    memcpy(req, head, (size_t)n);
    if (o->body_len)
        memcpy(req + n, o->body, o->body_len);
    *len = total;
    return req;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc;

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *addr = NULL;
    int gai = getaddrinfo(o.host, o.port, &hints, &addr);
    if (gai != 0) {
        fprintf(stderr, "openloop: cannot resolve %s:%s: %s\n", o.host, o.port,
                gai_strerror(gai));
        free(o.body);
        return 2;
    }
    size_t request_len = 0;
    char *request = format_request(&o, &request_len);
    worker *workers = calloc((size_t)o.threads, sizeof *workers);
    pthread_t *tids = calloc((size_t)o.threads, sizeof *tids);
    bool *started = calloc((size_t)o.threads, sizeof *started);
    if (!request || !workers || !tids || !started) {
        fprintf(stderr, "openloop: out of memory\n");
        rc = 2;
        goto done;
    }

    /* a common start a little ahead, so every thread has connected before the clock runs */
    int64_t start = now_ns() + NS_PER_S / 10;
    int64_t warmup_end = start + (int64_t)(o.warmup_s * (double)NS_PER_S);
    int64_t end = warmup_end + (int64_t)(o.duration_s * (double)NS_PER_S);
    for (int t = 0; t < o.threads; t++) {
        worker *w = &workers[t];
        int share = o.connections / o.threads + (t < o.connections % o.threads ? 1 : 0);
        w->opts = &o;
        w->addr = addr;
        w->request = request;
        w->request_len = request_len;
        w->n_conns = share;
        w->start_ns = start;
        w->warmup_end_ns = warmup_end;
        w->end_ns = end;
        w->rate_share = o.rate * share / o.connections;
        started[t] = pthread_create(&tids[t], NULL, worker_run, w) == 0;
        if (!started[t])
            snprintf(w->failure, sizeof w->failure, "cannot start a thread");
    }

    size_t total = 0;
    uint64_t errors = 0, unfinished = 0;
    bool failed = false;
    for (int t = 0; t < o.threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        if (workers[t].failure[0]) {
            fprintf(stderr, "openloop: %s\n", workers[t].failure);
            failed = true;
        }
        if (workers[t].log.oom) {
            fprintf(stderr, "openloop: out of memory for latencies\n");
            failed = true;
        }
        total += workers[t].log.len;
        errors += workers[t].errors;
        unfinished += workers[t].unfinished;
    }
    int64_t *all = total ? malloc(total * sizeof *all) : NULL;
    if (total && !all) {
        fprintf(stderr, "openloop: out of memory\n");
        rc = 2;
        goto done;
    }
    size_t at = 0;
    for (int t = 0; t < o.threads; t++) {
        if (workers[t].log.len)
            memcpy(all + at, workers[t].log.ns, workers[t].log.len * sizeof *all);
        at += workers[t].log.len;
    }
    if (total)
        qsort(all, total, sizeof *all, compare_i64);
    printf("openloop: target_rps=%.0f achieved_rps=%.0f requests=%zu errors=%" PRIu64
           " unfinished=%" PRIu64 " p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f"
           " max_us=%.1f\n",
           o.rate, (double)total / o.duration_s, total, errors, unfinished,
           percentile_us(all, total, 50), percentile_us(all, total, 90),
           percentile_us(all, total, 99), percentile_us(all, total, 99.9),
           total ? (double)all[total - 1] / 1000.0 : 0.0);
    free(all);
    rc = (failed || errors || unfinished || total == 0) ? 1 : 0;

done:
    if (workers)
        for (int t = 0; t < o.threads; t++)
            free(workers[t].log.ns);
    free(workers);
    free(tids);
    free(started);
    free(request);
    free(o.body);
    freeaddrinfo(addr);
    return rc;
}
