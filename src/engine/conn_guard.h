/* conn_guard.h: a deadline for the whole header block of every request.
 *
 * libmicrohttpd's connection timeout is an idle timeout: each byte resets it, so a client
 * that sends one header line every 20 s holds a connection forever, and a few thousand of
 * them hold every slot (issue 11, finding 2). The guard arms a deadline when a connection
 * opens (header_timeout: the first request's headers) and again when a keep-alive
 * connection finishes a request (keepalive_timeout: the next request's headers, counted
 * from the end of the last, which is when an idle connection is dropped anyway); the
 * handler disarms it once the headers are in. A reaper thread shuts down (shutdown(2)) every connection whose
 * deadline passed, and libmicrohttpd then closes it as it would a peer's hang-up.
 *
 * The socket is shut down under the guard's lock, and libmicrohttpd tells the guard a
 * connection closed (MHD_CONNECTION_NOTIFY_CLOSED) before it closes the descriptor, so a
 * descriptor the reaper touches is never one already reused. */
#ifndef KSV_ENGINE_CONN_GUARD_H
#define KSV_ENGINE_CONN_GUARD_H

#include "common/error.h"

typedef struct ksv_conn_guard ksv_conn_guard;
typedef struct ksv_guarded_conn ksv_guarded_conn;

int ksv_conn_guard_start(double header_timeout_s, double keepalive_timeout_s,
                         ksv_conn_guard **out, ksv_err *err);
/* Stops the reaper; call after the HTTP daemon stopped (no more callbacks). */
void ksv_conn_guard_stop(ksv_conn_guard *g);

/* A connection opened on socket fd: armed. Returns its record (NULL when out of memory:
 * the connection is then only under the idle timeout). */
ksv_guarded_conn *ksv_conn_guard_open(ksv_conn_guard *g, int fd);
/* Its headers arrived: disarmed until the request completes. */
void ksv_conn_guard_headers_done(ksv_conn_guard *g, ksv_guarded_conn *c);
/* Its request completed: armed again for the next request's headers. */
void ksv_conn_guard_request_done(ksv_conn_guard *g, ksv_guarded_conn *c);
/* It closed: the record is freed. */
void ksv_conn_guard_close(ksv_conn_guard *g, ksv_guarded_conn *c);
/* Connections cut for missing the deadline, since start. */
unsigned long long ksv_conn_guard_cut_total(ksv_conn_guard *g);

#endif
