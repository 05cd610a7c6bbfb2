/* usage.c: residency events imported from the nodes' event logs (store.h), the facts
 * behind `ksv cost`. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

void ksv_usage_event_clear(ksv_usage_event *e)
{
    STORE_FREE_STRINGS(e->node, e->log_id, e->kind, e->ns, e->model, e->revision, e->reason);
    memset(e, 0, sizeof *e);
}

void ksv_usage_event_list_free(ksv_usage_event_list *l)
{
    STORE_LIST_FREE(l, ksv_usage_event_clear);
}

int ksv_store_usage_add(ksv_store *s, const ksv_usage_event *e, ksv_err *err)
{
    if (!e->node || !e->log_id || !e->kind || e->seq < 1 || e->at_ms < 0 ||
        e->memory_bytes < 0 || e->gpu_memory_bytes < 0 || e->requests < 0 ||
        !(e->idle_seconds >= 0) || !isfinite(e->idle_seconds))
        return ksv_err_set(err, 400, "a usage event needs a node, log, seq and kind, and "
                                     "figures that are not negative");
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "INSERT INTO usage_events (node, log_id, seq, at, kind, namespace, "
                           "model, revision, reason, memory_bytes, gpu_memory_bytes, requests, "
                           "idle_seconds) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
                           "ON CONFLICT (node, log_id, seq) DO NOTHING",
                           &st, err);
    STORE_BIND(&rc, st, STORE_TEXT(e->node), STORE_TEXT(e->log_id), STORE_INT(e->seq),
               STORE_INT(e->at_ms), STORE_TEXT(e->kind), STORE_TEXT(e->ns), STORE_TEXT(e->model),
               STORE_TEXT(e->revision), STORE_TEXT(e->reason), STORE_INT(e->memory_bytes),
               STORE_INT(e->gpu_memory_bytes), STORE_INT(e->requests), STORE_REAL(e->idle_seconds));
    int r = store_run(s, st, rc, "storing a usage event", err);
    return r;
}

static int read_row(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx, ksv_err *err)
{
    (void)ctx;
    ksv_usage_event *e = elem;
    return store_col_text(s, st, 0, false, "usage_events.node", &e->node, err) < 0 ||
                   store_col_text(s, st, 1, false, "usage_events.log_id", &e->log_id, err) < 0 ||
                   store_col_int64(s, st, 2, false, 1, INT64_MAX, "usage_events.seq", &e->seq,
                                   err) < 0 ||
                   store_col_int64(s, st, 3, false, 0, INT64_MAX, "usage_events.at",
                                   &e->at_ms, err) < 0 ||
                   store_col_text(s, st, 4, false, "usage_events.kind", &e->kind, err) < 0 ||
                   store_col_text(s, st, 5, true, "usage_events.namespace", &e->ns, err) < 0 ||
                   store_col_text(s, st, 6, true, "usage_events.model", &e->model, err) < 0 ||
                   store_col_text(s, st, 7, true, "usage_events.revision", &e->revision,
                                  err) < 0 ||
                   store_col_text(s, st, 8, true, "usage_events.reason", &e->reason, err) < 0 ||
                   store_col_int64(s, st, 9, false, 0, INT64_MAX, "usage_events.memory_bytes",
                                   &e->memory_bytes, err) < 0 ||
                   store_col_int64(s, st, 10, false, 0, INT64_MAX,
                                   "usage_events.gpu_memory_bytes", &e->gpu_memory_bytes,
                                   err) < 0 ||
                   store_col_int64(s, st, 11, false, 0, INT64_MAX, "usage_events.requests",
                                   &e->requests, err) < 0 ||
                   store_col_double(s, st, 12, "usage_events.idle_seconds", &e->idle_seconds,
                                    err) < 0
               ? -1
               : 0;
}

int ksv_store_usage_list(ksv_store *s, ksv_usage_event_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT node, log_id, seq, at, kind, namespace, model, revision, "
                           "reason, memory_bytes, gpu_memory_bytes, requests, idle_seconds "
                           "FROM usage_events ORDER BY node, at, seq",
                           &st, err);
    if (store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                        read_row, NULL, "listing usage events", err) < 0) {
        ksv_usage_event_list_free(out);
        return -1;
    }
    return 0;
}
