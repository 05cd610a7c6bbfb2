/* engine_client.h: the client side of ksv-engine's admin API (docs/API.md) over HTTP.
 *
 * A client talks to one engine at a base URL ("http://127.0.0.1:8080"). A local node gives
 * the engine's own address; an SSH node will give the local end of a forwarded socket, so
 * nothing here knows how the bytes travel.
 *
 * One src/http client per engine client, reused across calls so the connection stays alive.
 * A client is NOT thread-safe: use one per thread (or serialize calls on it).
 *
 * Every call sets connect and total timeouts, never follows redirects, ignores proxy
 * settings from the environment, sends "Authorization: Bearer TOKEN" (the token is never
 * logged or put into a message) and refuses replies over a size cap.
 *
 * The token goes only to the engine that holds it (issue 11, finding 10): before the first
 * request that carries it, the client asks GET /ksv/v1/identity with a fresh challenge
 * (no token) and checks the engine's HMAC proof (common/engine_identity.h); the token then
 * travels only on that same connection, and a new connection is proven again before it
 * carries the token. A peer that cannot prove it (another process on the port, an engine
 * with another token, an engine older than this ksv) gets no token: 502 "... is not
 * proven to be the ksv-engine that holds the admin token (...)"; one that does not answer
 * the check in time was sent nothing: 503. Errors (ksv_err):
 *   503 "node unreachable: URL: ..."       connection refused or timed out, DNS, reset, no
 *                                          answer to the identity check: the request did
 *                                          not reach the engine
 *   504 "node unreachable: URL: no answer within N ms"
 *                                          the request went out and no answer came in
 *                                          time: the engine may still act on it
 *   the engine's status + its message      an HTTP error answer {"error": "..."}
 *   502 "bad reply from engine: URL: ..."  malformed JSON, garbage, reply over the cap
 *   504                                    wait_applied ran out of time
 *   400                                    a bad base URL or argument */
#ifndef KSV_REMOTE_ENGINE_CLIENT_H
#define KSV_REMOTE_ENGINE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "common/error.h"

#define KSV_ENGINE_CLIENT_DEFAULT_TIMEOUT_MS 10000L
#define KSV_ENGINE_CLIENT_MAX_REPLY ((size_t)64 << 20)
#define KSV_ENGINE_MAX_REVISIONS 16
#define KSV_ENGINE_MAX_GPUS 16

typedef struct ksv_engine_client ksv_engine_client;

/* base_url: http:// or https://, no path beyond "/" (a trailing slash is dropped).
 * token: the admin bearer token (copied; NULL or "" sends no Authorization header).
 * timeout_ms: connect and total limit of each call; <= 0 means the default (10 s). */
int ksv_engine_client_new(const char *base_url, const char *token, long timeout_ms,
                          ksv_engine_client **out, ksv_err *err);
void ksv_engine_client_free(ksv_engine_client *c);
/* The address the engine must say it bound ("127.0.0.1:8080", as in STATE_DIR/address),
 * for a node whose engine's address ksv knows (local and SSH nodes): an engine that proves
 * the token but listens elsewhere (a relay to it) gets no token either. NULL or "": any. */
void ksv_engine_client_expect_listen(ksv_engine_client *c, const char *listen);
const char *ksv_engine_client_base_url(const ksv_engine_client *c);
/* Changes the limit of each later call (<= 0: the default): a re-check that must not cost
 * a whole node timeout on an engine that stopped answering. */
void ksv_engine_client_set_timeout(ksv_engine_client *c, long timeout_ms);
/* Replies larger than this are refused (502). Default KSV_ENGINE_CLIENT_MAX_REPLY; 0 is
 * refused (400) and the cap stays. */
int ksv_engine_client_set_max_reply(ksv_engine_client *c, size_t bytes, ksv_err *err);
/* How many TCP connections this client has opened so far (keep-alive keeps it at 1). */
long ksv_engine_client_connections_opened(const ksv_engine_client *c);

/* True when err says a call got no answer from the engine: unreachable (503) or silent
 * past the timeout (504). */
bool ksv_engine_client_no_answer(const ksv_err *err);

/* --- raw calls ---------------------------------------------------------------------- */

/* Any request: method "GET", "PUT", "POST", "DELETE"; path starts with '/'; body may be
 * NULL. Returns 0 on ANY HTTP answer, with *http_status and the reply (NUL-terminated,
 * caller frees; reply/reply_len may be NULL); -1 only when no answer came (503/504/502/400). */
int ksv_engine_client_request(ksv_engine_client *c, const char *method, const char *path,
                              const char *body, size_t body_len, long *http_status,
                              char **reply, size_t *reply_len, ksv_err *err);
/* A request whose 2xx answer is a JSON object: *out is it (caller json_object_put()s).
 * Non-2xx answers become errors carrying the engine's status and message. */
int ksv_engine_client_call_json(ksv_engine_client *c, const char *method, const char *path,
                                const char *body, json_object **out, ksv_err *err);

/* --- admin API (each *out is owned by the caller: json_object_put / free) ------------ */

/* GET /ksv/v1/state: {"models":[MODEL_STATE...]} */
int ksv_engine_client_get_state(ksv_engine_client *c, json_object **out, ksv_err *err);
/* GET /ksv/v1/models/{model}: MODEL_STATE; unknown model: 404. */
int ksv_engine_client_get_model(ksv_engine_client *c, const char *model, json_object **out,
                                ksv_err *err);
/* GET /ksv/v1/models/{model}/errors: {"model":..,"errors":[...]} */
int ksv_engine_client_get_errors(ksv_engine_client *c, const char *model, json_object **out,
                                 ksv_err *err);
/* PUT /ksv/v1/models/{model} with a body the caller built; *state_out (may be NULL)
 * receives the model state the engine answers (202). */
int ksv_engine_client_put_model_json(ksv_engine_client *c, const char *model,
                                     const char *body, json_object **state_out, ksv_err *err);
/* DELETE /ksv/v1/models/{model}. */
int ksv_engine_client_delete_model(ksv_engine_client *c, const char *model, ksv_err *err);
/* A conditional GET of an answer the engine tags (/ksv/v1/state, /ksv/v1/histograms):
 * etag holds the tag of the copy the caller keeps ("" for none). When the engine's answer
 * is still that one (304), returns 0 with *text NULL and etag unchanged; otherwise *text
 * gets the new body (caller frees) and etag its tag ("" when the engine sent none, as an
 * older engine does). etag_cap at least KSV_ENGINE_ETAG_MAX. */
#define KSV_ENGINE_ETAG_MAX 96
int ksv_engine_client_get_if_changed(ksv_engine_client *c, const char *path, char *etag,
                                     size_t etag_cap, char **text, size_t *len, ksv_err *err);
/* The same for /ksv/v1/state, parsed and checked as ksv_engine_client_get_state does:
 * *out NULL when unchanged. */
int ksv_engine_client_get_state_if_changed(ksv_engine_client *c, char *etag, size_t etag_cap,
                                           json_object **out, ksv_err *err);
/* GET /ksv/v1/histograms through ksv_engine_client_get_if_changed; state_etag receives the
 * engine's state's ETag the answer carried (X-Ksv-State-ETag, 200 or 304; "" from an engine
 * that does not send it), so a console holding that state need not ask for it again.
 * state_etag_cap at least KSV_ENGINE_ETAG_MAX. */
int ksv_engine_client_get_histograms_if_changed(ksv_engine_client *c, char *etag,
                                                size_t etag_cap, char **text, size_t *len,
                                                char *state_etag, size_t state_etag_cap,
                                                ksv_err *err);
/* GET /ksv/v1/histograms, parsed, or as the raw JSON text (caller frees). */
int ksv_engine_client_get_histograms(ksv_engine_client *c, json_object **out, ksv_err *err);
int ksv_engine_client_get_histograms_text(ksv_engine_client *c, char **text, size_t *len,
                                          ksv_err *err);
/* GET /metrics: the Prometheus text (caller frees). */
int ksv_engine_client_get_metrics_text(ksv_engine_client *c, char **text, size_t *len,
                                       ksv_err *err);
/* GET /v2/health/live: 0 when the engine answers 200. */
int ksv_engine_client_health(ksv_engine_client *c, ksv_err *err);

/* --- typed PUT bodies -------------------------------------------------------------- */

/* One revision of a PUT body. Strings are borrowed (not copied) and must outlive the call.
 * Zero / NULL settings are left out, so the engine applies its defaults. */
typedef struct ksv_engine_revision_put {
    const char *name;             /* required: MODEL-NNNNN */
    const char *runtime;          /* NULL or "": the engine's default (ksv-xgboost) */
    const char *storage_uri;      /* required: file:///abs or /abs */
    const char *booster_pool;     /* NULL or "": default ("per-worker") */
    int predict_threads;          /* 0: runtime default */
    int container_concurrency;    /* 0: no in-flight limit */
    int timeout_ms;               /* 0: none */
    int traffic;                  /* percent, 0..100; the revisions' percents sum to 100 */
} ksv_engine_revision_put;

typedef struct ksv_engine_model_put {
    size_t n_revisions;           /* 1..KSV_ENGINE_MAX_REVISIONS */
    ksv_engine_revision_put revisions[KSV_ENGINE_MAX_REVISIONS];
    int rollback_window_s;        /* < 0: the engine's default (600); 0 unloads at once */
} ksv_engine_model_put;

/* Zeroes m and sets rollback_window_s = -1 (engine default). */
void ksv_engine_model_put_init(ksv_engine_model_put *m);
/* Appends a revision; 400 when full or name/storage_uri is missing. */
int ksv_engine_model_put_add(ksv_engine_model_put *m, const ksv_engine_revision_put *rev,
                             ksv_err *err);
/* Renders the PUT body {"revisions":[...],"traffic":{...},"rollback_window_s":N} as a
 * NUL-terminated string the caller frees. 400 on a missing name/URI or no revisions. */
int ksv_engine_model_put_to_json(const ksv_engine_model_put *m, char **out, ksv_err *err);
/* Renders and PUTs it. */
int ksv_engine_client_put_model(ksv_engine_client *c, const char *model,
                                const ksv_engine_model_put *m, json_object **state_out,
                                ksv_err *err);

typedef struct ksv_engine_traffic {
    const char *revision;
    int percent;
} ksv_engine_traffic;

/* PUT /ksv/v1/models/{model}/traffic {"traffic":{rev:pct,...}}. */
int ksv_engine_client_put_traffic(ksv_engine_client *c, const char *model,
                                  const ksv_engine_traffic *split, size_t n,
                                  json_object **state_out, ksv_err *err);

/* --- typed answers ----------------------------------------------------------------- */

typedef struct ksv_engine_revision_status {
    char name[96];
    char state[16];               /* loading|ready|draining|standby|unloaded|failed|
                                   * scaled-to-zero */
    char error[512];              /* "" unless the engine reported one */
    long long memory_bytes;       /* measured host memory it holds; -1: not reported */
    long long cold_starts;        /* cold starts since the engine started; -1: not reported */
    double cold_start_p99_s;      /* their P99 duration; -1: none reported */
    long long replicas;           /* executor instances now (KPA); -1: not reported */
    char runtime[32];             /* as the spec names it ("auto" when none) */
    char serving_runtime[32];     /* the runtime that answers, once loaded ("" before) */
    char storage_uri[1024];
    int traffic;                  /* effective percent (serving now) */
    int desired_traffic;          /* asked-for percent */
    long long inflight;
    double load_seconds;
    long num_features;            /* -1 when not loaded */
    long num_outputs;             /* -1 when not loaded */
    /* Its model's download while one runs ("download" in the state): bytes so far, the
     * total (-1 unknown), bytes/s; download_bytes -1 when none runs. */
    long long download_bytes, download_total;
    double download_rate;
} ksv_engine_revision_status;

typedef struct ksv_engine_model_status {
    char name[96];
    bool pinned;
    bool ready;
    bool traffic_applied;
    int rollback_window_s;
    bool gated;                   /* a release gate is rolling it out: the gate owns the split */
    size_t n_revisions;
    ksv_engine_revision_status *revisions;   /* owned; ksv_engine_model_status_free */
} ksv_engine_model_status;

/* Reads one MODEL_STATE object (an element of state's "models", or get_model's answer).
 * 502 "bad reply from engine: ..." when a required field is missing or mistyped. */
int ksv_engine_model_status_parse(json_object *model, ksv_engine_model_status *out,
                                  ksv_err *err);
void ksv_engine_model_status_free(ksv_engine_model_status *s);
/* GET /ksv/v1/models/{model}, parsed. */
int ksv_engine_client_get_model_status(ksv_engine_client *c, const char *model,
                                       ksv_engine_model_status *out, ksv_err *err);

typedef struct ksv_engine_gpu_info {
    int index;
    char name[128];
    double utilization_ratio;     /* 0..1; -1 when the engine did not say */
    long long memory_used_bytes;  /* -1 when the engine did not say */
    long long memory_total_bytes; /* -1 when the engine did not say */
} ksv_engine_gpu_info;

typedef struct ksv_engine_node_info {
    char name[64];
    char version[64];
    char xgboost[32];
    char cuda[64];                /* "" when the engine has no CUDA */
    char runtimes[128];
    char listen[128];
    int threads;
    long long max_body;
    double uptime_s;
    long long inflight;           /* load.inflight */
    double loadavg[3];            /* load.loadavg */
    int cpus;                     /* load.cpus */
    size_t n_gpus;                /* at most KSV_ENGINE_MAX_GPUS are kept */
    ksv_engine_gpu_info gpus[KSV_ENGINE_MAX_GPUS];
    char events_log_id[64];       /* events.log_id; "" when the engine did not say */
    long long events_last_seq;    /* events.last_seq; -1 when the engine did not say */
} ksv_engine_node_info;

/* GET /ksv/v1/node, parsed (version, threads and uptime_s are required). */
int ksv_engine_client_get_node(ksv_engine_client *c, ksv_engine_node_info *out, ksv_err *err);
int ksv_engine_node_info_parse(json_object *node, ksv_engine_node_info *out, ksv_err *err);

/* Polls GET /ksv/v1/models/{model} until traffic_applied is true (0), a revision the split
 * needs has failed (500 with the engine's load error), the model is gone (404), or
 * timeout_ms passes (504 naming the revisions still loading). An unreachable node (503)
 * is retried until the deadline. *state_out (may be NULL) gets the last state read. */
int ksv_engine_client_wait_applied(ksv_engine_client *c, const char *model, long timeout_ms,
                                   json_object **state_out, ksv_err *err);

#endif
