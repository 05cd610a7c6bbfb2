/* v2_binary.h: the binary tensor extension of the V2 protocol (Triton's binary_tensor_data,
 * which KServe's V2 clients speak): a body is a JSON header of Inference-Header-Content-Length
 * bytes, then each binary input's raw little-endian elements, in input order, of
 * parameters.binary_data_size bytes each.
 *
 * The decoder is a pure function of its bytes (no I/O, no globals), so it can be fuzzed: the
 * entry point is ksv_v2_decode_binary_infer(). */
#ifndef KSV_ENGINE_V2_BINARY_H
#define KSV_ENGINE_V2_BINARY_H

#include <stddef.h>

#include "common/error.h"
#include "engine/v2_codec.h"

/* The value of an Inference-Header-Content-Length header: decimal digits only, at most
 * body_len. 0 with *out set, or -1 with a 400 that says why. */
int ksv_v2_parse_header_length(const char *value, size_t body_len, size_t *out, ksv_err *err);

/* Decodes a binary request: body[0, header_len) is the JSON header (ksv_v2_decode_infer's
 * rules, with binary_data_size allowed), body[header_len, len) the tensor bytes. Every size
 * is checked before anything is allocated: header_len within the body; binary_data_size
 * equal to shape x element size; the bytes after the header exactly the announced ones (a
 * missing tensor or trailing bytes are 400s); the element count within max_values. The
 * elements become floats as their JSON form would: FP16 exactly, FP64 rounded once, the
 * integers through double (as a JSON integer is), BOOL bytes 0 or 1; NaN is a missing
 * value; an infinite value is a 400 (JSON cannot carry one). A header whose input has
 * "data" (no binary part) decodes as JSON, when no bytes follow it.
 * Returns 0 with req filled (req->count values in req->data), or -1 with err set (400, 413,
 * or 500 when out of memory); req->count is then 0. */
int ksv_v2_decode_binary_infer(const char *body, size_t len, size_t header_len,
                               size_t max_values, ksv_tensor_req *req, ksv_err *err);

#endif
