/* push.c: sends models' desired state to their nodes in parallel and waits, within one
 * deadline, for each node to say the change is in effect (control_internal.h, ctl_push).
 *
 * One job per node, not per (model, node): a node's models go over one connection, the
 * PUTs first (the engine loads them side by side) and then one GET /ksv/v1/state per
 * poll for all of them. A node that does not answer a request is not asked again in this
 * round, so a hung node costs one node timeout however many models it holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "control/control_internal.h"

/* The re-check of a node that gave no answer: short, so a stopped engine costs little. */
#define RECHECK_TIMEOUT_MS 2000L

typedef enum { PUSH_PENDING, PUSH_OK, PUSH_FAILED, PUSH_UNCONFIRMED } push_state;

typedef struct push_outcome {
    push_state state;
    char message[512];
} push_outcome;

typedef struct push_node {
    char name[64];
    ksv_node node;
    bool have_node;
    size_t *models;               /* indexes into the push's models */
    size_t n_models;
    push_outcome *out;            /* one per entry of models */
    ctl_node_conn conn;           /* kept open from the push to the re-check */
    bool connected;
} push_node;

typedef struct push_ctx {
    ksv_ctl *ctl;
    ctl_push_model *models;
    size_t n_models;
    char **bodies;                /* per model: its PUT body (NULL: removed, or err) */
    char **body_errors;           /* per model: why it has no body */
    push_node *nodes;
    size_t n_nodes;
    double deadline_ms;           /* monotonic */
    ctl_upload *fetched;          /* store URIs fetched here for SSH nodes (ksv.io/fetch:
                                   * operator): local is the URI, fetched the file */
    size_t n_fetched;
} push_ctx;

static void set_outcome(push_outcome *o, push_state state, const char *node, const char *msg)
{
    o->state = state;
    snprintf(o->message, sizeof o->message, "%s", ctl_skip_node_prefix(msg ? msg : "", node));
}

/* The request was sent and no answer came in time (504 from the HTTP client): the engine
 * may still act on it. A refused or timed-out connection (503), by contrast, delivered
 * nothing. */
static bool sent_without_answer(const ksv_err *e)
{
    return e->status == 504;
}

static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* Local model files the node's models name: an SSH node gets copies first. */
static size_t node_uploads(const push_ctx *ctx, const push_node *pn, ctl_upload **out)
{
    size_t cap = 0, n = 0;
    for (size_t k = 0; k < pn->n_models; k++)
        cap += ctx->models[pn->models[k]].view->revisions.n;
    *out = calloc(cap ? cap : 1, sizeof **out);
    for (size_t k = 0; *out && k < pn->n_models; k++) {
        const ctl_push_model *m = &ctx->models[pn->models[k]];
        if (m->remove)
            continue;
        for (size_t r = 0; r < m->view->revisions.n; r++) {
            const char *stored = m->view->revisions.items[r].storage_uri;
            const char *uri = strncmp(stored, "file://", 7) == 0 ? stored + 7 : stored;
            const ctl_upload *here = NULL;
            for (size_t j = 0; j < ctx->n_fetched && !here; j++)
                if (strcmp(ctx->fetched[j].local, stored) == 0)
                    here = &ctx->fetched[j];
            if (uri[0] != '/' && !here)
                continue;
            bool seen = false;
            for (size_t j = 0; j < n && !seen; j++)
                seen = strcmp((*out)[j].local, stored) == 0;
            if (!seen && here)
                (*out)[n++] = *here;
            else if (!seen)
                snprintf((*out)[n++].local, sizeof (*out)[n].local, "%s", stored);
        }
    }
    return *out ? n : 0;
}

/* Whether the engine's state of the model shows this push's desired split: each revision
 * the view gives traffic is asked for with that percent (a PUT that never arrived leaves
 * the engine's older split, which may be applied too). */
static bool shows_desired(const ksv_engine_model_status *s, const ksv_model_view *v)
{
    if (s->gated)
        return true; /* the engine's release gate owns the split while it rolls out */
    for (size_t i = 0; i < v->revisions.n; i++) {
        int want = ksv_model_view_percent(v, v->revisions.items[i].id);
        if (want == 0)
            continue;
        bool found = false;
        for (size_t r = 0; r < s->n_revisions && !found; r++)
            found = strcmp(s->revisions[r].name, v->revisions.items[i].name) == 0 &&
                    s->revisions[r].desired_traffic == want;
        if (!found)
            return false;
    }
    return true;
}

/* Reads the node's state once and settles every pending model it can. Returns false when
 * the node gave no answer. final: the deadline has passed, so what is still pending is
 * settled as unconfirmed with what the engine says it is waiting for. */
static bool check_state(push_ctx *ctx, push_node *pn, bool final)
{
    json_object *root = NULL, *arr = NULL;
    ksv_err err;
    if (ksv_engine_client_get_state(pn->conn.client, &root, &err) != 0) {
        bool no_answer = ksv_engine_client_no_answer(&err);
        char msg[512];
        /* The change itself went out: what failed is reading the state after it, whose
         * error may well say that *that* request was not sent. */
        snprintf(msg, sizeof msg, "%s%.440s",
                 no_answer ? "sent, no answer since (it may still take effect); reading its "
                             "state: "
                           : "",
                 ctl_skip_node_prefix(err.msg, pn->name));
        /* A change already unconfirmed stays so: a re-check that cannot read the state
         * does not make what was sent fail. */
        for (size_t k = 0; final && k < pn->n_models; k++)
            if (pn->out[k].state == PUSH_PENDING ||
                (pn->out[k].state == PUSH_UNCONFIRMED && no_answer))
                set_outcome(&pn->out[k], no_answer ? PUSH_UNCONFIRMED : PUSH_FAILED, pn->name,
                            msg);
        return !no_answer;
    }
    json_object_object_get_ex(root, "models", &arr);
    size_t n_arr = arr && json_object_is_type(arr, json_type_array)
                       ? json_object_array_length(arr)
                       : 0;
    for (size_t k = 0; k < pn->n_models; k++) {
        push_outcome *o = &pn->out[k];
        if (o->state != PUSH_PENDING && o->state != PUSH_UNCONFIRMED)
            continue;
        const ctl_push_model *m = &ctx->models[pn->models[k]];
        json_object *found = NULL;
        for (size_t i = 0; i < n_arr && !found; i++) {
            json_object *e = json_object_array_get_idx(arr, i), *nm;
            if (json_object_object_get_ex(e, "name", &nm) &&
                strcmp(json_object_get_string(nm), m->view->model.name) == 0)
                found = e;
        }
        if (m->remove) {
            if (!found)
                set_outcome(o, PUSH_OK, pn->name, "deleted");
            else if (final)
                set_outcome(o, PUSH_UNCONFIRMED, pn->name, "still on the engine at the deadline");
            continue;
        }
        if (!found) {
            if (final)
                set_outcome(o, PUSH_UNCONFIRMED, pn->name,
                            "the engine does not hold the model (the change never arrived)");
            continue;
        }
        ksv_engine_model_status s;
        if (ksv_engine_model_status_parse(found, &s, &err) != 0) {
            set_outcome(o, PUSH_FAILED, pn->name, err.msg);
            continue;
        }
        bool ours = shows_desired(&s, m->view);
        const char *failed = NULL, *why = "";
        char waiting[256] = "";
        size_t wlen = 0;
        for (size_t r = 0; r < s.n_revisions; r++) {
            const ksv_engine_revision_status *rs = &s.revisions[r];
            if (rs->desired_traffic > 0 && strcmp(rs->state, "failed") == 0 && !failed) {
                failed = rs->name;
                why = rs->error[0] ? rs->error : "(no message)";
            }
            if (rs->desired_traffic > 0 && rs->traffic != rs->desired_traffic && wlen < sizeof waiting) {
                int w = snprintf(waiting + wlen, sizeof waiting - wlen, "%s%s %s", wlen ? ", " : "",
                                 rs->name, rs->state);
                wlen += w > 0 ? (size_t)w : 0;
            }
        }
        char msg[512];
        if (ours && failed) {
            snprintf(msg, sizeof msg, "revision %.96s failed: %.380s", failed, why);
            set_outcome(o, PUSH_FAILED, pn->name, msg);
        } else if (ours && s.traffic_applied) {
            set_outcome(o, PUSH_OK, pn->name,
                        o->state == PUSH_UNCONFIRMED ? "in effect (confirmed after a late answer)"
                                                     : "in effect");
        } else if (final) {
            snprintf(msg, sizeof msg, "%s at the deadline%s%.300s",
                     ours ? "not in effect" : "the engine does not show this change yet",
                     waiting[0] ? "; waiting for " : "", waiting);
            set_outcome(o, PUSH_UNCONFIRMED, pn->name, msg);
        }
        ksv_engine_model_status_free(&s);
    }
    json_object_put(root);
    return true;
}

static bool any_waiting(const push_node *pn)
{
    for (size_t k = 0; k < pn->n_models; k++)
        if (pn->out[k].state == PUSH_PENDING)
            return true;
    return false;
}

/* One node: connect, send each model, then poll until all are in effect or the deadline. */
static void push_node_job(void *arg, size_t i)
{
    push_ctx *ctx = arg;
    push_node *pn = &ctx->nodes[i];
    if (!pn->have_node)
        return;
    ctl_upload *uploads = NULL;
    size_t n_uploads = pn->node.kind == KSV_NODE_SSH ? node_uploads(ctx, pn, &uploads) : 0;
    ksv_err err;
    ksv_err_clear(&err);
    /* A handle that keeps SSH connections lends its own (one thread: see ctl_push). */
    int crc = ctx->ctl->keep_connections && n_uploads == 0
                  ? ctl_node_connect(ctx->ctl, &pn->node, &pn->conn, &err)
                  : ctl_node_connect_uploading(ctx->ctl, &pn->node, uploads, n_uploads,
                                               &pn->conn, &err);
    if (crc != 0) {
        for (size_t k = 0; k < pn->n_models; k++)
            set_outcome(&pn->out[k], PUSH_FAILED, pn->name, err.msg);
        free(uploads);
        return;
    }
    pn->connected = true;
    bool silent = false; /* the node stopped answering: ask it nothing more this round */
    for (size_t k = 0; k < pn->n_models; k++) {
        push_outcome *o = &pn->out[k];
        size_t mi = pn->models[k];
        const ctl_push_model *m = &ctx->models[mi];
        if (silent) {
            set_outcome(o, PUSH_FAILED, pn->name,
                        "not sent: the node did not answer an earlier request");
            continue;
        }
        int rc;
        if (m->remove) {
            rc = ksv_engine_client_delete_model(pn->conn.client, m->view->model.name, &err);
            if (rc != 0 && err.status == 404)
                rc = 0; /* already gone: the goal is reached */
        } else if (!ctx->bodies[mi]) {
            set_outcome(o, PUSH_FAILED, pn->name, ctx->body_errors[mi]);
            continue;
        } else {
            ksv_sb mapped;
            ksv_sb_init(&mapped);
            rc = 0;
            if (n_uploads > 0)
                rc = ctl_engine_body_mapped(ctx->ctl, m->view, uploads, n_uploads, &mapped, &err);
            if (rc == 0)
                rc = ksv_engine_client_put_model_json(pn->conn.client, m->view->model.name,
                                                      mapped.len ? mapped.data : ctx->bodies[mi],
                                                      NULL, &err);
            ksv_sb_free(&mapped);
        }
        if (rc == 0) {
            if (m->remove)
                set_outcome(o, PUSH_OK, pn->name, "deleted");
            else
                o->state = PUSH_PENDING;
        } else if (sent_without_answer(&err)) {
            set_outcome(o, PUSH_UNCONFIRMED, pn->name, err.msg);
            silent = true;
        } else {
            set_outcome(o, PUSH_FAILED, pn->name, err.msg);
            if (err.status == 503)
                silent = true;
        }
    }
    free(uploads);
    double pause = 20;
    while (!silent && any_waiting(pn)) {
        bool final = ksv_mono_ms() >= ctx->deadline_ms;
        if (!check_state(ctx, pn, final)) {
            silent = true;
            break;
        }
        if (final)
            break;
        double left = ctx->deadline_ms - ksv_mono_ms();
        sleep_ms(pause < left ? pause : left);
        pause = pause * 1.5 > 250 ? 250 : pause * 1.5;
    }
    for (size_t k = 0; k < pn->n_models; k++)
        if (pn->out[k].state == PUSH_PENDING)
            set_outcome(&pn->out[k], PUSH_UNCONFIRMED, pn->name,
                        "sent; the node stopped answering before it was in effect");
}

/* The nodes with an unconfirmed change are asked once more, briefly: an engine that
 * answered late may have made the change after all. */
static void recheck_node_job(void *arg, size_t i)
{
    push_ctx *ctx = arg;
    push_node *pn = &ctx->nodes[i];
    bool unsure = false;
    for (size_t k = 0; k < pn->n_models; k++)
        unsure |= pn->out[k].state == PUSH_UNCONFIRMED;
    if (!unsure || !pn->connected)
        return;
    long t = ctx->ctl->node_timeout_ms < RECHECK_TIMEOUT_MS ? ctx->ctl->node_timeout_ms
                                                             : RECHECK_TIMEOUT_MS;
    ksv_engine_client_set_timeout(pn->conn.client, t);
    check_state(ctx, pn, true);
}

/* A node's row over all its models: one line a person can read. */
static void node_summary(const push_ctx *ctx, const push_node *pn, ksv_node_result *r)
{
    size_t ok = 0, failed = 0, unsure = 0;
    const push_outcome *worst = NULL;
    size_t worst_k = 0;
    for (size_t k = 0; k < pn->n_models; k++) {
        const push_outcome *o = &pn->out[k];
        ok += o->state == PUSH_OK;
        failed += o->state == PUSH_FAILED;
        unsure += o->state == PUSH_UNCONFIRMED;
        /* A node that gave no answer is first of all that: its unconfirmed change comes
         * before what was therefore not sent. */
        if (o->state != PUSH_OK &&
            (!worst || (o->state == PUSH_UNCONFIRMED && worst->state != PUSH_UNCONFIRMED))) {
            worst = o;
            worst_k = k;
        }
    }
    memset(r, 0, sizeof *r);
    snprintf(r->node, sizeof r->node, "%s", pn->name);
    r->ok = failed == 0 && unsure == 0;
    r->unconfirmed = unsure > 0;
    if (pn->n_models == 1)
        snprintf(r->message, sizeof r->message, "%s", pn->out[0].message);
    else if (!worst)
        snprintf(r->message, sizeof r->message, "%zu models in effect", ok);
    else
        snprintf(r->message, sizeof r->message,
                 "%zu of %zu models in effect, %zu failed, %zu unconfirmed; %.64s: %.300s", ok,
                 pn->n_models, failed, unsure, ctx->models[pn->models[worst_k]].view->model.name,
                 worst->message);
}

/* ksv.io/fetch: operator: each store URI of such a model on an SSH node is fetched here
 * once, before the nodes are contacted; the upload then sends it as a local file. A fetch
 * that fails fails the model (its nodes cannot fetch it themselves: that is why it is set). */
static void fetch_for_ssh_nodes(push_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_models; i++) {
        const ksv_model_view *v = ctx->models[i].view;
        if (ctx->models[i].remove || !ctx->bodies[i] || !ctl_fetch_on_operator(&v->model))
            continue;
        bool ssh = false;
        for (size_t k = 0; k < ctx->n_nodes && !ssh; k++)
            for (size_t j = 0; j < ctx->nodes[k].n_models && !ssh; j++)
                ssh = ctx->nodes[k].models[j] == i && ctx->nodes[k].have_node &&
                      ctx->nodes[k].node.kind == KSV_NODE_SSH;
        for (size_t r = 0; ssh && r < v->revisions.n && ctx->bodies[i]; r++) {
            const ksv_revision_record *rev = &v->revisions.items[r];
            const char *uri = rev->storage_uri;
            bool have = !uri || !strstr(uri, "://") || strncmp(uri, "file://", 7) == 0;
            for (size_t j = 0; j < ctx->n_fetched && !have; j++)
                have = strcmp(ctx->fetched[j].local, uri) == 0;
            if (have)
                continue;
            ctl_upload *grown = realloc(ctx->fetched, (ctx->n_fetched + 1) * sizeof *grown);
            ksv_err err;
            char sha[65];
            ctl_revision_sha256(rev->spec_json, sha);
            if (grown) {
                ctx->fetched = grown;
                ctl_upload *u = &grown[ctx->n_fetched];
                memset(u, 0, sizeof *u);
                snprintf(u->local, sizeof u->local, "%s", uri);
                if (ctl_operator_fetch(ctx->ctl, uri, sha, u->fetched, sizeof u->fetched,
                                       &err) == 0) {
                    ctx->n_fetched++;
                    continue;
                }
            } else {
                ksv_err_set(&err, 500, "out of memory");
            }
            free(ctx->bodies[i]);
            ctx->bodies[i] = NULL;
            free(ctx->body_errors[i]);
            ctx->body_errors[i] = strdup(err.msg);
        }
    }
}

void ctl_push(ksv_ctl *ctl, ctl_push_model *models, size_t n, double timeout_s,
              ksv_ctl_result *res)
{
    push_ctx ctx = {.ctl = ctl, .models = models, .n_models = n};
    ctx.deadline_ms = ksv_mono_ms() + (timeout_s > 0 ? timeout_s : 0) * 1000.0;
    ctx.bodies = calloc(n ? n : 1, sizeof *ctx.bodies);
    ctx.body_errors = calloc(n ? n : 1, sizeof *ctx.body_errors);
    /* The nodes, each once, in the order the models name them. */
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += models[i].view->model.n_nodes;
    ctx.nodes = calloc(cap ? cap : 1, sizeof *ctx.nodes);
    if (!ctx.bodies || !ctx.body_errors || !ctx.nodes)
        goto out;
    for (size_t i = 0; i < n; i++) {
        memset(&models[i].result, 0, sizeof models[i].result);
        if (models[i].remove)
            continue;
        ksv_sb body;
        ksv_sb_init(&body);
        ksv_err err;
        ksv_err_clear(&err);
        if (ctl_engine_body(ctl, models[i].view, &body, &err) == 0) {
            ctx.bodies[i] = body.data; /* the buffer moves to the push */
        } else {
            ctx.body_errors[i] = strdup(err.msg);
            ksv_sb_free(&body);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const ksv_model_record *m = &models[i].view->model;
        for (size_t j = 0; j < m->n_nodes; j++) {
            push_node *pn = NULL;
            for (size_t k = 0; k < ctx.n_nodes && !pn; k++)
                if (strcmp(ctx.nodes[k].name, m->nodes[j]) == 0)
                    pn = &ctx.nodes[k];
            if (!pn) {
                pn = &ctx.nodes[ctx.n_nodes++];
                snprintf(pn->name, sizeof pn->name, "%s", m->nodes[j]);
                pn->models = calloc(n, sizeof *pn->models);
                pn->out = calloc(n, sizeof *pn->out);
                ksv_err err;
                pn->have_node = pn->models && pn->out &&
                                ksv_store_node_get(ctl->store, pn->name, &pn->node, &err) == 0;
                if (!pn->models || !pn->out) {
                    free(pn->models);
                    free(pn->out);
                    ctx.n_nodes--;
                    continue;
                }
                if (!pn->have_node)
                    snprintf(pn->out[0].message, sizeof pn->out[0].message, "%s", err.msg);
            }
            pn->models[pn->n_models] = i;
            if (!pn->have_node)
                set_outcome(&pn->out[pn->n_models], PUSH_FAILED, pn->name, pn->out[0].message);
            pn->n_models++;
        }
    }
    fetch_for_ssh_nodes(&ctx);
    /* Kept connections live in a table of the handle that only one thread may touch. */
    int parallel = ctl->keep_connections ? 1 : ctl->parallel;
    ctl_fanout(ctx.n_nodes, parallel, push_node_job, &ctx);
    ctl_fanout(ctx.n_nodes, parallel, recheck_node_job, &ctx);

    /* Results, node status and nothing else in the store: the caller writes history. */
    ksv_err ignored;
    bool txn = ksv_store_begin(ctl->store, &ignored) == 0;
    for (size_t k = 0; k < ctx.n_nodes; k++) {
        push_node *pn = &ctx.nodes[k];
        if (pn->connected)
            ctl_node_disconnect(&pn->conn);
        for (size_t j = 0; j < pn->n_models; j++) {
            const push_outcome *o = &pn->out[j];
            ksv_ctl_result *mr = &models[pn->models[j]].result;
            if (ctl_result_add(mr, pn->name, o->state == PUSH_OK, o->message) == 0)
                mr->nodes[mr->n - 1].unconfirmed = o->state == PUSH_UNCONFIRMED;
        }
        ksv_node_result row;
        node_summary(&ctx, pn, &row);
        if (res && ctl_result_add(res, row.node, row.ok, row.message) == 0)
            res->nodes[res->n - 1].unconfirmed = row.unconfirmed;
        if (pn->have_node)
            ksv_store_node_set_status(ctl->store, pn->name, ksv_wall_ms(),
                                      row.ok ? NULL : row.message, NULL, &ignored);
    }
    if (txn && ksv_store_commit(ctl->store, &ignored) != 0)
        ksv_store_abandon(ctl->store);
out:
    for (size_t k = 0; ctx.nodes && k < ctx.n_nodes; k++) {
        ksv_node_clear(&ctx.nodes[k].node);
        free(ctx.nodes[k].models);
        free(ctx.nodes[k].out);
    }
    for (size_t i = 0; i < n && ctx.bodies; i++)
        free(ctx.bodies[i]);
    for (size_t i = 0; i < n && ctx.body_errors; i++)
        free(ctx.body_errors[i]);
    free(ctx.nodes);
    free(ctx.bodies);
    free(ctx.body_errors);
    free(ctx.fetched);
}
