/* cmd_apply.c: `ksv apply -f FILE [--node NAME]...`: InferenceService manifests in. */
#include <stdio.h>

#include "cli/cli.h"
#include "common/manifest.h"

static int apply(ksv_cli *cli, const ksv_args *a)
{
    const char *file = ksv_args_get(a, "--filename");
    if (!file)
        return ksv_usage(cli, "apply needs -f FILE");
    size_t n_nodes;
    const char *const *nodes = ksv_args_list(a, "--node", &n_nodes);
    ksv_manifest_list list;
    ksv_err err;
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
    ksv_apply_options o = {.nodes = nodes, .n_nodes = n_nodes, .timeout_s = cli->timeout_s};
    int rc = ksv_ctl_apply(c.ctl, &list, &o, &c.res, &c.err);
    ksv_manifest_list_free(&list);
    return ksv_cli_change_end(cli, &c, rc);
}

static const ksv_opt apply_opts[] = {
    {.name = "--filename", .alias = "-f", .kind = KSV_OPT_STRING},
    {.name = "--node", .kind = KSV_OPT_LIST},
    {0},
};

static const ksv_cmd_entry apply_entries[] = {
    {.opts = apply_opts, .max_args = 0, .exec = apply},
    {0},
};

const ksv_cmd_group ksv_cmd_group_apply = {
    .name = "apply",
    .usage = "apply -f FILE [--node NAME]...",
    .entries = apply_entries,
};
