/* rollout.c: apply, set-traffic, promote, rollback, delete and reconcile: each writes the
 * desired state and a history row in one store transaction, then pushes the model to
 * every node that holds it and records each node's result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/field_limits.h"
#include "control/control_internal.h"

/* ------------------------------------------------------------------ reconcile */

/* Pushes the models to their nodes (in parallel) and writes one history row per model with
 * its nodes' results. Returns -1 with err naming the first node that failed. */
static int push_and_record(ksv_ctl *ctl, ctl_push_model *pm, size_t n, double timeout_s,
                           ksv_ctl_result *res, ksv_err *err)
{
    ctl_push(ctl, pm, n, timeout_s, res);
    int rc = 0;
    bool txn = ksv_store_begin(ctl->store, err) == 0;
    for (size_t i = 0; i < n; i++) {
        const ksv_model_view *v = pm[i].view;
        char model[160], traffic[512];
        snprintf(model, sizeof model, "%s/%s", v->model.ns, v->model.name);
        ctl_traffic_text(v, traffic, sizeof traffic);
        ksv_err one;
        if (ksv_ctl_history(ctl, "reconcile", model, NULL, NULL, traffic, &pm[i].result, NULL,
                            &one) != 0 &&
            rc == 0) {
            *err = one;
            rc = -1;
        }
        for (size_t k = 0; rc == 0 && k < pm[i].result.n; k++) {
            const ksv_node_result *r = &pm[i].result.nodes[k];
            if (!r->ok)
                rc = ksv_err_set(err, 1, "%s: node %s: %s%s", model, r->node,
                                 r->unconfirmed ? "unconfirmed: " : "", r->message);
        }
    }
    ksv_err ignored;
    if (txn && ksv_store_commit(ctl->store, rc == 0 ? err : &ignored) != 0) {
        ksv_store_abandon(ctl->store);
        rc = -1;
    }
    for (size_t i = 0; i < n; i++)
        ksv_ctl_result_free(&pm[i].result);
    return rc;
}

static int finish_change(ksv_ctl *ctl, const ksv_model_view *v, double timeout_s,
                         ksv_ctl_result *res, ksv_err *err)
{
    ctl_push_model pm = {.view = v};
    return push_and_record(ctl, &pm, 1, timeout_s, res, err);
}

/* Views of several models, pushed together (every node in parallel, each once). */
typedef struct view_set {
    ksv_model_view *views;
    size_t n, cap;
} view_set;

/* Room for one more view in set. */
static int view_set_grow(view_set *set, ksv_err *err)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        ksv_model_view *p = realloc(set->views, cap * sizeof *p);
        if (!p)
            return ksv_err_set(err, 500, "out of memory");
        set->views = p;
        set->cap = cap;
    }
    return 0;
}

static int view_set_add(ksv_ctl *ctl, view_set *set, const char *ref, ksv_err *err)
{
    if (view_set_grow(set, err) != 0 ||
        ksv_ctl_model_view(ctl, ref, NULL, &set->views[set->n], err) != 0)
        return -1;
    set->n++;
    return 0;
}

/* v into set (set owns it then, or it is freed). */
static int view_set_take(view_set *set, ksv_model_view *v, ksv_err *err)
{
    if (view_set_grow(set, err) != 0) {
        ksv_model_view_free(v);
        return -1;
    }
    set->views[set->n++] = *v;
    return 0;
}

/* The model's view as a reconcile pushes it: less the nodes an unfinished waved rollout has
 * not reached (ctl_waves_hold), which go into history as held and into res. 0, or -1 (v
 * then freed). */
static int reconcile_view(ksv_ctl *ctl, const char *ref, const char *ns, ksv_model_view *v,
                          ksv_ctl_result *res, ksv_err *err)
{
    if (ksv_ctl_model_view(ctl, ref, ns, v, err) != 0)
        return -1;
    ksv_ctl_result held = {0};
    char what[512] = "";
    int rc = ctl_waves_hold(ctl, v, &held, what, sizeof what, err);
    if (rc == 1) {
        char model[300];
        snprintf(model, sizeof model, "%s/%s", v->model.ns, v->model.name);
        rc = ksv_ctl_history(ctl, "reconcile", model, NULL, NULL, what, &held, "held", err);
        for (size_t i = 0; rc == 0 && res && i < held.n; i++)
            if (ctl_result_add(res, held.nodes[i].node, true, held.nodes[i].message) != 0)
                rc = ksv_err_set(err, 500, "out of memory");
    }
    ksv_ctl_result_free(&held);
    if (rc < 0) {
        ksv_model_view_free(v);
        return -1;
    }
    return 0;
}

static int view_set_push(ksv_ctl *ctl, view_set *set, double timeout_s, ksv_ctl_result *res,
                         ksv_err *err)
{
    if (set->n == 0)
        return 0;
    ctl_push_model *pm = calloc(set->n, sizeof *pm);
    if (!pm)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < set->n; i++)
        pm[i].view = &set->views[i];
    int rc = push_and_record(ctl, pm, set->n, timeout_s, res, err);
    free(pm);
    return rc;
}

static void view_set_free(view_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        ksv_model_view_free(&set->views[i]);
    free(set->views);
    memset(set, 0, sizeof *set);
}

/* What a release gate decided on the model's nodes, into the store first (gates.c). */
static void gate_catch_up(ksv_ctl *ctl, const char *model, const char *ns)
{
    ksv_model_record m;
    ksv_err ignored;
    if (ksv_store_model_resolve(ctl->store, model, ns, &m, &ignored) != 0)
        return; /* the change itself reports it */
    ctl_gate_catch_up(ctl, m.id);
    ksv_model_record_clear(&m);
}

int ksv_ctl_reconcile(ksv_ctl *ctl, const char *model, const char *ns, double timeout_s,
                      ksv_ctl_result *res, ksv_err *err)
{
    view_set set = {0};
    int rc = 0;
    if (model) {
        gate_catch_up(ctl, model, ns);
        ksv_model_view v;
        if (reconcile_view(ctl, model, ns, &v, res, err) != 0)
            return -1;
        if (v.model.n_nodes > 0) /* every node held: nothing to push */
            rc = finish_change(ctl, &v, timeout_s, res, err);
        ksv_model_view_free(&v);
        return rc;
    }
    ksv_model_record_list list;
    if (ksv_store_model_list(ctl->store, ns, &list, err) != 0)
        return -1;
    for (size_t i = 0; i < list.n && rc == 0; i++) {
        char ref[300];
        snprintf(ref, sizeof ref, "%s/%s", list.items[i].ns, list.items[i].name);
        ctl_gate_catch_up(ctl, list.items[i].id);
        ksv_model_view v;
        rc = reconcile_view(ctl, ref, NULL, &v, res, err);
        if (rc == 0 && v.model.n_nodes == 0)
            ksv_model_view_free(&v);
        else if (rc == 0)
            rc = view_set_take(&set, &v, err);
    }
    ksv_model_record_list_free(&list);
    if (rc == 0)
        rc = view_set_push(ctl, &set, timeout_s, res, err);
    view_set_free(&set);
    return rc;
}

/* ---------------------------------------------------------------------- apply */

static int set_traffic_pair(ksv_ctl *ctl, int64_t model_id, int64_t stable_id, int stable_pct,
                            int64_t other_id, int other_pct, ksv_err *err)
{
    ksv_traffic_entry e[2];
    size_t n = 0;
    if (stable_id && (stable_pct > 0 || !other_id))
        e[n++] = (ksv_traffic_entry){.revision_id = stable_id, .percent = stable_pct};
    if (other_id && other_id != stable_id)
        e[n++] = (ksv_traffic_entry){.revision_id = other_id, .percent = other_pct};
    return ksv_store_traffic_set(ctl->store, model_id, e, n, err);
}

/* Where a spec is placed: --node, else -l SELECTOR, else ksv.io/nodes or
 * ksv.io/node-selector, else the only registered node. */
int ctl_placement(ksv_ctl *ctl, const ksv_isvc *spec, const ksv_apply_options *opts,
                     char ***nodes, size_t *n, ksv_err *err)
{
    const char *const *src = NULL;
    size_t count = 0;
    ksv_node_list all = {0};
    const char *selector = opts->n_nodes ? NULL
                           : opts->selector ? opts->selector
                           : spec->n_nodes ? NULL
                                           : spec->node_selector;
    if (selector) {
        if (ksv_ctl_nodes_selected(ctl, selector, nodes, n, err) != 0)
            return ksv_err_prefix(err, "%s/%s", spec->namespace_name, spec->name);
        if (*n == 0) {
            free(*nodes);
            *nodes = NULL;
            return ksv_err_set(err, 400, "%s/%s: node selector \"%s\" matches no registered "
                               "node (ksv node ls --show-labels)", spec->namespace_name,
                               spec->name, selector);
        }
        return 0;
    }
    if (opts->n_nodes) {
        src = opts->nodes;
        count = opts->n_nodes;
    } else if (spec->n_nodes) {
        src = (const char *const *)spec->nodes;
        count = spec->n_nodes;
    } else {
        if (ksv_store_node_list(ctl->store, &all, err) != 0)
            return -1;
        if (all.n != 1) {
            size_t have = all.n;
            ksv_node_list_free(&all);
            return ksv_err_set(err, 400,
                               "%s:%d: %s/%s: %s; name the nodes with --node NAME or the "
                               "ksv.io/nodes annotation",
                               spec->source, spec->line, spec->namespace_name, spec->name,
                               have == 0 ? "no node is registered (ksv node add NAME local)"
                                         : "several nodes are registered");
        }
        count = 1;
    }
    *nodes = calloc(count, sizeof **nodes);
    for (size_t i = 0; *nodes && i < count; i++) {
        const char *name = src ? src[i] : all.items[0].name;
        ksv_node probe;
        if (ksv_store_node_get(ctl->store, name, &probe, err) != 0) {
            ksv_node_list_free(&all);
            for (size_t j = 0; j < i; j++)
                free((*nodes)[j]);
            free(*nodes);
            return ksv_err_set(err, 404, "%s/%s: node %s is not registered (ksv node ls)",
                               spec->namespace_name, spec->name, name);
        }
        ksv_node_clear(&probe);
        (*nodes)[i] = strdup(name);
    }
    *n = count;
    ksv_node_list_free(&all);
    return *nodes ? 0 : ksv_err_set(err, 500, "out of memory");
}

/* A gated rollout to start on the nodes once the new revision is there. */
typedef struct gate_start {
    bool start;
    char model_ref[200];
    char canary[KSV_DNS_LABEL_MAX + 1];
    char stable[KSV_DNS_LABEL_MAX + 1];
    char *policy;                 /* the stored Canary's policy template */
    /* ksv.io/waves: the new revision (canary) goes out wave by wave over stable (gated
     * wave by wave when policy is set: start is then false, the waves start the gates) */
    bool waved;
    size_t first_wave;            /* an interrupted waved rollout resumes at this wave */
} gate_start;

/* Saves the Canary gating model_id (from this apply) and returns the policy that gates it
 * (this apply's, else the stored one; NULL when the model is not gated). */
static int gate_policy(ksv_ctl *ctl, int64_t model_id, const ksv_canary *canary, char **policy,
                       ksv_err *err)
{
    *policy = NULL;
    if (canary) {
        char *p = ksv_canary_policy_json(canary, "pending", NULL);
        if (!p)
            return ksv_err_set(err, 500, "out of memory");
        if (ksv_store_canary_set(ctl->store, model_id, canary->name, p, err) != 0) {
            free(p);
            return -1;
        }
        *policy = p;
        return 0;
    }
    char *name = NULL;
    int f = ksv_store_canary_get(ctl->store, model_id, &name, policy, err);
    free(name);
    return f < 0 ? -1 : 0;
}

/* One InferenceService into the store: the new desired state and its history row, in one
 * transaction. Sets *changed when anything changed; fills *gs when a Canary gates the new
 * revision (its traffic then starts at 0% and the engine's gate moves it). */
static int apply_one_to_store(ksv_ctl *ctl, const ksv_isvc *spec, const ksv_canary *canary,
                              const ksv_apply_options *opts, bool *changed, gate_start *gs,
                              ksv_err *err)
{
    *changed = false;
    char *policy = NULL;
    char **nodes = NULL;
    size_t n_nodes = 0;
    if (ctl_placement(ctl, spec, opts, &nodes, &n_nodes, err) != 0)
        return -1;
    char *canonical = ksv_manifest_canonical_json(spec);
    char runtime[128];
    snprintf(runtime, sizeof runtime, "%s", spec->runtime);
    if (canonical && spec->runtime_external &&
        ctl_runtime_resolve(ctl, spec, &canonical, runtime, sizeof runtime, err) != 0) {
        for (size_t i = 0; i < n_nodes; i++)
            free(nodes[i]);
        free(nodes);
        free(canonical);
        return -1;
    }
    ksv_sb original, annotations;
    ksv_sb_init(&original);
    ksv_sb_init(&annotations);
    ksv_manifest_write_sorted_json(spec->original, &original);
    ksv_sb_putc(&annotations, '{');
    for (size_t i = 0; i < spec->n_annotations; i++) {
        if (i)
            ksv_sb_putc(&annotations, ',');
        ksv_sb_json_str(&annotations, spec->annotations[i].key);
        ksv_sb_putc(&annotations, ':');
        ksv_sb_json_str(&annotations, spec->annotations[i].value);
    }
    ksv_sb_putc(&annotations, '}');
    int rc = -1;
    if (!canonical || original.oom || annotations.oom) {
        ksv_err_set(err, 500, "out of memory");
        goto out;
    }
    if (ksv_store_begin(ctl->store, err) != 0)
        goto out;
    ksv_model_record existing;
    bool had_model = ksv_store_model_get(ctl->store, spec->namespace_name, spec->name,
                                         &existing, err) == 0;
    bool placement_changed = !had_model || existing.n_nodes != n_nodes;
    for (size_t i = 0; had_model && !placement_changed && i < n_nodes; i++) {
        bool found = false;
        for (size_t j = 0; j < existing.n_nodes; j++)
            found |= strcmp(existing.nodes[j], nodes[i]) == 0;
        placement_changed = !found;
    }
    if (had_model)
        ksv_model_record_clear(&existing);
    ksv_model_record m = {
        .ns = spec->namespace_name,
        .name = spec->name,
        .spec_json = original.data,
        .annotations_json = annotations.data,
        .nodes = nodes,
        .n_nodes = n_nodes,
    };
    int64_t model_id;
    bool created;
    char hash[65];
    ksv_revision_record found;
    if (ksv_store_model_upsert(ctl->store, &m, &model_id, &created, err) != 0 ||
        ksv_store_spec_hash(canonical, hash, err) != 0)
        goto rollback;
    /* Compared with the newest revision only, as Knative does: applying an older spec
     * again makes a new revision of it, it does not silently mean "go back". */
    int f = ksv_store_revision_latest(ctl->store, model_id, &found, err);
    if (f < 0)
        goto rollback;
    char ref[200];
    snprintf(ref, sizeof ref, "%s/%s", spec->namespace_name, spec->name);
    bool same = f == 1 && strcmp(found.spec_sha256, hash) == 0;
    if (f == 1)
        ksv_revision_record_clear(&found);
    if (same) {
        /* Same spec: the live split is the operator's (docs/OPERATIONS.md, "Canary runbook"),
         * but a waved rollout of it that was interrupted goes on from the wave it stopped
         * at, never to every node at once. */
        size_t next = 0;
        int unfinished = spec->n_waves && !placement_changed
                             ? ctl_waves_unfinished(ctl, ref, gs->stable, sizeof gs->stable,
                                                    gs->canary, sizeof gs->canary, &next, err)
                             : 0;
        if (unfinished < 0)
            goto rollback;
        if (unfinished == 1) {
            gs->waved = true;
            gs->first_wave = next;
            snprintf(gs->model_ref, sizeof gs->model_ref, "%s", ref);
            if (gate_policy(ctl, model_id, canary, &policy, err) != 0)
                goto rollback;
            gs->policy = policy; /* NULL: soaked waves */
            policy = NULL;
        }
        if (placement_changed &&
            ksv_ctl_history(ctl, "apply", ref, NULL, NULL, "placement changed", NULL,
                            "recorded", err) != 0)
            goto rollback;
        *changed = placement_changed;
        rc = ksv_store_commit(ctl->store, err);
        goto out;
    }
    if (gate_policy(ctl, model_id, canary, &policy, err) != 0)
        goto rollback;
    int64_t stable = 0;
    if (ksv_store_stable_get(ctl->store, model_id, &stable, err) != 0)
        goto rollback;
    ksv_revision_record rev;
    if (ksv_store_revision_create(ctl->store, model_id, canonical, runtime,
                                  spec->storage_uri, &rev, err) != 0)
        goto rollback;
    char old_text[512] = "none", new_text[512];
    if (stable) {
        ksv_model_view before;
        if (ksv_ctl_model_view(ctl, ref, NULL, &before, err) == 0) {
            ctl_traffic_text(&before, old_text, sizeof old_text);
            ksv_model_view_free(&before);
        }
    }
    int trc;
    ksv_revision_record stable_rev;
    if (stable && spec->n_waves &&
        ksv_store_revision_get_by_id(ctl->store, stable, &stable_rev, err) == 0) {
        gs->waved = true;
        snprintf(gs->model_ref, sizeof gs->model_ref, "%s", ref);
        snprintf(gs->canary, sizeof gs->canary, "%s", rev.name);
        snprintf(gs->stable, sizeof gs->stable, "%s", stable_rev.name);
        ksv_revision_record_clear(&stable_rev);
    }
    if (stable && policy &&
        ksv_store_revision_get_by_id(ctl->store, stable, &stable_rev, err) == 0) {
        /* A Canary gates it: the new revision starts at 0% and the engine's gate moves it
         * (canaryTrafficPercent is ignored; the manifest notes say so). */
        trc = set_traffic_pair(ctl, model_id, stable, 100, rev.id, 0, err);
        snprintf(new_text, sizeof new_text, "%s gated rollout over %s%s", rev.name,
                 stable_rev.name, gs->waved ? " in waves" : "");
        gs->start = !gs->waved; /* waves start their gates one wave at a time */
        snprintf(gs->model_ref, sizeof gs->model_ref, "%s", ref);
        snprintf(gs->canary, sizeof gs->canary, "%s", rev.name);
        snprintf(gs->stable, sizeof gs->stable, "%s", stable_rev.name);
        gs->policy = policy;
        policy = NULL;
        ksv_revision_record_clear(&stable_rev);
    } else if (stable && spec->has_canary) {
        /* KServe: the new revision gets N%, the last rolled-out one keeps the rest. */
        trc = set_traffic_pair(ctl, model_id, stable, 100 - spec->canary_percent, rev.id,
                               spec->canary_percent, err);
        snprintf(new_text, sizeof new_text, "%s canary at %d%%", rev.name, spec->canary_percent);
    } else if (gs->waved) {
        /* Soaked waves (waves.c): the waves carry the new revision to their nodes, and it
         * becomes the rolled-out one only when the last wave succeeded. Until then the
         * store keeps the stable revision's split, so the rollback of a failed wave, or a
         * reconcile, never sends it to nodes no wave reached, not even as a standby copy. */
        trc = set_traffic_pair(ctl, model_id, stable, 100, 0, 0, err);
        snprintf(new_text, sizeof new_text, "%s in waves over %s", rev.name, gs->stable);
    } else {
        trc = set_traffic_pair(ctl, model_id, rev.id, 100, 0, 0, err);
        if (trc == 0)
            trc = ksv_store_stable_set(ctl->store, model_id, rev.id, err);
        snprintf(new_text, sizeof new_text, "%s at 100%%", rev.name);
    }
    ksv_revision_record_clear(&rev);
    if (trc != 0 ||
        ksv_ctl_history(ctl, "apply", ref, NULL, old_text, new_text, NULL, "recorded", err) != 0)
        goto rollback;
    *changed = true;
    rc = ksv_store_commit(ctl->store, err);
    goto out;
rollback:
    ksv_store_abandon(ctl->store);
out:
    free(policy);
    for (size_t i = 0; i < n_nodes; i++)
        free(nodes[i]);
    free(nodes);
    free(canonical);
    ksv_sb_free(&original);
    ksv_sb_free(&annotations);
    return rc;
}

int ksv_ctl_apply(ksv_ctl *ctl, const ksv_manifest_list *list, const ksv_apply_options *opts,
                  ksv_ctl_result *res, ksv_err *err)
{
    /* Every spec into the store first, then one push to every node at once. Reconcile even
     * what did not change: a previous run may have died before the nodes got it, and
     * reconciling is idempotent. A spec the store refuses stops the rest, but what was
     * stored before it is still pushed. */
    if (ctl_quota_admit(ctl, list, err) != 0)
        return -1;
    int rc = 0;
    size_t changed_count = 0, stored = 0, runtimes_changed = 0;
    view_set set = {0};
    ksv_err store_err;
    ksv_err_clear(&store_err);
    /* A Canary must gate something: an InferenceService of this apply or one ksv knows.
     * Checked before anything is stored, so a bad file applies nothing. */
    for (size_t i = 0; i < list->n_canaries; i++) {
        const ksv_canary *c = &list->canaries[i];
        bool here = false;
        for (size_t k = 0; k < list->n && !here; k++)
            here = strcmp(list->items[k].name, c->target) == 0 &&
                   strcmp(list->items[k].namespace_name, c->namespace_name) == 0;
        ksv_model_record known;
        if (!here && ksv_store_model_get(ctl->store, c->namespace_name, c->target, &known,
                                         err) != 0)
            return ksv_err_set(err, 400, "%s:%d:%d: spec.targetRef.name: no InferenceService "
                               "%s/%s in this apply or in ksv's database",
                               c->source, c->target_line, c->target_col, c->namespace_name,
                               c->target);
        if (!here) {
            /* A Canary alone: it gates the next change of a model ksv already has. */
            char *p = ksv_canary_policy_json(c, "pending", NULL);
            int src = p ? ksv_store_canary_set(ctl->store, known.id, c->name, p, err)
                        : ksv_err_set(err, 500, "out of memory");
            free(p);
            ksv_model_record_clear(&known);
            if (src != 0)
                return -1;
        }
    }
    for (size_t i = 0; i < list->n; i++) {
        char ref[300];
        snprintf(ref, sizeof ref, "%s/%s", list->items[i].namespace_name, list->items[i].name);
        gate_catch_up(ctl, ref, NULL);
    }
    gate_start *gates = calloc(list->n ? list->n : 1, sizeof *gates);
    if (!gates)
        return ksv_err_set(err, 500, "out of memory");
    /* Runtimes first: models of the same file may use them. */
    if (ctl_runtimes_store(ctl, list, &runtimes_changed, err) != 0) {
        free(gates);
        return -1;
    }
    for (size_t i = 0; i < list->n; i++) {
        const ksv_isvc *spec = &list->items[i];
        bool changed;
        char ref[200];
        snprintf(ref, sizeof ref, "%s/%s", spec->namespace_name, spec->name);
        if (apply_one_to_store(ctl, spec,
                               ksv_manifest_find_canary(list, spec->namespace_name, spec->name),
                               opts, &changed, &gates[i], &store_err) != 0 ||
            (!gates[i].waved && view_set_add(ctl, &set, ref, &store_err) != 0)) {
            rc = -1;
            break;
        }
        changed_count += changed;
        stored++;
    }
    ksv_err push_err;
    ksv_err_clear(&push_err);
    int prc = view_set_push(ctl, &set, opts->timeout_s, res, &push_err);
    view_set_free(&set);
    /* Waved models after the rest, one at a time: each soaks between its waves. */
    for (size_t i = 0; i < list->n && rc == 0; i++) {
        ksv_err werr;
        if (gates[i].waved &&
            ctl_waves_run(ctl, &list->items[i], gates[i].model_ref, gates[i].stable,
                          gates[i].canary, gates[i].policy, gates[i].first_wave,
                          opts->timeout_s, res, &werr) != 0 &&
            prc == 0) {
            prc = -1;
            push_err = werr;
        }
    }
    /* The new revisions are loaded on their nodes: each gate starts there. */
    for (size_t i = 0; i < list->n; i++) {
        if (gates[i].start && prc == 0 && rc == 0) {
            ksv_model_record m;
            if (ksv_store_model_resolve(ctl->store, gates[i].model_ref, NULL, &m, &push_err) != 0) {
                prc = -1;
            } else {
                if (ctl_gate_start(ctl, &m, gates[i].canary, gates[i].stable, gates[i].policy,
                                   NULL, &push_err) != 0)
                    prc = -1;
                ksv_model_record_clear(&m);
            }
        }
        free(gates[i].policy);
    }
    free(gates);
    if (rc != 0)
        *err = store_err;
    else if (prc != 0)
        *err = push_err;
    res->changed = changed_count > 0 || runtimes_changed > 0;
    if (list->n_runtimes)
        snprintf(res->summary, sizeof res->summary,
                 "%zu runtime(s) applied, %zu changed; %zu model(s) applied, %zu changed",
                 list->n_runtimes, runtimes_changed, stored, changed_count);
    else
        snprintf(res->summary, sizeof res->summary, "%zu model(s) applied, %zu changed", stored,
                 changed_count);
    return rc == 0 && prc == 0 ? 0 : -1;
}

/* -------------------------------------------------------------------- rollout */

static const ksv_revision_record *view_revision(const ksv_model_view *v, int64_t id)
{
    for (size_t i = 0; i < v->revisions.n; i++)
        if (v->revisions.items[i].id == id)
            return &v->revisions.items[i];
    return NULL;
}

int ksv_ctl_rollout(ksv_ctl *ctl, const ksv_rollout_request *req, ksv_ctl_result *res,
                    ksv_err *err)
{
    gate_catch_up(ctl, req->model, req->ns);
    ksv_model_view v;
    if (ksv_ctl_model_view(ctl, req->model, req->ns, &v, err) != 0)
        return -1;
    char ref[200], old_text[512], new_text[512];
    snprintf(ref, sizeof ref, "%s/%s", v.model.ns, v.model.name);
    ctl_traffic_text(&v, old_text, sizeof old_text);
    const char *action = req->op == KSV_ROLLOUT_SET_TRAFFIC ? "set-traffic"
                         : req->op == KSV_ROLLOUT_PROMOTE   ? "promote"
                                                            : "rollback";
    int rc = -1;
    if (ksv_store_begin(ctl->store, err) != 0)
        goto out;
    const ksv_revision_record *canary = view_revision(&v, v.canary_id);
    const ksv_revision_record *stable = view_revision(&v, v.stable_id);
    switch (req->op) {
    case KSV_ROLLOUT_SET_TRAFFIC:
        if (req->percent < 0 || req->percent > 100) {
            ksv_err_set(err, 2, "set-traffic: PERCENT must be 0..100, got %d", req->percent);
            goto rollback;
        }
        if (!canary || !stable) {
            ksv_err_set(err, 409, "%s has no canary: apply a changed spec to make one", ref);
            goto rollback;
        }
        if (set_traffic_pair(ctl, v.model.id, stable->id, 100 - req->percent, canary->id,
                             req->percent, err) != 0)
            goto rollback;
        snprintf(new_text, sizeof new_text, "%s=%d,%s=%d", stable->name, 100 - req->percent,
                 canary->name, req->percent);
        break;
    case KSV_ROLLOUT_PROMOTE:
        if (!canary) {
            ksv_err_set(err, 409, "%s has no canary to promote", ref);
            goto rollback;
        }
        if (req->to_revision && strcmp(req->to_revision, canary->name) != 0) {
            /* The waves promote the revision they rolled out, not a newer one. */
            ksv_err_set(err, 409, "%s: %s is no longer the newest revision (%s is)", ref,
                        req->to_revision, canary->name);
            goto rollback;
        }
        if (set_traffic_pair(ctl, v.model.id, canary->id, 100, 0, 0, err) != 0 ||
            ksv_store_stable_set(ctl->store, v.model.id, canary->id, err) != 0)
            goto rollback;
        snprintf(new_text, sizeof new_text, "%s=100 (promoted)", canary->name);
        break;
    case KSV_ROLLOUT_ROLLBACK: {
        ksv_revision_record target;
        bool have_target = false;
        if (req->to_revision) {
            if (ksv_store_revision_get(ctl->store, v.model.id, req->to_revision, &target, err) != 0)
                goto rollback;
            have_target = true;
        } else if (canary && stable && ksv_model_view_percent(&v, canary->id) > 0) {
            /* A canary holds traffic: everything back to the rolled-out revision. */
            if (ksv_store_revision_get_by_id(ctl->store, stable->id, &target, err) != 0)
                goto rollback;
            have_target = true;
        } else {
            int f = ksv_store_stable_previous(ctl->store, v.model.id, &target, err);
            if (f < 0)
                goto rollback;
            if (f == 0) {
                ksv_err_set(err, 409, "%s: nothing to roll back to (no earlier rolled-out "
                                      "revision; use --to REV)", ref);
                goto rollback;
            }
            have_target = true;
        }
        int trc = set_traffic_pair(ctl, v.model.id, target.id, 100, 0, 0, err);
        if (trc == 0)
            trc = ksv_store_stable_set(ctl->store, v.model.id, target.id, err);
        snprintf(new_text, sizeof new_text, "%s=100 (rolled back)", target.name);
        if (have_target)
            ksv_revision_record_clear(&target);
        if (trc != 0)
            goto rollback;
        break;
    }
    }
    if (ksv_ctl_history(ctl, action, ref, NULL, old_text, new_text, NULL, "recorded", err) != 0 ||
        ksv_store_commit(ctl->store, err) != 0)
        goto rollback;
    ksv_model_view_free(&v);
    if (ksv_ctl_model_view(ctl, ref, NULL, &v, err) != 0)
        return -1;
    res->changed = true;
    snprintf(res->summary, sizeof res->summary, "%s %s: %s -> %s", action, ref, old_text, new_text);
    rc = finish_change(ctl, &v, req->timeout_s, res, err);
    goto out;
rollback:
    ksv_store_abandon(ctl->store);
out:
    ksv_model_view_free(&v);
    return rc;
}

int ksv_ctl_delete(ksv_ctl *ctl, const char *model, const char *ns, double timeout_s,
                   ksv_ctl_result *res, ksv_err *err)
{
    ksv_model_view v;
    if (ksv_ctl_model_view(ctl, model, ns, &v, err) != 0)
        return -1;
    char ref[200], old_text[512];
    snprintf(ref, sizeof ref, "%s/%s", v.model.ns, v.model.name);
    ctl_traffic_text(&v, old_text, sizeof old_text);
    int rc = -1;
    if (ksv_store_begin(ctl->store, err) != 0)
        goto out;
    if (ksv_store_model_delete(ctl->store, v.model.id, err) != 0 ||
        ksv_ctl_history(ctl, "delete", ref, NULL, old_text, NULL, NULL, "recorded", err) != 0 ||
        ksv_store_commit(ctl->store, err) != 0) {
        ksv_store_abandon(ctl->store);
        goto out;
    }
    ctl_push_model pm = {.view = &v, .remove = true};
    ctl_push(ctl, &pm, 1, timeout_s, res);
    res->changed = true;
    snprintf(res->summary, sizeof res->summary, "deleted %s", ref);
    rc = ksv_ctl_history(ctl, "reconcile", ref, NULL, NULL, "deleted", &pm.result, NULL, err);
    ksv_ctl_result_free(&pm.result);
    if (rc == 0 && !ksv_ctl_result_ok(res))
        rc = ksv_err_set(err, 1, "%s deleted from the store; some nodes failed", ref);
out:
    ksv_model_view_free(&v);
    return rc;
}
