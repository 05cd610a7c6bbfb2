/* quotas.c: Kubernetes ResourceQuotas, one row per namespace/name, as last applied. */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "store/store_internal.h"

void ksv_quota_clear(ksv_quota *q)
{
    STORE_FREE_STRINGS(q->ns, q->name);
    memset(q, 0, sizeof *q);
}

void ksv_quota_list_free(ksv_quota_list *l)
{
    STORE_LIST_FREE(l, ksv_quota_clear);
}

/* A limit column: NULL when the quota does not limit it (-1 here). */
static store_value limit_value(int64_t v)
{
    return v < 0 ? STORE_NULL : STORE_INT(v);
}

int ksv_store_quota_put(ksv_store *s, const ksv_quota *q, ksv_err *err)
{
    if (store_check_label(q->ns, "namespace", KSV_NAMESPACE_MAX, err) < 0 ||
        store_check_label(q->name, "quota name", KSV_DNS_LABEL_MAX, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "INSERT INTO quotas (namespace, name, count_isvc, requests_memory, "
                           "requests_gpu, created_at, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) "
                           "ON CONFLICT (namespace, name) DO UPDATE SET count_isvc = ?3, "
                           "requests_memory = ?4, requests_gpu = ?5, updated_at = ?6",
                           &st, err);
    STORE_BIND(&rc, st, STORE_TEXT(q->ns), STORE_TEXT(q->name), limit_value(q->count),
               limit_value(q->memory_bytes), limit_value(q->gpu), STORE_INT(ksv_wall_ms()));
    return store_run(s, st, rc, "storing a quota", err);
}

static int read_limit(ksv_store *s, sqlite3_stmt *st, int col, const char *what, int64_t *out,
                      ksv_err *err)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        *out = -1;
        return 0;
    }
    return store_col_int64(s, st, col, false, 0, INT64_MAX, what, out, err);
}

static int read_quota(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                      ksv_err *err)
{
    (void)ctx;
    ksv_quota *q = elem;
    return store_col_int64(s, st, 0, false, 1, INT64_MAX, "quotas.id", &q->id, err) < 0 ||
                   store_col_text(s, st, 1, false, "quotas.namespace", &q->ns, err) < 0 ||
                   store_col_text(s, st, 2, false, "quotas.name", &q->name, err) < 0 ||
                   read_limit(s, st, 3, "quotas.count_isvc", &q->count, err) < 0 ||
                   read_limit(s, st, 4, "quotas.requests_memory", &q->memory_bytes, err) < 0 ||
                   read_limit(s, st, 5, "quotas.requests_gpu", &q->gpu, err) < 0 ||
                   store_col_int64(s, st, 6, false, 0, INT64_MAX, "quotas.created_at",
                                   &q->created_at_ms, err) < 0 ||
                   store_col_int64(s, st, 7, false, 0, INT64_MAX, "quotas.updated_at",
                                   &q->updated_at_ms, err) < 0
               ? -1
               : 0;
}

int ksv_store_quota_list(ksv_store *s, const char *ns, ksv_quota_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT id, namespace, name, count_isvc, requests_memory, requests_gpu, "
                           "created_at, updated_at FROM quotas WHERE ?1 IS NULL OR namespace = ?1 "
                           "ORDER BY namespace, name",
                           &st, err);
    store_bind_text(&rc, st, 1, ns);
    if (store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                        read_quota, NULL, "listing quotas", err) < 0) {
        ksv_quota_list_free(out);
        return -1;
    }
    return 0;
}
