/* test_engine_client.c: the engine admin client and the local node launcher against real
 * ksv-engine processes ($KSV_ENGINE, else found the way ksv finds it), plus small socket
 * servers in this process that refuse, stall, or answer garbage.
 *
 * Oracles are independent of the code under test: the token and address files read with
 * stdio, /proc for the engine's pid and executable, json-c for replies, the numbers of
 * requests this test itself sent, the percents it asked for, and the engine's --threads.
 * Every engine started here is killed by pid at exit, even after a failed check or a
 * sanitizer report. Data: $KSV_DATA_DIR, else $KSV_SRCDIR/data, else KSV_SRCDIR/data. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "common/engine_identity.h"
#include "common/sha256.h"
#include "remote/engine_client.h"
#include "remote/local_node.h"

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

/* --- engines started here are killed by pid, whatever happens ------------------------- */

#define MAX_ENGINES 8
static volatile sig_atomic_t engine_pids[MAX_ENGINES];

static void remember_pid(pid_t pid)
{
    for (int i = 0; i < MAX_ENGINES; i++) {
        if (engine_pids[i] == pid)
            return;
        if (engine_pids[i] == 0) {
            engine_pids[i] = pid;
            return;
        }
    }
}

/* Async-signal-safe: runs from atexit, signal handlers and the sanitizer's death hook. */
static void kill_engines(void)
{
    for (int i = 0; i < MAX_ENGINES; i++) {
        if (engine_pids[i] > 0)
            kill((pid_t)engine_pids[i], SIGKILL);
        engine_pids[i] = 0;
    }
}

static void on_fatal_signal(int sig)
{
    kill_engines();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Provided by the sanitizer runtimes; NULL in a plain build. */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void install_cleanup(void)
{
    atexit(kill_engines);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        /* The sanitizers report SEGV and friends themselves, then call the death hook. */
        if (__sanitizer_set_death_callback && sigs[i] != SIGINT && sigs[i] != SIGTERM &&
            sigs[i] != SIGHUP)
            continue;
        signal(sigs[i], on_fatal_signal);
    }
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(kill_engines);
}

/* --- small oracles ------------------------------------------------------------------------ */

/* First line of a file, newline stripped; "" when unreadable. */
static void read_first_line(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)cap, f))
        out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

/* A process that exists and is not a zombie. */
static bool pid_running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    read_first_line(path, buf, sizeof buf);
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

static bool pid_gone_within(pid_t pid, double ms)
{
    double end = ksv_mono_ms() + ms;
    while (pid_running(pid) && ksv_mono_ms() < end)
        usleep(10000);
    return !pid_running(pid);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* --- a tiny HTTP server that answers whatever the test sets ----------------------------- */

typedef struct canned_server {
    int listen_fd;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    char reply[8192];
    size_t reply_len;
    char last_request[8192];
    int requests;
    int connections;
    bool keep_alive;      /* serve several requests per connection */
    /* The token this server proves it holds at GET /ksv/v1/identity (a canned engine is
     * the right engine; test_identity has the wrong ones). "": it proves nothing. */
    char token[64];
    int identity_requests;
    char all[32768];      /* every byte of every request it received (truncated) */
    size_t all_len;
} canned_server;

/* The answer of an engine that holds token to GET /ksv/v1/identity?challenge=C. */
static size_t identity_answer(const char *request, const char *token, int port, char *out,
                              size_t cap)
{
    char challenge[200] = "", nonce[65], proof[65], listen[64], body[400];
    sscanf(request, "GET /ksv/v1/identity?challenge=%199[0-9a-f]", challenge);
    ksv_identity_random_hex(nonce, sizeof nonce, 32);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    ksv_identity_proof(token, challenge, nonce, listen, proof);
    snprintf(body, sizeof body, "{\"listen\":\"%s\",\"nonce\":\"%s\",\"proof\":\"%s\"}",
             listen, nonce, proof);
    int n = snprintf(out, cap, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void *canned_serve(void *arg)
{
    canned_server *s = arg;
    for (;;) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL; /* shutdown() of the listening socket ends the thread */
        }
        pthread_mutex_lock(&s->lock);
        s->connections++;
        pthread_mutex_unlock(&s->lock);
        bool again = true;
        while (again) {
            char req[8192];
            size_t n = 0;
            bool complete = false;
            while (!complete && n < sizeof req - 1) {
                ssize_t r = read(fd, req + n, sizeof req - 1 - n);
                if (r <= 0)
                    break;
                n += (size_t)r;
                req[n] = '\0';
                char *end = strstr(req, "\r\n\r\n");
                if (end) {
                    const char *cl = strcasestr(req, "\r\nContent-Length:");
                    size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
                    complete = n - (size_t)(end + 4 - req) >= want;
                }
            }
            req[n] = '\0';
            if (!complete)
                break;
            pthread_mutex_lock(&s->lock);
            size_t room = sizeof s->all - 1 - s->all_len;
            memcpy(s->all + s->all_len, req, n < room ? n : room);
            s->all_len += n < room ? n : room;
            s->all[s->all_len] = '\0';
            /* The identity check is answered apart, on a connection kept open for the
             * request it clears (as an engine keeps it). */
            bool identity = s->token[0] && strncmp(req, "GET /ksv/v1/identity?", 21) == 0;
            char proof_reply[1024];
            const char *reply = s->reply;
            size_t reply_len = s->reply_len;
            if (identity) {
                s->identity_requests++;
                reply = proof_reply;
                reply_len = identity_answer(req, s->token, s->port, proof_reply,
                                            sizeof proof_reply);
            } else {
                memcpy(s->last_request, req, n + 1);
                s->requests++;
            }
            size_t off = 0;
            while (off < reply_len) {
                ssize_t w = write(fd, reply + off, reply_len - off);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
            again = s->keep_alive || identity;
            pthread_mutex_unlock(&s->lock);
        }
        close(fd);
    }
}

static int canned_start(canned_server *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->listen_fd = kt_listen_loopback(&s->port, 16);
    if (s->listen_fd < 0)
        return -1;
    return pthread_create(&s->thread, NULL, canned_serve, s) == 0 ? 0 : -1;
}

static void canned_stop(canned_server *s)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    pthread_mutex_destroy(&s->lock);
}

static void canned_set_raw(canned_server *s, const char *raw, size_t len)
{
    pthread_mutex_lock(&s->lock);
    if (len > sizeof s->reply)
        len = sizeof s->reply;
    memcpy(s->reply, raw, len);
    s->reply_len = len;
    pthread_mutex_unlock(&s->lock);
}

/* An HTTP/1.1 answer with a correct Content-Length. */
static void canned_set(canned_server *s, int status, const char *body)
{
    char raw[8192];
    int n = snprintf(raw, sizeof raw,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu"
                     "\r\n\r\n%s", status, strlen(body), body);
    canned_set_raw(s, raw, n > 0 && (size_t)n < sizeof raw ? (size_t)n : 0);
}

static void canned_last_request(canned_server *s, char *out, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    snprintf(out, cap, "%s", s->last_request);
    pthread_mutex_unlock(&s->lock);
}

/* --- checks against real engines -------------------------------------------------------- */

typedef struct fixture {
    char engine[PATH_MAX];
    char data[PATH_MAX];
    char base[PATH_MAX];   /* temp folder holding the state dirs */
    char state_a[PATH_MAX + 8];
} fixture;

static void check_local_engine_files(const fixture *fx, const ksv_local_engine *le)
{
    char path[PATH_MAX + 32], token[512], address[256], url[300];
    snprintf(path, sizeof path, "%s/token", fx->state_a);
    read_first_line(path, token, sizeof token);
    struct stat st;
    KT_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "token file is mode 0600");
    KT_CHECK(token[0] && strcmp(token, le->token) == 0, "token matches STATE_DIR/token");
    snprintf(path, sizeof path, "%s/address", fx->state_a);
    read_first_line(path, address, sizeof address);
    snprintf(url, sizeof url, "http://%s", address);
    KT_CHECK(strcmp(url, le->base_url) == 0, "base_url %s is http:// + STATE_DIR/address (%s)",
             le->base_url, address);
    char exe[PATH_MAX] = "", want[PATH_MAX] = "";
    snprintf(path, sizeof path, "/proc/%ld/exe", (long)le->pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    KT_CHECK(realpath(fx->engine, want) && strcmp(exe, want) == 0,
             "pid %ld runs %s", (long)le->pid, exe);
}

static void check_find_engine(const fixture *fx, const char *argv0)
{
    char found[PATH_MAX];
    KT_CHECK(ksv_find_engine(found, sizeof found, argv0) == 0 && strcmp(found, fx->engine) == 0,
             "ksv_find_engine honours KSV_ENGINE");
    char *saved_env = strdup(getenv("KSV_ENGINE") ? getenv("KSV_ENGINE") : "");
    char *saved_path = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("KSV_ENGINE", "/nonexistent/ksv-engine", 1);
    KT_CHECK(ksv_find_engine(found, sizeof found, argv0) == -1,
             "ksv_find_engine: a KSV_ENGINE that is not executable is an error, no fallback");
    unsetenv("KSV_ENGINE");
    /* PATH lookup: a bin folder holding a link to the engine. The engine may also sit
     * beside this test's executable, which wins. */
    char bin[PATH_MAX + 8], link_path[PATH_MAX + 32], self[PATH_MAX] = "", beside[PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/bin", fx->base);
    snprintf(link_path, sizeof link_path, "%s/ksv-engine", bin);
    mkdir(bin, 0700);
    char abs_engine[PATH_MAX];
    bool linked = realpath(fx->engine, abs_engine) && symlink(abs_engine, link_path) == 0;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(beside, sizeof beside, "%s/ksv-engine", self);
    const char *expect = access(beside, X_OK) == 0 ? beside : link_path;
    char path_env[PATH_MAX + 64];
    snprintf(path_env, sizeof path_env, "/nonexistent-bin::%s", bin);
    setenv("PATH", path_env, 1);
    KT_CHECK(linked && ksv_find_engine(found, sizeof found, "test_engine_client") == 0 &&
                 strcmp(found, expect) == 0,
             "ksv_find_engine without KSV_ENGINE finds %s (got %s)", expect, found);
    char tiny[4];
    KT_CHECK(ksv_find_engine(tiny, sizeof tiny, "x") == -1, "ksv_find_engine: too small a buffer");
    setenv("PATH", "/nonexistent-bin", 1);
    if (access(beside, X_OK) != 0)
        KT_CHECK(ksv_find_engine(found, sizeof found, "x") == -1 && found[0] == '\0',
                 "ksv_find_engine: nothing found is -1");
    setenv("PATH", saved_path, 1);
    setenv("KSV_ENGINE", saved_env, 1);
    free(saved_env);
    free(saved_path);
}

/* Sends n V2 inferences of one all-zero row; returns how many answered 200 with an output. */
static int infer_rows(ksv_engine_client *c, long features, int n)
{
    char body[1024];
    int off = snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"input-0\",\"shape\":[1,%ld],"
                                          "\"datatype\":\"FP32\",\"data\":[", features);
    for (long i = 0; i < features && off < (int)sizeof body - 16; i++)
        off += snprintf(body + off, sizeof body - (size_t)off, "%s0.5", i ? "," : "");
    snprintf(body + off, sizeof body - (size_t)off, "]}]}");
    int good = 0;
    for (int i = 0; i < n; i++) {
        long status = 0;
        char *reply = NULL;
        ksv_err err;
        if (ksv_engine_client_request(c, "POST", "/v2/models/churn/infer", body, strlen(body),
                                      &status, &reply, NULL, &err) == 0 && status == 200) {
            json_object *o = json_tokener_parse(reply), *outs;
            if (o && json_object_object_get_ex(o, "outputs", &outs) &&
                json_object_array_length(outs) == 1)
                good++;
            json_object_put(o);
        }
        free(reply);
    }
    return good;
}

/* The traffic map of model `name` in a /state answer, as "rev=pct,rev=pct". */
static void traffic_of(json_object *state, const char *name, const char *key, char *out,
                       size_t cap)
{
    out[0] = '\0';
    json_object *models, *t;
    if (!json_object_object_get_ex(state, "models", &models))
        return;
    for (size_t i = 0; i < json_object_array_length(models); i++) {
        json_object *m = json_object_array_get_idx(models, i), *nm;
        if (!json_object_object_get_ex(m, "name", &nm) ||
            strcmp(json_object_get_string(nm), name) != 0 ||
            !json_object_object_get_ex(m, key, &t))
            continue;
        size_t used = 0;
        json_object_object_foreach(t, rev, pct)
        {
            int w = snprintf(out + used, cap - used, "%s%s=%d", used ? "," : "", rev,
                             json_object_get_int(pct));
            if (w < 0 || (size_t)w >= cap - used)
                break;
            used += (size_t)w;
        }
    }
}

/* Sum of ksv_requests_total samples carrying all the given label pairs. */
static double metric_sum(const char *text, const char *const *labels)
{
    double sum = 0;
    const char *p = text;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len < 1024 && strncmp(p, "ksv_requests_total{", 19) == 0) {
            char line[1024];
            memcpy(line, p, len);
            line[len] = '\0';
            bool all = true;
            for (size_t i = 0; labels[i]; i++)
                all = all && strstr(line, labels[i]) != NULL;
            const char *close = strrchr(line, '}');
            if (all && close)
                sum += strtod(close + 1, NULL);
        }
        p = eol ? eol + 1 : NULL;
    }
    return sum;
}

/* The "200" code count of (model, revision) in a /ksv/v1/histograms answer; -1 if absent. */
static long hist_code_count(json_object *h, const char *model, const char *rev)
{
    json_object *series;
    if (!json_object_object_get_ex(h, "series", &series))
        return -1;
    for (size_t i = 0; i < json_object_array_length(series); i++) {
        json_object *s = json_object_array_get_idx(series, i), *m, *r, *codes, *ok;
        if (json_object_object_get_ex(s, "model", &m) &&
            json_object_object_get_ex(s, "revision", &r) &&
            strcmp(json_object_get_string(m), model) == 0 &&
            strcmp(json_object_get_string(r), rev) == 0 &&
            json_object_object_get_ex(s, "codes", &codes) &&
            json_object_object_get_ex(codes, "200", &ok))
            return (long)json_object_get_int64(ok);
    }
    return -1;
}

/* Requests model churn answered, both revisions (the split sends one either way). */
static long churn_requests(json_object *h)
{
    long a = hist_code_count(h, "churn", "churn-00001"), b = hist_code_count(h, "churn", "churn-00002");
    return (a > 0 ? a : 0) + (b > 0 ? b : 0); /* -1: no request answered 200 yet */
}

/* GETs of /state and /histograms with If-None-Match: 304 (no body) while the answer is the
 * one the client holds, a new body and tag when it changed. Model "churn" is loaded. */
static void test_conditional_gets(ksv_engine_client *c, const char *uri, long features)
{
    ksv_err err;
    char etag[KSV_ENGINE_ETAG_MAX] = "", first[KSV_ENGINE_ETAG_MAX];
    char *text = NULL;
    size_t len = 0;
    int rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/state", etag, sizeof etag, &text,
                                              &len, &err);
    json_object *whole = NULL, *tagged = text ? json_tokener_parse(text) : NULL;
    KT_CHECK(rc == 0 && text && etag[0] == '"' && etag[strlen(etag) - 1] == '"',
             "state without a tag: the whole answer and its ETag %s", etag);
    KT_CHECK(ksv_engine_client_get_state(c, &whole, &err) == 0 && tagged &&
                 json_object_equal(whole, tagged), "it is the state a plain GET answers");
    json_object_put(whole);
    json_object_put(tagged);
    free(text);
    snprintf(first, sizeof first, "%s", etag);
    rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/state", etag, sizeof etag, &text, &len,
                                          &err);
    KT_CHECK(rc == 0 && !text && strcmp(etag, first) == 0, "state again with its tag: 304");

    char hist[KSV_ENGINE_ETAG_MAX] = "", hist0[KSV_ENGINE_ETAG_MAX];
    rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/histograms", hist, sizeof hist, &text,
                                          &len, &err);
    json_object *h0 = text ? json_tokener_parse(text) : NULL;
    KT_CHECK(rc == 0 && text && hist[0], "histograms: the whole answer and ETag %s", hist);
    free(text);
    snprintf(hist0, sizeof hist0, "%s", hist);
    rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/histograms", hist, sizeof hist, &text,
                                          &len, &err);
    KT_CHECK(rc == 0 && !text, "histograms again with their tag: 304");
    KT_CHECK(infer_rows(c, features, 1) == 1, "one more inference");
    rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/histograms", hist, sizeof hist, &text,
                                          &len, &err);
    json_object *h1 = text ? json_tokener_parse(text) : NULL;
    KT_CHECK(rc == 0 && h1 && strcmp(hist, hist0) != 0 &&
                 churn_requests(h1) == churn_requests(h0) + 1,
             "after it, the histograms come whole with a new tag and one more request");
    json_object_put(h0);
    json_object_put(h1);
    free(text);
    rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/state", etag, sizeof etag, &text, &len,
                                          &err);
    KT_CHECK(rc == 0 && !text, "traffic alone leaves the state unchanged: 304");

    /* A tag in a list, weak, or "*" matches; another tag or a header-breaking one does not. */
    const struct { const char *sent; bool match; } forms[] = {
        {"\"0000\", ", true}, {"W/", true}, {"*", true}, {"\"0000\"", false}, {"\r\nX: y", false},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char sent[KSV_ENGINE_ETAG_MAX];
        if (strcmp(forms[i].sent, "*") == 0 || !forms[i].match)
            snprintf(sent, sizeof sent, "%s", forms[i].sent);
        else
            snprintf(sent, sizeof sent, "%s%s", forms[i].sent, first);
        rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/state", sent, sizeof sent, &text,
                                              &len, &err);
        KT_CHECK(rc == 0 && (forms[i].match ? !text : text && strcmp(sent, first) == 0),
                 "If-None-Match form %zu: %s", i, forms[i].match ? "304" : "200 and the tag");
        free(text);
    }

    /* A change of state changes the tag; undoing it brings the same content and tag back. */
    ksv_engine_model_put put;
    ksv_engine_model_put_init(&put);
    ksv_engine_revision_put r = {.name = "tagged-00001", .storage_uri = uri, .traffic = 100};
    ksv_engine_model_put_add(&put, &r, &err);
    rc = ksv_engine_client_put_model(c, "tagged", &put, NULL, &err);
    if (rc == 0)
        rc = ksv_engine_client_wait_applied(c, "tagged", 10000, NULL, &err);
    KT_CHECK(rc == 0, "a second model loads: %s", rc == 0 ? "ok" : err.msg);
    rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/state", etag, sizeof etag, &text, &len,
                                          &err);
    KT_CHECK(rc == 0 && text && strstr(text, "tagged-00001") && strcmp(etag, first) != 0,
             "a new model: the new state with a new tag");
    free(text);
    KT_CHECK(ksv_engine_client_delete_model(c, "tagged", &err) == 0, "delete it");
    rc = ksv_engine_client_get_if_changed(c, "/ksv/v1/state", etag, sizeof etag, &text, &len,
                                          &err);
    KT_CHECK(rc == 0 && text && !strstr(text, "tagged-00001") && strcmp(etag, first) == 0,
             "deleted: the first state again, with the first tag");
    free(text);
    json_object *st = NULL;
    char was[KSV_ENGINE_ETAG_MAX];
    snprintf(was, sizeof was, "%s", etag);
    rc = ksv_engine_client_get_state_if_changed(c, etag, sizeof etag, &st, &err);
    KT_CHECK(rc == 0 && !st && strcmp(etag, was) == 0, "the parsed form: unchanged, no object");
    etag[0] = '\0';
    rc = ksv_engine_client_get_state_if_changed(c, etag, sizeof etag, &st, &err);
    KT_CHECK(rc == 0 && st && strcmp(etag, was) == 0, "the parsed form without a tag: the state");
    json_object_put(st);
}

static void test_model_lifecycle(const fixture *fx, const ksv_local_engine *le)
{
    ksv_engine_client *c = NULL;
    ksv_err err;
    KT_CHECK(ksv_engine_client_new(le->base_url, le->token, 5000, &c, &err) == 0, "client for %s",
             le->base_url);
    if (!c)
        return;
    KT_CHECK(ksv_engine_client_health(c, &err) == 0, "health answers");
    json_object *state = NULL;
    KT_CHECK(ksv_engine_client_get_state(c, &state, &err) == 0 &&
                 json_object_array_length(json_object_object_get(state, "models")) == 0,
             "a fresh engine has no models");
    json_object_put(state);

    char uri1[PATH_MAX + 32], uri2[PATH_MAX + 32];
    snprintf(uri1, sizeof uri1, "file://%s/models/churn-v1", fx->data);
    snprintf(uri2, sizeof uri2, "%s/models/churn-v2/model.json", fx->data);
    ksv_engine_model_put put;
    ksv_engine_model_put_init(&put);
    ksv_engine_revision_put r1 = {.name = "churn-00001", .runtime = "ksv-xgboost",
                                  .storage_uri = uri1, .traffic = 100};
    KT_CHECK(ksv_engine_model_put_add(&put, &r1, &err) == 0, "typed PUT body: one revision");
    char *body = NULL;
    KT_CHECK(ksv_engine_model_put_to_json(&put, &body, &err) == 0, "typed PUT body renders");
    json_object *parsed = body ? json_tokener_parse(body) : NULL, *x;
    KT_CHECK(parsed && json_object_object_get_ex(parsed, "traffic", &x) &&
                 json_object_get_int(json_object_object_get(x, "churn-00001")) == 100 &&
                 !json_object_object_get_ex(parsed, "rollback_window_s", &x) &&
                 !json_object_object_get_ex(
                     json_object_array_get_idx(json_object_object_get(parsed, "revisions"), 0),
                     "settings", &x),
             "PUT body: traffic map, defaults left out: %s", body ? body : "(null)");
    json_object_put(parsed);
    free(body);

    json_object *answer = NULL;
    int rc = ksv_engine_client_put_model(c, "churn", &put, &answer, &err);
    KT_CHECK(rc == 0, "put model churn (churn-v1): %s", rc == 0 ? "202" : err.msg);
    KT_CHECK(answer && strcmp(json_object_get_string(json_object_object_get(answer, "name")),
                              "churn") == 0, "PUT answers the model's state");
    json_object_put(answer);
    double t0 = ksv_mono_ms();
    rc = ksv_engine_client_wait_applied(c, "churn", 10000, &answer, &err);
    KT_CHECK(rc == 0, "wait_applied churn: %s (%.0f ms)", rc == 0 ? "applied" : err.msg,
             ksv_mono_ms() - t0);
    KT_CHECK(answer && json_object_get_boolean(json_object_object_get(answer, "traffic_applied")),
             "wait_applied hands back the applied state");
    json_object_put(answer);

    ksv_engine_model_status ms;
    rc = ksv_engine_client_get_model_status(c, "churn", &ms, &err);
    KT_CHECK(rc == 0 && ms.traffic_applied && ms.ready && !ms.pinned && ms.n_revisions == 1 &&
                 strcmp(ms.revisions[0].state, "ready") == 0 && ms.revisions[0].traffic == 100 &&
                 ms.revisions[0].num_features == 8 && ms.rollback_window_s == 600 &&
                 strcmp(ms.revisions[0].storage_uri, uri1) == 0,
             "typed model status: ready, 100%%, 8 features, window 600 s, URI kept");
    long features = rc == 0 && ms.n_revisions ? ms.revisions[0].num_features : 8;
    ksv_engine_model_status_free(&ms);

    const int n_infer = 7;
    KT_CHECK(infer_rows(c, features, n_infer) == n_infer, "%d inferences answered 200", n_infer);

    /* Second revision at 0%, then the 80/20 split. */
    ksv_engine_revision_put r2 = {.name = "churn-00002", .storage_uri = uri2,
                                  .container_concurrency = 64, .timeout_ms = 2000};
    r1.traffic = 100;
    KT_CHECK(ksv_engine_model_put_add(&put, &r2, &err) == 0, "typed PUT body: two revisions");
    put.rollback_window_s = 120;
    rc = ksv_engine_client_put_model(c, "churn", &put, NULL, &err);
    KT_CHECK(rc == 0, "put churn with churn-00002 at 0%%: %s", rc == 0 ? "202" : err.msg);
    KT_CHECK(ksv_engine_client_wait_applied(c, "churn", 10000, NULL, &err) == 0,
             "wait_applied after adding churn-00002");
    ksv_engine_traffic split[] = {{"churn-00001", 80}, {"churn-00002", 20}};
    KT_CHECK(ksv_engine_client_put_traffic(c, "churn", split, 2, NULL, &err) == 0,
             "put traffic 80/20");
    KT_CHECK(ksv_engine_client_wait_applied(c, "churn", 10000, NULL, &err) == 0,
             "wait_applied after 80/20");
    KT_CHECK(ksv_engine_client_get_state(c, &state, &err) == 0, "get_state");
    char traffic[256], effective[256];
    traffic_of(state, "churn", "traffic", traffic, sizeof traffic);
    traffic_of(state, "churn", "effective_traffic", effective, sizeof effective);
    KT_CHECK(strcmp(traffic, "churn-00001=80,churn-00002=20") == 0, "state traffic %s", traffic);
    KT_CHECK(strcmp(effective, "churn-00001=80,churn-00002=20") == 0, "state effective %s",
             effective);
    json_object *model0 = json_object_array_get_idx(json_object_object_get(state, "models"), 0);
    rc = ksv_engine_model_status_parse(model0, &ms, &err);
    KT_CHECK(rc == 0 && ms.n_revisions == 2 && ms.rollback_window_s == 120 &&
                 strcmp(ms.revisions[1].name, "churn-00002") == 0 &&
                 ms.revisions[1].desired_traffic == 20 && ms.revisions[0].desired_traffic == 80,
             "typed status from /state: two revisions, 80/20, window 120 s");
    ksv_engine_model_status_free(&ms);
    json_object_put(state);

    /* Traffic errors come back with the engine's status and words. */
    ksv_engine_traffic bad_sum[] = {{"churn-00001", 50}, {"churn-00002", 40}};
    rc = ksv_engine_client_put_traffic(c, "churn", bad_sum, 2, NULL, &err);
    KT_CHECK(rc != 0 && err.status == 400 && strstr(err.msg, "100"), "traffic 50/40: 400 (%s)",
             err.msg);
    ksv_engine_traffic bad_rev[] = {{"churn-00009", 100}};
    rc = ksv_engine_client_put_traffic(c, "churn", bad_rev, 1, NULL, &err);
    KT_CHECK(rc != 0 && err.status == 404 && strstr(err.msg, "churn-00009"),
             "traffic to an unknown revision: 404 (%s)", err.msg);
    rc = ksv_engine_client_get_model(c, "nosuch", &answer, &err);
    KT_CHECK(rc != 0 && err.status == 404 && answer == NULL, "unknown model: 404 (%s)", err.msg);
    rc = ksv_engine_client_get_model(c, "../state", &answer, &err);
    KT_CHECK(rc != 0 && err.status == 404, "a model name cannot climb the path: 404 (%s)", err.msg);

    ksv_engine_node_info node;
    rc = ksv_engine_client_get_node(c, &node, &err);
    KT_CHECK(rc == 0 && node.version[0] && node.threads == 1 && node.uptime_s >= 0 &&
                 node.cpus == get_nprocs() && node.n_gpus == 0 && node.max_body > 0 &&
                 strcmp(node.listen, le->base_url + 7) == 0,
             "node: version %s, threads %d (asked 1), cpus %d, uptime %.1f s, listen %s",
             node.version, node.threads, node.cpus, node.uptime_s, node.listen);

    json_object *hist = NULL;
    rc = ksv_engine_client_get_histograms(c, &hist, &err);
    long count = rc == 0 ? hist_code_count(hist, "churn", "churn-00001") : -1;
    KT_CHECK(count == n_infer, "histograms: churn-00001 has %ld code-200 requests (sent %d)", count,
             n_infer);
    json_object_put(hist);
    char *text = NULL;
    size_t len = 0;
    rc = ksv_engine_client_get_histograms_text(c, &text, &len, &err);
    json_object *again = rc == 0 ? json_tokener_parse(text) : NULL;
    KT_CHECK(again && hist_code_count(again, "churn", "churn-00001") == n_infer &&
                 len == strlen(text), "histograms as text parse to the same count");
    json_object_put(again);
    free(text);

    rc = ksv_engine_client_get_metrics_text(c, &text, &len, &err);
    const char *labels[] = {"model=\"churn\"", "revision=\"churn-00001\"", "code=\"200\"", NULL};
    double total = rc == 0 ? metric_sum(text, labels) : -1;
    KT_CHECK(rc == 0 && strstr(text, "ksv_requests_total") && total == n_infer,
             "metrics text: ksv_requests_total{churn,churn-00001,200} = %g (sent %d)", total,
             n_infer);
    free(text);

    ksv_engine_client_set_max_reply(c, 100, &err);
    rc = ksv_engine_client_get_metrics_text(c, &text, &len, &err);
    KT_CHECK(rc != 0 && err.status == 502 && strstr(err.msg, "over 100 bytes") && text == NULL,
             "a reply over the cap: 502 (%s)", err.msg);
    ksv_engine_client_set_max_reply(c, KSV_ENGINE_CLIENT_MAX_REPLY, &err);
    test_conditional_gets(c, uri1, features);

    /* A revision whose file is not a model: the load fails and wait_applied says so. */
    char bad_dir[PATH_MAX + 16], bad_file[PATH_MAX + 32];
    snprintf(bad_dir, sizeof bad_dir, "%s/bad-model", fx->base);
    snprintf(bad_file, sizeof bad_file, "%s/model.json", bad_dir);
    mkdir(bad_dir, 0700);
    FILE *f = fopen(bad_file, "w");
    if (f) {
        fputs("{\"this is\": \"not an xgboost model\"}\n", f);
        fclose(f);
    }
    ksv_engine_model_put broken;
    ksv_engine_model_put_init(&broken);
    ksv_engine_revision_put rb = {.name = "broken-00001", .storage_uri = bad_file,
                                  .traffic = 100};
    ksv_engine_model_put_add(&broken, &rb, &err);
    rc = ksv_engine_client_put_model(c, "broken", &broken, NULL, &err);
    if (rc == 0) {
        rc = ksv_engine_client_wait_applied(c, "broken", 10000, NULL, &err);
        KT_CHECK(rc != 0 && err.status == 500 && strstr(err.msg, "broken-00001 failed"),
                 "wait_applied on a model that cannot load: 500 (%s)", err.msg);
        KT_CHECK(ksv_engine_client_delete_model(c, "broken", &err) == 0, "delete broken");
    } else {
        KT_CHECK(err.status == 400, "a model file that is not a model is refused: %d (%s)",
                 err.status, err.msg);
    }

    KT_CHECK(ksv_engine_client_delete_model(c, "churn", &err) == 0, "delete churn");
    rc = ksv_engine_client_get_model(c, "churn", &answer, &err);
    KT_CHECK(rc != 0 && err.status == 404, "churn is gone after delete (404)");
    rc = ksv_engine_client_delete_model(c, "churn", &err);
    KT_CHECK(rc != 0 && err.status == 404, "deleting it again: 404 (%s)", err.msg);

    /* The engine may close after each answer; the client must never open more than one
     * connection per call (keep-alive itself is checked against the canned server). */
    printf("note: %ld connections opened for this engine's calls\n",
           ksv_engine_client_connections_opened(c));
    ksv_engine_client_free(c);

    /* Wrong and missing tokens. A client with a wrong token finds that the engine cannot
     * prove it holds that token, and sends it nowhere; the engine itself refuses a wrong
     * token (401) sent by hand. */
    ksv_engine_client *bad = NULL;
    KT_CHECK(ksv_engine_client_new(le->base_url, "not-the-token", 2000, &bad, &err) == 0,
             "client with a wrong token");
    rc = bad ? ksv_engine_client_get_state(bad, &state, &err) : -1;
    KT_CHECK(rc != 0 && err.status == 502 && strstr(err.msg, "not proven") &&
                 strstr(err.msg, "token was not sent") && !strstr(err.msg, le->token) &&
                 !strstr(err.msg, "not-the-token"),
             "wrong token: not proven, not sent (%s)", err.msg);
    ksv_engine_client_free(bad);
    KT_CHECK(ksv_engine_client_new(le->base_url, NULL, 2000, &bad, &err) == 0,
             "client without a token");
    /* The identity route needs no token, refuses a bad challenge, and proves the token
     * with a proof computed here from the engine's token file and address. */
    long http_status = 0;
    char *reply = NULL;
    rc = bad ? ksv_engine_client_request(bad, "GET", "/ksv/v1/identity?challenge=xyz", NULL, 0,
                                         &http_status, NULL, NULL, &err) : -1;
    KT_CHECK(rc == 0 && http_status == 400, "identity: a bad challenge is a 400 (%ld)",
             http_status);
    const char *challenge = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char path[200];
    snprintf(path, sizeof path, "/ksv/v1/identity?challenge=%s", challenge);
    rc = bad ? ksv_engine_client_request(bad, "GET", path, NULL, 0, &http_status, &reply, NULL,
                                         &err) : -1;
    json_object *id = rc == 0 && http_status == 200 ? json_tokener_parse(reply) : NULL, *v;
    const char *listen = NULL, *nonce = NULL, *proof = NULL;
    if (id && json_object_object_get_ex(id, "listen", &v))
        listen = json_object_get_string(v);
    if (id && json_object_object_get_ex(id, "nonce", &v))
        nonce = json_object_get_string(v);
    if (id && json_object_object_get_ex(id, "proof", &v))
        proof = json_object_get_string(v);
    char want[65] = "";
    if (listen && nonce && proof)
        ksv_identity_proof(le->token, challenge, nonce, listen, want);
    KT_CHECK(proof && strcmp(proof, want) == 0 && strcmp(listen, le->base_url + 7) == 0 &&
                 !strstr(reply, le->token),
             "identity: the engine proves its token for %s without sending it (%s)",
             listen ? listen : "?", reply ? reply : err.msg);
    json_object_put(id);
    free(reply);
    rc = bad ? ksv_engine_client_get_node(bad, &node, &err) : -1;
    KT_CHECK(rc != 0 && err.status == 401, "no token: 401 (%s)", err.msg);
    KT_CHECK(bad && ksv_engine_client_health(bad, &err) == 0, "health needs no token");
    ksv_engine_client_free(bad);
}

/* --- checks against sockets that misbehave ---------------------------------------------- */

static void test_unreachable(void)
{
    ksv_err err;
    int port = 0, fd = kt_listen_loopback(&port, 1);
    close(fd); /* nothing listens there now */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    ksv_engine_client *c = NULL;
    ksv_engine_client_new(url, "t", 2000, &c, &err);
    double t0 = ksv_mono_ms();
    json_object *state = NULL;
    int rc = c ? ksv_engine_client_get_state(c, &state, &err) : 0;
    KT_CHECK(rc != 0 && err.status == 503 && strstr(err.msg, "unreachable") && strstr(err.msg, url)
                 && state == NULL,
             "nothing listening: 503 in %.0f ms (%s)", ksv_mono_ms() - t0, err.msg);
    rc = c ? ksv_engine_client_wait_applied(c, "m", 300, NULL, &err) : 0;
    KT_CHECK(rc != 0 && err.status == 504 && strstr(err.msg, "unreachable"),
             "wait_applied on a dead node: 504 naming the last error (%s)", err.msg);
    ksv_engine_client_free(c);

    /* A listening socket that never accepts: the kernel completes the handshake, so only
     * the total timeout can end the call. Without a token the request itself goes out:
     * 504, the peer may still act on it. */
    fd = kt_listen_loopback(&port, 4);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    c = NULL;
    ksv_engine_client_new(url, NULL, 300, &c, &err);
    t0 = ksv_mono_ms();
    rc = c ? ksv_engine_client_get_state(c, &state, &err) : 0;
    double took = ksv_mono_ms() - t0;
    KT_CHECK(rc != 0 && err.status == 504 && ksv_engine_client_no_answer(&err) &&
                 strstr(err.msg, "no answer within 300 ms") && took >= 250 && took < 300 + 700,
             "a server that never answers: 504 (sent, it may still act) after %.0f ms (%s)", took,
             err.msg);
    ksv_engine_client_free(c);
    /* With a token, what goes out first is the identity check: no answer to it, and the
     * request was never sent (503, not 504: nothing can come of it). */
    c = NULL;
    ksv_engine_client_new(url, "t", 300, &c, &err);
    t0 = ksv_mono_ms();
    rc = c ? ksv_engine_client_get_state(c, &state, &err) : 0;
    took = ksv_mono_ms() - t0;
    KT_CHECK(rc != 0 && err.status == 503 && strstr(err.msg, "no proof of identity within 300 ms") &&
                 strstr(err.msg, "not sent") && took >= 250 && took < 300 + 700,
             "with a token, no answer to the identity check: 503, not sent, after %.0f ms (%s)",
             took, err.msg);
    KT_CHECK(c && strcmp(ksv_engine_client_base_url(c), url) != 0 &&
                 strncmp(ksv_engine_client_base_url(c), url, strlen(url) - 1) == 0,
             "the base URL's trailing slash is dropped");
    ksv_engine_client_free(c);
    close(fd);

    /* A connect that times out sent nothing: 503 (push.c records FAILED, not UNCONFIRMED). */
    int filler = -1;
    fd = kt_listen_full(&port, &filler);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    c = NULL;
    ksv_engine_client_new(url, "t", 300, &c, &err);
    t0 = ksv_mono_ms();
    rc = c ? ksv_engine_client_get_state(c, &state, &err) : 0;
    took = ksv_mono_ms() - t0;
    KT_CHECK(rc != 0 && err.status == 503 && ksv_engine_client_no_answer(&err) &&
                 strstr(err.msg, "unreachable") && took >= 250 && took < 300 + 700,
             "a connect that times out: 503 (nothing sent) after %.0f ms (%s)", took, err.msg);
    ksv_engine_client_free(c);
    if (filler >= 0)
        close(filler);
    if (fd >= 0)
        close(fd);

    const char *bad_urls[] = {"", "ftp://127.0.0.1:1", "127.0.0.1:8080", "http://",
                              "http://127.0.0.1:8080/ksv", "http://user@127.0.0.1:1",
                              "http://127.0.0.1:8080?x=1", "file:///etc/passwd", NULL};
    for (size_t i = 0; bad_urls[i]; i++) {
        c = NULL;
        rc = ksv_engine_client_new(bad_urls[i], "t", 100, &c, &err);
        KT_CHECK(rc != 0 && c == NULL && err.status == 400, "bad node URL \"%s\": 400",
                 bad_urls[i]);
    }
    rc = ksv_engine_client_new(NULL, "t", 100, &c, &err);
    KT_CHECK(rc != 0 && err.status == 400, "NULL node URL: 400");
}

typedef enum { CALL_STATE, CALL_NODE, CALL_MODEL_STATUS, CALL_METRICS, CALL_HEALTH } call_kind;

typedef struct bad_reply_case {
    const char *what;
    const char *raw;      /* a whole raw answer, or NULL to use status + body */
    size_t raw_len;       /* 0: strlen(raw) */
    int status;
    const char *body;
    call_kind call;
    int want_status;
    const char *want_text;
} bad_reply_case;

static int run_call(ksv_engine_client *c, call_kind call, ksv_err *err)
{
    json_object *obj = NULL;
    ksv_engine_node_info node;
    ksv_engine_model_status ms;
    char *text = NULL;
    int rc;
    switch (call) {
    case CALL_STATE:
        rc = ksv_engine_client_get_state(c, &obj, err);
        break;
    case CALL_NODE:
        rc = ksv_engine_client_get_node(c, &node, err);
        break;
    case CALL_MODEL_STATUS:
        rc = ksv_engine_client_get_model_status(c, "m", &ms, err);
        if (rc == 0)
            ksv_engine_model_status_free(&ms);
        break;
    case CALL_METRICS:
        rc = ksv_engine_client_get_metrics_text(c, &text, NULL, err);
        break;
    default:
        rc = ksv_engine_client_health(c, err);
        break;
    }
    json_object_put(obj);
    free(text);
    return rc;
}

static void test_bad_replies(void)
{
    canned_server srv;
    if (canned_start(&srv) != 0) {
        KT_CHECK(false, "start the canned server");
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    ksv_engine_client *c = NULL;
    ksv_err err;
    const char *token = "s3cret-token-value";
    snprintf(srv.token, sizeof srv.token, "%s", token);
    ksv_engine_client_new(url, token, 1000, &c, &err);
    if (!c) {
        KT_CHECK(false, "client for the canned server");
        canned_stop(&srv);
        return;
    }
    char deep[4100];
    memset(deep, '[', 2000);
    memset(deep + 2000, ']', 2000);
    deep[4000] = '\0';
    static const char nul_body[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"models\":[]}\0x";
    static const char node_ok[] =
        "{\"version\":\"0.1.0\",\"threads\":2,\"uptime_s\":1.5,\"gpus\":[{\"index\":0,"
        "\"name\":\"H100\",\"utilization_ratio\":0.5,\"memory_used_bytes\":10,"
        "\"memory_total_bytes\":80}],\"load\":{\"inflight\":3,\"loadavg\":[1,2,3],\"cpus\":16},"
        "\"events\":{\"log_id\":\"ab12\",\"last_seq\":42}}";
    const bad_reply_case cases[] = {
        {"5 bytes of {{{{{", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{{{{{", 0, 0, NULL,
         CALL_STATE, 502, "bad reply from engine"},
        {"trailing bytes", NULL, 0, 200, "{\"models\":[]} x", CALL_STATE, 502, "after the JSON"},
        {"empty 200 body", NULL, 0, 200, "", CALL_STATE, 502, "empty reply"},
        {"truncated JSON", NULL, 0, 200, "{\"models\":[", CALL_STATE, 502, "truncated"},
        {"an array, not an object", NULL, 0, 200, "[1]", CALL_STATE, 502, "expected a JSON object"},
        {"models is not an array", NULL, 0, 200, "{\"models\":1}", CALL_STATE, 502, "models"},
        {"nesting 2000 deep", NULL, 0, 200, deep, CALL_STATE, 502, "bad reply"},
        {"NUL inside the body", nul_body, sizeof nul_body - 1, 0, NULL, CALL_STATE, 502,
         "bad reply"},
        {"not HTTP at all", "garbage\r\n\r\n", 0, 0, NULL, CALL_STATE, 502, "bad reply"},
        {"body shorter than Content-Length",
         "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":", 0, 0, NULL, CALL_STATE, 502,
         "bad reply"},
        {"Content-Length over the cap",
         "HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n{}", 0, 0, NULL, CALL_STATE, 502,
         "over"},
        {"a redirect is not followed",
         "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n", 0, 0,
         NULL, CALL_STATE, 502, "redirects are not followed"},
        {"engine error JSON", NULL, 0, 503, "{\"error\":\"overloaded: try later\"}", CALL_STATE, 503,
         "overloaded: try later"},
        {"HTTP error with a text body", NULL, 0, 500, "boom", CALL_STATE, 500, "HTTP 500"},
        {"error JSON with a non-string error", NULL, 0, 409, "{\"error\":1}", CALL_STATE, 409,
         "HTTP 409"},
        {"node: version is a number", NULL, 0, 200,
         "{\"version\":1,\"threads\":2,\"uptime_s\":1}", CALL_NODE, 502, "version"},
        {"node: threads missing", NULL, 0, 200, "{\"version\":\"1\",\"uptime_s\":1}", CALL_NODE, 502,
         "threads"},
        {"node: loadavg of 2", NULL, 0, 200,
         "{\"version\":\"1\",\"threads\":1,\"uptime_s\":1,\"load\":{\"loadavg\":[1,2]}}",
         CALL_NODE, 502, "loadavg"},
        {"node: gpus is an object", NULL, 0, 200,
         "{\"version\":\"1\",\"threads\":1,\"uptime_s\":1,\"gpus\":{}}", CALL_NODE, 502, "gpus"},
        {"node: events is a number", NULL, 0, 200,
         "{\"version\":\"1\",\"threads\":1,\"uptime_s\":1,\"events\":7}", CALL_NODE, 502,
         "node.events"},
        {"node: events without last_seq", NULL, 0, 200,
         "{\"version\":\"1\",\"threads\":1,\"uptime_s\":1,\"events\":{\"log_id\":\"a\"}}",
         CALL_NODE, 502, "last_seq"},
        {"node: negative last_seq", NULL, 0, 200,
         "{\"version\":\"1\",\"threads\":1,\"uptime_s\":1,\"events\":{\"log_id\":\"a\","
         "\"last_seq\":-1}}", CALL_NODE, 502, "out of range"},
        {"node: negative threads", NULL, 0, 200,
         "{\"version\":\"1\",\"threads\":-4,\"uptime_s\":1}", CALL_NODE, 502, "out of range"},
        {"model: only a name", NULL, 0, 200, "{\"name\":\"m\"}", CALL_MODEL_STATUS, 502, "pinned"},
        {"model: revisions not an array", NULL, 0, 200,
         "{\"name\":\"m\",\"pinned\":false,\"ready\":true,\"traffic_applied\":true,"
         "\"revisions\":{}}", CALL_MODEL_STATUS, 502, "revisions"},
        {"model: revision traffic 300", NULL, 0, 200,
         "{\"name\":\"m\",\"pinned\":false,\"ready\":true,\"traffic_applied\":true,"
         "\"revisions\":[{\"name\":\"m-1\",\"state\":\"ready\",\"traffic\":300,"
         "\"desired_traffic\":100}]}", CALL_MODEL_STATUS, 502, "out of range"},
        {"model: revision is a string", NULL, 0, 200,
         "{\"name\":\"m\",\"pinned\":false,\"ready\":true,\"traffic_applied\":true,"
         "\"revisions\":[\"m-1\"]}", CALL_MODEL_STATUS, 502, "not an object"},
        {"model: load_seconds is a string", NULL, 0, 200,
         "{\"name\":\"m\",\"pinned\":false,\"ready\":true,\"traffic_applied\":true,"
         "\"revisions\":[{\"name\":\"m-1\",\"state\":\"ready\",\"traffic\":1,"
         "\"desired_traffic\":1,\"load_seconds\":\"x\"}]}", CALL_MODEL_STATUS, 502, "number"},
        {"health: 503", NULL, 0, 503, "{\"error\":\"shutting down\"}", CALL_HEALTH, 503,
         "shutting down"},
        {"metrics: 404 text", NULL, 0, 404, "not here", CALL_METRICS, 404, "not here"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_reply_case *k = &cases[i];
        if (k->raw)
            canned_set_raw(&srv, k->raw, k->raw_len ? k->raw_len : strlen(k->raw));
        else
            canned_set(&srv, k->status, k->body);
        ksv_err_clear(&err);
        int rc = run_call(c, k->call, &err);
        KT_CHECK(rc != 0 && err.status == k->want_status && strstr(err.msg, k->want_text) &&
                     !strstr(err.msg, token),
                 "%s: %d \"%s\"", k->what, err.status, err.msg);
    }

    /* Good canned answers parse into the typed structs. */
    canned_set(&srv, 200, node_ok);
    ksv_engine_node_info node;
    int rc = ksv_engine_client_get_node(c, &node, &err);
    KT_CHECK(rc == 0 && node.n_gpus == 1 && node.gpus[0].utilization_ratio == 0.5 &&
                 node.gpus[0].memory_total_bytes == 80 && strcmp(node.gpus[0].name, "H100") == 0 &&
                 node.inflight == 3 && node.loadavg[2] == 3 && node.cpus == 16 && node.cuda[0] == 0 &&
                 node.events_last_seq == 42 && strcmp(node.events_log_id, "ab12") == 0,
             "node with a GPU and an event log parses");
    canned_set(&srv, 200, "{\"version\":\"1\",\"threads\":1,\"uptime_s\":1}");
    rc = ksv_engine_client_get_node(c, &node, &err);
    KT_CHECK(rc == 0 && node.events_last_seq == -1 && node.events_log_id[0] == 0,
             "an engine without an event log says so (-1)");

    /* The request itself: method, path encoding, bearer token, no Expect. */
    char req[8192];
    canned_set(&srv, 200, "{\"name\":\"a/b c\",\"pinned\":false,\"ready\":false,"
                          "\"traffic_applied\":true,\"revisions\":[]}");
    json_object *obj = NULL;
    rc = ksv_engine_client_get_model(c, "a/b c", &obj, &err);
    json_object_put(obj);
    canned_last_request(&srv, req, sizeof req);
    char auth[128];
    snprintf(auth, sizeof auth, "\r\nAuthorization: Bearer %s\r\n", token);
    KT_CHECK(rc == 0 && strncmp(req, "GET /ksv/v1/models/a%2Fb%20c HTTP/1.1\r\n", 39) == 0,
             "the model name is one percent-encoded path segment");
    KT_CHECK(strstr(req, auth) != NULL, "the bearer token is sent");
    ksv_engine_traffic split[] = {{"m-00001", 30}, {"m-\"2", 70}};
    rc = ksv_engine_client_put_traffic(c, "m", split, 2, NULL, &err);
    canned_last_request(&srv, req, sizeof req);
    const char *body = strstr(req, "\r\n\r\n");
    json_object *sent = body ? json_tokener_parse(body + 4) : NULL, *t = NULL;
    KT_CHECK(rc == 0 && strncmp(req, "PUT /ksv/v1/models/m/traffic HTTP/1.1", 37) == 0 &&
                 strcasestr(req, "\r\nContent-Type: application/json") &&
                 !strcasestr(req, "Expect:") && sent &&
                 json_object_object_get_ex(sent, "traffic", &t) &&
                 json_object_get_int(json_object_object_get(t, "m-\"2")) == 70 &&
                 json_object_get_int(json_object_object_get(t, "m-00001")) == 30,
             "put_traffic sends PUT .../traffic with a JSON body json-c reads back");
    json_object_put(sent);
    rc = ksv_engine_client_delete_model(c, "m", &err);
    canned_last_request(&srv, req, sizeof req);
    KT_CHECK(rc == 0 && strncmp(req, "DELETE /ksv/v1/models/m HTTP/1.1", 32) == 0,
             "delete sends DELETE");

    /* wait_applied: a revision that failed, and a split that never applies. */
    canned_set(&srv, 200,
               "{\"name\":\"m\",\"pinned\":false,\"ready\":true,\"traffic_applied\":false,"
               "\"revisions\":[{\"name\":\"m-00001\",\"state\":\"ready\",\"traffic\":100,"
               "\"desired_traffic\":0},{\"name\":\"m-00002\",\"state\":\"failed\","
               "\"traffic\":0,\"desired_traffic\":100,\"error\":\"cannot parse model.json\"}]}");
    rc = ksv_engine_client_wait_applied(c, "m", 2000, &obj, &err);
    KT_CHECK(rc != 0 && err.status == 500 && strstr(err.msg, "m-00002") &&
                 strstr(err.msg, "cannot parse model.json") && obj != NULL,
             "wait_applied: a failed revision is reported (%s)", err.msg);
    json_object_put(obj);
    canned_set(&srv, 200,
               "{\"name\":\"m\",\"pinned\":false,\"ready\":true,\"traffic_applied\":false,"
               "\"revisions\":[{\"name\":\"m-00002\",\"state\":\"loading\",\"traffic\":0,"
               "\"desired_traffic\":100}]}");
    double t0 = ksv_mono_ms();
    rc = ksv_engine_client_wait_applied(c, "m", 400, NULL, &err);
    double took = ksv_mono_ms() - t0;
    KT_CHECK(rc != 0 && err.status == 504 && strstr(err.msg, "m-00002 (loading)") && took >= 390 &&
                 took < 400 + 700,
             "wait_applied times out after %.0f ms (asked 400): %s", took, err.msg);
    canned_set(&srv, 404, "{\"error\":\"model m not found\"}");
    rc = ksv_engine_client_wait_applied(c, "m", 2000, NULL, &err);
    KT_CHECK(rc != 0 && err.status == 404, "wait_applied on a deleted model: 404 at once");

    long status = 0;
    char *reply = NULL;
    size_t len = 0;
    canned_set(&srv, 418, "{\"error\":\"teapot\"}");
    rc = ksv_engine_client_request(c, "POST", "/v2/models/m/infer", "{}", 2, &status, &reply,
                                   &len, &err);
    KT_CHECK(rc == 0 && status == 418 && len == strlen(reply) && strstr(reply, "teapot"),
             "raw request hands back any status and body");
    free(reply);
    rc = ksv_engine_client_request(c, "GET", "no-slash", NULL, 0, &status, NULL, NULL, &err);
    KT_CHECK(rc != 0 && err.status == 400, "a path without '/' is refused");

    /* Keep-alive: a server that keeps the connection open gets every call on one. */
    pthread_mutex_lock(&srv.lock);
    srv.keep_alive = true;
    pthread_mutex_unlock(&srv.lock);
    canned_set(&srv, 200, "{\"models\":[]}");
    /* The first call finds the last connection closed: it proves a new one (the connection
     * it opened for itself is dropped unused, the token not sent on it: test_identity). */
    json_object *first = NULL;
    ksv_engine_client_get_state(c, &first, &err);
    json_object_put(first);
    pthread_mutex_lock(&srv.lock);
    int conns_before = srv.connections;
    pthread_mutex_unlock(&srv.lock);
    long opened_before = ksv_engine_client_connections_opened(c);
    int good = 0;
    for (int i = 0; i < 5; i++) {
        json_object *st = NULL;
        good += ksv_engine_client_get_state(c, &st, &err) == 0;
        json_object_put(st);
    }
    pthread_mutex_lock(&srv.lock);
    int conns = srv.connections - conns_before;
    srv.keep_alive = false;
    pthread_mutex_unlock(&srv.lock);
    long opened = ksv_engine_client_connections_opened(c) - opened_before;
    KT_CHECK(good == 5 && conns == 0 && opened == 0,
             "5 more calls on the one kept-alive connection (server saw %d new, client opened "
             "%ld)", conns, opened);

    ksv_engine_client_free(c);
    canned_stop(&srv);
}

/* HMAC-SHA-256 against RFC 4231's test cases 1, 2 and 6 (a key longer than a block). */
static void test_hmac(void)
{
    struct { const char *key, *msg, *want; size_t key_len; } cases[] = {
        {"\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b",
         "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 20},
        {"Jefe", "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 4},
        {NULL, "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 131},
    };
    char big_key[131];
    memset(big_key, 0xaa, sizeof big_key);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t mac[32];
        char hex[65];
        const char *key = cases[i].key ? cases[i].key : big_key;
        ksv_hmac_sha256(key, cases[i].key_len, cases[i].msg, strlen(cases[i].msg), mac);
        ksv_sha256_digest_hex(mac, hex);
        KT_CHECK(strcmp(hex, cases[i].want) == 0, "HMAC-SHA-256, RFC 4231 case %zu", i);
    }
}

/* Finding 10 of issue 11: the token goes only to a peer that proves it holds it. Each
 * wrong peer here records every byte it receives; none may hold the token. */
static void test_identity(void)
{
    const char *token = "the-one-admin-token-0123456789";
    ksv_err err;
    struct { const char *what, *peer_token, *expect; } wrong[] = {
        {"a process that answers 200 to everything", "", NULL},
        {"an engine with another token", "some-other-engines-token", NULL},
        {"the right engine, but not where this node's engine listens", token, "127.0.0.1:1"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        canned_server srv;
        if (canned_start(&srv) != 0) {
            KT_CHECK(false, "start the canned server");
            return;
        }
        snprintf(srv.token, sizeof srv.token, "%s", wrong[i].peer_token);
        canned_set(&srv, 200, "{\"models\":[],\"version\":\"1\",\"threads\":1,"
                              "\"uptime_s\":1}");
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
        ksv_engine_client *c = NULL;
        ksv_engine_client_new(url, token, 2000, &c, &err);
        if (c && wrong[i].expect)
            ksv_engine_client_expect_listen(c, wrong[i].expect);
        json_object *state = NULL;
        int rc1 = c ? ksv_engine_client_get_state(c, &state, &err) : 0;
        json_object_put(state);
        ksv_engine_model_put m;
        ksv_engine_model_put_init(&m);
        ksv_engine_revision_put rev = {.name = "m-00001", .storage_uri = "/m", .traffic = 100};
        ksv_engine_model_put_add(&m, &rev, &err);
        ksv_err err2;
        int rc2 = c ? ksv_engine_client_put_model(c, "m", &m, NULL, &err2) : 0;
        ksv_engine_client_free(c);
        pthread_mutex_lock(&srv.lock);
        bool leaked = strstr(srv.all, token) != NULL || strcasestr(srv.all, "Authorization");
        bool asked = strstr(srv.all, "GET /ksv/v1/identity?challenge=") != NULL;
        bool only_identity = !strstr(srv.all, "/ksv/v1/state");
        pthread_mutex_unlock(&srv.lock);
        KT_CHECK(rc1 != 0 && rc2 != 0 && err.status == 502 && strstr(err.msg, "not proven") &&
                     strstr(err.msg, "the token was not sent") && !strstr(err.msg, token),
                 "%s: refused (%s)", wrong[i].what, err.msg);
        KT_CHECK(asked && !leaked && only_identity && !strstr(srv.all, "PUT "),
                 "%s: it was asked for a proof and received no token and no change",
                 wrong[i].what);
        canned_stop(&srv);
    }

    /* The right engine, closing the connection after each answer: every new connection is
     * proven again before the token travels on it, and calls still succeed. */
    canned_server srv;
    if (canned_start(&srv) != 0) {
        KT_CHECK(false, "start the canned server");
        return;
    }
    snprintf(srv.token, sizeof srv.token, "%s", token);
    canned_set(&srv, 200, "{\"models\":[]}");
    char url[64], listen[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", srv.port);
    ksv_engine_client *c = NULL;
    ksv_engine_client_new(url, token, 2000, &c, &err);
    if (c)
        ksv_engine_client_expect_listen(c, listen);
    int good = 0;
    for (int i = 0; i < 4; i++) {
        json_object *state = NULL;
        good += c && ksv_engine_client_get_state(c, &state, &err) == 0;
        json_object_put(state);
    }
    ksv_engine_client_free(c);
    pthread_mutex_lock(&srv.lock);
    int proofs = srv.identity_requests, requests = srv.requests;
    pthread_mutex_unlock(&srv.lock);
    KT_CHECK(good == 4 && requests == 4 && proofs == 4,
             "an engine that closes each connection: %d of 4 calls, each after its own proof "
             "(%d proofs)", good, proofs);
    canned_stop(&srv);
}

static void test_put_builder_errors(void)
{
    ksv_engine_model_put m;
    ksv_err err;
    ksv_engine_model_put_init(&m);
    char *body = NULL;
    KT_CHECK(ksv_engine_model_put_to_json(&m, &body, &err) != 0 && err.status == 400 && !body,
             "PUT body without revisions: 400");
    ksv_engine_revision_put nameless = {.storage_uri = "/m", .traffic = 100};
    KT_CHECK(ksv_engine_model_put_add(&m, &nameless, &err) != 0 && err.status == 400,
             "revision without a name: 400");
    ksv_engine_revision_put no_uri = {.name = "m-00001", .traffic = 100};
    KT_CHECK(ksv_engine_model_put_add(&m, &no_uri, &err) != 0 && err.status == 400,
             "revision without a storage URI: 400");
    ksv_engine_revision_put too_much = {.name = "m-00001", .storage_uri = "/m", .traffic = 101};
    KT_CHECK(ksv_engine_model_put_add(&m, &too_much, &err) != 0 && err.status == 400,
             "traffic 101: 400");
    ksv_engine_revision_put ok = {.name = "m-00001", .storage_uri = "/m"};
    for (int i = 0; i < KSV_ENGINE_MAX_REVISIONS; i++)
        ksv_engine_model_put_add(&m, &ok, &err);
    KT_CHECK(ksv_engine_model_put_add(&m, &ok, &err) != 0 && m.n_revisions == 16,
             "a 17th revision: 400");
    m.rollback_window_s = 0;
    m.revisions[0].booster_pool = "shared";
    m.revisions[0].predict_threads = 2;
    m.revisions[0].name = "quote\"and\\slash";
    KT_CHECK(ksv_engine_model_put_to_json(&m, &body, &err) == 0, "PUT body renders");
    json_object *o = body ? json_tokener_parse(body) : NULL, *revs, *r0, *settings, *x;
    KT_CHECK(o && json_object_object_get_ex(o, "rollback_window_s", &x) &&
                 json_object_get_int(x) == 0 && json_object_object_get_ex(o, "revisions", &revs) &&
                 (r0 = json_object_array_get_idx(revs, 0)) &&
                 strcmp(json_object_get_string(json_object_object_get(r0, "name")),
                        "quote\"and\\slash") == 0 &&
                 json_object_object_get_ex(r0, "settings", &settings) &&
                 json_object_get_int(json_object_object_get(settings, "predict_threads")) == 2 &&
                 strcmp(json_object_get_string(json_object_object_get(settings, "booster_pool")),
                        "shared") == 0 &&
                 !json_object_object_get_ex(settings, "timeout_ms", &x),
             "PUT body: escaping, settings set and unset, rollback window 0 kept");
    json_object_put(o);
    free(body);
}

/* --- the local node launcher ------------------------------------------------------------ */

static void test_local_node(fixture *fx)
{
    ksv_err err;
    ksv_local_engine le, again;
    const char *extra[] = {"--threads", "1", "--log-level", "info", NULL};
    snprintf(fx->state_a, sizeof fx->state_a, "%s/a/state", fx->base);

    KT_CHECK(!ksv_local_engine_running(fx->state_a), "no engine runs on a fresh state dir");
    int rc = ksv_local_engine_attach(fx->state_a, 200, &le, &err);
    KT_CHECK(rc != 0 && err.status == 404, "attach with nothing running: 404 (%s)", err.msg);
    KT_CHECK(ksv_local_engine_stop(fx->state_a, 1000, &err) == 0, "stop with nothing running: 0");

    double t0 = ksv_mono_ms();
    rc = ksv_local_engine_start(fx->engine, fx->state_a, extra, &le, &err);
    KT_CHECK(rc == 0 && le.started && le.pid > 0 &&
                 strncmp(le.base_url, "http://127.0.0.1:", 17) == 0,
             "start: pid %ld at %s in %.0f ms (%s)", (long)le.pid, le.base_url, ksv_mono_ms() - t0,
             rc == 0 ? "started" : err.msg);
    if (rc != 0)
        return;
    remember_pid(le.pid);
    check_local_engine_files(fx, &le);
    KT_CHECK(ksv_local_engine_running(fx->state_a), "the lock is held while it runs");

    rc = ksv_local_engine_start(fx->engine, fx->state_a, extra, &again, &err);
    KT_CHECK(rc == 0 && !again.started && again.pid == le.pid &&
                 strcmp(again.base_url, le.base_url) == 0 && strcmp(again.token, le.token) == 0,
             "start again attaches to the running engine (pid %ld)", (long)again.pid);
    rc = ksv_local_engine_attach(fx->state_a, 2000, &again, &err);
    KT_CHECK(rc == 0 && again.pid == le.pid && strcmp(again.base_url, le.base_url) == 0,
             "attach finds the same engine");

    test_model_lifecycle(fx, &le);

    /* Stop: the process goes, the lock frees, the port stops answering. */
    t0 = ksv_mono_ms();
    rc = ksv_local_engine_stop(fx->state_a, 5000, &err);
    KT_CHECK(rc == 0 && pid_gone_within(le.pid, 2000) && !ksv_local_engine_running(fx->state_a),
             "stop: pid %ld gone in %.0f ms", (long)le.pid, ksv_mono_ms() - t0);
    ksv_engine_client *c = NULL;
    ksv_engine_client_new(le.base_url, le.token, 1000, &c, &err);
    rc = c ? ksv_engine_client_health(c, &err) : 0;
    KT_CHECK(rc != 0 && err.status == 503 && strstr(err.msg, "unreachable"),
             "a stopped engine is unreachable (%s)", err.msg);
    ksv_engine_client_free(c);
    KT_CHECK(ksv_local_engine_stop(fx->state_a, 1000, &err) == 0, "stopping it again: 0");

    /* A restart on the same state dir: the stale address file is replaced. */
    rc = ksv_local_engine_start(fx->engine, fx->state_a, extra, &again, &err);
    KT_CHECK(rc == 0 && again.started && again.pid != le.pid && strcmp(again.token, le.token) == 0,
             "restart: new pid %ld, same token (%s)", (long)again.pid, rc == 0 ? "ok" : err.msg);
    if (rc == 0) {
        remember_pid(again.pid);
        char path[PATH_MAX + 32], address[256];
        snprintf(path, sizeof path, "%s/address", fx->state_a);
        read_first_line(path, address, sizeof address);
        KT_CHECK(strcmp(again.base_url + 7, address) == 0, "the address file names the new port");
        /* A hard kill leaves lock and address files behind: start must not trust them. */
        kill(again.pid, SIGKILL);
        KT_CHECK(pid_gone_within(again.pid, 3000), "SIGKILLed engine gone");
        ksv_local_engine third;
        rc = ksv_local_engine_start(fx->engine, fx->state_a, extra, &third, &err);
        KT_CHECK(rc == 0 && third.started && third.pid != again.pid,
                 "start after a crash: new pid %ld (%s)", (long)third.pid,
                 rc == 0 ? "ok" : err.msg);
        if (rc == 0) {
            remember_pid(third.pid);
            KT_CHECK(ksv_local_engine_stop(fx->state_a, 5000, &err) == 0 &&
                         pid_gone_within(third.pid, 2000), "stop the third engine");
        }
    }

    /* Launch failures. */
    char state_b[PATH_MAX + 16];
    snprintf(state_b, sizeof state_b, "%s/b", fx->base);
    rc = ksv_local_engine_start("/nonexistent/ksv-engine", state_b, NULL, &again, &err);
    KT_CHECK(rc != 0 && err.status == 404, "an engine path that does not exist: 404 (%s)", err.msg);
    const char *bogus[] = {"--no-such-flag", NULL};
    t0 = ksv_mono_ms();
    rc = ksv_local_engine_start(fx->engine, state_b, bogus, &again, &err);
    KT_CHECK(rc != 0 && err.status == 503 && strstr(err.msg, "exited at start") &&
                 ksv_mono_ms() - t0 < 5000,
             "an engine that exits at once is reported in %.0f ms (%s)", ksv_mono_ms() - t0, err.msg);
    if (rc == 0)
        remember_pid(again.pid);

    /* An engine whose token lives elsewhere cannot be attached: said at once, and the
     * engine launched for nothing is stopped again. */
    char state_c[PATH_MAX + 16], token_file[PATH_MAX + 16];
    snprintf(state_c, sizeof state_c, "%s/c", fx->base);
    snprintf(token_file, sizeof token_file, "%s/elsewhere.token", fx->base);
    FILE *f = fopen(token_file, "w");
    if (f) {
        fputs("elsewhere\n", f);
        fclose(f);
    }
    const char *token_args[] = {"--token-file", token_file, NULL};
    t0 = ksv_mono_ms();
    rc = ksv_local_engine_start(fx->engine, state_c, token_args, &again, &err);
    double took = ksv_mono_ms() - t0;
    pid_t stray = 0;
    char lock_path[PATH_MAX + 32], pid_text[32];
    snprintf(lock_path, sizeof lock_path, "%s/lock", state_c);
    read_first_line(lock_path, pid_text, sizeof pid_text);
    stray = (pid_t)atoi(pid_text);
    if (stray > 0)
        remember_pid(stray);
    KT_CHECK(rc != 0 && err.status == 500 && strstr(err.msg, "token") && took < 3000 &&
                 !ksv_local_engine_running(state_c) && (stray <= 0 || pid_gone_within(stray, 2000)),
             "engine with --token-file: refused in %.0f ms and stopped (%s)", took, err.msg);
}

int main(int argc, char **argv)
{
    (void)argc;
    kt_set_verbose(true);
    install_cleanup();
    signal(SIGPIPE, SIG_IGN);
    fixture fx;
    memset(&fx, 0, sizeof fx);
    if (ksv_find_engine(fx.engine, sizeof fx.engine, argv[0]) != 0) {
        printf("SKIP: no ksv-engine (set KSV_ENGINE)\n");
        return 77;
    }
    const char *data = getenv("KSV_DATA_DIR"), *src = getenv("KSV_SRCDIR");
    if (data && *data)
        snprintf(fx.data, sizeof fx.data, "%s", data);
    else
        snprintf(fx.data, sizeof fx.data, "%s/data", src && *src ? src : KSV_SRCDIR);
    char abs_data[PATH_MAX];
    if (realpath(fx.data, abs_data))
        snprintf(fx.data, sizeof fx.data, "%s", abs_data);
    printf("engine %s, data %s\n", fx.engine, fx.data);
    snprintf(fx.base, sizeof fx.base, "/tmp/ksv-test-engine-client-XXXXXX");
    if (!mkdtemp(fx.base)) {
        printf("FAIL - mkdtemp: %s\n", strerror(errno));
        return 1;
    }

    check_find_engine(&fx, argv[0]);
    test_put_builder_errors();
    test_hmac();
    test_identity();
    test_unreachable();
    test_bad_replies();
    test_local_node(&fx);

    kill_engines();
    nftw(fx.base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return kt_summary("test_engine_client");
}
