/* model_path.h: a local model path as KServe's model servers read it: a model file
 * (.json, .ubj, .bst; .txt for LightGBM) or a folder that holds exactly one (where a .txt
 * counts only as model.txt, LightGBM's own name). Shared by the engine (loading)
 * and ksv (uploading to SSH nodes). */
#ifndef KSV_COMMON_MODEL_PATH_H
#define KSV_COMMON_MODEL_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* True when the name ends in an extension a runtime loads. */
bool ksv_model_file_name(const char *name);
/* Resolves the absolute path p to the model file itself; `shown` names it in messages. */
int ksv_model_path_resolve(const char *p, const char *shown, char *path, size_t cap,
                           ksv_err *err);

#endif
