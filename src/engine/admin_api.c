/* admin_api.c: the engine's admin API under /ksv/v1 (bearer token): applied state, model
 * puts and deletes, traffic changes, error rings, fine histograms, node info.
 * docs/API.md documents every body. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>

#include <json-c/json.h>

#include "common/engine_identity.h"
#include "common/log.h"
#include "config.h"
#include "common/clock.h"
#include "engine/http.h"

/* Compares in time independent of where the strings differ. */
static bool token_matches(const char *given, const char *expected)
{
    size_t n = strlen(expected), m = strlen(given);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(expected[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

static bool authorized(const ksv_http_request *req)
{
    const char *h = req->authorization;
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    return token_matches(h + 7, req->engine->token);
}

bool ksv_http_authorized(const ksv_http_request *req)
{
    return authorized(req);
}

json_object *ksv_http_json_body(const ksv_http_request *req, ksv_err *err)
{
    if (req->body_len == 0) {
        ksv_err_set(err, 400, "a JSON body is required");
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(32);
    if (!tok) {
        ksv_err_set(err, 500, "out of memory");
        return NULL;
    }
    json_object *obj = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr != json_tokener_success || !obj) {
        json_object_put(obj);
        ksv_err_set(err, 400, "malformed JSON: %s",
                    jerr == json_tokener_continue ? "unexpected end of body"
                                                  : json_tokener_error_desc(jerr));
        return NULL;
    }
    for (size_t i = used; i < req->body_len; i++) {
        char c = req->body[i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            json_object_put(obj);
            ksv_err_set(err, 400, "malformed JSON: trailing data after the object");
            return NULL;
        }
    }
    return obj;
}

static void node_info(const ksv_http_request *req, ksv_http_response *resp)
{
    const ksv_engine_info *e = req->engine;
    ksv_runtime_build build;
    ksv_runtime_build_info(&build);
    double loads[3] = {0, 0, 0};
    struct sysinfo si;
    if (sysinfo(&si) == 0)
        for (int i = 0; i < 3; i++)
            loads[i] = (double)si.loads[i] / (double)(1 << SI_LOAD_SHIFT);
    ksv_sb *sb = &resp->body;
    ksv_sb_puts(sb, "{\"name\":\"ksv-engine\",\"version\":");
    ksv_sb_json_str(sb, e->version);
    ksv_sb_puts(sb, ",\"xgboost\":");
    ksv_sb_json_str(sb, build.xgboost);
    ksv_sb_puts(sb, ",\"cuda\":");
    if (build.cuda[0])
        ksv_sb_json_str(sb, build.cuda);
    else
        ksv_sb_puts(sb, "null");
    ksv_sb_puts(sb, ",\"runtimes\":");
    ksv_sb_json_str(sb, ksv_runtime_names());
    ksv_sb_puts(sb, ",\"listen\":");
    ksv_sb_json_str(sb, e->listen_address);
    ksv_sb_printf(sb, ",\"threads\":%u,\"max_body\":%zu,\"uptime_s\":%.1f,\"gpus\":",
                  e->threads, e->max_body,
                  ksv_wall_s() - e->started_unix);
    ksv_gpu_telemetry_write_json(e->gpu, sb);
    uint64_t mem_used, mem_budget, gpu_used, gpu_budget;
    ksv_registry_memory(e->registry, &mem_used, &mem_budget, &gpu_used, &gpu_budget);
    ksv_sb_printf(sb, ",\"memory\":{\"used_bytes\":%llu,\"budget_bytes\":%llu,"
                      "\"gpu_used_bytes\":%llu,\"gpu_budget_bytes\":%llu}",
                  (unsigned long long)mem_used, (unsigned long long)mem_budget,
                  (unsigned long long)gpu_used, (unsigned long long)gpu_budget);
    ksv_sb_printf(sb, ",\"load\":{\"inflight\":%lld,\"loadavg\":[%.2f,%.2f,%.2f],\"cpus\":%d}",
                  (long long)ksv_registry_total_inflight(e->registry), loads[0], loads[1],
                  loads[2], get_nprocs());
    ksv_sb_puts(sb, ",\"cache\":");
    ksv_registry_write_cache(e->registry, sb);
    if (e->events) {
        ksv_sb_puts(sb, ",\"events\":");
        ksv_events_write_position(e->events, sb);
    }
    ksv_sb_putc(sb, '}');
    resp->status = 200;
}

/* Parses a query argument as a non-negative integer; absent is def. */
static int query_u64(const ksv_http_request *req, const char *key, uint64_t def, uint64_t *out,
                     ksv_http_response *resp)
{
    const char *v = ksv_http_query(req, key);
    *out = def;
    if (!v)
        return 0;
    uint64_t n = 0;
    bool ok = *v != '\0';
    for (const char *p = v; ok && *p; p++) {
        ok = *p >= '0' && *p <= '9' && n <= (UINT64_MAX - 9) / 10;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (!ok) {
        char msg[96];
        snprintf(msg, sizeof msg, "query argument %s must be a non-negative integer", key);
        ksv_http_error(resp, 400, msg);
        return -1;
    }
    *out = n;
    return 0;
}

static void events_page(const ksv_http_request *req, ksv_http_response *resp)
{
    uint64_t since, limit;
    if (query_u64(req, "since", 0, &since, resp) != 0 ||
        query_u64(req, "limit", 0, &limit, resp) != 0)
        return;
    if (!req->engine->events)
        return ksv_http_error(resp, 503, "this engine keeps no event log");
    ksv_err err;
    ksv_err_clear(&err);
    if (ksv_events_write_since(req->engine->events, since,
                               limit > KSV_EVENTS_PAGE_MAX ? KSV_EVENTS_PAGE_MAX : (size_t)limit,
                               &resp->body, &err) != 0) {
        ksv_sb_reset(&resp->body);
        return ksv_http_error(resp, err.status, err.msg);
    }
    resp->status = 200;
}

/* POST /ksv/v1/test/clock {"advance_s":N}: moves the engine's test clock forward (only
 * when it was started with KSV_TEST_CLOCK; otherwise the path does not exist). */
static void advance_test_clock(const ksv_http_request *req, ksv_http_response *resp)
{
    if (!req->engine->clock)
        return ksv_http_error(resp, 404, "unknown admin path");
    if (strcmp(req->method, "POST") != 0)
        return ksv_http_error(resp, 405, "method not allowed here; use POST");
    ksv_err err;
    ksv_err_clear(&err);
    json_object *body = ksv_http_json_body(req, &err);
    if (!body)
        return ksv_http_error(resp, err.status, err.msg);
    json_object *v = json_object_object_get(body, "advance_s");
    double s = json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)
                   ? json_object_get_double(v)
                   : -1;
    json_object_put(body);
    if (!(s >= 0 && s <= 10 * 365 * 86400.0))
        return ksv_http_error(resp, 400, "advance_s: expected seconds, 0 to ten years");
    ksv_clock_advance(req->engine->clock, s);
    ksv_sb_printf(&resp->body, "{\"offset_s\":%.3f}",
                  (double)atomic_load(&req->engine->clock->offset_ns) * 1e-9);
    resp->status = 200;
}

/* The answer to a model or traffic change: the error (400 unless it says otherwise), or 202
 * with the model's state: loading runs in the background, the body says where it stands. */
static void answer_change(const ksv_http_request *req, const char *name, int rc, ksv_err *err,
                          ksv_http_response *resp)
{
    if (rc != 0)
        return ksv_http_error(resp, err->status ? err->status : 400, err->msg);
    ksv_registry_write_model(req->engine->registry, name, &resp->body, err);
    resp->status = 202;
}

static void put_model(const ksv_http_request *req, const char *name, ksv_http_response *resp)
{
    ksv_err err;
    ksv_err_clear(&err);
    json_object *body = ksv_http_json_body(req, &err);
    ksv_model_spec *spec = body ? malloc(sizeof *spec) : NULL;
    int rc = -1;
    if (body && !spec)
        ksv_err_set(&err, 500, "out of memory");
    if (spec && ksv_model_spec_from_json(name, body, spec, &err) == 0) {
        if (req->engine->gate && ksv_gate_hold_split(req->engine->gate, spec))
            ksv_log(KSV_LOG_DEBUG, req->request_id, "model %s: a release gate holds its split",
                    name);
        rc = ksv_registry_put(req->engine->registry, spec, &err);
    }
    free(spec);
    json_object_put(body);
    answer_change(req, name, rc, &err, resp);
}

static void put_traffic(const ksv_http_request *req, const char *name, ksv_http_response *resp)
{
    ksv_err err;
    ksv_err_clear(&err);
    json_object *body = ksv_http_json_body(req, &err);
    int rc = body ? ksv_registry_set_traffic(req->engine->registry, name, body, &err) : -1;
    json_object_put(body);
    answer_change(req, name, rc, &err, resp);
}

/* PUT .../rollout (the policy), GET .../rollout, POST .../rollout/ACTION. */
static void rollout_routes(const ksv_http_request *req, const char *name, const char *action,
                           ksv_http_response *resp)
{
    ksv_gate *gate = req->engine->gate;
    if (!gate)
        return ksv_http_error(resp, 503, "this engine runs no release gates");
    ksv_err err;
    ksv_err_clear(&err);
    int rc;
    if (!action && strcmp(req->method, "PUT") == 0) {
        json_object *body = ksv_http_json_body(req, &err);
        rc = body ? ksv_gate_put(gate, name, body, &err) : -1;
        json_object_put(body);
    } else if (!action && strcmp(req->method, "GET") == 0) {
        rc = 0;
    } else if (action && strcmp(req->method, "POST") == 0) {
        rc = ksv_gate_action(gate, name, action, &err);
    } else {
        return ksv_http_error(resp, 405, action ? "method not allowed here; use POST"
                                                : "method not allowed here; use GET or PUT");
    }
    if (rc == 0)
        rc = ksv_gate_write(gate, name, &resp->body, &err);
    if (rc != 0) {
        ksv_sb_reset(&resp->body);
        return ksv_http_error(resp, err.status ? err.status : 400, err.msg);
    }
    resp->status = 200;
}

static void model_routes(const ksv_http_request *req, const char *name, const char *sub,
                         ksv_http_response *resp)
{
    ksv_registry *reg = req->engine->registry;
    ksv_err err;
    ksv_err_clear(&err);
    bool get = strcmp(req->method, "GET") == 0, put = strcmp(req->method, "PUT") == 0,
         del = strcmp(req->method, "DELETE") == 0;
    int rc = 0;
    if (!sub) {
        if (get) {
            rc = ksv_registry_write_model(reg, name, &resp->body, &err);
        } else if (put) {
            return put_model(req, name, resp);
        } else if (del) {
            rc = ksv_registry_delete(reg, name, &err);
            if (rc == 0)
                ksv_sb_puts(&resp->body, "{\"deleted\":true}");
        } else {
            return ksv_http_error(resp, 405, "method not allowed here; use GET, PUT or DELETE");
        }
    } else if (strcmp(sub, "traffic") == 0) {
        if (!put)
            return ksv_http_error(resp, 405, "method not allowed here; use PUT");
        return put_traffic(req, name, resp);
    } else if (strcmp(sub, "rollout") == 0 || strncmp(sub, "rollout/", 8) == 0) {
        return rollout_routes(req, name, sub[7] ? sub + 8 : NULL, resp);
    } else if (strncmp(sub, "revisions/", 10) == 0) {
        /* revisions/{rev}/logs: an external runtime's output. */
        char revision[KSV_NAME_MAX + 1];
        const char *r = sub + 10, *slash = strchr(r, '/');
        size_t n = slash ? (size_t)(slash - r) : 0;
        if (n == 0 || n >= sizeof revision || strcmp(slash, "/logs") != 0)
            return ksv_http_error(resp, 404, "unknown admin path; use revisions/REV/logs");
        if (!get)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        memcpy(revision, r, n);
        revision[n] = '\0';
        rc = ksv_registry_write_runtime_logs(reg, name, revision, &resp->body, &err);
    } else if (strcmp(sub, "errors") == 0) {
        if (!get)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        rc = ksv_registry_write_errors(reg, name, &resp->body, &err);
    } else {
        return ksv_http_error(resp, 404, "unknown admin path");
    }
    if (rc != 0) {
        ksv_sb_reset(&resp->body);
        return ksv_http_error(resp, err.status, err.msg);
    }
    resp->status = 200;
}

/* GET /ksv/v1/identity?challenge=HEX, the one admin route without the token: the engine
 * proves it holds the token (common/engine_identity.h) so that ksv sends the token only
 * to it. */
static void identity(const ksv_http_request *req, ksv_http_response *resp)
{
    if (strcmp(req->method, "GET") != 0)
        return ksv_http_error(resp, 405, "method not allowed here; use GET");
    const char *challenge = ksv_http_query(req, "challenge");
    if (!challenge || !ksv_identity_hex_ok(challenge))
        return ksv_http_error(resp, 400, "identity: challenge must be 32 to 128 lowercase hex "
                                         "digits");
    char nonce[2 * KSV_IDENTITY_RANDOM_BYTES + 1], proof[65];
    if (ksv_identity_random_hex(nonce, sizeof nonce, KSV_IDENTITY_RANDOM_BYTES) != 0)
        return ksv_http_error(resp, 503, "identity: no random bytes from the kernel");
    const char *listen = req->engine->listen_address ? req->engine->listen_address : "";
    ksv_identity_proof(req->engine->token, challenge, nonce, listen, proof);
    ksv_sb_puts(&resp->body, "{\"listen\":");
    ksv_sb_json_str(&resp->body, listen);
    ksv_sb_printf(&resp->body, ",\"nonce\":\"%s\",\"proof\":\"%s\"}", nonce, proof);
    resp->status = 200;
}

/* True when the If-None-Match list names etag (or is "*"). Entries are quoted tags
 * separated by commas; a weak one (W/"...") matches too, as RFC 9110 asks for GET. */
static bool etag_listed(const char *list, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        const char *end = p;
        if (*p == '"') {
            end = strchr(p + 1, '"');
            end = end ? end + 1 : p + strlen(p);
        } else {
            while (*end && *end != ',')
                end++;
        }
        if ((size_t)(end - p) == n && strncmp(p, etag, n) == 0)
            return true;
        p = end;
    }
    return false;
}

/* A rendered GET answer with its ETag (a hash of the body, so it changes exactly when the
 * content does); 304 and no body when the client already holds this one. A console probing
 * 100 nodes a second then transfers and parses only what changed. */
static void body_etag(const ksv_sb *body, char out[24])
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a, 64 bits */
    for (size_t i = 0; i < body->len; i++)
        h = (h ^ (unsigned char)body->data[i]) * 1099511628211ull;
    snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

static void answer_tagged(const ksv_http_request *req, ksv_http_response *resp)
{
    body_etag(&resp->body, resp->etag);
    resp->status = 200;
    if (!resp->body.oom && req->if_none_match && etag_listed(req->if_none_match, resp->etag)) {
        ksv_sb_reset(&resp->body);
        resp->status = 304;
    }
}

/* GET /ksv/v1/pulls, POST /ksv/v1/pulls: fetches into the cache ahead of a rollout. */
static void pulls_route(const ksv_http_request *req, ksv_http_response *resp)
{
    ksv_pulls *pulls = ksv_registry_pulls(req->engine->registry);
    if (strcmp(req->method, "GET") == 0) {
        ksv_sb_puts(&resp->body, "{\"pulls\":");
        ksv_pulls_write(pulls, &resp->body);
        ksv_sb_putc(&resp->body, '}');
        resp->status = 200;
        return;
    }
    if (strcmp(req->method, "POST") != 0)
        return ksv_http_error(resp, 405, "method not allowed here; use GET or POST");
    ksv_err err;
    json_object *body = ksv_http_json_body(req, &err);
    bool created = false;
    if (!body || ksv_pulls_start(pulls, body, &created, &resp->body, &err) != 0) {
        json_object_put(body);
        ksv_sb_reset(&resp->body);
        return ksv_http_error(resp, err.status, err.msg);
    }
    json_object_put(body);
    resp->status = created ? 202 : 200;
}

void ksv_handle_admin(const ksv_http_request *req, ksv_http_response *resp)
{
    if (strcmp(req->path, KSV_IDENTITY_PATH) == 0)
        return identity(req, resp);
    if (!authorized(req)) {
        ksv_http_error(resp, 401, "admin API: missing or wrong bearer token");
        return;
    }
    const char *rest = req->path + strlen("/ksv/v1");
    bool get = strcmp(req->method, "GET") == 0;
    if (strcmp(rest, "/state") == 0 || strcmp(rest, "/models") == 0) {
        if (!get)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        ksv_registry_write_state(req->engine->registry, &resp->body);
        return answer_tagged(req, resp);
    }
    if (strcmp(rest, "/node") == 0) {
        if (!get)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        return node_info(req, resp);
    }
    if (strcmp(rest, "/events") == 0) {
        if (!get)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        return events_page(req, resp);
    }
    if (strcmp(rest, "/usage") == 0) {
        if (!get)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        ksv_registry_write_usage(req->engine->registry, &resp->body);
        resp->status = 200;
        return;
    }
    if (strcmp(rest, "/pulls") == 0)
        return pulls_route(req, resp);
    if (strcmp(rest, "/test/clock") == 0)
        return advance_test_clock(req, resp);
    if (strcmp(rest, "/histograms") == 0) {
        if (!get)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        ksv_registry_write_histograms(req->engine->registry, &resp->body);
        /* The state's ETag too, as GET /ksv/v1/state would tag it now: a console that
         * holds that state asks for the histograms alone each second, and for the state
         * only when this changed (one round trip per node instead of two). */
        ksv_sb state;
        ksv_sb_init(&state);
        ksv_registry_write_state(req->engine->registry, &state);
        if (!state.oom)
            body_etag(&state, resp->state_etag);
        ksv_sb_free(&state);
        return answer_tagged(req, resp);
    }
    if (strncmp(rest, "/models/", 8) == 0) {
        char name[KSV_NAME_MAX + 1];
        const char *p = rest + 8, *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= sizeof name)
            return ksv_http_error(resp, 404, "unknown model");
        memcpy(name, p, n);
        name[n] = '\0';
        const char *sub = slash && slash[1] ? slash + 1 : NULL;
        return model_routes(req, name, sub, resp);
    }
    ksv_http_error(resp, 404, "unknown admin path");
}
