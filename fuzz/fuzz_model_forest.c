/* fuzz_model_forest.c: XGBoost models as ksv-forest reads them, JSON and UBJSON
 * (src/engine/forest/forest_load.c, model_document.c, ubjson.c). The first byte picks the format. */
#include <stddef.h>
#include <stdint.h>

#include "engine/forest/forest_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    forest *f = NULL;
    ksv_err err;
    forest_format format = (data[0] & 1) ? FOREST_FORMAT_UBJSON : FOREST_FORMAT_JSON;
    if (forest_load_buffer(data + 1, size - 1, format, FOREST_PREFER_AUTO, &f, &err) == 0)
        forest_free(f);
    return 0;
}
