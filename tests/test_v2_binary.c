/* test_v2_binary.c: the binary tensor extension (v2_binary.c) and FP16 (half_float.h).
 *
 * - FP16: every one of the 65536 halves converts exactly (checked against the compiler's
 *   _Float16 where it has one, and by round trip); rounding to half is checked at every
 *   midpoint between neighbouring halves, where ties go to the even one.
 * - Each datatype: random tensors decoded from JSON (the codec tested against json-c in
 *   test_v2_codec) and from binary give the same floats bit for bit.
 * - Hostile bodies: header length past the body, binary_data_size that does not match the
 *   shape, sizes that overflow, missing tensors, trailing bytes, bad BOOL bytes, infinities:
 *   each a 400 with a message, and the next good body decodes fine with the same buffers.
 * - Random truncations and byte flips of good bodies, each copied into an exact-size heap
 *   block so that the sanitizer build sees any read past the end.
 * - The binary answer: its header parses with json-c and its bytes are the floats. */
#include "common/random.h"
#include "engine/half_float.h"
#include "engine/v2_binary.h"
#include "engine/v2_codec.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

#define LIMIT ((size_t)1 << 24)

static uint64_t rng_state = 0xb1a5eed5ULL;
static uint64_t rnd(void)
{
    return ksv_splitmix64(&rng_state);
}

static bool same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ------------------------------------------------------------------------------------ */
/* FP16                                                                                  */

static void test_half(void)
{
    int bad_exact = 0, bad_trip = 0, bad_mid = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = ksv_half_to_float((uint16_t)h);
        bool nan = ((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF);
#ifdef __FLT16_MAX__
        _Float16 x;
        uint16_t hb = (uint16_t)h;
        memcpy(&x, &hb, sizeof x);
        if (!same_float(f, (float)x))
            bad_exact++;
#endif
        if (nan) {
            if (!isnan(f))
                bad_exact++;
            continue;
        }
        if (ksv_double_to_half(f) != h)
            bad_trip++;
        /* The midpoint to the next half up in magnitude (same sign). */
        uint16_t next = (uint16_t)(h + 1);
        if ((h & 0x7FFF) >= 0x7C00 || (next & 0x7FFF) > 0x7C00 || (h & 0x7FFF) == 0x7FFF)
            continue;
        double a = f, b = ksv_half_to_float(next);
        if (isinf(b))
            b = copysign(65536.0, a); /* the "next" of the largest half, for the rounding */
        double mid = (a + b) / 2; /* exact: both are halves, well inside double */
        uint16_t even = (h & 1) ? next : (uint16_t)h;
        if (isinf(ksv_half_to_float(next)))
            even = next; /* 65520 and up round to infinity */
        if (ksv_double_to_half(mid) != even)
            bad_mid++;
        if (ksv_double_to_half(nextafter(mid, a)) != h ||
            (!isinf(ksv_half_to_float(next)) && ksv_double_to_half(nextafter(mid, b)) != next))
            bad_mid++;
    }
    KT_CHECK(bad_exact == 0, "all 65536 halves convert exactly (%d wrong)", bad_exact);
    KT_CHECK(bad_trip == 0, "float -> half -> float round trips (%d wrong)", bad_trip);
    KT_CHECK(bad_mid == 0, "rounding to half at every midpoint, ties to even (%d wrong)",
             bad_mid);
    KT_CHECK(ksv_double_to_half(65504.0) == 0x7BFF, "65504 is the largest half");
    KT_CHECK(ksv_double_to_half(65519.99) == 0x7BFF, "65519.99 rounds down to 65504");
    KT_CHECK(ksv_double_to_half(65520.0) == 0x7C00, "65520 rounds to infinity");
    KT_CHECK(ksv_double_to_half(-0.0) == 0x8000, "-0 keeps its sign");
    KT_CHECK(ksv_double_to_half(0x1p-25) == 0, "2^-25 ties to zero");
    KT_CHECK(ksv_double_to_half(0x1.0000001p-25) == 1, "just above 2^-25: the smallest half");
    KT_CHECK(isnan(ksv_half_to_float(ksv_double_to_half(NAN))), "NaN stays NaN");
}

/* ------------------------------------------------------------------------------------ */
/* Bodies                                                                                */

typedef struct dtype_case {
    const char *name;
    size_t size;
} dtype_case;

static const dtype_case dtypes[] = {
    {"FP32", 4},  {"FP64", 8},   {"FP16", 2},   {"BOOL", 1},   {"INT8", 1},
    {"INT16", 2}, {"INT32", 4},  {"INT64", 8},  {"UINT8", 1},  {"UINT16", 2},
    {"UINT32", 4}, {"UINT64", 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

/* A request body in two forms: JSON text with "data", and a JSON header plus raw bytes. */
typedef struct pair {
    char *json;
    size_t json_len;
    char *bin;      /* header then raw bytes */
    size_t bin_len;
    size_t header_len;
} pair;

static void put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* One random element of dt: its raw little-endian bytes and its JSON text. */
static void random_element(const dtype_case *dt, unsigned char *raw, char *text, size_t cap)
{
    uint64_t r = rnd();
    const char *n = dt->name;
    if (strcmp(n, "FP32") == 0) {
        float f;
        if (r % 8 == 0)
            f = (float)((int)(r >> 8) % 1000); /* some integral values */
        else
            f = (float)((double)(int64_t)(r >> 11) * 0x1p-40 * ((r & 16) ? 1e-20 : 1.0));
        uint32_t u;
        memcpy(&u, &f, 4);
        put_le(raw, u, 4);
        snprintf(text, cap, "%.9g", (double)f);
    } else if (strcmp(n, "FP64") == 0) {
        double d = (double)(int64_t)(r >> 1) * 0x1p-50;
        if (r % 5 == 0)
            d *= 1e-30;
        uint64_t u;
        memcpy(&u, &d, 8);
        put_le(raw, u, 8);
        snprintf(text, cap, "%.17g", d);
    } else if (strcmp(n, "FP16") == 0) {
        uint16_t h = (uint16_t)r;
        if (((h >> 10) & 0x1F) == 0x1F)
            h &= 0xBFFF; /* no infinities or NaNs: JSON has neither */
        put_le(raw, h, 2);
        snprintf(text, cap, "%.9g", (double)ksv_half_to_float(h));
    } else if (strcmp(n, "BOOL") == 0) {
        raw[0] = (unsigned char)(r & 1);
        snprintf(text, cap, "%s", raw[0] ? "true" : "false");
    } else {
        bool is_signed = n[0] == 'I';
        size_t bits = dt->size * 8;
        uint64_t u = bits == 64 ? r : (r & (((uint64_t)1 << bits) - 1));
        if (r % 7 == 0 && bits == 64)
            u = ((uint64_t)1 << 53) + (r % 4096); /* past 2^53: double rounding matters */
        put_le(raw, u, dt->size);
        if (is_signed) {
            int64_t v = (int64_t)(u << (64 - bits)) >> (64 - bits); /* sign-extend */
            snprintf(text, cap, "%" PRId64, v);
        } else {
            snprintf(text, cap, "%" PRIu64, u);
        }
    }
}

static void make_pair(pair *p, const dtype_case *dt, size_t rows, size_t cols, bool nested)
{
    size_t n = rows * cols;
    size_t jcap = 256 + n * 32;
    p->json = malloc(jcap);
    unsigned char *raw = malloc(n * 8 + 1);
    size_t j = (size_t)snprintf(p->json, jcap,
                                "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[%zu,%zu],"
                                "\"datatype\":\"%s\",\"data\":[",
                                rows, cols, dt->name);
    for (size_t i = 0; i < n; i++) {
        char text[64];
        random_element(dt, raw + i * dt->size, text, sizeof text);
        if (nested && i % cols == 0)
            j += (size_t)snprintf(p->json + j, jcap - j, "%s[", i ? "," : "");
        else if (i)
            p->json[j++] = ',';
        j += (size_t)snprintf(p->json + j, jcap - j, "%s", text);
        if (nested && i % cols == cols - 1)
            p->json[j++] = ']';
    }
    j += (size_t)snprintf(p->json + j, jcap - j, "]}]}");
    p->json_len = j;
    char header[512];
    int h = snprintf(header, sizeof header,
                     "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[%zu,%zu],"
                     "\"datatype\":\"%s\",\"parameters\":{\"binary_data_size\":%zu}}],"
                     "\"parameters\":{\"binary_data_output\":true}}",
                     rows, cols, dt->name, n * dt->size);
    p->header_len = (size_t)h;
    p->bin_len = (size_t)h + n * dt->size;
    p->bin = malloc(p->bin_len ? p->bin_len : 1);
    memcpy(p->bin, header, (size_t)h);
    memcpy(p->bin + h, raw, n * dt->size);
    free(raw);
}

static void free_pair(pair *p)
{
    free(p->json);
    free(p->bin);
}

static void test_json_equals_binary(ksv_tensor_req *a, ksv_tensor_req *b)
{
    for (size_t d = 0; d < N_DTYPES; d++) {
        int bad = 0;
        for (int round = 0; round < 40; round++) {
            size_t rows = 1 + rnd() % 64, cols = 1 + rnd() % 20;
            pair p;
            make_pair(&p, &dtypes[d], rows, cols, round % 2 == 1);
            ksv_err e1 = {0}, e2 = {0};
            int r1 = ksv_v2_decode_infer(p.json, p.json_len, LIMIT, a, &e1);
            int r2 = ksv_v2_decode_binary_infer(p.bin, p.bin_len, p.header_len, LIMIT, b, &e2);
            if (r1 != 0 || r2 != 0) {
                KT_FAIL("%s %zux%zu: json %d %s / binary %d %s", dtypes[d].name, rows, cols,
                        r1, e1.msg, r2, e2.msg);
                bad++;
            } else if (a->count != rows * cols || b->count != a->count || b->ndim != 2 ||
                       b->shape[0] != (int64_t)rows || b->shape[1] != (int64_t)cols ||
                       strcmp(b->id, "r1") != 0 || !b->binary_input ||
                       !ksv_v2_wants_binary_output(b) || ksv_v2_wants_binary_output(a)) {
                KT_FAIL("%s: shape, count, id or flags differ", dtypes[d].name);
                bad++;
            } else {
                for (size_t i = 0; i < a->count; i++)
                    if (!same_float(a->data[i], b->data[i])) {
                        KT_FAIL("%s value %zu: json %.9g, binary %.9g", dtypes[d].name, i,
                                (double)a->data[i], (double)b->data[i]);
                        bad++;
                        break;
                    }
            }
            free_pair(&p);
            if (bad)
                break;
        }
        KT_CHECK(bad == 0, "%s: JSON and binary give the same floats bit for bit",
                 dtypes[d].name);
    }
}

/* A header with one binary input; `params` is inputs[0].parameters' content. */
static size_t header(char *buf, size_t cap, const char *shape, const char *dtype,
                     const char *params)
{
    return (size_t)snprintf(buf, cap,
                            "{\"inputs\":[{\"name\":\"x\",\"shape\":%s,\"datatype\":\"%s\","
                            "\"parameters\":{%s}}]}",
                            shape, dtype, params);
}

/* Decodes (header + tail bytes) and expects a 400/413 whose message contains `want`; then
 * a good body must decode with the same req. */
static void expect_bad(ksv_tensor_req *req, const char *label, const char *hdr, size_t hdr_len,
                       const void *tail, size_t tail_len, size_t header_len, int status,
                       const char *want)
{
    size_t len = hdr_len + tail_len;
    char *body = malloc(len ? len : 1); /* exact size: ASan sees any overread */
    memcpy(body, hdr, hdr_len);
    if (tail_len)
        memcpy(body + hdr_len, tail, tail_len);
    ksv_err err = {0};
    int rc = ksv_v2_decode_binary_infer(body, len, header_len, LIMIT, req, &err);
    KT_CHECK(rc == -1 && err.status == status && strstr(err.msg, want) && req->count == 0,
             "%s: %d \"%s\" (got %d, %d \"%s\")", label, status, want, rc, err.status, err.msg);
    free(body);
    char good[256];
    float v[2] = {1.5f, -2.25f};
    size_t h = header(good, sizeof good, "[1,2]", "FP32", "\"binary_data_size\":8");
    memcpy(good + h, v, sizeof v);
    rc = ksv_v2_decode_binary_infer(good, h + 8, h, LIMIT, req, &err);
    KT_CHECK(rc == 0 && req->count == 2 && req->data[0] == 1.5f && req->data[1] == -2.25f,
             "%s: the next good body decodes (%d %s)", label, rc, rc ? err.msg : "");
}

static void test_hostile(ksv_tensor_req *req)
{
    char h[512];
    unsigned char bytes[64] = {0};
    size_t n;

    n = header(h, sizeof h, "[1,4]", "FP32", "\"binary_data_size\":16");
    expect_bad(req, "header length past the body", h, n, bytes, 16, n + 17, 400,
               "past the");
    expect_bad(req, "header length cuts the JSON", h, n, bytes, 16, n - 3, 400,
               "invalid JSON");
    expect_bad(req, "header length 0", h, n, bytes, 16, 0, 400, "empty body");
    expect_bad(req, "missing tensor bytes", h, n, bytes, 12, n, 400, "needs 16 bytes");
    expect_bad(req, "no tensor bytes at all", h, n, bytes, 0, n, 400, "the body has 0");
    expect_bad(req, "trailing bytes", h, n, bytes, 20, n, 400, "4 bytes after the last tensor");

    /* One header each, then its tensor bytes; the header length is the header's own. */
    static const struct {
        const char *label, *shape, *datatype, *params;
        size_t tensor_bytes;
        int status;
        const char *want;
    } HEADERS[] = {
        {"binary_data_size below the shape", "[1,4]", "FP32", "\"binary_data_size\":12", 12, 400,
         "shape and datatype make 4 elements of 4 bytes (16)"},
        {"binary_data_size of FP32 for FP64", "[1,4]", "FP64", "\"binary_data_size\":16", 16, 400,
         "(32)"},
        {"binary_data_size 2^64-1", "[1,4]", "FP32", "\"binary_data_size\":18446744073709551615",
         16, 400, "binary_data_size"},
        {"binary_data_size past 2^64", "[1,4]", "FP32",
         "\"binary_data_size\":18446744073709551616", 16, 400, "below 2^64"},
        {"negative binary_data_size", "[1,4]", "FP32", "\"binary_data_size\":-16", 16, 400,
         "non-negative"},
        {"fractional binary_data_size", "[1,4]", "FP32", "\"binary_data_size\":16.5", 16, 400,
         "non-negative"},
        {"binary_data_size as a string", "[1,4]", "FP32", "\"binary_data_size\":\"16\"", 16, 400,
         "expected a number of bytes"},
        {"binary_data_size twice", "[1,4]", "FP32",
         "\"binary_data_size\":16,\"binary_data_size\":16", 16, 400, "more than once"},
        /* Element count times element size past 2^64: the shape check stops it first. */
        {"shape whose bytes overflow", "[4294967296,4294967296]", "FP64",
         "\"binary_data_size\":0", 0, 400, "overflows"},
        {"shape past the limit", "[2305843009213693952]", "FP64", "\"binary_data_size\":0", 0,
         413, "limit"},
        {"BYTES", "[1,4]", "BYTES", "\"binary_data_size\":16", 16, 400,
         "BYTES input not supported"},
    };
    for (size_t i = 0; i < sizeof HEADERS / sizeof *HEADERS; i++) {
        n = header(h, sizeof h, HEADERS[i].shape, HEADERS[i].datatype, HEADERS[i].params);
        expect_bad(req, HEADERS[i].label, h, n, bytes, HEADERS[i].tensor_bytes, n,
                   HEADERS[i].status, HEADERS[i].want);
    }
    n = (size_t)snprintf(h, sizeof h,
                         "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\","
                         "\"data\":[1,2],\"parameters\":{\"binary_data_size\":8}}]}");
    expect_bad(req, "data and binary_data_size", h, n, bytes, 8, n, 400, "not both");
    n = (size_t)snprintf(h, sizeof h,
                         "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\"}]}");
    expect_bad(req, "neither data nor binary_data_size", h, n, bytes, 8, n, 400,
               "data: required (or parameters.binary_data_size)");
    n = (size_t)snprintf(h, sizeof h,
                         "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\","
                         "\"data\":[1,2]}]}");
    expect_bad(req, "JSON tensor with bytes after it", h, n, bytes, 8, n, 400,
               "8 bytes after the last tensor");
    n = (size_t)snprintf(h, sizeof h,
                         "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\","
                         "\"parameters\":{\"binary_data_size\":8}},{\"name\":\"y\",\"shape\":[1],"
                         "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":4}}]}");
    expect_bad(req, "a second (binary) input", h, n, bytes, 12, n, 400, "exactly one");

    unsigned char two[2] = {1, 2};
    n = header(h, sizeof h, "[1,2]", "BOOL", "\"binary_data_size\":2");
    expect_bad(req, "BOOL byte 2", h, n, two, 2, n, 400, "[1]: BOOL byte 2");
    float inf[2] = {1.0f, INFINITY};
    n = header(h, sizeof h, "[1,2]", "FP32", "\"binary_data_size\":8");
    expect_bad(req, "FP32 infinity", h, n, inf, 8, n, 400, "[1]: infinite value");
    double big[1] = {1e300};
    n = header(h, sizeof h, "[1]", "FP64", "\"binary_data_size\":8");
    expect_bad(req, "FP64 past FP32", h, n, big, 8, n, 400, "out of range for FP32");
    unsigned char hinf[2] = {0x00, 0xFC};
    n = header(h, sizeof h, "[1]", "FP16", "\"binary_data_size\":2");
    expect_bad(req, "FP16 -infinity", h, n, hinf, 2, n, 400, "infinite");

    /* The JSON-only decoder refuses binary_data_size: the header is what says "binary". */
    ksv_err err = {0};
    n = header(h, sizeof h, "[1,2]", "FP32", "\"binary_data_size\":8");
    int rc = ksv_v2_decode_infer(h, n, LIMIT, req, &err);
    KT_CHECK(rc == -1 && err.status == 400 && strstr(err.msg, "Inference-Header-Content-Length"),
             "binary_data_size without the header: 400 naming it (%s)", err.msg);

    /* NaN is a missing value, as JSON null. */
    float nanv[2] = {NAN, 3.0f};
    memcpy(h + n, nanv, 8);
    rc = ksv_v2_decode_binary_infer(h, n + 8, n, LIMIT, req, &err);
    KT_CHECK(rc == 0 && isnan(req->data[0]) && req->data[1] == 3.0f, "NaN is a missing value");
}

static void test_header_length(void)
{
    static const struct {
        const char *value;
        size_t body;
        int ok;
        size_t want;
    } cases[] = {
        {"0", 10, 1, 0},          {"10", 10, 1, 10},       {"11", 10, 0, 0},
        {"", 10, 0, 0},           {"-1", 10, 0, 0},        {"+5", 10, 0, 0},
        {" 5", 10, 0, 0},         {"5 ", 10, 0, 0},        {"0x5", 10, 0, 0},
        {"5a", 10, 0, 0},         {"99999999999999999999999999", 10, 0, 0},
        {"18446744073709551615", SIZE_MAX, 1, SIZE_MAX},
        {"18446744073709551616", SIZE_MAX, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ksv_err err = {0};
        size_t got = 12345;
        int rc = ksv_v2_parse_header_length(cases[i].value, cases[i].body, &got, &err);
        if (cases[i].ok)
            KT_CHECK(rc == 0 && got == cases[i].want, "header length \"%s\" accepted",
                     cases[i].value);
        else
            KT_CHECK(rc == -1 && err.status == 400 && strstr(err.msg,
                                                             "Inference-Header-Content-Length"),
                     "header length \"%s\" refused with a message (%s)", cases[i].value,
                     err.msg);
    }
    ksv_err err = {0};
    size_t got;
    KT_CHECK(ksv_v2_parse_header_length(NULL, 5, &got, &err) == -1, "NULL header refused");
}

/* Truncations and byte flips of good bodies: never a crash or an overread (the sanitizer
 * build runs this), always 0 or a 4xx with a message. */
static void test_mutations(ksv_tensor_req *req)
{
    int bad = 0, accepted = 0, runs = 0;
    for (int round = 0; round < 3000; round++) {
        const dtype_case *dt = &dtypes[rnd() % N_DTYPES];
        pair p;
        make_pair(&p, dt, 1 + rnd() % 4, 1 + rnd() % 5, false);
        size_t len = p.bin_len, header_len = p.header_len;
        char *body = malloc(len + 8);
        memcpy(body, p.bin, len);
        switch (rnd() % 4) {
        case 0:
            len = rnd() % (len + 1);
            break;
        case 1:
            for (int k = 0; k < 3; k++)
                body[rnd() % len] = (char)rnd();
            break;
        case 2:
            header_len = rnd() % (len + 1);
            break;
        default:
            memset(body + len, 'x', 8);
            len += 1 + rnd() % 8;
            break;
        }
        char *exact = malloc(len ? len : 1);
        memcpy(exact, body, len);
        free(body);
        ksv_err err = {0};
        int rc = ksv_v2_decode_binary_infer(exact, len, header_len, LIMIT, req, &err);
        runs++;
        if (rc == 0)
            accepted++;
        else if (err.status < 400 || err.status > 413 || !err.msg[0] || req->count != 0)
            bad++;
        free(exact);
        free_pair(&p);
    }
    KT_CHECK(bad == 0, "%d mutated bodies: each decodes or is a 4xx with a message (%d bad)",
             runs, bad);
    KT_CHECK(accepted < runs, "most mutations are refused (%d of %d accepted)", accepted, runs);
}

static void test_output_choice(ksv_tensor_req *req)
{
    static const struct {
        const char *body;
        bool binary;
    } cases[] = {
        {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
         false},
        {"{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":\"x\",\"shape\":"
         "[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
         true},
        {"{\"parameters\":{\"binary_data_output\":false,\"other\":[1,{}]},\"inputs\":[{\"name\":"
         "\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
         false},
        {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
         "\"outputs\":[{\"name\":\"output-0\",\"parameters\":{\"binary_data\":true}}]}",
         true},
        {"{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":\"x\",\"shape\":"
         "[1],\"datatype\":\"FP32\",\"data\":[1]}],\"outputs\":[{\"name\":\"output-0\","
         "\"parameters\":{\"binary_data\":false}}]}",
         false},
        {"{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":\"x\",\"shape\":"
         "[1],\"datatype\":\"FP32\",\"data\":[1]}],\"outputs\":[{\"name\":\"output-0\"}]}",
         true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ksv_err err = {0};
        int rc = ksv_v2_decode_infer(cases[i].body, strlen(cases[i].body), LIMIT, req, &err);
        KT_CHECK(rc == 0 && ksv_v2_wants_binary_output(req) == cases[i].binary,
                 "output choice %zu: %s (%s)", i, cases[i].binary ? "binary" : "JSON",
                 rc ? err.msg : "");
    }
    const char *bad = "{\"parameters\":{\"binary_data_output\":1},\"inputs\":[]}";
    ksv_err err = {0};
    KT_CHECK(ksv_v2_decode_infer(bad, strlen(bad), LIMIT, req, &err) == -1 &&
                 strstr(err.msg, "parameters.binary_data_output: expected true or false"),
             "binary_data_output must be a bool (%s)", err.msg);
}

static void test_encoder(void)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    float out[6] = {0.25f, -1.0f, 3.4028235e38f, 1e-45f, 0.1f, NAN};
    size_t hl = 0;
    ksv_v2_encode_infer_binary(&sb, "m", "m-00001", "id\"1", out, 3, 2, &hl);
    KT_CHECK(!sb.oom && hl > 0 && sb.len == hl + sizeof out, "binary answer: header + 24 bytes");
    char head[1024];
    memcpy(head, sb.data, hl < sizeof head ? hl : sizeof head - 1);
    head[hl < sizeof head ? hl : sizeof head - 1] = '\0';
    json_object *o = json_tokener_parse(head);
    json_object *outputs, *o0, *params, *size, *shape, *id;
    bool ok = o && json_object_object_get_ex(o, "outputs", &outputs) &&
              (o0 = json_object_array_get_idx(outputs, 0)) &&
              json_object_object_get_ex(o0, "parameters", &params) &&
              json_object_object_get_ex(params, "binary_data_size", &size) &&
              json_object_get_int64(size) == 24 &&
              json_object_object_get_ex(o0, "shape", &shape) &&
              json_object_array_length(shape) == 2 &&
              !json_object_object_get_ex(o0, "data", NULL) &&
              json_object_object_get_ex(o, "id", &id) &&
              strcmp(json_object_get_string(id), "id\"1") == 0;
    KT_CHECK(ok, "binary answer's header: outputs[0] with binary_data_size 24, no data: %s",
             head);
    json_object_put(o);
    bool same = true;
    for (size_t i = 0; i < 6; i++) {
        unsigned char *p = (unsigned char *)sb.data + hl + 4 * i;
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        float f;
        memcpy(&f, &u, 4);
        same &= same_float(f, out[i]);
    }
    KT_CHECK(same, "binary answer's bytes are the floats, little-endian");
    ksv_sb_free(&sb);
}

int main(void)
{
    ksv_tensor_req a, b;
    ksv_tensor_req_init(&a);
    ksv_tensor_req_init(&b);
    test_half();
    test_json_equals_binary(&a, &b);
    test_hostile(&b);
    test_header_length();
    test_mutations(&b);
    test_output_choice(&a);
    test_encoder();
    ksv_tensor_req_free(&a);
    ksv_tensor_req_free(&b);
    return kt_summary("test_v2_binary");
}
