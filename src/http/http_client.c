/* http_client.c: ksv's HTTP client over libcurl (policies in http_client.h). */
#include "http/http_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/uri_redact.h"

typedef struct transfer {
    struct ksv_http_client *c;
    const ksv_http_call *req;
    struct curl_slist *extra_headers;   /* client headers + req->headers, when there are any */
    /* buffered */
    ksv_sb *reply;
    /* streaming */
    const ksv_http_stream_fns *fns;
    long long received;
    bool over_cap, stopped, oom;
    bool new_socket;       /* a connection was opened for this request */
    bool unpinned;         /* reuse_port refused the connection this request got */
    /* batch */
    void *tag;
    /* a copy of the request for batch transfers, whose caller's struct may go away */
    ksv_http_call req_copy;
    struct transfer *prev, *next;       /* the batch's transfers in flight */
} transfer;

struct ksv_http_client {
    CURL *curl;
    ksv_http_options o;
    char *user_agent, *ca_file;   /* copies of o's strings */
    char *aws_sigv4, *aws_userpwd; /* "KEY:SECRET", wiped when freed */
    struct curl_slist *headers;   /* "Expect:" and o.headers */
    char error[CURL_ERROR_SIZE];
    bool in_batch;
    transfer batch_t;             /* its transfer while in a batch (no allocation per request) */
    /* The request shape the handle is set up for, in a batch: a request of the same shape
     * only changes its body, without a reset and ~25 options. */
    const char *prepared_url, *prepared_method;
    long prepared_timeout_ms;
};

/* ---- global init ---------------------------------------------------------------------- */

/* curl_global_init is not thread-safe before libcurl 7.84; the once-guard makes any first
 * caller safe. libcurl's global state lives until the process ends. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;

static void init_library(void)
{
    init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ksv_http_global_init(ksv_err *err)
{
    pthread_once(&init_once, init_library);
    if (init_result != CURLE_OK)
        return ksv_err_set(err, 500, "libcurl: %s", curl_easy_strerror(init_result));
    return 0;
}

/* ---- headers -------------------------------------------------------------------------- */

static void free_headers_wiped(struct curl_slist *list)
{
    /* Header lines may hold a token: wipe them before the memory goes back. */
    for (struct curl_slist *h = list; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(list);
}

/* Appends lines (NULL-terminated, may be NULL) to *list; false when out of memory. */
static bool append_headers(struct curl_slist **list, const char *const *lines)
{
    for (size_t i = 0; lines && lines[i]; i++) {
        struct curl_slist *next = curl_slist_append(*list, lines[i]);
        if (!next)
            return false;
        *list = next;
    }
    return true;
}

/* ---- clients ---------------------------------------------------------------------------- */

/* "KEY:SECRET" for libcurl's user name and password, NULL when out of memory. */
static char *join_credentials(const char *key, const char *secret)
{
    key = key ? key : "";
    secret = secret ? secret : "";
    size_t n = strlen(key) + strlen(secret) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s:%s", key, secret);
    return s;
}

int ksv_http_client_new(const ksv_http_options *o, ksv_http_client **out, ksv_err *err)
{
    *out = NULL;
    if (o && o->max_reply == 0)
        return ksv_err_set(err, 400, "HTTP client: max_reply is not set (name a cap: "
                                     "KSV_HTTP_DEFAULT_MAX_REPLY, a size, or "
                                     "KSV_HTTP_NO_REPLY_CAP)");
    if (ksv_http_global_init(err) != 0)
        return -1;
    ksv_http_client *c = calloc(1, sizeof *c);
    if (!c)
        return ksv_err_set(err, 500, "out of memory");
    if (o)
        c->o = *o;
    c->o.headers = NULL;
    c->o.aws_sigv4 = c->o.aws_access_key = c->o.aws_secret_key = NULL;
    if (!o)
        c->o.max_reply = KSV_HTTP_DEFAULT_MAX_REPLY;
    static const char *const expect[] = {"Expect:", NULL};
    bool ok = (c->curl = curl_easy_init()) != NULL &&
              (!o || !o->user_agent || (c->user_agent = strdup(o->user_agent))) &&
              (!o || !o->ca_file || (c->ca_file = strdup(o->ca_file))) &&
              (!o || !o->aws_sigv4 || (c->aws_sigv4 = strdup(o->aws_sigv4))) &&
              (!o || !o->aws_sigv4 ||
               (c->aws_userpwd = join_credentials(o->aws_access_key, o->aws_secret_key))) &&
              /* libcurl's SigV4 signs the blanked "Expect:" line that is never sent, so
               * a signed request would not verify: signing clients leave it out. */
              (o && o->aws_sigv4 ? true : append_headers(&c->headers, expect)) &&
              append_headers(&c->headers, o ? o->headers : NULL);
    if (!ok) {
        ksv_http_client_free(c);
        return ksv_err_set(err, 500, "out of memory");
    }
    *out = c;
    return 0;
}

void ksv_http_client_free(ksv_http_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free_headers_wiped(c->headers);
    free(c->user_agent);
    free(c->ca_file);
    free(c->aws_sigv4);
    if (c->aws_userpwd)
        explicit_bzero(c->aws_userpwd, strlen(c->aws_userpwd));
    free(c->aws_userpwd);
    free(c);
}

int ksv_http_client_set_max_reply(ksv_http_client *c, size_t bytes, ksv_err *err)
{
    if (bytes == 0)
        return ksv_err_set(err, 400, "HTTP client: a reply cap of 0");
    c->o.max_reply = bytes;
    return 0;
}

/* ---- one transfer ---------------------------------------------------------------------- */


static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    transfer *t = user;
    size_t n = size * nmemb;
    if ((unsigned long long)t->received + n > t->c->o.max_reply) {
        t->over_cap = true;
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    t->received += (long long)n;
    if (t->reply) {
        ksv_sb_append(t->reply, data, n);
        if (t->reply->oom) {
            t->oom = true;
            return 0;
        }
    } else if (t->fns && t->fns->on_data && t->fns->on_data(data, n, t->fns->user) != 0) {
        t->stopped = true;
        return 0;
    }
    return n;
}

static size_t on_header_line(char *data, size_t size, size_t nmemb, void *user)
{
    transfer *t = user;
    size_t n = size * nmemb;
    if (!t->fns || !t->fns->on_header)
        return n;
    long status = 0;
    curl_easy_getinfo(t->c->curl, CURLINFO_RESPONSE_CODE, &status);
    size_t len = n;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (t->fns->on_header(status, data, len, t->fns->user) != 0) {
        t->stopped = true;
        return 0;
    }
    return n;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    transfer *t = user;
    if (t->req->cancel && atomic_load(t->req->cancel)) {
        t->stopped = true;
        return 1;
    }
    if (t->fns && t->fns->on_progress &&
        t->fns->on_progress((long long)dlnow, dltotal > 0 ? (long long)dltotal : -1,
                            t->fns->user) != 0) {
        t->stopped = true;
        return 1;
    }
    return 0;
}

/* Called for every socket libcurl opens: the request that opened it is not on a kept one. */
static int on_socket(void *user, curl_socket_t fd, curlsocktype purpose)
{
    (void)fd;
    transfer *t = user;
    if (purpose == CURLSOCKTYPE_IPCXN)
        t->new_socket = true;
    return CURL_SOCKOPT_OK;
}

/* Called once connected, before the request is sent: reuse_port refuses any connection
 * but the one it names. */
static int on_prereq(void *user, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
    (void)primary_ip, (void)local_ip, (void)primary_port;
    transfer *t = user;
    if (t->new_socket || local_port != t->req->reuse_port) {
        t->unpinned = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* Applies the client's policies and the request to the easy handle. */
static CURLcode setup(transfer *t)
{
    ksv_http_client *c = t->c;
    const ksv_http_call *req = t->req;
    const ksv_http_options *o = &c->o;
    CURL *h = c->curl;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                           \
    do {                                        \
        if (rc == CURLE_OK)                     \
            rc = curl_easy_setopt(h, opt, val); \
    } while (0)
    /* A reset drops every option of the last request but keeps the live connection. */
    curl_easy_reset(h);
    c->error[0] = '\0';
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_ERRORBUFFER, c->error);
    SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (o->max_redirects > 0) {
        /* Never from https down to http: a redirect must not strip the transport security
         * the caller asked for. */
        bool https = strncmp(req->url, "https:", 6) == 0;
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)o->max_redirects);
#if LIBCURL_VERSION_NUM >= 0x075500
        SET(CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
#else
        SET(CURLOPT_REDIR_PROTOCOLS,
            https ? (long)CURLPROTO_HTTPS : (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    } else {
        SET(CURLOPT_FOLLOWLOCATION, 0L);
    }
    if (o->proxy == KSV_HTTP_PROXY_NONE)
        SET(CURLOPT_PROXY, "");
    SET(CURLOPT_SSL_VERIFYPEER, o->tls_no_verify ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, o->tls_no_verify ? 0L : 2L);
    if (c->aws_sigv4) {
        SET(CURLOPT_AWS_SIGV4, c->aws_sigv4);
        SET(CURLOPT_USERPWD, c->aws_userpwd);
    }
    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : o->timeout_ms;
    long connect = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                   : timeout > 0              ? timeout
                                              : 15000L;
    if (timeout > 0 && connect > timeout)
        connect = timeout;
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect);
    if (timeout > 0)
        SET(CURLOPT_TIMEOUT_MS, timeout);
    if (o->low_speed_s > 0) {
        SET(CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes > 0 ? o->low_speed_bytes : 1L);
        SET(CURLOPT_LOW_SPEED_TIME, o->low_speed_s);
    }
    if (o->max_reply <= (size_t)INT64_MAX)
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_reply);
    if (o->accept_encoding)
        SET(CURLOPT_ACCEPT_ENCODING, "");
    if (o->http1)
        SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (o->tcp_nodelay)
        SET(CURLOPT_TCP_NODELAY, 1L);
    if (c->user_agent)
        SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_HTTPHEADER, t->extra_headers ? t->extra_headers : c->headers);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, t);
    if (req->reuse_port > 0) {
        SET(CURLOPT_SOCKOPTFUNCTION, on_socket);
        SET(CURLOPT_SOCKOPTDATA, t);
        SET(CURLOPT_PREREQFUNCTION, on_prereq);
        SET(CURLOPT_PREREQDATA, t);
    }
    if (t->fns && t->fns->on_header) {
        SET(CURLOPT_HEADERFUNCTION, on_header_line);
        SET(CURLOPT_HEADERDATA, t);
    }
    if (req->cancel || (t->fns && t->fns->on_progress)) {
        SET(CURLOPT_XFERINFOFUNCTION, on_progress);
        SET(CURLOPT_XFERINFODATA, t);
        SET(CURLOPT_NOPROGRESS, 0L);
    }
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    if (strcmp(method, "GET") == 0 && !req->body) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
        if (req->body) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            SET(CURLOPT_POSTFIELDS, req->body);
        } else if (strcmp(method, "DELETE") != 0 && strcmp(method, "HEAD") != 0) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
            SET(CURLOPT_POSTFIELDS, "");
        } else if (strcmp(method, "HEAD") == 0) {
            SET(CURLOPT_NOBODY, 1L);
        }
    }
#undef SET
    return rc;
}

/* Builds the header list of a request that adds its own lines. */
static int transfer_init(transfer *t, ksv_http_client *c, const ksv_http_call *req,
                         ksv_err *err)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    t->req = req;
    if (req->headers && req->headers[0]) {
        bool ok = true;
        for (struct curl_slist *h = c->headers; h && ok; h = h->next) {
            struct curl_slist *next = curl_slist_append(t->extra_headers, h->data);
            ok = next != NULL;
            if (ok)
                t->extra_headers = next;
        }
        if (!ok || !append_headers(&t->extra_headers, req->headers)) {
            free_headers_wiped(t->extra_headers);
            t->extra_headers = NULL;
            return ksv_err_set(err, 500, "out of memory");
        }
    }
    return 0;
}

static ksv_http_failure classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return KSV_HTTP_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return KSV_HTTP_E_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return KSV_HTTP_E_CONNECT;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
        return KSV_HTTP_E_BROKEN;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return KSV_HTTP_E_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return KSV_HTTP_E_TOO_LARGE;
    case CURLE_ABORTED_BY_CALLBACK:
        return KSV_HTTP_E_CANCELLED;
    case CURLE_OUT_OF_MEMORY:
        return KSV_HTTP_E_NOMEM;
    case CURLE_URL_MALFORMAT:
        return KSV_HTTP_E_URL;
    default:
        return KSV_HTTP_E_OTHER;
    }
}

/* Fills res from a finished transfer and sets err for a failure; returns 0 or -1. */
/* The final answer's ETag, for conditional GETs (libcurl 7.83 reads headers back; an
 * older one reports none, and callers then fetch whole answers every time). */
static void read_etag(CURL *curl, ksv_http_result *res)
{
#if LIBCURL_VERSION_NUM >= 0x075300
    struct curl_header *h = NULL;
    if (curl_easy_header(curl, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h && h->value &&
        strlen(h->value) < sizeof res->etag)
        snprintf(res->etag, sizeof res->etag, "%s", h->value);
    h = NULL;
    if (curl_easy_header(curl, "X-Ksv-State-ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
        h && h->value && strlen(h->value) < sizeof res->state_etag)
        snprintf(res->state_etag, sizeof res->state_etag, "%s", h->value);
#else
    (void)curl;
    (void)res;
#endif
}

static int conclude(transfer *t, CURLcode rc, ksv_http_result *res, ksv_err *err)
{
    ksv_http_client *c = t->c;
    memset(res, 0, sizeof *res);
    long opened = 0;
    if (curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &opened) == CURLE_OK)
        res->connections_opened = opened;
    curl_off_t total_us = 0;
    if (curl_easy_getinfo(c->curl, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK)
        res->total_s = (double)total_us / 1e6;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &res->status);
    curl_easy_getinfo(c->curl, CURLINFO_LOCAL_PORT, &res->local_port);
    free_headers_wiped(t->extra_headers);
    t->extra_headers = NULL;
    if (rc == CURLE_OK && t->oom)
        rc = CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK && res->status <= 0)
        rc = CURLE_WEIRD_SERVER_REPLY; /* an answer without an HTTP status */
    res->code = (int)rc;
    if (rc == CURLE_OK) {
        read_etag(c->curl, res);
        return 0;
    }
    /* The write callback refused a chunk: say why in the caller's terms. */
    if (rc == CURLE_WRITE_ERROR && t->over_cap)
        res->failure = KSV_HTTP_E_TOO_LARGE;
    else if (rc == CURLE_WRITE_ERROR && t->oom)
        res->failure = KSV_HTTP_E_NOMEM;
    else if (rc == CURLE_ABORTED_BY_CALLBACK && t->unpinned)
        res->failure = KSV_HTTP_E_NEW_CONNECTION;
    else if ((rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK) && t->stopped)
        res->failure = KSV_HTTP_E_CANCELLED;
    else
        res->failure = classify(rc);
    /* A timeout before the request went out (connecting) delivered nothing: say so, so a
     * caller can tell it from a request the peer may have received (KSV_HTTP_E_TIMEOUT). */
    long sent = 0;
    if (res->failure == KSV_HTTP_E_TIMEOUT &&
        curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent == 0)
        res->failure = KSV_HTTP_E_CONNECT;
    snprintf(res->message, sizeof res->message, "%s",
             c->error[0] ? c->error : curl_easy_strerror(rc));
    /* The message names the URL by its display form: a presigned query's signature or a
     * password in it stays out of errors (uri_redact.h). */
    char url[KSV_URI_SHOWN_MAX];
    ksv_uri_redact(url, sizeof url, t->req->url);
    switch (res->failure) {
    case KSV_HTTP_E_TIMEOUT:
        return ksv_err_set(err, 504, "%s: %s", url, res->message);
    case KSV_HTTP_E_CONNECT:
    case KSV_HTTP_E_BROKEN:
        return ksv_err_set(err, 503, "%s: %s", url, res->message);
    case KSV_HTTP_E_TOO_LARGE:
        return ksv_err_set(err, 502, "%s: reply over %zu bytes", url, c->o.max_reply);
    case KSV_HTTP_E_CANCELLED:
        return ksv_err_set(err, 499, "%s: cancelled", url);
    case KSV_HTTP_E_NEW_CONNECTION:
        return ksv_err_set(err, 503, "%s: the connection checked before was closed; the "
                                     "request was not sent on a new one", url);
    case KSV_HTTP_E_URL:
        return ksv_err_set(err, 400, "%s: %s", url, res->message);
    case KSV_HTTP_E_NOMEM:
        return ksv_err_set(err, 500, "%s: out of memory", url);
    default:
        return ksv_err_set(err, 502, "%s: %s", url, res->message);
    }
}

static int run_one(ksv_http_client *c, const ksv_http_call *req, ksv_sb *reply,
                   const ksv_http_stream_fns *fns, ksv_http_result *res, ksv_err *err)
{
    ksv_http_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!req || !req->url) {
        res->failure = KSV_HTTP_E_URL;
        return ksv_err_set(err, 400, "no URL");
    }
    transfer t;
    if (transfer_init(&t, c, req, err) != 0) {
        res->failure = KSV_HTTP_E_NOMEM;
        return -1;
    }
    t.reply = reply;
    t.fns = fns;
    CURLcode rc = setup(&t);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(c->curl);
    return conclude(&t, rc, res, err);
}

int ksv_http_perform(ksv_http_client *c, const ksv_http_call *req, ksv_sb *reply,
                     ksv_http_result *res, ksv_err *err)
{
    ksv_sb_init(reply);
    if (run_one(c, req, reply, NULL, res, err) != 0) {
        ksv_sb_free(reply);
        return -1;
    }
    ksv_sb_putc(reply, '\0'); /* data != NULL even for an empty body */
    reply->len--;
    if (reply->oom) {
        ksv_sb_free(reply);
        if (res)
            res->failure = KSV_HTTP_E_NOMEM;
        return ksv_err_set(err, 500, "out of memory");
    }
    return 0;
}

int ksv_http_stream(ksv_http_client *c, const ksv_http_call *req,
                    const ksv_http_stream_fns *fns, ksv_http_result *res, ksv_err *err)
{
    static const ksv_http_stream_fns none = {0};
    return run_one(c, req, NULL, fns ? fns : &none, res, err);
}

/* ---- batches ------------------------------------------------------------------------------ */

struct ksv_http_batch {
    CURLM *multi;
    transfer *active;             /* in flight, newest first */
};

int ksv_http_batch_new(unsigned max_connections, ksv_http_batch **out, ksv_err *err)
{
    *out = NULL;
    if (ksv_http_global_init(err) != 0)
        return -1;
    ksv_http_batch *b = calloc(1, sizeof *b);
    if (!b || !(b->multi = curl_multi_init())) {
        free(b);
        return ksv_err_set(err, 500, "libcurl could not create a transfer group");
    }
    if (max_connections > 0)
        curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
    *out = b;
    return 0;
}

static void batch_detach(ksv_http_batch *b, ksv_http_client *c)
{
    transfer *t = &c->batch_t;
    curl_multi_remove_handle(b->multi, c->curl);
    c->in_batch = false;
    free_headers_wiped(t->extra_headers);
    t->extra_headers = NULL;
    if (t->prev)
        t->prev->next = t->next;
    else
        b->active = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

void ksv_http_batch_free(ksv_http_batch *b)
{
    if (!b)
        return;
    /* Detach what is still in flight, so its client can be freed or reused. */
    while (b->active)
        batch_detach(b, b->active->c);
    curl_multi_cleanup(b->multi);
    free(b);
}

static bool same_shape(const ksv_http_client *c, const ksv_http_call *req)
{
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    return c->prepared_url && c->prepared_url == req->url && !req->headers && !req->cancel &&
           strcmp(c->prepared_method, method) == 0 && c->prepared_timeout_ms == req->timeout_ms &&
           req->body;
}

int ksv_http_batch_add(ksv_http_batch *b, ksv_http_client *c, const ksv_http_call *req,
                       void *tag, ksv_err *err)
{
    if (c->in_batch)
        return ksv_err_set(err, 500, "an HTTP client runs one request at a time");
    transfer *t = &c->batch_t;
    CURLcode rc;
    if (same_shape(c, req)) {
        /* Only the body differs from the last request on this handle. */
        t->req_copy = *req;
        t->req = &t->req_copy;
        t->received = 0;
        t->over_cap = t->stopped = t->oom = false;
        c->error[0] = '\0';
        rc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, req->body);
    } else {
        if (transfer_init(t, c, req, err) != 0)
            return -1;
        t->req_copy = *req;
        t->req = &t->req_copy;
        rc = setup(t);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c->curl, CURLOPT_PRIVATE, (void *)c);
        c->prepared_url = NULL;
        if (rc == CURLE_OK && !req->headers && !req->cancel) {
            c->prepared_url = req->url;
            c->prepared_method = req->method ? req->method : req->body ? "POST" : "GET";
            c->prepared_timeout_ms = req->timeout_ms;
        }
    }
    t->tag = tag;
    if (rc != CURLE_OK) {
        free_headers_wiped(t->extra_headers);
        t->extra_headers = NULL;
        c->prepared_url = NULL;
        return ksv_err_set(err, 500, "libcurl refused a transfer option: %s",
                           curl_easy_strerror(rc));
    }
    CURLMcode mc = curl_multi_add_handle(b->multi, c->curl);
    if (mc != CURLM_OK) {
        free_headers_wiped(t->extra_headers);
        t->extra_headers = NULL;
        return ksv_err_set(err, 500, "libcurl: %s", curl_multi_strerror(mc));
    }
    c->in_batch = true;
    t->prev = NULL;
    t->next = b->active;
    if (b->active)
        b->active->prev = t;
    b->active = t;
    return 0;
}

void ksv_http_batch_perform(ksv_http_batch *b)
{
    int running = 0;
    curl_multi_perform(b->multi, &running);
}

void ksv_http_batch_wait(ksv_http_batch *b, long wait_ms)
{
    if (wait_ms < 0)
        wait_ms = 0;
    curl_multi_poll(b->multi, NULL, 0, (int)(wait_ms > 1000000 ? 1000000 : wait_ms), NULL);
}

bool ksv_http_batch_next_done(ksv_http_batch *b, void **tag, ksv_http_result *res)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(b->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = msg->data.result; /* msg is invalid once the handle is removed */
        void *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        ksv_http_client *c = priv;
        if (!c || !c->in_batch)
            continue;
        *tag = c->batch_t.tag;
        ksv_err ignored;
        conclude(&c->batch_t, rc, res, &ignored);
        batch_detach(b, c);
        return true;
    }
    return false;
}

void ksv_http_batch_abort(ksv_http_batch *b, ksv_http_client *c)
{
    if (c->in_batch)
        batch_detach(b, c);
}

/* ---- URLs ------------------------------------------------------------------------------------ */

static bool copy_part(CURLU *u, CURLUPart part, char *out, size_t cap, bool *present)
{
    char *v = NULL;
    out[0] = '\0';
    if (present)
        *present = false;
    if (curl_url_get(u, part, &v, 0) != CURLUE_OK || !v)
        return true;
    if (present)
        *present = true;
    bool fits = strlen(v) < cap;
    if (fits)
        memcpy(out, v, strlen(v) + 1);
    curl_free(v);
    return fits;
}

int ksv_http_url_parse(const char *url, ksv_http_url *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (ksv_http_global_init(err) != 0)
        return -1;
    CURLU *u = curl_url();
    if (!u)
        return ksv_err_set(err, 500, "out of memory");
    char port[16];
    bool ok = url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              copy_part(u, CURLUPART_URL, out->full, sizeof out->full, NULL) &&
              copy_part(u, CURLUPART_SCHEME, out->scheme, sizeof out->scheme, NULL) &&
              copy_part(u, CURLUPART_HOST, out->host, sizeof out->host, NULL) &&
              copy_part(u, CURLUPART_PATH, out->path, sizeof out->path, NULL) &&
              copy_part(u, CURLUPART_PORT, port, sizeof port, &out->has_port);
    if (ok) {
        char scratch[8];
        copy_part(u, CURLUPART_USER, scratch, 1, &out->has_user);
        copy_part(u, CURLUPART_QUERY, scratch, 1, &out->has_query);
        copy_part(u, CURLUPART_FRAGMENT, scratch, 1, &out->has_fragment);
        out->port = out->has_port ? atoi(port) : 0;
    }
    curl_url_cleanup(u);
    if (!ok)
        return ksv_err_set(err, 400, "%.200s: not a URL", url ? url : "(null)");
    return 0;
}

void ksv_http_escape(ksv_sb *sb, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            ksv_sb_putc(sb, (char)*p);
        } else {
            ksv_sb_putc(sb, '%');
            ksv_sb_putc(sb, hex[*p >> 4]);
            ksv_sb_putc(sb, hex[*p & 15]);
        }
    }
}

const char *ksv_http_failure_name(ksv_http_failure f)
{
    switch (f) {
    case KSV_HTTP_OK: return "ok";
    case KSV_HTTP_E_CONNECT: return "connect";
    case KSV_HTTP_E_BROKEN: return "broken connection";
    case KSV_HTTP_E_TIMEOUT: return "timeout";
    case KSV_HTTP_E_TOO_LARGE: return "too large";
    case KSV_HTTP_E_CANCELLED: return "cancelled";
    case KSV_HTTP_E_NEW_CONNECTION: return "new connection";
    case KSV_HTTP_E_URL: return "url";
    case KSV_HTTP_E_TLS: return "tls";
    case KSV_HTTP_E_NOMEM: return "out of memory";
    default: return "other";
    }
}
