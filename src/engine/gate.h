/* gate.h: release gates run by the engine itself (docs/API.md, "PUT .../rollout").
 *
 * A gate rolls one model's new revision (the canary) out step by step: each step's weight
 * is held for one analysis interval, then judged by metrics read from the engine's own
 * counters and fine histograms (success rate, P99 duration); a step that passes moves on,
 * an inconclusive one (too few requests) holds the step until progress_deadline_s, and
 * `threshold` failed checks put 100% back on the stable revision. The policy and progress
 * are kept in STATE_DIR/rollouts.json (written atomically after every decision), so an
 * engine restarted mid-rollout resumes at its step; every decision is an event
 * (events.h, kinds gate-*).
 *
 * Threads. The gate's own thread ticks every 100 ms. Decisions and their effects on the
 * registry are serialized by one mutex (apply_mu) taken by the tick and by operator
 * actions, so an abort can never be overwritten by a step decided just before it; the
 * table itself is guarded by a second, short mutex that is never held while calling the
 * registry (the registry calls ksv_gate's state writer under its own read lock). */
#ifndef KSV_ENGINE_GATE_H
#define KSV_ENGINE_GATE_H

#include <stdbool.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/events.h"
#include "engine/registry.h"

typedef struct ksv_gate ksv_gate;

/* Restores STATE_DIR/rollouts.json (when present) and starts the gate's thread. The gate
 * hooks its "rollout" field into the registry's model state. */
int ksv_gate_create(ksv_registry *reg, ksv_event_log *events, const char *state_dir,
                    ksv_gate **out, ksv_err *err);
void ksv_gate_destroy(ksv_gate *g);

/* PUT /ksv/v1/models/{m}/rollout. The same policy for the same canary again is a no-op
 * (an unchanged manifest applied twice does not restart a rollout). */
int ksv_gate_put(ksv_gate *g, const char *model, json_object *body, ksv_err *err);
/* pause | resume | abort | retry | promote; 409 when the phase does not allow it. */
int ksv_gate_action(ksv_gate *g, const char *model, const char *action, ksv_err *err);
/* The gate owns the split of an active rollout: a model PUT that still lists its canary
 * and stable gets the gate's weights instead of its own (true when it changed spec). */
bool ksv_gate_hold_split(ksv_gate *g, ksv_model_spec *spec);
/* The model's rollout object, 404 when it has none. */
int ksv_gate_write(ksv_gate *g, const char *model, ksv_sb *sb, ksv_err *err);
/* ksv_canary_status, ksv_canary_weight, ksv_canary_checks_total. */
void ksv_gate_write_prometheus(ksv_gate *g, ksv_sb *sb);

#endif
