/* test_metrics_window_runs.c: the window's runs (one entry for identical consecutive
 * scrapes) give the figures one entry per scrape gives, bit for bit.
 *
 * Two windows get the same scrape sequences, through the engine's own /ksv/v1/histograms
 * document: one keeps runs (the default), the other one entry per scrape
 * (ksv_mwin_set_runs false: the representation before runs, whose figures
 * test_metrics_window checks against a ledger of every request). After every scrape both
 * are asked for every figure (rates, latency, the merged window histogram, token figures,
 * the increments the store keeps), at the scrape's time and between scrapes, over windows
 * whose edges fall inside runs, for one series, a model, a node and the whole fleet; every
 * answer must be the same bytes. The sequences are simulated engines with idle stretches
 * that then resume, restarts right after an idle stretch (and an idle stretch right after a
 * restart), revisions missing from some scrapes, nodes that stop answering for a while, a
 * generative revision's token counters and TTFT, and small capacities, so runs are cut at
 * the ring's end too. Then the memory: an idle series holds one entry. */
#include "common/histogram.h"
#include "common/strbuf.h"
#include "control/metrics_window.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "krng.h"
#include "ktest.h"

#define T0 1700000000000LL

static uint64_t rng_below(rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* ---- simulated engines ---- */

#define CODES 4
static const int code_of[CODES] = {200, 404, 500, 503};

/* One revision on one node, as its engine counts it (cumulative since its start). */
typedef struct fake {
    char model[16];
    char revision[24];
    bool generative;
    ksv_hist *lat;
    ksv_hist *ttft;
    uint64_t codes[CODES];
    uint64_t prompt, generated;
    /* How it behaves: idle for `idle_left` more scrapes, then busy for `busy_left`. */
    int idle_left, busy_left;
} fake;

static void fake_start(fake *f)
{
    ksv_hist_init(f->lat);
    ksv_hist_init(f->ttft);
    memset(f->codes, 0, sizeof f->codes);
    f->prompt = f->generated = 0;
}

/* One interval of traffic: nothing while idle, some requests while busy. */
static void fake_step(fake *f, rng *r)
{
    if (f->idle_left > 0) {
        f->idle_left--;
        return;
    }
    if (f->busy_left <= 0) { /* a new phase: idle for up to 40 scrapes, then busy */
        f->idle_left = (int)rng_below(r, 40);
        f->busy_left = 1 + (int)rng_below(r, 6);
        return;
    }
    f->busy_left--;
    int n = (int)rng_below(r, 5); /* busy can still be a quiet second */
    for (int i = 0; i < n; i++) {
        uint64_t u = rng_below(r, 100);
        f->codes[u < 85 ? 0 : u < 92 ? 1 : u < 97 ? 2 : 3]++;
        ksv_hist_record(f->lat, 0.002 + 0.05 * rng_unit(r));
        if (f->generative) {
            ksv_hist_record(f->ttft, 0.01 + 0.2 * rng_unit(r));
            f->prompt += 10 + rng_below(r, 50);
            f->generated += 1 + rng_below(r, 200);
        }
    }
}

/* The node's /ksv/v1/histograms document over the fakes present in this scrape. */
static char *document(fake *fakes, const bool *present, size_t n)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_hist_snap *snap = malloc(sizeof *snap);
    ksv_sb_puts(&sb, "{\"series\":[");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!present[i])
            continue;
        const fake *f = &fakes[i];
        ksv_sb_printf(&sb, "%s{\"model\":", first ? "" : ",");
        first = false;
        ksv_sb_json_str(&sb, f->model);
        ksv_sb_puts(&sb, ",\"revision\":");
        ksv_sb_json_str(&sb, f->revision);
        ksv_sb_puts(&sb, ",\"codes\":{");
        bool first_code = true;
        for (int c = 0; c < CODES; c++) {
            if (!f->codes[c])
                continue;
            ksv_sb_printf(&sb, "%s\"%d\":%llu", first_code ? "" : ",", code_of[c],
                          (unsigned long long)f->codes[c]);
            first_code = false;
        }
        ksv_sb_puts(&sb, "},\"histogram\":");
        ksv_hist_snapshot(f->lat, snap);
        ksv_hist_write_fine_json(&sb, snap);
        if (f->generative) {
            ksv_sb_puts(&sb, ",\"ttft\":");
            ksv_hist_snapshot(f->ttft, snap);
            ksv_hist_write_fine_json(&sb, snap);
            ksv_sb_printf(&sb, ",\"prompt_tokens\":%llu,\"generation_tokens\":%llu",
                          (unsigned long long)f->prompt, (unsigned long long)f->generated);
        }
        ksv_sb_putc(&sb, '}');
    }
    ksv_sb_puts(&sb, "]}");
    free(snap);
    return ksv_sb_steal(&sb, NULL);
}

/* ---- the comparison ---- */

static size_t compared, differed;

static void same_bytes(const void *a, const void *b, size_t n, const char *what,
                       const char *where)
{
    compared++;
    if (memcmp(a, b, n) != 0) {
        differed++;
        if (differed <= 10)
            KT_FAIL("%s differs with runs: %s", what, where);
    }
}

/* Every figure of both windows for one selection, now and window. */
static void compare_figures(ksv_mwin *runs, ksv_mwin *plain, const ksv_mwin_sel *sel,
                            int64_t now, int64_t window, const char *where)
{
    ksv_err err;
    ksv_mwin_rate_stats ra, rb;
    ksv_mwin_rates(runs, sel, now, window, &ra, &err);
    ksv_mwin_rates(plain, sel, now, window, &rb, &err);
    same_bytes(&ra, &rb, sizeof ra, "rates", where);
    ksv_mwin_latency_stats la, lb;
    ksv_mwin_latency(runs, sel, now, window, &la, &err);
    ksv_mwin_latency(plain, sel, now, window, &lb, &err);
    same_bytes(&la, &lb, sizeof la, "latency", where);
    ksv_mwin_llm_stats ga, gb;
    ksv_mwin_llm(runs, sel, now, window / 6 > 0 ? window / 6 : 1, window, &ga, &err);
    ksv_mwin_llm(plain, sel, now, window / 6 > 0 ? window / 6 : 1, window, &gb, &err);
    same_bytes(&ga, &gb, sizeof ga, "token figures", where);
    static ksv_hist_snap ha, hb;
    size_t sa = 0, sb = 0;
    ksv_mwin_window_hist(runs, sel, now, window, &ha, &sa, &err);
    ksv_mwin_window_hist(plain, sel, now, window, &hb, &sb, &err);
    same_bytes(&ha, &hb, sizeof ha, "window histogram", where);
    same_bytes(&sa, &sb, sizeof sa, "window histogram's series", where);
}

static void compare_samples(ksv_mwin *runs, ksv_mwin *plain, const char *node,
                            const char *where)
{
    ksv_err err;
    ksv_metric_sample *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    ksv_mwin_store_samples(runs, node, &a, &na, &err);
    ksv_mwin_store_samples(plain, node, &b, &nb, &err);
    same_bytes(&na, &nb, sizeof na, "number of store samples", where);
    for (size_t i = 0; i < na && i < nb; i++) {
        bool same = a[i].at_ms == b[i].at_ms && a[i].span_ms == b[i].span_ms &&
                    strcmp(a[i].model, b[i].model) == 0 &&
                    strcmp(a[i].revision, b[i].revision) == 0 &&
                    a[i].requests_2xx == b[i].requests_2xx &&
                    a[i].requests_4xx == b[i].requests_4xx &&
                    a[i].requests_5xx == b[i].requests_5xx &&
                    a[i].requests_other == b[i].requests_other &&
                    memcmp(&a[i].latency_sum_s, &b[i].latency_sum_s, sizeof(double)) == 0 &&
                    a[i].n_buckets == b[i].n_buckets &&
                    (a[i].n_buckets == 0 ||
                     memcmp(a[i].buckets, b[i].buckets, a[i].n_buckets * sizeof *a[i].buckets) ==
                         0);
        same_bytes(&same, &(bool){true}, sizeof same, "store sample", where);
    }
    ksv_mwin_store_samples_free(a, na);
    ksv_mwin_store_samples_free(b, nb);
}

/* ---- the scenarios ---- */

#define NODES 3
#define REVS 6 /* per node: 3 models x 2 revisions, one of them generative */

typedef struct scenario {
    const char *name;
    uint64_t seed;
    size_t capacity;   /* 0: the default */
    size_t scrapes;
    int restart_pct;   /* a fake restarts at a scrape with this chance, in 1/1000 */
    int absent_pct;    /* a revision is missing from a scrape, in 1/1000 */
    int silent_pct;    /* a node is not scraped this round, in 1/1000 */
    int64_t step_ms;   /* between rounds, jittered by up to a third either way */
} scenario;

static void run_scenario(const scenario *sc)
{
    rng r = {sc->seed};
    ksv_err err;
    ksv_mwin *runs = NULL, *plain = NULL;
    KT_CHECK(ksv_mwin_new(sc->capacity, &runs, &err) == 0 &&
                 ksv_mwin_new(sc->capacity, &plain, &err) == 0,
             "%s: windows: %s", sc->name, err.msg);
    if (!runs || !plain)
        return;
    ksv_mwin_set_runs(plain, false);
    fake fakes[NODES][REVS];
    char nodes[NODES][16];
    for (int n = 0; n < NODES; n++) {
        snprintf(nodes[n], sizeof nodes[n], "n%d", n);
        for (int i = 0; i < REVS; i++) {
            fake *f = &fakes[n][i];
            memset(f, 0, sizeof *f);
            snprintf(f->model, sizeof f->model, "m%d", i / 2);
            snprintf(f->revision, sizeof f->revision, "m%d-%05d", i / 2, 1 + i % 2);
            f->generative = i / 2 == 2;
            f->lat = malloc(sizeof *f->lat);
            f->ttft = malloc(sizeof *f->ttft);
            fake_start(f);
            f->idle_left = (int)rng_below(&r, 30);
        }
    }
    static const int64_t windows[] = {1, 700, 1000, 2500, 3300, KSV_MWIN_RATE_WINDOW_MS,
                                      17000, KSV_MWIN_LATENCY_WINDOW_MS, 600000};
    int64_t t = T0;
    size_t restarts = 0, after_idle = 0, absent = 0, silent = 0, repeats = 0;
    char *last_doc[NODES] = {NULL};
    for (size_t k = 0; k < sc->scrapes; k++) {
        int64_t jitter = sc->step_ms / 3;
        t += sc->step_ms - jitter + (int64_t)rng_below(&r, (uint64_t)(2 * jitter + 1));
        if (rng_below(&r, 50) == 0)
            t += 20000; /* the console stalled: every node's scrapes have a gap */
        for (int n = 0; n < NODES; n++) {
            bool present[REVS];
            for (int i = 0; i < REVS; i++) {
                fake *f = &fakes[n][i];
                bool was_idle = f->idle_left > 0;
                fake_step(f, &r);
                if ((int)rng_below(&r, 1000) < sc->restart_pct) {
                    fake_start(f);
                    restarts++;
                    after_idle += was_idle;
                }
                present[i] = (int)rng_below(&r, 1000) >= sc->absent_pct;
                absent += !present[i];
            }
            if ((int)rng_below(&r, 1000) < sc->silent_pct) {
                silent++;
                continue;
            }
            char *json = document(fakes[n], present, REVS);
            ksv_scrape s;
            int rc = ksv_scrape_parse_histograms_json(json, strlen(json), &s, &err);
            /* The same document as the node's last one: the window with runs gets it as a
             * repeat, as a console does when the engine answers 304. */
            int ra = 1;
            if (rc == 0 && last_doc[n] && strcmp(last_doc[n], json) == 0) {
                ra = ksv_mwin_add_repeat(runs, nodes[n], t, &err);
                repeats += ra == 0;
            }
            free(last_doc[n]);
            last_doc[n] = json;
            if (rc != 0) {
                KT_FAIL("%s: the engine document is refused: %s", sc->name, err.msg);
                break;
            }
            if (ra == 1)
                ra = ksv_mwin_add_scrape(runs, nodes[n], t, &s, &err);
            int rb = ksv_mwin_add_scrape(plain, nodes[n], t, &s, &err);
            KT_CHECK(ksv_mwin_add_repeat(plain, nodes[n], t + 1, &err) == 1,
                     "no repeats without runs");
            ksv_scrape_free(&s);
            if (ra != 0 || rb != 0) {
                KT_FAIL("%s: add_scrape: %s", sc->name, err.msg);
                break;
            }
            char where[96];
            snprintf(where, sizeof where, "%s, scrape %zu of %s", sc->name, k, nodes[n]);
            compare_samples(runs, plain, nodes[n], where);
        }
        /* Queries: at this round's time and between rounds, every window, every kind of
         * selection. */
        int64_t nows[3] = {t, t - (int64_t)rng_below(&r, 1500),
                           t + (int64_t)rng_below(&r, (uint64_t)sc->step_ms)};
        for (int q = 0; q < 3; q++)
            for (size_t wi = 0; wi < sizeof windows / sizeof *windows; wi++) {
                int64_t win = windows[wi] + (q == 2 ? (int64_t)rng_below(&r, 500) : 0);
                char where[96];
                snprintf(where, sizeof where, "%s, round %zu, now %+lld, window %lld",
                         sc->name, k, (long long)(nows[q] - t), (long long)win);
                compare_figures(runs, plain, NULL, nows[q], win, where);
                const fake *f = &fakes[k % NODES][rng_below(&r, REVS)];
                compare_figures(runs, plain, &(ksv_mwin_sel){nodes[k % NODES], f->model,
                                                             f->revision},
                                nows[q], win, where);
                compare_figures(runs, plain, &(ksv_mwin_sel){NULL, f->model, NULL}, nows[q],
                                win, where);
                compare_figures(runs, plain, &(ksv_mwin_sel){nodes[(k + 1) % NODES], NULL,
                                                             NULL},
                                nows[q], win, where);
            }
        if (k == sc->scrapes / 2) { /* a node removed, then back with fresh series */
            ksv_mwin_forget_node(runs, nodes[1]);
            ksv_mwin_forget_node(plain, nodes[1]);
        }
    }
    for (int n = 0; n < NODES; n++)
        free(last_doc[n]);
    KT_CHECK(repeats > 0, "%s: some scrapes were repeats (%zu)", sc->name, repeats);
    size_t e_runs = ksv_mwin_entry_count(runs), e_plain = ksv_mwin_entry_count(plain);
    printf("%s: %zu scrapes x %d nodes, %zu restarts (%zu after an idle stretch), %zu "
           "revisions missing, %zu nodes silent, %zu repeats; entries %zu with runs, %zu "
           "without\n", sc->name, sc->scrapes, NODES, restarts, after_idle, absent, silent,
           repeats, e_runs, e_plain);
    KT_CHECK(e_runs < e_plain, "%s: runs hold fewer entries (%zu, %zu)", sc->name, e_runs,
             e_plain);
    for (int n = 0; n < NODES; n++)
        for (int i = 0; i < REVS; i++) {
            free(fakes[n][i].lat);
            free(fakes[n][i].ttft);
        }
    ksv_mwin_free(runs);
    ksv_mwin_free(plain);
}

/* An idle series costs one entry however long it stays idle, and the figures over it are
 * still those of every scrape: QPS 0 over the window's span, latency count 0. A burst then
 * opens a new entry; idle again, one more. */
static void test_idle_is_one_entry(void)
{
    ksv_err err;
    ksv_mwin *w;
    KT_CHECK(ksv_mwin_new(68, &w, &err) == 0, "new: %s", err.msg);
    fake f = {.model = "m", .revision = "m-00001"};
    f.lat = malloc(sizeof *f.lat);
    f.ttft = malloc(sizeof *f.ttft);
    fake_start(&f);
    rng r = {7};
    bool present = true;
    int64_t t = T0;
    for (int k = 0; k < 300; k++) {
        if (k >= 100 && k < 103) /* a burst of three seconds */
            for (int i = 0; i < 10; i++) {
                f.codes[0]++;
                ksv_hist_record(f.lat, 0.01 * rng_unit(&r) + 0.001);
            }
        t += 1000;
        char *json = document(&f, &present, 1);
        ksv_scrape s;
        KT_CHECK(ksv_scrape_parse_histograms_json(json, strlen(json), &s, &err) == 0, "doc");
        KT_CHECK(ksv_mwin_add_scrape(w, "a", t, &s, &err) == 0, "add: %s", err.msg);
        ksv_scrape_free(&s);
        free(json);
        if (k == 99)
            KT_CHECK(ksv_mwin_entry_count(w) == 1, "100 idle scrapes: one entry (%zu)",
                     ksv_mwin_entry_count(w));
    }
    KT_CHECK(ksv_mwin_entry_count(w) == 1,
             "the burst left the window's 68 scrapes: one entry again (%zu)",
             ksv_mwin_entry_count(w));
    ksv_mwin_rate_stats rs;
    ksv_mwin_rates(w, NULL, t, KSV_MWIN_RATE_WINDOW_MS, &rs, &err);
    KT_CHECK(rs.has_data && rs.qps == 0 && rs.span_ms == KSV_MWIN_RATE_WINDOW_MS &&
                 rs.newest_ms == t,
             "an idle run: QPS 0 over the whole 10 s (%g over %lld ms)", rs.qps,
             (long long)rs.span_ms);
    ksv_mwin_latency_stats ls;
    ksv_mwin_latency(w, NULL, t, KSV_MWIN_LATENCY_WINDOW_MS, &ls, &err);
    KT_CHECK(ls.has_data && ls.count == 0 && ls.span_ms == KSV_MWIN_LATENCY_WINDOW_MS,
             "and latency with no request over 60 s (%llu, %lld ms)",
             (unsigned long long)ls.count, (long long)ls.span_ms);
    free(f.lat);
    free(f.ttft);
    ksv_mwin_free(w);
}

int main(void)
{
    static const scenario scenarios[] = {
        {"mostly idle, default capacity", 1, 0, 400, 5, 10, 10, 1000},
        {"restarts often, capacity 8", 2, 8, 300, 60, 30, 20, 1000},
        {"missing revisions and silent nodes, capacity 16", 3, 16, 300, 20, 150, 100, 1000},
        {"scraped every 250 ms, capacity 68", 4, 68, 500, 10, 5, 5, 250},
        {"minimum capacity 2", 5, 2, 200, 30, 20, 20, 1000},
    };
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
        run_scenario(&scenarios[i]);
    printf("%zu figures compared, %zu differed\n", compared, differed);
    KT_CHECK(differed == 0 && compared > 0, "every figure is the same with runs (%zu of %zu "
             "differ)", differed, compared);
    test_idle_is_one_entry();
    return kt_summary("test_metrics_window_runs");
}
