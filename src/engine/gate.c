/* gate.c: the release gate's controller: the rollout table, the tick that holds, judges,
 * advances, promotes or rolls back each rollout, operator actions, persistence in
 * STATE_DIR/rollouts.json, and the rollout's JSON and Prometheus views.
 * See gate.h for the locking rules and gate_policy.h for the policy and progress. */
#include "engine/gate.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/fileutil.h"
#include "common/histogram.h"
#include "common/log.h"
#include "engine/gate_policy.h"

#define TICK_NS (100 * 1000000L)
#define RING (KSV_GATE_MAX_WINDOW_INTERVALS + 2)
#define ROLLOUTS_FILE_MAX (4u << 20)

/* The canary's counters at one moment (monotonic seconds). */
typedef struct gate_sample {
    double mono;
    uint64_t ok, total;           /* the canary's answers to clients */
    uint64_t m_ok, m_total;       /* its answers to mirrored copies */
    uint64_t rows, diff_rows;     /* mirrored rows compared with stable's, and differing */
    ksv_hist_snap *hist, *mhist;
} gate_sample;

typedef struct rollout {
    char model[KSV_NAME_MAX];
    ksv_gate_policy policy;
    ksv_gate_progress prog;       /* written under both mutexes, read under either */
    int actual_weight;            /* the canary's effective share when last looked at */
    uint64_t checks_total[KSV_GATE_MAX_METRICS][4]; /* by verdict, since the engine started */
    /* Only the apply_mu holder touches these. */
    double hold_mono;             /* when the current hold began; 0: begin one next tick */
    bool mirroring;               /* the registry copies requests to the canary now */
    bool warm_held;               /* canary and stable are held loaded (hold_warm) */
    gate_sample ring[RING];       /* one sample per judgement, the window's baselines */
    size_t ring_n, ring_next;
} rollout;

struct ksv_gate {
    ksv_registry *reg;
    ksv_event_log *events;
    char *state_path;
    pthread_mutex_t apply_mu;     /* a decision and its effects, one at a time */
    pthread_mutex_t mu;           /* the table and each rollout's prog */
    rollout **items;
    size_t n, cap;
    pthread_t thread;
    pthread_mutex_t wake_mu;
    pthread_cond_t wake;
    bool stop, started;
};


static rollout *find(ksv_gate *g, const char *model)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->items[i]->model, model) == 0)
            return g->items[i];
    return NULL;
}

static void ring_clear(rollout *r)
{
    for (size_t i = 0; i < RING; i++) {
        free(r->ring[i].hist);
        free(r->ring[i].mhist);
        r->ring[i].hist = r->ring[i].mhist = NULL;
    }
    r->ring_n = r->ring_next = 0;
}

static void rollout_free(rollout *r)
{
    if (!r)
        return;
    ring_clear(r);
    free(r);
}

/* Publishes a new progress for readers. Caller holds apply_mu. */
/* Publishes a new progress to readers (GET state). Every transition appends its event
 * first, then commits, then persists: whoever sees a phase can already read its event (a
 * console importing events when it sees Succeeded finds gate-succeeded), and a crash
 * before the save repeats the transition and its event rather than losing the event. */
static void commit(ksv_gate *g, rollout *r, const ksv_gate_progress *p)
{
    pthread_mutex_lock(&g->mu);
    r->prog = *p;
    pthread_mutex_unlock(&g->mu);
}

/* ------------------------------------------------------------------ persistence */

static void write_rollout_record(ksv_sb *sb, const rollout *r)
{
    ksv_sb_puts(sb, "{\"model\":");
    ksv_sb_json_str(sb, r->model);
    ksv_sb_puts(sb, ",\"policy\":");
    ksv_gate_policy_to_json(sb, &r->policy);
    ksv_sb_puts(sb, ",\"progress\":");
    ksv_gate_progress_to_json(sb, &r->prog, &r->policy);
    ksv_sb_putc(sb, '}');
}

/* Writes rollouts.json atomically. Caller holds apply_mu. */
static void persist(ksv_gate *g)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    pthread_mutex_lock(&g->mu);
    ksv_sb_puts(&sb, "{\"version\":1,\"rollouts\":[");
    for (size_t i = 0; i < g->n; i++) {
        if (i)
            ksv_sb_putc(&sb, ',');
        write_rollout_record(&sb, g->items[i]);
    }
    ksv_sb_puts(&sb, "]}\n");
    pthread_mutex_unlock(&g->mu);
    ksv_err err;
    if (sb.oom)
        ksv_log(KSV_LOG_ERROR, NULL, "gate: out of memory saving %s", g->state_path);
    else if (ksv_write_file_atomic(g->state_path, sb.data, sb.len, 0600, &err) != 0)
        ksv_log(KSV_LOG_ERROR, NULL, "gate: could not save rollouts: %s", err.msg);
    ksv_sb_free(&sb);
}

static void event(ksv_gate *g, const rollout *r, const ksv_gate_progress *p, const char *kind,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int restore(ksv_gate *g, ksv_err *err)
{
    char *text = NULL;
    ksv_err rerr;
    if (ksv_read_file(g->state_path, ROLLOUTS_FILE_MAX, &text, NULL, &rerr) != 0)
        return rerr.status == 404 ? 0 : ksv_err_set(err, 500, "%s", rerr.msg);
    json_object *root = json_tokener_parse(text);
    free(text);
    json_object *list;
    if (!root || !json_object_object_get_ex(root, "rollouts", &list) ||
        !json_object_is_type(list, json_type_array)) {
        json_object_put(root);
        return ksv_err_set(err, 500, "%s is not a valid rollouts file; move it aside to start "
                                     "without rollouts", g->state_path);
    }
    int rc = 0;
    for (size_t i = 0; i < json_object_array_length(list) && rc == 0; i++) {
        json_object *o = json_object_array_get_idx(list, i), *model, *policy, *progress;
        rollout *r = calloc(1, sizeof *r);
        ksv_err perr;
        if (!r) {
            rc = ksv_err_set(err, 500, "out of memory");
        } else if (!json_object_object_get_ex(o, "model", &model) ||
                   !json_object_is_type(model, json_type_string) ||
                   !ksv_valid_name(json_object_get_string(model)) ||
                   !json_object_object_get_ex(o, "policy", &policy) ||
                   !json_object_object_get_ex(o, "progress", &progress)) {
            rc = ksv_err_set(err, 500, "%s: rollouts[%zu] is incomplete", g->state_path, i);
        } else if (ksv_gate_policy_from_json(policy, &r->policy, &perr) != 0 ||
                   ksv_gate_progress_from_json(progress, &r->policy, &r->prog, &perr) != 0) {
            rc = ksv_err_set(err, 500, "%s: rollouts[%zu]: %s", g->state_path, i, perr.msg);
        } else {
            snprintf(r->model, sizeof r->model, "%s", json_object_get_string(model));
            if (g->n == g->cap) {
                size_t nc = g->cap ? 2 * g->cap : 8;
                rollout **p = realloc(g->items, nc * sizeof *p);
                if (!p) {
                    rc = ksv_err_set(err, 500, "out of memory");
                } else {
                    g->items = p;
                    g->cap = nc;
                }
            }
            if (rc == 0) {
                g->items[g->n++] = r;
                /* Recorded, so the log shows where the rollout went on even when the
                 * engine died between saving a step and recording it. */
                if (ksv_gate_phase_active(r->prog.phase))
                    event(g, r, &r->prog, "gate-restart",
                          "engine restarted: the rollout of %s resumes %s at step %d, %d%%",
                          r->policy.canary, ksv_gate_phase_name(r->prog.phase),
                          r->prog.step + 1, r->prog.set_weight);
                r = NULL;
            }
        }
        rollout_free(r);
    }
    json_object_put(root);
    return rc;
}

/* ------------------------------------------------------------------ the analysis */

static int take_sample(ksv_gate *g, const rollout *r, double now, gate_sample *s)
{
    ksv_rev_sample rs;
    ksv_err err;
    if ((!s->hist && !(s->hist = malloc(sizeof *s->hist))) ||
        (!s->mhist && !(s->mhist = malloc(sizeof *s->mhist))))
        return -1;
    if (ksv_registry_sample(g->reg, r->model, r->policy.canary, &rs, s->hist, s->mhist,
                            &err) != 0)
        return -1;
    s->mono = now;
    s->ok = rs.ok;
    s->total = rs.total;
    s->m_ok = rs.mirror_ok;
    s->m_total = rs.mirror_total;
    s->rows = rs.mirror_rows;
    s->diff_rows = rs.mirror_diff_rows;
    return 0;
}

/* Adds a sample to the ring (the oldest gives way); returns it. */
static gate_sample *ring_push(ksv_gate *g, rollout *r, double now)
{
    gate_sample *s = &r->ring[r->ring_next];
    if (take_sample(g, r, now, s) != 0)
        return NULL;
    r->ring_next = (r->ring_next + 1) % RING;
    if (r->ring_n < RING)
        r->ring_n++;
    return s;
}

/* The baseline for a window ending at `latest`: the newest older sample taken at least
 * `window` seconds before it (a little tolerance for the tick), else the oldest one. */
static const gate_sample *baseline(const rollout *r, const gate_sample *latest, double window)
{
    const gate_sample *best = NULL, *oldest = NULL;
    double tolerance = fmin(0.25, 0.2 * r->policy.interval_s);
    for (size_t i = 0; i < r->ring_n; i++) {
        const gate_sample *s = &r->ring[i];
        if (s == latest || s->mono >= latest->mono)
            continue;
        if (!oldest || s->mono < oldest->mono)
            oldest = s;
        if (s->mono <= latest->mono - window + tolerance && (!best || s->mono > best->mono))
            best = s;
    }
    return best ? best : oldest;
}

static bool in_range(const ksv_gate_metric *m, double v)
{
    return isfinite(v) && (!m->has_min || v >= m->min) && (!m->has_max || v <= m->max);
}

/* Judges every metric over its window; fills checks[]. */
static void judge(const rollout *r, const gate_sample *now_s, double wall, bool mirrored,
                  ksv_gate_check *checks, ksv_hist_snap *scratch)
{
    const ksv_gate_policy *pol = &r->policy;
    for (int i = 0; i < pol->n_metrics; i++) {
        const ksv_gate_metric *m = &pol->metrics[i];
        double window = m->interval_s > 0 ? m->interval_s : pol->interval_s;
        const gate_sample *b = baseline(r, now_s, window);
        ksv_gate_check *c = &checks[i];
        c->time = wall;
        c->value = NAN;
        c->requests = 0;
        if (m->kind == KSV_METRIC_DISAGREEMENT && !mirrored) {
            c->verdict = KSV_VERDICT_NONE; /* judged on mirrored traffic only */
            continue;
        }
        if (!b) {
            c->verdict = KSV_VERDICT_INCONCLUSIVE; /* nothing to compare with yet */
            continue;
        }
        /* In mirrored iterations the canary serves no client: its copies are judged. */
        uint64_t total = mirrored ? now_s->m_total - b->m_total : now_s->total - b->total;
        uint64_t ok = mirrored ? now_s->m_ok - b->m_ok : now_s->ok - b->ok;
        c->requests = total;
        if (m->kind == KSV_METRIC_SUCCESS_RATE) {
            c->value = total ? 100.0 * (double)ok / (double)total : NAN;
        } else if (m->kind == KSV_METRIC_DURATION) {
            ksv_hist_snap_delta(mirrored ? now_s->mhist : now_s->hist,
                                mirrored ? b->mhist : b->hist, scratch);
            c->value = total ? 1000.0 * ksv_hist_quantile(scratch, 0.99) : NAN;
        } else {
            uint64_t rows = now_s->rows - b->rows, diff = now_s->diff_rows - b->diff_rows;
            c->value = rows ? (double)diff / (double)rows : NAN;
        }
        c->verdict = total < m->min_requests ? KSV_VERDICT_INCONCLUSIVE
                     : in_range(m, c->value) ? KSV_VERDICT_PASS
                                             : KSV_VERDICT_FAIL;
    }
}

/* "request-success-rate 12.50 < min 99" for the first failing (or holding) check. */
static void describe_check(const ksv_gate_metric *m, const ksv_gate_check *c, char *buf,
                           size_t cap)
{
    const char *name = ksv_gate_metric_name(m->kind);
    const char *unit = m->kind == KSV_METRIC_DURATION ? " ms" : m->kind == KSV_METRIC_SUCCESS_RATE ? "%" : "";
    if (c->verdict == KSV_VERDICT_INCONCLUSIVE)
        snprintf(buf, cap, "%s: %llu request(s) in its window, fewer than min_requests %llu",
                 name, (unsigned long long)c->requests, (unsigned long long)m->min_requests);
    else if (m->has_min && !(c->value >= m->min))
        snprintf(buf, cap, "%s %.2f%s < min %g", name, c->value, unit, m->min);
    else if (m->has_max && !(c->value <= m->max))
        snprintf(buf, cap, "%s %.2f%s > max %g", name, c->value, unit, m->max);
    else
        snprintf(buf, cap, "%s %.2f%s", name, c->value, unit);
}

/* The figures of an event: where the rollout stands and its latest checks. */
static void figures_json(ksv_sb *sb, const rollout *r, const ksv_gate_progress *p,
                         int actual)
{
    ksv_sb_printf(sb, "{\"phase\":\"%s\",\"step\":%d,\"steps\":%d,\"set_weight\":%d,"
                      "\"actual_weight\":%d,\"failed_checks\":%d,\"threshold\":%d,\"checks\":[",
                  ksv_gate_phase_name(p->phase), p->step + 1, r->policy.n_steps, p->set_weight,
                  actual, p->failed_checks, r->policy.threshold);
    for (int i = 0; i < r->policy.n_metrics; i++) {
        const ksv_gate_check *c = &p->checks[i];
        ksv_sb_printf(sb, "%s{\"metric\":\"%s\",\"verdict\":\"%s\",\"requests\":%llu,\"value\":",
                      i ? "," : "", ksv_gate_metric_name(r->policy.metrics[i].kind),
                      ksv_verdict_name(c->verdict), (unsigned long long)c->requests);
        if (isfinite(c->value))
            ksv_sb_printf(sb, "%.6g}", c->value);
        else
            ksv_sb_puts(sb, "null}");
    }
    ksv_sb_puts(sb, "]}");
}

static void event(ksv_gate *g, const rollout *r, const ksv_gate_progress *p, const char *kind,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void event(ksv_gate *g, const rollout *r, const ksv_gate_progress *p, const char *kind,
                  const char *fmt, ...)
{
    char msg[KSV_EVENT_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ksv_sb fig;
    ksv_sb_init(&fig);
    figures_json(&fig, r, p, r->actual_weight);
    ksv_events_append(g->events, r->model, r->policy.canary, kind, fig.oom ? NULL : fig.data,
                      "%s", msg);
    ksv_log(KSV_LOG_INFO, NULL, "gate: model %s: %s", r->model, msg);
    ksv_sb_free(&fig);
}

/* Moves the split to the progress's set weight; false (with reason) when it cannot. */
static bool apply_weight(ksv_gate *g, const rollout *r, ksv_gate_progress *p)
{
    ksv_err err;
    if (ksv_registry_set_canary_weight(g->reg, r->model, r->policy.stable, r->policy.canary,
                                       p->set_weight, &err) == 0)
        return true;
    snprintf(p->reason, sizeof p->reason, "cannot set the canary's weight: %.300s", err.msg);
    return false;
}

static void step_label(const rollout *r, const ksv_gate_progress *p, char *buf, size_t cap)
{
    if (p->step < 0)
        snprintf(buf, cap, "mirrored iteration %d/%d", r->policy.iterations + p->step + 1,
                 r->policy.iterations);
    else
        snprintf(buf, cap, "step %d/%d (%d%%)", p->step + 1, r->policy.n_steps, p->set_weight);
}

/* Halts the rollout: Failed, 100% back on stable. */
static void fail(ksv_gate *g, rollout *r, ksv_gate_progress *p, const char *kind,
                 const char *reason)
{
    p->phase = KSV_PHASE_FAILED;
    p->set_weight = 0;
    p->waiting_since = 0;
    char why[sizeof p->reason];
    snprintf(why, sizeof why, "%s", reason);
    /* Stable first: whoever sees Failed sees the traffic already back (a crash before the
     * record below resumes the step, whose checks fail again). */
    ksv_gate_progress q = *p;
    apply_weight(g, r, &q);
    snprintf(p->reason, sizeof p->reason, "%s", why);
    event(g, r, p, kind, "rolled back to %s: %s", r->policy.stable, why);
    commit(g, r, p);
    persist(g);
}

/* Promoting: 100% to the canary is recorded (the caller then applies it). */
static void begin_promotion(ksv_gate *g, rollout *r, ksv_gate_progress *p, const char *why)
{
    p->step = r->policy.n_steps > 0 ? r->policy.n_steps - 1 : 0;
    p->phase = KSV_PHASE_PROMOTING;
    p->set_weight = 100;
    event(g, r, p, "gate-promote", "%s: promoting %s to 100%%", why, r->policy.canary);
    commit(g, r, p);
    persist(g);
}

/* Moves to the next step, or to Promoting after the last one. */
static void advance(ksv_gate *g, rollout *r, ksv_gate_progress *p, double now)
{
    p->step++;
    r->hold_mono = now;
    if (p->step < r->policy.n_steps) {
        p->set_weight = p->step >= 0 ? r->policy.steps[p->step] : 0;
        char label[64];
        step_label(r, p, label, sizeof label);
        event(g, r, p, "gate-step", "%s: canary %s at %d%%", label, r->policy.canary,
              p->set_weight);
        commit(g, r, p);
        persist(g);
    } else {
        begin_promotion(g, r, p, "every step passed");
    }
    if (!apply_weight(g, r, p))
        fail(g, r, p, "gate-rollback", p->reason);
}

static void start_steps(ksv_gate *g, rollout *r, ksv_gate_progress *p, double now)
{
    p->phase = KSV_PHASE_PROGRESSING;
    p->step = -r->policy.iterations - 1;
    p->failed_checks = 0;
    p->waiting_since = 0;
    p->reason[0] = '\0';
    ring_clear(r);
    advance(g, r, p, now);
    r->hold_mono = 0; /* the first hold begins with a baseline sample next tick */
}

/* Flagger's skipAnalysis: the canary is ready, so it takes 100% at once; no step is held
 * or judged, and the rollout still ends Succeeded (or Failed when the weight cannot be
 * set) with its events, so history and `apply --wait` read as for any rollout. */
static void promote_unjudged(ksv_gate *g, rollout *r, ksv_gate_progress *p)
{
    begin_promotion(g, r, p, "skipAnalysis, no analysis");
    if (!apply_weight(g, r, p))
        fail(g, r, p, "gate-rollback", p->reason);
}

static void judge_step(ksv_gate *g, rollout *r, ksv_gate_progress *p, double now, double wall)
{
    gate_sample *s = ring_push(g, r, now);
    ksv_hist_snap *scratch = malloc(sizeof *scratch);
    if (!s || !scratch) {
        free(scratch);
        return; /* tried again next tick */
    }
    judge(r, s, wall, p->step < 0, p->checks, scratch);
    free(scratch);
    r->hold_mono = now;
    int fails = 0, holds = 0, first_fail = -1, first_hold = -1;
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < r->policy.n_metrics; i++) {
        ksv_verdict v = p->checks[i].verdict;
        r->checks_total[i][v]++;
        if (v == KSV_VERDICT_FAIL && fails++ == 0)
            first_fail = i;
        if (v == KSV_VERDICT_INCONCLUSIVE && holds++ == 0)
            first_hold = i;
    }
    pthread_mutex_unlock(&g->mu);
    char label[64], why[300];
    step_label(r, p, label, sizeof label);
    if (fails) {
        p->failed_checks++;
        p->phase = KSV_PHASE_PROGRESSING;
        p->waiting_since = 0;
        describe_check(&r->policy.metrics[first_fail], &p->checks[first_fail], why, sizeof why);
        snprintf(p->reason, sizeof p->reason, "%s (failed check %d of %d)", why,
                 p->failed_checks, r->policy.threshold);
        event(g, r, p, "gate-check", "%s failed: %s", label, p->reason);
        commit(g, r, p);
        if (p->failed_checks >= r->policy.threshold) {
            char reason[sizeof p->reason];
            snprintf(reason, sizeof reason, "%d failed checks (threshold %d); last: %s",
                     p->failed_checks, r->policy.threshold, why);
            fail(g, r, p, "gate-rollback", reason);
        } else {
            persist(g);
        }
        return;
    }
    if (holds) {
        describe_check(&r->policy.metrics[first_hold], &p->checks[first_hold], why, sizeof why);
        if (p->waiting_since == 0)
            p->waiting_since = wall;
        p->phase = KSV_PHASE_WAITING;
        snprintf(p->reason, sizeof p->reason, "inconclusive: %s", why);
        if (wall - p->waiting_since >= r->policy.progress_deadline_s) {
            char reason[sizeof p->reason];
            snprintf(reason, sizeof reason,
                     "progress deadline: no conclusive verdict for %.0f s (%s)",
                     wall - p->waiting_since, why);
            fail(g, r, p, "gate-rollback", reason);
            return;
        }
        event(g, r, p, "gate-check", "%s inconclusive: %s", label, why);
        commit(g, r, p);
        persist(g);
        return;
    }
    p->phase = KSV_PHASE_PROGRESSING;
    p->waiting_since = 0;
    p->reason[0] = '\0';
    event(g, r, p, "gate-check", "%s passed", label);
    advance(g, r, p, now);
}

/* Copies of stable's requests go to the canary during mirrored iterations only. */
static void set_mirroring(ksv_gate *g, rollout *r, bool on)
{
    if (r->mirroring == on)
        return;
    ksv_err err;
    if (ksv_registry_set_mirror(g->reg, r->model, on ? r->policy.canary : NULL,
                                r->policy.mirror_weight, &err) == 0)
        r->mirroring = on;
    else if (on)
        ksv_log(KSV_LOG_WARN, NULL, "gate: model %s: cannot mirror: %s", r->model, err.msg);
    else
        r->mirroring = false; /* the model is gone: nothing is mirrored */
}

/* While a rollout is active its canary and stable stay loaded: not scaled to zero, not
 * evicted for the memory budget, not unloaded after the rollback window; one that already
 * is, is loaded at once. Why: a check judges the model, and a cold start (a load) inside a
 * check's window would be judged as the canary's latency, or a request that waited for it
 * as its failure; a rollback must put the traffic on a stable that answers at once, not on
 * one that starts from zero as things go wrong; and a canary unloaded after a Failed
 * rollout's rollback window must load again for `retry`. Let go when the rollout ends:
 * then the revisions scale to zero by their own rules again. An event says so once when
 * scale to zero was allowed (minReplicas 0), since it changes what the operator sees. */
static void hold_warm(ksv_gate *g, rollout *r, bool on)
{
    if (r->warm_held == on)
        return;
    bool canary_scales = false, stable_scales = false;
    ksv_err err;
    int rc = ksv_registry_hold_warm(g->reg, r->model, r->policy.canary, on, &canary_scales,
                                    &err);
    int rs = ksv_registry_hold_warm(g->reg, r->model, r->policy.stable, on, &stable_scales,
                                    &err);
    r->warm_held = on; /* a revision that is gone: the tick cancels the rollout */
    if (on && rc == 0 && rs == 0 && (canary_scales || stable_scales))
        event(g, r, &r->prog, "gate-warm",
              "scale to zero held off for %s and %s while the gate judges (minReplicas 0 "
              "applies again when the rollout ends)",
              r->policy.stable, r->policy.canary);
}

/* One rollout's tick. Caller holds apply_mu. */
static void tick_one(ksv_gate *g, rollout *r, double now, double wall)
{
    ksv_gate_progress p = r->prog;
    ksv_rev_sample cs, ss;
    ksv_err err;
    if (ksv_registry_sample(g->reg, r->model, r->policy.canary, &cs, NULL, NULL, &err) != 0 ||
        ksv_registry_sample(g->reg, r->model, r->policy.stable, &ss, NULL, NULL, &err) != 0) {
        char reason[sizeof p.reason];
        snprintf(reason, sizeof reason, "canceled: %.300s (the model changed under the rollout)",
                 err.msg);
        p.phase = KSV_PHASE_FAILED;
        snprintf(p.reason, sizeof p.reason, "%s", reason);
        event(g, r, &p, "gate-cancel", "%s", reason);
        commit(g, r, &p);
        persist(g);
        return;
    }
    pthread_mutex_lock(&g->mu);
    r->actual_weight = cs.traffic;
    pthread_mutex_unlock(&g->mu);
    switch (p.phase) {
    case KSV_PHASE_INITIALIZING:
        if (cs.state == KSV_REV_FAILED) {
            char reason[sizeof p.reason];
            snprintf(reason, sizeof reason, "canary %s failed to load: %.250s", r->policy.canary,
                     cs.error);
            fail(g, r, &p, "gate-rollback", reason);
        } else if (cs.loaded && r->policy.skip_analysis) {
            promote_unjudged(g, r, &p);
        } else if (cs.loaded) {
            start_steps(g, r, &p, now);
        } else if (wall - p.started >= r->policy.progress_deadline_s) {
            char reason[sizeof p.reason];
            snprintf(reason, sizeof reason, "progress deadline: canary %s not ready after %.0f s",
                     r->policy.canary, wall - p.started);
            fail(g, r, &p, "gate-rollback", reason);
        }
        break;
    case KSV_PHASE_PROGRESSING:
    case KSV_PHASE_WAITING:
        if (cs.desired != p.set_weight && !apply_weight(g, r, &p)) {
            fail(g, r, &p, "gate-rollback", p.reason);
            break;
        }
        if (cs.traffic != p.set_weight) {
            r->hold_mono = 0; /* judge only what was served at the step's weight */
            break;
        }
        if (r->hold_mono == 0) {
            r->hold_mono = now;
            ring_push(g, r, now);
        } else if (now - r->hold_mono >= r->policy.interval_s) {
            judge_step(g, r, &p, now, wall);
        }
        break;
    case KSV_PHASE_PROMOTING:
        if (cs.desired != 100 && !apply_weight(g, r, &p)) {
            fail(g, r, &p, "gate-rollback", p.reason);
        } else if (cs.traffic == 100) {
            p.phase = KSV_PHASE_SUCCEEDED;
            p.reason[0] = '\0';
            event(g, r, &p, "gate-succeeded", "%s serves 100%%%s", r->policy.canary,
                  p.manual ? " (promoted by an operator)" : "");
            commit(g, r, &p);
            persist(g);
        }
        break;
    case KSV_PHASE_PAUSED:
    case KSV_PHASE_SUCCEEDED:
    case KSV_PHASE_FAILED:
        break;
    }
    set_mirroring(g, r, r->policy.mirror && r->prog.step < 0 &&
                            (r->prog.phase == KSV_PHASE_PROGRESSING ||
                             r->prog.phase == KSV_PHASE_WAITING));
}

static void tick(ksv_gate *g)
{
    pthread_mutex_lock(&g->apply_mu);
    double now = ksv_mono_s(), wall = ksv_wall_s();
    for (size_t i = 0; i < g->n; i++) {
        rollout *r = g->items[i];
        if (ksv_gate_phase_active(r->prog.phase)) {
            hold_warm(g, r, true);
            tick_one(g, r, now, wall);
            hold_warm(g, r, ksv_gate_phase_active(r->prog.phase));
            continue;
        }
        hold_warm(g, r, false);
        set_mirroring(g, r, false);
        /* A finished rollout's weight is still shown (and an operator may move it). */
        ksv_rev_sample cs;
        ksv_err err;
        int w = ksv_registry_sample(g->reg, r->model, r->policy.canary, &cs, NULL, NULL, &err) == 0
                    ? cs.traffic
                    : 0;
        pthread_mutex_lock(&g->mu);
        r->actual_weight = w;
        pthread_mutex_unlock(&g->mu);
    }
    pthread_mutex_unlock(&g->apply_mu);
}

static void *gate_main(void *arg)
{
    ksv_gate *g = arg;
    pthread_mutex_lock(&g->wake_mu);
    while (!g->stop) {
        pthread_mutex_lock(&g->mu);
        bool idle = g->n == 0;
        pthread_mutex_unlock(&g->mu);
        /* No rollout: a slow tick (a PUT wakes the thread at once). */
        struct timespec until = ksv_timespec_in(CLOCK_REALTIME, idle ? 1.0 : TICK_NS / 1e9);
        pthread_cond_timedwait(&g->wake, &g->wake_mu, &until);
        if (g->stop)
            break;
        pthread_mutex_unlock(&g->wake_mu);
        tick(g);
        pthread_mutex_lock(&g->wake_mu);
    }
    pthread_mutex_unlock(&g->wake_mu);
    return NULL;
}

/* ----------------------------------------------------------------- admin surface */

static void write_rollout_view(ksv_sb *sb, const rollout *r)
{
    const ksv_gate_policy *pol = &r->policy;
    ksv_sb_puts(sb, "{\"canary\":");
    ksv_sb_json_str(sb, pol->canary);
    ksv_sb_puts(sb, ",\"stable\":");
    ksv_sb_json_str(sb, pol->stable);
    ksv_sb_printf(sb, ",\"actual_weight\":%d,\"steps\":%d,\"step_weights\":[",
                  r->actual_weight, pol->n_steps);
    for (int i = 0; i < pol->n_steps; i++)
        ksv_sb_printf(sb, "%s%d", i ? "," : "", pol->steps[i]);
    ksv_sb_printf(sb, "],\"iterations\":%d,\"mirror\":%s,\"skip_analysis\":%s,"
                      "\"interval_s\":%g,\"progress_deadline_s\":%g,",
                  pol->iterations, pol->mirror ? "true" : "false",
                  pol->skip_analysis ? "true" : "false", pol->interval_s,
                  pol->progress_deadline_s);
    ksv_sb prog;
    ksv_sb_init(&prog);
    ksv_gate_progress_to_json(&prog, &r->prog, pol);
    if (prog.len > 1)
        ksv_sb_append(sb, prog.data + 1, prog.len - 1); /* its fields, without the '{' */
    else
        ksv_sb_putc(sb, '}');
    sb->oom |= prog.oom;
    ksv_sb_free(&prog);
}

static void state_extra(void *ctx, const char *model, ksv_sb *sb)
{
    ksv_gate *g = ctx;
    pthread_mutex_lock(&g->mu);
    rollout *r = find(g, model);
    if (r) {
        ksv_sb_puts(sb, ",\"rollout\":");
        write_rollout_view(sb, r);
    }
    pthread_mutex_unlock(&g->mu);
}

bool ksv_gate_hold_split(ksv_gate *g, ksv_model_spec *spec)
{
    pthread_mutex_lock(&g->mu);
    rollout *r = find(g, spec->name);
    int canary = -1, stable = -1;
    for (size_t i = 0; r && i < spec->n_revisions; i++) {
        if (strcmp(spec->revisions[i].name, r->policy.canary) == 0)
            canary = (int)i;
        if (strcmp(spec->revisions[i].name, r->policy.stable) == 0)
            stable = (int)i;
    }
    bool hold = r && ksv_gate_phase_active(r->prog.phase) && canary >= 0 && stable >= 0;
    if (hold) {
        for (size_t i = 0; i < spec->n_revisions; i++)
            spec->traffic[i] = 0;
        spec->traffic[canary] = r->prog.set_weight;
        spec->traffic[stable] = 100 - r->prog.set_weight;
    }
    pthread_mutex_unlock(&g->mu);
    return hold;
}

int ksv_gate_write(ksv_gate *g, const char *model, ksv_sb *sb, ksv_err *err)
{
    pthread_mutex_lock(&g->mu);
    rollout *r = find(g, model);
    if (r)
        write_rollout_view(sb, r);
    pthread_mutex_unlock(&g->mu);
    return r ? 0 : ksv_err_set(err, 404, "model %s has no rollout", model);
}

static bool same_policy(const ksv_gate_policy *a, const ksv_gate_policy *b)
{
    ksv_sb x, y;
    ksv_sb_init(&x);
    ksv_sb_init(&y);
    ksv_gate_policy_to_json(&x, a);
    ksv_gate_policy_to_json(&y, b);
    bool same = !x.oom && !y.oom && x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    ksv_sb_free(&x);
    ksv_sb_free(&y);
    return same;
}

int ksv_gate_put(ksv_gate *g, const char *model, json_object *body, ksv_err *err)
{
    ksv_gate_policy *pol = malloc(sizeof *pol);
    if (!pol)
        return ksv_err_set(err, 500, "out of memory");
    pthread_mutex_lock(&g->apply_mu);
    int rc = ksv_gate_policy_from_json(body, pol, err);
    ksv_rev_sample rs;
    if (rc == 0)
        rc = ksv_registry_sample(g->reg, model, pol->canary, &rs, NULL, NULL, err);
    if (rc == 0 && !pol->stable[0]) {
        rc = ksv_registry_main_revision(g->reg, model, pol->canary, pol->stable, err);
        if (rc == 0 && !pol->stable[0])
            rc = ksv_err_set(err, 400, "model %s has no revision besides the canary %s to "
                                       "keep serving: give stable", model, pol->canary);
    }
    if (rc == 0)
        rc = ksv_registry_sample(g->reg, model, pol->stable, &rs, NULL, NULL, err);
    rollout *old = rc == 0 ? find(g, model) : NULL;
    if (rc == 0 && old && strcmp(old->policy.canary, pol->canary) == 0 &&
        strcmp(old->policy.stable, pol->stable) == 0) {
        /* The same rollout again: a no-op, or a policy change that keeps the progress. */
        if (!same_policy(&old->policy, pol)) {
            ksv_gate_progress p = old->prog;
            pthread_mutex_lock(&g->mu);
            old->policy = *pol;
            if (p.step >= pol->n_steps)
                p.step = pol->n_steps > 0 ? pol->n_steps - 1 : 0;
            if (p.step < -pol->iterations)
                p.step = -pol->iterations;
            old->prog = p;
            pthread_mutex_unlock(&g->mu);
            persist(g);
            event(g, old, &p, "gate-policy", "policy changed for the rollout of %s",
                  pol->canary);
        }
        pthread_mutex_unlock(&g->apply_mu);
        free(pol);
        return 0;
    }
    rollout *r = rc == 0 ? calloc(1, sizeof *r) : NULL;
    if (rc == 0 && !r)
        rc = ksv_err_set(err, 500, "out of memory");
    if (rc == 0 && !old && g->n == g->cap) {
        size_t nc = g->cap ? 2 * g->cap : 8;
        rollout **p = realloc(g->items, nc * sizeof *p);
        if (!p) {
            rc = ksv_err_set(err, 500, "out of memory");
        } else {
            pthread_mutex_lock(&g->mu);
            g->items = p;
            g->cap = nc;
            pthread_mutex_unlock(&g->mu);
        }
    }
    if (rc == 0) {
        snprintf(r->model, sizeof r->model, "%s", model);
        r->policy = *pol;
        r->prog.phase = KSV_PHASE_INITIALIZING;
        r->prog.paused_from = KSV_PHASE_PROGRESSING;
        r->prog.started = r->prog.step_started = ksv_wall_s();
        r->prog.step = -pol->iterations;
        r->actual_weight = 0;
        ksv_gate_progress p = r->prog;
        if (!apply_weight(g, r, &p))
            rc = ksv_err_set(err, 409, "%s", p.reason);
    }
    if (rc == 0) {
        if (old && ksv_gate_phase_active(old->prog.phase))
            event(g, old, &old->prog, "gate-cancel", "superseded by a rollout of %s",
                  pol->canary);
        /* The old rollout's warm holds go, except on revisions the new one judges too
         * (they stay loaded without a gap; the new rollout holds them at its first tick). */
        for (int k = 0; old && old->warm_held && k < 2; k++) {
            const char *rev = k ? old->policy.stable : old->policy.canary;
            ksv_err ignored;
            if (strcmp(rev, pol->canary) != 0 && strcmp(rev, pol->stable) != 0)
                ksv_registry_hold_warm(g->reg, model, rev, false, NULL, &ignored);
        }
        pthread_mutex_lock(&g->mu);
        if (old) {
            for (size_t i = 0; i < g->n; i++)
                if (g->items[i] == old)
                    g->items[i] = r;
        } else {
            g->items[g->n++] = r;
        }
        pthread_mutex_unlock(&g->mu);
        rollout_free(old);
        persist(g);
        event(g, r, &r->prog, "gate-start", "rollout of %s begins (stable %s, %d step(s)%s)",
              pol->canary, pol->stable, pol->n_steps, pol->mirror ? ", mirrored first" : "");
        pthread_mutex_lock(&g->wake_mu);
        pthread_cond_signal(&g->wake);
        pthread_mutex_unlock(&g->wake_mu);
        r = NULL;
    }
    rollout_free(r);
    pthread_mutex_unlock(&g->apply_mu);
    free(pol);
    return rc;
}

int ksv_gate_action(ksv_gate *g, const char *model, const char *action, ksv_err *err)
{
    pthread_mutex_lock(&g->apply_mu);
    rollout *r = find(g, model);
    int rc = 0;
    if (!r) {
        rc = ksv_err_set(err, 404, "model %s has no rollout", model);
        goto out;
    }
    ksv_gate_progress p = r->prog;
    const char *phase = ksv_gate_phase_name(p.phase);
    bool active = ksv_gate_phase_active(p.phase);
    if (strcmp(action, "pause") == 0) {
        if (!active || p.phase == KSV_PHASE_PAUSED || p.phase == KSV_PHASE_PROMOTING) {
            rc = ksv_err_set(err, 409, "cannot pause a rollout that is %s", phase);
            goto out;
        }
        p.paused_from = p.phase;
        p.phase = KSV_PHASE_PAUSED;
        event(g, r, &p, "gate-pause", "paused by an operator at %d%%", p.set_weight);
        commit(g, r, &p);
        persist(g);
    } else if (strcmp(action, "resume") == 0) {
        if (p.phase != KSV_PHASE_PAUSED) {
            rc = ksv_err_set(err, 409, "cannot resume a rollout that is %s", phase);
            goto out;
        }
        p.phase = p.paused_from;
        if (p.waiting_since > 0)
            p.waiting_since = ksv_wall_s(); /* time paused does not count against the deadline */
        r->hold_mono = 0;
        ring_clear(r);
        event(g, r, &p, "gate-resume", "resumed by an operator");
        commit(g, r, &p);
        persist(g);
    } else if (strcmp(action, "abort") == 0) {
        if (!active) {
            rc = ksv_err_set(err, 409, "cannot abort a rollout that is %s", phase);
            goto out;
        }
        fail(g, r, &p, "gate-abort", "aborted by an operator");
    } else if (strcmp(action, "retry") == 0) {
        if (p.phase != KSV_PHASE_FAILED) {
            rc = ksv_err_set(err, 409, "only a Failed rollout can be retried (this one is %s)",
                             phase);
            goto out;
        }
        memset(&p, 0, sizeof p);
        p.phase = KSV_PHASE_INITIALIZING;
        p.paused_from = KSV_PHASE_PROGRESSING;
        p.step = -r->policy.iterations;
        p.started = p.step_started = ksv_wall_s();
        r->hold_mono = 0;
        ring_clear(r);
        event(g, r, &p, "gate-retry", "retried by an operator: the gate starts again");
        commit(g, r, &p);
        persist(g);
    } else if (strcmp(action, "promote") == 0) {
        if (p.phase == KSV_PHASE_SUCCEEDED || p.phase == KSV_PHASE_PROMOTING) {
            rc = ksv_err_set(err, 409, "the rollout is already %s", phase);
            goto out;
        }
        p.phase = KSV_PHASE_PROMOTING;
        p.set_weight = 100;
        p.manual = true;
        p.reason[0] = '\0';
        event(g, r, &p, "gate-promote", "promoted by an operator (manual override of the gate)");
        commit(g, r, &p);
        persist(g);
        if (!apply_weight(g, r, &p))
            fail(g, r, &p, "gate-rollback", p.reason);
    } else {
        rc = ksv_err_set(err, 404, "unknown rollout action %.40s (pause, resume, abort, retry, "
                                   "promote)", action);
    }
out:
    pthread_mutex_unlock(&g->apply_mu);
    return rc;
}

void ksv_gate_write_prometheus(ksv_gate *g, ksv_sb *sb)
{
    static const ksv_verdict shown[] = {KSV_VERDICT_PASS, KSV_VERDICT_FAIL,
                                        KSV_VERDICT_INCONCLUSIVE};
    pthread_mutex_lock(&g->mu);
    if (g->n == 0) {
        pthread_mutex_unlock(&g->mu);
        return;
    }
    ksv_sb_puts(sb, "# HELP ksv_canary_status Release gate state: 0 progressing, 1 succeeded, "
                    "2 failed.\n# TYPE ksv_canary_status gauge\n");
    for (size_t i = 0; i < g->n; i++) {
        const rollout *r = g->items[i];
        ksv_sb_printf(sb, "ksv_canary_status{model=\"%s\"} %d\n", r->model,
                      r->prog.phase == KSV_PHASE_SUCCEEDED ? 1
                      : r->prog.phase == KSV_PHASE_FAILED  ? 2
                                                           : 0);
    }
    ksv_sb_puts(sb, "# HELP ksv_canary_weight The canary's share of the model's traffic now.\n"
                    "# TYPE ksv_canary_weight gauge\n");
    for (size_t i = 0; i < g->n; i++)
        ksv_sb_printf(sb, "ksv_canary_weight{model=\"%s\",revision=\"%s\"} %d\n",
                      g->items[i]->model, g->items[i]->policy.canary,
                      g->items[i]->actual_weight);
    ksv_sb_puts(sb, "# HELP ksv_canary_checks_total Release gate checks, by metric and "
                    "verdict.\n# TYPE ksv_canary_checks_total counter\n");
    for (size_t i = 0; i < g->n; i++) {
        const rollout *r = g->items[i];
        for (int m = 0; m < r->policy.n_metrics; m++)
            for (size_t v = 0; v < sizeof shown / sizeof *shown; v++)
                ksv_sb_printf(sb,
                              "ksv_canary_checks_total{model=\"%s\",metric=\"%s\",verdict=\"%s\"} "
                              "%llu\n",
                              r->model, ksv_gate_metric_name(r->policy.metrics[m].kind),
                              ksv_verdict_name(shown[v]),
                              (unsigned long long)r->checks_total[m][shown[v]]);
    }
    bool head = false;
    for (size_t i = 0; i < g->n; i++) {
        const rollout *r = g->items[i];
        for (int m = 0; m < r->policy.n_metrics; m++) {
            const ksv_gate_check *c = &r->prog.checks[m];
            if (r->policy.metrics[m].kind != KSV_METRIC_DISAGREEMENT || !isfinite(c->value) ||
                c->verdict == KSV_VERDICT_NONE)
                continue;
            if (!head)
                ksv_sb_puts(sb, "# HELP ksv_prediction_disagreement Share of mirrored rows "
                                "answered differently from stable (last window).\n"
                                "# TYPE ksv_prediction_disagreement gauge\n");
            head = true;
            ksv_sb_printf(sb, "ksv_prediction_disagreement{model=\"%s\",revision=\"%s\"} %.6g\n",
                          r->model, r->policy.canary, c->value);
        }
    }
    pthread_mutex_unlock(&g->mu);
}

/* --------------------------------------------------------------- create / destroy */

int ksv_gate_create(ksv_registry *reg, ksv_event_log *events, const char *state_dir,
                    ksv_gate **out, ksv_err *err)
{
    *out = NULL;
    ksv_gate *g = calloc(1, sizeof *g);
    if (!g)
        return ksv_err_set(err, 500, "out of memory");
    g->reg = reg;
    g->events = events;
    pthread_mutex_init(&g->apply_mu, NULL);
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->wake_mu, NULL);
    pthread_cond_init(&g->wake, NULL);
    size_t n = strlen(state_dir) + sizeof "/rollouts.json";
    if (!(g->state_path = malloc(n))) {
        ksv_gate_destroy(g);
        return ksv_err_set(err, 500, "out of memory");
    }
    snprintf(g->state_path, n, "%s/rollouts.json", state_dir);
    if (restore(g, err) != 0) {
        ksv_gate_destroy(g);
        return -1;
    }
    ksv_registry_set_state_extra(reg, state_extra, g);
    if (pthread_create(&g->thread, NULL, gate_main, g) != 0) {
        ksv_registry_set_state_extra(reg, NULL, NULL);
        ksv_gate_destroy(g);
        return ksv_err_set(err, 500, "cannot start the gate thread");
    }
    g->started = true;
    *out = g;
    return 0;
}

void ksv_gate_destroy(ksv_gate *g)
{
    if (!g)
        return;
    if (g->started) {
        pthread_mutex_lock(&g->wake_mu);
        g->stop = true;
        pthread_cond_signal(&g->wake);
        pthread_mutex_unlock(&g->wake_mu);
        pthread_join(g->thread, NULL);
        ksv_registry_set_state_extra(g->reg, NULL, NULL);
    }
    for (size_t i = 0; i < g->n; i++)
        rollout_free(g->items[i]);
    free(g->items);
    free(g->state_path);
    pthread_mutex_destroy(&g->apply_mu);
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->wake_mu);
    pthread_cond_destroy(&g->wake);
    free(g);
}
