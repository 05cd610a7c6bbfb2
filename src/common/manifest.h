/* manifest.h: KServe InferenceService manifests (README.md, "Operating models with ksv")
 * read into typed specs, their canonical form (the identity of a revision), and rendering
 * back to KServe YAML.
 *
 * Input: YAML (several `---` documents per file) or JSON (one object, several objects one
 * after another, or `{"kind":"List","items":[...]}`). Each document must be an
 * `apiVersion: serving.kserve.io/v1beta1`, `kind: InferenceService`, written either in the
 * model form (`spec.predictor.model`) or in KServe's older framework shorthand
 * (`spec.predictor.xgboost`), or a ServingRuntime / ClusterServingRuntime
 * (serving_runtime.h; kept in `runtimes`). An xgboost model runs in the engine; any other
 * model format is served by a ServingRuntime, named or chosen by format when applied
 * (`runtime_external`). Anything refused is reported as
 * "FILE:LINE:COL: FIELD: reason" in ksv_err (status 400; 404 when the file cannot be read,
 * 413 when it is too large).
 *
 * Nothing written in a manifest is dropped: every spec keeps the whole document (`original`),
 * fields ksv does not act on are listed by ksv_isvc_not_acted_on(), and both the canonical
 * form and the rendered YAML carry them.
 *
 * Ownership: a ksv_manifest_list owns its specs; a spec owns every string and array in it and
 * one reference to `original`. Free the list with ksv_manifest_list_free(); a single spec
 * taken out of a list (set the list's slot to a zeroed struct) is freed with ksv_isvc_free().
 */
#ifndef KSV_COMMON_MANIFEST_H
#define KSV_COMMON_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/serving_runtime.h"
#include "common/strbuf.h"

#define KSV_MANIFEST_API_VERSION "serving.kserve.io/v1beta1"
#define KSV_MANIFEST_KIND "InferenceService"
#define KSV_RUNTIME_XGBOOST "ksv-xgboost"
#define KSV_RUNTIME_FOREST "ksv-forest"
#define KSV_RUNTIME_AUTO "auto" /* the default: ksv-forest where bit-equal, else ksv-xgboost */
#define KSV_DEFAULT_ROLLBACK_WINDOW_S 600
#define KSV_DEFAULT_SCALE_WINDOW_S 60
#define KSV_DEFAULT_COLD_START_QUEUE 100
#define KSV_ANNOTATION_SCALE_WINDOW "autoscaling.knative.dev/window"
#define KSV_ANNOTATION_SCALE_RETENTION "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
#define KSV_ANNOTATION_COLD_START_QUEUE "ksv.io/cold-start-queue"
/* Where a model stored elsewhere (s3://, gs://, hf://, http(s)://) is fetched for an SSH
 * node: "node" (the default: its engine fetches) or "operator" (ksv fetches, sends by SFTP). */
#define KSV_ANNOTATION_FETCH "ksv.io/fetch"
#define KSV_ANNOTATION_TARGET_UTILIZATION "autoscaling.knative.dev/target-utilization-percentage"
#define KSV_ANNOTATION_SCALE_DOWN_DELAY "autoscaling.knative.dev/scale-down-delay"
#define KSV_DEFAULT_TARGET_UTILIZATION_PERCENT 70.0
#define KSV_MAX_SCALE_DOWN_DELAY_S 3600
#define KSV_MANIFEST_MAX_BYTES (4u * 1024u * 1024u) /* larger files are refused */
/* What a file may expand to once YAML aliases are copied: strings, keys and node records.
 * A node count alone let 150k aliases of one 2 MB string ask for 300 GB (issue 11). */
#define KSV_MANIFEST_MAX_EXPANDED_BYTES (8u * KSV_MANIFEST_MAX_BYTES)

typedef enum {
    KSV_STORAGE_LOCAL, /* storage_uri is an absolute, lexically normalized path */
    KSV_STORAGE_HTTP,  /* storage_uri is a URL the engine fetches: http://, https://, s3:// */
} ksv_storage_kind;

typedef struct ksv_kv {
    char *key;
    char *value;
} ksv_kv;

/* One of `resources.limits` / `resources.requests` of the model container. */
typedef struct ksv_resource_list {
    bool has_gpu;
    int64_t gpu;            /* nvidia.com/gpu */
    bool has_memory;
    char *memory;           /* as written, e.g. "2Gi" */
    uint64_t memory_bytes;  /* the same quantity in bytes (rounded up) */
    bool has_gpu_memory;
    uint64_t gpu_memory_bytes; /* ksv.io/gpu-memory: GPU memory the model needs (an
                                * extended resource of ksv's: Kubernetes has no such field) */
} ksv_resource_list;

#define KSV_MANIFEST_MAX_WAVES 16

typedef struct ksv_isvc {
    char *source;          /* display name of the file it came from */
    int line;              /* line where its document (or List item) starts */

    char *name;            /* metadata.name, a DNS-1123 label */
    char *namespace_name;  /* metadata.namespace, "default" when absent */
    ksv_kv *annotations;   /* metadata.annotations in file order */
    size_t n_annotations;

    /* Annotations ksv acts on, decoded. */
    char **nodes;                /* ksv.io/nodes split at commas; NULL when absent */
    size_t n_nodes;
    char *node_selector;         /* ksv.io/node-selector as written (common/labels.h syntax,
                                  * checked); NULL when absent. Not with ksv.io/nodes. */
    /* ksv.io/waves "1,25%,100%": cumulative wave sizes, a node count or a percent of the
     * model's nodes each (n_waves 0: no waves); ksv.io/wave-soak, seconds (default 60;
     * wave_soak_set: the annotation was given, since gated waves soak only then). */
    size_t n_waves;
    struct {
        int value;               /* nodes, or percent 1..100 when percent */
        bool percent;
    } waves[KSV_MANIFEST_MAX_WAVES];
    int64_t wave_soak_s;
    bool wave_soak_set;
    char *sha256;                /* ksv.io/sha256, 64 lowercase hex digits; NULL when absent */
    bool fetch_on_operator;      /* ksv.io/fetch: operator */
    int64_t rollback_window_s;   /* ksv.io/rollback-window, default 600 */
    int64_t scale_window_s;      /* autoscaling.knative.dev/window, default 60 */
    int64_t scale_retention_s;   /* ...scale-to-zero-pod-retention-period, default 0 */
    int64_t cold_start_queue;    /* ksv.io/cold-start-queue, default 100 */
    double target_utilization;   /* ...target-utilization-percentage, 1..100, default 70 */
    int64_t scale_down_delay_s;  /* ...scale-down-delay, 0..1h, default 0 */

    /* spec.predictor, as ksv reads it. Fields marked "effective" hold the default when
     * the manifest leaves them out; the has_ flags say whether it wrote them. */
    bool shorthand;              /* written as spec.predictor.xgboost */
    char *model_format;          /* "xgboost" */
    char *model_format_version;  /* NULL when absent */
    char *runtime;               /* effective: "auto" (unless written), "ksv-xgboost", "ksv-forest" */
    char *runtime_written;       /* model.runtime as written; NULL when absent */
    bool runtime_mapped;         /* a KServe runtime name was mapped to `runtime` */
    bool runtime_external;       /* served by a ServingRuntime: `runtime` names it, or is ""
                                  * to choose one by model format when applied */
    char *protocol_version;      /* effective: "v1" unless written */
    char *runtime_version;       /* NULL when absent */
    char *storage_uri;           /* normalized: see ksv_storage_kind */
    char *storage_uri_written;   /* as written */
    ksv_storage_kind storage_kind;
    bool has_min_replicas;
    int64_t min_replicas;        /* effective, default 1 */
    bool has_max_replicas;
    int64_t max_replicas;        /* effective, default 0 (no bound) */
    bool has_scale_target;
    int64_t scale_target;
    char *scale_metric;          /* concurrency|rps|cpu|memory; NULL when absent */
    bool has_container_concurrency;
    int64_t container_concurrency; /* effective, default 0 (no limit) */
    bool has_timeout;
    int64_t timeout_s;           /* only meaningful when has_timeout */
    bool has_canary;
    int canary_percent;          /* 0..100, when has_canary */
    ksv_resource_list limits, requests;

    json_object *original;       /* the whole document as written (one reference owned) */
    char **not_acted_on;         /* dotted paths of fields kept but not acted on */
    size_t n_not_acted_on;
} ksv_isvc;

/* A Kubernetes ResourceQuota (apiVersion v1) for a namespace: the hard limits ksv enforces
 * at apply (docs/OPERATIONS.md, "Namespace quotas"). */
#define KSV_QUOTA_COUNT_ISVC "count/inferenceservices.serving.kserve.io"
#define KSV_QUOTA_REQUESTS_MEMORY "requests.memory"
#define KSV_QUOTA_REQUESTS_GPU "requests.nvidia.com/gpu"
typedef struct ksv_resource_quota {
    char *source;
    int line;
    char *name;
    char *namespace_name;        /* default "default" */
    bool has_count, has_memory, has_gpu;
    int64_t count;               /* count/inferenceservices.serving.kserve.io */
    uint64_t memory_bytes;       /* requests.memory */
    int64_t gpu;                 /* requests.nvidia.com/gpu */
    char **not_acted_on;         /* other spec.hard keys and spec fields, as paths */
    size_t n_not_acted_on;
} ksv_resource_quota;

void ksv_resource_quota_free(ksv_resource_quota *q);

/* A Flagger Canary's metric (spec.analysis.metrics[]): a built-in ksv measures itself. */
typedef struct ksv_canary_metric {
    char *name;                  /* request-success-rate | request-duration | prediction-disagreement */
    bool has_min, has_max;
    double min, max;             /* thresholdRange */
    double interval_s;           /* 0: the analysis interval */
    int64_t min_requests;        /* ksv's minRequests, default 100 */
} ksv_canary_metric;

/* A Flagger Canary (apiVersion flagger.app/v1beta1) whose targetRef names an
 * InferenceService: the release gate for that model (docs/API.md, "PUT .../rollout"). */
typedef struct ksv_canary {
    char *source;
    int line;
    char *name;
    char *namespace_name;        /* default "default" */
    char *target;                /* spec.targetRef.name (an InferenceService in namespace) */
    int target_line, target_col; /* where targetRef.name is, for messages */
    double progress_deadline_s;  /* default 600 */
    double interval_s;           /* analysis.interval, >= 1 */
    int64_t threshold;           /* default 5 */
    int64_t step_weight, max_weight; /* 0 when not written */
    int64_t *step_weights;       /* analysis.stepWeights */
    size_t n_step_weights;
    bool mirror;
    bool skip_analysis;          /* spec.skipAnalysis: promote once ready, no checks */
    int64_t mirror_weight;       /* default 100 */
    int64_t iterations;
    ksv_canary_metric *metrics;
    size_t n_metrics;
    json_object *original;       /* the document as written */
    char **not_acted_on;         /* Flagger fields ksv keeps but does not act on */
    size_t n_not_acted_on;
} ksv_canary;

/* The engine's rollout policy for a canary (docs/API.md, PUT .../rollout) rolling the
 * revision `canary` out over `stable` (NULL: the engine picks); caller frees. */
char *ksv_canary_policy_json(const ksv_canary *c, const char *canary, const char *stable);
void ksv_canary_free(ksv_canary *c);

typedef struct ksv_manifest_list {
    ksv_isvc *items;
    size_t n;
    ksv_resource_quota *quotas;  /* ResourceQuota documents of the same file */
    size_t n_quotas;
    ksv_canary *canaries;        /* Canary documents of the same file */
    size_t n_canaries;
    ksv_serving_runtime *runtimes;  /* ServingRuntime / ClusterServingRuntime documents */
    size_t n_runtimes;
} ksv_manifest_list;

/* The Canary in list whose target is NS/NAME, or NULL. */
const ksv_canary *ksv_manifest_find_canary(const ksv_manifest_list *list, const char *ns,
                                           const char *name);

/* Reads FILE (at most 4 MiB); relative storage paths resolve against FILE's directory.
 * On success *out holds at least one spec (caller frees); on failure *out is empty. */
int ksv_manifest_load_file(const char *path, ksv_manifest_list *out, ksv_err *err);

/* Reads text[0..len) (need not be NUL-terminated). display_name names it in messages;
 * base_dir resolves relative storage paths (NULL: the current directory). The syntax is
 * JSON when display_name ends in ".json", or when the text starts with '{' or '[' and reads
 * as JSON; YAML otherwise. */
int ksv_manifest_parse_buffer(const char *text, size_t len, const char *display_name,
                              const char *base_dir, ksv_manifest_list *out, ksv_err *err);

void ksv_manifest_list_free(ksv_manifest_list *list);
void ksv_isvc_free(ksv_isvc *spec);

/* The fields of spec that ksv keeps but does not act on, as dotted paths
 * ("spec.predictor.minReplicas", "metadata.labels"); the array belongs to spec. */
const char *const *ksv_isvc_not_acted_on(const ksv_isvc *spec, size_t *n);

/* Appends the notes an operator should see once per apply, one line each:
 * "FILE:LINE: NS/NAME: runtime kserve-xgbserver mapped to ksv-xgboost" and
 * "FILE:LINE: NS/NAME: not acted on: spec.predictor.minReplicas, ...". */
void ksv_manifest_format_notes(const ksv_manifest_list *list, ksv_sb *out);

/* The revision identity of spec as deterministic JSON (sorted keys, no spaces):
 * {"predictor":{...}} plus "sha256" when the ksv.io/sha256 annotation pins the model bytes.
 * The predictor is normalized: shorthand turned into the model form, runtime mapped,
 * defaults filled (protocolVersion, minReplicas, maxReplicas, containerConcurrency), the
 * storage URI normalized, GPU counts as integers; canaryTrafficPercent is left out, since
 * it moves traffic and does not make a new revision. Unknown predictor fields are kept.
 * Returns a malloc'd string (caller frees), or NULL on allocation failure. */
char *ksv_manifest_canonical_json(const ksv_isvc *spec);

/* Appends spec as one KServe YAML document (model form, normalized storage URI, namespace
 * filled, canaryTrafficPercent when set, every other field as written). Parsing the result
 * gives the same canonical JSON. Returns 0, or -1 on allocation failure. */
int ksv_manifest_to_yaml(const ksv_isvc *spec, ksv_sb *out);

/* A Kubernetes quantity in bytes, rounded up: 512Mi, 2Gi, 1G, 1e9, 1500000; -1 when it is
 * not one. */
int ksv_parse_memory_quantity(const char *text, uint64_t *bytes);

/* "600", "600s", "10m", "1h" in seconds; -1 when it is none of these. */
int ksv_parse_duration_s(const char *text, int64_t *seconds);

/* Knative's target-utilization-percentage: "1".."100", decimals allowed; -1 otherwise. */
int ksv_parse_utilization_percent(const char *text, double *percent);

/* Appends json as deterministic JSON: object keys sorted bytewise, no whitespace. */
void ksv_manifest_write_sorted_json(const json_object *json, ksv_sb *out);

#endif
