/* ssh_session_internal.h: the session record and the non-blocking helpers shared by the
 * ssh_*.c files (exec, tunnel, sftp). Not for use outside src/remote/ssh_*. */
#ifndef KSV_REMOTE_SSH_SESSION_INTERNAL_H
#define KSV_REMOTE_SSH_SESSION_INTERNAL_H

#include <stdbool.h>

#include <libssh2.h>

#include "remote/ssh_session.h"

struct ksv_ssh_session {
    int fd;                      /* the TCP socket */
    LIBSSH2_SESSION *ssh;        /* non-blocking */
    LIBSSH2_CHANNEL *pump;       /* an idle session channel: keepalive pings travel on it */
    bool broken;                 /* a timeout or transport error left libssh2 unusable */
    long io_timeout_ms;
    long dead_after_ms;
    ksv_ssh_session_info info;
    char name[400];              /* user@host:port */
};


/* Waits (poll) until the socket is ready in the direction libssh2 is blocked on, or the
 * deadline (ksv_mono_ms() scale) passes: then 504, and the session is marked broken. */
int ksv_ssh_wait(ksv_ssh_session *s, double deadline_ms, const char *what, ksv_err *err);

/* True for libssh2 codes that mean the connection itself is gone or unusable (as opposed
 * to one channel or request failing). */
bool ksv_ssh_rc_fatal(int rc);

/* Fills err from libssh2's last error for a failed step (`what`), marking the session
 * broken when the code is fatal: 503 then, else status. Returns -1. */
int ksv_ssh_fail(ksv_ssh_session *s, int rc, int status, const char *what, ksv_err *err);

/* One non-blocking step of a keepalive ping (an "env" request with want-reply on the
 * pump channel, which any OpenSSH server answers). Returns 1 when the answer came (the
 * ping is over), 0 when it is still in flight, or a negative libssh2 code. */
int ksv_ssh_ping_step(ksv_ssh_session *s);

#endif
