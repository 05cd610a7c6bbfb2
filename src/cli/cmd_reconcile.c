/* cmd_reconcile.c: `ksv reconcile [MODEL]`: push the desired state to the nodes again. */
#include <stdio.h>

#include "cli/cli.h"

static int reconcile(ksv_cli *cli, const ksv_args *a)
{
    const char *model = ksv_args_pos(a, 0);
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_reconcile(ctl, model, cli->ns, cli->timeout_s, &res, &err);
    snprintf(res.summary, sizeof res.summary, "reconciled %s", model ? model : "every model");
    int code = ksv_cli_report(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    ksv_ctl_close(ctl);
    return code;
}

static const ksv_cmd_entry reconcile_entries[] = {
    {.max_args = 1, .too_many = "reconcile takes at most one MODEL", .exec = reconcile},
    {0},
};

const ksv_cmd_group ksv_cmd_group_reconcile = {
    .name = "reconcile",
    .usage = "reconcile [MODEL]",
    .entries = reconcile_entries,
};
