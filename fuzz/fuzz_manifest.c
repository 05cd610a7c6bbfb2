/* fuzz_manifest.c: the manifest reader, YAML and JSON (src/common/manifest*.c). The first
 * byte picks the name the reader sees (its syntax follows the name and the text). */
#include <stddef.h>
#include <stdint.h>

#include "common/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *name = (data[0] & 1) ? "fuzz.json" : "fuzz.yaml";
    ksv_manifest_list list;
    ksv_err err;
    if (ksv_manifest_parse_buffer((const char *)data + 1, size - 1, name, "/models", &list,
                                  &err) == 0)
        ksv_manifest_list_free(&list);
    return 0;
}
