/* usage.h: what each revision held and for how long, as events for `ksv cost`.
 *
 * Every residency of a revision in memory is bracketed by two events in the engine's event
 * log (events.h): it begins with "model-load" (or "cold-start" when a request woke a
 * scaled-to-zero revision) and ends with "model-unload" or "scale-to-zero". A revision
 * that is scaled to zero and then leaves the split (or the engine) ends its time at zero
 * with a "model-unload" whose memory is 0. Figures (all counts since the residency began):
 *   {"reason":R,"memory_bytes":N,"gpu_memory_bytes":N,"requests":N,"idle_seconds":S,
 *    "resident_seconds":S,"load_seconds":S}
 * reason: "load", "cold-start", "idle" (scaled to zero), "memory-budget", "rollback-window",
 * "left-split", "removed", "shutdown". idle_seconds: see ksv_cold_touch.
 *
 * The registry decides under its lock and must not wait for the disk there (each event is
 * fsynced), so it queues notes stamped with the decision's time, and the lifecycle thread
 * writes them after letting go of the lock (ksv_usage_flush).
 *
 * Threads: every function may be called from any thread. */
#ifndef KSV_ENGINE_USAGE_H
#define KSV_ENGINE_USAGE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/events.h"
#include "engine/model_spec.h"

typedef struct ksv_usage_note {
    char model[KSV_NAME_MAX];
    char revision[KSV_NAME_MAX];
    const char *kind;             /* a string literal: model-load, cold-start, ... */
    const char *reason;           /* a string literal (see above) */
    int64_t at_ms;                /* wall ms on the registry's clock */
    uint64_t memory_bytes, gpu_memory_bytes, requests;
    double idle_seconds, resident_seconds, load_seconds;
} ksv_usage_note;

typedef struct ksv_usage_queue {
    pthread_mutex_t mu;
    ksv_usage_note *notes;
    size_t n, cap;
    uint64_t lost;                /* notes dropped for want of memory */
} ksv_usage_queue;

void ksv_usage_init(ksv_usage_queue *q);
void ksv_usage_destroy(ksv_usage_queue *q);
/* Queues one note (copied). */
void ksv_usage_push(ksv_usage_queue *q, const ksv_usage_note *note);
/* Writes the queued notes to log, oldest first; returns how many. */
size_t ksv_usage_flush(ksv_usage_queue *q, ksv_event_log *log);

#endif
