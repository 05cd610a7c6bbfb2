/* uri_redact.c: the display form of a URI (see uri_redact.h). */
#include "common/uri_redact.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 64

/* Output bounded by the caller's buffer: once something does not fit, nothing more is
 * written and the end becomes "...". */
typedef struct out {
    char *dst;
    size_t cap, len;
    bool cut;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->cut || o->cap == 0)
        return;
    if (n > o->cap - 1 - o->len) {
        n = o->cap - 1 - o->len;
        o->cut = true;
    }
    memcpy(o->dst + o->len, s, n);
    o->len += n;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static size_t finish(out *o)
{
    if (o->cap == 0)
        return 0;
    if (o->cut) {
        /* Only display text was written, so whatever the dots hide is harmless. */
        size_t dots = o->cap - 1 < 3 ? o->cap - 1 : 3;
        o->len = o->cap - 1;
        memset(o->dst + o->len - dots, '.', dots);
    }
    o->dst[o->len] = '\0';
    return o->len;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Bytes that end a URI inside a sentence (uri_redact_text), and that a URI never holds. */
static bool is_stop(char c)
{
    return (unsigned char)c <= ' ' || c == 0x7f || c == '"' || c == '\'' || c == '<' ||
           c == '>' || c == '`';
}

/* The length of "scheme://" at s, 0 when s does not start with one. */
static size_t scheme_len(const char *s, size_t n)
{
    if (n == 0 || !is_alpha(s[0]))
        return 0;
    size_t i = 1;
    while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' ||
                     s[i] == '.'))
        i++;
    return n - i >= 3 && memcmp(s + i, "://", 3) == 0 ? i + 3 : 0;
}

static bool plain_key(const char *k, size_t n)
{
    if (n == 0 || n > KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(k[i]) && !is_digit(k[i]) && !strchr("-_.~[]", k[i]))
            return false;
    return true;
}

/* host[:port], the userinfo already gone: a port that is not a number is what a cut
 * "user:password" looks like (or one whose unencoded '/' ended the authority early).
 * Returns false then: what follows may be the rest of the password. */
static bool put_host(out *o, const char *h, size_t n)
{
    size_t from = 0;
    if (n && h[0] == '[') { /* an IPv6 literal: its colons are not a port's */
        const char *close = memchr(h, ']', n);
        from = close ? (size_t)(close - h) : n;
    }
    const char *colon = NULL;
    for (size_t i = n; i > from; i--)
        if (h[i - 1] == ':') {
            colon = h + i - 1;
            break;
        }
    if (!colon) {
        put(o, h, n);
        return true;
    }
    bool number = true;
    for (const char *p = colon + 1; p < h + n; p++)
        number = number && is_digit(*p);
    put(o, h, number ? n : (size_t)(colon - h) + 1);
    if (!number)
        puts_(o, KSV_URI_REDACTED);
    return number;
}

/* The query's parameters, between '?' and '#' or the end. */
static void put_query(out *o, const char *q, size_t n)
{
    const char *end = q + n;
    while (q <= end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        if (pe == q) {
            /* empty: "&&" stays as it was */
        } else if (!eq || !plain_key(q, (size_t)(eq - q))) {
            puts_(o, KSV_URI_REDACTED);
        } else {
            put(o, q, (size_t)(eq - q) + 1);
            if (eq + 1 < pe)
                puts_(o, KSV_URI_REDACTED);
        }
        if (!amp)
            break;
        put(o, "&", 1);
        q = amp + 1;
    }
}

/* The display form of the n bytes at uri (no NUL needed). */
static void redact(out *o, const char *uri, size_t n)
{
    /* Never fail open: past a byte no URI holds, nothing is shown. */
    size_t clean = 0;
    while (clean < n && !is_stop(uri[clean]))
        clean++;
    bool trouble = clean < n;
    if (trouble) {
        const char *q = memchr(uri, '?', clean), *h = memchr(uri, '#', clean);
        size_t cut = q ? (size_t)(q - uri) : clean;
        if (h && (size_t)(h - uri) < cut)
            cut = (size_t)(h - uri);
        n = cut;
    }
    size_t s = scheme_len(uri, n);
    put(o, uri, s);
    const char *a = uri + s, *end = uri + n;
    const char *ae = a + strcspn(a, "/?#");
    if (ae > end)
        ae = end;
    const char *at = NULL;
    for (const char *p = a; p < ae; p++)
        if (*p == '@')
            at = p; /* the last '@': a password may hold one unencoded */
    if (at) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        /* ssh://USER@HOST names an account, whose key is elsewhere; a lone user name in
         * any other scheme may be a token (https://TOKEN@host). */
        bool ssh = s == 6 && strncmp(uri, "ssh://", 6) == 0;
        if (colon || ssh)
            put(o, a, (size_t)((colon ? colon : at) - a));
        puts_(o, colon ? ":" KSV_URI_REDACTED "@" : ssh ? "@" : KSV_URI_REDACTED "@");
        a = at + 1;
    }
    /* Without a scheme there is no authority: what precedes the first '/' is a path. */
    if (!s) {
        put(o, a, (size_t)(ae - a));
    } else if (!put_host(o, a, (size_t)(ae - a))) {
        if (ae < end)
            puts_(o, "/" KSV_URI_REDACTED);
        if (trouble)
            puts_(o, "?" KSV_URI_REDACTED);
        return;
    }
    const char *pe = ae + strcspn(ae, "?#");
    if (pe > end)
        pe = end;
    put(o, ae, (size_t)(pe - ae));
    if (pe < end && *pe == '?') {
        const char *fe = memchr(pe, '#', (size_t)(end - pe));
        if (!fe)
            fe = end;
        put(o, "?", 1);
        put_query(o, pe + 1, (size_t)(fe - pe - 1));
        pe = fe;
    }
    if (pe < end && *pe == '#')
        puts_(o, pe + 1 < end ? "#" KSV_URI_REDACTED : "#");
    if (trouble)
        puts_(o, "?" KSV_URI_REDACTED);
}

size_t ksv_uri_redact(char *dst, size_t cap, const char *uri)
{
    out o = {.dst = dst, .cap = cap};
    if (!uri)
        uri = "";
    redact(&o, uri, strlen(uri));
    return finish(&o);
}

/* Whether the n bytes at t occur in keep. */
static bool kept_literal(const char *keep, const char *t, size_t n)
{
    for (const char *k = keep; k && n && (k = strchr(k, *t)) != NULL; k++)
        if (strncmp(k, t, n) == 0)
            return true;
    return false;
}

void ksv_uri_redact_text(char *s, size_t cap)
{
    ksv_uri_redact_text_keep(s, cap, NULL);
}

void ksv_uri_redact_text_keep(char *s, size_t cap, const char *keep)
{
    if (cap == 0 || !strstr(s, "://"))
        return;
    char small[1024];
    char *buf = cap <= sizeof small ? small : malloc(cap);
    if (!buf) {
        /* Nowhere to rewrite it: the text stops before its first URI. */
        *strstr(s, "://") = '\0';
        return;
    }
    out o = {.dst = buf, .cap = cap};
    const char *p = s;
    for (const char *sep; (sep = strstr(p, "://")) != NULL;) {
        const char *start = sep;
        while (start > p && (is_alpha(start[-1]) || is_digit(start[-1]) || start[-1] == '+' ||
                             start[-1] == '-' || start[-1] == '.'))
            start--;
        while (start < sep && !is_alpha(*start))
            start++;
        if (start == sep) { /* "://" with no scheme before it is no URI */
            put(&o, p, (size_t)(sep + 3 - p));
            p = sep + 3;
            continue;
        }
        put(&o, p, (size_t)(start - p));
        const char *end = sep + 3;
        while (*end && !is_stop(*end))
            end++;
        while (end > sep + 3 && strchr(".,;:)]}", end[-1]))
            end--;
        if (kept_literal(keep, start, (size_t)(end - start)))
            put(&o, start, (size_t)(end - start));
        else
            redact(&o, start, (size_t)(end - start));
        p = end;
    }
    puts_(&o, p);
    finish(&o);
    memcpy(s, buf, o.len + 1);
    if (buf != small)
        free(buf);
}
