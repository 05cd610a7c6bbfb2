/* v2_codec.h: the data-plane wire format: KServe V2 (Open Inference Protocol) and V1 JSON
 * bodies, decoded straight into a float tensor and encoded from the runtime's output.
 *
 * The decoder is a single pass over the body that writes the numbers of `data` directly
 * into the caller's float buffer (json-c costs ~50 MB/s on these bodies; see DESIGN §3).
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
} ksv_tensor_req;

void ksv_tensor_req_init(ksv_tensor_req *req);
void ksv_tensor_req_free(ksv_tensor_req *req);

/* V2 infer body: {"id"?, "parameters"?, "inputs":[{name,shape,datatype,data,parameters?}],
 * "outputs"?:[{name,parameters?}]}. Exactly one input. Datatypes FP16 (refused), FP32,
 * FP64, BOOL, INT8..INT64, UINT8..UINT64 are converted to float; BYTES is refused (400).
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

/* V1 predict body: {"instances":[[f,...],...]} (or a list of scalars for one-feature
 * rows). Sets shape to [rows, cols]; every row must have the same length. {"inputs":[...]}
 * is accepted as an alias of "instances", as KServe's V1 does. */
int ksv_v1_decode_predict(const char *body, size_t len, size_t max_values, ksv_tensor_req *req,
                          ksv_err *err);

/* V2 response: {"model_name","model_version","id","parameters":{},"outputs":[{"name":
 * "output-0","datatype":"FP32","shape":[rows] or [rows,cols],"data":[...]}]} */
void ksv_v2_encode_infer(ksv_sb *sb, const char *model, const char *revision, const char *id,
                         const float *out, size_t rows, size_t cols);
/* V1 response: {"predictions":[v,...]} or [[v,...],...] when cols > 1. */
void ksv_v1_encode_predict(ksv_sb *sb, const float *out, size_t rows, size_t cols);

#endif
