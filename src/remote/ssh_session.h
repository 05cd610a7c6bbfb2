/* ssh_session.h: one authenticated SSH connection to a node (libssh2), the transport under
 * ssh:// nodes.
 *
 * Opening resolves the name through ~/.ssh/config (ssh_config.h), connects with a deadline,
 * checks the host key against known_hosts (ssh_knownhosts.h: an unknown host is refused
 * unless trust_new, a changed key always is), then authenticates with the keys of
 * ssh-agent, the explicit identity, the config's IdentityFile lines and ~/.ssh/id_ed25519,
 * id_ecdsa, id_rsa, in that order.
 *
 * The session runs libssh2 in non-blocking mode and every call has a deadline, so a dead
 * link costs at most the I/O timeout. A session is NOT thread-safe (libssh2 sessions are
 * not): one thread uses it at a time. ksv_ssh_tunnel_start (ssh_tunnel.h) hands it to the
 * tunnel's forwarding thread, which then owns it until ksv_ssh_tunnel_close.
 *
 * Errors (ksv_err status): 400 bad target; 401 authentication failed; 403 host key unknown
 * or changed; 404 a named file (identity) is missing; 503 cannot connect / link lost;
 * 504 timed out; 500 other libssh2 failures. After a 503 or 504 the session is broken:
 * close it and open a new one. */
#ifndef KSV_REMOTE_SSH_SESSION_H
#define KSV_REMOTE_SSH_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define KSV_SSH_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define KSV_SSH_DEFAULT_IO_TIMEOUT_MS 15000L
#define KSV_SSH_DEFAULT_DEAD_AFTER_MS 3000L
#define KSV_SSH_EXEC_MAX_OUTPUT ((size_t)4 << 20)

typedef struct ksv_ssh_session ksv_ssh_session;

/* Where and how to connect. Strings are borrowed for the duration of the open call.
 * A zeroed struct plus host is a valid target. */
typedef struct ksv_ssh_target {
    const char *host;          /* host name, address or ~/.ssh/config alias (required) */
    const char *user;          /* NULL: config User, then the local user name */
    int port;                  /* 0: config Port, then 22 */
    const char *identity;      /* --identity FILE, tried first among files (NULL: none) */
    const char *known_hosts;   /* --known-hosts FILE (NULL: ~/.ssh/known_hosts) */
    const char *config_path;   /* NULL: ~/.ssh/config; "" : read no config file */
    bool trust_new;            /* accept and record the key of a host not in known_hosts */
    bool no_agent;             /* skip ssh-agent even when SSH_AUTH_SOCK is set */
    long connect_timeout_ms;   /* TCP connect + handshake + auth; <= 0: default 10 s */
    long io_timeout_ms;        /* each later call (exec, sftp, probe); <= 0: default 15 s */
    long dead_after_ms;        /* a keepalive unanswered this long means the link is dead;
                                  <= 0: default 3 s */
} ksv_ssh_target;

/* What opening found out, for messages and for recording the node. */
typedef struct ksv_ssh_session_info {
    char host[256];            /* the HostName actually connected to */
    char user[64];
    int port;
    char host_key_type[32];    /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ... */
    char host_key_sha256[64];  /* "SHA256:..." as ssh-keygen -l prints it */
    bool host_key_added;       /* trust_new recorded it in known_hosts */
    char known_hosts[1024];    /* the file checked */
    char auth[1100];           /* "agent key COMMENT" or "publickey FILE" */
} ksv_ssh_session_info;

int ksv_ssh_session_open(const ksv_ssh_target *target, ksv_ssh_session **out, ksv_err *err);
/* Closes the channels and the connection (politely when the link is up, at once when it
 * is not) and frees s. NULL is fine. */
void ksv_ssh_session_close(ksv_ssh_session *s);
const ksv_ssh_session_info *ksv_ssh_session_get_info(const ksv_ssh_session *s);
/* "user@host:port", for messages. */
const char *ksv_ssh_session_name(const ksv_ssh_session *s);

/* One keepalive round trip to the server, waiting at most the target's dead_after_ms.
 * false (and err set, 503) when it does not come back or the session is broken. */
bool ksv_ssh_session_alive(ksv_ssh_session *s, ksv_err *err);

/* --- remote commands ------------------------------------------------------------------ */

typedef struct ksv_ssh_exec_result {
    char *out;                 /* stdout, NUL-terminated (owned; ksv_ssh_exec_result_free) */
    size_t out_len;
    char *err_text;            /* stderr, NUL-terminated (owned) */
    size_t err_len;
    int exit_status;           /* -1 when the command died of a signal */
    char exit_signal[32];      /* "" or the signal's name ("KILL", "TERM", ...) */
} ksv_ssh_exec_result;

/* Runs command through the remote user's shell over an exec channel, with stdin_data
 * (may be NULL) as its input, and waits for it to exit, within timeout_ms (<= 0: the
 * target's io timeout). Returns 0 whatever the exit status; -1 only when it could not run
 * or did not finish in time (504; the session is broken then) or its output exceeded
 * KSV_SSH_EXEC_MAX_OUTPUT (413). */
int ksv_ssh_exec(ksv_ssh_session *s, const char *command, const char *stdin_data,
                 long timeout_ms, ksv_ssh_exec_result *out, ksv_err *err);
void ksv_ssh_exec_result_free(ksv_ssh_exec_result *r);

/* Quotes s for a POSIX shell (single quotes) into out. -1 when it does not fit. */
int ksv_ssh_shell_quote(const char *s, char *out, size_t cap);

/* Sends "GET path HTTP/1.0" to the node's host:port through a direct-tcpip channel and
 * reads the status line: *http_status gets the code. 0 when an HTTP answer came; -1 with
 * 503 when nothing listens there (channel refused) or no HTTP answer came in timeout_ms. */
int ksv_ssh_http_probe(ksv_ssh_session *s, const char *host, int port, const char *path,
                       long timeout_ms, int *http_status, ksv_err *err);

#endif
