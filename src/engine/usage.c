/* usage.c: residency events for `ksv cost`, queued under the registry lock and written
 * after it (usage.h). */
#include "engine/usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/strbuf.h"

void ksv_usage_init(ksv_usage_queue *q)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
}

void ksv_usage_destroy(ksv_usage_queue *q)
{
    free(q->notes);
    pthread_mutex_destroy(&q->mu);
}

void ksv_usage_push(ksv_usage_queue *q, const ksv_usage_note *note)
{
    pthread_mutex_lock(&q->mu);
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        ksv_usage_note *grown = realloc(q->notes, cap * sizeof *grown);
        if (!grown) {
            q->lost++;
            pthread_mutex_unlock(&q->mu);
            return;
        }
        q->notes = grown;
        q->cap = cap;
    }
    q->notes[q->n++] = *note;
    pthread_mutex_unlock(&q->mu);
}

static void write_note(ksv_event_log *log, const ksv_usage_note *u)
{
    ksv_sb fig;
    ksv_sb_init(&fig);
    ksv_sb_printf(&fig,
                  "{\"reason\":\"%s\",\"memory_bytes\":%llu,\"gpu_memory_bytes\":%llu,"
                  "\"requests\":%llu,\"idle_seconds\":%.3f,\"resident_seconds\":%.3f,"
                  "\"load_seconds\":%.6f}",
                  u->reason, (unsigned long long)u->memory_bytes,
                  (unsigned long long)u->gpu_memory_bytes, (unsigned long long)u->requests,
                  u->idle_seconds, u->resident_seconds, u->load_seconds);
    ksv_events_append_at(log, u->at_ms, u->model, u->revision, u->kind,
                         fig.oom ? NULL : fig.data, "revision %s: %s (%s)", u->revision, u->kind,
                         u->reason);
    ksv_sb_free(&fig);
}

size_t ksv_usage_flush(ksv_usage_queue *q, ksv_event_log *log)
{
    pthread_mutex_lock(&q->mu);
    ksv_usage_note *notes = q->notes;
    size_t n = q->n;
    uint64_t lost = q->lost;
    q->notes = NULL;
    q->n = q->cap = 0;
    q->lost = 0;
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n; i++)
        write_note(log, &notes[i]);
    free(notes);
    if (lost)
        ksv_log(KSV_LOG_ERROR, NULL, "usage: %llu residency event(s) lost (out of memory)",
                (unsigned long long)lost);
    return n;
}
