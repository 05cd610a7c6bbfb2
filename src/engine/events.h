/* events.h: the engine's append-only event log, kept in the state dir.
 *
 * Any engine module records what it decided by itself (a gate's step, verdict, promotion or
 * rollback; a load, an unload, a cold start; a runtime restart) with its own `kind`, and
 * consoles read the log with GET /ksv/v1/events?since=SEQ to learn what happened while
 * nobody was connected. docs/API.md documents the wire format.
 *
 * Storage. STATE_DIR/events.log holds one JSON object per line, in seq order. When it would
 * grow past max_file_bytes it is renamed to events.1.log (replacing the previous one) and a
 * new events.log starts, so the log never takes more than about twice that on disk. seq is
 * monotonic across rotations and restarts: it continues from the last event found in
 * either file. STATE_DIR/events.id names this log (random, made once): a console that sees
 * another id knows the log was reset and starts over from seq 0.
 *
 * Durability (fsync policy). Each event is one write() to an O_APPEND file followed by
 * fdatasync() before ksv_events_append returns, so an event a console has read (or a step
 * the engine then took) survives a crash or power loss. Events are rare (one per gate step
 * or model lifecycle change, never per request), so the cost is one disk flush per decision.
 * A crash in the middle of a write leaves at most a partial last line: open() cuts it off.
 *
 * Threads: every function may be called from any thread. */
#ifndef KSV_ENGINE_EVENTS_H
#define KSV_ENGINE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/strbuf.h"

typedef struct ksv_event_log ksv_event_log;

enum {
    KSV_EVENT_KIND_MAX = 40,         /* [a-z0-9-], e.g. "gate-step", "model-load" */
    KSV_EVENT_MESSAGE_MAX = 1024,    /* longer messages are cut (on a UTF-8 boundary) */
    KSV_EVENT_FIGURES_MAX = 4096,    /* figures JSON text; larger is replaced by {} */
    KSV_EVENTS_PAGE_DEFAULT = 500,   /* events per GET when no limit is given */
    KSV_EVENTS_PAGE_MAX = 5000,
};

#define KSV_EVENTS_DEFAULT_FILE_BYTES (4u << 20)

/* Opens (creating when missing) the log in dir. max_file_bytes: rotation size, 0 for the
 * default; the environment variable KSV_EVENTS_MAX_BYTES overrides it (tests). */
int ksv_events_open(const char *dir, size_t max_file_bytes, ksv_event_log **out, ksv_err *err);
void ksv_events_close(ksv_event_log *log);

/* Appends one event and returns its seq, or 0 when it could not be written (logged; the
 * caller's decision stands either way). model, revision: NULL when the event is not about
 * one. kind: [a-z0-9-], 1..KSV_EVENT_KIND_MAX chars. figures_json: a JSON object with the
 * numbers behind the decision, or NULL. The message is printf-formatted. */
uint64_t ksv_events_append(ksv_event_log *log, const char *model, const char *revision,
                           const char *kind, const char *figures_json, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The same, stamped with the time at_ms (wall ms) when the decision was taken rather than
 * when it is written: modules that decide under a lock write their events after it. */
uint64_t ksv_events_append_at(ksv_event_log *log, int64_t at_ms, const char *model,
                              const char *revision, const char *kind, const char *figures_json,
                              const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* Event times come from clock (NULL: the real wall clock; see ksv_clock). */
void ksv_events_set_clock(ksv_event_log *log, const ksv_clock *clock);
/* Now, on the log's clock, in wall milliseconds. */
int64_t ksv_events_now_ms(const ksv_event_log *log);

/* Writes {"log_id":ID,"first_seq":F,"last_seq":L,"events":[...],"more":BOOL}: the events
 * with seq > since, oldest first, at most limit of them (0: the default page). first_seq is
 * the oldest event still kept (0 when none): a client whose cursor is below first_seq - 1
 * has missed events that were rotated away. */
int ksv_events_write_since(ksv_event_log *log, uint64_t since, size_t limit, ksv_sb *sb,
                           ksv_err *err);

/* The last seq written (0 when the log is empty). */
uint64_t ksv_events_last_seq(ksv_event_log *log);
/* Writes {"log_id":ID,"last_seq":L}: what a console compares with its cursor to learn,
 * without reading the log, whether there is anything new (GET /ksv/v1/node). */
void ksv_events_write_position(ksv_event_log *log, ksv_sb *sb);

#endif
