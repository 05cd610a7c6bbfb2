/* gpu_telemetry.c: NVML loaded with dlopen, sampled at most once per cache period, written
 * as Prometheus gauges and as the node info's "gpus" array. See gpu_telemetry.h. */
#include "common/clock.h"
#include "engine/gpu_telemetry.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

/* The part of nvml.h used here (docs.nvidia.com/deploy/nvml-api). The CUDA toolkit on the
 * project's machines ships no nvml.h, and the library comes with the driver, so the types
 * are declared here with the header's layouts. The enums list enough values to have
 * nvml.h's int size. */
typedef enum nvmlReturn_enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_UNKNOWN = 999
} nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlUtilization_st {
    unsigned int gpu;    /* percent of the sample period in which a kernel ran */
    unsigned int memory; /* percent of it in which device memory was read or written */
} nvmlUtilization_t;
typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;
typedef enum nvmlTemperatureSensors_enum {
    NVML_TEMPERATURE_GPU = 0,
    NVML_TEMPERATURE_COUNT
} nvmlTemperatureSensors_t;

typedef struct nvml_api {
    nvmlReturn_t (*init_v2)(void);
    nvmlReturn_t (*shutdown)(void);
    const char *(*error_string)(nvmlReturn_t result);
    nvmlReturn_t (*device_get_count_v2)(unsigned int *count);
    nvmlReturn_t (*device_get_handle_by_index_v2)(unsigned int index, nvmlDevice_t *device);
    nvmlReturn_t (*device_get_name)(nvmlDevice_t device, char *name, unsigned int length);
    nvmlReturn_t (*device_get_utilization_rates)(nvmlDevice_t device, nvmlUtilization_t *u);
    nvmlReturn_t (*device_get_memory_info)(nvmlDevice_t device, nvmlMemory_t *memory);
    nvmlReturn_t (*device_get_temperature)(nvmlDevice_t device,
                                           nvmlTemperatureSensors_t sensor,
                                           unsigned int *celsius);
    nvmlReturn_t (*device_get_power_usage)(nvmlDevice_t device, unsigned int *milliwatts);
} nvml_api;

struct ksv_gpu_telemetry {
    void *lib;                 /* the dlopen handle; NULL when NVML is not available */
    bool initialized;          /* nvmlInit_v2 succeeded, so close owes an nvmlShutdown */
    nvml_api api;
    char reason[384];          /* why NVML is not available; "" when it is */
    size_t n_devices;
    nvmlDevice_t devices[KSV_GPU_TELEMETRY_MAX_GPUS];
    pthread_mutex_t lock;      /* guards the cache below */
    bool cache_valid;
    double cache_time;         /* CLOCK_MONOTONIC seconds of the last refresh */
    ksv_gpu_reading cache[KSV_GPU_TELEMETRY_MAX_GPUS]; /* index and name set once at open */
};

/* dlsym returns an object pointer; POSIX guarantees it converts to a function pointer of
 * the same size, and memcpy makes that conversion without a cast C11 leaves undefined. */
_Static_assert(sizeof(void *) == sizeof(nvmlReturn_t (*)(void)),
               "dlsym results must fit function pointers");

static bool resolve(ksv_gpu_telemetry *t, const char *symbol, void *slot)
{
    dlerror();
    void *sym = dlsym(t->lib, symbol);
    if (!sym) {
        snprintf(t->reason, sizeof t->reason, "missing function %s", symbol);
        return false;
    }
    memcpy(slot, &sym, sizeof sym);
    return true;
}

static void describe_nvml_error(ksv_gpu_telemetry *t, const char *call, nvmlReturn_t rc)
{
    const char *text = t->api.error_string(rc);
    snprintf(t->reason, sizeof t->reason, "%s: %s (%d)", call, text ? text : "unknown error",
             (int)rc);
}

/* Fills t->api and t->devices; on failure leaves t->reason set and returns -1. */
static int start_nvml(ksv_gpu_telemetry *t, const char *lib_path)
{
    dlerror();
    t->lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!t->lib) {
        const char *why = dlerror();
        snprintf(t->reason, sizeof t->reason, "%s", why ? why : lib_path);
        return -1;
    }
    nvml_api *a = &t->api;
    if (!resolve(t, "nvmlInit_v2", &a->init_v2) || !resolve(t, "nvmlShutdown", &a->shutdown) ||
        !resolve(t, "nvmlErrorString", &a->error_string) ||
        !resolve(t, "nvmlDeviceGetCount_v2", &a->device_get_count_v2) ||
        !resolve(t, "nvmlDeviceGetHandleByIndex_v2", &a->device_get_handle_by_index_v2) ||
        !resolve(t, "nvmlDeviceGetName", &a->device_get_name) ||
        !resolve(t, "nvmlDeviceGetUtilizationRates", &a->device_get_utilization_rates) ||
        !resolve(t, "nvmlDeviceGetMemoryInfo", &a->device_get_memory_info) ||
        !resolve(t, "nvmlDeviceGetTemperature", &a->device_get_temperature) ||
        !resolve(t, "nvmlDeviceGetPowerUsage", &a->device_get_power_usage))
        return -1;

    nvmlReturn_t rc = a->init_v2();
    if (rc != NVML_SUCCESS) {
        describe_nvml_error(t, "nvmlInit_v2", rc);
        return -1;
    }
    t->initialized = true;
    unsigned int count = 0;
    rc = a->device_get_count_v2(&count);
    if (rc != NVML_SUCCESS) {
        describe_nvml_error(t, "nvmlDeviceGetCount_v2", rc);
        return -1;
    }
    if (count > KSV_GPU_TELEMETRY_MAX_GPUS)
        ksv_log(KSV_LOG_INFO, NULL, "gpu telemetry: NVML reports %u GPUs; showing the first %d",
                count, KSV_GPU_TELEMETRY_MAX_GPUS);
    for (unsigned int i = 0; i < count && t->n_devices < KSV_GPU_TELEMETRY_MAX_GPUS; i++) {
        nvmlDevice_t dev = NULL;
        rc = a->device_get_handle_by_index_v2(i, &dev);
        if (rc != NVML_SUCCESS) {
            /* NO_PERMISSION on one device (cgroups, containers) must not hide the others. */
            const char *text = a->error_string(rc);
            ksv_log(KSV_LOG_INFO, NULL, "gpu telemetry: skipping NVML device %u: %s (%d)", i,
                    text ? text : "unknown error", (int)rc);
            continue;
        }
        ksv_gpu_reading *r = &t->cache[t->n_devices];
        r->index = i;
        char name[KSV_GPU_NAME_MAX] = "";
        if (a->device_get_name(dev, name, sizeof name) == NVML_SUCCESS) {
            name[sizeof name - 1] = '\0';
            memcpy(r->name, name, sizeof name);
        }
        t->devices[t->n_devices++] = dev;
    }
    return 0;
}

static void stop_nvml(ksv_gpu_telemetry *t)
{
    if (t->initialized)
        t->api.shutdown();
    t->initialized = false;
    if (t->lib)
        dlclose(t->lib);
    t->lib = NULL;
    t->n_devices = 0;
}

int ksv_gpu_telemetry_open(const char *lib_path, ksv_gpu_telemetry **out)
{
    *out = NULL;
    ksv_gpu_telemetry *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return -1;
    }
    if (!lib_path || !*lib_path)
        lib_path = KSV_GPU_TELEMETRY_DEFAULT_LIBRARY;
    if (start_nvml(t, lib_path) != 0) {
        stop_nvml(t);
        ksv_log(KSV_LOG_INFO, NULL, "gpu telemetry: NVML not available (%s)", t->reason);
    } else {
        ksv_log(KSV_LOG_INFO, NULL, "gpu telemetry: NVML (%s) reports %zu GPU%s", lib_path,
                t->n_devices, t->n_devices == 1 ? "" : "s");
    }
    *out = t;
    return 0;
}

void ksv_gpu_telemetry_close(ksv_gpu_telemetry *t)
{
    if (!t)
        return;
    stop_nvml(t);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

size_t ksv_gpu_telemetry_count(const ksv_gpu_telemetry *t)
{
    return t ? t->n_devices : 0;
}

const char *ksv_gpu_telemetry_unavailable_reason(const ksv_gpu_telemetry *t)
{
    if (!t)
        return "gpu telemetry was not opened";
    return t->reason[0] ? t->reason : NULL;
}

/* Queries every device; a figure NVML refuses (NOT_SUPPORTED under MIG, NO_PERMISSION,
 * GPU_IS_LOST) becomes -1 so the writers leave it out. Called with t->lock held. */
static void refresh(ksv_gpu_telemetry *t)
{
    const nvml_api *a = &t->api;
    for (size_t i = 0; i < t->n_devices; i++) {
        nvmlDevice_t dev = t->devices[i];
        ksv_gpu_reading *r = &t->cache[i];
        nvmlUtilization_t util;
        nvmlMemory_t mem;
        unsigned int celsius = 0, milliwatts = 0;
        r->utilization_ratio = -1;
        if (a->device_get_utilization_rates(dev, &util) == NVML_SUCCESS && util.gpu <= 100)
            r->utilization_ratio = util.gpu / 100.0;
        r->memory_used_bytes = r->memory_total_bytes = -1;
        if (a->device_get_memory_info(dev, &mem) == NVML_SUCCESS && mem.total <= LLONG_MAX &&
            mem.used <= mem.total) {
            r->memory_used_bytes = (long long)mem.used;
            r->memory_total_bytes = (long long)mem.total;
        }
        r->temperature_c = -1;
        if (a->device_get_temperature(dev, NVML_TEMPERATURE_GPU, &celsius) == NVML_SUCCESS &&
            celsius <= INT_MAX)
            r->temperature_c = (int)celsius;
        r->power_watts = -1;
        if (a->device_get_power_usage(dev, &milliwatts) == NVML_SUCCESS)
            r->power_watts = milliwatts / 1000.0;
    }
}

void ksv_gpu_telemetry_read(ksv_gpu_telemetry *t, ksv_gpu_reading *out, size_t max,
                            size_t *n)
{
    *n = 0;
    if (!t || t->n_devices == 0 || max == 0)
        return;
    pthread_mutex_lock(&t->lock);
    double now = ksv_mono_s();
    if (!t->cache_valid || now - t->cache_time >= KSV_GPU_TELEMETRY_CACHE_S) {
        refresh(t);
        t->cache_valid = true;
        t->cache_time = now;
    }
    size_t k = t->n_devices < max ? t->n_devices : max;
    memcpy(out, t->cache, k * sizeof *out);
    pthread_mutex_unlock(&t->lock);
    *n = k;
}

typedef enum {
    GAUGE_UTILIZATION,
    GAUGE_MEMORY_USED,
    GAUGE_MEMORY_TOTAL,
    GAUGE_TEMPERATURE,
    GAUGE_POWER,
    GAUGE_COUNT
} gauge_kind;

static const struct gauge {
    const char *metric;
    const char *json_key;
    const char *help;
} gauges[GAUGE_COUNT] = {
    [GAUGE_UTILIZATION] = {"ksv_gpu_utilization_ratio", "utilization_ratio",
                           "Share of the last NVML sample period in which a kernel ran on the "
                           "GPU (0..1)."},
    [GAUGE_MEMORY_USED] = {"ksv_gpu_memory_used_bytes", "memory_used_bytes",
                           "GPU memory in use, all processes (NVML)."},
    [GAUGE_MEMORY_TOTAL] = {"ksv_gpu_memory_total_bytes", "memory_total_bytes",
                            "GPU memory installed (NVML)."},
    [GAUGE_TEMPERATURE] = {"ksv_gpu_temperature_celsius", "temperature_c",
                           "GPU die temperature in degrees Celsius (NVML)."},
    [GAUGE_POWER] = {"ksv_gpu_power_watts", "power_watts",
                     "Board power draw in watts (NVML; a 1 s average on Ampere and newer)."},
};

/* Whether NVML gave reading r's value of gauge g. */
static bool has_value(const ksv_gpu_reading *r, gauge_kind g)
{
    switch (g) {
    case GAUGE_UTILIZATION:
        return r->utilization_ratio >= 0;
    case GAUGE_MEMORY_USED:
        return r->memory_used_bytes >= 0;
    case GAUGE_MEMORY_TOTAL:
        return r->memory_total_bytes >= 0;
    case GAUGE_TEMPERATURE:
        return r->temperature_c >= 0;
    case GAUGE_POWER:
        return r->power_watts >= 0;
    case GAUGE_COUNT:
        break;
    }
    return false;
}

/* %.10g is exact here: utilization has 2 decimals, power 3 decimals below 2^32 mW. */
static void put_value(ksv_sb *sb, const ksv_gpu_reading *r, gauge_kind g)
{
    switch (g) {
    case GAUGE_UTILIZATION:
        ksv_sb_printf(sb, "%.10g", r->utilization_ratio);
        break;
    case GAUGE_MEMORY_USED:
        ksv_sb_printf(sb, "%lld", r->memory_used_bytes);
        break;
    case GAUGE_MEMORY_TOTAL:
        ksv_sb_printf(sb, "%lld", r->memory_total_bytes);
        break;
    case GAUGE_TEMPERATURE:
        ksv_sb_printf(sb, "%d", r->temperature_c);
        break;
    case GAUGE_POWER:
        ksv_sb_printf(sb, "%.10g", r->power_watts);
        break;
    case GAUGE_COUNT:
        break;
    }
}

void ksv_gpu_telemetry_write_prometheus(ksv_gpu_telemetry *t, ksv_sb *sb)
{
    ksv_gpu_reading readings[KSV_GPU_TELEMETRY_MAX_GPUS];
    size_t n = 0;
    ksv_gpu_telemetry_read(t, readings, KSV_GPU_TELEMETRY_MAX_GPUS, &n);
    for (gauge_kind g = 0; g < GAUGE_COUNT; g++) {
        bool header_written = false;
        for (size_t i = 0; i < n; i++) {
            if (!has_value(&readings[i], g))
                continue;
            if (!header_written) {
                ksv_sb_printf(sb, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].metric,
                              gauges[g].help, gauges[g].metric);
                header_written = true;
            }
            ksv_sb_printf(sb, "%s{gpu=\"%u\"} ", gauges[g].metric, readings[i].index);
            put_value(sb, &readings[i], g);
            ksv_sb_putc(sb, '\n');
        }
    }
}

void ksv_gpu_telemetry_write_json(ksv_gpu_telemetry *t, ksv_sb *sb)
{
    ksv_gpu_reading readings[KSV_GPU_TELEMETRY_MAX_GPUS];
    size_t n = 0;
    ksv_gpu_telemetry_read(t, readings, KSV_GPU_TELEMETRY_MAX_GPUS, &n);
    ksv_sb_putc(sb, '[');
    for (size_t i = 0; i < n; i++) {
        const ksv_gpu_reading *r = &readings[i];
        ksv_sb_printf(sb, "%s{\"index\":%u", i ? "," : "", r->index);
        if (r->name[0]) {
            ksv_sb_puts(sb, ",\"name\":");
            ksv_sb_json_str(sb, r->name);
        }
        for (gauge_kind g = 0; g < GAUGE_COUNT; g++) {
            if (!has_value(r, g))
                continue;
            ksv_sb_printf(sb, ",\"%s\":", gauges[g].json_key);
            put_value(sb, r, g);
        }
        ksv_sb_putc(sb, '}');
    }
    ksv_sb_putc(sb, ']');
}
