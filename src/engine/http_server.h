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

/* Starts serving on the listening socket fd (the server takes ownership of it).
 * request_timeout: seconds a client has to deliver its whole body (408 after). */
int ksv_http_server_start(const ksv_engine_info *engine, int fd, double request_timeout,
                          ksv_http_server **out, ksv_err *err);
/* Turns new connections away (closed as accepted); requests already in flight go on. */
void ksv_http_server_quiesce(ksv_http_server *srv);
/* Requests received (headers read) and not yet completed. */
long ksv_http_server_active(ksv_http_server *srv);
/* Stops the threads and closes every connection. */
void ksv_http_server_stop(ksv_http_server *srv);

#endif
