/* ssh_probe_bench: the wall time of one ksv-top refresh of one node (ksv_ctl_node_probe:
 * node info, applied state, histograms), with the node's SSH session + tunnel + admin client
 * kept open between probes (keep_connections, src/control/kept_conns.c) or dialled afresh
 * for each one (TCP + SSH handshake + host key check + auth + finding the engine over exec).
 *
 *   ssh_probe_bench DB NODE N KEEP
 *
 * DB: a ksv database where NODE was added (`ksv node add`); N >= 2 probes; KEEP 0 or 1.
 * The first probe is reported on its own (it includes the first dial in both modes); the
 * other N-1 give mean, p50 and p99 (nearest rank). Prints one JSON object on stdout.
 * bench/run-ssh-bench.py builds and runs it against a loopback sshd (docs/BENCHMARKS.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/control.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array of n > 0 values. */
static double percentile(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* One probe: its wall time in ms; *reachable tells the outcome, *why the reason if not. */
static int probe_once(ksv_ctl *ctl, const char *node, double *ms, int *reachable, char *why,
                      size_t why_cap)
{
    ksv_node_probe probe;
    ksv_err err;
    ksv_err_clear(&err);
    double t0 = now_ms();
    int rc = ksv_ctl_node_probe(ctl, node, NULL, &probe, &err);
    *ms = now_ms() - t0;
    if (rc != 0) {
        snprintf(why, why_cap, "%s", err.msg);
        return -1;
    }
    *reachable = probe.reachable;
    if (!probe.reachable)
        snprintf(why, why_cap, "%s", probe.error);
    ksv_node_probe_free(&probe);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s DB NODE N KEEP(0|1)\n", argv[0]);
        return 2;
    }
    const char *db = argv[1], *node = argv[2];
    char *end;
    errno = 0;
    long n = strtol(argv[3], &end, 10);
    if (errno || *end || n < 2 || n > 1000000) {
        fprintf(stderr, "N must be an integer >= 2\n");
        return 2;
    }
    if (strcmp(argv[4], "0") != 0 && strcmp(argv[4], "1") != 0) {
        fprintf(stderr, "KEEP must be 0 or 1\n");
        return 2;
    }
    int keep = argv[4][0] == '1';

    ksv_err err;
    ksv_err_clear(&err);
    if (ksv_ctl_global_init(&err) != 0) {
        fprintf(stderr, "ssh_probe_bench: %s\n", err.msg);
        return 1;
    }
    ksv_ctl_options opts;
    memset(&opts, 0, sizeof opts);
    opts.db_path = db;
    opts.argv0 = argv[0];
    opts.node_timeout_ms = 5000;
    opts.keep_connections = keep;
    ksv_ctl *ctl = NULL;
    if (ksv_ctl_open(&opts, &ctl, &err) != 0) {
        fprintf(stderr, "ssh_probe_bench: cannot open %s: %s\n", db, err.msg);
        return 1;
    }

    size_t rest = (size_t)n - 1;
    double *ms = calloc(rest, sizeof *ms);
    if (!ms) {
        ksv_ctl_close(ctl);
        fprintf(stderr, "ssh_probe_bench: out of memory\n");
        return 1;
    }
    char why[512] = "";
    long reachable = 0;
    double first_ms = 0;
    int ok = 0, status = 0;
    if (probe_once(ctl, node, &first_ms, &ok, why, sizeof why) != 0) {
        fprintf(stderr, "ssh_probe_bench: probe of %s: %s\n", node, why);
        status = 1;
        goto out;
    }
    reachable += ok;
    for (size_t i = 0; i < rest; i++) {
        if (probe_once(ctl, node, &ms[i], &ok, why, sizeof why) != 0) {
            fprintf(stderr, "ssh_probe_bench: probe of %s: %s\n", node, why);
            status = 1;
            goto out;
        }
        reachable += ok;
    }
    if (reachable < n)
        fprintf(stderr, "ssh_probe_bench: %ld of %ld probes unreachable (last: %s)\n",
                n - reachable, n, why);

    double sum = 0;
    for (size_t i = 0; i < rest; i++)
        sum += ms[i];
    qsort(ms, rest, sizeof *ms, cmp_double);
    printf("{\"keep\": %d, \"n\": %ld, \"first_ms\": %.3f, \"mean_ms\": %.3f, "
           "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, "
           "\"reachable\": %ld}\n",
           keep, n, first_ms, sum / (double)rest, percentile(ms, rest, 50),
           percentile(ms, rest, 99), ms[0], ms[rest - 1], reachable);
    if (reachable < n)
        status = 1;
out:
    free(ms);
    ksv_ctl_close(ctl);
    return status;
}
