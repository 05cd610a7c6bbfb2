/* engine_client.c: HTTP calls to one ksv-engine through one reused src/http client, and
 * the mapping of transport failures, HTTP errors and bad replies onto ksv_err. */
#include "common/clock.h"
#include "remote/engine_client.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/engine_identity.h"
#include "common/sanitize.h"
#include "http/http_client.h"

struct ksv_engine_client {
    ksv_http_client *http;
    char *base_url;                 /* no trailing slash */
    long timeout_ms;
    size_t max_reply;
    long connections;
    /* The token and its header line (wiped when freed): sent only on a connection whose
     * peer proved it holds the token (GET /ksv/v1/identity, common/engine_identity.h). */
    char *token, *auth;
    char expect_listen[KSV_IDENTITY_LISTEN_MAX + 1]; /* "" when any address will do */
    long proven_port;               /* local port of the proven connection; 0: none yet */
};

/* Accepts http(s)://HOST[:PORT][/] and nothing else, so a path appended later is the
 * engine's path and not a surprise. */
static int check_base_url(const char *url, ksv_err *err)
{
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return ksv_err_set(err, 400, "node URL \"%s\": expected http://HOST:PORT",
                           url ? url : "(null)");
    ksv_http_url u;
    ksv_err ignored;
    bool bad = ksv_http_url_parse(url, &u, &ignored) != 0 ||
               (u.path[0] && strcmp(u.path, "/") != 0) || u.has_query || u.has_user;
    if (bad)
        return ksv_err_set(err, 400, "node URL \"%s\": expected http://HOST:PORT", url);
    return 0;
}

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

int ksv_engine_client_new(const char *base_url, const char *token, long timeout_ms,
                          ksv_engine_client **out, ksv_err *err)
{
    *out = NULL;
    if (check_base_url(base_url, err) != 0)
        return -1;
    ksv_engine_client *c = calloc(1, sizeof *c);
    if (!c)
        return ksv_err_set(err, 500, "out of memory");
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : KSV_ENGINE_CLIENT_DEFAULT_TIMEOUT_MS;
    c->max_reply = KSV_ENGINE_CLIENT_MAX_REPLY;
    c->base_url = strdup(base_url);
    bool oom = !c->base_url;
    if (token && *token) {
        size_t n = strlen(token) + sizeof "Authorization: Bearer ";
        c->token = strdup(token);
        if ((c->auth = malloc(n)))
            snprintf(c->auth, n, "Authorization: Bearer %s", token);
        oom = oom || !c->token || !c->auth;
    }
    const char *headers[] = {"Accept: application/json, text/plain", NULL};
    /* Engines are reached directly (a local port or an SSH tunnel), never via a proxy, and
     * a redirect is reported, not followed. The token goes per request (perform). */
    ksv_http_options o = {.timeout_ms = c->timeout_ms, .max_reply = c->max_reply,
                          .proxy = KSV_HTTP_PROXY_NONE, .headers = headers};
    int rc = oom ? ksv_err_set(err, 500, "out of memory")
                 : ksv_http_client_new(&o, &c->http, err);
    if (rc != 0) {
        ksv_engine_client_free(c);
        return -1;
    }
    size_t n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
    *out = c;
    return 0;
}

void ksv_engine_client_expect_listen(ksv_engine_client *c, const char *listen)
{
    snprintf(c->expect_listen, sizeof c->expect_listen, "%s", listen ? listen : "");
    c->proven_port = 0;
}

void ksv_engine_client_free(ksv_engine_client *c)
{
    if (!c)
        return;
    ksv_http_client_free(c->http);
    free(c->base_url);
    free_secret(c->token);
    free_secret(c->auth);
    free(c);
}

void ksv_engine_client_set_timeout(ksv_engine_client *c, long timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : KSV_ENGINE_CLIENT_DEFAULT_TIMEOUT_MS;
}

const char *ksv_engine_client_base_url(const ksv_engine_client *c)
{
    return c->base_url;
}

int ksv_engine_client_set_max_reply(ksv_engine_client *c, size_t bytes, ksv_err *err)
{
    if (c->http && ksv_http_client_set_max_reply(c->http, bytes, err) != 0)
        return -1;
    if (bytes == 0)
        return ksv_err_set(err, 400, "engine client: a reply cap of 0");
    c->max_reply = bytes;
    return 0;
}

long ksv_engine_client_connections_opened(const ksv_engine_client *c)
{
    return c->connections;
}

bool ksv_engine_client_no_answer(const ksv_err *err)
{
    return err->status == 503 || err->status == 504;
}

/* --- one request ---------------------------------------------------------------------- */

/* Percent-encodes one path segment (a model name), so no name can reach another path. */
static void append_segment(ksv_sb *sb, const char *s)
{
    ksv_http_escape(sb, s);
}

static int transport_error(ksv_engine_client *c, const ksv_http_result *res, long timeout_ms,
                           ksv_err *err)
{
    const char *why = res->message;
    switch (res->failure) {
    case KSV_HTTP_E_TIMEOUT:
        /* 504, not 503: the request went out and the engine may still act on it. */
        return ksv_err_set(err, 504, "node unreachable: %s: no answer within %ld ms (%s)",
                           c->base_url, timeout_ms, why);
    case KSV_HTTP_E_CONNECT:
    case KSV_HTTP_E_BROKEN:
        return ksv_err_set(err, 503, "node unreachable: %s: %s", c->base_url, why);
    case KSV_HTTP_E_NEW_CONNECTION:
        return ksv_err_set(err, 503, "node unreachable: %s: the connection closed between "
                                     "the identity check and the request, twice",
                           c->base_url);
    case KSV_HTTP_E_TOO_LARGE:
        return ksv_err_set(err, 502, "bad reply from engine: %s: reply over %zu bytes",
                           c->base_url, c->max_reply);
    case KSV_HTTP_E_NOMEM:
        return ksv_err_set(err, 500, "out of memory talking to %s", c->base_url);
    case KSV_HTTP_E_URL:
        return ksv_err_set(err, 400, "bad node URL %s: %s", c->base_url, why);
    default:
        return ksv_err_set(err, 502, "bad reply from engine: %s: %s", c->base_url, why);
    }
}

/* One HTTP exchange of url with the given extra header lines; see ksv_http_call for
 * reuse_port. */
static int exchange(ksv_engine_client *c, const char *method, const char *url,
                    const char *const *headers, const char *body, size_t body_len,
                    long timeout_ms, long reuse_port, ksv_http_result *res, ksv_sb *reply)
{
    ksv_http_call req = {.method = method, .url = url, .headers = headers, .body = body,
                         .body_len = body_len, .timeout_ms = timeout_ms,
                         .reuse_port = reuse_port};
    ksv_err ignored;
    int rc = ksv_http_perform(c->http, &req, reply, res, &ignored);
    c->connections += res->connections_opened;
    return rc;
}

static int not_proven(const ksv_engine_client *c, ksv_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int not_proven(const ksv_engine_client *c, ksv_err *err, const char *fmt, ...)
{
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return ksv_err_set(err, 502, "%s is not proven to be the ksv-engine that holds the admin "
                                 "token (%s); the token was not sent",
                       c->base_url, why);
}

/* GET /ksv/v1/identity with a fresh challenge, without the token: the peer must answer
 * with a proof only the token's holder can make (common/engine_identity.h). On success the
 * connection it came on is the one the token may travel on (c->proven_port). */
static int prove_identity(ksv_engine_client *c, long timeout_ms, ksv_err *err)
{
    c->proven_port = 0;
    char challenge[2 * KSV_IDENTITY_RANDOM_BYTES + 1];
    if (ksv_identity_random_hex(challenge, sizeof challenge, KSV_IDENTITY_RANDOM_BYTES) != 0)
        return ksv_err_set(err, 500, "no random bytes from the kernel for a challenge");
    ksv_sb url, reply;
    ksv_sb_init(&url);
    ksv_sb_printf(&url, "%s%s?challenge=%s", c->base_url, KSV_IDENTITY_PATH, challenge);
    if (url.oom) {
        ksv_sb_free(&url);
        return ksv_err_set(err, 500, "out of memory");
    }
    ksv_http_result res;
    int rc = exchange(c, "GET", url.data, NULL, NULL, 0, timeout_ms, 0, &res, &reply);
    ksv_sb_free(&url);
    /* A peer that does not answer the check has been sent nothing else: the request is
     * not sent, and said so, so that no caller takes it for a change that may yet land
     * (push.c's "unconfirmed"). */
    if (rc != 0 && res.failure == KSV_HTTP_E_TIMEOUT)
        return ksv_err_set(err, 503, "node unreachable: %s: no proof of identity within %ld ms, "
                                     "so the request was not sent", c->base_url, timeout_ms);
    if (rc != 0)
        return transport_error(c, &res, timeout_ms, err);
    json_object *root = NULL, *v;
    if (res.status == 200)
        root = json_tokener_parse(reply.data);
    ksv_sb_free(&reply);
    const char *listen = NULL, *nonce = NULL, *proof = NULL;
    if (root && json_object_is_type(root, json_type_object)) {
        if (json_object_object_get_ex(root, "listen", &v) && json_object_is_type(v, json_type_string))
            listen = json_object_get_string(v);
        if (json_object_object_get_ex(root, "nonce", &v) && json_object_is_type(v, json_type_string))
            nonce = json_object_get_string(v);
        if (json_object_object_get_ex(root, "proof", &v) && json_object_is_type(v, json_type_string))
            proof = json_object_get_string(v);
    }
    if (res.status != 200 || !listen || !nonce || !proof || !ksv_identity_hex_ok(nonce) ||
        strlen(listen) > KSV_IDENTITY_LISTEN_MAX) {
        json_object_put(root);
        return not_proven(c, err, "GET %s answered %ld without a proof: not a ksv-engine, or "
                                  "one older than this ksv", KSV_IDENTITY_PATH, res.status);
    }
    char expected[65];
    ksv_identity_proof(c->token, challenge, nonce, listen, expected);
    bool good = ksv_identity_proof_equal(expected, proof);
    char shown[KSV_IDENTITY_LISTEN_MAX + 1];
    ksv_sanitize_copy(shown, sizeof shown, listen);
    bool elsewhere = c->expect_listen[0] && strcmp(listen, c->expect_listen) != 0;
    json_object_put(root);
    if (!good)
        return not_proven(c, err, "its proof does not match the token: another process holds "
                                  "the port, or the token is not this engine's");
    if (elsewhere)
        return not_proven(c, err, "the engine that answered listens on %s, not on %s", shown,
                          c->expect_listen);
    if (res.local_port <= 0)
        return not_proven(c, err, "no connection to send the token on");
    c->proven_port = res.local_port;
    return 0;
}

/* Performs one request with a total budget of timeout_ms; see ksv_engine_client_request.
 * With a token, the request goes only on a connection whose peer proved it holds the
 * token: proven first, and proven again when that connection has closed since. */
static int perform_ex(ksv_engine_client *c, const char *method, const char *path,
                      const char *body, size_t body_len, long timeout_ms, const char *extra,
                      long *http_status, ksv_sb *reply, ksv_http_result *res_out,
                      ksv_err *err)
{
    if (!method || !path || path[0] != '/')
        return ksv_err_set(err, 400, "request path must start with '/'");
    ksv_sb url;
    ksv_sb_init(&url);
    ksv_sb_puts(&url, c->base_url);
    ksv_sb_puts(&url, path);
    if (url.oom) {
        ksv_sb_free(&url);
        return ksv_err_set(err, 500, "out of memory");
    }
    const char *headers[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    if (body)
        headers[n++] = "Content-Type: application/json";
    if (c->auth)
        headers[n++] = c->auth;
    if (extra)
        headers[n++] = extra;
    ksv_http_result res;
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->token && c->proven_port == 0 && prove_identity(c, timeout_ms, err) != 0) {
            ksv_sb_free(&url);
            return -1;
        }
        rc = exchange(c, method, url.data, n ? headers : NULL, body, body_len, timeout_ms,
                      c->token ? c->proven_port : 0, &res, reply);
        if (rc == 0 || res.failure != KSV_HTTP_E_NEW_CONNECTION)
            break;
        c->proven_port = 0; /* the proven connection closed: prove the new one */
    }
    ksv_sb_free(&url);
    if (rc != 0) {
        c->proven_port = 0;
        return transport_error(c, &res, timeout_ms, err);
    }
    *http_status = res.status;
    if (res_out)
        *res_out = res;
    return 0;
}

/* Performs one request with a total budget of timeout_ms; see ksv_engine_client_request.
 * With a token, the request goes only on a connection whose peer proved it holds the
 * token: proven first, and proven again when that connection has closed since. */
static int perform(ksv_engine_client *c, const char *method, const char *path,
                   const char *body, size_t body_len, long timeout_ms, long *http_status,
                   ksv_sb *reply, ksv_err *err)
{
    return perform_ex(c, method, path, body, body_len, timeout_ms, NULL, http_status, reply,
                      NULL, err);
}

int ksv_engine_client_request(ksv_engine_client *c, const char *method, const char *path,
                              const char *body, size_t body_len, long *http_status,
                              char **reply, size_t *reply_len, ksv_err *err)
{
    ksv_sb sb;
    long status = 0;
    if (reply)
        *reply = NULL;
    if (perform(c, method, path, body, body_len, c->timeout_ms, &status, &sb, err) != 0)
        return -1;
    if (http_status)
        *http_status = status;
    if (reply_len)
        *reply_len = sb.len;
    if (reply)
        *reply = ksv_sb_steal(&sb, NULL);
    else
        ksv_sb_free(&sb);
    return 0;
}

/* Parses a whole reply as one JSON value; trailing bytes other than whitespace are an error. */
static json_object *parse_reply(const char *text, size_t len, const char **why)
{
    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) {
        *why = "out of memory";
        return NULL;
    }
    json_object *obj = len > 0 && len < (size_t)INT32_MAX
                           ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = (size_t)json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!obj) {
        *why = len == 0 ? "empty reply"
               : jerr == json_tokener_continue ? "truncated JSON"
                                                : json_tokener_error_desc(jerr);
        return NULL;
    }
    for (size_t i = used; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n') {
            json_object_put(obj);
            *why = "bytes after the JSON value";
            return NULL;
        }
    }
    return obj;
}

/* Maps a non-2xx answer to an error carrying the engine's status and message. */
static int http_error(const ksv_engine_client *c, long status, const char *method,
                      const char *path, const ksv_sb *reply, ksv_err *err)
{
    const char *why = NULL;
    json_object *obj = parse_reply(reply->data, reply->len, &why), *msg;
    int code = status >= 400 && status <= 599 ? (int)status : 502;
    int rc;
    if (obj && json_object_is_type(obj, json_type_object) &&
        json_object_object_get_ex(obj, "error", &msg) &&
        json_object_is_type(msg, json_type_string))
        rc = ksv_err_set(err, code, "%s", json_object_get_string(msg));
    else if (status >= 300 && status < 400)
        rc = ksv_err_set(err, 502, "bad reply from engine: %s: %s %s answered HTTP %ld "
                         "(redirects are not followed)", c->base_url, method, path, status);
    else
        rc = ksv_err_set(err, code, "%s %s%s: HTTP %ld: %.200s", method, c->base_url, path,
                         status, reply->len ? reply->data : "(no body)");
    json_object_put(obj);
    return rc;
}

static int call_json_timed(ksv_engine_client *c, const char *method, const char *path,
                           const char *body, long timeout_ms, json_object **out, ksv_err *err)
{
    *out = NULL;
    ksv_sb reply;
    long status = 0;
    if (perform(c, method, path, body, body ? strlen(body) : 0, timeout_ms, &status, &reply,
                err) != 0)
        return -1;
    int rc = 0;
    if (status < 200 || status > 299) {
        rc = http_error(c, status, method, path, &reply, err);
    } else {
        const char *why = NULL;
        *out = parse_reply(reply.data, reply.len, &why);
        if (!*out)
            rc = ksv_err_set(err, 502, "bad reply from engine: %s: %s %s: %s", c->base_url,
                             method, path, why);
    }
    ksv_sb_free(&reply);
    return rc;
}

int ksv_engine_client_call_json(ksv_engine_client *c, const char *method, const char *path,
                                const char *body, json_object **out, ksv_err *err)
{
    return call_json_timed(c, method, path, body, c->timeout_ms, out, err);
}

/* Same as call_json, but insists the answer is a JSON object. */
static int call_object(ksv_engine_client *c, const char *method, const char *path,
                       const char *body, long timeout_ms, json_object **out, ksv_err *err)
{
    if (call_json_timed(c, method, path, body, timeout_ms, out, err) != 0)
        return -1;
    if (!json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        return ksv_err_set(err, 502, "bad reply from engine: %s: %s %s: expected a JSON "
                           "object", c->base_url, method, path);
    }
    return 0;
}

static int call_text(ksv_engine_client *c, const char *path, char **text, size_t *len,
                     ksv_err *err)
{
    *text = NULL;
    ksv_sb reply;
    long status = 0;
    if (perform(c, "GET", path, NULL, 0, c->timeout_ms, &status, &reply, err) != 0)
        return -1;
    if (status < 200 || status > 299) {
        http_error(c, status, "GET", path, &reply, err);
        ksv_sb_free(&reply);
        return -1;
    }
    if (len)
        *len = reply.len;
    *text = ksv_sb_steal(&reply, NULL);
    return 0;
}

/* Builds "/ksv/v1/models/{model}{suffix}"; NULL (and err set) on a bad name. */
static char *model_path(const char *model, const char *suffix, ksv_err *err)
{
    if (!model || !*model) {
        ksv_err_set(err, 400, "a model name is required");
        return NULL;
    }
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_sb_puts(&sb, "/ksv/v1/models/");
    append_segment(&sb, model);
    ksv_sb_puts(&sb, suffix);
    if (sb.oom) {
        ksv_sb_free(&sb);
        ksv_err_set(err, 500, "out of memory");
        return NULL;
    }
    return ksv_sb_steal(&sb, NULL);
}

static int model_call(ksv_engine_client *c, const char *method, const char *model,
                      const char *suffix, const char *body, long timeout_ms,
                      json_object **out, ksv_err *err)
{
    *out = NULL;
    char *path = model_path(model, suffix, err);
    if (!path)
        return -1;
    int rc = call_object(c, method, path, body, timeout_ms, out, err);
    free(path);
    return rc;
}

/* --- admin API -------------------------------------------------------------------------- */

/* The state answer must be an object with a "models" array; *out is freed otherwise. */
static int check_state(ksv_engine_client *c, json_object **out, ksv_err *err)
{
    json_object *models;
    if (!json_object_is_type(*out, json_type_object) ||
        !json_object_object_get_ex(*out, "models", &models) ||
        !json_object_is_type(models, json_type_array)) {
        json_object_put(*out);
        *out = NULL;
        return ksv_err_set(err, 502, "bad reply from engine: %s: state without a \"models\" "
                           "array", c->base_url);
    }
    return 0;
}

int ksv_engine_client_get_state(ksv_engine_client *c, json_object **out, ksv_err *err)
{
    if (call_object(c, "GET", "/ksv/v1/state", NULL, c->timeout_ms, out, err) != 0)
        return -1;
    return check_state(c, out, err);
}

int ksv_engine_client_get_state_if_changed(ksv_engine_client *c, char *etag, size_t etag_cap,
                                           json_object **out, ksv_err *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    char was[KSV_ENGINE_ETAG_MAX];
    snprintf(was, sizeof was, "%s", etag);
    if (ksv_engine_client_get_if_changed(c, "/ksv/v1/state", etag, etag_cap, &text, &len,
                                         err) != 0)
        return -1;
    if (!text)
        return 0;
    const char *why = NULL;
    *out = parse_reply(text, len, &why);
    free(text);
    if (!*out) {
        snprintf(etag, etag_cap, "%s", was);
        return ksv_err_set(err, 502, "bad reply from engine: %s: GET /ksv/v1/state: %s",
                           c->base_url, why);
    }
    return check_state(c, out, err);
}

int ksv_engine_client_get_model(ksv_engine_client *c, const char *model, json_object **out,
                                ksv_err *err)
{
    return model_call(c, "GET", model, "", NULL, c->timeout_ms, out, err);
}

int ksv_engine_client_get_errors(ksv_engine_client *c, const char *model, json_object **out,
                                 ksv_err *err)
{
    return model_call(c, "GET", model, "/errors", NULL, c->timeout_ms, out, err);
}

static int return_state(json_object *state, json_object **state_out)
{
    if (state_out)
        *state_out = state;
    else
        json_object_put(state);
    return 0;
}

int ksv_engine_client_put_model_json(ksv_engine_client *c, const char *model,
                                     const char *body, json_object **state_out, ksv_err *err)
{
    if (state_out)
        *state_out = NULL;
    if (!body)
        return ksv_err_set(err, 400, "a PUT body is required");
    json_object *state;
    if (model_call(c, "PUT", model, "", body, c->timeout_ms, &state, err) != 0)
        return -1;
    return return_state(state, state_out);
}

int ksv_engine_client_put_model(ksv_engine_client *c, const char *model,
                                const ksv_engine_model_put *m, json_object **state_out,
                                ksv_err *err)
{
    if (state_out)
        *state_out = NULL;
    char *body = NULL;
    if (ksv_engine_model_put_to_json(m, &body, err) != 0)
        return -1;
    int rc = ksv_engine_client_put_model_json(c, model, body, state_out, err);
    free(body);
    return rc;
}

int ksv_engine_client_put_traffic(ksv_engine_client *c, const char *model,
                                  const ksv_engine_traffic *split, size_t n,
                                  json_object **state_out, ksv_err *err)
{
    if (state_out)
        *state_out = NULL;
    json_object *body = json_object_new_object(), *t = json_object_new_object();
    if (!body || !t) {
        json_object_put(body);
        json_object_put(t);
        return ksv_err_set(err, 500, "out of memory");
    }
    json_object_object_add(body, "traffic", t);
    for (size_t i = 0; i < n; i++) {
        if (!split[i].revision || !*split[i].revision) {
            json_object_put(body);
            return ksv_err_set(err, 400, "traffic: entry %zu has no revision", i);
        }
        json_object_object_add(t, split[i].revision, json_object_new_int(split[i].percent));
    }
    const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
    json_object *state = NULL;
    int rc = text ? model_call(c, "PUT", model, "/traffic", text, c->timeout_ms, &state, err)
                  : ksv_err_set(err, 500, "out of memory");
    json_object_put(body);
    return rc != 0 ? -1 : return_state(state, state_out);
}

int ksv_engine_client_delete_model(ksv_engine_client *c, const char *model, ksv_err *err)
{
    json_object *answer;
    if (model_call(c, "DELETE", model, "", NULL, c->timeout_ms, &answer, err) != 0)
        return -1;
    json_object_put(answer);
    return 0;
}

int ksv_engine_client_get_histograms(ksv_engine_client *c, json_object **out, ksv_err *err)
{
    return call_object(c, "GET", "/ksv/v1/histograms", NULL, c->timeout_ms, out, err);
}

int ksv_engine_client_get_histograms_text(ksv_engine_client *c, char **text, size_t *len,
                                          ksv_err *err)
{
    return call_text(c, "/ksv/v1/histograms", text, len, err);
}

/* ksv_engine_client_get_if_changed; state_etag (may be NULL) receives the answer's
 * X-Ksv-State-ETag, "" when none, whatever the status. */
static int get_if_changed(ksv_engine_client *c, const char *path, char *etag, size_t etag_cap,
                          char **text, size_t *len, char *state_etag, size_t state_etag_cap,
                          ksv_err *err)
{
    if (state_etag)
        state_etag[0] = '\0';
    *text = NULL;
    if (len)
        *len = 0;
    char cond[KSV_ENGINE_ETAG_MAX + sizeof "If-None-Match: "];
    bool have = etag[0] && strlen(etag) < KSV_ENGINE_ETAG_MAX &&
                strcspn(etag, "\r\n") == strlen(etag); /* a header line, nothing more */
    if (have)
        snprintf(cond, sizeof cond, "If-None-Match: %s", etag);
    ksv_http_result res;
    ksv_sb reply;
    long status = 0;
    if (perform_ex(c, "GET", path, NULL, 0, c->timeout_ms, have ? cond : NULL, &status, &reply,
                   &res, err) != 0)
        return -1;
    if (state_etag)
        snprintf(state_etag, state_etag_cap, "%s", res.state_etag);
    if (status == 304 && have) {
        ksv_sb_free(&reply);
        return 0; /* unchanged: etag stays, *text stays NULL */
    }
    if (status < 200 || status > 299) {
        http_error(c, status, "GET", path, &reply, err);
        ksv_sb_free(&reply);
        return -1;
    }
    snprintf(etag, etag_cap, "%s", res.etag);
    if (len)
        *len = reply.len;
    *text = ksv_sb_steal(&reply, NULL);
    return 0;
}

int ksv_engine_client_get_if_changed(ksv_engine_client *c, const char *path, char *etag,
                                     size_t etag_cap, char **text, size_t *len, ksv_err *err)
{
    return get_if_changed(c, path, etag, etag_cap, text, len, NULL, 0, err);
}

int ksv_engine_client_get_histograms_if_changed(ksv_engine_client *c, char *etag,
                                                size_t etag_cap, char **text, size_t *len,
                                                char *state_etag, size_t state_etag_cap,
                                                ksv_err *err)
{
    return get_if_changed(c, "/ksv/v1/histograms", etag, etag_cap, text, len, state_etag,
                          state_etag_cap, err);
}

int ksv_engine_client_get_metrics_text(ksv_engine_client *c, char **text, size_t *len,
                                       ksv_err *err)
{
    return call_text(c, "/metrics", text, len, err);
}

int ksv_engine_client_health(ksv_engine_client *c, ksv_err *err)
{
    json_object *answer;
    if (call_json_timed(c, "GET", "/v2/health/live", NULL, c->timeout_ms, &answer, err) != 0)
        return -1;
    json_object_put(answer);
    return 0;
}

int ksv_engine_client_get_node(ksv_engine_client *c, ksv_engine_node_info *out, ksv_err *err)
{
    json_object *node;
    if (call_object(c, "GET", "/ksv/v1/node", NULL, c->timeout_ms, &node, err) != 0)
        return -1;
    int rc = ksv_engine_node_info_parse(node, out, err);
    json_object_put(node);
    return rc;
}

int ksv_engine_client_get_model_status(ksv_engine_client *c, const char *model,
                                       ksv_engine_model_status *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    json_object *state;
    if (ksv_engine_client_get_model(c, model, &state, err) != 0)
        return -1;
    int rc = ksv_engine_model_status_parse(state, out, err);
    json_object_put(state);
    return rc;
}

/* --- waiting for a change to take effect ------------------------------------------------ */

static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    long long ns = (long long)(ms * 1e6);
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    nanosleep(&ts, NULL);
}

/* Lists the revisions the split still waits for: "churn-00002 (loading)". */
static void describe_pending(const ksv_engine_model_status *s, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s->n_revisions && used < cap; i++) {
        const ksv_engine_revision_status *r = &s->revisions[i];
        if (r->desired_traffic > 0 && strcmp(r->state, "ready") != 0) {
            int n = snprintf(out + used, cap - used, "%s%s (%s)", used ? ", " : "", r->name,
                             r->state);
            used += n > 0 ? (size_t)n : 0;
        }
    }
}

int ksv_engine_client_wait_applied(ksv_engine_client *c, const char *model, long timeout_ms,
                                   json_object **state_out, ksv_err *err)
{
    if (state_out)
        *state_out = NULL;
    double deadline = ksv_mono_ms() + (double)(timeout_ms > 0 ? timeout_ms : 0);
    double pause = 20;
    char pending[256] = "";
    ksv_err last;
    ksv_err_clear(&last);
    for (;;) {
        /* The last poll may overrun the deadline a little rather than get no time. */
        double left = deadline - ksv_mono_ms();
        long budget = left < 50 ? 50 : (long)left;
        bool cut_short = budget < c->timeout_ms;
        if (!cut_short)
            budget = c->timeout_ms;
        json_object *state = NULL;
        ksv_err call_err;
        if (model_call(c, "GET", model, "", NULL, budget, &state, &call_err) != 0) {
            if (!ksv_engine_client_no_answer(&call_err)) {
                if (err)
                    *err = call_err;
                return -1;
            }
            /* A poll our own deadline cut short says nothing new about the node. */
            if (!(cut_short && pending[0]))
                last = call_err;
        } else {
            ksv_engine_model_status s;
            if (ksv_engine_model_status_parse(state, &s, err) != 0) {
                json_object_put(state);
                return -1;
            }
            int rc = 1;
            if (s.traffic_applied) {
                rc = 0;
            } else {
                for (size_t i = 0; i < s.n_revisions && rc == 1; i++) {
                    const ksv_engine_revision_status *r = &s.revisions[i];
                    if (r->desired_traffic > 0 && strcmp(r->state, "failed") == 0)
                        rc = ksv_err_set(err, 500, "model %s on %s: revision %s failed: %s",
                                         model, c->base_url, r->name,
                                         r->error[0] ? r->error : "(no message)");
                }
            }
            describe_pending(&s, pending, sizeof pending);
            ksv_engine_model_status_free(&s);
            ksv_err_clear(&last);
            /* *state_out always holds the latest state read. */
            if (state_out) {
                json_object_put(*state_out);
                *state_out = state;
            } else {
                json_object_put(state);
            }
            if (rc != 1)
                return rc;
        }
        left = deadline - ksv_mono_ms();
        if (left <= 0)
            break;
        sleep_ms(pause < left ? pause : left);
        pause = pause * 1.5 > 250 ? 250 : pause * 1.5;
    }
    if (last.msg[0])
        return ksv_err_set(err, 504, "model %s: traffic not applied within %ld ms; last "
                           "error: %s", model, timeout_ms, last.msg);
    return ksv_err_set(err, 504, "model %s on %s: traffic not applied within %ld ms%s%s",
                       model, c->base_url, timeout_ms, pending[0] ? "; waiting for " : "",
                       pending);
}
