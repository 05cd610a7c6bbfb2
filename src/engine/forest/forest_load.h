/* forest_load.h: reads an XGBoost model file (JSON or UBJSON, XGBoost 1.7 through 3.x) and
 * compiles it into ksv-forest's layout (forest_layout.h). Everything the predictor relies on
 * (array lengths, child ids, feature indexes, tree groups) is validated here, so prediction
 * needs no checks. Unsupported models (categorical splits, dart, gblinear, vector leaves,
 * objectives other than those listed in docs/FOREST.md) are refused with a message. */
#ifndef KSV_ENGINE_FOREST_LOAD_H
#define KSV_ENGINE_FOREST_LOAD_H

#include <stddef.h>

#include "common/error.h"
#include "engine/forest/forest_layout.h"

typedef enum {
    FOREST_PREFER_AUTO,   /* PERFECT when the forest is shallow enough, else SPARSE */
    FOREST_PREFER_SPARSE  /* always SPARSE (benchmarks compare the two) */
} forest_layout_pref;

typedef enum { FOREST_FORMAT_SNIFF, FOREST_FORMAT_JSON, FOREST_FORMAT_UBJSON } forest_format;

/* Loads `path`; the format comes from the extension (.json, .ubj), else from the content.
 * On success *out is a new forest owned by the caller (forest_free). */
int forest_load_file(const char *path, forest_layout_pref pref, forest **out, ksv_err *err);
int forest_load_buffer(const void *data, size_t len, forest_format format, forest_layout_pref pref,
                       forest **out, ksv_err *err);
void forest_free(forest *f);

#endif
