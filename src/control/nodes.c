/* nodes.c: registering nodes, connecting to their engines, and their status (reachability,
 * engine version, drift between desired and applied state). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "common/field_limits.h"
#include "common/fileutil.h"
#include "common/sanitize.h"
#include "control/control_internal.h"
#include "remote/local_node.h"
#include "remote/ssh_config.h"
#include "remote/ssh_engine.h"
#include "remote/ssh_session.h"
#include "remote/ssh_sftp.h"
#include "common/model_path.h"

void ctl_local_state_dir(const ksv_node *node, char *out, size_t cap)
{
    if (node->engine_state_dir && *node->engine_state_dir) {
        snprintf(out, cap, "%s", node->engine_state_dir);
        return;
    }
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(out, cap, "%s/ksv/nodes/%s", xdg, node->name);
    else
        snprintf(out, cap, "%s/.local/state/ksv/nodes/%s", home && *home ? home : ".",
                 node->name);
}

static int read_token_file(const char *path, char *token, size_t cap, ksv_err *err)
{
    char *text;
    if (ksv_read_file(path, 4096, &text, NULL, err) != 0)
        return ksv_err_prefix(err, "token file");
    size_t n = strcspn(text, " \t\r\n");
    if (n == 0 || n >= cap) {
        free(text);
        return ksv_err_set(err, 400, "token file %s is empty or too long", path);
    }
    memcpy(token, text, n);
    token[n] = '\0';
    free(text);
    return 0;
}

/* The local engine binary: the node's recorded path, --engine-path, or the usual search. */
static int local_engine_path(ksv_ctl *ctl, const ksv_node *node, char *out, size_t cap,
                             ksv_err *err)
{
    if (node->kind == KSV_NODE_LOCAL && node->engine_path && *node->engine_path)
        snprintf(out, cap, "%s", node->engine_path);
    else if (ctl->engine_path[0])
        snprintf(out, cap, "%s", ctl->engine_path);
    else if (ksv_find_engine(out, cap, ctl->argv0) != 0)
        return ksv_err_set(err, 503, "node %s: ksv-engine not found (set KSV_ENGINE or "
                                     "install it beside ksv or on PATH)", node->name);
    return 0;
}

typedef struct progress_ctx {
    ksv_ctl *ctl;
    const char *node, *file;
} progress_ctx;

static int on_progress(long long done, long long total, double rate, void *arg)
{
    progress_ctx *p = arg;
    p->ctl->upload_progress(p->node, p->file, done, total, rate, p->ctl->upload_progress_user);
    return 0;
}

/* Sends each model file to the node's STATE_DIR/models, named by its sha256 (and
 * skipped when already there), and links it as SHA256.d/model.EXT so the engine knows
 * its format. Records the remote path in each upload. */
static int upload_models(ksv_ctl *ctl, const ksv_node *node, ksv_ssh_session *s,
                         const char *state_dir, ctl_upload *uploads, size_t n_uploads,
                         ksv_err *err)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/models", state_dir);
    for (size_t i = 0; i < n_uploads; i++) {
        ctl_upload *u = &uploads[i];
        char file[4096];
        const char *src = u->fetched[0] ? u->fetched : u->local;
        if (ksv_model_path_resolve(src, u->local, file, sizeof file, err) != 0)
            return ksv_err_prefix(err, "node %s", node->name);
        progress_ctx pc = {ctl, node->name, file};
        ksv_ssh_upload_result res;
        if (ksv_ssh_sftp_upload(s, file, dir, ctl->upload_progress ? on_progress : NULL, &pc,
                                &res, err) != 0)
            return ksv_err_prefix(err, "node %s: uploading %s", node->name, file);
        const char *ext = strrchr(file, '.');
        char link[1300], target_q[1300], link_q[1300], dir_q[1300], cmd[4200];
        snprintf(link, sizeof link, "%s.d/model%s", res.remote_path, ext ? ext : ".json");
        char link_dir[1300];
        snprintf(link_dir, sizeof link_dir, "%s.d", res.remote_path);
        if (ksv_ssh_shell_quote(res.remote_path, target_q, sizeof target_q) != 0 ||
            ksv_ssh_shell_quote(link, link_q, sizeof link_q) != 0 ||
            ksv_ssh_shell_quote(link_dir, dir_q, sizeof dir_q) != 0)
            return ksv_err_set(err, 400, "node %s: path too long", node->name);
        snprintf(cmd, sizeof cmd, "mkdir -p %s && ln -sfn %s %s", dir_q, target_q, link_q);
        ksv_ssh_exec_result r;
        if (ksv_ssh_exec(s, cmd, NULL, ctl->node_timeout_ms * 3, &r, err) != 0)
            return ksv_err_prefix(err, "node %s", node->name);
        int status = r.exit_status;
        ksv_ssh_exec_result_free(&r);
        if (status != 0)
            return ksv_err_set(err, 500, "node %s: cannot link %s", node->name, link);
        snprintf(u->remote, sizeof u->remote, "%s", link);
    }
    return 0;
}

/* One SSH session per connection: host key checked, engine found (or installed) and
 * started on the node's loopback, its token read, and a local port forwarded to it. */
static int connect_ssh(ksv_ctl *ctl, const ksv_node *node, ctl_upload *uploads,
                       size_t n_uploads, ctl_node_conn *out, char *url, size_t url_cap,
                       char *token, size_t token_cap, char *listen, size_t listen_cap,
                       ksv_err *err)
{
    char user[64], host[256], local_engine[PATH_MAX] = "";
    int port = 0;
    if (ksv_ssh_parse_address(node->address, user, sizeof user, host, sizeof host, &port,
                              err) != 0)
        return ksv_err_prefix(err, "node %s", node->name);
    ksv_ssh_target target = {
        .host = host,
        .user = user[0] ? user : NULL,
        .port = port,
        .identity = node->ssh_identity,
        .known_hosts = node->ssh_known_hosts,
        .trust_new = ctl->ssh_trust_new,
        .connect_timeout_ms = ctl->node_timeout_ms,
        .io_timeout_ms = ctl->node_timeout_ms * 3,
    };
    ksv_ssh_session *s;
    if (ksv_ssh_session_open(&target, &s, err) != 0)
        return ksv_err_prefix(err, "node %s", node->name);
    if (ctl->ssh_install && local_engine_path(ctl, node, local_engine, sizeof local_engine,
                                              err) != 0) {
        ksv_ssh_session_close(s);
        return -1;
    }
    progress_ctx pc = {ctl, node->name, local_engine};
    ksv_ssh_engine_options eo = {
        .engine_path = node->engine_path,
        .state_dir = node->engine_state_dir,
        .engine_port = node->engine_port,
        .install = ctl->ssh_install,
        .local_engine = local_engine[0] ? local_engine : NULL,
        .progress = ctl->upload_progress ? on_progress : NULL,
        .progress_arg = &pc,
    };
    ksv_ssh_engine eng;
    if (ksv_ssh_ensure_engine(s, &eo, &eng, err) != 0) {
        ksv_ssh_session_close(s);
        return ksv_err_prefix(err, "node %s", node->name);
    }
    /* Model files go up before the tunnel takes the session (libssh2 is one-thread). */
    if (upload_models(ctl, node, s, eng.state_dir, uploads, n_uploads, err) != 0) {
        ksv_ssh_session_close(s);
        return -1;
    }
    /* The tunnel owns the session from here, whatever happens. */
    if (ksv_ssh_tunnel_start(s, "127.0.0.1", eng.port, &out->tunnel, err) != 0)
        return ksv_err_prefix(err, "node %s", node->name);
    snprintf(url, url_cap, "%s", ksv_ssh_tunnel_base_url(out->tunnel));
    snprintf(token, token_cap, "%s", eng.token);
    snprintf(listen, listen_cap, "127.0.0.1:%d", eng.port); /* on the node, as it binds */
    snprintf(out->engine_path, sizeof out->engine_path, "%s", eng.engine_path);
    out->engine_installed = eng.installed;
    out->unit_note[0] = '\0';
    if (eng.unit_written) {
        const ksv_ssh_unit *u = &eng.unit;
        if (u->enabled)
            snprintf(out->unit_note, sizeof out->unit_note, "; systemd unit %.600s enabled%s%s",
                     u->path, u->user ? (u->linger ? ", lingering" : ", no linger: it starts "
                                                     "at login, not at boot") : "",
                     eng.started ? " and started" : "");
        else
            snprintf(out->unit_note, sizeof out->unit_note, "; systemd unit written to %.600s but "
                     "not enabled (%s): the engine was started without it and will not come "
                     "back after a reboot", u->path,
                     u->note[0] ? u->note : "the node runs no systemd");
    }
    return 0;
}

int ctl_node_connect(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out, ksv_err *err)
{
    /* Whatever happens, *out is something ctl_node_disconnect can take. */
    memset(out, 0, sizeof *out);
    if (ctl->keep_connections && node->kind != KSV_NODE_SSH)
        ctl_kept_forget(ctl, node->name); /* re-added as another kind: drop the old link */
    if (node->kind == KSV_NODE_SSH && ctl->keep_connections && !ctl->ssh_trust_new &&
        !ctl->ssh_install)
        return ctl_kept_connect(ctl, node, out, err);
    return ctl_node_connect_fresh(ctl, node, out, err);
}

int ctl_node_connect_fresh(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out,
                           ksv_err *err)
{
    return ctl_node_connect_uploading(ctl, node, NULL, 0, out, err);
}

int ctl_node_connect_uploading(ksv_ctl *ctl, const ksv_node *node, ctl_upload *uploads,
                               size_t n_uploads, ctl_node_conn *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", node->name);
    /* listen: where the node's engine binds, when ksv knows it (local and SSH nodes); the
     * engine must prove its token there before the token is sent (engine_client.h). */
    char url[512], token[256], listen[160] = "";
    if (node->kind == KSV_NODE_LOCAL) {
        char dir[PATH_MAX], engine[PATH_MAX];
        ctl_local_state_dir(node, dir, sizeof dir);
        if (local_engine_path(ctl, node, engine, sizeof engine, err) != 0)
            return -1;
        ksv_local_engine le;
        if (ksv_local_engine_start(engine, dir, NULL, &le, err) != 0)
            return ksv_err_prefix(err, "node %s", node->name);
        snprintf(url, sizeof url, "%s", le.base_url);
        snprintf(token, sizeof token, "%s", le.token);
        snprintf(listen, sizeof listen, "%s", le.listen);
    } else if (node->kind == KSV_NODE_HTTP) {
        snprintf(url, sizeof url, "%s", node->address);
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
            url[--n] = '\0';
        if (!node->token_file)
            return ksv_err_set(err, 400, "node %s: no --token-file recorded", node->name);
        if (read_token_file(node->token_file, token, sizeof token, err) != 0)
            return ksv_err_prefix(err, "node %s", node->name);
    } else if (connect_ssh(ctl, node, uploads, n_uploads, out, url, sizeof url, token,
                           sizeof token, listen, sizeof listen, err) != 0) {
        return -1;
    }
    int rc = ksv_engine_client_new(url, token, ctl->node_timeout_ms, &out->client, err);
    explicit_bzero(token, sizeof token);
    if (rc != 0) {
        ctl_node_disconnect(out);
        return -1;
    }
    ksv_engine_client_expect_listen(out->client, listen);
    return 0;
}

void ctl_node_disconnect(ctl_node_conn *c)
{
    if (c->borrowed) {
        memset(c, 0, sizeof *c);
        return;
    }
    ksv_engine_client_free(c->client);
    c->client = NULL;
    ksv_ssh_tunnel_close(c->tunnel);
    c->tunnel = NULL;
}

static int node_add_labelled(ksv_ctl *ctl, const char *name, const char *address,
                             const ksv_node_add_options *opts, ksv_node *nodep,
                             ksv_ctl_result *res, ksv_err *err);

int ksv_ctl_node_add(ksv_ctl *ctl, const char *name, const char *address,
                     const ksv_node_add_options *opts, ksv_ctl_result *res, ksv_err *err)
{
    /* The name becomes a directory under the state folder (local nodes) and a label in
     * metrics: a DNS label, checked before anything is created or started. */
    const char *problem = ksv_dns_label_problem(name, KSV_NODE_NAME_MAX);
    if (problem)
        return ksv_err_set(err, 2, "node name '%.80s' %s", name, problem);
    ksv_node node = {0};
    node.name = (char *)name;
    if (strcmp(address, "local") == 0) {
        node.kind = KSV_NODE_LOCAL;
    } else if (strncmp(address, "http://", 7) == 0 || strncmp(address, "https://", 8) == 0) {
        node.kind = KSV_NODE_HTTP;
        if (!opts->token_file)
            return ksv_err_set(err, 2, "node add %s: http:// nodes need --token-file FILE "
                                       "(the engine's STATE_DIR/token)", name);
    } else if (strncmp(address, "ssh://", 6) == 0) {
        node.kind = KSV_NODE_SSH;
    } else {
        return ksv_err_set(err, 2, "node add %s: address must be local, http://HOST:PORT or "
                                   "ssh://[USER@]HOST[:PORT], got %s", name, address);
    }
    node.address = (char *)address;
    node.token_file = (char *)opts->token_file;
    node.engine_state_dir = (char *)opts->engine_state_dir;
    node.engine_path = (char *)opts->engine_path;
    node.engine_port = opts->engine_port;
    node.ssh_identity = (char *)opts->identity;
    node.ssh_known_hosts = (char *)opts->known_hosts;
    ctl_labels labels;
    if (ctl_labels_parse(opts->labels, opts->n_labels, false, &labels, err) != 0) {
        err->status = err->status == 400 ? 2 : err->status;
        return -1;
    }
    node.label_keys = labels.keys;
    node.label_values = labels.values;
    node.n_labels = labels.n;
    int rc = node_add_labelled(ctl, name, address, opts, &node, res, err);
    ctl_labels_free(&labels);
    return rc;
}

static int node_add_labelled(ksv_ctl *ctl, const char *name, const char *address,
                             const ksv_node_add_options *opts, ksv_node *nodep,
                             ksv_ctl_result *res, ksv_err *err)
{
    ksv_node node = *nodep;
    char dir[PATH_MAX];
    if (node.kind == KSV_NODE_LOCAL && !node.engine_state_dir) {
        ctl_local_state_dir(&node, dir, sizeof dir);
        node.engine_state_dir = dir;
    }
    /* A name taken is refused before anything is reached: connecting a local node starts
     * its engine, which a refused add must not leave running. */
    ksv_node existing;
    ksv_err lookup;
    if (ksv_store_node_get(ctl->store, name, &existing, &lookup) == 0) {
        ksv_node_clear(&existing);
        return ksv_err_set(err, 409, "node %s already exists (ksv node rm %s first)", name,
                           name);
    }
    /* Reach it before recording it: a node that never answered is a typo, not a node. */
    ctl_node_conn conn;
    ctl->ssh_trust_new = opts->trust_new;
    ctl->ssh_install = opts->install;
    int crc = ctl_node_connect(ctl, &node, &conn, err);
    ctl->ssh_trust_new = ctl->ssh_install = false;
    if (crc != 0)
        return -1;
    char found_engine[1100];
    snprintf(found_engine, sizeof found_engine, "%s", conn.engine_path);
    bool installed = conn.engine_installed;
    char unit_note[sizeof conn.unit_note];
    snprintf(unit_note, sizeof unit_note, "%s", conn.unit_note);
    if (node.kind == KSV_NODE_SSH && found_engine[0])
        node.engine_path = found_engine; /* later connects start the same binary */
    ksv_engine_node_info info;
    int rc = ksv_engine_client_get_node(conn.client, &info, err);
    ctl_node_disconnect(&conn);
    if (rc != 0)
        return ksv_err_prefix(err, "node add %s", name);
    char version[64];
    snprintf(version, sizeof version, "%s", info.version);
    if (ksv_store_begin(ctl->store, err) != 0)
        return -1;
    ctl_result_add(res, name, true, version[0] ? version : "reachable");
    if (ksv_store_node_add(ctl->store, &node, NULL, err) != 0 ||
        ksv_store_node_set_status(ctl->store, name, ksv_wall_ms(), NULL, version, err) != 0 ||
        ksv_ctl_history(ctl, "node add", NULL, name, NULL, address, res, NULL, err) != 0 ||
        ksv_store_commit(ctl->store, err) != 0) {
        ksv_store_abandon(ctl->store);
        return -1;
    }
    snprintf(res->summary, sizeof res->summary, "node %s added (%s, engine %s%s%.1100s)", name,
             address, version[0] ? version : "?", installed ? ", installed at " : "",
             installed ? found_engine : "");
    size_t used = strlen(res->summary);
    snprintf(res->summary + used, sizeof res->summary - used, "%s", unit_note);
    res->changed = true;
    return 0;
}

int ksv_ctl_node_remove(ksv_ctl *ctl, const char *name, ksv_ctl_result *res, ksv_err *err)
{
    ksv_node node;
    if (ksv_store_node_get(ctl->store, name, &node, err) != 0)
        return -1;
    char address[512];
    snprintf(address, sizeof address, "%s", node.address);
    ksv_node_clear(&node);
    if (ksv_store_begin(ctl->store, err) != 0)
        return -1;
    if (ksv_store_node_remove(ctl->store, name, err) != 0 ||
        ksv_ctl_history(ctl, "node rm", NULL, name, address, NULL, NULL, "ok", err) != 0 ||
        ksv_store_commit(ctl->store, err) != 0) {
        ksv_store_abandon(ctl->store);
        return -1;
    }
    ctl_kept_forget(ctl, name);
    snprintf(res->summary, sizeof res->summary, "node %s removed (its engine keeps serving)",
             name);
    res->changed = true;
    return 0;
}

static void add_drift(ksv_node_status *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_drift(ksv_node_status *st, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ksv_sanitize(line);   /* names and states as the node reported them */
    char **p = realloc(st->drift, (st->n_drift + 1) * sizeof *p);
    if (!p)
        return;
    st->drift = p;
    st->drift[st->n_drift++] = strdup(line);
}

/* Compares the node's applied state with the desired state of the models placed on it. */
static void compute_drift(ksv_ctl *ctl, ksv_node_status *st, json_object *applied)
{
    ksv_model_record_list models;
    ksv_err err;
    if (ksv_store_model_list(ctl->store, NULL, &models, &err) != 0)
        return;
    json_object *arr = NULL;
    json_object_object_get_ex(applied, "models", &arr);
    size_t n_applied = arr ? json_object_array_length(arr) : 0;
    bool *matched = calloc(n_applied + 1, sizeof *matched);
    for (size_t i = 0; i < models.n; i++) {
        ksv_model_record *m = &models.items[i];
        bool placed = false;
        for (size_t j = 0; j < m->n_nodes; j++)
            placed |= strcmp(m->nodes[j], st->node.name) == 0;
        if (!placed)
            continue;
        char ref[300];
        snprintf(ref, sizeof ref, "%s/%s", m->ns, m->name);
        json_object *am = NULL;
        for (size_t k = 0; k < n_applied; k++) {
            json_object *o = json_object_array_get_idx(arr, k), *nm;
            if (json_object_object_get_ex(o, "name", &nm) &&
                strcmp(json_object_get_string(nm), m->name) == 0) {
                am = o;
                if (matched)
                    matched[k] = true;
            }
        }
        if (!am) {
            add_drift(st, "%s: desired, not applied on the engine%s", ref, "");
            continue;
        }
        ksv_model_view v;
        if (ksv_ctl_model_view(ctl, ref, NULL, &v, &err) != 0)
            continue;
        json_object *traffic = NULL;
        json_object_object_get_ex(am, "effective_traffic", &traffic);
        for (size_t r = 0; r < v.revisions.n; r++) {
            int want = ksv_model_view_percent(&v, v.revisions.items[r].id);
            json_object *pct = NULL;
            int have = traffic && json_object_object_get_ex(traffic, v.revisions.items[r].name, &pct)
                           ? json_object_get_int(pct)
                           : 0;
            if (want != have) {
                char a[512], b[64];
                snprintf(a, sizeof a, "%s revision %s", ref, v.revisions.items[r].name);
                snprintf(b, sizeof b, "desired %d%%, applied %d%%", want, have);
                add_drift(st, "%s: %s", a, b);
            }
        }
        ksv_model_view_free(&v);
    }
    for (size_t k = 0; k < n_applied; k++) {
        json_object *o = json_object_array_get_idx(arr, k), *nm, *pinned;
        if (matched && matched[k])
            continue;
        bool is_pinned = json_object_object_get_ex(o, "pinned", &pinned) &&
                         json_object_get_boolean(pinned);
        if (json_object_object_get_ex(o, "name", &nm))
            add_drift(st, "%s: on the engine, not in ksv's desired state%s",
                      json_object_get_string(nm),
                      is_pinned ? " (served from the engine's command line)" : "");
    }
    free(matched);
    ksv_model_record_list_free(&models);
}

typedef struct status_round {
    ksv_ctl *ctl;
    ksv_node_status *st;
    json_object **states;
} status_round;

/* One node's reachability, engine and applied state (no store access: any thread). */
static void status_job(void *arg, size_t i)
{
    status_round *r = arg;
    ksv_node_status *st = &r->st[i];
    ctl_node_conn conn;
    ksv_err one;
    ksv_err_clear(&one);
    ksv_engine_node_info info;
    int rc = r->ctl->keep_connections ? ctl_node_connect(r->ctl, &st->node, &conn, &one)
                                      : ctl_node_connect_fresh(r->ctl, &st->node, &conn, &one);
    if (rc == 0) {
        if (ksv_engine_client_get_node(conn.client, &info, &one) == 0 &&
            ksv_engine_client_get_state(conn.client, &r->states[i], &one) == 0) {
            st->reachable = true;
            snprintf(st->engine_version, sizeof st->engine_version, "%s", info.version);
            st->uptime_s = info.uptime_s;
            st->threads = info.threads;
        }
        ctl_node_disconnect(&conn);
    }
    if (!st->reachable)
        snprintf(st->error, sizeof st->error, "%s", one.msg);
}

int ksv_ctl_node_status(ksv_ctl *ctl, const char *name, ksv_node_status **out, size_t *n,
                        ksv_err *err)
{
    ksv_node_list list = {0};
    if (name) {
        list.items = calloc(1, sizeof *list.items);
        if (!list.items)
            return ksv_err_set(err, 500, "out of memory");
        if (ksv_store_node_get(ctl->store, name, &list.items[0], err) != 0) {
            free(list.items);
            return -1;
        }
        list.n = 1;
    } else if (ksv_store_node_list(ctl->store, &list, err) != 0) {
        return -1;
    }
    ksv_node_status *st = calloc(list.n ? list.n : 1, sizeof *st);
    if (!st) {
        ksv_node_list_free(&list);
        return ksv_err_set(err, 500, "out of memory");
    }
    json_object **states = calloc(list.n ? list.n : 1, sizeof *states);
    if (!states) {
        free(st);
        ksv_node_list_free(&list);
        return ksv_err_set(err, 500, "out of memory");
    }
    for (size_t i = 0; i < list.n; i++)
        st[i].node = list.items[i];
    /* Every node asked at once; the drift is then worked out here, from the store. */
    status_round r = {ctl, st, states};
    ctl_fanout(list.n, ctl->keep_connections ? 1 : ctl->parallel, status_job, &r);
    ksv_err ignored;
    bool txn = ksv_store_begin(ctl->store, &ignored) == 0;
    for (size_t i = 0; i < list.n; i++) {
        json_object *state = states[i];
        if (st[i].reachable)
            compute_drift(ctl, &st[i], state);
        ksv_store_node_set_status(ctl->store, st[i].node.name, st[i].reachable ? ksv_wall_ms() : 0,
                                  st[i].reachable ? NULL : st[i].error,
                                  st[i].reachable ? st[i].engine_version : NULL, &ignored);
        json_object_put(state);
    }
    if (txn && ksv_store_commit(ctl->store, &ignored) != 0)
        ksv_store_abandon(ctl->store);
    free(states);
    free(list.items); /* the nodes themselves moved into st */
    *out = st;
    *n = list.n;
    return 0;
}

void ksv_node_status_free(ksv_node_status *st, size_t n)
{
    for (size_t i = 0; st && i < n; i++) {
        ksv_node_clear(&st[i].node);
        for (size_t j = 0; j < st[i].n_drift; j++)
            free(st[i].drift[j]);
        free(st[i].drift);
    }
    free(st);
}
