/* options.h: ksv-engine's command line (`ksv-engine --help`; docs/OPERATIONS.md). */
#ifndef KSV_ENGINE_OPTIONS_H
#define KSV_ENGINE_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>

#include "common/error.h"
#include "common/log.h"
#include "engine/model_spec.h"

#define KSV_MAX_CLI_MODELS 64

typedef struct ksv_cli_model {
    char name[KSV_NAME_MAX];
    char uri[KSV_URI_MAX];
    char runtime[32];
} ksv_cli_model;

typedef struct ksv_engine_options {
    const char *listen;           /* ADDR:PORT */
    char state_dir[1024];
    const char *token_file;       /* NULL: STATE_DIR/token, generated when missing */
    unsigned threads;
    const char *gpu;              /* auto | off | N */
    size_t max_body;
    size_t memory_budget;         /* --memory-budget bytes; 0: none */
    size_t gpu_memory_budget;     /* --gpu-memory-budget bytes; 0: none */
    double request_timeout;       /* seconds to deliver a body */
    double header_timeout;        /* seconds to deliver a request's headers */
    size_t max_inflight;          /* bodies in flight, all requests together (0: default) */
    unsigned max_connections;     /* 0: default (4096, under the open-file limit) */
    unsigned max_connections_per_ip; /* 0: half of max_connections */
    double fetch_timeout;         /* seconds one model download may take in all */
    double fetch_stall;           /* seconds a download may move under 1 KiB */
    size_t cache_max;             /* model cache cap in bytes; 0: none */
    size_t max_model_size;        /* largest model downloaded or unpacked */
    ksv_log_level log_level;
    ksv_cli_model models[KSV_MAX_CLI_MODELS];
    size_t n_models;
    const char *model_dir;
    /* --fetch URI [--sha256 HEX]: fetch one model into STATE_DIR/cache, print its local
     * path, exit (what `ksv` runs on the operator's side for ksv.io/fetch: operator). */
    const char *fetch_uri;
    const char *fetch_sha256;
    bool show_help, show_version;
} ksv_engine_options;

/* Parses argv. Returns 0, or -1 with err set (a usage error: exit 2). */
int ksv_engine_parse_options(int argc, char **argv, ksv_engine_options *opt, ksv_err *err);
/* Adds one model per subfolder of opt->model_dir. */
int ksv_engine_scan_model_dir(ksv_engine_options *opt, ksv_err *err);
void ksv_engine_usage(FILE *out);

#endif
