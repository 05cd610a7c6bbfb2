/* test_node_links.c: how ksv behaves towards SSH nodes it cannot reach, and the parser of
 * what a node answers, without an sshd (tests/cli_ssh.py and tui_ssh.py use a real one).
 *
 *   - the node-facts reply parser (ssh_engine.h) with good, noisy and broken replies;
 *   - the reconnect backoff (control_internal.h): doubling from the first wait, capped at
 *     the longest wait jitter included, jitter within +-20 %;
 *   - a handle that keeps connections, towards an ssh:// node where nothing listens: a
 *     failed connect leaves a connection that disconnect can take (it was left as stack
 *     garbage once, and freeing it crashed), the second call inside the backoff fails at
 *     once saying when the next try is, and an apply of a model placed on that node and on
 *     nothing else completes with the node's failure recorded (run under ASan in CI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "control/control.h"
#include "control/control_internal.h"
#include "remote/ssh_engine.h"
#include "store/store.h"

#include "ktest.h"

static int parse(const char *reply, ksv_ssh_node_facts *f)
{
    char *copy = strdup(reply);
    int rc = ksv_ssh_parse_node_facts(copy, f);
    free(copy);
    return rc;
}

static void test_facts_parser(void)
{
    ksv_ssh_node_facts f;
    const char *good = "home=/home/ops\narch=x86_64\ndir=/home/ops/.local/state/ksv/engine\n"
                       "engine=/usr/bin/ksv-engine\naddress=127.0.0.1:8080\nlock=held\n"
                       "token=abc=def\n";
    KT_CHECK(parse(good, &f) == 0 && strcmp(f.home, "/home/ops") == 0 &&
                 strcmp(f.arch, "x86_64") == 0 && f.lock_held &&
                 strcmp(f.address, "127.0.0.1:8080") == 0 &&
                 strcmp(f.engine, "/usr/bin/ksv-engine") == 0,
             "a full reply parses");
    KT_CHECK(strcmp(f.token, "abc=def") == 0, "a value keeps everything after the first '=' (%s)",
             f.token);

    const char *noisy = "Welcome to edge-7!\r\nconda: base activated\n"
                        "home=/root\r\narch=aarch64\r\ndir=/srv/ksv\r\nengine=\r\n"
                        "address=127.0.0.1:9000\r\nlock=free\r\ntoken=t0k\r\n";
    KT_CHECK(parse(noisy, &f) == 0 && strcmp(f.arch, "aarch64") == 0 &&
                 strcmp(f.address, "127.0.0.1:9000") == 0 && strcmp(f.token, "t0k") == 0 &&
                 !f.lock_held && f.engine[0] == '\0',
             "lines printed by rc files are skipped and CRLF endings dropped (address '%s', "
             "token '%s')", f.address, f.token);

    const char *no_lock = "home=/root\narch=x86_64\ndir=/srv/ksv\n";
    KT_CHECK(parse(no_lock, &f) != 0, "a reply without the lock line is refused");
    const char *relative = "home=/root\narch=x86_64\ndir=srv/ksv\nlock=free\n";
    KT_CHECK(parse(relative, &f) != 0, "a state dir that is not absolute is refused");
    const char *no_arch = "home=/root\narch=\ndir=/srv/ksv\nlock=free\n";
    KT_CHECK(parse(no_arch, &f) != 0, "an empty uname -m is refused");
    KT_CHECK(parse("", &f) != 0 && parse("\n\n\r\n", &f) != 0 && parse("=\n==\n", &f) != 0,
             "empty and shapeless replies are refused");

    /* Oversized values are cut, never overflow (ASan watches). */
    size_t big = 100000;
    char *huge = malloc(big + 200);
    int n = snprintf(huge, 200, "home=/root\narch=x86_64\ndir=/srv\nlock=free\ntoken=");
    memset(huge + n, 'x', big);
    huge[n + big] = '\0';
    KT_CHECK(ksv_ssh_parse_node_facts(huge, &f) == 0 && strlen(f.token) == sizeof f.token - 1,
             "a 100 kB token is cut to the field (%zu)", strlen(f.token));
    free(huge);

    /* Every truncation of a good reply: parses or is refused, never crashes. */
    size_t len = strlen(good);
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = strndup(good, cut);
        refused += ksv_ssh_parse_node_facts(copy, &f) != 0;
        free(copy);
    }
    KT_CHECK(refused > 0, "truncated replies: %d of %zu refused, none crashed", refused, len);
}

static void test_backoff(void)
{
    long prev_hi = 0;
    for (int failures = 1; failures <= 8; failures++) {
        long lo = ctl_backoff_delay_ms(1000, 30000, failures, 0.0);
        long mid = ctl_backoff_delay_ms(1000, 30000, failures, 0.5);
        long hi = ctl_backoff_delay_ms(1000, 30000, failures, 0.999999);
        double base = 1000.0 * (double)(1L << (failures - 1));
        if (base > 30000)
            base = 30000;
        KT_CHECK(mid == (long)base, "failure %d: the middle of the jitter is the base %.0f ms "
                                    "(got %ld)", failures, base, mid);
        KT_CHECK(lo >= (long)(base * 0.8) - 1 && hi <= 30000 && hi >= prev_hi,
                 "failure %d: %ld..%ld ms, within -20 %% and the 30 s cap, not shorter than "
                 "the last", failures, lo, hi);
        prev_hi = hi;
    }
    KT_CHECK(ctl_backoff_delay_ms(1000, 30000, 1000000, 0.999) == 30000,
             "a very long outage stays at the cap");
    KT_CHECK(ctl_backoff_delay_ms(0, 0, 1, 0.0) >= 1, "never a zero wait");
}

static void test_unreachable_node(const char *dir)
{
    char db[1100];
    snprintf(db, sizeof db, "%s/ksv.db", dir);
    ksv_ctl *ctl;
    ksv_err err;
    ksv_ctl_options o = {.db_path = db, .node_timeout_ms = 1000, .keep_connections = true,
                         .reconnect_min_ms = 2000, .reconnect_max_ms = 8000};
    if (ksv_ctl_open(&o, &ctl, &err) != 0) {
        KT_FAIL("open: %s", err.msg);
        return;
    }
    /* Port 1 on loopback: nothing listens, connects are refused at once. */
    ksv_node node = {.name = (char *)"edge", .kind = KSV_NODE_SSH, .address = (char *)"ssh://tester@127.0.0.1:1"};
    if (ksv_store_node_add(ctl->store, &node, NULL, &err) != 0) {
        KT_FAIL("node add: %s", err.msg);
        ksv_ctl_close(ctl);
        return;
    }
    ctl_node_conn conn;
    memset(&conn, 0xAB, sizeof conn);
    int rc = ctl_node_connect(ctl, &node, &conn, &err);
    KT_CHECK(rc != 0 && conn.client == NULL && conn.tunnel == NULL && !conn.borrowed,
             "a failed kept connect leaves an empty connection: %s", err.msg);
    KT_CHECK(strstr(err.msg, "node edge: reconnecting in 2.") ||
                 strstr(err.msg, "node edge: reconnecting in 1."),
             "it says when the next try is (first wait 2 s +-20 %%): %s", err.msg);
    ctl_node_disconnect(&conn);
    double t0 = ksv_mono_ms();
    memset(&conn, 0xAB, sizeof conn);
    rc = ctl_node_connect(ctl, &node, &conn, &err);
    double took = ksv_mono_ms() - t0;
    KT_CHECK(rc != 0 && took < 100 && conn.client == NULL && strstr(err.msg, "reconnecting in"),
             "inside the backoff the next call fails at once (%.1f ms): %s", took, err.msg);
    ctl_node_disconnect(&conn);

    /* A model on that node only, with http storage (no upload: the kept path is taken). */
    const char *yaml =
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n"
        "  name: churn\n  annotations:\n    ksv.io/nodes: edge\nspec:\n  predictor:\n"
        "    model:\n      modelFormat:\n        name: xgboost\n"
        "      storageUri: https://models.example/churn.json\n";
    ksv_manifest_list list;
    if (ksv_manifest_parse_buffer(yaml, strlen(yaml), "m.yaml", NULL, &list, &err) != 0) {
        KT_FAIL("manifest: %s", err.msg);
    } else {
        ksv_ctl_result res = {0};
        const char *nodes[] = {"edge"};
        ksv_apply_options ao = {.nodes = nodes, .n_nodes = 1, .timeout_s = 2};
        rc = ksv_ctl_apply(ctl, &list, &ao, &res, &err);
        KT_CHECK(rc != 0 && res.n == 1 && !res.nodes[0].ok &&
                     strncmp(res.nodes[0].message, "reconnecting in", 15) == 0,
                 "apply to the unreachable node fails for it, with the reason (%s)",
                 res.n ? res.nodes[0].message : err.msg);
        ksv_ctl_result_free(&res);
        ksv_manifest_list_free(&list);
    }
    ksv_history_list hist;
    if (ksv_store_history_list(ctl->store, "default/churn", 5, &hist, &err) == 0) {
        KT_CHECK(hist.n >= 2 && strcmp(hist.items[0].action, "reconcile") == 0 &&
                     strstr(hist.items[0].result, "failed"),
                 "history records the change and the node's failure (%zu rows)", hist.n);
        ksv_history_list_free(&hist);
    } else {
        KT_FAIL("history: %s", err.msg);
    }
    ksv_ctl_close(ctl);
}

int main(void)
{
    char dir[] = "/tmp/ksv-test-links-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_facts_parser();
    test_backoff();
    test_unreachable_node(dir);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return kt_summary("test_node_links");
}
