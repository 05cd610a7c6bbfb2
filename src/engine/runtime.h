/* runtime.h: the interface every model runtime implements (ksv-xgboost, ksv-forest).
 *
 * A runtime turns a model file into a loaded model and predicts dense float rows with it.
 * The engine owns threading: predict() is called concurrently from up to `workers` threads,
 * each passing its own worker index in [0, workers), so a runtime may keep per-worker state
 * without locks. load() runs off the request path and must leave the model warmed (one
 * inference done) so the first real request pays no lazy setup. */
#ifndef KSV_ENGINE_RUNTIME_H
#define KSV_ENGINE_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct ksv_runtime_options {
    unsigned workers;       /* number of distinct worker indexes predict() may see */
    int predict_threads;    /* threads one predict() call may use (0: runtime default, 1) */
    const char *booster_pool; /* xgboost: "shared" (default) or "per-worker" */
    int gpu;                /* ksv-forest: device index, -1 = CPU only (--gpu off) */
    /* external: the revision's runtime definition (ext_runtime.h) and names. */
    const char *external;
    const char *model_name;
    const char *revision;
    /* SHA-256 of model bytes an earlier load of this revision already checked
     * (ksv_model_info.checked_sha256), or NULL. A runtime may skip its document check
     * for bytes with exactly this digest: a cold start re-reads the file it checked. */
    const uint8_t *checked_sha256;
    /* Where a runtime may keep a fast-reload copy of a model it loaded from checked bytes
     * (a folder of the engine's own; NULL: none), and the SHA-256 of the copy an earlier
     * load wrote (ksv_model_info.reload_sha256), or NULL. A copy whose digest is not this
     * one is never read. */
    const char *reload_dir;
    const uint8_t *reload_sha256;
} ksv_runtime_options;

typedef struct ksv_model_info {
    size_t num_features;    /* columns a row must have */
    size_t num_outputs;     /* values per row: 1 gives shape [N], K gives [N, K] */
    char objective[64];     /* e.g. "binary:logistic"; "" when unknown */
    char version[32];       /* library version that loaded it, e.g. "1.7.4" */
    char platform[16];      /* V2 metadata `platform`: "lightgbm"; "" = "xgboost" */
    bool prefers_batches;   /* one call of N rows costs far less than N calls (a GPU) */
    char runtime[32];       /* set by `auto`: the runtime that answers ("" = the one named) */
    char runtime_note[240]; /* set by `auto`: why that one */
    bool has_checked_sha256; /* the runtime checked the model document of these bytes */
    uint8_t checked_sha256[32];
    bool has_reload_sha256; /* it keeps a fast-reload copy in reload_dir with this digest */
    uint8_t reload_sha256[32];
    bool from_reload_copy;  /* this load read that copy instead of the model file */
} ksv_model_info;

/* What this build's runtimes were built with, for --version and GET /ksv/v1/node; each
 * runtime fills in what it knows (ksv_runtime_ops.build_info), the engine reports it
 * without knowing which library or toolkit is behind it. */
typedef struct ksv_runtime_build {
    char xgboost[32];       /* the libxgboost a runtime links ("1.7.4"); "" when none does */
    char cuda[32];          /* the CUDA toolkit a runtime was compiled with; "" without CUDA */
} ksv_runtime_build;

typedef struct ksv_runtime_ops {
    const char *name;       /* "ksv-xgboost" */
    /* Adds this runtime's libraries to *b; NULL when it has nothing to say. */
    void (*build_info)(ksv_runtime_build *b);
    /* true: the model is served by another process and requests are forwarded to it
     * (proxy.c); predict() is never called and path may be a folder or any file. */
    bool proxied;
    /* path is a local file. On success *model is owned by the caller until unload(). */
    int (*load)(const char *path, const ksv_runtime_options *opts, void **model,
                ksv_model_info *info, ksv_err *err);
    void (*unload)(void *model);
    /* x: rows*cols floats, row-major, NaN = missing; out: rows*info.num_outputs floats. */
    int (*predict)(void *model, unsigned worker, const float *x, size_t rows, size_t cols,
                   float *out, ksv_err *err);
} ksv_runtime_ops;

/* The runtime registered under `name`, or NULL. */
const ksv_runtime_ops *ksv_runtime_find(const char *name);
/* Comma-separated list of runtime names, for messages and --version. */
const char *ksv_runtime_names(void);
/* Every runtime's build_info, merged. */
void ksv_runtime_build_info(ksv_runtime_build *out);

extern const ksv_runtime_ops ksv_runtime_xgboost;
extern const ksv_runtime_ops ksv_runtime_forest;
extern const ksv_runtime_ops ksv_runtime_auto;

/* The runtime a model names when it names none. */
#define KSV_DEFAULT_RUNTIME "auto"

/* ksv-forest's compiled layout behind one of its handles (runtime_auto.c reads the split
 * thresholds to build its probe). */
struct forest;
const struct forest *ksv_runtime_forest_layout(const void *handle);
/* Whether a ksv-forest handle has a GPU attached, and how many predictions ran there
 * (bench/gpu-check.sh checks that large batches really take the GPU path). */
bool ksv_runtime_forest_on_gpu(const void *handle);
uint64_t ksv_runtime_forest_gpu_calls(void *handle);

/* runtime `auto`'s judge: predicts its probe batch with a ksv-forest handle and a
 * ksv-xgboost handle of cols features and width outputs; true when every output is
 * bit-equal, else false with *why saying where they differ. */
bool ksv_runtime_auto_probe(void *forest_handle, void *xgb_handle, size_t cols, size_t width,
                            char *why, size_t why_cap);
extern const ksv_runtime_ops ksv_runtime_external;

#endif
