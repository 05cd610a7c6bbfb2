/* gates.c: what the console keeps about release gates: the Canary gating each model (as
 * the engine policy it sends) and, per node, the cursor into the node's event log. */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "store/store_internal.h"

int ksv_store_canary_set(ksv_store *s, int64_t model_id, const char *name, const char *policy,
                         ksv_err *err)
{
    if (!name || !*name || strlen(name) > STORE_NAME_MAX)
        return ksv_err_set(err, 400, "a Canary needs a name of at most %d bytes", STORE_NAME_MAX);
    if (store_check_json_object(policy, "the Canary policy", 400, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "INSERT INTO canaries (model_id, name, policy, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (model_id) DO UPDATE SET "
                           "name = excluded.name, policy = excluded.policy, "
                           "updated_at = excluded.updated_at",
                           &st, err);
    STORE_BIND(&rc, st, STORE_INT(model_id), STORE_TEXT(name), STORE_TEXT(policy),
               STORE_INT(ksv_wall_ms()));
    int r = store_run(s, st, rc, "saving a Canary", err);
    return r;
}

int ksv_store_canary_get(ksv_store *s, int64_t model_id, char **name, char **policy,
                         ksv_err *err)
{
    *name = *policy = NULL;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT name, policy FROM canaries WHERE model_id = ?1", &st, err);
    store_bind_int64(&rc, st, 1, model_id);
    int r = store_step_row(s, st, rc, "reading a Canary", err);
    if (r > 0) {
        if (store_col_text(s, st, 0, false, "canaries.name", name, err) < 0 ||
            store_col_text(s, st, 1, false, "canaries.policy", policy, err) < 0) {
            free(*name);
            *name = NULL;
            r = -1;
        } else if (store_check_json_object(*policy, "", 500, NULL) < 0) {
            free(*name);
            free(*policy);
            *name = *policy = NULL;
            r = store_corrupt(s, err, "the Canary of model #%lld is not a JSON object",
                              (long long)model_id);
        }
    }
    sqlite3_finalize(st);
    return r;
}

int ksv_store_event_cursor_get(ksv_store *s, const char *node, char **log_id, int64_t *seq,
                               ksv_err *err)
{
    *log_id = NULL;
    *seq = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT log_id, last_seq FROM event_cursors WHERE node = ?1", &st,
                           err);
    store_bind_text(&rc, st, 1, node);
    int r = store_step_row(s, st, rc, "reading an event cursor", err);
    if (r > 0 && (store_col_text(s, st, 0, false, "event_cursors.log_id", log_id, err) < 0 ||
                  store_col_int64(s, st, 1, false, 0, INT64_MAX, "event_cursors.last_seq",
                                  seq, err) < 0)) {
        free(*log_id);
        *log_id = NULL;
        r = -1;
    }
    sqlite3_finalize(st);
    return r;
}

int ksv_store_event_cursor_set(ksv_store *s, const char *node, const char *log_id, int64_t seq,
                               ksv_err *err)
{
    if (seq < 0)
        return ksv_err_set(err, 400, "an event cursor is not negative");
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "INSERT INTO event_cursors (node, log_id, last_seq) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (node) DO UPDATE SET log_id = excluded.log_id, "
                           "last_seq = excluded.last_seq",
                           &st, err);
    STORE_BIND(&rc, st, STORE_TEXT(node), STORE_TEXT(log_id), STORE_INT(seq));
    int r = store_run(s, st, rc, "saving an event cursor", err);
    return r;
}
