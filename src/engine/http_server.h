/* http_server.h: the engine's HTTP front: a libmicrohttpd daemon in epoll mode with one
 * thread per core, body limits, slow-client deadlines, request ids and response headers.
 * It dispatches complete requests to the data-plane and admin handlers (http.h). */
#ifndef KSV_ENGINE_HTTP_SERVER_H
#define KSV_ENGINE_HTTP_SERVER_H

#include <stddef.h>

#include "common/error.h"
#include "engine/http.h"

typedef struct ksv_http_server ksv_http_server;

/* Binds ADDR:PORT (IPv4, or [IPv6]:PORT; port 0 picks a free one) and writes the address
 * actually bound into bound ("127.0.0.1:41234"). */
int ksv_http_listen(const char *addr, int *fd, char *bound, size_t bound_cap, ksv_err *err);

/* What one client, or all of them together, may hold (docs/OPERATIONS.md, "Limits").
 * Zero fields take the defaults in brackets. */
typedef struct ksv_http_limits {
    double request_timeout;       /* seconds to deliver a whole body (408 after) [30] */
    double header_timeout;        /* seconds for a request's whole header block [10] */
    size_t inflight_bytes;        /* all requests' bodies, KSV_HTTP_WORK_FACTOR times each,
                                   * together; a request past it gets 503 at once [1 GiB,
                                   * at least 4 x max_body] */
    unsigned max_connections;     /* [4096, and below the open-file limit] */
    unsigned per_ip_connections;  /* [max_connections / 2] */
    size_t heavy_body;            /* bodies this big or bigger are inferred off the HTTP
                                   * threads, so probes and small requests never wait
                                   * behind them [1 MiB] */
} ksv_http_limits;

/* A request's body is held once and its decoded tensor, outputs and answer take about
 * three times more: each byte in flight counts this many times against inflight_bytes. */
#define KSV_HTTP_WORK_FACTOR 4
/* Threads that infer heavy requests: worker indexes engine->threads .. + this - 1, so the
 * registry sizes per-worker state for engine->threads + ksv_http_heavy_threads(...). */
unsigned ksv_http_heavy_threads(unsigned threads);

/* Starts serving on the listening socket fd (the server takes ownership of it). */
int ksv_http_server_start(const ksv_engine_info *engine, int fd, const ksv_http_limits *limits,
                          ksv_http_server **out, ksv_err *err);
/* The limits in force (defaults filled in, the connection limit fitted under the
 * open-file limit). */
const ksv_http_limits *ksv_http_server_limits(const ksv_http_server *srv);
/* Turns new connections away (closed as accepted); requests already in flight go on. */
void ksv_http_server_quiesce(ksv_http_server *srv);
/* Requests received (headers read) and not yet completed. */
long ksv_http_server_active(ksv_http_server *srv);
/* Stops the threads and closes every connection. */
void ksv_http_server_stop(ksv_http_server *srv);

#endif
