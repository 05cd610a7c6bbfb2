/* gcp_auth.h: a Google service account's access token for gs:// (what Google's client
 * libraries do with GOOGLE_APPLICATION_CREDENTIALS): the key file's JSON read and checked, a
 * JWT signed RS256 with OpenSSL's EVP API over the account's private key, and exchanged at
 * the key file's token_uri (RFC 7523's jwt-bearer grant) for a bearer token.
 *
 * Only what Cloud Storage reads needs: the scope is devstorage.read_only. The key file is
 * the operator's (trusted as a file of theirs, but parsed as hostile input: bounded, every
 * field checked); the private key and the token are wiped from memory when freed and never
 * logged. */
#ifndef KSV_ENGINE_GCP_AUTH_H
#define KSV_ENGINE_GCP_AUTH_H

#include <stddef.h>
#include <time.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/storage.h"

#define KSV_GCP_KEY_FILE_MAX (64u << 10)
#define KSV_GCP_SCOPE "https://www.googleapis.com/auth/devstorage.read_only"
#define KSV_GCP_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"

typedef struct ksv_gcp_account {
    char client_email[320];
    char private_key_id[128];     /* "" when the file has none */
    char token_uri[512];          /* http(s)://; the file's, else the default */
    char *private_key;            /* PEM, owned, wiped by ksv_gcp_account_free */
} ksv_gcp_account;

/* Parses a service account key file's text (len bytes, not NUL-terminated necessarily).
 * 400 naming `shown` and the field for anything but a "service_account" key with a
 * client_email, a PEM private_key and an http(s) token_uri. */
int ksv_gcp_account_parse(const char *text, size_t len, const char *shown, ksv_gcp_account *out,
                          ksv_err *err);
/* Reads and parses the key file at path (at most KSV_GCP_KEY_FILE_MAX bytes). */
int ksv_gcp_account_load(const char *path, ksv_gcp_account *out, ksv_err *err);
void ksv_gcp_account_free(ksv_gcp_account *a);

/* The signed assertion: base64url(header).base64url(claims).base64url(RS256 signature),
 * claims {"iss":email,"scope":scope,"aud":token_uri,"iat":now,"exp":now+3600}. 400 when
 * the private key is not an RSA key OpenSSL reads. */
int ksv_gcp_jwt(const ksv_gcp_account *a, const char *scope, time_t now, ksv_sb *out,
                ksv_err *err);

/* Exchanges a fresh JWT at the account's token_uri for an access token (bounded by ctl:
 * cancel, deadline, stall). Failures name the token URI, the HTTP status and the OAuth
 * error ("invalid_grant: ..."). */
int ksv_gcp_access_token(const ksv_gcp_account *a, const ksv_fetch_ctl *ctl, char *token,
                         size_t cap, ksv_err *err);

#endif
