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
    if (store_prepare(s, "SELECT spec FROM serving_runtimes WHERE cluster = ?1 AND "
                         "namespace = ?2 AND name = ?3", &st, err) < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    int rc = SQLITE_OK;
    store_bind_int64(&rc, st, 1, cluster);
    store_bind_text(&rc, st, 2, ns);
    store_bind_text(&rc, st, 3, name);
    bool same = false;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *old = sqlite3_column_text(st, 0);
        same = old && strcmp((const char *)old, spec_json) == 0;
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        store_tx_abort(s, &tx);
        return store_db_error(s, rc, "reading a serving runtime", err);
    }
    if (!same) {
        int64_t now = ksv_wall_ms();
        if (store_prepare(s, "INSERT INTO serving_runtimes (cluster, namespace, name, spec, "
                             "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5) "
                             "ON CONFLICT (cluster, namespace, name) DO UPDATE SET "
                             "spec = excluded.spec, updated_at = excluded.updated_at",
                          &st, err) < 0) {
            store_tx_abort(s, &tx);
            return -1;
        }
        rc = SQLITE_OK;
        store_bind_int64(&rc, st, 1, cluster);
        store_bind_text(&rc, st, 2, ns);
        store_bind_text(&rc, st, 3, name);
        store_bind_text(&rc, st, 4, spec_json);
        store_bind_int64(&rc, st, 5, now);
        int step = rc == SQLITE_OK ? store_step_done(s, st, "storing a serving runtime", err)
                                   : store_db_error(s, rc, "storing a serving runtime", err);
        sqlite3_finalize(st);
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

void ksv_runtime_rows_free(ksv_runtime_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->items[i].ns);
        free(rows->items[i].name);
        free(rows->items[i].spec_json);
    }
    free(rows->items);
    memset(rows, 0, sizeof *rows);
}

int ksv_store_runtime_list(ksv_store *s, ksv_runtime_rows *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (store_prepare(s, "SELECT cluster, namespace, name, spec, updated_at FROM "
                         "serving_runtimes ORDER BY cluster, namespace, name", &st, err) < 0)
        return -1;
    int rc, r = 0;
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            ksv_runtime_row *grown = realloc(out->items, nc * sizeof *grown);
            if (!grown) {
                r = ksv_err_set(err, 500, "out of memory");
                break;
            }
            out->items = grown;
            cap = nc;
        }
        ksv_runtime_row *row = &out->items[out->n];
        memset(row, 0, sizeof *row);
        int64_t cluster;
        if (store_col_int64(s, st, 0, false, 0, 1, "serving_runtimes.cluster", &cluster, err) < 0 ||
            store_col_text(s, st, 1, false, "serving_runtimes.namespace", &row->ns, err) < 0 ||
            store_col_text(s, st, 2, false, "serving_runtimes.name", &row->name, err) < 0 ||
            store_col_text(s, st, 3, false, "serving_runtimes.spec", &row->spec_json, err) < 0 ||
            store_col_int64(s, st, 4, false, 0, INT64_MAX, "serving_runtimes.updated_at",
                            &row->updated_at_ms, err) < 0 ||
            store_check_json_object(row->spec_json, "", 500, NULL) < 0) {
            free(row->ns);
            free(row->name);
            free(row->spec_json);
            r = r < 0 ? r : store_corrupt(s, err, "a serving runtime row is damaged");
            break;
        }
        row->cluster = cluster == 1;
        out->n++;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = store_db_error(s, rc, "listing serving runtimes", err);
    sqlite3_finalize(st);
    if (r < 0)
        ksv_runtime_rows_free(out);
    return r;
}
