/* waves.c: a model's new revision rolled out over its nodes in waves (ksv.io/waves,
 * ksv.io/wave-soak): each wave's nodes get the new desired state, the wave soaks, and the
 * next starts only when the new revision's figures on the nodes so far are within the
 * stable revision's; a failed wave rolls the model back and stops. Every step is a history
 * row, which is also where `ksv rollout status` reads each node's wave and phase from. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "control/control_internal.h"

/* Soak verdict tolerances (docs/OPERATIONS.md, "Waves"). */
#define ERROR_SLACK 0.01          /* the new revision's error share may pass stable's by 1 pt */
#define P99_FACTOR 2.0            /* ... and its P99 twice stable's plus P99_SLACK_S */
#define P99_SLACK_S 0.005
#define P99_MIN_REQUESTS 20       /* fewer answers on either side: P99 is not compared */

void ctl_waves_plan(const ksv_isvc *spec, size_t n_nodes, size_t *ends, size_t *n_waves)
{
    *n_waves = 0;
    size_t prev = 0;
    for (size_t i = 0; i < spec->n_waves; i++) {
        size_t c = spec->waves[i].percent
                       ? (size_t)ceil((double)spec->waves[i].value * (double)n_nodes / 100.0)
                       : (size_t)spec->waves[i].value;
        if (c > n_nodes)
            c = n_nodes;
        if (c <= prev)
            continue; /* 25% of 3 nodes and 1 node are the same wave */
        ends[(*n_waves)++] = c;
        prev = c;
    }
    if (prev < n_nodes) /* the last wave is everything that remains */
        ends[(*n_waves)++] = n_nodes;
}

typedef struct rev_figures {
    uint64_t requests, bad;       /* answers, and those not 2xx */
    double p99_s;                 /* NaN: no latency figures */
} rev_figures;

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Scrapes every node of the model into w (a node that does not answer: err, -1). */
static int scrape_all(ksv_ctl *ctl, char *const *nodes, size_t n, ksv_mwin *w, ksv_err *err)
{
    for (size_t i = 0; i < n; i++) {
        ksv_node_probe p;
        if (ksv_ctl_node_probe(ctl, nodes[i], NULL, &p, err) != 0)
            return -1;
        int rc = !p.reachable ? ksv_err_set(err, 503, "node %s did not answer: %s", nodes[i],
                                            p.error)
                 : !p.has_scrape ? ksv_err_set(err, 502, "node %s: no figures: %s", nodes[i],
                                               p.figures_error)
                                 : ksv_mwin_add_scrape(w, nodes[i], p.at_ms,
                                                       ksv_scrape_shared_get(p.scrape), err);
        ksv_node_probe_free(&p);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static void figures_of(const ksv_mwin *w, const char *model, const char *revision,
                       int64_t now_ms, int64_t window_ms, rev_figures *out)
{
    ksv_mwin_sel sel = {NULL, model, revision};
    ksv_mwin_rate_stats r;
    ksv_mwin_latency_stats l;
    ksv_err ignored;
    memset(out, 0, sizeof *out);
    out->p99_s = NAN;
    if (ksv_mwin_rates(w, &sel, now_ms, window_ms, &r, &ignored) == 0 && r.has_data) {
        out->requests = r.requests;
        out->bad = r.requests - r.requests_2xx;
    }
    if (ksv_mwin_latency(w, &sel, now_ms, window_ms, &l, &ignored) == 0 && l.has_data)
        out->p99_s = l.p99_s;
}

/* Soaks soak_s and judges the new revision against the stable one over that time, on every
 * node of the model (the new one runs only on the waves so far). 0 with verdict "ok: ..."
 * or "failed: ..." in why; -1 when the figures could not be read. */
static int soak(ksv_ctl *ctl, const ksv_model_view *v, const char *stable, const char *fresh,
                double soak_s, bool *ok, char *why, size_t cap, ksv_err *err)
{
    ksv_mwin *w;
    if (ksv_mwin_new(4, &w, err) != 0)
        return -1;
    int64_t t0 = ksv_wall_ms();
    int rc = scrape_all(ctl, v->model.nodes, v->model.n_nodes, w, err);
    if (rc == 0) {
        sleep_s(soak_s > 0 ? soak_s : 0.05);
        rc = scrape_all(ctl, v->model.nodes, v->model.n_nodes, w, err);
    }
    if (rc != 0) {
        ksv_mwin_free(w);
        *ok = false;
        snprintf(why, cap, "failed: %s", err->msg);
        return 0; /* a node of the wave stopped answering: the wave failed */
    }
    int64_t now = ksv_wall_ms(), window = now - t0 + 1;
    rev_figures s, f;
    figures_of(w, v->model.name, stable, now, window, &s);
    figures_of(w, v->model.name, fresh, now, window, &f);
    ksv_mwin_free(w);
    double s_err = s.requests ? (double)s.bad / (double)s.requests : 0,
           f_err = f.requests ? (double)f.bad / (double)f.requests : 0;
    *ok = true;
    if (f.bad > 0 && f_err > s_err + ERROR_SLACK) {
        *ok = false;
        snprintf(why, cap, "failed: %s answered %llu of %llu requests with errors (%.1f%%; "
                 "%s %.1f%%)", fresh, (unsigned long long)f.bad, (unsigned long long)f.requests,
                 100 * f_err, stable, 100 * s_err);
    } else if (f.requests >= P99_MIN_REQUESTS && s.requests >= P99_MIN_REQUESTS &&
               !isnan(f.p99_s) && !isnan(s.p99_s) && f.p99_s > P99_FACTOR * s.p99_s + P99_SLACK_S) {
        *ok = false;
        snprintf(why, cap, "failed: %s P99 %.1f ms (%s %.1f ms)", fresh, f.p99_s * 1e3, stable,
                 s.p99_s * 1e3);
    } else if (f.requests == 0) {
        snprintf(why, cap, "succeeded: no requests reached %s in the %.0f s soak", fresh, soak_s);
    } else {
        snprintf(why, cap, "succeeded: %s %llu requests, %.1f%% errors (%s %.1f%%)", fresh,
                 (unsigned long long)f.requests, 100 * f_err, stable, 100 * s_err);
    }
    return 0;
}

/* The view with only nodes[from, to) (borrowed pointers; the copy owns nothing). */
static ksv_model_view wave_view(const ksv_model_view *v, size_t from, size_t to)
{
    ksv_model_view w = *v;
    w.model.nodes = v->model.nodes + from;
    w.model.n_nodes = to - from;
    return w;
}

/* The revision named name in v (NULL when the view has none). */
static const ksv_revision_record *revision_named(const ksv_model_view *v, const char *name)
{
    for (size_t i = 0; i < v->revisions.n; i++)
        if (strcmp(v->revisions.items[i].name, name) == 0)
            return &v->revisions.items[i];
    return NULL;
}

/* After the gates of some waves promoted: their events into history (the store follows
 * each gate), the model's nodes read side by side, each once. */
static void import_gate_events(ksv_ctl *ctl, const ksv_model_view *v)
{
    ksv_err ignored;
    ctl_gate_import_nodes(ctl, v->model.nodes, v->model.n_nodes, NULL, &ignored);
}

int ctl_waves_run(ksv_ctl *ctl, const ksv_isvc *spec, const char *ref, const char *stable,
                  const char *fresh, const char *policy, size_t first_wave, double timeout_s,
                  ksv_ctl_result *res, ksv_err *err)
{
    ksv_model_view v;
    if (ksv_ctl_model_view(ctl, ref, NULL, &v, err) != 0)
        return -1;
    size_t ends[KSV_MANIFEST_MAX_WAVES + 1], n_waves;
    ctl_waves_plan(spec, v.model.n_nodes, ends, &n_waves);
    /* Gated: every wave's nodes load fresh at 0% beside stable, and their gate moves the
     * weight. The split is set here, not read from the store: a console importing the
     * first waves' promotions moves the store's split to fresh at 100%, which pushed to
     * the next wave would skip its gate. */
    ksv_traffic_entry gated_split[2];
    const ksv_revision_record *st_rev = revision_named(&v, stable),
                              *fr_rev = revision_named(&v, fresh);
    if (policy) {
        if (!st_rev || !fr_rev) {
            ksv_model_view_free(&v);
            return ksv_err_set(err, 409, "%s: revision %s or %s is no longer stored", ref,
                               stable, fresh);
        }
        gated_split[0] = (ksv_traffic_entry){.revision_id = st_rev->id, .percent = 100};
        gated_split[1] = (ksv_traffic_entry){.revision_id = fr_rev->id, .percent = 0};
    }
    /* Soaked waves of a whole rollout (no Canary, no canaryTrafficPercent): the store keeps
     * the stable revision's split until every wave succeeded (rollout.c), so each wave's
     * nodes get fresh at 100% from this split, and the store follows with a promotion
     * after the last wave. */
    bool whole = !policy && fr_rev && !ctl_model_view_in_split(&v, fr_rev->id);
    ksv_traffic_entry whole_split = {.revision_id = fr_rev ? fr_rev->id : 0, .percent = 100};
    char text[256];
    int rc = 0;
    if (first_wave == 0) {
        /* The plan first: every node and its wave, so `rollout status` can show what waits. */
        ksv_ctl_result plan = {0};
        for (size_t k = 0, i = 0; k < n_waves; k++)
            for (; i < ends[k]; i++) {
                char wave[32];
                snprintf(wave, sizeof wave, "wave %zu", k + 1);
                ctl_result_add(&plan, v.model.nodes[i], true, wave);
            }
        snprintf(text, sizeof text, "%s in %zu waves%s", fresh, n_waves,
                 policy ? ", gated" : "");
        rc = ksv_ctl_history(ctl, "waves", ref, NULL, stable, text, &plan, "planned", err);
        ksv_ctl_result_free(&plan);
    } else {
        snprintf(text, sizeof text, "%s from wave %zu/%zu", fresh, first_wave + 1, n_waves);
        rc = ksv_ctl_history(ctl, "wave-resume", ref, NULL, stable, text, NULL, "resumed",
                             err);
    }
    for (size_t k = first_wave; rc == 0 && k < n_waves; k++) {
        size_t from = k ? ends[k - 1] : 0;
        ksv_model_view wv = wave_view(&v, from, ends[k]);
        if (policy || whole) {
            wv.traffic.items = policy ? gated_split : &whole_split;
            wv.traffic.n = policy ? 2 : 1;
        }
        ctl_push_model pm = {.view = &wv};
        ctl_push(ctl, &pm, 1, timeout_s, res);
        bool ok = true;
        char why[600] = "";
        for (size_t i = 0; i < pm.result.n && ok; i++)
            if (!pm.result.nodes[i].ok) {
                ok = false;
                snprintf(why, sizeof why, "failed: node %.64s: %s%.400s", pm.result.nodes[i].node,
                         pm.result.nodes[i].unconfirmed ? "unconfirmed: " : "",
                         pm.result.nodes[i].message);
            }
        if (ok && policy) {
            /* The wave's gates: started on its nodes only, and all must promote. The
             * soak, when the manifest sets one, still passes after them before the next
             * wave; the 60 s default is for waves without a gate, whose soak is their
             * only judge (the gate has judged these already). */
            ksv_model_record wm = wv.model;
            ksv_err gerr;
            if (ctl_gate_start(ctl, &wm, fresh, stable, policy, NULL, &gerr) != 0) {
                ok = false;
                snprintf(why, sizeof why, "failed: %.500s", gerr.msg);
            } else {
                ok = ctl_gate_wait_nodes(ctl, v.model.name, fresh, wm.nodes, wm.n_nodes,
                                         timeout_s, why, sizeof why) == 1;
            }
            if (ok && spec->wave_soak_set && spec->wave_soak_s > 0)
                sleep_s((double)spec->wave_soak_s);
        } else if (ok && soak(ctl, &v, stable, fresh, (double)spec->wave_soak_s, &ok, why,
                              sizeof why, err) != 0) {
            ok = false;
        }
        snprintf(text, sizeof text, "%s wave %zu/%zu", fresh, k + 1, n_waves);
        rc = ksv_ctl_history(ctl, "wave", ref, NULL, stable, text, &pm.result, why, err);
        ksv_ctl_result_free(&pm.result);
        if (rc == 0 && !ok) {
            /* The revision failed here: the whole model goes back to the stable revision
             * (the earlier waves too, so the store describes one state again). The gates'
             * events first, so what they decided is in history before the rollback. */
            if (policy)
                import_gate_events(ctl, &v);
            ksv_rollout_request back = {.op = KSV_ROLLOUT_ROLLBACK, .model = ref,
                                        .to_revision = stable, .timeout_s = timeout_s};
            ksv_ctl_result rb = {0};
            ksv_err rerr;
            int brc = ksv_ctl_rollout(ctl, &back, &rb, &rerr);
            ksv_ctl_result_free(&rb);
            rc = ksv_err_set(err, 1, "%s: wave %zu/%zu %s; %s", ref, k + 1, n_waves, why,
                             brc == 0 ? "rolled back to the stable revision"
                                      : "the rollback failed too (ksv rollout rollback)");
        }
    }
    if (rc == 0 && whole) {
        /* Every wave succeeded: fresh is the rolled-out revision now, in the store too. */
        ksv_rollout_request up = {.op = KSV_ROLLOUT_PROMOTE, .model = ref,
                                  .to_revision = fresh, .timeout_s = timeout_s};
        ksv_ctl_result pr = {0};
        rc = ksv_ctl_rollout(ctl, &up, &pr, err);
        ksv_ctl_result_free(&pr);
        if (rc != 0)
            ksv_err_prefix(err, "%s: every wave succeeded; promoting %s", ref, fresh);
    }
    if (rc == 0 && policy) /* every gate promoted: the store follows them */
        import_gate_events(ctl, &v);
    ksv_model_view_free(&v);
    return rc;
}

int ctl_waves_unfinished(ksv_ctl *ctl, const char *ref, char *stable, size_t stable_cap,
                         char *fresh, size_t fresh_cap, size_t *next_wave, ksv_err *err)
{
    *next_wave = 0;
    ksv_history_list h;
    if (ksv_store_history_list(ctl->store, ref, 5000, &h, err) != 0)
        return -1;
    /* Newest first: the operator's changes and the waves after the newest plan. */
    size_t plan = h.n, succeeded = 0;
    bool ended = false;
    for (size_t i = 0; i < h.n && plan == h.n; i++) {
        const ksv_history_entry *e = &h.items[i];
        if (strcmp(e->action, "waves") == 0)
            plan = i;
        else if (strcmp(e->action, "wave") == 0 && strncmp(e->result, "succeeded", 9) == 0)
            succeeded++;
        else if (strcmp(e->action, "wave") == 0) /* a failed wave: rolled back, over */
            ended = true;
        else if (strcmp(e->action, "rollback") == 0 || strcmp(e->action, "promote") == 0 ||
                 strcmp(e->action, "set-traffic") == 0)
            ended = true;
    }
    int found = 0;
    size_t total = 0;
    char rev[128] = "";
    if (plan < h.n && !ended &&
        sscanf(h.items[plan].new_value ? h.items[plan].new_value : "", "%127s in %zu waves",
               rev, &total) == 2 && succeeded < total && h.items[plan].old_value) {
        ksv_model_view v;
        if (ksv_ctl_model_view(ctl, ref, NULL, &v, err) != 0) {
            ksv_history_list_free(&h);
            return -1;
        }
        /* Still the newest revision: a newer spec's apply starts its own waves. */
        const ksv_revision_record *newest = NULL;
        for (size_t i = 0; i < v.revisions.n; i++)
            if (!newest || v.revisions.items[i].seq > newest->seq)
                newest = &v.revisions.items[i];
        if (newest && strcmp(newest->name, rev) == 0) {
            snprintf(fresh, fresh_cap, "%s", rev);
            snprintf(stable, stable_cap, "%s", h.items[plan].old_value);
            *next_wave = succeeded;
            found = 1;
        }
        ksv_model_view_free(&v);
    }
    ksv_history_list_free(&h);
    return found;
}

/* ---- reconcile ---- */

int ctl_waves_hold(ksv_ctl *ctl, ksv_model_view *v, ksv_ctl_result *held, char *what,
                   size_t what_cap, ksv_err *err)
{
    const char *ann = v->model.annotations_json;
    if (!ann || !strstr(ann, "\"ksv.io/waves\"")) /* no waves: no history to read */
        return 0;
    char ref[300], stable[128], fresh[128];
    snprintf(ref, sizeof ref, "%s/%s", v->model.ns, v->model.name);
    size_t next = 0;
    int u = ctl_waves_unfinished(ctl, ref, stable, sizeof stable, fresh, sizeof fresh, &next,
                                 err);
    if (u != 1)
        return u;
    /* The newest plan says each node's wave ("ok: wave K"); waves 1..next succeeded. */
    ksv_history_list h;
    if (ksv_store_history_list(ctl->store, ref, 5000, &h, err) != 0)
        return -1;
    json_object *plan = NULL;
    size_t total = 0;
    for (size_t i = 0; i < h.n && !plan; i++)
        if (strcmp(h.items[i].action, "waves") == 0) {
            plan = h.items[i].node_results_json
                       ? json_tokener_parse(h.items[i].node_results_json)
                       : json_object_new_object();
            sscanf(h.items[i].new_value ? h.items[i].new_value : "", "%*s in %zu waves",
                   &total);
        }
    ksv_history_list_free(&h);
    if (!plan)
        return ksv_err_set(err, 500, "%s: the waves' plan cannot be read", ref);
    size_t kept = 0;
    int rc = 0;
    for (size_t i = 0; i < v->model.n_nodes; i++) {
        char *node = v->model.nodes[i];
        json_object *val;
        size_t k = 0;
        if (json_object_object_get_ex(plan, node, &val))
            sscanf(json_object_get_string(val), "ok: wave %zu", &k);
        if (k <= next) { /* its wave succeeded (or it came after the plan): reconciled */
            v->model.nodes[kept++] = node;
            continue;
        }
        char msg[300];
        snprintf(msg, sizeof msg, "left as it is: wave %zu/%zu of %s %s (ksv apply of the "
                 "same manifest resumes the waves)", k, total, fresh,
                 k == next + 1 ? "did not finish" : "has not started");
        if (rc == 0 && ctl_result_add(held, node, true, msg) != 0)
            rc = ksv_err_set(err, 500, "out of memory");
        free(node);
    }
    v->model.n_nodes = kept;
    json_object_put(plan);
    /* Soaked waves keep the stable revision's split in the store until the last wave
     * succeeded (ctl_waves_run sends fresh at 100% to each wave's nodes through its own
     * split): the nodes of the waves that succeeded are reconciled to that, not sent back
     * to the stable revision they were moved off. */
    const ksv_revision_record *fr_rev = revision_named(v, fresh);
    bool whole = rc == 0 && fr_rev && !ctl_model_view_in_split(v, fr_rev->id) &&
                 v->traffic.n >= 1;
    char *fresh_name = whole ? strdup(fresh) : NULL;
    if (whole && !fresh_name) {
        rc = ksv_err_set(err, 500, "out of memory");
    } else if (whole) {
        for (size_t i = 0; i < v->traffic.n; i++) /* the view owns the entries' names */
            free(v->traffic.items[i].revision_name);
        v->traffic.items[0] = (ksv_traffic_entry){
            .revision_id = fr_rev->id, .revision_name = fresh_name, .percent = 100};
        v->traffic.n = 1;
    }
    snprintf(what, what_cap, "%s in %zu waves, unfinished after %zu: %zu node(s) left as "
             "they are for ksv apply to resume", fresh, total, next, held->n);
    return rc < 0 ? -1 : 1;
}

/* ---- status ---- */

/* Each node's wave and phase of the newest waved rollout of the model, from history. */
int ksv_ctl_wave_status(ksv_ctl *ctl, const char *model, const char *ns, json_object **out,
                        ksv_err *err)
{
    *out = NULL;
    ksv_model_record m;
    if (ksv_ctl_model_resolve(ctl, model, ns, &m, err) != 0)
        return -1;
    char ref[300];
    snprintf(ref, sizeof ref, "%s/%s", m.ns, m.name);
    ksv_model_record_clear(&m);
    ksv_history_list h;
    if (ksv_store_history_list(ctl->store, ref, 5000, &h, err) != 0)
        return -1;
    /* Newest first: find the newest plan, then read forward (towards newer) from it. */
    size_t plan = h.n;
    for (size_t i = 0; i < h.n && plan == h.n; i++)
        if (strcmp(h.items[i].action, "waves") == 0)
            plan = i;
    if (plan == h.n) {
        ksv_history_list_free(&h);
        return 0;
    }
    const ksv_history_entry *p = &h.items[plan];
    char rev[128] = "";
    sscanf(p->new_value ? p->new_value : "", "%127s", rev);
    json_object *nodes = p->node_results_json ? json_tokener_parse(p->node_results_json) : NULL;
    json_object *o = json_object_new_object(), *list = json_object_new_array();
    json_object_object_add(o, "revision", json_object_new_string(rev));
    size_t total = 0;
    sscanf(p->new_value ? p->new_value : "", "%*s in %zu waves", &total);
    json_object_object_add(o, "waves", json_object_new_int((int)total));
    /* Outcome of each wave: 0 not reached, 1 succeeded, -1 failed. */
    int outcome[KSV_MANIFEST_MAX_WAVES + 2] = {0};
    size_t failed_wave = 0;
    for (size_t i = plan; i-- > 0;) {
        const ksv_history_entry *e = &h.items[i];
        size_t k = 0, of = 0;
        if (strcmp(e->action, "wave") != 0 || !e->new_value ||
            sscanf(e->new_value, "%*s wave %zu/%zu", &k, &of) != 2 || k < 1 ||
            k > KSV_MANIFEST_MAX_WAVES + 1)
            continue;
        outcome[k] = strncmp(e->result, "succeeded", 9) == 0 ? 1 : -1;
        if (outcome[k] < 0 && !failed_wave)
            failed_wave = k;
    }
    json_object_object_foreach(nodes, node, val)
    {
        size_t k = 0;
        sscanf(json_object_get_string(val), "ok: wave %zu", &k);
        const char *phase = k > KSV_MANIFEST_MAX_WAVES + 1 ? "unknown"
                            : failed_wave && k == failed_wave ? "failed, rolled back"
                            : failed_wave && k < failed_wave  ? "rolled back"
                            : failed_wave                      ? "not started"
                            : outcome[k] > 0                   ? "succeeded"
                            : k > 0 && (k == 1 || outcome[k - 1] > 0) ? "in progress"
                                                               : "pending";
        json_object *n = json_object_new_object();
        json_object_object_add(n, "node", json_object_new_string(node));
        json_object_object_add(n, "wave", json_object_new_int((int)k));
        json_object_object_add(n, "phase", json_object_new_string(phase));
        json_object_array_add(list, n);
    }
    json_object_object_add(o, "nodes", list);
    json_object_put(nodes);
    ksv_history_list_free(&h);
    *out = o;
    return 0;
}
