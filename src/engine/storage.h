/* storage.h: turning a revision's storage URI into a local model file.
 *
 * file:///abs/path and /abs/path name a model file (.json, .ubj, .bst) or a folder that
 * holds exactly one, as KServe's model servers accept. http:// and https:// URLs name a
 * model file that the engine fetches once into its cache (STATE_DIR/cache/KEY/, KEY the
 * sha256 of the URL and the digest asked for),
 * checked against the expected sha256 when one is given (the ksv.io/sha256 annotation);
 * a cached copy is reused, so a restarted engine loads without the network. */
#ifndef KSV_ENGINE_STORAGE_H
#define KSV_ENGINE_STORAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* Largest model file fetched over HTTP. */
#define KSV_STORAGE_MAX_DOWNLOAD (8ull << 30)

/* What bounds one fetch: the fetch pool fills it (see fetch_pool.h). */
typedef struct ksv_fetch_ctl {
    const _Atomic bool *cancel;   /* set by another thread to stop the transfer */
    double deadline;              /* CLOCK_MONOTONIC seconds; 0: none */
    double deadline_s;            /* the same as a length, for the error message */
    double stall_s;               /* fewer than 1 KiB in this many seconds stops it; 0: none */
} ksv_fetch_ctl;

/* True when the URI names something to download (http, https...), false for local paths:
 * those resolve at once, downloads go through the fetch pool. */
bool ksv_storage_is_remote(const char *uri);

/* A local path or file:// URI: the model file (or folder) to load. */
int ksv_storage_resolve_local(const char *uri, char *path, size_t cap, ksv_err *err);

/* A remote URI: fetched into cache_dir (reused when already there), checked against sha256
 * (64 hex digits, or NULL/"" to accept any). Blocks; call from a fetch pool thread. */
int ksv_storage_fetch(const char *uri, const char *cache_dir, const char *sha256,
                      const ksv_fetch_ctl *ctl, char *path, size_t cap, ksv_err *err);

#endif
