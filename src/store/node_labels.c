/* node_labels.c: a node's labels (KEY=VALUE, common/labels.h), read with the node and
 * changed as a whole command in one transaction. */
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"
#include "store/store_internal.h"

/* Appends (key, value) to n's labels; keys arrive sorted. */
static int push_label(ksv_node *n, const char *key, const char *value, size_t *cap)
{
    if (n->n_labels == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 4;
        char **k = realloc(n->label_keys, grown_cap * sizeof *k);
        if (k)
            n->label_keys = k;
        char **v = k ? realloc(n->label_values, grown_cap * sizeof *v) : NULL;
        if (!v)
            return -1;
        n->label_values = v;
        *cap = grown_cap;
    }
    n->label_keys[n->n_labels] = strdup(key);
    n->label_values[n->n_labels] = strdup(value);
    if (!n->label_keys[n->n_labels] || !n->label_values[n->n_labels]) {
        free(n->label_keys[n->n_labels]);
        free(n->label_values[n->n_labels]);
        return -1;
    }
    n->n_labels++;
    return 0;
}

/* One row's key and value, checked again: the file may have been edited behind ksv. */
static int read_row(ksv_store *s, sqlite3_stmt *st, int col, char **key, char **value,
                    ksv_err *err)
{
    *key = *value = NULL;
    if (store_col_text(s, st, col, false, "node_labels.key", key, err) < 0 ||
        store_col_text(s, st, col + 1, false, "node_labels.value", value, err) < 0)
        return -1;
    ksv_err why;
    if (ksv_label_key_check(*key, &why) != 0 || ksv_label_value_check(*value, &why) != 0)
        return store_corrupt(s, err, "node_labels: %s", why.msg);
    return 0;
}

/* store_node_labels_read's place in the nodes between rows. */
typedef struct label_cursor {
    ksv_node *nodes;
    size_t n;
    size_t at;  /* the node the last row went to; rows come in the nodes' order */
    size_t cap; /* what nodes[at]'s label arrays hold */
} label_cursor;

static int add_label_row(ksv_store *s, sqlite3_stmt *st, void *ctx, ksv_err *err)
{
    label_cursor *c = ctx;
    int64_t id = sqlite3_column_int64(st, 0);
    size_t k = c->at;
    while (k < c->n && c->nodes[k].id != id)
        k++;
    if (k == c->n) /* not a node of this listing */
        return 0;
    if (k != c->at) {
        c->at = k;
        c->cap = 0;
    }
    char *key, *value;
    if (read_row(s, st, 1, &key, &value, err) < 0) {
        free(key);
        free(value);
        return -1;
    }
    ksv_node *node = &c->nodes[c->at];
    c->cap = node->n_labels > c->cap ? node->n_labels : c->cap;
    int pushed = push_label(node, key, value, &c->cap);
    free(key);
    free(value);
    if (pushed < 0)
        return ksv_err_set(err, 500, "out of memory reading node labels");
    return 0;
}

int store_node_labels_read(ksv_store *s, ksv_node *nodes, size_t n, ksv_err *err)
{
    if (n == 0)
        return 0;
    /* One node: its rows. A listing: every row, in the listing's order (nodes by name). */
    sqlite3_stmt *st;
    const char *sql = n == 1 ? "SELECT node_id, key, value FROM node_labels WHERE node_id = ?1 "
                               "ORDER BY key"
                             : "SELECT l.node_id, l.key, l.value FROM node_labels l JOIN nodes n "
                               "ON n.id = l.node_id ORDER BY n.name, l.key";
    int rc = store_prepare(s, sql, &st, err);
    if (n == 1)
        store_bind_int64(&rc, st, 1, nodes[0].id);
    label_cursor c = {nodes, n, 0, 0};
    return store_each_row(s, st, rc, add_label_row, &c, "reading node labels", err);
}

int store_node_labels_write(ksv_store *s, int64_t node_id, const char *const *keys,
                            const char *const *values, size_t n, ksv_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (ksv_label_key_check(keys[i], err) != 0 ||
            (values[i] && ksv_label_value_check(values[i], err) != 0))
            return -1;
        sqlite3_stmt *st;
        const char *sql = values[i]
                              ? "INSERT INTO node_labels (node_id, key, value) VALUES (?1, ?2, ?3) "
                                "ON CONFLICT (node_id, key) DO UPDATE SET value = excluded.value"
                              : "DELETE FROM node_labels WHERE node_id = ?1 AND key = ?2";
        int rc = store_prepare(s, sql, &st, err);
        store_bind_int64(&rc, st, 1, node_id);
        store_bind_text(&rc, st, 2, keys[i]);
        if (values[i])
            store_bind_text(&rc, st, 3, values[i]);
        if (store_run(s, st, rc, "changing a node label", err) < 0)
            return -1;
    }
    return 0;
}

int ksv_store_node_label(ksv_store *s, const char *name, const char *const *keys,
                         const char *const *values, size_t n, ksv_err *err)
{
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    ksv_node node;
    if (ksv_store_node_get(s, name, &node, err) < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    int64_t id = node.id;
    ksv_node_clear(&node);
    if (store_node_labels_write(s, id, keys, values, n, err) < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    return store_tx_commit(s, &tx, err);
}

const char *ksv_node_label(const ksv_node *n, const char *key)
{
    for (size_t i = 0; i < n->n_labels; i++)
        if (strcmp(n->label_keys[i], key) == 0)
            return n->label_values[i];
    return NULL;
}

bool ksv_node_selected(const ksv_node *n, const ksv_selector *sel)
{
    return ksv_selector_matches(sel, (const char *const *)n->label_keys,
                                (const char *const *)n->label_values, n->n_labels);
}
