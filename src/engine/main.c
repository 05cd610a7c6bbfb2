/* main.c: ksv-engine: parse flags, prepare the state dir (lock, token, address), restore the
 * applied state, serve, and shut down gracefully on SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "common/clock.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "config.h"
#include "engine/batcher.h"
#include "engine/events.h"
#include "engine/ext_runtime.h"
#include "engine/fetch_once.h"
#include "engine/gate.h"
#include "engine/mirror.h"
#include "engine/http_server.h"
#include "engine/proxy.h"
#include "engine/options.h"
#include "engine/registry.h"
#include "engine/runtime.h"
#include "http/http_client.h"

#define SHUTDOWN_GRACE_S 10.0

static void print_version(void)
{
    ksv_runtime_build b;
    ksv_runtime_build_info(&b);
    printf("ksv-engine %s\n", PACKAGE_VERSION);
    if (b.cuda[0])
        printf("cuda: yes (%s)\n", b.cuda);
    else
        printf("cuda: no\n");
    printf("xgboost: %s\n", b.xgboost);
    printf("runtimes: %s\n", ksv_runtime_names());
}

/* Holds an exclusive lock on STATE_DIR/lock for the process lifetime so two engines can
 * never write one state dir. */
static int lock_state_dir(const char *dir, int *fd_out, ksv_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ksv_err_set(err, 1, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        close(fd);
        return ksv_err_set(err, 1, "state dir %s is in use by another ksv-engine (pid %s)",
                           dir, pid[0] ? pid : "?");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        ksv_log(KSV_LOG_WARN, NULL, "could not write the pid into %s", path);
    *fd_out = fd;
    return 0;
}

/* Reads the admin token, generating STATE_DIR/token (0600) when no file is given and none
 * exists yet. The token itself is never logged. */
static int load_token(const ksv_engine_options *opt, char *token, size_t cap, ksv_err *err)
{
    char path[PATH_MAX];
    if (opt->token_file)
        snprintf(path, sizeof path, "%s", opt->token_file);
    else
        snprintf(path, sizeof path, "%s/token", opt->state_dir);
    char *text = NULL;
    ksv_err rerr;
    if (ksv_read_file(path, 4096, &text, NULL, &rerr) != 0) {
        if (rerr.status != 404 || opt->token_file)
            return ksv_err_set(err, 1, "token: %s", rerr.msg);
        unsigned char raw[32];
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
            if (fd >= 0)
                close(fd);
            return ksv_err_set(err, 1, "cannot read /dev/urandom for a token");
        }
        close(fd);
        char hex[2 * sizeof raw + 2];
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        strcat(hex, "\n");
        if (ksv_write_file_atomic(path, hex, strlen(hex), 0600, err) != 0)
            return -1;
        chmod(path, 0600);
        ksv_log(KSV_LOG_INFO, NULL, "generated an admin token in %s", path);
        return load_token(opt, token, cap, err);
    }
    size_t n = strcspn(text, " \t\r\n");
    if (n == 0 || n >= cap) {
        free(text);
        return ksv_err_set(err, 1, "token file %s is empty or too long", path);
    }
    memcpy(token, text, n);
    token[n] = '\0';
    free(text);
    return 0;
}

/* KSV_TEST_LOAD_DELAY_MS: milliseconds added to every model load, so that tests (and
 * demonstrations of the cold-start queue) can hold a load open. Not for production. */
static int test_load_delay_ms(void)
{
    const char *v = getenv("KSV_TEST_LOAD_DELAY_MS");
    if (!v || !*v)
        return 0;
    char *end;
    long ms = strtol(v, &end, 10);
    return *end || ms < 0 || ms > 600000 ? 0 : (int)ms;
}

/* KSV_TEST_CLOCK=OFFSET_S: the engine's elastic bookkeeping runs on a clock that starts
 * OFFSET_S seconds from now and that POST /ksv/v1/test/clock moves forward, so that tests
 * play hours of residency in seconds (common/clock.h). Not for production. */
static bool test_clock_offset(double *offset_s)
{
    const char *v = getenv("KSV_TEST_CLOCK");
    if (!v || !*v)
        return false;
    char *end;
    *offset_s = strtod(v, &end);
    return !*end && *offset_s >= -10 * 365 * 86400.0 && *offset_s <= 10 * 365 * 86400.0;
}

static int apply_cli_models(ksv_registry *reg, const ksv_engine_options *opt, ksv_err *err)
{
    ksv_model_spec *spec = calloc(1, sizeof *spec);
    if (!spec)
        return ksv_err_set(err, 1, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < opt->n_models && rc == 0; i++) {
        const ksv_cli_model *m = &opt->models[i];
        ksv_model_spec_standalone(spec, m->name, m->uri, m->runtime);
        rc = ksv_registry_put(reg, spec, err);
    }
    free(spec);
    return rc;
}

/* libxgboost's OpenMP runtime spins its idle workers after each parallel region (it does
 * some while loading a model, whatever the booster's nthread), which was half of an
 * engine's CPU while a fleet applied 20 small models: 19 ms of CPU per load, 9 ms with
 * passive waiting (docs/BENCHMARKS.md, "A fleet"). libgomp reads OMP_WAIT_POLICY when it
 * is loaded, before main, so an engine started without it sets it and starts itself again,
 * once. An operator's own OMP_WAIT_POLICY is kept; where /proc/self/exe cannot be run
 * the engine goes on as it is. */
static void passive_openmp(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    /* The marker tells the external runtimes' supervisor that the setting is the engine's
     * own, not the operator's: a runtime (llama.cpp's server runs on OpenMP) gets the
     * environment the engine was started with. */
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0 ||
        setenv(KSV_ENGINE_OMP_MARKER, "1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    passive_openmp(argv);
    ksv_engine_options *opt = calloc(1, sizeof *opt);
    ksv_err err;
    ksv_err_clear(&err);
    if (!opt)
        return 1;
    if (ksv_engine_parse_options(argc, argv, opt, &err) != 0 ||
        (!opt->show_help && !opt->show_version && ksv_engine_scan_model_dir(opt, &err) != 0)) {
        fprintf(stderr, "ksv-engine: %s\nTry 'ksv-engine --help'.\n", err.msg);
        free(opt);
        return 2;
    }
    if (opt->show_help || opt->show_version) {
        if (opt->show_help)
            ksv_engine_usage(stdout);
        else
            print_version();
        free(opt);
        return 0;
    }
    ksv_log_set_level(opt->log_level);
    /* Bodies, decoded tensors and answers of large requests are mapped and unmapped rather
     * than kept in the heap: glibc's adaptive threshold would otherwise rise after the first
     * large free and keep hundreds of MB after a burst of large requests (issue 11). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    /* Once, before any thread: the loader fetches http(s) models with libcurl. */
    ksv_err init_err;
    if (ksv_http_global_init(&init_err) != 0) {
        fprintf(stderr, "ksv-engine: libcurl failed to initialise\n");
        free(opt);
        return 1;
    }

    if (opt->fetch_uri) {
        int code = ksv_fetch_once(opt);
        free(opt);
        return code;
    }

    /* Signals are taken synchronously by this thread; every thread started below
     * inherits the mask. SIGPIPE is ignored: a vanished client is not our death. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1, lock_fd = -1, listen_fd = -1;
    char token[256], bound[128], path[PATH_MAX];
    ksv_registry *reg = NULL;
    ksv_http_server *srv = NULL;
    ksv_gpu_telemetry *gpu = NULL;
    ksv_repository *repo = NULL;
    ksv_event_log *events = NULL;
    ksv_gate *gate = NULL;
    ksv_mirror *mirror = NULL;
    ksv_proxy *proxy = NULL;
    ksv_engine_info info = {0};
    ksv_clock test_clock;
    double clock_offset = 0;
    bool use_test_clock = test_clock_offset(&clock_offset);
    ksv_clock_init(&test_clock, clock_offset);

    if (ksv_mkdir_p(opt->state_dir, 0700, &err) != 0 ||
        lock_state_dir(opt->state_dir, &lock_fd, &err) != 0 ||
        ksv_events_open(opt->state_dir, 0, &events, &err) != 0)
        goto fail;
    if (use_test_clock) {
        ksv_log(KSV_LOG_WARN, NULL, "KSV_TEST_CLOCK: a test clock, %+.0f s from now", clock_offset);
        ksv_events_set_clock(events, &test_clock);
    }
    /* The address file says where the engine that holds the lock listens: one left by an
     * earlier run must not vouch for a port this run has not bound (yet, or ever). */
    snprintf(path, sizeof path, "%s/address", opt->state_dir);
    if (unlink(path) != 0 && errno != ENOENT)
        ksv_log(KSV_LOG_WARN, NULL, "cannot remove the old %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/state.json", opt->state_dir);
    char cache_dir[PATH_MAX], reload_dir[PATH_MAX];
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", opt->state_dir);
    snprintf(reload_dir, sizeof reload_dir, "%s/reload", opt->state_dir);
    ksv_registry_config cfg = {
        /* The HTTP threads and the heavy-request threads each have a worker index. */
        .workers = opt->threads + ksv_http_heavy_threads(opt->threads),
        .gpu = strcmp(opt->gpu, "off") == 0 ? -1
               : strcmp(opt->gpu, "auto") == 0 ? 0 : atoi(opt->gpu),
        .state_file = path,
        .cache_dir = cache_dir,
        .reload_dir = reload_dir,
        .fetch_timeout_s = opt->fetch_timeout,
        .fetch_stall_s = opt->fetch_stall,
        .load_delay_ms = test_load_delay_ms(),
        .max_model_bytes = opt->max_model_size,
        .cache_max = opt->cache_max,
        .memory_budget = opt->memory_budget,
        .gpu_memory_budget = opt->gpu_memory_budget,
        .events = events,
        .clock = use_test_clock ? &test_clock : NULL,
    };
    if (ksv_registry_create(&cfg, &reg, &err) != 0 || ksv_registry_restore(reg, &err) != 0 ||
        apply_cli_models(reg, opt, &err) != 0 ||
        ksv_repository_create(opt->model_dir, KSV_DEFAULT_RUNTIME, &repo, &err) != 0 ||
        ksv_gate_create(reg, events, opt->state_dir, &gate, &err) != 0 ||
        ksv_mirror_start(reg, &mirror, &err) != 0)
        goto fail;
    ksv_runtime_build build;
    ksv_runtime_build_info(&build);
    if (strcmp(opt->gpu, "off") != 0)
        ksv_log(KSV_LOG_INFO, NULL, "gpu: %s",
                build.cuda[0] ? "CUDA build; ksv-forest probes for a device at load"
                              : "this build has no CUDA; every runtime runs on the CPU");
    /* Monitoring, not inference: GPU gauges are read even with --gpu off. */
    if (ksv_gpu_telemetry_open(getenv("KSV_NVML_LIBRARY"), &gpu) != 0)
        ksv_log(KSV_LOG_WARN, NULL, "gpu telemetry: out of memory; no GPU gauges");
    /* The port is bound before a first token is made: a node whose port someone else
     * holds never gets a token written for an engine that is not there. */
    if (ksv_proxy_create(&proxy, &err) != 0 ||
        ksv_http_listen(opt->listen, &listen_fd, bound, sizeof bound, &err) != 0)
        goto fail;
    if (load_token(opt, token, sizeof token, &err) != 0) {
        close(listen_fd);
        goto fail;
    }
    info = (ksv_engine_info){
        .version = PACKAGE_VERSION,
        .token = token,
        .registry = reg,
        .max_body = opt->max_body,
        .threads = opt->threads,
        .started_unix = ksv_wall_s(),
        .listen_address = bound,
        .state_dir = opt->state_dir,
        .gpu = gpu,
        .repository = repo,
        .events = events,
        .gate = gate,
        .mirror = mirror,
        .proxy = proxy,
        .clock = use_test_clock ? &test_clock : NULL,
    };
    ksv_http_limits limits = {
        .request_timeout = opt->request_timeout,
        .header_timeout = opt->header_timeout,
        .inflight_bytes = opt->max_inflight,
        .max_connections = opt->max_connections,
        .per_ip_connections = opt->max_connections_per_ip,
    };
    if (ksv_http_server_start(&info, listen_fd, &limits, &srv, &err) != 0) {
        close(listen_fd);
        goto fail;
    }
    /* Recorded before the address file appears: whoever waits for that sees the event. */
    ksv_events_append(events, NULL, NULL, "engine-start", NULL,
                      "ksv-engine %s started on %s (pid %ld)", PACKAGE_VERSION, bound,
                      (long)getpid());
    {
        char addr_path[PATH_MAX], line[160];
        snprintf(addr_path, sizeof addr_path, "%s/address", opt->state_dir);
        int n = snprintf(line, sizeof line, "%s\n", bound);
        if (ksv_write_file_atomic(addr_path, line, (size_t)n, 0644, &err) != 0)
            goto fail;
    }
    ksv_log(KSV_LOG_INFO, NULL, "ksv-engine %s serving on http://%s (%u threads, state %s)",
            PACKAGE_VERSION, bound, opt->threads, opt->state_dir);
    {
        const ksv_http_limits *l = ksv_http_server_limits(srv);
        ksv_log(KSV_LOG_INFO, NULL,
                "limits: %zu MiB of bodies in flight, %u connections (%u per IP), headers "
                "within %.0f s, bodies within %.0f s",
                l->inflight_bytes >> 20, l->max_connections, l->per_ip_connections,
                l->header_timeout, l->request_timeout);
    }

    int sig = 0;
    sigwait(&sigs, &sig);
    ksv_log(KSV_LOG_INFO, NULL, "%s: finishing in-flight requests, then exiting",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    ksv_http_server_quiesce(srv);
    /* Requests already read from keep-alive connections are still answered: wait until
     * none is between its headers and its response, bounded. */
    double deadline = ksv_mono_s() + SHUTDOWN_GRACE_S;
    struct timespec settle = {0, 50 * 1000000L};
    nanosleep(&settle, NULL);
    while ((ksv_http_server_active(srv) > 0 || ksv_registry_total_inflight(reg) > 0) &&
           ksv_mono_s() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* Requests still waiting for a cold start are answered (503) before the server stops:
     * a parked connection must be resumed before libmicrohttpd may shut down. */
    ksv_registry_close_cold_queue(reg);
    deadline = ksv_mono_s() + 2.0;
    while (ksv_http_server_active(srv) > 0 && ksv_mono_s() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    rc = 0;
fail:
    if (reg && rc != 0)
        ksv_registry_close_cold_queue(reg);
    if (rc != 0)
        ksv_log(KSV_LOG_ERROR, NULL, "%s", err.msg);
    /* Forwarded requests still running are cancelled (their connections resume and
     * close) before the server stops; runtimes stop with the registry. */
    ksv_proxy_shutdown(proxy);
    ksv_http_server_stop(srv);
    ksv_gate_destroy(gate);
    ksv_mirror_stop(mirror);
    ksv_proxy_destroy(proxy);
    ksv_gpu_telemetry_close(gpu);
    ksv_registry_destroy(reg);
    ksv_repository_destroy(repo);
    ksv_events_close(events);
    if (lock_fd >= 0)
        close(lock_fd);
    free(opt);
    return rc;
}
