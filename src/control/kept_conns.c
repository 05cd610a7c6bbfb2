/* kept_conns.c: SSH node connections kept open across calls on one ksv_ctl, and reconnects
 * with exponential backoff.
 *
 * Why keep them: every connect to an ssh:// node costs a TCP connect, an SSH handshake,
 * a host key check, authentication and a few exec channels to find the engine (0.8-1 s
 * against a loopback sshd on the build VM, more over a WAN: docs/BENCHMARKS.md), and makes
 * sshd fork a process and write an auth log line. ksv-top probes every node at
 * every refresh; paying that each time would be slow and would flood the node's logs. A
 * handle opened with keep_connections keeps each SSH node's session, tunnel and admin client
 * (so successive requests reuse one direct-tcpip channel) for as long as the link holds.
 *
 * Why back off: a node behind a dropped link would otherwise be re-dialled at every refresh,
 * each attempt waiting out the connect timeout. After a failed connect the next attempt waits
 * reconnect_min_ms, doubling with each further failure up to reconnect_max_ms, with +-20 %
 * jitter so that consoles watching the same fleet do not all redial in step when a gateway
 * returns. A call made inside the wait fails at once with the last error and the time left,
 * so a down node costs a probe nothing. A link that was up and dropped gets one immediate
 * attempt first: most drops are an sshd restart, which is over by the next refresh.
 *
 * Ownership: a kept connection belongs to the ctl. ctl_node_connect hands out a borrowed
 * copy (conn->borrowed); ctl_node_disconnect leaves borrowed connections alone and
 * ctl_kept_close_all frees them when the handle closes. One thread uses a ctl at a time, so
 * nothing here locks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/random.h"
#include "control/control_internal.h"

struct ctl_kept {
    char node[64];
    char identity[2600];          /* what the connection was made from: a change re-dials */
    ctl_node_conn conn;           /* live when conn.client is set */
    int failures;                 /* consecutive failed connects */
    int64_t retry_at_ms;          /* no attempt before this (monotonic ms) */
    char last_error[512];
};

/* Jitter only, so its quality matters little; the state lives in the ctl, seeded from the
 * clock and the pid so two consoles do not redial in step. */
static double next_unit(uint64_t *state)
{
    if (*state == 0)
        *state = ((uint64_t)ksv_mono_ms() << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;
    return ksv_random_unit(state);
}

long ctl_backoff_delay_ms(long min_ms, long max_ms, int failures, double unit)
{
    double d = (double)min_ms;
    for (int i = 1; i < failures && d < (double)max_ms; i++)
        d *= 2;
    if (d > (double)max_ms)
        d = (double)max_ms;
    d *= 0.8 + 0.4 * unit;        /* +-20 % */
    if (d > (double)max_ms)
        d = (double)max_ms;       /* the documented longest wait holds, jitter or not */
    return d < 1 ? 1 : (long)d;
}

static void describe(const ksv_node *node, char *out, size_t cap)
{
    snprintf(out, cap, "%s|%s|%s|%d|%s|%s", node->address ? node->address : "",
             node->ssh_identity ? node->ssh_identity : "",
             node->ssh_known_hosts ? node->ssh_known_hosts : "", node->engine_port,
             node->engine_path ? node->engine_path : "",
             node->engine_state_dir ? node->engine_state_dir : "");
}

static ctl_kept *find_or_add(ksv_ctl *ctl, const char *name)
{
    for (size_t i = 0; i < ctl->n_kept; i++)
        if (strcmp(ctl->kept[i]->node, name) == 0)
            return ctl->kept[i];
    ctl_kept **p = realloc(ctl->kept, (ctl->n_kept + 1) * sizeof *p);
    if (!p)
        return NULL;
    ctl->kept = p;
    ctl_kept *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    snprintf(k->node, sizeof k->node, "%s", name);
    ctl->kept[ctl->n_kept++] = k;
    return k;
}

static void drop(ctl_kept *k)
{
    k->conn.borrowed = false;
    ctl_node_disconnect(&k->conn);
}

/* Records a failure: no attempt before the backoff delay, and why. The "node NAME: " that
 * connect errors start with is left out (the messages built from it name the node). */
static long note_failure(ksv_ctl *ctl, ctl_kept *k, const char *why)
{
    snprintf(k->last_error, sizeof k->last_error, "%s", ctl_skip_node_prefix(why, k->node));
    k->failures++;
    long delay = ctl_backoff_delay_ms(ctl->reconnect_min_ms, ctl->reconnect_max_ms,
                                      k->failures, next_unit(&ctl->jitter_state));
    k->retry_at_ms = ksv_mono_ms() + delay;
    return delay;
}

ctl_kept *ctl_kept_new(const char *name)
{
    ctl_kept *k = calloc(1, sizeof *k);
    if (k)
        snprintf(k->node, sizeof k->node, "%s", name);
    return k;
}

void ctl_kept_free(ctl_kept *k)
{
    if (!k)
        return;
    drop(k);
    free(k);
}

int ctl_kept_entry_connect(ksv_ctl *ctl, ctl_kept *k, const ksv_node *node,
                           ctl_dial_fn dial, ctl_node_conn *out, ksv_err *err)
{
    char identity[sizeof k->identity];
    describe(node, identity, sizeof identity);
    if (strcmp(identity, k->identity) != 0) {
        /* The node was re-added with other settings: what was kept is not it any more. */
        drop(k);
        k->failures = 0;
        k->retry_at_ms = 0;
        snprintf(k->identity, sizeof k->identity, "%s", identity);
    }
    if (k->conn.client) {
        ksv_err why;
        ksv_err_clear(&why);
        /* Only a tunnel can drop under us unseen; an HTTP client reconnects by itself. */
        if (!k->conn.tunnel || ksv_ssh_tunnel_alive(k->conn.tunnel, &why)) {
            *out = k->conn;
            out->borrowed = true;
            return 0;
        }
        /* The link dropped under a kept connection: re-dial once at once (see above). */
        drop(k);
        k->failures = 0;
        k->retry_at_ms = 0;
        snprintf(k->last_error, sizeof k->last_error, "link lost: %.480s", why.msg);
    }
    int64_t now = ksv_mono_ms();
    if (now < k->retry_at_ms)
        return ksv_err_set(err, 503, "node %s: reconnecting in %.1f s; %s", k->node,
                           (double)(k->retry_at_ms - now) / 1000.0, k->last_error);
    ctl_node_conn fresh;
    if (dial(ctl, node, &fresh, err) != 0) {
        /* Dialling an SSH node is costly and logged on the node: back off. Any other
         * dial is a file read and a local connect: the next call simply tries again. */
        if (node->kind != KSV_NODE_SSH)
            return -1;
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        long delay = note_failure(ctl, k, why);
        return ksv_err_set(err, err->status ? err->status : 503,
                           "node %s: reconnecting in %.1f s; %s", k->node,
                           (double)delay / 1000.0, k->last_error);
    }
    k->conn = fresh;
    k->failures = 0;
    k->retry_at_ms = 0;
    k->last_error[0] = '\0';
    *out = k->conn;
    out->borrowed = true;
    return 0;
}

void ctl_kept_entry_failed(ksv_ctl *ctl, ctl_kept *k, ksv_node_kind kind, const char *why)
{
    drop(k);
    if (kind == KSV_NODE_SSH)
        note_failure(ctl, k, why);
}

int ctl_kept_connect(ksv_ctl *ctl, const ksv_node *node, ctl_node_conn *out, ksv_err *err)
{
    ctl_kept *k = find_or_add(ctl, node->name);
    if (!k)
        return ksv_err_set(err, 500, "out of memory");
    return ctl_kept_entry_connect(ctl, k, node, ctl_node_connect_fresh, out, err);
}

void ctl_kept_failed(ksv_ctl *ctl, const char *name, const char *why)
{
    for (size_t i = 0; i < ctl->n_kept; i++) {
        if (strcmp(ctl->kept[i]->node, name) != 0)
            continue;
        drop(ctl->kept[i]);
        note_failure(ctl, ctl->kept[i], why);
        return;
    }
}

void ctl_kept_forget(ksv_ctl *ctl, const char *name)
{
    for (size_t i = 0; i < ctl->n_kept; i++) {
        if (strcmp(ctl->kept[i]->node, name) != 0)
            continue;
        drop(ctl->kept[i]);
        free(ctl->kept[i]);
        ctl->kept[i] = ctl->kept[--ctl->n_kept];
        return;
    }
}

void ctl_kept_close_all(ksv_ctl *ctl)
{
    for (size_t i = 0; i < ctl->n_kept; i++) {
        drop(ctl->kept[i]);
        free(ctl->kept[i]);
    }
    free(ctl->kept);
    ctl->kept = NULL;
    ctl->n_kept = 0;
}
