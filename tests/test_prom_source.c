/* test_prom_source: the Prometheus HTTP API client of `ksv-top --prometheus`.
 *
 * 1. ksv_prom_parse_vector on answers shaped as Prometheus documents them
 *    (https://prometheus.io/docs/prometheus/latest/querying/api/: {"status":"success",
 *    "data":{"resultType":"vector","result":[{"metric":{..},"value":[t,"v"]}]}}), and on a
 *    table of broken ones: each must fail with a message, never crash.
 * 2. URL validation: a table of good and bad base URLs.
 * 3. A round against a tiny HTTP server in a thread that answers each PromQL query with a
 *    canned document: figures merged per revision and per model, ERR% 0 when the errors
 *    query has no series, NaN quantiles as no data, an error document or garbage as
 *    "no data" plus a message, a server that never answers bounded by the timeout, and a
 *    closed port ending the round after one failure. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "control/prom_source.h"

#include "ktest.h"

/* ---- 1. parsing ---------------------------------------------------------------------- */

static void test_parse_good(void)
{
    const char *doc =
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
        "{\"metric\":{\"model\":\"fraud\",\"revision\":\"fraud-00002\",\"job\":\"ksv\"},"
        "\"value\":[1700000000.123,\"12.5\"]},"
        "{\"metric\":{\"model\":\"fraud\",\"revision\":\"fraud-00001\"},"
        "\"value\":[1700000000,\"NaN\"]},"
        "{\"metric\":{\"model\":\"churn\"},\"value\":[1700000000.5,\"+Inf\"]},"
        "{\"metric\":{\"model\":\"iris\",\"revision\":\"iris-1\"},\"value\":[1,\"-Inf\"]},"
        "{\"metric\":{\"model\":\"big\",\"revision\":\"r\"},\"value\":[1,\"1e400\"]}"
        "]},\"warnings\":[\"ignored\"]}\n";
    ksv_prom_vector v;
    ksv_err err;
    int rc = ksv_prom_parse_vector(doc, strlen(doc), 200, &v, &err);
    KT_CHECK(rc == 0 && v.n == 5, "a documented vector answer parses (5 samples)");
    if (rc != 0)
        return;
    /* Sorted by (model, revision). */
    KT_CHECK(strcmp(v.items[0].model, "big") == 0 && isinf(v.items[0].value),
             "an overflowing literal is +Inf, not garbage");
    KT_CHECK(strcmp(v.items[1].model, "churn") == 0 && v.items[1].revision[0] == '\0' &&
                 isinf(v.items[1].value) && v.items[1].value > 0,
             "a series without revision has revision \"\"; \"+Inf\" is +Inf");
    KT_CHECK(strcmp(v.items[2].revision, "fraud-00001") == 0 && isnan(v.items[2].value),
             "\"NaN\" is NaN");
    KT_CHECK(strcmp(v.items[3].revision, "fraud-00002") == 0 && v.items[3].value == 12.5,
             "\"12.5\" is 12.5, extra labels ignored");
    KT_CHECK(isinf(v.items[4].value) && v.items[4].value < 0, "\"-Inf\" is -Inf");
    ksv_prom_vector_free(&v);

    const char *empty = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}";
    rc = ksv_prom_parse_vector(empty, strlen(empty), 200, &v, &err);
    KT_CHECK(rc == 0 && v.n == 0, "an empty vector is 0 samples, not an error");
    ksv_prom_vector_free(&v);

    char longlabel[400];
    snprintf(longlabel, sizeof longlabel,
             "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
             "{\"metric\":{\"model\":\"%0200d\"},\"value\":[1,\"1\"]},"
             "{\"metric\":{\"model\":\"m\"},\"value\":[1,\"2\"]}]}}", 0);
    rc = ksv_prom_parse_vector(longlabel, strlen(longlabel), 200, &v, &err);
    KT_CHECK(rc == 0 && v.n == 1 && strcmp(v.items[0].model, "m") == 0 && v.items[0].value == 2,
             "a series with a label too long for a ksv name is skipped");
    ksv_prom_vector_free(&v);
}

typedef struct broken_case {
    const char *what;
    const char *body;
    long http_status;
    const char *msg_has;     /* the message names the problem */
} broken_case;

#define OK_HEAD "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
#define OK_TAIL "]}}"

static const broken_case broken[] = {
    {"empty body", "", 200, "empty"},
    {"HTML error page", "<html><body>502 Bad Gateway</body></html>", 502, "not JSON"},
    {"plain text 200", "hello", 200, "not a JSON"},
    {"truncated JSON", OK_HEAD "{\"metric\":{\"model\":\"a\"},\"value\":[1,\"1\"", 200, "not a JSON"},
    {"trailing garbage", OK_HEAD OK_TAIL "xyz", 200, "not a JSON"},
    {"two documents", OK_HEAD OK_TAIL OK_HEAD OK_TAIL, 200, "not a JSON"},
    {"a JSON array", "[1,2,3]", 200, "status"},
    {"a JSON string", "\"success\"", 200, "status"},
    {"null", "null", 200, "not a JSON"},
    {"status missing", "{\"data\":{}}", 200, "status"},
    {"status not a string", "{\"status\":1}", 200, "status"},
    {"error document 400",
     "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error at char 5\"}", 400,
     "bad_data: parse error at char 5"},
    {"error document 503",
     "{\"status\":\"error\",\"errorType\":\"unavailable\",\"error\":\"TSDB not ready\"}", 503,
     "unavailable"},
    {"error document without fields", "{\"status\":\"error\"}", 422, "no message"},
    {"error with non-string fields", "{\"status\":\"error\",\"errorType\":7,\"error\":[1]}", 422,
     "no message"},
    {"success with HTTP 500", OK_HEAD OK_TAIL, 500, "HTTP 500"},
    {"data missing", "{\"status\":\"success\"}", 200, "data"},
    {"data not an object", "{\"status\":\"success\",\"data\":[]}", 200, "data"},
    {"resultType missing", "{\"status\":\"success\",\"data\":{\"result\":[]}}", 200, "resultType"},
    {"result missing", "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\"}}", 200,
     "result"},
    {"a scalar", "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,\"2\"]}}",
     200, "scalar"},
    {"a matrix",
     "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}", 200, "matrix"},
    {"vector with an object result",
     "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":{}}}", 200, "vector"},
    {"sample not an object", OK_HEAD "1" OK_TAIL, 200, "sample 0"},
    {"sample without metric", OK_HEAD "{\"value\":[1,\"1\"]}" OK_TAIL, 200, "sample 0"},
    {"metric not an object", OK_HEAD "{\"metric\":[],\"value\":[1,\"1\"]}" OK_TAIL, 200, "sample 0"},
    {"sample without value", OK_HEAD "{\"metric\":{}}" OK_TAIL, 200, "sample 0"},
    {"value not an array", OK_HEAD "{\"metric\":{},\"value\":\"1\"}" OK_TAIL, 200, "sample 0"},
    {"value with one element", OK_HEAD "{\"metric\":{},\"value\":[\"1\"]}" OK_TAIL, 200, "sample 0"},
    {"value with three elements", OK_HEAD "{\"metric\":{},\"value\":[1,\"1\",2]}" OK_TAIL, 200,
     "sample 0"},
    {"timestamp a string", OK_HEAD "{\"metric\":{},\"value\":[\"1\",\"1\"]}" OK_TAIL, 200,
     "timestamp"},
    {"value a number, not a string", OK_HEAD "{\"metric\":{},\"value\":[1,1.5]}" OK_TAIL, 200,
     "value"},
    {"value empty string", OK_HEAD "{\"metric\":{},\"value\":[1,\"\"]}" OK_TAIL, 200, "value"},
    {"value not a number", OK_HEAD "{\"metric\":{},\"value\":[1,\"abc\"]}" OK_TAIL, 200, "value"},
    {"value with trailing text", OK_HEAD "{\"metric\":{},\"value\":[1,\"1.5x\"]}" OK_TAIL, 200,
     "value"},
    {"value with leading space", OK_HEAD "{\"metric\":{},\"value\":[1,\" 1\"]}" OK_TAIL, 200,
     "value"},
    {"value with an embedded NUL", OK_HEAD "{\"metric\":{},\"value\":[1,\"1\\u00002\"]}" OK_TAIL,
     200, "value"},
    {"value null", OK_HEAD "{\"metric\":{},\"value\":[1,null]}" OK_TAIL, 200, "value"},
    {"label not a string", OK_HEAD "{\"metric\":{\"model\":5},\"value\":[1,\"1\"]}" OK_TAIL, 200,
     "label"},
    {"second sample broken",
     OK_HEAD "{\"metric\":{\"model\":\"a\"},\"value\":[1,\"1\"]},{\"metric\":{}}" OK_TAIL, 200,
     "sample 1"},
    {"one series twice",
     OK_HEAD "{\"metric\":{\"model\":\"a\",\"revision\":\"r\"},\"value\":[1,\"1\"]},"
             "{\"metric\":{\"model\":\"a\",\"revision\":\"r\"},\"value\":[2,\"3\"]}" OK_TAIL,
     200, "twice"},
    {"deeply nested", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]"
                      "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
     200, "not a JSON"},
};

static void test_parse_broken(void)
{
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        const broken_case *c = &broken[i];
        ksv_prom_vector v = {(ksv_prom_point *)1, 99}; /* must be reset by the parser */
        ksv_err err;
        ksv_err_clear(&err);
        int rc = ksv_prom_parse_vector(c->body, strlen(c->body), c->http_status, &v, &err);
        char what[1024];
        snprintf(what, sizeof what, "broken answer: %s -> error naming \"%s\" (got: %s)", c->what,
                 c->msg_has, rc == 0 ? "success" : err.msg);
        KT_CHECK(rc == -1 && v.items == NULL && v.n == 0 && strstr(err.msg, c->msg_has) != NULL,
                 "%s", what);
    }
    /* Bytes after a NUL inside the buffer count: the body is len bytes, not a C string. */
    const char nul[] = OK_HEAD OK_TAIL "\0garbage";
    ksv_prom_vector v;
    ksv_err err;
    KT_CHECK(ksv_prom_parse_vector(nul, sizeof nul - 1, 200, &v, &err) == -1,
             "broken answer: a NUL and bytes after the document");
    KT_CHECK(ksv_prom_parse_vector(NULL, 0, 200, &v, &err) == -1, "broken answer: no body at all");
}

/* ---- 2. URLs --------------------------------------------------------------------------- */

static void test_urls(void)
{
    static const struct {
        const char *url;
        const char *want;   /* the normalised base URL, NULL: rejected */
    } cases[] = {
        {"http://127.0.0.1:9090", "http://127.0.0.1:9090"},
        {"http://127.0.0.1:9090/", "http://127.0.0.1:9090"},
        {"https://prom.example.com/prometheus/", "https://prom.example.com/prometheus"},
        {"HTTP://Example.com:9090", "http://Example.com:9090"},
        {"http://[::1]:9090", "http://[::1]:9090"},
        {"", NULL},
        {"127.0.0.1:9090", NULL},
        {"prometheus", NULL},
        {"ftp://host:21", NULL},
        {"file:///etc/passwd", NULL},
        {"http://", NULL},
        {"http:///api", NULL},
        {"http://host:9090/?x=1", NULL},
        {"http://host:9090/#top", NULL},
        {"http://host :9090", NULL},
        {"http://host:9090\n", NULL},
        {"http://host:99999", NULL},
        {"http://host:port", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ksv_prom_options o = {.url = cases[i].url};
        ksv_prom_source *s = NULL;
        ksv_err err;
        ksv_err_clear(&err);
        int rc = ksv_prom_source_new(&o, &s, &err);
        char what[1200];
        if (cases[i].want) {
            snprintf(what, sizeof what, "URL \"%s\" accepted as %s (got %s)", cases[i].url,
                     cases[i].want, rc == 0 ? ksv_prom_source_url(s) : err.msg);
            KT_CHECK(rc == 0 && strcmp(ksv_prom_source_url(s), cases[i].want) == 0, "%s", what);
        } else {
            snprintf(what, sizeof what, "URL \"%s\" rejected with a message", cases[i].url);
            KT_CHECK(rc == -1 && s == NULL && err.status == 400 && err.msg[0], "%s", what);
        }
        ksv_prom_source_free(s);
    }
    ksv_prom_options none = {.url = NULL};
    ksv_prom_source *s = NULL;
    ksv_err err;
    KT_CHECK(ksv_prom_source_new(&none, &s, &err) == -1 && s == NULL, "no URL is rejected");
}

/* ---- 3. rounds against a canned server ------------------------------------------------- */

typedef struct canned {
    const char *query_has;   /* picks the answer by a substring of the decoded query */
    int status;
    const char *body;
} canned;

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    bool hang;               /* accept and never answer */
    const canned *answers;
    size_t n_answers;
    atomic_int requests;
} server;

static void url_decode(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < cap; i++) {
        if (in[i] == '%' && in[i + 1] && in[i + 2]) {
            char hex[3] = {in[i + 1], in[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = in[i] == '+' ? ' ' : in[i];
        }
    }
    out[o] = '\0';
}

static void answer_one(server *sv, int c)
{
    char req[8192];
    size_t len = 0;
    while (len + 1 < sizeof req) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0)
            return;
        ssize_t r = recv(c, req + len, sizeof req - 1 - len, 0);
        if (r <= 0)
            return;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    atomic_fetch_add(&sv->requests, 1);
    if (sv->hang) {
        while (!atomic_load(&sv->stop))
            usleep(20000);
        return;
    }
    char query[8192] = "";
    const char *q = strstr(req, "query=");
    const char *sp = q ? strchr(q, ' ') : NULL;
    if (q && sp) {
        char raw[8192];
        size_t n = (size_t)(sp - (q + 6));
        if (n >= sizeof raw)
            n = sizeof raw - 1;
        memcpy(raw, q + 6, n);
        raw[n] = '\0';
        url_decode(raw, query, sizeof query);
    }
    int status = 200;
    const char *body =
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}";
    for (size_t i = 0; i < sv->n_answers; i++)
        if (strstr(query, sv->answers[i].query_has)) {
            status = sv->answers[i].status;
            body = sv->answers[i].body;
            break;
        }
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, strlen(body));
    if (send(c, head, (size_t)hn, MSG_NOSIGNAL) < 0 ||
        send(c, body, strlen(body), MSG_NOSIGNAL) < 0)
        return;
}

static void *server_main(void *arg)
{
    server *sv = arg;
    while (!atomic_load(&sv->stop)) {
        struct pollfd p = {sv->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(sv->fd, NULL, NULL);
        if (c < 0)
            continue;
        answer_one(sv, c);
        close(c);
    }
    return NULL;
}

static int server_start(server *sv)
{
    atomic_init(&sv->stop, false);
    atomic_init(&sv->requests, 0);
    sv->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (sv->fd < 0 || bind(sv->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(sv->fd, 16) != 0 || getsockname(sv->fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    sv->port = ntohs(a.sin_port);
    return pthread_create(&sv->thread, NULL, server_main, sv) == 0 ? 0 : -1;
}

static void server_stop(server *sv)
{
    atomic_store(&sv->stop, true);
    pthread_join(sv->thread, NULL);
    close(sv->fd);
}

static int round_with(server *sv, long timeout_ms, ksv_prom_round *r, ksv_err *err)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", sv->port);
    ksv_prom_options o = {.url = url, .timeout_ms = timeout_ms};
    ksv_prom_source *s;
    if (ksv_prom_source_new(&o, &s, err) != 0)
        return -2;
    int rc = ksv_prom_source_fetch(s, r, err);
    ksv_prom_source_free(s);
    return rc;
}

#define VEC(samples) "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[" \
                 samples "]}}"
#define SAMPLE(model, rev, v) "{\"metric\":{\"model\":\"" model "\",\"revision\":\"" rev \
                              "\"},\"value\":[1700000000.5,\"" v "\"]}"
#define MSAMPLE(model, v) "{\"metric\":{\"model\":\"" model "\"},\"value\":[1700000000.5,\"" v "\"]}"

static void test_queries(void)
{
    char q[512];
    ksv_prom_query_rate(q, sizeof q, "model,revision", false, 10);
    KT_CHECK(strcmp(q, "sum by (model,revision) (rate(ksv_requests_total[10s]))") == 0,
             "QPS query text");
    ksv_prom_query_rate(q, sizeof q, "model", true, 10);
    KT_CHECK(strcmp(q, "sum by (model) (rate(ksv_requests_total{code!~\"2..\"}[10s]))") == 0,
             "error-rate query text");
    ksv_prom_query_quantile(q, sizeof q, "model,revision", 0.99, 60);
    KT_CHECK(strcmp(q, "histogram_quantile(0.99, sum by (model,revision,le) "
                       "(rate(ksv_request_duration_seconds_bucket[60s])))") == 0,
             "P99 query text");
    KT_CHECK(ksv_prom_query_rate(q, 10, "model", false, 10) == -1, "a too-small buffer is refused");
}

static void test_round_figures(void)
{
    /* Rates per revision and per model; errors only on fraud-00002; latency NaN for
     * fraud-00001 (no requests in the latency window); churn only in the model queries
     * (a series without revision in the revision query is not a ksv revision). */
    static const canned answers[] = {
        {"sum by (model,revision) (rate(ksv_requests_total{code", 200,
         VEC(SAMPLE("fraud", "fraud-00002", "5"))},
        {"sum by (model,revision) (rate(ksv_requests_total[", 200,
         VEC(SAMPLE("fraud", "fraud-00001", "0") "," SAMPLE("fraud", "fraud-00002", "20") ","
             MSAMPLE("churn", "3"))},
        {"sum by (model) (rate(ksv_requests_total{code", 200, VEC(MSAMPLE("fraud", "5"))},
        {"sum by (model) (rate(ksv_requests_total[", 200,
         VEC(MSAMPLE("fraud", "20") "," MSAMPLE("churn", "3"))},
        {"histogram_quantile(0.5, sum by (model,revision,le)", 200,
         VEC(SAMPLE("fraud", "fraud-00001", "NaN") "," SAMPLE("fraud", "fraud-00002", "0.002"))},
        {"histogram_quantile(0.99, sum by (model,revision,le)", 200,
         VEC(SAMPLE("fraud", "fraud-00001", "NaN") "," SAMPLE("fraud", "fraud-00002", "0.0125"))},
        {"histogram_quantile(0.5, sum by (model,le)", 200,
         VEC(MSAMPLE("fraud", "0.002") "," MSAMPLE("churn", "+Inf"))},
        {"histogram_quantile(0.99, sum by (model,le)", 200,
         VEC(MSAMPLE("fraud", "0.0125") "," MSAMPLE("churn", "0.004"))},
    };
    server sv = {.answers = answers, .n_answers = sizeof answers / sizeof answers[0]};
    if (server_start(&sv) != 0) {
        KT_CHECK(0, "test server starts");
        return;
    }
    ksv_prom_round r;
    ksv_err err;
    int rc = round_with(&sv, 2000, &r, &err);
    KT_CHECK(rc == 0 && r.error[0] == '\0', "a round of good answers succeeds");
    KT_CHECK(atomic_load(&sv.requests) == 8, "a round asks 8 queries");
    const ksv_prom_figures *f2 = ksv_prom_round_find(&r, "fraud", "fraud-00002");
    KT_CHECK(f2 && f2->has_rate && f2->qps == 20 && fabs(f2->err_pct - 25) < 1e-9 &&
                 f2->p50_s == 0.002 && f2->p99_s == 0.0125,
             "fraud-00002: QPS 20, ERR 5/20 = 25%%, P50 2 ms, P99 12.5 ms");
    const ksv_prom_figures *f1 = ksv_prom_round_find(&r, "fraud", "fraud-00001");
    KT_CHECK(f1 && f1->has_rate && f1->qps == 0 && isnan(f1->err_pct) && isnan(f1->p50_s) &&
                 isnan(f1->p99_s),
             "fraud-00001: QPS 0, ERR%% and latency no data (0/0 and NaN are not 0)");
    const ksv_prom_figures *fm = ksv_prom_round_find(&r, "fraud", NULL);
    KT_CHECK(fm && fm->has_rate && fm->qps == 20 && fabs(fm->err_pct - 25) < 1e-9 &&
                 fm->p99_s == 0.0125,
             "fraud's total from the \"by (model)\" queries");
    const ksv_prom_figures *cm = ksv_prom_round_find(&r, "churn", "");
    KT_CHECK(cm && cm->has_rate && cm->qps == 3 && cm->err_pct == 0 && isnan(cm->p50_s) &&
                 cm->p99_s == 0.004,
             "churn: no error series means ERR 0%%; a +Inf quantile is no data");
    KT_CHECK(ksv_prom_round_find(&r, "churn", "") == ksv_prom_round_find(&r, "churn", NULL),
             "revision \"\" and NULL both mean the model total");
    KT_CHECK(ksv_prom_round_find(&r, "iris", NULL) == NULL, "a model Prometheus never saw: NULL");
    ksv_prom_round_free(&r);
    server_stop(&sv);
}

static void test_round_failures(void)
{
    /* The error-rate queries fail: QPS stays, ERR% is no data (not 0), the round says why. */
    static const canned err_fails[] = {
        {"{code", 422,
         "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"query timed out\"}"},
        {"rate(ksv_requests_total[", 200, VEC(SAMPLE("fraud", "r1", "7") "," MSAMPLE("fraud", "7"))},
    };
    server sv = {.answers = err_fails, .n_answers = 2};
    if (server_start(&sv) != 0) {
        KT_CHECK(0, "test server starts");
        return;
    }
    ksv_prom_round r;
    ksv_err err;
    int rc = round_with(&sv, 2000, &r, &err);
    const ksv_prom_figures *f = ksv_prom_round_find(&r, "fraud", "r1");
    KT_CHECK(rc == -1 && strstr(r.error, "query timed out") && strstr(err.msg, "execution"),
             "an error document fails the round with Prometheus' message");
    KT_CHECK(f && f->has_rate && f->qps == 7 && isnan(f->err_pct),
             "a failed errors query leaves ERR%% as no data, QPS intact");
    KT_CHECK(atomic_load(&sv.requests) == 8, "an error document does not end the round");
    ksv_prom_round_free(&r);
    server_stop(&sv);

    /* Garbage for everything: no figures, no crash. */
    static const canned garbage[] = {{"", 200, "<html>oops</html>"}};
    server g = {.answers = garbage, .n_answers = 1};
    if (server_start(&g) != 0) {
        KT_CHECK(0, "test server starts");
        return;
    }
    rc = round_with(&g, 2000, &r, &err);
    KT_CHECK(rc == -1 && r.n == 0 && strstr(r.error, "not a JSON"),
             "garbage answers: no figures and a message");
    ksv_prom_round_free(&r);
    server_stop(&g);

    /* A server that never answers: the round ends after one timeout, not eight. */
    server h = {.hang = true};
    if (server_start(&h) != 0) {
        KT_CHECK(0, "test server starts");
        return;
    }
    double t0 = ksv_mono_s();
    rc = round_with(&h, 300, &r, &err);
    double took = ksv_mono_s() - t0;
    char what[160];
    snprintf(what, sizeof what, "a hung server: the round fails after one timeout (%.2fs)", took);
    KT_CHECK(rc == -1 && took < 1.5 && r.n == 0 && strstr(r.error, "prometheus"), "%s", what);
    KT_CHECK(atomic_load(&h.requests) == 1, "a hung server gets one request per round");
    ksv_prom_round_free(&r);
    server_stop(&h);

    /* A closed port: fails fast with a message. */
    server c = {0};
    if (server_start(&c) != 0) {
        KT_CHECK(0, "test server starts");
        return;
    }
    server_stop(&c); /* the port is closed now */
    t0 = ksv_mono_s();
    rc = round_with(&c, 2000, &r, &err);
    took = ksv_mono_s() - t0;
    KT_CHECK(rc == -1 && took < 1.5 && err.status == 503 && r.n == 0,
             "a closed port: the round fails at once with 503");
    ksv_prom_round_free(&r);
}

int main(void)
{
    kt_set_verbose(true);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        printf("FAIL curl_global_init\n");
        return 1;
    }
    test_parse_good();
    test_parse_broken();
    test_urls();
    test_queries();
    test_round_figures();
    test_round_failures();
    curl_global_cleanup();
    return kt_summary("test_prom_source");
}
