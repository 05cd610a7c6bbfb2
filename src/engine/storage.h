/* storage.h: turning a revision's storage URI into a local model file.
 * Accepted: file:///abs/path, /abs/path. A path names a model file (.json, .ubj, .bst) or
 * a folder that holds exactly one, as KServe's model servers accept. http(s) fetching
 * into the state dir's cache is not built yet and is refused with a message saying so. */
#ifndef KSV_ENGINE_STORAGE_H
#define KSV_ENGINE_STORAGE_H

#include <stddef.h>

#include "common/error.h"

int ksv_storage_resolve(const char *uri, char *path, size_t cap, ksv_err *err);
/* True when the file name ends in an extension some runtime loads. */
int ksv_storage_is_model_file(const char *name);

#endif
