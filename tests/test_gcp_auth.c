/* test_gcp_auth.c: the service account key file reader and the RS256 JWT (engine/
 * gcp_auth.h). Keys are made here with OpenSSL (RSA 2048, and an EC key that RS256 must
 * refuse); every JWT is checked with OpenSSL's own verification against the public half,
 * and its header and claims decoded and compared. Hostile key files (not JSON, wrong types,
 * a NUL or control characters in fields, an overlong one, no PEM, a bad PEM, an unknown
 * token_uri scheme, a file past the size cap, every prefix of a good file) are refused with
 * a clear error, never a crash (run under ASan/UBSan). */
#include "engine/gcp_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ktest.h"

static char *pem_of(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

/* A key file's JSON text for pem (with extra fields spliced in before the closing brace). */
static char *key_file(const char *pem, const char *extra)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("service_account"));
    json_object_object_add(o, "client_email", json_object_new_string("ksv@project.iam.gserviceaccount.com"));
    json_object_object_add(o, "private_key_id", json_object_new_string("kid-1"));
    json_object_object_add(o, "private_key", json_object_new_string(pem));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    size_t n = strlen(text);
    char *out = malloc(n + strlen(extra) + 2);
    memcpy(out, text, n - 1);
    strcpy(out + n - 1, extra);
    strcat(out, "}");
    json_object_put(o);
    return out;
}

static size_t b64url_decode(const char *s, size_t n, unsigned char *out)
{
    size_t len = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *p = strchr(abc, s[i]);
        if (!p || !s[i])
            return (size_t)-1;
        v = v << 6 | (unsigned)(p - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(v >> bits & 0xff);
        }
    }
    return len;
}

static void good_key(EVP_PKEY *rsa)
{
    char *pem = pem_of(rsa);
    char *text = key_file(pem, ",\"token_uri\":\"http://127.0.0.1:1/token\"");
    ksv_gcp_account a;
    ksv_err err = {0};
    int rc = ksv_gcp_account_parse(text, strlen(text), "key.json", &a, &err);
    KT_CHECK(rc == 0 && strcmp(a.client_email, "ksv@project.iam.gserviceaccount.com") == 0 &&
                 strcmp(a.token_uri, "http://127.0.0.1:1/token") == 0 &&
                 strcmp(a.private_key_id, "kid-1") == 0,
             "a service account key file is read (%s)", rc ? err.msg : "");
    ksv_sb jwt;
    ksv_sb_init(&jwt);
    rc = rc == 0 ? ksv_gcp_jwt(&a, KSV_GCP_SCOPE, 1700000000, &jwt, &err) : -1;
    KT_CHECK(rc == 0, "a JWT is signed (%s)", rc ? err.msg : "");
    if (rc == 0) {
        const char *d1 = strchr(jwt.data, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
        KT_CHECK(d1 && d2 && !strchr(d2 + 1, '.'), "three base64url parts");
        unsigned char head[512], claims[1024], sig[1024];
        size_t hn = b64url_decode(jwt.data, (size_t)(d1 - jwt.data), head);
        size_t cn = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), claims);
        size_t sn = b64url_decode(d2 + 1, strlen(d2 + 1), sig);
        head[hn < sizeof head ? hn : 0] = '\0';
        claims[cn < sizeof claims ? cn : 0] = '\0';
        json_object *h = json_tokener_parse((char *)head), *c = json_tokener_parse((char *)claims);
        KT_CHECK(h && strcmp(json_object_get_string(json_object_object_get(h, "alg")), "RS256") == 0 &&
                     strcmp(json_object_get_string(json_object_object_get(h, "kid")), "kid-1") == 0,
                 "header: alg RS256, kid of the key file (%s)", (char *)head);
        KT_CHECK(c && strcmp(json_object_get_string(json_object_object_get(c, "iss")),
                             "ksv@project.iam.gserviceaccount.com") == 0 &&
                     strcmp(json_object_get_string(json_object_object_get(c, "aud")),
                            "http://127.0.0.1:1/token") == 0 &&
                     strcmp(json_object_get_string(json_object_object_get(c, "scope")),
                            KSV_GCP_SCOPE) == 0 &&
                     json_object_get_int64(json_object_object_get(c, "iat")) == 1700000000 &&
                     json_object_get_int64(json_object_object_get(c, "exp")) == 1700003600,
                 "claims: iss, aud (the token URI), scope, iat, exp = iat + 3600 (%s)",
                 (char *)claims);
        json_object_put(h);
        json_object_put(c);
        /* OpenSSL's own verification, over the public half. */
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, rsa) == 1 &&
                 EVP_DigestVerify(md, sig, sn, (const unsigned char *)jwt.data,
                                  (size_t)(d2 - jwt.data)) == 1;
        EVP_MD_CTX_free(md);
        KT_CHECK(ok, "the signature verifies with OpenSSL against the public key");
        /* A changed claim no longer verifies. */
        md = EVP_MD_CTX_new();
        jwt.data[d1 - jwt.data + 3] ^= 1;
        ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, rsa) == 1 &&
             EVP_DigestVerify(md, sig, sn, (const unsigned char *)jwt.data,
                              (size_t)(d2 - jwt.data)) == 1;
        EVP_MD_CTX_free(md);
        KT_CHECK(!ok, "and a changed claim does not");
    }
    ksv_sb_free(&jwt);
    if (rc == 0 || a.private_key)
        ksv_gcp_account_free(&a);
    /* Without token_uri: Google's. */
    free(text);
    text = key_file(pem, "");
    rc = ksv_gcp_account_parse(text, strlen(text), "key.json", &a, &err);
    KT_CHECK(rc == 0 && strcmp(a.token_uri, KSV_GCP_DEFAULT_TOKEN_URI) == 0,
             "token_uri defaults to %s", KSV_GCP_DEFAULT_TOKEN_URI);
    if (rc == 0) {
        /* Every prefix of a good file: refused or read, never a crash. */
        size_t n = strlen(text), bad = 0;
        for (size_t k = 0; k < n; k++) {
            ksv_gcp_account p;
            if (ksv_gcp_account_parse(text, k, "key.json", &p, &err) == 0)
                ksv_gcp_account_free(&p);
            else
                bad++;
        }
        KT_CHECK(bad == n, "every proper prefix of the file is refused (%zu of %zu)", bad, n);
        ksv_gcp_account_free(&a);
    }
    free(text);
    free(pem);
}

static void refused(const char *what, const char *text, size_t len, const char *want)
{
    ksv_gcp_account a;
    ksv_err err = {0};
    int rc = ksv_gcp_account_parse(text, len, "key.json", &a, &err);
    KT_CHECK(rc != 0 && err.status == 400 && strstr(err.msg, want) && strstr(err.msg, "key.json"),
             "%s: refused (%s)", what, rc ? err.msg : "read!");
    if (rc == 0)
        ksv_gcp_account_free(&a);
}

static void hostile(EVP_PKEY *ec)
{
    static const char pem[] = "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n";
    char buf[4096];
#define R(what, text, want) refused(what, text, strlen(text), want)
    R("empty", "", "not a JSON object");
    R("an array", "[1,2]", "not a JSON object");
    R("trailing garbage", "{\"type\":\"service_account\"} x", "not a JSON object");
    R("no type", "{\"client_email\":\"a@b\"}", "no type");
    R("a user's credentials", "{\"type\":\"authorized_user\"}", "not service_account");
    R("type not a string", "{\"type\":7}", "type must be a string");
    snprintf(buf, sizeof buf, "{\"type\":\"service_account\",\"private_key\":\"%s\"}", pem);
    R("no client_email", buf, "no client_email");
    snprintf(buf, sizeof buf, "{\"type\":\"service_account\",\"client_email\":\"a\\u0000b\","
                              "\"private_key\":\"%s\"}", pem);
    R("a NUL in client_email", buf, "client_email must be a string");
    snprintf(buf, sizeof buf, "{\"type\":\"service_account\",\"client_email\":\"a\\u001b[2Jb\","
                              "\"private_key\":\"%s\"}", pem);
    R("an escape in client_email", buf, "control character");
    snprintf(buf, sizeof buf, "{\"type\":\"service_account\",\"client_email\":\"%0400d\","
                              "\"private_key\":\"%s\"}", 0, pem);
    R("an overlong client_email", buf, "client_email must be a string of 1 to");
    R("no private_key", "{\"type\":\"service_account\",\"client_email\":\"a@b\"}",
      "private_key must be a PEM");
    R("private_key not PEM", "{\"type\":\"service_account\",\"client_email\":\"a@b\","
                             "\"private_key\":\"MIIE...\"}", "private_key must be a PEM");
    R("private_key a number", "{\"type\":\"service_account\",\"client_email\":\"a@b\","
                              "\"private_key\":12}", "private_key must be a PEM");
    snprintf(buf, sizeof buf, "{\"type\":\"service_account\",\"client_email\":\"a@b\","
                              "\"private_key\":\"%s\",\"token_uri\":\"file:///etc/passwd\"}", pem);
    R("a file:// token_uri", buf, "token_uri must be an http(s) URL");
    size_t big = KSV_GCP_KEY_FILE_MAX + 10;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    refused("past the size cap", huge, big, "larger than");
    free(huge);
    char deep[3000];
    memset(deep, '[', sizeof deep);
    refused("nesting 3000 deep", deep, sizeof deep, "not a JSON object");

    /* Keys that parse as files but cannot sign RS256. */
    ksv_gcp_account a;
    ksv_err err = {0};
    snprintf(buf, sizeof buf, "{\"type\":\"service_account\",\"client_email\":\"a@b\","
                              "\"private_key\":\"%s\"}", pem);
    ksv_sb jwt;
    ksv_sb_init(&jwt);
    int rc = ksv_gcp_account_parse(buf, strlen(buf), "key.json", &a, &err);
    rc = rc == 0 ? ksv_gcp_jwt(&a, KSV_GCP_SCOPE, 1, &jwt, &err) : 0;
    KT_CHECK(rc != 0 && strstr(err.msg, "not a PEM private key"), "a broken PEM: %s", err.msg);
    ksv_gcp_account_free(&a);
    ksv_sb_reset(&jwt);
    char *ec_pem = pem_of(ec);
    char *text = key_file(ec_pem, "");
    rc = ksv_gcp_account_parse(text, strlen(text), "key.json", &a, &err);
    rc = rc == 0 ? ksv_gcp_jwt(&a, KSV_GCP_SCOPE, 1, &jwt, &err) : 0;
    KT_CHECK(rc != 0 && strstr(err.msg, "not an RSA key"), "an EC key: %s", err.msg);
    ksv_gcp_account_free(&a);
    ksv_sb_free(&jwt);
    free(text);
    free(ec_pem);
#undef R
}

int main(void)
{
    kt_set_verbose(true);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    KT_CHECK(rsa && ec, "test keys made");
    if (rsa && ec) {
        good_key(rsa);
        hostile(ec);
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return kt_summary("test_gcp_auth");
}
