/* figures.h: the live figures `ksv get models` shows (QPS, P50, P99, ERR%), from two
 * scrapes of each node's fine histograms a short interval apart (KSV_SAMPLE_SECONDS,
 * default 1), through the metrics window of metrics_window.h (the one place that turns
 * counters and histograms into rates and quantiles, counter resets included). Each scrape
 * pair is also stored as samples in SQLite, with bounded retention. A window without
 * requests shows "-", never 0. */
#ifndef KSV_CONTROL_FIGURES_H
#define KSV_CONTROL_FIGURES_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "control/control.h"
#include "control/metrics_window.h"

typedef struct ksv_figures {
    ksv_mwin *window;
    int64_t now_ms;               /* when the second scrape ended */
    int64_t span_ms;              /* between the two scrapes */
} ksv_figures;

typedef struct ksv_model_figures {
    bool has_data;                /* two scrapes of a node holding the model */
    double qps;
    double p50_s, p99_s;          /* NaN: no requests */
    double err_pct;               /* non-2xx share in percent; NaN: no requests */
    double client_err_pct;        /* 4xx share */
    double server_err_pct;        /* 5xx share */
} ksv_model_figures;

void ksv_figures_collect(ksv_ctl *ctl, ksv_figures *out);
void ksv_figures_model(const ksv_figures *f, const ksv_model_record *m, ksv_model_figures *out);
/* Formats as README.md's console section says: "12.3", "3.2ms", "0.25%", "-" without data. */
void ksv_figures_format(const ksv_model_figures *f, char *qps, char *p50, char *p99, char *err,
                        size_t cap);
void ksv_figures_to_json(const ksv_model_figures *f, json_object *obj);
void ksv_figures_free(ksv_figures *f);

#endif
