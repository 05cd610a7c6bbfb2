/* forest_load.h: compiles an XGBoost model file (JSON or UBJSON, XGBoost 1.7 through 3.x)
 * or a LightGBM text model (forest_lightgbm.h) into ksv-forest's layout (forest_layout.h).
 * An XGBoost file is read and its structure checked by the one model-document reader
 * (engine/model_document.h), which ksv-xgboost uses too, so prediction needs no checks and
 * a broken file is refused in the same words by both. What ksv-forest cannot serve
 * (XGBoost's categorical splits, dart, vector leaves, objectives other than those listed in
 * docs/FOREST.md; LightGBM's linear trees) is refused here with a message. */
#ifndef KSV_ENGINE_FOREST_LOAD_H
#define KSV_ENGINE_FOREST_LOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "engine/forest/forest_layout.h"

typedef enum {
    FOREST_PREFER_AUTO,   /* PERFECT when the forest is shallow enough, else SPARSE */
    FOREST_PREFER_SPARSE  /* always SPARSE (benchmarks compare the two) */
} forest_layout_pref;

typedef enum {
    FOREST_FORMAT_SNIFF,
    FOREST_FORMAT_JSON,
    FOREST_FORMAT_UBJSON,
    FOREST_FORMAT_LIGHTGBM
} forest_format;

/* Loads `path` (.json or .ubj, the document told by its content as XGBoost does; .txt, or
 * .bst holding text, a LightGBM model). On success *out is a new forest owned by the caller
 * (forest_free). forest_load_buffer is for tests and fuzzing: FOREST_FORMAT_JSON/UBJSON/
 * LIGHTGBM pick one parser, SNIFF goes by content. */
int forest_load_file(const char *path, forest_layout_pref pref, forest **out, ksv_err *err);
int forest_load_buffer(const void *data, size_t len, forest_format format, forest_layout_pref pref,
                       forest **out, ksv_err *err);
void forest_free(forest *f);
/* Whether the file starts as a LightGBM text model (forest_lightgbm_sniff). */
bool forest_file_is_lightgbm(const char *path);

#endif
