/* storage.h: turning a revision's storage URI into a local model.
 *
 * file:///abs/path and /abs/path name a model file (.json, .ubj, .bst) or a folder that
 * holds exactly one, as KServe's model servers accept; they resolve at once.
 * http:// and https:// URLs name a model file or an archive (.tar, .tar.gz, .tgz, .zip,
 * unpacked by archive.c); they are downloaded on a fetch pool thread into the engine's
 * content-addressed cache (cache.c), checked against the expected sha256 when one is given
 * (the ksv.io/sha256 annotation), and reused from there, so a restarted engine loads
 * without the network. */
#ifndef KSV_ENGINE_STORAGE_H
#define KSV_ENGINE_STORAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/cache.h"

/* Largest model file fetched over HTTP. */
#define KSV_STORAGE_MAX_DOWNLOAD (8ull << 30)

/* How far one fetch has come, read by other threads while it runs (the state JSON's
 * "download", GET /ksv/v1/pulls). Owned by whoever asked for the fetch; the fetch pool
 * resets it when the job starts and stamps its end. */
typedef struct ksv_fetch_progress {
    _Atomic long long bytes;      /* in place so far: downloaded, resumed from a partial
                                   * file, or found in the cache */
    _Atomic long long total;      /* the bytes expected; -1 while unknown */
    _Atomic long long moved;      /* bytes this fetch received over the network */
    _Atomic long long started_us; /* CLOCK_MONOTONIC microseconds; 0: not started */
    _Atomic long long ended_us;   /* 0 while running */
} ksv_fetch_progress;

/* What bounds one fetch: the fetch pool fills it (see fetch_pool.h). */
typedef struct ksv_fetch_ctl {
    const _Atomic bool *cancel;   /* set by another thread to stop the transfer */
    double deadline;              /* CLOCK_MONOTONIC seconds; 0: none */
    double deadline_s;            /* the same as a length, for the error message */
    double stall_s;               /* fewer than 1 KiB in this many seconds stops it; 0: none */
    unsigned long long max_bytes; /* largest download, and largest unpacked archive; 0: the
                                   * default, KSV_STORAGE_MAX_DOWNLOAD */
    bool any_file;                /* an http(s) URL may name any file, not only a model file
                                   * or an archive: an external runtime reads it, not ksv */
    ksv_fetch_progress *progress; /* NULL: nobody watches */
    ksv_cache *cache;             /* where a broken transfer keeps its bytes to resume from
                                   * (cache/partial); NULL: nowhere */
} ksv_fetch_ctl;

/* The transfers report here (each a no-op when ctl->progress is NULL). */
void ksv_fetch_progress_add(const ksv_fetch_ctl *ctl, long long bytes, long long moved);
/* Sets the expected total: only when unknown so far, unless force (a store's listing). */
void ksv_fetch_progress_expect(const ksv_fetch_ctl *ctl, long long total, bool force);
/* {"bytes":B,"total":T,"bytes_per_s":R,"seconds":S}: total -1 while unknown; the rate is
 * the bytes received over the network per second since the fetch started. */
void ksv_fetch_progress_json(const ksv_fetch_progress *p, ksv_sb *sb);

typedef struct ksv_fetch_result {
    char path[4096];              /* the model's folder in the cache */
    char tree[65];                /* its cache tree, pinned: ksv_cache_unpin when done */
    char pinned[1024];            /* hf://: the URI at the commit its revision named; "" */
} ksv_fetch_result;

/* True when the URI names something to download (http, https...), false for local paths:
 * those resolve at once, downloads go through the fetch pool. */
bool ksv_storage_is_remote(const char *uri);

/* A local path or file:// URI: the model file (or folder) to load. */
int ksv_storage_resolve_local(const char *uri, char *path, size_t cap, ksv_err *err);

/* A remote URI: fetched into the cache (reused when already there and intact), checked
 * against sha256 (64 hex digits, or NULL/"" to accept any: a file's digest, a folder's
 * manifest digest, or an archive's own). Blocks; call from a fetch pool thread. */
int ksv_storage_fetch(const char *uri, ksv_cache *cache, const char *sha256,
                      const ksv_fetch_ctl *ctl, ksv_fetch_result *out, ksv_err *err);

#endif
