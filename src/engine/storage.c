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
#include "common/uri_redact.h"
#include "engine/archive.h"
#include "engine/fetch_http.h"
#include "engine/fetch_hub.h"
#include "engine/fetch_s3.h"

static bool digest_matches(const char *expected, const char *actual)
{
    for (size_t i = 0; i < 64; i++)
        if (tolower((unsigned char)expected[i]) != actual[i])
            return false;
    return expected[64] == '\0';
}


/* A plain http(s) file: model stores live outside ksv, so proxies from the environment
 * apply and redirects are followed (a few, never from https down to http). The URL is
 * fetched as given; messages name it by its display form (a presigned query's signature,
 * a password, stay out of logs and replies). */
static int fetch(const char *url, const char *shown, const char *path,
                 const ksv_fetch_ctl *ctl, ksv_err *err)
{
    ksv_http_options o = {.max_redirects = 5, .proxy = KSV_HTTP_PROXY_ENV};
    ksv_download d = {.url = url, .shown = shown, .http = &o, .dest = path, .expect_size = -1,
                      .ctl = ctl};
    return ksv_download_file(&d, err);
}

/* The last path segment of a URL (before ? and #), the name the fetched file keeps. */
static int url_file_name(const char *uri, const char *shown, char *name, size_t cap,
                         ksv_err *err)
{
    const char *end = uri + strcspn(uri, "?#");
    const char *start = end;
    while (start > uri && start[-1] != '/')
        start--;
    if ((size_t)(end - start) >= cap || end == start || start[-1] != '/' ||
        strstr(start - 3, "://") == start - 3)
        return ksv_err_set(err, 400, "storage %s: the URL must name a model file or an archive",
                           shown);
    memcpy(name, start, (size_t)(end - start));
    name[end - start] = '\0';
    if (strchr(name, '%') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return ksv_err_set(err, 400, "storage %s: the URL must name a model file or an archive",
                           shown);
    return 0;
}

/* http(s): one file into the scratch folder; an archive is unpacked there instead. */
static int stage_http(const char *uri, const char *shown, ksv_cache *cache, const char *staged,
                      const char *sha256, const ksv_fetch_ctl *ctl, bool *checked,
                      ksv_err *err)
{
    char name[256], path[PATH_MAX];
    if (url_file_name(uri, shown, name, sizeof name, err) != 0)
        return -1;
    ksv_archive_kind kind = ksv_archive_kind_of(name);
    if (kind == KSV_ARCHIVE_NONE && !ctl->any_file && !ksv_model_file_name(name))
        return ksv_err_set(err, 400, "storage %s: the URL must name a .json, .ubj, .bst or "
                                     ".txt file, or a .tar, .tar.gz, .tgz or .zip archive",
                           shown);
    if (kind == KSV_ARCHIVE_NONE) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", staged, name) >= sizeof path)
            return ksv_err_set(err, 400, "storage %s: path too long", shown);
        return fetch(uri, shown, path, ctl, err);
    }
    char scratch[PATH_MAX];
    if (ksv_cache_stage(cache, scratch, sizeof scratch, err) != 0)
        return -1;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", scratch, name) >= sizeof path) {
        ksv_cache_discard(scratch);
        return ksv_err_set(err, 400, "storage %s: path too long", shown);
    }
    int rc = fetch(uri, shown, path, ctl, err);
    if (rc == 0 && sha256 && *sha256) {
        /* The digest asked for may be the archive's own. */
        char actual[65];
        rc = ksv_sha256_file(path, actual, NULL, err);
        *checked = rc == 0 && digest_matches(sha256, actual);
    }
    if (rc == 0) {
        ksv_archive_limits lim = {
            .max_bytes = ctl->max_bytes ? ctl->max_bytes : KSV_STORAGE_MAX_DOWNLOAD,
            .max_entries = 100000,
            .cancel = ctl->cancel,
        };
        rc = ksv_archive_extract(path, kind, staged, shown, &lim, err);
    }
    ksv_cache_discard(scratch);
    return rc;
}

/* The folder a runtime is given: the tree itself, or the one folder it holds when that is
 * all it holds (an archive of "model/..."). */
static void model_root(const char *tree, char *path, size_t cap)
{
    snprintf(path, cap, "%s", tree);
    DIR *d = opendir(tree);
    if (!d)
        return;
    struct dirent *de;
    int n = 0;
    char only[256] = "";
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n++ == 0)
            snprintf(only, sizeof only, "%s", de->d_name);
    }
    closedir(d);
    char sub[PATH_MAX];
    struct stat st;
    if (n == 1 && (size_t)snprintf(sub, sizeof sub, "%s/%s", tree, only) < sizeof sub &&
        lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, cap, "%s", sub);
}

bool ksv_storage_is_remote(const char *uri)
{
    return strstr(uri, "://") && strncmp(uri, "file://", 7) != 0;
}

int ksv_storage_fetch(const char *uri, ksv_cache *cache, const char *sha256,
                      const ksv_fetch_ctl *ctl, ksv_fetch_result *out, ksv_err *err)
{
    bool http = strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0;
    bool s3 = strncmp(uri, "s3://", 5) == 0, gs = strncmp(uri, "gs://", 5) == 0,
         hf = strncmp(uri, "hf://", 5) == 0;
    out->pinned[0] = '\0';
    /* The URI itself is fetched and keys the cache (unchanged, so cached models stay
     * found); every message names its display form. */
    char shown[KSV_URI_SHOWN_MAX];
    ksv_uri_redact(shown, sizeof shown, uri);
    if (!http && !s3 && !gs && !hf)
        return ksv_err_set(err, 400,
                           "storage %s: only file://, http(s)://, s3://, gs://, hf:// URIs and "
                           "local paths are served (copy the model to the node first)",
                           shown);
    if (!cache)
        return ksv_err_set(err, 400, "storage %s: this engine has no cache for downloads",
                           shown);
    if (sha256 && *sha256) {
        bool hex = strlen(sha256) == 64;
        for (size_t i = 0; hex && i < 64; i++)
            hex = isxdigit((unsigned char)sha256[i]) != 0;
        if (!hex)
            return ksv_err_set(err, 400, "storage %s: sha256 must be 64 hex digits", shown);
    }
    char key[65];
    ksv_cache_key(uri, sha256, key);
    ksv_cache_tree tree;
    int hit = ksv_cache_lookup(cache, key, sha256, &tree, err);
    if (hit < 0)
        return -1;
    if (hit == 0) {
        char staged[PATH_MAX];
        bool checked = false;
        if (ksv_cache_stage(cache, staged, sizeof staged, err) != 0)
            return -1;
        int rc = http ? stage_http(uri, shown, cache, staged, sha256, ctl, &checked, err)
                 : s3 ? ksv_fetch_s3(uri, cache, staged, ctl, err)
                 : gs ? ksv_fetch_gs(uri, staged, ctl, err)
                      : ksv_fetch_hf(uri, staged, ctl, out->pinned, sizeof out->pinned, err);
        if (rc != 0) {
            ksv_cache_discard(staged);
            return -1;
        }
        if (ksv_cache_commit(cache, staged, key, checked ? NULL : sha256, shown, &tree,
                             err) != 0)
            return -1;
        ksv_log(KSV_LOG_INFO, NULL, "fetched %s: %zu file(s), %llu bytes, cached as %.12s", shown,
                tree.files, (unsigned long long)tree.bytes, tree.id);
    } else {
        ksv_fetch_progress_expect(ctl, (long long)tree.bytes, true);
        ksv_fetch_progress_add(ctl, (long long)tree.bytes, 0);
    }
    snprintf(out->tree, sizeof out->tree, "%s", tree.id);
    model_root(tree.dir, out->path, sizeof out->path);
    return 0;
}

int ksv_storage_resolve_local(const char *uri, char *path, size_t cap, ksv_err *err)
{
    const char *p = strncmp(uri, "file://", 7) == 0 ? uri + 7 : uri;
    return ksv_model_path_resolve(p, uri, path, cap, err);
}
