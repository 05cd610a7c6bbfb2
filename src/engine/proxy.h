/* proxy.h: forwarding requests for a revision served by an external runtime (ext_runtime.h)
 * to that runtime's loopback port, through ksv's HTTP client, off the HTTP threads.
 *
 * A forwarded request keeps everything a built-in runtime's request has: the route chosen by
 * the traffic split (held, so the revision is not unloaded under it), the request id (sent
 * on as x-request-id), the status, latency and error ring (ksv_registry_finish once the
 * answer is complete). Failures of the runtime become JSON errors: 503 when it is down or
 * restarting, 504 when it does not answer within the revision's timeout, 502 when it
 * answers garbage or the connection breaks. A client that goes away cancels the upstream
 * request. Streams (Server-Sent Events) are relayed chunk by chunk as they arrive, never
 * buffered whole; a slow reader holds the runtime back instead of growing memory. */
#ifndef KSV_ENGINE_PROXY_H
#define KSV_ENGINE_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "engine/http.h"
#include "engine/registry.h"

/* Engine-wide: idle upstream connections for reuse, and the count of running jobs. */
int ksv_proxy_create(ksv_proxy **out, ksv_err *err);
/* Cancels every running job and waits until none is left (engine stop). */
void ksv_proxy_shutdown(ksv_proxy *p);
void ksv_proxy_destroy(ksv_proxy *p);

/* What an answer is checked and rewritten for. */
typedef enum {
    KSV_PROXY_PASS,           /* the body as the runtime sent it */
    KSV_PROXY_V2_INFER,       /* JSON object; model_name and model_version set to ksv's */
    KSV_PROXY_JSON,           /* JSON object, passed as is */
} ksv_proxy_rewrite;

/* Watches an answer as it passes (openai_api.c counts tokens with it). Called on the job's
 * thread: on_data for each piece of a streamed answer, on_done once with the whole buffered
 * answer (NULL for streams) and the status. free releases it. */
typedef struct ksv_proxy_observer {
    void (*on_data)(void *self, const char *data, size_t len, double seconds);
    void (*on_done)(void *self, long status, const char *body, size_t len, double seconds,
                    ksv_engine_revision *rev);
    void (*free)(void *self);
    void *self;
} ksv_proxy_observer;

typedef struct ksv_proxy_call {
    const char *model;            /* ksv's model name (for rewrites) */
    const char *upstream_path;    /* path on the runtime, e.g. "/v2/models/m/infer" */
    const char *method;
    const char *body;             /* copied */
    size_t body_len;
    bool stream;                  /* relay a 200 text/event-stream answer as it arrives */
    ksv_proxy_rewrite rewrite;
    ksv_proxy_observer observer;  /* optional (all NULL) */
} ksv_proxy_call;

/* Forwards req to the route's revision and sets resp->async; the job owns the route from
 * here (it calls ksv_registry_finish). On failure to start, it answers resp with the error,
 * finishes the route itself and returns -1. */
int ksv_proxy_forward(const ksv_http_request *req, ksv_route *route, const ksv_proxy_call *call,
                      ksv_http_response *resp);

/* V2 infer or V1 predict for a model whose chosen revision runs externally: checks that the
 * runtime speaks the protocol, forwards to its /v2/models/MODEL/infer or
 * /v1/models/MODEL:predict and, for V2, sets model_version to the revision. Always
 * consumes the route. */
void ksv_proxy_forward_infer(const ksv_http_request *req, ksv_route *route, const char *model,
                             bool v1, ksv_http_response *resp);

#endif
