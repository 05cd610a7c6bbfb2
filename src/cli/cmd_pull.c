/* cmd_pull.c: `ksv pull MODEL | -f FILE [--node NAME]... [-l SELECTOR]`: fetch models into
 * the nodes' caches ahead of a rollout or a cold start, showing each pull's progress. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/manifest.h"

#define PROGRESS_EVERY_MS 1000.0
#define SHOWN_MAX 256

/* When each pull last printed a progress line: at most one a second per pull. */
typedef struct shown_lines {
    struct {
        char key[2200];
        double at_ms;
    } v[SHOWN_MAX];
    size_t n;
} shown_lines;

static void print_pull(const ksv_pull_report *r, void *user)
{
    shown_lines *s = user;
    bool final = strcmp(r->state, "done") == 0 || strcmp(r->state, "failed") == 0;
    char key[2200];
    snprintf(key, sizeof key, "%s %s", r->node, r->uri);
    size_t i = 0;
    while (i < s->n && strcmp(s->v[i].key, key) != 0)
        i++;
    double now = ksv_mono_ms();
    if (i == s->n && s->n < SHOWN_MAX) {
        snprintf(s->v[s->n].key, sizeof s->v[s->n].key, "%s", key);
        s->v[s->n++].at_ms = -PROGRESS_EVERY_MS;
    }
    if (!final && i < s->n && now - s->v[i].at_ms < PROGRESS_EVERY_MS)
        return;
    if (i < s->n)
        s->v[i].at_ms = now;
    char line[2600];
    ksv_ctl_format_pull(r, line, sizeof line);
    fprintf(stderr, "ksv: %s\n", line);
    fflush(stderr);
}

static int pull(ksv_cli *cli, const ksv_args *a)
{
    const char *file = ksv_args_get(a, "--filename"), *model = ksv_args_pos(a, 0);
    if (!file == !model)
        return ksv_usage(cli, "pull needs MODEL or -f FILE (one of them)");
    size_t n_nodes;
    const char *const *nodes = ksv_args_list(a, "--node", &n_nodes);
    const char *selector = ksv_args_get(a, "--selector");
    if (n_nodes && selector)
        return ksv_usage(cli, "pull: --node and -l both choose the nodes: give one");
    ksv_err err;
    ksv_selector sel;
    if (selector && ksv_selector_parse(selector, &sel, &err) != 0)
        return ksv_usage(cli, "-l: %s", err.msg);
    ksv_manifest_list list = {0};
    if (file && ksv_manifest_load_file(file, &list, &err) != 0)
        return ksv_fail("%s", err.msg);
    shown_lines *shown = calloc(1, sizeof *shown);
    ksv_cli_change c;
    if (!shown || ksv_cli_change_begin(cli, &c)) {
        free(shown);
        if (file)
            ksv_manifest_list_free(&list);
        return shown ? 1 : ksv_fail("out of memory");
    }
    ksv_pull_request req = {
        .list = file ? &list : NULL,
        .model = model,
        .ns = cli->ns,
        .nodes = nodes,
        .n_nodes = n_nodes,
        .selector = selector,
        .timeout_s = ksv_args_number(a, "--pull-timeout", 3600),
        .progress = print_pull,
        .user = shown,
    };
    int rc = ksv_ctl_pull(c.ctl, &req, &c.res, &c.err);
    int code = ksv_cli_change_end(cli, &c, rc);
    free(shown);
    if (file)
        ksv_manifest_list_free(&list);
    return code;
}

static const ksv_opt pull_opts[] = {
    {.name = "--filename", .alias = "-f", .kind = KSV_OPT_STRING},
    {.name = "--node", .kind = KSV_OPT_LIST},
    {.name = "--selector", .alias = "-l", .kind = KSV_OPT_STRING},
    {.name = "--pull-timeout", .kind = KSV_OPT_DOUBLE, .min = 0, .max = 7 * 86400.0,
     .min_exclusive = true,
     .bad_value = "--pull-timeout must be a number of seconds in (0, 604800]"},
    {0},
};

static const ksv_cmd_entry pull_entries[] = {
    {.opts = pull_opts, .max_args = 1, .too_many = "pull takes one MODEL",
     .named_option_errors = true, .exec = pull},
    {0},
};

const ksv_cmd_group ksv_cmd_group_pull = {
    .name = "pull",
    .usage = "pull MODEL | -f FILE [--node NAME]... [-l SELECTOR] [--pull-timeout SECS]",
    .entries = pull_entries,
};
