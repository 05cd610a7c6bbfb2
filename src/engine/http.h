/* http.h: what the HTTP layer hands to the handlers and gets back.
 *
 * http_server.c owns libmicrohttpd: connections, body accumulation, limits, the worker
 * threads' scratch state, request ids and the response headers. Handlers (data_plane.c,
 * admin_api.c) see a complete request and fill a response; they never touch sockets. */
#ifndef KSV_ENGINE_HTTP_H
#define KSV_ENGINE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "engine/events.h"
#include "engine/gate.h"
#include "engine/mirror.h"
#include "engine/gpu_telemetry.h"
#include "engine/model_spec.h"
#include "engine/registry.h"
#include "engine/repository.h"
#include "engine/v2_codec.h"

/* Per-thread scratch, reused across requests so the hot path does not allocate. */
typedef struct ksv_worker {
    unsigned index;               /* 0..workers-1, passed to runtimes */
    uint64_t rng;                 /* traffic-split draws */
    uint64_t next_id;
    char id_prefix[12];
    ksv_tensor_req tensor;
    float *out;
    size_t out_cap;
} ksv_worker;

typedef struct ksv_proxy ksv_proxy;

typedef struct ksv_engine_info {
    const char *version;
    const char *token;            /* admin bearer token */
    ksv_registry *registry;
    size_t max_body;
    unsigned threads;
    double started_unix;
    const char *listen_address;   /* as bound, e.g. 127.0.0.1:8080 */
    const char *state_dir;
    ksv_gpu_telemetry *gpu;       /* GPU gauges; 0 GPUs when NVML is absent */
    ksv_repository *repository;   /* the V2 repository extension's state */
    ksv_event_log *events;        /* the state dir's event log (events.h) */
    ksv_gate *gate;               /* release gates (gate.h) */
    ksv_mirror *mirror;           /* their shadow traffic (mirror.h) */
    ksv_proxy *proxy;             /* forwards requests to external runtimes (proxy.h) */
    ksv_clock *clock;             /* the test clock (KSV_TEST_CLOCK); NULL in production */
} ksv_engine_info;

typedef struct ksv_http_request {
    const char *method;
    const char *path;             /* without the query string */
    const char *body;
    size_t body_len;
    const char *request_id;
    const char *authorization;    /* the Authorization header or NULL */
    const char *inference_header_length; /* Inference-Header-Content-Length or NULL: the
                                            body is binary tensor data (v2_binary.h) */
    const char *if_none_match;    /* the If-None-Match header or NULL (admin GETs answer 304) */
    double start;                 /* monotonic seconds when the headers arrived */
    ksv_worker *worker;
    const ksv_engine_info *engine;
    /* Where a handler that must wait for a cold start says for what (model, revision,
     * deadline); it then sets resp->wait_cold and the HTTP layer parks the request. */
    ksv_cold_waiter *cold;
    void *connection;             /* the server's; read it through ksv_http_query */
} ksv_http_request;

/* The value of query-string argument key ("?since=5" -> "5"), or NULL when absent. */
const char *ksv_http_query(const ksv_http_request *req, const char *key);
/* A response completed off the HTTP thread (proxy.c). A handler that sets resp->async
 * hands the request to a job; the server then suspends the connection instead of answering,
 * and calls, in this order:
 *   start   once, with wake(wake_arg) that resumes the connection. The job calls wake once
 *           when head() can answer, and later (streams) each time after read() returned 0.
 *           wake is only ever called under the job's own lock, never after finish.
 *   head    on the HTTP thread after the first wake: fills status, content_type, revision
 *           and, unless it returns true (a stream), the whole body.
 *   read    streams only, on the HTTP thread: copies up to max bytes and returns how many;
 *           0: nothing yet (it called park(park_arg) under its lock, suspending the
 *           connection until the next wake); -1: the end; -2: the stream broke.
 *   finish  once, when the connection is done with it (ok false: the client left or the
 *           request failed): cancels what still runs and drops the server's reference.
 * finish is also called, without start, when the connection ends before start. */
struct ksv_http_response;

typedef struct ksv_http_async_ops {
    void (*start)(void *job, void (*wake)(void *), void *wake_arg);
    bool (*head)(void *job, struct ksv_http_response *resp);
    long (*read)(void *job, char *buf, size_t max, void (*park)(void *), void *park_arg);
    void (*finish)(void *job, bool ok);
} ksv_http_async_ops;

typedef struct ksv_http_async {
    const ksv_http_async_ops *ops;  /* NULL: an ordinary response */
    void *job;
} ksv_http_async;

typedef struct ksv_http_response {
    int status;
    ksv_sb body;
    const char *content_type;     /* default application/json */
    size_t inference_header_len;  /* > 0: a binary answer whose JSON header is this long
                                     (sent as Inference-Header-Content-Length) */
    char revision[KSV_NAME_MAX];  /* ksv-revision header when non-empty */
    int retry_after;              /* Retry-After header (seconds) when > 0 */
    char etag[24];                /* ETag header (quoted) when non-empty */
    char state_etag[24];          /* X-Ksv-State-ETag header when non-empty: the state's ETag
                                   * told with the histograms (docs/API.md) */
    bool wait_cold;               /* not answered yet: wait for req->cold, then dispatch again */
    ksv_http_async async;         /* set by a handler that answers later */
} ksv_http_response;

/* Sets an error response {"error": message}. */
void ksv_http_error(ksv_http_response *resp, int status, const char *message);

/* Handlers. Each returns with resp filled. */
void ksv_handle_data_plane(const ksv_http_request *req, ksv_http_response *resp);
void ksv_handle_admin(const ksv_http_request *req, ksv_http_response *resp);
/* V2 extensions (v2_extensions.c). seg/n: the path's segments after "/v2/repository". */
void ksv_handle_v2_repository(const ksv_http_request *req, const char *const *seg, int n,
                              ksv_http_response *resp);
/* GET /v2/models/stats (model NULL), /v2/models/{m}[/versions/{rev}]/stats. */
void ksv_handle_v2_stats(const ksv_http_request *req, const char *model, const char *revision,
                         ksv_http_response *resp);
/* GET /v1/models: {"models":[...]}. */
void ksv_handle_v1_model_list(const ksv_http_request *req, ksv_http_response *resp);
/* Picks the revision of model (revision NULL: by its traffic split) that answers req, as
 * every inference route does (data_plane.c): true with *route held (the caller ends it
 * with ksv_registry_finish); false when resp is settled: an error (recorded against the
 * model unless 404; Retry-After on 503), or the request parked until a scaled-to-zero
 * revision is back (resp->wait_cold). */
bool ksv_data_plane_route(const ksv_http_request *req, const char *model,
                          const char *revision, ksv_route *route, ksv_http_response *resp);

/* Whether the request carries the admin bearer token (compared in constant time). */
bool ksv_http_authorized(const ksv_http_request *req);
/* The body as one JSON value (json-c; nothing but whitespace after it); NULL with a 400. */
json_object *ksv_http_json_body(const ksv_http_request *req, ksv_err *err);


#endif
