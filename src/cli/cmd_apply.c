/* cmd_apply.c: `ksv apply -f FILE [--node NAME]... [--wait]`: InferenceService (and Flagger
 * Canary) manifests in; --wait blocks until each gated rollout they started ends. */
#include <stdio.h>

#include "cli/cli.h"
#include "common/manifest.h"

static int apply(ksv_cli *cli, const ksv_args *a)
{
    const char *file = ksv_args_get(a, "--filename");
    ksv_err err;
    if (!file)
        return ksv_usage(cli, "apply needs -f FILE");
    size_t n_nodes;
    const char *const *nodes = ksv_args_list(a, "--node", &n_nodes);
    if (n_nodes && ksv_args_get(a, "--selector"))
        return ksv_usage(cli, "apply: --node and -l both place the models: give one");
    ksv_selector sel;
    if (ksv_args_get(a, "--selector") && ksv_selector_parse(ksv_args_get(a, "--selector"), &sel, &err) != 0)
        return ksv_usage(cli, "-l: %s", err.msg);
    ksv_manifest_list list;
    ksv_err_clear(&err);
    if (ksv_manifest_load_file(file, &list, &err) != 0)
        return ksv_fail("%s", err.msg);
    ksv_sb notes;
    ksv_sb_init(&notes);
    ksv_manifest_format_notes(&list, &notes);
    if (notes.len)
        fprintf(stderr, "%s", notes.data);
    ksv_sb_free(&notes);
    ksv_cli_change c;
    if (ksv_cli_change_begin(cli, &c)) {
        ksv_manifest_list_free(&list);
        return 1;
    }
    const char *selector = ksv_args_get(a, "--selector");
    ksv_apply_options o = {.nodes = nodes, .n_nodes = n_nodes, .selector = selector,
                           .timeout_s = cli->timeout_s};
    int rc = ksv_ctl_apply(c.ctl, &list, &o, &c.res, &c.err);
    if (!ksv_args_has(a, "--wait")) {
        ksv_manifest_list_free(&list);
        return ksv_cli_change_end(cli, &c, rc);
    }
    int code = ksv_cli_report(cli, &c.res, rc, &c.err);
    ksv_ctl_result_free(&c.res);
    /* Until each gated rollout of this apply ends: 0 Succeeded, 1 Failed (with why). */
    for (size_t i = 0; code == 0 && i < list.n; i++) {
        char ref[300];
        snprintf(ref, sizeof ref, "%s/%s", list.items[i].namespace_name, list.items[i].name);
        json_object *st = NULL;
        ksv_err gerr;
        bool gated = ksv_ctl_gate_status(c.ctl, ref, NULL, &st, &gerr) == 0 &&
                     json_object_object_get(st, "canary") != NULL;
        json_object_put(st);
        if (gated)
            code = ksv_cli_gate_wait(cli, c.ctl, ref);
    }
    ksv_ctl_close(c.ctl);
    ksv_manifest_list_free(&list);
    return code;
}

static const ksv_opt apply_opts[] = {
    {.name = "--filename", .alias = "-f", .kind = KSV_OPT_STRING},
    {.name = "--node", .kind = KSV_OPT_LIST},
    {.name = "--selector", .alias = "-l", .kind = KSV_OPT_STRING},
    {.name = "--wait", .kind = KSV_OPT_FLAG},
    {0},
};

static const ksv_cmd_entry apply_entries[] = {
    {.opts = apply_opts, .max_args = 0, .exec = apply, .changes = true},
    {0},
};

const ksv_cmd_group ksv_cmd_group_apply = {
    .name = "apply",
    .usage = "apply -f FILE [--node NAME]... [-l SELECTOR] [--wait]",
    .entries = apply_entries,
};
