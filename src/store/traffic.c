/* traffic.c: a model's traffic split across its revisions, replaced as a whole. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static int check_split(int64_t model_id, const ksv_traffic_entry *e, size_t n, ksv_err *err)
{
    if (n == 0 || !e)
        return ksv_err_set(err, 400, "model #%lld: a traffic split needs at least one revision",
                           (long long)model_id);
    long sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].percent < 0 || e[i].percent > 100)
            return ksv_err_set(err, 400, "traffic percent %d is not in 0..100", e[i].percent);
        if (e[i].revision_id <= 0)
            return ksv_err_set(err, 400, "traffic entry %zu names no revision", i);
        for (size_t j = 0; j < i; j++)
            if (e[j].revision_id == e[i].revision_id)
                return ksv_err_set(err, 400, "revision #%lld appears twice in a traffic split",
                                   (long long)e[i].revision_id);
        sum += e[i].percent;
    }
    if (sum != 100)
        return ksv_err_set(err, 400, "traffic percents sum to %ld, not 100", sum);
    return 0;
}

/* 404 unless revision_id exists, 400 unless it is model_id's. */
static int check_revision_of(ksv_store *s, int64_t model_id, int64_t revision_id, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT model_id FROM revisions WHERE id = ?1", &st, err);
    int64_t owner = 0;
    store_bind_int64(&rc, st, 1, revision_id);
    int found = store_read_one(s, st, rc, store_read_id, &owner, "revisions.model_id",
                               "checking a revision", err);
    if (found == 0)
        return ksv_err_set(err, 404, "revision #%lld not found", (long long)revision_id);
    if (found > 0 && owner != model_id)
        return ksv_err_set(err, 400, "revision #%lld belongs to another model",
                           (long long)revision_id);
    return found < 0 ? -1 : 0;
}

static int model_exists(ksv_store *s, int64_t model_id, ksv_err *err)
{
    sqlite3_stmt *st;
    if (store_select_model(s, "SELECT 1 FROM models WHERE id = ?1", model_id, "reading a model",
                           &st, err) < 0)
        return -1;
    sqlite3_finalize(st);
    return 0;
}

int ksv_store_traffic_set(ksv_store *s, int64_t model_id, const ksv_traffic_entry *entries,
                          size_t n, ksv_err *err)
{
    if (check_split(model_id, entries, n, err) < 0)
        return -1;
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    sqlite3_stmt *st = NULL;
    if (model_exists(s, model_id, err) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (check_revision_of(s, model_id, entries[i].revision_id, err) < 0)
            goto fail;
    if (store_exec_ids(s, "DELETE FROM traffic WHERE model_id = ?1", model_id, 0,
                       "replacing a traffic split", err) < 0)
        goto fail;
    if (store_prepare(s, "INSERT INTO traffic (model_id, revision_id, percent) "
                      "VALUES (?1, ?2, ?3)", &st, err) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        int rc = SQLITE_OK;
        STORE_BIND(&rc, st, STORE_INT(model_id), STORE_INT(entries[i].revision_id),
                   STORE_INT(entries[i].percent));
        if (store_step_done(s, st, rc, "writing a traffic split", err) < 0)
            goto fail;
    }
    sqlite3_finalize(st);
    return store_tx_commit(s, &tx, err);
fail:
    sqlite3_finalize(st);
    store_tx_abort(s, &tx);
    return -1;
}

/* A split entry; ctx is the model's id (for the message when the revision is not its). */
static int read_entry(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                      ksv_err *err)
{
    ksv_traffic_entry *e = elem;
    int64_t model_id = *(const int64_t *)ctx, percent = 0;
    if (store_col_int64(s, st, 0, false, 1, INT64_MAX, "traffic.revision_id",
                        &e->revision_id, err) < 0 ||
        store_col_int64(s, st, 2, false, 0, 100, "traffic.percent", &percent, err) < 0)
        return -1;
    if (sqlite3_column_type(st, 1) == SQLITE_NULL)
        return store_corrupt(s, err, "traffic of model #%lld names revision #%lld, which is "
                             "not one of its revisions", (long long)model_id,
                             (long long)e->revision_id);
    if (store_col_text(s, st, 1, false, "revisions.name", &e->revision_name, err) < 0)
        return -1;
    e->percent = (int)percent;
    return 0;
}

int ksv_store_traffic_get(ksv_store *s, int64_t model_id, ksv_traffic *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    store_tx tx;
    if (store_tx_begin(s, &tx, false, err) < 0)
        return -1;
    int r = model_exists(s, model_id, err);
    if (r == 0) {
        sqlite3_stmt *st;
        /* LEFT JOIN: a row pointing at a missing revision is damage to report, not to skip. */
        int rc = store_prepare(s,
                               "SELECT t.revision_id, r.name, t.percent FROM traffic t "
                               "LEFT JOIN revisions r ON r.id = t.revision_id "
                               "AND r.model_id = t.model_id "
                               "WHERE t.model_id = ?1 ORDER BY r.seq, t.revision_id",
                               &st, err);
        store_bind_int64(&rc, st, 1, model_id);
        r = store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                            read_entry, &model_id, "reading traffic", err);
    }
    long sum = 0;
    for (size_t i = 0; r == 0 && i < out->n; i++)
        sum += out->items[i].percent;
    if (r == 0 && out->n > 0 && sum != 100)
        r = store_corrupt(s, err, "traffic of model #%lld sums to %ld%%", (long long)model_id,
                          sum);
    store_tx_abort(s, &tx);
    if (r < 0)
        ksv_traffic_free(out);
    return r;
}

static void traffic_entry_clear(ksv_traffic_entry *e)
{
    free(e->revision_name);
    e->revision_name = NULL;
}

void ksv_traffic_free(ksv_traffic *t)
{
    STORE_LIST_FREE(t, traffic_entry_clear);
}
