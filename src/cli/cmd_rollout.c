/* cmd_rollout.c: `ksv rollout status | set-traffic | promote | rollback`: canary traffic;
 * `ksv rollout pause | resume | abort | retry`: the engines' release gate (cmd_gate.c). */
#include <stdlib.h>
#include <string.h>

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

/* pause | resume | abort | retry | promote of the engines' release gate. */
static int gate_action(ksv_cli *cli, ksv_ctl *ctl, const char *model, const char *action)
{
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_gate_action(ctl, model, cli->ns, action, &res, &err);
    int code = ksv_cli_report(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    return code;
}

/* While an engine's gate rolls the model out it owns the split: promote overrides the gate
 * (recorded as manual) and rollback aborts it. Returns -1 when no gate is involved. */
static int gate_override(ksv_cli *cli, const ksv_rollout_request *req)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    bool promote = req->op == KSV_ROLLOUT_PROMOTE;
    int code = -1;
    if ((promote || (req->op == KSV_ROLLOUT_ROLLBACK && !req->to_revision)) &&
        ksv_cli_gate_active(cli, ctl, req->model, promote))
        code = gate_action(cli, ctl, req->model, promote ? "promote" : "abort");
    ksv_ctl_close(ctl);
    return code;
}

static ksv_rollout_request request(const ksv_cli *cli, const ksv_args *a, ksv_rollout_op op)
{
    return (ksv_rollout_request){.op = op, .model = ksv_args_pos(a, 0), .ns = cli->ns,
                                 .timeout_s = cli->timeout_s};
}

/* The revisions and their split, then the release gate on each node (if any). */
static int print_rollout_status(ksv_cli *cli, ksv_ctl *ctl, const char *model,
                                const ksv_model_view *v)
{
    if (!cli->json) {
        int code = ksv_cli_print_revisions(cli, v);
        if (code == 0)
            code = ksv_cli_gate_status(cli, ctl, model, NULL);
        return code ? code : ksv_cli_wave_status(cli, ctl, model, NULL);
    }
    json_object *o = ksv_cli_view_json(v);
    int code = ksv_cli_gate_status(cli, ctl, model, o);
    if (code == 0)
        code = ksv_cli_wave_status(cli, ctl, model, o);
    if (code == 0)
        ksv_cli_print_json(o);
    json_object_put(o);
    return code;
}

static int rollout_status(ksv_cli *cli, const ksv_args *a)
{
    return ksv_cli_with_view(cli, ksv_args_pos(a, 0), print_rollout_status);
}

static int rollout_gate(ksv_cli *cli, const ksv_args *a, const char *action)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    int code = gate_action(cli, ctl, ksv_args_pos(a, 0), action);
    ksv_ctl_close(ctl);
    return code;
}

static int rollout_pause(ksv_cli *cli, const ksv_args *a)
{
    return rollout_gate(cli, a, "pause");
}

static int rollout_resume(ksv_cli *cli, const ksv_args *a)
{
    return rollout_gate(cli, a, "resume");
}

static int rollout_abort(ksv_cli *cli, const ksv_args *a)
{
    return rollout_gate(cli, a, "abort");
}

static int rollout_retry(ksv_cli *cli, const ksv_args *a)
{
    return rollout_gate(cli, a, "retry");
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
    int code = gate_override(cli, &req);
    return code >= 0 ? code : rollout(cli, &req);
}

static int rollout_rollback(ksv_cli *cli, const ksv_args *a)
{
    ksv_rollout_request req = request(cli, a, KSV_ROLLOUT_ROLLBACK);
    req.to_revision = ksv_args_get(a, "--to");
    int code = gate_override(cli, &req);
    return code >= 0 ? code : rollout(cli, &req);
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
     .too_many = "rollout set-traffic takes MODEL PERCENT", .exec = rollout_set_traffic, .changes = true},
    {.name = "promote", .min_args = 1, .max_args = 1, .too_many = "rollout promote takes MODEL",
     .exec = rollout_promote, .changes = true},
    {.name = "rollback", .opts = rollback_opts, .min_args = 1, .max_args = 1,
     .too_few = "rollout needs a subcommand and MODEL", .exec = rollout_rollback, .changes = true},
    {.name = "pause", .min_args = 1, .max_args = 1, .too_many = "rollout pause takes MODEL",
     .exec = rollout_pause, .changes = true},
    {.name = "resume", .min_args = 1, .max_args = 1, .too_many = "rollout resume takes MODEL",
     .exec = rollout_resume, .changes = true},
    {.name = "abort", .min_args = 1, .max_args = 1, .too_many = "rollout abort takes MODEL",
     .exec = rollout_abort, .changes = true},
    {.name = "retry", .min_args = 1, .max_args = 1, .too_many = "rollout retry takes MODEL",
     .exec = rollout_retry, .changes = true},
    {0},
};

const ksv_cmd_group ksv_cmd_group_rollout = {
    .name = "rollout",
    .usage = "rollout status MODEL | set-traffic MODEL PERCENT | promote MODEL | rollback MODEL "
             "[--to REV]\n       ksv rollout pause|resume|abort|retry MODEL",
    .min_words = 2,
    .missing = "rollout needs a subcommand and MODEL",
    .unknown = "unknown rollout subcommand %s",
    .entries = rollout_entries,
};
