/* cache.h: the engine's one model cache, content-addressed and shared by every revision.
 *
 * Layout under the cache folder (STATE_DIR/cache):
 *   blobs/SHA256          each distinct file once, named by its digest (read-only)
 *   trees/ID/...          a model as the runtime sees it: a folder of hard links to blobs
 *   trees/ID.manifest     its files, one "SHA256  PATH" line each, sorted by PATH (the
 *                         format of sha256sum); ID is the sha256 of this text, so a
 *                         folder's digest is computable with standard tools
 *   refs/KEY              which tree a source (URI + expected digest) gave last time, so a
 *                         restarted engine loads without the network
 *   staging/...           scratch folders a download fills before it is committed
 *
 * Integrity: every lookup re-hashes the tree's files against its manifest (and the
 * manifest against ID); a tree that no longer matches is removed and fetched again.
 * Expected digests (ksv.io/sha256): a single-file model's digest is its file's; a folder's
 * is its manifest's (ID).
 *
 * Size cap: when the blobs pass max_bytes, whole trees go, least recently used first
 * (a lookup or commit counts as a use), then every blob no tree links. A tree that a
 * revision holds (pinned) is never removed.
 *
 * Thread-safe: fetch threads look up and commit at once; one mutex guards the folder
 * changes, hashing runs outside it. */
#ifndef KSV_ENGINE_CACHE_H
#define KSV_ENGINE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct ksv_cache ksv_cache;

/* max_bytes 0: no cap. Creates the folders; removes leftovers of an earlier run (staging,
 * the pre-content-addressed layout, blobs no tree uses) and evicts down to the cap. */
int ksv_cache_open(const char *dir, uint64_t max_bytes, ksv_cache **out, ksv_err *err);
void ksv_cache_close(ksv_cache *c);
const char *ksv_cache_dir(const ksv_cache *c);

/* The key a source is known by: sha256 of "URI\nEXPECTED" (expected lowercased). */
void ksv_cache_key(const char *uri, const char *expected, char key[65]);

typedef struct ksv_cache_tree {
    char id[65];
    char dir[4096];               /* trees/ID */
    size_t files;
    uint64_t bytes;
    char single_digest[65];       /* the file's digest when the tree is one file, else "" */
} ksv_cache_tree;

/* Finds a verified tree for key (or, when expected names a folder digest, that tree);
 * 1 found (pinned: give it back with ksv_cache_unpin), 0 not cached, -1 error. */
int ksv_cache_lookup(ksv_cache *c, const char *key, const char *expected, ksv_cache_tree *out,
                     ksv_err *err);

/* A new empty scratch folder under staging/ for a download to fill. */
int ksv_cache_stage(ksv_cache *c, char *dir, size_t cap, ksv_err *err);
/* Removes a scratch folder and what is in it. */
void ksv_cache_discard(const char *staged);

/* Moves a filled scratch folder into the cache as a tree (folder layout kept; symbolic
 * links inside it are stored as the files they point to), checks it against expected
 * (NULL/"" accepts any), records key -> tree, evicts down to the cap, and returns the tree
 * pinned. The scratch folder is gone afterwards, committed or not. */
int ksv_cache_commit(ksv_cache *c, const char *staged, const char *key, const char *expected,
                     const char *shown, ksv_cache_tree *out, ksv_err *err);

void ksv_cache_unpin(ksv_cache *c, const char *id);

/* Where a download named by `name` (64 hex digits: a hash of the object's identity) keeps
 * its bytes between tries, so that a broken transfer resumes (partial/NAME). */
int ksv_cache_partial(ksv_cache *c, const char *name, char *path, size_t cap, ksv_err *err);

/* Bytes the blobs take now. */
uint64_t ksv_cache_bytes(ksv_cache *c);

/* {"bytes":N,"max_bytes":N,"models":N,"held":N}: what the cache holds, and how many of its
 * models revisions hold. */
struct ksv_sb;
void ksv_cache_write_json(ksv_cache *c, struct ksv_sb *sb);

#endif
