/* fuzz_applied_state.c: one model of the engine's applied state (STATE_DIR/state.json
 * holds a list of them; src/engine/model_spec.c reads each as the admin API's PUT body). */
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "engine/model_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    json_tokener *tok = json_tokener_new();
    json_object *root = tok ? json_tokener_parse_ex(tok, (const char *)data, (int)size) : NULL;
    json_tokener_free(tok);
    ksv_model_spec spec;
    ksv_err err;
    json_object *models;
    if (root && json_object_object_get_ex(root, "models", &models) &&
        json_object_is_type(models, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(models); i++)
            ksv_model_spec_from_json("fuzz", json_object_array_get_idx(models, i), &spec, &err);
    } else if (root) {
        ksv_model_spec_from_json("fuzz", root, &spec, &err);
    }
    json_object_put(root);
    return 0;
}
