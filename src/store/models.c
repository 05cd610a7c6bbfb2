/* models.c: models (namespace, name, current spec, annotations, placement): upsert, lookup,
 * listing, deletion and the NAME / NAMESPACE/NAME resolution the CLI uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/strbuf.h"
#include "store/store_internal.h"

#define MODEL_COLUMNS                                                                      \
    "id, namespace, name, spec, annotations, stable_revision_id, created_at, updated_at"

static int read_model(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                      ksv_err *err)
{
    (void)ctx;
    ksv_model_record *m = elem;
    memset(m, 0, sizeof *m);
    int r = 0;
    if (store_col_int64(s, st, 0, false, 1, INT64_MAX, "models.id", &m->id, err) < 0 ||
        store_col_text(s, st, 1, false, "models.namespace", &m->ns, err) < 0 ||
        store_col_text(s, st, 2, false, "models.name", &m->name, err) < 0 ||
        store_col_text(s, st, 3, false, "models.spec", &m->spec_json, err) < 0 ||
        store_col_text(s, st, 4, false, "models.annotations", &m->annotations_json, err) < 0 ||
        store_col_int64(s, st, 5, true, 1, INT64_MAX, "models.stable_revision_id",
                        &m->stable_revision_id, err) < 0 ||
        store_col_int64(s, st, 6, false, 0, INT64_MAX, "models.created_at", &m->created_at_ms,
                        err) < 0 ||
        store_col_int64(s, st, 7, false, 0, INT64_MAX, "models.updated_at", &m->updated_at_ms,
                        err) < 0) {
        r = -1;
    } else if (!*m->ns || !*m->name || strchr(m->ns, '/') || strchr(m->name, '/')) {
        r = store_corrupt(s, err, "model %lld has the name '%s/%s'", (long long)m->id, m->ns,
                          m->name);
    } else if (store_check_json_object(m->spec_json, "", 500, NULL) < 0) {
        r = store_corrupt(s, err, "the spec of model %s/%s is not a JSON object", m->ns,
                          m->name);
    } else if (store_check_json_object(m->annotations_json, "", 500, NULL) < 0) {
        r = store_corrupt(s, err, "the annotations of model %s/%s are not a JSON object",
                          m->ns, m->name);
    }
    if (r < 0)
        ksv_model_record_clear(m);
    return r;
}

/* A node the model (ctx) is placed on, into elem (a char *). */
static int read_placement(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                          ksv_err *err)
{
    const ksv_model_record *m = ctx;
    char **node = elem, *model_name = NULL;
    if (store_col_text(s, st, 0, false, "nodes.name", node, err) < 0 ||
        store_col_text(s, st, 1, false, "placement.model_name", &model_name, err) < 0)
        return -1;
    bool same = strcmp(model_name, m->name) == 0;
    free(model_name);
    if (!same)
        return store_corrupt(s, err, "the placement of model %s/%s on node %s names another "
                             "model", m->ns, m->name, *node);
    return 0;
}

/* Fills m->nodes; on failure what it read stays there for ksv_model_record_clear. */
static int load_placement(ksv_store *s, ksv_model_record *m, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT n.name, p.model_name FROM placement p JOIN nodes n "
                           "ON n.id = p.node_id WHERE p.model_id = ?1 ORDER BY n.name",
                           &st, err);
    store_bind_int64(&rc, st, 1, m->id);
    return store_read_rows(s, st, rc, (void **)&m->nodes, &m->n_nodes, sizeof *m->nodes,
                           read_placement, m, "reading a model's placement", err);
}

/* A model with its placement (on failure, what was read stays in elem). */
static int read_placed_model(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                             ksv_err *err)
{
    return read_model(s, st, elem, ctx, err) < 0 || load_placement(s, elem, err) < 0 ? -1 : 0;
}

/* Runs a SELECT of MODEL_COLUMNS bound to (text1, text2) or id, filling out; 404 when no
 * row. Placement included. */
static int get_model(ksv_store *s, const char *sql, const char *t1, const char *t2, int64_t id,
                     ksv_model_record *out, const char *what, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    store_tx tx;
    if (store_tx_begin(s, &tx, false, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st, err);
    if (t1) {
        store_bind_text(&rc, st, 1, t1);
        store_bind_text(&rc, st, 2, t2);
    } else {
        store_bind_int64(&rc, st, 1, id);
    }
    int found = store_read_one(s, st, rc, read_placed_model, out, NULL, "reading a model", err);
    if (found == 0)
        ksv_err_set(err, 404, "model %s not found", what);
    if (found < 0)
        ksv_model_record_clear(out);
    store_tx_abort(s, &tx); /* read only: ending it is all */
    return found > 0 ? 0 : -1;
}

int ksv_store_model_get(ksv_store *s, const char *ns, const char *name, ksv_model_record *out,
                        ksv_err *err)
{
    char what[2 * STORE_NAME_MAX + 8];
    snprintf(what, sizeof what, "%s/%s", ns ? ns : "", name ? name : "");
    return get_model(s, "SELECT " MODEL_COLUMNS " FROM models WHERE namespace = ?1 AND name = ?2",
                     ns ? ns : "", name ? name : "", 0, out, what, err);
}

int ksv_store_model_get_by_id(ksv_store *s, int64_t id, ksv_model_record *out, ksv_err *err)
{
    char what[32];
    snprintf(what, sizeof what, "#%lld", (long long)id);
    return get_model(s, "SELECT " MODEL_COLUMNS " FROM models WHERE id = ?1", NULL, NULL, id,
                     out, what, err);
}

int ksv_store_model_list(ksv_store *s, const char *ns, ksv_model_record_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    store_tx tx;
    if (store_tx_begin(s, &tx, false, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT " MODEL_COLUMNS " FROM models "
                           "WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name",
                           &st, err);
    store_bind_text(&rc, st, 1, ns);
    int r = store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                            read_placed_model, NULL, "listing models", err);
    store_tx_abort(s, &tx);
    if (r < 0)
        ksv_model_record_list_free(out);
    return r;
}

/* Looks a node up by name for placement: its id, or 404. */
static int node_id_by_name(ksv_store *s, const char *name, int64_t *id, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT id FROM nodes WHERE name = ?1", &st, err);
    store_bind_text(&rc, st, 1, name);
    int found = store_read_one(s, st, rc, store_read_id, id, "nodes.id", "looking a node up",
                               err);
    if (found == 0)
        return ksv_err_set(err, 404, "node %s not found (add it with `ksv node add`)", name);
    return found < 0 ? -1 : 0;
}

/* 409 when node_id already serves a model called name from another namespace. */
static int check_name_free_on_node(ksv_store *s, int64_t model_id, const char *ns,
                                   const char *name, const char *node, int64_t node_id,
                                   ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT m.namespace FROM placement p JOIN models m ON m.id = p.model_id "
                           "WHERE p.node_id = ?1 AND p.model_name = ?2 AND p.model_id <> ?3",
                           &st, err);
    STORE_BIND(&rc, st, STORE_INT(node_id), STORE_TEXT(name), STORE_INT(model_id));
    int taken = store_step_row(s, st, rc, "checking a placement", err);
    if (taken > 0) {
        const unsigned char *other = sqlite3_column_text(st, 0);
        ksv_err_set(err, 409, "node %s already serves a model named %s from namespace %s; "
                    "engines address models by name, so %s/%s cannot share that node",
                    node, name, other ? (const char *)other : "?", ns, name);
    }
    sqlite3_finalize(st);
    return taken == 0 ? 0 : -1;
}

static int place_model(ksv_store *s, int64_t model_id, int64_t node_id, const char *name,
                       ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "INSERT INTO placement (model_id, node_id, model_name) "
                              "VALUES (?1, ?2, ?3)", &st, err);
    STORE_BIND(&rc, st, STORE_INT(model_id), STORE_INT(node_id), STORE_TEXT(name));
    return store_run(s, st, rc, "placing a model", err);
}

static int set_placement(ksv_store *s, int64_t model_id, const ksv_model_record *in, ksv_err *err)
{
    if (store_exec_ids(s, "DELETE FROM placement WHERE model_id = ?1", model_id, 0,
                       "clearing a placement", err) < 0)
        return -1;
    for (size_t i = 0; i < in->n_nodes; i++) {
        int64_t node_id;
        if (node_id_by_name(s, in->nodes[i], &node_id, err) < 0 ||
            check_name_free_on_node(s, model_id, in->ns, in->name, in->nodes[i], node_id,
                                    err) < 0 ||
            place_model(s, model_id, node_id, in->name, err) < 0)
            return -1;
    }
    return 0;
}

static int check_model_input(const ksv_model_record *in, ksv_err *err)
{
    if (store_check_label(in->ns, "namespace", KSV_NAMESPACE_MAX, err) < 0 ||
        store_check_label(in->name, "model name", KSV_MODEL_NAME_MAX, err) < 0)
        return -1;
    if (store_check_json_object(in->spec_json, "the spec", 400, err) < 0)
        return -1;
    if (in->annotations_json &&
        store_check_json_object(in->annotations_json, "the annotations", 400, err) < 0)
        return -1;
    if (in->n_nodes > 0 && !in->nodes)
        return ksv_err_set(err, 400, "model %s/%s: placement has no node names", in->ns,
                           in->name);
    for (size_t i = 0; i < in->n_nodes; i++) {
        if (store_check_label(in->nodes[i], "node name", KSV_NODE_NAME_MAX, err) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(in->nodes[i], in->nodes[j]) == 0)
                return ksv_err_set(err, 400, "model %s/%s: node %s is listed twice", in->ns,
                                   in->name, in->nodes[i]);
    }
    return 0;
}

int ksv_store_model_upsert(ksv_store *s, const ksv_model_record *in, int64_t *id, bool *created,
                           ksv_err *err)
{
    if (check_model_input(in, err) < 0)
        return -1;
    const char *annotations = in->annotations_json ? in->annotations_json : "{}";
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int64_t model_id = 0, now = ksv_wall_ms();
    int rc = store_prepare(s, "SELECT id FROM models WHERE namespace = ?1 AND name = ?2", &st,
                           err);
    store_bind_text(&rc, st, 1, in->ns);
    store_bind_text(&rc, st, 2, in->name);
    int found = store_read_one(s, st, rc, store_read_id, &model_id, "models.id",
                               "looking a model up", err);
    if (found < 0)
        goto fail;
    bool is_new = found == 0;
    rc = store_prepare(s,
                       is_new ? "INSERT INTO models (namespace, name, spec, annotations, "
                                "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
                              : "UPDATE models SET spec = ?3, annotations = ?4, updated_at = ?5 "
                                "WHERE namespace = ?1 AND name = ?2",
                       &st, err);
    STORE_BIND(&rc, st, STORE_TEXT(in->ns), STORE_TEXT(in->name), STORE_TEXT(in->spec_json),
               STORE_TEXT(annotations), STORE_INT(now));
    if (store_run(s, st, rc, "writing a model", err) < 0)
        goto fail;
    if (is_new)
        model_id = sqlite3_last_insert_rowid(s->db);
    if (set_placement(s, model_id, in, err) < 0)
        goto fail;
    if (store_tx_commit(s, &tx, err) < 0)
        return -1;
    if (id)
        *id = model_id;
    if (created)
        *created = is_new;
    return 0;
fail:
    store_tx_abort(s, &tx);
    return -1;
}

int ksv_store_model_delete(ksv_store *s, int64_t id, ksv_err *err)
{
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    /* Drop the model's reference to its stable revision first, so the cascade that deletes
     * the revisions never sees a model still pointing at one. */
    if (store_exec_ids(s, "UPDATE models SET stable_revision_id = NULL WHERE id = ?1", id, 0,
                       "deleting a model", err) < 0 ||
        store_exec_ids(s, "DELETE FROM models WHERE id = ?1", id, 0, "deleting a model",
                       err) < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    if (sqlite3_changes(s->db) == 0) {
        store_tx_abort(s, &tx);
        return ksv_err_set(err, 404, "model #%lld not found", (long long)id);
    }
    return store_tx_commit(s, &tx, err);
}

/* The namespaces holding a model name, as ksv_store_model_resolve reads them. */
typedef struct name_matches {
    ksv_sb namespaces; /* "a, b" for the message */
    size_t count;
    char *only;        /* the first one */
} name_matches;

static int match_namespace(ksv_store *s, sqlite3_stmt *st, void *ctx, ksv_err *err)
{
    name_matches *found = ctx;
    char *ns = NULL;
    if (store_col_text(s, st, 0, false, "models.namespace", &ns, err) < 0)
        return -1;
    ksv_sb_printf(&found->namespaces, "%s%s", found->count ? ", " : "", ns);
    if (found->count++ == 0)
        found->only = ns;
    else
        free(ns);
    return 0;
}

int ksv_store_model_resolve(ksv_store *s, const char *ref, const char *default_ns,
                            ksv_model_record *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (!ref || !*ref)
        return ksv_err_set(err, 400, "a model is named NAME or NAMESPACE/NAME, not ''");
    const char *slash = strchr(ref, '/');
    if (slash) {
        size_t ns_len = (size_t)(slash - ref);
        if (ns_len == 0 || !slash[1] || strchr(slash + 1, '/') || ns_len > STORE_NAME_MAX)
            return ksv_err_set(err, 400, "a model is named NAME or NAMESPACE/NAME, not '%s'",
                               ref);
        char ns[STORE_NAME_MAX + 1];
        memcpy(ns, ref, ns_len);
        ns[ns_len] = '\0';
        return ksv_store_model_get(s, ns, slash + 1, out, err);
    }
    if (default_ns)
        return ksv_store_model_get(s, default_ns, ref, out, err);

    store_tx tx;
    if (store_tx_begin(s, &tx, false, err) < 0)
        return -1;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT namespace FROM models WHERE name = ?1 ORDER BY namespace",
                           &st, err);
    name_matches found;
    memset(&found, 0, sizeof found);
    ksv_sb_init(&found.namespaces);
    store_bind_text(&rc, st, 1, ref);
    int r = store_each_row(s, st, rc, match_namespace, &found, "resolving a model name", err);
    if (r == 0 && found.count == 0)
        r = ksv_err_set(err, 404, "model %s not found", ref);
    else if (r == 0 && found.count > 1)
        r = ksv_err_set(err, 409, "model name %s is in %zu namespaces (%s): write "
                        "NAMESPACE/%s or use -n NAMESPACE", ref, found.count,
                        found.namespaces.data ? found.namespaces.data : "", ref);
    else if (r == 0)
        r = ksv_store_model_get(s, found.only, ref, out, err);
    free(found.only);
    ksv_sb_free(&found.namespaces);
    store_tx_abort(s, &tx);
    return r;
}

void ksv_model_record_clear(ksv_model_record *m)
{
    if (!m)
        return;
    STORE_FREE_STRINGS(m->ns, m->name, m->spec_json, m->annotations_json);
    for (size_t i = 0; i < m->n_nodes; i++)
        free(m->nodes[i]);
    free(m->nodes);
    memset(m, 0, sizeof *m);
}

void ksv_model_record_list_free(ksv_model_record_list *l)
{
    STORE_LIST_FREE(l, ksv_model_record_clear);
}
