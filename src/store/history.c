/* history.c: the append-only log of changes (who, when, what, from, to, and how it went on
 * each node). Triggers in the schema refuse UPDATE and DELETE on it. */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "store/store_internal.h"

int ksv_store_history_append(ksv_store *s, const ksv_history_entry *e, int64_t *id,
                             ksv_err *err)
{
    if (!e->actor || !*e->actor)
        return ksv_err_set(err, 400, "a history entry needs an actor");
    if (!e->action || !*e->action)
        return ksv_err_set(err, 400, "a history entry needs an action");
    if (!e->result || !*e->result)
        return ksv_err_set(err, 400, "a history entry needs a result");
    if (e->at_ms < 0)
        return ksv_err_set(err, 400, "a history entry's time is negative");
    if (e->node_results_json &&
        store_check_json_object(e->node_results_json, "the per-node results", 400, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "INSERT INTO history (at, actor, action, model, node, old_value, "
                           "new_value, result, node_results, reason) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           &st, err);
    STORE_BIND(&rc, st, STORE_INT(e->at_ms ? e->at_ms : ksv_wall_ms()), STORE_TEXT(e->actor),
               STORE_TEXT(e->action), STORE_TEXT(e->model), STORE_TEXT(e->node),
               STORE_TEXT(e->old_value), STORE_TEXT(e->new_value), STORE_TEXT(e->result),
               STORE_TEXT(e->node_results_json),
               STORE_TEXT(e->reason && *e->reason ? e->reason : NULL));
    int r = store_run(s, st, rc, "appending history", err);
    if (r == 0 && id)
        *id = sqlite3_last_insert_rowid(s->db);
    return r;
}

#define HISTORY_COLUMNS                                                                    \
    "id, at, actor, action, model, node, old_value, new_value, result, node_results, reason"

static int read_entry(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                      ksv_err *err)
{
    (void)ctx;
    ksv_history_entry *e = elem;
    if (store_col_int64(s, st, 0, false, 1, INT64_MAX, "history.id", &e->id, err) < 0 ||
        store_col_int64(s, st, 1, false, 0, INT64_MAX, "history.at", &e->at_ms, err) < 0 ||
        store_col_text(s, st, 2, false, "history.actor", &e->actor, err) < 0 ||
        store_col_text(s, st, 3, false, "history.action", &e->action, err) < 0 ||
        store_col_text(s, st, 4, true, "history.model", &e->model, err) < 0 ||
        store_col_text(s, st, 5, true, "history.node", &e->node, err) < 0 ||
        store_col_text(s, st, 6, true, "history.old_value", &e->old_value, err) < 0 ||
        store_col_text(s, st, 7, true, "history.new_value", &e->new_value, err) < 0 ||
        store_col_text(s, st, 8, false, "history.result", &e->result, err) < 0 ||
        store_col_text(s, st, 9, true, "history.node_results", &e->node_results_json,
                       err) < 0 ||
        store_col_text(s, st, 10, true, "history.reason", &e->reason, err) < 0) {
        ksv_history_entry_clear(e);
        return -1;
    }
    if (e->node_results_json &&
        store_check_json_object(e->node_results_json, "", 500, NULL) < 0) {
        int64_t id = e->id;
        ksv_history_entry_clear(e);
        return store_corrupt(s, err, "history entry %lld has per-node results that are not a "
                             "JSON object", (long long)id);
    }
    return 0;
}

int ksv_store_history_list(ksv_store *s, const char *model, size_t limit,
                           ksv_history_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    /* Two statements rather than "?1 IS NULL OR model = ?1", so the filtered one can walk
     * the (model, id) index. */
    int rc = store_prepare(s,
                           model ? "SELECT " HISTORY_COLUMNS " FROM history WHERE model = ?1 "
                                   "ORDER BY id DESC LIMIT ?2"
                                 : "SELECT " HISTORY_COLUMNS " FROM history WHERE ?1 IS NULL "
                                   "ORDER BY id DESC LIMIT ?2",
                           &st, err);
    store_bind_text(&rc, st, 1, model);
    /* LIMIT -1 is SQLite's "no limit" */
    store_bind_int64(&rc, st, 2, limit == 0 || (uint64_t)limit > (uint64_t)INT64_MAX ? -1 : (int64_t)limit);
    if (store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                        read_entry, NULL, "reading history", err) < 0) {
        ksv_history_list_free(out);
        return -1;
    }
    return 0;
}

void ksv_history_entry_clear(ksv_history_entry *e)
{
    if (!e)
        return;
    STORE_FREE_STRINGS(e->actor, e->action, e->model, e->node, e->old_value, e->new_value,
                       e->result, e->node_results_json, e->reason);
    memset(e, 0, sizeof *e);
}

void ksv_history_list_free(ksv_history_list *l)
{
    STORE_LIST_FREE(l, ksv_history_entry_clear);
}
