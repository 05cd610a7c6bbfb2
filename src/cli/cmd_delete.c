/* cmd_delete.c: `ksv delete MODEL`: remove a model from ksv and its nodes. */
#include "cli/cli.h"

static int delete_model(ksv_cli *cli, const ksv_args *a)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_delete(ctl, ksv_args_pos(a, 0), cli->ns, cli->timeout_s, &res, &err);
    int code = ksv_cli_report(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    ksv_ctl_close(ctl);
    return code;
}

static const ksv_cmd_entry delete_entries[] = {
    {.min_args = 1, .max_args = 1, .too_few = "delete needs MODEL",
     .too_many = "delete needs MODEL", .exec = delete_model},
    {0},
};

const ksv_cmd_group ksv_cmd_group_delete = {
    .name = "delete",
    .usage = "delete MODEL",
    .entries = delete_entries,
};
