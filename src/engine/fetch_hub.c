/* fetch_hub.c: gs:// and hf:// (see fetch_hub.h). */
#include "engine/fetch_hub.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/fileutil.h"
#include "common/log.h"
#include "common/uri_redact.h"
#include "common/strbuf.h"
#include "engine/archive.h"
#include "engine/fetch_http.h"
#include "engine/gcp_auth.h"

#define LISTING_MAX (16u << 20)
#define MAX_FILES 100000

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The endpoint from variable `var` (a scheme added when missing), else `fallback`, with no
 * trailing slash. */
static void endpoint_from(const char *var, const char *fallback, char *out, size_t cap)
{
    const char *v = env(var);
    snprintf(out, cap, "%s%s", v && !strstr(v, "://") ? "http://" : "", v ? v : fallback);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
}

/* "Authorization: Bearer TOKEN" from variable `var` into buf, listed in hdrs[0]; none when
 * the variable is unset. */
static void bearer_from(const char *var, char *buf, size_t cap, const char *hdrs[2])
{
    hdrs[0] = hdrs[1] = NULL;
    if (env(var)) {
        snprintf(buf, cap, "Authorization: Bearer %s", env(var));
        hdrs[0] = buf;
    }
}

/* GOOGLE_APPLICATION_CREDENTIALS: the service account's token, got once per fetch. */
static int service_account_bearer(const char *key_file, const ksv_fetch_ctl *ctl, char *buf,
                                  size_t cap, const char *hdrs[2], ksv_err *err)
{
    ksv_gcp_account a;
    char token[4096];
    if (ksv_gcp_account_load(key_file, &a, err) != 0)
        return -1;
    int rc = ksv_gcp_access_token(&a, ctl, token, sizeof token, err);
    ksv_gcp_account_free(&a);
    if (rc == 0) {
        snprintf(buf, cap, "Authorization: Bearer %s", token);
        hdrs[0] = buf;
    }
    explicit_bzero(token, sizeof token);
    return rc;
}

/* {"error":{"message":"..."}} (GCS) or {"error":"..."} (the Hub): the message. */
static void json_error_message(const char *body, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    json_tokener *tok = json_tokener_new();
    json_object *root = tok ? json_tokener_parse_ex(tok, body, (int)(len < 65536 ? len : 65536))
                            : NULL;
    json_tokener_free(tok);
    json_object *e, *m;
    const char *msg = NULL;
    if (root && json_object_object_get_ex(root, "error", &e)) {
        if (json_object_is_type(e, json_type_string))
            msg = json_object_get_string(e);
        else if (json_object_object_get_ex(e, "message", &m) &&
                 json_object_is_type(m, json_type_string))
            msg = json_object_get_string(m);
    }
    size_t w = 0;
    for (const char *p = msg; p && *p && w + 1 < cap; p++)
        if ((unsigned char)*p >= 0x20 && *p != 0x7f)
            out[w++] = *p;
    out[w] = '\0';
    json_object_put(root);
}

static json_object *parse_json(const ksv_sb *body, const char *uri, ksv_err *err)
{
    json_tokener *tok = json_tokener_new();
    json_object *root = tok && body->data ? json_tokener_parse_ex(tok, body->data, (int)body->len)
                                          : NULL;
    bool ok = root && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(root, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(root);
        ksv_err_set(err, 502, "storage %s: the store's listing is not a JSON object", uri);
        return NULL;
    }
    return root;
}

/* One file to fetch: its name in the store and where it goes in the folder. */
typedef struct file_list {
    char **name;
    long long *size;
    size_t n, cap;
} file_list;

static int files_add(file_list *f, const char *name, long long size, ksv_err *err)
{
    if (f->n == MAX_FILES)
        return ksv_err_set(err, 413, "more than %d files", MAX_FILES);
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 64;
        char **n = realloc(f->name, nc * sizeof *n);
        if (n)
            f->name = n;
        long long *s = n ? realloc(f->size, nc * sizeof *s) : NULL;
        if (!s)
            return ksv_err_set(err, 500, "out of memory");
        f->size = s;
        f->cap = nc;
    }
    if (!(f->name[f->n] = strdup(name)))
        return ksv_err_set(err, 500, "out of memory");
    f->size[f->n++] = size;
    return 0;
}

static void files_free(file_list *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->name[i]);
    free(f->name);
    free(f->size);
}

/* Where a listed name goes: the base name when it is PATH itself, the rest under PATH/,
 * NULL when it is neither. */
static const char *relative(const char *name, const char *path, bool exact)
{
    size_t plen = strlen(path);
    if (exact)
        return strcmp(name, path) == 0 ? (strrchr(name, '/') ? strrchr(name, '/') + 1 : name)
                                       : NULL;
    if (plen == 0)
        return name;
    if (path[plen - 1] == '/')
        return strncmp(name, path, plen) == 0 ? name + plen : NULL;
    return strncmp(name, path, plen) == 0 && name[plen] == '/' ? name + plen + 1 : NULL;
}

/* Fetches every listed file into staged; url_of builds each file's URL. */
static int fetch_files(const file_list *f, const char *path, const char *uri, const char *staged,
                       const ksv_http_options *o, const char *const *hdrs,
                       const ksv_fetch_ctl *ctl,
                       void (*url_of)(ksv_sb *url, const char *name, const void *ctx),
                       const void *ctx, ksv_err *err)
{
    bool exact = false;
    for (size_t i = 0; i < f->n; i++)
        exact |= strcmp(f->name[i], path) == 0;
    /* The listing's sizes are the whole transfer's: progress shows bytes of that total. */
    long long expect = 0;
    for (size_t i = 0; i < f->n && expect >= 0; i++) {
        const char *rel = relative(f->name[i], path, exact);
        if (rel && *rel && rel[strlen(rel) - 1] != '/')
            expect = f->size[i] < 0 ? -1 : expect + f->size[i];
    }
    if (expect >= 0)
        ksv_fetch_progress_expect(ctl, expect, true);
    size_t fetched = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < f->n; i++) {
        const char *rel = relative(f->name[i], path, exact);
        if (!rel || !*rel || rel[strlen(rel) - 1] == '/')
            continue;
        const char *why = ksv_path_unsafe(rel);
        if (why) {
            rc = ksv_err_set(err, 400, "storage %s: file \"%.200s\": %s; refused", uri,
                             f->name[i], why);
            break;
        }
        char dest[PATH_MAX];
        if ((size_t)snprintf(dest, sizeof dest, "%s/%s", staged, rel) >= sizeof dest) {
            rc = ksv_err_set(err, 400, "storage %s: path too long", uri);
            break;
        }
        char *slash = strrchr(dest, '/');
        *slash = '\0';
        rc = ksv_mkdir_p(dest, 0755, err);
        *slash = '/';
        ksv_sb url;
        ksv_sb_init(&url);
        url_of(&url, f->name[i], ctx);
        ksv_download d = {.url = url.data, .shown = uri, .http = o, .headers = hdrs,
                          .dest = dest, .expect_size = f->size[i], .ctl = ctl,
                          .error_code = json_error_message};
        if (rc == 0)
            rc = url.oom ? ksv_err_set(err, 500, "out of memory") : ksv_download_file(&d, err);
        ksv_sb_free(&url);
        fetched++;
    }
    if (rc == 0 && fetched == 0)
        rc = ksv_err_set(err, 404, "storage %s: no file at or under this path", uri);
    return rc;
}

/* ------------------------------------------------------------------------- gs:// */

typedef struct gs_ctx {
    const char *endpoint, *bucket;
} gs_ctx;

static void gs_object_url(ksv_sb *url, const char *name, const void *p)
{
    const gs_ctx *g = p;
    ksv_sb_printf(url, "%s/storage/v1/b/%s/o/", g->endpoint, g->bucket);
    ksv_url_encode(url, name, false);
    ksv_sb_puts(url, "?alt=media");
}

int ksv_fetch_gs(const char *uri, const char *staged, const ksv_fetch_ctl *ctl, ksv_err *err)
{
    /* Messages name the URI by its display form (uri_redact.h); it is parsed as given. */
    char shown[KSV_URI_SHOWN_MAX];
    ksv_uri_redact(shown, sizeof shown, uri);
    const char *b = uri + strlen("gs://");
    size_t n = strcspn(b, "/");
    char bucket[224];
    if (n == 0 || n >= sizeof bucket)
        return ksv_err_set(err, 400, "storage %s: expected gs://BUCKET/PATH", uri);
    memcpy(bucket, b, n);
    bucket[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)bucket[i]) || isdigit((unsigned char)bucket[i]) ||
              strchr("-._", bucket[i])))
            return ksv_err_set(err, 400, "storage %s: \"%s\" is not a bucket name", uri, bucket);
    const char *path = b[n] == '/' ? b + n + 1 : "";
    char endpoint[512], auth[4200] = "";
    const char *hdrs[2];
    endpoint_from("STORAGE_EMULATOR_HOST", "https://storage.googleapis.com", endpoint,
                  sizeof endpoint);
    bearer_from("GOOGLE_OAUTH_ACCESS_TOKEN", auth, sizeof auth, hdrs);
    if (!hdrs[0] && env("GOOGLE_APPLICATION_CREDENTIALS") &&
        service_account_bearer(env("GOOGLE_APPLICATION_CREDENTIALS"), ctl, auth, sizeof auth,
                               hdrs, err) != 0)
        return ksv_err_prefix(err, "storage %s", shown);
    ksv_http_options o = {.proxy = KSV_HTTP_PROXY_ENV, .max_redirects = 5};
    file_list files = {0};
    int rc = 0;
    char *token = NULL;
    do {
        ksv_sb url, body;
        ksv_sb_init(&url);
        ksv_sb_init(&body);
        ksv_sb_printf(&url, "%s/storage/v1/b/%s/o?prefix=", endpoint, bucket);
        ksv_url_encode(&url, path, false);
        if (token) {
            ksv_sb_puts(&url, "&pageToken=");
            ksv_url_encode(&url, token, false);
        }
        free(token);
        token = NULL;
        rc = ksv_download_text(url.data, shown, &o, hdrs, ctl, LISTING_MAX, json_error_message,
                               &body, err);
        json_object *root = rc == 0 ? parse_json(&body, shown, err) : NULL;
        json_object *items, *next;
        if (rc == 0 && !root)
            rc = -1;
        if (root && json_object_object_get_ex(root, "items", &items)) {
            size_t k = json_object_is_type(items, json_type_array) ? json_object_array_length(items) : 0;
            for (size_t i = 0; rc == 0 && i < k; i++) {
                json_object *it = json_object_array_get_idx(items, i), *nm, *sz;
                if (!json_object_object_get_ex(it, "name", &nm) ||
                    !json_object_is_type(nm, json_type_string) ||
                    !json_object_object_get_ex(it, "size", &sz)) {
                    rc = ksv_err_set(err, 502, "storage %s: a listed object without a name or "
                                               "size", shown);
                    break;
                }
                long long size = json_object_is_type(sz, json_type_string)
                                     ? strtoll(json_object_get_string(sz), NULL, 10)
                                     : json_object_get_int64(sz);
                rc = files_add(&files, json_object_get_string(nm), size < 0 ? -1 : size, err);
            }
        }
        if (rc == 0 && root && json_object_object_get_ex(root, "nextPageToken", &next) &&
            json_object_is_type(next, json_type_string) && *json_object_get_string(next))
            token = strdup(json_object_get_string(next));
        json_object_put(root);
        ksv_sb_free(&url);
        ksv_sb_free(&body);
    } while (rc == 0 && token);
    free(token);
    gs_ctx g = {endpoint, bucket};
    if (rc == 0)
        rc = fetch_files(&files, path, shown, staged, &o, hdrs, ctl, gs_object_url, &g, err);
    files_free(&files);
    explicit_bzero(auth, sizeof auth);
    return rc;
}

/* ------------------------------------------------------------------------- hf:// */

typedef struct hf_ctx {
    const char *endpoint, *repo, *commit;
} hf_ctx;

static void hf_file_url(ksv_sb *url, const char *name, const void *p)
{
    const hf_ctx *h = p;
    ksv_sb_printf(url, "%s/%s/resolve/%s/", h->endpoint, h->repo, h->commit);
    ksv_url_encode(url, name, true);
}

static bool repo_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

int ksv_fetch_hf(const char *uri, const char *staged, const ksv_fetch_ctl *ctl, char *pinned,
                 size_t pinned_cap, ksv_err *err)
{
    /* Messages name the URI by its display form (uri_redact.h); it is parsed as given. */
    char shown[KSV_URI_SHOWN_MAX];
    ksv_uri_redact(shown, sizeof shown, uri);
    /* hf://ORG/REPO[:REVISION][/PATH] */
    const char *p = uri + strlen("hf://");
    char repo[200], revision[256] = "main";
    size_t org = strcspn(p, "/");
    size_t name = org < strlen(p) ? strcspn(p + org + 1, "/:") : 0;
    if (org == 0 || name == 0 || org + 1 + name >= sizeof repo)
        return ksv_err_set(err, 400, "storage %s: expected hf://ORG/REPO[:REVISION][/PATH]", uri);
    memcpy(repo, p, org + 1 + name);
    repo[org + 1 + name] = '\0';
    for (size_t i = 0; repo[i]; i++)
        if (i != org && !repo_char(repo[i]))
            return ksv_err_set(err, 400, "storage %s: \"%s\" is not a repository name", uri, repo);
    const char *rest = p + org + 1 + name;
    if (*rest == ':') {
        size_t rl = strcspn(rest + 1, "/");
        if (rl == 0 || rl >= sizeof revision)
            return ksv_err_set(err, 400, "storage %s: an empty or overlong revision", uri);
        memcpy(revision, rest + 1, rl);
        revision[rl] = '\0';
        rest += 1 + rl;
    }
    const char *path = *rest == '/' ? rest + 1 : "";
    char endpoint[512], auth[4200] = "";
    const char *hdrs[2];
    endpoint_from("HF_ENDPOINT", "https://huggingface.co", endpoint, sizeof endpoint);
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        return ksv_err_set(err, 400, "storage %s: HF_ENDPOINT must be an http(s) URL", shown);
    bearer_from("HF_TOKEN", auth, sizeof auth, hdrs);
    ksv_http_options o = {.proxy = KSV_HTTP_PROXY_ENV, .max_redirects = 5};
    ksv_sb url, body;
    ksv_sb_init(&url);
    ksv_sb_init(&body);
    ksv_sb_printf(&url, "%s/api/models/%s/revision/", endpoint, repo);
    ksv_url_encode(&url, revision, false);
    int rc = ksv_download_text(url.data, shown, &o, hdrs, ctl, LISTING_MAX, json_error_message,
                               &body, err);
    json_object *root = rc == 0 ? parse_json(&body, shown, err) : NULL;
    json_object *sha, *siblings;
    char commit[64] = "";
    file_list files = {0};
    if (rc == 0 && !root)
        rc = -1;
    if (rc == 0) {
        if (!json_object_object_get_ex(root, "sha", &sha) ||
            !json_object_is_type(sha, json_type_string) ||
            strlen(json_object_get_string(sha)) != 40)
            rc = ksv_err_set(err, 502, "storage %s: the Hub named no commit for %s", shown,
                             revision);
        else
            snprintf(commit, sizeof commit, "%s", json_object_get_string(sha));
        for (size_t i = 0; rc == 0 && commit[i]; i++)
            if (!isxdigit((unsigned char)commit[i]))
                rc = ksv_err_set(err, 502, "storage %s: the Hub's commit is not hex", shown);
    }
    if (rc == 0 && json_object_object_get_ex(root, "siblings", &siblings) &&
        json_object_is_type(siblings, json_type_array)) {
        for (size_t i = 0; rc == 0 && i < json_object_array_length(siblings); i++) {
            json_object *s = json_object_array_get_idx(siblings, i), *fn, *sz;
            if (!json_object_object_get_ex(s, "rfilename", &fn) ||
                !json_object_is_type(fn, json_type_string))
                continue;
            long long size = json_object_object_get_ex(s, "size", &sz) &&
                                     json_object_is_type(sz, json_type_int)
                                 ? json_object_get_int64(sz)
                                 : -1;
            rc = files_add(&files, json_object_get_string(fn), size, err);
        }
    }
    json_object_put(root);
    ksv_sb_free(&url);
    ksv_sb_free(&body);
    hf_ctx h = {endpoint, repo, commit};
    if (rc == 0)
        rc = fetch_files(&files, path, shown, staged, &o, hdrs, ctl, hf_file_url, &h, err);
    if (rc == 0) {
        snprintf(pinned, pinned_cap, "hf://%s:%s%s%s", repo, commit, *path ? "/" : "", path);
        if (strcmp(revision, commit) != 0)
            ksv_log(KSV_LOG_INFO, NULL, "storage %s: revision %s is commit %s", shown, revision,
                    commit);
    }
    files_free(&files);
    explicit_bzero(auth, sizeof auth);
    return rc;
}
