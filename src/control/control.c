/* control.c: opening the control layer, results and history rows. */
#include "common/clock.h"
#include "control/control.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/sanitize.h"
#include "common/uri_redact.h"
#include "control/control_internal.h"

static void default_db_path(char *out, size_t cap)
{
    const char *env = getenv("KSV_DB"), *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (env && *env)
        snprintf(out, cap, "%s", env);
    else if (xdg && *xdg)
        snprintf(out, cap, "%s/ksv/ksv.db", xdg);
    else
        snprintf(out, cap, "%s/.local/state/ksv/ksv.db", home && *home ? home : ".");
}

void ksv_ctl_format_upload(const char *node, const char *file, long long done,
                           long long total, double bytes_per_s, char *out, size_t cap)
{
    if (done < total)
        snprintf(out, cap, "node %s: uploading %s: %.1f/%.1f MB (%.1f MB/s)", node, file,
                 (double)done / 1e6, (double)total / 1e6, bytes_per_s / 1e6);
    else
        snprintf(out, cap, "node %s: uploaded %s: %.1f MB (%.1f MB/s)", node, file,
                 (double)total / 1e6, bytes_per_s / 1e6);
    ksv_sanitize(out);   /* the file name comes from a manifest */
}

/* Who history rows name: the caller's choice, $USER, then the login name of the uid
 * ($USER is unset under cron, systemd and some tmux setups), "uid N" when it has none. */
static void default_actor(const char *chosen, char *out, size_t cap)
{
    const char *user = chosen ? chosen : getenv("USER");
    if (user && *user) {
        ksv_sanitize_copy(out, cap, user);
        return;
    }
    struct passwd pw, *found = NULL;
    char buf[4096];
    uid_t uid = getuid();
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found && found->pw_name[0])
        ksv_sanitize_copy(out, cap, found->pw_name);
    else
        snprintf(out, cap, "uid %lu", (unsigned long)uid);
}

int ksv_ctl_open(const ksv_ctl_options *opts, ksv_ctl **out, ksv_err *err)
{
    ksv_ctl *ctl = calloc(1, sizeof *ctl);
    if (!ctl)
        return ksv_err_set(err, 500, "out of memory");
    if (opts->db_path && *opts->db_path)
        snprintf(ctl->db_path, sizeof ctl->db_path, "%s", opts->db_path);
    else
        default_db_path(ctl->db_path, sizeof ctl->db_path);
    default_actor(opts->actor, ctl->actor, sizeof ctl->actor);
    if (ksv_ctl_set_reason(ctl, opts->reason, err) != 0) {
        free(ctl);
        return -1;
    }
    snprintf(ctl->engine_path, sizeof ctl->engine_path, "%s",
             opts->engine_path ? opts->engine_path : "");
    snprintf(ctl->argv0, sizeof ctl->argv0, "%s", opts->argv0 ? opts->argv0 : "");
    ctl->node_timeout_ms = opts->node_timeout_ms > 0 ? opts->node_timeout_ms : 5000;
    ctl->parallel = opts->parallel > 0 ? opts->parallel : KSV_CTL_DEFAULT_PARALLEL;
    ctl->upload_progress = opts->upload_progress;
    ctl->upload_progress_user = opts->upload_progress_user;
    ctl->keep_connections = opts->keep_connections;
    ctl->reconnect_min_ms = opts->reconnect_min_ms > 0 ? opts->reconnect_min_ms : 1000;
    ctl->reconnect_max_ms = opts->reconnect_max_ms > 0 ? opts->reconnect_max_ms : 30000;
    if (ctl->reconnect_max_ms < ctl->reconnect_min_ms)
        ctl->reconnect_max_ms = ctl->reconnect_min_ms;
    if (ksv_store_open(ctl->db_path, &ctl->store, err) != 0) {
        free(ctl);
        return -1;
    }
    *out = ctl;
    return 0;
}

void ksv_ctl_close(ksv_ctl *ctl)
{
    if (!ctl)
        return;
    ctl_kept_close_all(ctl);
    ksv_store_close(ctl->store);
    free(ctl);
}

const char *ksv_ctl_actor(const ksv_ctl *ctl)
{
    return ctl->actor;
}

const char *ksv_ctl_reason_problem(const char *reason)
{
    if (!reason)
        return NULL;
    if (strlen(reason) > KSV_CTL_REASON_MAX)
        return "is longer than 500 bytes";
    if (!ksv_is_terminal_safe(reason))
        return "holds control characters or bytes that are not UTF-8";
    return NULL;
}

int ksv_ctl_set_reason(ksv_ctl *ctl, const char *reason, ksv_err *err)
{
    const char *problem = ksv_ctl_reason_problem(reason);
    if (problem)
        return ksv_err_set(err, 400, "the reason %s", problem);
    snprintf(ctl->reason, sizeof ctl->reason, "%s", reason ? reason : "");
    return 0;
}

void ksv_ctl_result_free(ksv_ctl_result *r)
{
    free(r->nodes);
    memset(r, 0, sizeof *r);
}

bool ksv_ctl_result_ok(const ksv_ctl_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (!r->nodes[i].ok)
            return false;
    return true;
}

const char *ctl_skip_node_prefix(const char *message, const char *node)
{
    size_t nl = strlen(node);
    if (strncmp(message, "node ", 5) == 0 && strncmp(message + 5, node, nl) == 0 &&
        strncmp(message + 5 + nl, ": ", 2) == 0)
        return message + 5 + nl + 2;
    return message;
}

int ctl_result_add(ksv_ctl_result *r, const char *node, bool ok, const char *message)
{
    ksv_node_result *p = realloc(r->nodes, (r->n + 1) * sizeof *p);
    if (!p)
        return -1;
    r->nodes = p;
    ksv_node_result *nr = &r->nodes[r->n++];
    /* Messages quote nodes and files: filtered once here for every caller's terminal. */
    ksv_sanitize_copy(nr->node, sizeof nr->node, node);
    nr->ok = ok;
    nr->unconfirmed = false;
    ksv_sanitize_copy(nr->message, sizeof nr->message, message ? message : "");
    return 0;
}

int ksv_ctl_history(ksv_ctl *ctl, const char *action, const char *model, const char *node,
                    const char *old_value, const char *new_value, const ksv_ctl_result *res,
                    const char *result_override, ksv_err *err)
{
    ksv_sb nodes;
    ksv_sb_init(&nodes);
    char result[600];
    if (result_override) {
        snprintf(result, sizeof result, "%s", result_override);
    } else if (res && res->n > 0) {
        size_t failed = 0, unsure = 0;
        for (size_t i = 0; i < res->n; i++) {
            failed += !res->nodes[i].ok && !res->nodes[i].unconfirmed;
            unsure += res->nodes[i].unconfirmed;
        }
        if (failed == 0 && unsure == 0)
            snprintf(result, sizeof result, "ok on %zu node(s)", res->n);
        else if (failed == 0)
            snprintf(result, sizeof result, "unconfirmed on %zu of %zu node(s)", unsure, res->n);
        else if (unsure == 0)
            snprintf(result, sizeof result, "failed on %zu of %zu node(s)", failed, res->n);
        else
            snprintf(result, sizeof result, "failed on %zu, unconfirmed on %zu of %zu node(s)",
                     failed, unsure, res->n);
    } else {
        snprintf(result, sizeof result, "ok");
    }
    if (res && res->n > 0) {
        ksv_sb_putc(&nodes, '{');
        for (size_t i = 0; i < res->n; i++) {
            if (i)
                ksv_sb_putc(&nodes, ',');
            ksv_sb_json_str(&nodes, res->nodes[i].node);
            ksv_sb_putc(&nodes, ':');
            char line[600];
            snprintf(line, sizeof line, "%s%s%s",
                     res->nodes[i].ok            ? "ok"
                     : res->nodes[i].unconfirmed ? "unconfirmed"
                                                 : "failed",
                     res->nodes[i].message[0] ? ": " : "", res->nodes[i].message);
            /* The history keeps no storage URI's credentials, whoever wrote the message. */
            ksv_uri_redact_text(line, sizeof line);
            ksv_sb_json_str(&nodes, line);
        }
        ksv_sb_putc(&nodes, '}');
    }
    ksv_history_entry e = {
        .actor = ctl->actor,
        .action = (char *)action,
        .model = (char *)model,
        .node = (char *)node,
        .old_value = (char *)old_value,
        .new_value = (char *)new_value,
        .result = result,
        .node_results_json = nodes.len ? nodes.data : NULL,
        .reason = ctl->reason[0] ? ctl->reason : NULL,
    };
    int rc = ksv_store_history_append(ctl->store, &e, NULL, err);
    ksv_sb_free(&nodes);
    return rc;
}
