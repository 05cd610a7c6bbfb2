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

#include <stddef.h>

#include "common/error.h"

/* Largest model file fetched over HTTP. */
#define KSV_STORAGE_MAX_DOWNLOAD (8ull << 30)

/* cache_dir: where fetched files go (NULL: http(s) is refused). sha256: expected digest of
 * the file as 64 hex digits, or NULL/"" to accept any. */
int ksv_storage_resolve(const char *uri, const char *cache_dir, const char *sha256, char *path,
                        size_t cap, ksv_err *err);

#endif
