/* fetch_http.h: how every model store fetcher (http, s3, gs, hf) talks HTTP, through the one
 * HTTP client (src/http): an object into a file, bounded by the fetch control (cancel,
 * deadline, stall rule, size cap), resumable from a partial file with a Range request, and
 * failing with the storage URI, the HTTP status and the store's own error code; and a small
 * reply into memory, for listings and metadata. */
#ifndef KSV_ENGINE_FETCH_HTTP_H
#define KSV_ENGINE_FETCH_HTTP_H

#include <stddef.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/storage.h"
#include "http/http_client.h"

/* Reads a store's error code (S3's <Code>, the Hub's X-Error-Code...) from an error reply;
 * writes "" when there is none. */
typedef void (*ksv_store_error_fn)(const char *body, size_t len, char *code, size_t cap);

typedef struct ksv_download {
    const char *url;
    const char *shown;               /* the storage URI, for messages */
    const ksv_http_options *http;    /* the store's policies: proxy, redirects, TLS, SigV4 */
    const char *const *headers;      /* extra request lines (a bearer token...); may be NULL */
    const char *partial;             /* bytes kept here between tries, resumed with Range;
                                      * NULL: no resume (a temp file beside dest) */
    const char *dest;                /* the finished file (renamed into place) */
    long long expect_size;           /* the size the store listed; -1: unknown */
    const ksv_fetch_ctl *ctl;
    ksv_store_error_fn error_code;   /* NULL: none */
} ksv_download;

/* Downloads d->url into d->dest. On a broken transfer the partial file stays for the next
 * try (when d->partial is set). Errors: 404 when the store says so, 403/401 as such, 499
 * cancelled, 504 deadline or stall, 413 too large, 503 unreachable or other. */
int ksv_download_file(const ksv_download *d, ksv_err *err);

/* GETs url into out (at most max bytes); *status gets the HTTP status. A status >= 400 is
 * an error naming the URI, status and store error code. */
int ksv_download_text(const char *url, const char *shown, const ksv_http_options *http,
                      const char *const *headers, const ksv_fetch_ctl *ctl, size_t max,
                      ksv_store_error_fn error_code, ksv_sb *out, ksv_err *err);

/* The same with a method and a body (a POST of a form...): method NULL is GET, or POST
 * when body is set. */
int ksv_upload_text(const char *url, const char *shown, const char *method,
                    const ksv_http_options *http, const char *const *headers, const char *body,
                    size_t body_len, const ksv_fetch_ctl *ctl, size_t max,
                    ksv_store_error_fn error_code, ksv_sb *out, ksv_err *err);

/* Percent-encodes s for a URL path (keeping '/' when keep_slash) into sb. */
void ksv_url_encode(ksv_sb *sb, const char *s, bool keep_slash);

#endif
