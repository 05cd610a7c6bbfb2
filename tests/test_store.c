/* test_store.c: the SQLite store on real database files in a temporary directory:
 * migrations and version refusal, crash consistency (a child killed mid-transaction), every
 * API function, name resolution, traffic validation, history, metrics retention on a
 * simulated clock, and rows tampered with behind the store's back.
 * Oracles: NIST SHA-256 vectors and sha256sum(1), hand-written canonical JSON, sums computed
 * here independently of the store, and raw SQLite queries. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"
#include "store/store.h"

#include "ktest.h"

/* rc must be -1 with err.status == status and msg containing substr. */
#define EXPECT_ERR(rc, e, status_, substr, desc)                                          \
    KT_CHECK((rc) == -1 && (e).status == (status_) && strstr((e).msg, (substr)) != NULL,  \
             "%s -> %d \"%s\"", (desc), (e).status, (e).msg)

#define OK(call, e, desc)                                                                 \
    do {                                                                                  \
        ksv_err_clear(&(e));                                                              \
        int ok_rc_ = (call);                                                              \
        KT_CHECK(ok_rc_ == 0, "%s%s%s", (desc), (e).msg[0] ? ": " : "", (e).msg);         \
    } while (0)

static char tmpdir[] = "/tmp/ksv-store-test-XXXXXX";

static char *db_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* Raw access for checks and tampering: the test's own SQLite connection. */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        KT_FAIL("raw sql on %s: %s: %s", path, sql, msg ? msg : sqlite3_errmsg(db));
    }
    sqlite3_free(msg);
    sqlite3_close(db);
}

/* Returns the integer in the first column of the first row, or -999. */
static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    long long v = -999;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Returns the text of the first column of the first row (caller frees), or NULL. */
static char *raw_text(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static ksv_store *open_ok(const char *path)
{
    ksv_store *s = NULL;
    ksv_err e = {0};
    if (ksv_store_open(path, &s, &e) < 0) {
        KT_FAIL("opening %s: %s", path, e.msg);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- sha256, spec hashes */

static void test_sha256(void)
{
    printf("== sha256\n");
    static const struct {
        const char *in;
        const char *hex;
    } nist[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmno"
         "pqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof nist / sizeof nist[0]; i++) {
        ksv_sha256_hex(nist[i].in, strlen(nist[i].in), hex);
        KT_CHECK(strcmp(hex, nist[i].hex) == 0, "sha256 NIST vector %zu (%zu bytes)", i,
                 strlen(nist[i].in));
    }
    /* one million 'a', fed in uneven pieces */
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    ksv_sha256 h;
    ksv_sha256_init(&h);
    size_t left = 1000000;
    for (size_t piece = 1; left > 0; piece = piece % 900 + 13) {
        size_t n = piece < left ? piece : left;
        ksv_sha256_update(&h, chunk, n);
        left -= n;
    }
    uint8_t d[32];
    ksv_sha256_final(&h, d);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
    KT_CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0,
             "sha256 of a million 'a' fed in uneven pieces");

    /* every length across the padding boundaries, against sha256sum(1) */
    unsigned char buf[200];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 37 + 11);
    int agreed = 0, tried = 0;
    bool have_tool = system("command -v sha256sum >/dev/null 2>&1") == 0;
    for (size_t len = 0; have_tool && len <= sizeof buf; len += (len < 130 ? 1 : 7)) {
        char *file = db_path("sha-input");
        FILE *f = fopen(file, "wb");
        if (!f)
            break;
        fwrite(buf, 1, len, f);
        fclose(f);
        char cmd[600], line[128] = "";
        snprintf(cmd, sizeof cmd, "sha256sum '%s'", file);
        FILE *p = popen(cmd, "r");
        if (!p)
            break;
        if (!fgets(line, sizeof line, p))
            line[0] = '\0';
        pclose(p);
        ksv_sha256_hex(buf, len, hex);
        tried++;
        agreed += strncmp(line, hex, 64) == 0;
        unlink(file);
    }
    if (have_tool)
        KT_CHECK(tried > 100 && agreed == tried, "sha256 agrees with sha256sum on %d/%d lengths "
                 "0..200", agreed, tried);
    else
        printf("skip sha256sum comparison: sha256sum not found\n");
}

static void test_spec_hash(void)
{
    printf("== spec hash\n");
    char a[65], b[65], expect[65];
    ksv_err e = {0};
    OK(ksv_store_spec_hash("{\"b\": [true, null, \"x\"], \"a\": 1}", a, &e), e, "hash a spec");
    OK(ksv_store_spec_hash("{\"a\":1.0,\n \"b\":[ true,null,\"x\" ] }", b, &e), e,
       "hash the same spec reordered and respaced");
    const char *canon = "{\"a\":1,\"b\":[true,null,\"x\"]}";
    ksv_sha256_hex(canon, strlen(canon), expect);
    KT_CHECK(strcmp(a, expect) == 0, "hash is sha256 of the hand-written canonical form");
    KT_CHECK(strcmp(a, b) == 0, "key order, spacing and 1 vs 1.0 do not change the hash");
    OK(ksv_store_spec_hash("{\"a\":2,\"b\":[true,null,\"x\"]}", b, &e), e, "hash a changed spec");
    KT_CHECK(strcmp(a, b) != 0, "a changed value changes the hash");
    OK(ksv_store_spec_hash("{\"b\":[null,true,\"x\"],\"a\":1}", b, &e), e, "hash reordered array");
    KT_CHECK(strcmp(a, b) != 0, "array order matters");
    OK(ksv_store_spec_hash("{\"x\":\"\\u00e9\\n\\\"\",\"y\":0.1,\"z\":{\"k\":-3e2}}", b, &e), e,
       "hash escapes and fractions");
    const char *canon2 = "{\"x\":\"\xc3\xa9\\u000a\\\"\",\"y\":0.1,\"z\":{\"k\":-300}}";
    ksv_sha256_hex(canon2, strlen(canon2), expect);
    KT_CHECK(strcmp(b, expect) == 0, "escapes and numbers canonicalized as written by hand");

    static const char *broken[] = {
        "", "{", "{\"a\":}", "[1,]", "{'a':1}", "{} x", "nul", "\"open", "{\"a\":1}}",
        "{\"a\" 1}", "[01]", "{\"a\":NaN}", "\x01", "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}",
        "{\"a\":+1}", "{\"a\":tru}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xe2\x82\"}", "{1:2}", "{\"a\":1,}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        ksv_err_clear(&e);
        int rc = ksv_store_spec_hash(broken[i], a, &e);
        EXPECT_ERR(rc, e, 400, "", broken[i]);
    }
}

/* ---------------------------------------------------------------- opening, migrations */

static void test_open_and_migrations(void)
{
    printf("== open and migrations\n");
    ksv_err e = {0};
    const char *path = db_path("nested/deeper/ksv.db");
    ksv_store *s = open_ok(path);
    KT_CHECK(s != NULL, "open creates missing parent directories");
    struct stat st;
    KT_CHECK(stat(db_path("nested/deeper"), &st) == 0 && (st.st_mode & 0777) == 0700,
             "created directories are mode 0700");
    int version = 0;
    OK(ksv_store_schema_version(s, &version, &e), e, "read schema version");
    KT_CHECK(version == KSV_STORE_SCHEMA_VERSION, "schema version is %d", version);
    KT_CHECK(strcmp(ksv_store_path(s), path) == 0, "path accessor");
    ksv_node n = {.name = (char *)"n1", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
    OK(ksv_store_node_add(s, &n, NULL, &e), e, "write a row");
    ksv_store_close(s);

    KT_CHECK(raw_int(path, "PRAGMA user_version") == KSV_STORE_SCHEMA_VERSION,
             "user_version recorded in the file");
    char *mode = raw_text(path, "PRAGMA journal_mode");
    KT_CHECK(mode && strcmp(mode, "wal") == 0, "journal mode is wal (%s)", mode ? mode : "?");
    free(mode);
    char *schema1 = raw_text(path, "SELECT group_concat(sql, ';') FROM sqlite_master");

    s = open_ok(path);
    KT_CHECK(s != NULL, "reopen succeeds");
    ksv_node got;
    OK(ksv_store_node_get(s, "n1", &got, &e), e, "data survives reopening");
    ksv_node_clear(&got);
    ksv_store_close(s);
    char *schema2 = raw_text(path, "SELECT group_concat(sql, ';') FROM sqlite_master");
    KT_CHECK(schema1 && schema2 && strcmp(schema1, schema2) == 0,
             "reopening does not touch the schema");
    free(schema1);
    free(schema2);

    /* a database from a newer ksv */
    char newer[64];
    snprintf(newer, sizeof newer, "PRAGMA user_version = %d", KSV_STORE_SCHEMA_VERSION + 1);
    raw_exec(path, newer);
    ksv_err_clear(&e);
    s = NULL;
    int rc = ksv_store_open(path, &s, &e);
    char expect[600];
    snprintf(expect, sizeof expect,
             "database %s has schema version %d, this ksv knows up to %d: upgrade ksv", path,
             KSV_STORE_SCHEMA_VERSION + 1, KSV_STORE_SCHEMA_VERSION);
    KT_CHECK(rc == -1 && s == NULL && strcmp(e.msg, expect) == 0,
             "newer schema refused: \"%s\"", e.msg);
    KT_CHECK(raw_int(path, "PRAGMA user_version") == KSV_STORE_SCHEMA_VERSION + 1,
             "refusal leaves the file alone");

    /* not ksv databases */
    const char *garbage = db_path("garbage.db");
    FILE *f = fopen(garbage, "wb");
    for (int i = 0; f && i < 4096; i++)
        fputc((i * 7) & 0xff, f);
    if (f)
        fclose(f);
    ksv_err_clear(&e);
    rc = ksv_store_open(garbage, &s, &e);
    EXPECT_ERR(rc, e, 500, "not a database", "a file of garbage refused");

    const char *foreign = db_path("foreign.db");
    raw_exec(foreign, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    ksv_err_clear(&e);
    rc = ksv_store_open(foreign, &s, &e);
    EXPECT_ERR(rc, e, 500, "not a ksv database", "another program's database refused");
    KT_CHECK(raw_int(foreign, "SELECT count(*) FROM t") == 1, "and left intact");

    const char *foreign_id = db_path("foreign-id.db");
    raw_exec(foreign_id, "PRAGMA application_id = 42;");
    ksv_err_clear(&e);
    rc = ksv_store_open(foreign_id, &s, &e);
    EXPECT_ERR(rc, e, 500, "application_id 42", "a foreign application_id refused");

    const char *blocker = db_path("plainfile");
    f = fopen(blocker, "w");
    if (f)
        fclose(f);
    ksv_err_clear(&e);
    rc = ksv_store_open(db_path("plainfile/ksv.db"), &s, &e);
    EXPECT_ERR(rc, e, 500, "not a directory", "a file where a directory should be");
    ksv_err_clear(&e);
    rc = ksv_store_open("", &s, &e);
    EXPECT_ERR(rc, e, 400, "empty", "empty path refused");
}

/* ---------------------------------------------------------------- crash consistency */

static void test_crash(void)
{
    printf("== crash consistency\n");
    const char *path = db_path("crash.db");
    ksv_store *s = open_ok(path);
    ksv_store_close(s); /* never carry a handle across fork */

    pid_t pid = fork();
    if (pid == 0) {
        ksv_store *c = NULL;
        ksv_err e;
        if (ksv_store_open(path, &c, &e) < 0 || ksv_store_begin(c, &e) < 0)
            _exit(3);
        ksv_node n = {.name = (char *)"ghost", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
        ksv_model_record m = {.ns = (char *)"default", .name = (char *)"ghost-model", .spec_json = (char *)"{}"};
        ksv_metric_sample ms = {.at_ms = 1000, .span_ms = 1000, .node = (char *)"ghost",
                                .model = (char *)"m", .revision = (char *)"m-00001", .requests_2xx = 1};
        if (ksv_store_node_add(c, &n, NULL, &e) < 0 ||
            ksv_store_model_upsert(c, &m, NULL, NULL, &e) < 0)
            _exit(4);
        for (int i = 0; i < 2000; i++) /* enough to spill pages to the WAL */
            if (ksv_store_metrics_insert(c, &ms, 1, &e) < 0)
                _exit(5);
        _exit(0); /* no commit, no close */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child wrote inside a transaction "
             "and exited without committing");
    s = open_ok(path);
    ksv_err e = {0};
    ksv_node n;
    int rc = s ? ksv_store_node_get(s, "ghost", &n, &e) : -1;
    EXPECT_ERR(rc, e, 404, "not found", "the uncommitted node is absent");
    ksv_metric_list ml;
    OK(ksv_store_metrics_query(s, KSV_METRICS_RAW, NULL, NULL, NULL, 0, INT64_MAX, &ml, &e), e,
       "query metrics after the crash");
    KT_CHECK(ml.n == 0, "the uncommitted samples are absent (%zu)", ml.n);
    ksv_metric_list_free(&ml);
    ksv_store_close(s);
    char *ok = raw_text(path, "PRAGMA integrity_check");
    KT_CHECK(ok && strcmp(ok, "ok") == 0, "integrity_check after the crash: %s", ok ? ok : "?");
    free(ok);

    /* commit one transaction, then die by SIGKILL in the middle of the next */
    pid = fork();
    if (pid == 0) {
        ksv_store *c = NULL;
        ksv_err ce;
        ksv_node kept = {.name = (char *)"kept", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
        ksv_node lost = {.name = (char *)"lost", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
        if (ksv_store_open(path, &c, &ce) < 0 || ksv_store_begin(c, &ce) < 0 ||
            ksv_store_node_add(c, &kept, NULL, &ce) < 0 || ksv_store_commit(c, &ce) < 0 ||
            ksv_store_begin(c, &ce) < 0 || ksv_store_node_add(c, &lost, NULL, &ce) < 0)
            _exit(3);
        raise(SIGKILL);
        _exit(6);
    }
    waitpid(pid, &status, 0);
    KT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child killed mid-transaction");
    s = open_ok(path);
    ksv_err_clear(&e);
    OK(ksv_store_node_get(s, "kept", &n, &e), e, "the committed node survived");
    ksv_node_clear(&n);
    ksv_err_clear(&e);
    rc = ksv_store_node_get(s, "lost", &n, &e);
    EXPECT_ERR(rc, e, 404, "not found", "the killed transaction's node is absent");
    ksv_store_close(s);
}

/* ---------------------------------------------------------------- nodes */

static void test_nodes(ksv_store *s)
{
    printf("== nodes\n");
    ksv_err e = {0};
    int64_t id = 0;
    ksv_node local = {.name = (char *)"box1", .kind = KSV_NODE_LOCAL, .address = (char *)"local",
                      .token_file = (char *)"/etc/ksv/token"};
    ksv_node http = {.name = (char *)"box2", .kind = KSV_NODE_HTTP, .address = (char *)"http://10.0.0.2:8080"};
    ksv_node ssh = {.name = (char *)"gpu-a", .kind = KSV_NODE_SSH, .address = (char *)"ssh://ops@gpu-a:2222",
                    .ssh_identity = (char *)"/home/ops/.ssh/id_ed25519",
                    .ssh_known_hosts = (char *)"/home/ops/.ssh/known_hosts", .engine_port = 9090,
                    .engine_path = (char *)"/opt/ksv/bin/ksv-engine",
                    .engine_state_dir = (char *)"/var/lib/ksv-engine"};
    OK(ksv_store_node_add(s, &ssh, &id, &e), e, "add an ssh node");
    KT_CHECK(id > 0, "node id returned");
    OK(ksv_store_node_add(s, &local, NULL, &e), e, "add a local node");
    OK(ksv_store_node_add(s, &http, NULL, &e), e, "add an http node");

    int rc = ksv_store_node_add(s, &local, NULL, &e);
    EXPECT_ERR(rc, e, 409, "already exists", "duplicate node name");

    struct {
        ksv_node n;
        int status;
        const char *msg;
    } bad[] = {
        {{.name = (char *)"", .kind = KSV_NODE_LOCAL, .address = (char *)"local"}, 400, "empty"},
        {{.name = NULL, .kind = KSV_NODE_LOCAL, .address = (char *)"local"}, 400, "empty"},
        {{.name = (char *)"x", .kind = KSV_NODE_LOCAL, .address = (char *)""}, 400, "address"},
        {{.name = (char *)"x", .kind = KSV_NODE_LOCAL, .address = NULL}, 400, "address"},
        {{.name = (char *)"x", .kind = KSV_NODE_HTTP, .address = (char *)"ssh://a"}, 400, "http://"},
        {{.name = (char *)"x", .kind = KSV_NODE_SSH, .address = (char *)"http://a"}, 400, "ssh://"},
        {{.name = (char *)"x", .kind = (ksv_node_kind)7, .address = (char *)"local"}, 400, "kind"},
        {{.name = (char *)"x", .kind = KSV_NODE_SSH, .address = (char *)"ssh://a", .engine_port = 70000}, 400,
         "port"},
        {{.name = (char *)"x", .kind = KSV_NODE_SSH, .address = (char *)"ssh://a", .engine_port = -1}, 400,
         "port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ksv_err_clear(&e);
        rc = ksv_store_node_add(s, &bad[i].n, NULL, &e);
        EXPECT_ERR(rc, e, bad[i].status, bad[i].msg, "invalid node refused");
    }
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ksv_node lng = {.name = longname, .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
    rc = ksv_store_node_add(s, &lng, NULL, &e);
    EXPECT_ERR(rc, e, 400, "at most 63", "overlong node name refused");

    ksv_node got;
    OK(ksv_store_node_get(s, "gpu-a", &got, &e), e, "get the ssh node");
    KT_CHECK(got.id == id && got.kind == KSV_NODE_SSH && strcmp(got.address, ssh.address) == 0 &&
                 strcmp(got.ssh_identity, ssh.ssh_identity) == 0 &&
                 strcmp(got.ssh_known_hosts, ssh.ssh_known_hosts) == 0 && got.engine_port == 9090 &&
                 strcmp(got.engine_path, ssh.engine_path) == 0 &&
                 strcmp(got.engine_state_dir, ssh.engine_state_dir) == 0 && !got.token_file &&
                 got.created_at_ms > 0 && got.last_seen_ms == 0 && !got.last_error &&
                 !got.engine_version,
             "every ssh field round-trips, unset ones are NULL/0");
    ksv_node_clear(&got);

    OK(ksv_store_node_set_status(s, "gpu-a", 1700000000123LL, NULL, "0.1.0", &e), e,
       "record a successful contact");
    OK(ksv_store_node_set_status(s, "gpu-a", 0, "connection refused", NULL, &e), e,
       "record a failed contact");
    OK(ksv_store_node_get(s, "gpu-a", &got, &e), e, "get after status");
    KT_CHECK(got.last_seen_ms == 1700000000123LL && got.last_error &&
                 strcmp(got.last_error, "connection refused") == 0 && got.engine_version &&
                 strcmp(got.engine_version, "0.1.0") == 0,
             "failure keeps last_seen and the version, records the error");
    ksv_node_clear(&got);
    OK(ksv_store_node_set_status(s, "gpu-a", 1700000000999LL, NULL, NULL, &e), e,
       "a later success");
    OK(ksv_store_node_get(s, "gpu-a", &got, &e), e, "get after success");
    KT_CHECK(got.last_seen_ms == 1700000000999LL && !got.last_error && got.engine_version &&
                 strcmp(got.engine_version, "0.1.0") == 0,
             "success clears the error and keeps a known version when none is given");
    ksv_node_clear(&got);
    rc = ksv_store_node_set_status(s, "nope", 5, NULL, NULL, &e);
    EXPECT_ERR(rc, e, 404, "not found", "status of an unknown node");
    rc = ksv_store_node_set_status(s, "gpu-a", 0, NULL, NULL, &e);
    EXPECT_ERR(rc, e, 400, "time", "a success without a time");

    ksv_node_list l;
    OK(ksv_store_node_list(s, &l, &e), e, "list nodes");
    KT_CHECK(l.n == 3 && strcmp(l.items[0].name, "box1") == 0 &&
                 strcmp(l.items[1].name, "box2") == 0 && strcmp(l.items[2].name, "gpu-a") == 0 &&
                 l.items[0].token_file && strcmp(l.items[0].token_file, "/etc/ksv/token") == 0 &&
                 l.items[1].kind == KSV_NODE_HTTP,
             "three nodes, sorted by name");
    ksv_node_list_free(&l);

    rc = ksv_store_node_get(s, "nope", &got, &e);
    EXPECT_ERR(rc, e, 404, "node nope not found", "get an unknown node");
    rc = ksv_store_node_remove(s, "nope", &e);
    EXPECT_ERR(rc, e, 404, "not found", "remove an unknown node");
    OK(ksv_store_node_remove(s, "box2", &e), e, "remove a node");
    rc = ksv_store_node_get(s, "box2", &got, &e);
    EXPECT_ERR(rc, e, 404, "not found", "removed node is gone");
    OK(ksv_store_node_add(s, &http, NULL, &e), e, "a removed name can be added again");

    /* Labels: stored with the node, set and removed as one change, gone with the node. */
    char *lk[] = {(char *)"region", (char *)"ksv.io/gpu"}, *lv[] = {(char *)"eu", (char *)"a100"};
    ksv_node lab = {.name = (char *)"edge1", .kind = KSV_NODE_LOCAL, .address = (char *)"local",
                    .label_keys = lk, .label_values = lv, .n_labels = 2};
    OK(ksv_store_node_add(s, &lab, NULL, &e), e, "add a node with two labels");
    OK(ksv_store_node_get(s, "edge1", &got, &e), e, "get it");
    KT_CHECK(got.n_labels == 2 && strcmp(got.label_keys[0], "ksv.io/gpu") == 0 &&
                 strcmp(got.label_values[0], "a100") == 0 &&
                 strcmp(ksv_node_label(&got, "region"), "eu") == 0 && !ksv_node_label(&got, "x"),
             "its labels, sorted by key");
    ksv_node_clear(&got);
    const char *sk[] = {"region", "ksv.io/gpu", "tier"}, *sv[] = {"us", NULL, "edge"};
    OK(ksv_store_node_label(s, "edge1", sk, sv, 3, &e), e, "change one, remove one, add one");
    const char *bk[] = {"tier", "bad key"}, *bv[] = {"core", "x"};
    rc = ksv_store_node_label(s, "edge1", bk, bv, 2, &e);
    EXPECT_ERR(rc, e, 400, "label key", "a bad key refuses the whole change");
    rc = ksv_store_node_label(s, "nope", sk, sv, 1, &e);
    EXPECT_ERR(rc, e, 404, "not found", "labels of an unknown node");
    OK(ksv_store_node_list(s, &l, &e), e, "list with labels");
    const ksv_node *e1 = NULL, *b1 = NULL;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].name, "edge1") == 0)
            e1 = &l.items[i];
        if (strcmp(l.items[i].name, "box1") == 0)
            b1 = &l.items[i];
    }
    ksv_selector sel;
    ksv_selector_parse("region=us,tier=edge,!ksv.io/gpu", &sel, &e);
    KT_CHECK(e1 && e1->n_labels == 2 && strcmp(ksv_node_label(e1, "tier"), "edge") == 0 &&
                 strcmp(ksv_node_label(e1, "region"), "us") == 0 && ksv_node_selected(e1, &sel) &&
                 b1 && b1->n_labels == 0 && !ksv_node_selected(b1, &sel),
             "the listing: edge1 region=us tier=edge (the bad change left nothing), box1 none");
    ksv_node_list_free(&l);
    OK(ksv_store_node_remove(s, "edge1", &e), e, "remove the labelled node");
    ksv_node plain = {.name = (char *)"edge1", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
    OK(ksv_store_node_add(s, &plain, NULL, &e), e, "add the name again, no labels");
    OK(ksv_store_node_get(s, "edge1", &got, &e), e, "get it");
    KT_CHECK(got.n_labels == 0, "its old labels went with the old node");
    ksv_node_clear(&got);
    char *badk[] = {(char *)"-x"}, *badv[] = {(char *)"1"};
    ksv_node badlab = {.name = (char *)"edge2", .kind = KSV_NODE_LOCAL, .address = (char *)"local",
                       .label_keys = badk, .label_values = badv, .n_labels = 1};
    rc = ksv_store_node_add(s, &badlab, NULL, &e);
    EXPECT_ERR(rc, e, 400, "label key", "a node with a bad label is not added");
    rc = ksv_store_node_get(s, "edge2", &got, &e);
    EXPECT_ERR(rc, e, 404, "not found", "... not even without its labels");

    ksv_node_kind k;
    KT_CHECK(ksv_node_kind_parse("ssh", &k) == 0 && k == KSV_NODE_SSH &&
                 ksv_node_kind_parse("ftp", &k) == -1 && ksv_node_kind_parse(NULL, &k) == -1 &&
                 strcmp(ksv_node_kind_name(KSV_NODE_HTTP), "http") == 0 &&
                 strcmp(ksv_node_kind_name((ksv_node_kind)9), "?") == 0,
             "kind names parse and print");
}

/* ---------------------------------------------------------------- models, resolution */

static int64_t upsert(ksv_store *s, const char *ns, const char *name, const char *spec,
                      const char **nodes, size_t n_nodes)
{
    ksv_model_record m = {.ns = (char *)ns, .name = (char *)name, .spec_json = (char *)spec,
                   .nodes = (char **)nodes, .n_nodes = n_nodes};
    ksv_err e = {0};
    int64_t id = 0;
    if (ksv_store_model_upsert(s, &m, &id, NULL, &e) < 0) {
        KT_FAIL("upsert %s/%s: %s", ns, name, e.msg);
    }
    return id;
}

static void test_models(ksv_store *s)
{
    printf("== models\n");
    ksv_err e = {0};
    const char *on_box1[] = {"box1"};
    const char *on_two[] = {"gpu-a", "box1"};
    ksv_model_record in = {.ns = (char *)"prod", .name = (char *)"fraud", .spec_json = (char *)"{\"v\":1}",
                    .annotations_json = (char *)"{\"ksv.io/nodes\":\"gpu-a,box1\"}",
                    .nodes = (char **)on_two, .n_nodes = 2};
    int64_t id = 0, id2 = 0;
    bool created = false;
    OK(ksv_store_model_upsert(s, &in, &id, &created, &e), e, "create a model");
    KT_CHECK(id > 0 && created, "created, id %lld", (long long)id);
    in.spec_json = (char *)"{\"v\":2}";
    in.nodes = (char **)on_box1;
    in.n_nodes = 1;
    OK(ksv_store_model_upsert(s, &in, &id2, &created, &e), e, "update the model");
    KT_CHECK(id2 == id && !created, "update keeps the id and says it was not created");

    ksv_model_record m;
    OK(ksv_store_model_get(s, "prod", "fraud", &m, &e), e, "get the model");
    KT_CHECK(m.id == id && strcmp(m.ns, "prod") == 0 && strcmp(m.name, "fraud") == 0 &&
                 strcmp(m.spec_json, "{\"v\":2}") == 0 &&
                 strcmp(m.annotations_json, "{\"ksv.io/nodes\":\"gpu-a,box1\"}") == 0 &&
                 m.n_nodes == 1 && strcmp(m.nodes[0], "box1") == 0 && m.stable_revision_id == 0 &&
                 m.created_at_ms > 0 && m.updated_at_ms >= m.created_at_ms,
             "fields round-trip; placement replaced");
    ksv_model_record_clear(&m);

    upsert(s, "staging", "fraud", "{}", on_two, 0);
    upsert(s, "prod", "iris", "{}", on_two, 2);
    OK(ksv_store_model_get_by_id(s, id, &m, &e), e, "get by id");
    KT_CHECK(strcmp(m.name, "fraud") == 0 && strcmp(m.annotations_json, "{\"ksv.io/nodes\":"
             "\"gpu-a,box1\"}") == 0, "get by id finds it");
    ksv_model_record_clear(&m);
    OK(ksv_store_model_get(s, "prod", "iris", &m, &e), e, "get a model on two nodes");
    KT_CHECK(m.n_nodes == 2 && strcmp(m.nodes[0], "box1") == 0 &&
                 strcmp(m.nodes[1], "gpu-a") == 0 && strcmp(m.annotations_json, "{}") == 0,
             "placement sorted by node; annotations default to {}");
    ksv_model_record_clear(&m);

    /* the same model name in another namespace cannot share a node */
    const char *on_gpu[] = {"gpu-a"};
    ksv_model_record clash = {.ns = (char *)"staging", .name = (char *)"iris", .spec_json = (char *)"{}",
                       .nodes = (char **)on_gpu, .n_nodes = 1};
    int rc = ksv_store_model_upsert(s, &clash, NULL, NULL, &e);
    EXPECT_ERR(rc, e, 409, "from namespace prod", "same name, other namespace, same node");
    rc = ksv_store_model_get(s, "staging", "iris", &m, &e);
    EXPECT_ERR(rc, e, 404, "not found", "the refused model was not half-created");

    ksv_model_record_list l;
    OK(ksv_store_model_list(s, NULL, &l, &e), e, "list all models");
    KT_CHECK(l.n == 3 && strcmp(l.items[0].ns, "prod") == 0 &&
                 strcmp(l.items[0].name, "fraud") == 0 && strcmp(l.items[1].name, "iris") == 0 &&
                 strcmp(l.items[2].ns, "staging") == 0 && l.items[1].n_nodes == 2,
             "three models, by namespace then name, with placement");
    ksv_model_record_list_free(&l);
    OK(ksv_store_model_list(s, "staging", &l, &e), e, "list one namespace");
    KT_CHECK(l.n == 1 && strcmp(l.items[0].name, "fraud") == 0, "namespace filter");
    ksv_model_record_list_free(&l);
    OK(ksv_store_model_list(s, "none", &l, &e), e, "list an empty namespace");
    KT_CHECK(l.n == 0 && l.items == NULL, "empty list");
    ksv_model_record_list_free(&l);

    const char *dup[] = {"box1", "box1"};
    const char *unknown[] = {"box9"};
    const char *empty_node[] = {""};
    struct {
        ksv_model_record m;
        int status;
        const char *msg;
    } bad[] = {
        {{.ns = (char *)"", .name = (char *)"a", .spec_json = (char *)"{}"}, 400, "namespace"},
        {{.ns = (char *)"a/b", .name = (char *)"a", .spec_json = (char *)"{}"}, 400, "DNS-1123"},
        {{.ns = (char *)"a", .name = (char *)"b/c", .spec_json = (char *)"{}"}, 400, "DNS-1123"},
        {{.ns = (char *)"a", .name = NULL, .spec_json = (char *)"{}"}, 400, "model name"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = (char *)"[1]"}, 400, "spec"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = (char *)"{"}, 400, "spec"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = NULL}, 400, "spec"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = (char *)"{}", .annotations_json = (char *)"3"}, 400,
         "annotations"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = (char *)"{}", .nodes = (char **)dup, .n_nodes = 2}, 400,
         "twice"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = (char *)"{}", .nodes = (char **)unknown, .n_nodes = 1},
         404, "node box9 not found"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = (char *)"{}", .nodes = (char **)empty_node, .n_nodes = 1},
         400, "node name"},
        {{.ns = (char *)"a", .name = (char *)"b", .spec_json = (char *)"{}", .nodes = NULL, .n_nodes = 1}, 400,
         "placement"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ksv_err_clear(&e);
        rc = ksv_store_model_upsert(s, &bad[i].m, NULL, NULL, &e);
        EXPECT_ERR(rc, e, bad[i].status, bad[i].msg, "invalid model refused");
    }
    rc = ksv_store_model_get(s, "a", "b", &m, &e);
    EXPECT_ERR(rc, e, 404, "not found", "no invalid model was stored");

    rc = ksv_store_node_remove(s, "box1", &e);
    EXPECT_ERR(rc, e, 409, "prod/fraud, prod/iris", "a node serving models cannot be removed");

    printf("== name resolution\n");
    OK(ksv_store_model_resolve(s, "iris", NULL, &m, &e), e, "bare unique name");
    KT_CHECK(m.ns && strcmp(m.ns, "prod") == 0 && strcmp(m.name, "iris") == 0,
             "iris resolves to prod");
    ksv_model_record_clear(&m);
    rc = ksv_store_model_resolve(s, "fraud", NULL, &m, &e);
    EXPECT_ERR(rc, e, 409, "(prod, staging)", "a bare name in two namespaces is ambiguous");
    KT_CHECK(strstr(e.msg, "NAMESPACE/fraud") != NULL, "the message says how to disambiguate");
    OK(ksv_store_model_resolve(s, "staging/fraud", NULL, &m, &e), e, "NAMESPACE/NAME");
    KT_CHECK(strcmp(m.ns, "staging") == 0, "staging/fraud resolves");
    ksv_model_record_clear(&m);
    OK(ksv_store_model_resolve(s, "fraud", "prod", &m, &e), e, "bare name with -n");
    KT_CHECK(strcmp(m.ns, "prod") == 0 && m.id == id, "-n prod picks prod/fraud");
    ksv_model_record_clear(&m);
    rc = ksv_store_model_resolve(s, "iris", "staging", &m, &e);
    EXPECT_ERR(rc, e, 404, "staging/iris not found", "-n restricts the search");
    rc = ksv_store_model_resolve(s, "ghost", NULL, &m, &e);
    EXPECT_ERR(rc, e, 404, "ghost not found", "unknown bare name");
    static const char *bad_refs[] = {"", "/", "a/", "/b", "a/b/c"};
    for (size_t i = 0; i < sizeof bad_refs / sizeof bad_refs[0]; i++) {
        ksv_err_clear(&e);
        rc = ksv_store_model_resolve(s, bad_refs[i], NULL, &m, &e);
        EXPECT_ERR(rc, e, 400, "NAMESPACE/NAME", "malformed model reference");
    }
    rc = ksv_store_model_resolve(s, NULL, NULL, &m, &e);
    EXPECT_ERR(rc, e, 400, "NAMESPACE/NAME", "NULL model reference");
}

/* ---------------------------------------------------------------- revisions, traffic */

static void test_revisions_traffic(ksv_store *s)
{
    printf("== revisions\n");
    ksv_err e = {0};
    ksv_model_record m;
    OK(ksv_store_model_get(s, "prod", "fraud", &m, &e), e, "get prod/fraud");
    int64_t mid = m.id;
    ksv_model_record_clear(&m);
    OK(ksv_store_model_get(s, "staging", "fraud", &m, &e), e, "get staging/fraud");
    int64_t other = m.id;
    ksv_model_record_clear(&m);

    ksv_revision_record r1, r2, r3, got;
    const char *spec1 = "{\"storageUri\":\"file:///m/1.json\",\"runtime\":\"ksv-xgboost\"}";
    const char *spec1_reordered = "{ \"runtime\" : \"ksv-xgboost\", \"storageUri\": "
                                  "\"file:///m/1.json\" }";
    const char *spec2 = "{\"storageUri\":\"file:///m/2.json\",\"runtime\":\"ksv-xgboost\"}";
    OK(ksv_store_revision_create(s, mid, spec1, "ksv-xgboost", "file:///m/1.json", &r1, &e), e,
       "create revision 1");
    char h1[65];
    OK(ksv_store_spec_hash(spec1, h1, &e), e, "hash spec 1");
    KT_CHECK(r1.id > 0 && r1.model_id == mid && r1.seq == 1 &&
                 strcmp(r1.name, "fraud-00001") == 0 && strcmp(r1.spec_json, spec1) == 0 &&
                 strcmp(r1.spec_sha256, h1) == 0 && strcmp(r1.runtime, "ksv-xgboost") == 0 &&
                 strcmp(r1.storage_uri, "file:///m/1.json") == 0 && r1.created_at_ms > 0 &&
                 r1.rolled_out_at_ms == 0,
             "revision 1 is fraud-00001 with the spec's hash");
    OK(ksv_store_revision_create(s, mid, spec2, "ksv-xgboost", "file:///m/2.json", &r2, &e), e,
       "create revision 2");
    KT_CHECK(r2.seq == 2 && strcmp(r2.name, "fraud-00002") == 0, "revision 2 is fraud-00002");
    OK(ksv_store_revision_create(s, other, spec1, "ksv-forest", "file:///m/1.json", &r3, &e), e,
       "a revision of staging/fraud");
    KT_CHECK(r3.seq == 1 && strcmp(r3.name, "fraud-00001") == 0,
             "each model numbers its own revisions");

    char h[65];
    OK(ksv_store_spec_hash(spec1_reordered, h, &e), e, "hash the reordered spec");
    int found = ksv_store_revision_find_by_hash(s, mid, h, &got, &e);
    KT_CHECK(found == 1 && got.id == r1.id, "the same spec reordered finds revision 1");
    ksv_revision_record_clear(&got);
    char zeros[65];
    memset(zeros, '0', 64);
    zeros[64] = '\0';
    found = ksv_store_revision_find_by_hash(s, mid, zeros, &got, &e);
    KT_CHECK(found == 0 && got.name == NULL, "an unknown hash finds nothing");
    found = ksv_store_revision_find_by_hash(s, mid, "ABC", &got, &e);
    EXPECT_ERR(found, e, 400, "sha256", "a malformed hash is refused");
    found = ksv_store_revision_latest(s, mid, &got, &e);
    KT_CHECK(found == 1 && got.id == r2.id, "latest is revision 2");
    ksv_revision_record_clear(&got);
    OK(ksv_store_revision_get(s, mid, "fraud-00001", &got, &e), e, "get by name");
    KT_CHECK(got.id == r1.id && strcmp(got.spec_json, spec1) == 0, "by name finds revision 1");
    ksv_revision_record_clear(&got);
    OK(ksv_store_revision_get_by_id(s, r2.id, &got, &e), e, "get by id");
    KT_CHECK(strcmp(got.name, "fraud-00002") == 0, "by id finds revision 2");
    ksv_revision_record_clear(&got);
    int rc = ksv_store_revision_get(s, mid, "fraud-00009", &got, &e);
    EXPECT_ERR(rc, e, 404, "fraud-00009 not found", "unknown revision name");
    rc = ksv_store_revision_get_by_id(s, 987654, &got, &e);
    EXPECT_ERR(rc, e, 404, "not found", "unknown revision id");
    ksv_revision_record_list rl;
    OK(ksv_store_revision_list(s, mid, &rl, &e), e, "list revisions");
    KT_CHECK(rl.n == 2 && rl.items[0].seq == 1 && rl.items[1].seq == 2, "two revisions, by seq");
    ksv_revision_record_list_free(&rl);

    rc = ksv_store_revision_create(s, 987654, spec1, "ksv-xgboost", "x", &got, &e);
    EXPECT_ERR(rc, e, 404, "not found", "revision of an unknown model");
    rc = ksv_store_revision_create(s, mid, "[]", "ksv-xgboost", "x", &got, &e);
    EXPECT_ERR(rc, e, 400, "spec", "revision spec must be an object");
    rc = ksv_store_revision_create(s, mid, spec1, "", "x", &got, &e);
    EXPECT_ERR(rc, e, 400, "runtime", "revision needs a runtime");
    rc = ksv_store_revision_create(s, mid, spec1, "ksv-xgboost", NULL, &got, &e);
    EXPECT_ERR(rc, e, 400, "storage URI", "revision needs a storage URI");

    printf("== traffic\n");
    ksv_traffic t;
    OK(ksv_store_traffic_get(s, mid, &t, &e), e, "traffic of a fresh model");
    KT_CHECK(t.n == 0, "no split yet");
    ksv_traffic_free(&t);
    ksv_traffic_entry split[] = {{.revision_id = r2.id, .percent = 20},
                                 {.revision_id = r1.id, .percent = 80}};
    OK(ksv_store_traffic_set(s, mid, split, 2, &e), e, "set 80/20");
    OK(ksv_store_traffic_get(s, mid, &t, &e), e, "get the split");
    KT_CHECK(t.n == 2 && t.items[0].revision_id == r1.id && t.items[0].percent == 80 &&
                 strcmp(t.items[0].revision_name, "fraud-00001") == 0 &&
                 t.items[1].revision_id == r2.id && t.items[1].percent == 20 &&
                 strcmp(t.items[1].revision_name, "fraud-00002") == 0,
             "split read back, ordered by seq, with names");
    ksv_traffic_free(&t);

    struct {
        ksv_traffic_entry e[3];
        size_t n;
        int64_t model;
        int status;
        const char *msg;
    } bad[] = {
        {{{r1.id, NULL, 50}, {r2.id, NULL, 40}}, 2, mid, 400, "sum to 90"},
        {{{r1.id, NULL, 60}, {r2.id, NULL, 50}}, 2, mid, 400, "sum to 110"},
        {{{r1.id, NULL, -1}, {r2.id, NULL, 101}}, 2, mid, 400, "0..100"},
        {{{r1.id, NULL, 101}}, 1, mid, 400, "0..100"},
        {{{r1.id, NULL, 50}, {r1.id, NULL, 50}}, 2, mid, 400, "twice"},
        {{{0, NULL, 100}}, 1, mid, 400, "no revision"},
        {{{r1.id, NULL, 100}}, 0, mid, 400, "at least one"},
        {{{r3.id, NULL, 100}}, 1, mid, 400, "another model"},
        {{{987654, NULL, 100}}, 1, mid, 404, "not found"},
        {{{r1.id, NULL, 100}}, 1, 987654, 404, "model #987654 not found"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ksv_err_clear(&e);
        rc = ksv_store_traffic_set(s, bad[i].model, bad[i].e, bad[i].n, &e);
        EXPECT_ERR(rc, e, bad[i].status, bad[i].msg, "invalid split refused");
    }
    OK(ksv_store_traffic_get(s, mid, &t, &e), e, "get the split after refusals");
    KT_CHECK(t.n == 2 && t.items[0].percent == 80 && t.items[1].percent == 20,
             "refused splits left the split unchanged");
    ksv_traffic_free(&t);
    ksv_traffic_entry all_one[] = {{.revision_id = r2.id, .percent = 100},
                                   {.revision_id = r1.id, .percent = 0}};
    OK(ksv_store_traffic_set(s, mid, all_one, 2, &e), e, "set 0/100");
    OK(ksv_store_traffic_get(s, mid, &t, &e), e, "get 0/100");
    KT_CHECK(t.n == 2 && t.items[0].percent == 0 && t.items[1].percent == 100,
             "a 0%% entry is kept");
    ksv_traffic_free(&t);
    rc = ksv_store_traffic_get(s, 987654, &t, &e);
    EXPECT_ERR(rc, e, 404, "not found", "traffic of an unknown model");

    printf("== stable revision\n");
    int64_t stable = -1;
    OK(ksv_store_stable_get(s, mid, &stable, &e), e, "stable of a fresh model");
    KT_CHECK(stable == 0, "none rolled out yet");
    found = ksv_store_stable_previous(s, mid, &got, &e);
    KT_CHECK(found == 0, "no previous without a stable revision");
    OK(ksv_store_stable_set(s, mid, r1.id, &e), e, "roll out revision 1");
    OK(ksv_store_stable_set(s, mid, r2.id, &e), e, "roll out revision 2");
    OK(ksv_store_stable_get(s, mid, &stable, &e), e, "stable after two rollouts");
    KT_CHECK(stable == r2.id, "revision 2 is stable");
    found = ksv_store_stable_previous(s, mid, &got, &e);
    KT_CHECK(found == 1 && got.id == r1.id && got.rolled_out_at_ms > 0,
             "previous rolled-out revision is 1");
    ksv_revision_record_clear(&got);
    ksv_revision_record r4;
    OK(ksv_store_revision_create(s, mid, "{\"v\":4}", "ksv-xgboost", "file:///m/4.json", &r4,
                                 &e), e, "create revision 3");
    OK(ksv_store_stable_set(s, mid, r4.id, &e), e, "roll out revision 3");
    found = ksv_store_stable_previous(s, mid, &got, &e);
    KT_CHECK(found == 1 && got.id == r2.id, "previous of 3 is 2");
    ksv_revision_record_clear(&got);
    OK(ksv_store_stable_set(s, mid, r2.id, &e), e, "roll back to 2");
    found = ksv_store_stable_previous(s, mid, &got, &e);
    KT_CHECK(found == 1 && got.id == r1.id, "after rolling back to 2, previous is 1");
    ksv_revision_record_clear(&got);
    OK(ksv_store_stable_set(s, mid, r1.id, &e), e, "roll back to 1");
    found = ksv_store_stable_previous(s, mid, &got, &e);
    KT_CHECK(found == 0, "nothing before 1");
    rc = ksv_store_stable_set(s, mid, r3.id, &e);
    EXPECT_ERR(rc, e, 400, "not a revision of model fraud", "stable must be the model's own");
    rc = ksv_store_stable_set(s, 987654, r1.id, &e);
    EXPECT_ERR(rc, e, 404, "not found", "stable of an unknown model");
    rc = ksv_store_stable_get(s, 987654, &stable, &e);
    EXPECT_ERR(rc, e, 404, "not found", "stable get of an unknown model");

    ksv_revision_record_clear(&r1);
    ksv_revision_record_clear(&r2);
    ksv_revision_record_clear(&r3);
    ksv_revision_record_clear(&r4);
}

/* ---------------------------------------------------------------- history */

static void test_history(ksv_store *s, const char *path)
{
    printf("== history\n");
    ksv_err e = {0};
    ksv_history_entry entries[] = {
        {.actor = (char *)"ann", .action = (char *)"apply", .model = (char *)"prod/fraud", .new_value = (char *)"fraud-00001",
         .result = (char *)"ok", .node_results_json = (char *)"{\"gpu-a\":\"ok\"}"},
        {.actor = (char *)"bob", .action = (char *)"node add", .node = (char *)"gpu-b", .result = (char *)"ok"},
        {.actor = (char *)"ann", .action = (char *)"set-traffic", .model = (char *)"prod/fraud", .old_value = (char *)"0",
         .new_value = (char *)"20", .result = (char *)"failed: gpu-a timed out",
         .node_results_json = (char *)"{\"gpu-a\":\"timeout\",\"box1\":\"ok\"}"},
        {.at_ms = 42, .actor = (char *)"cy", .action = (char *)"apply", .model = (char *)"prod/iris", .result = (char *)"ok"},
    };
    int64_t ids[4];
    for (int i = 0; i < 4; i++)
        OK(ksv_store_history_append(s, &entries[i], &ids[i], &e), e, "append history");
    KT_CHECK(ids[0] < ids[1] && ids[1] < ids[2] && ids[2] < ids[3], "ids increase");
    ksv_history_list l;
    OK(ksv_store_history_list(s, NULL, 0, &l, &e), e, "list all history");
    KT_CHECK(l.n == 4 && l.items[0].id == ids[3] && l.items[3].id == ids[0] &&
                 l.items[0].at_ms == 42 && l.items[3].at_ms > 1600000000000LL,
             "newest first; at 0 means now, an explicit time is kept");
    KT_CHECK(
        strcmp(l.items[1].result, "failed: gpu-a timed out") == 0 &&
            strcmp(l.items[1].old_value, "0") == 0 && strcmp(l.items[1].new_value, "20") == 0 &&
            strcmp(l.items[1].node_results_json, "{\"gpu-a\":\"timeout\",\"box1\":\"ok\"}") == 0 &&
            strcmp(l.items[2].node, "gpu-b") == 0 && l.items[2].model == NULL,
        "fields round-trip");
    ksv_history_list_free(&l);
    OK(ksv_store_history_list(s, "prod/fraud", 0, &l, &e), e, "history of one model");
    KT_CHECK(l.n == 2 && l.items[0].id == ids[2] && l.items[1].id == ids[0], "model filter");
    ksv_history_list_free(&l);
    OK(ksv_store_history_list(s, "prod/fraud", 1, &l, &e), e, "history with a limit");
    KT_CHECK(l.n == 1 && l.items[0].id == ids[2], "limit keeps the newest");
    ksv_history_list_free(&l);
    OK(ksv_store_history_list(s, NULL, 3, &l, &e), e, "all history, limit 3");
    KT_CHECK(l.n == 3 && l.items[0].id == ids[3], "limit over all models");
    ksv_history_list_free(&l);

    struct {
        ksv_history_entry h;
        const char *msg;
    } bad[] = {
        {{.action = (char *)"apply", .result = (char *)"ok"}, "actor"},
        {{.actor = (char *)"", .action = (char *)"apply", .result = (char *)"ok"}, "actor"},
        {{.actor = (char *)"a", .result = (char *)"ok"}, "action"},
        {{.actor = (char *)"a", .action = (char *)"apply"}, "result"},
        {{.actor = (char *)"a", .action = (char *)"apply", .result = (char *)"ok", .node_results_json = (char *)"[]"},
         "per-node"},
        {{.actor = (char *)"a", .action = (char *)"apply", .result = (char *)"ok", .node_results_json = (char *)"{"},
         "per-node"},
        {{.at_ms = -5, .actor = (char *)"a", .action = (char *)"apply", .result = (char *)"ok"}, "negative"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ksv_err_clear(&e);
        int rc = ksv_store_history_append(s, &bad[i].h, NULL, &e);
        EXPECT_ERR(rc, e, 400, bad[i].msg, "invalid history entry refused");
    }

    /* append-only even for a raw connection */
    sqlite3 *db;
    sqlite3_open(path, &db);
    int rc1 = sqlite3_exec(db, "UPDATE history SET result = 'rewritten'", NULL, NULL, NULL);
    int rc2 = sqlite3_exec(db, "DELETE FROM history", NULL, NULL, NULL);
    sqlite3_close(db);
    KT_CHECK(rc1 != SQLITE_OK && rc2 != SQLITE_OK, "history refuses UPDATE and DELETE");
    KT_CHECK(raw_int(path, "SELECT count(*) FROM history WHERE result = 'rewritten'") == 0 &&
                 raw_int(path, "SELECT count(*) FROM history") == 4,
             "history unchanged");
}

/* ---------------------------------------------------------------- deletion, injection */

static void test_delete_and_injection(ksv_store *s, const char *path)
{
    printf("== model deletion\n");
    ksv_err e = {0};
    ksv_model_record m;
    OK(ksv_store_model_get(s, "prod", "fraud", &m, &e), e, "get prod/fraud");
    int64_t mid = m.id;
    ksv_model_record_clear(&m);
    ksv_history_entry h = {.actor = (char *)"ann", .action = (char *)"delete", .model = (char *)"prod/fraud",
                           .result = (char *)"ok"};
    OK(ksv_store_history_append(s, &h, NULL, &e), e, "log the deletion");
    OK(ksv_store_model_delete(s, mid, &e), e, "delete prod/fraud (with stable, traffic)");
    int rc = ksv_store_model_get(s, "prod", "fraud", &m, &e);
    EXPECT_ERR(rc, e, 404, "not found", "deleted model is gone");
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT (SELECT count(*) FROM revisions WHERE model_id = %lld) + "
             "(SELECT count(*) FROM traffic WHERE model_id = %lld) + (SELECT count(*) FROM "
             "placement WHERE model_id = %lld)", (long long)mid, (long long)mid, (long long)mid);
    KT_CHECK(raw_int(path, sql) == 0, "its revisions, traffic and placement went with it");
    ksv_history_list hl;
    OK(ksv_store_history_list(s, "prod/fraud", 0, &hl, &e), e, "history of the deleted model");
    KT_CHECK(hl.n == 3, "history outlives the model (%zu entries)", hl.n);
    ksv_history_list_free(&hl);
    rc = ksv_store_model_delete(s, mid, &e);
    EXPECT_ERR(rc, e, 404, "not found", "deleting twice");
    OK(ksv_store_model_resolve(s, "fraud", NULL, &m, &e), e,
       "the bare name is unique again after the delete");
    KT_CHECK(m.ns && strcmp(m.ns, "staging") == 0, "fraud now resolves to staging");
    ksv_model_record_clear(&m);
    char *fk = raw_text(path, "SELECT count(*) FROM pragma_foreign_key_check");
    KT_CHECK(fk && strcmp(fk, "0") == 0, "no foreign key violations");
    free(fk);

    printf("== injection-looking names\n");
    const char *evil = "x'; DROP TABLE models;--";
    const char *evil2 = "\" OR 1=1 --";
    /* Names are DNS labels (common/field_limits.h), so quotes never reach a name column;
     * the free-text columns still take them, and prepared statements keep them inert. */
    ksv_node refused = {.name = (char *)evil, .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
    rc = ksv_store_node_add(s, &refused, NULL, &e);
    EXPECT_ERR(rc, e, 400, "DNS-1123", "a quote-laden node name is refused");
    ksv_model_record refused_model = {.ns = (char *)evil, .name = (char *)"ok", .spec_json = (char *)"{}"};
    rc = ksv_store_model_upsert(s, &refused_model, NULL, NULL, &e);
    EXPECT_ERR(rc, e, 400, "DNS-1123", "a quote-laden namespace is refused");
    const char *node_name = "evil-node";
    ksv_node n = {.name = (char *)node_name, .kind = KSV_NODE_LOCAL, .address = (char *)evil2};
    OK(ksv_store_node_add(s, &n, NULL, &e), e, "add a node with a quote-laden address");
    const char *on_evil[] = {node_name};
    int64_t id = upsert(s, "evil-ns", "evil-model", "{\"x'; DROP TABLE revisions;--\":\"');\"}",
                        on_evil, 1);
    KT_CHECK(id > 0, "model with a quote-laden spec stored");
    const char *ref = "evil-ns/evil-model";
    OK(ksv_store_model_resolve(s, ref, NULL, &m, &e), e, "resolve it as NAMESPACE/NAME");
    KT_CHECK(m.ns && m.n_nodes == 1 && strcmp(m.nodes[0], node_name) == 0 &&
                 strcmp(m.spec_json, "{\"x'; DROP TABLE revisions;--\":\"');\"}") == 0,
             "stored verbatim");
    ksv_model_record_clear(&m);
    ksv_revision_record r;
    OK(ksv_store_revision_create(s, id, "{}", evil, evil2, &r, &e), e, "revision of it");
    KT_CHECK(strcmp(r.name, "evil-model-00001") == 0 && strcmp(r.runtime, evil) == 0 &&
                 strcmp(r.storage_uri, evil2) == 0,
             "runtime and storage URI verbatim");
    ksv_revision_record_clear(&r);
    ksv_history_entry eh = {.actor = (char *)evil, .action = (char *)"apply", .model = (char *)ref,
                            .result = (char *)evil2};
    OK(ksv_store_history_append(s, &eh, NULL, &e), e, "history with quotes");
    ksv_history_list l;
    OK(ksv_store_history_list(s, ref, 0, &l, &e), e, "filter history by that model");
    KT_CHECK(l.n == 1 && strcmp(l.items[0].actor, evil) == 0, "found verbatim");
    ksv_history_list_free(&l);
    ksv_node got;
    OK(ksv_store_node_get(s, node_name, &got, &e), e, "get the node");
    KT_CHECK(strcmp(got.address, evil2) == 0, "node address verbatim");
    ksv_node_clear(&got);
    KT_CHECK(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN ('models', "
                           "'revisions', 'nodes')") == 3,
             "every table still exists");
}

/* ---------------------------------------------------------------- explicit transactions */

static void test_transactions(ksv_store *s)
{
    printf("== transactions\n");
    ksv_err e = {0};
    KT_CHECK(!ksv_store_in_transaction(s), "not in a transaction");
    OK(ksv_store_begin(s, &e), e, "begin");
    KT_CHECK(ksv_store_in_transaction(s), "in a transaction");
    int rc = ksv_store_begin(s, &e);
    EXPECT_ERR(rc, e, 409, "already open", "a second begin");
    ksv_node n = {.name = (char *)"tx-node", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
    OK(ksv_store_node_add(s, &n, NULL, &e), e, "add a node inside");
    int64_t id = upsert(s, "tx", "m", "{}", NULL, 0);
    rc = ksv_store_node_add(s, &n, NULL, &e);
    EXPECT_ERR(rc, e, 409, "already exists", "a failing write inside the transaction");
    ksv_traffic_entry bad = {.revision_id = 987654, .percent = 100};
    rc = ksv_store_traffic_set(s, id, &bad, 1, &e);
    EXPECT_ERR(rc, e, 404, "not found", "another failing write inside");
    ksv_node got;
    OK(ksv_store_node_get(s, "tx-node", &got, &e), e, "earlier writes survive failed ones");
    ksv_node_clear(&got);
    OK(ksv_store_rollback(s, &e), e, "rollback");
    rc = ksv_store_node_get(s, "tx-node", &got, &e);
    EXPECT_ERR(rc, e, 404, "not found", "rolled back node is absent");
    ksv_model_record m;
    rc = ksv_store_model_get(s, "tx", "m", &m, &e);
    EXPECT_ERR(rc, e, 404, "not found", "rolled back model is absent");

    OK(ksv_store_begin(s, &e), e, "begin again");
    OK(ksv_store_node_add(s, &n, NULL, &e), e, "add inside");
    upsert(s, "tx", "m", "{}", NULL, 0);
    OK(ksv_store_commit(s, &e), e, "commit");
    OK(ksv_store_node_get(s, "tx-node", &got, &e), e, "committed node present");
    ksv_node_clear(&got);
    OK(ksv_store_model_get(s, "tx", "m", &m, &e), e, "committed model present");
    ksv_model_record_clear(&m);
    rc = ksv_store_commit(s, &e);
    EXPECT_ERR(rc, e, 409, "no transaction", "commit without begin");
    rc = ksv_store_rollback(s, &e);
    EXPECT_ERR(rc, e, 409, "no transaction", "rollback without begin");

    /* a second connection reads committed state while the first holds the write lock */
    OK(ksv_store_begin(s, &e), e, "begin, holding the write lock");
    ksv_node n2 = {.name = (char *)"tx-node-2", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
    OK(ksv_store_node_add(s, &n2, NULL, &e), e, "write inside");
    ksv_store *reader = open_ok(ksv_store_path(s));
    KT_CHECK(reader != NULL, "another handle opens while a writer holds the lock");
    if (reader) {
        OK(ksv_store_node_get(reader, "tx-node", &got, &e), e, "reader sees committed rows");
        ksv_node_clear(&got);
        rc = ksv_store_node_get(reader, "tx-node-2", &got, &e);
        EXPECT_ERR(rc, e, 404, "not found", "reader does not see uncommitted rows");
        ksv_store_close(reader);
    }
    OK(ksv_store_commit(s, &e), e, "commit");
}

/* ---------------------------------------------------------------- metrics */

#define SERIES 2
#define MINUTES_PER_DAY 1440

static void fill_sample(ksv_metric_sample *m, int64_t at, int series, uint64_t *buckets,
                        size_t n_buckets)
{
    memset(m, 0, sizeof *m);
    m->at_ms = at;
    m->span_ms = 30000;
    m->node = (char *)"gpu-a";
    m->model = series == 0 ? (char *)"fraud" : (char *)"iris";
    m->revision = series == 0 ? (char *)"fraud-00001" : (char *)"iris-00002";
    uint64_t k = (uint64_t)(at / 30000);
    m->requests_2xx = 100 + k % 7;
    m->requests_4xx = k % 3;
    m->requests_5xx = (k % 11) == 0;
    m->requests_other = 0;
    m->latency_sum_s = 0.25 * (double)(k % 5);
    memset(buckets, 0, n_buckets * sizeof *buckets);
    buckets[(k * 13 + (uint64_t)series) % n_buckets] = 1 + k % 4;
    buckets[n_buckets - 1] = k % 2;
    m->buckets = buckets;
    m->n_buckets = n_buckets;
}

static void test_metrics_basic(ksv_store *s)
{
    printf("== metrics\n");
    ksv_err e = {0};
    uint64_t b1[5] = {0, 3, 0, 0, 9};
    uint64_t big[KSV_STORE_MAX_BUCKETS];
    memset(big, 0, sizeof big);
    big[0] = UINT64_MAX;
    big[KSV_STORE_MAX_BUCKETS - 1] = 1;
    ksv_metric_sample in[] = {
        {.at_ms = 2000, .span_ms = 1000, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"m-00001",
         .requests_2xx = 10, .requests_4xx = 1, .requests_5xx = 2, .requests_other = 3,
         .latency_sum_s = 0.5, .buckets = b1, .n_buckets = 5},
        {.at_ms = 3000, .span_ms = 1000, .node = (char *)"b", .model = (char *)"m", .revision = (char *)"m-00002",
         .requests_2xx = INT64_MAX, .buckets = big, .n_buckets = KSV_STORE_MAX_BUCKETS},
        {.at_ms = 4000, .span_ms = 1000, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"m-00001"},
    };
    OK(ksv_store_metrics_insert(s, in, 3, &e), e, "insert three samples");
    ksv_metric_list l;
    OK(ksv_store_metrics_query(s, KSV_METRICS_RAW, NULL, NULL, NULL, 0, 10000, &l, &e), e,
       "query all");
    KT_CHECK(l.n == 3 && l.items[0].at_ms == 2000 && l.items[1].at_ms == 3000 &&
                 l.items[2].at_ms == 4000, "three samples in time order");
    if (l.n == 3) {
        ksv_metric_sample *a = &l.items[0], *b = &l.items[1], *c = &l.items[2];
        KT_CHECK(a->span_ms == 1000 && strcmp(a->node, "a") == 0 && strcmp(a->model, "m") == 0 &&
                     strcmp(a->revision, "m-00001") == 0 && a->requests_2xx == 10 &&
                     a->requests_4xx == 1 && a->requests_5xx == 2 && a->requests_other == 3 &&
                     a->latency_sum_s == 0.5 && a->n_buckets == 5 &&
                     memcmp(a->buckets, b1, sizeof b1) == 0,
                 "sample fields and sparse buckets round-trip");
        KT_CHECK(b->requests_2xx == INT64_MAX && b->n_buckets == KSV_STORE_MAX_BUCKETS &&
                     b->buckets[0] == UINT64_MAX && b->buckets[KSV_STORE_MAX_BUCKETS - 1] == 1 &&
                     b->buckets[1] == 0,
                 "extreme counts and the last bucket index round-trip");
        KT_CHECK(c->n_buckets == 0 && c->buckets == NULL, "an empty histogram round-trips");
    }
    ksv_metric_list_free(&l);
    OK(ksv_store_metrics_query(s, KSV_METRICS_RAW, "a", NULL, "m-00001", 2000, 4000, &l, &e), e,
       "query a window and a series");
    KT_CHECK(l.n == 1 && l.items[0].at_ms == 4000, "window is (from, to] and filters apply");
    ksv_metric_list_free(&l);

    struct {
        ksv_metric_sample m;
        const char *msg;
    } bad[] = {
        {{.at_ms = 0, .span_ms = 1, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"r"}, "time"},
        {{.at_ms = 1, .span_ms = 0, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"r"}, "span"},
        {{.at_ms = 1, .span_ms = 1, .node = (char *)"", .model = (char *)"m", .revision = (char *)"r"}, "node"},
        {{.at_ms = 1, .span_ms = 1, .node = (char *)"a", .model = NULL, .revision = (char *)"r"}, "node"},
        {{.at_ms = 1, .span_ms = 1, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"r",
          .requests_5xx = (uint64_t)INT64_MAX + 1}, "count"},
        {{.at_ms = 1, .span_ms = 1, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"r",
          .latency_sum_s = -1}, "latency"},
        {{.at_ms = 1, .span_ms = 1, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"r",
          .latency_sum_s = 1.0 / 0.0}, "latency"},
        {{.at_ms = 1, .span_ms = 1, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"r",
          .buckets = big, .n_buckets = KSV_STORE_MAX_BUCKETS + 1}, "buckets"},
        {{.at_ms = 1, .span_ms = 1, .node = (char *)"a", .model = (char *)"m", .revision = (char *)"r",
          .buckets = NULL, .n_buckets = 3}, "buckets"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ksv_err_clear(&e);
        ksv_metric_sample two[2] = {in[0], bad[i].m};
        int rc = ksv_store_metrics_insert(s, two, 2, &e);
        EXPECT_ERR(rc, e, 400, bad[i].msg, "invalid sample refused (whole batch)");
    }
    OK(ksv_store_metrics_query(s, KSV_METRICS_RAW, NULL, NULL, NULL, 0, 10000, &l, &e), e,
       "query after refusals");
    KT_CHECK(l.n == 3, "refused batches stored nothing");
    ksv_metric_list_free(&l);
    int rc = ksv_store_metrics_query(s, (ksv_metrics_resolution)5, NULL, NULL, NULL, 0, 1, &l, &e);
    EXPECT_ERR(rc, e, 400, "resolution", "unknown resolution");
    rc = ksv_store_metrics_compact(s, 0, NULL, &e);
    EXPECT_ERR(rc, e, 400, "time", "compact needs a time");
}

/* Three simulated days of 30 s samples for two series, compacted every simulated hour. */
static void test_metrics_retention(void)
{
    printf("== metrics retention (simulated clock)\n");
    const char *path = db_path("metrics.db");
    ksv_store *s = open_ok(path);
    if (!s)
        return;
    ksv_err e = {0};
    const int64_t day = 24LL * 3600 * 1000, step = 30000;
    const int64_t start = 1700000000000LL / 60000 * 60000; /* a minute boundary */
    const int64_t end = start + 3 * day;
    enum { NB = 64 };
    uint64_t buckets[NB];

    /* Oracle: per series and minute, the sums computed here as samples are made. */
    size_t minutes = (size_t)(3 * MINUTES_PER_DAY);
    uint64_t(*exp_req)[SERIES] = calloc(minutes, sizeof *exp_req);
    uint64_t(*exp_b)[SERIES][NB] = calloc(minutes, sizeof *exp_b);
    double(*exp_lat)[SERIES] = calloc(minutes, sizeof *exp_lat);
    long long size_day2 = 0, size_day3 = 0;
    size_t total_rolled = 0;
    double insert_s = 0, compact_s = 0;
    bool ok = exp_req && exp_b && exp_lat;
    for (int64_t hour_start = start; ok && hour_start < end; hour_start += 3600000) {
        double t0 = ksv_mono_s();
        if (ksv_store_begin(s, &e) < 0)
            ok = false;
        for (int64_t at = hour_start + step; at <= hour_start + 3600000; at += step) {
            for (int series = 0; series < SERIES; series++) {
                ksv_metric_sample m;
                fill_sample(&m, at, series, buckets, NB);
                if (ksv_store_metrics_insert(s, &m, 1, &e) < 0) {
                    ok = false;
                    break;
                }
                size_t minute = (size_t)((at - 1 - start) / 60000);
                exp_req[minute][series] +=
                    m.requests_2xx + m.requests_4xx + m.requests_5xx + m.requests_other;
                exp_lat[minute][series] += m.latency_sum_s;
                for (int i = 0; i < NB; i++)
                    exp_b[minute][series][i] += buckets[i];
            }
        }
        if (ksv_store_commit(s, &e) < 0)
            ok = false;
        double t1 = ksv_mono_s();
        ksv_metrics_compact_stats st;
        if (ksv_store_metrics_compact(s, hour_start + 3600000, &st, &e) < 0)
            ok = false;
        insert_s += t1 - t0;
        compact_s += ksv_mono_s() - t1;
        total_rolled += st.rolled_up;
        if (hour_start + 3600000 == start + 2 * day)
            size_day2 = raw_int(path, "SELECT page_count * page_size FROM pragma_page_count, "
                                      "pragma_page_size");
    }
    KT_CHECK(ok, "three days inserted and compacted hourly%s%s", e.msg[0] ? ": " : "", e.msg);
    printf("figure: %d samples inserted in %.2f s (%.1f us each, 240 per transaction); "
           "72 hourly compactions in %.2f s (%.1f ms each)\n", (int)(3 * 2 * day / step),
           insert_s, insert_s * 1e6 / (double)(3 * 2 * day / step), compact_s,
           compact_s * 1e3 / 72);
    size_day3 = raw_int(path, "SELECT page_count * page_size FROM pragma_page_count, "
                              "pragma_page_size");

    long long raw_rows = raw_int(path, "SELECT count(*) FROM metric_samples");
    long long per_day = 2LL * (day / step);
    KT_CHECK(raw_rows == per_day, "raw rows: %lld, exactly the last 24 h (%lld)", raw_rows,
             per_day);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM metric_samples WHERE at <= %lld",
             (long long)(end - day));
    KT_CHECK(raw_int(path, sql) == 0, "no raw row is 24 h old or older");
    KT_CHECK(total_rolled == (size_t)(3 * per_day), "every sample was rolled up once (%zu)",
             total_rolled);
    long long rollups = raw_int(path, "SELECT count(*) FROM metric_rollups");
    KT_CHECK(rollups == (long long)(SERIES * minutes), "one rollup per series and minute (%lld)",
             rollups);
    /* Deleted raw rows leave free pages that later inserts reuse: the live file stays close
     * to a compacted copy of the same rows (what grows is the rollups, for 30 days). */
    char vac[700];
    const char *copy = db_path("metrics-compacted.db");
    snprintf(vac, sizeof vac, "VACUUM INTO '%s'", copy);
    raw_exec(path, vac);
    struct stat cst;
    long long compacted = stat(copy, &cst) == 0 ? (long long)cst.st_size : -1;
    KT_CHECK(compacted > 0 && size_day3 <= compacted + compacted / 2,
             "file stays bounded: %lld bytes after day 2, %lld after day 3, %lld compacted",
             size_day2, size_day3, compacted);

    ksv_metric_list l;
    OK(ksv_store_metrics_query(s, KSV_METRICS_MINUTE, NULL, NULL, NULL, start, end, &l, &e), e,
       "query three days of rollups");
    size_t mismatches = 0;
    for (size_t i = 0; i < l.n; i++) {
        ksv_metric_sample *m = &l.items[i];
        int series = strcmp(m->model, "fraud") == 0 ? 0 : 1;
        size_t minute = (size_t)((m->at_ms - 60000 - start) / 60000);
        uint64_t req = m->requests_2xx + m->requests_4xx + m->requests_5xx + m->requests_other;
        bool same = minute < minutes && m->span_ms == 60000 && req == exp_req[minute][series] &&
                    m->latency_sum_s == exp_lat[minute][series] && m->n_buckets <= NB;
        for (size_t b = 0; same && b < NB; b++)
            same = (b < m->n_buckets ? m->buckets[b] : 0) == exp_b[minute][series][b];
        mismatches += !same;
    }
    KT_CHECK(l.n == (size_t)(SERIES * minutes) && mismatches == 0,
             "every rollup equals the sums computed here (%zu rollups, %zu differ)", l.n,
             mismatches);
    ksv_metric_list_free(&l);

    /* a sample arriving late for a minute already rolled up is added to it */
    int64_t late_minute_end = end - 3600000;
    uint64_t lb[3] = {0, 0, 5};
    ksv_metric_sample late = {.at_ms = late_minute_end - 10, .span_ms = 10, .node = (char *)"gpu-a",
                              .model = (char *)"fraud", .revision = (char *)"fraud-00001", .requests_5xx = 7,
                              .latency_sum_s = 0.5, .buckets = lb, .n_buckets = 3};
    OK(ksv_store_metrics_insert(s, &late, 1, &e), e, "insert a late sample");
    OK(ksv_store_metrics_compact(s, end, NULL, &e), e, "compact again");
    OK(ksv_store_metrics_query(s, KSV_METRICS_MINUTE, "gpu-a", "fraud", "fraud-00001",
                               late_minute_end - 1, late_minute_end, &l, &e), e,
       "query that minute");
    size_t minute = (size_t)((late_minute_end - 60000 - start) / 60000);
    KT_CHECK(l.n == 1 && l.items[0].requests_2xx + l.items[0].requests_4xx +
                                 l.items[0].requests_5xx == exp_req[minute][0] + 7 &&
                 l.items[0].latency_sum_s == exp_lat[minute][0] + 0.5 &&
                 l.items[0].buckets[2] == exp_b[minute][0][2] + 5,
             "late sample merged into its minute");
    ksv_metric_list_free(&l);

    /* a month later: rollups older than 30 days go */
    ksv_metrics_compact_stats st;
    OK(ksv_store_metrics_compact(s, start + 31 * day + 12 * 3600000LL, &st, &e), e,
       "compact 31.5 days after the start");
    long long left = raw_int(path, "SELECT count(*) FROM metric_rollups");
    KT_CHECK(st.deleted_raw == (size_t)per_day + 1 && left > 0 &&
                 left == (long long)SERIES * (3 * MINUTES_PER_DAY - MINUTES_PER_DAY - 720),
             "raw all gone (%zu deleted); rollups of the first 1.5 days gone, %lld left",
             st.deleted_raw, left);
    OK(ksv_store_metrics_compact(s, start + 40 * day, &st, &e), e, "compact 40 days later");
    KT_CHECK(raw_int(path, "SELECT count(*) FROM metric_rollups") == 0 &&
                 raw_int(path, "SELECT count(*) FROM metric_samples") == 0,
             "everything expired");
    free(exp_req);
    free(exp_b);
    free(exp_lat);
    ksv_store_close(s);
}

/* ---------------------------------------------------------------- tampered rows */

/* A small database: node n, model ns/m on it with two revisions, a 50/50 split, history,
 * and one metric sample. */
static const char *build_small(const char *name)
{
    const char *path = db_path(name);
    ksv_store *s = open_ok(path);
    if (!s)
        return path;
    ksv_err e = {0};
    ksv_node n = {.name = (char *)"n", .kind = KSV_NODE_LOCAL, .address = (char *)"local"};
    ksv_store_node_add(s, &n, NULL, &e);
    const char *on[] = {"n"};
    int64_t id = upsert(s, "ns", "m", "{}", on, 1);
    ksv_revision_record r1, r2;
    ksv_store_revision_create(s, id, "{\"a\":1}", "ksv-xgboost", "file:///a", &r1, &e);
    ksv_store_revision_create(s, id, "{\"a\":2}", "ksv-xgboost", "file:///b", &r2, &e);
    ksv_traffic_entry split[] = {{r1.id, NULL, 50}, {r2.id, NULL, 50}};
    ksv_store_traffic_set(s, id, split, 2, &e);
    ksv_store_stable_set(s, id, r1.id, &e);
    ksv_history_entry h = {.actor = (char *)"a", .action = (char *)"apply", .model = (char *)"ns/m", .result = (char *)"ok",
                           .node_results_json = (char *)"{\"n\":\"ok\"}"};
    ksv_store_history_append(s, &h, NULL, &e);
    uint64_t b[2] = {1, 2};
    ksv_metric_sample ms = {.at_ms = 5000, .span_ms = 1000, .node = (char *)"n", .model = (char *)"m",
                            .revision = (char *)"m-00001", .requests_2xx = 1, .buckets = b,
                            .n_buckets = 2};
    ksv_store_metrics_insert(s, &ms, 1, &e);
    if (e.msg[0]) {
        KT_FAIL("building %s: %s", name, e.msg);
    }
    ksv_revision_record_clear(&r1);
    ksv_revision_record_clear(&r2);
    ksv_store_close(s);
    return path;
}

enum probe { P_NODE, P_NODES, P_MODEL, P_MODELS, P_REVS, P_TRAFFIC, P_HISTORY, P_METRICS,
             P_RESOLVE, P_PREVIOUS };

static int probe(ksv_store *s, enum probe p, ksv_err *e)
{
    ksv_node n;
    ksv_node_list nl;
    ksv_model_record m;
    ksv_model_record_list ml;
    ksv_revision_record_list rl;
    ksv_traffic t;
    ksv_history_list hl;
    ksv_metric_list mel;
    ksv_revision_record r;
    int rc = -1;
    switch (p) {
    case P_NODE:
        rc = ksv_store_node_get(s, "n", &n, e);
        ksv_node_clear(&n);
        break;
    case P_NODES:
        rc = ksv_store_node_list(s, &nl, e);
        ksv_node_list_free(&nl);
        break;
    case P_MODEL:
        rc = ksv_store_model_get(s, "ns", "m", &m, e);
        ksv_model_record_clear(&m);
        break;
    case P_MODELS:
        rc = ksv_store_model_list(s, NULL, &ml, e);
        ksv_model_record_list_free(&ml);
        break;
    case P_REVS:
        rc = ksv_store_revision_list(s, 1, &rl, e);
        ksv_revision_record_list_free(&rl);
        break;
    case P_TRAFFIC:
        rc = ksv_store_traffic_get(s, 1, &t, e);
        ksv_traffic_free(&t);
        break;
    case P_HISTORY:
        rc = ksv_store_history_list(s, NULL, 0, &hl, e);
        ksv_history_list_free(&hl);
        break;
    case P_METRICS:
        rc = ksv_store_metrics_query(s, KSV_METRICS_RAW, NULL, NULL, NULL, 0, INT64_MAX, &mel, e);
        ksv_metric_list_free(&mel);
        break;
    case P_RESOLVE:
        rc = ksv_store_model_resolve(s, "m", NULL, &m, e);
        ksv_model_record_clear(&m);
        break;
    case P_PREVIOUS:
        rc = ksv_store_stable_previous(s, 1, &r, e);
        ksv_revision_record_clear(&r);
        rc = rc < 0 ? -1 : 0;
        break;
    }
    return rc;
}

static void test_tampered(void)
{
    printf("== tampered rows\n");
    struct {
        const char *sql;
        enum probe probe;
        const char *msg;
    } cases[] = {
        {"PRAGMA ignore_check_constraints = ON; UPDATE traffic SET percent = 150 "
         "WHERE revision_id = 1;", P_TRAFFIC, "outside [0, 100]"},
        {"UPDATE traffic SET percent = 40 WHERE revision_id = 1;", P_TRAFFIC, "sums to 90%"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE traffic SET percent = 'half';",
         P_TRAFFIC, "not an integer"},
        {"PRAGMA foreign_keys = OFF; UPDATE traffic SET revision_id = 99 WHERE revision_id = 2;",
         P_TRAFFIC, "not one of its revisions"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE nodes SET kind = 'ftp';", P_NODE,
         "'ftp'"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE nodes SET kind = 'ftp';", P_NODES,
         "'ftp'"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE nodes SET engine_port = 70000;", P_NODE,
         "engine_port"},
        {"UPDATE nodes SET created_at = 'yesterday';", P_NODE, "not an integer"},
        {"INSERT INTO node_labels SELECT id, 'bad key', 'v' FROM nodes;", P_NODE, "node_labels"},
        {"INSERT INTO node_labels SELECT id, 'k', 'a b' FROM nodes;", P_NODES, "node_labels"},
        {"UPDATE nodes SET name = X'6E00';", P_NODES, "not text"},
        {"UPDATE models SET spec = 'not json';", P_MODEL, "not a JSON object"},
        {"UPDATE models SET spec = '[1,2]';", P_MODELS, "not a JSON object"},
        {"UPDATE models SET spec = X'7B7D';", P_MODEL, "not text"},
        {"UPDATE models SET annotations = '{';", P_RESOLVE, "annotations"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE models SET name = 'a/b';", P_MODELS,
         "name"},
        {"UPDATE placement SET model_name = 'other';", P_MODEL, "names another model"},
        {"UPDATE revisions SET spec_sha256 = 'zz' || substr(spec_sha256, 3);", P_REVS,
         "spec hash"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE revisions SET seq = 'abc' WHERE id = 1;", P_REVS,
         "not an integer"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE revisions SET seq = 0 WHERE id = 1;", P_REVS,
         "outside"},
        {"UPDATE revisions SET spec = 'x';", P_PREVIOUS, "not a JSON object"},
        {"UPDATE revisions SET spec = 'x';", P_REVS, "not a JSON object"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE revisions SET runtime = '';", P_REVS,
         "empty"},
        {"UPDATE metric_samples SET buckets = X'FF';", P_METRICS, "malformed histogram"},
        {"UPDATE metric_samples SET buckets = X'0100';", P_METRICS, "malformed histogram"},
        {"UPDATE metric_samples SET buckets = X'FFFF0401';", P_METRICS, "malformed histogram"},
        {"UPDATE metric_samples SET buckets = 'text';", P_METRICS, "malformed histogram"},
        {"UPDATE metric_samples SET latency_sum = 'x';", P_METRICS, "not a number"},
        {"UPDATE metric_samples SET latency_sum = -1;", P_METRICS, "latency"},
        {"PRAGMA ignore_check_constraints = ON; UPDATE metric_samples SET requests_2xx = -4;",
         P_METRICS, "requests_2xx"},
        {"DROP TRIGGER history_no_update; UPDATE history SET node_results = 'nope';",
         P_HISTORY, "per-node results"},
        /* NOT NULL removed from the schema, then a NULL written where the store needs text */
        {"PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = replace(sql, "
         "'address TEXT NOT NULL CHECK (length(address) > 0)', 'address TEXT') "
         "WHERE name = 'nodes';", P_NODE, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "tamper-%zu.db", i);
        const char *path = build_small(name);
        ksv_store *s = open_ok(path);
        ksv_err e = {0};
        KT_CHECK(s && probe(s, cases[i].probe, &e) == 0, "untampered db %zu reads fine%s%s", i,
                 e.msg[0] ? ": " : "", e.msg);
        ksv_store_close(s);
        raw_exec(path, cases[i].sql);
        const char *msg = cases[i].msg;
        if (!msg) { /* the schema edit takes effect on a new connection */
            raw_exec(path, "UPDATE nodes SET address = NULL;");
            msg = "nodes.address is NULL";
        }
        s = open_ok(path);
        ksv_err_clear(&e);
        int rc = s ? probe(s, cases[i].probe, &e) : 0;
        KT_CHECK(rc == -1 && e.status == 500 && strstr(e.msg, "damaged") && strstr(e.msg, msg),
                 "tampered (%s) -> \"%s\"", cases[i].sql, e.msg);
        ksv_store_close(s);
    }
}

/* A statement that cannot be prepared (its table is gone) is reported once, as the
 * prepare's error, whether the statement lists rows, reads one, or writes: the sticky
 * rc from store_prepare through the binders to the step (src/store/store_internal.h). */
static void test_missing_table(void)
{
    printf("== statements that cannot be prepared\n");
    struct {
        const char *sql;
        enum probe probe;
    } cases[] = {
        {"DROP TABLE history;", P_HISTORY},     /* a listing */
        {"DROP TABLE traffic;", P_TRAFFIC},     /* a listing after a single-row read */
        {"DROP TABLE placement;", P_MODEL},     /* a listing inside a single-row read */
        {"DROP TABLE node_labels;", P_NODES},   /* a row loop after a listing */
        {"PRAGMA foreign_keys = OFF; DROP TABLE traffic; DROP TABLE placement; "
         "DROP TABLE nodes;", P_NODE},          /* a single-row read */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "noprep-%zu.db", i);
        const char *path = build_small(name);
        raw_exec(path, cases[i].sql);
        ksv_store *s = open_ok(path);
        ksv_err e = {0};
        int rc = s ? probe(s, cases[i].probe, &e) : 0;
        KT_CHECK(rc == -1 && e.status == 500 && strstr(e.msg, "preparing a statement") &&
                     strstr(e.msg, "no such table"),
                 "%s -> \"%s\"", cases[i].sql, e.msg);
        ksv_store_close(s);
    }
    /* a write */
    const char *path = build_small("noprep-write.db");
    raw_exec(path, "DROP TABLE history;");
    ksv_store *s = open_ok(path);
    ksv_err e = {0};
    ksv_history_entry h = {.actor = (char *)"a", .action = (char *)"apply",
                           .result = (char *)"ok"};
    int rc = s ? ksv_store_history_append(s, &h, NULL, &e) : 0;
    KT_CHECK(rc == -1 && e.status == 500 && strstr(e.msg, "preparing a statement") &&
                 strstr(e.msg, "no such table"),
             "appending history without its table -> \"%s\"", e.msg);
    ksv_store_close(s);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    ksv_log_set_level(KSV_LOG_ERROR);
    setvbuf(stdout, NULL, _IOLBF, 0);
    kt_set_verbose(true);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_sha256();
    test_spec_hash();
    test_open_and_migrations();
    test_crash();

    const char *main_db = db_path("main.db");
    ksv_store *s = open_ok(main_db);
    if (s) {
        test_nodes(s);
        test_models(s);
        test_revisions_traffic(s);
        test_history(s, main_db);
        test_delete_and_injection(s, main_db);
        test_transactions(s);
        test_metrics_basic(s);
        ksv_store_close(s);
    }
    test_metrics_retention();
    test_tampered();
    test_missing_table();

    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return kt_summary("test_store");
}
