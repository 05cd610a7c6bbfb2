/* gpu_telemetry.h: GPU gauges (utilization, memory, temperature, power) for /metrics and the
 * admin API's node info, read from NVML.
 *
 * NVML (libnvidia-ml.so.1) ships with the NVIDIA driver, not with the CUDA toolkit, so it is
 * loaded with dlopen at run time and its few types are declared in gpu_telemetry.c. A host
 * without the library, without a driver, or with a library missing a function gets a handle
 * that reports 0 GPUs: telemetry is never a reason for the engine to fail. Readings are cached
 * for KSV_GPU_TELEMETRY_CACHE_S so a scrape storm does not hammer the driver; every function
 * is thread-safe (a mutex; this is off the inference path) and accepts a NULL handle as
 * "no GPUs". Device indexes are NVML's, which need not match CUDA ordinals. */
#ifndef KSV_ENGINE_GPU_TELEMETRY_H
#define KSV_ENGINE_GPU_TELEMETRY_H

#include <stddef.h>

#include "common/strbuf.h"

#define KSV_GPU_TELEMETRY_DEFAULT_LIBRARY "libnvidia-ml.so.1"
#define KSV_GPU_TELEMETRY_MAX_GPUS 64
#define KSV_GPU_TELEMETRY_CACHE_S 1.0
#define KSV_GPU_NAME_MAX 96 /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */

typedef struct ksv_gpu_telemetry ksv_gpu_telemetry;

/* One device's figures. A field NVML would not give (NOT_SUPPORTED under MIG, NO_PERMISSION,
 * a lost GPU) is negative, or "" for the name, and is left out of both outputs. */
typedef struct ksv_gpu_reading {
    unsigned index;                /* NVML device index */
    char name[KSV_GPU_NAME_MAX];
    double utilization_ratio;      /* 0..1: share of the last sample period a kernel ran */
    long long memory_used_bytes;
    long long memory_total_bytes;
    int temperature_c;             /* GPU die sensor */
    double power_watts;            /* board power, NVML's milliwatts / 1000 */
} ksv_gpu_reading;

/* Loads lib_path (NULL or "" = KSV_GPU_TELEMETRY_DEFAULT_LIBRARY), resolves the NVML
 * functions and calls nvmlInit_v2. When any step fails the handle reports 0 GPUs and one
 * info line "gpu telemetry: NVML not available (reason)" is logged. Returns -1 (and *out =
 * NULL, which the other functions accept) only when memory runs out. */
int ksv_gpu_telemetry_open(const char *lib_path, ksv_gpu_telemetry **out);
/* nvmlShutdown, dlclose, free. NULL is fine. */
void ksv_gpu_telemetry_close(ksv_gpu_telemetry *t);

/* Number of GPUs reported (0 when NVML is not available). */
size_t ksv_gpu_telemetry_count(const ksv_gpu_telemetry *t);
/* Why NVML is not available ("libnvidia-ml.so.1: cannot open ...", "nvmlInit_v2: Driver
 * Not Loaded (9)", "missing function nvmlDeviceGetPowerUsage"), or NULL when it is. */
const char *ksv_gpu_telemetry_unavailable_reason(const ksv_gpu_telemetry *t);

/* Copies up to max current readings (at most KSV_GPU_TELEMETRY_CACHE_S old) into out and
 * sets *n to the number copied. */
void ksv_gpu_telemetry_read(ksv_gpu_telemetry *t, ksv_gpu_reading *out, size_t max,
                            size_t *n);

/* Appends the Prometheus text of ksv_gpu_utilization_ratio, ksv_gpu_memory_used_bytes,
 * ksv_gpu_memory_total_bytes, ksv_gpu_temperature_celsius and ksv_gpu_power_watts, each
 * labelled {gpu="INDEX"} with HELP/TYPE lines; nothing at all when there is no GPU. */
void ksv_gpu_telemetry_write_prometheus(ksv_gpu_telemetry *t, ksv_sb *sb);
/* Appends the node info array: [{"index":0,"name":"...","utilization_ratio":0.5,
 * "memory_used_bytes":N,"memory_total_bytes":N,"temperature_c":N,"power_watts":N}], or []
 * when there is no GPU. */
void ksv_gpu_telemetry_write_json(ksv_gpu_telemetry *t, ksv_sb *sb);

#endif
