/* cli.h: how the ksv commands are declared, parsed and printed (docs/ARCHITECTURE.md,
 * "Adding a CLI command").
 *
 * A command is data, as tmux's cmd_entry: a ksv_cmd_entry names its words, its options and
 * how many arguments it takes, and points at the function that runs it. Entries are grouped
 * by their first word (`node`, `get`, `rollout`...), one ksv_cmd_group per file
 * src/cli/cmd_GROUP.c, and cmd_table.c lists the groups. ksv.c takes the global options out
 * of argv, finds the group and the entry, and lets the one option parser (args.c) check
 * the arguments against the entry before the entry runs: a usage error prints
 * "ksv: MESSAGE" and the group's usage line and exits 2, before anything is opened.
 *
 * Listings print through one column spec (listing.h) for both the table and -o json. */
#ifndef KSV_CLI_CLI_H
#define KSV_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "control/control.h"

typedef struct ksv_cli {
    const char *db;
    const char *ns;
    bool json;
    double timeout_s;
    int parallel;                 /* --parallel: nodes changed at once (0: the default) */
    const char *reason;           /* --reason: recorded in history with the change; NULL */
    const char *argv0;
    const char *usage;            /* the running command's usage line */
} ksv_cli;

/* ---- options and arguments ---------------------------------------------------------------- */

typedef enum ksv_opt_kind {
    KSV_OPT_FLAG,                 /* --install */
    KSV_OPT_STRING,               /* --to REV (the last one wins) */
    KSV_OPT_LIST,                 /* --node NAME, repeatable (at most KSV_ARGS_MAX_LIST) */
    KSV_OPT_LONG,                 /* --limit N: an integer within [min, max] */
    KSV_OPT_DOUBLE,               /* --rps N: a number within [min, max] */
} ksv_opt_kind;

typedef struct ksv_opt {
    const char *name;             /* "--rps" */
    const char *alias;            /* "-f" for --filename; NULL: none */
    ksv_opt_kind kind;
    double min, max;              /* numbers: the accepted range, both ends included ... */
    bool min_exclusive;           /* ... or min excluded: (0, 86400] */
    const char *bad_value;        /* numbers: the usage error for a value out of range */
} ksv_opt;

/* Table rows: KSV_OPT_STR("--to"), KSV_OPT_NUM("--limit", KSV_OPT_LONG, 1, 1e300, "..."). */
#define KSV_OPT_STR(NAME) {.name = NAME, .kind = KSV_OPT_STRING}
#define KSV_OPT_NUM(NAME, KIND, MIN, MAX, BAD) \
    {.name = NAME, .kind = KIND, .min = MIN, .max = MAX, .bad_value = BAD}

#define KSV_ARGS_MAX_POS 8
#define KSV_ARGS_MAX_OPTS 16
#define KSV_ARGS_MAX_LIST 64

/* What the parser found, checked against the entry; read with the accessors below. */
typedef struct ksv_args {
    const char *pos[KSV_ARGS_MAX_POS];
    int n_pos;
    const struct ksv_cmd_entry *entry;
    struct {
        bool set;
        const char *text;         /* STRING, LONG, DOUBLE: the value as typed */
        double number;            /* LONG, DOUBLE */
        const char *list[KSV_ARGS_MAX_LIST];
        size_t n_list;            /* LIST */
    } val[KSV_ARGS_MAX_OPTS];
} ksv_args;

bool ksv_args_has(const ksv_args *a, const char *name);
/* STRING: the value, or NULL when not given. */
const char *ksv_args_get(const ksv_args *a, const char *name);
/* LONG and DOUBLE: the value, or dflt when not given. */
double ksv_args_number(const ksv_args *a, const char *name, double dflt);
/* LIST: the values in order (*n of them). */
const char *const *ksv_args_list(const ksv_args *a, const char *name, size_t *n);
/* The i-th argument (not an option), NULL past the end. */
const char *ksv_args_pos(const ksv_args *a, int i);

/* ---- commands ----------------------------------------------------------------------------- */

typedef struct ksv_cmd_entry {
    const char *name;             /* the word after the group's ("add"); NULL: the group's
                                   * only command (`ksv apply ...`) */
    const char *aliases[3];       /* other words for it ("ls": {"list"}) */
    const ksv_opt *opts;          /* ends with {NULL}; NULL: no options, and then an
                                   * argument that starts with '-' is a plain argument */
    int min_args, max_args;       /* arguments besides options; max_args -1: any number */
    const char *too_few;          /* usage error for fewer than min_args */
    const char *too_many;         /* for more than max_args; NULL: "unexpected argument %s" */
    /* Options that are unknown or miss their value are reported as "unknown option X" and
     * "X needs a value"; otherwise (the older commands) as "unexpected argument X". */
    bool named_option_errors;
    /* Takes argv untouched, parses nothing (`ksv top` hands it to ksv-top). */
    bool raw_args;
    /* Changes something (history records it): the global --reason is accepted here only. */
    bool changes;
    int (*exec)(ksv_cli *cli, const ksv_args *args);
    int (*exec_raw)(ksv_cli *cli, int argc, char **argv);
} ksv_cmd_entry;

typedef struct ksv_cmd_group {
    const char *name;             /* the first word: "node" */
    const char *usage;            /* printed after "Usage: ksv " for --help and usage errors */
    int min_words;                /* fewer words after the group's: `missing` */
    const char *missing;          /* e.g. "node needs a subcommand" */
    const char *unknown;          /* an unknown word: "unknown node subcommand %s" */
    const ksv_cmd_entry *entries; /* ends with an entry whose exec and exec_raw are NULL */
} ksv_cmd_group;

/* The groups of cmd_table.c, ending with NULL. */
extern const ksv_cmd_group *const ksv_cmd_groups[];

/* Parses argv (after the group's words) against e into *out. Returns 0, or the exit code
 * of a usage error it has printed (2). */
int ksv_args_parse(ksv_cli *cli, const ksv_cmd_entry *e, int argc, char **argv, ksv_args *out);

/* ---- output shared by the commands ----------------------------------------------------------- */

/* Prints "ksv: message" and the running command's usage; returns 2. */
int ksv_usage(const ksv_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a message with at most one "%s", filled with arg. */
int ksv_usage_text(const ksv_cli *cli, const char *message, const char *arg);
/* Prints "ksv: message" and returns 1. */
int ksv_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Opens the control layer with the global options; prints why not and returns 1. */
int ksv_cli_open(ksv_cli *cli, ksv_ctl **ctl);
/* Prints a change's per-node results (table or JSON); returns the exit code. */
int ksv_cli_report(const ksv_cli *cli, const ksv_ctl_result *res, int rc, const ksv_err *err);

/* One change through the control layer, the shape of every changing command:
 *     ksv_cli_change c;
 *     if (ksv_cli_change_begin(cli, &c))
 *         return 1;
 *     int rc = ksv_ctl_delete(c.ctl, model, cli->ns, cli->timeout_s, &c.res, &c.err);
 *     return ksv_cli_change_end(cli, &c, rc);     (reports, frees, closes) */
typedef struct ksv_cli_change {
    ksv_ctl *ctl;
    ksv_ctl_result res;
    ksv_err err;
} ksv_cli_change;

int ksv_cli_change_begin(ksv_cli *cli, ksv_cli_change *c);
int ksv_cli_change_end(const ksv_cli *cli, ksv_cli_change *c, int rc);
/* Pretty JSON and a newline on stdout. */
void ksv_cli_print_json(json_object *o);
/* "2025-01-02 03:04:05" in local time, "-" for 0. */
void ksv_cli_format_time(int64_t ms, char *out, size_t cap);
/* "42s", "5m", "3h", "2d" since ms; "-" for 0 or the future. */
void ksv_cli_format_age(int64_t ms, char *out, size_t cap);

/* `get quota` (cmd_quota.c). */
int ksv_cli_get_quota(ksv_cli *cli, const ksv_args *a);
/* `node ls` and `get nodes` (cmd_node.c): [--show-labels] [-l SELECTOR]. */
int ksv_cli_node_ls(ksv_cli *cli, const ksv_args *a);
extern const ksv_opt ksv_cli_node_ls_opts[];

/* Model views shared by get, describe and rollout (cmd_get.c). ksv_cli_with_view opens the
 * control layer, reads MODEL's view (spec, revisions, split) and hands both to fn, whose
 * exit code it returns; the one listing step of `get revisions`, `describe` and `rollout
 * status`. */
typedef int (*ksv_cli_view_fn)(ksv_cli *cli, ksv_ctl *ctl, const char *model,
                               const ksv_model_view *v);
int ksv_cli_with_view(ksv_cli *cli, const char *model, ksv_cli_view_fn fn);
int ksv_cli_print_revisions(ksv_cli *cli, const ksv_model_view *v);
json_object *ksv_cli_view_json(const ksv_model_view *v);
/* "00001:90,00002:10" and "a,b": a model's traffic split and nodes in one cell. */
void ksv_cli_split_text(const ksv_model_view *v, char *out, size_t cap);
void ksv_cli_nodes_text(const ksv_model_record *m, char *out, size_t cap);

/* Release gates (cmd_gate.c). status prints the gate section of `rollout status` (into: adds
 * "gate" to that JSON object instead); active: some node runs a gated rollout (or a Failed
 * one, when asked); wait: until Succeeded (0) or Failed (1, with the reason). */
int ksv_cli_gate_status(ksv_cli *cli, ksv_ctl *ctl, const char *model, json_object *into);
/* The newest waved rollout's nodes, waves and phases: printed, or added to into ("waves",
 * null when none). */
int ksv_cli_wave_status(ksv_cli *cli, ksv_ctl *ctl, const char *model, json_object *into);
bool ksv_cli_gate_active(ksv_cli *cli, ksv_ctl *ctl, const char *model, bool include_failed);
int ksv_cli_gate_wait(ksv_cli *cli, ksv_ctl *ctl, const char *model);

#endif
