/* repository.h: the model repository extension's state (Triton's model_repository, as
 * KServe V2 clients use it): which models were unloaded through the API, so that they stay
 * listed and can be loaded again, and the --model-dir folder new models load from.
 *
 * Unloads are not persisted: after a restart the command line's models are served again
 * (as Triton's repository loads at startup), and a model the console manages is put back
 * by its next reconcile. */
#ifndef KSV_ENGINE_REPOSITORY_H
#define KSV_ENGINE_REPOSITORY_H

#include <stdbool.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "engine/registry.h"

typedef struct ksv_repository ksv_repository;

/* model_dir: the --model-dir folder, or NULL; default_runtime: for models loaded from it. */
int ksv_repository_create(const char *model_dir, const char *default_runtime,
                          ksv_repository **out, ksv_err *err);
void ksv_repository_destroy(ksv_repository *repo);

/* Takes the model out of serving and remembers its spec. 404 when unknown. */
int ksv_repository_unload(ksv_repository *repo, ksv_registry *reg, const char *model,
                          ksv_err *err);
/* Puts an unloaded model back, or a --model-dir folder of that name as a new model; a model
 * already served is left as it is. Loading itself is asynchronous (the caller polls).
 * 400 when there is no such model (as Triton answers a failed load). */
int ksv_repository_load(ksv_repository *repo, ksv_registry *reg, const char *model,
                        ksv_err *err);

/* Triton's index: [{"name","version","state","reason"}], one entry per revision, then the
 * unloaded models and the --model-dir folders not served. ready_only: READY entries only. */
void ksv_repository_write_index(ksv_repository *repo, ksv_registry *reg, bool ready_only,
                                ksv_sb *sb);

#endif
