/* test_http_client.c: src/http's policies against real HTTP and HTTPS servers on loopback
 * (tests/http_fixture.py): buffered and streamed replies, reply caps, timeouts, refused
 * connects, redirects (never from https down to http), TLS verification, proxies from the
 * environment, cancellation, a batch of concurrent requests, URL parsing and escaping. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "http/http_client.h"

#include "ktest.h"

typedef struct fixture {
    pid_t pid;
    int to_child;     /* closing it ends the server */
    int port;
} fixture;

/* Starts http_fixture.py (with TLS when cert is set); waits up to 20 s for its port. */
static int fixture_start(fixture *f, const char *cert, const char *key)
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    char script[4096];
    snprintf(script, sizeof script, "%s/tests/http_fixture.py", KSV_SRCDIR);
    f->pid = fork();
    if (f->pid < 0)
        return -1;
    if (f->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        if (cert)
            execlp("python3", "python3", script, "--tls", cert, key, (char *)NULL);
        else
            execlp("python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    f->to_child = in[1];
    char line[64] = "";
    size_t n = 0;
    double deadline = ksv_mono_s() + 20;
    while (n < sizeof line - 1 && !strchr(line, '\n') && ksv_mono_s() < deadline) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t r = read(out[0], line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        line[n] = '\0';
    }
    close(out[0]);
    if (sscanf(line, "PORT %d", &f->port) != 1) {
        printf("http_fixture.py did not start (%s)\n", line);
        return -1;
    }
    return 0;
}

static void fixture_stop(fixture *f)
{
    close(f->to_child);
    int st;
    waitpid(f->pid, &st, 0);
}

static ksv_http_client *client(const ksv_http_options *o)
{
    ksv_http_client *c = NULL;
    ksv_err err;
    if (ksv_http_client_new(o, &c, &err) != 0)
        KT_FAIL("client: %s\n", err.msg);
    return c;
}

/* GET url with options o; returns the status (0 on failure), the body in *body. */
static long get(const ksv_http_options *o, const char *url, ksv_sb *body, ksv_http_result *res,
                ksv_err *err)
{
    ksv_http_client *c = client(o);
    if (!c)
        return 0;
    ksv_http_call call = {.url = url};
    int rc = ksv_http_perform(c, &call, body, res, err);
    ksv_http_client_free(c);
    return rc == 0 ? res->status : 0;
}

static void test_buffered(int port)
{
    char url[256];
    ksv_sb body;
    ksv_http_result res;
    ksv_err err;
    ksv_http_options plain = {.timeout_ms = 5000, .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};

    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    long st = get(&plain, url, &body, &res, &err);
    KT_CHECK(st == 200 && res.failure == KSV_HTTP_OK && body.len == 5 &&
                 strcmp(body.data, "hello") == 0,
             "GET /ok: %ld %s\n", st, st ? body.data : err.msg);
    ksv_sb_free(&body);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/status/404", port);
    st = get(&plain, url, &body, &res, &err);
    KT_CHECK(st == 404 && strcmp(body.data, "nope") == 0,
             "an HTTP error status is an answer, not a failure: %ld\n", st);
    ksv_sb_free(&body);

    /* A POST body of 4 KiB: libcurl would send "Expect: 100-continue" and wait for it. */
    ksv_http_client *c = client(&plain);
    static const char *const extra[] = {"X-Test: 1", "Content-Type: text/plain", NULL};
    char big[4096];
    memset(big, 'b', sizeof big);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
    ksv_http_call post = {.url = url, .headers = extra, .body = big, .body_len = sizeof big};
    int rc = ksv_http_perform(c, &post, &body, &res, &err);
    KT_CHECK(rc == 0 && strncmp(body.data, "POST\n1\n-\ntext/plain\n", 20) == 0 &&
                 body.len == 20 + sizeof big,
             "POST with extra headers and no Expect: %.40s\n", rc == 0 ? body.data : err.msg);
    ksv_sb_free(&body);
    ksv_http_call put = {.method = "PUT", .url = url};
    rc = ksv_http_perform(c, &put, &body, &res, &err);
    KT_CHECK(rc == 0 && strncmp(body.data, "PUT\n-\n-\n", 8) == 0,
             "PUT without a body sends an empty one: %s\n", rc == 0 ? body.data : err.msg);
    ksv_sb_free(&body);
    /* The same client, again: the connection is reused. */
    rc = ksv_http_perform(c, &put, &body, &res, &err);
    KT_CHECK(rc == 0 && res.connections_opened == 0, "a second call reuses the connection (%ld)\n",
             res.connections_opened);
    ksv_sb_free(&body);
    ksv_http_client_free(c);

    ksv_http_options capped = {.timeout_ms = 5000, .max_reply = 100};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big", port);
    st = get(&capped, url, &body, &res, &err);
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_TOO_LARGE && err.status == 502 &&
                 body.len == 0,
             "a Content-Length over the cap: %s (%s)\n", err.msg,
             ksv_http_failure_name(res.failure));
    snprintf(url, sizeof url, "http://127.0.0.1:%d/chunked?n=1000", port);
    st = get(&capped, url, &body, &res, &err);
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_TOO_LARGE,
             "a chunked reply growing over the cap: %s\n", err.msg);

    ksv_http_options quick = {.timeout_ms = 300, .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", port);
    double t0 = ksv_mono_s();
    st = get(&quick, url, &body, &res, &err);
    double took = ksv_mono_s() - t0;
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_TIMEOUT && err.status == 504 && took < 2.5,
             "a slow server hits the timeout in %.2f s: %s\n", took, err.msg);

    /* A connect that times out sent nothing: KSV_HTTP_E_CONNECT (503), never the 504 that
     * tells a caller the peer may have got the request. */
    int full_port = 0, filler = -1, full = kt_listen_full(&full_port, &filler);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", full_port);
    t0 = ksv_mono_s();
    st = get(&quick, url, &body, &res, &err);
    took = ksv_mono_s() - t0;
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_CONNECT && err.status == 503 && took >= 0.25 &&
                 took < 2.5,
             "a connect that times out: %s in %.2f s: %s\n", ksv_http_failure_name(res.failure),
             took, err.msg);
    if (filler >= 0)
        close(filler);
    if (full >= 0)
        close(full);
}

static void test_connect_and_proxy(int port)
{
    char url[256];
    ksv_sb body;
    ksv_http_result res;
    ksv_err err;
    ksv_http_options direct = {.timeout_ms = 5000, .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", kt_free_port());
    long st = get(&direct, url, &body, &res, &err);
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_CONNECT && err.status == 503 &&
                 strstr(err.msg, url),
             "nothing listening: %s\n", err.msg);
    /* The error names the URL by its display form: no query value, no password. */
    snprintf(url, sizeof url, "http://u:PW1@127.0.0.1:%d/ok?token=TOK1", kt_free_port());
    st = get(&direct, url, &body, &res, &err);
    KT_CHECK(st == 0 && !strstr(err.msg, "TOK1") && !strstr(err.msg, "PW1") &&
                 strstr(err.msg, "?token=REDACTED") && strstr(err.msg, "u:REDACTED@"),
             "an error keeps a URL's credentials out: %s\n", err.msg);

    /* A proxy that does not exist: only the clients that honour the environment use it. */
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", kt_free_port());
    setenv("http_proxy", proxy, 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    st = get(&direct, url, &body, &res, &err);
    KT_CHECK(st == 200, "KSV_HTTP_PROXY_NONE ignores $http_proxy: %ld %s\n", st,
             st ? "" : err.msg);
    if (st)
        ksv_sb_free(&body);
    ksv_http_options env = {.timeout_ms = 5000, .proxy = KSV_HTTP_PROXY_ENV,
                            .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    st = get(&env, url, &body, &res, &err);
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_CONNECT,
             "KSV_HTTP_PROXY_ENV goes through $http_proxy: %ld %s\n", st, st ? "" : err.msg);
    if (st)
        ksv_sb_free(&body);
    unsetenv("http_proxy");
}

static void test_redirects(int port)
{
    char url[256];
    ksv_sb body;
    ksv_http_result res;
    ksv_err err;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=/ok", port);
    ksv_http_options none = {.timeout_ms = 5000, .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    long st = get(&none, url, &body, &res, &err);
    KT_CHECK(st == 302, "a redirect is an answer unless following is asked for: %ld\n", st);
    if (st)
        ksv_sb_free(&body);
    ksv_http_options follow = {.timeout_ms = 5000, .max_redirects = 3,
                               .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    st = get(&follow, url, &body, &res, &err);
    KT_CHECK(st == 200 && strcmp(body.data, "hello") == 0, "max_redirects 3 follows it: %ld\n",
             st);
    if (st)
        ksv_sb_free(&body);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=ftp://127.0.0.1/x", port);
    st = get(&follow, url, &body, &res, &err);
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_OTHER,
             "a redirect to another protocol is refused: %s\n", err.msg);
}

typedef struct seen {
    long status;
    bool chunked_header;
    size_t bytes;
    bool all_y;
    int progress_calls;
    int stop_after;       /* > 0: stop after this many chunks */
    int chunks;
} seen;

static int on_header(long status, const char *line, size_t len, void *user)
{
    seen *s = user;
    s->status = status;
    if (len >= 26 && strncasecmp(line, "Transfer-Encoding: chunked", 26) == 0)
        s->chunked_header = true;
    return 0;
}

static int on_data(const char *data, size_t len, void *user)
{
    seen *s = user;
    for (size_t i = 0; i < len; i++)
        s->all_y &= data[i] == 'y';
    s->bytes += len;
    s->chunks++;
    return s->stop_after > 0 && s->chunks >= s->stop_after;
}

static int on_progress(long long done, long long total, void *user)
{
    ((seen *)user)->progress_calls++;
    return 0;
}

typedef struct delayed_flag {
    atomic_bool *flag;
    long ms;
} delayed_flag;

static void *raise_later(void *arg)
{
    delayed_flag *d = arg;
    struct timespec ts = {.tv_sec = d->ms / 1000, .tv_nsec = (d->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(d->flag, true);
    return NULL;
}

static void test_stream(int port)
{
    char url[256];
    ksv_http_result res;
    ksv_err err;
    ksv_http_options o = {.timeout_ms = 10000, .max_reply = 4096};
    ksv_http_client *c = client(&o);
    if (!c)
        return;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/chunked?n=100000", port);
    seen s = {.all_y = true};
    ksv_http_stream_fns fns = {.on_header = on_header, .on_data = on_data,
                               .on_progress = on_progress, .user = &s};
    ksv_http_call call = {.url = url};
    /* max_reply bounds a stream too. */
    int rc = ksv_http_stream(c, &call, &fns, &res, &err);
    KT_CHECK(rc != 0 && res.failure == KSV_HTTP_E_TOO_LARGE && s.bytes <= 4096,
             "a stream over max_reply stops at %zu bytes: %s\n", s.bytes, err.msg);
    ksv_http_client_free(c);

    /* A cap of 0 is refused, not read as a default: a silent 64 MiB once stopped every
     * larger model download. */
    o.max_reply = 0;
    KT_CHECK(ksv_http_client_new(&o, &c, &err) != 0 && err.status == 400 && c == NULL,
             "max_reply 0 is refused: %s\n", err.msg);
    o.max_reply = KSV_HTTP_NO_REPLY_CAP;
    c = client(&o);
    KT_CHECK(c && ksv_http_client_set_max_reply(c, 0, &err) != 0 && err.status == 400,
             "set_max_reply 0 is refused: %s\n", err.msg);
    s = (seen){.all_y = true};
    rc = ksv_http_stream(c, &call, &fns, &res, &err);
    KT_CHECK(rc == 0 && res.status == 200 && s.status == 200 && s.chunked_header &&
                 s.bytes == 100000 && s.all_y && s.progress_calls > 0,
             "a stream: status %ld, %zu bytes in %d chunks, chunked header %d, %d progress calls\n",
             s.status, s.bytes, s.chunks, s.chunked_header, s.progress_calls);

    s = (seen){.all_y = true, .stop_after = 1};
    rc = ksv_http_stream(c, &call, &fns, &res, &err);
    KT_CHECK(rc != 0 && res.failure == KSV_HTTP_E_CANCELLED && err.status == 499 &&
                 s.chunks == 1,
             "on_data returning nonzero stops the stream: %s\n", err.msg);

    atomic_bool cancel = false;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", port);
    ksv_http_call slow = {.url = url, .cancel = &cancel};
    delayed_flag d = {.flag = &cancel, .ms = 200};
    pthread_t th;
    pthread_create(&th, NULL, raise_later, &d);
    double t0 = ksv_mono_s();
    rc = ksv_http_stream(c, &slow, NULL, &res, &err);
    double took = ksv_mono_s() - t0;
    pthread_join(th, NULL);
    KT_CHECK(rc != 0 && res.failure == KSV_HTTP_E_CANCELLED && took < 2.0,
             "the cancel flag stops a waiting request in %.2f s: %s\n", took, err.msg);
    ksv_http_client_free(c);
}

static void test_batch(int port)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    ksv_err err;
    ksv_http_batch *b;
    if (ksv_http_batch_new(4, &b, &err) != 0) {
        KT_FAIL("batch: %s\n", err.msg);
        return;
    }
    ksv_http_options o = {.timeout_ms = 5000, .http1 = true,
                          .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    ksv_http_client *cs[4];
    int tags[4], ok = 0, done = 0, sent = 0;
    for (int i = 0; i < 4; i++) {
        cs[i] = client(&o);
        tags[i] = i;
    }
    ksv_http_call call = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    for (int i = 0; i < 4; i++)
        sent += ksv_http_batch_add(b, cs[i], &call, &tags[i], &err) == 0;
    double deadline = ksv_mono_s() + 10;
    while (done < 20 && ksv_mono_s() < deadline) {
        ksv_http_batch_perform(b);
        void *tag;
        ksv_http_result res;
        while (ksv_http_batch_next_done(b, &tag, &res)) {
            done++;
            ok += res.status == 200;
            if (res.status != 200)
                printf("batch request %d: %ld %s %s\n", done, res.status,
                       ksv_http_failure_name(res.failure), res.message);
            int i = *(int *)tag;
            if (sent < 20)
                sent += ksv_http_batch_add(b, cs[i], &call, tag, &err) == 0;
        }
        ksv_http_batch_wait(b, 50);
    }
    KT_CHECK(done == 20 && ok == 20, "a batch of 20 requests over 4 clients: %d done, %d ok\n",
             done, ok);
    ksv_http_batch_free(b);
    for (int i = 0; i < 4; i++)
        ksv_http_client_free(cs[i]);
}

static void test_tls(int http_port)
{
    char dir[] = "/tmp/ksv-test-http-XXXXXX";
    if (!mkdtemp(dir)) {
        KT_FAIL("mkdtemp\n");
        return;
    }
    char cmd[1024], cert[256], key[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1",
             key, cert);
    if (system(cmd) != 0) {
        printf("skip TLS checks: openssl could not make a certificate\n");
        return;
    }
    fixture tls;
    if (fixture_start(&tls, cert, key) != 0) {
        KT_FAIL("https fixture did not start\n");
        return;
    }
    char url[512];
    ksv_sb body;
    ksv_http_result res;
    ksv_err err;
    snprintf(url, sizeof url, "https://127.0.0.1:%d/ok", tls.port);
    ksv_http_options system_cas = {.timeout_ms = 5000, .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    long st = get(&system_cas, url, &body, &res, &err);
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_TLS,
             "a certificate no CA vouches for is refused: %s (%s)\n", err.msg,
             ksv_http_failure_name(res.failure));
    ksv_http_options ours = {.timeout_ms = 5000, .ca_file = cert, .max_redirects = 3,
                             .max_reply = KSV_HTTP_DEFAULT_MAX_REPLY};
    st = get(&ours, url, &body, &res, &err);
    KT_CHECK(st == 200 && strcmp(body.data, "hello") == 0, "with its CA it verifies: %ld %s\n",
             st, st ? "" : err.msg);
    if (st)
        ksv_sb_free(&body);

    /* https -> http is refused; http -> https is fine. */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/redirect?to=http://127.0.0.1:%d/ok",
             tls.port, http_port);
    st = get(&ours, url, &body, &res, &err);
    KT_CHECK(st == 0 && res.failure == KSV_HTTP_E_OTHER,
             "a redirect from https down to http is refused: %s\n", err.msg);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=https://127.0.0.1:%d/ok",
             http_port, tls.port);
    st = get(&ours, url, &body, &res, &err);
    KT_CHECK(st == 200, "a redirect from http up to https is followed: %ld %s\n", st,
             st ? "" : err.msg);
    if (st)
        ksv_sb_free(&body);
    fixture_stop(&tls);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

static void test_urls(void)
{
    ksv_http_url u;
    ksv_err err;
    int rc = ksv_http_url_parse("http://user@Example.org:8080/a/b?q=1#f", &u, &err);
    KT_CHECK(rc == 0 && strcmp(u.scheme, "http") == 0 && strcmp(u.host, "Example.org") == 0 &&
                 strcmp(u.path, "/a/b") == 0 && u.port == 8080 && u.has_user && u.has_query &&
                 u.has_fragment,
             "URL parts: %s %s %s %d\n", u.scheme, u.host, u.path, u.port);
    rc = ksv_http_url_parse("http://h", &u, &err);
    KT_CHECK(rc == 0 && !u.has_port && !u.has_query && strcmp(u.full, "http://h/") == 0,
             "a bare host: %s\n", u.full);
    KT_CHECK(ksv_http_url_parse("not a url", &u, &err) != 0 && err.status == 400,
             "not a URL: %s\n", err.msg);
    KT_CHECK(ksv_http_url_parse(NULL, &u, &err) != 0, "NULL is not a URL\n");
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_http_escape(&sb, "a b/\xc3\xbc-._~");
    ksv_sb_putc(&sb, '\0');
    KT_CHECK_STR(sb.data, "a%20b%2F%C3%BC-._~", "escaping");
    ksv_sb_free(&sb);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ksv_err err;
    if (ksv_http_global_init(&err) != 0 || ksv_http_global_init(&err) != 0) {
        printf("FAIL global init: %s\n", err.msg);
        return 1;
    }
    fixture f;
    if (fixture_start(&f, NULL, NULL) != 0)
        return 1;
    test_buffered(f.port);
    test_connect_and_proxy(f.port);
    test_redirects(f.port);
    test_stream(f.port);
    test_batch(f.port);
    test_tls(f.port);
    test_urls();
    fixture_stop(&f);
    return kt_summary("test_http_client");
}
