/* cmd_node.c: `ksv node add | ls | label | rm | status`: the nodes ksv manages. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/listing.h"

/* Ends a node change; status 2 (an address or label that did not parse) is a usage error,
 * not a failed change. */
static int change_end(ksv_cli *cli, ksv_cli_change *c, int rc)
{
    if (rc != 0 && c->err.status == 2) {
        rc = ksv_usage(cli, "%s", c->err.msg);
        ksv_ctl_result_free(&c->res);
        ksv_ctl_close(c->ctl);
        return rc;
    }
    return ksv_cli_change_end(cli, c, rc);
}

static int node_add(ksv_cli *cli, const ksv_args *a)
{
    ksv_node_add_options o = {
        .token_file = ksv_args_get(a, "--token-file"),
        .engine_state_dir = ksv_args_get(a, "--engine-state-dir"),
        .engine_path = ksv_args_get(a, "--engine-path"),
        .identity = ksv_args_get(a, "--identity"),
        .known_hosts = ksv_args_get(a, "--known-hosts"),
        .engine_port = (int)ksv_args_number(a, "--engine-port", 0),
        .trust_new = ksv_args_has(a, "--trust-new"),
        .install = ksv_args_has(a, "--install"),
    };
    o.labels = ksv_args_list(a, "--label", &o.n_labels);
    ksv_cli_change c;
    if (ksv_cli_change_begin(cli, &c))
        return 1;
    int rc = ksv_ctl_node_add(c.ctl, ksv_args_pos(a, 0), ksv_args_pos(a, 1), &o, &c.res, &c.err);
    return change_end(cli, &c, rc);
}

/* ---- node ls ---- */

static const char *last_seen_text(const void *row, char *buf, size_t cap)
{
    ksv_cli_format_time(((const ksv_node *)row)->last_seen_ms, buf, cap);
    return buf;
}

static void last_seen_json(const void *row, const char *key, json_object *o)
{
    json_object_object_add(o, key, json_object_new_int64(((const ksv_node *)row)->last_seen_ms));
}

static const char *kind_text(const void *row, char *buf, size_t cap)
{
    return ksv_node_kind_name(((const ksv_node *)row)->kind);
}

static void kind_json(const void *row, const char *key, json_object *o)
{
    json_object_object_add(o, key, json_object_new_string(kind_text(row, NULL, 0)));
}

static const char *labels_text(const void *row, char *buf, size_t cap)
{
    const ksv_node *n = row;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n->n_labels && len < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s=%s", i ? "," : "", n->label_keys[i],
                         n->label_values[i]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return buf[0] ? buf : NULL;
}

static void labels_json(const void *row, const char *key, json_object *o)
{
    const ksv_node *n = row;
    json_object *labels = json_object_new_object();
    for (size_t i = 0; i < n->n_labels; i++)
        json_object_object_add(labels, n->label_keys[i],
                               json_object_new_string(n->label_values[i]));
    json_object_object_add(o, key, labels);
}

static const ksv_column node_columns[] = {
    KSV_COL_STR("NAME", "name", ksv_node, name),
    KSV_COL_FN("KIND", "kind", kind_text, kind_json),
    KSV_COL_STR("ADDRESS", "address", ksv_node, address),
    KSV_COL_STR("ENGINE", NULL, ksv_node, engine_version),
    KSV_COL_FN("LAST SEEN", "last_seen_ms", last_seen_text, last_seen_json),
    KSV_COL_STR("LAST ERROR", "last_error", ksv_node, last_error),
    KSV_COL_STR(NULL, "engine_version", ksv_node, engine_version),
};

int ksv_cli_node_ls(ksv_cli *cli, const ksv_args *a)
{
    const char *selector = ksv_args_get(a, "--selector");
    ksv_selector sel;
    ksv_err err;
    if (selector && ksv_selector_parse(selector, &sel, &err) != 0)
        return ksv_usage(cli, "-l: %s", err.msg);
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_node_list list;
    if (ksv_ctl_node_list(ctl, &list, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    /* -l: only the nodes it picks, in order. */
    size_t kept = 0;
    for (size_t i = 0; i < list.n; i++) {
        if (selector && !ksv_node_selected(&list.items[i], &sel)) {
            ksv_node_clear(&list.items[i]);
            continue;
        }
        list.items[kept++] = list.items[i];
    }
    list.n = kept;
    /* LABELS in the table with --show-labels; "labels" in JSON always. */
    enum { BASE = sizeof node_columns / sizeof *node_columns };
    ksv_column cols[BASE + 2];
    memcpy(cols, node_columns, sizeof node_columns);
    size_t n_cols = BASE;
    if (ksv_args_has(a, "--show-labels"))
        cols[n_cols++] = (ksv_column)KSV_COL_FN("LABELS", NULL, labels_text, NULL);
    cols[n_cols++] = (ksv_column)KSV_COL_FN(NULL, "labels", NULL, labels_json);
    ksv_listing_print(cli, cols, n_cols, list.items, list.n, sizeof *list.items);
    ksv_node_list_free(&list);
    ksv_ctl_close(ctl);
    return 0;
}

/* ---- node label ---- */

static int node_label(ksv_cli *cli, const ksv_args *a)
{
    const char *args[KSV_ARGS_MAX_POS];
    size_t n = 0;
    for (int i = 1; ksv_args_pos(a, i); i++)
        args[n++] = ksv_args_pos(a, i);
    ksv_cli_change c;
    if (ksv_cli_change_begin(cli, &c))
        return 1;
    int rc = ksv_ctl_node_label(c.ctl, ksv_args_pos(a, 0), args, n, &c.res, &c.err);
    return change_end(cli, &c, rc);
}

/* ---- node status ---- */

static const char *status_text(const void *row, char *buf, size_t cap)
{
    return ((const ksv_node_status *)row)->reachable ? "Ready" : "Unreachable";
}

static void reachable_json(const void *row, const char *key, json_object *o)
{
    json_object_object_add(o, key,
                           json_object_new_boolean(((const ksv_node_status *)row)->reachable));
}

static void error_json(const void *row, const char *key, json_object *o)
{
    const ksv_node_status *st = row;
    ksv_json_add_str(o, key, st->reachable ? NULL : st->error);
}

static const char *uptime_text(const void *row, char *buf, size_t cap)
{
    const ksv_node_status *st = row;
    snprintf(buf, cap, "%.0fs", st->uptime_s);
    return st->reachable ? buf : NULL;
}

static void uptime_json(const void *row, const char *key, json_object *o)
{
    json_object_object_add(o, key, json_object_new_double(((const ksv_node_status *)row)->uptime_s));
}

static const char *drift_text(const void *row, char *buf, size_t cap)
{
    const ksv_node_status *st = row;
    snprintf(buf, cap, "%zu", st->n_drift);
    return st->reachable ? buf : NULL;
}

static void drift_json(const void *row, const char *key, json_object *o)
{
    const ksv_node_status *st = row;
    json_object *drift = json_object_new_array();
    for (size_t d = 0; d < st->n_drift; d++)
        json_object_array_add(drift, json_object_new_string(st->drift[d]));
    json_object_object_add(o, key, drift);
}

static const ksv_column status_columns[] = {
    KSV_COL_STR("NAME", "name", ksv_node_status, node.name),
    KSV_COL_STR("ADDRESS", "address", ksv_node_status, node.address),
    KSV_COL_FN("STATUS", "reachable", status_text, reachable_json),
    KSV_COL_FN(NULL, "error", NULL, error_json),
    KSV_COL_CHARS("ENGINE", "engine_version", ksv_node_status, engine_version),
    KSV_COL_FN("UPTIME", "uptime_s", uptime_text, uptime_json),
    KSV_COL_FN("DRIFT", "drift", drift_text, drift_json),
};

static int node_status(ksv_cli *cli, const ksv_args *a)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_node_status *st;
    size_t n;
    ksv_err err;
    if (ksv_ctl_node_status(ctl, ksv_args_pos(a, 0), &st, &n, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    ksv_listing_print(cli, status_columns, sizeof status_columns / sizeof *status_columns, st,
                      n, sizeof *st);
    int code = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cli->json && !st[i].reachable)
            printf("%s: %s\n", st[i].node.name, st[i].error);
        for (size_t d = 0; !cli->json && d < st[i].n_drift; d++)
            printf("%s: drift: %s\n", st[i].node.name, st[i].drift[d]);
        /* Drift is a node that does not serve what was asked: as much a failure to a script
         * as a node that does not answer. */
        if (!st[i].reachable || st[i].n_drift > 0)
            code = 1;
    }
    ksv_node_status_free(st, n);
    ksv_ctl_close(ctl);
    return code;
}

/* ---- node rm ---- */

static int node_rm(ksv_cli *cli, const ksv_args *a)
{
    ksv_cli_change c;
    if (ksv_cli_change_begin(cli, &c))
        return 1;
    int rc = ksv_ctl_node_remove(c.ctl, ksv_args_pos(a, 0), &c.res, &c.err);
    return ksv_cli_change_end(cli, &c, rc);
}

static const ksv_opt node_add_opts[] = {
    KSV_OPT_STR("--token-file"),
    KSV_OPT_STR("--engine-state-dir"),
    KSV_OPT_STR("--engine-path"),
    KSV_OPT_STR("--identity"),
    KSV_OPT_STR("--known-hosts"),
    KSV_OPT_NUM("--engine-port", KSV_OPT_LONG, 1, 65535,
                "--engine-port: expected 1..65535"),
    {.name = "--trust-new", .kind = KSV_OPT_FLAG},
    {.name = "--install", .kind = KSV_OPT_FLAG},
    {.name = "--label", .kind = KSV_OPT_LIST},
    {0},
};

const ksv_opt ksv_cli_node_ls_opts[] = {
    {.name = "--show-labels", .kind = KSV_OPT_FLAG},
    {.name = "--selector", .alias = "-l", .kind = KSV_OPT_STRING},
    {0},
};

static const ksv_cmd_entry node_entries[] = {
    {.name = "add", .opts = node_add_opts, .min_args = 2, .max_args = 2,
     .too_few = "node add needs NAME and ADDRESS", .named_option_errors = true,
     .exec = node_add, .changes = true},
    {.name = "ls", .aliases = {"list"}, .opts = ksv_cli_node_ls_opts, .max_args = 0,
     .too_many = "node ls takes no arguments", .named_option_errors = true,
     .exec = ksv_cli_node_ls},
    {.name = "label", .min_args = 2, .max_args = KSV_ARGS_MAX_POS,
     .too_few = "node label needs NAME and KEY=VALUE or KEY- (remove)",
     .too_many = "node label takes at most 7 labels at once", .exec = node_label,
     .changes = true},
    {.name = "status", .max_args = 1, .too_many = "node status takes at most one NAME",
     .exec = node_status},
    {.name = "rm", .aliases = {"remove"}, .min_args = 1, .max_args = 1,
     .too_few = "node rm needs NAME", .too_many = "node rm needs NAME", .exec = node_rm, .changes = true},
    {0},
};

const ksv_cmd_group ksv_cmd_group_node = {
    .name = "node",
    .usage = "node add NAME local|http://HOST:PORT|ssh://[USER@]HOST[:PORT] [--token-file FILE] "
             "[--identity FILE] [--known-hosts FILE] [--trust-new] [--engine-port N] "
             "[--engine-path PATH] [--engine-state-dir DIR] [--install] [--label KEY=VALUE]...\n"
             "       ksv node ls [--show-labels] [-l SELECTOR] | rm NAME | status [NAME]\n"
             "       ksv node label NAME KEY=VALUE|KEY-...",
    .min_words = 1,
    .missing = "node needs a subcommand",
    .unknown = "unknown node subcommand %s",
    .entries = node_entries,
};
