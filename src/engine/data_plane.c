/* data_plane.c: the KServe-compatible endpoints: V2 (Open Inference Protocol) health,
 * metadata and infer, V1 predict, and /metrics. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "engine/http.h"
#include "engine/v2_binary.h"
#include "engine/openai_api.h"
#include "engine/proxy.h"

#define MAX_SEGMENTS 8

typedef struct path_parts {
    char buf[512];
    const char *seg[MAX_SEGMENTS];
    int n;
} path_parts;

/* Splits "/v2/models/m/infer" into {"v2","models","m","infer"}; false when too long or
 * too deep (callers answer 404). Empty segments ("//") are kept so they never match. */
static bool split_path(const char *path, path_parts *pp)
{
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof pp->buf || path[0] != '/')
        return false;
    memcpy(pp->buf, path + 1, len);
    pp->n = 0;
    char *p = pp->buf;
    for (;;) {
        if (pp->n == MAX_SEGMENTS)
            return false;
        pp->seg[pp->n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    if (pp->n > 0 && pp->seg[pp->n - 1][0] == '\0')
        pp->n--; /* a trailing slash is tolerated */
    return true;
}

static bool seg_is(const path_parts *pp, int i, const char *s)
{
    return i < pp->n && strcmp(pp->seg[i], s) == 0;
}

static bool method_is(const ksv_http_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static void method_not_allowed(ksv_http_response *resp, const char *allowed)
{
    char msg[96];
    snprintf(msg, sizeof msg, "method not allowed here; use %s", allowed);
    ksv_http_error(resp, 405, msg);
}

static void reply_json(ksv_http_response *resp, int status, const char *json)
{
    resp->status = status;
    ksv_sb_puts(&resp->body, json);
}

/* The request's rows and columns from its tensor shape, given the model's feature count. */
static int tensor_rows(const ksv_tensor_req *t, size_t features, size_t *rows, ksv_err *err)
{
    if (t->ndim == 2) {
        if ((size_t)t->shape[1] != features)
            return ksv_err_set(err, 400, "expected %zu features per row, got %lld", features,
                               (long long)t->shape[1]);
        *rows = (size_t)t->shape[0];
    } else if (t->ndim == 1) {
        /* [N] is N rows of a one-feature model, else one row of N features. */
        if (features == 1) {
            *rows = (size_t)t->shape[0];
        } else if ((size_t)t->shape[0] == features) {
            *rows = 1;
        } else {
            return ksv_err_set(err, 400, "expected %zu features, got %lld", features,
                               (long long)t->shape[0]);
        }
    } else {
        return ksv_err_set(err, 400, "expected a shape of [rows, %zu], got %d dimensions",
                           features, t->ndim);
    }
    if (*rows == 0)
        return ksv_err_set(err, 400, "the input has no rows");
    return 0;
}

static int ensure_out(ksv_worker *w, size_t n, ksv_err *err)
{
    if (n <= w->out_cap)
        return 0;
    float *p = realloc(w->out, n * sizeof *p);
    if (!p)
        return ksv_err_set(err, 503, "out of memory for %zu outputs", n);
    w->out = p;
    w->out_cap = n;
    return 0;
}

/* Decodes, predicts and encodes one request on an already chosen revision; fills *t with
 * the phase boundaries and *rows with the rows answered. */
static int run_inference(const ksv_http_request *req, ksv_engine_revision *rev, const char *model,
                         bool v1, ksv_http_response *resp, ksv_infer_timing *tm, size_t *rows_out,
                         ksv_err *err)
{
    tm->decode_start = ksv_mono_s();
    ksv_worker *w = req->worker;
    ksv_tensor_req *t = &w->tensor;
    /* Every value takes at least two bytes of JSON ("1,"), so the body bounds the count. */
    size_t max_values = req->engine->max_body / 2 + 1;
    int rc;
    if (v1) {
        rc = ksv_v1_decode_predict(req->body, req->body_len, max_values, t, err);
    } else if (req->inference_header_length) {
        /* Binary tensor data: at least one byte per value (BOOL, INT8). */
        size_t header_len;
        rc = ksv_v2_parse_header_length(req->inference_header_length, req->body_len,
                                        &header_len, err);
        if (rc == 0)
            rc = ksv_v2_decode_binary_infer(req->body, req->body_len, header_len,
                                            req->engine->max_body, t, err);
    } else {
        rc = ksv_v2_decode_infer(req->body, req->body_len, max_values, t, err);
    }
    if (rc)
        return -1;
    if (!v1) {
        for (int i = 0; i < t->n_outputs; i++)
            if (strcmp(t->outputs[i], "output-0") != 0)
                return ksv_err_set(err, 400, "unknown output \"%s\" (this model has output-0)",
                                   t->outputs[i]);
    }
    size_t rows, features = rev->info.num_features, width = rev->info.num_outputs;
    if (tensor_rows(t, features, &rows, err))
        return -1;
    if (rev->spec.timeout_ms > 0 && (ksv_mono_s() - req->start) * 1000.0 > rev->spec.timeout_ms)
        return ksv_err_set(err, 503, "timed out after %d ms before prediction",
                           rev->spec.timeout_ms);
    if (ensure_out(w, rows * width, err))
        return -1;
    tm->infer_start = ksv_mono_s();
    int prc = rev->batcher ? ksv_batcher_predict(rev->batcher, rev->ops, rev->handle, w->index,
                                                 t->data, rows, w->out, err)
                           : rev->ops->predict(rev->handle, w->index, t->data, rows, features,
                                               w->out, err);
    if (prc)
        return -1;
    tm->infer_end = ksv_mono_s();
    if (v1) {
        ksv_v1_encode_predict(&resp->body, w->out, rows, width);
    } else if (ksv_v2_wants_binary_output(t)) {
        const char *id = t->has_id ? t->id : req->request_id;
        ksv_v2_encode_infer_binary(&resp->body, model, rev->spec.name, id, w->out, rows, width,
                                   &resp->inference_header_len);
        resp->content_type = "application/octet-stream";
    } else {
        const char *id = t->has_id ? t->id : req->request_id;
        ksv_v2_encode_infer(&resp->body, model, rev->spec.name, id, w->out, rows, width);
    }
    if (resp->body.oom)
        return ksv_err_set(err, 503, "out of memory encoding the response");
    tm->encode_end = ksv_mono_s();
    *rows_out = rows;
    resp->status = 200;
    return 0;
}

bool ksv_data_plane_route(const ksv_http_request *req, const char *model,
                          const char *revision, ksv_route *route, ksv_http_response *resp)
{
    ksv_registry *reg = req->engine->registry;
    ksv_err err;
    ksv_err_clear(&err);
    if (req->cold && req->cold->granted) {
        /* Back from the queue with a slot handed over: the revision it waited for. */
        ksv_registry_route_granted(reg, req->cold, route);
        return true;
    }
    int rc = ksv_registry_route(reg, model, revision, &req->worker->rng, route, &err);
    if ((rc == KSV_ROUTE_COLD || rc == KSV_ROUTE_QUEUE) && req->cold) {
        /* Scaled to zero, or at its concurrency limit: wait for the cold start or a slot
         * (the HTTP layer parks the request). */
        ksv_cold_waiter *w = req->cold;
        w->for_capacity = rc == KSV_ROUTE_QUEUE;
        snprintf(w->model, sizeof w->model, "%s", model);
        snprintf(w->revision, sizeof w->revision, "%s", route->cold_revision);
        w->deadline = req->start + (route->cold_timeout_ms > 0 ? route->cold_timeout_ms / 1000.0
                                                               : KSV_COLD_DEFAULT_TIMEOUT_S);
        resp->wait_cold = true;
        return false;
    }
    if (rc == KSV_ROUTE_COLD)
        rc = ksv_err_set(&err, 503, "revision %s is scaled to zero", route->cold_revision);
    else if (rc == KSV_ROUTE_QUEUE)
        rc = -1; /* err says it: at the concurrency limit */
    if (rc != 0) {
        if (err.status != 404)
            ksv_registry_record_model_error(reg, model, err.status, req->request_id, err.msg);
        ksv_http_error(resp, err.status, err.msg);
        resp->retry_after = err.status == 503 ? route->retry_after_s : 0;
        return false;
    }
    return true;
}

static void infer(const ksv_http_request *req, const char *model, const char *revision, bool v1,
                  ksv_http_response *resp)
{
    ksv_registry *reg = req->engine->registry;
    ksv_route route;
    ksv_err err;
    ksv_err_clear(&err);
    if (!ksv_data_plane_route(req, model, revision, &route, resp))
        return;
    if (route.rev->ops->proxied)
        return ksv_proxy_forward_infer(req, &route, model, v1, resp);
    snprintf(resp->revision, sizeof resp->revision, "%s", route.rev->spec.name);
    ksv_infer_timing tm = {.arrived = req->start};
    size_t rows = 0;
    if (run_inference(req, route.rev, model, v1, resp, &tm, &rows, &err) != 0) {
        ksv_sb_reset(&resp->body);
        ksv_http_error(resp, err.status ? err.status : 500, err.msg);
    } else if (req->engine->mirror) {
        /* A release gate may want a copy (shadow traffic): the rows and the answer. */
        ksv_worker *w = req->worker;
        ksv_mirror_offer(req->engine->mirror, &route, &w->rng, w->tensor.data, rows,
                         route.rev->info.num_features, w->out, route.rev->info.num_outputs);
    }
    double finished = ksv_mono_s();
    ksv_infer_stats_record(&route.rev->stats, resp->status < 400, rows,
                           route.rev->batcher != NULL, &tm, finished);
    ksv_registry_finish(reg, &route, resp->status, finished - req->start, req->request_id,
                        resp->status >= 400 ? err.msg : NULL);
}

static void model_ready(const ksv_http_request *req, const char *model, const char *revision,
                        bool v1, ksv_http_response *resp)
{
    int r = ksv_registry_ready(req->engine->registry, model, revision);
    if (r < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "model %s%s%s not found", model, revision ? " revision " : "",
                 revision ? revision : "");
        ksv_http_error(resp, 404, msg);
        return;
    }
    resp->status = r ? 200 : 503;
    ksv_sb_puts(&resp->body, "{\"name\":");
    ksv_sb_json_str(&resp->body, model);
    ksv_sb_printf(&resp->body, ",\"ready\":%s}", r ? "true" : "false");
    (void)v1;
}

static void metadata(const ksv_http_request *req, const char *model, const char *revision,
                     ksv_http_response *resp)
{
    ksv_err err;
    if (ksv_registry_write_metadata(req->engine->registry, model, revision, &resp->body,
                                    &err) != 0) {
        ksv_sb_reset(&resp->body);
        ksv_http_error(resp, err.status, err.msg);
        return;
    }
    resp->status = 200;
}

/* /v2/models/{m}[/versions/{r}][/ready|/infer] */
static void v2_model(const ksv_http_request *req, const path_parts *pp, ksv_http_response *resp)
{
    const char *model = pp->seg[2], *revision = NULL;
    int next = 3;
    if (seg_is(pp, 3, "versions")) {
        if (pp->n < 5) {
            ksv_http_error(resp, 404, "expected /v2/models/MODEL/versions/REVISION");
            return;
        }
        revision = pp->seg[4];
        next = 5;
    }
    if (pp->n == next) {
        if (!method_is(req, "GET"))
            return method_not_allowed(resp, "GET");
        return metadata(req, model, revision, resp);
    }
    if (pp->n == next + 1 && seg_is(pp, next, "ready")) {
        if (!method_is(req, "GET"))
            return method_not_allowed(resp, "GET");
        return model_ready(req, model, revision, false, resp);
    }
    if (pp->n == next + 1 && seg_is(pp, next, "stats"))
        return ksv_handle_v2_stats(req, model, revision, resp);
    if (pp->n == next + 1 && seg_is(pp, next, "infer")) {
        if (!method_is(req, "POST"))
            return method_not_allowed(resp, "POST");
        return infer(req, model, revision, false, resp);
    }
    ksv_http_error(resp, 404, "unknown path");
}

static void v2(const ksv_http_request *req, const path_parts *pp, ksv_http_response *resp)
{
    if (pp->n == 1) {
        if (!method_is(req, "GET"))
            return method_not_allowed(resp, "GET");
        resp->status = 200;
        ksv_sb_puts(&resp->body, "{\"name\":\"ksv-engine\",\"version\":");
        ksv_sb_json_str(&resp->body, req->engine->version);
        ksv_sb_puts(&resp->body, ",\"extensions\":[\"binary_tensor_data\","
                                 "\"model_repository\",\"statistics\",\"ksv-admin\","
                                 "\"ksv-traffic-split\"]}");
        return;
    }
    if (seg_is(pp, 1, "health") && pp->n == 3) {
        if (!method_is(req, "GET"))
            return method_not_allowed(resp, "GET");
        if (seg_is(pp, 2, "live"))
            return reply_json(resp, 200, "{\"live\":true}");
        if (seg_is(pp, 2, "ready")) {
            bool ready = ksv_registry_all_ready(req->engine->registry);
            return reply_json(resp, ready ? 200 : 503,
                              ready ? "{\"ready\":true}" : "{\"ready\":false}");
        }
    }
    if (seg_is(pp, 1, "repository") && pp->n >= 3)
        return ksv_handle_v2_repository(req, pp->seg + 2, pp->n - 2, resp);
    if (seg_is(pp, 1, "models")) {
        if (pp->n == 3 && seg_is(pp, 2, "stats"))
            return ksv_handle_v2_stats(req, NULL, NULL, resp);
        if (pp->n == 2) {
            if (!method_is(req, "GET"))
                return method_not_allowed(resp, "GET");
            resp->status = 200;
            ksv_registry_write_model_list(req->engine->registry, &resp->body);
            return;
        }
        return v2_model(req, pp, resp);
    }
    ksv_http_error(resp, 404, "unknown path");
}

/* /v1/models, /v1/models/{m} and /v1/models/{m}:predict */
static void v1(const ksv_http_request *req, const path_parts *pp, ksv_http_response *resp)
{
    if (pp->n == 2 && seg_is(pp, 1, "models"))
        return ksv_handle_v1_model_list(req, resp);
    if (pp->n != 3 || !seg_is(pp, 1, "models")) {
        ksv_http_error(resp, 404, "unknown path");
        return;
    }
    char model[KSV_NAME_MAX + 16];
    snprintf(model, sizeof model, "%s", pp->seg[2]);
    char *colon = strchr(model, ':');
    if (!colon) {
        if (!method_is(req, "GET"))
            return method_not_allowed(resp, "GET");
        return model_ready(req, model, NULL, true, resp);
    }
    *colon = '\0';
    if (strcmp(colon + 1, "predict") != 0) {
        ksv_http_error(resp, 404, "unknown verb; V1 supports :predict");
        return;
    }
    if (!method_is(req, "POST"))
        return method_not_allowed(resp, "POST");
    infer(req, model, NULL, true, resp);
}

void ksv_handle_data_plane(const ksv_http_request *req, ksv_http_response *resp)
{
    path_parts pp;
    if (!split_path(req->path, &pp)) {
        ksv_http_error(resp, 404, "unknown path");
        return;
    }
    if (seg_is(&pp, 0, "openai"))
        return ksv_handle_openai(req, resp);
    if (seg_is(&pp, 0, "v2"))
        return v2(req, &pp, resp);
    if (seg_is(&pp, 0, "v1"))
        return v1(req, &pp, resp);
    if (pp.n == 1 && seg_is(&pp, 0, "metrics")) {
        if (!method_is(req, "GET"))
            return method_not_allowed(resp, "GET");
        resp->status = 200;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        ksv_registry_write_prometheus(req->engine->registry, &resp->body);
        if (req->engine->gate)
            ksv_gate_write_prometheus(req->engine->gate, &resp->body);
        ksv_gpu_telemetry_write_prometheus(req->engine->gpu, &resp->body);
        return;
    }
    ksv_http_error(resp, 404, "unknown path");
}
