/* ksv.c: the ksv command line: global options and command dispatch through the command
 * table (cli.h, cmd_table.c; docs/ARCHITECTURE.md section 6).
 * Every command goes through the control layer (src/control); exit codes: 0 success,
 * 1 the operation failed (the message says where and why), 2 usage error. */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "config.h"

static const char usage_text[] =
    "Usage: ksv [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "Operate ksv-engine nodes: apply KServe InferenceService manifests, move canary\n"
    "traffic, promote, roll back, and read history and live figures.\n"
    "\n"
    "Commands:\n"
    "  node add NAME local|http://HOST:PORT|ssh://[USER@]HOST[:PORT] [--token-file FILE]\n"
    "           [--identity FILE] [--known-hosts FILE] [--trust-new] [--engine-port N]\n"
    "           [--engine-path PATH] [--engine-state-dir DIR] [--install]\n"
    "                                     register a node (local: start or attach an engine;\n"
    "                                     ssh: check its host key, start the engine there);\n"
    "                                     NAME is a DNS label ([a-z0-9-], at most 63)\n"
    "  node ls | rm NAME | status [NAME]  list, forget, or check nodes (reachability, drift;\n"
    "                                     status exits 1 when a node is down or drifts)\n"
    "  apply -f FILE [--node NAME]... [--wait]\n"
    "                                     apply InferenceService (and Flagger Canary)\n"
    "                                     manifests; --wait: until each gated rollout ends\n"
    "                                     (exit 0 Succeeded, 1 Failed)\n"
    "  pull MODEL | -f FILE [--node NAME]... [-l SELECTOR] [--pull-timeout SECS]\n"
    "                                     fetch models (s3://, gs://, hf://, http(s)://)\n"
    "                                     into the nodes' caches ahead of a rollout, with\n"
    "                                     each pull's bytes/total and rate per node\n"
    "                                     (default deadline 3600 s; loads nothing)\n"
    "  get models | revisions MODEL       list models (with QPS, P99, ERR%) or revisions\n"
    "  describe MODEL                     a model's spec, revisions, traffic and nodes\n"
    "  rollout status MODEL | set-traffic MODEL PERCENT | promote MODEL\n"
    "        | rollback MODEL [--to REV]  move canary traffic, promote, roll back\n"
    "  rollout pause|resume|abort|retry MODEL\n"
    "                                     steer the engines' release gate (a Canary);\n"
    "                                     status shows its phase, weights and checks\n"
    "  history [MODEL] [--limit N]        every change, newest first\n"
    "  logs MODEL [--revision R]          an external runtime's last output lines (per node)\n"
    "  delete MODEL                       remove a model from ksv and its nodes\n"
    "  reconcile [MODEL]                  push the desired state to the nodes again (an\n"
    "                                     unfinished waved rollout: to its succeeded\n"
    "                                     waves' nodes; ksv apply resumes the rest)\n"
    "  load MODEL [--rps N] [--duration S] [--concurrency N] [--body FILE]\n"
    "                                     send V2 traffic to the model's node\n"
    "  cost [--since DURATION] [--gpu-hour-price P] [--gb-hour-price P]\n"
    "                                     per revision: hours loaded, idle and at zero,\n"
    "                                     GB-hours held and saved, requests, money (from\n"
    "                                     the engines' load/unload events; default 24h;\n"
    "                                     prices also in ~/.config/ksv/config)\n"
    "  top                                the console (same as ksv-top)\n"
    "\n"
    "Global options (before or after the command):\n"
    "  --db PATH        database (env KSV_DB; default $XDG_STATE_HOME/ksv/ksv.db)\n"
    "  -o table|json    output format (default table)\n"
    "  -n NAMESPACE     namespace for MODEL arguments (a bare NAME must be unique)\n"
    "  --timeout SECS   wait for nodes to report changes in effect (default 120): one\n"
    "                   deadline for the whole command, however many nodes and models\n"
    "  --parallel N     nodes changed, probed or read at once (default 16)\n"
    "  --reason TEXT    why: recorded with the change in history (apply, delete,\n"
    "                   rollout set-traffic|promote|rollback|pause|resume|abort|retry,\n"
    "                   reconcile, node add|rm); `ksv history` shows it\n"
    "  --help           this help; `ksv COMMAND --help` for one command\n"
    "  --version        print the version\n"
    "\n"
    "Exit codes: 0 success, 1 the operation failed, 2 usage error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ksv: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'ksv --help'.\n");
    va_end(ap);
    return 2;
}

/* Pulls the global options out of argv wherever they are; the rest stays in order. */
/* Returns the new argc, or -2 after a usage error (already printed). */
static int parse_globals(int argc, char **argv, ksv_cli *cli)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        bool takes = strcmp(a, "--db") == 0 || strcmp(a, "-o") == 0 || strcmp(a, "-n") == 0 ||
                     strcmp(a, "--timeout") == 0 || strcmp(a, "--namespace") == 0 ||
                     strcmp(a, "--parallel") == 0 || strcmp(a, "--reason") == 0 ||
                     strcmp(a, "--output") == 0;
        if (takes) {
            if (i + 1 >= argc)
                return -usage_error("%s needs a value", a);
            val = argv[++i];
        } else if (strncmp(a, "--db=", 5) == 0 || strncmp(a, "--timeout=", 10) == 0 ||
                   strncmp(a, "--parallel=", 11) == 0 || strncmp(a, "--reason=", 9) == 0 ||
                   strncmp(a, "--output=", 9) == 0 || strncmp(a, "--namespace=", 12) == 0) {
            val = strchr(a, '=') + 1;
        } else if (strncmp(a, "-o", 2) == 0 && a[2]) {
            val = a + 2;
            a = "-o";
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (strncmp(a, "--db", 4) == 0) {
            cli->db = val;
        } else if (strncmp(a, "--reason", 8) == 0) {
            const char *problem = ksv_ctl_reason_problem(val);
            if (problem)
                return -usage_error("--reason: the text %s", problem);
            cli->reason = val;
        } else if (strncmp(a, "--timeout", 9) == 0) {
            char *end;
            cli->timeout_s = strtod(val, &end);
            if (*end || !(cli->timeout_s > 0))
                return -usage_error("--timeout: expected seconds, got %s", val);
        } else if (strncmp(a, "--parallel", 10) == 0) {
            char *end;
            long n = strtol(val, &end, 10);
            if (*end || end == val || n < 1 || n > 1024)
                return -usage_error("--parallel: expected 1..1024 nodes at once, got %s", val);
            cli->parallel = (int)n;
        } else if (strcmp(a, "-o") == 0 || strncmp(a, "--output", 8) == 0) {
            if (strcmp(val, "json") == 0)
                cli->json = true;
            else if (strcmp(val, "table") != 0 && strcmp(val, "wide") != 0)
                return -usage_error("-o: expected table or json, got %s", val);
        } else {
            cli->ns = val;
        }
    }
    argv[out] = NULL;
    return out;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static bool entry_named(const ksv_cmd_entry *e, const char *word)
{
    if (strcmp(e->name, word) == 0)
        return true;
    for (size_t i = 0; i < sizeof e->aliases / sizeof *e->aliases && e->aliases[i]; i++)
        if (strcmp(e->aliases[i], word) == 0)
            return true;
    return false;
}

/* Finds the entry the words name, checks the arguments against it, and runs it. */
static int run_group(ksv_cli *cli, const ksv_cmd_group *g, int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("Usage: ksv %s\n", g->usage);
        return 0;
    }
    cli->usage = g->usage;
    const ksv_cmd_entry *e = g->entries;
    if (argc < g->min_words || (e->name && argc == 0))
        return ksv_usage_text(cli, g->missing ? g->missing : "missing arguments", NULL);
    if (e->name) {
        while ((e->exec || e->exec_raw) && !entry_named(e, argv[0]))
            e++;
        if (!e->exec && !e->exec_raw)
            return ksv_usage_text(cli, g->unknown, argv[0]);
        argc--;
        argv++;
    }
    /* A reason is recorded with a change; on anything else it would be lost unseen. */
    if (cli->reason && !e->changes)
        return ksv_usage_text(cli, "--reason is for commands that change something", NULL);
    if (e->raw_args)
        return e->exec_raw(cli, argc, argv);
    ksv_args args;
    int code = ksv_args_parse(cli, e, argc, argv, &args);
    return code ? code : e->exec(cli, &args);
}

int main(int argc, char **argv)
{
    ksv_cli cli = {.timeout_s = 120.0, .argv0 = argv[0]};
    /* Once per process, before any thread or handle (libcurl's rule). */
    ksv_err init_err;
    if (ksv_ctl_global_init(&init_err) != 0) {
        fprintf(stderr, "ksv: libcurl failed to initialise\n");
        return 1;
    }
    int n = parse_globals(argc, argv, &cli);
    if (n <= 0)
        return 2;
    argc = n;
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("ksv %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; ksv_cmd_groups[i]; i++) {
        const ksv_cmd_group *g = ksv_cmd_groups[i];
        if (strcmp(cmd, g->name) == 0)
            return run_group(&cli, g, argc - 2, argv + 2);
    }
    return usage_error("unknown command: %s", cmd);
}
