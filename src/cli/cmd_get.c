/* cmd_get.c: `ksv get models | revisions MODEL`, and the model views that describe and
 * rollout status print the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/listing.h"
#include "common/uri_redact.h"

void ksv_cli_split_text(const ksv_model_view *v, char *out, size_t cap)
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

void ksv_cli_nodes_text(const ksv_model_record *m, char *out, size_t cap)
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

/* ---- get models ---- */

/* One listed model: its view and figures, gathered before printing. */
typedef struct model_row {
    const ksv_model_record *m;
    ksv_model_view v;
    ksv_model_figures f;
    char nodes[256];
    char qps[32], p50[32], p99[32], errp[32];
} model_row;

static const char *revisions_text(const void *row, char *buf, size_t cap)
{
    snprintf(buf, cap, "%zu", ((const model_row *)row)->v.revisions.n);
    return buf;
}

static void revisions_json(const void *row, const char *key, json_object *o)
{
    json_object_object_add(o, key, json_object_new_int((int)((const model_row *)row)->v.revisions.n));
}

static const char *traffic_text(const void *row, char *buf, size_t cap)
{
    ksv_cli_split_text(&((const model_row *)row)->v, buf, cap);
    return buf;
}

static void traffic_json(const void *row, const char *key, json_object *o)
{
    const ksv_model_view *v = &((const model_row *)row)->v;
    json_object *tr = json_object_new_object();
    for (size_t k = 0; k < v->traffic.n; k++)
        json_object_object_add(tr, v->traffic.items[k].revision_name,
                               json_object_new_int(v->traffic.items[k].percent));
    json_object_object_add(o, key, tr);
}

static void figures_json(const void *row, const char *key, json_object *o)
{
    ksv_figures_to_json(&((const model_row *)row)->f, o);
}

static const char *age_text(const void *row, char *buf, size_t cap)
{
    ksv_cli_format_age(((const model_row *)row)->m->created_at_ms, buf, cap);
    return buf;
}

static const char *ns_text(const void *row, char *buf, size_t cap)
{
    return ((const model_row *)row)->m->ns;
}

static const char *name_text(const void *row, char *buf, size_t cap)
{
    return ((const model_row *)row)->m->name;
}

static void ns_json(const void *row, const char *key, json_object *o)
{
    json_object_object_add(o, key, json_object_new_string(ns_text(row, NULL, 0)));
}

static void name_json(const void *row, const char *key, json_object *o)
{
    json_object_object_add(o, key, json_object_new_string(name_text(row, NULL, 0)));
}

static const ksv_column model_columns[] = {
    KSV_COL_FN("NAMESPACE", "namespace", ns_text, ns_json),
    KSV_COL_FN("NAME", "name", name_text, name_json),
    KSV_COL_CHARS("NODES", "nodes", model_row, nodes),
    KSV_COL_FN("REVISIONS", "revisions", revisions_text, revisions_json),
    KSV_COL_FN("TRAFFIC", "traffic", traffic_text, traffic_json),
    KSV_COL_FN(NULL, "figures", NULL, figures_json),
    KSV_COL_CHARS("QPS", NULL, model_row, qps),
    KSV_COL_CHARS("P50", NULL, model_row, p50),
    KSV_COL_CHARS("P99", NULL, model_row, p99),
    KSV_COL_CHARS("ERR%", NULL, model_row, errp),
    KSV_COL_FN("AGE", NULL, age_text, NULL),
};

static int get_models(ksv_cli *cli, const ksv_args *a)
{
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_model_record_list list;
    ksv_err err;
    if (ksv_ctl_model_list(ctl, cli->ns, &list, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    ksv_figures figs;
    ksv_figures_collect(ctl, &figs);
    model_row *rows = calloc(list.n ? list.n : 1, sizeof *rows);
    size_t n = 0;
    for (size_t i = 0; rows && i < list.n; i++) {
        model_row *r = &rows[n];
        r->m = &list.items[i];
        char ref[300];
        snprintf(ref, sizeof ref, "%s/%s", r->m->ns, r->m->name);
        if (ksv_ctl_model_view(ctl, ref, NULL, &r->v, &err) != 0)
            continue; /* deleted since it was listed */
        ksv_cli_nodes_text(r->m, r->nodes, sizeof r->nodes);
        ksv_figures_model(&figs, r->m, &r->f);
        ksv_figures_format(&r->f, r->qps, r->p50, r->p99, r->errp, sizeof r->qps);
        n++;
    }
    int code = rows ? 0 : ksv_fail("out of memory");
    if (rows)
        ksv_listing_print(cli, model_columns, sizeof model_columns / sizeof *model_columns, rows,
                          n, sizeof *rows);
    for (size_t i = 0; i < n; i++)
        ksv_model_view_free(&rows[i].v);
    free(rows);
    ksv_figures_free(&figs);
    ksv_model_record_list_free(&list);
    ksv_ctl_close(ctl);
    return code;
}

/* ---- revisions (get revisions, rollout status, describe) ---- */

typedef struct revision_row {
    const ksv_model_view *v;
    const ksv_revision_record *r;
} revision_row;

static const char *rev_name_text(const void *row, char *buf, size_t cap)
{
    return ((const revision_row *)row)->r->name;
}

static const char *rev_traffic_text(const void *row, char *buf, size_t cap)
{
    const revision_row *rr = row;
    snprintf(buf, cap, "%d%%", ksv_model_view_percent(rr->v, rr->r->id));
    return buf;
}

static const char *rev_role_text(const void *row, char *buf, size_t cap)
{
    const revision_row *rr = row;
    return rr->r->id == rr->v->stable_id ? "stable" : rr->r->id == rr->v->canary_id ? "canary" : "";
}

static const char *rev_runtime_text(const void *row, char *buf, size_t cap)
{
    return ((const revision_row *)row)->r->runtime;
}

/* The display form: a presigned URL's signature or a password stays in the database. */
static const char *rev_storage_text(const void *row, char *buf, size_t cap)
{
    ksv_uri_redact(buf, cap, ((const revision_row *)row)->r->storage_uri);
    return buf;
}

static const char *rev_created_text(const void *row, char *buf, size_t cap)
{
    ksv_cli_format_time(((const revision_row *)row)->r->created_at_ms, buf, cap);
    return buf;
}

static void rev_json(const void *row, const char *key, json_object *o)
{
    const revision_row *rr = row;
    const ksv_revision_record *r = rr->r;
    json_object *v;
    if (strcmp(key, "name") == 0)
        v = json_object_new_string(r->name);
    else if (strcmp(key, "runtime") == 0)
        v = json_object_new_string(r->runtime);
    else if (strcmp(key, "storage_uri") == 0) {
        char shown[KSV_URI_SHOWN_MAX];
        ksv_uri_redact(shown, sizeof shown, r->storage_uri);
        v = json_object_new_string(shown);
    }
    else if (strcmp(key, "traffic") == 0)
        v = json_object_new_int(ksv_model_view_percent(rr->v, r->id));
    else if (strcmp(key, "stable") == 0)
        v = json_object_new_boolean(r->id == rr->v->stable_id);
    else if (strcmp(key, "canary") == 0)
        v = json_object_new_boolean(r->id == rr->v->canary_id);
    else if (strcmp(key, "created_at_ms") == 0)
        v = json_object_new_int64(r->created_at_ms);
    else
        v = json_object_new_string(r->spec_sha256);
    json_object_object_add(o, key, v);
}

static const ksv_column revision_columns[] = {
    KSV_COL_FN("REVISION", "name", rev_name_text, rev_json),
    KSV_COL_FN("TRAFFIC", NULL, rev_traffic_text, NULL),
    KSV_COL_FN("ROLE", NULL, rev_role_text, NULL),
    KSV_COL_FN("RUNTIME", "runtime", rev_runtime_text, rev_json),
    KSV_COL_FN("STORAGE", "storage_uri", rev_storage_text, rev_json),
    KSV_COL_FN(NULL, "traffic", NULL, rev_json),
    KSV_COL_FN(NULL, "stable", NULL, rev_json),
    KSV_COL_FN(NULL, "canary", NULL, rev_json),
    KSV_COL_FN("CREATED", "created_at_ms", rev_created_text, rev_json),
    KSV_COL_FN(NULL, "spec_sha256", NULL, rev_json),
};

static revision_row *revision_rows(const ksv_model_view *v)
{
    revision_row *rows = calloc(v->revisions.n ? v->revisions.n : 1, sizeof *rows);
    for (size_t i = 0; rows && i < v->revisions.n; i++)
        rows[i] = (revision_row){v, &v->revisions.items[i]};
    return rows;
}

json_object *ksv_cli_view_json(const ksv_model_view *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "namespace", json_object_new_string(v->model.ns));
    json_object_object_add(o, "name", json_object_new_string(v->model.name));
    revision_row *rows = revision_rows(v);
    json_object_object_add(o, "revisions",
                           ksv_listing_json(revision_columns,
                                            sizeof revision_columns / sizeof *revision_columns,
                                            rows, rows ? v->revisions.n : 0, sizeof *rows));
    free(rows);
    json_object *nodes = json_object_new_array();
    for (size_t i = 0; i < v->model.n_nodes; i++)
        json_object_array_add(nodes, json_object_new_string(v->model.nodes[i]));
    json_object_object_add(o, "nodes", nodes);
    return o;
}

int ksv_cli_print_revisions(ksv_cli *cli, const ksv_model_view *v)
{
    if (cli->json) {
        json_object *o = ksv_cli_view_json(v);
        ksv_cli_print_json(o);
        json_object_put(o);
        return 0;
    }
    revision_row *rows = revision_rows(v);
    if (!rows)
        return ksv_fail("out of memory");
    ksv_listing_table(revision_columns, sizeof revision_columns / sizeof *revision_columns, rows,
                      v->revisions.n, sizeof *rows);
    free(rows);
    return 0;
}

int ksv_cli_with_view(ksv_cli *cli, const char *model, ksv_cli_view_fn fn)
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
    int code = fn(cli, ctl, model, &v);
    ksv_model_view_free(&v);
    ksv_ctl_close(ctl);
    return code;
}

static int print_revisions(ksv_cli *cli, ksv_ctl *ctl, const char *model,
                           const ksv_model_view *v)
{
    (void)ctl;
    (void)model;
    return ksv_cli_print_revisions(cli, v);
}

static int get_revisions(ksv_cli *cli, const ksv_args *a)
{
    return ksv_cli_with_view(cli, ksv_args_pos(a, 0), print_revisions);
}

#define GET_USAGE "expected `get models`, `get revisions MODEL`, `get nodes` or `get quota`"

static const ksv_cmd_entry get_entries[] = {
    {.name = "models", .aliases = {"model", "isvc"}, .max_args = 0, .too_many = GET_USAGE,
     .exec = get_models},
    {.name = "revisions", .aliases = {"revision"}, .min_args = 1, .max_args = 1,
     .too_few = GET_USAGE, .too_many = GET_USAGE, .exec = get_revisions},
    {.name = "nodes", .aliases = {"node"}, .opts = ksv_cli_node_ls_opts, .max_args = 0,
     .too_many = GET_USAGE, .named_option_errors = true, .exec = ksv_cli_node_ls},
    {.name = "quota", .aliases = {"quotas", "resourcequota"}, .max_args = 0,
     .too_many = GET_USAGE, .exec = ksv_cli_get_quota},
    {0},
};

const ksv_cmd_group ksv_cmd_group_get = {
    .name = "get",
    .usage = "get models | get revisions MODEL | get nodes [--show-labels] [-l SELECTOR] | "
             "get quota [-n NS]",
    .min_words = 1,
    .missing = GET_USAGE,
    .unknown = GET_USAGE,
    .entries = get_entries,
};
