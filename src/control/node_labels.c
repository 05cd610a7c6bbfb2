/* node_labels.c: labels on nodes (`ksv node label`, `node add --label`) and the nodes a
 * selector picks (`ksv.io/node-selector`, `-l`), over the store's node records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"
#include "common/strbuf.h"
#include "control/control_internal.h"

void ctl_labels_free(ctl_labels *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->keys[i]);
        free(l->values[i]);
    }
    free(l->keys);
    free(l->values);
    memset(l, 0, sizeof *l);
}

int ctl_labels_parse(const char *const *args, size_t n, bool allow_remove, ctl_labels *out,
                     ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return 0;
    out->keys = calloc(n, sizeof *out->keys);
    out->values = calloc(n, sizeof *out->values);
    if (!out->keys || !out->values) {
        ctl_labels_free(out);
        return ksv_err_set(err, 500, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char key[KSV_LABEL_KEY_MAX + 1], value[KSV_LABEL_VALUE_MAX + 1];
        bool remove = false;
        if (ksv_label_parse_arg(args[i], key, sizeof key, value, sizeof value,
                                allow_remove ? &remove : NULL, err) != 0) {
            ctl_labels_free(out);
            return -1;
        }
        for (size_t j = 0; j < out->n; j++)
            if (strcmp(out->keys[j], key) == 0) {
                ctl_labels_free(out);
                return ksv_err_set(err, 400, "label %s given twice", key);
            }
        out->keys[out->n] = strdup(key);
        out->values[out->n] = remove ? NULL : strdup(value);
        if (!out->keys[out->n] || (!remove && !out->values[out->n])) {
            out->n++;
            ctl_labels_free(out);
            return ksv_err_set(err, 500, "out of memory");
        }
        out->n++;
    }
    return 0;
}

void ctl_labels_text(char *const *keys, char *const *values, size_t n, ksv_sb *out)
{
    for (size_t i = 0; i < n; i++) {
        ksv_sb_printf(out, "%s%s", i ? "," : "", keys[i]);
        if (values[i])
            ksv_sb_printf(out, "=%s", values[i]);
        else
            ksv_sb_putc(out, '-');
    }
}

int ksv_ctl_node_label(ksv_ctl *ctl, const char *name, const char *const *args, size_t n,
                       ksv_ctl_result *res, ksv_err *err)
{
    ctl_labels set;
    if (n == 0)
        return ksv_err_set(err, 2, "node label %s: give KEY=VALUE or KEY- (remove)", name);
    if (ctl_labels_parse(args, n, true, &set, err) != 0) {
        err->status = err->status == 400 ? 2 : err->status;
        return -1;
    }
    ksv_node before;
    if (ksv_store_node_get(ctl->store, name, &before, err) != 0) {
        ctl_labels_free(&set);
        return -1;
    }
    ksv_sb was, now;
    ksv_sb_init(&was);
    ksv_sb_init(&now);
    ctl_labels_text(before.label_keys, before.label_values, before.n_labels, &was);
    ksv_node_clear(&before);
    int rc = ksv_store_begin(ctl->store, err);
    if (rc == 0) {
        rc = ksv_store_node_label(ctl->store, name, (const char *const *)set.keys,
                                  (const char *const *)set.values, set.n, err);
        ksv_node after;
        if (rc == 0 && (rc = ksv_store_node_get(ctl->store, name, &after, err)) == 0) {
            ctl_labels_text(after.label_keys, after.label_values, after.n_labels, &now);
            ksv_node_clear(&after);
        }
        if (rc == 0 && (was.oom || now.oom))
            rc = ksv_err_set(err, 500, "out of memory");
        if (rc == 0)
            rc = ksv_ctl_history(ctl, "node label", NULL, name, was.len ? was.data : "",
                                 now.len ? now.data : "", NULL, "ok", err);
        if (rc == 0)
            rc = ksv_store_commit(ctl->store, err);
        if (rc != 0 && ksv_store_in_transaction(ctl->store)) {
            ksv_err ignored;
            ksv_store_rollback(ctl->store, &ignored);
        }
    }
    if (rc == 0) {
        snprintf(res->summary, sizeof res->summary, "node %s labels: %.900s", name,
                 now.len ? now.data : "(none)");
        res->changed = strcmp(was.len ? was.data : "", now.len ? now.data : "") != 0;
    }
    ksv_sb_free(&was);
    ksv_sb_free(&now);
    ctl_labels_free(&set);
    return rc;
}

int ksv_ctl_nodes_selected(ksv_ctl *ctl, const char *selector, char ***names, size_t *n,
                           ksv_err *err)
{
    *names = NULL;
    *n = 0;
    ksv_selector sel;
    if (ksv_selector_parse(selector, &sel, err) != 0)
        return -1;
    ksv_node_list all;
    if (ksv_store_node_list(ctl->store, &all, err) != 0)
        return -1;
    *names = calloc(all.n ? all.n : 1, sizeof **names);
    int rc = *names ? 0 : ksv_err_set(err, 500, "out of memory");
    for (size_t i = 0; rc == 0 && i < all.n; i++) {
        if (!ksv_node_selected(&all.items[i], &sel))
            continue;
        if (!((*names)[*n] = strdup(all.items[i].name)))
            rc = ksv_err_set(err, 500, "out of memory");
        else
            (*n)++;
    }
    ksv_node_list_free(&all);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            free((*names)[i]);
        free(*names);
        *names = NULL;
        *n = 0;
    }
    return rc;
}
