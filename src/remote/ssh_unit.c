/* ssh_unit.c: writes and enables ksv-engine's systemd unit on an SSH node (ssh_unit.h). */
#include "remote/ssh_unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Characters a unit's ExecStart can carry as they are: no quoting, no %-specifiers, no
 * variable expansion, no word splitting. */
static bool plain(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("/._-+@,=:", c)))
            return false;
    }
    return true;
}

int ksv_ssh_unit_render(const char *engine_path, int port, const char *state_dir, ksv_sb *out,
                        ksv_err *err)
{
    if (!plain(engine_path) || engine_path[0] != '/')
        return ksv_err_set(err, 400, "--install: the engine path %.200s cannot go in a systemd "
                           "unit as it is (an absolute path of letters, digits and /._-+@,=: "
                           "only)", engine_path);
    if (!plain(state_dir) || state_dir[0] != '/')
        return ksv_err_set(err, 400, "--install: the state dir %.200s cannot go in a systemd "
                           "unit as it is (an absolute path of letters, digits and /._-+@,=: "
                           "only)", state_dir);
    if (port < 1 || port > 65535)
        return ksv_err_set(err, 400, "--install: bad port %d", port);
    /* The same directives as contrib/systemd/ksv-engine.service (tests/cli_install_unit.py
     * compares them), with the paths this node uses. */
    ksv_sb_printf(out,
                  "# Written by `ksv node add --install` (ksv %s): ksv-engine under systemd, so\n"
                  "# it comes back after a reboot with the state it last applied.\n"
                  "[Unit]\n"
                  "Description=ksv-engine: KServe-compatible XGBoost model server\n"
                  "Documentation=https://github.com/ksv/ksv/blob/main/docs/OPERATIONS.md\n"
                  "After=network-online.target\n"
                  "Wants=network-online.target\n"
                  "\n"
                  "[Service]\n"
                  "Type=simple\n"
                  "ExecStart=%s --listen 127.0.0.1:%d --state-dir %s\n"
                  "Restart=on-failure\n"
                  "RestartSec=2s\n"
                  "TimeoutStopSec=30s\n"
                  "KillMode=mixed\n"
                  "LimitNOFILE=65536\n"
                  "NoNewPrivileges=yes\n"
                  "PrivateTmp=yes\n"
                  "\n"
                  "[Install]\n"
                  "WantedBy=default.target\n",
                  PACKAGE_VERSION, engine_path, port, state_dir);
    return out->oom ? ksv_err_set(err, 500, "out of memory") : 0;
}

/* "key=value" lines of the install script's answer into out. */
static void parse_answer(char *text, ksv_ssh_unit *out)
{
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line[strcspn(line, "\r")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(line, "unit") == 0)
            snprintf(out->path, sizeof out->path, "%s", v);
        else if (strcmp(line, "user") == 0)
            out->user = strcmp(v, "yes") == 0;
        else if (strcmp(line, "systemd") == 0)
            out->systemd = strcmp(v, "yes") == 0;
        else if (strcmp(line, "enabled") == 0)
            out->enabled = strcmp(v, "yes") == 0;
        else if (strcmp(line, "linger") == 0)
            out->linger = strcmp(v, "yes") == 0;
        else if (strcmp(line, "note") == 0)
            snprintf(out->note, sizeof out->note, "%s", v);
    }
}

int ksv_ssh_unit_install(ksv_ssh_session *s, const char *engine_path, int port,
                         const char *state_dir, bool start, ksv_ssh_unit *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    ksv_sb unit;
    ksv_sb_init(&unit);
    if (ksv_ssh_unit_render(engine_path, port, state_dir, &unit, err) != 0) {
        ksv_sb_free(&unit);
        return -1;
    }
    char qdir[2300], cmd[6000];
    if (ksv_ssh_shell_quote(state_dir, qdir, sizeof qdir) != 0) {
        ksv_sb_free(&unit);
        return ksv_err_set(err, 400, "--engine-state-dir too long");
    }
    /* One exec: the unit arrives on stdin and replaces the old one in one rename; then, if
     * systemctl answers, reload, enable (and start), and for a user unit, linger. */
    int n = snprintf(
        cmd, sizeof cmd,
        "if [ \"$(id -u)\" = 0 ]; then u=no; c=systemctl; d=/etc/systemd/system; "
        "else u=yes; c='systemctl --user'; d=\"$HOME/.config/systemd/user\"; fi; "
        "d=${KSV_UNIT_DIR:-$d}; "
        "mkdir -p \"$d\" %s && chmod 700 %s && cat >\"$d/ksv-engine.service.new\" && "
        "mv -f \"$d/ksv-engine.service.new\" \"$d/ksv-engine.service\" || exit 3; "
        "printf 'unit=%%s\\nuser=%%s\\n' \"$d/ksv-engine.service\" \"$u\"; "
        "if command -v systemctl >/dev/null 2>&1 && o=$($c daemon-reload 2>&1); then "
        "echo systemd=yes; "
        "if o=$($c enable %s ksv-engine.service 2>&1); then echo enabled=yes; "
        "else printf 'enabled=no\\nnote=%%s\\n' \"$(printf %%s \"$o\" | tr '\\n' ' ' | cut -c1-200)\"; fi; "
        "if [ $u = yes ]; then loginctl enable-linger \"$(id -un)\" >/dev/null 2>&1 && "
        "echo linger=yes || echo linger=no; fi; "
        "else printf 'systemd=no\\nnote=%%s\\n' \"$(printf %%s \"${o:-no systemctl}\" | tr '\\n' ' ' | cut -c1-200)\"; fi",
        qdir, qdir, start ? "--now" : "");
    if (n < 0 || (size_t)n >= sizeof cmd) {
        ksv_sb_free(&unit);
        return ksv_err_set(err, 400, "--engine-state-dir too long");
    }
    ksv_ssh_exec_result r;
    int rc = ksv_ssh_exec(s, cmd, unit.data, 0, &r, err);
    ksv_sb_free(&unit);
    if (rc != 0)
        return ksv_err_prefix(err, "installing the systemd unit");
    if (r.exit_status != 0) {
        rc = ksv_err_set(err, 500, "cannot write the systemd unit on the node (exit %d): %.200s",
                         r.exit_status, r.err_text ? r.err_text : "");
        ksv_ssh_exec_result_free(&r);
        return rc;
    }
    parse_answer(r.out, out);
    ksv_ssh_exec_result_free(&r);
    if (!out->path[0])
        return ksv_err_set(err, 500, "the systemd unit's install script did not say where it "
                           "wrote the unit");
    return 0;
}
