/* cmd_load.c: `ksv load MODEL`: V2 traffic at the model's first node, through the traffic
 * generator of src/control/loadgen, printing rate, latency and errors. */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "common/fileutil.h"

static int load(ksv_cli *cli, const ksv_args *a)
{
    const char *model = ksv_args_pos(a, 0);
    const char *body_file = ksv_args_get(a, "--body");
    const char *node_name = ksv_args_get(a, "--node");
    double rps = ksv_args_number(a, "--rps", 0);
    double duration = ksv_args_number(a, "--duration", 10);
    double bad = ksv_args_number(a, "--bad-fraction", 0);
    long concurrency = (long)ksv_args_number(a, "--concurrency", 8);
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    int code = 1;
    ksv_err err;
    ksv_err_clear(&err);
    char *body = NULL;
    size_t body_len = 0;
    /* The connection stays open for the run: for an SSH node it is the tunnel the
     * requests travel through. */
    ksv_load_target *target;
    if (ksv_ctl_load_target_open(ctl, model, cli->ns, node_name, !body_file, &target, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    const char *url = ksv_load_target_url(target);
    long features = ksv_load_target_features(target);
    if (body_file && ksv_read_file(body_file, 64u << 20, &body, &body_len, &err) != 0) {
        ksv_fail("--body: %s", err.msg);
        goto out;
    }
    if (!body && features <= 0) {
        ksv_fail("%s: the engine does not report the input width yet (is it loaded?); pass "
                 "--body FILE", model);
        goto out;
    }
    ksv_load_config cfg = {
        .url = url,
        .body = body,
        .body_len = body_len,
        .features = features > 0 ? (size_t)features : 0,
        .rps = rps,
        .duration_s = duration,
        .concurrency = (unsigned)concurrency,
        .bad_fraction = bad,
    };
    ksv_load_report *report = calloc(1, sizeof *report);
    if (!report) {
        ksv_fail("out of memory");
        goto out;
    }
    if (!cli->json)
        fprintf(stderr, "ksv load: %s for %.0f s, %s, concurrency %ld\n", url, duration,
                rps > 0 ? "fixed rate" : "as fast as possible", concurrency);
    int rc = ksv_load_run(&cfg, report, &err);
    if (rc == 0) {
        ksv_load_report_print(report, stdout, cli->json);
        /* Deliberately malformed requests (--bad-fraction) are expected to fail. */
        code = report->errors > report->bad_sent ? 1 : 0;
    } else {
        ksv_fail("%s", err.msg);
    }
    free(report);
out:
    free(body);
    ksv_load_target_close(target);
    ksv_ctl_close(ctl);
    return code;
}

static const ksv_opt load_opts[] = {
    KSV_OPT_NUM("--rps", KSV_OPT_DOUBLE, 0, INFINITY,
                "--rps: expected a rate >= 0 (0: as fast as possible)"),
    {.name = "--duration", .kind = KSV_OPT_DOUBLE, .min = 0, .min_exclusive = true, .max = 86400,
     .bad_value = "--duration: expected seconds in (0, 86400]"},
    KSV_OPT_NUM("--concurrency", KSV_OPT_LONG, 1, 4096,
                "--concurrency: expected 1..4096"),
    KSV_OPT_NUM("--bad-fraction", KSV_OPT_DOUBLE, 0, 1,
                "--bad-fraction: expected 0..1"),
    KSV_OPT_STR("--body"),
    KSV_OPT_STR("--node"),
    {0},
};

static const ksv_cmd_entry load_entries[] = {
    {.opts = load_opts, .min_args = 1, .max_args = 1, .too_few = "load needs MODEL",
     .exec = load},
    {0},
};

const ksv_cmd_group ksv_cmd_group_load = {
    .name = "load",
    .usage = "load MODEL [--rps N] [--duration SECONDS] [--concurrency N] [--body FILE] "
             "[--bad-fraction F]",
    .entries = load_entries,
};
