/* forest_lightgbm.h: LightGBM's text model format (model.txt, as Booster.save_model writes
 * it; KServe's convention names it model.bst) compiled into ksv-forest's LIGHTGBM layout
 * (forest_layout.h), predicted with LightGBM's own rules (forest_lightgbm_traverse.h).
 *
 * The file is untrusted: every count is checked against the text that carries it before
 * anything is allocated (memory stays a small multiple of the file), every child index is
 * checked and every tree walked once from its root at load (no cycle, no node shared, none
 * left out), so prediction needs no checks. What ksv-forest does not serve (linear trees,
 * unknown objectives) is refused with a message that names it. Errors: 400 "model file
 * PATH: WHAT" ("model: WHAT" for a nameless buffer), 500 out of memory. */
#ifndef KSV_ENGINE_FOREST_LIGHTGBM_H
#define KSV_ENGINE_FOREST_LIGHTGBM_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "engine/forest/forest_layout.h"

/* True when data starts as a LightGBM text model does ("tree" alone on its first line, after
 * an optional UTF-8 byte-order mark): how a .bst file is told from XGBoost's binary format. */
bool forest_lightgbm_sniff(const void *data, size_t len);

/* Parses and checks data into a new forest (*out, the caller's: forest_free). name: the file
 * for messages, or NULL. */
int forest_lightgbm_parse(const char *name, const void *data, size_t len, forest **out,
                          ksv_err *err);

#endif
