/* store.c: opening the database (directories, pragmas, migrations, version checks),
 * closing it, and the explicit transactions the control layer groups writes with. */
#include "store/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

/* 'ksv1', as migration 1 writes it. */
static const int64_t store_application_id = 1802729009;

/* Creates each missing directory above path with mode 0700 (the database holds node
 * addresses and token paths: not for other users). */
static int make_parent_dirs(const char *path, ksv_err *err)
{
    char *copy = strdup(path);
    if (!copy)
        return ksv_err_set(err, 500, "out of memory");
    int r = 0;
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        struct stat st;
        if (stat(copy, &st) < 0) {
            if (errno != ENOENT || (mkdir(copy, 0700) < 0 && errno != EEXIST)) {
                r = ksv_err_set(err, 500, "cannot create directory %s for database %s: %s",
                                copy, path, strerror(errno));
                break;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            r = ksv_err_set(err, 500, "cannot create database %s: %s is not a directory",
                            path, copy);
            break;
        }
        *p = '/';
    }
    free(copy);
    return r;
}

/* Runs a constant statement and, when it returns a row, reads column 0 as an integer
 * (int_out) or a text (text_out, copied into a caller buffer). */
static int pragma(ksv_store *s, const char *sql, int64_t *int_out, char *text_out,
                  size_t text_cap, ksv_err *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s, sql, &st, err) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (int_out)
            *int_out = sqlite3_column_int64(st, 0);
        if (text_out) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(text_out, text_cap, "%s", t ? (const char *)t : "");
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, sql, err);
    return 0;
}

static int exec_script(ksv_store *s, const char *sql, const char *what, ksv_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        ksv_err_set(err, 500, "database %s: %s: %s", s->path, what,
                    msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        if (err && ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED))
            err->status = 503;
        return -1;
    }
    return 0;
}

/* One look at the database; with write, the migration itself. */
static int migrate_pass(ksv_store *s, bool write, bool *needed, ksv_err *err)
{
    store_tx tx;
    if (store_tx_begin(s, &tx, write, err) < 0)
        return -1;
    int64_t app_id = 0, version = 0, tables = 0;
    if (pragma(s, "PRAGMA application_id", &app_id, NULL, 0, err) < 0 ||
        pragma(s, "PRAGMA user_version", &version, NULL, 0, err) < 0 ||
        pragma(s, "SELECT count(*) FROM sqlite_master", &tables, NULL, 0, err) < 0)
        goto fail;
    if (app_id != 0 && app_id != store_application_id) {
        ksv_err_set(err, 500, "database %s is not a ksv database (application_id %lld)",
                    s->path, (long long)app_id);
        goto fail;
    }
    if (version > store_n_migrations) {
        ksv_err_set(err, 500, "database %s has schema version %lld, this ksv knows up to %d: "
                    "upgrade ksv", s->path, (long long)version, store_n_migrations);
        goto fail;
    }
    if (version < 0 || (version == 0 && tables > 0)) {
        ksv_err_set(err, 500, "database %s is not a ksv database (it has tables but no ksv "
                    "schema version)", s->path);
        goto fail;
    }
    if (version == store_n_migrations || !write) {
        *needed = version != store_n_migrations;
        store_tx_abort(s, &tx); /* nothing written: ending the read is all */
        return 0;
    }
    for (int64_t v = version; v < store_n_migrations; v++) {
        char what[64];
        snprintf(what, sizeof what, "migration %lld", (long long)v + 1);
        if (exec_script(s, store_migrations[v], what, err) < 0)
            goto fail;
        int64_t now_version = 0;
        if (pragma(s, "PRAGMA user_version", &now_version, NULL, 0, err) < 0)
            goto fail;
        if (now_version != v + 1) {
            ksv_err_set(err, 500, "database %s: %s left schema version %lld", s->path, what,
                        (long long)now_version);
            goto fail;
        }
    }
    int64_t violations = 0;
    if (pragma(s, "SELECT count(*) FROM pragma_foreign_key_check", &violations, NULL, 0,
               err) < 0)
        goto fail;
    if (violations > 0) {
        ksv_err_set(err, 500, "database %s: %lld foreign key violations after migrating",
                    s->path, (long long)violations);
        goto fail;
    }
    if (store_tx_commit(s, &tx, err) < 0)
        return -1;
    if (version > 0)
        ksv_log(KSV_LOG_INFO, NULL, "database %s: schema migrated from version %lld to %d",
                s->path, (long long)version, store_n_migrations);
    return 0;
fail:
    store_tx_abort(s, &tx);
    return -1;
}

/* Brings the schema to KSV_STORE_SCHEMA_VERSION in one transaction, refusing databases that
 * are not ksv's or that a newer ksv wrote. The first pass only reads, so opening an
 * up-to-date database never waits for another process's write lock; when migrations are
 * due, the second pass takes the lock and checks again (another ksv may have migrated). */
static int migrate(ksv_store *s, ksv_err *err)
{
    for (int pass = 0; pass < 2; pass++) {
        bool needed = false;
        if (migrate_pass(s, pass == 1, &needed, err) < 0)
            return -1;
        if (!needed)
            return 0;
    }
    return 0;
}

int ksv_store_open(const char *path, ksv_store **out, ksv_err *err)
{
    *out = NULL;
    if (!path || !*path)
        return ksv_err_set(err, 400, "database path must not be empty");
    if (strcmp(path, ":memory:") != 0 && make_parent_dirs(path, err) < 0)
        return -1;
    ksv_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return ksv_err_set(err, 500, "out of memory");
    }
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        ksv_err_set(err, 500, "cannot open database %s: %s", path,
                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        ksv_store_close(s);
        return -1;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);

    char mode[32] = "";
    int64_t fk = 0;
    if (pragma(s, "PRAGMA foreign_keys = ON", NULL, NULL, 0, err) < 0 ||
        pragma(s, "PRAGMA foreign_keys", &fk, NULL, 0, err) < 0 ||
        pragma(s, "PRAGMA journal_mode = WAL", NULL, mode, sizeof mode, err) < 0 ||
        pragma(s, "PRAGMA synchronous = FULL", NULL, NULL, 0, err) < 0)
        goto fail;
    if (fk != 1) {
        ksv_err_set(err, 500, "database %s: this SQLite has no foreign key support", path);
        goto fail;
    }
    /* WAL lets ksv-top read while ksv writes; a filesystem without shared memory (some
     * network mounts) keeps the rollback journal, which is still correct, only slower. */
    if (strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0)
        ksv_log(KSV_LOG_WARN, NULL, "database %s: journal mode is %s, not wal", path, mode);
    if (migrate(s, err) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    ksv_store_close(s);
    return -1;
}

void ksv_store_close(ksv_store *s)
{
    if (!s)
        return;
    if (s->db) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        /* Every statement is finalized where it is used, so close cannot be busy. */
        sqlite3_close(s->db);
    }
    free(s->path);
    free(s);
}

const char *ksv_store_path(const ksv_store *s)
{
    return s->path;
}

int ksv_store_schema_version(ksv_store *s, int *version, ksv_err *err)
{
    int64_t v = 0;
    if (pragma(s, "PRAGMA user_version", &v, NULL, 0, err) < 0)
        return -1;
    *version = (int)v;
    return 0;
}

int ksv_store_begin(ksv_store *s, ksv_err *err)
{
    if (s->explicit_tx)
        return ksv_err_set(err, 409, "database %s: a transaction is already open", s->path);
    if (exec_script(s, "BEGIN IMMEDIATE", "beginning a transaction", err) < 0)
        return -1;
    s->explicit_tx = true;
    return 0;
}

int ksv_store_commit(ksv_store *s, ksv_err *err)
{
    if (!s->explicit_tx)
        return ksv_err_set(err, 409, "database %s: no transaction is open", s->path);
    if (sqlite3_get_autocommit(s->db)) {
        s->explicit_tx = false;
        return ksv_err_set(err, 500, "database %s: the transaction was rolled back by an "
                           "earlier error; nothing was committed", s->path);
    }
    if (exec_script(s, "COMMIT", "committing", err) < 0) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->explicit_tx = false;
        return -1;
    }
    s->explicit_tx = false;
    return 0;
}

int ksv_store_rollback(ksv_store *s, ksv_err *err)
{
    if (!s->explicit_tx)
        return ksv_err_set(err, 409, "database %s: no transaction is open", s->path);
    s->explicit_tx = false;
    if (sqlite3_get_autocommit(s->db))
        return 0;
    return exec_script(s, "ROLLBACK", "rolling back", err);
}

bool ksv_store_in_transaction(const ksv_store *s)
{
    return s->explicit_tx;
}

void ksv_store_abandon(ksv_store *s)
{
    ksv_err ignored;
    if (s->explicit_tx)
        ksv_store_rollback(s, &ignored);
}

int ksv_store_data_version(ksv_store *s, int64_t *version, ksv_err *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "PRAGMA data_version", &st, err) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return store_db_error(s, rc, "reading the data version", err);
    return 0;
}
