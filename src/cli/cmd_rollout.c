/* cmd_rollout.c: `ksv rollout status | set-traffic | promote | rollback`: canary traffic. */
#include <stdlib.h>

#include "cli/cli.h"

/* Runs one rollout change and reports every node's result. */
static int rollout(ksv_cli *cli, const ksv_rollout_request *req)
{
    ksv_cli_change c;
    if (ksv_cli_change_begin(cli, &c))
        return 1;
    int rc = ksv_ctl_rollout(c.ctl, req, &c.res, &c.err);
    return ksv_cli_change_end(cli, &c, rc);
}

static ksv_rollout_request request(const ksv_cli *cli, const ksv_args *a, ksv_rollout_op op)
{
    return (ksv_rollout_request){.op = op, .model = ksv_args_pos(a, 0), .ns = cli->ns,
                                 .timeout_s = cli->timeout_s};
}

static int rollout_status(ksv_cli *cli, const ksv_args *a)
{
    return ksv_cli_with_view(cli, ksv_args_pos(a, 0), ksv_cli_print_revisions);
}

static int rollout_set_traffic(ksv_cli *cli, const ksv_args *a)
{
    const char *text = ksv_args_pos(a, 1);
    char *end;
    long pct = strtol(text, &end, 10);
    if (*end == '%')
        end++;
    if (*end || end == text || pct < 0 || pct > 100)
        return ksv_usage(cli, "PERCENT must be an integer 0..100, got %s", text);
    ksv_rollout_request req = request(cli, a, KSV_ROLLOUT_SET_TRAFFIC);
    req.percent = (int)pct;
    return rollout(cli, &req);
}

static int rollout_promote(ksv_cli *cli, const ksv_args *a)
{
    ksv_rollout_request req = request(cli, a, KSV_ROLLOUT_PROMOTE);
    return rollout(cli, &req);
}

static int rollout_rollback(ksv_cli *cli, const ksv_args *a)
{
    ksv_rollout_request req = request(cli, a, KSV_ROLLOUT_ROLLBACK);
    req.to_revision = ksv_args_get(a, "--to");
    return rollout(cli, &req);
}

static const ksv_opt rollback_opts[] = {
    KSV_OPT_STR("--to"),
    {0},
};

static const ksv_cmd_entry rollout_entries[] = {
    {.name = "status", .min_args = 1, .max_args = 1, .too_many = "rollout status takes MODEL",
     .exec = rollout_status},
    {.name = "set-traffic", .min_args = 2, .max_args = 2,
     .too_few = "rollout set-traffic takes MODEL PERCENT",
     .too_many = "rollout set-traffic takes MODEL PERCENT", .exec = rollout_set_traffic},
    {.name = "promote", .min_args = 1, .max_args = 1, .too_many = "rollout promote takes MODEL",
     .exec = rollout_promote},
    {.name = "rollback", .opts = rollback_opts, .min_args = 1, .max_args = 1,
     .too_few = "rollout needs a subcommand and MODEL", .exec = rollout_rollback},
    {0},
};

const ksv_cmd_group ksv_cmd_group_rollout = {
    .name = "rollout",
    .usage = "rollout status MODEL | set-traffic MODEL PERCENT | promote MODEL | rollback MODEL "
             "[--to REV]",
    .min_words = 2,
    .missing = "rollout needs a subcommand and MODEL",
    .unknown = "unknown rollout subcommand %s",
    .entries = rollout_entries,
};
