/* model.c: snapshots, the view's rows, the canary slider. */
#include "tui/model.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"

/* ---- snapshots ---- */

tui_snapshot *tui_snapshot_new(void)
{
    tui_snapshot *s = calloc(1, sizeof *s);
    if (s)
        atomic_init(&s->refs, 1);
    return s;
}

tui_snapshot *tui_snapshot_ref(tui_snapshot *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void tui_snapshot_unref(tui_snapshot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n_models; i++) {
        free(s->models[i].revs);
        free(s->models[i].spec_json);
        free(s->models[i].errors);
        free(s->models[i].logs);
    }
    free(s->models);
    free(s->nodes);
    free(s->history);
    free(s->quotas);
    free(s->cost.rows); /* a snapshot's copy has no warnings */
    free(s);
}

static tui_ns_row *ns_row(tui_ns_row *rows, size_t *n, const char *ns)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(rows[i].ns, ns) == 0)
            return &rows[i];
    tui_ns_row *r = &rows[(*n)++];
    memset(r, 0, sizeof *r);
    snprintf(r->ns, sizeof r->ns, "%s", ns);
    return r;
}

/* Appends quota usage text with kubectl's long keys shortened for a screen row:
 * "count/inferenceservices.serving.kserve.io: 1/3" -> "isvc 1/3". */
static void append_short_usage(char *out, size_t cap, const char *text)
{
    static const struct {
        const char *key, *shown;
    } keys[] = {{"count/inferenceservices.serving.kserve.io: ", "isvc "},
                {"requests.nvidia.com/gpu: ", "gpu "},
                {"requests.memory: ", "memory "}};
    size_t len = strlen(out);
    while (*text && len + 1 < cap) {
        bool replaced = false;
        for (size_t k = 0; k < sizeof keys / sizeof *keys && !replaced; k++) {
            size_t kl = strlen(keys[k].key);
            if (strncmp(text, keys[k].key, kl) == 0) {
                snprintf(out + len, cap - len, "%s", keys[k].shown);
                len = strlen(out);
                text += kl;
                replaced = true;
            }
        }
        if (!replaced && len + 1 < cap) {
            out[len++] = *text++;
            out[len] = '\0';
        }
    }
}

static int by_ns(const void *a, const void *b)
{
    return strcmp(((const tui_ns_row *)a)->ns, ((const tui_ns_row *)b)->ns);
}

size_t tui_namespaces(const tui_snapshot *s, tui_ns_row **out)
{
    *out = calloc(s->n_models + s->n_quotas + 1, sizeof **out);
    if (!*out)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < s->n_models; i++) {
        const tui_model *m = &s->models[i];
        tui_ns_row *r = ns_row(*out, &n, m->ns);
        r->models++;
        if (m->figs.has_rate) {
            r->qps += m->figs.qps;
            r->has_qps = true;
        }
        for (size_t k = 0; k < m->n_revs; k++) {
            const tui_rev *v = &m->revs[k];
            r->revisions++;
            r->scaled_to_zero += strcmp(v->state, "scaled-to-zero") == 0;
            if (v->memory_bytes >= 0)
                r->memory_bytes += v->memory_bytes;
            if (v->cold_starts >= 0)
                r->cold_starts += v->cold_starts;
        }
    }
    for (size_t i = 0; i < s->n_quotas; i++) {
        tui_ns_row *r = ns_row(*out, &n, s->quotas[i].ns);
        size_t len = strlen(r->quota);
        snprintf(r->quota + len, sizeof r->quota - len, "%s%s: ", len ? "; " : "",
                 s->quotas[i].name);
        append_short_usage(r->quota, sizeof r->quota, s->quotas[i].request);
    }
    qsort(*out, n, sizeof **out, by_ns);
    return n;
}

const tui_model *tui_snapshot_find(const tui_snapshot *s, const char *key)
{
    for (size_t i = 0; s && key && i < s->n_models; i++)
        if (strcmp(s->models[i].key, key) == 0)
            return &s->models[i];
    return NULL;
}

double tui_snapshot_total_qps(const tui_snapshot *s, bool *has)
{
    double sum = 0;
    *has = false;
    for (size_t i = 0; i < s->n_models; i++)
        if (s->models[i].figs.has_rate && !isnan(s->models[i].figs.qps)) {
            sum += s->models[i].figs.qps;
            *has = true;
        }
    return sum;
}

size_t tui_snapshot_nodes_up(const tui_snapshot *s)
{
    size_t up = 0;
    for (size_t i = 0; i < s->n_nodes; i++)
        up += s->nodes[i].reachable && !s->nodes[i].stale;
    return up;
}

/* ---- the view ---- */

const char *tui_sort_name(tui_sort_key k)
{
    static const char *const names[TUI_SORT_COUNT] = {"name", "qps", "p99", "err%", "age"};
    return k < TUI_SORT_COUNT ? names[k] : "?";
}

void tui_view_init(tui_view *v)
{
    memset(v, 0, sizeof *v);
    v->force_sort = true;
}

void tui_view_free(tui_view *v)
{
    free(v->order);
    free(v->rows);
    memset(v, 0, sizeof *v);
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

bool tui_filter_match(const char *filter, const tui_model *m)
{
    bool invert = filter[0] == '!';
    const char *f = invert ? filter + 1 : filter;
    if (!*f)
        return true;
    return contains_nocase(m->key, f) != invert;
}

bool tui_node_label(const tui_node *n, const char *key, char *buf, size_t cap)
{
    size_t klen = strlen(key);
    buf[0] = '\0';
    for (const char *p = n->labels; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq && (size_t)(eq - p) == klen && strncmp(p, key, klen) == 0) {
            snprintf(buf, cap, "%.*s", (int)(len - klen - 1), eq + 1);
            return true;
        }
        p = end ? end + 1 : p + len;
    }
    return false;
}

/* The labels of n as arrays for ksv_selector_matches (pointers into copy). */
static size_t split_labels(const tui_node *n, char *copy, size_t cap, const char **keys,
                           const char **values, size_t max)
{
    snprintf(copy, cap, "%s", n->labels);
    size_t count = 0;
    for (char *p = copy; *p && count < max;) {
        char *end = strchr(p, ',');
        if (end)
            *end = '\0';
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            keys[count] = p;
            values[count++] = eq + 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return count;
}

/* A row to sort: everything the order needs, so qsort needs no context. */
typedef struct node_key {
    size_t index;
    bool has;                     /* has the grouping label */
    char value[80];
    const char *name;
} node_key;

static int node_key_cmp(const void *pa, const void *pb)
{
    const node_key *a = pa, *b = pb;
    if (a->has != b->has)
        return a->has ? -1 : 1;
    int c = strcmp(a->value, b->value);
    return c ? c : strcmp(a->name, b->name);
}

size_t tui_nodes_view(const tui_snapshot *s, const char *filter, const char *group_key,
                      size_t *order, char *why, size_t why_cap)
{
    why[0] = '\0';
    ksv_selector sel;
    bool by_labels = filter && strchr(filter, '=');
    if (by_labels) {
        ksv_err err;
        if (ksv_selector_parse(filter, &sel, &err) != 0) {
            snprintf(why, why_cap, "%s", err.msg);
            by_labels = false;
            filter = NULL;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_nodes; i++) {
        const tui_node *node = &s->nodes[i];
        bool keep = true;
        if (by_labels) {
            char copy[sizeof node->labels];
            const char *keys[64], *values[64];
            size_t nl = split_labels(node, copy, sizeof copy, keys, values, 64);
            keep = ksv_selector_matches(&sel, keys, values, nl);
        } else if (filter && *filter) {
            bool invert = filter[0] == '!';
            const char *f = invert ? filter + 1 : filter;
            keep = !*f || contains_nocase(node->name, f) != invert;
        }
        if (keep)
            order[n++] = i;
    }
    node_key *keys = n ? malloc(n * sizeof *keys) : NULL;
    if (!keys)
        return n; /* unsorted rather than none */
    for (size_t i = 0; i < n; i++) {
        const tui_node *node = &s->nodes[order[i]];
        keys[i].index = order[i];
        keys[i].name = node->name;
        keys[i].has = group_key && *group_key &&
                      tui_node_label(node, group_key, keys[i].value, sizeof keys[i].value);
        if (!keys[i].has)
            keys[i].value[0] = '\0';
    }
    qsort(keys, n, sizeof *keys, node_key_cmp);
    for (size_t i = 0; i < n; i++)
        order[i] = keys[i].index;
    free(keys);
    return n;
}

void tui_next_group_key(const tui_snapshot *s, const char *current, char *out, size_t cap)
{
    /* The smallest key greater than current over every node's labels. */
    char best[80] = "";
    for (size_t i = 0; i < s->n_nodes; i++) {
        char copy[sizeof s->nodes[i].labels];
        const char *keys[64], *values[64];
        size_t nl = split_labels(&s->nodes[i], copy, sizeof copy, keys, values, 64);
        for (size_t k = 0; k < nl; k++)
            if (strcmp(keys[k], current) > 0 && (!best[0] || strcmp(keys[k], best) < 0))
                snprintf(best, sizeof best, "%s", keys[k]);
    }
    snprintf(out, cap, "%s", best);
}

bool tui_view_is_expanded(const tui_view *v, const char *key)
{
    for (size_t i = 0; i < v->n_expanded; i++)
        if (strcmp(v->expanded[i], key) == 0)
            return true;
    return false;
}

void tui_view_toggle_expanded(tui_view *v, const char *key)
{
    for (size_t i = 0; i < v->n_expanded; i++)
        if (strcmp(v->expanded[i], key) == 0) {
            memmove(&v->expanded[i], &v->expanded[i + 1],
                    (v->n_expanded - i - 1) * sizeof v->expanded[0]);
            v->n_expanded--;
            return;
        }
    if (v->n_expanded < TUI_MAX_EXPANDED)
        snprintf(v->expanded[v->n_expanded++], TUI_KEY_LEN, "%s", key);
}

/* NaN sorts as the smallest value so models without data gather at one end. */
static int cmp_double(double a, double b)
{
    if (isnan(a))
        a = -INFINITY;
    if (isnan(b))
        b = -INFINITY;
    return a < b ? -1 : a > b ? 1 : 0;
}

typedef struct sort_ctx {
    const tui_model *models;
    tui_sort_key key;
    bool descending;
} sort_ctx;

static int compare_models(const tui_model *a, const tui_model *b, const sort_ctx *c)
{
    int r = 0;
    switch (c->key) {
    case TUI_SORT_QPS:
        r = cmp_double(a->figs.has_rate ? a->figs.qps : NAN, b->figs.has_rate ? b->figs.qps : NAN);
        break;
    case TUI_SORT_P99:
        r = cmp_double(a->figs.p99_ms, b->figs.p99_ms);
        break;
    case TUI_SORT_ERR:
        r = cmp_double(a->figs.err_pct, b->figs.err_pct);
        break;
    case TUI_SORT_AGE: /* older first when ascending */
        r = a->created_ms < b->created_ms ? -1 : a->created_ms > b->created_ms;
        break;
    default:
        break;
    }
    if (c->descending)
        r = -r;
    return r ? r : strcmp(a->key, b->key);
}

/* Insertion sort of indexes: a handful of models, and qsort has no context argument. */
static void sort_indexes(int *idx, size_t n, const sort_ctx *c)
{
    for (size_t i = 1; i < n; i++) {
        int x = idx[i];
        size_t j = i;
        while (j > 0 && compare_models(&c->models[idx[j - 1]], &c->models[x], c) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = x;
    }
}

static long order_pos(const tui_view *v, const char *key)
{
    for (size_t i = 0; i < v->n_order; i++)
        if (strcmp(v->order[i], key) == 0)
            return (long)i;
    return -1;
}

int tui_view_rebuild(tui_view *v, const tui_snapshot *s, int64_t now_ms)
{
    /* What the cursor is on, by name: row indexes refer to the previous snapshot. */
    char cur_key[TUI_KEY_LEN] = "";
    int cur_rev = -1;
    if (v->cursor < v->n_rows && (size_t)v->rows[v->cursor].ord < v->n_order) {
        snprintf(cur_key, sizeof cur_key, "%s", v->order[v->rows[v->cursor].ord]);
        cur_rev = v->rows[v->cursor].rev;
    }
    size_t n = s ? s->n_models : 0;
    int *idx = malloc((n ? n : 1) * sizeof *idx);
    char (*order)[TUI_KEY_LEN] = malloc((n ? n : 1) * sizeof *order);
    if (!idx || !order) {
        free(idx);
        free(order);
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (tui_filter_match(v->filter, &s->models[i]))
            idx[m++] = (int)i;
    sort_ctx c = {s ? s->models : NULL, v->sort, v->descending};
    bool resort = v->force_sort || now_ms - v->last_key_ms >= TUI_RESORT_DELAY_MS;
    if (resort) {
        sort_indexes(idx, m, &c);
    } else {
        /* Keep the previous order; models new to it go after, sorted among themselves. */
        size_t known = 0;
        for (size_t i = 0; i < m; i++)
            if (order_pos(v, s->models[idx[i]].key) >= 0) {
                int x = idx[i];
                idx[i] = idx[known];
                idx[known++] = x;
            }
        for (size_t i = 1; i < known; i++) {
            int x = idx[i];
            long px = order_pos(v, s->models[x].key);
            size_t j = i;
            while (j > 0 && order_pos(v, s->models[idx[j - 1]].key) > px) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = x;
        }
        sort_indexes(idx + known, m - known, &c);
    }
    v->force_sort = false;
    for (size_t i = 0; i < m; i++)
        snprintf(order[i], TUI_KEY_LEN, "%s", s->models[idx[i]].key);

    size_t n_rows = 0;
    for (size_t i = 0; i < m; i++)
        n_rows += 1 + (tui_view_is_expanded(v, s->models[idx[i]].key) ? s->models[idx[i]].n_revs : 0);
    tui_row *rows = malloc((n_rows ? n_rows : 1) * sizeof *rows);
    if (!rows) {
        free(idx);
        free(order);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        rows[k++] = (tui_row){idx[i], (int)i, -1};
        if (tui_view_is_expanded(v, s->models[idx[i]].key))
            for (size_t r = 0; r < s->models[idx[i]].n_revs; r++)
                rows[k++] = (tui_row){idx[i], (int)i, (int)r};
    }
    free(idx);
    free(v->order);
    v->order = order;
    v->n_order = m;
    free(v->rows);
    v->rows = rows;
    v->n_rows = n_rows;
    if (cur_key[0]) {
        /* Same model and revision; the model's own row when the revision is gone. */
        long found = -1;
        for (size_t i = 0; i < n_rows; i++)
            if (strcmp(order[rows[i].ord], cur_key) == 0 &&
                (rows[i].rev == cur_rev || (found < 0 && rows[i].rev == -1)))
                found = (long)i;
        if (found >= 0)
            v->cursor = (size_t)found;
    }
    if (v->cursor >= n_rows)
        v->cursor = n_rows ? n_rows - 1 : 0;
    return 0;
}

const tui_model *tui_view_current(const tui_view *v, const tui_snapshot *s)
{
    if (!s || v->cursor >= v->n_rows)
        return NULL;
    int i = v->rows[v->cursor].model;
    return i >= 0 && (size_t)i < s->n_models ? &s->models[i] : NULL;
}

void tui_view_move(tui_view *v, long delta)
{
    if (v->n_rows == 0) {
        v->cursor = 0;
        return;
    }
    long c = (long)v->cursor + delta;
    if (c < 0)
        c = 0;
    if (c >= (long)v->n_rows)
        c = (long)v->n_rows - 1;
    v->cursor = (size_t)c;
}

void tui_view_scroll(tui_view *v, size_t height)
{
    if (height == 0)
        return;
    if (v->cursor < v->top)
        v->top = v->cursor;
    if (v->cursor >= v->top + height)
        v->top = v->cursor - height + 1;
    if (v->n_rows <= height)
        v->top = 0;
}

/* ---- slider ---- */

int tui_slider_clamp(long pct)
{
    return pct < 0 ? 0 : pct > 100 ? 100 : (int)pct;
}

int tui_model_canary_percent(const tui_model *m)
{
    return m->canary >= 0 && (size_t)m->canary < m->n_revs ? m->revs[m->canary].percent : -1;
}

bool tui_slider_move(tui_slider *sl, const tui_model *m, int delta)
{
    int live = tui_model_canary_percent(m);
    if (live < 0)
        return false;
    if (!sl->active || strcmp(sl->key, m->key) != 0) {
        sl->active = true;
        snprintf(sl->key, sizeof sl->key, "%s", m->key);
        sl->live = live;
        sl->pending = live;
    }
    sl->pending = tui_slider_clamp((long)sl->pending + delta);
    return true;
}

void tui_slider_cancel(tui_slider *sl)
{
    memset(sl, 0, sizeof *sl);
}

void tui_split_text(const tui_model *m, int pending, bool utf8, char *out, size_t cap)
{
    int canary = tui_model_canary_percent(m);
    if (canary < 0 || (canary == 0 && pending < 0)) {
        snprintf(out, cap, m->n_revs ? "100" : "-");
        return;
    }
    if (pending < 0 || pending == canary)
        snprintf(out, cap, "%d/%d", 100 - canary, canary);
    else
        snprintf(out, cap, "%d/%d%s%d/%d", 100 - canary, canary, utf8 ? "\u2192" : "->",
                 100 - pending, pending);
}

int tui_rollback_target(const tui_model *m)
{
    if (m->stable < 0)
        return -1;
    if (tui_model_canary_percent(m) > 0)
        return m->stable;
    int best = -1;
    for (size_t i = 0; i < m->n_revs; i++)
        if (m->revs[i].rolled_out_ms > 0 && m->revs[i].seq < m->revs[m->stable].seq &&
            (best < 0 || m->revs[i].seq > m->revs[best].seq))
            best = (int)i;
    return best;
}
