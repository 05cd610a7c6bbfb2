/* output.c: what every ksv command prints the same way: usage errors, failures, the
 * per-node result of a change, JSON, times; and opening the control layer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/sanitize.h"

/* "ksv: MESSAGE" on stderr, filtered: messages quote nodes, files and arguments. */
static void print_message(const char *fmt, va_list ap)
{
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "ksv: %s\n", ksv_sanitize(line));
}

int ksv_usage(const ksv_cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_message(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Usage: ksv %s\n", cli->usage ? cli->usage : "--help");
    return 2;
}

int ksv_usage_text(const ksv_cli *cli, const char *message, const char *arg)
{
    const char *hole = strstr(message, "%s");
    if (!hole)
        return ksv_usage(cli, "%s", message);
    return ksv_usage(cli, "%.*s%s%s", (int)(hole - message), message, arg ? arg : "", hole + 2);
}

int ksv_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_message(fmt, ap);
    va_end(ap);
    return 1;
}

/* Model uploads to SSH nodes: a live line on a terminal, one line when done otherwise. */
static void print_upload(const char *node, const char *file, long long done, long long total,
                         double rate, void *user)
{
    (void)user;
    bool tty = isatty(STDERR_FILENO);
    if (!tty && done < total)
        return;
    char line[4400];
    ksv_ctl_format_upload(node, file, done, total, rate, line, sizeof line);
    /* \033[K clears what a longer progress line left behind. */
    fprintf(stderr, "%sksv: %s%s%s", tty ? "\r" : "", line, tty ? "\033[K" : "",
            done < total ? "" : "\n");
    fflush(stderr);
}

int ksv_cli_open(ksv_cli *cli, ksv_ctl **ctl)
{
    ksv_err err;
    ksv_ctl_options opts = {
        .db_path = cli->db,
        .argv0 = cli->argv0,
        .upload_progress = print_upload,
        .parallel = cli->parallel,
        .reason = cli->reason,
    };
    if (ksv_ctl_open(&opts, ctl, &err) != 0)
        return ksv_fail("%s", err.msg);
    return 0;
}

void ksv_cli_print_json(json_object *o)
{
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
}

void ksv_cli_format_time(int64_t ms, char *out, size_t cap)
{
    if (ms <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

void ksv_cli_format_age(int64_t ms, char *out, size_t cap)
{
    int64_t s = (ksv_wall_ms() - ms) / 1000;
    if (ms <= 0 || s < 0)
        snprintf(out, cap, "-");
    else if (s < 120)
        snprintf(out, cap, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(out, cap, "%lldm", (long long)(s / 60));
    else if (s < 172800)
        snprintf(out, cap, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, cap, "%lldd", (long long)(s / 86400));
}

int ksv_cli_change_begin(ksv_cli *cli, ksv_cli_change *c)
{
    memset(c, 0, sizeof *c);
    ksv_err_clear(&c->err);
    return ksv_cli_open(cli, &c->ctl);
}

int ksv_cli_change_end(const ksv_cli *cli, ksv_cli_change *c, int rc)
{
    int code = ksv_cli_report(cli, &c->res, rc, &c->err);
    ksv_ctl_result_free(&c->res);
    ksv_ctl_close(c->ctl);
    return code;
}

int ksv_cli_report(const ksv_cli *cli, const ksv_ctl_result *res, int rc, const ksv_err *err)
{
    if (cli->json) {
        json_object *o = json_object_new_object(), *nodes = json_object_new_array();
        json_object_object_add(o, "ok", json_object_new_boolean(rc == 0));
        json_object_object_add(o, "changed", json_object_new_boolean(res->changed));
        json_object_object_add(o, "summary", json_object_new_string(res->summary));
        if (rc != 0)
            json_object_object_add(o, "error", json_object_new_string(err->msg));
        for (size_t i = 0; i < res->n; i++) {
            json_object *n = json_object_new_object();
            json_object_object_add(n, "node", json_object_new_string(res->nodes[i].node));
            json_object_object_add(n, "ok", json_object_new_boolean(res->nodes[i].ok));
            json_object_object_add(n, "message", json_object_new_string(res->nodes[i].message));
            json_object_array_add(nodes, n);
        }
        json_object_object_add(o, "nodes", nodes);
        ksv_cli_print_json(o);
        json_object_put(o);
    } else {
        char summary[sizeof res->summary];
        if (res->summary[0])
            printf("%s\n", (ksv_sanitize_copy(summary, sizeof summary, res->summary), summary));
        for (size_t i = 0; i < res->n; i++)
            printf("  node %s: %s%s%s\n", res->nodes[i].node,
                   res->nodes[i].ok            ? "ok"
                   : res->nodes[i].unconfirmed ? "UNCONFIRMED"
                                               : "FAILED",
                   res->nodes[i].message[0] ? ": " : "", res->nodes[i].message);
    }
    if (rc != 0) {
        ksv_fail("%s", err->msg);
        return err->status == 2 ? 2 : 1;
    }
    return 0;
}
