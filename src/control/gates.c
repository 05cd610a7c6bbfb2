/* gates.c: the console's side of release gates run by the engines (docs/API.md, "PUT .../rollout"):
 * starting a gated rollout on each node after an apply, reading its state, operator
 * actions, waiting for the outcome, and importing each node's event log into history once
 * (keyed by node and seq, actor gate@NODE), which also moves the desired split to what the
 * gate decided so a later reconcile never undoes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "control/control_internal.h"

#define EVENTS_PAGE 1000
#define IMPORT_PAGES_MAX 100

/* A rollout's phase is final. */
static bool phase_done(const char *phase)
{
    return strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
}

static int connect_node(ksv_ctl *ctl, const char *name, ctl_node_conn *conn, ksv_err *err)
{
    ksv_node node;
    if (ksv_store_node_get(ctl->store, name, &node, err) != 0)
        return -1;
    int rc = ctl_node_connect(ctl, &node, conn, err);
    ksv_node_clear(&node);
    return rc;
}

/* ------------------------------------------------------------------ starting one */

int ctl_gate_start(ksv_ctl *ctl, const ksv_model_record *m, const char *canary, const char *stable,
                   const char *policy_template, ksv_ctl_result *res, ksv_err *err)
{
    json_object *policy = json_tokener_parse(policy_template);
    if (!policy || !json_object_is_type(policy, json_type_object)) {
        json_object_put(policy);
        return ksv_err_set(err, 500, "the stored Canary of %s/%s is not a JSON object", m->ns,
                           m->name);
    }
    json_object_object_add(policy, "canary", json_object_new_string(canary));
    if (stable)
        json_object_object_add(policy, "stable", json_object_new_string(stable));
    const char *body = json_object_to_json_string_ext(policy, JSON_C_TO_STRING_PLAIN);
    char path[256];
    snprintf(path, sizeof path, "/ksv/v1/models/%s/rollout", m->name);
    int rc = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        ctl_node_conn conn;
        json_object *reply = NULL;
        ksv_err one;
        int r = connect_node(ctl, m->nodes[i], &conn, &one);
        if (r == 0) {
            r = ksv_engine_client_call_json(conn.client, "PUT", path, body, &reply, &one);
            ctl_node_disconnect(&conn);
        }
        json_object_put(reply);
        if (res)
            ctl_result_add(res, m->nodes[i], r == 0, r == 0 ? "gated rollout started" : one.msg);
        if (r != 0 && rc == 0)
            rc = ksv_err_set(err, 1, "%s/%s: node %s: starting the gate: %s", m->ns, m->name,
                             m->nodes[i], ctl_skip_node_prefix(one.msg, m->nodes[i]));
    }
    json_object_put(policy);
    return rc;
}

/* ------------------------------------------------------------ a wave's gates */

int ctl_gate_wait_nodes(ksv_ctl *ctl, const char *model, const char *canary,
                        char *const *nodes, size_t n, double timeout_s, char *why, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "/ksv/v1/models/%s", model);
    bool *done = calloc(n ? n : 1, sizeof *done);
    if (!done) {
        snprintf(why, cap, "failed: out of memory");
        return 0;
    }
    double deadline = ksv_mono_s() + timeout_s;
    size_t left = n;
    int verdict = 1;
    while (left > 0 && verdict == 1) {
        for (size_t i = 0; i < n && verdict == 1; i++) {
            if (done[i])
                continue;
            ctl_node_conn conn;
            json_object *state = NULL, *ro;
            ksv_err one;
            int r = connect_node(ctl, nodes[i], &conn, &one);
            if (r == 0) {
                r = ksv_engine_client_call_json(conn.client, "GET", path, NULL, &state, &one);
                ctl_node_disconnect(&conn);
            }
            /* The rollout of this canary only: a node may still show the last one's. */
            if (r == 0 && json_object_object_get_ex(state, "rollout", &ro) &&
                json_object_is_type(ro, json_type_object)) {
                const char *c = json_object_get_string(json_object_object_get(ro, "canary"));
                const char *phase = json_object_get_string(json_object_object_get(ro, "phase"));
                if (c && phase && strcmp(c, canary) == 0 && phase_done(phase)) {
                    done[i] = true;
                    left--;
                    if (strcmp(phase, "Failed") == 0) {
                        const char *reason =
                            json_object_get_string(json_object_object_get(ro, "reason"));
                        snprintf(why, cap, "failed: node %.64s: gate Failed: %.400s", nodes[i],
                                 reason ? reason : "");
                        verdict = 0;
                    }
                }
            }
            json_object_put(state);
        }
        if (left > 0 && verdict == 1) {
            if (ksv_mono_s() >= deadline) {
                snprintf(why, cap, "failed: %zu of %zu node(s)' gates did not finish within "
                         "%.0f s", left, n, timeout_s);
                verdict = 0;
                break;
            }
            struct timespec nap = {0, 300 * 1000000L};
            nanosleep(&nap, NULL);
        }
    }
    if (verdict == 1)
        snprintf(why, cap, "succeeded: every gate of the wave promoted %s", canary);
    free(done);
    return verdict;
}

/* --------------------------------------------------------------- reading state */

int ksv_ctl_gate_status(ksv_ctl *ctl, const char *model, const char *ns, json_object **out,
                        ksv_err *err)
{
    *out = NULL;
    ksv_model_record m;
    if (ksv_store_model_resolve(ctl->store, model, ns, &m, err) != 0)
        return -1;
    ksv_err ignored;
    ctl_gate_import_nodes(ctl, m.nodes, m.n_nodes, NULL, &ignored); /* history, split */
    json_object *root = json_object_new_object(), *nodes = json_object_new_array();
    char ref[300];
    snprintf(ref, sizeof ref, "%s/%s", m.ns, m.name);
    json_object_object_add(root, "model", json_object_new_string(ref));
    char *cname = NULL, *policy = NULL;
    int has = ksv_store_canary_get(ctl->store, m.id, &cname, &policy, &ignored);
    json_object_object_add(root, "canary",
                           has == 1 ? json_object_new_string(cname) : NULL);
    free(cname);
    free(policy);
    char path[256];
    snprintf(path, sizeof path, "/ksv/v1/models/%s", m.name);
    for (size_t i = 0; i < m.n_nodes; i++) {
        json_object *entry = json_object_new_object(), *state = NULL, *ro = NULL;
        json_object_object_add(entry, "node", json_object_new_string(m.nodes[i]));
        ctl_node_conn conn;
        ksv_err one;
        int r = connect_node(ctl, m.nodes[i], &conn, &one);
        if (r == 0) {
            r = ksv_engine_client_call_json(conn.client, "GET", path, NULL, &state, &one);
            ctl_node_disconnect(&conn);
        }
        if (r == 0 && json_object_object_get_ex(state, "rollout", &ro))
            json_object_object_add(entry, "rollout", json_object_get(ro));
        else
            json_object_object_add(entry, "rollout", NULL);
        if (r != 0)
            json_object_object_add(entry, "error",
                                   json_object_new_string(ctl_skip_node_prefix(one.msg, m.nodes[i])));
        json_object_put(state);
        json_object_array_add(nodes, entry);
    }
    json_object_object_add(root, "nodes", nodes);
    ksv_model_record_clear(&m);
    *out = root;
    return 0;
}

/* ---------------------------------------------------------------------- actions */

int ksv_ctl_gate_action(ksv_ctl *ctl, const char *model, const char *ns, const char *action,
                        ksv_ctl_result *res, ksv_err *err)
{
    static const char *const actions[] = {"pause", "resume", "abort", "retry", "promote"};
    bool known = false;
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        known |= strcmp(actions[i], action) == 0;
    if (!known)
        return ksv_err_set(err, 2, "unknown rollout action %s", action);
    ksv_model_record m;
    if (ksv_store_model_resolve(ctl->store, model, ns, &m, err) != 0)
        return -1;
    char path[256], ref[300];
    snprintf(path, sizeof path, "/ksv/v1/models/%s/rollout/%s", m.name, action);
    snprintf(ref, sizeof ref, "%s/%s", m.ns, m.name);
    int rc = 0;
    for (size_t i = 0; i < m.n_nodes; i++) {
        ctl_node_conn conn;
        json_object *reply = NULL;
        ksv_err one;
        int r = connect_node(ctl, m.nodes[i], &conn, &one);
        if (r == 0) {
            r = ksv_engine_client_call_json(conn.client, "POST", path, "", &reply, &one);
            ctl_node_disconnect(&conn);
        }
        json_object *phase;
        char msg[200];
        snprintf(msg, sizeof msg, "%s", r == 0 && json_object_object_get_ex(reply, "phase", &phase)
                                            ? json_object_get_string(phase)
                                            : ctl_skip_node_prefix(one.msg, m.nodes[i]));
        json_object_put(reply);
        ctl_result_add(res, m.nodes[i], r == 0, msg);
        if (r != 0 && rc == 0)
            rc = ksv_err_set(err, one.status == 409 || one.status == 404 ? 1 : 1,
                             "%s: node %s: %s", ref, m.nodes[i], msg);
    }
    char action_name[48];
    snprintf(action_name, sizeof action_name, "rollout %s", action);
    ksv_err herr;
    if (ksv_ctl_history(ctl, action_name, ref, NULL, NULL, action, res, NULL, &herr) != 0 &&
        rc == 0) {
        *err = herr;
        rc = -1;
    }
    snprintf(res->summary, sizeof res->summary, "%s: rollout %s on %zu node(s)", ref, action,
             m.n_nodes);
    ksv_model_record_clear(&m);
    return rc;
}

int ksv_ctl_gate_wait(ksv_ctl *ctl, const char *model, const char *ns, double timeout_s,
                      char *phase_out, size_t phase_cap, ksv_err *err)
{
    double start = ksv_mono_s();
    for (;;) {
        json_object *st;
        if (ksv_ctl_gate_status(ctl, model, ns, &st, err) != 0)
            return -1;
        json_object *nodes = json_object_object_get(st, "nodes");
        bool all_done = true, any_failed = false, any = false;
        char reason[400] = "";
        for (size_t i = 0; i < json_object_array_length(nodes); i++) {
            json_object *ro = json_object_object_get(json_object_array_get_idx(nodes, i),
                                                     "rollout");
            if (!ro) {
                all_done = false;
                continue;
            }
            any = true;
            const char *phase = json_object_get_string(json_object_object_get(ro, "phase"));
            if (!phase || !phase_done(phase))
                all_done = false;
            else if (strcmp(phase, "Failed") == 0 && !any_failed) {
                any_failed = true;
                snprintf(reason, sizeof reason, "node %s: %s",
                         json_object_get_string(json_object_object_get(
                             json_object_array_get_idx(nodes, i), "node")),
                         json_object_get_string(json_object_object_get(ro, "reason")));
            }
        }
        json_object_put(st);
        if (any && all_done) {
            /* This round imported events before it read the phases: once more, so the
             * terminal event (the engine appends it before the phase shows) is in history
             * and the desired split follows it before the caller's next change. */
            json_object *again = NULL;
            ksv_err ignored;
            if (ksv_ctl_gate_status(ctl, model, ns, &again, &ignored) == 0)
                json_object_put(again);
            snprintf(phase_out, phase_cap, "%s", any_failed ? "Failed" : "Succeeded");
            if (any_failed)
                return ksv_err_set(err, 1, "%s", reason);
            return 0;
        }
        if (ksv_mono_s() - start >= timeout_s) {
            snprintf(phase_out, phase_cap, "%s", "Progressing");
            return ksv_err_set(err, 1, "the gated rollout of %s did not finish within %.0f s",
                               model, timeout_s);
        }
        struct timespec nap = {0, 300 * 1000000L};
        nanosleep(&nap, NULL);
    }
}

/* ---------------------------------------------------------------- event import */

/* The console's model that node serves under engine name `name` (0 when none). */
static int64_t model_on_node(ksv_ctl *ctl, const char *node, const char *name, char *ref,
                             size_t cap)
{
    ksv_model_record_list list;
    ksv_err err;
    int64_t id = 0;
    if (ksv_store_model_list(ctl->store, NULL, &list, &err) != 0)
        return 0;
    for (size_t i = 0; i < list.n && !id; i++) {
        if (strcmp(list.items[i].name, name) != 0)
            continue;
        for (size_t k = 0; k < list.items[i].n_nodes && !id; k++)
            if (strcmp(list.items[i].nodes[k], node) == 0) {
                id = list.items[i].id;
                snprintf(ref, cap, "%s/%s", list.items[i].ns, list.items[i].name);
            }
    }
    ksv_model_record_list_free(&list);
    return id;
}

/* What the gate decided becomes the desired split: a promotion makes the canary the
 * rolled-out revision at 100%; a rollback gives the stable revision 100%. */
static int follow_gate(ksv_ctl *ctl, int64_t model_id, const char *kind, const char *revision,
                       ksv_err *err)
{
    bool promoted = strcmp(kind, "gate-succeeded") == 0;
    bool rolled_back = strcmp(kind, "gate-rollback") == 0 || strcmp(kind, "gate-abort") == 0;
    if ((!promoted && !rolled_back) || !revision)
        return 0;
    ksv_revision_record rev;
    if (ksv_store_revision_get(ctl->store, model_id, revision, &rev, err) != 0)
        return 0; /* a revision the console does not know: nothing to follow */
    int rc = 0;
    if (promoted) {
        ksv_traffic_entry e = {.revision_id = rev.id, .percent = 100};
        rc = ksv_store_traffic_set(ctl->store, model_id, &e, 1, err);
        if (rc == 0)
            rc = ksv_store_stable_set(ctl->store, model_id, rev.id, err);
    } else {
        int64_t stable = 0;
        rc = ksv_store_stable_get(ctl->store, model_id, &stable, err);
        if (rc == 0 && stable && stable != rev.id) {
            ksv_traffic_entry e = {.revision_id = stable, .percent = 100};
            rc = ksv_store_traffic_set(ctl->store, model_id, &e, 1, err);
        }
    }
    ksv_revision_record_clear(&rev);
    return rc;
}

/* One event into history (and the split); caller holds the transaction. */
static int import_one(ksv_ctl *ctl, const char *node, const char *log_id, json_object *e,
                      ksv_err *err)
{
    const char *kind = json_object_get_string(json_object_object_get(e, "kind"));
    const char *model = json_object_get_string(json_object_object_get(e, "model"));
    const char *revision = json_object_get_string(json_object_object_get(e, "revision"));
    const char *message = json_object_get_string(json_object_object_get(e, "message"));
    double t = json_object_get_double(json_object_object_get(e, "time"));
    if (!kind || !*kind)
        return 0;
    char actor[96], ref[300] = "";
    snprintf(actor, sizeof actor, "%s@%s", strncmp(kind, "gate-", 5) == 0 ? "gate" : "engine",
             node);
    int64_t model_id = model ? model_on_node(ctl, node, model, ref, sizeof ref) : 0;
    if (model && !model_id)
        snprintf(ref, sizeof ref, "%s", model);
    /* The figures stay in the node's log (GET /ksv/v1/events); the row names the event. */
    char seq_text[64], result[] = "ok";
    snprintf(seq_text, sizeof seq_text, "event %lld",
             (long long)json_object_get_int64(json_object_object_get(e, "seq")));
    ksv_history_entry h = {
        .at_ms = t > 0 ? (int64_t)(t * 1000.0) : 0,
        .actor = actor,
        .action = (char *)kind,
        .model = ref[0] ? ref : NULL,
        .node = (char *)node,
        .old_value = seq_text,
        .new_value = (char *)(message ? message : "-"),
        .result = result,
    };
    int rc = ksv_store_history_append(ctl->store, &h, NULL, err);
    if (rc == 0)
        rc = ctl_usage_import(ctl, node, log_id, e, model_id ? ref : NULL, err);
    if (rc == 0 && model_id)
        rc = follow_gate(ctl, model_id, kind, revision, err);
    return rc;
}

/* One page of events into history; the caller holds the transaction. The cursor is read
 * again inside it: a console and a CLI may import the same node at once, and whichever
 * commits second must skip what the first wrote (each event once). Returns 1 when the node
 * has more. */
static int import_events(ksv_ctl *ctl, const char *node, json_object *reply, const char *id,
                         size_t *imported, ksv_err *err)
{
    char *log_id = NULL;
    int64_t last = 0;
    int rc = ksv_store_event_cursor_get(ctl->store, node, &log_id, &last, err) < 0 ? -1 : 0;
    if (rc == 0 && log_id && strcmp(log_id, id) != 0)
        last = 0; /* another log (the node's was reset): its events are new */
    free(log_id);
    json_object *events = json_object_object_get(reply, "events");
    size_t n = json_object_is_type(events, json_type_array) ? json_object_array_length(events)
                                                             : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_object *e = json_object_array_get_idx(events, i);
        int64_t seq = json_object_get_int64(json_object_object_get(e, "seq"));
        if (seq <= last)
            continue; /* never twice, even from a confused node or a second importer */
        rc = import_one(ctl, node, id, e, err);
        last = seq;
        if (rc == 0 && imported)
            (*imported)++;
    }
    if (rc == 0)
        rc = ksv_store_event_cursor_set(ctl->store, node, id, last, err);
    if (rc != 0)
        return -1;
    return json_object_get_boolean(json_object_object_get(reply, "more")) ? 1 : 0;
}

/* Whether a page read with the cursor (cursor_log, ...) writes anything: nothing new from
 * the same log does not (consoles and `--wait` ask often), a reply without a log id is an
 * error. */
static bool page_writes(json_object *reply, const char *cursor_log)
{
    const char *id = json_object_get_string(json_object_object_get(reply, "log_id"));
    json_object *events = json_object_object_get(reply, "events");
    return id && (!cursor_log || strcmp(cursor_log, id) != 0 ||
                  (json_object_is_type(events, json_type_array) &&
                   json_object_array_length(events) > 0));
}

/* A page of the node's events, read from the cursor (cursor_log, since), into the store;
 * the caller holds the transaction when page_writes. 1: the node has more to read (the
 * rest of its log, or all of it again when it was reset), 0: read to its end, -1: err. */
static int page_into_store(ksv_ctl *ctl, const char *node, json_object *reply,
                           const char *cursor_log, int64_t since, size_t *imported,
                           ksv_err *err)
{
    const char *id = json_object_get_string(json_object_object_get(reply, "log_id"));
    if (!id)
        return ksv_err_set(err, 502, "node %s: bad events reply (no log_id)", node);
    bool same_log = cursor_log && strcmp(cursor_log, id) == 0;
    if (!same_log && since > 0) /* the node's log was reset: read it again from its start */
        return ksv_store_event_cursor_set(ctl->store, node, id, 0, err) == 0 ? 1 : -1;
    if (!page_writes(reply, cursor_log))
        return 0;
    json_object *events = json_object_object_get(reply, "events");
    if (!json_object_is_type(events, json_type_array) || json_object_array_length(events) == 0)
        /* nothing new: the log's id, learnt the first time */
        return ksv_store_event_cursor_set(ctl->store, node, id, since, err) == 0 ? 0 : -1;
    return import_events(ctl, node, reply, id, imported, err);
}

/* ---- importing several nodes at once ----
 * Each round reads every node's cursor, fetches the next page of each node's events side
 * by side (the fan-out: jobs touch no store), then writes the pages here, on the caller's
 * thread, node after node, in one transaction. What a fleet's import cost was mostly its
 * writes, a commit per node (52 nodes: ~0.14 s of 0.18 s here, the reads ~0.04 s; a busy
 * disk makes each commit slower), now one per round. */

typedef enum { JOB_READING, JOB_DONE, JOB_FAILED } job_state;

typedef struct import_job {
    const char *name;             /* borrowed */
    ksv_node node;
    bool have_node;
    ctl_node_conn conn;
    bool connected;
    ksv_engine_client *client;    /* the conn's, or the caller's (ctl_gate_import_over) */
    char *cursor_log;             /* the cursor this round's page was read from */
    int64_t since;
    json_object *reply;           /* this round's page, NULL: none */
    job_state state;
    ksv_err err;                  /* JOB_FAILED: why */
    int more;                     /* this round's outcome, kept once its transaction commits */
    size_t count;
} import_job;

typedef struct import_ctx {
    ksv_ctl *ctl;
    import_job *jobs;
} import_ctx;

static void fetch_job(void *arg, size_t i)
{
    import_ctx *ctx = arg;
    import_job *j = &ctx->jobs[i];
    if (j->state != JOB_READING)
        return;
    if (!j->client) {
        /* A handle that keeps connections lends its own (one thread: see the caller). */
        if ((ctx->ctl->keep_connections
                 ? ctl_node_connect(ctx->ctl, &j->node, &j->conn, &j->err)
                 : ctl_node_connect_fresh(ctx->ctl, &j->node, &j->conn, &j->err)) != 0) {
            j->state = JOB_FAILED;
            return;
        }
        j->connected = true;
        j->client = j->conn.client;
    }
    char path[128];
    snprintf(path, sizeof path, "/ksv/v1/events?since=%lld&limit=%d", (long long)j->since,
             EVENTS_PAGE);
    if (ksv_engine_client_call_json(j->client, "GET", path, NULL, &j->reply, &j->err) != 0) {
        j->reply = NULL;
        j->state = JOB_FAILED;
    }
}

/* The pages of jobs[0, n) in one transaction. 0: committed, or nothing could be (every
 * job with a page failed: the transaction did not begin or commit); -1: a page could not
 * be stored, the transaction was undone and the jobs are as before. */
static int store_jobs(ksv_ctl *ctl, import_job *jobs, size_t n)
{
    bool writes = false;
    for (size_t i = 0; i < n; i++)
        writes |= jobs[i].reply && page_writes(jobs[i].reply, jobs[i].cursor_log);
    ksv_err terr;
    ksv_err_clear(&terr);
    int rc = writes ? ksv_store_begin(ctl->store, &terr) : 0;
    bool page_failed = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        import_job *j = &jobs[i];
        j->count = 0;
        if (j->reply && (j->more = page_into_store(ctl, j->name, j->reply, j->cursor_log,
                                                   j->since, &j->count, &terr)) < 0) {
            page_failed = true;
            rc = -1;
            if (n == 1) { /* alone: the error is this node's */
                j->err = terr;
                j->state = JOB_FAILED;
            }
        }
    }
    if (writes && rc == 0 && ksv_store_commit(ctl->store, &terr) != 0)
        rc = -1;
    if (rc != 0) {
        ksv_store_abandon(ctl->store);
        for (size_t i = 0; i < n && !page_failed; i++)
            if (jobs[i].reply) { /* begin or commit failed: every node's page with it */
                jobs[i].err = terr;
                jobs[i].state = JOB_FAILED;
            }
        return page_failed && n > 1 ? -1 : 0;
    }
    for (size_t i = 0; i < n; i++)
        if (jobs[i].reply && jobs[i].more == 0)
            jobs[i].state = JOB_DONE;
    return 0;
}

/* Reads the jobs' nodes' new events into history, up to `parallel` nodes at a time. Each
 * failed job's err says why; the others are imported all the same. */
static void import_jobs(ksv_ctl *ctl, import_job *jobs, size_t n, int parallel,
                        size_t *imported)
{
    import_ctx ctx = {.ctl = ctl, .jobs = jobs};
    for (int page = 0; page < IMPORT_PAGES_MAX; page++) {
        bool reading = false;
        for (size_t i = 0; i < n; i++) {
            import_job *j = &jobs[i];
            free(j->cursor_log);
            j->cursor_log = NULL;
            if (j->state == JOB_READING &&
                ksv_store_event_cursor_get(ctl->store, j->name, &j->cursor_log, &j->since,
                                           &j->err) < 0)
                j->state = JOB_FAILED;
            reading |= j->state == JOB_READING;
        }
        if (!reading)
            break;
        ctl_fanout(n, parallel, fetch_job, &ctx);
        /* A page that cannot be stored undoes the round: then each node alone, so only
         * the node whose event cannot be stored stays behind. */
        if (store_jobs(ctl, jobs, n) != 0)
            for (size_t i = 0; i < n; i++)
                store_jobs(ctl, &jobs[i], 1);
        for (size_t i = 0; i < n; i++) {
            if (jobs[i].reply && jobs[i].state != JOB_FAILED && imported)
                *imported += jobs[i].count;
            json_object_put(jobs[i].reply);
            jobs[i].reply = NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].cursor_log);
        jobs[i].cursor_log = NULL;
    }
}

int ctl_gate_import_nodes(ksv_ctl *ctl, char *const *nodes, size_t n, size_t *imported,
                          ksv_err *err)
{
    if (imported)
        *imported = 0;
    import_job *jobs = calloc(n ? n : 1, sizeof *jobs);
    if (!jobs)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        jobs[i].name = nodes[i];
        jobs[i].have_node = ksv_store_node_get(ctl->store, nodes[i], &jobs[i].node,
                                               &jobs[i].err) == 0;
        jobs[i].state = jobs[i].have_node ? JOB_READING : JOB_FAILED;
    }
    /* Kept connections live in a table of the handle that only one thread may touch. */
    import_jobs(ctl, jobs, n, ctl->keep_connections ? 1 : ctl->parallel, imported);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].state == JOB_FAILED && rc == 0) {
            *err = jobs[i].err;
            rc = -1;
        }
        if (jobs[i].connected)
            ctl_node_disconnect(&jobs[i].conn);
        if (jobs[i].have_node)
            ksv_node_clear(&jobs[i].node);
    }
    free(jobs);
    return rc;
}

static int import_node(ksv_ctl *ctl, const char *node, size_t *imported, ksv_err *err)
{
    char *one[] = {(char *)node};
    return ctl_gate_import_nodes(ctl, one, 1, imported, err);
}

int ctl_gate_import_over(ksv_ctl *ctl, const char *node, ksv_engine_client *client,
                         size_t *imported, ksv_err *err)
{
    if (imported)
        *imported = 0;
    import_job job = {.name = node, .client = client, .state = JOB_READING};
    import_jobs(ctl, &job, 1, 1, imported);
    if (job.state == JOB_FAILED)
        *err = job.err;
    return job.state == JOB_FAILED ? -1 : 0;
}

void ctl_gate_catch_up(ksv_ctl *ctl, int64_t model_id)
{
    char *name = NULL, *policy = NULL;
    ksv_err ignored;
    int gated = ksv_store_canary_get(ctl->store, model_id, &name, &policy, &ignored);
    free(name);
    free(policy);
    if (gated != 1)
        return;
    ksv_model_record m;
    if (ksv_store_model_get_by_id(ctl->store, model_id, &m, &ignored) != 0)
        return;
    /* A node that cannot be reached now is read the next time; the change goes on. */
    ctl_gate_import_nodes(ctl, m.nodes, m.n_nodes, NULL, &ignored);
    ksv_model_record_clear(&m);
}

bool ctl_node_has_gate(ksv_ctl *ctl, const char *node)
{
    ksv_model_record_list models;
    ksv_err ignored;
    if (ksv_store_model_list(ctl->store, NULL, &models, &ignored) != 0)
        return false;
    bool gated = false;
    for (size_t i = 0; i < models.n && !gated; i++) {
        bool placed = false;
        for (size_t k = 0; k < models.items[i].n_nodes && !placed; k++)
            placed = strcmp(models.items[i].nodes[k], node) == 0;
        char *name = NULL, *policy = NULL;
        gated = placed && ksv_store_canary_get(ctl->store, models.items[i].id, &name, &policy,
                                               &ignored) == 1;
        free(name);
        free(policy);
    }
    ksv_model_record_list_free(&models);
    return gated;
}

int ksv_ctl_import_events(ksv_ctl *ctl, const char *node, size_t *imported, ksv_err *err)
{
    if (imported)
        *imported = 0;
    if (node)
        return import_node(ctl, node, imported, err);
    /* Every node that holds a model a Canary gates (others have no gate to report). */
    ksv_model_record_list models;
    if (ksv_store_model_list(ctl->store, NULL, &models, err) != 0)
        return -1;
    char **nodes = NULL;
    size_t n_nodes = 0;
    for (size_t i = 0; i < models.n; i++) {
        char *name = NULL, *policy = NULL;
        ksv_err one;
        int gated = ksv_store_canary_get(ctl->store, models.items[i].id, &name, &policy, &one);
        free(name);
        free(policy);
        for (size_t k = 0; gated == 1 && k < models.items[i].n_nodes; k++) {
            char *node_name = models.items[i].nodes[k];
            bool seen = false;
            for (size_t j = 0; j < n_nodes && !seen; j++)
                seen = strcmp(nodes[j], node_name) == 0;
            char **grown = seen ? NULL : realloc(nodes, (n_nodes + 1) * sizeof *grown);
            if (seen || !grown)
                continue;
            nodes = grown;
            nodes[n_nodes++] = node_name;
        }
    }
    /* An unreachable node is read next time; the others still are. */
    int rc = ctl_gate_import_nodes(ctl, nodes, n_nodes, imported, err);
    free(nodes);
    ksv_model_record_list_free(&models);
    return rc;
}
