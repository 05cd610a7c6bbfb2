/* figures.h: the live figures `ksv get models` shows (QPS, P50, P99, ERR%), read from each
 * node's fine histograms twice, a short interval apart (KSV_SAMPLE_SECONDS, default 1):
 * QPS and error rate are the counters' increase over it, P50/P99 come from the increase of
 * the fine histogram (within 1.6%). A window without requests shows "-", never 0. */
#ifndef KSV_CONTROL_FIGURES_H
#define KSV_CONTROL_FIGURES_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "common/histogram.h"
#include "control/control.h"

typedef struct ksv_figure_series {
    char node[64];
    char model[96];
    char revision[96];
    ksv_hist_snap *before, *after;
    double codes_before[3], codes_after[3];   /* 2xx/other, 4xx, 5xx */
} ksv_figure_series;

typedef struct ksv_figures {
    ksv_figure_series *series;
    size_t n;
    double seconds;               /* the sampling interval actually measured */
} ksv_figures;

typedef struct ksv_model_figures {
    bool has_data;                /* both samples were read */
    double requests;              /* in the interval */
    double qps;
    double p50_s, p99_s;          /* NaN: no requests */
    double err_pct;               /* 5xx share in percent; NaN: no requests */
    double client_err_pct;        /* 4xx share */
} ksv_model_figures;

void ksv_figures_collect(ksv_ctl *ctl, ksv_figures *out);
void ksv_figures_model(const ksv_figures *f, const ksv_model *m, ksv_model_figures *out);
/* Formats as DESIGN §7 says: "12.3", "3.2ms", "0.25%", "-" without data. */
void ksv_figures_format(const ksv_model_figures *f, char *qps, char *p50, char *p99, char *err,
                        size_t cap);
void ksv_figures_to_json(const ksv_model_figures *f, json_object *obj);
void ksv_figures_free(ksv_figures *f);

#endif
