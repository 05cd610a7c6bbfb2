/* http_server.c: libmicrohttpd glue. Owns connections and bodies; hands complete requests
 * to the handlers; adds ksv-revision and x-request-id to every response. */
#include "common/clock.h"
#include "engine/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "engine/conn_guard.h"

typedef struct conn_ctx conn_ctx;

struct ksv_http_server {
    struct MHD_Daemon *daemon;
    const ksv_engine_info *engine;
    ksv_http_limits limits;
    double request_timeout;
    pthread_key_t worker_key;
    _Atomic unsigned next_worker;
    _Atomic long active;          /* requests between their headers and their completion */
    _Atomic bool draining;        /* SIGTERM: new connections are turned away */
    _Atomic size_t inflight;      /* bytes reserved against limits.inflight_bytes */
    ksv_conn_guard *guard;        /* the header-block deadline */
    /* Heavy requests wait here for the heavy threads (their connections suspended). */
    pthread_mutex_t heavy_lock;
    pthread_cond_t heavy_wake;
    conn_ctx *heavy_head, *heavy_tail;
    bool heavy_stop;
    pthread_t *heavy_threads;
    unsigned n_heavy;
};

/* One per connection while a request is being received. */
struct conn_ctx {
    double start;
    char request_id[64];
    char *body;                   /* accumulated body when it arrives in pieces */
    size_t len, cap;
    size_t reserved;              /* bytes counted in srv->inflight for this request */
    bool answered;                /* response computed during the upload */
    bool heavy;                   /* inferred on a heavy thread */
    bool queued;                  /* handed to the heavy threads (connection suspended) */
    struct MHD_Connection *conn;
    const char *method, *url;     /* libmicrohttpd's, valid until the request completes */
    conn_ctx *next_heavy;
    bool async_started;           /* resp.async's job runs; the connection waits for it */
    ksv_http_response resp;
    /* Cold start or concurrency limit: the request is parked (MHD-suspended) until the
     * revision is loaded or a slot is handed to it. */
    bool suspended;
    ksv_cold_waiter waiter;
};

void ksv_http_error(ksv_http_response *resp, int status, const char *message)
{
    resp->status = status;
    resp->content_type = NULL;     /* errors are JSON, even to a binary request */
    resp->inference_header_len = 0;
    ksv_sb_reset(&resp->body);
    ksv_sb_puts(&resp->body, "{\"error\":");
    ksv_sb_json_str(&resp->body, message);
    ksv_sb_putc(&resp->body, '}');
}

/* ------------------------------------------------------------------ worker state */

static void worker_free(void *p)
{
    ksv_worker *w = p;
    if (!w)
        return;
    ksv_tensor_req_free(&w->tensor);
    free(w->out);
    free(w);
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed)
            seed = 0;
        close(fd);
    }
    if (!seed)
        seed = (uint64_t)ksv_mono_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)pthread_self();
    return seed | 1;
}

/* A worker keeps its tensor and output buffers between requests (the hot path does not
 * allocate), but not the ones a large request grew: kept, 16 large requests once left
 * 279 MB held after they were answered. */
#define WORKER_KEEP_FLOATS ((size_t)1 << 20)

static void worker_trim(ksv_worker *w)
{
    if (w->tensor.cap > WORKER_KEEP_FLOATS)
        ksv_tensor_req_free(&w->tensor);
    if (w->out_cap > WORKER_KEEP_FLOATS) {
        free(w->out);
        w->out = NULL;
        w->out_cap = 0;
    }
}

static ksv_worker *current_worker(ksv_http_server *srv)
{
    ksv_worker *w = pthread_getspecific(srv->worker_key);
    if (w)
        return w;
    w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    unsigned index = atomic_fetch_add(&srv->next_worker, 1);
    /* MHD runs exactly `threads` pool threads; the modulo only guards the impossible. */
    w->index = index % (srv->engine->threads ? srv->engine->threads : 1);
    w->rng = random_seed();
    snprintf(w->id_prefix, sizeof w->id_prefix, "%08x", (unsigned)(w->rng >> 32));
    ksv_tensor_req_init(&w->tensor);
    pthread_setspecific(srv->worker_key, w);
    return w;
}

/* -------------------------------------------------------------------- responses */

static void free_body(void *p)
{
    free(p);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, conn_ctx *ctx)
{
    ksv_http_response *resp = &ctx->resp;
    if (resp->body.oom)
        ksv_http_error(resp, 503, "out of memory building the response");
    size_t len;
    char *body = ksv_sb_steal(&resp->body, &len);
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(len, body, free_body);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type : "application/json");
    MHD_add_response_header(r, "x-request-id", ctx->request_id);
    if (resp->revision[0])
        MHD_add_response_header(r, "ksv-revision", resp->revision);
    if (resp->inference_header_len > 0) {
        char n[24];
        snprintf(n, sizeof n, "%zu", resp->inference_header_len);
        MHD_add_response_header(r, "Inference-Header-Content-Length", n);
    }
    if (resp->etag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, resp->etag);
    if (resp->state_etag[0])
        MHD_add_response_header(r, "X-Ksv-State-ETag", resp->state_etag);
    if (resp->status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (resp->retry_after > 0) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", resp->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ------------------------------------------------------- responses finished later */

static void async_wake(void *conn)
{
    MHD_resume_connection(conn);
}

static void async_park(void *conn)
{
    MHD_suspend_connection(conn);
}

/* libmicrohttpd pulls a streamed body through this; a job with nothing to give parks the
 * connection (suspends it) and resumes it when data comes, so no thread spins or blocks. */
static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    conn_ctx *ctx = cls;
    (void)pos;
    long n = ctx->resp.async.ops->read(ctx->resp.async.job, buf, max, async_park, ctx->conn);
    if (n > 0)
        return (ssize_t)n;
    if (n == 0)
        return 0;
    return n == -1 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The handler handed the request to a job: park the connection until the job's head is
 * ready, then answer with its buffered body or its stream. */
static enum MHD_Result answer_async(struct MHD_Connection *conn, conn_ctx *ctx)
{
    const ksv_http_async *a = &ctx->resp.async;
    if (!ctx->async_started) {
        ctx->async_started = true;
        ctx->conn = conn;
        MHD_suspend_connection(conn);
        a->ops->start(a->job, async_wake, conn);
        return MHD_YES;
    }
    if (!a->ops->head(a->job, &ctx->resp))
        return send_response(conn, ctx);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_stream, ctx, NULL);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            ctx->resp.content_type ? ctx->resp.content_type : "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "x-request-id", ctx->request_id);
    if (ctx->resp.revision[0])
        MHD_add_response_header(r, "ksv-revision", ctx->resp.revision);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)ctx->resp.status, r);
    MHD_destroy_response(r);
    return ret;
}

/* libmicrohttpd (0.9.75) refuses to queue a response while the body is still arriving
 * (MHD_queue_response fails, and returning MHD_NO alone drops the connection without a
 * word). Errors found mid-body (408, 413, out of memory) are therefore written straight to
 * the socket, with Connection: close, before MHD_NO makes MHD close it. MHD has nothing of its
 * own in flight on the socket at this point: it sends only after the request is complete. */
static enum MHD_Result answer_mid_body(struct MHD_Connection *conn, conn_ctx *ctx)
{
    ksv_http_response *resp = &ctx->resp;
    ctx->answered = true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || resp->body.oom)
        return MHD_NO;
    const char *reason = MHD_get_reason_phrase_for((unsigned)resp->status);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "x-request-id: %s\r\n\r\n",
                     resp->status, reason ? reason : "Error", resp->body.len, ctx->request_id);
    if (n <= 0 || (size_t)n >= sizeof head)
        return MHD_NO;
    struct iovec iov[2] = {{.iov_base = head, .iov_len = (size_t)n},
                           {.iov_base = resp->body.data, .iov_len = resp->body.len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    /* A small answer on a socket with nothing else queued fits the send buffer; a client
     * that does not read gets what fits, which is all it deserves. */
    if (sendmsg(ci->connect_fd, &msg, MSG_NOSIGNAL) > 0)
        shutdown(ci->connect_fd, SHUT_WR);
    return MHD_NO;
}

/* Request ids are echoed when they look like ids (printable, short) and generated
 * otherwise, so a header can never smuggle control characters into logs. */
static void set_request_id(conn_ctx *ctx, struct MHD_Connection *conn, ksv_worker *w)
{
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-request-id");
    if (given) {
        size_t n = strlen(given);
        bool ok = n > 0 && n < sizeof ctx->request_id;
        for (size_t i = 0; ok && i < n; i++)
            ok = given[i] > 0x20 && given[i] < 0x7f && given[i] != '"' && given[i] != '\\';
        if (ok) {
            memcpy(ctx->request_id, given, n + 1);
            return;
        }
    }
    if (w)
        snprintf(ctx->request_id, sizeof ctx->request_id, "%s-%08llx", w->id_prefix,
                 (unsigned long long)++w->next_id);
    else
        snprintf(ctx->request_id, sizeof ctx->request_id, "ksv-%llx",
                 (unsigned long long)(ksv_mono_s() * 1e9));
}

static void dispatch(ksv_http_server *srv, struct MHD_Connection *conn, conn_ctx *ctx,
                     const char *method, const char *url, const char *body, size_t len)
{
    ksv_worker *w = current_worker(srv);
    if (!w) {
        ksv_http_error(&ctx->resp, 503, "out of memory");
        return;
    }
    ksv_http_request req = {
        .method = method,
        .path = url,
        .body = body,
        .body_len = len,
        .request_id = ctx->request_id,
        .authorization =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        .inference_header_length =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Inference-Header-Content-Length"),
        .if_none_match =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH),
        .start = ctx->start,
        .worker = w,
        .engine = srv->engine,
        .cold = &ctx->waiter,
        .connection = conn,
    };
    ctx->resp.wait_cold = false;
    ctx->resp.retry_after = 0;
    ctx->resp.etag[0] = '\0';
    ctx->resp.state_etag[0] = '\0';
    if (strncmp(url, "/ksv/v1/", 8) == 0 || strcmp(url, "/ksv/v1") == 0)
        ksv_handle_admin(&req, &ctx->resp);
    else
        ksv_handle_data_plane(&req, &ctx->resp);
    ctx->answered = true;
    if (ctx->resp.wait_cold) {
        /* Parked until a cold start: keep the body, which may be MHD's buffer for now. */
        if (body != ctx->body && len > 0) {
            char *copy = malloc(len);
            if (!copy) {
                ctx->resp.wait_cold = false;
                ksv_http_error(&ctx->resp, 503, "out of memory keeping a waiting request");
                return;
            }
            memcpy(copy, body, len);
            free(ctx->body);
            ctx->body = copy;
            ctx->len = ctx->cap = len;
        }
        return;
    }
    int status = ctx->resp.status;
    /* A probe that finds the engine still loading is routine, not an error. */
    bool probe = strncmp(url, "/v2/health/", 11) == 0;
    if (status >= 500 && !probe)
        ksv_log(KSV_LOG_ERROR, ctx->request_id, "%s %s -> %d %.*s", method, url, status,
                (int)(ctx->resp.body.len < 300 ? ctx->resp.body.len : 300),
                ctx->resp.body.data ? ctx->resp.body.data : "");
    else if (status >= 400)
        ksv_log(KSV_LOG_DEBUG, ctx->request_id, "%s %s -> %d %.*s", method, url, status,
                (int)(ctx->resp.body.len < 300 ? ctx->resp.body.len : 300),
                ctx->resp.body.data ? ctx->resp.body.data : "");
    worker_trim(w);
    ctx->answered = true;
}

/* ------------------------------------------------------------ cold-start parking */

static void suspend_conn(void *cookie)
{
    conn_ctx *ctx = cookie;
    ctx->suspended = true;
    MHD_suspend_connection(ctx->conn);
}

/* Called once by the cold-start queue; the context may be freed as soon as this returns. */
static void resume_conn(void *cookie)
{
    conn_ctx *ctx = cookie;
    MHD_resume_connection(ctx->conn);
}

/* The handler asked to wait for a cold start: queue and suspend the connection, or answer
 * at once (queue full: 503 with Retry-After; no longer cold: dispatch again). */
static enum MHD_Result park_cold(ksv_http_server *srv, struct MHD_Connection *conn,
                                 conn_ctx *ctx, const char *method, const char *url)
{
    /* A revision that flips between cold and warm under us is routed a few times at most. */
    for (int attempt = 0; attempt < 4 && ctx->resp.wait_cold; attempt++) {
        ctx->conn = conn;
        ctx->waiter.wake = resume_conn;
        ctx->waiter.cookie = ctx;
        int retry_after = 1;
        ksv_err err;
        ksv_err_clear(&err);
        int rc = ksv_registry_cold_wait(srv->engine->registry, &ctx->waiter, suspend_conn, ctx,
                                        &retry_after, &err);
        if (rc == 0)
            return MHD_YES; /* parked; resume_cold answers */
        ctx->resp.wait_cold = false;
        if (rc < 0) {
            ksv_http_error(&ctx->resp, err.status, err.msg);
            ctx->resp.retry_after = retry_after;
            return send_response(conn, ctx);
        }
        dispatch(srv, conn, ctx, method, url, ctx->body ? ctx->body : "", ctx->len);
    }
    if (ctx->resp.wait_cold) {
        ctx->resp.wait_cold = false;
        ksv_http_error(&ctx->resp, 503, "the revision is starting; retry");
        ctx->resp.retry_after = 1;
    }
    if (ctx->resp.async.ops)
        return answer_async(conn, ctx);
    return send_response(conn, ctx);
}

static enum MHD_Result resume_cold(ksv_http_server *srv, struct MHD_Connection *conn,
                                   conn_ctx *ctx, const char *method, const char *url)
{
    ctx->suspended = false;
    switch (ctx->waiter.outcome) {
    case KSV_COLD_RETRY:
        dispatch(srv, conn, ctx, method, url, ctx->body ? ctx->body : "", ctx->len);
        if (ctx->resp.wait_cold)
            return park_cold(srv, conn, ctx, method, url);
        if (ctx->resp.async.ops) /* loaded now, on an external runtime */
            return answer_async(conn, ctx);
        return send_response(conn, ctx);
    case KSV_COLD_TIMEOUT: {
        char msg[256];
        if (ctx->waiter.for_capacity)
            snprintf(msg, sizeof msg, "revision %s had no free slot at its concurrency limit "
                                      "within the request's timeout", ctx->waiter.revision);
        else
            snprintf(msg, sizeof msg, "revision %s did not start from zero within the "
                                      "request's timeout", ctx->waiter.revision);
        ksv_http_error(&ctx->resp, 503, msg);
        ctx->resp.retry_after = 1;
        return send_response(conn, ctx);
    }
    case KSV_COLD_CLOSED:
    case KSV_COLD_WAITING:
        break;
    }
    ksv_http_error(&ctx->resp, 503, "the engine is shutting down");
    return send_response(conn, ctx);
}

/* ------------------------------------------------------- the in-flight byte budget */

/* Counts `bytes` of body (times the work factor) against the budget; false when that
 * would pass it. A request alone is always let through when nothing else is in flight,
 * so the budget never refuses what max_body allows. */
static bool reserve_body(ksv_http_server *srv, conn_ctx *ctx, size_t bytes)
{
    size_t want = bytes * KSV_HTTP_WORK_FACTOR;
    size_t cur = atomic_load(&srv->inflight);
    do {
        if (cur > 0 && cur + want > srv->limits.inflight_bytes)
            return false;
    } while (!atomic_compare_exchange_weak(&srv->inflight, &cur, cur + want));
    ctx->reserved += want;
    return true;
}

static void budget_error(ksv_http_server *srv, conn_ctx *ctx)
{
    char msg[192];
    snprintf(msg, sizeof msg,
             "engine busy: request bodies in flight would pass the %zu MiB budget; retry",
             srv->limits.inflight_bytes >> 20);
    ksv_http_error(&ctx->resp, 503, msg);
}

/* ------------------------------------------------------------ the heavy threads */

static void *heavy_main(void *arg)
{
    ksv_http_server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->heavy_lock);
        while (!srv->heavy_head && !srv->heavy_stop)
            pthread_cond_wait(&srv->heavy_wake, &srv->heavy_lock);
        conn_ctx *ctx = srv->heavy_head;
        if (!ctx) {               /* stopping, and nothing is left to answer */
            pthread_mutex_unlock(&srv->heavy_lock);
            return NULL;
        }
        srv->heavy_head = ctx->next_heavy;
        if (!srv->heavy_head)
            srv->heavy_tail = NULL;
        pthread_mutex_unlock(&srv->heavy_lock);
        /* The connection is suspended: libmicrohttpd leaves it (and its headers) alone
         * until it is resumed, and calls on_request again to send the answer. */
        dispatch(srv, ctx->conn, ctx, ctx->method, ctx->url, ctx->body ? ctx->body : "",
                 ctx->len);
        MHD_resume_connection(ctx->conn);
    }
}

/* The worker of heavy thread k: indexes after the HTTP threads' (registry sizes for both). */
static void *heavy_start(void *arg)
{
    ksv_http_server *srv = ((void **)arg)[0];
    unsigned k = (unsigned)(uintptr_t)((void **)arg)[1];
    free(arg);
    ksv_worker *w = calloc(1, sizeof *w);
    if (w) {
        w->index = srv->engine->threads + k;
        w->rng = random_seed();
        snprintf(w->id_prefix, sizeof w->id_prefix, "%08x", (unsigned)(w->rng >> 32));
        ksv_tensor_req_init(&w->tensor);
        pthread_setspecific(srv->worker_key, w);
    }
    return heavy_main(srv);
}

unsigned ksv_http_heavy_threads(unsigned threads)
{
    return threads >= 4 ? 2 : 1;
}

/* Suspends the connection and queues the request; false once the heavy threads stopped
 * (shutting down: the caller infers it itself, as no connection may stay suspended). */
static bool enqueue_heavy(ksv_http_server *srv, conn_ctx *ctx)
{
    pthread_mutex_lock(&srv->heavy_lock);
    if (srv->heavy_stop || srv->n_heavy == 0) {
        pthread_mutex_unlock(&srv->heavy_lock);
        return false;
    }
    ctx->queued = true;
    MHD_suspend_connection(ctx->conn);
    ctx->next_heavy = NULL;
    if (srv->heavy_tail)
        srv->heavy_tail->next_heavy = ctx;
    else
        srv->heavy_head = ctx;
    srv->heavy_tail = ctx;
    pthread_cond_signal(&srv->heavy_wake);
    pthread_mutex_unlock(&srv->heavy_lock);
    return true;
}

const char *ksv_http_query(const ksv_http_request *req, const char *key)
{
    if (!req->connection)
        return NULL;
    return MHD_lookup_connection_value((struct MHD_Connection *)req->connection,
                                       MHD_GET_ARGUMENT_KIND, key);
}

static bool method_has_body(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    ksv_http_server *srv = cls;
    conn_ctx *ctx = *con_cls;
    (void)version;
    if (!ctx) {
        /* First call: headers only. */
        ctx = calloc(1, sizeof *ctx);
        if (!ctx)
            return MHD_NO;
        ctx->start = ksv_mono_s();
        ctx->conn = conn;
        ctx->method = method;
        ctx->url = url;
        ksv_sb_init(&ctx->resp.body);
        *con_cls = ctx;
        atomic_fetch_add(&srv->active, 1);
        const union MHD_ConnectionInfo *sc =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (sc && sc->socket_context)
            ksv_conn_guard_headers_done(srv->guard, sc->socket_context);
        set_request_id(ctx, conn, current_worker(srv));
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > srv->engine->max_body) {
                char msg[128];
                snprintf(msg, sizeof msg, "request body larger than the %zu-byte limit",
                         srv->engine->max_body);
                ksv_http_error(&ctx->resp, 413, msg);
                ctx->answered = true;
                return send_response(conn, ctx);
            }
            /* Refused before a byte of the body is read: the budget holds under a flood. */
            if (n > 0 && !reserve_body(srv, ctx, (size_t)n)) {
                budget_error(srv, ctx);
                ctx->answered = true;
                return send_response(conn, ctx);
            }
            ctx->heavy = srv->n_heavy > 0 && n >= srv->limits.heavy_body;
        }
        /* Requests without a body are answered on the next call: a response queued this
         * early makes libmicrohttpd close the connection instead of keeping it alive. */
        if (!method_has_body(method))
            return MHD_YES;
        /* A body that trickles gets a 408 when its next byte arrives late; one that stops
         * altogether is cut off by this idle timeout, so it never holds a connection. */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned)(srv->request_timeout + 0.999));
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->answered)
            return MHD_YES; /* an early error answer is queued below; discard the rest */
        if (ksv_mono_s() - ctx->start > srv->request_timeout) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body not received within %.0f s",
                     srv->request_timeout);
            ksv_http_error(&ctx->resp, 408, msg);
            return answer_mid_body(conn, ctx);
        }
        if (ctx->len + n > srv->engine->max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body larger than the %zu-byte limit",
                     srv->engine->max_body);
            ksv_http_error(&ctx->resp, 413, msg);
            return answer_mid_body(conn, ctx);
        }
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
        if (!cl) {
            /* No Content-Length (chunked): counted against the budget as it arrives. */
            if (!reserve_body(srv, ctx, n)) {
                budget_error(srv, ctx);
                return answer_mid_body(conn, ctx);
            }
            ctx->heavy = srv->n_heavy > 0 && ctx->len + n >= srv->limits.heavy_body;
        }
        if (ctx->len == 0 && cl && declared == n && !ctx->heavy) {
            /* The whole body in one piece (the common case): parse it in place. */
            dispatch(srv, conn, ctx, method, url, upload_data, n);
            return MHD_YES;
        }
        if (ctx->len + n > ctx->cap) {
            /* A declared length is allocated once; a chunked body doubles. */
            size_t cap = ctx->cap ? ctx->cap : 4096;
            if (declared >= ctx->len + n && ctx->cap == 0)
                cap = (size_t)declared;
            while (cap < ctx->len + n)
                cap *= 2;
            char *p = realloc(ctx->body, cap);
            if (!p) {
                ksv_http_error(&ctx->resp, 503, "out of memory receiving the body");
                return answer_mid_body(conn, ctx);
            }
            ctx->body = p;
            ctx->cap = cap;
        }
        memcpy(ctx->body + ctx->len, upload_data, n);
        ctx->len += n;
        return MHD_YES;
    }
    /* Final call: the body is complete (or a parked request was resumed). */
    if (ctx->suspended)
        return resume_cold(srv, conn, ctx, method, url);
    /* A heavy body is inferred on a heavy thread while this thread goes on serving probes,
     * metrics and small requests; libmicrohttpd calls again once the heavy thread resumes
     * the connection (and a cold revision then parks it as any other request). */
    if (!ctx->answered && ctx->heavy && !ctx->queued && enqueue_heavy(srv, ctx))
        return MHD_YES;
    if (!ctx->answered)
        dispatch(srv, conn, ctx, method, url, ctx->body ? ctx->body : "", ctx->len);
    if (ctx->resp.wait_cold)
        return park_cold(srv, conn, ctx, method, url);
    if (ctx->resp.async.ops)
        return answer_async(conn, ctx);
    return send_response(conn, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ksv_http_server *srv = cls;
    conn_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    if (ctx->resp.async.ops)
        ctx->resp.async.ops->finish(ctx->resp.async.job, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    /* A slot handed to a request whose connection ended before it ran goes on to the next. */
    if (ctx->waiter.granted)
        ksv_registry_release_grant(srv->engine->registry, &ctx->waiter);
    atomic_fetch_sub(&srv->active, 1);
    atomic_fetch_sub(&srv->inflight, ctx->reserved);
    const union MHD_ConnectionInfo *sc =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (sc && sc->socket_context)
        ksv_conn_guard_request_done(srv->guard, sc->socket_context);
    free(ctx->body);
    ksv_sb_free(&ctx->resp.body);
    free(ctx);
    *con_cls = NULL;
}

/* Connections open and close: the header-block deadline follows each one. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    ksv_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? ksv_conn_guard_open(srv->guard, ci->connect_fd) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        ksv_conn_guard_close(srv->guard, *socket_context);
        *socket_context = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    ksv_log(KSV_LOG_DEBUG, NULL, "http: %s", msg);
}

/* ------------------------------------------------------------------ listen/start */

int ksv_http_listen(const char *addr, int *fd_out, char *bound, size_t bound_cap, ksv_err *err)
{
    char host[256];
    const char *port;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':' || (size_t)(close - addr - 1) >= sizeof host)
            return ksv_err_set(err, 400, "--listen %s: expected [IPV6]:PORT", addr);
        memcpy(host, addr + 1, (size_t)(close - addr - 1));
        host[close - addr - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host)
            return ksv_err_set(err, 400, "--listen %s: expected ADDR:PORT", addr);
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end || p < 0 || p > 65535)
        return ksv_err_set(err, 400, "--listen %s: bad port", addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0)
        return ksv_err_set(err, 400, "--listen %s: %s (give a numeric address)", addr,
                           gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return ksv_err_set(err, 500, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        freeaddrinfo(ai);
        close(fd);
        return ksv_err_set(err, 500, "cannot listen on %s: %s", addr, strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(bound, bound_cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(bound, bound_cap, "%s:%u", ip, ntohs(s4->sin_port));
    }
    *fd_out = fd;
    return 0;
}

/* MHD_quiesce_daemon() races with the pool threads over the listen socket's place in
 * their epoll sets and can abort (libmicrohttpd 0.9.75 panics when epoll_ctl fails), so
 * draining turns new connections away here instead: closed as soon as accepted. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    ksv_http_server *srv = cls;
    (void)addr;
    (void)len;
    return atomic_load_explicit(&srv->draining, memory_order_relaxed) ? MHD_NO : MHD_YES;
}

/* libmicrohttpd's fatal errors: say what it was before the process ends, so a crash is
 * diagnosable from the log. */
static void mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    (void)cls;
    ksv_log(KSV_LOG_ERROR, NULL, "libmicrohttpd panic at %s:%u: %s", file ? file : "?", line,
            reason ? reason : "");
    abort();
}

/* Descriptors kept for everything but client connections: the listening socket, model
 * files being read, downloads, the state dir, libraries' own. */
#define FD_RESERVE 256

/* Raises the soft open-file limit to the hard one (allowed without privileges) and fits
 * the connection limit under it: past the limit accept() fails and libmicrohttpd spins
 * on a listening socket it cannot drain. */
static unsigned fit_connection_limit(unsigned wanted)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return wanted;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)wanted + FD_RESERVE)
        return wanted;
    return rl.rlim_cur > FD_RESERVE + 16 ? (unsigned)(rl.rlim_cur - FD_RESERVE) : 16;
}

static void fill_limits(ksv_http_limits *l, const ksv_engine_info *engine)
{
    if (!(l->request_timeout > 0))
        l->request_timeout = 30;
    if (!(l->header_timeout > 0))
        l->header_timeout = 10;
    if (!l->inflight_bytes)
        l->inflight_bytes = (size_t)1 << 30;
    if (l->inflight_bytes < engine->max_body * KSV_HTTP_WORK_FACTOR)
        l->inflight_bytes = engine->max_body * KSV_HTTP_WORK_FACTOR;
    l->max_connections = fit_connection_limit(l->max_connections ? l->max_connections : 4096);
    if (!l->per_ip_connections || l->per_ip_connections > l->max_connections)
        l->per_ip_connections = l->max_connections / 2 ? l->max_connections / 2 : 1;
    if (!l->heavy_body)
        l->heavy_body = (size_t)1 << 20;
}

static void stop_heavy(ksv_http_server *srv)
{
    pthread_mutex_lock(&srv->heavy_lock);
    srv->heavy_stop = true;
    pthread_cond_broadcast(&srv->heavy_wake);
    pthread_mutex_unlock(&srv->heavy_lock);
    for (unsigned k = 0; k < srv->n_heavy; k++)
        pthread_join(srv->heavy_threads[k], NULL);
    free(srv->heavy_threads);
    srv->heavy_threads = NULL;
}

int ksv_http_server_start(const ksv_engine_info *engine, int fd, const ksv_http_limits *limits,
                          ksv_http_server **out, ksv_err *err)
{
    MHD_set_panic_func(mhd_panic, NULL);
    ksv_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ksv_err_set(err, 500, "out of memory");
    srv->engine = engine;
    if (limits)
        srv->limits = *limits;
    fill_limits(&srv->limits, engine);
    srv->request_timeout = srv->limits.request_timeout;
    double request_timeout = srv->request_timeout;
    pthread_mutex_init(&srv->heavy_lock, NULL);
    pthread_cond_init(&srv->heavy_wake, NULL);
    if (pthread_key_create(&srv->worker_key, worker_free) != 0) {
        free(srv);
        return ksv_err_set(err, 500, "pthread_key_create failed");
    }
    unsigned threads = engine->threads ? engine->threads : 1;
    /* Idle keep-alive connections are dropped after a while; bodies have their own
     * deadline (request_timeout), checked as data arrives, and header blocks theirs
     * (header_timeout, conn_guard.c). */
    unsigned idle_timeout = (unsigned)(request_timeout * 2 < 60 ? 60 : request_timeout * 2);
    if (ksv_conn_guard_start(srv->limits.header_timeout, idle_timeout, &srv->guard, err) != 0)
        goto fail;
    unsigned n_heavy = ksv_http_heavy_threads(threads);
    srv->heavy_threads = calloc(n_heavy, sizeof *srv->heavy_threads);
    for (unsigned k = 0; srv->heavy_threads && k < n_heavy; k++) {
        void **arg = malloc(2 * sizeof *arg);
        if (!arg)
            break;
        arg[0] = srv;
        arg[1] = (void *)(uintptr_t)k;
        if (pthread_create(&srv->heavy_threads[k], NULL, heavy_start, arg) != 0) {
            free(arg);
            break;
        }
        srv->n_heavy++;
    }
    /* Suspend/resume: proxied requests wait for their runtime off the HTTP threads. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    srv->daemon = MHD_start_daemon(
        flags, 0, accept_policy, srv, on_request, srv, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT,
        idle_timeout, MHD_OPTION_CONNECTION_LIMIT, srv->limits.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->limits.per_ip_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024), MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_END);
    if (!srv->daemon) {
        ksv_err_set(err, 500, "libmicrohttpd failed to start");
        goto fail;
    }
    *out = srv;
    return 0;
fail:
    stop_heavy(srv);
    ksv_conn_guard_stop(srv->guard);
    pthread_key_delete(srv->worker_key);
    free(srv);
    return -1;
}

const ksv_http_limits *ksv_http_server_limits(const ksv_http_server *srv)
{
    return &srv->limits;
}

void ksv_http_server_quiesce(ksv_http_server *srv)
{
    atomic_store(&srv->draining, true);
}

long ksv_http_server_active(ksv_http_server *srv)
{
    return atomic_load(&srv->active);
}

void ksv_http_server_stop(ksv_http_server *srv)
{
    if (!srv)
        return;
    /* Heavy requests still queued are answered first: their connections are suspended,
     * and libmicrohttpd must not be stopped with a suspended connection. */
    stop_heavy(srv);
    MHD_stop_daemon(srv->daemon); /* closes the listening socket too */
    ksv_conn_guard_stop(srv->guard);
    pthread_key_delete(srv->worker_key);
    free(srv);
}
