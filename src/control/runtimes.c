/* runtimes.c: ServingRuntimes in the control layer: storing applied ones, choosing one for an
 * InferenceService as KServe does, and the engine's "external" block of a revision.
 *
 * Where runtimes come from, in order of preference: ServingRuntimes of the model's
 * namespace, ClusterServingRuntimes, then the definitions shipped in data/runtimes/
 * ($KSV_DATA_DIR/runtimes, the source tree's data/runtimes, or the installed copy).
 * A model names one with spec.predictor.model.runtime, or gets the first that serves its
 * model format with autoSelect (highest priority first, then by name). */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "control/control_internal.h"

typedef struct runtime_set {
    ksv_serving_runtime *items;
    int *origin;                  /* 0 namespace, 1 cluster, 2 shipped */
    size_t n;
} runtime_set;

static void runtime_set_free(runtime_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        ksv_serving_runtime_free(&set->items[i]);
    free(set->items);
    free(set->origin);
    memset(set, 0, sizeof *set);
}

static int runtime_set_add(runtime_set *set, ksv_serving_runtime *rt, int origin, ksv_err *err)
{
    ksv_serving_runtime *items = realloc(set->items, (set->n + 1) * sizeof *items);
    if (items)
        set->items = items;
    int *o = items ? realloc(set->origin, (set->n + 1) * sizeof *o) : NULL;
    if (!o) {
        ksv_serving_runtime_free(rt);
        return ksv_err_set(err, 500, "out of memory");
    }
    set->origin = o;
    set->items[set->n] = *rt;
    set->origin[set->n] = origin;
    set->n++;
    memset(rt, 0, sizeof *rt);
    return 0;
}

int ctl_runtimes_dir(char *out, size_t cap)
{
    const char *env = getenv("KSV_DATA_DIR");
    const char *candidates[] = {
        env && *env ? env : NULL,
#ifdef KSV_SRCDIR
        KSV_SRCDIR "/data",
#endif
#ifdef KSV_DATADIR
        KSV_DATADIR "/data",
        KSV_DATADIR,
#endif
    };
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (!candidates[i])
            continue;
        struct stat st;
        snprintf(out, cap, "%s/runtimes", candidates[i]);
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        if (i == 0)
            break; /* an explicit KSV_DATA_DIR is not second-guessed */
    }
    out[0] = '\0';
    return -1;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The shipped definitions, in file-name order. A broken file is an error: it ships with ksv. */
static int load_shipped(runtime_set *set, ksv_err *err)
{
    char dir[PATH_MAX];
    if (ctl_runtimes_dir(dir, sizeof dir) != 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0 && (names[n] = strdup(e->d_name)))
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        ksv_manifest_list list;
        if (rc != 0 || ksv_manifest_load_file(path, &list, err) != 0) {
            rc = -1;
            continue;
        }
        for (size_t k = 0; rc == 0 && k < list.n_runtimes; k++)
            rc = runtime_set_add(set, &list.runtimes[k], 2, err);
        ksv_manifest_list_free(&list);
    }
    return rc;
}

/* Stored runtimes visible from namespace ns, then the shipped ones. */
static int load_candidates(ksv_ctl *ctl, const char *ns, runtime_set *set, ksv_err *err)
{
    memset(set, 0, sizeof *set);
    ksv_runtime_rows rows;
    if (ksv_store_runtime_list(ctl->store, &rows, err) != 0)
        return -1;
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < rows.n && rc == 0; i++) {
            const ksv_runtime_row *r = &rows.items[i];
            if (pass == 0 ? (r->cluster || strcmp(r->ns, ns) != 0) : !r->cluster)
                continue;
            json_object *doc = json_tokener_parse(r->spec_json);
            char where[400];
            snprintf(where, sizeof where, "stored runtime %s%s%s", r->ns, *r->ns ? "/" : "",
                     r->name);
            ksv_serving_runtime rt;
            if (!doc || ksv_serving_runtime_from_json(doc, where, &rt, err) != 0)
                rc = doc ? -1 : ksv_err_set(err, 500, "%s: not JSON", where);
            else
                rc = runtime_set_add(set, &rt, pass, err);
            json_object_put(doc);
        }
    }
    ksv_runtime_rows_free(&rows);
    if (rc == 0)
        rc = load_shipped(set, err);
    if (rc != 0)
        runtime_set_free(set);
    return rc;
}

static const char *const origin_names[] = {"ServingRuntime", "ClusterServingRuntime",
                                           "shipped runtime"};

/* KServe's choice: the named runtime, or the best auto-selectable one for the format. */
static const ksv_serving_runtime *choose(const runtime_set *set, const ksv_isvc *spec,
                                         ksv_err *err)
{
    const char *format = spec->model_format;
    if (spec->runtime && *spec->runtime) {
        for (size_t i = 0; i < set->n; i++) {
            const ksv_serving_runtime *rt = &set->items[i];
            if (strcmp(rt->name, spec->runtime) != 0)
                continue;
            if (!ksv_serving_runtime_format(rt, format)) {
                ksv_err_set(err, 400, "%s/%s: runtime %s (%s) does not serve model format %s",
                            spec->namespace_name, spec->name, rt->name,
                            origin_names[set->origin[i]], format);
                return NULL;
            }
            return rt;
        }
        ksv_err_set(err, 404, "%s/%s: runtime %s not found: apply a ServingRuntime of that "
                              "name, or leave runtime out to choose one by model format",
                    spec->namespace_name, spec->name, spec->runtime);
        return NULL;
    }
    const ksv_serving_runtime *best = NULL;
    int best_origin = 0, best_priority = 0;
    for (size_t i = 0; i < set->n; i++) {
        const ksv_serving_runtime *rt = &set->items[i];
        const ksv_runtime_format *f = ksv_serving_runtime_format(rt, format);
        if (!f || !f->auto_select || rt->disabled)
            continue;
        int origin = set->origin[i];
        bool better = !best || origin < best_origin ||
                      (origin == best_origin && f->priority > best_priority) ||
                      (origin == best_origin && f->priority == best_priority &&
                       strcmp(rt->name, best->name) < 0);
        if (better) {
            best = rt;
            best_origin = origin;
            best_priority = f->priority;
        }
    }
    if (!best)
        ksv_err_set(err, 400, "%s/%s: no runtime serves model format %s: apply a ServingRuntime "
                              "with supportedModelFormats [{name: %s, autoSelect: true}], or "
                              "name one with spec.predictor.model.runtime",
                    spec->namespace_name, spec->name, format, format);
    return best;
}

int ctl_runtime_resolve(ksv_ctl *ctl, const ksv_isvc *spec, char **canonical, char *runtime,
                        size_t runtime_cap, ksv_err *err)
{
    runtime_set set;
    if (load_candidates(ctl, spec->namespace_name, &set, err) != 0)
        return -1;
    int rc = -1;
    ksv_sb block, out;
    ksv_sb_init(&block);
    ksv_sb_init(&out);
    json_object *root = NULL, *block_obj = NULL;
    const ksv_serving_runtime *rt = choose(&set, spec, err);
    if (!rt)
        goto done;
    if (rt->disabled) {
        ksv_err_set(err, 400, "%s/%s: runtime %s is disabled (spec.disabled)",
                    spec->namespace_name, spec->name, rt->name);
        goto done;
    }
    /* An InferenceService that asks for a protocol gets a runtime that speaks it. */
    const char *pv = NULL;
    json_object *o = spec->original, *v;
    if (json_object_object_get_ex(o, "spec", &o) && json_object_object_get_ex(o, "predictor", &o) &&
        json_object_object_get_ex(o, "model", &o) &&
        json_object_object_get_ex(o, "protocolVersion", &v))
        pv = json_object_get_string(v);
    unsigned want = !pv ? 0 : strcmp(pv, "v1") == 0 ? 1 : strcmp(pv, "v2") == 0 ? 2 : 0;
    if (want && !(rt->protocols & want)) {
        ksv_err_set(err, 400, "%s/%s: runtime %s does not speak protocol %s",
                    spec->namespace_name, spec->name, rt->name, pv);
        goto done;
    }
    if (ksv_serving_runtime_engine_block(rt, spec->model_format, &block, err) != 0)
        goto done;
    /* The runtime's definition joins the revision's identity: a changed command or env
     * makes a new revision, as a changed container image does in KServe. */
    root = json_tokener_parse(*canonical);
    block_obj = json_tokener_parse(block.data);
    json_object *pred, *model;
    if (!root || !block_obj || !json_object_object_get_ex(root, "predictor", &pred) ||
        !json_object_object_get_ex(pred, "model", &model)) {
        ksv_err_set(err, 500, "out of memory");
        goto done;
    }
    json_object_object_add(model, "runtime", json_object_new_string(rt->name));
    json_object_object_add(root, "servingRuntime", block_obj);
    block_obj = NULL;
    ksv_manifest_write_sorted_json(root, &out);
    if (out.oom) {
        ksv_err_set(err, 500, "out of memory");
        goto done;
    }
    free(*canonical);
    *canonical = ksv_sb_steal(&out, NULL);
    snprintf(runtime, runtime_cap, "%s", rt->name);
    rc = 0;
done:
    json_object_put(root);
    json_object_put(block_obj);
    ksv_sb_free(&block);
    ksv_sb_free(&out);
    runtime_set_free(&set);
    return rc;
}

char *ctl_revision_external(const char *spec_json)
{
    json_object *root = json_tokener_parse(spec_json), *block;
    char *text = NULL;
    if (root && json_object_object_get_ex(root, "servingRuntime", &block) &&
        json_object_is_type(block, json_type_object)) {
        const char *s = json_object_to_json_string_ext(block, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
        text = s ? strdup(s) : NULL;
    }
    json_object_put(root);
    return text;
}

int ctl_runtimes_store(ksv_ctl *ctl, const ksv_manifest_list *list, size_t *changed,
                       ksv_err *err)
{
    *changed = 0;
    for (size_t i = 0; i < list->n_runtimes; i++) {
        const ksv_serving_runtime *rt = &list->runtimes[i];
        ksv_sb doc;
        ksv_sb_init(&doc);
        ksv_manifest_write_sorted_json(rt->original, &doc);
        bool did = false;
        int rc = doc.oom ? ksv_err_set(err, 500, "out of memory")
                         : ksv_store_runtime_put(ctl->store, rt->cluster, rt->namespace_name,
                                                 rt->name, doc.data, &did, err);
        ksv_sb_free(&doc);
        if (rc != 0)
            return -1;
        if (!did)
            continue;
        (*changed)++;
        char ref[300], text[300];
        snprintf(ref, sizeof ref, "%s%s%s", rt->namespace_name, rt->cluster ? "" : "/", rt->name);
        int n = snprintf(text, sizeof text, "%s %s: formats", origin_names[rt->cluster ? 1 : 0],
                         rt->name);
        for (size_t f = 0; f < rt->n_formats && n > 0 && (size_t)n < sizeof text; f++)
            n += snprintf(text + n, sizeof text - (size_t)n, "%s%s", f ? "," : " ",
                          rt->formats[f].name);
        if (ksv_ctl_history(ctl, "apply-runtime", ref, NULL, NULL, text, NULL, "recorded", err) !=
            0)
            return -1;
    }
    return 0;
}

int ksv_ctl_runtime_logs(ksv_ctl *ctl, const char *model, const char *ns, const char *revision,
                         json_object **out, ksv_err *err)
{
    *out = NULL;
    ksv_model_view v;
    if (ksv_ctl_model_view(ctl, model, ns, &v, err) != 0)
        return -1;
    /* Which revisions: the one asked for, else every one with traffic. */
    const char *revs[64];
    size_t n_revs = 0;
    for (size_t i = 0; i < v.revisions.n && n_revs < 64; i++) {
        const ksv_revision_record *r = &v.revisions.items[i];
        if (revision ? strcmp(r->name, revision) == 0 : ksv_model_view_percent(&v, r->id) > 0)
            revs[n_revs++] = r->name;
    }
    if (n_revs == 0) {
        ksv_err_set(err, 404, "%s/%s has no revision %s", v.model.ns, v.model.name,
                    revision ? revision : "with traffic");
        ksv_model_view_free(&v);
        return -1;
    }
    json_object *all = json_object_new_array();
    for (size_t k = 0; k < v.model.n_nodes; k++) {
        ksv_node node;
        ksv_err one;
        ctl_node_conn conn;
        bool connected = false;
        if (ksv_store_node_get(ctl->store, v.model.nodes[k], &node, &one) == 0) {
            connected = ctl_node_connect(ctl, &node, &conn, &one) == 0;
            ksv_node_clear(&node);
        }
        for (size_t r = 0; r < n_revs; r++) {
            json_object *entry = NULL;
            char path[512];
            snprintf(path, sizeof path, "/ksv/v1/models/%s/revisions/%s/logs", v.model.name,
                     revs[r]);
            if (!connected ||
                ksv_engine_client_call_json(conn.client, "GET", path, NULL, &entry, &one) != 0) {
                entry = json_object_new_object();
                json_object_object_add(entry, "revision", json_object_new_string(revs[r]));
                json_object_object_add(entry, "error", json_object_new_string(one.msg));
            }
            json_object_object_add(entry, "node", json_object_new_string(v.model.nodes[k]));
            json_object_array_add(all, entry);
        }
        if (connected)
            ctl_node_disconnect(&conn);
    }
    ksv_model_view_free(&v);
    *out = all;
    return 0;
}
