/* nodes.c: the engine hosts ksv manages: registration, lookup, removal, last contact. */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/strbuf.h"
#include "store/store_internal.h"

static const char *const kind_names[] = {"local", "http", "ssh"};

const char *ksv_node_kind_name(ksv_node_kind kind)
{
    if ((unsigned)kind < sizeof kind_names / sizeof kind_names[0])
        return kind_names[kind];
    return "?";
}

int ksv_node_kind_parse(const char *name, ksv_node_kind *out)
{
    for (size_t i = 0; name && i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (ksv_node_kind)i;
            return 0;
        }
    }
    return -1;
}

#define NODE_COLUMNS                                                                       \
    "id, name, kind, address, token_file, ssh_identity, ssh_known_hosts, engine_port, "    \
    "engine_path, engine_state_dir, created_at, last_seen, last_error, engine_version"

static int read_node(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                     ksv_err *err)
{
    (void)ctx;
    ksv_node *n = elem;
    memset(n, 0, sizeof *n);
    char *kind = NULL;
    int64_t port = 0;
    int r = 0;
    if (store_col_int64(s, st, 0, false, 1, INT64_MAX, "nodes.id", &n->id, err) < 0 ||
        store_col_text(s, st, 1, false, "nodes.name", &n->name, err) < 0 ||
        store_col_text(s, st, 2, false, "nodes.kind", &kind, err) < 0 ||
        store_col_text(s, st, 3, false, "nodes.address", &n->address, err) < 0 ||
        store_col_text(s, st, 4, true, "nodes.token_file", &n->token_file, err) < 0 ||
        store_col_text(s, st, 5, true, "nodes.ssh_identity", &n->ssh_identity, err) < 0 ||
        store_col_text(s, st, 6, true, "nodes.ssh_known_hosts", &n->ssh_known_hosts, err) < 0 ||
        store_col_int64(s, st, 7, true, 1, 65535, "nodes.engine_port", &port, err) < 0 ||
        store_col_text(s, st, 8, true, "nodes.engine_path", &n->engine_path, err) < 0 ||
        store_col_text(s, st, 9, true, "nodes.engine_state_dir", &n->engine_state_dir, err) < 0 ||
        store_col_int64(s, st, 10, false, 0, INT64_MAX, "nodes.created_at", &n->created_at_ms,
                        err) < 0 ||
        store_col_int64(s, st, 11, true, 0, INT64_MAX, "nodes.last_seen", &n->last_seen_ms,
                        err) < 0 ||
        store_col_text(s, st, 12, true, "nodes.last_error", &n->last_error, err) < 0 ||
        store_col_text(s, st, 13, true, "nodes.engine_version", &n->engine_version, err) < 0) {
        r = -1;
    } else if (ksv_node_kind_parse(kind, &n->kind) < 0) {
        r = store_corrupt(s, err, "nodes.kind of node '%s' is '%s'", n->name, kind);
    } else if (!*n->name || !*n->address) {
        r = store_corrupt(s, err, "a node has an empty name or address");
    }
    n->engine_port = (int)port;
    free(kind);
    if (r < 0)
        ksv_node_clear(n);
    return r;
}

static int insert_node(ksv_store *s, const ksv_node *node, int64_t *id, ksv_err *err);

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int ksv_store_node_add(ksv_store *s, const ksv_node *node, int64_t *id, ksv_err *err)
{
    if (store_check_label(node->name, "node name", KSV_NODE_NAME_MAX, err) < 0)
        return -1;
    if ((unsigned)node->kind > KSV_NODE_SSH)
        return ksv_err_set(err, 400, "node %s: unknown kind %d", node->name, (int)node->kind);
    if (!node->address || !*node->address)
        return ksv_err_set(err, 400, "node %s: address must not be empty", node->name);
    if (node->kind == KSV_NODE_HTTP && !has_prefix(node->address, "http://") &&
        !has_prefix(node->address, "https://"))
        return ksv_err_set(err, 400, "node %s: an http node's address starts with http:// or "
                           "https://, not '%s'", node->name, node->address);
    if (node->kind == KSV_NODE_SSH && !has_prefix(node->address, "ssh://"))
        return ksv_err_set(err, 400, "node %s: an ssh node's address starts with ssh://, not "
                           "'%s'", node->name, node->address);
    if (node->engine_port < 0 || node->engine_port > 65535)
        return ksv_err_set(err, 400, "node %s: engine port %d is not in 1..65535", node->name,
                           node->engine_port);
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    int64_t new_id = 0;
    if (insert_node(s, node, &new_id, err) < 0 ||
        store_node_labels_write(s, new_id, (const char *const *)node->label_keys,
                                (const char *const *)node->label_values, node->n_labels,
                                err) < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    if (id)
        *id = new_id;
    return store_tx_commit(s, &tx, err);
}

static int insert_node(ksv_store *s, const ksv_node *node, int64_t *id, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "INSERT INTO nodes (name, kind, address, token_file, ssh_identity, "
                           "ssh_known_hosts, engine_port, engine_path, engine_state_dir, "
                           "created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           &st, err);
    if (!st)
        return -1; /* store_prepare said why; the step below names a duplicate node */
    STORE_BIND(&rc, st, STORE_TEXT(node->name), STORE_TEXT(ksv_node_kind_name(node->kind)),
               STORE_TEXT(node->address), STORE_TEXT(node->token_file),
               STORE_TEXT(node->ssh_identity), STORE_TEXT(node->ssh_known_hosts),
               store_opt_int(node->engine_port), STORE_TEXT(node->engine_path),
               STORE_TEXT(node->engine_state_dir), STORE_INT(ksv_wall_ms()));
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return ksv_err_set(err, 409, "node %s already exists", node->name);
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, "adding a node", err);
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int ksv_store_node_get(ksv_store *s, const char *name, ksv_node *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT " NODE_COLUMNS " FROM nodes WHERE name = ?1", &st, err);
    store_bind_text(&rc, st, 1, name ? name : "");
    int r = store_read_one(s, st, rc, read_node, out, NULL, "reading a node", err);
    if (r == 0)
        r = ksv_err_set(err, 404, "node %s not found", name ? name : "(null)");
    else if (r > 0)
        r = 0;
    if (r == 0 && store_node_labels_read(s, out, 1, err) < 0) {
        ksv_node_clear(out);
        r = -1;
    }
    return r;
}

int ksv_store_node_list(ksv_store *s, ksv_node_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    /* The nodes and their labels from one snapshot. */
    store_tx tx;
    if (store_tx_begin(s, &tx, false, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name", &st, err);
    int r = store_read_rows(s, st, rc, (void **)&out->items, &out->n,
                            sizeof *out->items, read_node, NULL, "listing nodes", err);
    if (r == 0)
        r = store_node_labels_read(s, out->items, out->n, err);
    if (r == 0)
        r = store_tx_commit(s, &tx, err);
    else
        store_tx_abort(s, &tx);
    if (r < 0)
        ksv_node_list_free(out);
    return r;
}

/* The models placed on a node, as ksv_store_node_remove names them. */
typedef struct placed_list {
    ksv_sb *names; /* "ns/a, ns/b" */
    size_t *count;
} placed_list;

static int add_placed(ksv_store *s, sqlite3_stmt *st, void *ctx, ksv_err *err)
{
    (void)s;
    (void)err;
    placed_list *l = ctx;
    const unsigned char *ns = sqlite3_column_text(st, 0);
    const unsigned char *name = sqlite3_column_text(st, 1);
    ksv_sb_printf(l->names, "%s%s/%s", *l->count ? ", " : "", ns ? (const char *)ns : "?",
                  name ? (const char *)name : "?");
    (*l->count)++;
    return 0;
}

static int placed_models(ksv_store *s, int64_t node_id, ksv_sb *sb, size_t *count,
                         ksv_err *err)
{
    sqlite3_stmt *st;
    *count = 0;
    int rc = store_prepare(s,
                           "SELECT m.namespace, m.name FROM placement p JOIN models m "
                           "ON m.id = p.model_id WHERE p.node_id = ?1 ORDER BY m.namespace, m.name",
                           &st, err);
    store_bind_int64(&rc, st, 1, node_id);
    placed_list l = {sb, count};
    return store_each_row(s, st, rc, add_placed, &l, "listing a node's models", err);
}

int ksv_store_node_remove(ksv_store *s, const char *name, ksv_err *err)
{
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    ksv_node node;
    ksv_sb models;
    ksv_sb_init(&models);
    size_t count = 0;
    if (ksv_store_node_get(s, name, &node, err) < 0)
        goto fail;
    int64_t node_id = node.id;
    ksv_node_clear(&node);
    if (placed_models(s, node_id, &models, &count, err) < 0)
        goto fail;
    if (count > 0) {
        ksv_err_set(err, 409, "node %s still serves %zu model%s (%s): delete them or place "
                    "them elsewhere first", name, count, count == 1 ? "" : "s",
                    models.data ? models.data : "");
        goto fail;
    }
    if (store_exec_ids(s, "DELETE FROM nodes WHERE id = ?1", node_id, 0, "removing a node",
                       err) < 0)
        goto fail;
    ksv_sb_free(&models);
    return store_tx_commit(s, &tx, err);
fail:
    ksv_sb_free(&models);
    store_tx_abort(s, &tx);
    return -1;
}

int ksv_store_node_set_status(ksv_store *s, const char *name, int64_t seen_ms,
                              const char *error, const char *engine_version, ksv_err *err)
{
    if (!error && seen_ms <= 0)
        return ksv_err_set(err, 400, "node %s: a successful contact needs its time",
                           name ? name : "(null)");
    sqlite3_stmt *st;
    const char *sql =
        error ? "UPDATE nodes SET last_error = ?2 WHERE name = ?1"
              : "UPDATE nodes SET last_seen = ?2, last_error = NULL, "
                "engine_version = coalesce(?3, engine_version) WHERE name = ?1";
    int rc = store_prepare(s, sql, &st, err);
    store_bind_text(&rc, st, 1, name ? name : "");
    if (error) {
        store_bind_text(&rc, st, 2, error);
    } else {
        store_bind_int64(&rc, st, 2, seen_ms);
        store_bind_text(&rc, st, 3, engine_version);
    }
    if (store_run(s, st, rc, "recording a node's status", err) < 0)
        return -1;
    if (sqlite3_changes(s->db) == 0)
        return ksv_err_set(err, 404, "node %s not found", name ? name : "(null)");
    return 0;
}

void ksv_node_clear(ksv_node *n)
{
    if (!n)
        return;
    STORE_FREE_STRINGS(n->name, n->address, n->token_file, n->ssh_identity, n->ssh_known_hosts,
                       n->engine_path, n->engine_state_dir, n->last_error, n->engine_version);
    for (size_t i = 0; i < n->n_labels; i++) {
        free(n->label_keys[i]);
        free(n->label_values[i]);
    }
    free(n->label_keys);
    free(n->label_values);
    memset(n, 0, sizeof *n);
}

void ksv_node_list_free(ksv_node_list *l)
{
    STORE_LIST_FREE(l, ksv_node_clear);
}
