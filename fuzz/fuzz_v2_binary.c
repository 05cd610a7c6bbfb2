/* fuzz_v2_binary.c: the V2 binary tensor extension (src/engine/v2_binary.c): a JSON header
 * of Inference-Header-Content-Length bytes, then raw tensor bytes. The first two bytes
 * (little-endian) give the header length, as the engine reads it from the HTTP header;
 * the rest is the body. The header length also goes through the header value's parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/v2_binary.h"
#include "engine/v2_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t header_len = (size_t)data[0] | (size_t)data[1] << 8;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    ksv_err err;
    char value[24];
    snprintf(value, sizeof value, "%zu", header_len);
    size_t parsed;
    if (ksv_v2_parse_header_length(value, len, &parsed, &err) != 0)
        return 0;
    ksv_tensor_req req;
    ksv_tensor_req_init(&req);
    ksv_v2_decode_binary_infer(body, len, parsed, 1u << 20, &req, &err);
    /* Reused as the engine's workers reuse it, then freed. */
    ksv_v2_decode_binary_infer(body, len, parsed, 1u << 20, &req, &err);
    ksv_tensor_req_free(&req);
    return 0;
}
