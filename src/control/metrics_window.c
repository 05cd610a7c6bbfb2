/* metrics_window.c: scrape rings per (node, model, revision) and the window math.
 * See metrics_window.h for the decisions behind every figure. */
#include "control/metrics_window.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/strmap.h"

enum { CLASS_2XX, CLASS_4XX, CLASS_5XX, CLASS_OTHER, N_CLASSES };

static int class_of(int code)
{
    if (code >= 200 && code <= 299)
        return CLASS_2XX;
    if (code >= 400 && code <= 499)
        return CLASS_4XX;
    if (code >= 500 && code <= 599)
        return CLASS_5XX;
    return CLASS_OTHER;
}

/* ---- scrapes ---- */

static void scrape_hist_free(ksv_scrape_hist *h)
{
    if (!h)
        return;
    free(h->idx);
    free(h->cnt);
    free(h);
}

static void scrape_rev_clear(ksv_scrape_rev *r)
{
    free(r->model);
    free(r->revision);
    free(r->codes);
    scrape_hist_free(r->hist);
    scrape_hist_free(r->ttft);
}

/* The non-zero buckets of a dense snapshot. NULL when out of memory. */
static ksv_scrape_hist *sparse_of(const ksv_hist_snap *d)
{
    size_t nz = 0;
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++)
        nz += d->counts[i] != 0;
    ksv_scrape_hist *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->idx = malloc((nz ? nz : 1) * sizeof *h->idx);
    h->cnt = malloc((nz ? nz : 1) * sizeof *h->cnt);
    if (!h->idx || !h->cnt) {
        scrape_hist_free(h);
        return NULL;
    }
    for (size_t i = 0; i < KSV_HIST_BUCKETS; i++)
        if (d->counts[i]) {
            h->idx[h->n] = (uint16_t)i;
            h->cnt[h->n++] = d->counts[i];
        }
    h->sum_seconds = d->sum_seconds;
    return h;
}

void ksv_scrape_free(ksv_scrape *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        scrape_rev_clear(&s->revs[i]);
    free(s->revs);
    s->revs = NULL;
    s->n = 0;
}

struct ksv_scrape_shared {
    atomic_int refs;
    ksv_scrape s;
};

ksv_scrape_shared *ksv_scrape_share(ksv_scrape *s)
{
    ksv_scrape_shared *p = malloc(sizeof *p);
    if (!p) {
        ksv_scrape_free(s);
        return NULL;
    }
    atomic_init(&p->refs, 1);
    p->s = *s;
    s->revs = NULL;
    s->n = 0;
    return p;
}

ksv_scrape_shared *ksv_scrape_shared_ref(ksv_scrape_shared *p)
{
    if (p)
        atomic_fetch_add(&p->refs, 1);
    return p;
}

void ksv_scrape_shared_unref(ksv_scrape_shared *p)
{
    if (p && atomic_fetch_sub(&p->refs, 1) == 1) {
        ksv_scrape_free(&p->s);
        free(p);
    }
}

const ksv_scrape *ksv_scrape_shared_get(const ksv_scrape_shared *p)
{
    return &p->s;
}

/* "model\0revision": names are C strings, so the NUL keeps the pair unambiguous. */
static size_t pair_key(char *buf, size_t cap, const char *model, const char *revision)
{
    size_t a = strlen(model), b = strlen(revision);
    if (a + b + 1 > cap)
        return 0;
    memcpy(buf, model, a);
    buf[a] = '\0';
    memcpy(buf + a + 1, revision, b);
    return a + 1 + b;
}

/* Each (model, revision) once: hashed, so a scrape of tens of thousands of series is
 * checked in linear time (a pairwise check took seconds). */
static int check_unique(const ksv_scrape *s, ksv_err *err)
{
    ksv_strmap seen;
    ksv_strmap_init(&seen);
    int rc = 0;
    char stack[512];
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        const ksv_scrape_rev *r = &s->revs[i];
        size_t need = strlen(r->model) + strlen(r->revision) + 1;
        char *key = need <= sizeof stack ? stack : malloc(need);
        if (!key) {
            rc = ksv_err_set(err, 500, "out of memory");
            break;
        }
        size_t len = pair_key(key, need, r->model, r->revision);
        if (ksv_strmap_get(&seen, key, len))
            rc = ksv_err_set(err, 400, "scrape lists %s/%s twice", r->model, r->revision);
        else if (ksv_strmap_put(&seen, key, len, (void *)r) != 0)
            rc = ksv_err_set(err, 500, "out of memory");
        if (key != stack)
            free(key);
    }
    ksv_strmap_free(&seen);
    return rc;
}

static int parse_codes(json_object *codes, ksv_scrape_rev *r, ksv_err *err)
{
    size_t n = (size_t)json_object_object_length(codes);
    r->codes = calloc(n ? n : 1, sizeof *r->codes);
    if (!r->codes)
        return ksv_err_set(err, 500, "out of memory");
    json_object_object_foreach(codes, key, val)
    {
        char *end = NULL;
        long code = strtol(key, &end, 10);
        if (key[0] < '0' || key[0] > '9' || *end || code < 100 || code > 999)
            return ksv_err_set(err, 400, "%s/%s: \"%s\" is not a status code", r->model,
                               r->revision, key);
        if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0)
            return ksv_err_set(err, 400, "%s/%s: code %s needs a non-negative integer count",
                               r->model, r->revision, key);
        r->codes[r->n_codes++] = (ksv_code_count){(int)code, (uint64_t)json_object_get_int64(val)};
    }
    return 0;
}

/* An optional fine histogram field of a series ("histogram", "ttft"); absent or null
 * leaves *out NULL. */
static int parse_hist_field(json_object *o, const char *key, const ksv_scrape_rev *r,
                            ksv_scrape_hist **out, ksv_hist_snap *dense, ksv_err *err)
{
    json_object *hist;
    if (!json_object_object_get_ex(o, key, &hist) || json_object_is_type(hist, json_type_null))
        return 0;
    const char *text = json_object_to_json_string_ext(hist, JSON_C_TO_STRING_PLAIN);
    ksv_err inner = {0};
    if (!text || ksv_hist_parse_fine_json(text, dense, &inner) < 0)
        return ksv_err_set(err, inner.status ? inner.status : 500, "%s/%s: %s: %s",
                           r->model, r->revision, key, inner.msg);
    if (!(*out = sparse_of(dense)))
        return ksv_err_set(err, 500, "out of memory");
    return 0;
}

static int parse_series(json_object *o, size_t i, ksv_scrape_rev *r, ksv_hist_snap *dense,
                        ksv_err *err)
{
    json_object *model, *revision, *codes;
    if (!json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "model", &model) ||
        !json_object_object_get_ex(o, "revision", &revision) ||
        !json_object_is_type(model, json_type_string) ||
        !json_object_is_type(revision, json_type_string) ||
        json_object_get_string_len(model) == 0 || json_object_get_string_len(revision) == 0)
        return ksv_err_set(err, 400, "series %zu: needs non-empty \"model\" and \"revision\" "
                           "strings", i);
    r->model = strdup(json_object_get_string(model));
    r->revision = strdup(json_object_get_string(revision));
    if (!r->model || !r->revision)
        return ksv_err_set(err, 500, "out of memory");
    if (!json_object_object_get_ex(o, "codes", &codes) ||
        !json_object_is_type(codes, json_type_object))
        return ksv_err_set(err, 400, "%s/%s: needs a \"codes\" object", r->model, r->revision);
    if (parse_codes(codes, r, err) < 0)
        return -1;
    if (parse_hist_field(o, "histogram", r, &r->hist, dense, err) < 0 ||
        parse_hist_field(o, "ttft", r, &r->ttft, dense, err) < 0)
        return -1;
    /* A generative revision's token counters: both or neither. */
    json_object *prompt, *generated;
    bool has_p = json_object_object_get_ex(o, "prompt_tokens", &prompt);
    bool has_g = json_object_object_get_ex(o, "generation_tokens", &generated);
    if (!has_p && !has_g)
        return 0;
    if (!has_p || !has_g || !json_object_is_type(prompt, json_type_int) ||
        !json_object_is_type(generated, json_type_int) || json_object_get_int64(prompt) < 0 ||
        json_object_get_int64(generated) < 0)
        return ksv_err_set(err, 400, "%s/%s: \"prompt_tokens\" and \"generation_tokens\" "
                           "need non-negative integer counts, both", r->model, r->revision);
    r->has_tokens = true;
    r->prompt_tokens = (uint64_t)json_object_get_int64(prompt);
    r->generation_tokens = (uint64_t)json_object_get_int64(generated);
    return 0;
}

int ksv_scrape_parse_histograms_json(const char *json, size_t len, ksv_scrape *out,
                                     ksv_err *err)
{
    out->revs = NULL;
    out->n = 0;
    if (len > (size_t)INT32_MAX)
        return ksv_err_set(err, 400, "histograms document too large");
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return ksv_err_set(err, 500, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = (size_t)json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root || jerr != json_tokener_success) {
        json_object_put(root);
        return ksv_err_set(err, 400, "histograms document is not JSON: %s",
                           root ? "incomplete" : json_tokener_error_desc(jerr));
    }
    for (; used < len; used++) {
        char c = json[used];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            json_object_put(root);
            return ksv_err_set(err, 400, "histograms document has text after the JSON");
        }
    }
    json_object *series;
    int rc = 0;
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "series", &series) ||
        !json_object_is_type(series, json_type_array)) {
        rc = ksv_err_set(err, 400, "histograms document needs a \"series\" array");
    } else {
        size_t n = json_object_array_length(series);
        /* Refused before any is read: the window would refuse them anyway, and reading
         * 200k series only to drop them froze consoles for minutes. */
        if (n > KSV_MWIN_MAX_SERIES_PER_NODE) {
            json_object_put(root);
            return ksv_err_set(err, 413, "the node lists %zu series; ksv keeps at most %d per "
                               "node (models x revisions)", n, KSV_MWIN_MAX_SERIES_PER_NODE);
        }
        out->revs = calloc(n ? n : 1, sizeof *out->revs);
        ksv_hist_snap *dense = malloc(sizeof *dense); /* one, reused for every series */
        if (!out->revs || !dense)
            rc = ksv_err_set(err, 500, "out of memory");
        for (size_t i = 0; i < n && rc == 0; i++) {
            out->n = i + 1;
            rc = parse_series(json_object_array_get_idx(series, i), i, &out->revs[i], dense,
                              err);
        }
        free(dense);
        if (rc == 0)
            rc = check_unique(out, err);
    }
    json_object_put(root);
    if (rc < 0)
        ksv_scrape_free(out);
    return rc;
}

int ksv_scrape_from_prom(const ksv_prom_rev_list *list, ksv_scrape *out, ksv_err *err)
{
    out->n = 0;
    out->revs = calloc(list->n ? list->n : 1, sizeof *out->revs);
    if (!out->revs)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < list->n; i++) {
        const ksv_prom_rev *p = &list->items[i];
        ksv_scrape_rev *r = &out->revs[i];
        out->n = i + 1;
        r->model = strdup(p->model);
        r->revision = strdup(p->revision);
        r->codes = malloc((p->n_codes ? p->n_codes : 1) * sizeof *r->codes);
        if (!r->model || !r->revision || !r->codes) {
            ksv_scrape_free(out);
            return ksv_err_set(err, 500, "out of memory");
        }
        if (p->n_codes)
            memcpy(r->codes, p->codes, p->n_codes * sizeof *r->codes);
        r->n_codes = p->n_codes;
    }
    return 0;
}

/* ---- window storage ---- */

/* A sparse fine histogram in one allocation (counts, then indexes), shared by the
 * consecutive entries of a series whose histogram did not change: most series of a fleet
 * are idle most seconds, and a copy per scrape was most of a console's memory. */
typedef struct hist_block {
    uint32_t refs;
    uint16_t n;
    uint64_t cnt[]; /* n counts, then n uint16_t indexes */
} hist_block;

static uint16_t *block_idx(hist_block *b)
{
    return (uint16_t *)(b->cnt + b->n);
}

static void block_unref(hist_block *b)
{
    if (b && --b->refs == 0)
        free(b);
}

/* A cumulative fine histogram as a series keeps it: sparse, in a shared block (its counts
 * and increasing bucket indexes: sh_cnt, sh_idx). 24 bytes: a console keeps 4,000 series x
 * a minute of scrapes x two of these. */
typedef struct stored_hist {
    hist_block *blk;     /* owns a reference; NULL when empty or none */
    double sum_s;
    uint16_t n_nz;
    bool has;            /* the scrape carried this histogram */
} stored_hist;

static const uint64_t *sh_cnt(const stored_hist *h)
{
    return h->blk ? h->blk->cnt : NULL;
}

static const uint16_t *sh_idx(const stored_hist *h)
{
    return h->blk ? block_idx(h->blk) : NULL;
}

/* One run of identical consecutive scrapes of one series: the cumulative class totals and
 * sparse fine histograms they all carried, the time of the run's first and last scrape, and
 * how many there were. Most series of a fleet are idle most seconds, and a ring of one
 * entry per scrape (a minute of them, preallocated for each of 4,000 series) was most of a
 * console's memory; an idle series now holds one entry however long it stays idle. The
 * scrapes inside a run are those of the node's consecutive scrapes seq .. seq + count - 1,
 * so their times are the node's (node_time.times). The window math reads a run as the
 * `count` scrapes it stands for: every figure is the one the scrapes one by one give. */
typedef struct entry {
    int64_t t_first;  /* the run's first scrape */
    int64_t t_ms;     /* its last */
    uint64_t seq;     /* the node's scrape number of the first */
    uint32_t count;   /* scrapes in the run, >= 1 */
    uint64_t classes[N_CLASSES];
    stored_hist lat;  /* request latency */
    stored_hist ttft; /* a generative revision's time to first token */
    uint64_t prompt_tokens, generation_tokens;
    bool reset;       /* the run's first scrape: a counter went backwards since the one before */
    bool has_tokens;  /* a generative revision's token counters came with the scrapes */
} entry;

struct node_time;

typedef struct series {
    char *node;
    char *model;
    char *revision;
    struct node_time *nt; /* its node, for the times inside a run */
    entry *ring;      /* cap_ring entries, grown on demand up to the window's capacity */
    size_t cap_ring;
    size_t head;      /* oldest entry */
    size_t n;         /* entries */
    size_t scrapes;   /* scrapes the entries stand for, <= the window's capacity */
    uint64_t stamp;   /* the last scrape that listed it (lookup_series) */
    bool generative;  /* some scrape carried token counters or a TTFT histogram: only such
                       * series take part in ksv_mwin_llm, which then skips the others */
    ksv_code_count *last_codes; /* the newest scrape's codes, to detect resets */
    size_t n_last_codes;
    size_t cap_last_codes;
} series;

/* Series that share a model or a node, so a query for one reads only those. */
typedef struct group {
    series **items;
    size_t n;
    size_t cap;
} group;

/* A node's scrape times, numbered: the times inside its series' runs. Kept from the oldest
 * scrape any of its series' entries starts at (trimmed now and then), so a few hundred bytes
 * per node rather than a time per series per scrape. */
typedef struct node_time {
    char *node;
    int64_t last_ms;
    group series;
    int64_t *times;   /* ring: times[(t_head + i) % t_cap] is scrape number t_seq0 + i */
    size_t t_cap;
    size_t t_head;
    size_t t_n;
    uint64_t t_seq0;
    uint64_t next_seq; /* the number the node's next scrape gets */
    size_t t_trim_at;  /* t_n past which the unneeded oldest times are dropped */
    /* The series the node's last scrape listed, in its order, for ksv_mwin_add_repeat;
     * listed_ok false when that scrape was refused or recorded in part, or one of the
     * node's series was dropped since. */
    struct series **listed;
    size_t n_listed;
    bool listed_ok;
} node_time;

struct ksv_mwin {
    size_t capacity;
    bool runs;                    /* identical consecutive scrapes share an entry */
    series **series;              /* in order of first appearance */
    size_t n_series;
    size_t cap_series;
    ksv_strmap by_key;            /* "node\0model\0revision" -> series */
    ksv_strmap by_model;          /* model -> group */
    ksv_strmap by_node;           /* node -> node_time */
    node_time **nodes;            /* the same, to free them */
    size_t n_nodes;
    size_t cap_nodes;
    int64_t last_evict_ms;
    uint64_t stamp;               /* lookup_series' mark, one per scrape */
};

/* Evictions look at every series: at most once a second of scrape time. */
#define EVICT_EVERY_MS 1000

/* A ring of `elem`-byte items grown (or shrunk, to at least n) to new_cap, its oldest
 * item moved to index 0. -1 when out of memory (the ring unchanged). */
static int ring_resize(void **buf, size_t elem, size_t *cap, size_t *head, size_t n,
                       size_t new_cap)
{
    char *p = malloc(new_cap * elem);
    if (!p)
        return -1;
    size_t first = *cap ? (*cap - *head < n ? *cap - *head : n) : 0;
    if (first)
        memcpy(p, (char *)*buf + *head * elem, first * elem);
    if (n > first)
        memcpy(p + first * elem, *buf, (n - first) * elem);
    free(*buf);
    *buf = p;
    *cap = new_cap;
    *head = 0;
    return 0;
}

/* The k-th oldest entry of a series (k < s->n). */
static entry *entry_at(const series *s, size_t k)
{
    return &s->ring[(s->head + k) % s->cap_ring];
}

/* The time of node scrape number seq (kept: some entry's run covers it). */
static int64_t node_time_of(const node_time *nt, uint64_t seq)
{
    return nt->times[(nt->t_head + (size_t)(seq - nt->t_seq0)) % nt->t_cap];
}

/* A scrape of a series: entry e, the off-th scrape of its run. */
typedef struct pos {
    size_t e;
    uint32_t off;
} pos;

static int64_t entry_time(const series *s, const entry *en, uint32_t off)
{
    if (off == 0)
        return en->t_first;
    if (off + 1 == en->count)
        return en->t_ms;
    return node_time_of(s->nt, en->seq + off);
}

static int64_t pos_time(const series *s, pos p)
{
    return entry_time(s, entry_at(s, p.e), p.off);
}

static bool pos_eq(pos a, pos b)
{
    return a.e == b.e && a.off == b.off;
}

/* The scrapes of entry k inside [lo, hi]: offsets *first .. *last. */
static void entry_span(const series *s, size_t k, pos lo, pos hi, uint32_t *first,
                       uint32_t *last)
{
    *first = k == lo.e ? lo.off : 0;
    *last = k == hi.e ? hi.off : entry_at(s, k)->count - 1;
}

int ksv_mwin_new(size_t capacity, ksv_mwin **out, ksv_err *err)
{
    *out = NULL;
    if (capacity == 0)
        capacity = KSV_MWIN_DEFAULT_CAPACITY;
    if (capacity < 2 || capacity > 65536)
        return ksv_err_set(err, 400, "window capacity %zu is not in 2..65536", capacity);
    ksv_mwin *w = calloc(1, sizeof *w);
    if (!w)
        return ksv_err_set(err, 500, "out of memory");
    w->capacity = capacity;
    w->runs = true;
    ksv_strmap_init(&w->by_key);
    ksv_strmap_init(&w->by_model);
    ksv_strmap_init(&w->by_node);
    *out = w;
    return 0;
}

void ksv_mwin_set_runs(ksv_mwin *w, bool runs)
{
    w->runs = runs;
}

size_t ksv_mwin_entry_count(const ksv_mwin *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_series; i++)
        n += w->series[i]->n;
    return n;
}

static void entry_release(entry *e)
{
    block_unref(e->lat.blk);
    block_unref(e->ttft.blk);
}

static void series_free(series *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->n; k++)
        entry_release(entry_at(s, k));
    free(s->ring);
    free(s->last_codes);
    free(s->node);
    free(s->model);
    free(s->revision);
    free(s);
}

static int group_add(group *g, series *s)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        series **p = realloc(g->items, cap * sizeof *p);
        if (!p)
            return -1;
        g->items = p;
        g->cap = cap;
    }
    g->items[g->n++] = s;
    return 0;
}

static void group_remove(group *g, const series *s)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->items[i] == s) {
            memmove(&g->items[i], &g->items[i + 1], (g->n - i - 1) * sizeof *g->items);
            g->n--;
            return;
        }
}

/* The series key, in buf when it fits, else allocated (*heap set; caller frees). */
static char *series_key(char *buf, size_t cap, const char *node, const char *model,
                        const char *revision, size_t *len, char **heap)
{
    size_t a = strlen(node), b = strlen(model), c = strlen(revision);
    size_t need = a + b + c + 2;
    *heap = NULL;
    char *k = buf;
    if (need > cap && !(k = *heap = malloc(need)))
        return NULL;
    memcpy(k, node, a);
    k[a] = '\0';
    memcpy(k + a + 1, model, b);
    k[a + 1 + b] = '\0';
    memcpy(k + a + b + 2, revision, c);
    *len = need;
    return k;
}

static void node_time_free(node_time *nt)
{
    if (!nt)
        return;
    free(nt->series.items);
    free(nt->listed);
    free(nt->times);
    free(nt->node);
    free(nt);
}

void ksv_mwin_free(ksv_mwin *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_series; i++) {
        series *s = w->series[i];
        group *g = ksv_strmap_remove(&w->by_model, s->model, strlen(s->model));
        if (g) {
            free(g->items);
            free(g);
        }
        series_free(s);
    }
    free(w->series);
    for (size_t i = 0; i < w->n_nodes; i++)
        node_time_free(w->nodes[i]);
    free(w->nodes);
    ksv_strmap_free(&w->by_key);
    ksv_strmap_free(&w->by_model);
    ksv_strmap_free(&w->by_node);
    free(w);
}

static node_time *find_node(const ksv_mwin *w, const char *node)
{
    return ksv_strmap_get(&w->by_node, node, strlen(node));
}

int64_t ksv_mwin_node_last_ms(const ksv_mwin *w, const char *node)
{
    const node_time *nt = find_node(w, node);
    return nt ? nt->last_ms : 0;
}

size_t ksv_mwin_series_count(const ksv_mwin *w)
{
    return w->n_series;
}

void ksv_mwin_series_at(const ksv_mwin *w, size_t i, const char **node, const char **model,
                        const char **revision)
{
    const series *s = i < w->n_series ? w->series[i] : NULL;
    if (node)
        *node = s ? s->node : NULL;
    if (model)
        *model = s ? s->model : NULL;
    if (revision)
        *revision = s ? s->revision : NULL;
}

static series *find_series(const ksv_mwin *w, const char *node, const char *model,
                           const char *revision)
{
    char buf[512], *heap;
    size_t len;
    char *key = series_key(buf, sizeof buf, node, model, revision, &len, &heap);
    series *s = key ? ksv_strmap_get(&w->by_key, key, len) : NULL;
    free(heap);
    return s;
}

static series *add_series(ksv_mwin *w, node_time *nt, const char *model,
                          const char *revision)
{
    if (w->n_series == w->cap_series) {
        size_t cap = w->cap_series ? w->cap_series * 2 : 16;
        series **grown = realloc(w->series, cap * sizeof *grown);
        if (!grown)
            return NULL;
        w->series = grown;
        w->cap_series = cap;
    }
    group *g = ksv_strmap_get(&w->by_model, model, strlen(model));
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g || ksv_strmap_put(&w->by_model, model, strlen(model), g) != 0) {
            free(g);
            return NULL;
        }
    }
    series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->nt = nt;
    s->node = strdup(nt->node);
    s->model = strdup(model);
    s->revision = strdup(revision);
    char buf[512], *heap = NULL, *key = NULL;
    size_t len = 0;
    if (s->node && s->model && s->revision)
        key = series_key(buf, sizeof buf, s->node, model, revision, &len, &heap);
    if (!key || group_add(g, s) != 0) {
        free(heap);
        series_free(s);
        return NULL;
    }
    if (group_add(&nt->series, s) != 0 || ksv_strmap_put(&w->by_key, key, len, s) != 0) {
        group_remove(g, s);
        group_remove(&nt->series, s);
        free(heap);
        series_free(s);
        return NULL;
    }
    free(heap);
    w->series[w->n_series++] = s;
    return s;
}

/* Unlinks s from the key map and its groups, and frees it (not from w->series). */
static void unlink_series(ksv_mwin *w, series *s)
{
    char buf[512], *heap;
    size_t len;
    char *key = series_key(buf, sizeof buf, s->node, s->model, s->revision, &len, &heap);
    if (key)
        ksv_strmap_remove(&w->by_key, key, len);
    free(heap);
    group *g = ksv_strmap_get(&w->by_model, s->model, strlen(s->model));
    if (g) {
        group_remove(g, s);
        if (g->n == 0) {
            ksv_strmap_remove(&w->by_model, s->model, strlen(s->model));
            free(g->items);
            free(g);
        }
    }
    node_time *nt = find_node(w, s->node);
    if (nt) {
        group_remove(&nt->series, s);
        nt->listed_ok = false;
    }
    series_free(s);
}

/* Removes node's series, or (node NULL) those not scraped since older_than_ms; returns
 * how many. */
static size_t remove_series_if(ksv_mwin *w, const char *node, int64_t older_than_ms)
{
    size_t kept = 0;
    for (size_t i = 0; i < w->n_series; i++) {
        series *s = w->series[i];
        bool drop = node ? strcmp(s->node, node) == 0
                         : s->n == 0 || entry_at(s, s->n - 1)->t_ms < older_than_ms;
        if (drop)
            unlink_series(w, s);
        else
            w->series[kept++] = s;
    }
    size_t removed = w->n_series - kept;
    w->n_series = kept;
    return removed;
}

void ksv_mwin_forget_node(ksv_mwin *w, const char *node)
{
    remove_series_if(w, node, 0);
    node_time *nt = ksv_strmap_remove(&w->by_node, node, strlen(node));
    for (size_t i = 0; nt && i < w->n_nodes; i++)
        if (w->nodes[i] == nt) {
            w->nodes[i] = w->nodes[--w->n_nodes];
            break;
        }
    node_time_free(nt);
}

static uint64_t code_count(const ksv_code_count *codes, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (codes[i].code == code)
            return codes[i].count;
    return 0;
}

static int validate_scrape(const ksv_scrape *s, ksv_err *err)
{
    for (size_t i = 0; i < s->n; i++) {
        const ksv_scrape_rev *r = &s->revs[i];
        if (!r->model || !r->revision || !*r->model || !*r->revision)
            return ksv_err_set(err, 400, "scrape entry %zu has no model or revision", i);
        unsigned char seen[1000 / 8 + 1] = {0};
        for (size_t c = 0; c < r->n_codes; c++) {
            int code = r->codes[c].code;
            if (code < 100 || code > 999)
                return ksv_err_set(err, 400, "%s/%s: code %d is not in 100..999", r->model,
                                   r->revision, code);
            if (seen[code / 8] & (1u << (code % 8)))
                return ksv_err_set(err, 400, "%s/%s: code %d listed twice", r->model,
                                   r->revision, code);
            seen[code / 8] |= (unsigned char)(1u << (code % 8));
        }
    }
    return 0;
}

/* Each scrape's series, looked up once (found[i]: NULL for a new one), and each
 * (model, revision) listed once: a series already known is marked with the scrape's stamp
 * when met, so a second mention is found without building a map of every name (which cost
 * a console an allocation per series per node per second); only new ones are checked by
 * name. */
static int lookup_series(ksv_mwin *w, const char *node, const ksv_scrape *s, series **found,
                         size_t *new_series, ksv_err *err)
{
    uint64_t stamp = ++w->stamp;
    *new_series = 0;
    for (size_t i = 0; i < s->n; i++) {
        const ksv_scrape_rev *r = &s->revs[i];
        series *se = found[i] = find_series(w, node, r->model, r->revision);
        if (!se) {
            (*new_series)++;
        } else if (se->stamp == stamp) {
            return ksv_err_set(err, 400, "scrape lists %s/%s twice", r->model, r->revision);
        } else {
            se->stamp = stamp;
        }
    }
    if (*new_series < 2)
        return 0;
    ksv_scrape fresh = {calloc(*new_series, sizeof *fresh.revs), 0};
    if (!fresh.revs)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < s->n; i++)
        if (!found[i])
            fresh.revs[fresh.n++] = s->revs[i]; /* borrowed names, not freed here */
    int rc = check_unique(&fresh, err);
    free(fresh.revs);
    return rc;
}

/* Fills a stored histogram from a scraped one (NULL: the scrape had none): prev's block
 * when the histogram is the same (no request since), else a new one. */
static int set_hist(stored_hist *e, const stored_hist *prev, const ksv_scrape_hist *h)
{
    block_unref(e->blk);
    e->blk = NULL;
    e->n_nz = 0;
    e->has = h != NULL;
    e->sum_s = h ? h->sum_seconds : 0;
    if (!h || h->n == 0)
        return 0;
    if (h->n > UINT16_MAX) {
        e->has = false;
        return -1;
    }
    hist_block *b = prev ? prev->blk : NULL;
    if (!(b && b->n == h->n && memcmp(b->cnt, h->cnt, h->n * sizeof *h->cnt) == 0 &&
          memcmp(block_idx(b), h->idx, h->n * sizeof *h->idx) == 0)) {
        b = malloc(sizeof *b + h->n * (sizeof *b->cnt + sizeof *h->idx));
        if (!b) {
            e->has = false;
            return -1;
        }
        b->refs = 0;
        b->n = (uint16_t)h->n;
        memcpy(b->cnt, h->cnt, h->n * sizeof *h->cnt);
        memcpy(block_idx(b), h->idx, h->n * sizeof *h->idx);
    }
    b->refs++;
    e->blk = b;
    e->n_nz = b->n;
    return 0;
}

/* A bucket or the sum of a cumulative histogram that went backwards: a restart. */
static bool hist_went_back(const stored_hist *prev, const ksv_scrape_hist *now)
{
    if (!prev->has || !now)
        return false;
    if (now->sum_seconds < prev->sum_s)
        return true;
    /* Both sparse and increasing: walk them together. */
    const uint16_t *pidx = sh_idx(prev);
    const uint64_t *pcnt = sh_cnt(prev);
    size_t j = 0;
    for (size_t i = 0; i < prev->n_nz; i++) {
        while (j < now->n && now->idx[j] < pidx[i])
            j++;
        uint64_t c = j < now->n && now->idx[j] == pidx[i] ? now->cnt[j] : 0;
        if (c < pcnt[i])
            return true;
    }
    return false;
}

/* The scraped histogram h (NULL: none) is the one e stores. */
static bool same_hist(const stored_hist *e, const ksv_scrape_hist *h)
{
    if (e->has != (h != NULL))
        return false;
    if (!h)
        return true;
    if (memcmp(&e->sum_s, &h->sum_seconds, sizeof e->sum_s) != 0 || e->n_nz != h->n)
        return false;
    return h->n == 0 || (memcmp(sh_cnt(e), h->cnt, h->n * sizeof *h->cnt) == 0 &&
                         memcmp(sh_idx(e), h->idx, h->n * sizeof *h->idx) == 0);
}

/* The scrape r (with these class totals) repeats e's, which ended with the node's scrape
 * right before this one: it then extends e's run. */
static bool repeats(const entry *e, uint64_t seq, const uint64_t classes[N_CLASSES],
                    const ksv_scrape_rev *r)
{
    return e->seq + e->count == seq && e->count < UINT32_MAX &&
           memcmp(e->classes, classes, sizeof e->classes) == 0 &&
           e->has_tokens == r->has_tokens &&
           (!r->has_tokens || (e->prompt_tokens == r->prompt_tokens &&
                               e->generation_tokens == r->generation_tokens)) &&
           same_hist(&e->lat, r->hist) && same_hist(&e->ttft, r->ttft);
}

/* Forgets the series' oldest scrape (its ring holds the window's capacity). */
static void drop_oldest(series *s)
{
    entry *o = entry_at(s, 0);
    s->scrapes--;
    if (o->count > 1) {
        /* The run's next scrape is a repeat: no reset. */
        o->count--;
        o->seq++;
        o->t_first = o->count == 1 ? o->t_ms : node_time_of(s->nt, o->seq);
        o->reset = false;
        return;
    }
    entry_release(o);
    s->head = (s->head + 1) % s->cap_ring;
    s->n--;
    /* A series that was busy and went idle gives back most of its ring. */
    if (s->cap_ring >= 16 && s->n <= s->cap_ring / 4)
        ring_resize((void **)&s->ring, sizeof *s->ring, &s->cap_ring, &s->head, s->n,
                    s->cap_ring / 2);
}

static int record(ksv_mwin *w, series *s, uint64_t seq, int64_t now_ms,
                  const ksv_scrape_rev *r)
{
    if (s->scrapes == w->capacity)
        drop_oldest(s);
    entry *prev = s->n ? entry_at(s, s->n - 1) : NULL;
    bool reset = false;
    if (prev) {
        for (size_t c = 0; c < s->n_last_codes && !reset; c++)
            reset = code_count(r->codes, r->n_codes, s->last_codes[c].code) <
                    s->last_codes[c].count;
        /* A bucket, a sum or a token count that went backwards is a restart too. */
        reset = reset || hist_went_back(&prev->lat, r->hist) ||
                hist_went_back(&prev->ttft, r->ttft) ||
                (prev->has_tokens && r->has_tokens &&
                 (r->prompt_tokens < prev->prompt_tokens ||
                  r->generation_tokens < prev->generation_tokens));
    }
    uint64_t classes[N_CLASSES] = {0};
    for (size_t c = 0; c < r->n_codes; c++)
        classes[class_of(r->codes[c].code)] += r->codes[c].count;
    if (prev && w->runs && !reset && repeats(prev, seq, classes, r)) {
        prev->count++;
        prev->t_ms = now_ms;
    } else {
        if (s->n == s->cap_ring) {
            size_t cap = s->cap_ring ? s->cap_ring * 2 : 2;
            if (cap > w->capacity)
                cap = w->capacity;
            if (ring_resize((void **)&s->ring, sizeof *s->ring, &s->cap_ring, &s->head, s->n,
                            cap) < 0)
                return -1;
            prev = s->n ? entry_at(s, s->n - 1) : NULL;
        }
        entry *e = entry_at(s, s->n);
        memset(e, 0, sizeof *e);
        s->n++;
        e->t_first = e->t_ms = now_ms;
        e->seq = seq;
        e->count = 1;
        e->reset = reset;
        memcpy(e->classes, classes, sizeof classes);
        if (set_hist(&e->lat, prev ? &prev->lat : NULL, r->hist) < 0 ||
            set_hist(&e->ttft, prev ? &prev->ttft : NULL, r->ttft) < 0)
            return -1;
        e->has_tokens = r->has_tokens;
        e->prompt_tokens = r->prompt_tokens;
        e->generation_tokens = r->generation_tokens;
    }
    s->scrapes++;
    s->generative = s->generative || r->has_tokens || r->ttft;
    if (r->n_codes > s->cap_last_codes) {
        ksv_code_count *grown = realloc(s->last_codes, r->n_codes * sizeof *grown);
        if (!grown)
            return -1;
        s->last_codes = grown;
        s->cap_last_codes = r->n_codes;
    }
    if (r->n_codes)
        memcpy(s->last_codes, r->codes, r->n_codes * sizeof *r->codes);
    s->n_last_codes = r->n_codes;
    return 0;
}

/* Numbers node's scrape at now_ms and keeps its time; drops the times no entry of the
 * node's series needs any more when the ring has doubled since the last look (so the look
 * over the node's series is paid once per that many scrapes). */
static int node_time_add(const ksv_mwin *w, node_time *nt, int64_t now_ms, uint64_t *seq)
{
    if (nt->t_n >= nt->t_trim_at && nt->t_n) {
        uint64_t keep = nt->next_seq;
        for (size_t i = 0; i < nt->series.n; i++) {
            const series *s = nt->series.items[i];
            if (s->n && entry_at(s, 0)->seq < keep)
                keep = entry_at(s, 0)->seq;
        }
        size_t drop = (size_t)(keep - nt->t_seq0);
        nt->t_head = (nt->t_head + drop) % nt->t_cap;
        nt->t_n -= drop;
        nt->t_seq0 = keep;
        nt->t_trim_at = 2 * (nt->t_n > w->capacity ? nt->t_n : w->capacity);
    }
    if (nt->t_n == nt->t_cap &&
        ring_resize((void **)&nt->times, sizeof *nt->times, &nt->t_cap, &nt->t_head, nt->t_n,
                    nt->t_cap ? nt->t_cap * 2 : 8) < 0)
        return -1;
    if (nt->t_n == 0)
        nt->t_seq0 = nt->next_seq;
    nt->times[(nt->t_head + nt->t_n++) % nt->t_cap] = now_ms;
    *seq = nt->next_seq++;
    return 0;
}

static int add_found(ksv_mwin *w, const char *node, node_time *nt, int64_t now_ms,
                     const ksv_scrape *s, series **found, size_t new_series, ksv_err *err);

int ksv_mwin_add_scrape(ksv_mwin *w, const char *node, int64_t now_ms, const ksv_scrape *s,
                        ksv_err *err)
{
    if (!node || !*node)
        return ksv_err_set(err, 400, "a scrape needs a node name");
    node_time *nt = find_node(w, node);
    if (nt && now_ms <= nt->last_ms)
        return ksv_err_set(err, 400, "node %s: scrape time %lld is not after the previous "
                           "one (%lld)", node, (long long)now_ms, (long long)nt->last_ms);
    if (validate_scrape(s, err) < 0)
        return -1;
    series **found = malloc((s->n ? s->n : 1) * sizeof *found);
    if (!found)
        return ksv_err_set(err, 500, "out of memory");
    size_t new_series;
    if (lookup_series(w, node, s, found, &new_series, err) < 0) {
        free(found);
        return -1;
    }
    /* Evictions after the checks (a refused scrape changes nothing); what they removed may
     * be among the series just found. */
    if (now_ms - w->last_evict_ms >= EVICT_EVERY_MS || now_ms < w->last_evict_ms) {
        if (remove_series_if(w, NULL, now_ms - KSV_MWIN_EVICT_MS) > 0) {
            new_series = 0;
            for (size_t i = 0; i < s->n; i++) {
                found[i] = find_series(w, node, s->revs[i].model, s->revs[i].revision);
                new_series += !found[i];
            }
        }
        w->last_evict_ms = now_ms;
    }
    int rc = add_found(w, node, nt, now_ms, s, found, new_series, err);
    free(found);
    return rc;
}

/* ksv_mwin_add_scrape once the scrape is checked and its series looked up. */
static int add_found(ksv_mwin *w, const char *node, node_time *nt, int64_t now_ms,
                     const ksv_scrape *s, series **found, size_t new_series, ksv_err *err)
{
    size_t have = nt ? nt->series.n : 0;
    if (have + new_series > KSV_MWIN_MAX_SERIES_PER_NODE)
        return ksv_err_set(err, 413, "node %s: %zu series; ksv keeps at most %d per node "
                           "(models x revisions)", node, have + new_series,
                           KSV_MWIN_MAX_SERIES_PER_NODE);
    if (w->n_series + new_series > KSV_MWIN_MAX_SERIES)
        return ksv_err_set(err, 503, "node %s: %zu more series would pass the %d ksv keeps "
                           "for all nodes together", node, new_series, KSV_MWIN_MAX_SERIES);
    if (!nt) {
        if (w->n_nodes == w->cap_nodes) {
            size_t cap = w->cap_nodes ? w->cap_nodes * 2 : 8;
            node_time **grown = realloc(w->nodes, cap * sizeof *grown);
            if (!grown)
                return ksv_err_set(err, 500, "out of memory");
            w->nodes = grown;
            w->cap_nodes = cap;
        }
        nt = calloc(1, sizeof *nt);
        if (!nt || !(nt->node = strdup(node)) ||
            ksv_strmap_put(&w->by_node, node, strlen(node), nt) != 0) {
            node_time_free(nt);
            return ksv_err_set(err, 500, "out of memory");
        }
        w->nodes[w->n_nodes++] = nt;
    }
    nt->last_ms = now_ms;
    nt->listed_ok = false;
    uint64_t seq;
    if (node_time_add(w, nt, now_ms, &seq) < 0)
        return ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < s->n; i++) {
        const ksv_scrape_rev *r = &s->revs[i];
        series *se = found[i];
        if (!se)
            se = found[i] = add_series(w, nt, r->model, r->revision);
        if (!se || record(w, se, seq, now_ms, r) < 0)
            return ksv_err_set(err, 500, "out of memory recording %s/%s", r->model,
                               r->revision);
    }
    series **listed = realloc(nt->listed, (s->n ? s->n : 1) * sizeof *listed);
    if (listed) { /* else no repeats for this node: its scrapes are read whole */
        memcpy(listed, found, s->n * sizeof *listed);
        nt->listed = listed;
        nt->n_listed = s->n;
        nt->listed_ok = true;
    }
    return 0;
}

int ksv_mwin_add_repeat(ksv_mwin *w, const char *node, int64_t now_ms, ksv_err *err)
{
    if (!node || !*node)
        return ksv_err_set(err, 400, "a scrape needs a node name");
    node_time *nt = find_node(w, node);
    if (!nt || !w->runs || !nt->listed_ok)
        return 1;
    if (now_ms <= nt->last_ms)
        return ksv_err_set(err, 400, "node %s: scrape time %lld is not after the previous "
                           "one (%lld)", node, (long long)now_ms, (long long)nt->last_ms);
    if (now_ms - w->last_evict_ms >= EVICT_EVERY_MS || now_ms < w->last_evict_ms) {
        remove_series_if(w, NULL, now_ms - KSV_MWIN_EVICT_MS);
        w->last_evict_ms = now_ms;
        if (!nt->listed_ok) /* one of them went: the whole scrape is needed */
            return 1;
    }
    uint64_t seq;
    if (node_time_add(w, nt, now_ms, &seq) < 0)
        return ksv_err_set(err, 500, "out of memory");
    nt->last_ms = now_ms;
    /* What record() does with a scrape equal to the previous one: no reset (nothing went
     * back), and the same values extend the run that ended with the node's previous
     * scrape, which listed every one of these series. */
    for (size_t i = 0; i < nt->n_listed; i++) {
        series *s = nt->listed[i];
        if (s->scrapes == w->capacity)
            drop_oldest(s);
        entry *e = entry_at(s, s->n - 1);
        e->count++;
        e->t_ms = now_ms;
        s->scrapes++;
    }
    return 0;
}

/* ---- queries ---- */

/* The series a selection can match: a model's or a node's (the smaller), else all. */
static series *const *candidates(const ksv_mwin *w, const ksv_mwin_sel *sel, size_t *n)
{
    const group *best = NULL;
    bool narrowed = false;
    if (sel && sel->model) {
        best = ksv_strmap_get(&w->by_model, sel->model, strlen(sel->model));
        narrowed = true;
    }
    if (sel && sel->node) {
        const node_time *nt = find_node(w, sel->node);
        const group *g = nt ? &nt->series : NULL;
        if (!narrowed || !g || (best && g->n < best->n))
            best = g;
        narrowed = true;
    }
    if (!narrowed) {
        *n = w->n_series;
        return w->series;
    }
    *n = best ? best->n : 0;
    return best ? best->items : NULL;
}

static bool matches(const series *s, const ksv_mwin_sel *sel)
{
    return !sel || ((!sel->node || strcmp(sel->node, s->node) == 0) &&
                    (!sel->model || strcmp(sel->model, s->model) == 0) &&
                    (!sel->revision || strcmp(sel->revision, s->revision) == 0));
}

/* The scrapes of s inside [now - window, now]: positions lo..hi; false when none. A run
 * the window's edge cuts is searched for the first (last) of its scrapes inside. */
static bool window_range(const series *s, int64_t now_ms, int64_t window_ms, pos *lo,
                         pos *hi)
{
    int64_t edge = now_ms - window_ms;
    size_t k = 0;
    while (k < s->n && entry_at(s, k)->t_ms < edge)
        k++;
    size_t last = s->n;
    while (last > k && entry_at(s, last - 1)->t_first > now_ms)
        last--;
    if (last == k)
        return false;
    const entry *a = entry_at(s, k), *b = entry_at(s, last - 1);
    uint32_t from = 0, to = b->count - 1;
    if (a->t_first < edge) { /* the first of a's scrapes at or after the edge: t_ms is */
        uint32_t l = 1, r = a->count - 1;
        while (l < r) {
            uint32_t m = l + (r - l) / 2;
            if (entry_time(s, a, m) >= edge)
                r = m;
            else
                l = m + 1;
        }
        from = l;
    }
    if (b->t_ms > now_ms) { /* the last of b's scrapes at or before now: t_first is */
        uint32_t l = 0, r = b->count - 2;
        while (l < r) {
            uint32_t m = r - (r - l) / 2;
            if (entry_time(s, b, m) <= now_ms)
                l = m;
            else
                r = m - 1;
        }
        to = l;
    }
    if (last - 1 == k && to < from)
        return false;
    *lo = (pos){k, from};
    *hi = (pos){last - 1, to};
    return true;
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

int ksv_mwin_rates(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                   int64_t window_ms, ksv_mwin_rate_stats *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    out->qps = out->qps_2xx = out->qps_4xx = out->qps_5xx = out->qps_other = NAN;
    out->error_ratio = out->client_error_ratio = NAN;
    if (window_ms <= 0)
        return ksv_err_set(err, 400, "window must be positive, not %lld ms",
                           (long long)window_ms);
    double rate[N_CLASSES] = {0};
    uint64_t total[N_CLASSES] = {0};
    size_t n_cand;
    series *const *cand = candidates(w, sel, &n_cand);
    for (size_t i = 0; i < n_cand; i++) {
        const series *s = cand[i];
        pos lo, hi;
        if (!matches(s, sel) || !window_range(s, now_ms, window_ms, &lo, &hi) ||
            pos_eq(hi, lo))
            continue;
        uint64_t base[N_CLASSES], inc[N_CLASSES] = {0};
        memcpy(base, entry_at(s, lo.e)->classes, sizeof base);
        /* Only a run's first scrape can be a restart, and the repeats after it add
         * nothing: the runs after lo's are what the scrapes one by one would give. */
        for (size_t k = lo.e + 1; k <= hi.e; k++) {
            const entry *e = entry_at(s, k);
            if (!e->reset)
                continue;
            /* Close the segment before the restart; after it, counts start from zero. */
            const entry *before = entry_at(s, k - 1);
            for (int c = 0; c < N_CLASSES; c++)
                inc[c] += sat_sub(before->classes[c], base[c]);
            memset(base, 0, sizeof base);
            out->resets++;
        }
        const entry *last = entry_at(s, hi.e);
        int64_t t_last = pos_time(s, hi);
        int64_t span = t_last - pos_time(s, lo);
        for (int c = 0; c < N_CLASSES; c++) {
            inc[c] += sat_sub(last->classes[c], base[c]);
            total[c] += inc[c];
            rate[c] += (double)inc[c] * 1000.0 / (double)span;
        }
        out->has_data = true;
        out->series++;
        if (span > out->span_ms)
            out->span_ms = span;
        if (t_last > out->newest_ms)
            out->newest_ms = t_last;
    }
    if (!out->has_data)
        return 0;
    out->qps_2xx = rate[CLASS_2XX];
    out->qps_4xx = rate[CLASS_4XX];
    out->qps_5xx = rate[CLASS_5XX];
    out->qps_other = rate[CLASS_OTHER];
    out->qps = rate[0] + rate[1] + rate[2] + rate[3];
    out->requests_2xx = total[CLASS_2XX];
    out->requests_4xx = total[CLASS_4XX];
    out->requests_5xx = total[CLASS_5XX];
    out->requests_other = total[CLASS_OTHER];
    out->requests = total[0] + total[1] + total[2] + total[3];
    if (out->requests) {
        out->error_ratio = (double)out->requests_5xx / (double)out->requests;
        out->client_error_ratio = (double)out->requests_4xx / (double)out->requests;
    }
    return 0;
}

/* acc += the histogram increments of one segment: last - base, or all of last when the
 * segment starts at a restart (base NULL) or a bucket went backwards (a restart between
 * two scrapes that kept the counts' sum growing). Sparse: both list their non-zero
 * buckets in increasing order, so this walks them together instead of two dense
 * histograms (a console computing 100 nodes x 40 series a second spent most of its time
 * clearing and subtracting 1,922 mostly empty buckets per series). */
static void add_segment(const stored_hist *base, const stored_hist *last, ksv_hist_snap *acc)
{
    bool whole = !base || last->sum_s < base->sum_s;
    const uint16_t *bi = base ? sh_idx(base) : NULL, *li = sh_idx(last);
    const uint64_t *bc = base ? sh_cnt(base) : NULL, *lc = sh_cnt(last);
    for (size_t i = 0, j = 0; base && !whole && i < base->n_nz; i++) {
        while (j < last->n_nz && li[j] < bi[i])
            j++;
        uint64_t now = j < last->n_nz && li[j] == bi[i] ? lc[j] : 0;
        whole = now < bc[i];
    }
    uint64_t added = 0;
    for (size_t i = 0, j = 0; i < last->n_nz; i++) {
        uint64_t before = 0;
        if (!whole) {
            while (j < base->n_nz && bi[j] < li[i])
                j++;
            if (j < base->n_nz && bi[j] == li[i])
                before = bc[j];
        }
        uint64_t d = lc[i] - before;
        acc->counts[li[i]] += d;
        added += d;
    }
    acc->count += added;
    acc->sum_seconds += whole ? last->sum_s : last->sum_s - base->sum_s;
}

/* Which of a scrape's histograms a window query reads. */
typedef enum { HIST_LATENCY, HIST_TTFT } hist_kind;

static const stored_hist *hist_of(const entry *e, hist_kind kind)
{
    return kind == HIST_TTFT ? &e->ttft : &e->lat;
}

/* The merged window histogram of the selection; *span_ms (may be NULL) the longest span
 * any matching series' scrapes in the window cover, histograms or not (the latency's
 * span_ms), found in the same walk. */
static int window_hist(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                       int64_t window_ms, hist_kind kind, ksv_hist_snap *out,
                       size_t *n_series, int64_t *span_ms, ksv_err *err)
{
    ksv_hist_snap_clear(out);
    if (n_series)
        *n_series = 0;
    if (span_ms)
        *span_ms = 0;
    if (window_ms <= 0)
        return ksv_err_set(err, 400, "window must be positive, not %lld ms",
                           (long long)window_ms);
    size_t n_cand;
    series *const *cand = candidates(w, sel, &n_cand);
    for (size_t i = 0; i < n_cand; i++) {
        const series *s = cand[i];
        pos lo, hi;
        /* TTFT: a series that never carried one adds nothing and counts for nothing. */
        if ((kind == HIST_TTFT && !s->generative) || !matches(s, sel) ||
            !window_range(s, now_ms, window_ms, &lo, &hi))
            continue;
        if (span_ms && pos_time(s, hi) - pos_time(s, lo) > *span_ms)
            *span_ms = pos_time(s, hi) - pos_time(s, lo);
        /* Walk the window's scrapes; a segment runs from a baseline (the first histogram
         * scrape, or zero after a restart) to the last histogram scrape before the next
         * restart. Scrapes without a histogram only mark restarts. A run is its scrapes in
         * the window: only its first can be a restart, and the segment's baseline is its
         * first, the segment's end its last (base_at and last_at say which scrape, so a
         * segment of one scrape adds nothing, as before runs). */
        bool in_segment = false;
        const stored_hist *base = NULL, *last = NULL;
        pos base_at = {0, 0}, last_at = {0, 0};
        size_t hist_scrapes = 0;
        for (size_t k = lo.e; k <= hi.e; k++) {
            const entry *e = entry_at(s, k);
            const stored_hist *h = hist_of(e, kind);
            if (k > lo.e && e->reset) {
                if (in_segment && last && (!base || !pos_eq(last_at, base_at)))
                    add_segment(base, last, out);
                in_segment = true;
                base = last = NULL;
            }
            if (!h->has)
                continue;
            uint32_t first_off, last_off;
            entry_span(s, k, lo, hi, &first_off, &last_off);
            hist_scrapes += (size_t)(last_off - first_off) + 1;
            if (!in_segment) {
                in_segment = true;
                base = h;
                base_at = (pos){k, first_off};
            }
            last = h;
            last_at = (pos){k, last_off};
        }
        if (in_segment && last && (!base || !pos_eq(last_at, base_at)))
            add_segment(base, last, out);
        if (hist_scrapes >= 2 && n_series)
            (*n_series)++;
    }
    return 0;
}

int ksv_mwin_window_hist(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                         int64_t window_ms, ksv_hist_snap *out, size_t *n_series,
                         ksv_err *err)
{
    return window_hist(w, sel, now_ms, window_ms, HIST_LATENCY, out, n_series, NULL, err);
}

int ksv_mwin_latency(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                     int64_t window_ms, ksv_mwin_latency_stats *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    out->mean_s = out->p50_s = out->p99_s = NAN;
    ksv_hist_snap *acc = malloc(sizeof *acc);
    if (!acc)
        return ksv_err_set(err, 500, "out of memory");
    size_t n_series = 0;
    int64_t span = 0;
    int rc = window_hist(w, sel, now_ms, window_ms, HIST_LATENCY, acc, &n_series, &span, err);
    if (rc == 0 && n_series) {
        out->has_data = true;
        out->series = n_series;
        out->count = acc->count;
        out->sum_s = acc->sum_seconds;
        if (acc->count) {
            out->mean_s = acc->sum_seconds / (double)acc->count;
            out->p50_s = ksv_hist_quantile(acc, 0.5);
            out->p99_s = ksv_hist_quantile(acc, 0.99);
        }
        out->span_ms = span;
    }
    free(acc);
    return rc;
}

/* The increase of a token counter over a series' scrapes lo..hi, those that carried the
 * counters only; a restart (reset) starts it again from zero. *span_ms: first to last such
 * scrape; false when fewer than two carried them. A run's repeats add nothing. */
static bool token_increase(const series *s, pos lo, pos hi, uint64_t *prompt,
                           uint64_t *generated, int64_t *span_ms)
{
    const entry *prev = NULL;
    int64_t t_first = 0, t_prev = 0;
    size_t scrapes = 0;
    *prompt = *generated = 0;
    for (size_t k = lo.e; k <= hi.e; k++) {
        const entry *e = entry_at(s, k);
        if (!e->has_tokens)
            continue;
        uint32_t first_off, last_off;
        entry_span(s, k, lo, hi, &first_off, &last_off);
        scrapes += (size_t)(last_off - first_off) + 1;
        if (!prev) {
            t_first = entry_time(s, e, first_off);
        } else {
            bool reset = e->reset || e->prompt_tokens < prev->prompt_tokens ||
                         e->generation_tokens < prev->generation_tokens;
            *prompt += reset ? e->prompt_tokens : e->prompt_tokens - prev->prompt_tokens;
            *generated += reset ? e->generation_tokens
                                : e->generation_tokens - prev->generation_tokens;
        }
        prev = e;
        t_prev = entry_time(s, e, last_off);
    }
    if (scrapes < 2)
        return false;
    *span_ms = t_prev - t_first;
    return *span_ms > 0;
}

int ksv_mwin_llm(const ksv_mwin *w, const ksv_mwin_sel *sel, int64_t now_ms,
                 int64_t rate_window_ms, int64_t latency_window_ms, ksv_mwin_llm_stats *out,
                 ksv_err *err)
{
    memset(out, 0, sizeof *out);
    out->ttft_p50_s = out->ttft_p99_s = out->tokens_per_s = NAN;
    if (rate_window_ms <= 0 || latency_window_ms <= 0)
        return ksv_err_set(err, 400, "windows must be positive, not %lld and %lld ms",
                           (long long)rate_window_ms, (long long)latency_window_ms);
    double rate = 0;
    size_t n_cand;
    series *const *cand = candidates(w, sel, &n_cand);
    for (size_t i = 0; i < n_cand; i++) {
        const series *s = cand[i];
        pos lo, hi;
        uint64_t prompt, generated;
        int64_t span;
        if (!s->generative || !matches(s, sel) ||
            !window_range(s, now_ms, rate_window_ms, &lo, &hi) ||
            !token_increase(s, lo, hi, &prompt, &generated, &span))
            continue;
        out->has_data = true;
        out->prompt_tokens += prompt;
        out->generation_tokens += generated;
        rate += (double)generated * 1000.0 / (double)span;
    }
    if (out->has_data)
        out->tokens_per_s = rate;
    ksv_hist_snap *acc = malloc(sizeof *acc);
    if (!acc)
        return ksv_err_set(err, 500, "out of memory");
    size_t n_series = 0;
    int rc = window_hist(w, sel, now_ms, latency_window_ms, HIST_TTFT, acc, &n_series, NULL,
                         err);
    if (rc == 0 && n_series && acc->count) {
        out->ttft_count = acc->count;
        out->ttft_p50_s = ksv_hist_quantile(acc, 0.5);
        out->ttft_p99_s = ksv_hist_quantile(acc, 0.99);
    }
    free(acc);
    return rc;
}

/* ---- persistence ---- */

void ksv_mwin_store_samples_free(ksv_metric_sample *samples, size_t n)
{
    if (!samples)
        return;
    for (size_t i = 0; i < n; i++) {
        free(samples[i].node);
        free(samples[i].model);
        free(samples[i].revision);
        free(samples[i].buckets);
    }
    free(samples);
}

/* Dense bucket increments cur - prev (or cur after a reset), trimmed after the last
 * non-zero one. */
static int bucket_increments(const entry *prev, const entry *cur, bool reset,
                             ksv_metric_sample *m)
{
    m->n_buckets = 0;
    m->buckets = NULL;
    if (!cur->lat.has || (!reset && !prev->lat.has))
        return 0;
    const uint16_t *ci = sh_idx(&cur->lat), *pi = prev ? sh_idx(&prev->lat) : NULL;
    const uint64_t *cc = sh_cnt(&cur->lat), *pc = prev ? sh_cnt(&prev->lat) : NULL;
    size_t top = 0;
    for (size_t i = 0; i < cur->lat.n_nz; i++)
        if ((size_t)ci[i] + 1 > top)
            top = (size_t)ci[i] + 1;
    if (top == 0)
        return 0;
    m->buckets = calloc(top, sizeof *m->buckets);
    if (!m->buckets)
        return -1;
    for (size_t i = 0; i < cur->lat.n_nz; i++)
        m->buckets[ci[i]] = cc[i];
    if (!reset)
        for (size_t i = 0; i < prev->lat.n_nz; i++)
            if (pi[i] < top)
                m->buckets[pi[i]] = sat_sub(m->buckets[pi[i]], pc[i]);
    while (top > 0 && m->buckets[top - 1] == 0)
        top--;
    m->n_buckets = top;
    m->latency_sum_s = reset ? cur->lat.sum_s : cur->lat.sum_s - prev->lat.sum_s;
    if (m->latency_sum_s < 0)
        m->latency_sum_s = 0;
    if (top == 0) {
        free(m->buckets);
        m->buckets = NULL;
    }
    return 0;
}

/* No request answered between prev and cur (a restart with zero counts is none too). */
static bool same_classes(const entry *prev, const entry *cur)
{
    for (int c = 0; c < N_CLASSES; c++)
        if (cur->reset ? cur->classes[c] != 0 : cur->classes[c] != prev->classes[c])
            return false;
    return true;
}

/* The series' newest scrape is the node's newest (last_ms) and the series answered
 * something since its scrape before. A scrape in which the series answered nothing is not
 * stored: a sample holds increments and that one has none (rollups are per minute whatever
 * the samples; ksv_ctl_recent_qps reads a step no sample covers as idle). A console
 * watching 100 nodes x 40 revisions stored 4,000 such rows a second, most of them empty.
 * A run's repeat is such a scrape; a run of one is compared with the run before, whose
 * last scrape is the series' previous one. */
static bool answered_now(const series *s, int64_t last_ms)
{
    if (s->n < 2)
        return false;
    const entry *cur = entry_at(s, s->n - 1);
    return cur->count == 1 && cur->t_ms == last_ms && !same_classes(entry_at(s, s->n - 2), cur);
}

int ksv_mwin_store_samples(const ksv_mwin *w, const char *node, ksv_metric_sample **out,
                           size_t *n, ksv_err *err)
{
    *out = NULL;
    *n = 0;
    const node_time *nt = node ? find_node(w, node) : NULL;
    if (!nt)
        return 0;
    size_t want = 0;
    for (size_t i = 0; i < nt->series.n; i++)
        want += answered_now(nt->series.items[i], nt->last_ms);
    if (want == 0)
        return 0;
    ksv_metric_sample *samples = calloc(want, sizeof *samples);
    if (!samples)
        return ksv_err_set(err, 500, "out of memory");
    size_t got = 0;
    for (size_t i = 0; i < nt->series.n && got < want; i++) {
        const series *s = nt->series.items[i];
        if (!answered_now(s, nt->last_ms))
            continue;
        const entry *prev = entry_at(s, s->n - 2), *cur = entry_at(s, s->n - 1);
        uint64_t inc[N_CLASSES];
        for (int c = 0; c < N_CLASSES; c++)
            inc[c] = cur->reset ? cur->classes[c] : sat_sub(cur->classes[c], prev->classes[c]);
        ksv_metric_sample *m = &samples[got++];
        m->at_ms = cur->t_ms;
        m->span_ms = cur->t_ms - prev->t_ms;
        m->node = strdup(s->node);
        m->model = strdup(s->model);
        m->revision = strdup(s->revision);
        m->requests_2xx = inc[CLASS_2XX];
        m->requests_4xx = inc[CLASS_4XX];
        m->requests_5xx = inc[CLASS_5XX];
        m->requests_other = inc[CLASS_OTHER];
        if (!m->node || !m->model || !m->revision ||
            bucket_increments(prev, cur, cur->reset, m) < 0) {
            ksv_mwin_store_samples_free(samples, got);
            return ksv_err_set(err, 500, "out of memory");
        }
    }
    *out = samples;
    *n = got;
    return 0;
}

/* ---- figures ---- */

/* v with `decimals` (1 or 2) digits after a '.', then suffix. */
static void format_fixed(char buf[32], double v, int decimals, const char *suffix)
{
    if (isnan(v)) {
        snprintf(buf, 32, "-");
        return;
    }
    double scale = decimals == 2 ? 100.0 : 10.0;
    double scaled = v * scale;
    if (isinf(v)) {
        snprintf(buf, 32, "%sinf%s", v < 0 ? "-" : "", suffix);
        return;
    }
    if (!(fabs(scaled) < 9e15)) { /* beyond exact integers: whole units, no '.' to localise */
        snprintf(buf, 32, "%.0f%s", v, suffix);
        return;
    }
    long long n = llround(scaled);
    unsigned long long mag = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    unsigned long long unit = decimals == 2 ? 100 : 10;
    snprintf(buf, 32, "%s%llu.%0*llu%s", n < 0 ? "-" : "", mag / unit, decimals, mag % unit,
             suffix);
}

void ksv_mwin_format_qps(char buf[32], double qps)
{
    format_fixed(buf, qps, 1, "");
}

void ksv_mwin_format_latency(char buf[32], double seconds)
{
    format_fixed(buf, seconds * 1000.0, 1, "ms");
}

void ksv_mwin_format_ratio(char buf[32], double ratio)
{
    format_fixed(buf, ratio * 100.0, 2, "%");
}
