/* v2_binary.c: binary tensor data (KServe V2 / Triton binary_tensor_data) into the float
 * tensor the runtimes take. See v2_binary.h for the rules; the JSON header is read by
 * v2_codec.c, this file checks the sizes and converts the raw elements. */
#include "engine/v2_binary.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/half_float.h"

int ksv_v2_parse_header_length(const char *value, size_t body_len, size_t *out, ksv_err *err)
{
    size_t n = 0;
    const char *p = value;
    if (!p || !*p)
        return ksv_err_set(err, 400, "Inference-Header-Content-Length: empty");
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return ksv_err_set(err, 400,
                               "Inference-Header-Content-Length: expected a decimal number of "
                               "bytes");
        unsigned d = (unsigned)(*p - '0');
        if (n > (SIZE_MAX - d) / 10 || n * 10 + d > body_len)
            return ksv_err_set(err, 400,
                               "Inference-Header-Content-Length: %s is past the %zu-byte body",
                               value, body_len);
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

static inline uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* n elements of type dt at src into dst. 0, or -1 with a 400 naming the first bad element. */
static int convert(ksv_datatype dt, const unsigned char *src, size_t n, float *dst, ksv_err *err)
{
    static const char where[] = "inputs[0] binary data";
    size_t i = 0;
    switch (dt) {
    case KSV_DT_FP32:
        for (; i < n; i++) {
            uint32_t u = le32(src + 4 * i);
            float f;
            memcpy(&f, &u, sizeof f);
            if (isinf(f))
                goto infinite;
            dst[i] = f;
        }
        return 0;
    case KSV_DT_FP64:
        for (; i < n; i++) {
            uint64_t u = le64(src + 8 * i);
            double d;
            memcpy(&d, &u, sizeof d);
            float f = (float)d;
            if (isinf(f))
                return ksv_err_set(err, 400, "%s[%zu]: value out of range for FP32", where, i);
            dst[i] = isnan(d) ? NAN : f;
        }
        return 0;
    case KSV_DT_FP16:
        for (; i < n; i++) {
            float f = ksv_half_to_float(le16(src + 2 * i));
            if (isinf(f))
                goto infinite;
            dst[i] = f;
        }
        return 0;
    case KSV_DT_BOOL:
        for (; i < n; i++) {
            if (src[i] > 1)
                return ksv_err_set(err, 400, "%s[%zu]: BOOL byte %u is neither 0 nor 1", where,
                                   i, src[i]);
            dst[i] = (float)src[i];
        }
        return 0;
    /* The integers go through double, as the same value written as a JSON integer does,
     * so both forms give the same float even past 2^24 (one rounding each way differs). */
    case KSV_DT_INT8:
        for (; i < n; i++)
            dst[i] = (float)(double)(int8_t)src[i];
        return 0;
    case KSV_DT_UINT8:
        for (; i < n; i++)
            dst[i] = (float)(double)src[i];
        return 0;
    case KSV_DT_INT16:
        for (; i < n; i++)
            dst[i] = (float)(double)(int16_t)le16(src + 2 * i);
        return 0;
    case KSV_DT_UINT16:
        for (; i < n; i++)
            dst[i] = (float)(double)le16(src + 2 * i);
        return 0;
    case KSV_DT_INT32:
        for (; i < n; i++)
            dst[i] = (float)(double)(int32_t)le32(src + 4 * i);
        return 0;
    case KSV_DT_UINT32:
        for (; i < n; i++)
            dst[i] = (float)(double)le32(src + 4 * i);
        return 0;
    case KSV_DT_INT64:
        for (; i < n; i++)
            dst[i] = (float)(double)(int64_t)le64(src + 8 * i);
        return 0;
    case KSV_DT_UINT64:
        for (; i < n; i++)
            dst[i] = (float)(double)le64(src + 8 * i);
        return 0;
    case KSV_DT_NONE:
        break;
    }
    return ksv_err_set(err, 400, "inputs[0].datatype: required");
infinite:
    return ksv_err_set(err, 400, "%s[%zu]: infinite value (send NaN for a missing value)",
                       where, i);
}

int ksv_v2_decode_binary_infer(const char *body, size_t len, size_t header_len,
                               size_t max_values, ksv_tensor_req *req, ksv_err *err)
{
    if (!body || header_len > len) {
        req->count = 0;
        return ksv_err_set(err, 400,
                           "Inference-Header-Content-Length: %zu is past the %zu-byte body",
                           header_len, body ? len : 0);
    }
    if (ksv_v2_decode_infer_header(body, header_len, max_values, req, err) != 0)
        return -1;
    size_t tail = len - header_len;
    if (!req->binary_input) {
        /* A JSON tensor: nothing may follow the header. */
        if (tail != 0)
            goto trailing;
        return 0;
    }
    size_t elem = ksv_datatype_size(req->datatype);
    size_t count = 1;
    for (int d = 0; d < req->ndim; d++)
        count *= (size_t)req->shape[d]; /* the header decoder bounded it by max_values */
    uint64_t need;
    if (__builtin_mul_overflow((uint64_t)count, (uint64_t)elem, &need) ||
        req->binary_size != need) {
        ksv_err_set(err, 400,
                    "inputs[0].parameters.binary_data_size: %" PRIu64 " bytes, but shape and "
                    "datatype make %zu elements of %zu bytes (%" PRIu64 ")",
                    req->binary_size, count, elem, need);
        goto fail;
    }
    if (tail < need) {
        ksv_err_set(err, 400,
                    "binary data: inputs[0] needs %" PRIu64 " bytes after the JSON header, the "
                    "body has %zu",
                    need, tail);
        goto fail;
    }
    if (tail > need) {
        tail -= (size_t)need;
        goto trailing;
    }
    if (ksv_tensor_req_reserve(req, count, err) != 0)
        goto fail;
    if (convert(req->datatype, (const unsigned char *)body + header_len, count, req->data,
                err) != 0)
        goto fail;
    req->count = count;
    return 0;
trailing:
    ksv_err_set(err, 400,
                "binary data: %zu bytes after the last tensor (binary_data_size must account "
                "for every byte after the JSON header)",
                tail);
fail:
    req->count = 0;
    req->binary_input = false;
    return -1;
}
