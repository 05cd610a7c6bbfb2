/* cost_calc.c: residency events to hours, GB-hours, requests and money (cost.h). No I/O:
 * cost.c gathers the events and live figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cost.h"

#define GB (1024.0 * 1024.0 * 1024.0)
#define MS_PER_HOUR 3600000.0

/* What one (node, model, revision) has open while the events are replayed. */
typedef struct open_rev {
    const char *node, *model, *revision, *ns;
    bool resident;
    int64_t since_ms;
    int64_t memory, gpu_memory;
    bool zero;
    int64_t zero_since_ms;
    int64_t zero_memory;                 /* what it held before it scaled to zero */
} open_rev;

typedef struct calc {
    const ksv_cost_report *window;
    const char *ns_filter;
    open_rev *open;
    size_t n_open, cap_open;
    ksv_cost_report *out;
    size_t cap_rows;
    bool oom;
} calc;

static const char *text(const char *s)
{
    return s ? s : "";
}

/* Makes room for element n of *arr (doubling); false (and c->oom) when out of memory. */
static bool room_for_one(calc *c, void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t grown_cap = *cap ? *cap * 2 : 16;
    void *grown = realloc(*arr, grown_cap * size);
    if (!grown) {
        c->oom = true;
        return false;
    }
    *arr = grown;
    *cap = grown_cap;
    return true;
}

static ksv_cost_row *row_for(calc *c, const char *ns, const char *model, const char *revision)
{
    ksv_cost_report *r = c->out;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->rows[i].ns, ns) == 0 && strcmp(r->rows[i].model, model) == 0 &&
            strcmp(r->rows[i].revision, revision) == 0)
            return &r->rows[i];
    if (!room_for_one(c, (void **)&r->rows, &c->cap_rows, r->n, sizeof *r->rows))
        return NULL;
    ksv_cost_row *row = &r->rows[r->n++];
    memset(row, 0, sizeof *row);
    snprintf(row->ns, sizeof row->ns, "%s", ns);
    snprintf(row->model, sizeof row->model, "%s", model);
    snprintf(row->revision, sizeof row->revision, "%s", revision);
    return row;
}

/* The part of [a, b] inside the window, in ms, and the fraction of [a, b] it is. */
static double clip(const calc *c, int64_t a, int64_t b, double *fraction)
{
    *fraction = 0;
    if (b <= a) {
        *fraction = a == b && a >= c->window->since_ms && a <= c->window->until_ms ? 1 : 0;
        return 0;
    }
    int64_t lo = a > c->window->since_ms ? a : c->window->since_ms;
    int64_t hi = b < c->window->until_ms ? b : c->window->until_ms;
    if (hi <= lo)
        return 0;
    *fraction = (double)(hi - lo) / (double)(b - a);
    return (double)(hi - lo);
}

static bool wanted(const calc *c, const open_rev *o)
{
    return !c->ns_filter || strcmp(c->ns_filter, text(o->ns)) == 0;
}

/* The row an interval of o's from since_ms to at is charged to, with the interval clipped to
 * the window: its hours and the fraction of it inside. NULL when the namespace is filtered
 * out or memory ran out. */
static ksv_cost_row *charge(calc *c, const open_rev *o, int64_t since_ms, int64_t at,
                            double *hours, double *fraction)
{
    double ms = clip(c, since_ms, at, fraction);
    *hours = ms / MS_PER_HOUR;
    return wanted(c, o) ? row_for(c, text(o->ns), o->model, o->revision) : NULL;
}

static void end_residency(calc *c, open_rev *o, int64_t at, double requests, double idle_s)
{
    if (!o->resident)
        return;
    o->resident = false;
    double f, hours;
    ksv_cost_row *row = charge(c, o, o->since_ms, at, &hours, &f);
    if (!row)
        return;
    row->loaded_hours += hours;
    row->memory_gb_hours += (double)o->memory / GB * hours;
    row->gpu_memory_gb_hours += (double)o->gpu_memory / GB * hours;
    if (o->gpu_memory > 0)
        row->gpu_hours += hours;
    double idle_h = idle_s * f / 3600.0;
    row->idle_loaded_hours += idle_h < hours ? idle_h : hours;
    row->requests += requests * f;
}

static void end_zero(calc *c, open_rev *o, int64_t at)
{
    if (!o->zero)
        return;
    o->zero = false;
    double f, hours;
    ksv_cost_row *row = charge(c, o, o->zero_since_ms, at, &hours, &f);
    if (!row)
        return;
    row->scaled_to_zero_hours += hours;
    row->saved_gb_hours += (double)o->zero_memory / GB * hours;
}

static open_rev *find_open(calc *c, const char *node, const char *model, const char *revision)
{
    for (size_t i = 0; i < c->n_open; i++)
        if (strcmp(c->open[i].node, node) == 0 && strcmp(c->open[i].model, model) == 0 &&
            strcmp(c->open[i].revision, revision) == 0)
            return &c->open[i];
    if (!room_for_one(c, (void **)&c->open, &c->cap_open, c->n_open, sizeof *c->open))
        return NULL;
    open_rev *o = &c->open[c->n_open++];
    memset(o, 0, sizeof *o);
    o->node = node;
    o->model = model;
    o->revision = revision;
    return o;
}

static void replay(calc *c, const ksv_usage_event *e)
{
    if (strcmp(e->kind, "engine-start") == 0) {
        for (size_t i = 0; i < c->n_open; i++)
            if (strcmp(c->open[i].node, e->node) == 0) {
                end_residency(c, &c->open[i], e->at_ms, 0, 0);
                end_zero(c, &c->open[i], e->at_ms);
            }
        return;
    }
    if (!e->model || !e->revision)
        return;
    open_rev *o = find_open(c, e->node, e->model, e->revision);
    if (!o)
        return;
    if (e->ns)
        o->ns = e->ns;
    bool begins = strcmp(e->kind, "model-load") == 0 || strcmp(e->kind, "cold-start") == 0;
    bool ends = strcmp(e->kind, "model-unload") == 0 || strcmp(e->kind, "scale-to-zero") == 0;
    if (begins) {
        end_zero(c, o, e->at_ms);
        end_residency(c, o, e->at_ms, 0, 0); /* a second load without an unload between */
        o->resident = true;
        o->since_ms = e->at_ms;
        o->memory = e->memory_bytes;
        o->gpu_memory = e->gpu_memory_bytes;
    } else if (ends) {
        end_residency(c, o, e->at_ms, (double)e->requests, e->idle_seconds);
        if (strcmp(e->kind, "scale-to-zero") == 0) {
            o->zero = true;
            o->zero_since_ms = e->at_ms;
            o->zero_memory = e->memory_bytes;
        } else {
            end_zero(c, o, e->at_ms);
        }
    }
}

static int by_name(const void *a, const void *b)
{
    const ksv_cost_row *x = a, *y = b;
    int d = strcmp(x->ns, y->ns);
    if (!d)
        d = strcmp(x->model, y->model);
    return d ? d : strcmp(x->revision, y->revision);
}

int ksv_cost_compute(const ksv_usage_event *events, size_t n, const ksv_cost_live *live,
                     size_t n_live, const ksv_cost_node_now *nodes, size_t n_nodes,
                     const char *ns, ksv_cost_report *out, ksv_err *err)
{
    calc c = {.window = out, .ns_filter = ns, .out = out};
    out->rows = NULL;
    out->n = 0;
    memset(&out->total, 0, sizeof out->total);
    for (size_t i = 0; i < n; i++)
        replay(&c, &events[i]);
    /* What is still open ends now, on its node's clock, with the node's live figures. */
    for (size_t i = 0; i < c.n_open && !c.oom; i++) {
        open_rev *o = &c.open[i];
        int64_t end = out->until_ms;
        for (size_t k = 0; k < n_nodes; k++)
            if (nodes[k].reached && strcmp(nodes[k].node, o->node) == 0)
                end = nodes[k].now_ms;
        double requests = 0, idle = 0;
        for (size_t k = 0; k < n_live; k++)
            if (strcmp(live[k].node, o->node) == 0 && strcmp(live[k].model, o->model) == 0 &&
                strcmp(live[k].revision, o->revision) == 0) {
                requests = (double)live[k].requests;
                idle = live[k].idle_seconds;
            }
        end_residency(&c, o, end, requests, idle);
        end_zero(&c, o, end);
    }
    free(c.open);
    if (c.oom) {
        free(out->rows);
        out->rows = NULL;
        out->n = 0;
        return ksv_err_set(err, 500, "out of memory");
    }
    if (out->n > 1)
        qsort(out->rows, out->n, sizeof *out->rows, by_name);
    ksv_cost_row *t = &out->total;
    for (size_t i = 0; i < out->n; i++) {
        ksv_cost_row *r = &out->rows[i];
        r->cost = r->memory_gb_hours * out->gb_hour_price + r->gpu_hours * out->gpu_hour_price;
        t->loaded_hours += r->loaded_hours;
        t->idle_loaded_hours += r->idle_loaded_hours;
        t->scaled_to_zero_hours += r->scaled_to_zero_hours;
        t->memory_gb_hours += r->memory_gb_hours;
        t->gpu_memory_gb_hours += r->gpu_memory_gb_hours;
        t->saved_gb_hours += r->saved_gb_hours;
        t->gpu_hours += r->gpu_hours;
        t->requests += r->requests;
        t->cost += r->cost;
    }
    return 0;
}

void ksv_cost_report_free(ksv_cost_report *r)
{
    free(r->rows);
    for (size_t i = 0; i < r->n_warnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    memset(r, 0, sizeof *r);
}
