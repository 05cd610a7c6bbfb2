/* ssh_engine.h: making sure a ksv-engine serves on an SSH node's loopback, over a session.
 *
 * The engine on a node is found with `command -v ksv-engine` (or at --engine-path), or,
 * with install, uploaded from this build (ssh_sftp.h) when the node's `uname -m` matches
 * this machine's. It runs detached (setsid nohup) with its own state dir and listens on
 * 127.0.0.1:ENGINE_PORT only; ksv reaches it through a tunnel (ssh_tunnel.h). Its token is
 * read from STATE_DIR/token over the session. */
#ifndef KSV_REMOTE_SSH_ENGINE_H
#define KSV_REMOTE_SSH_ENGINE_H

#include <stdbool.h>

#include "common/error.h"
#include "remote/ssh_session.h"
#include "remote/ssh_sftp.h"
#include "remote/ssh_unit.h"

#define KSV_SSH_DEFAULT_ENGINE_PORT 8080
#define KSV_SSH_DEFAULT_STATE_DIR ".local/state/ksv/engine"   /* under the remote home */
#define KSV_SSH_ENGINE_START_TIMEOUT_MS 10000L

typedef struct ksv_ssh_engine_options {
    const char *engine_path;    /* --engine-path; NULL: `command -v ksv-engine` on the node */
    const char *state_dir;      /* --engine-state-dir; NULL: ~/KSV_SSH_DEFAULT_STATE_DIR */
    int engine_port;            /* --engine-port; 0: KSV_SSH_DEFAULT_ENGINE_PORT */
    bool install;               /* --install: upload local_engine when none is found, and
                                 * write and enable the systemd unit (ssh_unit.h) */
    const char *local_engine;   /* this build's ksv-engine (required with install) */
    const char *cache_dir;      /* where --install puts the binary, named by its sha256;
                                   NULL: STATE_DIR/bin, so removing the state dir removes
                                   everything ksv put on the node */
    ksv_ssh_progress_fn progress;   /* upload progress (may be NULL) */
    void *progress_arg;
    long start_timeout_ms;      /* <= 0: KSV_SSH_ENGINE_START_TIMEOUT_MS */
} ksv_ssh_engine_options;

typedef struct ksv_ssh_engine {
    int port;                   /* the engine's port on the node's 127.0.0.1 */
    char token[256];            /* its admin token */
    char engine_path[1100];     /* the executable used (record it for later starts) */
    char state_dir[1100];       /* absolute, on the node */
    char arch[64];              /* the node's `uname -m` */
    bool started;               /* this call started it */
    bool installed;             /* this call uploaded it (installed_sent bytes) */
    long long installed_sent;
    bool unit_written;          /* --install: the systemd unit was written (unit says more) */
    ksv_ssh_unit unit;
} ksv_ssh_engine;

/* What one exec tells about the node before anything else is done there. */
typedef struct ksv_ssh_node_facts {
    char home[1024];
    char arch[64];              /* uname -m */
    char state_dir[1100];       /* the engine's state dir, absolute */
    char engine[1100];          /* the ksv-engine found ("" none) */
    char address[128];          /* STATE_DIR/address ("" missing) */
    bool lock_held;             /* an engine holds STATE_DIR/lock */
    char token[256];            /* STATE_DIR/token ("" missing) */
} ksv_ssh_node_facts;

/* Parses the node-facts script's reply: "key=value" lines (home, arch, dir, engine,
 * address, lock, token); other lines (what the user's rc files print) are skipped, a
 * trailing '\r' is dropped, and the value is all after the first '='. Modifies text.
 * 0 when home, arch, an absolute dir and lock were all there; -1 otherwise. */
int ksv_ssh_parse_node_facts(char *text, ksv_ssh_node_facts *out);

/* Finds (or installs), starts when not running, and reads the token. Errors: 404 no
 * ksv-engine on the node (the message says to pass --engine-path or --install); 409 the
 * node's architecture differs from this machine's (install refused), or the port is held by
 * something else / the state dir's engine listens elsewhere; 503 the engine did not come
 * up (quoting the end of STATE_DIR/engine.log) or the link failed. */
int ksv_ssh_ensure_engine(ksv_ssh_session *s, const ksv_ssh_engine_options *o,
                          ksv_ssh_engine *out, ksv_err *err);

#endif
