/* gate_policy.h: a release gate's policy (what PUT /ksv/v1/models/{m}/rollout says) and its
 * progress (where the rollout stands), with their JSON forms. The policy mirrors the
 * fields of a Flagger Canary's analysis that ksv acts on (docs/API.md, "PUT .../rollout"); the
 * progress is what the engine persists so a restarted engine resumes the rollout.
 * docs/API.md documents both bodies. */
#ifndef KSV_ENGINE_GATE_POLICY_H
#define KSV_ENGINE_GATE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/model_spec.h"

#define KSV_GATE_MAX_STEPS 100
#define KSV_GATE_MAX_METRICS 8
#define KSV_GATE_DEFAULT_MIN_REQUESTS 100
#define KSV_GATE_DEFAULT_THRESHOLD 5
#define KSV_GATE_DEFAULT_DEADLINE_S 600.0
/* A metric's window is at most this many analysis intervals (the gate keeps one sample of
 * the canary's counters per interval). */
#define KSV_GATE_MAX_WINDOW_INTERVALS 16

typedef enum {
    KSV_METRIC_SUCCESS_RATE,      /* request-success-rate: % of the canary's answers that are 2xx */
    KSV_METRIC_DURATION,          /* request-duration: the canary's P99 in ms */
    KSV_METRIC_DISAGREEMENT,      /* prediction-disagreement: fraction of mirrored rows differing */
} ksv_gate_metric_kind;

typedef struct ksv_gate_metric {
    ksv_gate_metric_kind kind;
    bool has_min, has_max;
    double min, max;
    double interval_s;            /* the metric's window; 0: the analysis interval */
    uint64_t min_requests;        /* fewer answers in the window: inconclusive */
} ksv_gate_metric;

typedef struct ksv_gate_policy {
    char canary[KSV_NAME_MAX];    /* the revision being rolled out */
    char stable[KSV_NAME_MAX];    /* the revision it replaces */
    double interval_s;            /* each step is held this long, then judged (>= 1) */
    int threshold;                /* failed checks before rollback */
    int steps[KSV_GATE_MAX_STEPS];/* canary weights, increasing, last one < 100 or == 100 */
    int n_steps;
    bool mirror;                  /* copy stable's requests to the canary first */
    bool skip_analysis;           /* Flagger's skipAnalysis: promote once the canary is
                                   * ready, with no steps and no checks */
    int mirror_weight;            /* percent of stable's requests copied */
    int iterations;               /* mirrored intervals before live weight */
    double progress_deadline_s;   /* longest wait for a conclusive verdict */
    ksv_gate_metric metrics[KSV_GATE_MAX_METRICS];
    int n_metrics;
} ksv_gate_policy;

typedef enum {
    KSV_PHASE_INITIALIZING,
    KSV_PHASE_PROGRESSING,
    KSV_PHASE_WAITING,
    KSV_PHASE_PAUSED,
    KSV_PHASE_PROMOTING,
    KSV_PHASE_SUCCEEDED,
    KSV_PHASE_FAILED,
} ksv_gate_phase;

typedef enum { KSV_VERDICT_NONE, KSV_VERDICT_PASS, KSV_VERDICT_FAIL, KSV_VERDICT_INCONCLUSIVE } ksv_verdict;

typedef struct ksv_gate_check {
    double value;                 /* NaN when nothing was measured */
    ksv_verdict verdict;
    uint64_t requests;            /* the canary's answers in the window */
    double time;                  /* unix seconds of the judgement */
} ksv_gate_check;

typedef struct ksv_gate_progress {
    ksv_gate_phase phase;
    ksv_gate_phase paused_from;   /* the phase pause interrupted */
    int step;                     /* -iterations..-1: mirrored intervals; 0..n_steps-1: weights */
    int set_weight;               /* the canary weight the gate asks for */
    int failed_checks;
    double started;               /* unix seconds the rollout (or its retry) began */
    double step_started;          /* unix seconds the current step began */
    double waiting_since;         /* unix seconds verdicts became inconclusive; 0: not waiting */
    bool manual;                  /* promoted by an operator (skipping the gate) */
    char reason[400];             /* why it halted or failed */
    ksv_gate_check checks[KSV_GATE_MAX_METRICS];
} ksv_gate_progress;

const char *ksv_gate_phase_name(ksv_gate_phase p);
const char *ksv_verdict_name(ksv_verdict v);
const char *ksv_gate_metric_name(ksv_gate_metric_kind k);
bool ksv_gate_phase_active(ksv_gate_phase p); /* not Succeeded or Failed */

/* Parses a PUT body (docs/API.md) into a policy; 400 with the field's path on any problem:
 * unknown metric, no threshold range, step weights outside 1..100 or not increasing,
 * interval under 1 s, prediction-disagreement without mirror... */
int ksv_gate_policy_from_json(json_object *body, ksv_gate_policy *out, ksv_err *err);
void ksv_gate_policy_to_json(ksv_sb *sb, const ksv_gate_policy *p);

/* Progress, as persisted (and read back on restart). */
void ksv_gate_progress_to_json(ksv_sb *sb, const ksv_gate_progress *g, const ksv_gate_policy *p);
int ksv_gate_progress_from_json(json_object *obj, const ksv_gate_policy *p,
                                ksv_gate_progress *out, ksv_err *err);

#endif
