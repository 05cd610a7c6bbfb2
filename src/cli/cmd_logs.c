/* cmd_logs.c: `ksv logs MODEL [--revision R]`: an external runtime's last output lines, from
 * every node that serves the model (the engine keeps 200 per revision). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/sanitize.h"

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* One line of a node's text, filtered for the terminal. */
static void print_line(const char *prefix, const char *text)
{
    char buf[1024];
    ksv_sanitize_copy(buf, sizeof buf, text ? text : "");
    printf("%s%s\n", prefix, buf);
}

static int logs(ksv_cli *cli, const ksv_args *a)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    json_object *all = NULL;
    ksv_err err;
    int rc = ksv_ctl_runtime_logs(ctl, ksv_args_pos(a, 0), cli->ns, ksv_args_get(a, "--revision"),
                                  &all, &err);
    ksv_ctl_close(ctl);
    if (rc != 0)
        return ksv_fail("%s", err.msg);
    if (cli->json) {
        ksv_cli_print_json(all);
        json_object_put(all);
        return 0;
    }
    int failed = 0;
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *e = json_object_array_get_idx(all, i), *rt = NULL, *lines = NULL, *v;
        char head[512];
        snprintf(head, sizeof head, "== node %s, revision %s", str(e, "node") ? str(e, "node") : "?",
                 str(e, "revision") ? str(e, "revision") : "?");
        print_line("", head);
        if (str(e, "error") && !json_object_object_get_ex(e, "runtime", &rt)) {
            print_line("ksv: ", str(e, "error"));
            failed = 1;
            continue;
        }
        json_object_object_get_ex(e, "runtime", &rt);
        if (!rt || !json_object_is_type(rt, json_type_object)) {
            snprintf(head, sizeof head, "(no runtime process: revision %s)",
                     str(e, "revision_state") ? str(e, "revision_state") : "not loaded");
            print_line("", head);
            if (str(e, "error"))
                print_line("error: ", str(e, "error"));
            continue;
        }
        long long restarts = json_object_object_get_ex(rt, "restarts", &v) ? json_object_get_int64(v) : 0;
        snprintf(head, sizeof head, "(runtime %s, %lld restart(s))", str(rt, "state") ? str(rt, "state") : "?",
                 restarts);
        print_line("", head);
        if (json_object_object_get_ex(rt, "lines", &lines) && json_object_is_type(lines, json_type_array))
            for (size_t k = 0; k < json_object_array_length(lines); k++)
                print_line("", json_object_get_string(json_object_array_get_idx(lines, k)));
    }
    json_object_put(all);
    return failed;
}

static const ksv_opt logs_opts[] = {
    KSV_OPT_STR("--revision"),
    {0},
};

static const ksv_cmd_entry logs_entries[] = {
    {.opts = logs_opts, .min_args = 1, .max_args = 1, .too_few = "logs needs a MODEL",
     .named_option_errors = true, .exec = logs},
    {0},
};

const ksv_cmd_group ksv_cmd_group_logs = {
    .name = "logs",
    .usage = "logs MODEL [--revision R]",
    .entries = logs_entries,
};
