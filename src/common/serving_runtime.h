/* serving_runtime.h: KServe ServingRuntime / ClusterServingRuntime documents
 * (serving.kserve.io/v1alpha1), which ksv runs as processes on a node (docs/OPERATIONS.md,
 * "External runtimes").
 *
 * What ksv reads of one:
 *   metadata.name, metadata.namespace (ServingRuntime only; default "default")
 *   spec.supportedModelFormats[]: name, version, autoSelect (default false), priority
 *   spec.protocolVersions: v1, v2, openai (grpc-* are kept but not served)
 *   spec.disabled
 *   spec.containers[0]: command (required), args, env[] (name/value), readinessProbe.httpGet.path
 * Everything else is kept in the document as written.
 *
 * The engine gets a runtime as its "external" block (ext_runtime.h): command, args, env,
 * protocols, health_path. ksv_serving_runtime_engine_block builds it for one model format,
 * substituting {{.Labels.modelClass}} (KServe's per-format MLServer implementation class);
 * the engine substitutes /mnt/models, {{.Name}}, {{.Port}} and $PORT itself. */
#ifndef KSV_COMMON_SERVING_RUNTIME_H
#define KSV_COMMON_SERVING_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/strbuf.h"

#define KSV_SERVING_RUNTIME_API_VERSION "serving.kserve.io/v1alpha1"

typedef struct ksv_runtime_format {
    char *name;                   /* lowercase, e.g. "sklearn" */
    char *version;                /* NULL when absent */
    bool auto_select;
    int priority;                 /* 0 when absent */
} ksv_runtime_format;

typedef struct ksv_serving_runtime {
    char *source;                 /* file it came from ("" when from the store) */
    int line;
    bool cluster;                 /* ClusterServingRuntime */
    char *name;
    char *namespace_name;         /* "" for a ClusterServingRuntime */
    ksv_runtime_format *formats;
    size_t n_formats;
    unsigned protocols;           /* bits: 1 v1, 2 v2, 4 openai */
    bool disabled;
    json_object *original;        /* the whole document (one reference owned) */
} ksv_serving_runtime;

/* True when kind names a ServingRuntime or ClusterServingRuntime. */
bool ksv_is_serving_runtime_kind(const char *kind);

/* Reads and validates one document (already parsed to JSON). where prefixes messages
 * ("FILE:LINE"). 400 with the field at fault: a missing command, an unknown protocol, no
 * model format. On success out owns its strings and a reference to doc. */
int ksv_serving_runtime_from_json(json_object *doc, const char *where, ksv_serving_runtime *out,
                                  ksv_err *err);
void ksv_serving_runtime_free(ksv_serving_runtime *rt);

/* The format entry for name (case-insensitive), or NULL. */
const ksv_runtime_format *ksv_serving_runtime_format(const ksv_serving_runtime *rt,
                                                     const char *name);

/* Appends the engine's "external" block for serving a model of format `format` (compact
 * JSON). protocol_version: the InferenceService's, or NULL. 400 when the runtime cannot. */
int ksv_serving_runtime_engine_block(const ksv_serving_runtime *rt, const char *format,
                                     ksv_sb *out, ksv_err *err);

#endif
