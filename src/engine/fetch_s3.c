/* fetch_s3.c: the s3:// fetcher (see fetch_s3.h). */
#include "engine/fetch_s3.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/fileutil.h"
#include "common/log.h"
#include "common/uri_redact.h"
#include "common/sha256.h"
#include "common/strbuf.h"
#include "engine/archive.h"
#include "engine/fetch_http.h"
#include "engine/s3_xml.h"

#define LIST_PAGE_MAX (16u << 20)
#define MAX_OBJECTS 100000
#define CREDENTIALS_MAX (1u << 20)

typedef struct s3_config {
    char endpoint[512];           /* scheme://host[:port]; "" for AWS itself */
    char region[64];
    char access_key[256], secret_key[256];
    char token_header[4096];      /* "x-amz-security-token: ..." or "" */
    bool anonymous;
    bool verify_tls;
    char ca_file[PATH_MAX];
} s3_config;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool env_false(const char *name)
{
    const char *v = env(name);
    return v && (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0);
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t lead = strspn(s, " \t");
    memmove(s, s + lead, n - lead + 1);
}

/* Reads KEY = VALUE lines of [profile] from an AWS credentials file. */
static void read_profile(const char *path, const char *profile, s3_config *c, char *token,
                         size_t token_cap)
{
    char *text = NULL;
    ksv_err err;
    if (ksv_read_file(path, CREDENTIALS_MAX, &text, NULL, &err) != 0)
        return;
    bool in = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        trim(line);
        if (line[0] == '#' || line[0] == ';' || !line[0])
            continue;
        if (line[0] == '[') {
            char *close = strchr(line, ']');
            if (close) {
                *close = '\0';
                char *name = line + 1;
                trim(name);
                in = strcmp(name, profile) == 0;
            }
            continue;
        }
        char *eq = strchr(line, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        char *k = line, *v = eq + 1;
        trim(k);
        trim(v);
        if (strcmp(k, "aws_access_key_id") == 0)
            snprintf(c->access_key, sizeof c->access_key, "%s", v);
        else if (strcmp(k, "aws_secret_access_key") == 0)
            snprintf(c->secret_key, sizeof c->secret_key, "%s", v);
        else if (strcmp(k, "aws_session_token") == 0)
            snprintf(token, token_cap, "%s", v);
        else if (strcmp(k, "region") == 0 && !c->region[0])
            snprintf(c->region, sizeof c->region, "%s", v);
    }
    explicit_bzero(text, strlen(text));
    free(text);
}

static int load_config(s3_config *c, const char *uri, ksv_err *err)
{
    memset(c, 0, sizeof *c);
    const char *region = env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION") : env("AWS_REGION");
    if (region)
        snprintf(c->region, sizeof c->region, "%s", region);
    char token[2048] = "";
    if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
        snprintf(c->access_key, sizeof c->access_key, "%s", env("AWS_ACCESS_KEY_ID"));
        snprintf(c->secret_key, sizeof c->secret_key, "%s", env("AWS_SECRET_ACCESS_KEY"));
        if (env("AWS_SESSION_TOKEN"))
            snprintf(token, sizeof token, "%s", env("AWS_SESSION_TOKEN"));
    } else {
        char path[PATH_MAX];
        const char *home = env("HOME");
        if (env("AWS_SHARED_CREDENTIALS_FILE"))
            snprintf(path, sizeof path, "%s", env("AWS_SHARED_CREDENTIALS_FILE"));
        else
            snprintf(path, sizeof path, "%s/.aws/credentials", home ? home : "");
        read_profile(path, env("AWS_PROFILE") ? env("AWS_PROFILE") : "default", c, token,
                     sizeof token);
    }
    c->anonymous = !c->access_key[0] || !c->secret_key[0];
    if (token[0])
        snprintf(c->token_header, sizeof c->token_header, "x-amz-security-token: %s", token);
    explicit_bzero(token, sizeof token);
    if (!c->region[0])
        snprintf(c->region, sizeof c->region, "us-east-1");
    for (const char *p = c->region; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-')
            return ksv_err_set(err, 400, "storage %s: region \"%.40s\" is not a region name",
                               uri, c->region);
    const char *ep = env("AWS_ENDPOINT_URL") ? env("AWS_ENDPOINT_URL") : env("S3_ENDPOINT");
    if (ep) {
        bool has_scheme = strstr(ep, "://") != NULL;
        if (has_scheme && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
            return ksv_err_set(err, 400, "storage %s: the S3 endpoint %s is not http(s)", uri,
                               ep);
        if ((size_t)snprintf(c->endpoint, sizeof c->endpoint, "%s%s",
                             has_scheme ? "" : env_false("S3_USE_HTTPS") ? "http://" : "https://",
                             ep) >= sizeof c->endpoint)
            return ksv_err_set(err, 400, "storage %s: the S3 endpoint is too long", uri);
        size_t n = strlen(c->endpoint);
        while (n && c->endpoint[n - 1] == '/')
            c->endpoint[--n] = '\0';
    }
    c->verify_tls = !env_false("S3_VERIFY_SSL");
    if (env("AWS_CA_BUNDLE"))
        snprintf(c->ca_file, sizeof c->ca_file, "%s", env("AWS_CA_BUNDLE"));
    return 0;
}

static void wipe_config(s3_config *c)
{
    explicit_bzero(c, sizeof *c);
}

/* s3://BUCKET[/PATH] */
static int parse_uri(const char *uri, char *bucket, size_t bcap, const char **path,
                     ksv_err *err)
{
    const char *b = uri + strlen("s3://");
    size_t n = strcspn(b, "/");
    if (n == 0 || n >= bcap)
        return ksv_err_set(err, 400, "storage %s: expected s3://BUCKET/KEY or PREFIX", uri);
    memcpy(bucket, b, n);
    bucket[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)bucket[i]) || isdigit((unsigned char)bucket[i]) ||
              bucket[i] == '-' || bucket[i] == '.' || bucket[i] == '_'))
            return ksv_err_set(err, 400, "storage %s: \"%s\" is not a bucket name", uri, bucket);
    *path = b[n] == '/' ? b + n + 1 : "";
    return 0;
}

/* The URL of the bucket (path-style on a custom endpoint or a dotted bucket, else
 * virtual-hosted on AWS). */
static void bucket_url(const s3_config *c, const char *bucket, ksv_sb *sb)
{
    if (c->endpoint[0])
        ksv_sb_printf(sb, "%s/%s", c->endpoint, bucket);
    else if (strchr(bucket, '.'))
        ksv_sb_printf(sb, "https://s3.%s.amazonaws.com/%s", c->region, bucket);
    else
        ksv_sb_printf(sb, "https://%s.s3.%s.amazonaws.com", bucket, c->region);
}

static void http_options(const s3_config *c, ksv_http_options *o, char *sigv4, size_t cap)
{
    memset(o, 0, sizeof *o);
    o->proxy = KSV_HTTP_PROXY_ENV;
    o->max_redirects = 0; /* S3 answers a wrong region with an error, not a move */
    o->tls_no_verify = !c->verify_tls;
    o->ca_file = c->ca_file[0] ? c->ca_file : NULL;
    if (!c->anonymous) {
        snprintf(sigv4, cap, "aws:amz:%s:s3", c->region);
        o->aws_sigv4 = sigv4;
        o->aws_access_key = c->access_key;
        o->aws_secret_key = c->secret_key;
    }
}

/* Every object at PATH (one) or under PATH/ (many), paging through ListObjectsV2. */
static int list_objects(const s3_config *c, const ksv_http_options *o, const char *const *hdrs,
                        const char *uri, const char *bucket, const char *path,
                        const ksv_fetch_ctl *ctl, ksv_s3_list *list, ksv_err *err)
{
    int rc = 0;
    for (int page = 0; rc == 0; page++) {
        ksv_sb url, body;
        ksv_sb_init(&url);
        ksv_sb_init(&body);
        bucket_url(c, bucket, &url);
        /* Parameters in sorted order, each encoded: the canonical form SigV4 signs. */
        ksv_sb_putc(&url, '?');
        if (list->next_token) {
            ksv_sb_puts(&url, "continuation-token=");
            ksv_url_encode(&url, list->next_token, false);
            ksv_sb_putc(&url, '&');
        }
        ksv_sb_puts(&url, "encoding-type=url&list-type=2&prefix=");
        ksv_url_encode(&url, path, false);
        rc = url.oom ? ksv_err_set(err, 500, "out of memory")
                     : ksv_download_text(url.data, uri, o, hdrs, ctl, LIST_PAGE_MAX,
                                         ksv_s3_error_code, &body, err);
        if (rc == 0)
            rc = ksv_s3_parse_list(body.data ? body.data : "", body.len, list, err);
        if (rc != 0 && err->status == 502)
            ksv_err_prefix(err, "storage %s", uri);
        ksv_sb_free(&url);
        ksv_sb_free(&body);
        if (rc == 0 && list->n > MAX_OBJECTS)
            rc = ksv_err_set(err, 413, "storage %s: more than %d objects", uri, MAX_OBJECTS);
        if (rc != 0 || !list->truncated)
            break;
        (void)page;
    }
    return rc;
}

int ksv_fetch_s3(const char *uri, ksv_cache *cache, const char *staged,
                 const ksv_fetch_ctl *ctl, ksv_err *err)
{
    /* Messages name the URI by its display form (uri_redact.h); it is parsed as given. */
    char shown[KSV_URI_SHOWN_MAX];
    ksv_uri_redact(shown, sizeof shown, uri);
    char bucket[64];
    const char *path = "";
    if (parse_uri(uri, bucket, sizeof bucket, &path, err) != 0)
        return -1;
    s3_config *c = malloc(sizeof *c);
    if (!c)
        return ksv_err_set(err, 500, "out of memory");
    if (load_config(c, shown, err) != 0) {
        wipe_config(c);
        free(c);
        return -1;
    }
    char sigv4[128];
    ksv_http_options o;
    http_options(c, &o, sigv4, sizeof sigv4);
    const char *hdrs[3] = {NULL, NULL, NULL};
    size_t nh = 0;
    if (!c->anonymous) {
        /* S3 wants the payload's hash signed; a GET has none. */
        hdrs[nh++] = "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        if (c->token_header[0])
            hdrs[nh++] = c->token_header;
    }
    ksv_s3_list list = {0};
    int rc = list_objects(c, &o, hdrs, shown, bucket, path, ctl, &list, err);
    /* Which listed objects to fetch: the key itself, else everything under PATH/. */
    size_t plen = strlen(path);
    bool folder = plen == 0 || path[plen - 1] == '/';
    long long exact = -1;
    for (size_t i = 0; rc == 0 && !folder && i < list.n; i++)
        if (strcmp(list.v[i].key, path) == 0)
            exact = (long long)i;
    size_t wanted = 0;
    unsigned long long total = 0, cap = ctl->max_bytes ? ctl->max_bytes : KSV_STORAGE_MAX_DOWNLOAD;
    for (size_t i = 0; rc == 0 && i < list.n; i++) {
        const char *key = list.v[i].key, *rel;
        if (exact >= 0)
            rel = (long long)i == exact ? (strrchr(key, '/') ? strrchr(key, '/') + 1 : key) : NULL;
        else if (folder)
            rel = key + plen;
        else
            rel = strncmp(key, path, plen) == 0 && key[plen] == '/' ? key + plen + 1 : NULL;
        size_t rlen = rel ? strlen(rel) : 0;
        if (!rel || rlen == 0 || rel[rlen - 1] == '/') {
            list.v[i].size = -1; /* not ours, or a folder marker */
            continue;
        }
        const char *why = ksv_path_unsafe(rel);
        if (why)
            rc = ksv_err_set(err, 400, "storage %s: object \"%.200s\": %s; refused", shown, key,
                             why);
        total += (unsigned long long)list.v[i].size;
        wanted++;
        if (rc == 0 && total > cap)
            rc = ksv_err_set(err, 413, "storage %s: the objects add up to more than %llu bytes",
                             shown, cap);
    }
    if (rc == 0 && wanted == 0)
        rc = ksv_err_set(err, 404, "storage %s: no object at or under this key", shown);
    if (rc == 0)
        ksv_fetch_progress_expect(ctl, (long long)total, true);
    for (size_t i = 0; rc == 0 && i < list.n; i++) {
        if (list.v[i].size < 0)
            continue;
        const char *key = list.v[i].key;
        const char *rel = exact >= 0 ? (strrchr(key, '/') ? strrchr(key, '/') + 1 : key)
                          : folder ? key + plen
                                   : key + plen + 1;
        char dest[PATH_MAX], partial[PATH_MAX], part_name[65];
        if ((size_t)snprintf(dest, sizeof dest, "%s/%s", staged, rel) >= sizeof dest) {
            rc = ksv_err_set(err, 400, "storage %s: object \"%.200s\": path too long", shown, key);
            break;
        }
        char *slash = strrchr(dest, '/');
        *slash = '\0';
        rc = ksv_mkdir_p(dest, 0755, err);
        *slash = '/';
        ksv_sb url, id;
        ksv_sb_init(&url);
        ksv_sb_init(&id);
        bucket_url(c, bucket, &url);
        ksv_sb_putc(&url, '/');
        ksv_url_encode(&url, key, true);
        /* The object's identity: a changed object never resumes into old bytes. */
        ksv_sb_printf(&id, "%s\n%s\n%lld", url.data ? url.data : "", list.v[i].etag,
                      list.v[i].size);
        ksv_sha256_hex(id.data ? id.data : "", id.len, part_name);
        char object_shown[1400];
        snprintf(object_shown, sizeof object_shown, "s3://%s/%s", bucket, key);
        if (rc == 0 && ksv_cache_partial(cache, part_name, partial, sizeof partial, err) == 0) {
            ksv_download d = {.url = url.data, .shown = object_shown, .http = &o,
                              .headers = hdrs,
                              .partial = partial, .dest = dest,
                              .expect_size = list.v[i].size, .ctl = ctl,
                              .error_code = ksv_s3_error_code};
            rc = url.oom ? ksv_err_set(err, 500, "out of memory") : ksv_download_file(&d, err);
        } else {
            rc = -1;
        }
        ksv_sb_free(&url);
        ksv_sb_free(&id);
    }
    if (rc == 0)
        ksv_log(KSV_LOG_INFO, NULL, "storage %s: %zu object(s), %llu bytes", shown, wanted, total);
    ksv_s3_list_free(&list);
    wipe_config(c);
    free(c);
    return rc;
}
