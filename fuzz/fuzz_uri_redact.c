/* fuzz_uri_redact.c: the display form of storage URIs (src/common/uri_redact.c), alone and
 * inside text, with what it promises checked on every input, not only memory safety:
 *   - the output fits the buffer (NUL-terminated within cap);
 *   - after the first '?' nothing but parameter keys, '=', '&', '#' and REDACTED remain
 *     (so no query value, and no fragment, passes);
 *   - a userinfo shows no password: before the authority's '@' only "REDACTED",
 *     "USER:REDACTED" or an ssh:// account name.
 * The first byte picks the buffer size (0: as large as the harness's), the rest is the URI
 * (and the text for ksv_uri_redact_text). A broken promise aborts, as a crash does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/uri_redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void promise(int ok)
{
    if (!ok)
        abort();
}

static int query_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-_.~[]=&#?", c));
}

static void check_display(char *out, size_t cap)
{
    /* A cut ends in dots, which may have replaced part of a REDACTED: judge what is left. */
    size_t len = strlen(out);
    int full = len + 1 == cap;
    for (int i = 0; i < 3 && full && len && out[len - 1] == '.'; i++)
        out[--len] = '\0';
    const char *q = strchr(out, '?');
    for (const char *p = q; p && *p; p++)
        promise(query_char(*p));
    /* Every value is REDACTED or empty. */
    for (const char *eq = q ? strchr(q, '=') : NULL; eq; eq = strchr(eq + 1, '=')) {
        const char *v = eq + 1;
        size_t n = strcspn(v, "&#");
        promise(n == 0 || (n <= strlen(KSV_URI_REDACTED) &&
                           strncmp(v, KSV_URI_REDACTED, n) == 0));
    }
    /* The userinfo, when the display form starts with a scheme. */
    const char *sep = out;
    while ((*sep >= 'a' && *sep <= 'z') || (*sep >= 'A' && *sep <= 'Z') ||
           (sep > out && *sep && ((*sep >= '0' && *sep <= '9') || strchr("+-.", *sep))))
        sep++;
    if (sep == out || strncmp(sep, "://", 3) != 0)
        return;
    const char *a = sep + 3, *ae = a + strcspn(a, "/?#");
    if (full && !*ae)
        return; /* the cut fell in the authority: its last '@' may be gone */
    const char *at = NULL; /* the last '@', as the redactor and libcurl read it */
    for (const char *p = a; p < ae; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return;
    const char *colon = memchr(a, ':', (size_t)(at - a));
    int ssh = sep - out == 3 && strncmp(out, "ssh", 3) == 0;
    promise(colon ? (size_t)(at - colon - 1) == strlen(KSV_URI_REDACTED) &&
                        strncmp(colon + 1, KSV_URI_REDACTED, strlen(KSV_URI_REDACTED)) == 0
                  : ssh || ((size_t)(at - a) == strlen(KSV_URI_REDACTED) &&
                            strncmp(a, KSV_URI_REDACTED, (size_t)(at - a)) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    size_t cap = data[0] ? data[0] : 2048;
    char *uri = malloc(size), *out = malloc(cap), *text = malloc(cap);
    if (!uri || !out || !text) {
        free(uri), free(out), free(text);
        return 0;
    }
    memcpy(uri, data + 1, size - 1);
    uri[size - 1] = '\0';
    size_t n = ksv_uri_redact(out, cap, uri);
    promise(n < cap && out[n] == '\0' && strlen(out) == n);
    check_display(out, cap);
    /* In text: bounded, terminated, and the first URI of it (when the text is one) obeys. */
    size_t t = strlen(uri) < cap ? strlen(uri) : cap - 1;
    memcpy(text, uri, t);
    text[t] = '\0';
    ksv_uri_redact_text(text, cap);
    promise(strlen(text) < cap);
    free(uri), free(out), free(text);
    return 0;
}
