/* cmd_history.c: `ksv history [MODEL] [--limit N]`: every change, newest first. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/listing.h"

static const char *at_text(const void *row, char *buf, size_t cap)
{
    ksv_cli_format_time(((const ksv_history_entry *)row)->at_ms, buf, cap);
    return buf;
}

static void int64_json(json_object *o, const char *key, int64_t v)
{
    json_object_object_add(o, key, json_object_new_int64(v));
}

static void id_json(const void *row, const char *key, json_object *o)
{
    int64_json(o, key, ((const ksv_history_entry *)row)->id);
}

static void at_json(const void *row, const char *key, json_object *o)
{
    int64_json(o, key, ((const ksv_history_entry *)row)->at_ms);
}

static const char *target_text(const void *row, char *buf, size_t cap)
{
    const ksv_history_entry *e = row;
    return e->model ? e->model : e->node;
}

static void nodes_json(const void *row, const char *key, json_object *o)
{
    const ksv_history_entry *e = row;
    json_object_object_add(o, key, e->node_results_json ? json_tokener_parse(e->node_results_json)
                                                        : NULL);
}

static const ksv_column history_columns[] = {
    KSV_COL_FN(NULL, "id", NULL, id_json),
    KSV_COL_FN("TIME", "at_ms", at_text, at_json),
    KSV_COL_STR("ACTOR", "actor", ksv_history_entry, actor),
    KSV_COL_STR("ACTION", "action", ksv_history_entry, action),
    KSV_COL_FN("MODEL/NODE", NULL, target_text, NULL),
    KSV_COL_STR(NULL, "model", ksv_history_entry, model),
    KSV_COL_STR(NULL, "node", ksv_history_entry, node),
    KSV_COL_STR("OLD", "old", ksv_history_entry, old_value),
    KSV_COL_STR("NEW", "new", ksv_history_entry, new_value),
    KSV_COL_STR("RESULT", "result", ksv_history_entry, result),
    KSV_COL_STR("REASON", "reason", ksv_history_entry, reason),
    KSV_COL_FN(NULL, "nodes", NULL, nodes_json),
};

static int history(ksv_cli *cli, const ksv_args *a)
{
    const char *model = ksv_args_pos(a, 0);
    size_t limit = (size_t)ksv_args_number(a, "--limit", 50);
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    /* What the engines decided alone (release gates) enters history first, once each. */
    ksv_err ierr;
    ksv_ctl_import_events(ctl, NULL, NULL, &ierr);
    char ref[300] = "";
    ksv_err err;
    if (model) {
        ksv_model_record m;
        if (ksv_ctl_model_resolve(ctl, model, cli->ns, &m, &err) == 0) {
            snprintf(ref, sizeof ref, "%s/%s", m.ns, m.name);
            ksv_model_record_clear(&m);
        } else if (strchr(model, '/')) {
            snprintf(ref, sizeof ref, "%s", model); /* deleted models keep their history */
        } else {
            snprintf(ref, sizeof ref, "%s/%s", cli->ns ? cli->ns : "default", model);
        }
    }
    ksv_history_list list;
    if (ksv_ctl_history_list(ctl, model ? ref : NULL, limit, &list, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    ksv_listing_print(cli, history_columns, sizeof history_columns / sizeof *history_columns,
                      list.items, list.n, sizeof *list.items);
    ksv_history_list_free(&list);
    ksv_ctl_close(ctl);
    return 0;
}

static const ksv_opt history_opts[] = {
    KSV_OPT_NUM("--limit", KSV_OPT_LONG, 1, 1e300,
                "--limit: expected a positive integer"),
    {0},
};

static const ksv_cmd_entry history_entries[] = {
    {.opts = history_opts, .max_args = 1, .exec = history},
    {0},
};

const ksv_cmd_group ksv_cmd_group_history = {
    .name = "history",
    .usage = "history [MODEL] [--limit N]",
    .entries = history_entries,
};
