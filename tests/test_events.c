/* test_events.c: the engine's append-only event log (engine/events.h) on a real temp dir.
 * Oracles: every page is parsed back with json-c and its seqs compared with what was
 * appended; the files are read back line by line; rotation bounds are measured on disk. */
#define _GNU_SOURCE
#include "engine/events.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ktest.h"

static char dir[256];

static json_object *page(ksv_event_log *log, uint64_t since, size_t limit)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_err err;
    ksv_err_clear(&err);
    json_object *obj = NULL;
    if (ksv_events_write_since(log, since, limit, &sb, &err) != 0)
        KT_FAIL("write_since(%llu): %s", (unsigned long long)since, err.msg);
    else if (!(obj = json_tokener_parse(sb.data)))
        KT_FAIL("page since %llu is not JSON: %.200s", (unsigned long long)since, sb.data);
    ksv_sb_free(&sb);
    return obj;
}

static uint64_t u64_field(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

/* True when the page holds exactly seqs from..to in order. */
static bool page_is_range(json_object *p, uint64_t from, uint64_t to)
{
    json_object *events;
    if (!p || !json_object_object_get_ex(p, "events", &events))
        return false;
    size_t n = json_object_array_length(events);
    if (n != (to >= from ? to - from + 1 : 0))
        return false;
    for (size_t i = 0; i < n; i++)
        if (u64_field(json_object_array_get_idx(events, i), "seq") != from + i)
            return false;
    return true;
}

static off_t file_size(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static ksv_event_log *open_log(size_t max)
{
    ksv_event_log *log = NULL;
    ksv_err err;
    if (ksv_events_open(dir, max, &log, &err) != 0)
        KT_FAIL("open %s: %s", dir, err.msg);
    return log;
}

static void test_basic_and_fields(void)
{
    ksv_event_log *log = open_log(0);
    if (!log)
        return;
    KT_CHECK(ksv_events_last_seq(log) == 0, "a new log is empty");
    json_object *p = page(log, 0, 0);
    KT_CHECK(page_is_range(p, 1, 0) && u64_field(p, "first_seq") == 0, "empty page");
    json_object_put(p);

    uint64_t s1 = ksv_events_append(log, "churn", "churn-00002", "gate-step",
                                    "{\"weight\":10,\"success_rate\":99.5}", "step %d to %d%%",
                                    1, 10);
    uint64_t s2 = ksv_events_append(log, NULL, NULL, "engine-start", NULL, "hello");
    KT_CHECK(s1 == 1 && s2 == 2, "seqs start at 1 and count up (%llu, %llu)",
             (unsigned long long)s1, (unsigned long long)s2);
    p = page(log, 0, 0);
    KT_CHECK(page_is_range(p, 1, 2), "both events come back");
    json_object *events, *e, *v;
    json_object_object_get_ex(p, "events", &events);
    e = json_object_array_get_idx(events, 0);
    KT_CHECK(json_object_object_get_ex(e, "model", &v) &&
                 strcmp(json_object_get_string(v), "churn") == 0,
             "model field");
    KT_CHECK(json_object_object_get_ex(e, "revision", &v) &&
                 strcmp(json_object_get_string(v), "churn-00002") == 0,
             "revision field");
    KT_CHECK(json_object_object_get_ex(e, "kind", &v) &&
                 strcmp(json_object_get_string(v), "gate-step") == 0,
             "kind field");
    KT_CHECK(json_object_object_get_ex(e, "message", &v) &&
                 strcmp(json_object_get_string(v), "step 1 to 10%") == 0,
             "message is formatted");
    KT_CHECK(json_object_object_get_ex(e, "figures", &v) &&
                 json_object_get_double(json_object_object_get(v, "success_rate")) == 99.5,
             "figures kept as an object");
    KT_CHECK(json_object_object_get_ex(e, "time", &v) && json_object_get_double(v) > 1.6e9,
             "time is the wall clock in unix seconds");
    e = json_object_array_get_idx(events, 1);
    KT_CHECK(json_object_object_get_ex(e, "model", &v) && v == NULL, "no model: null");
    KT_CHECK(json_object_object_get_ex(e, "figures", &v) &&
                 json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0,
             "no figures: {}");
    json_object *id;
    KT_CHECK(json_object_object_get_ex(p, "log_id", &id) &&
                 strlen(json_object_get_string(id)) == 16,
             "the log has an id");
    char idcopy[40];
    snprintf(idcopy, sizeof idcopy, "%s", json_object_get_string(id));
    json_object_put(p);

    p = page(log, 1, 0);
    KT_CHECK(page_is_range(p, 2, 2), "since=1 gives only seq 2");
    json_object_put(p);
    p = page(log, 2, 0);
    KT_CHECK(page_is_range(p, 3, 2) && u64_field(p, "last_seq") == 2, "since=last: nothing");
    json_object_put(p);
    p = page(log, 99, 0);
    KT_CHECK(page_is_range(p, 3, 2), "since past the end: nothing, no error");
    json_object_put(p);

    /* Hostile input from a caller still gives valid JSON lines. */
    KT_CHECK(ksv_events_append(log, "m", NULL, "Bad Kind", NULL, "x") == 0,
             "a malformed kind is refused");
    KT_CHECK(ksv_events_append(log, "m", NULL, "", NULL, "x") == 0, "an empty kind is refused");
    uint64_t s3 = ksv_events_append(log, "m\"\n\\", "r\xff\xfe", "odd",
                                    "{\"a\":[1,2", "bad \xc3( utf8 \x01 and \"quotes\"");
    char big[3 * KSV_EVENT_MESSAGE_MAX];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    uint64_t s4 = ksv_events_append(log, "m", "r", "big", "[1,2,3]", "%s", big);
    KT_CHECK(s3 == 3 && s4 == 4, "odd input is recorded, sanitized");
    p = page(log, 2, 0);
    KT_CHECK(page_is_range(p, 3, 4), "sanitized events parse as JSON");
    json_object_object_get_ex(p, "events", &events);
    e = json_object_array_get_idx(events, 1);
    json_object_object_get_ex(e, "message", &v);
    KT_CHECK(v && strlen(json_object_get_string(v)) <= KSV_EVENT_MESSAGE_MAX,
             "a long message is cut");
    json_object_object_get_ex(e, "figures", &v);
    KT_CHECK(v && json_object_is_type(v, json_type_object), "non-object figures become {}");
    json_object_put(p);
    ksv_events_close(log);

    /* Reopen: seq continues, id stays, old events are still there. */
    log = open_log(0);
    if (!log)
        return;
    KT_CHECK(ksv_events_last_seq(log) == 4, "reopen finds the last seq");
    KT_CHECK(ksv_events_append(log, "m", NULL, "after", NULL, "again") == 5,
             "seq continues after reopen");
    p = page(log, 0, 2);
    KT_CHECK(page_is_range(p, 1, 2), "limit cuts the page");
    json_object *more;
    KT_CHECK(json_object_object_get_ex(p, "more", &more) && json_object_get_boolean(more),
             "a cut page says more");
    KT_CHECK(json_object_object_get_ex(p, "log_id", &id) &&
                 strcmp(json_object_get_string(id), idcopy) == 0,
             "the log id survives a reopen");
    json_object_put(p);
    ksv_events_close(log);
}

static void test_partial_line(void)
{
    /* A crash mid-write: a partial last line is cut at open, nothing else is lost. */
    char path[512];
    snprintf(path, sizeof path, "%s/events.log", dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    KT_CHECK(fd >= 0 && write(fd, "{\"seq\":6,\"time\":1", 17) == 17, "write a torn line");
    if (fd >= 0)
        close(fd);
    ksv_event_log *log = open_log(0);
    if (!log)
        return;
    KT_CHECK(ksv_events_last_seq(log) == 5, "a torn line is not an event");
    KT_CHECK(ksv_events_append(log, "m", NULL, "after-crash", NULL, "x") == 6,
             "the next event takes its seq");
    json_object *p = page(log, 0, 0);
    KT_CHECK(page_is_range(p, 1, 6), "every line is whole after the cut");
    json_object_put(p);
    ksv_events_close(log);
}

static void test_rotation(void)
{
    const size_t max = 8192;
    ksv_event_log *log = open_log(max);
    if (!log)
        return;
    uint64_t last = ksv_events_last_seq(log);
    const int n = 3000; /* more than the memory ring, many rotations */
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        ok = ksv_events_append(log, "rot", "rot-00001", "tick", "{\"i\":1}", "event %d", i) ==
             last + (uint64_t)i + 1;
    KT_CHECK(ok, "%d appends with rotation keep seq consecutive", n);
    last += (uint64_t)n;
    off_t cur = file_size("events.log"), old = file_size("events.1.log");
    KT_CHECK(cur >= 0 && (size_t)cur <= max && old > 0 && (size_t)old <= max,
             "both files stay under the bound (%lld, %lld)", (long long)cur, (long long)old);
    json_object *p = page(log, 0, KSV_EVENTS_PAGE_MAX);
    uint64_t first = u64_field(p, "first_seq");
    KT_CHECK(first > 1 && u64_field(p, "last_seq") == last,
             "first_seq says what was rotated away (%llu)", (unsigned long long)first);
    KT_CHECK(page_is_range(p, first, last), "a full read from 0 gives first..last in order");
    json_object_put(p);
    /* A cursor inside the files but older than memory reads the files. */
    p = page(log, first + 3, 10);
    KT_CHECK(page_is_range(p, first + 4, first + 13), "an old cursor pages from the files");
    json_object_put(p);
    p = page(log, last - 5, 0);
    KT_CHECK(page_is_range(p, last - 4, last), "a recent cursor pages from memory");
    json_object_put(p);
    ksv_events_close(log);

    log = open_log(max);
    if (!log)
        return;
    KT_CHECK(ksv_events_last_seq(log) == last, "reopen after rotation finds the last seq");
    p = page(log, first - 1, KSV_EVENTS_PAGE_MAX);
    KT_CHECK(page_is_range(p, first, last), "reopened log serves the same events");
    json_object_put(p);
    /* Rotation right after reopen: seq still monotonic, even if events.log is emptied. */
    char path[512];
    snprintf(path, sizeof path, "%s/events.log", dir);
    ksv_events_close(log);
    KT_CHECK(truncate(path, 0) == 0, "empty events.log (as right after a rotation)");
    log = open_log(max);
    if (!log)
        return;
    KT_CHECK(ksv_events_last_seq(log) >= first && ksv_events_last_seq(log) < last,
             "an empty current file: seq continues from events.1.log");
    uint64_t s = ksv_events_append(log, "m", NULL, "x", NULL, "x");
    KT_CHECK(s == ksv_events_last_seq(log) && s > first, "and grows from there");
    ksv_events_close(log);
}

typedef struct writer_arg {
    ksv_event_log *log;
    int n;
    bool ok;
} writer_arg;

static void *writer(void *varg)
{
    writer_arg *a = varg;
    uint64_t prev = 0;
    a->ok = true;
    for (int i = 0; i < a->n; i++) {
        uint64_t s = ksv_events_append(a->log, "t", NULL, "thread", NULL, "%d", i);
        if (s == 0 || s <= prev)
            a->ok = false;
        prev = s;
    }
    return NULL;
}

static void test_threads(void)
{
    ksv_event_log *log = open_log(1u << 20);
    if (!log)
        return;
    uint64_t base = ksv_events_last_seq(log);
    enum { T = 4, N = 300 };
    pthread_t th[T];
    writer_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (writer_arg){log, N, false};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    bool ok = true;
    for (int i = 0; i < T; i++)
        ok = ok && args[i].ok;
    KT_CHECK(ok, "concurrent appends each see increasing seqs");
    KT_CHECK(ksv_events_last_seq(log) == base + T * N, "no seq is lost or repeated");
    json_object *p = page(log, base, KSV_EVENTS_PAGE_MAX);
    KT_CHECK(page_is_range(p, base + 1, base + T * N), "all of them come back in order");
    json_object_put(p);
    ksv_events_close(log);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ksv-test-events-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_basic_and_fields();
    test_partial_line();
    test_rotation();
    test_threads();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return kt_summary("test_events");
}
