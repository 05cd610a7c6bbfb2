/* storage.c: storage URI resolution. */
#include "engine/storage.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/log.h"
#include "common/model_path.h"
#include "common/sha256.h"
#include "engine/http.h"
#include "http/http_client.h"

static bool digest_matches(const char *expected, const char *actual)
{
    for (size_t i = 0; i < 64; i++)
        if (tolower((unsigned char)expected[i]) != actual[i])
            return false;
    return expected[64] == '\0';
}

#define KSV_URI_KEY_MAX 2200

typedef struct download {
    FILE *f;
    unsigned long long bytes;
    const ksv_fetch_ctl *ctl;
    double window_start;          /* stall rule: when the current window began */
    unsigned long long window_bytes;
    const char *stopped;          /* why the progress callback ended the transfer */
    long error_status;            /* the server answered >= 400: nothing is written */
    bool write_failed;
} download;

/* Called at least once a second, data or not: cancel, deadline and stall are judged
 * here, so none of them waits for the peer. */
static int on_progress(long long done, long long total, void *user)
{
    (void)done, (void)total;
    download *d = user;
    double now = ksv_now();
    if (atomic_load(d->ctl->cancel))
        d->stopped = "cancelled";
    else if (d->ctl->deadline > 0 && now > d->ctl->deadline)
        d->stopped = "deadline";
    else if (d->ctl->stall_s > 0 && now - d->window_start >= d->ctl->stall_s) {
        if (d->bytes - d->window_bytes < 1024)
            d->stopped = "stall";
        d->window_start = now;
        d->window_bytes = d->bytes;
    }
    return d->stopped != NULL;
}

static int on_header(long status, const char *line, size_t len, void *user)
{
    download *d = user;
    if (status >= 400) {
        d->error_status = status;
        return 1; /* no need for the error page */
    }
    return 0;
}

static int write_chunk(const char *data, size_t n, void *user)
{
    download *d = user;
    d->bytes += n;
    if (fwrite(data, 1, n, d->f) != n) {
        d->write_failed = true;
        return 1;
    }
    return 0;
}

/* Fetches url into path (through a temp file and a rename, so a crash leaves no half
 * file under the final name). */
static int fetch(const char *url, const char *path, const ksv_fetch_ctl *ctl, ksv_err *err)
{
    char tmp[PATH_MAX];
    static _Atomic unsigned long part_seq;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.part.%ld.%lu", path, (long)getpid(),
                         atomic_fetch_add(&part_seq, 1)) >= sizeof tmp)
        return ksv_err_set(err, 400, "storage %s: cache path too long", url);
    download d = {.f = fopen(tmp, "wbe"), .ctl = ctl, .window_start = ksv_now()};
    if (!d.f)
        return ksv_err_set(err, 500, "%s: %s", tmp, strerror(errno));
    /* Model stores live outside ksv: proxies from the environment apply, redirects are
     * followed (a few, never from https down to http); cancel, deadline and stall are
     * on_progress's. */
    ksv_http_options o = {.connect_timeout_ms = 15000, .max_redirects = 5,
                          .proxy = KSV_HTTP_PROXY_ENV, .max_reply = KSV_STORAGE_MAX_DOWNLOAD};
    ksv_http_client *http;
    if (ksv_http_client_new(&o, &http, err) != 0) {
        fclose(d.f);
        unlink(tmp);
        return ksv_err_prefix(err, "storage %s", url);
    }
    ksv_http_call req = {.url = url};
    ksv_http_stream_fns fns = {.on_header = on_header, .on_data = write_chunk,
                               .on_progress = on_progress, .user = &d};
    ksv_http_result res;
    ksv_err why;
    int rc = ksv_http_stream(http, &req, &fns, &res, &why);
    ksv_http_client_free(http);
    int closed = fclose(d.f);
    if (rc != 0 || closed != 0) {
        unlink(tmp);
        if (res.failure == KSV_HTTP_E_TOO_LARGE)
            return ksv_err_set(err, 400, "storage %s: larger than %llu bytes", url,
                               KSV_STORAGE_MAX_DOWNLOAD);
        if (d.stopped && strcmp(d.stopped, "deadline") == 0)
            return ksv_err_set(err, 504, "storage %s: not fetched within %.0f s (%llu bytes "
                                         "so far)", url, ctl->deadline_s, d.bytes);
        if (d.stopped && strcmp(d.stopped, "stall") == 0)
            return ksv_err_set(err, 504, "storage %s: stalled (under 1 KiB in %.0f s)", url,
                               ctl->stall_s);
        if (d.stopped)
            return ksv_err_set(err, 499, "storage %s: cancelled", url);
        if (d.error_status)
            return ksv_err_set(err, d.error_status == 404 ? 404 : 503,
                               "storage %s: The requested URL returned error: %ld", url,
                               d.error_status);
        if (d.write_failed || (rc == 0 && closed != 0))
            return ksv_err_set(err, 500, "storage %s: writing %s failed", url, tmp);
        return ksv_err_set(err, 503, "storage %s: %s", url, res.message);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ksv_err_set(err, 500, "rename to %s: %s", path, strerror(e));
    }
    ksv_log(KSV_LOG_INFO, NULL, "fetched %s (%llu bytes) into the cache", url, d.bytes);
    return 0;
}

/* http(s): the cached copy, fetched first when missing or not the expected bytes. */
static int resolve_http(const char *uri, const char *cache_dir, const char *sha256,
                        const ksv_fetch_ctl *ctl, char *path, size_t cap, ksv_err *err)
{
    if (!cache_dir)
        return ksv_err_set(err, 400, "storage %s: this engine has no cache for downloads", uri);
    if (sha256 && *sha256) {
        bool hex = strlen(sha256) == 64;
        for (size_t i = 0; hex && i < 64; i++)
            hex = isxdigit((unsigned char)sha256[i]) != 0;
        if (!hex)
            return ksv_err_set(err, 400, "storage %s: sha256 must be 64 hex digits", uri);
    }
    /* The file keeps the URL's name so the runtime knows its format. */
    const char *end = uri + strcspn(uri, "?#");
    const char *name = end;
    while (name > uri && name[-1] != '/')
        name--;
    char base[256];
    if ((size_t)(end - name) >= sizeof base || end == name)
        return ksv_err_set(err, 400, "storage %s: the URL must name a model file", uri);
    memcpy(base, name, (size_t)(end - name));
    base[end - name] = '\0';
    if (!ksv_model_file_name(base) || strchr(base, '%'))
        return ksv_err_set(err, 400, "storage %s: the URL must name a .json, .ubj or .bst file",
                           uri);
    /* Keyed by the URL and the digest asked for, so a revision that expects other bytes
     * never disturbs a good cached copy. */
    char url_hash[65], dir[PATH_MAX], key[KSV_URI_KEY_MAX];
    int klen = snprintf(key, sizeof key, "%s\n%s", uri, sha256 ? sha256 : "");
    if (klen < 0 || (size_t)klen >= sizeof key)
        return ksv_err_set(err, 400, "storage %s: URL too long", uri);
    for (char *c = key + strlen(uri) + 1; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    ksv_sha256_hex(key, (size_t)klen, url_hash);
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", cache_dir, url_hash) >= sizeof dir ||
        (size_t)snprintf(path, cap, "%s/%s", dir, base) >= cap)
        return ksv_err_set(err, 400, "storage %s: cache path too long", uri);
    if (ksv_mkdir_p(dir, 0700, err) != 0)
        return -1;
    char actual[65];
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!(sha256 && *sha256))
            return 0;
        if (ksv_sha256_file(path, actual, NULL, err) != 0)
            return -1;
        if (digest_matches(sha256, actual))
            return 0;
        unlink(path); /* cached bytes are not the ones asked for: fetch again */
    }
    if (fetch(uri, path, ctl, err) != 0)
        return -1;
    if (sha256 && *sha256) {
        if (ksv_sha256_file(path, actual, NULL, err) != 0)
            return -1;
        if (!digest_matches(sha256, actual)) {
            unlink(path);
            return ksv_err_set(err, 400, "storage %s: sha256 mismatch: expected %s, got %s",
                               uri, sha256, actual);
        }
    }
    return 0;
}

bool ksv_storage_is_remote(const char *uri)
{
    return strstr(uri, "://") && strncmp(uri, "file://", 7) != 0;
}

int ksv_storage_fetch(const char *uri, const char *cache_dir, const char *sha256,
                      const ksv_fetch_ctl *ctl, char *path, size_t cap, ksv_err *err)
{
    if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0)
        return resolve_http(uri, cache_dir, sha256, ctl, path, cap, err);
    return ksv_err_set(err, 400,
                       "storage %s: only file://, http:// and https:// URIs and local "
                       "paths are served (copy the model to the node first)",
                       uri);
}

int ksv_storage_resolve_local(const char *uri, char *path, size_t cap, ksv_err *err)
{
    const char *p = strncmp(uri, "file://", 7) == 0 ? uri + 7 : uri;
    return ksv_model_path_resolve(p, uri, path, cap, err);
}
