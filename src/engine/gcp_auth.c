/* gcp_auth.c: a service account's access token for gs:// (see gcp_auth.h). */
#include "engine/gcp_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/fileutil.h"
#include "engine/fetch_http.h"

#define TOKEN_REPLY_MAX (64u << 10)
#define JWT_LIFETIME_S 3600

void ksv_gcp_account_free(ksv_gcp_account *a)
{
    if (a->private_key) {
        explicit_bzero(a->private_key, strlen(a->private_key));
        free(a->private_key);
    }
    memset(a, 0, sizeof *a);
}

/* A string field of the key file into out: 400 when absent (required), not a string, empty,
 * too long for cap, or holding a control character. */
static int field(json_object *root, const char *key, bool required, char *out, size_t cap,
                 const char *shown, ksv_err *err)
{
    json_object *v;
    out[0] = '\0';
    if (!json_object_object_get_ex(root, key, &v))
        return required ? ksv_err_set(err, 400, "%s: the key file has no %s", shown, key) : 0;
    const char *s = json_object_get_string(v);
    size_t n = json_object_is_type(v, json_type_string) ? (size_t)json_object_get_string_len(v)
                                                         : 0;
    if (n == 0 || n >= cap || strlen(s) != n)
        return ksv_err_set(err, 400, "%s: %s must be a string of 1 to %zu bytes", shown, key,
                           cap - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
            return ksv_err_set(err, 400, "%s: %s holds a control character", shown, key);
    memcpy(out, s, n + 1);
    return 0;
}

int ksv_gcp_account_parse(const char *text, size_t len, const char *shown, ksv_gcp_account *out,
                          ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > KSV_GCP_KEY_FILE_MAX)
        return ksv_err_set(err, 400, "%s: larger than %u bytes: not a key file", shown,
                           KSV_GCP_KEY_FILE_MAX);
    json_tokener *tok = json_tokener_new_ex(16);
    json_object *root = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    bool whole = tok && json_tokener_get_error(tok) == json_tokener_success;
    /* One object and nothing after it but white space. */
    for (size_t i = whole ? json_tokener_get_parse_end(tok) : len; i < len && whole; i++)
        whole = text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t';
    json_tokener_free(tok);
    int rc = 0;
    char type[32];
    json_object *pk;
    if (!whole || !root || !json_object_is_type(root, json_type_object))
        rc = ksv_err_set(err, 400, "%s: not a JSON object (a service account key file)", shown);
    else if (field(root, "type", true, type, sizeof type, shown, err) != 0)
        rc = -1;
    else if (strcmp(type, "service_account") != 0)
        rc = ksv_err_set(err, 400, "%s: type \"%s\" is not service_account (a user's or an "
                                   "external account's credentials are not read)", shown, type);
    else if (field(root, "client_email", true, out->client_email, sizeof out->client_email,
                   shown, err) != 0 ||
             field(root, "private_key_id", false, out->private_key_id,
                   sizeof out->private_key_id, shown, err) != 0 ||
             field(root, "token_uri", false, out->token_uri, sizeof out->token_uri, shown,
                   err) != 0)
        rc = -1;
    else if (!json_object_object_get_ex(root, "private_key", &pk) ||
             !json_object_is_type(pk, json_type_string) ||
             strncmp(json_object_get_string(pk), "-----BEGIN ", 11) != 0 ||
             strlen(json_object_get_string(pk)) != (size_t)json_object_get_string_len(pk))
        rc = ksv_err_set(err, 400, "%s: private_key must be a PEM private key", shown);
    if (rc == 0 && !out->token_uri[0])
        snprintf(out->token_uri, sizeof out->token_uri, "%s", KSV_GCP_DEFAULT_TOKEN_URI);
    if (rc == 0 && strncmp(out->token_uri, "https://", 8) != 0 &&
        strncmp(out->token_uri, "http://", 7) != 0)
        rc = ksv_err_set(err, 400, "%s: token_uri must be an http(s) URL", shown);
    if (rc == 0 && !(out->private_key = strdup(json_object_get_string(pk))))
        rc = ksv_err_set(err, 500, "out of memory");
    json_object_put(root);
    if (rc != 0)
        ksv_gcp_account_free(out);
    return rc;
}

int ksv_gcp_account_load(const char *path, ksv_gcp_account *out, ksv_err *err)
{
    char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    if (ksv_read_file(path, KSV_GCP_KEY_FILE_MAX, &text, &len, err) != 0)
        return ksv_err_prefix(err, "GOOGLE_APPLICATION_CREDENTIALS");
    int rc = ksv_gcp_account_parse(text, len, path, out, err);
    explicit_bzero(text, len);
    free(text);
    return rc;
}

static void base64url(ksv_sb *sb, const unsigned char *p, size_t n)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        ksv_sb_putc(sb, abc[v >> 18 & 63]);
        ksv_sb_putc(sb, abc[v >> 12 & 63]);
        if (i + 1 < n)
            ksv_sb_putc(sb, abc[v >> 6 & 63]);
        if (i + 2 < n)
            ksv_sb_putc(sb, abc[v & 63]);
    }
}

/* RS256: an RSA PKCS#1 v1.5 signature over SHA-256, by OpenSSL's EVP API. */
static int sign_rs256(const char *pem, const char *data, size_t len, unsigned char **sig,
                      size_t *sig_len, ksv_err *err)
{
    *sig = NULL;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!key)
        return ksv_err_set(err, 400, "the key file's private_key is not a PEM private key "
                                     "OpenSSL reads");
    int rc = 0;
    EVP_MD_CTX *md = NULL;
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        rc = ksv_err_set(err, 400, "the key file's private_key is not an RSA key (RS256)");
    else if (!(md = EVP_MD_CTX_new()) ||
             EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
             EVP_DigestSign(md, NULL, sig_len, (const unsigned char *)data, len) != 1 ||
             !(*sig = malloc(*sig_len)) ||
             EVP_DigestSign(md, *sig, sig_len, (const unsigned char *)data, len) != 1)
        rc = ksv_err_set(err, 500, "signing the service account's JWT failed");
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    if (rc != 0) {
        free(*sig);
        *sig = NULL;
    }
    return rc;
}

int ksv_gcp_jwt(const ksv_gcp_account *a, const char *scope, time_t now, ksv_sb *out,
                ksv_err *err)
{
    ksv_sb header, claims;
    ksv_sb_init(&header);
    ksv_sb_init(&claims);
    ksv_sb_puts(&header, "{\"alg\":\"RS256\",\"typ\":\"JWT\"");
    if (a->private_key_id[0]) {
        ksv_sb_puts(&header, ",\"kid\":");
        ksv_sb_json_str(&header, a->private_key_id);
    }
    ksv_sb_putc(&header, '}');
    ksv_sb_puts(&claims, "{\"iss\":");
    ksv_sb_json_str(&claims, a->client_email);
    ksv_sb_puts(&claims, ",\"scope\":");
    ksv_sb_json_str(&claims, scope);
    ksv_sb_puts(&claims, ",\"aud\":");
    ksv_sb_json_str(&claims, a->token_uri);
    ksv_sb_printf(&claims, ",\"iat\":%lld,\"exp\":%lld}", (long long)now,
                  (long long)now + JWT_LIFETIME_S);
    base64url(out, (const unsigned char *)header.data, header.len);
    ksv_sb_putc(out, '.');
    base64url(out, (const unsigned char *)claims.data, claims.len);
    ksv_sb_free(&header);
    ksv_sb_free(&claims);
    if (out->oom)
        return ksv_err_set(err, 500, "out of memory");
    unsigned char *sig;
    size_t sig_len;
    if (sign_rs256(a->private_key, out->data, out->len, &sig, &sig_len, err) != 0)
        return -1;
    ksv_sb_putc(out, '.');
    base64url(out, sig, sig_len);
    free(sig);
    return out->oom ? ksv_err_set(err, 500, "out of memory") : 0;
}

/* {"error":"invalid_grant","error_description":"..."}: "invalid_grant: ...". */
static void oauth_error(const char *body, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    json_tokener *tok = json_tokener_new();
    json_object *root = tok ? json_tokener_parse_ex(tok, body, (int)(len < 65536 ? len : 65536))
                            : NULL, *e, *d;
    json_tokener_free(tok);
    if (root && json_object_object_get_ex(root, "error", &e) &&
        json_object_is_type(e, json_type_string)) {
        bool desc = json_object_object_get_ex(root, "error_description", &d) &&
                    json_object_is_type(d, json_type_string);
        snprintf(out, cap, "%.100s%s%.200s", json_object_get_string(e), desc ? ": " : "",
                 desc ? json_object_get_string(d) : "");
    }
    json_object_put(root);
}

int ksv_gcp_access_token(const ksv_gcp_account *a, const ksv_fetch_ctl *ctl, char *token,
                         size_t cap, ksv_err *err)
{
    ksv_sb jwt, body, reply;
    ksv_sb_init(&jwt);
    ksv_sb_init(&body);
    ksv_sb_init(&reply);
    int rc = ksv_gcp_jwt(a, KSV_GCP_SCOPE, time(NULL), &jwt, err);
    if (rc == 0) {
        ksv_sb_puts(&body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                           "&assertion=");
        ksv_sb_puts(&body, jwt.data); /* base64url and dots: nothing to escape */
        ksv_http_options o = {.proxy = KSV_HTTP_PROXY_ENV};
        const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
        rc = body.oom ? ksv_err_set(err, 500, "out of memory")
                      : ksv_upload_text(a->token_uri, a->token_uri, "POST", &o, hdrs, body.data,
                                        body.len, ctl, TOKEN_REPLY_MAX, oauth_error, &reply,
                                        err);
        if (rc != 0)
            ksv_err_prefix(err, "service account %s: token", a->client_email);
    }
    json_object *root = rc == 0 ? json_tokener_parse(reply.data ? reply.data : "") : NULL, *t;
    if (rc == 0 && !(root && json_object_object_get_ex(root, "access_token", &t) &&
                     json_object_is_type(t, json_type_string) &&
                     json_object_get_string_len(t) > 0 &&
                     (size_t)json_object_get_string_len(t) < cap))
        rc = ksv_err_set(err, 502, "service account %s: %s answered without an access_token",
                         a->client_email, a->token_uri);
    for (const char *p = rc == 0 ? json_object_get_string(t) : ""; *p && rc == 0; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            rc = ksv_err_set(err, 502, "service account %s: the access_token from %s holds a "
                                       "space or control character", a->client_email,
                             a->token_uri);
    if (rc == 0)
        snprintf(token, cap, "%s", json_object_get_string(t));
    json_object_put(root);
    if (jwt.data)
        explicit_bzero(jwt.data, jwt.len);
    if (reply.data)
        explicit_bzero(reply.data, reply.len);
    ksv_sb_free(&jwt);
    ksv_sb_free(&body);
    ksv_sb_free(&reply);
    return rc;
}
