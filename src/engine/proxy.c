/* proxy.c: requests forwarded to external runtimes (proxy.h).
 *
 * Each forwarded request is a job with two owners: the HTTP connection (http.h's async
 * contract: start, head, read, finish) and a thread that performs the upstream request
 * through src/http's streaming call. The connection stays suspended while the job has
 * nothing for it, so neither side spins and the HTTP threads stay free. */
#include "engine/proxy.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "engine/ext_runtime.h"
#include "http/http_client.h"

#define IDLE_CLIENTS 32
#define MAX_JOBS 1024
#define MAX_BUFFERED ((size_t)64 << 20)    /* a buffered answer larger than this is refused */
#define STREAM_HIGH_WATER ((size_t)1 << 20) /* a stream's unsent bytes before the runtime waits */
#define DEFAULT_TIMEOUT_MS 300000          /* a revision without timeout_ms: 5 min (LLMs) */

typedef struct proxy_job proxy_job;

struct ksv_proxy {
    pthread_mutex_t mu;
    pthread_cond_t idle_cond;     /* jobs reached 0 */
    ksv_http_client *idle[IDLE_CLIENTS];
    size_t n_idle;
    long jobs;
    proxy_job *live;              /* running jobs, for shutdown */
    bool shutting_down;
};

struct proxy_job {
    ksv_proxy *proxy;
    proxy_job *prev, *next;       /* proxy->live, under proxy->mu */
    pthread_mutex_t mu;
    pthread_cond_t drained;       /* a stream's reader took bytes */
    int refs;                     /* connection + thread */
    bool started;
    atomic_bool cancel;

    char url[128];
    char method[8];
    char *body;
    size_t body_len;
    long timeout_ms;
    bool stream_wanted;
    ksv_proxy_rewrite rewrite;
    char model[KSV_NAME_MAX];
    char revision[KSV_NAME_MAX];
    char request_id[64];
    char header_id[96];
    ksv_registry *reg;
    ksv_route route;
    double start;
    ksv_proxy_observer obs;

    long status;
    char content_type[128];
    bool streaming, head_ready, done, broken;
    ksv_sb data;                  /* the buffered answer, or a stream's unsent bytes */
    size_t data_off;
    int err_status;
    char err_msg[400];

    void (*wake)(void *);
    void *wake_arg;
    bool waiting;                 /* the connection is suspended, waiting for a wake */
    bool conn_gone;
};

/* ------------------------------------------------------------------ the proxy itself */

int ksv_proxy_create(ksv_proxy **out, ksv_err *err)
{
    if (ksv_http_global_init(err) != 0)
        return -1;
    ksv_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return ksv_err_set(err, 500, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->idle_cond, NULL);
    *out = p;
    return 0;
}

void ksv_proxy_shutdown(ksv_proxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->shutting_down = true;
    for (proxy_job *j = p->live; j; j = j->next) {
        atomic_store(&j->cancel, true);
        pthread_mutex_lock(&j->mu);
        pthread_cond_broadcast(&j->drained);
        pthread_mutex_unlock(&j->mu);
    }
    while (p->jobs > 0)
        pthread_cond_wait(&p->idle_cond, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void ksv_proxy_destroy(ksv_proxy *p)
{
    if (!p)
        return;
    ksv_proxy_shutdown(p);
    for (size_t i = 0; i < p->n_idle; i++)
        ksv_http_client_free(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->idle_cond);
    free(p);
}

static ksv_http_client *client_get(ksv_proxy *p, ksv_err *err)
{
    pthread_mutex_lock(&p->mu);
    ksv_http_client *c = p->n_idle ? p->idle[--p->n_idle] : NULL;
    pthread_mutex_unlock(&p->mu);
    if (c)
        return c;
    ksv_http_options o = {
        .connect_timeout_ms = 2000,
        .proxy = KSV_HTTP_PROXY_NONE,
        .max_reply = MAX_BUFFERED,
        .http1 = true,
        .tcp_nodelay = true,
    };
    return ksv_http_client_new(&o, &c, err) == 0 ? c : NULL;
}

static void client_put(ksv_proxy *p, ksv_http_client *c, bool reusable)
{
    if (!c)
        return;
    pthread_mutex_lock(&p->mu);
    if (reusable && p->n_idle < IDLE_CLIENTS) {
        p->idle[p->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    ksv_http_client_free(c);
}

/* ------------------------------------------------------------------------- a job */

static void job_release(proxy_job *j)
{
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last)
        return;
    if (j->obs.free)
        j->obs.free(j->obs.self);
    free(j->body);
    ksv_sb_free(&j->data);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->drained);
    free(j);
}

/* Caller holds j->mu. */
static void wake_locked(proxy_job *j)
{
    if (j->waiting && j->wake && !j->conn_gone) {
        j->waiting = false;
        j->wake(j->wake_arg);
    }
}

static int on_header(long status, const char *line, size_t len, void *user)
{
    proxy_job *j = user;
    j->status = status;
    static const char ct[] = "content-type:";
    if (len > sizeof ct - 1 && strncasecmp(line, ct, sizeof ct - 1) == 0) {
        const char *v = line + sizeof ct - 1;
        size_t n = len - (sizeof ct - 1);
        while (n && (*v == ' ' || *v == '\t'))
            v++, n--;
        if (n >= sizeof j->content_type)
            n = sizeof j->content_type - 1;
        pthread_mutex_lock(&j->mu);
        memcpy(j->content_type, v, n);
        j->content_type[n] = '\0';
        pthread_mutex_unlock(&j->mu);
    }
    return atomic_load(&j->cancel) ? 1 : 0;
}

static int on_data(const char *data, size_t len, void *user)
{
    proxy_job *j = user;
    pthread_mutex_lock(&j->mu);
    if (!j->head_ready) {
        j->streaming = j->stream_wanted && j->status == 200 &&
                       strncasecmp(j->content_type, "text/event-stream", 17) == 0;
        if (j->streaming) {
            j->head_ready = true;
            wake_locked(j);
        }
    }
    if (j->streaming) {
        /* Backpressure: a reader that does not keep up holds the runtime back. */
        while (j->data.len - j->data_off > STREAM_HIGH_WATER && !atomic_load(&j->cancel) &&
               !j->conn_gone)
            pthread_cond_wait(&j->drained, &j->mu);
    } else if (j->data.len + len > MAX_BUFFERED) {
        j->err_status = 502;
        snprintf(j->err_msg, sizeof j->err_msg, "runtime answer larger than %zu bytes",
                 MAX_BUFFERED);
        pthread_mutex_unlock(&j->mu);
        return 1;
    }
    bool stop = atomic_load(&j->cancel) || j->conn_gone;
    if (!stop) {
        ksv_sb_append(&j->data, data, len);
        if (j->streaming)
            wake_locked(j);
    }
    bool streaming = j->streaming;
    pthread_mutex_unlock(&j->mu);
    if (!stop && streaming && j->obs.on_data)
        j->obs.on_data(j->obs.self, data, len, ksv_mono_s() - j->start);
    return stop ? 1 : 0;
}

static int on_progress(long long done, long long total, void *user)
{
    proxy_job *j = user;
    (void)done, (void)total;
    return atomic_load(&j->cancel) ? 1 : 0;
}

static json_object *parse_object(const char *text, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success && o &&
              json_object_is_type(o, json_type_object);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    for (size_t i = end; ok && i < len; i++)
        ok = text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t';
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* A buffered answer, checked and rewritten. Sets err_status on garbage. */
static void finish_body(proxy_job *j)
{
    if (j->rewrite == KSV_PROXY_PASS || j->err_status)
        return;
    json_object *o = parse_object(j->data.data ? j->data.data : "", j->data.len);
    if (!o) {
        char snippet[120];
        size_t n = j->data.len < sizeof snippet - 1 ? j->data.len : sizeof snippet - 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)j->data.data[i];
            snippet[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        snippet[n] = '\0';
        j->err_status = 502;
        snprintf(j->err_msg, sizeof j->err_msg,
                 "runtime answered %ld with a body that is not a JSON object: \"%s\"", j->status,
                 snippet);
        return;
    }
    if (j->rewrite == KSV_PROXY_V2_INFER && j->status == 200) {
        /* The model is ksv's name and the version its revision, whatever the runtime says. */
        json_object_object_add(o, "model_name", json_object_new_string(j->model));
        json_object_object_add(o, "model_version", json_object_new_string(j->revision));
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        ksv_sb_reset(&j->data);
        j->data_off = 0;
        if (text)
            ksv_sb_puts(&j->data, text);
        if (!text || j->data.oom) {
            j->err_status = 503;
            snprintf(j->err_msg, sizeof j->err_msg, "out of memory rewriting the answer");
        }
    }
    json_object_put(o);
}

static void *job_main(void *arg)
{
    proxy_job *j = arg;
    ksv_err err;
    ksv_err_clear(&err);
    ksv_http_result res;
    memset(&res, 0, sizeof res);
    const char *headers[] = {"Content-Type: application/json", j->header_id, NULL};
    ksv_http_call call = {
        .method = j->method,
        .url = j->url,
        .headers = headers,
        .body = j->body,
        .body_len = j->body_len,
        .timeout_ms = j->timeout_ms,
        .cancel = &j->cancel,
    };
    ksv_http_stream_fns fns = {.on_header = on_header,
                               .on_data = on_data,
                               .on_progress = on_progress,
                               .user = j};
    ksv_http_client *c = client_get(j->proxy, &err);
    int rc = c ? ksv_http_stream(c, &call, &fns, &res, &err) : -1;
    client_put(j->proxy, c, rc == 0);

    pthread_mutex_lock(&j->mu);
    bool streaming = j->streaming;
    pthread_mutex_unlock(&j->mu);
    if (rc != 0 && !j->err_status) {
        switch (res.failure) {
        case KSV_HTTP_E_CONNECT:
            j->err_status = 503;
            snprintf(j->err_msg, sizeof j->err_msg,
                     "revision %s: its runtime is not reachable (restarting?)", j->revision);
            break;
        case KSV_HTTP_E_TIMEOUT:
            j->err_status = 504;
            snprintf(j->err_msg, sizeof j->err_msg,
                     "revision %s: its runtime did not answer within %ld ms", j->revision,
                     j->timeout_ms);
            break;
        case KSV_HTTP_E_CANCELLED:
            j->err_status = 499;
            snprintf(j->err_msg, sizeof j->err_msg, "the client went away; request cancelled");
            break;
        default:
            j->err_status = 502;
            snprintf(j->err_msg, sizeof j->err_msg, "revision %s: bad answer from its runtime: %.250s",
                     j->revision, err.msg);
            break;
        }
    }
    if (!streaming)
        finish_body(j);
    long final = j->err_status ? j->err_status : j->status;
    if (j->obs.on_done)
        j->obs.on_done(j->obs.self, final, streaming || j->err_status ? NULL : j->data.data,
                       streaming ? 0 : j->data.len, ksv_mono_s() - j->start, j->route.rev);
    ksv_registry_finish(j->reg, &j->route, (int)final, ksv_mono_s() - j->start, j->request_id,
                        j->err_status ? j->err_msg : NULL);

    pthread_mutex_lock(&j->mu);
    if (streaming && rc != 0)
        j->broken = true;
    j->done = true;
    j->head_ready = true;
    wake_locked(j);
    pthread_cond_broadcast(&j->drained);
    pthread_mutex_unlock(&j->mu);

    ksv_proxy *p = j->proxy;
    pthread_mutex_lock(&p->mu);
    if (j->prev)
        j->prev->next = j->next;
    else
        p->live = j->next;
    if (j->next)
        j->next->prev = j->prev;
    bool last = --p->jobs == 0;
    if (last)
        pthread_cond_broadcast(&p->idle_cond);
    job_release(j); /* under p->mu: shutdown must not return before the job is gone */
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* --------------------------------------------------- the connection's side (http.h) */

static void job_fail_now(proxy_job *j, int status, const char *msg)
{
    j->err_status = status;
    snprintf(j->err_msg, sizeof j->err_msg, "%s", msg);
    ksv_registry_finish(j->reg, &j->route, status, ksv_mono_s() - j->start, j->request_id, msg);
    j->done = j->head_ready = true;
}

static void job_start(void *job, void (*wake)(void *), void *wake_arg)
{
    proxy_job *j = job;
    ksv_proxy *p = j->proxy;
    pthread_mutex_lock(&j->mu);
    j->wake = wake;
    j->wake_arg = wake_arg;
    j->waiting = true;
    j->started = true;
    pthread_mutex_unlock(&j->mu);

    pthread_mutex_lock(&p->mu);
    bool refused = p->shutting_down || p->jobs >= MAX_JOBS;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (!refused) {
        j->refs++;
        p->jobs++;
        j->prev = NULL;
        j->next = p->live;
        if (p->live)
            p->live->prev = j;
        p->live = j;
        if (pthread_create(&t, &attr, job_main, j) != 0) {
            p->live = j->next;
            if (j->next)
                j->next->prev = NULL;
            p->jobs--;
            j->refs--;
            refused = true;
        }
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_unlock(&p->mu);
    if (refused) {
        pthread_mutex_lock(&j->mu);
        job_fail_now(j, 503, p->shutting_down ? "the engine is stopping"
                                              : "too many requests in flight to runtimes");
        wake_locked(j);
        pthread_mutex_unlock(&j->mu);
    }
}

static bool job_head(void *job, ksv_http_response *resp)
{
    proxy_job *j = job;
    pthread_mutex_lock(&j->mu);
    snprintf(resp->revision, sizeof resp->revision, "%s", j->revision);
    bool stream = false;
    if (j->err_status) {
        ksv_http_error(resp, j->err_status == 499 ? 503 : j->err_status, j->err_msg);
    } else if (j->streaming) {
        resp->status = (int)j->status;
        resp->content_type = "text/event-stream";
        stream = true;
    } else {
        resp->status = (int)j->status;
        resp->content_type = j->content_type[0] && j->rewrite == KSV_PROXY_PASS
                                 ? j->content_type
                                 : "application/json";
        /* Hand the buffered body over whole. */
        ksv_sb tmp = resp->body;
        resp->body = j->data;
        j->data = tmp;
        ksv_sb_reset(&j->data);
        j->data_off = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return stream;
}

static long job_read(void *job, char *buf, size_t max, void (*park)(void *), void *park_arg)
{
    proxy_job *j = job;
    pthread_mutex_lock(&j->mu);
    size_t avail = j->data.len - j->data_off;
    long n;
    if (avail > 0) {
        size_t take = avail < max ? avail : max;
        memcpy(buf, j->data.data + j->data_off, take);
        j->data_off += take;
        if (j->data_off == j->data.len) {
            ksv_sb_reset(&j->data);
            j->data_off = 0;
        }
        pthread_cond_broadcast(&j->drained);
        n = (long)take;
    } else if (j->done) {
        n = j->broken ? -2 : -1;
    } else {
        park(park_arg);
        j->waiting = true;
        n = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void job_finish(void *job, bool ok)
{
    proxy_job *j = job;
    pthread_mutex_lock(&j->mu);
    j->conn_gone = true;
    j->wake = NULL;
    if (!ok || !j->done)
        atomic_store(&j->cancel, true);
    pthread_cond_broadcast(&j->drained);
    bool started = j->started;
    pthread_mutex_unlock(&j->mu);
    if (!started) /* the connection ended before the job ran: give the route back */
        ksv_registry_finish(j->reg, &j->route, 499, ksv_mono_s() - j->start, j->request_id,
                            "the client went away");
    job_release(j);
}

static const ksv_http_async_ops job_ops = {
    .start = job_start,
    .head = job_head,
    .read = job_read,
    .finish = job_finish,
};

int ksv_proxy_forward(const ksv_http_request *req, ksv_route *route, const ksv_proxy_call *call,
                      ksv_http_response *resp)
{
    ksv_engine_revision *rev = route->rev;
    ksv_registry *reg = req->engine->registry;
    const char *fail = NULL;
    int fail_status = 503;
    int port = rev->handle ? ksv_ext_port(rev->handle) : 0;
    proxy_job *j = NULL;
    if (!req->engine->proxy)
        fail = "this engine cannot forward to runtimes";
    else if (port == 0)
        fail = "the revision's runtime is restarting; retry shortly";
    else if (strlen(call->upstream_path) > 96)
        fail_status = 404, fail = "path too long";
    else if (!(j = calloc(1, sizeof *j)) || (call->body_len && !(j->body = malloc(call->body_len))))
        fail = "out of memory";
    if (fail) {
        if (call->observer.free)
            call->observer.free(call->observer.self);
        if (j)
            free(j->body);
        free(j);
        ksv_http_error(resp, fail_status, fail);
        snprintf(resp->revision, sizeof resp->revision, "%s", rev->spec.name);
        ksv_registry_finish(reg, route, fail_status, ksv_mono_s() - req->start, req->request_id,
                            fail);
        return -1;
    }
    j->proxy = req->engine->proxy;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->drained, NULL);
    j->refs = 1;
    snprintf(j->url, sizeof j->url, "http://127.0.0.1:%d%s", port, call->upstream_path);
    snprintf(j->method, sizeof j->method, "%s", call->method);
    if (call->body_len)
        memcpy(j->body, call->body, call->body_len);
    j->body_len = call->body_len;
    j->timeout_ms = rev->spec.timeout_ms > 0 ? rev->spec.timeout_ms : DEFAULT_TIMEOUT_MS;
    j->stream_wanted = call->stream;
    j->rewrite = call->rewrite;
    snprintf(j->model, sizeof j->model, "%s", call->model);
    snprintf(j->revision, sizeof j->revision, "%s", rev->spec.name);
    snprintf(j->request_id, sizeof j->request_id, "%s", req->request_id);
    snprintf(j->header_id, sizeof j->header_id, "x-request-id: %s", req->request_id);
    j->reg = reg;
    j->route = *route;
    route->rev = NULL;
    route->model = NULL;
    j->start = req->start;
    j->obs = call->observer;
    ksv_sb_init(&j->data);
    resp->async.ops = &job_ops;
    resp->async.job = j;
    snprintf(resp->revision, sizeof resp->revision, "%s", j->revision);
    return 0;
}

void ksv_proxy_forward_infer(const ksv_http_request *req, ksv_route *route, const char *model,
                             bool v1, ksv_http_response *resp)
{
    unsigned protocols = ksv_ext_protocols(route->rev->handle);
    unsigned need = v1 ? KSV_PROTO_V1 : KSV_PROTO_V2;
    if (!(protocols & need)) {
        char msg[200];
        snprintf(msg, sizeof msg, "revision %s: its runtime does not speak the %s protocol",
                 route->rev->spec.name, v1 ? "V1" : "V2");
        ksv_http_error(resp, 400, msg);
        snprintf(resp->revision, sizeof resp->revision, "%s", route->rev->spec.name);
        ksv_registry_finish(req->engine->registry, route, 400, ksv_mono_s() - req->start,
                            req->request_id, msg);
        return;
    }
    char path[KSV_NAME_MAX + 40];
    snprintf(path, sizeof path, v1 ? "/v1/models/%s:predict" : "/v2/models/%s/infer", model);
    ksv_proxy_call call = {
        .model = model,
        .upstream_path = path,
        .method = "POST",
        .body = req->body,
        .body_len = req->body_len,
        .rewrite = v1 ? KSV_PROXY_JSON : KSV_PROXY_V2_INFER,
    };
    ksv_proxy_forward(req, route, &call, resp);
}
