/* ubjson.h: a Universal Binary JSON reader (the format XGBoost writes to .ubj files)
 * producing the same json-c object tree a JSON model parses into, so the one model-document
 * reader (model_document.h) serves both. Handles optimized containers ("[$d#L..." typed arrays, "#" counted containers),
 * big-endian numbers, and refuses malformed or truncated input without reading past it. */
#ifndef KSV_ENGINE_UBJSON_H
#define KSV_ENGINE_UBJSON_H

#include <stddef.h>

#include <json-c/json.h>

#include "common/error.h"

/* The whole buffer must hold exactly one value. Returns a new object (caller puts it) or NULL
 * with err set (status 400). */
json_object *ksv_ubjson_parse(const unsigned char *data, size_t len, ksv_err *err);

#endif
