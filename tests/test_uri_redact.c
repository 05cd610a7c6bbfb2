/* test_uri_redact.c: the display form of storage URIs (src/common/uri_redact.c), alone and
 * inside messages (ksv_err_set), with hostile inputs: presigned S3, GCS and SAS URLs,
 * passwords, no scheme, '?' and '@' where they surprise, empty values, "&&", percent
 * encoding, fragments, control bytes, and cuts at every buffer size, none of which may
 * show a secret. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/uri_redact.h"

#include "ktest.h"

static void check(const char *in, const char *want, const char *what)
{
    char out[512];
    size_t n = ksv_uri_redact(out, sizeof out, in);
    KT_CHECK_STR(out, want, "%s", what);
    KT_CHECK(n == strlen(out), "%s: the length returned", what);
}

/* No prefix of the display form, at any buffer size, holds the secret; every cut is
 * NUL-terminated within the buffer and ends in dots. */
static void check_cuts(const char *in, const char *secret, const char *what)
{
    char full[1024];
    ksv_uri_redact(full, sizeof full, in);
    size_t len = strlen(full);
    int bad = 0;
    for (size_t cap = 0; cap <= len + 1; cap++) {
        char *buf = malloc(cap + 1);
        if (!buf)
            return;
        buf[cap] = 'Z'; /* a guard past the buffer */
        size_t n = ksv_uri_redact(buf, cap, in);
        if (buf[cap] != 'Z' || (cap && (n >= cap || buf[n] != '\0')) || (cap == 0 && n))
            bad++;
        else if (cap && strstr(buf, secret))
            bad++;
        else if (cap > 1 && cap <= len && buf[n - 1] != '.')
            bad++; /* a cut says so */
        else if (cap > len && strcmp(buf, full) != 0)
            bad++;
        free(buf);
    }
    KT_CHECK(bad == 0, "%s: %d of %zu buffer sizes went wrong", what, bad, len + 2);
}

int main(void)
{
    /* The stores' signed URLs keep their keys, so an operator sees what kind they were. */
    check("https://b.s3.amazonaws.com/m/model.json?X-Amz-Algorithm=AWS4-HMAC-SHA256"
          "&X-Amz-Credential=AKIAEXAMPLE%2F20261202%2Fus-east-1%2Fs3%2Faws4_request"
          "&X-Amz-Date=20261202T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
          "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-Signature=abc123",
          "https://b.s3.amazonaws.com/m/model.json?X-Amz-Algorithm=REDACTED"
          "&X-Amz-Credential=REDACTED&X-Amz-Date=REDACTED&X-Amz-Expires=REDACTED"
          "&X-Amz-SignedHeaders=REDACTED&X-Amz-Security-Token=REDACTED"
          "&X-Amz-Signature=REDACTED",
          "a presigned S3 URL: every value, X-Amz-Expires too");
    check("https://storage.googleapis.com/b/o.ubj?X-Goog-Algorithm=GOOG4-RSA-SHA256"
          "&X-Goog-Credential=sa%40p.iam.gserviceaccount.com&X-Goog-Signature=0123abcd",
          "https://storage.googleapis.com/b/o.ubj?X-Goog-Algorithm=REDACTED"
          "&X-Goog-Credential=REDACTED&X-Goog-Signature=REDACTED",
          "a GCS signed URL");
    check("https://acct.blob.core.windows.net/c/m.tgz?sv=2022-11-02&se=2026-12-03T00%3A00Z"
          "&sr=b&sp=r&sig=SeCrEt%2B%3D",
          "https://acct.blob.core.windows.net/c/m.tgz?sv=REDACTED&se=REDACTED&sr=REDACTED"
          "&sp=REDACTED&sig=REDACTED",
          "an Azure SAS");
    check("http://h:8080/m.json?token=t0k&access_token=a",
          "http://h:8080/m.json?token=REDACTED&access_token=REDACTED", "tokens; the port stays");

    /* Userinfo. */
    check("https://user:pa55@host/m.json", "https://user:REDACTED@host/m.json",
          "a password is replaced, the user kept");
    check("https://ghp_T0KEN@github.com/o/r.tgz", "https://REDACTED@github.com/o/r.tgz",
          "a lone user name is a token");
    check("ssh://deploy@10.0.0.1:22", "ssh://deploy@10.0.0.1:22", "an ssh:// account name stays");
    check("ssh://deploy:pw@h", "ssh://deploy:REDACTED@h", "an ssh:// password does not");
    check("https://u:p@ss@host/x", "https://u:REDACTED@host/x", "an '@' in the password");
    check("https://u:@host/x", "https://u:REDACTED@host/x", "an empty password");
    check("https://user:pass", "https://user:REDACTED", "a cut userinfo (a port not a number)");
    check("https://u:pa/ss@host/m.json?a=1", "https://u:REDACTED/REDACTED",
          "a '/' in a password: nothing after the odd port is shown");
    check("https://[::1]:9000/x.json?a=1", "https://[::1]:9000/x.json?a=REDACTED", "IPv6");
    check("https://host/p?u=a@b", "https://host/p?u=REDACTED", "an '@' in the query");
    check("https://host/a@b/m.json", "https://host/a@b/m.json", "an '@' in the path is no user");

    /* Plain ones pass. */
    check("s3://bucket/prefix/model.json", "s3://bucket/prefix/model.json", "s3:// unchanged");
    check("/srv/models/m.json", "/srv/models/m.json", "a local path unchanged");
    check("hf://org/repo@main", "hf://org/repo@main", "hf:// with a revision: '@' in the path");
    check("", "", "empty");
    char out[8] = "x";
    ksv_uri_redact(out, sizeof out, NULL);
    KT_CHECK_STR(out, "", "NULL reads as empty");

    /* Hostile shapes. */
    check("host/m.json?sig=s", "host/m.json?sig=REDACTED", "no scheme");
    check("user:pw@host/m.json", "user:REDACTED@host/m.json", "no scheme, userinfo");
    check("https://h/p?a=1?b=2", "https://h/p?a=REDACTED", "a second '?' is in the value");
    check("https://h/p?a=&b=", "https://h/p?a=&b=", "empty values stay empty");
    check("https://h/p?&&a=1&&", "https://h/p?&&a=REDACTED&&", "&& kept");
    check("https://h/p?", "https://h/p?", "an empty query");
    check("https://h/p?SeCrEtBare", "https://h/p?REDACTED", "a parameter without '='");
    check("https://h/p?a%3Dsecret=1", "https://h/p?REDACTED", "an encoded '=' in a key");
    check("https://h/p?=v", "https://h/p?REDACTED", "an empty key");
    check("https://h/p?x[]=1", "https://h/p?x[]=REDACTED", "a key with brackets");
    check("https://h/p%3Fq%3D1/m.json?a=%41", "https://h/p%3Fq%3D1/m.json?a=REDACTED",
          "percent-encoding in the path stays, in values goes");
    check("https://h/p#access_token=t", "https://h/p#REDACTED", "a fragment");
    check("https://h/p?a=1#f", "https://h/p?a=REDACTED#REDACTED", "query and fragment");
    check("https://h/p#", "https://h/p#", "an empty fragment");
    check("https://h/p?sig=se cret", "https://h/p?REDACTED", "a space: the query goes whole");
    check("https://u:p w@h/p", "https://u:REDACTED?REDACTED", "a space in the userinfo");
    check("https://h/p\n?sig=s", "https://h/p?REDACTED", "a newline");
    check("https://h/p?sig=a\x1b[2J", "https://h/p?REDACTED", "an escape");

    /* Long, and every cut. */
    char longuri[4000];
    int n = snprintf(longuri, sizeof longuri,
                     "https://u:SECRETPW@host/model.json?X-Amz-Signature=");
    memset(longuri + n, 'S', sizeof longuri - (size_t)n - 1);
    memcpy(longuri + n, "SECRETSIG", 9);
    longuri[sizeof longuri - 1] = '\0';
    check(longuri, "https://u:REDACTED@host/model.json?X-Amz-Signature=REDACTED",
          "a 4000-byte signature");
    check_cuts("https://u:SECRETPW@host/m.json?sig=SECRETSIG&k=v#SECRETF", "SECRET",
               "a URI with every kind of secret");
    char longpath[3000];
    n = snprintf(longpath, sizeof longpath, "https://host/");
    memset(longpath + n, 'p', sizeof longpath - (size_t)n - 1);
    longpath[sizeof longpath - 1] = '\0';
    memcpy(longpath + 2000, "?sig=SECRET", 11);
    check_cuts(longpath, "SECRET", "a long path before the query");
    check_cuts("https://user:SECRET", "SECRET", "a cut userinfo");

    /* Inside text: every message passes through this in ksv_err_set and ksv_log. */
    ksv_err err;
    ksv_err_set(&err, 404, "storage %s: HTTP 404", "https://u:SECRETPW@h/m.json?sig=SECRET1");
    KT_CHECK_STR(err.msg, "storage https://u:REDACTED@h/m.json?sig=REDACTED: HTTP 404",
                 "ksv_err_set redacts a URI and keeps the sentence's colon");
    ksv_err_set(&err, 400, "%s", "{\"a\":\"http://h/x?t=SECRET\", (see https://h/y?t=SECRET).}");
    KT_CHECK_STR(err.msg, "{\"a\":\"http://h/x?t=REDACTED\", (see https://h/y?t=REDACTED).}",
                 "quotes and trailing punctuation end a URI in text");
    ksv_err_prefix(&err, "pull %s", "gs://b/o?X-Goog-Signature=SECRET");
    KT_CHECK(!strstr(err.msg, "SECRET"), "ksv_err_prefix redacts: %s", err.msg);
    ksv_err_set(&err, 500, "%s", "odd ://x?y=1 and 9http://h/p?s=SECRET");
    KT_CHECK(!strstr(err.msg, "SECRET") && strstr(err.msg, "://x?y=1"),
             "a '://' without a scheme is no URI, the next one still is: %s", err.msg);
    /* A URI written in the format itself is the programmer's: a placeholder hint stays as
     * written (the redactor would take "PORT" for a password), its arguments do not. */
    ksv_err_set(&err, 400, "%s: not a URL (expected http://HOST:PORT)", "127.0.0.1:9090");
    KT_CHECK_STR(err.msg, "127.0.0.1:9090: not a URL (expected http://HOST:PORT)",
                 "a hint in the format is kept");
    ksv_err_set(&err, 400, "%s (expected http://HOST:PORT)", "http://u:SECRETPW@h:80/");
    KT_CHECK(!strstr(err.msg, "SECRET") && strstr(err.msg, "expected http://HOST:PORT"),
             "the argument's URI is redacted, the format's kept: %s", err.msg);
    ksv_err_set(&err, 400, "node %s: address must be local, http://HOST:PORT or "
                "ssh://[USER@]HOST[:PORT]", "n1");
    ksv_err_prefix(&err, "node add %s", "https://h/x?sig=SECRET");
    KT_CHECK(!strstr(err.msg, "SECRET") && strstr(err.msg, "http://HOST:PORT or "
                                                  "ssh://[USER@]HOST[:PORT]"),
             "ksv_err_prefix keeps the message it prefixes and redacts its own: %s", err.msg);
    char text[600];
    memset(text, 'a', sizeof text);
    memcpy(text + 490, " https://h/p?sig=SECRET", 23);
    text[513] = '\0';
    ksv_err_set(&err, 500, "%s", text);
    KT_CHECK(!strstr(err.msg, "SECRET") && !strstr(err.msg, "?sig=SEC"),
             "a URI cut by the message's size is still redacted");
    char small[40] = "see https://h/p?sig=SECRETSECRET now";
    ksv_uri_redact_text(small, sizeof small);
    KT_CHECK_STR(small, "see https://h/p?sig=REDACTED now", "in place");
    char tight[22] = "x https://h/?s=SECRET";
    ksv_uri_redact_text(tight, sizeof tight);
    KT_CHECK(!strstr(tight, "SECRET") && strlen(tight) < sizeof tight,
             "text that grows past its buffer is cut: %s", tight);
    char plain[] = "no URI here: 10 ms";
    ksv_uri_redact_text(plain, sizeof plain);
    KT_CHECK_STR(plain, "no URI here: 10 ms", "text without a URI is untouched");

    return kt_summary("test_uri_redact");
}
