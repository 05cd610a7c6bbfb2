/* v2_extensions.c: the V2 protocol's extensions beyond inference, as Triton serves them and
 * tritonclient / the KServe SDK call them: the model repository (index, load, unload; the
 * last two need the admin token), per-model statistics, and KServe V1's model list. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "engine/http.h"

/* How long a load request waits for the model to become ready before answering 503 (the
 * load goes on; /v2/models/{m}/ready tells when it is done). */
#define LOAD_WAIT_S 60.0

/* An optional JSON object body: NULL without error when the body is empty. */
static int optional_object(const ksv_http_request *req, json_object **out, ksv_err *err)
{
    *out = NULL;
    size_t i = 0;
    while (i < req->body_len && strchr(" \t\r\n", req->body[i]))
        i++;
    if (i == req->body_len)
        return 0;
    json_object *o = ksv_http_json_body(req, err);
    if (!o)
        return -1;
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return ksv_err_set(err, 400, "expected a JSON object");
    }
    *out = o;
    return 0;
}

static void repository_index(const ksv_http_request *req, ksv_http_response *resp)
{
    ksv_err err;
    json_object *body, *ready;
    if (optional_object(req, &body, &err) != 0)
        return ksv_http_error(resp, err.status, err.msg);
    bool ready_only = false;
    if (body && json_object_object_get_ex(body, "ready", &ready)) {
        if (!json_object_is_type(ready, json_type_boolean)) {
            json_object_put(body);
            return ksv_http_error(resp, 400, "ready: expected true or false");
        }
        ready_only = json_object_get_boolean(ready);
    }
    json_object_put(body);
    resp->status = 200;
    ksv_repository_write_index(req->engine->repository, req->engine->registry, ready_only,
                               &resp->body);
}

typedef struct failure_probe {
    char reason[512];
} failure_probe;

static void find_failure(void *ctx, const char *model, const ksv_engine_revision *rev, bool serving)
{
    failure_probe *p = ctx;
    (void)model;
    (void)serving;
    if (rev->state == KSV_REV_FAILED && rev->desired > 0 && !p->reason[0])
        snprintf(p->reason, sizeof p->reason, "revision %.96s: %.400s", rev->spec.name,
                 rev->error[0] ? rev->error : "failed to load");
}

/* Waits until the model serves (200), a revision it needs failed (400, as Triton answers
 * a failed load), or LOAD_WAIT_S passed (503). */
static void wait_loaded(const ksv_http_request *req, const char *model, ksv_http_response *resp)
{
    ksv_registry *reg = req->engine->registry;
    double deadline = ksv_mono_s() + LOAD_WAIT_S;
    for (;;) {
        if (ksv_registry_ready(reg, model, NULL) == 1) {
            resp->status = 200;
            return;
        }
        failure_probe probe = {{0}};
        if (ksv_registry_visit(reg, model, NULL, find_failure, &probe, NULL) < 0) {
            ksv_http_error(resp, 409, "the model was unloaded while it loaded");
            return;
        }
        if (probe.reason[0]) {
            char msg[700];
            snprintf(msg, sizeof msg, "failed to load '%.96s': %s", model, probe.reason);
            ksv_http_error(resp, 400, msg);
            return;
        }
        if (ksv_mono_s() > deadline) {
            char msg[320];
            snprintf(msg, sizeof msg,
                     "model %.96s is still loading after %.0f s; GET /v2/models/%.96s/ready "
                     "tells when it is done",
                     model, LOAD_WAIT_S, model);
            ksv_http_error(resp, 503, msg);
            return;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void ksv_handle_v2_repository(const ksv_http_request *req, const char *const *seg, int n,
                              ksv_http_response *resp)
{
    if (strcmp(req->method, "POST") != 0)
        return ksv_http_error(resp, 405, "method not allowed here; use POST");
    if (n == 1 && strcmp(seg[0], "index") == 0)
        return repository_index(req, resp);
    if (n != 3 || strcmp(seg[0], "models") != 0 ||
        (strcmp(seg[2], "load") != 0 && strcmp(seg[2], "unload") != 0))
        return ksv_http_error(resp, 404, "unknown path; the repository extension serves "
                                         "index, models/MODEL/load and models/MODEL/unload");
    if (!ksv_http_authorized(req))
        return ksv_http_error(resp, 401,
                              "loading and unloading models needs the admin bearer token");
    const char *model = seg[1];
    ksv_err err;
    json_object *body;
    if (optional_object(req, &body, &err) != 0)
        return ksv_http_error(resp, err.status, err.msg);
    bool load = strcmp(seg[2], "load") == 0;
    json_object *params;
    if (body && json_object_object_get_ex(body, "parameters", &params) &&
        json_object_is_type(params, json_type_object)) {
        /* Triton's config and file overrides would change the model behind the client's
         * back if ignored; unload_dependents has nothing to act on (no ensembles). */
        json_object_object_foreach(params, key, val) {
            (void)val;
            if (strcmp(key, "unload_dependents") != 0) {
                char msg[200];
                snprintf(msg, sizeof msg, "parameters.%.64s: not supported; ksv-engine loads "
                                          "a model as its folder or spec holds it", key);
                json_object_put(body);
                return ksv_http_error(resp, 400, msg);
            }
        }
    }
    json_object_put(body);
    int rc = load ? ksv_repository_load(req->engine->repository, req->engine->registry, model,
                                        &err)
                  : ksv_repository_unload(req->engine->repository, req->engine->registry,
                                          model, &err);
    if (rc != 0)
        return ksv_http_error(resp, err.status, err.msg);
    if (load)
        return wait_loaded(req, model, resp);
    resp->status = 200;
}

typedef struct stats_ctx {
    ksv_sb *sb;
    bool first;
} stats_ctx;

static void write_stats(void *ctx, const char *model, const ksv_engine_revision *rev, bool serving)
{
    stats_ctx *c = ctx;
    (void)serving;
    uint64_t batches = 0, rows = 0;
    if (rev->batcher)
        ksv_batcher_counts(rev->batcher, &batches, &rows);
    if (!c->first)
        ksv_sb_putc(c->sb, ',');
    c->first = false;
    ksv_infer_stats_write(c->sb, model, rev->spec.name, &rev->stats, batches);
}

void ksv_handle_v2_stats(const ksv_http_request *req, const char *model, const char *revision,
                         ksv_http_response *resp)
{
    if (strcmp(req->method, "GET") != 0)
        return ksv_http_error(resp, 405, "method not allowed here; use GET");
    stats_ctx c = {.sb = &resp->body, .first = true};
    ksv_err err;
    ksv_sb_puts(&resp->body, "{\"model_stats\":[");
    if (ksv_registry_visit(req->engine->registry, model, revision, write_stats, &c, &err) < 0)
        return ksv_http_error(resp, err.status, err.msg);
    ksv_sb_puts(&resp->body, "]}");
    resp->status = 200;
}

void ksv_handle_v1_model_list(const ksv_http_request *req, ksv_http_response *resp)
{
    if (strcmp(req->method, "GET") != 0)
        return ksv_http_error(resp, 405, "method not allowed here; use GET");
    resp->status = 200;
    ksv_registry_write_model_list(req->engine->registry, &resp->body);
}
