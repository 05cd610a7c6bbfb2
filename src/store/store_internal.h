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

int store_prepare(ksv_store *s, const char *sql, sqlite3_stmt **st, ksv_err *err);
/* Steps a statement that returns no rows. */
int store_step_done(ksv_store *s, sqlite3_stmt *st, const char *what, ksv_err *err);

/* Runs sql (a SELECT from models with ?1 the model's id) and steps once: 0 with *st on the
 * row (the caller reads it, then finalizes); -1 with err set and *st finalized: 404
 * "model #ID not found" when there is no row, else the database error (what says what was
 * being read). */
int store_select_model(ksv_store *s, const char *sql, int64_t model_id, const char *what,
                       sqlite3_stmt **st, ksv_err *err);

/* Sticky binders: do nothing once *rc is not SQLITE_OK, so a run of binds is checked once.
 * A NULL string binds SQL NULL. */
void store_bind_text(int *rc, sqlite3_stmt *st, int idx, const char *v);
void store_bind_int64(int *rc, sqlite3_stmt *st, int idx, int64_t v);
/* Binds NULL when v is 0 (optional ids and times). */
void store_bind_opt_int64(int *rc, sqlite3_stmt *st, int idx, int64_t v);
void store_bind_double(int *rc, sqlite3_stmt *st, int idx, double v);
void store_bind_blob(int *rc, sqlite3_stmt *st, int idx, const void *p, int n);

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
/* Frees a list of records (l->items, l->n; l may be NULL): the one body of every
 * ksv_*_list_free. */
#define STORE_LIST_FREE(l, clear)                                                          \
    do {                                                                                   \
        if (l)                                                                             \
            KSV_RECORDS_FREE((l)->items, (l)->n, clear);                                   \
    } while (0)

#endif
