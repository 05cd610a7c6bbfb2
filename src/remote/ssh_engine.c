/* ssh_engine.c: find or install, start and attach to the ksv-engine of an SSH node (see
 * ssh_engine.h). Attaching to a running engine is one exec (node_facts_read) and one HTTP
 * probe through a direct-tcpip channel; installing and starting add a few more. */
#include "common/clock.h"
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

/* A node path as a shell word that the node's shell makes absolute: "/x" stays, "~/x",
 * "~" and relative paths go under "$HOME" (the exec's working directory is home, but the
 * engine is started from /). -1 when it does not fit or holds a newline (facts are lines). */
static int shell_path(const char *path, char *out, size_t cap)
{
    if (strchr(path, '\n'))
        return -1;
    const char *rest = path;
    if (path[0] == '/')
        return ksv_ssh_shell_quote(path, out, cap);
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0'))
        rest = path[1] ? path + 2 : "";
    char q[2300];
    if (ksv_ssh_shell_quote(rest, q, sizeof q) != 0)
        return -1;
    int n = snprintf(out, cap, "\"$HOME\"/%s", q);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* One exec learns all this about the node (ksv_ssh_node_facts), so that attaching to a
 * running engine costs one exec channel and not five: each channel makes sshd start the
 * user's shell, which reads its rc files (130-200 ms on the build VM, where ~/.bashrc runs
 * `pyenv init`). */

int ksv_ssh_parse_node_facts(char *text, ksv_ssh_node_facts *f)
{
    memset(f, 0, sizeof *f);
    int seen = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[len - 1] = '\0'; /* a file written on Windows, or a CRLF-emitting shell */
        char *eq = strchr(line, '=');
        if (!eq)
            continue;             /* what the user's rc files print comes first: skipped */
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(line, "home") == 0)
            seen |= 1, snprintf(f->home, sizeof f->home, "%s", v);
        else if (strcmp(line, "arch") == 0)
            seen |= 2, snprintf(f->arch, sizeof f->arch, "%s", v);
        else if (strcmp(line, "dir") == 0)
            seen |= 4, snprintf(f->state_dir, sizeof f->state_dir, "%s", v);
        else if (strcmp(line, "engine") == 0)
            snprintf(f->engine, sizeof f->engine, "%s", v);
        else if (strcmp(line, "address") == 0)
            snprintf(f->address, sizeof f->address, "%s", v);
        else if (strcmp(line, "lock") == 0)
            seen |= 8, f->lock_held = strcmp(v, "held") == 0;
        else if (strcmp(line, "token") == 0)
            snprintf(f->token, sizeof f->token, "%s", v);
    }
    return seen == 15 && f->home[0] && f->arch[0] && f->state_dir[0] == '/' ? 0 : -1;
}

static int node_facts_read(ksv_ssh_session *s, const ksv_ssh_engine_options *o,
                           ksv_ssh_engine *out, ksv_ssh_node_facts *f, ksv_err *err)
{
    char dir[2400], eng[2400];
    if (shell_path(o->state_dir && *o->state_dir ? o->state_dir : KSV_SSH_DEFAULT_STATE_DIR,
                   dir, sizeof dir) != 0)
        return ksv_err_set(err, 400, "bad --engine-state-dir (too long or a newline in it)");
    if (o->engine_path && *o->engine_path && shell_path(o->engine_path, eng, sizeof eng) != 0)
        return ksv_err_set(err, 400, "bad --engine-path (too long or a newline in it)");
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd,
        "printf 'home=%%s\\n' \"$HOME\"; printf 'arch=%%s\\n' \"$(uname -m)\"; d=%s; "
        "printf 'dir=%%s\\n' \"$d\"; %s%s%s"
        "printf 'engine=%%s\\n' \"$e\"; "
        "printf 'address=%%s\\n' \"$(head -n 1 \"$d/address\" 2>/dev/null)\"; "
        /* flock(1) tests the engine's own lock; without it, the pid in the lock file must
         * be a live ksv-engine. */
        "if [ ! -f \"$d/lock\" ]; then l=free; "
        "elif command -v flock >/dev/null 2>&1; then "
        "flock -n \"$d/lock\" true && l=free || l=held; "
        "else p=$(cat \"$d/lock\" 2>/dev/null); "
        "if [ -n \"$p\" ] && grep -q ksv-engine \"/proc/$p/cmdline\" 2>/dev/null; "
        "then l=held; else l=free; fi; fi; printf 'lock=%%s\\n' \"$l\"; "
        "printf 'token=%%s\\n' \"$(head -n 1 \"$d/token\" 2>/dev/null)\"",
        dir, o->engine_path && *o->engine_path ? "p=" : "e=$(command -v ksv-engine 2>/dev/null); ",
        o->engine_path && *o->engine_path ? eng : "",
        o->engine_path && *o->engine_path ? "; if [ -f \"$p\" ] && [ -x \"$p\" ]; then e=$p; "
                                            "else e=; fi; " : "");
    if (n < 0 || (size_t)n >= sizeof cmd)
        return ksv_err_set(err, 400, "engine path or state dir too long");
    ksv_ssh_exec_result r;
    if (ksv_ssh_exec(s, cmd, NULL, 0, &r, err) != 0)
        return -1;
    int bad = ksv_ssh_parse_node_facts(r.out, f);
    int status = r.exit_status;
    ksv_ssh_exec_result_free(&r);
    if (bad)
        return ksv_err_set(err, 500, "%s: cannot read $HOME, uname -m and the state dir on the "
                                     "node (exit %d)", s->name, status);
    snprintf(out->arch, sizeof out->arch, "%s", f->arch);
    snprintf(out->state_dir, sizeof out->state_dir, "%s", f->state_dir);
    snprintf(out->token, sizeof out->token, "%s", f->token);
    return 0;
}

/* After an engine this call started: something answers on want, but is it that engine?
 * Only if it holds the state dir's lock and has written want into STATE_DIR/address (the
 * engine removes an old address file when it takes the lock and writes the new one once
 * it has bound the port). Otherwise another process holds the port: nothing is read from
 * the state dir for it, and the engine client's identity check would refuse it anyway. */
static int confirm_started(ksv_ssh_session *s, const ksv_ssh_engine_options *o,
                           ksv_ssh_engine *out, const char *want, ksv_err *err)
{
    double deadline = ksv_mono_ms() + 5000.0;
    for (;;) {
        ksv_ssh_node_facts facts;
        if (node_facts_read(s, o, out, &facts, err) != 0)
            return -1;
        if (facts.lock_held && strcmp(facts.address, want) == 0)
            return 0;
        if (!facts.lock_held)
            return ksv_err_set(err, 409, "%s: something answers on %s, but the engine started "
                                         "there is not running: another process holds the "
                                         "port (see %s/engine.log); pick another "
                                         "--engine-port", s->name, want, out->state_dir);
        if (ksv_mono_ms() >= deadline)
            return ksv_err_set(err, 503, "%s: the engine of %s holds its lock but has not "
                                         "written that it listens on %s", s->name,
                               out->state_dir, want);
        sleep_ms(100);
    }
}

int ksv_ssh_ensure_engine(ksv_ssh_session *s, const ksv_ssh_engine_options *o,
                          ksv_ssh_engine *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    out->port = o->engine_port > 0 ? o->engine_port : KSV_SSH_DEFAULT_ENGINE_PORT;
    if (out->port > 65535)
        return ksv_err_set(err, 400, "bad --engine-port %d", out->port);
    char line[1100], errtext[400];
    int st;
    ksv_ssh_node_facts facts;
    if (node_facts_read(s, o, out, &facts, err) != 0)
        return -1;
    char qdir[2300];
    if (ksv_ssh_shell_quote(out->state_dir, qdir, sizeof qdir) != 0)
        return ksv_err_set(err, 400, "--engine-state-dir too long");
    if (facts.engine[0]) {
        snprintf(out->engine_path, sizeof out->engine_path, "%s", facts.engine);
    } else {
        if (!o->install)
            return ksv_err_set(err, 404, "%s: no ksv-engine %s%s on the node; pass "
                                         "--engine-path PATH, or --install to upload this one",
                               s->name, o->engine_path ? "at " : "on PATH",
                               o->engine_path ? o->engine_path : "");
        if (install_engine(s, o, facts.home, out, err) != 0)
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
    /* The facts were read before the probe. Where they and the probe disagree (an engine
     * that came up or went away in between, or a real conflict), read them again after it
     * so that a race is not reported as a conflict: one more exec, on this rare path only. */
    if ((up && !(facts.lock_held && strcmp(facts.address, want) == 0)) ||
        (!up && facts.lock_held)) {
        char engine[sizeof out->engine_path];
        snprintf(engine, sizeof engine, "%s", out->engine_path);
        if (node_facts_read(s, o, out, &facts, err) != 0)
            return -1;
        snprintf(out->engine_path, sizeof out->engine_path, "%s", engine);
    }
    const char *address = facts.address;
    bool held = facts.lock_held;
    if (up && !(held && strcmp(address, want) == 0))
        return ksv_err_set(err, 409, "%s: port %d on the node is held by something other "
                                     "than the engine of %s; pick another --engine-port",
                           s->name, out->port, out->state_dir);
    if (!up && held) {
        if (address[0] && strcmp(address, want) != 0)
            return ksv_err_set(err, 409, "%s: the engine of %s listens on %s, not %s; pass "
                                         "--engine-port to match or stop it",
                               s->name, out->state_dir, address, want);
        return ksv_err_set(err, 503, "%s: the engine of %s runs but does not answer on %s",
                           s->name, out->state_dir, want);
    }
    /* --install: the unit, enabled, so the engine comes back after a reboot; where systemd
     * runs and the engine is not up yet, systemd starts it now. */
    if (o->install) {
        if (ksv_ssh_unit_install(s, out->engine_path, out->port, out->state_dir, !up,
                                 &out->unit, err) != 0)
            return -1;
        out->unit_written = true;
    }
    bool by_systemd = !up && out->unit_written && out->unit.enabled;
    if (!up && !by_systemd) {
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
    }
    if (!up) {
        out->started = true;
        long limit = o->start_timeout_ms > 0 ? o->start_timeout_ms
                                             : KSV_SSH_ENGINE_START_TIMEOUT_MS;
        double deadline = ksv_mono_ms() + (double)limit;
        while (!up && ksv_mono_ms() < deadline) {
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
    if (out->started && confirm_started(s, o, out, want, err) != 0)
        return -1;
    /* An engine this call started wrote its token just now; else the facts have it. */
    if (out->started &&
        read_state_file(s, qdir, "token", out->token, sizeof out->token, err) != 0)
        return -1;
    if (!out->token[0])
        return ksv_err_set(err, 503, "%s: cannot read %s/token on the node", s->name,
                           out->state_dir);
    return 0;
}
