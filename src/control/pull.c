/* pull.c: `ksv pull`: models fetched into the nodes' caches ahead of a rollout or a cold
 * start (control.h, ksv_ctl_pull). Each node's engine fetches on its own fetch threads
 * (POST /ksv/v1/pulls); ksv asks all of them first, then follows every pull's progress
 * (GET /ksv/v1/pulls) on one thread until each has ended or the deadline passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "common/sanitize.h"
#include "common/uri_redact.h"
#include "control/control_internal.h"

#define POLL_MS 500
#define DEFAULT_TIMEOUT_S 3600.0

typedef struct pull_target {
    char node[64];
    char model[320];              /* NAMESPACE/NAME */
    char uri[2100];
    char sha256[65];
    long long id;                 /* the engine's pull id; 0: not started there */
    bool operator_side;           /* ksv.io/fetch: operator: an SSH node gets it by SFTP */
    bool finished;
} pull_target;

typedef struct pull_plan {
    pull_target *v;
    size_t n, cap;
} pull_plan;

static bool remote_uri(const char *uri)
{
    return strstr(uri, "://") && strncmp(uri, "file://", 7) != 0;
}

static int plan_add(pull_plan *p, const char *node, const char *model, const char *uri,
                    const char *sha256, bool operator_side, ksv_err *err)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].node, node) == 0 && strcmp(p->v[i].uri, uri) == 0 &&
            strcmp(p->v[i].sha256, sha256) == 0)
            return 0;
    if (strlen(uri) >= sizeof p->v[0].uri)
        return ksv_err_set(err, 400, "%s: storage URI too long", model);
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        pull_target *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return ksv_err_set(err, 500, "out of memory");
        p->v = v;
        p->cap = cap;
    }
    pull_target *t = &p->v[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->node, sizeof t->node, "%s", node);
    snprintf(t->model, sizeof t->model, "%s", model);
    snprintf(t->uri, sizeof t->uri, "%s", uri);
    snprintf(t->sha256, sizeof t->sha256, "%s", sha256 ? sha256 : "");
    t->operator_side = operator_side;
    return 0;
}

/* -f FILE: each InferenceService's URI on the nodes an apply would place it on. */
static int plan_manifests(ksv_ctl *ctl, const ksv_pull_request *req, pull_plan *p, ksv_err *err)
{
    ksv_apply_options o = {.nodes = req->nodes, .n_nodes = req->n_nodes,
                           .selector = req->selector};
    for (size_t i = 0; i < req->list->n; i++) {
        const ksv_isvc *spec = &req->list->items[i];
        if (!remote_uri(spec->storage_uri))
            continue;
        char **nodes = NULL;
        size_t n = 0;
        if (ctl_placement(ctl, spec, &o, &nodes, &n, err) != 0)
            return -1;
        char model[320];
        snprintf(model, sizeof model, "%s/%s", spec->namespace_name, spec->name);
        int rc = 0;
        for (size_t k = 0; k < n; k++) {
            if (rc == 0)
                rc = plan_add(p, nodes[k], model, spec->storage_uri, spec->sha256,
                              spec->fetch_on_operator, err);
            free(nodes[k]);
        }
        free(nodes);
        if (rc != 0)
            return -1;
    }
    return 0;
}

void ctl_revision_sha256(const char *spec_json, char out[65])
{
    out[0] = '\0';
    json_object *root = spec_json ? json_tokener_parse(spec_json) : NULL, *v;
    if (root && json_object_object_get_ex(root, "sha256", &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 64)
        memcpy(out, json_object_get_string(v), 65);
    json_object_put(root);
}

/* MODEL: its revisions that serve or may serve next, on its nodes (or those asked for). */
static int plan_model(ksv_ctl *ctl, const ksv_pull_request *req, pull_plan *p, ksv_err *err)
{
    ksv_model_view v;
    if (ksv_ctl_model_view(ctl, req->model, req->ns, &v, err) != 0)
        return -1;
    char **chosen = NULL;
    size_t n_chosen = 0;
    int rc = 0;
    if (!req->n_nodes && req->selector)
        rc = ksv_ctl_nodes_selected(ctl, req->selector, &chosen, &n_chosen, err);
    const char *const *nodes = req->n_nodes ? req->nodes
                               : chosen     ? (const char *const *)chosen
                                            : (const char *const *)v.model.nodes;
    size_t n_nodes = req->n_nodes ? req->n_nodes : chosen ? n_chosen : v.model.n_nodes;
    if (rc == 0 && n_nodes == 0)
        rc = ksv_err_set(err, 400, "%s: placed on no node; name one with --node", req->model);
    for (size_t k = 0; rc == 0 && k < n_nodes; k++) {
        ksv_node probe;
        if (ksv_store_node_get(ctl->store, nodes[k], &probe, err) != 0) {
            rc = ksv_err_set(err, 404, "node %s is not registered (ksv node ls)", nodes[k]);
            break;
        }
        ksv_node_clear(&probe);
    }
    char model[320];
    snprintf(model, sizeof model, "%s/%s", v.model.ns, v.model.name);
    bool operator_side = ctl_fetch_on_operator(&v.model);
    for (size_t r = 0; rc == 0 && r < v.revisions.n; r++) {
        const ksv_revision_record *rev = &v.revisions.items[r];
        bool wanted = ksv_model_view_percent(&v, rev->id) > 0 || rev->id == v.stable_id ||
                      rev->id == v.canary_id;
        if (!wanted || !rev->storage_uri || !remote_uri(rev->storage_uri))
            continue;
        char sha[65];
        ctl_revision_sha256(rev->spec_json, sha);
        for (size_t k = 0; rc == 0 && k < n_nodes; k++)
            rc = plan_add(p, nodes[k], model, rev->storage_uri, sha, operator_side, err);
    }
    for (size_t k = 0; k < n_chosen; k++)
        free(chosen[k]);
    free(chosen);
    ksv_model_view_free(&v);
    return rc;
}

/* The engine's error without its "storage URI: " lead: the line names the URI already
 * (the engine names it by its display form). */
static const char *engine_error(const char *msg, const char *real_uri)
{
    if (!msg)
        return "failed";
    char uri[KSV_URI_SHOWN_MAX];
    size_t n = ksv_uri_redact(uri, sizeof uri, real_uri);
    if (strncmp(msg, "storage ", 8) == 0 && strncmp(msg + 8, uri, n) == 0 &&
        strncmp(msg + 8 + n, ": ", 2) == 0)
        return msg + 10 + n;
    return msg;
}

/* A pull's line as the engine last reported it (progress: its "progress" object). */
static ksv_pull_report report_of(const pull_target *t, const char *state, json_object *progress,
                                 const char *error)
{
    ksv_pull_report r = {.node = t->node, .model = t->model, .uri = t->uri, .state = state,
                         .total = -1, .error = error ? error : ""};
    json_object *v;
    if (progress && json_object_object_get_ex(progress, "bytes", &v))
        r.bytes = json_object_get_int64(v);
    if (progress && json_object_object_get_ex(progress, "total", &v))
        r.total = json_object_get_int64(v);
    if (progress && json_object_object_get_ex(progress, "bytes_per_s", &v))
        r.bytes_per_s = json_object_get_double(v);
    if (progress && json_object_object_get_ex(progress, "seconds", &v))
        r.seconds = json_object_get_double(v);
    return r;
}

static void report(const ksv_pull_request *req, const pull_target *t, const char *state,
                   json_object *progress, const char *error)
{
    ksv_pull_report r = report_of(t, state, progress, error);
    if (req->progress)
        req->progress(&r, req->user);
}

static void settle(ksv_ctl_result *res, const ksv_pull_request *req, pull_target *t, bool ok,
                   const char *state, json_object *progress, const char *error)
{
    t->finished = true;
    report(req, t, state, progress, error);
    ksv_pull_report r = report_of(t, state, progress, error);
    char line[600];
    ksv_ctl_format_pull(&r, line, sizeof line);
    ctl_result_add(res, t->node, ok, ctl_skip_node_prefix(line, t->node));
}

/* An SSH node's pulls marked ksv.io/fetch: operator: fetched here and sent by SFTP as the
 * node connects (conn); they are settled here, the others go on as the engine's pulls. */
static bool send_from_here(ksv_ctl *ctl, const ksv_pull_request *req, pull_plan *p,
                           const ksv_node *node, ctl_node_conn *conn, ksv_ctl_result *res,
                           ksv_err *err)
{
    size_t n = 0;
    ctl_upload *uploads = calloc(p->n, sizeof *uploads);
    size_t *which = calloc(p->n, sizeof *which);
    double started = ksv_mono_ms();
    for (size_t i = 0; uploads && which && i < p->n; i++) {
        pull_target *t = &p->v[i];
        if (strcmp(t->node, node->name) != 0 || t->finished || !t->operator_side)
            continue;
        ksv_err ferr;
        snprintf(uploads[n].local, sizeof uploads[n].local, "%s", t->uri);
        if (ctl_operator_fetch(ctl, t->uri, t->sha256, uploads[n].fetched,
                               sizeof uploads[n].fetched, &ferr) == 0)
            which[n++] = i;
        else
            settle(res, req, t, false, "failed", NULL, ferr.msg);
    }
    bool ok = uploads && which &&
              ctl_node_connect_uploading(ctl, node, uploads, n, conn, err) == 0;
    if (!uploads || !which)
        ksv_err_set(err, 500, "out of memory");
    double seconds = (ksv_mono_ms() - started) / 1000;
    for (size_t k = 0; ok && k < n; k++) {
        struct stat st;
        long long bytes = stat(uploads[k].fetched, &st) == 0 ? (long long)st.st_size : 0;
        json_object *progress = json_object_new_object();
        json_object_object_add(progress, "bytes", json_object_new_int64(bytes));
        json_object_object_add(progress, "total", json_object_new_int64(bytes));
        json_object_object_add(progress, "seconds", json_object_new_double(seconds));
        json_object_object_add(progress, "bytes_per_s",
                               json_object_new_double(seconds > 0 ? bytes / seconds : 0));
        settle(res, req, &p->v[which[k]], true, "done", progress, NULL);
        json_object_put(progress);
    }
    free(uploads);
    free(which);
    return ok;
}

/* Starts the node's pulls; false (each settled as failed) when the node cannot be asked. */
static bool start_node(ksv_ctl *ctl, const ksv_pull_request *req, pull_plan *p,
                       const char *node, ctl_node_conn *conn, ksv_ctl_result *res)
{
    ksv_node stored;
    ksv_err err;
    bool have = ksv_store_node_get(ctl->store, node, &stored, &err) == 0, ok = false;
    if (have && stored.kind == KSV_NODE_SSH)
        ok = send_from_here(ctl, req, p, &stored, conn, res, &err);
    else if (have)
        ok = ctl_node_connect(ctl, &stored, conn, &err) == 0;
    if (have)
        ksv_node_clear(&stored);
    for (size_t i = 0; i < p->n; i++) {
        pull_target *t = &p->v[i];
        if (strcmp(t->node, node) != 0 || t->finished)
            continue;
        if (!ok) {
            settle(res, req, t, false, "failed", NULL, ctl_skip_node_prefix(err.msg, node));
            continue;
        }
        ksv_sb body;
        ksv_sb_init(&body);
        ksv_sb_puts(&body, "{\"storage_uri\":");
        ksv_sb_json_str(&body, t->uri);
        ksv_sb_puts(&body, ",\"model\":");
        ksv_sb_json_str(&body, t->model);
        if (t->sha256[0]) {
            ksv_sb_puts(&body, ",\"sha256\":");
            ksv_sb_json_str(&body, t->sha256);
        }
        ksv_sb_putc(&body, '}');
        json_object *answer = NULL, *v;
        ksv_err perr;
        int rc = body.oom ? ksv_err_set(&perr, 500, "out of memory")
                          : ksv_engine_client_call_json(conn->client, "POST", "/ksv/v1/pulls",
                                                        body.data, &answer, &perr);
        ksv_sb_free(&body);
        if (rc == 0 && json_object_object_get_ex(answer, "id", &v))
            t->id = json_object_get_int64(v);
        else if (rc == 0)
            ksv_err_set(&perr, 502, "bad reply from engine: a pull without an id");
        json_object_put(answer);
        if (t->id <= 0)
            settle(res, req, t, false, "failed", NULL, perr.msg);
    }
    return ok;
}

/* One look at the node's pulls: reports each of ours, settles those that ended. */
static void poll_node(const ksv_pull_request *req, pull_plan *p, const char *node,
                      ctl_node_conn *conn, ksv_ctl_result *res)
{
    json_object *answer = NULL, *list;
    ksv_err err;
    if (ksv_engine_client_call_json(conn->client, "GET", "/ksv/v1/pulls", NULL, &answer,
                                    &err) != 0 ||
        !json_object_object_get_ex(answer, "pulls", &list) ||
        !json_object_is_type(list, json_type_array)) {
        if (answer)
            ksv_err_set(&err, 502, "bad reply from engine: no pulls list");
        for (size_t i = 0; i < p->n; i++)
            if (strcmp(p->v[i].node, node) == 0 && !p->v[i].finished)
                settle(res, req, &p->v[i], false, "failed", NULL,
                       ctl_skip_node_prefix(err.msg, node));
        json_object_put(answer);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        pull_target *t = &p->v[i];
        if (strcmp(t->node, node) != 0 || t->finished)
            continue;
        json_object *mine = NULL, *v;
        for (size_t k = 0; k < json_object_array_length(list) && !mine; k++) {
            json_object *e = json_object_array_get_idx(list, k);
            if (json_object_object_get_ex(e, "id", &v) && json_object_get_int64(v) == t->id)
                mine = e;
        }
        if (!mine) {
            settle(res, req, t, false, "failed", NULL,
                   "the engine no longer lists this pull (restarted?)");
            continue;
        }
        json_object *progress = json_object_object_get(mine, "progress");
        const char *state = json_object_get_string(json_object_object_get(mine, "state"));
        state = state ? state : "";
        if (strcmp(state, "done") == 0)
            settle(res, req, t, true, "done", progress, NULL);
        else if (strcmp(state, "failed") == 0)
            settle(res, req, t, false, "failed", progress,
                   engine_error(json_object_get_string(json_object_object_get(mine, "error")),
                                t->uri));
        else
            report(req, t, state, progress, NULL);
    }
    json_object_put(answer);
}

int ksv_ctl_pull(ksv_ctl *ctl, const ksv_pull_request *req, ksv_ctl_result *res, ksv_err *err)
{
    pull_plan p = {0};
    int rc = req->list ? plan_manifests(ctl, req, &p, err) : plan_model(ctl, req, &p, err);
    if (rc == 0 && p.n == 0)
        rc = ksv_err_set(err, 400, "nothing to pull: no s3://, gs://, hf:// or http(s):// "
                                   "storage URI (a local path is read where it is, or sent "
                                   "to an SSH node at apply)");
    if (rc != 0) {
        free(p.v);
        return -1;
    }
    /* The distinct nodes, in the order first named. */
    size_t n_nodes = 0;
    ctl_node_conn *conns = calloc(p.n, sizeof *conns);
    bool *up = calloc(p.n, sizeof *up);
    if (!conns || !up) {
        free(conns), free(up), free(p.v);
        return ksv_err_set(err, 500, "out of memory");
    }
    double deadline = ksv_mono_ms() + 1000 * (req->timeout_s > 0 ? req->timeout_s
                                                                  : DEFAULT_TIMEOUT_S);
    for (size_t i = 0; i < p.n; i++) {
        bool seen = false;
        for (size_t k = 0; k < n_nodes && !seen; k++)
            seen = strcmp(conns[k].name, p.v[i].node) == 0;
        if (seen)
            continue;
        snprintf(conns[n_nodes].name, sizeof conns[n_nodes].name, "%s", p.v[i].node);
        up[n_nodes] = start_node(ctl, req, &p, p.v[i].node, &conns[n_nodes], res);
        n_nodes++;
    }
    for (;;) {
        size_t open = 0;
        for (size_t i = 0; i < p.n; i++)
            open += !p.v[i].finished;
        if (open == 0)
            break;
        if (ksv_mono_ms() > deadline) {
            for (size_t i = 0; i < p.n; i++)
                if (!p.v[i].finished)
                    settle(res, req, &p.v[i], false, "failed", NULL,
                           "still pulling at the deadline (--timeout); the node goes on");
            break;
        }
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        for (size_t k = 0; k < n_nodes; k++)
            if (up[k])
                poll_node(req, &p, conns[k].name, &conns[k], res);
    }
    for (size_t k = 0; k < n_nodes; k++)
        if (up[k])
            ctl_node_disconnect(&conns[k]);
    size_t ok = 0;
    for (size_t i = 0; i < res->n; i++)
        ok += res->nodes[i].ok;
    snprintf(res->summary, sizeof res->summary, "pulled %zu of %zu model cop%s onto %zu node%s",
             ok, p.n, p.n == 1 ? "y" : "ies", n_nodes, n_nodes == 1 ? "" : "s");
    free(conns);
    free(up);
    size_t planned = p.n;
    free(p.v);
    if (ok < planned)
        return ksv_err_set(err, 503, "%zu of %zu pulls failed", planned - ok, planned);
    return 0;
}

void ksv_ctl_format_pull(const ksv_pull_report *r, char *out, size_t cap)
{
    double mb = (double)r->bytes / 1e6, rate = r->bytes_per_s / 1e6;
    char uri[KSV_URI_SHOWN_MAX]; /* a presigned URL's signature stays off the terminal */
    ksv_uri_redact(uri, sizeof uri, r->uri);
    if (strcmp(r->state, "done") == 0)
        snprintf(out, cap, "node %s: %s: pulled %.1f MB in %.1f s (%.1f MB/s)", r->node, uri,
                 mb, r->seconds, rate);
    else if (strcmp(r->state, "failed") == 0)
        snprintf(out, cap, "node %s: %s: failed: %s", r->node, uri, r->error);
    else if (strcmp(r->state, "queued") == 0)
        snprintf(out, cap, "node %s: %s: queued", r->node, uri);
    else if (r->total >= 0)
        snprintf(out, cap, "node %s: %s: %.1f/%.1f MB (%.1f MB/s)", r->node, uri, mb,
                 (double)r->total / 1e6, rate);
    else
        snprintf(out, cap, "node %s: %s: %.1f MB (%.1f MB/s)", r->node, uri, mb, rate);
    ksv_sanitize(out); /* the URI comes from a manifest, the error from a node */
}
