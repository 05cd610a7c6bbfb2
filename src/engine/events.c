/* events.c: the append-only event log (see events.h for the file layout, rotation and
 * fsync policy). Recent events are also kept in memory, so the usual poll (a console asking
 * for what is new since its last visit) never reads the disk. */
#include "engine/events.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/uri_redact.h"
#include "common/utf8.h"

#define RING_EVENTS 1024
#define LINE_MAX_BYTES (KSV_EVENT_MESSAGE_MAX * 6 + KSV_EVENT_FIGURES_MAX + 1024)
#define MIN_FILE_BYTES 1024

typedef struct ring_entry {
    uint64_t seq;
    char *line;                   /* the JSON object, no newline */
    size_t len;
} ring_entry;

struct ksv_event_log {
    pthread_mutex_t mu;
    char *path;                   /* STATE_DIR/events.log */
    char *old_path;               /* STATE_DIR/events.1.log */
    char *dir;
    char log_id[40];
    int fd;
    size_t file_bytes;            /* size of events.log */
    size_t max_file_bytes;
    uint64_t last_seq;
    uint64_t first_seq;           /* oldest seq still in either file; 0: none */
    uint64_t cur_first_seq;       /* oldest seq in events.log; 0: none */
    ring_entry ring[RING_EVENTS]; /* the newest events, ring[(seq) % RING_EVENTS] */
    size_t ring_count;
    const ksv_clock *clock;       /* event times; NULL: the real wall clock */
};

/* ------------------------------------------------------------------- line format */

/* Our lines start with {"seq":N, : that is all the reader needs to order and filter them. */
static bool line_seq(const char *line, size_t len, uint64_t *seq)
{
    static const char prefix[] = "{\"seq\":";
    size_t plen = sizeof prefix - 1;
    if (len < plen + 3 || memcmp(line, prefix, plen) != 0 || line[len - 1] != '}')
        return false;
    uint64_t v = 0;
    size_t i = plen;
    if (line[i] < '0' || line[i] > '9')
        return false;
    for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(line[i] - '0');
    }
    if (i >= len || line[i] != ',' || v == 0)
        return false;
    *seq = v;
    return true;
}

static void ring_put(ksv_event_log *log, uint64_t seq, const char *line, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return; /* the event is on disk; the reader falls back to the files */
    memcpy(copy, line, len);
    copy[len] = '\0';
    ring_entry *e = &log->ring[seq % RING_EVENTS];
    free(e->line);
    *e = (ring_entry){.seq = seq, .line = copy, .len = len};
    if (log->ring_count < RING_EVENTS)
        log->ring_count++;
}

/* Oldest seq the ring can answer from without a gap (0 when empty). */
static uint64_t ring_first(const ksv_event_log *log)
{
    if (log->ring_count == 0)
        return 0;
    uint64_t first = log->last_seq - log->ring_count + 1;
    /* An entry lost to a failed allocation makes the ring unusable below it. */
    for (uint64_t s = log->last_seq; s >= first && s > 0; s--) {
        const ring_entry *e = &log->ring[s % RING_EVENTS];
        if (e->seq != s || !e->line)
            return s + 1;
    }
    return first;
}

typedef bool (*line_fn)(void *ctx, uint64_t seq, const char *line, size_t len);

/* Calls fn for every well-formed line of path, in file order, until fn returns false.
 * *valid_end (when non-NULL) receives the offset just past the last complete line. */
static int scan_file(const char *path, line_fn fn, void *ctx, off_t *valid_end)
{
    if (valid_end)
        *valid_end = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t pos = 0;
    bool go = true;
    while (go && (n = getline(&buf, &cap, f)) > 0) {
        if (buf[n - 1] != '\n')
            break; /* a partial last line: a crash in the middle of a write */
        pos += n;
        if (valid_end)
            *valid_end = pos;
        uint64_t seq;
        if ((size_t)n - 1 <= LINE_MAX_BYTES && line_seq(buf, (size_t)n - 1, &seq))
            go = fn(ctx, seq, buf, (size_t)n - 1);
    }
    free(buf);
    fclose(f);
    return 0;
}

/* ------------------------------------------------------------------------ opening */

typedef struct load_ctx {
    ksv_event_log *log;
    bool current;                 /* reading events.log (not events.1.log) */
} load_ctx;

static bool load_line(void *ctx, uint64_t seq, const char *line, size_t len)
{
    load_ctx *lc = ctx;
    ksv_event_log *log = lc->log;
    if (seq <= log->last_seq)
        return true; /* out of order: never ours, skip it */
    if (log->first_seq == 0)
        log->first_seq = seq;
    if (lc->current && log->cur_first_seq == 0)
        log->cur_first_seq = seq;
    log->last_seq = seq;
    ring_put(log, seq, line, len);
    return true;
}

static int read_or_make_id(ksv_event_log *log, ksv_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/events.id", log->dir);
    char *text = NULL;
    ksv_err rerr;
    if (ksv_read_file(path, 256, &text, NULL, &rerr) == 0) {
        size_t n = strcspn(text, " \t\r\n");
        bool ok = n > 0 && n < sizeof log->log_id;
        for (size_t i = 0; ok && i < n; i++)
            ok = (text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f');
        if (ok) {
            memcpy(log->log_id, text, n);
            log->log_id[n] = '\0';
            free(text);
            return 0;
        }
        free(text);
    }
    unsigned char raw[8];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    bool got = fd >= 0 && read(fd, raw, sizeof raw) == (ssize_t)sizeof raw;
    if (fd >= 0)
        close(fd);
    if (!got)
        return ksv_err_set(err, 500, "events: cannot read /dev/urandom for the log id");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(log->log_id + 2 * i, 3, "%02x", raw[i]);
    char line[40];
    int n = snprintf(line, sizeof line, "%s\n", log->log_id);
    return ksv_write_file_atomic(path, line, (size_t)n, 0600, err);
}

static int open_current(ksv_event_log *log, ksv_err *err)
{
    log->fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (log->fd < 0)
        return ksv_err_set(err, 500, "events: %s: %s", log->path, strerror(errno));
    struct stat st;
    log->file_bytes = fstat(log->fd, &st) == 0 ? (size_t)st.st_size : 0;
    return 0;
}

int ksv_events_open(const char *dir, size_t max_file_bytes, ksv_event_log **out, ksv_err *err)
{
    *out = NULL;
    ksv_event_log *log = calloc(1, sizeof *log);
    if (!log)
        return ksv_err_set(err, 500, "out of memory");
    log->fd = -1;
    pthread_mutex_init(&log->mu, NULL);
    const char *env = getenv("KSV_EVENTS_MAX_BYTES");
    if (env && *env)
        max_file_bytes = (size_t)strtoull(env, NULL, 10);
    if (max_file_bytes == 0)
        max_file_bytes = KSV_EVENTS_DEFAULT_FILE_BYTES;
    log->max_file_bytes = max_file_bytes < MIN_FILE_BYTES ? MIN_FILE_BYTES : max_file_bytes;
    size_t dl = strlen(dir);
    log->dir = strdup(dir);
    log->path = malloc(dl + sizeof "/events.log");
    log->old_path = malloc(dl + sizeof "/events.1.log");
    if (!log->dir || !log->path || !log->old_path) {
        ksv_events_close(log);
        return ksv_err_set(err, 500, "out of memory");
    }
    sprintf(log->path, "%s/events.log", dir);
    sprintf(log->old_path, "%s/events.1.log", dir);
    if (read_or_make_id(log, err) != 0) {
        ksv_events_close(log);
        return -1;
    }
    load_ctx ctx = {log, false};
    load_ctx cur_ctx = {log, true};
    off_t valid_end = 0;
    struct stat st;
    if (scan_file(log->old_path, load_line, &ctx, NULL) != 0 ||
        scan_file(log->path, load_line, &cur_ctx, &valid_end) != 0) {
        ksv_err_set(err, 500, "events: cannot read %s: %s", log->dir, strerror(errno));
        ksv_events_close(log);
        return -1;
    }
    /* Cut a partial last line left by a crash, so the next event starts a line. */
    if (stat(log->path, &st) == 0 && st.st_size > valid_end) {
        ksv_log(KSV_LOG_WARN, NULL, "events: dropping %lld byte(s) of a partial last line in %s",
                (long long)(st.st_size - valid_end), log->path);
        if (truncate(log->path, valid_end) != 0) {
            ksv_err_set(err, 500, "events: %s: %s", log->path, strerror(errno));
            ksv_events_close(log);
            return -1;
        }
    }
    if (open_current(log, err) != 0) {
        ksv_events_close(log);
        return -1;
    }
    *out = log;
    return 0;
}

void ksv_events_close(ksv_event_log *log)
{
    if (!log)
        return;
    if (log->fd >= 0)
        close(log->fd);
    for (size_t i = 0; i < RING_EVENTS; i++)
        free(log->ring[i].line);
    pthread_mutex_destroy(&log->mu);
    free(log->dir);
    free(log->path);
    free(log->old_path);
    free(log);
}

/* ---------------------------------------------------------------------- appending */

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* events.log -> events.1.log, then a fresh events.log. Called with mu held. */
static int rotate(ksv_event_log *log)
{
    fdatasync(log->fd);
    close(log->fd);
    log->fd = -1;
    if (rename(log->path, log->old_path) != 0) {
        ksv_log(KSV_LOG_ERROR, NULL, "events: cannot rotate %s: %s", log->path,
                strerror(errno));
        ksv_err e;
        return open_current(log, &e);
    }
    fsync_dir(log->dir);
    /* What stays kept starts with the oldest event of the file just rotated. */
    log->first_seq = log->cur_first_seq;
    log->cur_first_seq = 0;
    ksv_err e;
    if (open_current(log, &e) != 0) {
        ksv_log(KSV_LOG_ERROR, NULL, "%s", e.msg);
        return -1;
    }
    return 0;
}

/* Appends s as a JSON string, cut to max bytes on a character boundary, with ill-formed
 * UTF-8 replaced by '?' so every line stays valid JSON whatever a caller passed. */
static void json_text(ksv_sb *sb, const char *s, size_t max)
{
    ksv_sb_putc(sb, '"');
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), used = 0;
    static const char hex[] = "0123456789abcdef";
    while (used < len) {
        size_t n = ksv_utf8_seq_len(p + used, len - used);
        if (n == 0) {
            if (used + 1 > max)
                break;
            ksv_sb_putc(sb, '?');
            used++;
            continue;
        }
        if (used + n > max)
            break;
        unsigned char c = p[used];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ksv_sb_append(sb, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ksv_sb_append(sb, esc, 6);
        } else {
            ksv_sb_append(sb, (const char *)p + used, n);
        }
        used += n;
    }
    ksv_sb_putc(sb, '"');
}

static bool kind_ok(const char *kind)
{
    size_t n = kind ? strlen(kind) : 0;
    if (n == 0 || n > KSV_EVENT_KIND_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((kind[i] >= 'a' && kind[i] <= 'z') || (kind[i] >= '0' && kind[i] <= '9') ||
              kind[i] == '-'))
            return false;
    return true;
}

/* The figures as one line of JSON, or "{}" when they are not a JSON object of sane size. */
static void put_figures(ksv_sb *sb, const char *figures_json)
{
    if (!figures_json || !*figures_json) {
        ksv_sb_puts(sb, "{}");
        return;
    }
    size_t n = strlen(figures_json);
    json_object *obj = n <= KSV_EVENT_FIGURES_MAX ? json_tokener_parse(figures_json) : NULL;
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        ksv_log(KSV_LOG_WARN, NULL, "events: figures are not a JSON object of at most %d bytes",
                KSV_EVENT_FIGURES_MAX);
        ksv_sb_puts(sb, "{}");
    } else {
        ksv_sb_puts(sb, json_object_to_json_string_ext(
                            obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    }
    json_object_put(obj);
}

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        data += w;
        len -= (size_t)w;
    }
    return true;
}

void ksv_events_set_clock(ksv_event_log *log, const ksv_clock *clock)
{
    if (log)
        log->clock = clock;
}

int64_t ksv_events_now_ms(const ksv_event_log *log)
{
    return ksv_clock_wall_ms(log ? log->clock : NULL);
}

static uint64_t append_v(ksv_event_log *log, int64_t now_ms, const char *model,
                         const char *revision, const char *kind, const char *figures_json,
                         const char *fmt, va_list ap) __attribute__((format(printf, 7, 0)));

uint64_t ksv_events_append(ksv_event_log *log, const char *model, const char *revision,
                           const char *kind, const char *figures_json, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uint64_t seq = append_v(log, ksv_events_now_ms(log), model, revision, kind, figures_json,
                            fmt, ap);
    va_end(ap);
    return seq;
}

uint64_t ksv_events_append_at(ksv_event_log *log, int64_t at_ms, const char *model,
                              const char *revision, const char *kind, const char *figures_json,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uint64_t seq = append_v(log, at_ms, model, revision, kind, figures_json, fmt, ap);
    va_end(ap);
    return seq;
}

static uint64_t append_v(ksv_event_log *log, int64_t now_ms, const char *model,
                         const char *revision, const char *kind, const char *figures_json,
                         const char *fmt, va_list ap)
{
    if (!log)
        return 0;
    if (!kind_ok(kind)) {
        ksv_log(KSV_LOG_ERROR, NULL, "events: refusing an event with a malformed kind");
        return 0;
    }
    char message[KSV_EVENT_MESSAGE_MAX + 1];
    vsnprintf(message, sizeof message, fmt, ap);
    /* Events reach the API, ksv and its database: no storage URI's credentials. */
    ksv_uri_redact_text(message, sizeof message);

    /* Everything but the seq is formatted before taking the lock. */
    ksv_sb tail;
    ksv_sb_init(&tail);
    ksv_sb_printf(&tail, ",\"time\":%lld.%03lld,\"model\":", (long long)(now_ms / 1000),
                  (long long)(now_ms % 1000));
    if (model)
        json_text(&tail, model, 256);
    else
        ksv_sb_puts(&tail, "null");
    ksv_sb_puts(&tail, ",\"revision\":");
    if (revision)
        json_text(&tail, revision, 256);
    else
        ksv_sb_puts(&tail, "null");
    ksv_sb_printf(&tail, ",\"kind\":\"%s\",\"message\":", kind);
    json_text(&tail, message, KSV_EVENT_MESSAGE_MAX);
    ksv_sb_puts(&tail, ",\"figures\":");
    put_figures(&tail, figures_json);
    ksv_sb_puts(&tail, "}\n");
    if (tail.oom) {
        ksv_sb_free(&tail);
        ksv_log(KSV_LOG_ERROR, NULL, "events: out of memory; a %s event is lost", kind);
        return 0;
    }

    pthread_mutex_lock(&log->mu);
    uint64_t seq = log->last_seq + 1;
    ksv_err oerr;
    if (log->fd < 0 && open_current(log, &oerr) != 0)
        ksv_log(KSV_LOG_ERROR, NULL, "%s", oerr.msg); /* a failed rotation: try again */
    ksv_sb line;
    ksv_sb_init(&line);
    ksv_sb_printf(&line, "{\"seq\":%llu", (unsigned long long)seq);
    ksv_sb_append(&line, tail.data, tail.len);
    ksv_sb_free(&tail);
    if (log->fd >= 0 && log->file_bytes > 0 &&
        log->file_bytes + line.len > log->max_file_bytes)
        rotate(log);
    bool ok = !line.oom && log->fd >= 0 && write_all(log->fd, line.data, line.len) &&
              fdatasync(log->fd) == 0;
    if (ok) {
        log->file_bytes += line.len;
        log->last_seq = seq;
        if (log->first_seq == 0)
            log->first_seq = seq;
        if (log->cur_first_seq == 0)
            log->cur_first_seq = seq;
        ring_put(log, seq, line.data, line.len - 1);
    }
    pthread_mutex_unlock(&log->mu);
    if (!ok) {
        ksv_log(KSV_LOG_ERROR, NULL, "events: cannot write a %s event to %s: %s", kind,
                log->path, strerror(errno));
        seq = 0;
    }
    ksv_sb_free(&line);
    return seq;
}

uint64_t ksv_events_last_seq(ksv_event_log *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t s = log->last_seq;
    pthread_mutex_unlock(&log->mu);
    return s;
}

void ksv_events_write_position(ksv_event_log *log, ksv_sb *sb)
{
    ksv_sb_puts(sb, "{\"log_id\":");
    ksv_sb_json_str(sb, log->log_id); /* written once at open, never changed */
    ksv_sb_printf(sb, ",\"last_seq\":%llu}", (unsigned long long)ksv_events_last_seq(log));
}

/* ------------------------------------------------------------------------ reading */

typedef struct page_ctx {
    ksv_sb *sb;
    uint64_t since;
    size_t limit, count;
    bool more;
} page_ctx;

static bool page_line(void *vctx, uint64_t seq, const char *line, size_t len)
{
    page_ctx *ctx = vctx;
    if (seq <= ctx->since)
        return true;
    if (ctx->count == ctx->limit) {
        ctx->more = true;
        return false;
    }
    if (ctx->count++ > 0)
        ksv_sb_putc(ctx->sb, ',');
    ksv_sb_append(ctx->sb, line, len);
    ctx->since = seq; /* both files are read in turn: never repeat one */
    return true;
}

int ksv_events_write_since(ksv_event_log *log, uint64_t since, size_t limit, ksv_sb *sb,
                           ksv_err *err)
{
    if (limit == 0)
        limit = KSV_EVENTS_PAGE_DEFAULT;
    if (limit > KSV_EVENTS_PAGE_MAX)
        limit = KSV_EVENTS_PAGE_MAX;
    ksv_sb events;
    ksv_sb_init(&events);
    page_ctx ctx = {.sb = &events, .since = since, .limit = limit};
    pthread_mutex_lock(&log->mu);
    uint64_t last = log->last_seq, first = log->first_seq, rfirst = ring_first(log);
    if (since < last && rfirst && since + 1 >= rfirst) {
        /* The usual case: everything asked for is in memory. */
        for (uint64_t s = since + 1; s <= last; s++) {
            const ring_entry *e = &log->ring[s % RING_EVENTS];
            if (ctx.count == limit) {
                ctx.more = true;
                break;
            }
            if (ctx.count++ > 0)
                ksv_sb_putc(&events, ',');
            ksv_sb_append(&events, e->line, e->len);
        }
    } else if (since < last) {
        /* Older than memory: read the files (the lock keeps rotation away meanwhile). */
        if (scan_file(log->old_path, page_line, &ctx, NULL) != 0 ||
            (!ctx.more && scan_file(log->path, page_line, &ctx, NULL) != 0)) {
            pthread_mutex_unlock(&log->mu);
            ksv_sb_free(&events);
            return ksv_err_set(err, 500, "events: cannot read the log: %s", strerror(errno));
        }
    }
    pthread_mutex_unlock(&log->mu);
    ksv_sb_puts(sb, "{\"log_id\":");
    ksv_sb_json_str(sb, log->log_id);
    ksv_sb_printf(sb, ",\"first_seq\":%llu,\"last_seq\":%llu,\"events\":[",
                  (unsigned long long)first, (unsigned long long)last);
    if (events.len)
        ksv_sb_append(sb, events.data, events.len);
    ksv_sb_printf(sb, "],\"more\":%s}", ctx.more ? "true" : "false");
    bool oom = events.oom || sb->oom;
    ksv_sb_free(&events);
    if (oom)
        return ksv_err_set(err, 500, "out of memory");
    return 0;
}
