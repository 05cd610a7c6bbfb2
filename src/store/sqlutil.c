/* sqlutil.c: the helpers every store file uses: SQLite errors as ksv_err, statements,
 * sticky binders, validated column readers, nested-safe transactions, input checks. */
#include "common/clock.h"
#include "store/store_internal.h"

#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int store_db_error(ksv_store *s, int rc, const char *what, ksv_err *err)
{
    int primary = rc & 0xff;
    /* sqlite3_errmsg describes the connection's latest call, which may not be the one that
     * returned rc; fall back to the generic text then. */
    const char *detail = sqlite3_errstr(rc);
    if (s && s->db && sqlite3_extended_errcode(s->db) == rc)
        detail = sqlite3_errmsg(s->db);
    const char *path = s && s->path ? s->path : "?";
    switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ksv_err_set(err, 503, "database %s is busy (another ksv is writing it): %s: %s",
                           path, what, detail);
    case SQLITE_CONSTRAINT:
        return ksv_err_set(err, 409, "database %s: %s: %s", path, what, detail);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ksv_err_set(err, 500, "database %s is damaged or not a database: %s: %s", path,
                           what, detail);
    case SQLITE_NOMEM:
        return ksv_err_set(err, 500, "database %s: %s: out of memory", path, what);
    default:
        return ksv_err_set(err, 500, "database %s: %s: %s", path, what, detail);
    }
}

int store_corrupt(ksv_store *s, ksv_err *err, const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return ksv_err_set(err, 500, "database %s is damaged: %s", s && s->path ? s->path : "?",
                       detail);
}

int store_prepare(ksv_store *s, const char *sql, sqlite3_stmt **st, ksv_err *err)
{
    *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc == SQLITE_OK && !*st)
        rc = SQLITE_MISUSE; /* no statement in sql: a bug here, never data */
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        store_db_error(s, rc, "preparing a statement", err);
    }
    return rc;
}

int store_step_row(ksv_store *s, sqlite3_stmt *st, int bind_rc, const char *what,
                   ksv_err *err)
{
    if (!st)
        return -1; /* store_prepare failed and said why */
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return store_db_error(s, rc, what, err);
}

int store_step_done(ksv_store *s, sqlite3_stmt *st, int bind_rc, const char *what,
                    ksv_err *err)
{
    int row = store_step_row(s, st, bind_rc, what, err);
    if (row > 0)
        return ksv_err_set(err, 500, "database %s: %s: unexpected row", s->path, what);
    return row;
}

int store_run(ksv_store *s, sqlite3_stmt *st, int bind_rc, const char *what, ksv_err *err)
{
    int r = store_step_done(s, st, bind_rc, what, err);
    sqlite3_finalize(st);
    return r;
}

int store_exec_ids(ksv_store *s, const char *sql, int64_t a, int64_t b, const char *what,
                   ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st, err);
    store_bind_int64(&rc, st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        store_bind_int64(&rc, st, 2, b);
    return store_run(s, st, rc, what, err);
}

int store_read_one(ksv_store *s, sqlite3_stmt *st, int bind_rc, store_read_fn read,
                   void *elem, const void *ctx, const char *what, ksv_err *err)
{
    int found = store_step_row(s, st, bind_rc, what, err);
    if (found > 0 && read(s, st, elem, ctx, err) < 0)
        found = -1;
    sqlite3_finalize(st);
    return found;
}

int store_read_id(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx, ksv_err *err)
{
    return store_col_int64(s, st, 0, false, 1, INT64_MAX, ctx, elem, err);
}

int store_select_model(ksv_store *s, const char *sql, int64_t model_id, const char *what,
                       sqlite3_stmt **st, ksv_err *err)
{
    int rc = store_prepare(s, sql, st, err);
    store_bind_int64(&rc, *st, 1, model_id);
    int found = store_step_row(s, *st, rc, what, err);
    if (found > 0)
        return 0;
    if (found == 0)
        ksv_err_set(err, 404, "model #%lld not found", (long long)model_id);
    sqlite3_finalize(*st);
    *st = NULL;
    return -1;
}

int store_each_row(ksv_store *s, sqlite3_stmt *st, int bind_rc, store_row_fn fn, void *ctx,
                   const char *what, ksv_err *err)
{
    if (!st)
        return -1; /* store_prepare failed and said why */
    int rc = bind_rc, r = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (fn(s, st, ctx, err) < 0) {
            r = -1;
            break;
        }
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = store_db_error(s, rc, what, err);
    sqlite3_finalize(st);
    return r;
}

/* store_read_rows' state between rows. */
typedef struct store_collect {
    void **items;
    size_t *n;
    size_t cap;
    size_t elem_size;
    store_read_fn read;
    const void *ctx;
    const char *what;
} store_collect;

static int collect_row(ksv_store *s, sqlite3_stmt *st, void *p, ksv_err *err)
{
    store_collect *c = p;
    void *elem = store_list_push(c->items, c->n, &c->cap, c->elem_size);
    if (!elem)
        return ksv_err_set(err, 500, "out of memory %s", c->what);
    return c->read(s, st, elem, c->ctx, err);
}

int store_read_rows(ksv_store *s, sqlite3_stmt *st, int bind_rc, void **items, size_t *n,
                    size_t elem_size, store_read_fn read, const void *ctx, const char *what,
                    ksv_err *err)
{
    /* What is allocated holds at least *n: growing from there is safe. */
    store_collect c = {items, n, *n, elem_size, read, ctx, what};
    return store_each_row(s, st, bind_rc, collect_row, &c, what, err);
}

void store_bind_text(int *rc, sqlite3_stmt *st, int idx, const char *v)
{
    if (*rc != SQLITE_OK)
        return;
    *rc = v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
}

void store_bind_int64(int *rc, sqlite3_stmt *st, int idx, int64_t v)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(st, idx, v);
}

void store_bind_double(int *rc, sqlite3_stmt *st, int idx, double v)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_double(st, idx, v);
}

void store_bind_blob(int *rc, sqlite3_stmt *st, int idx, const void *p, int n)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_blob(st, idx, n > 0 ? p : "", n, SQLITE_TRANSIENT);
}

store_value store_opt_int(int64_t v)
{
    return v ? STORE_INT(v) : STORE_NULL;
}

void store_bind_values(int *rc, sqlite3_stmt *st, const store_value *values)
{
    int idx = 1;
    for (const store_value *v = values; v->type != STORE_V_END && *rc == SQLITE_OK; v++, idx++) {
        switch (v->type) {
        case STORE_V_NULL:
            *rc = sqlite3_bind_null(st, idx);
            break;
        case STORE_V_INT:
            store_bind_int64(rc, st, idx, v->i);
            break;
        case STORE_V_REAL:
            store_bind_double(rc, st, idx, v->d);
            break;
        case STORE_V_TEXT:
            store_bind_text(rc, st, idx, v->p);
            break;
        case STORE_V_BLOB:
            store_bind_blob(rc, st, idx, v->p, v->n);
            break;
        case STORE_V_END:
            break;
        }
    }
}

/* Whether column col holds a value of SQLite type `type` (1), an allowed NULL (0), or
 * neither (-1, err: "WHAT is NULL" or "WHAT is not KIND"). */
static int col_has(ksv_store *s, sqlite3_stmt *st, int col, int type, const char *kind,
                   bool nullable, const char *what, ksv_err *err)
{
    int found = sqlite3_column_type(st, col);
    if (found == type)
        return 1;
    if (found != SQLITE_NULL)
        return store_corrupt(s, err, "%s is not %s", what, kind);
    return nullable ? 0 : store_corrupt(s, err, "%s is NULL", what);
}

int store_col_text(ksv_store *s, sqlite3_stmt *st, int col, bool nullable, const char *what,
                   char **out, ksv_err *err)
{
    *out = NULL;
    int has = col_has(s, st, col, SQLITE_TEXT, "text", nullable, what, err);
    if (has <= 0)
        return has;
    const unsigned char *p = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!p || n < 0)
        return ksv_err_set(err, 500, "database %s: reading %s: out of memory", s->path, what);
    if (memchr(p, '\0', (size_t)n))
        return store_corrupt(s, err, "%s holds a NUL byte", what);
    char *copy = malloc((size_t)n + 1);
    if (!copy)
        return ksv_err_set(err, 500, "database %s: reading %s: out of memory", s->path, what);
    memcpy(copy, p, (size_t)n);
    copy[n] = '\0';
    *out = copy;
    return 0;
}

int store_col_int64(ksv_store *s, sqlite3_stmt *st, int col, bool nullable, int64_t min,
                    int64_t max, const char *what, int64_t *out, ksv_err *err)
{
    *out = 0;
    int has = col_has(s, st, col, SQLITE_INTEGER, "an integer", nullable, what, err);
    if (has <= 0)
        return has;
    int64_t v = sqlite3_column_int64(st, col);
    if (v < min || v > max)
        return store_corrupt(s, err, "%s is %lld, outside [%lld, %lld]", what, (long long)v,
                             (long long)min, (long long)max);
    *out = v;
    return 0;
}

int store_col_double(ksv_store *s, sqlite3_stmt *st, int col, const char *what, double *out,
                     ksv_err *err)
{
    *out = 0;
    int type = sqlite3_column_type(st, col);
    if (type != SQLITE_FLOAT && type != SQLITE_INTEGER)
        return store_corrupt(s, err, "%s is not a number", what);
    double v = sqlite3_column_double(st, col);
    if (!isfinite(v))
        return store_corrupt(s, err, "%s is not finite", what);
    *out = v;
    return 0;
}

static int exec_const(ksv_store *s, const char *sql, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st, err);
    return store_run(s, st, rc, sql, err);
}

int store_tx_begin(ksv_store *s, store_tx *tx, bool write, ksv_err *err)
{
    tx->open = false;
    if (s->explicit_tx && sqlite3_get_autocommit(s->db))
        return ksv_err_set(err, 500,
                           "database %s: the open transaction was rolled back by an earlier "
                           "error; roll back and start again", s->path);
    /* Inside any transaction (explicit, or a read this file opened) nest with a savepoint. */
    tx->outer = sqlite3_get_autocommit(s->db) != 0;
    const char *sql = !tx->outer ? "SAVEPOINT ksv_op" : write ? "BEGIN IMMEDIATE" : "BEGIN";
    if (exec_const(s, sql, err) < 0)
        return -1;
    tx->open = true;
    return 0;
}

int store_tx_commit(ksv_store *s, store_tx *tx, ksv_err *err)
{
    if (!tx->open)
        return ksv_err_set(err, 500, "database %s: commit without a transaction", s->path);
    if (exec_const(s, tx->outer ? "COMMIT" : "RELEASE ksv_op", err) < 0) {
        store_tx_abort(s, tx);
        return -1;
    }
    tx->open = false;
    return 0;
}

void store_tx_abort(ksv_store *s, store_tx *tx)
{
    if (!tx->open)
        return;
    tx->open = false;
    /* SQLite rolls some failures (disk full, I/O) back by itself; then nothing is open. */
    if (sqlite3_get_autocommit(s->db))
        return;
    if (tx->outer) {
        exec_const(s, "ROLLBACK", NULL);
    } else {
        exec_const(s, "ROLLBACK TO ksv_op", NULL);
        exec_const(s, "RELEASE ksv_op", NULL);
    }
}

char *store_strdup(const char *v, bool *oom)
{
    if (!v)
        return NULL;
    char *c = strdup(v);
    if (!c)
        *oom = true;
    return c;
}

int store_check_label(const char *v, const char *what, size_t max, ksv_err *err)
{
    const char *problem = ksv_dns_label_problem(v, max);
    if (!problem)
        return 0;
    if (!v || !*v)
        return ksv_err_set(err, 400, "%s %s", what, problem);
    return ksv_err_set(err, 400, "%s '%.80s' %s", what, v, problem);
}

struct json_object *store_json_parse(const char *text)
{
    if (!store_json_is_strict(text))
        return NULL;
    size_t len = strlen(text);
    if (len > (size_t)INT32_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = obj && json_tokener_get_error(tok) == json_tokener_success;
    if (ok) {
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
            char c = text[i];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                ok = false;
                break;
            }
        }
    }
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

int store_check_json_object(const char *json, const char *what, int status, ksv_err *err)
{
    json_object *obj = store_json_parse(json);
    bool ok = obj && json_object_is_type(obj, json_type_object);
    json_object_put(obj);
    if (ok)
        return 0;
    return ksv_err_set(err, status, "%s is not a JSON object", what);
}

void *store_list_push(void **items, size_t *n, size_t *cap, size_t elem_size)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        if (ncap > ((size_t)-1) / elem_size)
            return NULL;
        void *p = realloc(*items, ncap * elem_size);
        if (!p)
            return NULL;
        *items = p;
        *cap = ncap;
    }
    char *slot = (char *)*items + *n * elem_size;
    memset(slot, 0, elem_size);
    (*n)++;
    return slot;
}
