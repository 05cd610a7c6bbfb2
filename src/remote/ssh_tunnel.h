/* ssh_tunnel.h: a local TCP port on 127.0.0.1 whose connections are carried over an SSH
 * session (direct-tcpip channels) to a port on the node's loopback, so the engine admin
 * client (engine_client.h) reaches an SSH node at http://127.0.0.1:LOCALPORT. Nothing is
 * opened on the node's network side.
 *
 * A forwarding thread owns the session from ksv_ssh_tunnel_start on (libssh2 sessions are
 * not thread-safe): it polls the SSH socket and every local socket, multiplexes any number
 * of local connections onto channels, and pings the server (a keepalive round trip every
 * half second). A link that breaks (I/O error, EOF) or stops answering pings for the session's
 * dead_after_ms (default 3 s) is declared down: the thread closes the listening socket and
 * every local connection (clients then get "connection refused", 503 from the engine
 * client) and ksv_ssh_tunnel_alive turns false. Reconnecting is the caller's loop:
 * ksv_ssh_tunnel_close, then ksv_ssh_session_open and ksv_ssh_tunnel_start again (the new
 * tunnel has a new local port). */
#ifndef KSV_REMOTE_SSH_TUNNEL_H
#define KSV_REMOTE_SSH_TUNNEL_H

#include <stdbool.h>

#include "common/error.h"
#include "remote/ssh_session.h"

typedef struct ksv_ssh_tunnel ksv_ssh_tunnel;

/* Listens on 127.0.0.1:0 and starts the forwarding thread towards remote_host:remote_port
 * as the node sees it (normally "127.0.0.1" and the engine's port). Takes ownership of s
 * on success AND on failure: the caller must not touch s again. */
int ksv_ssh_tunnel_start(ksv_ssh_session *s, const char *remote_host, int remote_port,
                         ksv_ssh_tunnel **out, ksv_err *err);
/* "http://127.0.0.1:LOCALPORT" */
const char *ksv_ssh_tunnel_base_url(const ksv_ssh_tunnel *t);
int ksv_ssh_tunnel_local_port(const ksv_ssh_tunnel *t);
/* true while the link is up; false with why (may be NULL) saying what broke it. */
bool ksv_ssh_tunnel_alive(ksv_ssh_tunnel *t, ksv_err *why);
/* Local connections accepted so far, and open now. */
void ksv_ssh_tunnel_counts(ksv_ssh_tunnel *t, long *accepted, long *open_now);
/* Stops the thread, closes every connection and the session, frees t. NULL is fine. */
void ksv_ssh_tunnel_close(ksv_ssh_tunnel *t);

#endif
