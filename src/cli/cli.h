/* cli.h: what the ksv commands share: global options and the command table. */
#ifndef KSV_CLI_CLI_H
#define KSV_CLI_CLI_H

#include <stdbool.h>

#include "control/control.h"

typedef struct ksv_cli {
    const char *db;
    const char *ns;
    bool json;
    double timeout_s;
    int parallel;                 /* --parallel: nodes changed or probed at once */
    const char *argv0;
    const char *usage;            /* the running command's usage line */
} ksv_cli;

typedef struct ksv_command {
    const char *name;
    int (*run)(ksv_cli *cli, int argc, char **argv);
    const char *usage;
} ksv_command;

int ksv_cmd_node(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_apply(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_get(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_describe(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_rollout(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_history(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_delete(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_reconcile(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_load(ksv_cli *cli, int argc, char **argv);
int ksv_cmd_top(ksv_cli *cli, int argc, char **argv);

/* Prints "ksv: message" and returns 2. */
int ksv_usage(const ksv_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "ksv: message" and returns 1. */
int ksv_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ksv_cli_open(ksv_cli *cli, ksv_ctl **ctl);

#endif
