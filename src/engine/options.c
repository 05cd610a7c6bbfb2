/* options.c: ksv-engine's command line. */
#include <stdio.h>

#include "engine/options.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/runtime.h"
#include "engine/storage.h"

void ksv_engine_usage(FILE *out)
{
    fputs(
        "Usage: ksv-engine [OPTION]...\n"
        "Serve XGBoost models over KServe's V2 and V1 REST protocols, with revisions,\n"
        "weighted traffic, an admin API and Prometheus metrics.\n"
        "\n"
        "  --listen ADDR:PORT        address to serve on (default 127.0.0.1:8080; port 0\n"
        "                            picks a free one, written to STATE_DIR/address)\n"
        "  --state-dir DIR           applied state, token, address, model cache and the\n"
        "                            cold-start copies in STATE_DIR/reload (default\n"
        "                            $XDG_STATE_HOME/ksv-engine; root: /var/lib/ksv-engine)\n"
        "  --token-file FILE         admin bearer token (default STATE_DIR/token, generated\n"
        "                            with mode 0600 when missing)\n"
        "  --threads N               HTTP/inference threads (default: online CPUs)\n"
        "  --gpu auto|off|N          GPU for ksv-forest (default auto; CPU when none)\n"
        "  --max-body BYTES          largest request body, K/M/G suffixes (default 64M)\n"
        "  --request-timeout SECS    time a client has to send its body (default 30)\n"
        "  --header-timeout SECS     time a client has to send a request's headers\n"
        "                            (default 10)\n"
        "  --max-inflight BYTES      request bodies in flight, all clients together, each\n"
        "                            counted 4 times (decoded, answered); past it: 503 at\n"
        "                            once (default 1G, at least 4 x --max-body)\n"
        "  --max-connections N       open connections (default 4096, kept under the\n"
        "                            open-file limit, which is raised to its hard limit)\n"
        "  --max-connections-per-ip N  (default half of --max-connections)\n"
        "  --fetch URI [--sha256 HEX]\n"
        "                            fetch one model (s3://, gs://, hf://, http(s)://) into\n"
        "                            STATE_DIR/cache, print its local path and exit: serves\n"
        "                            nothing (ksv runs it for ksv.io/fetch: operator);\n"
        "                            not on a serving engine's state dir; URI - reads it\n"
        "                            from $KSV_FETCH_URI (a presigned URL stays out of ps)\n"
        "  --fetch-timeout SECS      longest a model download may take (default 3600)\n"
        "  --fetch-stall SECS        stop a download that moves under 1 KiB in this long\n"
        "                            (default 30)\n"
        "  --cache-max SIZE          cap the model cache (STATE_DIR/cache) at SIZE, K/M/G\n"
        "                            suffixes; least recently used models go first, never\n"
        "                            one a revision holds (default: no cap)\n"
        "  --max-model-size SIZE     largest model downloaded or unpacked from an archive\n"
        "                            (default 8G)\n"
        "  --memory-budget SIZE      host memory the loaded models may hold, each as its\n"
        "                            load allocated it (K/M/G; default none): loads first\n"
        "                            unload minReplicas-0 models, least recently used\n"
        "                            first, else fail\n"
        "  --gpu-memory-budget SIZE  the same for GPU memory: what revisions declare\n"
        "                            (resources.limits ksv.io/gpu-memory) or, on a GPU,\n"
        "                            what their runtime holds there\n"
        "  --log-level LEVEL         debug, info, warn or error (default info)\n"
        "  --model NAME=URI[,runtime=R]\n"
        "                            serve a model standalone as revision NAME-00001\n"
        "                            (repeatable; URI: /path or file:///path to a .json,\n"
        "                            .ubj or .bst file (XGBoost; LightGBM's text model as\n"
        "                            .txt or .bst), or a folder holding one;\n"
        "                            http(s):// to a model file or archive; s3://BUCKET/KEY\n"
        "                            or PREFIX (AWS_* and S3_* variables); gs://BUCKET/PATH;\n"
        "                            hf://ORG/REPO[:REVISION][/PATH] (HF_ENDPOINT, HF_TOKEN);\n"
        "                            R: auto (default: ksv-forest where bit-equal to\n"
        "                            libxgboost, else ksv-xgboost; LightGBM: ksv-forest),\n"
        "                            ksv-forest or ksv-xgboost)\n"
        "  --model-dir DIR           serve every subfolder of DIR as a model named after it\n"
        "  --version                 print the version and build features\n"
        "  --help                    print this help\n"
        "\n"
        "Data plane: /v2/health/{live,ready}, /v2/models[/M[/versions/R]][/ready|/infer],\n"
        "/v1/models/M[:predict], /metrics. Admin API: /ksv/v1 (see docs/API.md).\n",
        out);
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned long long mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1ull << 10;
    else if (*end == 'M' || *end == 'm')
        mult = 1ull << 20;
    else if (*end == 'G' || *end == 'g')
        mult = 1ull << 30;
    if (mult != 1)
        end++;
    if (*end == 'i' && mult != 1)
        end++;
    if (*end == 'B')
        end++;
    if (*end || v == 0 || v > (1ull << 40) / mult)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}

static int add_model(ksv_engine_options *opt, const char *name, size_t name_len,
                     const char *uri, size_t uri_len, const char *runtime, ksv_err *err)
{
    if (opt->n_models == KSV_MAX_CLI_MODELS)
        return ksv_err_set(err, 2, "too many models (at most %d)", KSV_MAX_CLI_MODELS);
    ksv_cli_model *m = &opt->models[opt->n_models];
    if (name_len == 0 || name_len >= sizeof m->name || uri_len == 0 || uri_len >= sizeof m->uri)
        return ksv_err_set(err, 2, "--model: expected NAME=URI[,runtime=R]");
    memcpy(m->name, name, name_len);
    m->name[name_len] = '\0';
    memcpy(m->uri, uri, uri_len);
    m->uri[uri_len] = '\0';
    snprintf(m->runtime, sizeof m->runtime, "%s", runtime);
    if (!ksv_valid_name(m->name))
        return ksv_err_set(err, 2, "--model: \"%s\" is not a valid model name "
                                   "(lowercase letters, digits, '-', '.', '_')", m->name);
    if (!ksv_runtime_find(m->runtime))
        return ksv_err_set(err, 2, "--model %s: unknown runtime %s (known: %s)", m->name,
                           m->runtime, ksv_runtime_names());
    for (size_t i = 0; i < opt->n_models; i++)
        if (strcmp(opt->models[i].name, m->name) == 0)
            return ksv_err_set(err, 2, "--model %s given twice", m->name);
    opt->n_models++;
    return 0;
}

/* NAME=URI[,runtime=R] */
static int parse_model_flag(ksv_engine_options *opt, const char *arg, ksv_err *err)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return ksv_err_set(err, 2, "--model %s: expected NAME=URI[,runtime=R]", arg);
    const char *uri = eq + 1;
    const char *comma = strstr(uri, ",runtime=");
    const char *runtime = KSV_DEFAULT_RUNTIME;
    size_t uri_len = strlen(uri);
    if (comma) {
        uri_len = (size_t)(comma - uri);
        runtime = comma + strlen(",runtime=");
    }
    return add_model(opt, arg, (size_t)(eq - arg), uri, uri_len, runtime, err);
}

int ksv_engine_scan_model_dir(ksv_engine_options *opt, ksv_err *err)
{
    if (!opt->model_dir)
        return 0;
    char base[PATH_MAX];
    if (!realpath(opt->model_dir, base))
        return ksv_err_set(err, 2, "--model-dir %s: %s", opt->model_dir, strerror(errno));
    DIR *d = opendir(base);
    if (!d)
        return ksv_err_set(err, 2, "--model-dir %s: %s", opt->model_dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        struct stat st;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", base, de->d_name) >= sizeof path ||
            stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        bool flagged = false;
        for (size_t i = 0; i < opt->n_models; i++)
            flagged |= strcmp(opt->models[i].name, de->d_name) == 0;
        if (flagged)
            continue; /* an explicit --model of the same name wins */
        rc = add_model(opt, de->d_name, strlen(de->d_name), path, strlen(path), KSV_DEFAULT_RUNTIME,
                       err);
    }
    closedir(d);
    return rc;
}

static void default_state_dir(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (geteuid() == 0 && !xdg)
        snprintf(out, cap, "/var/lib/ksv-engine");
    else if (xdg && *xdg)
        snprintf(out, cap, "%s/ksv-engine", xdg);
    else
        snprintf(out, cap, "%s/.local/state/ksv-engine", home ? home : ".");
}

int ksv_engine_parse_options(int argc, char **argv, ksv_engine_options *opt, ksv_err *err)
{
    enum { O_LISTEN = 256, O_STATE, O_TOKEN, O_THREADS, O_GPU, O_MAXBODY, O_TIMEOUT, O_LOG,
           O_FETCH_TIMEOUT, O_FETCH_STALL, O_CACHE_MAX, O_MAX_MODEL, O_MEMORY_BUDGET, O_GPU_MEMORY_BUDGET,
           O_HEADER_TIMEOUT, O_MAX_INFLIGHT, O_MAX_CONNS, O_MAX_CONNS_IP, O_MODEL, O_MODELDIR,
           O_FETCH, O_SHA256, O_VERSION, O_HELP };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"state-dir", required_argument, NULL, O_STATE},
        {"token-file", required_argument, NULL, O_TOKEN},
        {"threads", required_argument, NULL, O_THREADS},
        {"gpu", required_argument, NULL, O_GPU},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"request-timeout", required_argument, NULL, O_TIMEOUT},
        {"header-timeout", required_argument, NULL, O_HEADER_TIMEOUT},
        {"max-inflight", required_argument, NULL, O_MAX_INFLIGHT},
        {"max-connections", required_argument, NULL, O_MAX_CONNS},
        {"max-connections-per-ip", required_argument, NULL, O_MAX_CONNS_IP},
        {"log-level", required_argument, NULL, O_LOG},
        {"fetch-timeout", required_argument, NULL, O_FETCH_TIMEOUT},
        {"fetch-stall", required_argument, NULL, O_FETCH_STALL},
        {"cache-max", required_argument, NULL, O_CACHE_MAX},
        {"max-model-size", required_argument, NULL, O_MAX_MODEL},
        {"memory-budget", required_argument, NULL, O_MEMORY_BUDGET},
        {"gpu-memory-budget", required_argument, NULL, O_GPU_MEMORY_BUDGET},
        {"model", required_argument, NULL, O_MODEL},
        {"model-dir", required_argument, NULL, O_MODELDIR},
        {"fetch", required_argument, NULL, O_FETCH},
        {"sha256", required_argument, NULL, O_SHA256},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(opt, 0, sizeof *opt);
    opt->listen = "127.0.0.1:8080";
    opt->gpu = "auto";
    opt->max_body = 64u << 20;
    opt->request_timeout = 30;
    opt->header_timeout = 10;
    opt->fetch_timeout = 3600;
    opt->fetch_stall = 30;
    opt->max_model_size = KSV_STORAGE_MAX_DOWNLOAD;
    opt->log_level = KSV_LOG_INFO;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    opt->threads = ncpu > 0 ? (unsigned)ncpu : 1;
    default_state_dir(opt->state_dir, sizeof opt->state_dir);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case O_LISTEN:
            opt->listen = optarg;
            break;
        case O_STATE:
            if (strlen(optarg) >= sizeof opt->state_dir)
                return ksv_err_set(err, 2, "--state-dir: path too long");
            snprintf(opt->state_dir, sizeof opt->state_dir, "%s", optarg);
            break;
        case O_TOKEN:
            opt->token_file = optarg;
            break;
        case O_THREADS: {
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1024)
                return ksv_err_set(err, 2, "--threads: expected 1..1024, got %s", optarg);
            opt->threads = (unsigned)n;
            break;
        }
        case O_GPU:
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "off") != 0) {
                long n = strtol(optarg, &end, 10);
                if (*end || n < 0 || n > 64)
                    return ksv_err_set(err, 2, "--gpu: expected auto, off or a GPU index");
            }
            opt->gpu = optarg;
            break;
        case O_MAXBODY:
            if (parse_size(optarg, &opt->max_body))
                return ksv_err_set(err, 2, "--max-body: expected a size like 1048576 or 64M");
            break;
        case O_MEMORY_BUDGET:
            if (parse_size(optarg, &opt->memory_budget))
                return ksv_err_set(err, 2, "--memory-budget: expected a size like 512M or 8G");
            break;
        case O_GPU_MEMORY_BUDGET:
            if (parse_size(optarg, &opt->gpu_memory_budget))
                return ksv_err_set(err, 2,
                                   "--gpu-memory-budget: expected a size like 512M or 8G");
            break;
        case O_TIMEOUT:
        case O_HEADER_TIMEOUT: {
            double t = strtod(optarg, &end);
            if (*end || !(t > 0 && t <= 3600))
                return ksv_err_set(err, 2, "--%s: expected seconds in (0, 3600]",
                                   c == O_TIMEOUT ? "request-timeout" : "header-timeout");
            *(c == O_TIMEOUT ? &opt->request_timeout : &opt->header_timeout) = t;
            break;
        }
        case O_MAX_INFLIGHT:
            if (parse_size(optarg, &opt->max_inflight) || opt->max_inflight == 0)
                return ksv_err_set(err, 2, "--max-inflight: expected a size like 512M or 2G");
            break;
        case O_MAX_CONNS:
        case O_MAX_CONNS_IP: {
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1000000)
                return ksv_err_set(err, 2, "--%s: expected 1..1000000, got %s",
                                   c == O_MAX_CONNS ? "max-connections"
                                                    : "max-connections-per-ip", optarg);
            *(c == O_MAX_CONNS ? &opt->max_connections : &opt->max_connections_per_ip) =
                (unsigned)n;
            break;
        }
        case O_FETCH_TIMEOUT:
        case O_FETCH_STALL: {
            double t = strtod(optarg, &end);
            if (*end || !(t > 0 && t <= 7 * 86400))
                return ksv_err_set(err, 2, "--%s: expected seconds in (0, 604800]",
                                   c == O_FETCH_TIMEOUT ? "fetch-timeout" : "fetch-stall");
            *(c == O_FETCH_TIMEOUT ? &opt->fetch_timeout : &opt->fetch_stall) = t;
            break;
        }
        case O_CACHE_MAX:
        case O_MAX_MODEL:
            if (parse_size(optarg, c == O_CACHE_MAX ? &opt->cache_max : &opt->max_model_size))
                return ksv_err_set(err, 2, "--%s: expected a size like 500M or 20G",
                                   c == O_CACHE_MAX ? "cache-max" : "max-model-size");
            break;
        case O_LOG:
            if (ksv_log_parse_level(optarg, &opt->log_level))
                return ksv_err_set(err, 2, "--log-level: expected debug, info, warn or error");
            break;
        case O_MODEL:
            if (parse_model_flag(opt, optarg, err))
                return -1;
            break;
        case O_MODELDIR:
            opt->model_dir = optarg;
            break;
        case O_FETCH:
            opt->fetch_uri = optarg;
            break;
        case O_SHA256:
            opt->fetch_sha256 = optarg;
            break;
        case O_VERSION:
            opt->show_version = true;
            break;
        case O_HELP:
            opt->show_help = true;
            break;
        default:
            if (optopt)
                return ksv_err_set(err, 2, "option requires an argument or is unknown: %s",
                                   argv[optind - 1]);
            return ksv_err_set(err, 2, "unknown option: %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ksv_err_set(err, 2, "unexpected argument: %s", argv[optind]);
    if (opt->fetch_uri && strcmp(opt->fetch_uri, "-") == 0) {
        /* The command line is every local user's to read (ps, /proc/PID/cmdline); the
         * environment only the process owner's: a presigned URL's signature goes there. */
        opt->fetch_uri = getenv("KSV_FETCH_URI");
        if (!opt->fetch_uri || !*opt->fetch_uri)
            return ksv_err_set(err, 2, "--fetch -: KSV_FETCH_URI is not set");
    }
    if (opt->fetch_sha256 && !opt->fetch_uri)
        return ksv_err_set(err, 2, "--sha256 goes with --fetch URI");
    if (opt->fetch_uri && (opt->n_models || opt->model_dir))
        return ksv_err_set(err, 2, "--fetch fetches one model and exits: no --model or "
                                   "--model-dir with it");
    return 0;
}
