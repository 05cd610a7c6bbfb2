/* fetch_pool.h: downloads run here, on their own threads, never on the registry's lifecycle
 * thread. A slow or endless transfer therefore cannot delay another model's load, drain or
 * traffic change, and each transfer is bounded: an overall deadline, a stall rule, and a
 * cancel that the registry sends when the revision is deleted or replaced and that
 * shutdown sends to every job.
 *
 * A job is named by the id ksv_fetch_submit returns; ksv_fetch_cancel takes that id, so a
 * cancel that races with the job's end is harmless. `done` runs exactly once per submitted
 * job, on a pool thread (or in ksv_fetch_pool_destroy for jobs that never started), with
 * the local path on success. */
#ifndef KSV_ENGINE_FETCH_POOL_H
#define KSV_ENGINE_FETCH_POOL_H

#include <stdint.h>

#include "common/error.h"
#include "engine/storage.h"

typedef struct ksv_fetch_pool ksv_fetch_pool;

typedef struct ksv_fetch_pool_config {
    unsigned threads;             /* concurrent transfers */
    double deadline_s;            /* whole fetch, from its start; <= 0: none */
    double stall_s;               /* abandon a transfer that moves under 1 KiB in this long */
    unsigned long long max_bytes; /* largest model, downloaded or unpacked; 0: default */
    ksv_cache *cache;             /* where fetched models go (not owned) */
} ksv_fetch_pool_config;

/* rc 0: res holds the local model, its cache tree pinned for the receiver; otherwise err
 * says why (status 499 when cancelled) and res is NULL. */
typedef void (*ksv_fetch_done_fn)(void *user, uint64_t id, int rc, const ksv_fetch_result *res,
                                  const ksv_err *err);

int ksv_fetch_pool_create(const ksv_fetch_pool_config *cfg, ksv_fetch_pool **out,
                          ksv_err *err);
/* Cancels every job, waits for the threads (each transfer notices within about a second),
 * calls `done` for jobs still queued, and frees the pool. */
void ksv_fetch_pool_destroy(ksv_fetch_pool *pool);

/* Queues the fetch of uri (checked against sha256 when not empty; any_file as in
 * ksv_fetch_ctl). progress (may be NULL) is the caller's and must stay valid until `done`
 * has run; the job resets it when it starts and reports into it. Returns a job id > 0, or
 * 0 with err set when the job cannot even be queued. */
uint64_t ksv_fetch_submit(ksv_fetch_pool *pool, const char *uri, const char *sha256,
                          bool any_file, ksv_fetch_progress *progress, ksv_fetch_done_fn done,
                          void *user, ksv_err *err);
/* Asks a job to stop; its `done` still runs (with status 499). Unknown ids are ignored. */
void ksv_fetch_cancel(ksv_fetch_pool *pool, uint64_t id, const char *why);

#endif
