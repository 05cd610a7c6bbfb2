/* cmd_load.c: `ksv load MODEL`: V2 traffic at the model's first node, through the traffic
 * generator of src/control/loadgen (libcurl multi), printing rate, latency and errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"

int ksv_cmd_load(ksv_cli *cli, int argc, char **argv)
{
    const char *model = NULL, *body_file = NULL, *node_name = NULL;
    double rps = 0, duration = 10, bad = 0;
    long concurrency = 8;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        char *end = NULL;
        if (strcmp(a, "--rps") == 0 && has) {
            rps = strtod(argv[++i], &end);
            if (*end || rps < 0)
                return ksv_usage(cli, "--rps: expected a rate >= 0 (0: as fast as possible)");
        } else if (strcmp(a, "--duration") == 0 && has) {
            duration = strtod(argv[++i], &end);
            if (*end || !(duration > 0 && duration <= 86400))
                return ksv_usage(cli, "--duration: expected seconds in (0, 86400]");
        } else if (strcmp(a, "--concurrency") == 0 && has) {
            concurrency = strtol(argv[++i], &end, 10);
            if (*end || concurrency < 1 || concurrency > 4096)
                return ksv_usage(cli, "--concurrency: expected 1..4096");
        } else if (strcmp(a, "--bad-fraction") == 0 && has) {
            bad = strtod(argv[++i], &end);
            if (*end || bad < 0 || bad > 1)
                return ksv_usage(cli, "--bad-fraction: expected 0..1");
        } else if (strcmp(a, "--body") == 0 && has) {
            body_file = argv[++i];
        } else if (strcmp(a, "--node") == 0 && has) {
            node_name = argv[++i];
        } else if (a[0] != '-' && !model) {
            model = a;
        } else {
            return ksv_usage(cli, "unexpected argument %s", a);
        }
    }
    if (!model)
        return ksv_usage(cli, "load needs MODEL");
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
