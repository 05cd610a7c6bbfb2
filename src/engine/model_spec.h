/* model_spec.h: what the admin API (and the applied-state file) says a model should be:
 * its revisions (each an immutable runtime + storage + settings) and the traffic split.
 * Parsed from and written to JSON; docs/API.md documents the format. */
#ifndef KSV_ENGINE_MODEL_SPEC_H
#define KSV_ENGINE_MODEL_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/ext_runtime.h"

#define KSV_NAME_MAX 96
#define KSV_URI_MAX 1024
#define KSV_MAX_REVISIONS 16
#define KSV_DEFAULT_ROLLBACK_WINDOW_S 600
#define KSV_DEFAULT_SCALE_WINDOW_S 60
#define KSV_DEFAULT_COLD_START_QUEUE 100

typedef struct ksv_revision_spec {
    char name[KSV_NAME_MAX];         /* MODEL-NNNNN by convention; any valid name accepted */
    char runtime[32];                /* "auto" (default) | "ksv-xgboost" | "ksv-forest" */
    char storage_uri[KSV_URI_MAX];   /* file:///abs, /abs/path (a file or a folder of one
                                      * model), http(s)://.../model.json (fetched and cached) */
    char sha256[65];                 /* expected digest of the model file; "" = any */
    char pinned_uri[KSV_URI_MAX];    /* hf://: storage_uri at the commit its revision named
                                      * when first fetched (kept in the applied state, so a
                                      * moved branch never changes what is served); not part
                                      * of the revision's identity */
    char booster_pool[16];           /* xgboost: "shared" (default) | "per-worker" */
    int predict_threads;             /* threads one prediction may use; 0 = runtime default */
    int container_concurrency;       /* in-flight limit; 0 = unlimited */
    int timeout_ms;                  /* per-request budget; 0 = none */
    int batch_max_rows;              /* 0: the runtime's choice; 1: off; N: batches of <= N */
    int batch_max_delay_us;          /* how long a lone request waits for company */
    int min_replicas;                /* 0: may scale to zero (see scale_to_zero.h); default 1 */
    long long memory_limit_bytes;    /* resources.limits.memory: the measured size may not
                                      * exceed it (0: no limit) */
    /* Replicas (autoscaler.h): maxReplicas (0: no bound), scaleTarget per replica (0: the
     * default, 100) and scaleMetric. */
    int max_replicas;
    int scale_target;
    long long gpu_memory_bytes;      /* declared GPU memory (resources.limits
                                      * ksv.io/gpu-memory); 0: none declared */
    char scale_metric[16];           /* "concurrency" (default) | "rps" */
    /* runtime "external": the ServingRuntime to run, as validated compact JSON
     * (ext_runtime.h); "" for the built-in runtimes. */
    char external[KSV_EXT_SPEC_MAX];
} ksv_revision_spec;

typedef struct ksv_model_spec {
    char name[KSV_NAME_MAX];
    size_t n_revisions;
    ksv_revision_spec revisions[KSV_MAX_REVISIONS];
    int traffic[KSV_MAX_REVISIONS];  /* percent per revision, same order; sums to 100 */
    int rollback_window_s;
    /* Scale to zero (revisions with min_replicas 0): unload after scale_window_s +
     * scale_retention_s without requests; at most cold_start_queue requests wait for the
     * cold start. Knative's autoscaling.knative.dev/window and
     * scale-to-zero-pod-retention-period, ksv.io/cold-start-queue. */
    int scale_window_s;
    int scale_retention_s;
    int cold_start_queue;
    /* Knative's autoscaling.knative.dev/target-utilization-percentage (1..100, default 70)
     * and scale-down-delay (seconds, default 0): see autoscaler.h. The delay postpones
     * scale to zero too. */
    double target_utilization;
    int scale_down_delay_s;
    bool pinned;                     /* from --model/--model-dir: the admin API may not change it */
} ksv_model_spec;

/* A model name or revision name: 1..63 chars of [a-z0-9._-], starting alphanumeric
 * (KServe's DNS-label rule, loosened for '.' and '_' that model repositories use). */
bool ksv_valid_name(const char *name);

/* Parses an admin PUT body {"revisions":[...],"traffic":{rev:pct},"rollback_window_s":N,
 * "scale_window_s":N,"scale_to_zero_retention_s":N,"cold_start_queue":N,
 * "target_utilization_percent":X,"scale_down_delay_s":N}
 * for the model `name`. Validates names, runtimes, unique revisions, percents (0..100,
 * summing to 100, only for listed revisions). 400 on any problem. */
int ksv_model_spec_from_json(const char *name, json_object *body, ksv_model_spec *out,
                             ksv_err *err);
/* Parses {"traffic":{rev:pct}} against an existing spec's revision list into traffic[]. */
int ksv_traffic_from_json(json_object *body, const ksv_model_spec *spec, int *traffic,
                          ksv_err *err);
/* Validates that traffic[] holds percents in 0..100 summing to 100. */
int ksv_traffic_validate(const int *traffic, size_t n, ksv_err *err);

/* The spec of a model served standalone (--model, --model-dir, the repository API's load):
 * one revision NAME-00001 of the given runtime and storage with 100% of the traffic,
 * pinned. */
void ksv_model_spec_standalone(ksv_model_spec *spec, const char *name, const char *uri,
                               const char *runtime);

/* Writes the spec as the JSON object ksv_model_spec_from_json reads back: the applied state
 * the engine resumes from, with the storage URIs as given (a presigned URL's signature
 * included: the state file is 0600 in the state dir, readable by the engine's user only). */
void ksv_model_spec_to_json(ksv_sb *sb, const ksv_model_spec *spec);
/* One revision's spec; shown: the storage URIs in their display form (uri_redact.h), for
 * status documents, which reach the API, the CLI and ksv-top; not to be read back. */
void ksv_revision_spec_to_json(ksv_sb *sb, const ksv_revision_spec *rev, bool shown);
bool ksv_revision_spec_equal(const ksv_revision_spec *a, const ksv_revision_spec *b);

#endif
