/* v2_codec.h: the data-plane wire format: KServe V2 (Open Inference Protocol) and V1 JSON
 * bodies, decoded straight into a float tensor and encoded from the runtime's output.
 *
 * The decoder is a single pass over the body that writes the numbers of `data` directly
 * into the caller's float buffer (json-c costs ~50 MB/s on these bodies; see docs/BENCHMARKS.md).
 * Everything not needed for inference (unknown fields, parameters) is skipped after being
 * checked for well-formedness: a malformed body is always a 400, never a partial answer. */
#ifndef KSV_ENGINE_V2_CODEC_H
#define KSV_ENGINE_V2_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/strbuf.h"

#define KSV_MAX_DIMS 8
#define KSV_MAX_REQUESTED_OUTPUTS 8

/* The V2 tensor datatypes a numeric model accepts (BYTES is refused). The integer types
 * come last, in this order: the decoders rely on it. */
typedef enum ksv_datatype {
    KSV_DT_NONE,
    KSV_DT_FP32,
    KSV_DT_FP64,
    KSV_DT_FP16,
    KSV_DT_BOOL,
    KSV_DT_INT8,
    KSV_DT_INT16,
    KSV_DT_INT32,
    KSV_DT_INT64,
    KSV_DT_UINT8,
    KSV_DT_UINT16,
    KSV_DT_UINT32,
    KSV_DT_UINT64,
} ksv_datatype;

/* Bytes per element in the binary tensor extension; 0 for KSV_DT_NONE. */
size_t ksv_datatype_size(ksv_datatype dt);

/* Reusable decode target. Owned by the caller (one per worker thread); the decoder grows
 * `data` as needed and keeps it between requests so the hot path does not allocate. */
typedef struct ksv_tensor_req {
    char id[129];               /* request "id", "" when absent (truncated at 128 bytes) */
    bool has_id;
    char input_name[65];
    int64_t shape[KSV_MAX_DIMS];
    int ndim;
    float *data;                /* shape product floats, row-major, NaN where JSON null */
    size_t count;               /* number of values decoded */
    size_t cap;                 /* allocated floats in data */
    int n_outputs;              /* names requested in "outputs", 0 when absent */
    char outputs[KSV_MAX_REQUESTED_OUTPUTS][65];
    ksv_datatype datatype;      /* of inputs[0] */
    /* Binary tensor extension (Triton's binary_tensor_data). */
    bool binary_input;          /* inputs[0].parameters.binary_data_size was given */
    uint64_t binary_size;       /* its value: the bytes of inputs[0] after the JSON header */
    bool binary_output_all;     /* parameters.binary_data_output */
    signed char output_binary[KSV_MAX_REQUESTED_OUTPUTS]; /* outputs[i].parameters.binary_data:
                                                             1, 0, or -1 when not given */
} ksv_tensor_req;

void ksv_tensor_req_init(ksv_tensor_req *req);
void ksv_tensor_req_free(ksv_tensor_req *req);

/* V2 infer body: {"id"?, "parameters"?, "inputs":[{name,shape,datatype,data,parameters?}],
 * "outputs"?:[{name,parameters?}]}. Exactly one input. Datatypes FP32, FP64, FP16 (rounded
 * to half precision first, as the tensor declares), BOOL, INT8..INT64, UINT8..UINT64 are
 * converted to float; BYTES is refused (400).
 * parameters.binary_data_output (bool) and outputs[i].parameters.binary_data (bool) are
 * read into req; inputs[0].parameters.binary_data_size is a 400 here (it needs the header
 * Inference-Header-Content-Length: see v2_binary.h).
 * `data` may be flat or nested; its element count must equal the product of `shape`.
 * max_values bounds the product of shape (overflow-safe) before anything is allocated, and
 * the number of values read when `data` comes before `shape` (members may come in any order).
 * null is NaN; BOOL takes true/false; INT/UINT values must be integral and in range; a value
 * that overflows float is refused. A known member given twice is a 400; unknown members and
 * "parameters" are skipped after being checked. Values equal json-c's bit for bit.
 * Returns 0, or -1 with err->status 400 (or 413 when max_values is exceeded, 500 when out of
 * memory); after a failure req->count is 0 and the other fields are unspecified. */
int ksv_v2_decode_infer(const char *body, size_t len, size_t max_values, ksv_tensor_req *req,
                        ksv_err *err);

/* The JSON header of a binary request (v2_binary.c): as ksv_v2_decode_infer, except that
 * inputs[0] may carry parameters.binary_data_size instead of "data"; then req->binary_input
 * is set, req->binary_size holds the size, req->count is 0 and nothing is allocated. */
int ksv_v2_decode_infer_header(const char *json, size_t len, size_t max_values,
                               ksv_tensor_req *req, ksv_err *err);

/* Makes room for n floats in req->data (kept between requests). 0, or -1 with a 500. */
int ksv_tensor_req_reserve(ksv_tensor_req *req, size_t n, ksv_err *err);

/* Whether the answer's output-0 goes in binary: its outputs[] entry's binary_data when the
 * request names it with one, else parameters.binary_data_output. */
bool ksv_v2_wants_binary_output(const ksv_tensor_req *req);

/* V1 predict body: {"instances":[[f,...],...]} (or a list of scalars for one-feature
 * rows). Sets shape to [rows, cols]; every row must have the same length. {"inputs":[...]}
 * is accepted as an alias of "instances", as KServe's V1 does. */
int ksv_v1_decode_predict(const char *body, size_t len, size_t max_values, ksv_tensor_req *req,
                          ksv_err *err);

/* V2 response: {"model_name","model_version","id","parameters":{},"outputs":[{"name":
 * "output-0","datatype":"FP32","shape":[rows] or [rows,cols],"data":[...]}]} */
void ksv_v2_encode_infer(ksv_sb *sb, const char *model, const char *revision, const char *id,
                         const float *out, size_t rows, size_t cols);
/* The same answer with output-0 in binary: the JSON header, whose output carries
 * "parameters":{"binary_data_size":rows*cols*4} instead of "data", then the floats as
 * little-endian FP32. *header_len is the JSON header's length (the answer's
 * Inference-Header-Content-Length). */
void ksv_v2_encode_infer_binary(ksv_sb *sb, const char *model, const char *revision,
                                const char *id, const float *out, size_t rows, size_t cols,
                                size_t *header_len);
/* V1 response: {"predictions":[v,...]} or [[v,...],...] when cols > 1. */
void ksv_v1_encode_predict(ksv_sb *sb, const float *out, size_t rows, size_t cols);

#endif
