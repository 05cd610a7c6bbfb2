/* fuzz_v2_decode.c: the KServe V2 infer body decoder (src/engine/v2_codec.c). */
#include <stddef.h>
#include <stdint.h>

#include "engine/v2_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ksv_tensor_req req;
    ksv_tensor_req_init(&req);
    ksv_err err;
    ksv_v2_decode_infer((const char *)data, size, 1u << 20, &req, &err);
    /* Reused as the engine's workers reuse it, then freed. */
    ksv_v2_decode_infer_header((const char *)data, size, 1u << 20, &req, &err);
    ksv_tensor_req_free(&req);
    return 0;
}
