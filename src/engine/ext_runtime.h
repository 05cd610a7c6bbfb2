/* ext_runtime.h: an external serving runtime (a KServe ServingRuntime's container, run as a
 * process on the node) supervised by the engine for one revision.
 *
 * The revision spec carries the runtime's definition as a JSON object ("external",
 * docs/API.md): command, args, env, protocols, health path. Starting one:
 *   - substitutes /mnt/models (the local model path), {{.Name}} (the model), {{.Port}} and
 *     $PORT (a free loopback port chosen here) in command, args, env values and the health
 *     path; sets PORT and CUDA_VISIBLE_DEVICES (the node's GPU choice, "" for CPU only);
 *   - runs it in its own process group under a small watcher process that kills the group
 *     when the engine dies, even by kill -9 (PR_SET_PDEATHSIG), so no runtime is orphaned;
 *   - keeps the last 200 lines of its stdout/stderr;
 *   - waits until GET health_path answers 200 (ready_timeout_s; the revision fails with the
 *     runtime's last lines when it never does or exits first);
 *   - once ready, restarts it when it exits, after 1 s doubling to 60 s of backoff.
 * Stopping sends SIGTERM to the group, then SIGKILL after grace_s. */
#ifndef KSV_ENGINE_EXT_RUNTIME_H
#define KSV_ENGINE_EXT_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/strbuf.h"

#define KSV_EXT_SPEC_MAX 4096      /* the external block as compact JSON */
#define KSV_EXT_LOG_LINES 200
#define KSV_EXT_MAX_ARGS 64
#define KSV_EXT_MAX_ENV 64
/* Set beside OMP_WAIT_POLICY when the engine chose that setting for itself (main.c): runtimes
 * are started without both. */
#define KSV_ENGINE_OMP_MARKER "KSV_ENGINE_SET_OMP_WAIT_POLICY"

/* Protocols a runtime speaks (ServingRuntime protocolVersions). */
enum {
    KSV_PROTO_V1 = 1,
    KSV_PROTO_V2 = 2,
    KSV_PROTO_OPENAI = 4,
};

/* Validates an "external" object of an admin PUT body and writes its canonical compact
 * JSON into out (cap bytes). 400 with the field at fault otherwise. */
int ksv_ext_spec_from_json(json_object *ext, const char *where, char *out, size_t cap,
                           ksv_err *err);
/* The KSV_PROTO_* bits of a validated external block (0 when it is not one). */
unsigned ksv_ext_spec_protocols(const char *external_json);

/* Where a bare command name (no '/') is looked for first: $KSV_RUNTIMES_VENV/bin, else
 * ${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-runtimes/bin (scripts/runtimes.sh install). */
int ksv_ext_runtimes_bin_dir(char *out, size_t cap);

/* The local path that /mnt/models stands for: a file:///abs or /abs storage URI's target
 * (a model file or a folder), which must exist. */
int ksv_ext_model_path(const char *uri, char *out, size_t cap, ksv_err *err);

/* The path that /mnt/models stands for when the engine downloaded the model (s3://, gs://,
 * hf://, http(s)://) into its cache folder: the one file when the folder holds exactly one
 * regular file (a single .gguf, which llama.cpp wants as a file), else the folder itself
 * (an archive's or a bucket prefix's contents, as KServe's storage initializer lays
 * them out under /mnt/models). */
int ksv_ext_fetched_path(const char *folder, char *out, size_t cap, ksv_err *err);

typedef struct ksv_ext_launch {
    const char *model;            /* {{.Name}} */
    const char *revision;         /* for log lines */
    const char *model_path;       /* /mnt/models */
    const char *external_json;    /* the revision's validated external block */
    int gpu;                      /* CUDA_VISIBLE_DEVICES; -1: "" (no GPU) */
} ksv_ext_launch;

typedef struct ksv_ext_runtime ksv_ext_runtime;

/* Starts the runtime and waits until it is ready. On failure nothing is left running and
 * err says why, with the runtime's last output lines. */
int ksv_ext_start(const ksv_ext_launch *launch, ksv_ext_runtime **out, ksv_err *err);
/* Stops the process group (SIGTERM, SIGKILL after the grace period) and frees rt. */
void ksv_ext_stop(ksv_ext_runtime *rt);

/* The loopback port it listens on now; 0 while it is down or restarting. */
int ksv_ext_port(ksv_ext_runtime *rt);
unsigned ksv_ext_protocols(const ksv_ext_runtime *rt);
uint64_t ksv_ext_restarts(ksv_ext_runtime *rt);
/* Appends {"lines":[...],"restarts":N,"state":"...","pid":N} (oldest line first). */
void ksv_ext_write_logs(ksv_ext_runtime *rt, ksv_sb *sb);
/* Copies the last n lines, joined by "\n", into out (for error messages). */
void ksv_ext_tail(ksv_ext_runtime *rt, int n, char *out, size_t cap);

#endif
