/* uri_redact.h: the display form of a storage URI, the only form that may reach a log line,
 * an error message, a status document or a terminal.
 *
 * A model's storage URI can carry a credential: a presigned S3 URL (X-Amz-Credential,
 * X-Amz-Signature, X-Amz-Security-Token), a GCS signed URL (X-Goog-Signature), an Azure SAS
 * (sig=, se=, sv=), a ?token= or ?access_token=, or a password in the userinfo
 * (https://user:password@host/). The display form keeps what an operator needs to tell
 * which object it is and what kind of URL it was, and nothing that authorizes a request:
 *   - a userinfo "user:password@" becomes "user:REDACTED@"; a lone "token@" (a token used
 *     as the user name, as git hosts do) becomes "REDACTED@", except in ssh:// (an
 *     account name: ksv's ssh node addresses);
 *   - every query parameter keeps its key and has its value replaced by REDACTED, all of
 *     them, X-Amz-Expires and friends included: which ones are harmless differs from store
 *     to store, and a rule "redact all" cannot be wrong by omission. An empty value stays
 *     empty; a parameter without '=' or with a key that is not a plain name (letters,
 *     digits, - _ . ~ [ ], at most 64 bytes: no '%', so no key can smuggle an encoded '=')
 *     becomes REDACTED whole;
 *   - a fragment becomes #REDACTED (an OAuth implicit grant puts its token there);
 *   - a port that is not all digits (what a cut "user:pass" looks like, or one whose
 *     unencoded '/' ended the authority early) becomes REDACTED, and so does all after it.
 * It never fails open: a URI with a space or a control byte is cut at the first of those,
 * '?' or '#', the rest replaced by "?REDACTED". Scheme, host and path pass unchanged: a
 * store that puts a secret in the path itself cannot be told apart from a folder name, nor
 * can a user name with an unencoded '/' (RFC 3986 wants it %2F; libcurl would read such a
 * URL's host as the part before the '/' too).
 * The output is bounded by the caller's buffer; a cut ends in "..." and, since only the
 * display form is ever written, can never expose what it cut. */
#ifndef KSV_COMMON_URI_REDACT_H
#define KSV_COMMON_URI_REDACT_H

#include <stddef.h>

#define KSV_URI_REDACTED "REDACTED"
/* A buffer for a display form: longer ones are cut ("..."); a message holds less anyway. */
#define KSV_URI_SHOWN_MAX 1024

/* Writes the display form of uri into dst (cap bytes, NUL-terminated when cap > 0);
 * returns its length. uri NULL reads as "". */
size_t ksv_uri_redact(char *dst, size_t cap, const char *uri);

/* Rewrites in place every "scheme://..." URI inside the free text s (a buffer of cap bytes)
 * to its display form; a URI ends at white space, a control byte, a quote, '<' or '>', and
 * trailing ".,;:)" are taken as the sentence's. The defence in depth under the call sites:
 * ksv_err_set and ksv_log pass every message through it, so a URI formatted without
 * ksv_uri_redact still never shows its secrets. A text too long to rewrite in cap bytes is
 * cut ("..."), never left unredacted. */
void ksv_uri_redact_text(char *s, size_t cap);

/* ksv_uri_redact_text, leaving alone a URI whose text appears verbatim in `keep` (NULL:
 * none): the literal part of a message, its printf format, is the programmer's and holds
 * no secret, while a placeholder like "http://HOST:PORT" would look like a password to the
 * redactor. Secrets come through the format's arguments, and are redacted. */
void ksv_uri_redact_text_keep(char *s, size_t cap, const char *keep);

#endif
