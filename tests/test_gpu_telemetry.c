/* test_gpu_telemetry.c: src/engine/gpu_telemetry.c against tests/fake_nvml.so, a SIMULATED
 * libnvidia-ml (no GPU or NVIDIA driver exists where the suite runs; see fake_nvml.c).
 *
 * Checks the readings, the Prometheus text parsed back line by line (families, HELP/TYPE
 * order, labels, values), the node info JSON read with json-c and with the CLI's own parser
 * (remote/engine_json.c), the metrics also through ksv's scraper (control/prom_text.c), the
 * one-second cache, concurrent readers, fields NVML refuses, and
 * each way NVML can be missing: no library, not a library, nvmlInit_v2 failing, a function
 * missing, device enumeration failing. The expected figures are the ones this test gives the
 * fake, converted here (percent / 100, milliwatts / 1000), never taken from the module.
 *
 * The fake libraries are looked for in $KSV_FAKE_NVML_DIR, else in the directory compiled in
 * as KSV_FAKE_NVML_DIR (the build's tests/), else in ./tests. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/log.h"
#include "common/sanitize.h"
#include "common/strbuf.h"
#include "control/prom_text.h"
#include "engine/gpu_telemetry.h"
#include "remote/engine_client.h"

#include "ktest.h"

#ifndef KSV_FAKE_NVML_DIR
#define KSV_FAKE_NVML_DIR "tests"
#endif

/* ---- the fake library's control functions ----------------------------------------------- */

typedef struct fake_nvml {
    void *lib;
    void (*reset)(void);
    void (*set_device_count)(unsigned int count);
    int (*set_device)(unsigned int index, const char *name, unsigned int utilization_percent,
                      unsigned long long memory_used, unsigned long long memory_total,
                      unsigned int celsius, unsigned int milliwatts);
    int (*set_result)(const char *function, int device, int rc);
    int (*init_depth)(void);
    unsigned long (*queries)(void);
} fake_nvml;

static char fake_dir[4096];

static void fake_path(const char *file, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", fake_dir, file);
}

static bool fake_resolve(void *lib, const char *symbol, void *slot)
{
    void *sym = dlsym(lib, symbol);
    if (!sym) {
        printf("  fake library lacks %s\n", symbol);
        return false;
    }
    memcpy(slot, &sym, sizeof sym);
    return true;
}

/* Opens the fake the way the module will (same path, so the same loaded object). */
static bool fake_open(const char *file, fake_nvml *f)
{
    char path[4200];
    fake_path(file, path, sizeof path);
    memset(f, 0, sizeof *f);
    f->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!f->lib) {
        printf("  cannot load the fake NVML %s: %s\n", path, dlerror());
        return false;
    }
    return fake_resolve(f->lib, "fake_nvml_reset", &f->reset) &&
           fake_resolve(f->lib, "fake_nvml_set_device_count", &f->set_device_count) &&
           fake_resolve(f->lib, "fake_nvml_set_device", &f->set_device) &&
           fake_resolve(f->lib, "fake_nvml_set_result", &f->set_result) &&
           fake_resolve(f->lib, "fake_nvml_init_depth", &f->init_depth) &&
           fake_resolve(f->lib, "fake_nvml_queries", &f->queries);
}

/* ---- what the fake's devices are set to ------------------------------------------------- */

typedef struct device_setting {
    const char *name;
    unsigned int utilization_percent;
    unsigned long long memory_used, memory_total;
    unsigned int celsius, milliwatts;
} device_setting;

/* Device 1's name needs JSON escaping (quote, backslash, tab). */
static const device_setting first_settings[2] = {
    {"NVIDIA H100 80GB HBM3", 37, 12345678901ULL, 85520809984ULL, 54, 312456},
    {"Sim \"GPU\" \\1\t(fake)", 100, 0, 17179869184ULL, 40, 70000},
};
static const device_setting second_settings[2] = {
    {"NVIDIA H100 80GB HBM3", 5, 1048576ULL, 85520809984ULL, 61, 98765},
    {"Sim \"GPU\" \\1\t(fake)", 0, 4096ULL, 17179869184ULL, 33, 1},
};

static void apply_settings(const fake_nvml *f, const device_setting s[2])
{
    for (unsigned int i = 0; i < 2; i++)
        f->set_device(i, s[i].name, s[i].utilization_percent, s[i].memory_used,
                      s[i].memory_total, s[i].celsius, s[i].milliwatts);
}

/* Which figures NVML gave for a device in a scenario. */
typedef struct device_expect {
    unsigned int index;
    const device_setting *s;
    bool has_name, has_utilization, has_memory, has_temperature, has_power;
} device_expect;

static device_expect expect_all(unsigned int index, const device_setting *s)
{
    return (device_expect){index, s, true, true, true, true, true};
}

/* ---- Prometheus text, parsed back independently ----------------------------------------- */

typedef struct prom_sample {
    char metric[64];
    unsigned int gpu;
    double value;
} prom_sample;

typedef struct prom_doc {
    size_t n_families, n_samples;
    char families[8][64];
    prom_sample samples[64];
} prom_doc;

/* Strict reader for what the module promises: "# HELP name text", then "# TYPE name gauge",
 * then the family's samples `name{gpu="N"} value`, each family once, every line ending in
 * '\n'. Returns NULL on success or what is wrong. */
static const char *prom_parse(const char *text, size_t len, prom_doc *doc)
{
    memset(doc, 0, sizeof *doc);
    if (len > 0 && text[len - 1] != '\n')
        return "text does not end with a newline";
    enum { WANT_HELP_OR_SAMPLE, WANT_TYPE } state = WANT_HELP_OR_SAMPLE;
    const char *current = NULL;
    size_t pos = 0;
    char line[1024];
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = (size_t)(nl - (text + pos));
        if (n >= sizeof line)
            return "line too long";
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + 1;
        char name[64], rest[512];
        if (strncmp(line, "# HELP ", 7) == 0) {
            if (state != WANT_HELP_OR_SAMPLE)
                return "HELP where TYPE was expected";
            if (sscanf(line + 7, "%63s %511[^\n]", name, rest) != 2)
                return "HELP without a name and a text";
            for (size_t i = 0; i < doc->n_families; i++)
                if (strcmp(doc->families[i], name) == 0)
                    return "a family appears twice";
            if (doc->n_families == 8)
                return "too many families";
            snprintf(doc->families[doc->n_families], sizeof doc->families[0], "%s", name);
            current = doc->families[doc->n_families++];
            state = WANT_TYPE;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            if (state != WANT_TYPE)
                return "TYPE without HELP just before";
            if (sscanf(line + 7, "%63s %511s", name, rest) != 2 || strcmp(name, current) != 0)
                return "TYPE names another metric than HELP";
            if (strcmp(rest, "gauge") != 0)
                return "TYPE is not gauge";
            state = WANT_HELP_OR_SAMPLE;
        } else {
            if (state != WANT_HELP_OR_SAMPLE || !current)
                return "sample before its HELP/TYPE";
            const char *brace = strchr(line, '{');
            if (!brace || (size_t)(brace - line) != strlen(current) ||
                strncmp(line, current, strlen(current)) != 0)
                return "sample of another family than the last TYPE";
            const char *p = brace + 1;
            if (strncmp(p, "gpu=\"", 5) != 0)
                return "label is not gpu";
            p += 5;
            char *end;
            errno = 0;
            unsigned long gpu = strtoul(p, &end, 10);
            if (end == p || errno || strncmp(end, "\"} ", 3) != 0)
                return "bad gpu label value or label set";
            p = end + 3;
            errno = 0;
            double v = strtod(p, &end);
            if (end == p || *end != '\0' || errno || !isfinite(v))
                return "bad sample value";
            for (size_t i = 0; i < doc->n_samples; i++)
                if (strcmp(doc->samples[i].metric, current) == 0 && doc->samples[i].gpu == gpu)
                    return "duplicate sample";
            if (doc->n_samples == 64)
                return "too many samples";
            prom_sample *s = &doc->samples[doc->n_samples++];
            snprintf(s->metric, sizeof s->metric, "%s", current);
            s->gpu = (unsigned int)gpu;
            s->value = v;
        }
    }
    if (state == WANT_TYPE)
        return "HELP without TYPE at the end";
    return NULL;
}

static const prom_sample *prom_find(const prom_doc *doc, const char *metric, unsigned int gpu)
{
    for (size_t i = 0; i < doc->n_samples; i++)
        if (strcmp(doc->samples[i].metric, metric) == 0 && doc->samples[i].gpu == gpu)
            return &doc->samples[i];
    return NULL;
}

static void check_prom_metric(const prom_doc *doc, const char *metric, unsigned int gpu,
                              bool expected, double want)
{
    const prom_sample *s = prom_find(doc, metric, gpu);
    if (!expected) {
        KT_CHECK(!s, "%s{gpu=\"%u\"} should be absent", metric, gpu);
        return;
    }
    KT_CHECK(s, "%s{gpu=\"%u\"} missing", metric, gpu);
    if (s)
        KT_CHECK(fabs(s->value - want) <= 1e-9 * fmax(1, fabs(want)),
                 "%s{gpu=\"%u\"} = %.17g, want %.17g", metric, gpu, s->value, want);
}

static void check_prometheus(ksv_gpu_telemetry *t, const device_expect *ex, size_t n)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_gpu_telemetry_write_prometheus(t, &sb);
    KT_CHECK(!sb.oom, "out of memory writing metrics");
    prom_doc doc;
    const char *bad = prom_parse(sb.data ? sb.data : "", sb.len, &doc);
    KT_CHECK(!bad, "Prometheus text: %s\n%s", bad, sb.data ? sb.data : "");
    size_t want_samples = 0;
    for (size_t i = 0; i < n; i++) {
        const device_expect *e = &ex[i];
        const device_setting *s = e->s;
        check_prom_metric(&doc, "ksv_gpu_utilization_ratio", e->index, e->has_utilization,
                          s->utilization_percent / 100.0);
        check_prom_metric(&doc, "ksv_gpu_memory_used_bytes", e->index, e->has_memory,
                          (double)s->memory_used);
        check_prom_metric(&doc, "ksv_gpu_memory_total_bytes", e->index, e->has_memory,
                          (double)s->memory_total);
        check_prom_metric(&doc, "ksv_gpu_temperature_celsius", e->index, e->has_temperature,
                          s->celsius);
        check_prom_metric(&doc, "ksv_gpu_power_watts", e->index, e->has_power,
                          s->milliwatts / 1000.0);
        want_samples += e->has_utilization + 2 * e->has_memory + e->has_temperature +
                        e->has_power;
    }
    KT_CHECK(doc.n_samples == want_samples, "%zu samples, want %zu", doc.n_samples, want_samples);

    /* What ksv and ksv-top will make of it: the same samples, typed gauge. */
    ksv_prom_doc scraped;
    ksv_err err;
    ksv_err_clear(&err);
    int rc = ksv_prom_parse(sb.data ? sb.data : "", sb.len, NULL, &scraped, &err);
    KT_CHECK(rc == 0, "ksv's Prometheus parser refused the metrics: %s", err.msg);
    if (rc == 0) {
        KT_CHECK(scraped.n_samples == doc.n_samples, "scraper saw %zu samples, want %zu",
                 scraped.n_samples, doc.n_samples);
        for (size_t i = 0; i < scraped.n_samples; i++) {
            const ksv_prom_sample *s = &scraped.samples[i];
            const char *gpu = ksv_prom_label_value(s, "gpu");
            const prom_sample *mine = gpu ? prom_find(&doc, s->name, (unsigned)atoi(gpu)) : NULL;
            KT_CHECK(s->type == KSV_PROM_GAUGE && s->n_labels == 1 && mine &&
                         mine->value == s->value,
                     "scraped %s{gpu=%s} %g differs", s->name, gpu ? gpu : "?", s->value);
        }
    }
    ksv_prom_doc_free(&scraped);
    /* The memory byte counts must be written exactly, not rounded through a double. */
    for (size_t i = 0; i < n; i++) {
        char needle[128];
        if (!ex[i].has_memory)
            continue;
        snprintf(needle, sizeof needle, "ksv_gpu_memory_used_bytes{gpu=\"%u\"} %llu\n",
                 ex[i].index, ex[i].s->memory_used);
        KT_CHECK(sb.data && strstr(sb.data, needle), "no exact line %s", needle);
    }
    ksv_sb_free(&sb);
}

/* ---- node info JSON --------------------------------------------------------------------- */

static json_object *parse_json_strict(const char *text, size_t len)
{
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!complete) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static bool json_number(json_object *o, const char *key, double *v)
{
    json_object *x;
    if (!json_object_object_get_ex(o, key, &x))
        return false;
    if (!json_object_is_type(x, json_type_int) && !json_object_is_type(x, json_type_double))
        return false;
    *v = json_object_get_double(x);
    return true;
}

static bool json_int(json_object *o, const char *key, long long *v)
{
    json_object *x;
    if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_int))
        return false;
    *v = (long long)json_object_get_int64(x);
    return true;
}

static void check_json_gpu(json_object *g, const device_expect *e)
{
    const device_setting *s = e->s;
    long long iv = -1;
    double dv = -1;
    size_t want_keys = 1 + e->has_name + e->has_utilization + 2 * e->has_memory +
                       e->has_temperature + e->has_power;
    KT_CHECK(json_object_is_type(g, json_type_object), "gpus[] element is not an object");
    if (!json_object_is_type(g, json_type_object))
        return;
    KT_CHECK((size_t)json_object_object_length(g) == want_keys, "gpu %u has %d keys, want %zu",
             e->index, json_object_object_length(g), want_keys);
    KT_CHECK(json_int(g, "index", &iv) && iv == e->index, "gpu index %lld, want %u", iv, e->index);
    json_object *name;
    bool has_name = json_object_object_get_ex(g, "name", &name);
    KT_CHECK(has_name == e->has_name, "gpu %u: name present=%d", e->index, has_name);
    if (has_name && e->has_name)
        KT_CHECK(json_object_is_type(name, json_type_string) &&
                     strcmp(json_object_get_string(name), s->name) == 0,
                 "gpu %u name %s, want %s", e->index, json_object_get_string(name), s->name);
    bool has = json_number(g, "utilization_ratio", &dv);
    KT_CHECK(has == e->has_utilization, "gpu %u: utilization_ratio present=%d", e->index, has);
    if (has && e->has_utilization)
        KT_CHECK(fabs(dv - s->utilization_percent / 100.0) < 1e-12, "utilization %g", dv);
    has = json_int(g, "memory_used_bytes", &iv);
    KT_CHECK(has == e->has_memory, "gpu %u: memory_used_bytes present=%d", e->index, has);
    if (has && e->has_memory)
        KT_CHECK(iv == (long long)s->memory_used, "memory_used_bytes %lld", iv);
    has = json_int(g, "memory_total_bytes", &iv);
    KT_CHECK(has == e->has_memory, "gpu %u: memory_total_bytes present=%d", e->index, has);
    if (has && e->has_memory)
        KT_CHECK(iv == (long long)s->memory_total, "memory_total_bytes %lld", iv);
    has = json_int(g, "temperature_c", &iv);
    KT_CHECK(has == e->has_temperature, "gpu %u: temperature_c present=%d", e->index, has);
    if (has && e->has_temperature)
        KT_CHECK(iv == s->celsius, "temperature_c %lld", iv);
    has = json_number(g, "power_watts", &dv);
    KT_CHECK(has == e->has_power, "gpu %u: power_watts present=%d", e->index, has);
    if (has && e->has_power)
        KT_CHECK(fabs(dv - s->milliwatts / 1000.0) < 1e-9, "power_watts %.17g", dv);
}

/* The array through json-c, then a whole node info through the CLI's parser. */
static void check_json(ksv_gpu_telemetry *t, const device_expect *ex, size_t n)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_gpu_telemetry_write_json(t, &sb);
    KT_CHECK(!sb.oom && sb.data, "no JSON written");
    if (!sb.data)
        return;
    json_object *arr = parse_json_strict(sb.data, sb.len);
    KT_CHECK(arr && json_object_is_type(arr, json_type_array), "not a JSON array: %s", sb.data);
    if (arr && json_object_is_type(arr, json_type_array)) {
        KT_CHECK(json_object_array_length(arr) == n, "%zu gpus in JSON, want %zu",
                 json_object_array_length(arr), n);
        for (size_t i = 0; i < n && i < json_object_array_length(arr); i++)
            check_json_gpu(json_object_array_get_idx(arr, i), &ex[i]);
    }
    json_object_put(arr);

    ksv_sb node;
    ksv_sb_init(&node);
    ksv_sb_printf(&node, "{\"name\":\"ksv-engine\",\"version\":\"test\",\"threads\":1,"
                         "\"uptime_s\":1.5,\"gpus\":%s}", sb.data);
    json_object *obj = parse_json_strict(node.data, node.len);
    ksv_engine_node_info info;
    ksv_err err;
    ksv_err_clear(&err);
    int rc = obj ? ksv_engine_node_info_parse(obj, &info, &err) : -1;
    KT_CHECK(rc == 0, "client parser refused the node info: %s", err.msg);
    if (rc == 0) {
        KT_CHECK(info.n_gpus == n, "client saw %zu gpus, want %zu", info.n_gpus, n);
        for (size_t i = 0; i < n && i < info.n_gpus; i++) {
            const ksv_engine_gpu_info *g = &info.gpus[i];
            const device_expect *e = &ex[i];
            KT_CHECK(g->index == (int)e->index, "client gpu index %d", g->index);
            /* ksv shows a node's text filtered for terminals (common/sanitize.h). */
            char want_name[256];
            ksv_sanitize_copy(want_name, sizeof want_name, e->has_name ? e->s->name : "");
            KT_CHECK(strcmp(g->name, want_name) == 0, "client name %s", g->name);
            double want_util = e->has_utilization ? e->s->utilization_percent / 100.0 : -1;
            KT_CHECK(fabs(g->utilization_ratio - want_util) < 1e-12, "client utilization %g",
                     g->utilization_ratio);
            KT_CHECK(g->memory_used_bytes ==
                         (e->has_memory ? (long long)e->s->memory_used : -1),
                     "client memory used %lld", g->memory_used_bytes);
            KT_CHECK(g->memory_total_bytes ==
                         (e->has_memory ? (long long)e->s->memory_total : -1),
                     "client memory total %lld", g->memory_total_bytes);
        }
    }
    json_object_put(obj);
    ksv_sb_free(&node);
    ksv_sb_free(&sb);
}

static void check_readings(ksv_gpu_telemetry *t, const device_expect *ex, size_t n)
{
    ksv_gpu_reading r[4];
    size_t got = 99;
    ksv_gpu_telemetry_read(t, r, 4, &got);
    KT_CHECK(got == n, "read %zu readings, want %zu", got, n);
    for (size_t i = 0; i < n && i < got; i++) {
        const device_expect *e = &ex[i];
        const device_setting *s = e->s;
        KT_CHECK(r[i].index == e->index, "reading %zu index %u", i, r[i].index);
        KT_CHECK(strcmp(r[i].name, e->has_name ? s->name : "") == 0, "name '%s'", r[i].name);
        KT_CHECK(e->has_utilization ? r[i].utilization_ratio == s->utilization_percent / 100.0
                                    : r[i].utilization_ratio < 0,
                 "gpu %u utilization %g", e->index, r[i].utilization_ratio);
        KT_CHECK(r[i].memory_used_bytes == (e->has_memory ? (long long)s->memory_used : -1),
                 "gpu %u memory used %lld", e->index, r[i].memory_used_bytes);
        KT_CHECK(r[i].memory_total_bytes == (e->has_memory ? (long long)s->memory_total : -1),
                 "gpu %u memory total %lld", e->index, r[i].memory_total_bytes);
        KT_CHECK(r[i].temperature_c == (e->has_temperature ? (int)s->celsius : -1),
                 "gpu %u temperature %d", e->index, r[i].temperature_c);
        KT_CHECK(e->has_power ? r[i].power_watts == s->milliwatts / 1000.0 : r[i].power_watts < 0,
                 "gpu %u power %g", e->index, r[i].power_watts);
    }
}

/* ---- scenarios -------------------------------------------------------------------------- */

/* A handle without NVML: no readings, no metric lines, an empty array, a reason. */
static void check_no_gpus(ksv_gpu_telemetry *t, const char *reason_part)
{
    KT_CHECK(ksv_gpu_telemetry_count(t) == 0, "count %zu, want 0", ksv_gpu_telemetry_count(t));
    const char *reason = ksv_gpu_telemetry_unavailable_reason(t);
    if (reason_part)
        KT_CHECK(reason && strstr(reason, reason_part), "reason '%s' should mention '%s'",
                 reason ? reason : "(none)", reason_part);
    ksv_gpu_reading r[2];
    size_t n = 99;
    ksv_gpu_telemetry_read(t, r, 2, &n);
    KT_CHECK(n == 0, "read %zu readings without NVML", n);
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_gpu_telemetry_write_prometheus(t, &sb);
    KT_CHECK(sb.len == 0, "metrics written without a GPU: %s", sb.data);
    ksv_gpu_telemetry_write_json(t, &sb);
    KT_CHECK(sb.data && strcmp(sb.data, "[]") == 0, "JSON without a GPU: %s", sb.data);
    ksv_sb_free(&sb);
}

static void test_missing_library(void)
{
    printf("no library, not a library, NULL handle -> 0 GPUs, nothing written\n");
    ksv_gpu_telemetry *t = NULL;
    KT_CHECK(ksv_gpu_telemetry_open("/nonexistent/dir/libnvidia-ml.so.1", &t) == 0 && t,
             "open must not fail");
    check_no_gpus(t, "/nonexistent/dir/libnvidia-ml.so.1");
    ksv_gpu_telemetry_close(t);

    KT_CHECK(ksv_gpu_telemetry_open("/dev/null", &t) == 0 && t, "open must not fail");
    check_no_gpus(t, "/dev/null");
    ksv_gpu_telemetry_close(t);

    check_no_gpus(NULL, "not opened");
    ksv_gpu_telemetry_close(NULL);
}

/* The real default library: absent on CPU hosts (0 GPUs), real figures on a GPU host. */
static void test_default_library(void)
{
    printf("default library (%s): whatever the host has, consistent outputs\n",
           KSV_GPU_TELEMETRY_DEFAULT_LIBRARY);
    ksv_gpu_telemetry *t = NULL;
    KT_CHECK(ksv_gpu_telemetry_open("", &t) == 0 && t, "open must not fail");
    size_t count = ksv_gpu_telemetry_count(t);
    const char *reason = ksv_gpu_telemetry_unavailable_reason(t);
    printf("  host: %zu GPU(s)%s%s\n", count, reason ? ", " : "", reason ? reason : "");
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_gpu_telemetry_write_prometheus(t, &sb);
    prom_doc doc;
    const char *bad = prom_parse(sb.data ? sb.data : "", sb.len, &doc);
    KT_CHECK(!bad, "Prometheus text: %s", bad);
    if (count == 0)
        KT_CHECK(sb.len == 0, "metrics without a GPU");
    for (size_t i = 0; i < doc.n_samples; i++)
        printf("  %s{gpu=\"%u\"} %.10g\n", doc.samples[i].metric, doc.samples[i].gpu,
               doc.samples[i].value);
    ksv_sb_reset(&sb);
    ksv_gpu_telemetry_write_json(t, &sb);
    json_object *arr = sb.data ? parse_json_strict(sb.data, sb.len) : NULL;
    KT_CHECK(arr && json_object_is_type(arr, json_type_array) &&
                 json_object_array_length(arr) == count,
             "JSON %s", sb.data);
    json_object_put(arr);
    ksv_sb_free(&sb);
    ksv_gpu_telemetry_close(t);
}

static void test_two_devices(const fake_nvml *f, const char *path)
{
    printf("fake NVML with 2 devices: readings, metrics, node info, cache, refusals\n");
    f->reset();
    apply_settings(f, first_settings);
    ksv_gpu_telemetry *t = NULL;
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && t, "open failed");
    KT_CHECK(ksv_gpu_telemetry_count(t) == 2, "count %zu", ksv_gpu_telemetry_count(t));
    KT_CHECK(ksv_gpu_telemetry_unavailable_reason(t) == NULL, "reason %s",
             ksv_gpu_telemetry_unavailable_reason(t));
    KT_CHECK(f->init_depth() == 1, "nvmlInit_v2 depth %d after open", f->init_depth());

    device_expect ex[2] = {expect_all(0, &first_settings[0]), expect_all(1, &first_settings[1])};
    check_readings(t, ex, 2);
    check_prometheus(t, ex, 2);
    check_json(t, ex, 2);
    ksv_gpu_reading one;
    size_t n = 0;
    ksv_gpu_telemetry_read(t, &one, 1, &n);
    KT_CHECK(n == 1 && one.index == 0, "read with max 1 gave %zu", n);

    printf("  cache: new figures and refusals stay hidden for %.1f s\n",
           KSV_GPU_TELEMETRY_CACHE_S);
    unsigned long queries = f->queries();
    KT_CHECK(queries == 2 * 4, "%lu device queries for one sample of 2 devices", queries);
    apply_settings(f, second_settings);
    f->set_result("nvmlDeviceGetUtilizationRates", 1, 3 /* NOT_SUPPORTED, as under MIG */);
    f->set_result("nvmlDeviceGetTemperature", 1, 4 /* NO_PERMISSION */);
    f->set_result("nvmlDeviceGetMemoryInfo", 0, 15 /* GPU_IS_LOST */);
    check_readings(t, ex, 2);
    check_json(t, ex, 2);
    KT_CHECK(f->queries() == queries, "cached reads queried NVML (%lu -> %lu)", queries,
             f->queries());

    struct timespec pause = {1, 150 * 1000000L};
    nanosleep(&pause, NULL);
    device_expect later[2] = {expect_all(0, &second_settings[0]),
                              expect_all(1, &second_settings[1])};
    later[0].has_memory = false;
    later[1].has_utilization = false;
    later[1].has_temperature = false;
    check_readings(t, later, 2);
    check_prometheus(t, later, 2);
    check_json(t, later, 2);
    KT_CHECK(f->queries() == queries + 8, "one refresh should query 8 times, did %lu",
             f->queries() - queries);

    ksv_gpu_telemetry_close(t);
    KT_CHECK(f->init_depth() == 0, "nvmlShutdown not called at close (depth %d)", f->init_depth());
}

typedef struct reader_arg {
    ksv_gpu_telemetry *t;
    int bad;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    ksv_sb sb;
    ksv_sb_init(&sb);
    for (int i = 0; i < 2000; i++) {
        ksv_gpu_reading r[2];
        size_t n = 0;
        ksv_gpu_telemetry_read(a->t, r, 2, &n);
        if (n != 2 || r[0].memory_used_bytes != (long long)first_settings[0].memory_used ||
            r[1].temperature_c != (int)first_settings[1].celsius)
            a->bad++;
        ksv_sb_reset(&sb);
        if (i % 2)
            ksv_gpu_telemetry_write_prometheus(a->t, &sb);
        else
            ksv_gpu_telemetry_write_json(a->t, &sb);
        if (sb.oom || sb.len == 0)
            a->bad++;
    }
    ksv_sb_free(&sb);
    return NULL;
}

static void test_concurrent_readers(const fake_nvml *f, const char *path)
{
    printf("4 threads x 2000 reads/writes share one handle\n");
    f->reset();
    apply_settings(f, first_settings);
    ksv_gpu_telemetry *t = NULL;
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && ksv_gpu_telemetry_count(t) == 2,
             "open failed");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[4];
    reader_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg){t, 0};
        KT_CHECK(pthread_create(&th[i], NULL, reader, &args[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        KT_CHECK(args[i].bad == 0, "thread %d saw %d inconsistent results", i, args[i].bad);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double elapsed = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    unsigned long refreshes = f->queries() / 8;
    printf("  %.3f s, %lu NVML refreshes for 16000 reads\n", elapsed, refreshes);
    KT_CHECK(refreshes >= 1 &&
                 refreshes <= (unsigned long)(elapsed / KSV_GPU_TELEMETRY_CACHE_S) + 2,
             "%lu refreshes in %.3f s", refreshes, elapsed);
    ksv_gpu_telemetry_close(t);
    KT_CHECK(f->init_depth() == 0, "init depth %d after close", f->init_depth());
}

static void test_nvml_failures(const fake_nvml *f, const char *path)
{
    ksv_gpu_telemetry *t = NULL;

    printf("nvmlInit_v2 fails (DRIVER_NOT_LOADED) -> 0 GPUs, no shutdown owed\n");
    f->reset();
    apply_settings(f, first_settings);
    f->set_result("nvmlInit_v2", -1, 9);
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && t, "open must not fail");
    check_no_gpus(t, "nvmlInit_v2: Driver Not Loaded (9)");
    KT_CHECK(f->init_depth() == 0, "init depth %d", f->init_depth());
    ksv_gpu_telemetry_close(t);
    KT_CHECK(f->queries() == 0, "queried devices without NVML");

    printf("nvmlDeviceGetCount_v2 fails -> 0 GPUs, NVML shut down again\n");
    f->reset();
    apply_settings(f, first_settings);
    f->set_result("nvmlDeviceGetCount_v2", -1, 999);
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && t, "open must not fail");
    check_no_gpus(t, "nvmlDeviceGetCount_v2: Unknown Error (999)");
    KT_CHECK(f->init_depth() == 0, "init depth %d after failed enumeration", f->init_depth());
    ksv_gpu_telemetry_close(t);
    KT_CHECK(f->init_depth() == 0, "init depth %d after close", f->init_depth());

    printf("no device handle for GPU 0 (NO_PERMISSION) -> GPU 1 alone, keeping its index\n");
    f->reset();
    apply_settings(f, first_settings);
    f->set_result("nvmlDeviceGetHandleByIndex_v2", 0, 4);
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && ksv_gpu_telemetry_count(t) == 1,
             "count %zu, want 1", ksv_gpu_telemetry_count(t));
    device_expect only1 = expect_all(1, &first_settings[1]);
    check_readings(t, &only1, 1);
    check_prometheus(t, &only1, 1);
    check_json(t, &only1, 1);
    ksv_gpu_telemetry_close(t);

    printf("nvmlDeviceGetName fails -> no name, every figure still there\n");
    f->reset();
    apply_settings(f, first_settings);
    f->set_result("nvmlDeviceGetName", -1, 3);
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && ksv_gpu_telemetry_count(t) == 2,
             "count %zu", ksv_gpu_telemetry_count(t));
    device_expect nameless[2] = {expect_all(0, &first_settings[0]),
                                 expect_all(1, &first_settings[1])};
    nameless[0].has_name = nameless[1].has_name = false;
    check_readings(t, nameless, 2);
    check_json(t, nameless, 2);
    ksv_gpu_telemetry_close(t);

    printf("a name longer than NVML's 96-byte buffer -> INSUFFICIENT_SIZE, no name\n");
    f->reset();
    apply_settings(f, first_settings);
    char long_name[200];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    f->set_device(0, long_name, 1, 2, 3, 4, 5);
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && ksv_gpu_telemetry_count(t) == 2,
             "count %zu", ksv_gpu_telemetry_count(t));
    ksv_gpu_reading r[2];
    size_t n = 0;
    ksv_gpu_telemetry_read(t, r, 2, &n);
    KT_CHECK(n == 2 && r[0].name[0] == '\0' && r[0].memory_total_bytes == 3,
             "long name: n=%zu name '%.20s'", n, r[0].name);
    ksv_gpu_telemetry_close(t);

    printf("NVML present, no device -> 0 GPUs, no reason, nothing written\n");
    f->reset();
    f->set_device_count(0);
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && t, "open must not fail");
    check_no_gpus(t, NULL);
    KT_CHECK(ksv_gpu_telemetry_unavailable_reason(t) == NULL, "reason with NVML present");
    ksv_gpu_telemetry_close(t);
    KT_CHECK(f->init_depth() == 0, "init depth %d after close", f->init_depth());
}

static void test_missing_function(void)
{
    printf("a library without nvmlDeviceGetPowerUsage -> 0 GPUs, the function named\n");
    fake_nvml f;
    char path[4200];
    fake_path("fake_nvml_nopower.so", path, sizeof path);
    if (!fake_open("fake_nvml_nopower.so", &f)) {
        KT_CHECK(false, "cannot load %s", path);
        return;
    }
    f.reset();
    apply_settings(&f, first_settings);
    ksv_gpu_telemetry *t = NULL;
    KT_CHECK(ksv_gpu_telemetry_open(path, &t) == 0 && t, "open must not fail");
    check_no_gpus(t, "nvmlDeviceGetPowerUsage");
    KT_CHECK(f.init_depth() == 0, "NVML initialised although a function is missing");
    ksv_gpu_telemetry_close(t);
    dlclose(f.lib);
}

int main(void)
{
    const char *env_dir = getenv("KSV_FAKE_NVML_DIR");
    snprintf(fake_dir, sizeof fake_dir, "%s", env_dir && *env_dir ? env_dir : KSV_FAKE_NVML_DIR);
    /* The module's "NVML not available" lines are info; keep the test output to checks. */
    ksv_log_set_level(KSV_LOG_WARN);

    test_missing_library();
    test_default_library();

    fake_nvml f;
    char path[4200];
    fake_path("fake_nvml.so", path, sizeof path);
    if (!fake_open("fake_nvml.so", &f)) {
        printf("FAIL: the simulated NVML library %s is needed (make check builds it)\n", path);
        return 1;
    }
    test_two_devices(&f, path);
    test_concurrent_readers(&f, path);
    test_nvml_failures(&f, path);
    dlclose(f.lib);
    test_missing_function();

    return kt_summary("test_gpu_telemetry");
}
