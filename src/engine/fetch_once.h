/* fetch_once.h: `ksv-engine --fetch URI [--sha256 HEX]`: one model fetched into
 * STATE_DIR/cache with the engine's own fetchers, bounds and checks, its local file printed
 * on stdout, and the process exits. Nothing listens and the engine's state dir lock is not
 * taken (its own STATE_DIR/fetch.lock is: two at once take turns), so it runs beside a
 * serving engine of another state dir. `ksv` runs it on the operator's machine for a model
 * annotated ksv.io/fetch: operator and sends the file to an SSH node by SFTP. */
#ifndef KSV_ENGINE_FETCH_ONCE_H
#define KSV_ENGINE_FETCH_ONCE_H

#include "engine/options.h"

/* The exit code: 0 with the model file's path and a newline on stdout; 1 with why on
 * stderr (a model that is a folder of several files included: only one file is sent). */
int ksv_fetch_once(const ksv_engine_options *opt);

#endif
