/* worker.c: probers, collector and actor threads behind ksv-top. */
#include "common/clock.h"
#include "tui/worker.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/strmap.h"
#include "control/control.h"

#define HISTORY_ROWS 200
#define COST_EVERY_MS 10000
/* Probe threads, whatever the fleet's size: a probe of a node that answers takes a few
 * milliseconds over its kept connection, so a few threads cover 100 nodes a second, and a
 * hung node holds up one of them for one node timeout, never the others' nodes. */
#define PROBERS 6

/* A probe shared by the slot and the collector reading it (immutable once published). */
typedef struct shared_probe {
    atomic_int refs;
    ksv_node_probe p;
} shared_probe;

static shared_probe *probe_ref(shared_probe *p)
{
    if (p)
        atomic_fetch_add(&p->refs, 1);
    return p;
}

static void probe_unref(shared_probe *p)
{
    if (p && atomic_fetch_sub(&p->refs, 1) == 1) {
        ksv_node_probe_free(&p->p);
        free(p);
    }
}

/* One node: when it is due, its kept connection and its latest answer. */
typedef struct node_slot {
    char name[64];
    bool retired;                /* the node left the store: freed once no prober has it */
    bool busy;                   /* a prober is probing it now (it alone uses link) */
    bool reread;                 /* the store changed: the link re-reads the node */
    double due_ms;               /* monotonic: probe again no earlier than this */
    ksv_probe_link *link;
    shared_probe *probe;         /* latest; NULL before the first */
    shared_probe *prev;          /* the one before, so a collection that comes late still
                                  * feeds both scrapes (a rate needs two) */
    uint64_t gen;                /* bumps with each new probe */
    uint64_t fed_gen;            /* the last probe fed into the window (collector's) */
    ksv_scrape_shared *fed_scrape; /* the scrape it fed, a reference (collector's): a probe
                                  * with the same one (the engine said "unchanged") is fed
                                  * as a repeat, without reading the scrape again */
    int64_t last_ok_ms;          /* wall clock of the last successful probe, 0 never */
    bool was_down;               /* the last probe found it unreachable (the prober's) */
    /* The prober's (it holds the slot busy): the node's event log position as last imported
     * into history, and when a failed import may be tried again. */
    char events_log_id[64];
    long long events_seq;        /* -1: not imported by this console yet */
    double events_retry_ms;
} node_slot;

/* What the collector read from the store, kept until the store changes. */
typedef struct store_cache {
    bool valid;
    int64_t version;
    ksv_node_list nodes;
    ksv_model_record_list models;
    ksv_history_list hist;
    ksv_quota_usage_list quotas;
    ksv_cost_report cost;        /* from the stored residency events (recomputed every
                                  * COST_EVERY_MS: hours grow while nothing changes) */
    bool has_cost;
    int64_t cost_ms;
    char cost_error[256];
    ksv_model_view *views;       /* one per model; NULL entries when it could not be read */
    bool *have_view;
    char error[256];
} store_cache;

typedef struct spark_hist {
    char key[TUI_KEY_LEN];
    double qps[TUI_SPARK_LEN], p99[TUI_SPARK_LEN];
    size_t n;
    double last_qps;
} spark_hist;

struct tui_worker {
    tui_worker_options opts;
    char db_path[4096];
    char argv0[4096];

    pthread_mutex_t mu;          /* guards everything below except the collector's own */
    pthread_cond_t cond;         /* wakes the collector, the actor and --once's waiter */
    pthread_cond_t probe_cond;   /* wakes the probers: new slots, stop, the timer handed on */
    bool timer_held;             /* one idle prober waits for the next slot's time; the
                                  * others sleep until woken, so a due slot wakes one
                                  * thread, not all six */
    bool rounds_watched;         /* --once waits for probes: each one wakes it */
    bool stop;
    bool refresh;
    tui_snapshot *snap;
    uint64_t snap_seq;
    uint64_t collections_begun;  /* collections that took the probes so far */
    uint64_t snap_begun;         /* the number of the one that made snap */
    char focus[TUI_KEY_LEN];
    node_slot **slots;
    size_t n_slots;
    pthread_t probers[PROBERS];
    size_t n_probers;
    /* the actor */
    bool job_pending, job_running, result_ready;
    tui_job job;
    char *job_manifest;
    tui_job_result result;
    /* model uploads to SSH nodes, for the status line */
    char transfer[256];
    int64_t transfer_ms;
    bool transfer_done;
    uint64_t transfer_seq;

    pthread_t collector, actor;
    bool collector_started, actor_started;

    /* the collector's own (no lock) */
    ksv_ctl *ctl;
    store_cache cache;
    ksv_mwin *mwin;
    ksv_prom_source *prom;       /* --prometheus: the figures' source instead of mwin */
    ksv_prom_round prom_round;   /* its latest answers */
    spark_hist *sparks;
    size_t n_sparks;
    /* the focus model's waves, read from history again only when it or the store changes */
    char waves_of[TUI_KEY_LEN];
    int64_t waves_version;
    char waves_title[96];
    char wave_lines[TUI_WAVE_LINES][240];
    size_t n_wave_lines;
};

/* Waits on cond until *flag, stop, or ms pass. Called with w->mu held. */
static void wait_on(tui_worker *w, pthread_cond_t *cond, const bool *flag, double ms)
{
    struct timespec ts = ksv_timespec_in(CLOCK_REALTIME, ms / 1e3);
    while (!w->stop && !(flag && *flag))
        if (pthread_cond_timedwait(cond, &w->mu, &ts) == ETIMEDOUT)
            break;
}

static void wait_ms(tui_worker *w, const bool *flag, double ms)
{
    wait_on(w, &w->cond, flag, ms);
}

/* Model files sent to SSH nodes (by a prober catching a node up, or by the actor): the
 * newest progress line for the status line, at most every 200 ms and always at the end. */
static void on_upload(const char *node, const char *file, long long done, long long total,
                      double rate, void *user)
{
    tui_worker *w = user;
    int64_t now = ksv_wall_ms();
    pthread_mutex_lock(&w->mu);
    if (done >= total || now - w->transfer_ms >= 200) {
        /* The last two parts of the path say which model it is and fit the line. */
        const char *shown = file, *p = file + strlen(file);
        int slashes = 0;
        while (p > file && slashes < 2)
            if (*--p == '/' && ++slashes == 2)
                shown = p + 1;
        ksv_ctl_format_upload(node, shown, done, total, rate, w->transfer,
                              sizeof w->transfer);
        w->transfer_ms = now;
        w->transfer_done = done >= total;
        w->transfer_seq++;
    }
    pthread_mutex_unlock(&w->mu);
}

/* keep: the handle keeps SSH connections open between calls (the probers'). */
static int open_ctl(tui_worker *w, long timeout_ms, bool keep, ksv_ctl **ctl, ksv_err *err)
{
    ksv_ctl_options o = {.db_path = w->db_path[0] ? w->db_path : NULL,
                         .argv0 = w->argv0,
                         .node_timeout_ms = timeout_ms,
                         .upload_progress = on_upload,
                         .upload_progress_user = w,
                         .keep_connections = keep};
    return ksv_ctl_open(&o, ctl, err);
}

/* ---- probers ---- */

static void catch_up(ksv_ctl *ctl, const char *node, double timeout_s)
{
    ksv_model_record_list models;
    ksv_err err;
    if (ksv_ctl_model_list(ctl, NULL, &models, &err) != 0)
        return;
    for (size_t i = 0; i < models.n; i++) {
        const ksv_model_record *m = &models.items[i];
        bool placed = false;
        for (size_t k = 0; k < m->n_nodes; k++)
            placed |= strcmp(m->nodes[k], node) == 0;
        if (!placed)
            continue;
        char ref[TUI_KEY_LEN];
        snprintf(ref, sizeof ref, "%s/%s", m->ns, m->name);
        ksv_ctl_result res = {0};
        ksv_ctl_reconcile(ctl, ref, NULL, timeout_s > 0 ? timeout_s : 60, &res, &err);
        ksv_ctl_result_free(&res);
    }
    ksv_model_record_list_free(&models);
}

/* What the node's engine decided by itself (a release gate's steps, promotion, rollback)
 * goes into history, as `ksv history` does it, when its event log grew since this console
 * last read it: a gate that finished while nobody ran the CLI shows up from the console
 * too, and the desired split follows the gate before anything reconciles the node. Not
 * --readonly-dependent: it changes no node, it records what the node did. */
static void import_events(ksv_ctl *ctl, node_slot *slot, const char *name,
                          const ksv_node_probe *p)
{
    if (p->events_last_seq < 0 || (p->events_last_seq == slot->events_seq &&
                                   strcmp(p->events_log_id, slot->events_log_id) == 0))
        return;
    double now = ksv_mono_ms();
    if (now < slot->events_retry_ms)
        return;
    ksv_err err;
    if (ksv_ctl_import_events_link(ctl, slot->link, name, NULL, &err) != 0) {
        slot->events_retry_ms = now + 10000; /* a locked or read-only database: later */
        return;
    }
    slot->events_seq = p->events_last_seq;
    snprintf(slot->events_log_id, sizeof slot->events_log_id, "%s", p->events_log_id);
}

/* The slot most overdue that no prober holds, or NULL with *wait_ms until the next. */
static node_slot *next_due(tui_worker *w, double now, double *wait)
{
    node_slot *pick = NULL;
    *wait = w->opts.interval_s * 1000;
    for (size_t i = 0; i < w->n_slots; i++) {
        node_slot *slot = w->slots[i];
        if (slot->retired || slot->busy)
            continue;
        if (slot->due_ms <= now) {
            if (!pick || slot->due_ms < pick->due_ms)
                pick = slot;
        } else if (slot->due_ms - now < *wait) {
            *wait = slot->due_ms - now;
        }
    }
    return pick;
}

static void *prober_main(void *arg)
{
    tui_worker *w = arg;
    ksv_ctl *ctl = NULL;
    ksv_err err;
    pthread_mutex_lock(&w->mu);
    bool holder = false; /* this thread holds the timer */
    while (!w->stop) {
        double wait, started = ksv_mono_ms();
        node_slot *slot = next_due(w, started, &wait);
        if (!slot) {
            /* One prober sleeps until the next slot is due; the others until it hands the
             * timer on (or a safety interval passes). A timed wait in every prober woke
             * all six for each of 100 slots a second. */
            if (!holder && !w->timer_held)
                holder = w->timer_held = true;
            wait_on(w, &w->probe_cond, NULL,
                    holder ? (wait < 1 ? 1 : wait) : w->opts.interval_s * 1000);
            continue;
        }
        if (holder) { /* off to probe: another idle prober keeps time */
            holder = w->timer_held = false;
            pthread_cond_signal(&w->probe_cond);
        }
        slot->busy = true;
        bool reread = slot->reread;
        slot->reread = false;
        char focus[TUI_KEY_LEN], name[64];
        snprintf(focus, sizeof focus, "%s", w->focus);
        snprintf(name, sizeof name, "%s", slot->name);
        pthread_mutex_unlock(&w->mu);
        if (reread)
            ksv_probe_link_reread(slot->link);
        shared_probe *sp = calloc(1, sizeof *sp);
        bool have = false;
        if (sp && (ctl || open_ctl(w, w->opts.node_timeout_ms, false, &ctl, &err) == 0)) {
            const char *slash = strchr(focus, '/');
            have = ksv_ctl_node_probe_link(ctl, slot->link, name, slash ? slash + 1 : NULL,
                                           &sp->p, &err) == 0;
        }
        /* A node that comes back gets what changed while it was away: reconcile the models
         * placed on it (idempotent; each one is a history row with the node's result).
         * Through a handle of its own: a reconcile touches every node of those models. */
        ksv_ctl *once = NULL;
        if (have && sp->p.reachable && slot->was_down && !w->opts.readonly &&
            open_ctl(w, w->opts.node_timeout_ms, false, &once, &err) == 0) {
            catch_up(once, name, w->opts.change_timeout_s);
            ksv_ctl_close(once);
        }
        if (have)
            slot->was_down = !sp->p.reachable;
        if (have && sp->p.reachable)
            import_events(ctl, slot, name, &sp->p);
        pthread_mutex_lock(&w->mu);
        slot->busy = false;
        /* Scrapes about an interval apart: a probe that took long (an SSH dial) is not
         * followed at once by the next, whose rate would span milliseconds. */
        double done = ksv_mono_ms(), step = w->opts.interval_s * 1000;
        slot->due_ms = started + step > done + step / 2 ? started + step : done + step / 2;
        if (have) {
            atomic_init(&sp->refs, 1);
            probe_unref(slot->prev);
            slot->prev = slot->probe;
            slot->probe = sp;
            slot->gen++;
            if (sp->p.reachable)
                slot->last_ok_ms = sp->p.at_ms;
        } else {
            free(sp);
        }
        if (w->rounds_watched)
            pthread_cond_broadcast(&w->cond); /* --once waits for rounds of probes */
    }
    if (holder)
        w->timer_held = false;
    pthread_mutex_unlock(&w->mu);
    ksv_ctl_close(ctl);
    return NULL;
}

static void slot_free(node_slot *s)
{
    ksv_scrape_shared_unref(s->fed_scrape);
    probe_unref(s->probe);
    probe_unref(s->prev);
    ksv_probe_link_free(s->link);
    free(s);
}

/* Adds slots for nodes new to the store, retires those gone (freed once no prober holds
 * them) and, when the store changed, has every link re-read its node. With w->mu held. */
static void sync_slots(tui_worker *w, const ksv_node_list *nodes, bool store_changed)
{
    ksv_strmap present;
    ksv_strmap_init(&present);
    for (size_t k = 0; k < nodes->n; k++)
        ksv_strmap_put(&present, nodes->items[k].name, strlen(nodes->items[k].name),
                       (void *)&nodes->items[k]);
    ksv_strmap known;
    ksv_strmap_init(&known);
    size_t kept = 0;
    for (size_t i = 0; i < w->n_slots; i++) {
        node_slot *slot = w->slots[i];
        if (!ksv_strmap_get(&present, slot->name, strlen(slot->name)))
            slot->retired = true;
        if (slot->retired && !slot->busy) {
            slot_free(slot);
            continue;
        }
        if (!slot->retired)
            ksv_strmap_put(&known, slot->name, strlen(slot->name), slot);
        slot->reread |= store_changed;
        w->slots[kept++] = slot;
    }
    w->n_slots = kept;
    for (size_t k = 0; k < nodes->n; k++) {
        const char *name = nodes->items[k].name;
        if (ksv_strmap_get(&known, name, strlen(name)))
            continue;
        node_slot **p = realloc(w->slots, (w->n_slots + 1) * sizeof *p);
        node_slot *s = calloc(1, sizeof *s);
        if (p)
            w->slots = p;
        if (!p || !s || !(s->link = ksv_probe_link_new(name))) {
            free(s);
            break;
        }
        snprintf(s->name, sizeof s->name, "%s", name);
        s->due_ms = 0; /* at once */
        s->events_seq = -1;
        w->slots[w->n_slots++] = s;
    }
    ksv_strmap_free(&present);
    ksv_strmap_free(&known);
    if (w->n_slots != kept) /* new nodes, due at once */
        pthread_cond_broadcast(&w->probe_cond);
}

/* ---- the collector ---- */

static double stale_limit_ms(const tui_worker *w)
{
    double ms = w->opts.interval_s * 2500;
    return ms < 3000 ? 3000 : ms;
}

static spark_hist *spark_for(tui_worker *w, const char *key)
{
    for (size_t i = 0; i < w->n_sparks; i++)
        if (strcmp(w->sparks[i].key, key) == 0)
            return &w->sparks[i];
    spark_hist *p = realloc(w->sparks, (w->n_sparks + 1) * sizeof *p);
    if (!p)
        return NULL;
    w->sparks = p;
    spark_hist *h = &w->sparks[w->n_sparks++];
    memset(h, 0, sizeof *h);
    snprintf(h->key, sizeof h->key, "%s", key);
    h->last_qps = NAN;
    /* Start from what earlier runs stored, so the sparkline survives a restart. */
    const char *slash = strchr(key, '/');
    double seed[TUI_SPARK_LEN];
    ksv_err err;
    int64_t step = (int64_t)(w->opts.interval_s * 1000);
    if (w->ctl && step > 0 &&
        ksv_ctl_recent_qps(w->ctl, slash ? slash + 1 : key, ksv_wall_ms(), step, TUI_SPARK_LEN,
                           seed, &err) == 0) {
        size_t first = 0;
        while (first < TUI_SPARK_LEN && isnan(seed[first]))
            first++;
        for (size_t i = first; i < TUI_SPARK_LEN; i++) {
            h->qps[h->n] = isnan(seed[i]) ? 0 : seed[i];
            h->p99[h->n] = NAN;
            h->n++;
        }
    }
    return h;
}

static void spark_push(double *ring, size_t n, double v)
{
    if (n == TUI_SPARK_LEN)
        memmove(ring, ring + 1, (TUI_SPARK_LEN - 1) * sizeof *ring);
    ring[n == TUI_SPARK_LEN ? n - 1 : n] = v;
}

/* Figures of (model, revision) over every node in nodes (NULL: any node). */
static void figures_for(tui_worker *w, const char *const *nodes, size_t n_nodes,
                        const char *model, const char *revision, int64_t now, tui_figs *out)
{
    out->has_rate = out->has_llm = false;
    out->qps = out->err_pct = out->p50_ms = out->p99_ms = NAN;
    out->ttft_p99_ms = out->tokens_per_s = NAN;
    double qps = 0, tokens = 0;
    uint64_t requests = 0, e5 = 0;
    bool lat_any = false;
    size_t loops = nodes ? n_nodes : 1;
    for (size_t i = 0; i < loops; i++) {
        ksv_mwin_sel sel = {nodes ? nodes[i] : NULL, model, revision};
        ksv_mwin_rate_stats r;
        ksv_mwin_latency_stats l;
        ksv_err err;
        if (ksv_mwin_rates(w->mwin, &sel, now, KSV_MWIN_RATE_WINDOW_MS, &r, &err) == 0 &&
            r.has_data) {
            out->has_rate = true;
            qps += r.qps;
            requests += r.requests;
            /* ERR% counts every answer that is not 2xx (ksv_figures_model does too). */
            e5 += r.requests_4xx + r.requests_5xx;
        }
        if (ksv_mwin_latency(w->mwin, &sel, now, KSV_MWIN_LATENCY_WINDOW_MS, &l, &err) == 0 &&
            l.has_data && !isnan(l.p99_s)) {
            /* Several nodes under one name in different namespaces: the worst node. */
            if (!lat_any || l.p99_s * 1000 > out->p99_ms) {
                out->p99_ms = l.p99_s * 1000;
                out->p50_ms = l.p50_s * 1000;
            }
            lat_any = true;
        }
        ksv_mwin_llm_stats g;
        if (ksv_mwin_llm(w->mwin, &sel, now, KSV_MWIN_RATE_WINDOW_MS,
                         KSV_MWIN_LATENCY_WINDOW_MS, &g, &err) == 0 && g.has_data) {
            out->has_llm = true;
            tokens += g.tokens_per_s;
            /* The worst node's, as for P99. */
            if (!isnan(g.ttft_p99_s) &&
                (isnan(out->ttft_p99_ms) || g.ttft_p99_s * 1000 > out->ttft_p99_ms))
                out->ttft_p99_ms = g.ttft_p99_s * 1000;
        }
    }
    if (out->has_llm)
        out->tokens_per_s = tokens;
    if (out->has_rate) {
        out->qps = qps;
        out->err_pct = requests ? 100.0 * (double)e5 / (double)requests : NAN;
    }
}

/* Figures of (model, revision) from the latest Prometheus round; revision NULL: the model. */
static void prom_figures_for(const tui_worker *w, const char *model, const char *revision,
                             tui_figs *out)
{
    out->has_rate = out->has_llm = false;
    out->qps = out->err_pct = out->p50_ms = out->p99_ms = NAN;
    out->ttft_p99_ms = out->tokens_per_s = NAN; /* not read from Prometheus */
    const ksv_prom_figures *f = ksv_prom_round_find(&w->prom_round, model, revision);
    if (!f)
        return;
    out->has_rate = f->has_rate;
    out->qps = f->qps;
    out->err_pct = f->err_pct;
    out->p50_ms = f->p50_s * 1000;
    out->p99_ms = f->p99_s * 1000;
}

/* What the collector took from one node's slot for one collection (no lock needed). */
typedef struct node_seen {
    node_slot *slot;             /* valid until the collector's next sync_slots */
    shared_probe *probe;         /* a reference, or NULL before the first probe */
    shared_probe *prev;          /* a reference to the one before (gen - 1), or NULL */
    uint64_t gen, fed_gen;
    int64_t last_ok_ms;
    tui_node *tn;                /* its row in the snapshot being built */
} node_seen;

typedef struct collection {
    node_seen *seen;             /* one per node of the store, in its order */
    size_t n;
    ksv_strmap by_name;          /* node name -> node_seen */
} collection;

static const node_seen *seen_node(const collection *c, const char *name)
{
    return ksv_strmap_get(&c->by_name, name, strlen(name));
}

/* Takes a reference to every node's latest probe. With w->mu held. */
static void take_probes(tui_worker *w, const ksv_node_list *nodes, collection *c)
{
    c->seen = calloc(nodes->n ? nodes->n : 1, sizeof *c->seen);
    ksv_strmap_init(&c->by_name);
    if (!c->seen)
        return;
    ksv_strmap slots;
    ksv_strmap_init(&slots);
    for (size_t i = 0; i < w->n_slots; i++)
        if (!w->slots[i]->retired)
            ksv_strmap_put(&slots, w->slots[i]->name, strlen(w->slots[i]->name), w->slots[i]);
    for (size_t k = 0; k < nodes->n; k++) {
        const char *name = nodes->items[k].name;
        node_seen *ns = &c->seen[c->n++];
        ns->slot = ksv_strmap_get(&slots, name, strlen(name));
        if (ns->slot) {
            ns->probe = probe_ref(ns->slot->probe);
            ns->prev = probe_ref(ns->slot->prev);
            ns->gen = ns->slot->gen;
            ns->fed_gen = ns->slot->fed_gen;
            ns->last_ok_ms = ns->slot->last_ok_ms;
        }
        ksv_strmap_put(&c->by_name, name, strlen(name), ns);
    }
    ksv_strmap_free(&slots);
}

static void collection_free(collection *c)
{
    for (size_t i = 0; i < c->n; i++) {
        probe_unref(c->seen[i].probe);
        probe_unref(c->seen[i].prev);
    }
    free(c->seen);
    ksv_strmap_free(&c->by_name);
}

/* One probe's scrape into the window: a repeat when it is the one fed last for this node
 * (most nodes most seconds: nothing answered since), else the scrape itself. */
static int feed_scrape(tui_worker *w, node_slot *slot, const char *node,
                       const ksv_node_probe *p, ksv_err *err)
{
    int rc = 1;
    if (slot->fed_scrape && slot->fed_scrape == p->scrape)
        rc = ksv_mwin_add_repeat(w->mwin, node, p->at_ms, err);
    if (rc == 1)
        rc = ksv_mwin_add_scrape(w->mwin, node, p->at_ms, ksv_scrape_shared_get(p->scrape),
                                 err);
    ksv_scrape_shared_unref(slot->fed_scrape);
    slot->fed_scrape = rc == 0 ? ksv_scrape_shared_ref(p->scrape) : NULL;
    return rc;
}

/* Feeds new scrapes into the window (their samples into the store, in one transaction)
 * and copies node facts. Off the lock: nothing here holds up the UI or a prober. */
static void feed_nodes(tui_worker *w, const ksv_node_list *nodes, collection *c,
                       tui_snapshot *s, int64_t now)
{
    s->nodes = calloc(nodes->n ? nodes->n : 1, sizeof *s->nodes);
    const char **fed = calloc(nodes->n ? nodes->n : 1, sizeof *fed);
    size_t n_fed = 0;
    if (!s->nodes || !fed || !c->seen) {
        free(fed);
        return;
    }
    for (size_t k = 0; k < nodes->n; k++) {
        const ksv_node *n = &nodes->items[k];
        node_seen *ns = &c->seen[k];
        tui_node *tn = &s->nodes[s->n_nodes++];
        ns->tn = tn;
        snprintf(tn->name, sizeof tn->name, "%s", n->name);
        snprintf(tn->kind, sizeof tn->kind, "%s", ksv_node_kind_name(n->kind));
        snprintf(tn->address, sizeof tn->address, "%s", n->address);
        size_t ll = 0;
        for (size_t l = 0; l < n->n_labels && ll < sizeof tn->labels; l++) {
            int wr = snprintf(tn->labels + ll, sizeof tn->labels - ll, "%s%s=%s", l ? "," : "",
                             n->label_keys[l], n->label_values[l]);
            if (wr < 0 || (size_t)wr >= sizeof tn->labels - ll) {
                tn->labels[ll] = '\0'; /* whole labels only */
                break;
            }
            ll += (size_t)wr;
        }
        tn->age_ms = -1;
        if (!ns->probe) {
            snprintf(tn->error, sizeof tn->error, "not probed yet");
            continue;
        }
        const ksv_node_probe *p = &ns->probe->p;
        char figures_error[300] = "";
        if (p->figures_error[0])
            snprintf(figures_error, sizeof figures_error, "%s", p->figures_error);
        if (ns->gen != ns->fed_gen && p->has_scrape && !w->prom) {
            ksv_err err;
            /* Two probes since the last collection: the older one first, or the rate
             * would wait a refresh for its baseline. */
            const ksv_node_probe *pp = ns->prev ? &ns->prev->p : NULL;
            if (pp && ns->gen >= 2 && ns->fed_gen < ns->gen - 1 && pp->has_scrape &&
                pp->at_ms < p->at_ms)
                feed_scrape(w, ns->slot, n->name, pp, &err);
            if (feed_scrape(w, ns->slot, n->name, p, &err) == 0)
                fed[n_fed++] = n->name;
            else
                snprintf(figures_error, sizeof figures_error, "%.290s", err.msg);
        }
        tn->reachable = p->reachable;
        /* `now` is read after the probes were taken, so no probe is newer than it; a
         * clock stepped back is not a node that stopped answering. */
        tn->age_ms = ns->last_ok_ms ? now - ns->last_ok_ms : -1;
        if (ns->last_ok_ms && tn->age_ms < 0)
            tn->age_ms = 0;
        tn->stale = !p->reachable || tn->age_ms < 0 || tn->age_ms > stale_limit_ms(w);
        if (p->reachable && tn->stale)
            snprintf(tn->error, sizeof tn->error, "no answer for %llds",
                     (long long)(tn->age_ms / 1000));
        else if (!p->reachable)
            snprintf(tn->error, sizeof tn->error, "%.250s", p->error);
        else if (figures_error[0] && !w->prom) {
            /* A node whose figures cannot be kept says so on screen, never silently. */
            snprintf(tn->error, sizeof tn->error, "figures not shown: %.230s", figures_error);
            if (!s->error[0])
                snprintf(s->error, sizeof s->error, "node %.60s: figures not shown: %.160s",
                         n->name, figures_error);
        }
        snprintf(tn->version, sizeof tn->version, "%s", p->engine_version);
        tn->uptime_s = p->uptime_s;
        tn->threads = p->threads;
        tn->cpus = p->cpus;
        tn->inflight = p->inflight;
        tn->load1 = p->loadavg1;
        for (size_t g = 0; g < p->n_gpus && g < 8; g++) {
            tui_gpu *tg = &tn->gpus[tn->n_gpus++];
            snprintf(tg->name, sizeof tg->name, "%s", p->gpus[g].name);
            tg->utilization = p->gpus[g].utilization;
            tg->mem_used = p->gpus[g].mem_used;
            tg->mem_total = p->gpus[g].mem_total;
        }
    }
    ksv_err err;
    if (n_fed > 0 && ksv_ctl_store_window_samples_of(w->ctl, w->mwin, fed, n_fed, &err) != 0 &&
        !s->error[0])
        snprintf(s->error, sizeof s->error, "storing samples: %.230s", err.msg);
    free(fed);
}

/* Sums a figure the engines of several nodes report; -1 (unknown) until one does. */
static void add_reported(long long *sum, long long value)
{
    if (value < 0)
        return;
    *sum = *sum < 0 ? value : *sum + value;
}

/* Appends a node's runtime output of the focus model to tm->logs. */
static void copy_runtime_logs(tui_model *tm, const char *node, const ksv_node_probe *probe)
{
    if (probe->n_runtime_logs == 0)
        return;
    tui_runtime_log *p = realloc(tm->logs, (tm->n_logs + probe->n_runtime_logs) * sizeof *p);
    if (!p)
        return;
    tm->logs = p;
    for (size_t i = 0; i < probe->n_runtime_logs; i++) {
        const ksv_probe_runtime_log *pl = &probe->runtime_logs[i];
        tui_runtime_log *tl = &tm->logs[tm->n_logs++];
        memset(tl, 0, sizeof *tl);
        snprintf(tl->node, sizeof tl->node, "%s", node);
        snprintf(tl->revision, sizeof tl->revision, "%s", pl->revision);
        snprintf(tl->state, sizeof tl->state, "%s", pl->state);
        tl->restarts = pl->restarts;
        for (size_t k = 0; k < pl->n_lines && k < TUI_LOG_LINES; k++)
            snprintf(tl->lines[tl->n_lines++], sizeof tl->lines[0], "%s", pl->lines[k]);
    }
}

/* The node's pulls of tm that have not finished well, as lines for its detail screen. */
static void copy_pulls(tui_model *tm, const char *node, const ksv_node_probe *probe)
{
    for (size_t i = 0; i < probe->n_pulls && tm->n_pull_lines < TUI_PULL_LINES; i++) {
        const ksv_probe_pull *p = &probe->pulls[i];
        if (strcmp(p->model, tm->key) != 0 || strcmp(p->state, "done") == 0)
            continue;
        char *line = tm->pull_lines[tm->n_pull_lines++];
        size_t cap = sizeof tm->pull_lines[0];
        if (strcmp(p->state, "failed") == 0)
            snprintf(line, cap, "node %.63s: %.120s failed: %.100s", node, p->uri,
                     p->error);
        else if (p->total >= 0)
            snprintf(line, cap, "node %.63s: %.160s %.1f/%.1f MB (%.1f MB/s) %s", node,
                     p->uri,
                     (double)p->bytes / 1e6, (double)p->total / 1e6, p->rate / 1e6, p->state);
        else
            snprintf(line, cap, "node %.63s: %.160s %.1f MB (%.1f MB/s) %s", node, p->uri,
                     (double)p->bytes / 1e6, p->rate / 1e6, p->state);
    }
}

/* Engine-reported facts about one model: ready nodes, revision states, recent errors. */
static void model_engine_facts(const collection *c, tui_model *tm, char *const *nodes,
                               size_t n_nodes, bool focused)
{
    for (size_t k = 0; k < n_nodes; k++) {
        const node_seen *ns = seen_node(c, nodes[k]);
        const tui_node *tn = ns ? ns->tn : NULL;
        if (tn && tn->stale) {
            tm->stale = true;
            int64_t age = tn->age_ms < 0 ? -1 : tn->age_ms;
            if (age > tm->stale_age_ms)
                tm->stale_age_ms = age;
        }
        if (!ns || !ns->probe || !ns->probe->p.reachable)
            continue;
        const ksv_node_probe *probe = &ns->probe->p;
        bool ready = false;
        for (size_t r = 0; r < probe->n_revs; r++) {
            const ksv_probe_rev *pr = &probe->revs[r];
            if (strcmp(pr->model, tm->name) != 0)
                continue;
            /* Scaled to zero is ready too: its next request starts it (as Knative). */
            if (strcmp(pr->state, "ready") == 0 || strcmp(pr->state, "scaled-to-zero") == 0)
                ready = true;
            for (size_t i = 0; i < tm->n_revs; i++)
                if (strcmp(tm->revs[i].name, pr->revision) == 0) {
                    if (!tm->revs[i].state[0])
                        snprintf(tm->revs[i].state, sizeof tm->revs[i].state, "%s", pr->state);
                    if (!tm->revs[i].serving_runtime[0])
                        snprintf(tm->revs[i].serving_runtime,
                                 sizeof tm->revs[i].serving_runtime, "%s", pr->runtime);
                    add_reported(&tm->revs[i].memory_bytes, pr->memory_bytes);
                    add_reported(&tm->revs[i].cold_starts, pr->cold_starts);
                    add_reported(&tm->revs[i].replicas, pr->replicas);
                    if (pr->download_bytes >= 0) {
                        tui_rev *tr = &tm->revs[i];
                        tr->download_total = pr->download_total < 0 || (tr->download_nodes &&
                                             tr->download_total < 0)
                                                 ? -1
                                                 : tr->download_total + pr->download_total;
                        tr->download_bytes += pr->download_bytes;
                        tr->download_rate += pr->download_rate;
                        tr->download_nodes++;
                    }
                    if (pr->cold_start_p99_s >= 0 &&
                        pr->cold_start_p99_s * 1000 > tm->revs[i].cold_p99_ms)
                        tm->revs[i].cold_p99_ms = pr->cold_start_p99_s * 1000;
                }
        }
        tm->ready_nodes += ready && tn && !tn->stale;
        copy_pulls(tm, nodes[k], probe);
        for (size_t gi = 0; gi < probe->n_gates && !tm->gate.present; gi++) {
            const ksv_probe_gate *pg = &probe->gates[gi];
            if (strcmp(pg->model, tm->name) != 0)
                continue;
            tui_gate *g = &tm->gate;
            g->present = true;
            snprintf(g->node, sizeof g->node, "%s", nodes[k]);
            g->state = *pg;
        }
        if (focused)
            copy_runtime_logs(tm, nodes[k], probe);
        if (!focused || probe->n_errors == 0)
            continue;
        tui_req_error *p = realloc(tm->errors, (tm->n_errors + probe->n_errors) * sizeof *p);
        if (!p)
            continue;
        tm->errors = p;
        for (size_t e = 0; e < probe->n_errors; e++) {
            const ksv_probe_error *pe = &probe->errors[e];
            tui_req_error *te = &tm->errors[tm->n_errors++];
            te->unix_time = pe->unix_time;
            te->status = pe->status;
            snprintf(te->node, sizeof te->node, "%s", nodes[k]);
            snprintf(te->request_id, sizeof te->request_id, "%s", pe->request_id);
            snprintf(te->revision, sizeof te->revision, "%s", pe->revision);
            snprintf(te->message, sizeof te->message, "%s", pe->message);
        }
    }
    /* Newest first across nodes. */
    for (size_t i = 1; i < tm->n_errors; i++) {
        tui_req_error x = tm->errors[i];
        size_t j = i;
        while (j > 0 && tm->errors[j - 1].unix_time < x.unix_time) {
            tm->errors[j] = tm->errors[j - 1];
            j--;
        }
        tm->errors[j] = x;
    }
}

static bool name_unique(const ksv_model_record_list *models, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < models->n; i++)
        n += strcmp(models->items[i].name, name) == 0;
    return n <= 1;
}

static void fill_model(tui_worker *w, const collection *c, const ksv_model_record_list *models,
                       const ksv_model_view *v, tui_model *tm, int64_t now, bool focused)
{
    snprintf(tm->ns, sizeof tm->ns, "%s", v->model.ns);
    snprintf(tm->name, sizeof tm->name, "%s", v->model.name);
    snprintf(tm->key, sizeof tm->key, "%s/%s", v->model.ns, v->model.name);
    size_t len = 0;
    tm->nodes[0] = '\0';
    for (size_t i = 0; i < v->model.n_nodes; i++) {
        int n = snprintf(tm->nodes + len, sizeof tm->nodes - len, "%s%s", i ? "," : "",
                         v->model.nodes[i]);
        if (n < 0 || (size_t)n >= sizeof tm->nodes - len)
            break;
        len += (size_t)n;
    }
    tm->n_nodes = v->model.n_nodes;
    tm->created_ms = v->model.created_at_ms;
    tm->spec_json = strdup(v->model.spec_json ? v->model.spec_json : "{}");
    tm->stable = tm->canary = -1;
    tm->revs = calloc(v->revisions.n ? v->revisions.n : 1, sizeof *tm->revs);
    if (tm->revs) {
        for (size_t i = 0; i < v->revisions.n; i++) {
            const ksv_revision_record *r = &v->revisions.items[i];
            tui_rev *tr = &tm->revs[tm->n_revs++];
            snprintf(tr->name, sizeof tr->name, "%s", r->name);
            snprintf(tr->runtime, sizeof tr->runtime, "%s", r->runtime);
            snprintf(tr->storage_uri, sizeof tr->storage_uri, "%s", r->storage_uri);
            tr->seq = r->seq;
            tr->percent = ksv_model_view_percent(v, r->id);
            tr->stable = r->id == v->stable_id;
            tr->canary = r->id == v->canary_id;
            tr->created_ms = r->created_at_ms;
            tr->rolled_out_ms = r->rolled_out_at_ms;
            tr->memory_bytes = tr->cold_starts = tr->replicas = -1; /* until an engine reports */
            tr->download_total = 0;
            tr->cold_p99_ms = -1;
            if (tr->stable)
                tm->stable = (int)i;
            if (tr->canary)
                tm->canary = (int)i;
        }
    }
    if (w->prom) {
        /* Engines label series with the model's name only: Prometheus cannot tell one name
         * in two namespaces apart (prom_source.h). */
        prom_figures_for(w, tm->name, NULL, &tm->figs);
        for (size_t i = 0; i < tm->n_revs; i++)
            prom_figures_for(w, tm->name, tm->revs[i].name, &tm->revs[i].figs);
    } else {
        bool unique = name_unique(models, tm->name);
        const char *const *nodes = unique ? NULL : (const char *const *)v->model.nodes;
        figures_for(w, nodes, v->model.n_nodes, tm->name, NULL, now, &tm->figs);
        for (size_t i = 0; i < tm->n_revs; i++)
            figures_for(w, nodes, v->model.n_nodes, tm->name, tm->revs[i].name, now,
                        &tm->revs[i].figs);
    }
    model_engine_facts(c, tm, v->model.nodes, v->model.n_nodes, focused);

    spark_hist *h = spark_for(w, tm->key);
    if (h) {
        double q = tm->figs.has_rate ? tm->figs.qps : NAN;
        if (!isnan(q) && !isnan(h->last_qps)) {
            double d = q - h->last_qps, base = h->last_qps > 1 ? h->last_qps : 1;
            tm->qps_trend = fabs(d) / base >= 0.10 ? (d > 0 ? 1 : -1) : 0;
        }
        h->last_qps = q;
        spark_push(h->qps, h->n, q);
        spark_push(h->p99, h->n, tm->figs.p99_ms);
        if (h->n < TUI_SPARK_LEN)
            h->n++;
        memcpy(tm->qps_hist, h->qps, sizeof h->qps);
        memcpy(tm->p99_hist, h->p99, sizeof h->p99);
        tm->n_hist = h->n;
    }
}

/* The focus model's waves as lines, one per wave: "wave 2/3 succeeded: n001, n002 (12)". */
static void read_waves(tui_worker *w, const char *ref)
{
    if (strcmp(w->waves_of, ref) == 0 && w->waves_version == w->cache.version)
        return;
    snprintf(w->waves_of, sizeof w->waves_of, "%s", ref);
    w->waves_version = w->cache.version;
    w->n_wave_lines = 0;
    w->waves_title[0] = '\0';
    json_object *st = NULL;
    ksv_err err;
    if (!*ref || ksv_ctl_wave_status(w->ctl, ref, NULL, &st, &err) != 0 || !st)
        return;
    int waves = json_object_get_int(json_object_object_get(st, "waves"));
    snprintf(w->waves_title, sizeof w->waves_title, "%s in %d waves",
             json_object_get_string(json_object_object_get(st, "revision")), waves);
    json_object *nodes = json_object_object_get(st, "nodes");
    for (int k = 1; k <= waves && w->n_wave_lines < TUI_WAVE_LINES; k++) {
        char *line = w->wave_lines[w->n_wave_lines];
        size_t len = 0, count = 0;
        for (size_t i = 0; i < json_object_array_length(nodes); i++) {
            json_object *e = json_object_array_get_idx(nodes, i);
            if (json_object_get_int(json_object_object_get(e, "wave")) != k)
                continue;
            const char *node = json_object_get_string(json_object_object_get(e, "node"));
            if (count++ == 0)
                len = (size_t)snprintf(line, sizeof w->wave_lines[0], "wave %d/%d %s: %s", k,
                                       waves,
                                       json_object_get_string(json_object_object_get(e, "phase")),
                                       node);
            else if (count <= 4 && len < sizeof w->wave_lines[0])
                len += (size_t)snprintf(line + len, sizeof w->wave_lines[0] - len, ", %s", node);
        }
        if (count > 4 && len < sizeof w->wave_lines[0])
            snprintf(line + len, sizeof w->wave_lines[0] - len, ", ... (%zu nodes)", count);
        if (count)
            w->n_wave_lines++;
    }
    json_object_put(st);
}

static void fill_history(tui_snapshot *s, const ksv_history_list *hl)
{
    s->history = calloc(hl->n ? hl->n : 1, sizeof *s->history);
    if (!s->history)
        return;
    for (size_t i = 0; i < hl->n; i++) {
        const ksv_history_entry *e = &hl->items[i];
        tui_hist_row *r = &s->history[s->n_history++];
        r->at_ms = e->at_ms;
        snprintf(r->actor, sizeof r->actor, "%s", e->actor ? e->actor : "");
        snprintf(r->action, sizeof r->action, "%s", e->action ? e->action : "");
        snprintf(r->target, sizeof r->target, "%s",
                 e->model ? e->model : e->node ? e->node : "");
        snprintf(r->old_value, sizeof r->old_value, "%s", e->old_value ? e->old_value : "");
        snprintf(r->new_value, sizeof r->new_value, "%s", e->new_value ? e->new_value : "");
        snprintf(r->result, sizeof r->result, "%s", e->result ? e->result : "");
    }
}

static void cache_clear(store_cache *c)
{
    for (size_t i = 0; c->views && i < c->models.n; i++)
        if (c->have_view[i])
            ksv_model_view_free(&c->views[i]);
    free(c->views);
    free(c->have_view);
    ksv_node_list_free(&c->nodes);
    ksv_model_record_list_free(&c->models);
    ksv_history_list_free(&c->hist);
    ksv_quota_usage_list_free(&c->quotas);
    ksv_cost_report_free(&c->cost);
    memset(c, 0, sizeof *c);
}

/* Reads models, nodes, history and each model's view, only when another handle or process
 * changed the store since the last read (ksv_ctl_store_version): an idle fleet costs one
 * pragma per refresh, not a dozen statements per model. Returns whether it re-read. */
static bool refresh_cache(tui_worker *w)
{
    store_cache *c = &w->cache;
    ksv_err err;
    int64_t version = 0;
    bool known = ksv_ctl_store_version(w->ctl, &version, &err) == 0;
    if (c->valid && known && version == c->version)
        return false;
    cache_clear(c);
    c->version = version;
    c->valid = known;
    if (ksv_ctl_node_list(w->ctl, &c->nodes, &err) != 0 ||
        ksv_ctl_model_list(w->ctl, NULL, &c->models, &err) != 0 ||
        ksv_ctl_history_list(w->ctl, NULL, HISTORY_ROWS, &c->hist, &err) != 0) {
        snprintf(c->error, sizeof c->error, "store: %.240s", err.msg);
        c->valid = false; /* read again next time */
    }
    if (ksv_ctl_quota_list(w->ctl, NULL, &c->quotas, &err) != 0)
        memset(&c->quotas, 0, sizeof c->quotas); /* the namespaces screen shows none */
    c->views = calloc(c->models.n ? c->models.n : 1, sizeof *c->views);
    c->have_view = calloc(c->models.n ? c->models.n : 1, sizeof *c->have_view);
    for (size_t i = 0; c->views && c->have_view && i < c->models.n; i++) {
        char ref[TUI_KEY_LEN];
        snprintf(ref, sizeof ref, "%s/%s", c->models.items[i].ns, c->models.items[i].name);
        c->have_view[i] = ksv_ctl_model_view(w->ctl, ref, NULL, &c->views[i], &err) == 0;
    }
    return true;
}

/* The cost of the last 24 h from what the store holds: no node is contacted here (the
 * probers import the engines' events). */
static void refresh_cost(tui_worker *w, int64_t now)
{
    store_cache *c = &w->cache;
    if (c->has_cost && now - c->cost_ms < COST_EVERY_MS)
        return;
    ksv_cost_report_free(&c->cost);
    ksv_cost_query q = {.since_s = 86400, .gpu_hour_price = -1, .gb_hour_price = -1,
                        .stored_only = true};
    ksv_err err;
    c->has_cost = ksv_ctl_cost(w->ctl, &q, &c->cost, &err) == 0;
    snprintf(c->cost_error, sizeof c->cost_error, "%.250s", c->has_cost ? "" : err.msg);
    c->cost_ms = now;
}

static void fill_quotas_and_cost(tui_snapshot *s, const store_cache *c)
{
    s->quotas = calloc(c->quotas.n ? c->quotas.n : 1, sizeof *s->quotas);
    for (size_t i = 0; s->quotas && i < c->quotas.n; i++) {
        tui_quota *q = &s->quotas[s->n_quotas++];
        snprintf(q->ns, sizeof q->ns, "%s", c->quotas.items[i].quota.ns);
        snprintf(q->name, sizeof q->name, "%s", c->quotas.items[i].quota.name);
        ksv_quota_usage_text(&c->quotas.items[i], q->request, sizeof q->request);
    }
    snprintf(s->cost_error, sizeof s->cost_error, "%s", c->cost_error);
    if (!c->has_cost)
        return;
    s->cost = c->cost;
    s->cost.warnings = NULL;
    s->cost.n_warnings = 0;
    s->cost.rows = malloc((c->cost.n ? c->cost.n : 1) * sizeof *s->cost.rows);
    if (!s->cost.rows) {
        s->cost.n = 0;
        return;
    }
    if (c->cost.n) /* no rows is a NULL array, which memcpy may not be given */
        memcpy(s->cost.rows, c->cost.rows, c->cost.n * sizeof *s->cost.rows);
    s->has_cost = true;
}

/* One collection: reads the store (when it changed), takes the probes, builds the snapshot
 * off the lock and publishes it. The lock is held only to copy pointers. */
static void collect(tui_worker *w)
{
    tui_snapshot *s = tui_snapshot_new();
    if (!s)
        return;
    if (w->prom) {
        /* Off the lock: a slow Prometheus delays this snapshot, never the UI or a prober. */
        ksv_prom_round_free(&w->prom_round);
        ksv_err perr;
        if (ksv_prom_source_fetch(w->prom, &w->prom_round, &perr) != 0)
            snprintf(s->error, sizeof s->error, "%.250s", perr.msg);
    }
    bool changed = refresh_cache(w);
    refresh_cost(w, ksv_wall_ms());
    const store_cache *cache = &w->cache;
    if (cache->error[0])
        snprintf(s->error, sizeof s->error, "%s", cache->error);

    collection c = {0};
    char focus[TUI_KEY_LEN];
    pthread_mutex_lock(&w->mu);
    sync_slots(w, &cache->nodes, changed);
    take_probes(w, &cache->nodes, &c);
    uint64_t begun = ++w->collections_begun;
    snprintf(focus, sizeof focus, "%s", w->focus);
    pthread_mutex_unlock(&w->mu);

    int64_t now = ksv_wall_ms(); /* after the probes were taken: none is newer */
    s->taken_ms = now;
    s->interval_s = w->opts.interval_s;
    feed_nodes(w, &cache->nodes, &c, s, now);
    s->models = calloc(cache->models.n ? cache->models.n : 1, sizeof *s->models);
    for (size_t i = 0; s->models && cache->views && i < cache->models.n; i++) {
        if (!cache->have_view[i])
            continue;
        const ksv_model_view *v = &cache->views[i];
        char ref[TUI_KEY_LEN];
        snprintf(ref, sizeof ref, "%s/%s", v->model.ns, v->model.name);
        bool focused = strcmp(ref, focus) == 0;
        tui_model *tm = &s->models[s->n_models++];
        fill_model(w, &c, &cache->models, v, tm, now, focused);
        if (focused) {
            read_waves(w, ref);
            snprintf(tm->waves_title, sizeof tm->waves_title, "%s", w->waves_title);
            memcpy(tm->wave_lines, w->wave_lines, sizeof tm->wave_lines);
            tm->n_wave_lines = w->n_wave_lines;
        }
    }
    fill_history(s, &cache->hist);
    fill_quotas_and_cost(s, cache);

    pthread_mutex_lock(&w->mu);
    for (size_t k = 0; k < c.n; k++)
        if (c.seen[k].slot && c.seen[k].slot->fed_gen < c.seen[k].gen)
            c.seen[k].slot->fed_gen = c.seen[k].gen;
    s->seq = ++w->snap_seq;
    w->snap_begun = begun;
    tui_snapshot *old = w->snap;
    w->snap = s;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    tui_snapshot_unref(old);
    collection_free(&c);
}

static void *collector_main(void *arg)
{
    tui_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        w->refresh = false;
        pthread_mutex_unlock(&w->mu);
        collect(w);
        pthread_mutex_lock(&w->mu);
        wait_ms(w, &w->refresh, w->opts.interval_s * 1000);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the actor ---- */

static void describe_result(const ksv_ctl_result *res, int rc, const ksv_err *err,
                            tui_job_result *out)
{
    size_t len = 0;
    out->ok = rc == 0 && ksv_ctl_result_ok(res);
    int n = snprintf(out->text, sizeof out->text, "%s", rc == 0 ? res->summary : err->msg);
    len = n > 0 && (size_t)n < sizeof out->text ? (size_t)n : strlen(out->text);
    for (size_t i = 0; i < res->n && len < sizeof out->text; i++) {
        n = snprintf(out->text + len, sizeof out->text - len, "%snode %s: %s%s%s",
                     len ? "; " : "", res->nodes[i].node, res->nodes[i].ok ? "ok" : "FAILED",
                     res->nodes[i].message[0] ? " " : "", res->nodes[i].message);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

static void run_job(ksv_ctl *ctl, const tui_job *job, const char *manifest, double timeout_s,
                    tui_job_result *out)
{
    ksv_ctl_result res = {0};
    ksv_err err;
    ksv_err_clear(&err);
    /* The reason is this change's alone: set for it, cleared after it. */
    int rc = ksv_ctl_set_reason(ctl, job->reason, &err);
    if (rc != 0) {
        describe_result(&res, rc, &err, out);
        return;
    }
    if (job->kind == TUI_JOB_APPLY) {
        ksv_manifest_list list;
        rc = ksv_manifest_parse_buffer(manifest, strlen(manifest), "edited.yaml", NULL, &list,
                                       &err);
        if (rc == 0) {
            ksv_apply_options o = {.timeout_s = timeout_s};
            rc = ksv_ctl_apply(ctl, &list, &o, &res, &err);
            ksv_manifest_list_free(&list);
        }
    } else if (job->kind == TUI_JOB_GATE_PAUSE || job->kind == TUI_JOB_GATE_RESUME ||
               job->kind == TUI_JOB_GATE_ABORT) {
        rc = ksv_ctl_gate_action(ctl, job->model, NULL,
                                 job->kind == TUI_JOB_GATE_PAUSE    ? "pause"
                                 : job->kind == TUI_JOB_GATE_RESUME ? "resume"
                                                                    : "abort",
                                 &res, &err);
    } else {
        ksv_rollout_request req = {
            .op = job->kind == TUI_JOB_SET_TRAFFIC ? KSV_ROLLOUT_SET_TRAFFIC
                  : job->kind == TUI_JOB_PROMOTE   ? KSV_ROLLOUT_PROMOTE
                                                   : KSV_ROLLOUT_ROLLBACK,
            .model = job->model,
            .percent = job->percent,
            .timeout_s = timeout_s,
        };
        rc = ksv_ctl_rollout(ctl, &req, &res, &err);
    }
    ksv_ctl_set_reason(ctl, NULL, NULL);
    describe_result(&res, rc, &err, out);
    ksv_ctl_result_free(&res);
}

static void *actor_main(void *arg)
{
    tui_worker *w = arg;
    ksv_ctl *ctl = NULL;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->job_pending)
            pthread_cond_wait(&w->cond, &w->mu);
        if (w->stop)
            break;
        tui_job job = w->job;
        char *manifest = w->job_manifest;
        w->job_manifest = NULL;
        w->job_pending = false;
        w->job_running = true;
        pthread_mutex_unlock(&w->mu);
        tui_job_result r = {0};
        ksv_err err;
        if (!ctl && open_ctl(w, 0, false, &ctl, &err) != 0)
            snprintf(r.text, sizeof r.text, "%s", err.msg);
        else
            run_job(ctl, &job, manifest ? manifest : "", w->opts.change_timeout_s, &r);
        free(manifest);
        pthread_mutex_lock(&w->mu);
        w->result = r;
        w->result_ready = true;
        w->job_running = false;
        w->refresh = true;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
    ksv_ctl_close(ctl);
    return NULL;
}

/* ---- public ---- */

int tui_worker_start(const tui_worker_options *o, tui_worker **out, ksv_err *err)
{
    *out = NULL;
    tui_worker *w = calloc(1, sizeof *w);
    if (!w)
        return ksv_err_set(err, 500, "out of memory");
    w->opts = *o;
    if (!(w->opts.interval_s > 0))
        w->opts.interval_s = 1;
    if (w->opts.node_timeout_ms <= 0)
        w->opts.node_timeout_ms = 2000;
    if (!(w->opts.change_timeout_s > 0))
        w->opts.change_timeout_s = 60;
    snprintf(w->db_path, sizeof w->db_path, "%s", o->db_path ? o->db_path : "");
    snprintf(w->argv0, sizeof w->argv0, "%s", o->argv0 ? o->argv0 : "");
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    pthread_cond_init(&w->probe_cond, NULL);
    /* Scrapes kept per series: the latency window's worth at this refresh and some spare
     * (a late collection feeds two), not a fixed 128: a fleet has thousands of series. */
    double per_window = ceil(KSV_MWIN_LATENCY_WINDOW_MS / (w->opts.interval_s * 1000));
    size_t keep = per_window + 8 < 16 ? 16 : per_window + 8 > 65536 ? 65536 : (size_t)per_window + 8;
    if (open_ctl(w, w->opts.node_timeout_ms, false, &w->ctl, err) != 0 ||
        ksv_mwin_new(keep, &w->mwin, err) != 0) {
        tui_worker_stop(w);
        return -1;
    }
    if (o->prometheus_url) {
        ksv_prom_options po = {.url = o->prometheus_url, .timeout_ms = w->opts.node_timeout_ms};
        if (ksv_prom_source_new(&po, &w->prom, err) != 0) {
            tui_worker_stop(w);
            return -1;
        }
    }
    w->opts.prometheus_url = NULL; /* the caller's string; the source keeps its own copy */
    if (pthread_create(&w->collector, NULL, collector_main, w) != 0) {
        tui_worker_stop(w);
        return ksv_err_set(err, 500, "cannot start the collector thread");
    }
    w->collector_started = true;
    if (pthread_create(&w->actor, NULL, actor_main, w) != 0) {
        tui_worker_stop(w);
        return ksv_err_set(err, 500, "cannot start the actor thread");
    }
    w->actor_started = true;
    for (size_t i = 0; i < PROBERS; i++) {
        if (pthread_create(&w->probers[i], NULL, prober_main, w) != 0)
            break;
        w->n_probers++;
    }
    if (w->n_probers == 0) {
        tui_worker_stop(w);
        return ksv_err_set(err, 500, "cannot start the probe threads");
    }
    *out = w;
    return 0;
}

void tui_worker_stop(tui_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_cond_broadcast(&w->probe_cond);
    pthread_mutex_unlock(&w->mu);
    if (w->collector_started)
        pthread_join(w->collector, NULL);
    if (w->actor_started)
        pthread_join(w->actor, NULL);
    for (size_t i = 0; i < w->n_probers; i++)
        pthread_join(w->probers[i], NULL);
    for (size_t i = 0; i < w->n_slots; i++)
        slot_free(w->slots[i]);
    free(w->slots);
    cache_clear(&w->cache);
    free(w->job_manifest);
    tui_snapshot_unref(w->snap);
    free(w->sparks);
    ksv_mwin_free(w->mwin);
    ksv_prom_round_free(&w->prom_round);
    ksv_prom_source_free(w->prom);
    ksv_ctl_close(w->ctl);
    pthread_cond_destroy(&w->cond);
    pthread_cond_destroy(&w->probe_cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

tui_snapshot *tui_worker_snapshot(tui_worker *w)
{
    pthread_mutex_lock(&w->mu);
    tui_snapshot *s = tui_snapshot_ref(w->snap);
    pthread_mutex_unlock(&w->mu);
    return s;
}

void tui_worker_set_focus(tui_worker *w, const char *model_key)
{
    pthread_mutex_lock(&w->mu);
    if (strcmp(w->focus, model_key ? model_key : "") != 0) {
        snprintf(w->focus, sizeof w->focus, "%s", model_key ? model_key : "");
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
}

void tui_worker_refresh(tui_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->refresh = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

int tui_worker_submit(tui_worker *w, const tui_job *job, ksv_err *err)
{
    char *manifest = NULL;
    if (job->kind == TUI_JOB_APPLY) {
        manifest = malloc(job->manifest_len + 1);
        if (!manifest)
            return ksv_err_set(err, 500, "out of memory");
        memcpy(manifest, job->manifest, job->manifest_len);
        manifest[job->manifest_len] = '\0';
    }
    pthread_mutex_lock(&w->mu);
    if (w->job_pending || w->job_running) {
        pthread_mutex_unlock(&w->mu);
        free(manifest);
        return ksv_err_set(err, 409, "another change is still running");
    }
    w->job = *job;
    w->job.manifest = NULL;
    w->job_manifest = manifest;
    w->job_pending = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

bool tui_worker_busy(tui_worker *w)
{
    pthread_mutex_lock(&w->mu);
    bool busy = w->job_pending || w->job_running;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

bool tui_worker_take_result(tui_worker *w, tui_job_result *out)
{
    pthread_mutex_lock(&w->mu);
    bool ready = w->result_ready;
    if (ready) {
        *out = w->result;
        w->result_ready = false;
    }
    pthread_mutex_unlock(&w->mu);
    return ready;
}

bool tui_worker_take_transfer(tui_worker *w, uint64_t *seen, char *out, size_t cap,
                              bool *done)
{
    pthread_mutex_lock(&w->mu);
    bool fresh = w->transfer_seq != *seen;
    if (fresh) {
        *seen = w->transfer_seq;
        snprintf(out, cap, "%s", w->transfer);
        *done = w->transfer_done;
    }
    pthread_mutex_unlock(&w->mu);
    return fresh;
}

/* Every node probed twice (the first probe is the rates' baseline) or found down. */
static bool probed_twice(const tui_worker *w)
{
    if (w->snap_seq == 0)
        return false; /* the slots come with the first collection */
    for (size_t k = 0; k < w->n_slots; k++) {
        const node_slot *slot = w->slots[k];
        if (!slot->retired &&
            !(slot->probe && (slot->gen >= 2 || !slot->probe->p.reachable)))
            return false;
    }
    return true;
}

int tui_collect_once(const tui_worker_options *o, tui_snapshot **out, ksv_err *err)
{
    *out = NULL;
    tui_worker *w;
    if (tui_worker_start(o, &w, err) != 0)
        return -1;
    /* Two probes of each node, one interval apart, make the first rates: this takes one
     * interval plus what the probes take (all nodes at once), and no more. A node that
     * does not answer counts once it has failed; bounded whatever happens. */
    double deadline = ksv_mono_ms() + (w->opts.interval_s * 2 + 2) * 1000 +
                      2.0 * (double)w->opts.node_timeout_ms;
    pthread_mutex_lock(&w->mu);
    w->rounds_watched = true;
    while (!probed_twice(w) && ksv_mono_ms() < deadline)
        wait_ms(w, NULL, 50);
    /* A collection that took the probes after they were all in (one already under way
     * may have taken them before). */
    uint64_t begun = w->collections_begun;
    w->refresh = true;
    pthread_cond_broadcast(&w->cond);
    while (w->snap_begun <= begun && ksv_mono_ms() < deadline + 5000)
        wait_ms(w, NULL, 50);
    if (w->snap_begun > begun)
        *out = tui_snapshot_ref(w->snap);
    pthread_mutex_unlock(&w->mu);
    tui_worker_stop(w);
    return *out ? 0 : ksv_err_set(err, 500, "no snapshot was collected");
}
