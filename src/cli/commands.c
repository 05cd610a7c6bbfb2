/* commands.c: the ksv commands. Each parses its arguments, calls the control layer and
 * prints a table or JSON (-o json). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "control/control.h"
#include "cli/table.h"
#include "common/fileutil.h"
#include "common/sanitize.h"
#include "common/manifest.h"

/* "ksv: MESSAGE" on stderr, filtered: messages quote nodes, files and arguments. */
static void print_message(const char *fmt, va_list ap)
{
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "ksv: %s\n", ksv_sanitize(line));
}

int ksv_usage(const ksv_cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_message(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Usage: ksv %s\n", cli->usage ? cli->usage : "--help");
    return 2;
}

int ksv_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_message(fmt, ap);
    va_end(ap);
    return 1;
}

/* Model uploads to SSH nodes: a live line on a terminal, one line when done otherwise. */
static void print_upload(const char *node, const char *file, long long done, long long total,
                         double rate, void *user)
{
    (void)user;
    bool tty = isatty(STDERR_FILENO);
    if (!tty && done < total)
        return;
    char line[4400];
    ksv_ctl_format_upload(node, file, done, total, rate, line, sizeof line);
    /* \033[K clears what a longer progress line left behind. */
    fprintf(stderr, "%sksv: %s%s%s", tty ? "\r" : "", line, tty ? "\033[K" : "",
            done < total ? "" : "\n");
    fflush(stderr);
}

int ksv_cli_open(ksv_cli *cli, ksv_ctl **ctl)
{
    ksv_err err;
    ksv_ctl_options opts = {
        .db_path = cli->db,
        .argv0 = cli->argv0,
        .upload_progress = print_upload,
        .parallel = cli->parallel,
    };
    if (ksv_ctl_open(&opts, ctl, &err) != 0)
        return ksv_fail("%s", err.msg);
    return 0;
}

static void print_json(json_object *o)
{
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void format_time(int64_t ms, char *out, size_t cap)
{
    if (ms <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static void format_age(int64_t ms, char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t s = ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - ms) / 1000;
    if (ms <= 0 || s < 0)
        snprintf(out, cap, "-");
    else if (s < 120)
        snprintf(out, cap, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(out, cap, "%lldm", (long long)(s / 60));
    else if (s < 172800)
        snprintf(out, cap, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, cap, "%lldd", (long long)(s / 86400));
}

/* Prints a change's per-node results; returns the exit code (0, or 1 if any failed). */
static int report_result(const ksv_cli *cli, const ksv_ctl_result *res, int rc, const ksv_err *err)
{
    if (cli->json) {
        json_object *o = json_object_new_object(), *nodes = json_object_new_array();
        json_object_object_add(o, "ok", json_object_new_boolean(rc == 0));
        json_object_object_add(o, "changed", json_object_new_boolean(res->changed));
        json_object_object_add(o, "summary", json_object_new_string(res->summary));
        if (rc != 0)
            json_object_object_add(o, "error", json_object_new_string(err->msg));
        for (size_t i = 0; i < res->n; i++) {
            json_object *n = json_object_new_object();
            json_object_object_add(n, "node", json_object_new_string(res->nodes[i].node));
            json_object_object_add(n, "ok", json_object_new_boolean(res->nodes[i].ok));
            json_object_object_add(n, "message", json_object_new_string(res->nodes[i].message));
            json_object_array_add(nodes, n);
        }
        json_object_object_add(o, "nodes", nodes);
        print_json(o);
        json_object_put(o);
    } else {
        char summary[sizeof res->summary];
        if (res->summary[0])
            printf("%s\n", (ksv_sanitize_copy(summary, sizeof summary, res->summary), summary));
        for (size_t i = 0; i < res->n; i++)
            printf("  node %s: %s%s%s\n", res->nodes[i].node,
                   res->nodes[i].ok            ? "ok"
                   : res->nodes[i].unconfirmed ? "UNCONFIRMED"
                                               : "FAILED",
                   res->nodes[i].message[0] ? ": " : "", res->nodes[i].message);
    }
    if (rc != 0) {
        ksv_fail("%s", err->msg);
        return err->status == 2 ? 2 : 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ node */

static int node_add(ksv_cli *cli, int argc, char **argv)
{
    const char *name = NULL, *address = NULL;
    ksv_node_add_options o = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = strcmp(a, "--token-file") == 0         ? &o.token_file
                           : strcmp(a, "--engine-state-dir") == 0 ? &o.engine_state_dir
                           : strcmp(a, "--engine-path") == 0      ? &o.engine_path
                           : strcmp(a, "--identity") == 0         ? &o.identity
                           : strcmp(a, "--known-hosts") == 0      ? &o.known_hosts
                                                                  : NULL;
        if (dst || strcmp(a, "--engine-port") == 0) {
            if (i + 1 >= argc)
                return ksv_usage(cli, "%s needs a value", a);
            if (dst) {
                *dst = argv[++i];
            } else {
                char *end;
                long p = strtol(argv[++i], &end, 10);
                if (*end || p < 1 || p > 65535)
                    return ksv_usage(cli, "--engine-port: expected 1..65535");
                o.engine_port = (int)p;
            }
        } else if (strcmp(a, "--trust-new") == 0) {
            o.trust_new = true;
        } else if (strcmp(a, "--install") == 0) {
            o.install = true;
        } else if (a[0] == '-') {
            return ksv_usage(cli, "unknown option %s", a);
        } else if (!name) {
            name = a;
        } else if (!address) {
            address = a;
        } else {
            return ksv_usage(cli, "unexpected argument %s", a);
        }
    }
    if (!name || !address)
        return ksv_usage(cli, "node add needs NAME and ADDRESS");
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_node_add(ctl, name, address, &o, &res, &err);
    int code = rc != 0 && err.status == 2 ? ksv_usage(cli, "%s", err.msg)
                                          : report_result(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    ksv_ctl_close(ctl);
    return code;
}

static int node_ls(ksv_cli *cli)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_node_list list;
    ksv_err err;
    if (ksv_ctl_node_list(ctl, &list, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < list.n; i++) {
            ksv_node *n = &list.items[i];
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(n->name));
            json_object_object_add(o, "kind", json_object_new_string(ksv_node_kind_name(n->kind)));
            json_object_object_add(o, "address", json_object_new_string(n->address));
            json_object_object_add(o, "last_seen_ms", json_object_new_int64(n->last_seen_ms));
            json_object_object_add(o, "last_error",
                                   n->last_error ? json_object_new_string(n->last_error) : NULL);
            json_object_object_add(o, "engine_version",
                                   n->engine_version ? json_object_new_string(n->engine_version)
                                                     : NULL);
            json_object_array_add(arr, o);
        }
        print_json(arr);
        json_object_put(arr);
    } else {
        ksv_table t;
        const char *h[] = {"NAME", "KIND", "ADDRESS", "ENGINE", "LAST SEEN", "LAST ERROR"};
        ksv_table_init(&t, 6, h);
        for (size_t i = 0; i < list.n; i++) {
            ksv_node *n = &list.items[i];
            char seen[32];
            format_time(n->last_seen_ms, seen, sizeof seen);
            const char *row[] = {n->name, ksv_node_kind_name(n->kind), n->address,
                                 n->engine_version, seen, n->last_error};
            ksv_table_add(&t, row);
        }
        ksv_table_print(&t, stdout);
        ksv_table_free(&t);
    }
    ksv_node_list_free(&list);
    ksv_ctl_close(ctl);
    return 0;
}

static int node_status(ksv_cli *cli, const char *name)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_node_status *st;
    size_t n;
    ksv_err err;
    if (ksv_ctl_node_status(ctl, name, &st, &n, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    int code = 0;
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *o = json_object_new_object(), *drift = json_object_new_array();
            json_object_object_add(o, "name", json_object_new_string(st[i].node.name));
            json_object_object_add(o, "address", json_object_new_string(st[i].node.address));
            json_object_object_add(o, "reachable", json_object_new_boolean(st[i].reachable));
            json_object_object_add(o, "error",
                                   st[i].reachable ? NULL : json_object_new_string(st[i].error));
            json_object_object_add(o, "engine_version",
                                   json_object_new_string(st[i].engine_version));
            json_object_object_add(o, "uptime_s", json_object_new_double(st[i].uptime_s));
            for (size_t d = 0; d < st[i].n_drift; d++)
                json_object_array_add(drift, json_object_new_string(st[i].drift[d]));
            json_object_object_add(o, "drift", drift);
            json_object_array_add(arr, o);
        }
        print_json(arr);
        json_object_put(arr);
    } else {
        ksv_table t;
        const char *h[] = {"NAME", "ADDRESS", "STATUS", "ENGINE", "UPTIME", "DRIFT"};
        ksv_table_init(&t, 6, h);
        for (size_t i = 0; i < n; i++) {
            char uptime[32], drift[32];
            snprintf(uptime, sizeof uptime, "%.0fs", st[i].uptime_s);
            snprintf(drift, sizeof drift, "%zu", st[i].n_drift);
            const char *row[] = {st[i].node.name, st[i].node.address,
                                 st[i].reachable ? "Ready" : "Unreachable",
                                 st[i].engine_version, st[i].reachable ? uptime : NULL,
                                 st[i].reachable ? drift : NULL};
            ksv_table_add(&t, row);
        }
        ksv_table_print(&t, stdout);
        ksv_table_free(&t);
        for (size_t i = 0; i < n; i++) {
            if (!st[i].reachable)
                printf("%s: %s\n", st[i].node.name, st[i].error);
            for (size_t d = 0; d < st[i].n_drift; d++)
                printf("%s: drift: %s\n", st[i].node.name, st[i].drift[d]);
        }
    }
    /* Drift is a node that does not serve what was asked: as much a failure to a script
     * as a node that does not answer. */
    for (size_t i = 0; i < n; i++)
        if (!st[i].reachable || st[i].n_drift > 0)
            code = 1;
    ksv_node_status_free(st, n);
    ksv_ctl_close(ctl);
    return code;
}

int ksv_cmd_node(ksv_cli *cli, int argc, char **argv)
{
    if (argc < 1)
        return ksv_usage(cli, "node needs a subcommand");
    if (strcmp(argv[0], "add") == 0)
        return node_add(cli, argc - 1, argv + 1);
    if (strcmp(argv[0], "ls") == 0 || strcmp(argv[0], "list") == 0)
        return argc == 1 ? node_ls(cli) : ksv_usage(cli, "node ls takes no arguments");
    if (strcmp(argv[0], "status") == 0)
        return argc <= 2 ? node_status(cli, argc == 2 ? argv[1] : NULL)
                         : ksv_usage(cli, "node status takes at most one NAME");
    if (strcmp(argv[0], "rm") == 0 || strcmp(argv[0], "remove") == 0) {
        if (argc != 2)
            return ksv_usage(cli, "node rm needs NAME");
        ksv_ctl *ctl;
        if (ksv_cli_open(cli, &ctl))
            return 1;
        ksv_ctl_result res = {0};
        ksv_err err;
        int rc = ksv_ctl_node_remove(ctl, argv[1], &res, &err);
        int code = report_result(cli, &res, rc, &err);
        ksv_ctl_result_free(&res);
        ksv_ctl_close(ctl);
        return code;
    }
    return ksv_usage(cli, "unknown node subcommand %s", argv[0]);
}

/* ----------------------------------------------------------------------- apply */

int ksv_cmd_apply(ksv_cli *cli, int argc, char **argv)
{
    const char *file = NULL;
    const char *nodes[64];
    size_t n_nodes = 0;
    bool wait = false;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--filename") == 0) && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--node") == 0 && i + 1 < argc && n_nodes < 64)
            nodes[n_nodes++] = argv[++i];
        else if (strcmp(argv[i], "--wait") == 0)
            wait = true;
        else
            return ksv_usage(cli, "unexpected argument %s", argv[i]);
    }
    if (!file)
        return ksv_usage(cli, "apply needs -f FILE");
    ksv_manifest_list list;
    ksv_err err;
    ksv_err_clear(&err);
    if (ksv_manifest_load_file(file, &list, &err) != 0)
        return ksv_fail("%s", err.msg);
    ksv_sb notes;
    ksv_sb_init(&notes);
    ksv_manifest_format_notes(&list, &notes);
    if (notes.len)
        fprintf(stderr, "%s", notes.data);
    ksv_sb_free(&notes);
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl)) {
        ksv_manifest_list_free(&list);
        return 1;
    }
    ksv_apply_options o = {.nodes = nodes, .n_nodes = n_nodes, .timeout_s = cli->timeout_s};
    ksv_ctl_result res = {0};
    int rc = ksv_ctl_apply(ctl, &list, &o, &res, &err);
    int code = report_result(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    /* --wait: until each gated rollout this apply started ends (0 Succeeded, 1 Failed). */
    for (size_t i = 0; wait && code == 0 && i < list.n; i++) {
        char ref[300];
        snprintf(ref, sizeof ref, "%s/%s", list.items[i].namespace_name, list.items[i].name);
        json_object *st = NULL;
        ksv_err gerr;
        bool gated = ksv_ctl_gate_status(ctl, ref, NULL, &st, &gerr) == 0 &&
                     json_object_object_get(st, "canary") != NULL;
        json_object_put(st);
        if (gated)
            code = ksv_cli_gate_wait(cli, ctl, ref);
    }
    ksv_ctl_close(ctl);
    ksv_manifest_list_free(&list);
    return code;
}

/* ------------------------------------------------------------------ get/describe */

static void split_text(const ksv_model_view *v, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->traffic.n; i++) {
        const ksv_traffic_entry *e = &v->traffic.items[i];
        if (e->percent == 0)
            continue;
        const char *short_name = strrchr(e->revision_name, '-');
        int n = snprintf(out + len, cap - len, "%s%s:%d", len ? "," : "",
                         short_name ? short_name + 1 : e->revision_name, e->percent);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

static void nodes_text(const ksv_model *m, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->n_nodes; i++) {
        int n = snprintf(out + len, cap - len, "%s%s", i ? "," : "", m->nodes[i]);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

static int get_models(ksv_cli *cli)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_model_list list;
    ksv_err err;
    if (ksv_ctl_model_list(ctl, cli->ns, &list, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    ksv_figures figs;
    ksv_figures_collect(ctl, &figs);
    json_object *arr = json_object_new_array();
    ksv_table t;
    const char *h[] = {"NAMESPACE", "NAME", "NODES", "REVISIONS", "TRAFFIC", "QPS", "P50",
                       "P99", "ERR%", "AGE"};
    ksv_table_init(&t, 10, h);
    for (size_t i = 0; i < list.n; i++) {
        ksv_model *m = &list.items[i];
        char ref[300];
        snprintf(ref, sizeof ref, "%s/%s", m->ns, m->name);
        ksv_model_view v;
        if (ksv_ctl_model_view(ctl, ref, NULL, &v, &err) != 0)
            continue;
        char split[256], nodes[256], revs[16], age[16], qps[32], p50[32], p99[32], errp[32];
        split_text(&v, split, sizeof split);
        nodes_text(m, nodes, sizeof nodes);
        snprintf(revs, sizeof revs, "%zu", v.revisions.n);
        format_age(m->created_at_ms, age, sizeof age);
        ksv_model_figures f;
        ksv_figures_model(&figs, m, &f);
        ksv_figures_format(&f, qps, p50, p99, errp, sizeof qps);
        if (cli->json) {
            json_object *o = json_object_new_object(), *tr = json_object_new_object();
            json_object_object_add(o, "namespace", json_object_new_string(m->ns));
            json_object_object_add(o, "name", json_object_new_string(m->name));
            json_object_object_add(o, "nodes", json_object_new_string(nodes));
            json_object_object_add(o, "revisions", json_object_new_int((int)v.revisions.n));
            for (size_t k = 0; k < v.traffic.n; k++)
                json_object_object_add(tr, v.traffic.items[k].revision_name,
                                       json_object_new_int(v.traffic.items[k].percent));
            json_object_object_add(o, "traffic", tr);
            ksv_figures_to_json(&f, o);
            json_object_array_add(arr, o);
        } else {
            const char *row[] = {m->ns, m->name, nodes, revs, split, qps, p50, p99, errp, age};
            ksv_table_add(&t, row);
        }
        ksv_model_view_free(&v);
    }
    if (cli->json)
        print_json(arr);
    else
        ksv_table_print(&t, stdout);
    ksv_table_free(&t);
    json_object_put(arr);
    ksv_figures_free(&figs);
    ksv_model_list_free(&list);
    ksv_ctl_close(ctl);
    return 0;
}

static json_object *view_json(const ksv_model_view *v)
{
    json_object *o = json_object_new_object(), *revs = json_object_new_array();
    json_object_object_add(o, "namespace", json_object_new_string(v->model.ns));
    json_object_object_add(o, "name", json_object_new_string(v->model.name));
    for (size_t i = 0; i < v->revisions.n; i++) {
        const ksv_revision *r = &v->revisions.items[i];
        json_object *ro = json_object_new_object();
        json_object_object_add(ro, "name", json_object_new_string(r->name));
        json_object_object_add(ro, "runtime", json_object_new_string(r->runtime));
        json_object_object_add(ro, "storage_uri", json_object_new_string(r->storage_uri));
        json_object_object_add(ro, "traffic", json_object_new_int(ksv_model_view_percent(v, r->id)));
        json_object_object_add(ro, "stable", json_object_new_boolean(r->id == v->stable_id));
        json_object_object_add(ro, "canary", json_object_new_boolean(r->id == v->canary_id));
        json_object_object_add(ro, "created_at_ms", json_object_new_int64(r->created_at_ms));
        json_object_object_add(ro, "spec_sha256", json_object_new_string(r->spec_sha256));
        json_object_array_add(revs, ro);
    }
    json_object_object_add(o, "revisions", revs);
    json_object *nodes = json_object_new_array();
    for (size_t i = 0; i < v->model.n_nodes; i++)
        json_object_array_add(nodes, json_object_new_string(v->model.nodes[i]));
    json_object_object_add(o, "nodes", nodes);
    return o;
}

static int print_revisions(ksv_cli *cli, const ksv_model_view *v)
{
    if (cli->json) {
        json_object *o = view_json(v);
        print_json(o);
        json_object_put(o);
        return 0;
    }
    ksv_table t;
    const char *h[] = {"REVISION", "TRAFFIC", "ROLE", "RUNTIME", "STORAGE", "CREATED"};
    ksv_table_init(&t, 6, h);
    for (size_t i = 0; i < v->revisions.n; i++) {
        const ksv_revision *r = &v->revisions.items[i];
        char pct[16], created[32];
        snprintf(pct, sizeof pct, "%d%%", ksv_model_view_percent(v, r->id));
        format_time(r->created_at_ms, created, sizeof created);
        const char *role = r->id == v->stable_id ? "stable" : r->id == v->canary_id ? "canary" : "";
        const char *row[] = {r->name, pct, role, r->runtime, r->storage_uri, created};
        ksv_table_add(&t, row);
    }
    ksv_table_print(&t, stdout);
    ksv_table_free(&t);
    return 0;
}

static int with_view(ksv_cli *cli, const char *model, int (*fn)(ksv_cli *, const ksv_model_view *))
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_model_view v;
    ksv_err err;
    if (ksv_ctl_model_view(ctl, model, cli->ns, &v, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    int code = fn(cli, &v);
    ksv_model_view_free(&v);
    ksv_ctl_close(ctl);
    return code;
}

int ksv_cmd_get(ksv_cli *cli, int argc, char **argv)
{
    if (argc == 1 && (strcmp(argv[0], "models") == 0 || strcmp(argv[0], "model") == 0 ||
                      strcmp(argv[0], "isvc") == 0))
        return get_models(cli);
    if (argc == 2 && (strcmp(argv[0], "revisions") == 0 || strcmp(argv[0], "revision") == 0))
        return with_view(cli, argv[1], print_revisions);
    return ksv_usage(cli, "expected `get models` or `get revisions MODEL`");
}

static int print_describe(ksv_cli *cli, const ksv_model_view *v)
{
    json_object *spec = json_tokener_parse(v->model.spec_json);
    if (cli->json) {
        json_object *o = view_json(v);
        json_object_object_add(o, "spec", spec);
        print_json(o);
        json_object_put(o);
        return 0;
    }
    char nodes[256], split[256];
    nodes_text(&v->model, nodes, sizeof nodes);
    split_text(v, split, sizeof split);
    printf("Name:       %s\nNamespace:  %s\nNodes:      %s\nTraffic:    %s\n\nRevisions:\n",
           v->model.name, v->model.ns, nodes, split[0] ? split : "-");
    print_revisions(cli, v);
    printf("\nSpec:\n%s\n", spec ? json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY |
                                                                      JSON_C_TO_STRING_NOSLASHESCAPE)
                                 : v->model.spec_json);
    json_object_put(spec);
    return 0;
}

int ksv_cmd_describe(ksv_cli *cli, int argc, char **argv)
{
    if (argc != 1)
        return ksv_usage(cli, "describe needs MODEL");
    return with_view(cli, argv[0], print_describe);
}

/* --------------------------------------------------------------------- rollout */

/* The revisions and their split, then the release gate on each node (if any). */
static int rollout_status(ksv_cli *cli, const char *model)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_model_view v;
    ksv_err err;
    if (ksv_ctl_model_view(ctl, model, cli->ns, &v, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    int code;
    if (cli->json) {
        json_object *o = view_json(&v);
        code = ksv_cli_gate_status(cli, ctl, model, o);
        if (code == 0)
            print_json(o);
        json_object_put(o);
    } else {
        code = print_revisions(cli, &v);
        if (code == 0)
            code = ksv_cli_gate_status(cli, ctl, model, NULL);
    }
    ksv_model_view_free(&v);
    ksv_ctl_close(ctl);
    return code;
}

/* pause | resume | abort | retry | promote of the engines' release gate. */
static int gate_action(ksv_cli *cli, ksv_ctl *ctl, const char *model, const char *action)
{
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_gate_action(ctl, model, cli->ns, action, &res, &err);
    int code = report_result(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    return code;
}

static int gate_command(ksv_cli *cli, const char *model, const char *action)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    int code = gate_action(cli, ctl, model, action);
    ksv_ctl_close(ctl);
    return code;
}

int ksv_cmd_rollout(ksv_cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return ksv_usage(cli, "rollout needs a subcommand and MODEL");
    const char *sub = argv[0];
    ksv_rollout_request req = {.model = argv[1], .ns = cli->ns, .timeout_s = cli->timeout_s};
    if (strcmp(sub, "status") == 0) {
        if (argc != 2)
            return ksv_usage(cli, "rollout status takes MODEL");
        return rollout_status(cli, argv[1]);
    } else if (strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0 ||
               strcmp(sub, "abort") == 0 || strcmp(sub, "retry") == 0) {
        if (argc != 2)
            return ksv_usage(cli, "rollout %s takes MODEL", sub);
        return gate_command(cli, argv[1], sub);
    } else if (strcmp(sub, "set-traffic") == 0) {
        if (argc != 3)
            return ksv_usage(cli, "rollout set-traffic takes MODEL PERCENT");
        char *end;
        long pct = strtol(argv[2], &end, 10);
        if (*end == '%')
            end++;
        if (*end || end == argv[2] || pct < 0 || pct > 100)
            return ksv_usage(cli, "PERCENT must be an integer 0..100, got %s", argv[2]);
        req.op = KSV_ROLLOUT_SET_TRAFFIC;
        req.percent = (int)pct;
    } else if (strcmp(sub, "promote") == 0) {
        if (argc != 2)
            return ksv_usage(cli, "rollout promote takes MODEL");
        req.op = KSV_ROLLOUT_PROMOTE;
    } else if (strcmp(sub, "rollback") == 0) {
        req.op = KSV_ROLLOUT_ROLLBACK;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
                req.to_revision = argv[++i];
            else
                return ksv_usage(cli, "unexpected argument %s", argv[i]);
        }
    } else {
        return ksv_usage(cli, "unknown rollout subcommand %s", sub);
    }
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    /* While an engine's gate rolls the model out, promote overrides the gate (recorded as
     * manual) and rollback aborts it: the gate owns the split until it ends. */
    if ((req.op == KSV_ROLLOUT_PROMOTE || (req.op == KSV_ROLLOUT_ROLLBACK && !req.to_revision)) &&
        ksv_cli_gate_active(cli, ctl, req.model, req.op == KSV_ROLLOUT_PROMOTE)) {
        int code = gate_action(cli, ctl, req.model,
                               req.op == KSV_ROLLOUT_PROMOTE ? "promote" : "abort");
        ksv_ctl_close(ctl);
        return code;
    }
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_rollout(ctl, &req, &res, &err);
    int code = report_result(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    ksv_ctl_close(ctl);
    return code;
}

/* ---------------------------------------------------------------- history etc. */

int ksv_cmd_history(ksv_cli *cli, int argc, char **argv)
{
    const char *model = NULL;
    size_t limit = 50;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1)
                return ksv_usage(cli, "--limit: expected a positive integer");
            limit = (size_t)n;
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            return ksv_usage(cli, "unexpected argument %s", argv[i]);
        }
    }
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    /* What the engines decided alone (release gates...) enters history first, once each. */
    ksv_err ierr;
    ksv_ctl_import_events(ctl, NULL, NULL, &ierr);
    char ref[300] = "";
    ksv_err err;
    if (model) {
        ksv_model m;
        if (ksv_ctl_model_resolve(ctl, model, cli->ns, &m, &err) == 0) {
            snprintf(ref, sizeof ref, "%s/%s", m.ns, m.name);
            ksv_model_clear(&m);
        } else if (strchr(model, '/')) {
            snprintf(ref, sizeof ref, "%s", model); /* deleted models keep their history */
        } else {
            snprintf(ref, sizeof ref, "%s/%s", cli->ns ? cli->ns : "default", model);
        }
    }
    ksv_history_list list;
    if (ksv_ctl_history_list(ctl, model ? ref : NULL, limit, &list, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < list.n; i++) {
            ksv_history_entry *e = &list.items[i];
            json_object *o = json_object_new_object();
            json_object_object_add(o, "id", json_object_new_int64(e->id));
            json_object_object_add(o, "at_ms", json_object_new_int64(e->at_ms));
            json_object_object_add(o, "actor", json_object_new_string(e->actor));
            json_object_object_add(o, "action", json_object_new_string(e->action));
            json_object_object_add(o, "model", e->model ? json_object_new_string(e->model) : NULL);
            json_object_object_add(o, "node", e->node ? json_object_new_string(e->node) : NULL);
            json_object_object_add(o, "old", e->old_value ? json_object_new_string(e->old_value) : NULL);
            json_object_object_add(o, "new", e->new_value ? json_object_new_string(e->new_value) : NULL);
            json_object_object_add(o, "result", json_object_new_string(e->result));
            json_object_object_add(o, "nodes", e->node_results_json
                                                   ? json_tokener_parse(e->node_results_json)
                                                   : NULL);
            json_object_array_add(arr, o);
        }
        print_json(arr);
        json_object_put(arr);
    } else {
        ksv_table t;
        const char *h[] = {"TIME", "ACTOR", "ACTION", "MODEL/NODE", "OLD", "NEW", "RESULT"};
        ksv_table_init(&t, 7, h);
        for (size_t i = 0; i < list.n; i++) {
            ksv_history_entry *e = &list.items[i];
            char at[32];
            format_time(e->at_ms, at, sizeof at);
            const char *row[] = {at, e->actor, e->action, e->model ? e->model : e->node,
                                 e->old_value, e->new_value, e->result};
            ksv_table_add(&t, row);
        }
        ksv_table_print(&t, stdout);
        ksv_table_free(&t);
    }
    ksv_history_list_free(&list);
    ksv_ctl_close(ctl);
    return 0;
}

int ksv_cmd_delete(ksv_cli *cli, int argc, char **argv)
{
    if (argc != 1)
        return ksv_usage(cli, "delete needs MODEL");
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_delete(ctl, argv[0], cli->ns, cli->timeout_s, &res, &err);
    int code = report_result(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    ksv_ctl_close(ctl);
    return code;
}

int ksv_cmd_reconcile(ksv_cli *cli, int argc, char **argv)
{
    if (argc > 1)
        return ksv_usage(cli, "reconcile takes at most one MODEL");
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_ctl_reconcile(ctl, argc ? argv[0] : NULL, cli->ns, cli->timeout_s, &res, &err);
    snprintf(res.summary, sizeof res.summary, "reconciled %s", argc ? argv[0] : "every model");
    int code = report_result(cli, &res, rc, &err);
    ksv_ctl_result_free(&res);
    ksv_ctl_close(ctl);
    return code;
}

int ksv_cmd_top(ksv_cli *cli, int argc, char **argv)
{
    (void)cli;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash + 1, "ksv-top");
            if (access(self, X_OK) == 0) {
                argv[-1] = self;
                execv(self, argv - 1);
            }
        }
    }
    char *args[64] = {(char *)"ksv-top"};
    for (int i = 0; i < argc && i < 62; i++)
        args[i + 1] = argv[i];
    execvp("ksv-top", args);
    return ksv_fail("ksv-top is not installed in this build yet");
}
