/* test_loadgen.c: the traffic generator (control/loadgen.h) against a real ksv-engine serving
 * DATA/models/iris, plus a few tiny servers written here for the cases an engine cannot show
 * (nothing listening, never answering, answering slowly).
 * Oracles: the engine's own ksv_requests_total counters (scraped before and after each run)
 * for what was sent and answered; this test's clock for rates and for how long a run took;
 * json-c for the built body and the JSON report; for the coordinated-omission case, the
 * latencies a fixed-delay server must produce, worked out from the schedule.
 * The engine is $KSV_ENGINE (else KSV_BUILDDIR/src/ksv-engine, else src/ksv-engine); data is
 * $KSV_DATA_DIR, else KSV_SRCDIR/data. */
#define _GNU_SOURCE
#include "common/clock.h"
#include "control/loadgen.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- the engine under test ---- */

typedef struct engine {
    pid_t pid;
    char dir[PATH_MAX];     /* temporary: state/, engine.log */
    char address[64];       /* 127.0.0.1:PORT */
    char infer_url[256];
} engine;

static size_t collect(char *data, size_t size, size_t nmemb, void *user)
{
    ksv_sb_append(user, data, size * nmemb);
    return size * nmemb;
}

/* GET url into body; returns the HTTP status, or -1 when there was no answer. */
static long http_get(const char *url, ksv_sb *body)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    ksv_sb_reset(body);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static bool read_small_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

static int start_engine(engine *e, const char *engine_path, const char *data_dir)
{
    memset(e, 0, sizeof *e);
    e->pid = -1;
    snprintf(e->dir, sizeof e->dir, "/tmp/ksv-test-loadgen-XXXXXX");
    if (!mkdtemp(e->dir)) {
        printf("cannot create a temporary folder: %s\n", strerror(errno));
        return -1;
    }
    char state[PATH_MAX + 16], log_path[PATH_MAX + 16], model[PATH_MAX + 32];
    snprintf(state, sizeof state, "%s/state", e->dir);
    snprintf(log_path, sizeof log_path, "%s/engine.log", e->dir);
    snprintf(model, sizeof model, "iris=%s/models/iris", data_dir);

    pid_t pid = fork();
    if (pid < 0) {
        printf("fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* The engine goes away with this test even if the test crashes. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execl(engine_path, engine_path, "--listen", "127.0.0.1:0", "--state-dir", state,
              "--model", model, "--threads", "2", (char *)NULL);
        _exit(127);
    }
    e->pid = pid;

    char address_file[PATH_MAX + 32];
    snprintf(address_file, sizeof address_file, "%s/address", state);
    double deadline = ksv_mono_s() + 15.0;
    while (!read_small_file(address_file, e->address, sizeof e->address)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            e->pid = -1;
            printf("ksv-engine exited before listening; see %s\n", log_path);
            return -1;
        }
        if (ksv_mono_s() > deadline) {
            printf("ksv-engine wrote no address in 15 s; see %s\n", log_path);
            return -1;
        }
        sleep_s(0.02);
    }
    e->address[strcspn(e->address, " \r\n")] = '\0';

    char url[256];
    snprintf(url, sizeof url, "http://%s/v2/health/ready", e->address);
    ksv_sb body;
    ksv_sb_init(&body);
    long status;
    while ((status = http_get(url, &body)) != 200 && ksv_mono_s() < deadline)
        sleep_s(0.05);
    ksv_sb_free(&body);
    if (status != 200) {
        printf("ksv-engine at %s not ready in 15 s (last status %ld); see %s\n", e->address,
               status, log_path);
        return -1;
    }
    snprintf(e->infer_url, sizeof e->infer_url, "http://%s/v2/models/iris/infer", e->address);
    printf("engine pid %d at %s (log %s)\n", (int)pid, e->address, log_path);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void stop_engine(engine *e, bool keep_dir)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        double deadline = ksv_mono_s() + 5.0;
        int st;
        while (waitpid(e->pid, &st, WNOHANG) == 0) {
            if (ksv_mono_s() > deadline) {
                kill(e->pid, SIGKILL);
                waitpid(e->pid, &st, 0);
                break;
            }
            sleep_s(0.02);
        }
        e->pid = -1;
    }
    if (e->dir[0] && !keep_dir)
        nftw(e->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    else if (e->dir[0])
        printf("kept %s for inspection\n", e->dir);
}

/* Sum of ksv_requests_total{model="iris",code=CODE} over revisions, read from /metrics
 * with a line parser of its own; -1 when the scrape failed. */
static long long engine_count(const engine *e, int code)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s/metrics", e->address);
    ksv_sb body;
    ksv_sb_init(&body);
    long long total = -1;
    if (http_get(url, &body) == 200 && body.data) {
        total = 0;
        char code_label[32];
        snprintf(code_label, sizeof code_label, "code=\"%d\"", code);
        for (char *line = body.data; line && *line;) {
            char *eol = strchr(line, '\n');
            if (eol)
                *eol = '\0';
            char *brace = strstr(line, "} ");
            if (strncmp(line, "ksv_requests_total{", 19) == 0 && brace &&
                strstr(line, "model=\"iris\"") && strstr(line, code_label))
                total += strtoll(brace + 2, NULL, 10);
            line = eol ? eol + 1 : NULL;
        }
    }
    ksv_sb_free(&body);
    return total;
}

/* ---- a keep-alive HTTP server that answers every request after a fixed delay, one
 * connection at a time ---- */

typedef struct slow_server {
    int listen_fd;
    int port;
    double delay_s;
    atomic_bool stop;
    atomic_uint served;
    pthread_t thread;
} slow_server;

/* Waits for fd to be readable, checking the stop flag every 50 ms. */
static bool wait_readable(slow_server *s, int fd)
{
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            return true;
    }
    return false;
}

static void serve_connection(slow_server *s, int fd)
{
    char buf[16384];
    size_t have = 0;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 2\r\n\r\n{}";
    for (;;) {
        char *hdr_end = memmem(buf, have, "\r\n\r\n", 4);
        size_t need = 0;
        if (hdr_end) {
            size_t clen = 0;
            *hdr_end = '\0';
            char *cl = strcasestr(buf, "content-length:");
            if (cl)
                clen = strtoul(cl + 15, NULL, 10);
            *hdr_end = '\r';
            need = (size_t)(hdr_end - buf) + 4 + clen;
        }
        if (!hdr_end || have < need) {
            if (have == sizeof buf || !wait_readable(s, fd))
                return;
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n <= 0)
                return;
            have += (size_t)n;
            continue;
        }
        sleep_s(s->delay_s);
        if (write(fd, answer, sizeof answer - 1) != (ssize_t)(sizeof answer - 1))
            return;
        atomic_fetch_add(&s->served, 1);
        memmove(buf, buf + need, have - need);
        have -= need;
    }
}

static void *slow_server_main(void *arg)
{
    slow_server *s = arg;
    while (wait_readable(s, s->listen_fd)) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0) {
            serve_connection(s, fd);
            close(fd);
        }
    }
    return NULL;
}

/* ---- helpers for runs ---- */

static ksv_load_config base_config(const char *url)
{
    ksv_load_config c;
    memset(&c, 0, sizeof c);
    c.url = url;
    c.features = 4;
    c.concurrency = 4;
    c.duration_s = 1.0;
    return c;
}

static bool run_load(const ksv_load_config *cfg, ksv_load_report *rep, double *wall)
{
    ksv_err err;
    ksv_err_clear(&err);
    double t = ksv_mono_s();
    int rc = ksv_load_run(cfg, rep, &err);
    if (wall)
        *wall = ksv_mono_s() - t;
    KT_CHECK(rc == 0, "ksv_load_run failed: %s", err.msg);
    return rc == 0;
}

static uint64_t transport_total(const ksv_load_report *r)
{
    uint64_t n = 0;
    for (int k = 0; k < KSV_LOAD_TRANSPORT_KINDS; k++)
        n += r->transport[k].count;
    return n;
}

/* Bookkeeping every report must satisfy, whatever the server did. */
static void check_invariants(const char *what, const ksv_load_report *r)
{
    uint64_t by_status = r->status_out_of_range;
    for (int i = 0; i < KSV_LOAD_STATUS_SLOTS; i++)
        by_status += r->status[i];
    KT_CHECK(by_status == r->completed, "%s: statuses add to %llu, completed %llu", what,
             (unsigned long long)by_status, (unsigned long long)r->completed);
    KT_CHECK(r->sent == r->completed + transport_total(r) + r->aborted,
             "%s: sent %llu != completed + transport errors + aborted", what,
             (unsigned long long)r->sent);
    KT_CHECK(r->errors == r->completed - r->ok + transport_total(r),
             "%s: errors %llu are not non-2xx + transport", what, (unsigned long long)r->errors);
    KT_CHECK(r->latency.count == r->completed, "%s: %llu latencies for %llu completed", what,
             (unsigned long long)r->latency.count, (unsigned long long)r->completed);
    if (r->completed) {
        KT_CHECK(r->p50_s > 0 && r->p50_s <= r->p99_s && r->p99_s <= r->p999_s,
                 "%s: quantiles out of order: %g %g %g", what, r->p50_s, r->p99_s, r->p999_s);
        KT_CHECK(r->p999_s <= r->max_s * (1 + 1.0 / 64) + 1e-9, "%s: p99.9 %g above max %g", what,
                 r->p999_s, r->max_s);
        KT_CHECK(r->mean_s > 0 && r->mean_s <= r->max_s, "%s: mean %g, max %g", what, r->mean_s,
                 r->max_s);
    } else {
        KT_CHECK(isnan(r->p50_s) && isnan(r->max_s), "%s: quantiles without samples", what);
    }
}

static void show(const char *what, const ksv_load_report *r, double wall)
{
    printf("-- %s (wall %.2f s)\n", what, wall);
    ksv_load_report_print(r, stdout, false);
}

/* ---- cases ---- */

typedef struct progress_log {
    int calls;
    double first_rps;
    double last_elapsed;
} progress_log;

static void on_progress(const ksv_load_progress *p, void *user)
{
    progress_log *log = user;
    if (log->calls++ == 0)
        log->first_rps = p->interval_rps;
    log->last_elapsed = p->elapsed_s;
}

static void test_rate_mode(const engine *e)
{
    long long before = engine_count(e, 200);
    ksv_load_config c = base_config(e->infer_url);
    c.rps = 200;
    c.duration_s = 2.0;
    progress_log log = {0};
    c.progress = on_progress;
    c.progress_user = &log;
    ksv_load_report r;
    double wall;
    if (!run_load(&c, &r, &wall))
        return;
    long long served = engine_count(e, 200) - before;
    show("rate mode, 200 req/s for 2 s", &r, wall);
    check_invariants("rate", &r);
    KT_CHECK(r.achieved_rps >= 190 && r.achieved_rps <= 210, "achieved %.1f req/s, want 190..210",
             r.achieved_rps);
    KT_CHECK(r.errors == 0 && r.aborted == 0, "errors %llu aborted %llu",
             (unsigned long long)r.errors, (unsigned long long)r.aborted);
    KT_CHECK(r.completed >= 395 && r.completed <= 400, "completed %llu, want ~400 (at most 400)",
             (unsigned long long)r.completed);
    KT_CHECK(r.status[200] == r.completed, "200s %llu of %llu", (unsigned long long)r.status[200],
             (unsigned long long)r.completed);
    KT_CHECK(served == (long long)r.status[200], "engine counted %lld 200s, report %llu", served,
             (unsigned long long)r.status[200]);
    double engine_rate = (double)served / wall;
    KT_CHECK(fabs(engine_rate - r.achieved_rps) <= 0.05 * r.achieved_rps,
             "engine-side rate %.1f vs reported %.1f", engine_rate, r.achieved_rps);
    KT_CHECK(wall < 2.0 + 0.5, "a 2 s run took %.2f s", wall);
    KT_CHECK(log.calls >= 1 && log.first_rps >= 150 && log.first_rps <= 250,
             "progress: %d calls, first interval %.1f req/s", log.calls, log.first_rps);
}

static double test_max_mode(const engine *e)
{
    long long before = engine_count(e, 200);
    ksv_load_config c = base_config(e->infer_url);
    c.concurrency = 4;
    c.duration_s = 1.0;
    ksv_load_report r;
    double wall;
    if (!run_load(&c, &r, &wall))
        return 0;
    long long served = engine_count(e, 200) - before;
    show("as fast as possible, concurrency 4, 1 s", &r, wall);
    check_invariants("max", &r);
    KT_CHECK(r.completed > 0 && r.errors == 0 && r.aborted == 0,
             "completed %llu errors %llu aborted %llu", (unsigned long long)r.completed,
             (unsigned long long)r.errors, (unsigned long long)r.aborted);
    KT_CHECK(served == (long long)r.completed, "engine counted %lld, report %llu", served,
             (unsigned long long)r.completed);
    KT_CHECK(r.target_rps == 0 && r.concurrency == 4, "report echoes target %g concurrency %u",
             r.target_rps, r.concurrency);
    KT_CHECK(wall < 1.5, "a 1 s run took %.2f s", wall);
    return r.achieved_rps;
}

static void test_bad_fraction(const engine *e, ksv_load_report *r)
{
    long long ok_before = engine_count(e, 200), bad_before = engine_count(e, 400);
    ksv_load_config c = base_config(e->infer_url);
    c.bad_fraction = 0.2;
    c.max_requests = 1000;
    c.duration_s = 10;
    c.seed = 7;
    double wall;
    if (!run_load(&c, r, &wall))
        return;
    long long ok = engine_count(e, 200) - ok_before, bad = engine_count(e, 400) - bad_before;
    show("20% malformed, 1000 requests", r, wall);
    check_invariants("bad", r);
    KT_CHECK(r->sent == 1000 && r->completed == 1000, "sent %llu completed %llu of max 1000",
             (unsigned long long)r->sent, (unsigned long long)r->completed);
    double share = (double)r->status[400] / (double)r->completed;
    KT_CHECK(share >= 0.12 && share <= 0.28, "400 share %.3f, want 0.20 +- 0.08", share);
    KT_CHECK(r->status[400] == r->bad_sent && r->status[200] == r->sent - r->bad_sent,
             "each malformed body got a 400 and the rest 200: 400s %llu, bad %llu, 200s %llu",
             (unsigned long long)r->status[400], (unsigned long long)r->bad_sent,
             (unsigned long long)r->status[200]);
    KT_CHECK(ok == (long long)r->status[200] && bad == (long long)r->status[400],
             "engine counted 200:%lld 400:%lld", ok, bad);
    KT_CHECK(r->errors == r->status[400], "errors %llu", (unsigned long long)r->errors);
}

static void test_connect_refused(ksv_load_report *r)
{
    int port = kt_free_port();
    KT_CHECK(port > 0, "no free port");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v2/models/iris/infer", port);
    ksv_load_config c = base_config(url);
    c.rps = 40;
    c.duration_s = 0.5;
    double wall;
    if (!run_load(&c, r, &wall))
        return;
    show("nothing listening, 40 req/s", r, wall);
    check_invariants("connect", r);
    KT_CHECK(r->sent >= 15 && r->transport[KSV_LOAD_CONNECT].count == r->sent,
             "sent %llu, connect errors %llu", (unsigned long long)r->sent,
             (unsigned long long)r->transport[KSV_LOAD_CONNECT].count);
    KT_CHECK(r->completed == 0 && r->errors == r->sent, "completed %llu errors %llu",
             (unsigned long long)r->completed, (unsigned long long)r->errors);
    KT_CHECK(r->transport[KSV_LOAD_CONNECT].last_message[0] != '\0', "no connect message");
    KT_CHECK(wall < 1.5, "took %.2f s", wall);

    /* As fast as possible against a dead port spins through failures but still ends. */
    ksv_load_report r2;
    c.rps = 0;
    c.duration_s = 0.3;
    if (!run_load(&c, &r2, &wall))
        return;
    check_invariants("connect max", &r2);
    KT_CHECK(r2.sent > 0 && r2.transport[KSV_LOAD_CONNECT].count == r2.sent && wall < 1.3,
             "max mode: sent %llu connect %llu wall %.2f", (unsigned long long)r2.sent,
             (unsigned long long)r2.transport[KSV_LOAD_CONNECT].count, wall);
}

static void test_never_answers(void)
{
    int port;
    int fd = kt_listen_loopback(&port, 64);   /* listens, never accepts: the kernel queues them */
    KT_CHECK(fd >= 0, "no listening socket");
    if (fd < 0)
        return;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v2/models/iris/infer", port);

    ksv_load_config c = base_config(url);
    c.rps = 20;
    c.duration_s = 0.25;
    c.concurrency = 8;
    c.timeout_s = 0.2;
    c.grace_s = 1.0;
    ksv_load_report r;
    double wall;
    if (run_load(&c, &r, &wall)) {
        show("never answers, 0.2 s timeout", &r, wall);
        check_invariants("timeout", &r);
        KT_CHECK(r.sent == 5 && r.transport[KSV_LOAD_TIMEOUT].count == r.sent && r.aborted == 0,
                 "sent %llu timeouts %llu aborted %llu (want 5, 5, 0)", (unsigned long long)r.sent,
                 (unsigned long long)r.transport[KSV_LOAD_TIMEOUT].count,
                 (unsigned long long)r.aborted);
        KT_CHECK(wall < 0.25 + 0.2 + 0.3, "took %.2f s", wall);
    }

    c.timeout_s = 30;
    c.grace_s = 0.2;
    if (run_load(&c, &r, &wall)) {
        show("never answers, 0.2 s grace", &r, wall);
        check_invariants("aborted", &r);
        KT_CHECK(r.sent == 5 && r.aborted == r.sent && r.errors == 0,
                 "sent %llu aborted %llu errors %llu (want 5, 5, 0)", (unsigned long long)r.sent,
                 (unsigned long long)r.aborted, (unsigned long long)r.errors);
        KT_CHECK(wall >= 0.25 + 0.2 - 0.02 && wall < 0.25 + 0.2 + 0.3,
                 "took %.2f s, want duration + grace", wall);
    }
    close(fd);
}

static void test_body_file(const engine *e, const char *data_dir)
{
    char path[PATH_MAX + 64];
    static char iris[65536], fraud[65536];
    snprintf(path, sizeof path, "%s/requests/iris.json", data_dir);
    bool have_iris = read_small_file(path, iris, sizeof iris);
    snprintf(path, sizeof path, "%s/requests/fraud.json", data_dir);
    bool have_fraud = read_small_file(path, fraud, sizeof fraud);
    KT_CHECK(have_iris && have_fraud, "cannot read %s/requests/{iris,fraud}.json", data_dir);
    if (!have_iris || !have_fraud)
        return;

    long long before = engine_count(e, 200);
    ksv_load_config c = base_config(e->infer_url);
    c.body = iris;
    c.body_len = strlen(iris);
    c.features = 0;
    c.rps = 100;
    c.duration_s = 0.5;
    ksv_load_report r;
    double wall;
    if (run_load(&c, &r, &wall)) {
        long long served = engine_count(e, 200) - before;
        show("body from data/requests/iris.json (5 rows)", &r, wall);
        check_invariants("file", &r);
        KT_CHECK(r.completed >= 48 && r.completed <= 50 && r.status[200] == r.completed,
                 "completed %llu 200s %llu (want ~50, all 200)", (unsigned long long)r.completed,
                 (unsigned long long)r.status[200]);
        KT_CHECK(served == (long long)r.status[200], "engine counted %lld", served);
    }

    /* The body really is the file's: fraud's 20-feature rows are refused by iris. */
    c.body = fraud;
    c.body_len = strlen(fraud);
    c.rps = 0;
    c.max_requests = 20;
    if (run_load(&c, &r, &wall)) {
        check_invariants("wrong file", &r);
        KT_CHECK(r.completed == 20 && r.status[400] == 20, "fraud body at iris: %llu of %llu 400",
                 (unsigned long long)r.status[400], (unsigned long long)r.completed);
    }
}

typedef struct stopper {
    atomic_bool *flag;
    double after_s;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    sleep_s(s->after_s);
    atomic_store(s->flag, true);
    return NULL;
}

static void test_stop_flag(const engine *e)
{
    atomic_bool stop = false;
    stopper s = {.flag = &stop, .after_s = 0.5};
    ksv_load_config c = base_config(e->infer_url);
    c.rps = 100;
    c.duration_s = 10;
    c.stop = &stop;
    pthread_t t;
    if (pthread_create(&t, NULL, stop_later, &s) != 0) {
        KT_CHECK(0, "pthread_create");
        return;
    }
    ksv_load_report r;
    double wall;
    bool ran = run_load(&c, &r, &wall);
    pthread_join(t, NULL);
    if (!ran)
        return;
    show("stop flag after 0.5 s of 10 s", &r, wall);
    check_invariants("stop", &r);
    KT_CHECK(r.stopped, "report does not say stopped");
    KT_CHECK(wall < 1.0, "returned after %.2f s, want within ~1 s", wall);
    KT_CHECK(r.elapsed_s >= 0.45 && r.elapsed_s < 1.0, "elapsed %.2f", r.elapsed_s);
    KT_CHECK(r.completed >= 40 && r.completed <= 60 && r.errors == 0,
             "completed %llu errors %llu (want ~50, 0)", (unsigned long long)r.completed,
             (unsigned long long)r.errors);
}

/* Concurrency 1 at 100 req/s against a server that takes 20 ms: request k can only go out
 * at about 20k ms although it was due at 10k ms, so its latency from the due time is
 * 10k + 20 ms; over the ~50 requests of 1 s the median is about 270 ms, not 20 ms. */
static void test_coordinated_omission(void)
{
    slow_server s;
    memset(&s, 0, sizeof s);
    s.delay_s = 0.020;
    s.listen_fd = kt_listen_loopback(&s.port, 64);
    KT_CHECK(s.listen_fd >= 0, "no listening socket");
    if (s.listen_fd < 0)
        return;
    if (pthread_create(&s.thread, NULL, slow_server_main, &s) != 0) {
        KT_CHECK(0, "pthread_create");
        close(s.listen_fd);
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v2/models/iris/infer", s.port);
    ksv_load_config c = base_config(url);
    c.rps = 100;
    c.concurrency = 1;
    c.duration_s = 1.0;
    ksv_load_report r;
    double wall;
    bool ran = run_load(&c, &r, &wall);
    atomic_store(&s.stop, true);
    pthread_join(s.thread, NULL);
    close(s.listen_fd);
    if (!ran)
        return;
    show("100 req/s, concurrency 1, server takes 20 ms", &r, wall);
    check_invariants("omission", &r);
    KT_CHECK(r.completed == atomic_load(&s.served) && r.errors == 0,
             "completed %llu, server answered %u, errors %llu", (unsigned long long)r.completed,
             atomic_load(&s.served), (unsigned long long)r.errors);
    /* At least the server's 20 ms per request; more on a loaded machine (then fewer finish). */
    KT_CHECK(r.completed >= 10 && r.completed <= 52, "completed %llu, want <= ~50 (one per 20 ms)",
             (unsigned long long)r.completed);
    /* Request k goes out after k service times s but was due at k x 10 ms, so from its due
     * time it took k (s - 10 ms) + s. s is what this run measured (the server's 20 ms plus
     * whatever the machine's load added), not the 20 ms assumed: the median, k = n/2, is
     * then what a loadgen that measures from the due time must report. */
    double n = (double)r.completed;
    double service = r.elapsed_s / n;
    double want_p50 = (n / 2) * (service - 0.010) + service;
    KT_CHECK(service >= 0.019 && r.p50_s >= 0.75 * want_p50 && r.p50_s <= 1.25 * want_p50,
             "p50 %.1f ms, want ~%.1f ms measured from the due time (service %.1f ms)",
             r.p50_s * 1e3, want_p50 * 1e3, service * 1e3);
    KT_CHECK(r.max_s >= 0.010 * (n - 1), "max %.1f ms, want >= %.1f ms", r.max_s * 1e3,
             10 * (n - 1));
    KT_CHECK(r.achieved_rps < 60, "achieved %.1f req/s cannot beat 1/20 ms", r.achieved_rps);
}

static void test_bad_configs(void)
{
    static const char body[] = "{}";
    struct {
        const char *what;
        ksv_load_config c;
    } cases[] = {
        {"no url", {.url = NULL, .features = 4, .duration_s = 1}},
        {"empty url", {.url = "", .features = 4, .duration_s = 1}},
        {"ftp url", {.url = "ftp://127.0.0.1/x", .features = 4, .duration_s = 1}},
        {"file url", {.url = "file:///etc/passwd", .features = 4, .duration_s = 1}},
        {"no body, no features", {.url = "http://127.0.0.1:1/", .duration_s = 1}},
        {"empty body", {.url = "http://127.0.0.1:1/", .body = body, .body_len = 0,
                        .duration_s = 1}},
        {"zero duration", {.url = "http://127.0.0.1:1/", .features = 4}},
        {"negative duration", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = -1}},
        {"NaN duration", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = NAN}},
        {"infinite duration", {.url = "http://127.0.0.1:1/", .features = 4,
                               .duration_s = INFINITY}},
        {"negative rps", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1,
                          .rps = -5}},
        {"NaN rps", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1, .rps = NAN}},
        {"huge concurrency", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1,
                              .concurrency = 100000}},
        {"bad fraction > 1", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1,
                              .bad_fraction = 1.5}},
        {"bad fraction < 0", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1,
                              .bad_fraction = -0.1}},
        {"NaN timeout", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1,
                         .timeout_s = NAN}},
        {"negative grace", {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1,
                            .grace_s = -1}},
        {"too many features", {.url = "http://127.0.0.1:1/", .features = 2000000,
                               .duration_s = 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ksv_load_report r;
        ksv_err err;
        ksv_err_clear(&err);
        double t = ksv_mono_s();
        int rc = ksv_load_run(&cases[i].c, &r, &err);
        KT_CHECK(rc == -1 && err.status == 400 && err.msg[0] && r.sent == 0 && ksv_mono_s() - t < 0.5,
                 "bad config '%s': rc %d status %d sent %llu", cases[i].what, rc, err.status,
                 (unsigned long long)r.sent);
    }
    ksv_load_report r;
    ksv_err err;
    KT_CHECK(ksv_load_run(NULL, &r, &err) == -1 && err.status == 400, "NULL config accepted");
    ksv_load_config ok = {.url = "http://127.0.0.1:1/", .features = 4, .duration_s = 1};
    KT_CHECK(ksv_load_run(&ok, NULL, &err) == -1, "NULL report accepted");
    printf("bad configs: %zu refused\n", sizeof cases / sizeof cases[0]);
}

static void test_make_body(void)
{
    size_t widths[] = {1, 4, 20, 1000};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        size_t f = widths[w];
        ksv_sb a, b, other;
        ksv_sb_init(&a);
        ksv_sb_init(&b);
        ksv_sb_init(&other);
        ksv_err err;
        int rc = ksv_load_make_body(f, NULL, 42, &a, &err);
        rc |= ksv_load_make_body(f, NULL, 42, &b, &err);
        rc |= ksv_load_make_body(f, "x\"y", 43, &other, &err);
        KT_CHECK(rc == 0, "make_body(%zu): %s", f, err.msg);
        KT_CHECK(rc != 0 || (a.len == b.len && memcmp(a.data, b.data, a.len) == 0),
                 "same seed, different bodies for %zu features", f);
        json_object *doc = rc == 0 ? json_tokener_parse(a.data) : NULL;
        json_object *inputs = NULL, *in0 = NULL, *name = NULL, *shape = NULL, *dtype = NULL,
                    *data = NULL;
        bool shaped = doc && json_object_object_get_ex(doc, "inputs", &inputs) &&
                      json_object_get_type(inputs) == json_type_array &&
                      json_object_array_length(inputs) == 1 &&
                      (in0 = json_object_array_get_idx(inputs, 0)) &&
                      json_object_object_get_ex(in0, "name", &name) &&
                      json_object_object_get_ex(in0, "shape", &shape) &&
                      json_object_object_get_ex(in0, "datatype", &dtype) &&
                      json_object_object_get_ex(in0, "data", &data) &&
                      json_object_get_type(data) == json_type_array;
        KT_CHECK(shaped, "built body for %zu features is not a V2 request: %.200s", f,
                 a.data ? a.data : "");
        if (shaped) {
            KT_CHECK(strcmp(json_object_get_string(name), "input-0") == 0 &&
                         strcmp(json_object_get_string(dtype), "FP32") == 0 &&
                         json_object_array_length(shape) == 2 &&
                         json_object_get_int64(json_object_array_get_idx(shape, 0)) == 1 &&
                         json_object_get_int64(json_object_array_get_idx(shape, 1)) ==
                             (int64_t)f &&
                         json_object_array_length(data) == f,
                     "built body for %zu features: wrong name, type or shape", f);
            size_t distinct_from_first = 0;
            double first = json_object_get_double(json_object_array_get_idx(data, 0));
            for (size_t i = 0; i < json_object_array_length(data); i++) {
                json_object *v = json_object_array_get_idx(data, i);
                double d = json_object_get_double(v);
                KT_CHECK((json_object_get_type(v) == json_type_double ||
                          json_object_get_type(v) == json_type_int) &&
                             d >= 0 && d < 10,
                         "value %zu = %g outside [0, 10)", i, d);
                distinct_from_first += d != first;
            }
            KT_CHECK(f < 20 || distinct_from_first > f / 2, "values barely vary (%zu of %zu)",
                     distinct_from_first, f);
        }
        json_object *odoc = rc == 0 ? json_tokener_parse(other.data) : NULL;
        json_object *oin = NULL, *oname = NULL;
        KT_CHECK(odoc && json_object_object_get_ex(odoc, "inputs", &oin) &&
                     json_object_object_get_ex(json_object_array_get_idx(oin, 0), "name",
                                               &oname) &&
                     strcmp(json_object_get_string(oname), "x\"y") == 0,
                 "input name not escaped/kept");
        KT_CHECK(f < 4 || strcmp(a.data, other.data) != 0, "another seed, same body");
        json_object_put(doc);
        json_object_put(odoc);
        ksv_sb_free(&a);
        ksv_sb_free(&b);
        ksv_sb_free(&other);
    }
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_err err;
    KT_CHECK(ksv_load_make_body(0, NULL, 1, &sb, &err) == -1 && err.status == 400,
             "0 features accepted");
    ksv_sb_free(&sb);
    printf("built bodies: checked with json-c\n");
}

static json_object *get_path(json_object *o, const char *a, const char *b)
{
    json_object *x = NULL, *y = NULL;
    if (!json_object_object_get_ex(o, a, &x))
        return NULL;
    if (!b)
        return x;
    return json_object_object_get_ex(x, b, &y) ? y : NULL;
}

static void check_json_report(const char *what, const ksv_load_report *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        KT_CHECK(0, "open_memstream");
        return;
    }
    ksv_load_report_print(r, f, true);
    fclose(f);
    json_tokener *tok = json_tokener_new();
    json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    KT_CHECK(doc && jerr == json_tokener_success && len > 0 && text[len - 1] == '\n',
             "%s: JSON report does not parse: %s", what, text);
    if (doc) {
        const char *counts[] = {"sent", "completed", "ok", "errors", "aborted", "bad_sent"};
        uint64_t want[] = {r->sent, r->completed, r->ok, r->errors, r->aborted, r->bad_sent};
        for (size_t i = 0; i < 6; i++) {
            json_object *v = get_path(doc, counts[i], NULL);
            KT_CHECK(v && json_object_get_type(v) == json_type_int &&
                         (uint64_t)json_object_get_int64(v) == want[i],
                     "%s: JSON %s", what, counts[i]);
        }
        const char *nums[] = {"duration_s", "elapsed_s", "achieved_rps", "bad_fraction"};
        double nwant[] = {r->duration_s, r->elapsed_s, r->achieved_rps, r->bad_fraction};
        for (size_t i = 0; i < 4; i++) {
            json_object *v = get_path(doc, nums[i], NULL);
            KT_CHECK(v && fabs(json_object_get_double(v) - nwant[i]) <= 1e-6 * fabs(nwant[i]),
                     "%s: JSON %s", what, nums[i]);
        }
        json_object *target = get_path(doc, "target_rps", NULL);
        KT_CHECK(r->target_rps > 0 ? fabs(json_object_get_double(target) - r->target_rps) < 1e-9
                                   : target == NULL && json_object_object_get_ex(doc, "target_rps",
                                                                                 NULL),
                 "%s: JSON target_rps", what);
        json_object *conc = get_path(doc, "concurrency", NULL);
        KT_CHECK(conc && json_object_get_int(conc) == (int)r->concurrency, "%s: concurrency",
                 what);
        json_object *stopped = get_path(doc, "stopped", NULL);
        KT_CHECK(stopped && json_object_get_type(stopped) == json_type_boolean &&
                     json_object_get_boolean(stopped) == r->stopped,
                 "%s: stopped", what);
        const char *lat[] = {"p50", "p99", "p999", "mean", "max"};
        double lwant[] = {r->p50_s, r->p99_s, r->p999_s, r->mean_s, r->max_s};
        for (size_t i = 0; i < 5; i++) {
            json_object *v = get_path(doc, "latency_ms", lat[i]);
            bool present = json_object_object_get_ex(get_path(doc, "latency_ms", NULL),
                                                     lat[i], NULL);
            KT_CHECK(present && (isnan(lwant[i])
                                     ? v == NULL
                                     : fabs(json_object_get_double(v) - lwant[i] * 1e3) <=
                                           1e-6 * lwant[i] * 1e3),
                     "%s: latency_ms.%s", what, lat[i]);
        }
        json_object *status = get_path(doc, "status", NULL);
        size_t nonzero = 0;
        for (int code = 0; code < KSV_LOAD_STATUS_SLOTS; code++) {
            if (!r->status[code])
                continue;
            nonzero++;
            char key[16];
            snprintf(key, sizeof key, "%d", code);
            json_object *v = get_path(doc, "status", key);
            KT_CHECK(v && (uint64_t)json_object_get_int64(v) == r->status[code],
                     "%s: status.%s", what, key);
        }
        KT_CHECK(status && json_object_get_type(status) == json_type_object &&
                     (size_t)json_object_object_length(status) == nonzero,
                 "%s: status has %zu codes", what, nonzero);
        for (int k = 0; k < KSV_LOAD_TRANSPORT_KINDS; k++) {
            const char *name = ksv_load_transport_name((ksv_load_transport)k);
            json_object *t = get_path(doc, "transport_errors", name);
            json_object *count = NULL, *message = NULL, *code = NULL;
            KT_CHECK(t && json_object_object_get_ex(t, "count", &count) &&
                         json_object_object_get_ex(t, "message", &message) &&
                         json_object_object_get_ex(t, "curl_code", &code) &&
                         (uint64_t)json_object_get_int64(count) == r->transport[k].count &&
                         json_object_get_int(code) == r->transport[k].last_curl_code &&
                         strcmp(json_object_get_string(message), r->transport[k].last_message) ==
                             0,
                     "%s: transport_errors.%s", what, name);
        }
    }
    json_object_put(doc);
    free(text);
}

static void check_table(const ksv_load_report *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    ksv_load_report_print(r, f, false);
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "sent %llu ", (unsigned long long)r->sent);
    KT_CHECK(strstr(text, want) && strstr(text, "p99.9") && strstr(text, "connect"),
             "table lacks '%s', p99.9 or connect:\n%s", want, text);
    free(text);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);   /* the tiny servers write to clients that may have gone */
    const char *engine_path = getenv("KSV_ENGINE");
#ifdef KSV_BUILDDIR
    if (!engine_path || !*engine_path)
        engine_path = KSV_BUILDDIR "/src/ksv-engine";
#endif
    if (!engine_path || !*engine_path)
        engine_path = "src/ksv-engine";
    if (access(engine_path, X_OK) != 0) {
        printf("SKIP: no ksv-engine at %s (set KSV_ENGINE)\n", engine_path);
        return 77;
    }
    char data_rel[PATH_MAX], data_dir[PATH_MAX];
    kt_data_dir(data_rel, sizeof data_rel);
    if (!realpath(data_rel, data_dir)) {
        printf("FAIL: data folder %s: %s\n", data_rel, strerror(errno));
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        printf("FAIL: curl_global_init\n");
        return 1;
    }

    test_bad_configs();
    test_make_body();

    engine e;
    if (start_engine(&e, engine_path, data_dir) < 0) {
        stop_engine(&e, true);
        curl_global_cleanup();
        return 1;
    }
    test_rate_mode(&e);
    double max_rps = test_max_mode(&e);
    ksv_load_report bad, refused;
    memset(&bad, 0, sizeof bad);
    memset(&refused, 0, sizeof refused);
    test_bad_fraction(&e, &bad);
    test_body_file(&e, data_dir);
    test_stop_flag(&e);
    stop_engine(&e, kt_failures() > 0);

    test_connect_refused(&refused);
    test_never_answers();
    test_coordinated_omission();

    check_json_report("statuses", &bad);
    check_json_report("refused", &refused);
    check_table(&bad);
    check_table(&refused);

    curl_global_cleanup();
    printf("max rate against the engine: %.0f req/s (concurrency 4, one load thread)\n",
           max_rps);
    return kt_summary("test_loadgen");
}
