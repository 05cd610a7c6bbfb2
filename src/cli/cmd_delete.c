/* cmd_delete.c: `ksv delete MODEL`: remove a model from ksv and its nodes. */
#include "cli/cli.h"

static int delete_model(ksv_cli *cli, const ksv_args *a)
{
    ksv_cli_change c;
    if (ksv_cli_change_begin(cli, &c))
        return 1;
    int rc = ksv_ctl_delete(c.ctl, ksv_args_pos(a, 0), cli->ns, cli->timeout_s, &c.res, &c.err);
    return ksv_cli_change_end(cli, &c, rc);
}

static const ksv_cmd_entry delete_entries[] = {
    {.min_args = 1, .max_args = 1, .too_few = "delete needs MODEL",
     .too_many = "delete needs MODEL", .exec = delete_model, .changes = true},
    {0},
};

const ksv_cmd_group ksv_cmd_group_delete = {
    .name = "delete",
    .usage = "delete MODEL",
    .entries = delete_entries,
};
