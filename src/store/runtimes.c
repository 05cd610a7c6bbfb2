/* runtimes.c: ServingRuntime and ClusterServingRuntime documents (store.h). */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "store/store_internal.h"

int ksv_store_runtime_put(ksv_store *s, bool cluster, const char *ns, const char *name,
                          const char *spec_json, bool *changed, ksv_err *err)
{
    *changed = false;
    if (!ns || !name || !*name || strlen(name) > STORE_NAME_MAX || strlen(ns) > STORE_NAME_MAX ||
        cluster != (*ns == '\0'))
        return ksv_err_set(err, 400, "a runtime needs a name (and a namespace unless cluster-wide)");
    if (store_check_json_object(spec_json, "runtime spec", 400, err) < 0)
        return -1;
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT spec FROM serving_runtimes WHERE cluster = ?1 AND "
                              "namespace = ?2 AND name = ?3", &st, err);
    STORE_BIND(&rc, st, STORE_INT(cluster), STORE_TEXT(ns), STORE_TEXT(name));
    int found = store_step_row(s, st, rc, "reading a serving runtime", err);
    const unsigned char *old = found > 0 ? sqlite3_column_text(st, 0) : NULL;
    bool same = old && strcmp((const char *)old, spec_json) == 0;
    sqlite3_finalize(st);
    if (found < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    if (!same) {
        int64_t now = ksv_wall_ms();
        rc = store_prepare(s, "INSERT INTO serving_runtimes (cluster, namespace, name, spec, "
                              "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5) "
                              "ON CONFLICT (cluster, namespace, name) DO UPDATE SET "
                              "spec = excluded.spec, updated_at = excluded.updated_at",
                           &st, err);
        STORE_BIND(&rc, st, STORE_INT(cluster), STORE_TEXT(ns), STORE_TEXT(name),
                   STORE_TEXT(spec_json), STORE_INT(now));
        int step = store_run(s, st, rc, "storing a serving runtime", err);
        if (step < 0) {
            store_tx_abort(s, &tx);
            return -1;
        }
    }
    if (store_tx_commit(s, &tx, err) < 0)
        return -1;
    *changed = !same;
    return 0;
}

static void runtime_row_clear(ksv_runtime_row *row)
{
    STORE_FREE_STRINGS(row->ns, row->name, row->spec_json);
    memset(row, 0, sizeof *row);
}

void ksv_runtime_rows_free(ksv_runtime_rows *rows)
{
    STORE_LIST_FREE(rows, runtime_row_clear);
}

/* Any damage in the row is reported as the row's. */
static int read_runtime(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                        ksv_err *err)
{
    (void)ctx;
    ksv_runtime_row *row = elem;
    int64_t cluster;
    if (store_col_int64(s, st, 0, false, 0, 1, "serving_runtimes.cluster", &cluster, err) < 0 ||
        store_col_text(s, st, 1, false, "serving_runtimes.namespace", &row->ns, err) < 0 ||
        store_col_text(s, st, 2, false, "serving_runtimes.name", &row->name, err) < 0 ||
        store_col_text(s, st, 3, false, "serving_runtimes.spec", &row->spec_json, err) < 0 ||
        store_col_int64(s, st, 4, false, 0, INT64_MAX, "serving_runtimes.updated_at",
                        &row->updated_at_ms, err) < 0 ||
        store_check_json_object(row->spec_json, "", 500, NULL) < 0)
        return store_corrupt(s, err, "a serving runtime row is damaged");
    row->cluster = cluster == 1;
    return 0;
}

int ksv_store_runtime_list(ksv_store *s, ksv_runtime_rows *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT cluster, namespace, name, spec, updated_at FROM "
                              "serving_runtimes ORDER BY cluster, namespace, name", &st, err);
    if (store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                        read_runtime, NULL, "listing serving runtimes", err) < 0) {
        ksv_runtime_rows_free(out);
        return -1;
    }
    return 0;
}
