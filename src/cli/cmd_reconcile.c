/* cmd_reconcile.c: `ksv reconcile [MODEL]`: push the desired state to the nodes again. */
#include <stdio.h>

#include "cli/cli.h"

static int reconcile(ksv_cli *cli, const ksv_args *a)
{
    const char *model = ksv_args_pos(a, 0);
    ksv_cli_change c;
    if (ksv_cli_change_begin(cli, &c))
        return 1;
    int rc = ksv_ctl_reconcile(c.ctl, model, cli->ns, cli->timeout_s, &c.res, &c.err);
    snprintf(c.res.summary, sizeof c.res.summary, "reconciled %s", model ? model : "every model");
    return ksv_cli_change_end(cli, &c, rc);
}

static const ksv_cmd_entry reconcile_entries[] = {
    {.max_args = 1, .too_many = "reconcile takes at most one MODEL", .exec = reconcile, .changes = true},
    {0},
};

const ksv_cmd_group ksv_cmd_group_reconcile = {
    .name = "reconcile",
    .usage = "reconcile [MODEL]",
    .entries = reconcile_entries,
};
