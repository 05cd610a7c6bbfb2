/* fake_nvml.c: a SIMULATED libnvidia-ml, built as a shared object (tests/fake_nvml.so) for
 * tests/test_gpu_telemetry.c only. It is never installed and never loaded by ksv-engine
 * unless KSV_NVML_LIBRARY points at it.
 *
 * Why a simulation: the machines that build and test ksv have no GPU and no NVIDIA driver,
 * so the real libnvidia-ml.so.1 cannot run there. This library exports the NVML functions
 * src/engine/gpu_telemetry.c loads, with nvml.h's signatures and documented behaviour (calls
 * before nvmlInit_v2 fail with UNINITIALIZED, init is reference-counted, bad handles and a
 * short name buffer are refused), for two simulated devices with fixed figures
 * (FAKE_DEFAULT_DEVICES). The test sets other figures and the result codes of individual
 * calls through the fake_nvml_* control functions, which it finds with dlsym. Built with
 * -DFAKE_NVML_WITHOUT_POWER (tests/fake_nvml_nopower.so) it lacks nvmlDeviceGetPowerUsage,
 * like a library that does not have every function.
 *
 * Its state is process-global on purpose: so is the state of the driver library it stands
 * in for. A mutex makes every call thread-safe, as NVML is documented to be. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_MAX_DEVICES 2
/* Longer than NVML_DEVICE_NAME_V2_BUFFER_SIZE (96) so a test can overflow a caller's buffer. */
#define FAKE_NAME_MAX 256

/* nvml.h's types and return codes, as far as the simulated functions need them. */
typedef enum nvmlReturn_enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_UNKNOWN = 999
} nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlUtilization_st {
    unsigned int gpu;
    unsigned int memory;
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

/* The simulated NVML functions. */
FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void);
FAKE_EXPORT nvmlReturn_t nvmlShutdown(void);
FAKE_EXPORT const char *nvmlErrorString(nvmlReturn_t result);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                       nvmlDevice_t *device);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name,
                                           unsigned int length);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                       nvmlUtilization_t *utilization);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device,
                                                  nvmlTemperatureSensors_t sensorType,
                                                  unsigned int *temp);
#ifndef FAKE_NVML_WITHOUT_POWER
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power);
#endif

/* The control functions the test calls. */
/* Back to the 2 default devices, every call succeeding, counters at 0. */
FAKE_EXPORT void fake_nvml_reset(void);
FAKE_EXPORT void fake_nvml_set_device_count(unsigned int count);
FAKE_EXPORT int fake_nvml_set_device(unsigned int index, const char *name,
                                     unsigned int utilization_percent,
                                     unsigned long long memory_used,
                                     unsigned long long memory_total, unsigned int celsius,
                                     unsigned int milliwatts);
/* Makes `function` return rc (0 = behave normally): for device `device`, or for every
 * device (and for the functions that take none) when device is -1. */
FAKE_EXPORT int fake_nvml_set_result(const char *function, int device, int rc);
/* nvmlInit_v2 calls not yet matched by nvmlShutdown. */
FAKE_EXPORT int fake_nvml_init_depth(void);
/* Device figure queries answered so far (any of the 4 per-sample calls counts once). */
FAKE_EXPORT unsigned long fake_nvml_queries(void);

enum {
    FN_INIT,
    FN_COUNT,
    FN_HANDLE,
    FN_NAME,
    FN_UTILIZATION,
    FN_MEMORY,
    FN_TEMPERATURE,
    FN_POWER,
    FN_TOTAL
};
static const char *const function_names[FN_TOTAL] = {
    "nvmlInit_v2",          "nvmlDeviceGetCount_v2",         "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetName",    "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetTemperature", "nvmlDeviceGetPowerUsage",
};

struct nvmlDevice_st {
    char name[FAKE_NAME_MAX];
    unsigned int utilization_percent;
    unsigned long long memory_used, memory_total;
    unsigned int celsius, milliwatts;
};

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
/* Fixed figures until a test sets others, so an engine started with
 * KSV_NVML_LIBRARY=tests/fake_nvml.so shows known gauges. */
#define FAKE_DEFAULT_DEVICES                                                                   \
    {                                                                                          \
        {"Simulated NVML GPU 0", 25, 1ULL << 30, 80ULL << 30, 45, 150000},                   \
        {"Simulated NVML GPU 1", 75, 3ULL << 30, 16ULL << 30, 60, 250500},                   \
    }
static const struct nvmlDevice_st default_devices[FAKE_MAX_DEVICES] = FAKE_DEFAULT_DEVICES;
static struct nvmlDevice_st fake_devices[FAKE_MAX_DEVICES] = FAKE_DEFAULT_DEVICES;
static unsigned int fake_device_count = FAKE_MAX_DEVICES;
static nvmlReturn_t fake_results[FN_TOTAL][FAKE_MAX_DEVICES];
static int fake_init_depth;
static unsigned long fake_query_count;

void fake_nvml_reset(void)
{
    pthread_mutex_lock(&fake_lock);
    memcpy(fake_devices, default_devices, sizeof fake_devices);
    memset(fake_results, 0, sizeof fake_results);
    fake_device_count = FAKE_MAX_DEVICES;
    fake_init_depth = 0;
    fake_query_count = 0;
    pthread_mutex_unlock(&fake_lock);
}

void fake_nvml_set_device_count(unsigned int count)
{
    pthread_mutex_lock(&fake_lock);
    fake_device_count = count <= FAKE_MAX_DEVICES ? count : FAKE_MAX_DEVICES;
    pthread_mutex_unlock(&fake_lock);
}

int fake_nvml_set_device(unsigned int index, const char *name, unsigned int utilization_percent,
                         unsigned long long memory_used, unsigned long long memory_total,
                         unsigned int celsius, unsigned int milliwatts)
{
    if (index >= FAKE_MAX_DEVICES || !name)
        return -1;
    pthread_mutex_lock(&fake_lock);
    struct nvmlDevice_st *d = &fake_devices[index];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->utilization_percent = utilization_percent;
    d->memory_used = memory_used;
    d->memory_total = memory_total;
    d->celsius = celsius;
    d->milliwatts = milliwatts;
    pthread_mutex_unlock(&fake_lock);
    return 0;
}

int fake_nvml_set_result(const char *function, int device, int rc)
{
    for (int f = 0; f < FN_TOTAL; f++) {
        if (strcmp(function, function_names[f]) != 0)
            continue;
        if (device < -1 || device >= FAKE_MAX_DEVICES)
            return -1;
        pthread_mutex_lock(&fake_lock);
        for (int i = 0; i < FAKE_MAX_DEVICES; i++)
            if (device == -1 || device == i)
                fake_results[f][i] = (nvmlReturn_t)rc;
        pthread_mutex_unlock(&fake_lock);
        return 0;
    }
    return -1;
}

int fake_nvml_init_depth(void)
{
    pthread_mutex_lock(&fake_lock);
    int depth = fake_init_depth;
    pthread_mutex_unlock(&fake_lock);
    return depth;
}

unsigned long fake_nvml_queries(void)
{
    pthread_mutex_lock(&fake_lock);
    unsigned long n = fake_query_count;
    pthread_mutex_unlock(&fake_lock);
    return n;
}

nvmlReturn_t nvmlInit_v2(void)
{
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = fake_results[FN_INIT][0];
    if (rc == NVML_SUCCESS)
        fake_init_depth++;
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (fake_init_depth > 0)
        fake_init_depth--;
    else
        rc = NVML_ERROR_UNINITIALIZED;
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_UNKNOWN: return "Unknown Error";
    }
    return "Unknown Error";
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = fake_init_depth == 0        ? NVML_ERROR_UNINITIALIZED
                      : !deviceCount              ? NVML_ERROR_INVALID_ARGUMENT
                                                  : fake_results[FN_COUNT][0];
    if (rc == NVML_SUCCESS)
        *deviceCount = fake_device_count;
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = fake_init_depth == 0                   ? NVML_ERROR_UNINITIALIZED
                      : !device || index >= fake_device_count ? NVML_ERROR_INVALID_ARGUMENT
                                                             : fake_results[FN_HANDLE][index];
    if (rc == NVML_SUCCESS)
        *device = &fake_devices[index];
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

/* The device's slot for a handle this library gave out, or -1. Called with fake_lock held. */
static int device_slot(nvmlDevice_t device)
{
    for (unsigned int i = 0; i < fake_device_count; i++)
        if (device == &fake_devices[i])
            return (int)i;
    return -1;
}

/* The common checks of a per-device call; returns its result and sets *slot. Called with
 * fake_lock held. */
static nvmlReturn_t device_call(int function, nvmlDevice_t device, const void *out, int *slot)
{
    *slot = device_slot(device);
    if (fake_init_depth == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (*slot < 0 || !out)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (function != FN_NAME)
        fake_query_count++;
    return fake_results[function][*slot];
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    int slot;
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = device_call(FN_NAME, device, name, &slot);
    if (rc == NVML_SUCCESS) {
        size_t need = strlen(fake_devices[slot].name) + 1;
        if (need > length)
            rc = NVML_ERROR_INSUFFICIENT_SIZE;
        else
            memcpy(name, fake_devices[slot].name, need);
    }
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
    int slot;
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = device_call(FN_UTILIZATION, device, utilization, &slot);
    if (rc == NVML_SUCCESS) {
        utilization->gpu = fake_devices[slot].utilization_percent;
        utilization->memory = fake_devices[slot].utilization_percent / 2;
    }
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    int slot;
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = device_call(FN_MEMORY, device, memory, &slot);
    if (rc == NVML_SUCCESS) {
        memory->total = fake_devices[slot].memory_total;
        memory->used = fake_devices[slot].memory_used;
        memory->free = memory->used <= memory->total ? memory->total - memory->used : 0;
    }
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
                                      unsigned int *temp)
{
    int slot;
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = device_call(FN_TEMPERATURE, device, temp, &slot);
    if (rc == NVML_SUCCESS && sensorType != NVML_TEMPERATURE_GPU)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        *temp = fake_devices[slot].celsius;
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

#ifndef FAKE_NVML_WITHOUT_POWER
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
    int slot;
    pthread_mutex_lock(&fake_lock);
    nvmlReturn_t rc = device_call(FN_POWER, device, power, &slot);
    if (rc == NVML_SUCCESS)
        *power = fake_devices[slot].milliwatts;
    pthread_mutex_unlock(&fake_lock);
    return rc;
}
#endif
