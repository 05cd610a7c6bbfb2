/* openai_api.c: the OpenAI routes (openai_api.h) and their token accounting. */
#include "engine/openai_api.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "engine/ext_runtime.h"
#include "engine/proxy.h"
#include "engine/scale_to_zero.h"

#define SSE_LINE_MAX (64 * 1024) /* a longer event line is skipped, not buffered */

/* ------------------------------------------------------------ token accounting */

typedef struct token_meter {
    ksv_llm_stats *stats;         /* the revision's (the route keeps it alive) */
    char line[SSE_LINE_MAX];
    size_t line_len;
    bool line_overflow;
    double first_token_s;         /* < 0 until the first generated token */
    double last_token_s;
    uint64_t chunks;              /* generated pieces seen in the stream */
    bool have_usage;
    uint64_t usage_prompt, usage_completion;
} token_meter;

static json_object *parse_json(const char *text, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(32);
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static bool get_u64(json_object *o, const char *key, uint64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 0)
        return false;
    *out = (uint64_t)json_object_get_int64(v);
    return true;
}

static void read_usage(token_meter *m, json_object *o)
{
    json_object *u;
    if (json_object_object_get_ex(o, "usage", &u) && json_object_is_type(u, json_type_object) &&
        get_u64(u, "prompt_tokens", &m->usage_prompt) &&
        get_u64(u, "completion_tokens", &m->usage_completion))
        m->have_usage = true;
}

/* True when a chunk (or a whole answer) carries generated text. */
static bool has_generated_text(json_object *o)
{
    json_object *choices, *c, *v, *delta;
    if (!json_object_object_get_ex(o, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(choices); i++) {
        c = json_object_array_get_idx(choices, i);
        if (json_object_object_get_ex(c, "text", &v) && json_object_get_string_len(v) > 0)
            return true;
        if (json_object_object_get_ex(c, "delta", &delta) &&
            json_object_object_get_ex(delta, "content", &v) &&
            json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
            return true;
    }
    return false;
}

static void meter_event(token_meter *m, const char *line, size_t len, double t)
{
    if (len < 5 || strncmp(line, "data:", 5) != 0)
        return;
    line += 5, len -= 5;
    while (len && *line == ' ')
        line++, len--;
    if (len == 6 && strncmp(line, "[DONE]", 6) == 0)
        return;
    json_object *o = parse_json(line, len);
    if (!o)
        return;
    if (has_generated_text(o)) {
        if (m->first_token_s < 0)
            m->first_token_s = t;
        m->last_token_s = t;
        m->chunks++;
    }
    read_usage(m, o);
    json_object_put(o);
}

static void meter_on_data(void *self, const char *data, size_t len, double t)
{
    token_meter *m = self;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\n') {
            if (!m->line_overflow)
                meter_event(m, m->line, m->line_len, t);
            m->line_len = 0;
            m->line_overflow = false;
        } else if (m->line_len < sizeof m->line) {
            m->line[m->line_len++] = c;
        } else {
            m->line_overflow = true;
        }
    }
}

static void meter_on_done(void *self, long status, const char *body, size_t len, double t,
                          ksv_engine_revision *rev)
{
    token_meter *m = self;
    (void)rev;
    if (status != 200 || !m->stats)
        return;
    if (body) {
        /* A whole answer: usage says the counts; llama.cpp's timings split the time. */
        json_object *o = parse_json(body, len), *timings;
        if (!o)
            return;
        read_usage(m, o);
        double predicted_ms = -1;
        if (json_object_object_get_ex(o, "timings", &timings)) {
            json_object *v;
            if (json_object_object_get_ex(timings, "predicted_ms", &v))
                predicted_ms = json_object_get_double(v);
        }
        if (m->have_usage && m->usage_completion > 0) {
            double gen = predicted_ms >= 0 ? predicted_ms / 1000.0 : -1;
            if (gen >= 0 && gen <= t) {
                ksv_hist_record(&m->stats->ttft, t - gen);
                if (m->usage_completion > 1)
                    ksv_hist_record(&m->stats->tpot, gen / (double)m->usage_completion);
            }
        }
        json_object_put(o);
    } else {
        if (m->line_len && !m->line_overflow)
            meter_event(m, m->line, m->line_len, t);
        if (m->first_token_s >= 0) {
            ksv_hist_record(&m->stats->ttft, m->first_token_s);
            uint64_t n = m->have_usage ? m->usage_completion : m->chunks;
            if (n > 1)
                ksv_hist_record(&m->stats->tpot,
                                (m->last_token_s - m->first_token_s) / (double)(n - 1));
        }
        if (!m->have_usage)
            m->usage_completion = m->chunks;
    }
    if (m->have_usage)
        atomic_fetch_add(&m->stats->prompt_tokens, m->usage_prompt);
    atomic_fetch_add(&m->stats->generation_tokens, m->usage_completion);
}

static void meter_free(void *self)
{
    free(self);
}

/* ------------------------------------------------------------------------ routes */

static void list_models(const ksv_http_request *req, ksv_http_response *resp)
{
    resp->status = 200;
    ksv_registry_write_openai_models(req->engine->registry, &resp->body);
}

static void completion(const ksv_http_request *req, bool chat, ksv_http_response *resp)
{
    json_object *body = parse_json(req->body, req->body_len), *v;
    if (!body || !json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        return ksv_http_error(resp, 400, "expected a JSON object body");
    }
    char model[KSV_NAME_MAX];
    if (!json_object_object_get_ex(body, "model", &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) >= (int)sizeof model) {
        json_object_put(body);
        return ksv_http_error(resp, 400, "\"model\" (the InferenceService name) is required");
    }
    snprintf(model, sizeof model, "%s", json_object_get_string(v));
    bool stream = json_object_object_get_ex(body, "stream", &v) && json_object_get_boolean(v);
    json_object_put(body);

    ksv_registry *reg = req->engine->registry;
    ksv_route route;
    if (!ksv_data_plane_route(req, model, NULL, &route, resp))
        return;
    ksv_engine_revision *rev = route.rev;
    if (!rev->ops->proxied || !(ksv_ext_protocols(rev->handle) & KSV_PROTO_OPENAI)) {
        char msg[320];
        snprintf(msg, sizeof msg, "model %s revision %s is not served by a runtime that speaks "
                                  "the OpenAI protocol", model, rev->spec.name);
        ksv_http_error(resp, 400, msg);
        ksv_registry_finish(reg, &route, 400, ksv_mono_s() - req->start, req->request_id, msg);
        return;
    }
    token_meter *m = calloc(1, sizeof *m);
    if (m) {
        m->stats = rev->llm;
        m->first_token_s = -1;
    }
    ksv_proxy_call call = {
        .model = model,
        .upstream_path = chat ? "/v1/chat/completions" : "/v1/completions",
        .method = "POST",
        .body = req->body,
        .body_len = req->body_len,
        .stream = stream,
        .rewrite = stream ? KSV_PROXY_PASS : KSV_PROXY_JSON,
        .observer = {.on_data = meter_on_data,
                     .on_done = meter_on_done,
                     .free = meter_free,
                     .self = m},
    };
    if (!m)
        memset(&call.observer, 0, sizeof call.observer);
    ksv_proxy_forward(req, &route, &call, resp);
}

void ksv_handle_openai(const ksv_http_request *req, ksv_http_response *resp)
{
    if (strncmp(req->path, "/openai/v1/", 11) != 0)
        return ksv_http_error(resp, 404, "unknown path; the OpenAI routes are under /openai/v1/");
    const char *p = req->path + strlen("/openai/v1");
    bool post = strcmp(req->method, "POST") == 0;
    if (strcmp(p, "/models") == 0) {
        if (strcmp(req->method, "GET") != 0)
            return ksv_http_error(resp, 405, "method not allowed here; use GET");
        return list_models(req, resp);
    }
    if (strcmp(p, "/completions") == 0 || strcmp(p, "/chat/completions") == 0) {
        if (!post)
            return ksv_http_error(resp, 405, "method not allowed here; use POST");
        return completion(req, strcmp(p, "/chat/completions") == 0, resp);
    }
    ksv_http_error(resp, 404, "unknown path; the OpenAI routes are /openai/v1/completions, "
                              "/openai/v1/chat/completions and /openai/v1/models");
}
