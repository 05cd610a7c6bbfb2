/* fetch_http.c: downloads for the model store fetchers (see fetch_http.h). */
#include "engine/fetch_http.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define ERROR_BODY_MAX (16u << 10)
#define MAX_HEADERS 16

typedef struct transfer {
    FILE *f;                      /* NULL: into `text` */
    ksv_sb *text;
    size_t text_max;
    unsigned long long base;      /* bytes already in the partial file */
    unsigned long long bytes;     /* bytes received this time */
    unsigned long long max_bytes;
    const ksv_fetch_ctl *ctl;
    double window_start;          /* stall rule: when the current window began */
    unsigned long long window_bytes;
    const char *stopped;          /* why the progress callback ended the transfer */
    long status;
    bool resumed;                 /* a 206 answered the Range */
    bool restart;                 /* a 200 answered the Range: start the file again */
    bool too_large, write_failed;
    ksv_sb error_body;            /* the reply of a status >= 400, capped */
} transfer;

/* Called at least once a second, data or not: cancel, deadline and stall are judged here,
 * so none of them waits for the peer. */
static int on_progress(long long done, long long total, void *user)
{
    (void)done;
    transfer *t = user;
    if (t->f && total > 0 && t->status >= 200 && t->status < 300)
        ksv_fetch_progress_expect(t->ctl, (long long)t->base + total, false);
    double now = ksv_mono_s();
    if (t->ctl->cancel && atomic_load(t->ctl->cancel))
        t->stopped = "cancelled";
    else if (t->ctl->deadline > 0 && now > t->ctl->deadline)
        t->stopped = "deadline";
    else if (t->ctl->stall_s > 0 && now - t->window_start >= t->ctl->stall_s) {
        if (t->bytes - t->window_bytes < 1024)
            t->stopped = "stall";
        t->window_start = now;
        t->window_bytes = t->bytes;
    }
    return t->stopped != NULL;
}

static int on_header(long status, const char *line, size_t len, void *user)
{
    (void)line, (void)len;
    transfer *t = user;
    /* The headers of a redirect being followed come first; the last status is the answer's. */
    bool after_redirect = t->status >= 300 && t->status < 400;
    if (t->status != status && (t->status == 0 || after_redirect)) {
        t->status = status;
        if (status >= 300 && status < 400)
            return t->write_failed;
        t->resumed = status == 206 && t->base > 0;
        if (status == 200 && t->base > 0 && t->f) {
            /* The store ignored the Range: the whole object comes again. */
            ksv_fetch_progress_add(t->ctl, -(long long)t->base, 0);
            t->restart = true;
            t->base = 0;
            if (fflush(t->f) != 0 || ftruncate(fileno(t->f), 0) != 0 ||
                fseek(t->f, 0, SEEK_SET) != 0)
                t->write_failed = true;
        }
    }
    return t->write_failed;
}

static int on_data(const char *data, size_t n, void *user)
{
    transfer *t = user;
    if (t->status >= 300) {
        if (t->error_body.len < ERROR_BODY_MAX)
            ksv_sb_append(&t->error_body, data,
                          n < ERROR_BODY_MAX - t->error_body.len ? n
                                                                 : ERROR_BODY_MAX - t->error_body.len);
        return 0;
    }
    t->bytes += n;
    if (t->base + t->bytes > t->max_bytes) {
        t->too_large = true;
        return 1;
    }
    if (t->f) {
        if (fwrite(data, 1, n, t->f) != n) {
            t->write_failed = true;
            return 1;
        }
        ksv_fetch_progress_add(t->ctl, (long long)n, (long long)n);
    } else {
        if (t->text->len + n > t->text_max) {
            t->too_large = true;
            return 1;
        }
        ksv_sb_append(t->text, data, n);
    }
    return 0;
}

/* The error for a finished transfer that did not succeed. */
static int transfer_error(const transfer *t, const char *shown, const ksv_http_result *res,
                          ksv_store_error_fn error_code, ksv_err *err)
{
    if (t->stopped && strcmp(t->stopped, "deadline") == 0)
        return ksv_err_set(err, 504, "storage %s: not fetched within %.0f s (%llu bytes so "
                                     "far)", shown, t->ctl->deadline_s, t->base + t->bytes);
    if (t->stopped && strcmp(t->stopped, "stall") == 0)
        return ksv_err_set(err, 504, "storage %s: stalled (under 1 KiB in %.0f s)", shown,
                           t->ctl->stall_s);
    if (t->stopped)
        return ksv_err_set(err, 499, "storage %s: cancelled", shown);
    if (t->too_large || res->failure == KSV_HTTP_E_TOO_LARGE)
        return ksv_err_set(err, 413, "storage %s: larger than %llu bytes", shown, t->max_bytes);
    if (t->write_failed)
        return ksv_err_set(err, 500, "storage %s: writing the download failed: %s", shown,
                           strerror(errno));
    if (t->status >= 300) {
        char code[128] = "";
        if (error_code && t->error_body.len)
            error_code(t->error_body.data, t->error_body.len, code, sizeof code);
        int status = t->status == 404 || t->status == 403 || t->status == 401 ? (int)t->status
                                                                              : 503;
        return ksv_err_set(err, status, "storage %s: HTTP %ld%s%s", shown, t->status,
                           code[0] ? " " : "", code);
    }
    return ksv_err_set(err, 503, "storage %s: %s", shown,
                       res->message[0] ? res->message : "the transfer failed");
}

/* Runs one GET with the client's policies plus `headers` and, when range_from > 0, a
 * Range for the rest of the object. */
static int run(const char *url, const ksv_http_options *http, const char *const *headers,
               unsigned long long range_from, transfer *t, ksv_http_result *res, ksv_err *err)
{
    const char *lines[MAX_HEADERS + 2];
    size_t n = 0;
    for (size_t i = 0; headers && headers[i] && n < MAX_HEADERS; i++)
        lines[n++] = headers[i];
    char range[64];
    if (range_from > 0) {
        snprintf(range, sizeof range, "Range: bytes=%llu-", range_from);
        lines[n++] = range;
    }
    lines[n] = NULL;
    ksv_http_options o = *http;
    o.max_reply = 0; /* the cap is judged in on_data, across resumed parts */
    if (o.connect_timeout_ms == 0)
        o.connect_timeout_ms = 15000;
    ksv_http_client *c;
    if (ksv_http_client_new(&o, &c, err) != 0)
        return -1;
    ksv_http_call req = {.url = url, .headers = lines};
    ksv_http_stream_fns fns = {.on_header = on_header, .on_data = on_data,
                               .on_progress = on_progress, .user = t};
    ksv_err why;
    int rc = ksv_http_stream(c, &req, &fns, res, &why);
    ksv_http_client_free(c);
    return rc;
}

int ksv_download_file(const ksv_download *d, ksv_err *err)
{
    char tmp[PATH_MAX];
    static _Atomic unsigned long seq;
    const char *part = d->partial;
    if (!part) {
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.part.%ld.%lu", d->dest, (long)getpid(),
                             atomic_fetch_add(&seq, 1)) >= sizeof tmp)
            return ksv_err_set(err, 400, "storage %s: path too long", d->shown);
        part = tmp;
    }
    FILE *f = fopen(part, d->partial ? "ab" : "wb");
    if (!f)
        return ksv_err_set(err, 500, "%s: %s", part, strerror(errno));
    long have = ftell(f);
    transfer t = {
        .f = f,
        .base = have > 0 ? (unsigned long long)have : 0,
        .ctl = d->ctl,
        .max_bytes = d->ctl->max_bytes ? d->ctl->max_bytes : KSV_STORAGE_MAX_DOWNLOAD,
        .window_start = ksv_mono_s(),
    };
    ksv_sb_init(&t.error_body);
    unsigned long long from = t.base;
    if (d->expect_size >= 0 && (long long)from > d->expect_size) {
        /* More bytes than the object has: not a prefix of it. */
        if (ftruncate(fileno(f), 0) != 0 || fseek(f, 0, SEEK_SET) != 0)
            t.write_failed = true;
        from = t.base = 0;
    }
    ksv_fetch_progress_add(d->ctl, (long long)from, 0);
    ksv_http_result res;
    memset(&res, 0, sizeof res);
    int rc = 0;
    bool complete = d->expect_size >= 0 && (long long)from == d->expect_size && from > 0;
    if (!complete && !t.write_failed)
        rc = run(d->url, d->http, d->headers, from, &t, &res, err);
    if (t.status == 416 && d->expect_size >= 0 && (long long)from == d->expect_size)
        rc = 0, t.status = 206; /* the partial file already held it all */
    int closed = fclose(f);
    bool ok = !t.write_failed && closed == 0 &&
              (complete || (rc == 0 && (t.status == 200 || t.status == 206) && !t.stopped));
    unsigned long long total = t.base + t.bytes;
    if (ok && d->expect_size >= 0 && total != (unsigned long long)d->expect_size)
        ok = false, rc = ksv_err_set(err, 502, "storage %s: got %llu bytes, the store listed "
                                               "%lld", d->shown, total, d->expect_size);
    else if (!ok)
        rc = transfer_error(&t, d->shown, &res, d->error_code, err);
    ksv_sb_free(&t.error_body);
    if (!ok) {
        /* A partial file is kept for the next try unless it is no prefix of the object. */
        if (!d->partial || t.status >= 300 || t.write_failed)
            unlink(part);
        else if (total > 0)
            ksv_log(KSV_LOG_INFO, NULL, "storage %s: %llu bytes kept to resume from", d->shown,
                    total);
        return -1;
    }
    if (t.resumed)
        ksv_log(KSV_LOG_INFO, NULL, "storage %s: resumed at byte %llu", d->shown, from);
    if (rename(part, d->dest) != 0) {
        int e = errno;
        unlink(part);
        return ksv_err_set(err, 500, "rename to %s: %s", d->dest, strerror(e));
    }
    return 0;
}

int ksv_download_text(const char *url, const char *shown, const ksv_http_options *http,
                      const char *const *headers, const ksv_fetch_ctl *ctl, size_t max,
                      ksv_store_error_fn error_code, ksv_sb *out, ksv_err *err)
{
    transfer t = {
        .text = out,
        .text_max = max,
        .ctl = ctl,
        .max_bytes = max,
        .window_start = ksv_mono_s(),
    };
    ksv_sb_init(&t.error_body);
    ksv_http_result res;
    memset(&res, 0, sizeof res);
    int rc = run(url, http, headers, 0, &t, &res, err);
    if (rc != 0 || t.stopped || t.too_large || out->oom || t.status < 200 || t.status >= 300)
        rc = out->oom ? ksv_err_set(err, 500, "out of memory")
                      : transfer_error(&t, shown, &res, error_code, err);
    ksv_sb_free(&t.error_body);
    return rc;
}

void ksv_url_encode(ksv_sb *sb, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~' ||
                     (keep_slash && c == '/');
        if (plain) {
            ksv_sb_putc(sb, (char)c);
        } else {
            ksv_sb_putc(sb, '%');
            ksv_sb_putc(sb, hex[c >> 4]);
            ksv_sb_putc(sb, hex[c & 15]);
        }
    }
}
