/* s3_xml.c: a strict little XML reader for S3's listing and error replies (s3_xml.h). */
#include "engine/s3_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/utf8.h"

#define MAX_DEPTH 32
#define MAX_NAME 64
#define MAX_TEXT 4096              /* S3 keys are at most 1024 bytes, tokens shorter */
#define MAX_OBJECTS_PER_PAGE 100000

typedef struct reader {
    const char *p, *end;
    char stack[MAX_DEPTH][MAX_NAME];
    int depth;
    ksv_err *err;
} reader;

/* Callbacks of one walk: an element's decoded text (leaf text only), element start/end. */
typedef struct handler {
    void (*start)(void *user, reader *r);
    int (*text)(void *user, reader *r, const char *text, size_t len);
    int (*end)(void *user, reader *r);
    void *user;
} handler;

static bool starts(const reader *r, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(r->end - r->p) >= n && memcmp(r->p, s, n) == 0;
}

static int fail(reader *r, const char *what)
{
    return ksv_err_set(r->err, 502, "S3 reply: %s", what);
}

/* Skips past the first occurrence of s; error when missing. */
static int skip_past(reader *r, const char *s, const char *what)
{
    size_t n = strlen(s);
    for (const char *q = r->p; q + n <= r->end; q++)
        if (memcmp(q, s, n) == 0) {
            r->p = q + n;
            return 0;
        }
    return fail(r, what);
}

static bool name_char(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' ||
           (!first && ((c >= '0' && c <= '9') || c == '-' || c == '.'));
}

static int read_name(reader *r, char out[MAX_NAME])
{
    size_t n = 0;
    while (r->p < r->end && name_char(*r->p, n == 0)) {
        if (n + 1 >= MAX_NAME)
            return fail(r, "an element name over 63 bytes");
        out[n++] = *r->p++;
    }
    out[n] = '\0';
    return n ? 0 : fail(r, "a malformed tag");
}

/* Appends text[0..len) with entities decoded; checks UTF-8. */
static int decode_text(reader *r, const char *s, size_t len, ksv_sb *out)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '&') {
            const char *semi = memchr(s + i, ';', len - i < 12 ? len - i : 12);
            if (!semi)
                return fail(r, "an unterminated entity");
            size_t n = (size_t)(semi - (s + i)) + 1;
            static const struct { const char *name; char c; } named[] = {
                {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
            bool done = false;
            for (size_t k = 0; k < 5 && !done; k++)
                if (n == strlen(named[k].name) && memcmp(s + i, named[k].name, n) == 0) {
                    ksv_sb_putc(out, named[k].c);
                    done = true;
                }
            if (!done) {
                if (s[i + 1] != '#')
                    return fail(r, "an unknown entity (no DTD is read)");
                if (n < 4)
                    return fail(r, "an empty character reference");
                bool hex = s[i + 2] == 'x';
                unsigned long cp = 0;
                size_t j = i + 2 + hex;
                if (j >= i + n - 1)
                    return fail(r, "an empty character reference");
                for (; j < i + n - 1; j++) {
                    char d = s[j];
                    int v = d >= '0' && d <= '9'            ? d - '0'
                            : hex && d >= 'a' && d <= 'f'   ? d - 'a' + 10
                            : hex && d >= 'A' && d <= 'F'   ? d - 'A' + 10
                                                            : -1;
                    if (v < 0)
                        return fail(r, "a malformed character reference");
                    cp = cp * (hex ? 16 : 10) + (unsigned long)v;
                    if (cp > 0x10FFFF)
                        return fail(r, "a character reference above U+10FFFF");
                }
                if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                    return fail(r, "a character reference to NUL or a surrogate");
                char buf[4];
                ksv_sb_append(out, buf, ksv_utf8_encode((unsigned)cp, buf));
            }
            i += n;
            continue;
        }
        size_t n = ksv_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (n == 0 || c == 0)
            return fail(r, "text that is not UTF-8");
        ksv_sb_append(out, s + i, n);
        i += n;
    }
    return out->oom ? ksv_err_set(r->err, 500, "out of memory") : 0;
}

/* Walks the whole document, calling h for each element and each leaf text. */
static int walk(reader *r, const handler *h)
{
    ksv_sb text;
    ksv_sb_init(&text);
    bool seen_root = false;
    int rc = 0;
    while (rc == 0 && r->p < r->end) {
        if (*r->p != '<') {
            const char *lt = memchr(r->p, '<', (size_t)(r->end - r->p));
            const char *stop = lt ? lt : r->end;
            if (r->depth == 0) {
                for (const char *q = r->p; q < stop; q++)
                    if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
                        rc = fail(r, "text outside the root element");
            } else if (text.len + (size_t)(stop - r->p) > MAX_TEXT) {
                rc = fail(r, "an element's text over 4096 bytes");
            } else {
                rc = decode_text(r, r->p, (size_t)(stop - r->p), &text);
            }
            r->p = stop;
            continue;
        }
        if (starts(r, "<?")) {
            rc = skip_past(r, "?>", "an unterminated processing instruction");
        } else if (starts(r, "<!--")) {
            rc = skip_past(r, "-->", "an unterminated comment");
        } else if (starts(r, "<![CDATA[")) {
            const char *from = r->p + 9;
            r->p = from;
            if ((rc = skip_past(r, "]]>", "an unterminated CDATA section")) == 0) {
                size_t n = (size_t)(r->p - 3 - from);
                if (r->depth == 0 || text.len + n > MAX_TEXT)
                    rc = fail(r, "a misplaced or oversized CDATA section");
                for (size_t i = 0; rc == 0 && i < n;) {
                    size_t k = ksv_utf8_seq_len((const unsigned char *)from + i, n - i);
                    if (k == 0 || from[i] == 0)
                        rc = fail(r, "text that is not UTF-8");
                    i += k ? k : 1;
                }
                if (rc == 0)
                    ksv_sb_append(&text, from, n);
            }
        } else if (starts(r, "<!")) {
            rc = fail(r, "a DTD or declaration (refused: no entity is expanded)");
        } else if (starts(r, "</")) {
            r->p += 2;
            char name[MAX_NAME];
            if ((rc = read_name(r, name)) != 0)
                break;
            while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\r' || *r->p == '\n'))
                r->p++;
            if (r->p >= r->end || *r->p != '>')
                rc = fail(r, "a malformed end tag");
            else if (r->depth == 0 || strcmp(r->stack[r->depth - 1], name) != 0)
                rc = fail(r, "an end tag that does not match its start");
            else {
                r->p++;
                if (h->text && text.len)
                    rc = h->text(h->user, r, text.data, text.len);
                ksv_sb_reset(&text);
                if (rc == 0 && h->end)
                    rc = h->end(h->user, r);
                r->depth--;
            }
        } else {
            r->p++;
            char name[MAX_NAME];
            if ((rc = read_name(r, name)) != 0)
                break;
            if (r->depth == 0 && seen_root)
                rc = fail(r, "a second root element");
            else if (r->depth == MAX_DEPTH)
                rc = fail(r, "elements nested over 32 deep");
            /* Attributes: skipped, with quoted values read whole. */
            bool empty = false, closed = false;
            while (rc == 0 && !closed) {
                if (r->p >= r->end) {
                    rc = fail(r, "an unterminated tag");
                } else if (*r->p == '"' || *r->p == '\'') {
                    const char *q = memchr(r->p + 1, *r->p, (size_t)(r->end - r->p - 1));
                    if (!q)
                        rc = fail(r, "an unterminated attribute value");
                    else
                        r->p = q + 1;
                } else if (*r->p == '<') {
                    rc = fail(r, "'<' inside a tag");
                } else if (*r->p == '/' && r->p + 1 < r->end && r->p[1] == '>') {
                    empty = closed = true;
                    r->p += 2;
                } else if (*r->p == '>') {
                    closed = true;
                    r->p++;
                } else {
                    r->p++;
                }
            }
            if (rc)
                break;
            seen_root = true;
            ksv_sb_reset(&text);
            snprintf(r->stack[r->depth++], MAX_NAME, "%s", name);
            if (h->start)
                h->start(h->user, r);
            if (empty) {
                if (h->end)
                    rc = h->end(h->user, r);
                r->depth--;
            }
        }
    }
    if (rc == 0 && r->depth != 0)
        rc = fail(r, "the reply ends inside an element");
    if (rc == 0 && !seen_root)
        rc = fail(r, "no XML element");
    ksv_sb_free(&text);
    return rc;
}

static bool at(const reader *r, const char *a, const char *b, const char *c)
{
    const char *want[3] = {a, b, c};
    int n = c ? 3 : b ? 2 : 1;
    if (r->depth != n)
        return false;
    for (int i = 0; i < n; i++)
        if (strcmp(r->stack[i], want[i]) != 0)
            return false;
    return true;
}

/* ------------------------------------------------------------------- listings */

typedef struct list_state {
    ksv_s3_list *list;
    bool url_encoded;
    bool in_contents;
    ksv_s3_object cur;
    bool has_key, has_size;
    size_t page_objects;
} list_state;

static void list_start(void *user, reader *r)
{
    list_state *s = user;
    if (at(r, "ListBucketResult", "Contents", NULL)) {
        free(s->cur.key);
        memset(&s->cur, 0, sizeof s->cur);
        s->in_contents = true;
        s->has_key = s->has_size = false;
    }
}

static char *dup_text(const char *t, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, t, n);
        s[n] = '\0';
    }
    return s;
}

static int list_text(void *user, reader *r, const char *t, size_t n)
{
    list_state *s = user;
    if (at(r, "ListBucketResult", "Contents", "Key")) {
        free(s->cur.key);
        if (!(s->cur.key = dup_text(t, n)))
            return ksv_err_set(r->err, 500, "out of memory");
        if (strlen(s->cur.key) != n)
            return fail(r, "a key with a NUL byte");
        s->has_key = true;
    } else if (at(r, "ListBucketResult", "Contents", "Size")) {
        long long v = 0;
        for (size_t i = 0; i < n; i++) {
            if (t[i] < '0' || t[i] > '9' || v > (INT64_MAX - 9) / 10)
                return fail(r, "an object size that is not a number");
            v = v * 10 + (t[i] - '0');
        }
        if (n == 0)
            return fail(r, "an empty object size");
        s->cur.size = v;
        s->has_size = true;
    } else if (at(r, "ListBucketResult", "Contents", "ETag")) {
        snprintf(s->cur.etag, sizeof s->cur.etag, "%.*s", (int)(n < 79 ? n : 79), t);
    } else if (at(r, "ListBucketResult", "IsTruncated", NULL)) {
        s->list->truncated = n == 4 && memcmp(t, "true", 4) == 0;
    } else if (at(r, "ListBucketResult", "NextContinuationToken", NULL)) {
        free(s->list->next_token);
        if (!(s->list->next_token = dup_text(t, n)))
            return ksv_err_set(r->err, 500, "out of memory");
    } else if (at(r, "ListBucketResult", "EncodingType", NULL)) {
        s->url_encoded = n == 3 && memcmp(t, "url", 3) == 0;
    }
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Undoes URL encoding in place; false on a malformed escape or a NUL. */
static bool url_decode(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '%') {
            int hi = p[1] ? hexval(p[1]) : -1, lo = hi >= 0 && p[2] ? hexval(p[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *w++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *w++ = *p == '+' ? ' ' : *p;
        }
    }
    *w = '\0';
    return true;
}

static int list_end(void *user, reader *r)
{
    list_state *s = user;
    if (!(s->in_contents && at(r, "ListBucketResult", "Contents", NULL)))
        return 0;
    s->in_contents = false;
    if (!s->has_key || !s->has_size)
        return fail(r, "an object without a Key or Size");
    if (++s->page_objects > MAX_OBJECTS_PER_PAGE)
        return fail(r, "too many objects in one page");
    ksv_s3_list *l = s->list;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        ksv_s3_object *v = realloc(l->v, nc * sizeof *v);
        if (!v)
            return ksv_err_set(r->err, 500, "out of memory");
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = s->cur;
    memset(&s->cur, 0, sizeof s->cur);
    return 0;
}

int ksv_s3_parse_list(const char *xml, size_t len, ksv_s3_list *list, ksv_err *err)
{
    reader r = {.p = xml, .end = xml + len, .err = err};
    list_state s = {.list = list};
    size_t first = list->n;
    list->truncated = false;
    free(list->next_token);
    list->next_token = NULL;
    handler h = {list_start, list_text, list_end, &s};
    int rc = walk(&r, &h);
    free(s.cur.key);
    if (rc == 0 && strcmp(r.stack[0], "ListBucketResult") != 0)
        rc = ksv_err_set(err, 502, "S3 reply: not a ListBucketResult");
    if (rc == 0 && list->truncated && (!list->next_token || !*list->next_token))
        rc = ksv_err_set(err, 502, "S3 reply: truncated without a NextContinuationToken");
    for (size_t i = first; rc == 0 && s.url_encoded && i < list->n; i++)
        if (!url_decode(list->v[i].key))
            rc = ksv_err_set(err, 502, "S3 reply: a malformed URL-encoded key");
    return rc;
}

void ksv_s3_list_free(ksv_s3_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->v[i].key);
    free(list->v);
    free(list->next_token);
    memset(list, 0, sizeof *list);
}

/* --------------------------------------------------------------------- errors */

typedef struct error_state {
    char code[64], message[200];
} error_state;

static void keep_printable(char *dst, size_t cap, const char *t, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 1 < cap; i++)
        if ((unsigned char)t[i] >= 0x20 && t[i] != 0x7f)
            dst[w++] = t[i];
    dst[w] = '\0';
}

static int error_text(void *user, reader *r, const char *t, size_t n)
{
    error_state *s = user;
    if (at(r, "Error", "Code", NULL))
        keep_printable(s->code, sizeof s->code, t, n);
    else if (at(r, "Error", "Message", NULL))
        keep_printable(s->message, sizeof s->message, t, n);
    return 0;
}

void ksv_s3_error_code(const char *body, size_t len, char *out, size_t cap)
{
    ksv_err err;
    reader r = {.p = body, .end = body + len, .err = &err};
    error_state s = {"", ""};
    handler h = {NULL, error_text, NULL, &s};
    out[0] = '\0';
    if (walk(&r, &h) != 0 || !s.code[0])
        return;
    snprintf(out, cap, "%s%s%s", s.code, s.message[0] ? ": " : "", s.message);
}
