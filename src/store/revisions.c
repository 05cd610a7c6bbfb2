/* revisions.c: a model's immutable, numbered revisions, and which one is rolled out
 * (stable). A revision is never changed after it is created, except for the time it was
 * first rolled out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "store/store_internal.h"

#define REVISION_COLUMNS                                                                   \
    "id, model_id, seq, name, spec, spec_sha256, runtime, storage_uri, created_at, "       \
    "rolled_out_at"

static bool is_sha256_hex(const char *h)
{
    size_t i = 0;
    for (; h[i]; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return i == 64;
}

static int read_revision(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                         ksv_err *err)
{
    (void)ctx;
    ksv_revision_record *r = elem;
    char *hash = NULL;
    int res = 0;
    if (store_col_int64(s, st, 0, false, 1, INT64_MAX, "revisions.id", &r->id, err) < 0 ||
        store_col_int64(s, st, 1, false, 1, INT64_MAX, "revisions.model_id", &r->model_id,
                        err) < 0 ||
        store_col_int64(s, st, 2, false, 1, INT64_MAX, "revisions.seq", &r->seq, err) < 0 ||
        store_col_text(s, st, 3, false, "revisions.name", &r->name, err) < 0 ||
        store_col_text(s, st, 4, false, "revisions.spec", &r->spec_json, err) < 0 ||
        store_col_text(s, st, 5, false, "revisions.spec_sha256", &hash, err) < 0 ||
        store_col_text(s, st, 6, false, "revisions.runtime", &r->runtime, err) < 0 ||
        store_col_text(s, st, 7, false, "revisions.storage_uri", &r->storage_uri, err) < 0 ||
        store_col_int64(s, st, 8, false, 0, INT64_MAX, "revisions.created_at",
                        &r->created_at_ms, err) < 0 ||
        store_col_int64(s, st, 9, true, 1, INT64_MAX, "revisions.rolled_out_at",
                        &r->rolled_out_at_ms, err) < 0) {
        res = -1;
    } else if (!is_sha256_hex(hash)) {
        res = store_corrupt(s, err, "revision %s has the spec hash '%.70s'", r->name, hash);
    } else if (!*r->name || !*r->runtime || !*r->storage_uri) {
        res = store_corrupt(s, err, "revision %lld has an empty name, runtime or storage URI",
                            (long long)r->id);
    } else if (store_check_json_object(r->spec_json, "", 500, NULL) < 0) {
        res = store_corrupt(s, err, "the spec of revision %s is not a JSON object", r->name);
    } else {
        memcpy(r->spec_sha256, hash, 65);
    }
    free(hash);
    if (res < 0)
        ksv_revision_record_clear(r);
    return res;
}

/* Runs sql with ?1 = id and, when the statement has them, ?2 = text and ?3 = id3; collects
 * every row. */
static int select_revisions(ksv_store *s, const char *sql, int64_t id, const char *text,
                            int64_t id3, ksv_revision_record_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st, err);
    store_bind_int64(&rc, st, 1, id);
    if (sqlite3_bind_parameter_count(st) >= 2)
        store_bind_text(&rc, st, 2, text ? text : "");
    if (sqlite3_bind_parameter_count(st) >= 3)
        store_bind_int64(&rc, st, 3, id3);
    if (store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                        read_revision, NULL, "reading revisions", err) < 0) {
        ksv_revision_record_list_free(out);
        return -1;
    }
    return 0;
}

/* The first row of select_revisions into out: 1 found, 0 none. */
static int select_one3(ksv_store *s, const char *sql, int64_t id, const char *text, int64_t id3,
                       ksv_revision_record *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    ksv_revision_record_list l;
    if (select_revisions(s, sql, id, text, id3, &l, err) < 0)
        return -1;
    int found = l.n > 0;
    if (found) {
        *out = l.items[0];
        memset(&l.items[0], 0, sizeof l.items[0]);
    }
    ksv_revision_record_list_free(&l);
    return found;
}

static int select_one(ksv_store *s, const char *sql, int64_t id, const char *text,
                      ksv_revision_record *out, ksv_err *err)
{
    return select_one3(s, sql, id, text, 0, out, err);
}

/* The model's name, for revision names and messages; 404 when there is no such model. */
static int model_name(ksv_store *s, int64_t model_id, char **name, ksv_err *err)
{
    sqlite3_stmt *st;
    *name = NULL;
    if (store_select_model(s, "SELECT name FROM models WHERE id = ?1", model_id,
                           "reading a model", &st, err) < 0)
        return -1;
    int r = store_col_text(s, st, 0, false, "models.name", name, err);
    sqlite3_finalize(st);
    return r;
}

static int next_seq(ksv_store *s, int64_t model_id, int64_t *seq, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT max(seq) FROM revisions WHERE model_id = ?1", &st, err);
    int64_t last = 0;
    store_bind_int64(&rc, st, 1, model_id);
    int r = store_step_row(s, st, rc, "numbering a revision", err);
    if (r > 0)
        r = store_col_int64(s, st, 0, true, 1, INT64_MAX - 1, "revisions.seq", &last, err);
    else if (r == 0) /* max() answers one row, even over no revisions */
        r = store_db_error(s, SQLITE_DONE, "numbering a revision", err);
    sqlite3_finalize(st);
    *seq = last + 1;
    return r;
}

int ksv_store_revision_create(ksv_store *s, int64_t model_id, const char *spec_json,
                              const char *runtime, const char *storage_uri,
                              ksv_revision_record *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    char hash[65];
    if (store_check_json_object(spec_json, "the revision's spec", 400, err) < 0 ||
        ksv_store_spec_hash(spec_json, hash, err) < 0)
        return -1;
    if (!runtime || !*runtime)
        return ksv_err_set(err, 400, "a revision needs a runtime");
    if (!storage_uri || !*storage_uri)
        return ksv_err_set(err, 400, "a revision needs a storage URI");
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    char *mname = NULL;
    int64_t seq;
    if (model_name(s, model_id, &mname, err) < 0 || next_seq(s, model_id, &seq, err) < 0)
        goto fail;
    if (seq > KSV_REVISION_SEQ_MAX) {
        ksv_err_set(err, 409, "model %s has %d revisions, the most a model may have (its "
                    "revision names are MODEL-NNNNN); delete and re-apply it", mname,
                    KSV_REVISION_SEQ_MAX);
        goto fail;
    }
    char name[STORE_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s-%05lld", mname, (long long)seq);
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "INSERT INTO revisions (model_id, seq, name, spec, spec_sha256, "
                           "runtime, storage_uri, created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           &st, err);
    STORE_BIND(&rc, st, STORE_INT(model_id), STORE_INT(seq), STORE_TEXT(name),
               STORE_TEXT(spec_json), STORE_TEXT(hash), STORE_TEXT(runtime),
               STORE_TEXT(storage_uri), STORE_INT(ksv_wall_ms()));
    if (store_run(s, st, rc, "creating a revision", err) < 0)
        goto fail;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (select_one(s, "SELECT " REVISION_COLUMNS " FROM revisions WHERE id = ?1", id, NULL, out,
                   err) != 1) {
        ksv_revision_record_clear(out);
        if (err && err->status == 0)
            ksv_err_set(err, 500, "database %s: a new revision vanished", s->path);
        goto fail;
    }
    if (store_tx_commit(s, &tx, err) < 0) {
        ksv_revision_record_clear(out);
        free(mname);
        return -1;
    }
    free(mname);
    return 0;
fail:
    free(mname);
    store_tx_abort(s, &tx);
    return -1;
}

int ksv_store_revision_get(ksv_store *s, int64_t model_id, const char *name,
                           ksv_revision_record *out, ksv_err *err)
{
    int r = select_one(s, "SELECT " REVISION_COLUMNS " FROM revisions "
                       "WHERE model_id = ?1 AND name = ?2", model_id, name, out, err);
    if (r == 0)
        return ksv_err_set(err, 404, "revision %s not found", name ? name : "(null)");
    return r < 0 ? -1 : 0;
}

int ksv_store_revision_get_by_id(ksv_store *s, int64_t id, ksv_revision_record *out, ksv_err *err)
{
    int r = select_one(s, "SELECT " REVISION_COLUMNS " FROM revisions WHERE id = ?1", id, NULL,
                       out, err);
    if (r == 0)
        return ksv_err_set(err, 404, "revision #%lld not found", (long long)id);
    return r < 0 ? -1 : 0;
}

int ksv_store_revision_list(ksv_store *s, int64_t model_id, ksv_revision_record_list *out,
                            ksv_err *err)
{
    return select_revisions(s, "SELECT " REVISION_COLUMNS " FROM revisions WHERE model_id = ?1 "
                            "ORDER BY seq", model_id, NULL, 0, out, err);
}

int ksv_store_revision_find_by_hash(ksv_store *s, int64_t model_id, const char *sha256_hex,
                                    ksv_revision_record *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (!sha256_hex || !is_sha256_hex(sha256_hex))
        return ksv_err_set(err, 400, "'%.70s' is not a sha256 in lowercase hex",
                           sha256_hex ? sha256_hex : "(null)");
    return select_one(s, "SELECT " REVISION_COLUMNS " FROM revisions WHERE model_id = ?1 "
                      "AND spec_sha256 = ?2 ORDER BY seq DESC LIMIT 1", model_id, sha256_hex,
                      out, err);
}

int ksv_store_revision_latest(ksv_store *s, int64_t model_id, ksv_revision_record *out,
                              ksv_err *err)
{
    return select_one(s, "SELECT " REVISION_COLUMNS " FROM revisions WHERE model_id = ?1 "
                      "ORDER BY seq DESC LIMIT 1", model_id, NULL, out, err);
}

int ksv_store_stable_get(ksv_store *s, int64_t model_id, int64_t *revision_id, ksv_err *err)
{
    *revision_id = 0;
    sqlite3_stmt *st;
    if (store_select_model(s, "SELECT stable_revision_id FROM models WHERE id = ?1", model_id,
                           "reading the stable revision", &st, err) < 0)
        return -1;
    int r = store_col_int64(s, st, 0, true, 1, INT64_MAX, "models.stable_revision_id",
                            revision_id, err);
    sqlite3_finalize(st);
    return r;
}

int ksv_store_stable_set(ksv_store *s, int64_t model_id, int64_t revision_id, ksv_err *err)
{
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    ksv_revision_record rev;
    char *mname = NULL;
    if (model_name(s, model_id, &mname, err) < 0 ||
        ksv_store_revision_get_by_id(s, revision_id, &rev, err) < 0)
        goto fail;
    bool ours = rev.model_id == model_id;
    ksv_revision_record_clear(&rev);
    if (!ours) {
        ksv_err_set(err, 400, "revision #%lld is not a revision of model %s",
                    (long long)revision_id, mname);
        goto fail;
    }
    if (store_exec_ids(s, "UPDATE models SET stable_revision_id = ?2 WHERE id = ?1", model_id,
                       revision_id, "setting the stable revision", err) < 0 ||
        store_exec_ids(s, "UPDATE revisions SET rolled_out_at = coalesce(rolled_out_at, ?2) "
                       "WHERE id = ?1", revision_id, ksv_wall_ms(),
                       "setting the stable revision", err) < 0)
        goto fail;
    free(mname);
    return store_tx_commit(s, &tx, err);
fail:
    free(mname);
    store_tx_abort(s, &tx);
    return -1;
}

int ksv_store_stable_previous(ksv_store *s, int64_t model_id, ksv_revision_record *out,
                              ksv_err *err)
{
    memset(out, 0, sizeof *out);
    store_tx tx;
    if (store_tx_begin(s, &tx, false, err) < 0)
        return -1;
    int64_t stable_id = 0;
    ksv_revision_record stable;
    int r = ksv_store_stable_get(s, model_id, &stable_id, err);
    if (r == 0 && stable_id != 0) {
        r = ksv_store_revision_get_by_id(s, stable_id, &stable, err);
        if (r == 0) {
            r = select_one3(s, "SELECT " REVISION_COLUMNS " FROM revisions "
                            "WHERE model_id = ?1 AND rolled_out_at IS NOT NULL AND seq < ?3 "
                            "ORDER BY seq DESC LIMIT 1", model_id, NULL,
                            stable.seq, out, err);
            ksv_revision_record_clear(&stable);
        }
    }
    store_tx_abort(s, &tx);
    return r;
}

void ksv_revision_record_clear(ksv_revision_record *r)
{
    if (!r)
        return;
    STORE_FREE_STRINGS(r->name, r->spec_json, r->runtime, r->storage_uri);
    memset(r, 0, sizeof *r);
}

void ksv_revision_record_list_free(ksv_revision_record_list *l)
{
    STORE_LIST_FREE(l, ksv_revision_record_clear);
}
