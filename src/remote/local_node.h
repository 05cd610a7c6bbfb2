/* local_node.h: a ksv-engine on this machine, found through its state dir.
 *
 * The engine holds an exclusive flock on STATE_DIR/lock for its whole life and writes its
 * pid into it; it writes the address it bound into STATE_DIR/address ("127.0.0.1:PORT")
 * and its admin token into STATE_DIR/token (0600). Those three files are the whole
 * protocol: starting attaches to a running engine when the lock is held, and otherwise
 * launches a detached one (its own session, stdin /dev/null, stdout and stderr appended to
 * STATE_DIR/engine.log) that outlives the ksv process which started it. */
#ifndef KSV_REMOTE_LOCAL_NODE_H
#define KSV_REMOTE_LOCAL_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

#define KSV_LOCAL_ENGINE_START_TIMEOUT_MS 10000L

typedef struct ksv_local_engine {
    char base_url[160];   /* "http://127.0.0.1:PORT", for ksv_engine_client_new */
    char listen[128];     /* STATE_DIR/address as written ("0.0.0.0:PORT" stays so), for
                           * ksv_engine_client_expect_listen */
    char token[256];      /* the admin token read from STATE_DIR/token */
    pid_t pid;            /* the engine's pid, from STATE_DIR/lock */
    bool started;         /* true: this call launched it; false: it was already running */
} ksv_local_engine;

/* Attaches to the engine running on state_dir, or starts engine_path there with
 * `--listen 127.0.0.1:0 --state-dir STATE_DIR` followed by extra_args (NULL-terminated
 * list, may be NULL; it must not repeat --listen or --state-dir). Creates state_dir (0700)
 * when missing. Returns once the engine answers /v2/health/live, within about
 * KSV_LOCAL_ENGINE_START_TIMEOUT_MS. Errors: 404 engine_path is not executable; 503 the
 * engine did not come up (the message quotes the last line of engine.log); 500 otherwise. */
int ksv_local_engine_start(const char *engine_path, const char *state_dir,
                           const char *const *extra_args, ksv_local_engine *out, ksv_err *err);

/* Attaches only: 404 when no engine holds state_dir's lock; 503 when one holds it but does
 * not answer within timeout_ms. */
int ksv_local_engine_attach(const char *state_dir, long timeout_ms, ksv_local_engine *out,
                            ksv_err *err);

/* True when an engine (any process) holds state_dir's lock right now. */
bool ksv_local_engine_running(const char *state_dir);

/* Stops the engine running on state_dir: SIGTERM to the pid in STATE_DIR/lock, then
 * SIGKILL when it still holds the lock after timeout_ms. Only a pid whose lock is held is
 * signalled, so a stale pid file never kills an unrelated process. 0 when no engine runs
 * (nothing to do) or it is gone; -1 with err when it cannot be signalled or will not die. */
int ksv_local_engine_stop(const char *state_dir, long timeout_ms, ksv_err *err);

/* Finds the ksv-engine executable: $KSV_ENGINE when set (it must be executable: no
 * fallback past an explicit choice), then beside the running executable (/proc/self/exe,
 * else argv0's folder when argv0 holds a '/'), then each PATH entry. Returns 0 with the
 * path in out, -1 when none is found or it does not fit in cap. */
int ksv_find_engine(char *out, size_t cap, const char *argv0);

#endif
