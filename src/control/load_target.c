/* load_target.c: the engine connection a load run (`ksv load`) sends its traffic through. */
#include <stdio.h>
#include <stdlib.h>

#include "control/control_internal.h"

struct ksv_load_target {
    ctl_node_conn conn;
    char url[1024];
    long features;
};

int ksv_ctl_load_target_open(ksv_ctl *ctl, const char *model, const char *ns, const char *node,
                             bool want_features, ksv_load_target **out, ksv_err *err)
{
    *out = NULL;
    ksv_model_view v;
    if (ksv_ctl_model_view(ctl, model, ns, &v, err) != 0)
        return -1;
    int rc = -1;
    ksv_load_target *t = NULL;
    if (v.model.n_nodes == 0) {
        ksv_err_set(err, 400, "%s is placed on no node", model);
        goto out;
    }
    ksv_node n;
    if (ksv_store_node_get(ctl->store, node ? node : v.model.nodes[0], &n, err) != 0)
        goto out;
    t = calloc(1, sizeof *t);
    if (!t) {
        ksv_node_clear(&n);
        ksv_err_set(err, 500, "out of memory");
        goto out;
    }
    int crc = ctl_node_connect(ctl, &n, &t->conn, err);
    ksv_node_clear(&n);
    if (crc != 0) {
        free(t);
        t = NULL;
        goto out;
    }
    snprintf(t->url, sizeof t->url, "%s/v2/models/%s/infer",
             ksv_engine_client_base_url(t->conn.client), v.model.name);
    ksv_engine_model_status st;
    ksv_err ignored;
    if (want_features &&
        ksv_engine_client_get_model_status(t->conn.client, v.model.name, &st, &ignored) == 0) {
        for (size_t i = 0; i < st.n_revisions && t->features <= 0; i++)
            t->features = st.revisions[i].num_features;
        ksv_engine_model_status_free(&st);
    }
    *out = t;
    rc = 0;
out:
    ksv_model_view_free(&v);
    return rc;
}

const char *ksv_load_target_url(const ksv_load_target *t)
{
    return t->url;
}

long ksv_load_target_features(const ksv_load_target *t)
{
    return t->features;
}

void ksv_load_target_close(ksv_load_target *t)
{
    if (!t)
        return;
    ctl_node_disconnect(&t->conn);
    free(t);
}
