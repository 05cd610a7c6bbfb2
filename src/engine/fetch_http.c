/* fetch_http.c: downloads for the model store fetchers (see fetch_http.h). */
#include "engine/fetch_http.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"

#define ERROR_BODY_MAX (16u << 10)
#define MAX_HEADERS 16
/* A transfer that breaks after moving bytes is resumed at once this many times (each try
 * must move bytes again) before the fetch fails; the bytes stay for a later try. */
#define MAX_RESUMES 5
#define VALIDATOR_MAX 200

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
    char etag[VALIDATOR_MAX];     /* the answer's strong ETag, "" when none */
    char last_modified[VALIDATOR_MAX]; /* its Last-Modified, "" when none */
} transfer;

/* Copies the value of header line `name: value` into out when line is that header. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    size_t vlen = (size_t)(end - v);
    bool printable = vlen > 0 && vlen < cap;
    for (size_t i = 0; printable && i < vlen; i++)
        printable = (unsigned char)v[i] >= ' ' && v[i] != 0x7f;
    if (printable) {
        memcpy(out, v, vlen);
        out[vlen] = '\0';
    }
}

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
    transfer *t = user;
    if (status == 200 || status == 206) {
        /* What names this version of the object, for an If-Range when resuming later. A
         * weak ETag cannot be used there (RFC 9110 13.1.5). */
        char etag[VALIDATOR_MAX] = "";
        header_value(line, len, "ETag", etag, sizeof etag);
        if (etag[0] == '"')
            snprintf(t->etag, sizeof t->etag, "%s", etag);
        header_value(line, len, "Last-Modified", t->last_modified, sizeof t->last_modified);
    }
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
static int run_request(const char *method, const char *url, const ksv_http_options *http,
                       const char *const *headers, const char *body, size_t body_len,
                       unsigned long long range_from, const char *if_range, transfer *t,
                       ksv_http_result *res, ksv_err *err)
{
    const char *lines[MAX_HEADERS + 3];
    size_t n = 0;
    for (size_t i = 0; headers && headers[i] && n < MAX_HEADERS; i++)
        lines[n++] = headers[i];
    char range[64], cond[VALIDATOR_MAX + 16];
    if (range_from > 0) {
        snprintf(range, sizeof range, "Range: bytes=%llu-", range_from);
        lines[n++] = range;
        if (if_range && *if_range) {
            /* The rest only if the object is still the one the bytes came from; a changed
             * one comes whole (200), and the file starts again. */
            snprintf(cond, sizeof cond, "If-Range: %s", if_range);
            lines[n++] = cond;
        }
    }
    lines[n] = NULL;
    ksv_http_options o = *http;
    /* The cap is judged in on_data, across resumed parts; the client's own cap is only set
     * as high (a cap left to a default once stopped every model over 64 MiB). */
    o.max_reply = t->max_bytes >= SIZE_MAX ? KSV_HTTP_NO_REPLY_CAP : (size_t)t->max_bytes;
    if (o.connect_timeout_ms == 0)
        o.connect_timeout_ms = 15000;
    ksv_http_client *c;
    if (ksv_http_client_new(&o, &c, err) != 0)
        return -1;
    ksv_http_call req = {.method = method, .url = url, .headers = lines, .body = body,
                         .body_len = body_len};
    ksv_http_stream_fns fns = {.on_header = on_header, .on_data = on_data,
                               .on_progress = on_progress, .user = t};
    ksv_err why;
    int rc = ksv_http_stream(c, &req, &fns, res, &why);
    ksv_http_client_free(c);
    return rc;
}

static int run(const char *url, const ksv_http_options *http, const char *const *headers,
               unsigned long long range_from, const char *if_range, transfer *t,
               ksv_http_result *res, ksv_err *err)
{
    return run_request(NULL, url, http, headers, NULL, 0, range_from, if_range, t, res, err);
}

/* The validator kept beside a partial file (PARTIAL.v): what the bytes are a prefix of. */
static void validator_path(const char *part, char *out, size_t cap)
{
    snprintf(out, cap, "%s.v", part);
}

static void read_validator(const char *part, char *out, size_t cap)
{
    char path[PATH_MAX + 4];
    validator_path(part, path, sizeof path);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(out, (int)cap, f))
        out[0] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

static void write_validator(const char *part, const char *validator)
{
    char path[PATH_MAX + 4];
    validator_path(part, path, sizeof path);
    FILE *f = validator[0] ? fopen(path, "w") : NULL;
    if (!f || fprintf(f, "%s\n", validator) < 0 || fclose(f) != 0) {
        if (f)
            fclose(f);
        unlink(path);
    }
}

/* Opens the file the bytes go to: the partial file kept between tries (locked, so two
 * downloads of one object never write into one file), else a temp file beside dest. */
static FILE *open_target(const ksv_download *d, char *part, size_t cap, bool *kept,
                         ksv_err *err)
{
    static _Atomic unsigned long seq;
    *kept = false;
    if (d->partial) {
        snprintf(part, cap, "%s", d->partial);
        *kept = true;
    } else if (d->ctl->cache) {
        /* Named by the URL and the listed size: a later try of the same object finds it. */
        char id[2200], name[65];
        snprintf(id, sizeof id, "%s\n%lld", d->url, d->expect_size);
        ksv_sha256_hex(id, strlen(id), name);
        ksv_err ignored;
        *kept = ksv_cache_partial(d->ctl->cache, name, part, cap, &ignored) == 0;
    }
    if (*kept) {
        FILE *f = fopen(part, "ab");
        if (f && flock(fileno(f), LOCK_EX | LOCK_NB) == 0)
            return f;
        if (f)
            fclose(f); /* another download of this object holds it: this one goes alone */
        *kept = false;
    }
    if ((size_t)snprintf(part, cap, "%s.part.%ld.%lu", d->dest, (long)getpid(),
                         atomic_fetch_add(&seq, 1)) >= cap) {
        ksv_err_set(err, 400, "storage %s: path too long", d->shown);
        return NULL;
    }
    FILE *f = fopen(part, "wb");
    if (!f)
        ksv_err_set(err, 500, "%s: %s", part, strerror(errno));
    return f;
}

/* Whether a failed try may go on from where it broke: the store was sending the object
 * (200/206), bytes came, and nothing but the connection stopped it. */
static bool resumable(const transfer *t, int rc, const ksv_http_result *res)
{
    return rc != 0 && t->bytes > 0 && (t->status == 200 || t->status == 206) && !t->stopped &&
           !t->too_large && !t->write_failed &&
           (res->failure == KSV_HTTP_E_BROKEN || res->failure == KSV_HTTP_E_OTHER);
}

int ksv_download_file(const ksv_download *d, ksv_err *err)
{
    char part[PATH_MAX];
    bool kept;
    FILE *f = open_target(d, part, sizeof part, &kept, err);
    if (!f)
        return -1;
    long have = ftell(f);
    transfer t = {
        .f = f,
        .base = have > 0 ? (unsigned long long)have : 0,
        .ctl = d->ctl,
        .max_bytes = d->ctl->max_bytes ? d->ctl->max_bytes : KSV_STORAGE_MAX_DOWNLOAD,
        .window_start = ksv_mono_s(),
    };
    ksv_sb_init(&t.error_body);
    /* Without a listed size, only a validator says the bytes are a prefix of this object. */
    char validator[VALIDATOR_MAX] = "";
    if (kept && d->expect_size < 0)
        read_validator(part, validator, sizeof validator);
    unsigned long long from = t.base;
    if ((d->expect_size >= 0 && (long long)from > d->expect_size) ||
        (d->expect_size < 0 && from > 0 && !validator[0])) {
        /* More bytes than the object has, or no way to tell what they are: start over. */
        if (ftruncate(fileno(f), 0) != 0 || fseek(f, 0, SEEK_SET) != 0)
            t.write_failed = true;
        from = t.base = 0;
    }
    ksv_fetch_progress_add(d->ctl, (long long)from, 0);
    unsigned long long first_from = from;
    ksv_http_result res;
    memset(&res, 0, sizeof res);
    int rc = 0;
    bool complete = d->expect_size >= 0 && (long long)from == d->expect_size && from > 0;
    bool resumed = false;
    for (int attempt = 0; !complete && !t.write_failed; attempt++) {
        rc = run(d->url, d->http, d->headers, from, d->expect_size < 0 ? validator : NULL, &t,
                 &res, err);
        resumed |= t.resumed;
        if (t.etag[0] || t.last_modified[0])
            snprintf(validator, sizeof validator, "%s", t.etag[0] ? t.etag : t.last_modified);
        bool can_go_on = d->expect_size >= 0 || validator[0];
        if (attempt >= MAX_RESUMES || !can_go_on || !resumable(&t, rc, &res))
            break;
        if (fflush(f) != 0) {
            t.write_failed = true;
            break;
        }
        from = t.base + t.bytes;
        ksv_log(KSV_LOG_INFO, NULL, "storage %s: the transfer broke at byte %llu (%s); "
                                    "resuming from there", d->shown, from,
                res.message[0] ? res.message : ksv_http_failure_name(res.failure));
        /* The next try's answer is judged on its own; the bytes so far stay counted. */
        t.base = from;
        t.bytes = 0;
        t.status = 0;
        t.resumed = t.restart = false;
        t.etag[0] = t.last_modified[0] = '\0';
        t.window_start = ksv_mono_s();
        t.window_bytes = 0;
        memset(&res, 0, sizeof res);
    }
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
        /* A partial file is kept for the next try unless the store says the object is
         * gone or refused (4xx: it may be no prefix of what comes next), or nothing will
         * tell the next try what it is a prefix of. A 5xx is the store's passing trouble. */
        bool refused = t.status >= 400 && t.status < 500;
        bool keep = kept && !refused && !t.write_failed && total > 0 &&
                    (d->expect_size >= 0 || validator[0]);
        if (keep && d->expect_size < 0)
            write_validator(part, validator);
        if (keep) {
            ksv_log(KSV_LOG_INFO, NULL, "storage %s: %llu bytes kept to resume from", d->shown,
                    total);
        } else {
            unlink(part);
            if (kept)
                write_validator(part, "");
        }
        return -1;
    }
    if (resumed)
        ksv_log(KSV_LOG_INFO, NULL, "storage %s: resumed at byte %llu", d->shown, first_from);
    if (kept)
        write_validator(part, ""); /* removes it */
    if (rename(part, d->dest) != 0) {
        int e = errno;
        unlink(part);
        return ksv_err_set(err, 500, "rename to %s: %s", d->dest, strerror(e));
    }
    return 0;
}

int ksv_upload_text(const char *url, const char *shown, const char *method,
                    const ksv_http_options *http, const char *const *headers, const char *body,
                    size_t body_len, const ksv_fetch_ctl *ctl, size_t max,
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
    int rc = run_request(method, url, http, headers, body, body_len, 0, NULL, &t, &res, err);
    if (rc != 0 || t.stopped || t.too_large || out->oom || t.status < 200 || t.status >= 300)
        rc = out->oom ? ksv_err_set(err, 500, "out of memory")
                      : transfer_error(&t, shown, &res, error_code, err);
    ksv_sb_free(&t.error_body);
    return rc;
}

int ksv_download_text(const char *url, const char *shown, const ksv_http_options *http,
                      const char *const *headers, const ksv_fetch_ctl *ctl, size_t max,
                      ksv_store_error_fn error_code, ksv_sb *out, ksv_err *err)
{
    return ksv_upload_text(url, shown, NULL, http, headers, NULL, 0, ctl, max, error_code, out,
                           err);
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
