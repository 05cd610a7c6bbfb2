/* cmd_table.c: every ksv command group, in the order `ksv --help` lists them. A new group
 * is a file src/cli/cmd_GROUP.c that defines ksv_cmd_group_GROUP, one line here, one line
 * in Makefile.am, and its line in ksv.c's --help text. */
#include "cli/cli.h"

extern const ksv_cmd_group ksv_cmd_group_node, ksv_cmd_group_apply, ksv_cmd_group_get,
    ksv_cmd_group_describe, ksv_cmd_group_rollout, ksv_cmd_group_history, ksv_cmd_group_delete,
    ksv_cmd_group_reconcile, ksv_cmd_group_load, ksv_cmd_group_cost, ksv_cmd_group_top,
    ksv_cmd_group_logs, ksv_cmd_group_pull;

const ksv_cmd_group *const ksv_cmd_groups[] = {
    &ksv_cmd_group_node,
    &ksv_cmd_group_apply,
    &ksv_cmd_group_pull,
    &ksv_cmd_group_get,
    &ksv_cmd_group_describe,
    &ksv_cmd_group_rollout,
    &ksv_cmd_group_history,
    &ksv_cmd_group_logs,
    &ksv_cmd_group_delete,
    &ksv_cmd_group_reconcile,
    &ksv_cmd_group_load,
    &ksv_cmd_group_cost,
    &ksv_cmd_group_top,
    NULL,
};
