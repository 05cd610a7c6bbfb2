/* store_internal.h: what the files of src/store share and nobody else sees: the handle,
 * statement and error helpers, validated column readers, nested-safe transactions and the
 * migration scripts. */
#ifndef KSV_STORE_INTERNAL_H
#define KSV_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/field_limits.h"
#include "common/records.h"
#include "store/store.h"

struct ksv_store {
    sqlite3 *db;
    char *path;
    bool explicit_tx;   /* ksv_store_begin() is open */
};

/* Numbered migrations: store_migrations[i] takes schema version i to i + 1 and ends by
 * setting PRAGMA user_version to i + 1. Constant SQL only. */
extern const char *const store_migrations[];
extern const int store_n_migrations;

/* Longest namespace, model or node name accepted (a DNS name's limit). */
#define STORE_NAME_MAX 253

/* Fills err from the connection's last error, mapping SQLite codes to statuses
 * (BUSY/LOCKED 503, CONSTRAINT 409, the rest 500). Returns -1. */
int store_db_error(ksv_store *s, int rc, const char *what, ksv_err *err);
/* "database PATH is damaged: ..." with status 500. Returns -1. */
int store_corrupt(ksv_store *s, ksv_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepares sql (constant text; values are bound) into *st and returns SQLITE_OK. On failure
 * *st is NULL, err says so (store_db_error, "preparing a statement") and the failure is
 * returned: it starts the sticky binders' rc, so a statement reads
 *     int rc = store_prepare(s, sql, &st, err);
 *     store_bind_text(&rc, st, 1, name);
 *     return store_run(s, st, rc, "storing a name", err);
 * and is checked once, where it runs. */
int store_prepare(ksv_store *s, const char *sql, sqlite3_stmt **st, ksv_err *err);

/* In the steppers below, st is what store_prepare gave (NULL: -1, store_prepare's error
 * kept) and bind_rc what the sticky binders left (SQLITE_OK, or the first bind's failure,
 * reported as the database error); `what` says what was being done ("storing a quota") in
 * a database error. */

/* Steps a statement that returns no rows; st stays open (a loop resets and binds it again).
 * 0, or -1 with err set (a row is 500 "unexpected row"). */
int store_step_done(ksv_store *s, sqlite3_stmt *st, int bind_rc, const char *what,
                    ksv_err *err);
/* store_step_done, then finalizes st in every case. */
int store_run(ksv_store *s, sqlite3_stmt *st, int bind_rc, const char *what, ksv_err *err);
/* Runs a write whose parameters are ids or times: ?1 = a and, when sql has a second, ?2 = b
 * (store_prepare, the binds and store_run in one call). */
int store_exec_ids(ksv_store *s, const char *sql, int64_t a, int64_t b, const char *what,
                   ksv_err *err);
/* Steps once, for a statement that returns at most the one row read: 1 with st on the row,
 * 0 when there is none, -1 with err set. st stays open: the caller finalizes it. */
int store_step_row(ksv_store *s, sqlite3_stmt *st, int bind_rc, const char *what,
                   ksv_err *err);

/* Runs sql (a SELECT from models with ?1 the model's id) and steps once: 0 with *st on the
 * row (the caller reads it, then finalizes); -1 with err set and *st finalized: 404
 * "model #ID not found" when there is no row, else the database error (what says what was
 * being read). */
int store_select_model(ksv_store *s, const char *sql, int64_t model_id, const char *what,
                       sqlite3_stmt **st, ksv_err *err);

/* Every row of a statement, the one stepping loop of src/store. st is prepared and bound;
 * bind_rc is what the sticky binders left (SQLITE_OK, or the first bind's failure). It
 * calls fn on each row (fn returns 0 to go on, -1 with err set to stop), then finalizes st
 * in every case. Returns 0 once the rows are done; -1 with err set: the bind's or a step's
 * database error (store_db_error with `what`, e.g. "reading history"), or fn's own. */
typedef int (*store_row_fn)(ksv_store *s, sqlite3_stmt *st, void *ctx, ksv_err *err);
int store_each_row(ksv_store *s, sqlite3_stmt *st, int bind_rc, store_row_fn fn, void *ctx,
                   const char *what, ksv_err *err);

/* Reads the row st is on into elem (zeroed by the caller; ctx is the caller's, read only).
 * Returns 0, or -1 with err set; what it allocated in elem before failing may stay there,
 * for the owner of elem to clear. */
typedef int (*store_read_fn)(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                             ksv_err *err);

/* store_step_row that reads the row into elem with read (ctx passed on), then finalizes st
 * in every case: 1 read, 0 no row (elem untouched), -1 with err set (what read left in
 * elem stays for the caller to clear). */
int store_read_one(ksv_store *s, sqlite3_stmt *st, int bind_rc, store_read_fn read,
                   void *elem, const void *ctx, const char *what, ksv_err *err);
/* A store_read_fn for a row whose first column is a row id (INTEGER >= 1): into elem, an
 * int64_t; ctx is the column's name for messages ("nodes.id"). */
int store_read_id(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx, ksv_err *err);

/* store_each_row that collects a listing: for each row it appends one zeroed element of
 * elem_size bytes to the array *items of *n elements (a list that already holds elements
 * grows) and read fills it, in the statement's order. On -1 every element appended stays in
 * the list, the failed one included (zeroed or partly read), so the caller's list free
 * releases them all; a list that cannot grow is 500 "out of memory WHAT". */
int store_read_rows(ksv_store *s, sqlite3_stmt *st, int bind_rc, void **items, size_t *n,
                    size_t elem_size, store_read_fn read, const void *ctx, const char *what,
                    ksv_err *err);

/* Sticky binders: do nothing once *rc is not SQLITE_OK, so a run of binds is checked once.
 * A NULL string binds SQL NULL. */
void store_bind_text(int *rc, sqlite3_stmt *st, int idx, const char *v);
void store_bind_int64(int *rc, sqlite3_stmt *st, int idx, int64_t v);
void store_bind_double(int *rc, sqlite3_stmt *st, int idx, double v);
void store_bind_blob(int *rc, sqlite3_stmt *st, int idx, const void *p, int n);

/* A statement's parameters in one call: STORE_BIND(&rc, st, STORE_INT(id), STORE_TEXT(name))
 * binds ?1, ?2, ... in order, sticky as the binders above (nothing once rc is not
 * SQLITE_OK). STORE_TEXT(NULL) binds SQL NULL. Each argument is evaluated once. */
typedef struct store_value {
    enum { STORE_V_NULL, STORE_V_INT, STORE_V_REAL, STORE_V_TEXT, STORE_V_BLOB, STORE_V_END } type;
    int64_t i;
    double d;
    const void *p;
    int n;
} store_value;
#define STORE_NULL ((store_value){.type = STORE_V_NULL})
#define STORE_INT(v) ((store_value){.type = STORE_V_INT, .i = (v)})
#define STORE_REAL(v) ((store_value){.type = STORE_V_REAL, .d = (v)})
#define STORE_TEXT(v) ((store_value){.type = STORE_V_TEXT, .p = (v)})
#define STORE_BLOB(v, len) ((store_value){.type = STORE_V_BLOB, .p = (v), .n = (len)})
/* An optional id or time: NULL when v is 0. */
store_value store_opt_int(int64_t v);
/* values ends with a STORE_V_END element (STORE_BIND adds it). */
void store_bind_values(int *rc, sqlite3_stmt *st, const store_value *values);
#define STORE_BIND(rc, st, ...)                                                            \
    store_bind_values((rc), (st),                                                          \
                      (const store_value[]){__VA_ARGS__, {.type = STORE_V_END}})

/* Validated column readers. `what` names the column ("nodes.address") in messages.
 * Text: must be TEXT (or NULL when nullable, giving *out NULL), without NUL bytes; *out is
 * a malloc'd copy. Integer: must be INTEGER in [min, max] (NULL when nullable gives 0). */
int store_col_text(ksv_store *s, sqlite3_stmt *st, int col, bool nullable, const char *what,
                   char **out, ksv_err *err);
int store_col_int64(ksv_store *s, sqlite3_stmt *st, int col, bool nullable, int64_t min,
                    int64_t max, const char *what, int64_t *out, ksv_err *err);
/* A REAL (or INTEGER, which SQLite may store for integral values) that is finite. */
int store_col_double(ksv_store *s, sqlite3_stmt *st, int col, const char *what, double *out,
                     ksv_err *err);

/* Work that must be atomic (a write) or see one snapshot (a multi-statement read) on its own
 * and also join an explicit transaction: outside one it runs BEGIN IMMEDIATE (write) or
 * BEGIN (read) ... COMMIT, inside one a SAVEPOINT ... RELEASE. */
typedef struct store_tx {
    bool outer;
    bool open;
} store_tx;

int store_tx_begin(ksv_store *s, store_tx *tx, bool write, ksv_err *err);
int store_tx_commit(ksv_store *s, store_tx *tx, ksv_err *err);
/* Undoes everything since store_tx_begin; safe to call after a failed commit. */
void store_tx_abort(ksv_store *s, store_tx *tx);

/* node_labels.c: fills the labels of nodes[0..n) (one node: by its id; a listing: in the
 * listing's order, nodes sorted by name), and sets or removes (values[i] NULL) labels of
 * a node inside the caller's transaction. */
int store_node_labels_read(ksv_store *s, ksv_node *nodes, size_t n, ksv_err *err);
int store_node_labels_write(ksv_store *s, int64_t node_id, const char *const *keys,
                            const char *const *values, size_t n, ksv_err *err);

/* strdup that maps NULL to NULL; sets *oom on allocation failure of a non-NULL input. */
char *store_strdup(const char *v, bool *oom);
/* 400 unless v is a DNS-1123 label of at most max characters (common/field_limits.h: the
 * manifest reader and the engine check the same limits). */
int store_check_label(const char *v, const char *what, size_t max, ksv_err *err);
/* Whether text is exactly one RFC 8259 JSON value (UTF-8, surrounding whitespace allowed). */
bool store_json_is_strict(const char *text);
struct json_object;
/* Strict RFC 8259 parse of the whole text (trailing whitespace allowed); NULL on any error.
 * The caller puts the result. */
struct json_object *store_json_parse(const char *text);
/* Returns -1 with `status` unless json parses as a JSON object. */
int store_check_json_object(const char *json, const char *what, int status, ksv_err *err);
/* Grows *items (of elem_size bytes each, *n used, *cap allocated) by one zeroed slot. */
void *store_list_push(void **items, size_t *n, size_t *cap, size_t elem_size);
/* Frees the strings a record owns, each listed once in the record's clear function:
 * STORE_FREE_STRINGS(e->actor, e->action). NULL ones are skipped, as free() does. */
#define STORE_FREE_STRINGS(...)                                                            \
    do {                                                                                   \
        char *owned_[] = {__VA_ARGS__};                                                    \
        for (size_t k_ = 0; k_ < sizeof owned_ / sizeof *owned_; k_++)                     \
            free(owned_[k_]);                                                              \
    } while (0)
/* Frees a list of records (l->items, l->n; l may be NULL): the one body of every
 * ksv_*_list_free. */
#define STORE_LIST_FREE(l, clear)                                                          \
    do {                                                                                   \
        if (l)                                                                             \
            KSV_RECORDS_FREE((l)->items, (l)->n, clear);                                   \
    } while (0)

#endif
