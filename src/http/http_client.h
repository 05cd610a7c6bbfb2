/* http_client.h: ksv's one HTTP client (the only code that includes <curl/curl.h>;
 * tests/check_layers.sh enforces it). Every outgoing HTTP request of ksv, ksv-top and
 * ksv-engine goes through here, so the policies below are decided once:
 *
 *   global init   ksv_http_global_init: once per process, thread-safe (a once-guard), also
 *                 called by ksv_http_client_new, so a library caller cannot forget it.
 *   timeouts      timeout_ms bounds a whole request, connect_timeout_ms the connect;
 *                 low_speed_* abandons a stalled transfer without limiting a slow one.
 *   proxy         KSV_HTTP_PROXY_NONE (the default) goes direct and ignores $http_proxy:
 *                 ksv's nodes, engines and tunnels are never reached through a proxy.
 *                 KSV_HTTP_PROXY_ENV honours http_proxy/https_proxy/no_proxy, for
 *                 services outside ksv (model stores, Prometheus).
 *   redirects     not followed unless max_redirects > 0; then only to http/https, and a
 *                 request that started on https is never redirected to plain http.
 *   protocols     http and https only (no file://, ftp://, ... from a URL or a redirect).
 *   TLS           peer and host name verified (ca_file adds a CA bundle); only a model
 *                 store the operator marks S3_VERIFY_SSL=0 turns it off (tls_no_verify).
 *   reply caps    max_reply bounds a buffered reply and a streamed one; a larger answer
 *                 fails with KSV_HTTP_E_TOO_LARGE before or while it arrives. Every caller
 *                 names its cap: KSV_HTTP_DEFAULT_MAX_REPLY for an API reply, its own for
 *                 a download, KSV_HTTP_NO_REPLY_CAP where it bounds the bytes itself; 0 is
 *                 refused (it once meant a silent 64 MiB default, and every model download
 *                 over 64 MiB failed).
 *   headers       "Expect:" is always sent empty (no 1 s stall on a POST body). Header
 *                 lines are wiped from memory when freed: they may hold tokens.
 *   errors        a failure sets ksv_err to "URL: what went wrong" with a status (503
 *                 unreachable, 504 sent and no answer in time, 502 bad answer or over
 *                 the cap, 400 bad URL, 499 cancelled, 500 no memory), and
 *                 ksv_http_result tells the kind and libcurl's own words, for callers
 *                 that phrase errors their own way. A timeout before any byte of the
 *                 request went out (while connecting) is KSV_HTTP_E_CONNECT, 503: the
 *                 peer got nothing. Only KSV_HTTP_E_TIMEOUT (504) says the peer may have
 *                 received the request and may still act on it.
 *
 * Three forms:
 *   ksv_http_perform   buffered: the whole reply in memory (admin calls, queries).
 *   ksv_http_stream    streaming: the reply handed to a callback chunk by chunk as it
 *                      arrives (downloads to a file, relays, SSE), with header lines,
 *                      progress and cancellation (callback or an atomic flag).
 *   ksv_http_batch     many requests in flight on one thread (the load generator).
 *
 * Threads: a ksv_http_client (one reusable connection) and a ksv_http_batch are used by one
 * thread at a time; different ones may run on different threads at once. */
#ifndef KSV_HTTP_HTTP_CLIENT_H
#define KSV_HTTP_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/strbuf.h"

/* Sets up the HTTP library once per process; safe from any thread, any number of times. */
int ksv_http_global_init(ksv_err *err);

typedef enum ksv_http_proxy {
    KSV_HTTP_PROXY_NONE = 0,  /* direct, whatever the environment says */
    KSV_HTTP_PROXY_ENV,       /* http_proxy, https_proxy, no_proxy as libcurl reads them */
} ksv_http_proxy;

/* A cap for replies read into memory (API answers, listings); also what a client made
 * without options (o NULL) gets. */
#define KSV_HTTP_DEFAULT_MAX_REPLY ((size_t)64 << 20)
/* No cap: only for a caller that bounds what it keeps itself (a stream it counts). */
#define KSV_HTTP_NO_REPLY_CAP SIZE_MAX

typedef struct ksv_http_options {
    long timeout_ms;          /* whole request; 0: none (then set low_speed_*) */
    long connect_timeout_ms;  /* 0: timeout_ms, or 15 s when timeout_ms is 0 */
    long low_speed_bytes;     /* abandon a transfer slower than this many bytes/s ... */
    long low_speed_s;         /* ... for this many seconds (0: never) */
    int max_redirects;        /* 0: a redirect is returned as the answer, not followed */
    ksv_http_proxy proxy;
    size_t max_reply;         /* reply body cap, required (see "reply caps"); 0 is refused */
    bool accept_encoding;     /* offer gzip/deflate/...; the reply arrives decoded */
    bool http1;               /* force HTTP/1.1 (one connection per handle, keep-alive) */
    bool tcp_nodelay;
    const char *user_agent;   /* NULL: none */
    const char *ca_file;      /* extra CA bundle (PEM) for https; NULL: the system's */
    /* Header lines sent with every request ("Name: value"), NULL-terminated; copied. */
    const char *const *headers;
    /* AWS Signature V4, by libcurl (S3 and compatible stores): "aws:amz:REGION:SERVICE"
     * with the access key pair (copied, wiped when freed). NULL: requests are not signed. */
    const char *aws_sigv4;
    const char *aws_access_key, *aws_secret_key;
    /* Skips TLS peer and host verification. Only for an operator's explicit S3_VERIFY_SSL=0
     * (as KServe's storage initializer honours it); nothing of ksv's own sets it. */
    bool tls_no_verify;
} ksv_http_options;

/* What went wrong, when something did (the HTTP status is not a failure here). */
typedef enum ksv_http_failure {
    KSV_HTTP_OK = 0,
    KSV_HTTP_E_CONNECT,       /* could not resolve or connect (nothing listening, refused,
                               * or the connect timed out): nothing was sent */
    KSV_HTTP_E_BROKEN,        /* the connection broke: reset, TLS handshake, no answer */
    KSV_HTTP_E_TIMEOUT,       /* the request went out, and timeout_ms or the low-speed
                               * limit ran out before the answer was in */
    KSV_HTTP_E_TOO_LARGE,     /* the reply is over max_reply */
    KSV_HTTP_E_CANCELLED,     /* a callback or the cancel flag stopped it */
    KSV_HTTP_E_URL,           /* a malformed URL */
    KSV_HTTP_E_TLS,           /* the peer's certificate did not verify */
    KSV_HTTP_E_NOMEM,
    KSV_HTTP_E_NEW_CONNECTION,/* reuse_port was set and the request would have gone on
                               * another connection: closed before a byte was sent */
    KSV_HTTP_E_OTHER,         /* a malformed answer (no HTTP status, HTTP/0.9), a refused
                               * protocol or redirect, and anything else */
} ksv_http_failure;

typedef struct ksv_http_result {
    long status;              /* the final HTTP status; 0 when no answer came */
    ksv_http_failure failure;
    int code;                 /* libcurl's CURLcode, 0 when none (for reports) */
    char message[256];        /* libcurl's words for the failure, "" when none */
    long connections_opened;  /* new connections this request opened (0: one was reused) */
    double total_s;           /* the transfer's own duration, connect included */
    long local_port;          /* this end's port of the connection used (0: none) */
    char etag[96];            /* the answer's ETag header as sent (quotes kept), "" when none
                               * or longer; a later request can send it as If-None-Match */
    char state_etag[96];      /* its X-Ksv-State-ETag header, likewise: a ksv-engine tells
                               * its state's ETag with its histograms (docs/API.md) */
} ksv_http_result;

typedef struct ksv_http_call {
    const char *method;       /* NULL: GET, or POST when body is set */
    const char *url;
    const char *const *headers; /* extra lines for this request, NULL-terminated; may be NULL */
    const void *body;         /* sent as is; NULL: none */
    size_t body_len;
    long timeout_ms;          /* > 0: overrides the client's for this request */
    const atomic_bool *cancel; /* optional: set true from any thread to stop the transfer */
    /* > 0: the request goes only on the connection an earlier request of this client left
     * open, whose local port (ksv_http_result.local_port) this is. Any other connection
     * fails it with KSV_HTTP_E_NEW_CONNECTION before a byte of it is sent: for a secret
     * that may only reach a peer checked on that connection (remote/engine_client.c). */
    long reuse_port;
} ksv_http_call;

typedef struct ksv_http_client ksv_http_client;

/* One reusable connection with the given policies (copied; o may be NULL: defaults). */
int ksv_http_client_new(const ksv_http_options *o, ksv_http_client **out, ksv_err *err);
void ksv_http_client_free(ksv_http_client *c);
/* Changes the reply cap of later requests; 0 is refused (400) and the cap stays. */
int ksv_http_client_set_max_reply(ksv_http_client *c, size_t bytes, ksv_err *err);

/* Buffered: *reply gets the body (NUL-terminated, reply->len without it; free with
 * ksv_sb_free), res the outcome. Returns 0 when an HTTP answer came (any status), -1 with
 * err and res->failure set otherwise (reply then empty). res may be NULL. */
int ksv_http_perform(ksv_http_client *c, const ksv_http_call *req, ksv_sb *reply,
                     ksv_http_result *res, ksv_err *err);

/* Streaming callbacks; each may be NULL. Returning nonzero from one stops the transfer
 * (KSV_HTTP_E_CANCELLED). They run on the caller's thread, inside ksv_http_stream. */
typedef struct ksv_http_stream_fns {
    /* Each header line of the final answer, without its CRLF; status is already known. */
    int (*on_header)(long status, const char *line, size_t len, void *user);
    /* A chunk of the body, in order. */
    int (*on_data)(const char *data, size_t len, void *user);
    /* About every second and at each chunk: bytes so far and the expected total (-1 when
     * the server did not say). */
    int (*on_progress)(long long done, long long total, void *user);
    void *user;
} ksv_http_stream_fns;

/* Streaming: the body goes to fns->on_data as it arrives, never held whole. Returns as
 * ksv_http_perform does. */
int ksv_http_stream(ksv_http_client *c, const ksv_http_call *req,
                    const ksv_http_stream_fns *fns, ksv_http_result *res, ksv_err *err);

/* ---- many requests in flight on one thread ------------------------------------------ */

typedef struct ksv_http_batch ksv_http_batch;

/* max_connections: the most connections kept open (0: libcurl's default). */
int ksv_http_batch_new(unsigned max_connections, ksv_http_batch **out, ksv_err *err);
/* Aborts what is in flight (no result is reported for it) and frees the batch. */
void ksv_http_batch_free(ksv_http_batch *b);
/* Starts req on client c (which must not be busy); the body is discarded, only the outcome
 * is kept. req's strings and body must stay valid until the request is done. */
int ksv_http_batch_add(ksv_http_batch *b, ksv_http_client *c, const ksv_http_call *req,
                       void *tag, ksv_err *err);
/* Moves what bytes can move now; never waits. */
void ksv_http_batch_perform(ksv_http_batch *b);
/* Sleeps until a transfer needs attention (a socket or a libcurl timer), at most wait_ms. */
void ksv_http_batch_wait(ksv_http_batch *b, long wait_ms);
/* One finished request: its tag and outcome. False when none is waiting. */
bool ksv_http_batch_next_done(ksv_http_batch *b, void **tag, ksv_http_result *res);
/* Stops a request of client c that is in flight (no result is reported for it). */
void ksv_http_batch_abort(ksv_http_batch *b, ksv_http_client *c);

/* ---- URLs ------------------------------------------------------------------------------ */

/* The parts of an absolute URL, each "" when absent. */
typedef struct ksv_http_url {
    char full[2048];          /* the URL as libcurl normalises it */
    char scheme[16];
    char host[256];
    char path[1024];
    bool has_user, has_query, has_fragment, has_port;
    int port;
} ksv_http_url;

/* Parses url as libcurl will read it. -1 (400) when it is not a URL or a part is too long. */
int ksv_http_url_parse(const char *url, ksv_http_url *out, ksv_err *err);
/* Appends s percent-encoded for a query value or a path segment (all but A-Z a-z 0-9 -._~). */
void ksv_http_escape(ksv_sb *sb, const char *s);

/* "connect", "timeout", ... for logs and reports. */
const char *ksv_http_failure_name(ksv_http_failure f);

#endif
