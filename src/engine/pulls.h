/* pulls.h: models fetched into the engine's cache ahead of a rollout or a cold start
 * (`ksv pull`, POST /ksv/v1/pulls), with their progress for GET /ksv/v1/pulls and the
 * state JSON. A pull loads nothing: the revision that later names the same URI (and
 * sha256) finds the model in the cache and loads without the network.
 *
 * The engine keeps the last KSV_PULLS_MAX pulls; a finished one makes room for a new one,
 * oldest first. Each runs as one fetch pool job, bounded as a revision's download is
 * (deadline, stall rule, size cap) and cancelled at shutdown. */
#ifndef KSV_ENGINE_PULLS_H
#define KSV_ENGINE_PULLS_H

#include <stdbool.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/cache.h"
#include "engine/fetch_pool.h"

#define KSV_PULLS_MAX 64
#define KSV_PULL_URI_MAX 2048
#define KSV_PULL_MODEL_MAX 253

typedef struct ksv_pulls ksv_pulls;

/* The pool and cache are borrowed: destroy the pool (which ends every job) before
 * ksv_pulls_destroy. */
int ksv_pulls_create(ksv_fetch_pool *pool, ksv_cache *cache, ksv_pulls **out, ksv_err *err);
void ksv_pulls_destroy(ksv_pulls *p);

/* Starts a pull from a POST body {"storage_uri":URI, "sha256":HEX?, "model":NAME?} (model
 * only labels it, for people and consoles; no other field is accepted) and writes the pull's JSON into answer. A pull
 * of the same URI and sha256 that is still queued or running is answered instead of a
 * second one (*created false). 400 for a malformed body, 429 when KSV_PULLS_MAX pulls are
 * all still running. */
int ksv_pulls_start(ksv_pulls *p, json_object *body, bool *created, ksv_sb *answer,
                    ksv_err *err);

/* [PULL,...], oldest first: {"id":N,"storage_uri":..,"sha256":..,"model":..,
 * "state":"queued|pulling|done|failed","bytes":..,"total":..,"bytes_per_s":..,
 * "seconds":..,"error":..?} */
void ksv_pulls_write(ksv_pulls *p, ksv_sb *sb);

#endif
