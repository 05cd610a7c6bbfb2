/* ssh_engine.c: find or install, start and attach to the ksv-engine of an SSH node (see
 * ssh_engine.h). Every remote step is one short shell command over the session. */
#include "remote/ssh_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "remote/ssh_session_internal.h"

/* Runs cmd; 0 with the trimmed first line of stdout in line (and *status). */
static int run_line(ksv_ssh_session *s, const char *cmd, char *line, size_t cap, int *status,
                    char *errtext, size_t errcap, ksv_err *err)
{
    ksv_ssh_exec_result r;
    if (ksv_ssh_exec(s, cmd, NULL, 0, &r, err) != 0)
        return -1;
    size_t n = strcspn(r.out, "\r\n");
    snprintf(line, cap, "%.*s", (int)n, r.out);
    if (errtext) {
        size_t m = r.err_len;
        while (m > 0 && (r.err_text[m - 1] == '\n' || r.err_text[m - 1] == '\r'))
            m--;
        snprintf(errtext, errcap, "%.*s", (int)m, r.err_text);
    }
    *status = r.exit_status;
    ksv_ssh_exec_result_free(&r);
    return 0;
}

/* Makes a node path absolute: relative paths and "~/..." are taken under home. */
static int absolute(const char *home, const char *path, char *out, size_t cap)
{
    int n;
    if (path[0] == '/')
        n = snprintf(out, cap, "%s", path);
    else if (path[0] == '~' && (path[1] == '/' || path[1] == '\0'))
        n = snprintf(out, cap, "%s%s", home, path + 1);
    else
        n = snprintf(out, cap, "%s/%s", home, path);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int find_engine(ksv_ssh_session *s, const ksv_ssh_engine_options *o, const char *home,
                       ksv_ssh_engine *out, ksv_err *err)
{
    char cmd[2600], q[2300], line[1100];
    int st;
    if (o->engine_path && *o->engine_path) {
        char path[1100];
        if (absolute(home, o->engine_path, path, sizeof path) != 0 ||
            ksv_ssh_shell_quote(path, q, sizeof q) != 0)
            return ksv_err_set(err, 400, "--engine-path too long");
        int n = snprintf(cmd, sizeof cmd, "test -f %s && test -x %s && printf '%%s\\n' %s", q,
                         q, q);
        if (n < 0 || (size_t)n >= sizeof cmd)
            return ksv_err_set(err, 400, "--engine-path too long");
    } else {
        snprintf(cmd, sizeof cmd, "command -v ksv-engine");
    }
    if (run_line(s, cmd, line, sizeof line, &st, NULL, 0, err) != 0)
        return -1;
    if (st == 0 && line[0]) {
        snprintf(out->engine_path, sizeof out->engine_path, "%s", line);
        return 0;
    }
    return 1;
}

static int install_engine(ksv_ssh_session *s, const ksv_ssh_engine_options *o,
                          const char *home, ksv_ssh_engine *out, ksv_err *err)
{
    struct utsname u;
    if (uname(&u) != 0)
        return ksv_err_set(err, 500, "uname: cannot tell this machine's architecture");
    if (strcmp(u.machine, out->arch) != 0)
        return ksv_err_set(err, 409, "%s: the node is %s and this ksv-engine is built for %s; "
                                     "install a %s build of ksv-engine there and pass "
                                     "--engine-path", s->name, out->arch, u.machine, out->arch);
    if (!o->local_engine || !*o->local_engine)
        return ksv_err_set(err, 400, "--install: no local ksv-engine to upload");
    char cache[1200];
    if (o->cache_dir && *o->cache_dir) {
        if (absolute(home, o->cache_dir, cache, sizeof cache) != 0)
            return ksv_err_set(err, 400, "cache dir too long");
    } else if ((size_t)snprintf(cache, sizeof cache, "%s/bin", out->state_dir) >= sizeof cache) {
        return ksv_err_set(err, 400, "--engine-state-dir too long");
    }
    ksv_ssh_upload_result up;
    if (ksv_ssh_sftp_upload(s, o->local_engine, cache, o->progress, o->progress_arg, &up,
                            err) != 0)
        return ksv_err_prefix(err, "installing ksv-engine");
    char q[2300], cmd[2400], line[64];
    int st;
    if (ksv_ssh_shell_quote(up.remote_path, q, sizeof q) != 0)
        return ksv_err_set(err, 400, "cache path too long");
    snprintf(cmd, sizeof cmd, "chmod 755 %s", q);
    if (run_line(s, cmd, line, sizeof line, &st, NULL, 0, err) != 0)
        return -1;
    if (st != 0)
        return ksv_err_set(err, 500, "%s: chmod %s failed", s->name, up.remote_path);
    snprintf(out->engine_path, sizeof out->engine_path, "%s", up.remote_path);
    out->installed = true;
    out->installed_sent = up.sent;
    return 0;
}

/* "127.0.0.1:PORT" from STATE_DIR/address, "" when missing. */
static int read_state_file(ksv_ssh_session *s, const char *qdir, const char *name, char *line,
                           size_t cap, ksv_err *err)
{
    char cmd[2600];
    int st;
    snprintf(cmd, sizeof cmd, "cat %s/%s 2>/dev/null", qdir, name);
    if (run_line(s, cmd, line, cap, &st, NULL, 0, err) != 0)
        return -1;
    if (st != 0)
        line[0] = '\0';
    return 0;
}

static int lock_held(ksv_ssh_session *s, const char *qdir, bool *held, ksv_err *err)
{
    char cmd[2600], line[32];
    int st;
    /* flock(1) tests the engine's own lock; without it, the pid in the lock file must be
     * a live ksv-engine. */
    snprintf(cmd, sizeof cmd,
             "d=%s; if [ ! -f \"$d/lock\" ]; then echo free; "
             "elif command -v flock >/dev/null 2>&1; then "
             "flock -n \"$d/lock\" true && echo free || echo held; "
             "else p=$(cat \"$d/lock\" 2>/dev/null); "
             "if [ -n \"$p\" ] && grep -q ksv-engine \"/proc/$p/cmdline\" 2>/dev/null; "
             "then echo held; else echo free; fi; fi",
             qdir);
    if (run_line(s, cmd, line, sizeof line, &st, NULL, 0, err) != 0)
        return -1;
    *held = strcmp(line, "held") == 0;
    return 0;
}

int ksv_ssh_ensure_engine(ksv_ssh_session *s, const ksv_ssh_engine_options *o,
                          ksv_ssh_engine *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    out->port = o->engine_port > 0 ? o->engine_port : KSV_SSH_DEFAULT_ENGINE_PORT;
    if (out->port > 65535)
        return ksv_err_set(err, 400, "bad --engine-port %d", out->port);
    char line[1100], home[1024], errtext[400];
    int st;
    ksv_ssh_exec_result r;
    if (ksv_ssh_exec(s, "printf '%s\\n' \"$HOME\"; uname -m", NULL, 0, &r, err) != 0)
        return -1;
    if (r.exit_status != 0 || sscanf(r.out, "%1023[^\n]\n%63s", home, out->arch) != 2) {
        ksv_ssh_exec_result_free(&r);
        return ksv_err_set(err, 500, "%s: cannot read $HOME and uname -m on the node",
                           s->name);
    }
    ksv_ssh_exec_result_free(&r);
    if (absolute(home, o->state_dir && *o->state_dir ? o->state_dir : KSV_SSH_DEFAULT_STATE_DIR,
                 out->state_dir, sizeof out->state_dir) != 0)
        return ksv_err_set(err, 400, "--engine-state-dir too long");
    char qdir[2300];
    if (ksv_ssh_shell_quote(out->state_dir, qdir, sizeof qdir) != 0)
        return ksv_err_set(err, 400, "--engine-state-dir too long");

    int found = find_engine(s, o, home, out, err);
    if (found < 0)
        return -1;
    if (found == 1) {
        if (!o->install)
            return ksv_err_set(err, 404, "%s: no ksv-engine %s%s on the node; pass "
                                         "--engine-path PATH, or --install to upload this one",
                               s->name, o->engine_path ? "at " : "on PATH",
                               o->engine_path ? o->engine_path : "");
        if (install_engine(s, o, home, out, err) != 0)
            return -1;
    }

    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", out->port);
    int code = 0;
    ksv_err probe_err;
    bool up = ksv_ssh_http_probe(s, "127.0.0.1", out->port, "/v2/health/live", 3000, &code,
                                 &probe_err) == 0;
    if (s->broken) {
        if (err)
            *err = probe_err;
        return -1;
    }
    if (read_state_file(s, qdir, "address", line, sizeof line, err) != 0)
        return -1;
    bool held;
    if (lock_held(s, qdir, &held, err) != 0)
        return -1;
    if (up && !(held && strcmp(line, want) == 0))
        return ksv_err_set(err, 409, "%s: port %d on the node is held by something other "
                                     "than the engine of %s; pick another --engine-port",
                           s->name, out->port, out->state_dir);
    if (!up && held) {
        if (line[0] && strcmp(line, want) != 0)
            return ksv_err_set(err, 409, "%s: the engine of %s listens on %s, not %s; pass "
                                         "--engine-port to match or stop it",
                               s->name, out->state_dir, line, want);
        return ksv_err_set(err, 503, "%s: the engine of %s runs but does not answer on %s",
                           s->name, out->state_dir, want);
    }
    if (!up) {
        char qeng[2300], cmd[12000];
        if (ksv_ssh_shell_quote(out->engine_path, qeng, sizeof qeng) != 0)
            return ksv_err_set(err, 400, "engine path too long");
        int n = snprintf(cmd, sizeof cmd,
                         /* Only the engine goes to the background, with its own fds:
                          * the channel then ends as soon as the shell does. */
                         "mkdir -p %s && chmod 700 %s && cd / && { setsid nohup %s --listen %s "
                         "--state-dir %s >>%s/engine.log 2>&1 </dev/null & }",
                         qdir, qdir, qeng, want, qdir, qdir);
        if (n < 0 || (size_t)n >= sizeof cmd)
            return ksv_err_set(err, 400, "engine path or state dir too long");
        if (run_line(s, cmd, line, sizeof line, &st, errtext, sizeof errtext, err) != 0)
            return -1;
        if (st != 0)
            return ksv_err_set(err, 503, "%s: cannot start %s: %s", s->name, out->engine_path,
                               errtext);
        out->started = true;
        long limit = o->start_timeout_ms > 0 ? o->start_timeout_ms
                                             : KSV_SSH_ENGINE_START_TIMEOUT_MS;
        double deadline = ksv_ssh_now_ms() + (double)limit;
        while (!up && ksv_ssh_now_ms() < deadline) {
            sleep_ms(150);
            up = ksv_ssh_http_probe(s, "127.0.0.1", out->port, "/v2/health/live", 2000, &code,
                                    &probe_err) == 0 && code == 200;
            if (s->broken) {
                if (err)
                    *err = probe_err;
                return -1;
            }
        }
        if (!up) {
            char cmd2[2600];
            snprintf(cmd2, sizeof cmd2, "tail -n 1 %s/engine.log 2>/dev/null", qdir);
            if (run_line(s, cmd2, line, sizeof line, &st, NULL, 0, err) != 0)
                return -1;
            return ksv_err_set(err, 503, "%s: the engine did not come up on %s within %ld ms: "
                                         "%.300s", s->name, want, limit,
                               line[0] ? line : "(engine.log is empty)");
        }
    }
    if (read_state_file(s, qdir, "token", out->token, sizeof out->token, err) != 0)
        return -1;
    if (!out->token[0])
        return ksv_err_set(err, 503, "%s: cannot read %s/token on the node", s->name,
                           out->state_dir);
    return 0;
}
