/* test_v2_codec.c: the V2/V1 data-plane codec against json-c as the oracle.
 *
 * Every decoded float must be bit-identical to what json-c gives for the same body
 * (json_object_get_double, cast to float); malformed or semantically wrong bodies must fail
 * with 400/413 and a message; encoder output must parse back with json-c to the same values.
 * The only place the oracle is not json-c: integers beyond int64/uint64, which json-c
 * saturates; those are compared with strtod (exact parsing). */
#include "engine/v2_codec.h"

#include <json-c/json.h>
#include <math.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

#define BIG_LIMIT ((size_t)1 << 24)

/* Deterministic generator (splitmix64) so every run tests the same bodies. */
static uint64_t rng_state = 0x5eed1234abcdULL;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static bool same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

/* ------------------------------------------------------------------------------------ */
/* Oracle                                                                                */

typedef struct oracle {
    char name[256];
    char datatype[32];
    int64_t shape[16];
    int ndim;
    float *vals;
    size_t n, cap;
    bool any_inf; /* a value that is infinite as a float: the codec must refuse the body */
    bool has_id;
    char id[1024];
    int n_outputs;
    char outputs[16][128];
} oracle;

static json_object *parse_strict(const char *body, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(200); /* the codec allows 64 levels */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    if (o && json_tokener_get_error(tok) == json_tokener_success) {
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
            if (!strchr(" \t\r\n", body[i])) {
                json_object_put(o);
                o = NULL;
                break;
            }
    } else {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static void oracle_push(oracle *o, float v)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->vals = realloc(o->vals, o->cap * sizeof(float));
        if (!o->vals) {
            perror("realloc");
            exit(1);
        }
    }
    if (isinf(v))
        o->any_inf = true;
    o->vals[o->n++] = v;
}

static void oracle_flatten(oracle *o, json_object *v)
{
    if (!v) {
        oracle_push(o, NAN);
    } else if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            oracle_flatten(o, json_object_array_get_idx(v, i));
    } else if (json_object_is_type(v, json_type_boolean)) {
        oracle_push(o, json_object_get_boolean(v) ? 1.0f : 0.0f);
    } else {
        oracle_push(o, (float)json_object_get_double(v));
    }
}

/* The id the codec should keep: the first <= 128 bytes, cut at a character boundary. */
static void truncate_utf8(const char *in, char *out, size_t max)
{
    size_t n = strlen(in);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)in[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, in, n);
    out[n] = '\0';
}

static void oracle_reset(oracle *o)
{
    float *vals = o->vals;
    size_t cap = o->cap;
    memset(o, 0, sizeof *o);
    o->vals = vals;
    o->cap = cap;
}

/* Fills o from a V2 body with json-c; false when json-c refuses it. */
static bool oracle_v2(const char *body, size_t len, oracle *o)
{
    oracle_reset(o);
    json_object *root = parse_strict(body, len);
    if (!root)
        return false;
    json_object *inputs, *t, *v;
    if (!json_object_object_get_ex(root, "inputs", &inputs) ||
        !(t = json_object_array_get_idx(inputs, 0))) {
        json_object_put(root);
        return false;
    }
    if (json_object_object_get_ex(t, "name", &v))
        snprintf(o->name, sizeof o->name, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(t, "datatype", &v))
        snprintf(o->datatype, sizeof o->datatype, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(t, "shape", &v))
        for (size_t i = 0; i < json_object_array_length(v) && i < 16; i++)
            o->shape[o->ndim++] = json_object_get_int64(json_object_array_get_idx(v, i));
    if (json_object_object_get_ex(t, "data", &v))
        oracle_flatten(o, v);
    if (json_object_object_get_ex(root, "id", &v)) {
        o->has_id = true;
        truncate_utf8(json_object_get_string(v), o->id, 128);
    }
    if (json_object_object_get_ex(root, "outputs", &v))
        for (size_t i = 0; i < json_object_array_length(v) && i < 16; i++) {
            json_object *name;
            if (json_object_object_get_ex(json_object_array_get_idx(v, i), "name", &name))
                snprintf(o->outputs[o->n_outputs++], 128, "%s", json_object_get_string(name));
        }
    json_object_put(root);
    return true;
}

/* V1: instances (or inputs) as rows. */
static bool oracle_v1(const char *body, size_t len, oracle *o)
{
    oracle_reset(o);
    json_object *root = parse_strict(body, len);
    if (!root)
        return false;
    json_object *inst;
    if (!json_object_object_get_ex(root, "instances", &inst) &&
        !json_object_object_get_ex(root, "inputs", &inst)) {
        json_object_put(root);
        return false;
    }
    size_t rows = json_object_array_length(inst);
    json_object *r0 = json_object_array_get_idx(inst, 0);
    size_t cols = json_object_is_type(r0, json_type_array) ? json_object_array_length(r0) : 1;
    oracle_flatten(o, inst);
    o->ndim = 2;
    o->shape[0] = (int64_t)rows;
    o->shape[1] = (int64_t)cols;
    json_object_put(root);
    return true;
}

static bool compare(const char *label, const ksv_tensor_req *req, const oracle *o, bool v2)
{
    kt_count_check();
    if (v2 && strcmp(req->input_name, o->name) != 0) {
        KT_FAIL("%s: name \"%s\", json-c \"%s\"", label, req->input_name, o->name);
        return false;
    }
    if (req->ndim != o->ndim || memcmp(req->shape, o->shape, sizeof(int64_t) * (size_t)o->ndim)) {
        KT_FAIL("%s: shape differs (ndim %d vs %d)", label, req->ndim, o->ndim);
        return false;
    }
    if (req->count != o->n) {
        KT_FAIL("%s: %zu values, json-c %zu", label, req->count, o->n);
        return false;
    }
    for (size_t i = 0; i < o->n; i++)
        if (!same_float(req->data[i], o->vals[i])) {
            KT_FAIL("%s: value %zu is %.9g, json-c %.9g", label, i, (double)req->data[i],
                    (double)o->vals[i]);
            return false;
        }
    if (v2) {
        if (req->has_id != o->has_id || strcmp(req->id, o->id) != 0) {
            KT_FAIL("%s: id \"%s\", json-c \"%s\"", label, req->id, o->id);
            return false;
        }
        if (req->n_outputs != o->n_outputs) {
            KT_FAIL("%s: %d outputs, json-c %d", label, req->n_outputs, o->n_outputs);
            return false;
        }
        for (int i = 0; i < o->n_outputs; i++)
            if (strcmp(req->outputs[i], o->outputs[i]) != 0) {
                KT_FAIL("%s: outputs[%d] \"%s\", json-c \"%s\"", label, i, req->outputs[i],
                        o->outputs[i]);
                return false;
            }
    }
    return true;
}

/* Decodes with the codec and compares with json-c; the body must be accepted unless the
 * oracle sees a float overflow, in which case it must be a 400. */
static void check_good(const char *label, const char *body, size_t len, bool v2,
                       ksv_tensor_req *req, oracle *o)
{
    ksv_err err = {0};
    bool have_oracle = v2 ? oracle_v2(body, len, o) : oracle_v1(body, len, o);
    if (!have_oracle) {
        KT_FAIL("%s: json-c refuses the body (test bug)", label);
        return;
    }
    int rc = v2 ? ksv_v2_decode_infer(body, len, BIG_LIMIT, req, &err)
                : ksv_v1_decode_predict(body, len, BIG_LIMIT, req, &err);
    if (o->any_inf) {
        kt_count_check();
        if (rc != -1 || err.status != 400 || !strstr(err.msg, "out of range"))
            KT_FAIL("%s: float overflow accepted (rc %d, %d %s)", label, rc, err.status, err.msg);
        return;
    }
    if (rc != 0) {
        kt_count_check();
        KT_FAIL("%s: refused: %d %s", label, err.status, err.msg);
        return;
    }
    compare(label, req, o, v2);
}

/* ------------------------------------------------------------------------------------ */
/* 1. Good bodies                                                                        */

static const char *const good_v2[] = {
    "{\"inputs\":[{\"name\":\"input-0\",\"shape\":[2,4],\"datatype\":\"FP32\","
    "\"data\":[6.8,2.8,4.8,1.4,6.0,3.4,4.5,1.6]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\","
    "\"data\":[[1,2],[3,4]]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2,2],\"datatype\":\"FP64\","
    "\"data\":[[[1.5,null],[3,-4]],[[0.1,-0.0],[-0,1e-30]]]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[4],\"datatype\":\"BOOL\","
    "\"data\":[true,false,null,true]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[5],\"datatype\":\"INT8\","
    "\"data\":[127,-128,0,-0,1e2]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"INT16\",\"data\":[32767,-32768,3.0]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"INT32\","
    "\"data\":[2147483647,-2147483648,null]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"INT64\","
    "\"data\":[9223372036854775807,-9223372036854775808,4.5e15]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"UINT8\",\"data\":[255,0]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"UINT16\",\"data\":[65535,-0]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"UINT32\",\"data\":[4294967295]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"UINT64\","
    "\"data\":[18446744073709551615,1.8e19]}]}",
    /* members in odd orders, data before the shape and before the datatype */
    "{\"inputs\":[{\"data\":[1,2,3],\"datatype\":\"FP32\",\"shape\":[3],\"name\":\"late\"}]}",
    "{\"inputs\":[{\"shape\":[1,3],\"data\":[[1,2,3]],\"name\":\"a\",\"datatype\":\"INT32\"}]}",
    "{\"outputs\":[{\"name\":\"output-0\"}],\"id\":\"r1\",\"inputs\":[{\"name\":\"x\","
    "\"datatype\":\"FP32\",\"data\":[0.5],\"shape\":[1]}],\"parameters\":{\"a\":[1,{}]}}",
    /* whitespace everywhere */
    " \r\n\t{ \"id\" : \"w\" ,\n \"inputs\" :\t[ { \"name\" : \"x\" , \"shape\" : [ 2 , 1 ] ,"
    " \"datatype\" : \"FP32\" , \"data\" : [ [ 1.25 ] ,\n [ -2 ] ] , \"parameters\" : { } } ] "
    "}\n\r\t ",
    /* unicode and escapes in names and ids, escaped member names */
    "{\"id\":\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t \xc3\xa9\","
    "\"inputs\":[{\"name\":\"in\\u00e9\\ud83d\\ude00\",\"shape\":[1],\"datatype\":\"FP32\","
    "\"d\\u0061ta\":[7]}]}",
    "{\"inputs\":[{\"name\":\"\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80\",\"shape\":[1],"
    "\"datatype\":\"FP32\",\"data\":[1]}],\"outputs\":[{\"name\":\"a\",\"parameters\":{}},"
    "{\"name\":\"b\\u0062\"}]}",
    /* unknown members anywhere, of every kind */
    "{\"x\":{\"y\":[1,2,{\"z\":null}],\"s\":\"\\u0000\"},\"inputs\":[{\"name\":\"x\","
    "\"u\":[[],{}],\"shape\":[1],\"k\":true,\"datatype\":\"FP32\",\"data\":[1],"
    "\"parameters\":{\"content_type\":\"np\"}}],\"u\":false,\"n\":-1.5e-3,\"u\":null}",
    /* edge numbers */
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[16],\"datatype\":\"FP32\",\"data\":["
    "1e-30,3.4028235e38,3.40282356e38,-3.4028235e38,-0.0,0.1,5e-324,1E5,1e+5,1e-5,"
    "0.000000000000000000000000000001234,12345678901234567890,1.17549435e-38,1.4e-45,"
    "7e-46,2.5e-324]}]}",
    "{\"inputs\":[{\"name\":\"x\",\"shape\":[8],\"datatype\":\"FP64\",\"data\":["
    "6.800000190734863,2.799999952316284,0.30000001192092896,1.00000000000000000000001,"
    "99999999999999999999.5,4.9406564584124654e-324,1e-400,-1e-400]}]}",
    /* a long id is truncated at 128 bytes on a character boundary */
    "{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123456789"
    "012345678901234567890123456789012345678901234567890123456\xc3\xa9\xc3\xa9xyz\","
    "\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
};

#define N_GOOD_V2 (sizeof good_v2 / sizeof good_v2[0])

static const char *const good_v1[] = {
    "{\"instances\":[[6.8,2.8,4.8,1.4],[6.0,3.4,4.5,1.6]]}",
    "{\"instances\":[1,2.5,null,-0.0,-0]}",
    "{\"instances\":[[null]]}",
    " { \"parameters\" : {\"a\":1}, \"other\" : [ ] , \"instances\" : [ [ 1 , 2 ] ] } ",
    "{\"inputs\":[[1e-30,3.4028235e38],[0.1,5e-324]]}",
};

static void test_good_bodies(ksv_tensor_req *req, oracle *o)
{
    char label[64];
    for (size_t i = 0; i < sizeof good_v2 / sizeof good_v2[0]; i++) {
        snprintf(label, sizeof label, "good V2 #%zu", i);
        check_good(label, good_v2[i], strlen(good_v2[i]), true, req, o);
    }
    for (size_t i = 0; i < sizeof good_v1 / sizeof good_v1[0]; i++) {
        snprintf(label, sizeof label, "good V1 #%zu", i);
        check_good(label, good_v1[i], strlen(good_v1[i]), false, req, o);
    }
    /* spot checks that do not depend on json-c's interpretation */
    ksv_err err;
    const char *b = good_v2[N_GOOD_V2 - 1];
    kt_count_check();
    if (ksv_v2_decode_infer(b, strlen(b), BIG_LIMIT, req, &err) != 0 || strlen(req->id) != 128 - 1)
        KT_FAIL("long id: expected 127 bytes (cut before a 2-byte char), got %zu",
                strlen(req->id));
    b = good_v2[16]; /* the one with escapes in the name */
    kt_count_check();
    if (ksv_v2_decode_infer(b, strlen(b), BIG_LIMIT, req, &err) != 0 ||
        strcmp(req->input_name, "in\xc3\xa9\xf0\x9f\x98\x80") != 0)
        KT_FAIL("unicode name: got \"%s\"", req->input_name);
    /* data nested to the deepest level allowed: 3 levels above data, 61 arrays */
    char deep[256];
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"inputs\":[{\"name\":\"x\",\"shape\":"
                                                   "[1],\"datatype\":\"FP32\",\"data\":");
    for (int i = 0; i < 61; i++)
        deep[n++] = '[';
    n += (size_t)snprintf(deep + n, sizeof deep - n, "-1.5e-7");
    for (int i = 0; i < 61; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof deep - n, "}]}");
    check_good("61 nested data arrays", deep, strlen(deep), true, req, o);

    printf("good bodies: %zu V2 and %zu V1 bodies match json-c\n",
           N_GOOD_V2, sizeof good_v1 / sizeof good_v1[0]);
}

/* ------------------------------------------------------------------------------------ */
/* 2. Broken bodies                                                                      */

typedef struct bad_case {
    const char *body;
    int status;
    const char *msg_part; /* substring the message must contain, or NULL */
    size_t max_values;    /* 0: BIG_LIMIT */
} bad_case;

#define T(shape, dt, data)                                                                    \
    "{\"inputs\":[{\"name\":\"x\",\"shape\":" shape ",\"datatype\":\"" dt "\",\"data\":" data \
    "}]}"

static const bad_case bad_v2[] = {
    {"", 400, "empty", 0},
    {"   \n", 400, "empty", 0},
    {"[]", 400, "object", 0},
    {"1", 400, "object", 0},
    {"{", 400, "invalid JSON", 0},
    {"{}", 400, "inputs: required", 0},
    {"{\"inputs\":[]}", 400, "exactly one", 0},
    {"{\"inputs\":[" "{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
     "{\"name\":\"b\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", 400, "2 tensors", 0},
    {"{\"inputs\":{}}", 400, "inputs: expected an array", 0},
    {"{\"inputs\":[1]}", 400, "tensor object", 0},
    {"{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", 400, "name: required", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1]}]}", 400, "shape: required", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"data\":[1]}]}", 400, "datatype: required", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}]}", 400, "data: required", 0},
    {"{\"inputs\":[{\"name\":7,\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", 400,
     "name: expected a string", 0},
    {"{\"inputs\":[{\"name\":\"12345678901234567890123456789012345678901234567890123456789012345\","
     "\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", 400, "longer than 64", 0},
    {T("4", "FP32", "[1,2,3,4]"), 400, "shape: expected an array of non-negative integers", 0},
    {T("[-1,4]", "FP32", "[1]"), 400, "non-negative", 0},
    {T("[2.5]", "FP32", "[1,2]"), 400, "non-negative", 0},
    {T("[\"2\"]", "FP32", "[1,2]"), 400, "non-negative", 0},
    {T("[]", "FP32", "[1]"), 400, "at least one dimension", 0},
    {T("[1,1,1,1,1,1,1,1,1]", "FP32", "[1]"), 400, "more than 8 dimensions", 0},
    {T("[0,4]", "FP32", "[]"), 400, "no elements", 0},
    {T("[4294967296,4294967296]", "FP32", "[1]"), 400, "overflows", 0},
    {T("[18446744073709551616]", "FP32", "[1]"), 400, "too large", 0},
    {T("[9223372036854775808]", "FP32", "[1]"), 400, "too large", 0},
    {T("[1000,1000]", "FP32", "[1]"), 413, "limit", 1000},
    {T("[2,4]", "FP32", "[1,2,3,4,5,6,7]"), 400, "shape [2,4] needs 8 values, data has 7", 0},
    {T("[2,4]", "FP32", "[[1,2,3,4],[5,6,7,8],[9]]"), 400, "data has 9", 0},
    {T("[1]", "FP8", "[1]"), 400, "unknown datatype", 0},
    {T("[1]", "fp32", "[1]"), 400, "unknown datatype", 0},
    {T("[1]", "FP32 ", "[1]"), 400, "unknown datatype", 0},
    {T("[1]", "BYTES", "[\"a\"]"), 400, "BYTES input not supported by a numeric model", 0},
    {T("[1]", "FP16", "[65520]"), 400, "out of range for FP16", 0},
    {T("[1]", "FP16", "[-1e10]"), 400, "out of range for FP16", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":32,\"data\":[1]}]}", 400,
     "datatype: expected a string", 0},
    {T("[1]", "FP32", "[\"1.5\"]"), 400, "string is not a number", 0},
    {T("[1]", "FP32", "[true]"), 400, "BOOL", 0},
    {T("[1]", "FP32", "[{}]"), 400, "object", 0},
    {T("[1]", "FP32", "1"), 400, "data: expected an array", 0},
    {T("[1]", "FP32", "{\"a\":1}"), 400, "data: expected an array", 0},
    {T("[1]", "BOOL", "[1]"), 400, "BOOL data must be", 0},
    {T("[1]", "INT8", "[128]"), 400, "out of range", 0},
    {T("[1]", "INT8", "[-129]"), 400, "out of range", 0},
    {T("[1]", "INT8", "[1.5]"), 400, "not an integer", 0},
    {T("[1]", "INT16", "[1e5]"), 400, "out of range", 0},
    {T("[1]", "INT32", "[2147483648]"), 400, "out of range", 0},
    {T("[1]", "INT64", "[9223372036854775808]"), 400, "out of range", 0},
    {T("[1]", "INT64", "[9.3e18]"), 400, "out of range", 0},
    {T("[1]", "UINT8", "[-1]"), 400, "negative", 0},
    {T("[1]", "UINT8", "[-1e0]"), 400, "negative", 0},
    {T("[1]", "UINT8", "[256]"), 400, "out of range", 0},
    {T("[1]", "UINT64", "[18446744073709551616]"), 400, "out of range", 0},
    {T("[1]", "UINT64", "[1.9e19]"), 400, "out of range", 0},
    {T("[1]", "FP32", "[1e39]"), 400, "value out of range", 0},
    {T("[1]", "FP32", "[3.4028236e38]"), 400, "value out of range", 0},
    {T("[1]", "FP32", "[-1e400]"), 400, "value out of range", 0},
    {T("[1]", "FP64", "[1.7976931348623157e308]"), 400, "value out of range", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6,7,8,9,10,11],"
     "\"shape\":[11]}]}", 413, "more than 10 values", 10},
    {"{\"inputs\":[{\"name\":\"x\",\"data\":[1,2,3,4,5,6,7,8,9,10,11],\"datatype\":\"FP32\","
     "\"shape\":[11]}]}", 413, "limit", 10},
    /* malformed numbers */
    {T("[1]", "FP32", "[01]"), 400, "leading zero", 0},
    {T("[1]", "FP32", "[1.]"), 400, "after '.'", 0},
    {T("[1]", "FP32", "[.5]"), 400, "expected a value", 0},
    {T("[1]", "FP32", "[+1]"), 400, "expected a value", 0},
    {T("[1]", "FP32", "[-]"), 400, "invalid number", 0},
    {T("[1]", "FP32", "[-a]"), 400, "invalid number", 0},
    {T("[1]", "FP32", "[1e]"), 400, "exponent", 0},
    {T("[1]", "FP32", "[1e+]"), 400, "exponent", 0},
    {T("[1]", "FP32", "[0x10]"), 400, "invalid JSON", 0},
    {T("[1]", "FP32", "[NaN]"), 400, "invalid JSON", 0},
    {T("[1]", "FP32", "[Infinity]"), 400, "invalid JSON", 0},
    {T("[1]", "FP32", "[1.5.3]"), 400, "invalid JSON", 0},
    {T("[1]", "FP32", "[tru]"), 400, "literal", 0},
    {T("[1]", "FP32", "[nul]"), 400, "literal", 0},
    {T("[1]", "FP32", "[nulll]"), 400, "invalid JSON", 0},
    /* structure */
    {T("[1]", "FP32", "[1]") " x", 400, "after the JSON value", 0},
    {T("[1]", "FP32", "[1]") "{}", 400, "after the JSON value", 0},
    {T("[1]", "FP32", "[1,]"), 400, "expected a value", 0},
    {T("[1]", "FP32", "[1 2]"), 400, "expected ','", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],}]}", 400,
     "member name", 0},
    {"{\"inputs\" [{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", 400,
     "':'", 0},
    {"{\"inputs\":[{\"name\":\"x\" \"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", 400,
     "','", 0},
    {"{inputs:[]}", 400, "member name", 0},
    {"{'inputs':[]}", 400, "member name", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]", 400,
     "ends early", 0},
    /* strings */
    {"{\"id\":\"\\x\",\"inputs\":[]}", 400, "escape", 0},
    {"{\"id\":\"\\u12G4\",\"inputs\":[]}", 400, "\\u escape", 0},
    {"{\"id\":\"\\ud800\",\"inputs\":[]}", 400, "surrogate", 0},
    {"{\"id\":\"\\udc00\",\"inputs\":[]}", 400, "surrogate", 0},
    {"{\"id\":\"\\ud800\\u0041\",\"inputs\":[]}", 400, "surrogate", 0},
    {"{\"id\":\"a\tb\",\"inputs\":[]}", 400, "control character", 0},
    {"{\"id\":\"\xff\",\"inputs\":[]}", 400, "UTF-8", 0},
    {"{\"id\":\"\xc0\xaf\",\"inputs\":[]}", 400, "UTF-8", 0},
    {"{\"id\":\"\xed\xa0\x80\",\"inputs\":[]}", 400, "UTF-8", 0},
    {"{\"id\":\"\xf4\x90\x80\x80\",\"inputs\":[]}", 400, "UTF-8", 0},
    {"{\"id\":\"\xe6\x97\",\"inputs\":[]}", 400, "UTF-8", 0},
    {"{\"id\":\"abc", 400, "unterminated", 0},
    {"{\"id\":\"abc\\", 400, "escape", 0},
    {"{\"id\":7,\"inputs\":[]}", 400, "id: expected a string", 0},
    {"{\"id\":\"a\\u0000b\",\"inputs\":[]}", 400, "\\u0000", 0},
    /* duplicates, outputs, parameters */
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
     "\"inputs\":[]}", 400, "more than once", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
     "\"data\":[2]}]}", 400, "more than once", 0},
    {"{\"outputs\":[{\"name\":\"1\"},{\"name\":\"2\"},{\"name\":\"3\"},{\"name\":\"4\"},"
     "{\"name\":\"5\"},{\"name\":\"6\"},{\"name\":\"7\"},{\"name\":\"8\"},{\"name\":\"9\"}],"
     "\"inputs\":[]}", 400, "more than 8", 0},
    {"{\"outputs\":[{\"parameters\":{}}],\"inputs\":[]}", 400, "outputs[0].name: required", 0},
    {"{\"outputs\":[\"output-0\"],\"inputs\":[]}", 400, "outputs[0]: expected an object", 0},
    {"{\"outputs\":{\"name\":\"x\"},\"inputs\":[]}", 400, "outputs: expected an array", 0},
    {"{\"parameters\":1,\"inputs\":[]}", 400, "parameters: expected an object", 0},
    /* unknown members are skipped but must still be well-formed */
    {"{\"x\":[01],\"inputs\":[]}", 400, "leading zero", 0},
    {"{\"x\":{\"a\":1,},\"inputs\":[]}", 400, "member name", 0},
    {"{\"parameters\":{\"a\":\"\\q\"}," "\"inputs\":[]}", 400, "escape", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
     "\"extra\":[tru]}]}", 400, "literal", 0},
    {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
     "\"parameters\":[]}]}", 400, "parameters: expected an object", 0},
};

static void check_bad(const char *label, const char *body, size_t len, bool v2, int status,
                      const char *msg_part, size_t max_values, ksv_tensor_req *req)
{
    ksv_err err = {0};
    int rc = v2 ? ksv_v2_decode_infer(body, len, max_values, req, &err)
                : ksv_v1_decode_predict(body, len, max_values, req, &err);
    kt_count_check();
    if (rc != -1 || err.status != status || err.msg[0] == '\0' ||
        (msg_part && !strstr(err.msg, msg_part)))
        KT_FAIL("%s: rc %d status %d \"%s\" (want %d containing \"%s\") body %.80s", label, rc,
                err.status, err.msg, status, msg_part ? msg_part : "", body);
}

static const bad_case bad_v1[] = {
    {"{}", 400, "instances: required", 0},
    {"{\"instances\":[]}", 400, "empty", 0},
    {"{\"instances\":{}}", 400, "expected an array", 0},
    {"{\"instances\":[[1,2],[3]]}", 400, "instances[1] has 1 values, instances[0] has 2", 0},
    {"{\"instances\":[[1,2],3]}", 400, "expected a row", 0},
    {"{\"instances\":[1,[2]]}", 400, "a row among numbers", 0},
    {"{\"instances\":[[]]}", 400, "empty row", 0},
    {"{\"instances\":[[\"a\"]]}", 400, "instances[0][0]", 0},
    {"{\"instances\":[[[1]]]}", 400, "instances[0][0]", 0},
    {"{\"instances\":[true]}", 400, "instances[0]", 0},
    {"{\"instances\":[[1e39]]}", 400, "out of range", 0},
    {"{\"instances\":[[1]],\"inputs\":[[1]]}", 400, "once", 0},
    {"{\"instances\":[[1,2,3],[4,5,6]]}", 413, "limit", 5},
    {"{\"instances\":[[1,2]]} ]", 400, "after the JSON value", 0},
    {"{\"instances\":[[01]]}", 400, "leading zero", 0},
};

static void test_bad_bodies(ksv_tensor_req *req)
{
    char label[64];
    size_t n2 = sizeof bad_v2 / sizeof bad_v2[0], n1 = sizeof bad_v1 / sizeof bad_v1[0];
    for (size_t i = 0; i < n2; i++) {
        snprintf(label, sizeof label, "bad V2 #%zu", i);
        const bad_case *c = &bad_v2[i];
        check_bad(label, c->body, strlen(c->body), true, c->status, c->msg_part,
                  c->max_values ? c->max_values : BIG_LIMIT, req);
    }
    for (size_t i = 0; i < n1; i++) {
        snprintf(label, sizeof label, "bad V1 #%zu", i);
        const bad_case *c = &bad_v1[i];
        check_bad(label, c->body, strlen(c->body), false, c->status, c->msg_part,
                  c->max_values ? c->max_values : BIG_LIMIT, req);
    }
    /* A NUL byte inside the body and a body whose length stops before its end. */
    static const char nul_body[] = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":"
                                   "\"FP32\",\"data\":[1\0]}]}";
    check_bad("NUL byte", nul_body, sizeof nul_body - 1, true, 400, "invalid JSON", BIG_LIMIT, req);
    /* Nesting: 70 levels in data, and in an unknown member. */
    char deep[600];
    snprintf(deep, sizeof deep, "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":"
                                "\"FP32\",\"data\":%.70s1%.70s}]}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    check_bad("deep data", deep, strlen(deep), true, 400, "nesting", BIG_LIMIT, req);
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"u\":");
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof deep - n, ",\"inputs\":[]}");
    check_bad("deep unknown member", deep, strlen(deep), true, 400, "nesting", BIG_LIMIT, req);
    check_bad("deep V1", deep, strlen(deep), false, 400, "nesting", BIG_LIMIT, req);
    /* 64 levels are still accepted (1 object + 63 arrays). */
    n = (size_t)snprintf(deep, sizeof deep, "{\"u\":");
    for (int i = 0; i < 63; i++)
        deep[n++] = '[';
    for (int i = 0; i < 63; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof deep - n, ",\"instances\":[1]}");
    kt_count_check();
    ksv_err err;
    if (ksv_v1_decode_predict(deep, strlen(deep), BIG_LIMIT, req, &err) != 0)
        KT_FAIL("64 levels refused: %s", err.msg);

    /* Every proper prefix of valid bodies is a 400. */
    static const char *const whole[] = {
        T("[2,2]", "FP32", "[[1.5,-2e-3],[null,4]]"),
        "{\"id\":\"caf\\u00e9\\ud83d\\ude00\xc3\xa9\",\"parameters\":{\"a\":[true,false,null]},"
        "\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"data\":[1,-2],\"shape\":[2]}],"
        "\"outputs\":[{\"name\":\"output-0\"}]}",
    };
    size_t prefixes = 0;
    for (size_t w = 0; w < sizeof whole / sizeof whole[0]; w++) {
        size_t len = strlen(whole[w]);
        kt_count_check();
        if (ksv_v2_decode_infer(whole[w], len, BIG_LIMIT, req, &err) != 0)
            KT_FAIL("prefix base %zu refused: %s", w, err.msg);
        for (size_t cut = 0; cut < len; cut++) {
            /* a heap copy of exactly `cut` bytes, so ASan catches any read past the end */
            char *copy = malloc(cut ? cut : 1);
            memcpy(copy, whole[w], cut);
            snprintf(label, sizeof label, "prefix %zu of body %zu", cut, w);
            check_bad(label, copy, cut, true, 400, NULL, BIG_LIMIT, req);
            free(copy);
            prefixes++;
        }
    }
    const char *v1whole = "{\"instances\":[[1.5,null],[3e2,-0.25]]}";
    for (size_t cut = 0; cut < strlen(v1whole); cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, v1whole, cut);
        snprintf(label, sizeof label, "V1 prefix %zu", cut);
        check_bad(label, copy, cut, false, 400, NULL, BIG_LIMIT, req);
        free(copy);
        prefixes++;
    }
    printf("broken bodies: %zu V2 + %zu V1 table entries, 5 nesting/NUL cases, %zu truncated "
           "prefixes all refused with the right status\n", n2, n1, prefixes);
}

/* Random single-byte mutations of valid bodies: never a crash, and whatever the codec
 * accepts json-c accepts too, with the same values. */
static void test_mutations(ksv_tensor_req *req, oracle *o)
{
    static const char *const seeds[] = {
        "{\"id\":\"r\\u00e9\",\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\","
        "\"data\":[[1.5,-2e-3,0],[null,4,12.25]]}],\"outputs\":[{\"name\":\"o\"}]}",
        "{\"inputs\":[{\"data\":[1,2,3,4],\"datatype\":\"INT16\",\"shape\":[4],\"name\":\"y\","
        "\"parameters\":{\"k\":[{}]}}]}",
    };
    static const char alphabet[] = "{}[],:\"\\ 0123456789.eE+-truefalsnul\xc3\xa9\x01";
    size_t accepted = 0, total = 0;
    char buf[512];
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)rnd_below(3);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd_below((unsigned)len);
            char c = alphabet[rnd_below(sizeof alphabet - 1)];
            switch (rnd_below(3)) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            default:
                if (len + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = c;
                    len++;
                }
            }
        }
        char *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        ksv_err err = {0};
        int rc = ksv_v2_decode_infer(copy, len, BIG_LIMIT, req, &err);
        total++;
        kt_count_check();
        if (rc == 0) {
            accepted++;
            if (!oracle_v2(copy, len, o))
                KT_FAIL("mutation accepted but json-c refuses: %.*s", (int)len, copy);
            else
                compare("mutation", req, o, true);
        } else if ((err.status != 400 && err.status != 413) || !err.msg[0]) {
            KT_FAIL("mutation: status %d \"%s\"", err.status, err.msg);
        }
        free(copy);
    }
    printf("mutations: %zu mutated bodies, %zu accepted (all json-c-valid and equal), rest "
           "refused with 400\n", total, accepted);
}

/* ------------------------------------------------------------------------------------ */
/* 3. Numbers and random bodies                                                          */

/* Writes a random JSON number into out. *pure_big is set when it is an integer token with
 * more than 18 digits (json-c saturates those, so they get strtod as the oracle). */
static void random_number_text(char *out, size_t cap, bool *pure_big);

static void random_number(char *out, size_t cap, bool *pure_big)
{
    random_number_text(out, cap, pure_big);
    /* "%.20g" and friends print big values as long integers: json-c saturates those too */
    if (!strpbrk(out, ".eE") && strlen(out) - (out[0] == '-') > 18)
        *pure_big = true;
}

static void random_number_text(char *out, size_t cap, bool *pure_big)
{
    *pure_big = false;
    unsigned kind = rnd_below(9);
    float f;
    double d;
    switch (kind) {
    case 0: { /* a float32 printed with 6..9 digits */
        uint32_t bits = (uint32_t)rnd();
        memcpy(&f, &bits, 4);
        if (!isfinite(f))
            f = 1.5f;
        snprintf(out, cap, "%.*g", 6 + (int)rnd_below(4), (double)f);
        return;
    }
    case 1: { /* a float32 as a Python client sends it: the double, 17 digits */
        uint32_t bits = (uint32_t)rnd() & 0x7FFFFFFF;
        memcpy(&f, &bits, 4);
        if (!isfinite(f))
            f = 0.25f;
        if (rnd() & 1)
            f = (float)((double)(rnd() % 100000) / 1000.0);
        snprintf(out, cap, "%s%.17g", rnd() & 1 ? "-" : "", (double)f);
        return;
    }
    case 2: { /* near a halfway point between two floats: the double must be exact */
        uint32_t bits = (uint32_t)rnd() & 0x7F7FFFFF;
        memcpy(&f, &bits, 4);
        float g = nextafterf(f, INFINITY);
        d = ((double)f + (double)g) / 2;
        unsigned which = rnd_below(3);
        if (which == 1)
            d = nextafter(d, INFINITY);
        else if (which == 2)
            d = nextafter(d, -INFINITY);
        switch (rnd_below(5)) {
        case 0: snprintf(out, cap, "%.17g", d); break;
        case 1: snprintf(out, cap, "%.17e", d); break;
        case 2: snprintf(out, cap, "%.20g", d); break;
        case 3: snprintf(out, cap, "%.25e", d); break;
        default: snprintf(out, cap, "%.16g", d); break;
        }
        return;
    }
    case 3: { /* random double bits */
        uint64_t bits = rnd();
        memcpy(&d, &bits, 8);
        if (!isfinite(d))
            d = 0.5;
        snprintf(out, cap, "%.17g", d);
        return;
    }
    case 4: { /* an integer that fits json-c's int64 */
        int64_t v = (int64_t)rnd();
        snprintf(out, cap, "%" PRId64, v >> rnd_below(64));
        return;
    }
    case 5: { /* decimal digits with an exponent */
        size_t n = 0;
        if (rnd() & 1)
            out[n++] = '-';
        unsigned idig = rnd_below(25);
        if (idig == 0)
            out[n++] = '0';
        else {
            out[n++] = (char)('1' + rnd_below(9));
            for (unsigned i = 1; i < idig; i++)
                out[n++] = (char)('0' + rnd_below(10));
        }
        unsigned fdig = rnd_below(25);
        if (fdig || idig > 18) {
            out[n++] = '.';
            for (unsigned i = 0; i < fdig + 1; i++)
                out[n++] = (char)('0' + rnd_below(10));
        }
        if (rnd() & 1) {
            out[n++] = rnd() & 1 ? 'e' : 'E';
            unsigned s = rnd_below(3);
            if (s)
                out[n++] = s == 1 ? '+' : '-';
            n += (size_t)snprintf(out + n, cap - n, "%u", rnd_below(60));
        }
        out[n] = '\0';
        return;
    }
    case 6: { /* small numbers: subnormal floats and doubles, 0.000... */
        double mant = (double)(rnd() % 1000000 + 1);
        d = ldexp(mant, -(int)rnd_below(1100));
        unsigned which = rnd_below(3);
        double v = (rnd() & 1) ? -d : d;
        if (which == 0)
            snprintf(out, cap, "%.9g", v);
        else if (which == 1)
            snprintf(out, cap, "%.17g", v);
        else
            snprintf(out, cap, "%.3e", v);
        return;
    }
    case 8: { /* 18-19 digits next to a double halfway point beside a float halfway point:
               * a double rounded the wrong way changes the float */
        uint32_t bits = 0x35800000u + (uint32_t)(rnd() % (0x5D800000u - 0x35800000u));
        memcpy(&f, &bits, 4);
        double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
        long double half_ulp = ((long double)nextafter(mid, INFINITY) - (long double)mid) / 2;
        long double h = (long double)mid + (rnd() & 1 ? half_ulp : -half_ulp);
        snprintf(out, cap, rnd() & 1 ? "%.19Lg" : "%.18Le", h);
        return;
    }
    default: { /* a big integer, compared with strtod */
        size_t n = 0;
        if (rnd() & 1)
            out[n++] = '-';
        unsigned dig = 19 + rnd_below(20);
        out[n++] = (char)('1' + rnd_below(9));
        for (unsigned i = 1; i < dig; i++)
            out[n++] = (char)('0' + rnd_below(10));
        out[n] = '\0';
        *pure_big = true;
        return;
    }
    }
}

static void test_numbers(ksv_tensor_req *req, oracle *o)
{
    enum { PER_BODY = 500, BODIES = 400 };
    ksv_sb body;
    ksv_sb_init(&body);
    char num[128];
    size_t compared = 0, big = 0;
    float big_expect[PER_BODY];
    for (int b = 0; b < BODIES; b++) {
        ksv_sb_reset(&body);
        ksv_sb_printf(&body, "{\"inputs\":[{\"name\":\"n\",\"shape\":[%d],\"datatype\":\"FP64\","
                             "\"data\":[", PER_BODY);
        size_t nbig = 0;
        bool big_pos[PER_BODY];
        for (int i = 0; i < PER_BODY; i++) {
            bool pure_big;
            do {
                random_number(num, sizeof num, &pure_big);
                /* keep only values that are finite as floats (overflow is tested apart) */
            } while (!isfinite((float)strtod(num, NULL)));
            big_pos[i] = pure_big;
            if (pure_big)
                big_expect[nbig++] = (float)strtod(num, NULL);
            ksv_sb_printf(&body, "%s%s", i ? "," : "", num);
        }
        ksv_sb_puts(&body, "]}]}");
        ksv_err err;
        if (!oracle_v2(body.data, body.len, o)) {
            KT_FAIL("numbers: json-c refuses body %d", b);
            continue;
        }
        /* json-c saturates big integers: put the exact values in the oracle */
        for (int i = 0, k = 0; i < PER_BODY; i++)
            if (big_pos[i])
                o->vals[i] = big_expect[k++];
        big += nbig;
        kt_count_check();
        if (ksv_v2_decode_infer(body.data, body.len, BIG_LIMIT, req, &err) != 0) {
            KT_FAIL("numbers: body %d refused: %s", b, err.msg);
            continue;
        }
        if (compare("numbers", req, o, true))
            compared += PER_BODY;
    }
    ksv_sb_free(&body);
    printf("numbers: %zu random numbers bit-identical to json-c (%zu big integers to strtod)\n",
           compared, big);
}

static void test_random_bodies(ksv_tensor_req *req, oracle *o)
{
    static const char *const ws[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
    /* WS appears several times in one call; the order of those draws is unspecified, so
     * only the placement of whitespace may differ between compilers, never the values. */
#define WS ws[rnd_below(7)]
    ksv_sb body;
    ksv_sb_init(&body);
    char num[128];
    size_t accepted = 0, overflow = 0;
    for (int b = 0; b < 1500; b++) {
        unsigned rows = 1 + rnd_below(64), cols = 1 + rnd_below(30);
        unsigned dkind = rnd_below(10); /* 0..5 FP32, 6..7 FP64, 8 INT32, 9 BOOL */
        const char *dt = dkind < 6 ? "FP32" : dkind < 8 ? "FP64" : dkind == 8 ? "INT32" : "BOOL";
        bool nested = rnd() & 1;
        ksv_sb data;
        ksv_sb_init(&data);
        ksv_sb_printf(&data, "[%s", WS);
        for (unsigned r = 0; r < rows; r++) {
            if (r)
                ksv_sb_printf(&data, "%s,%s", WS, WS);
            if (nested)
                ksv_sb_printf(&data, "[%s", WS);
            for (unsigned c = 0; c < cols; c++) {
                if (c)
                    ksv_sb_printf(&data, "%s,%s", WS, WS);
                if (rnd_below(10) == 0) {
                    ksv_sb_puts(&data, "null");
                } else if (dkind == 9) {
                    ksv_sb_puts(&data, rnd() & 1 ? "true" : "false");
                } else if (dkind == 8) {
                    int32_t v = (int32_t)rnd();
                    ksv_sb_printf(&data, "%d", v >> rnd_below(32));
                } else {
                    bool pure_big;
                    do
                        random_number(num, sizeof num, &pure_big);
                    while (pure_big || (rnd_below(200) != 0 && !isfinite((float)strtod(num, NULL))));
                    ksv_sb_puts(&data, num);
                }
            }
            if (nested)
                ksv_sb_printf(&data, "%s]", WS);
        }
        ksv_sb_printf(&data, "%s]", WS);

        char members[6][256];
        int nm = 0;
        snprintf(members[nm++], 256, "\"name\"%s:%s\"in-%d\"", WS, WS, b);
        if (rnd() & 1)
            snprintf(members[nm++], 256, "\"shape\"%s:%s[%s%u%s,%s%u%s]", WS, WS, WS, rows, WS, WS,
                     cols, WS);
        else
            snprintf(members[nm++], 256, "\"shape\":[%u]", rows * cols);
        snprintf(members[nm++], 256, "\"datatype\"%s:%s\"%s\"", WS, WS, dt);
        snprintf(members[nm++], 256, "\"data\"%s:%s", WS, WS); /* data text appended below */
        if (rnd() & 1)
            snprintf(members[nm++], 256, "\"parameters\":{\"x\":[1,\"a\",{\"b\":null}]}");
        /* shuffle member order */
        for (int i = nm - 1; i > 0; i--) {
            int j = (int)rnd_below((unsigned)i + 1);
            char tmp[256];
            memcpy(tmp, members[i], 256);
            memcpy(members[i], members[j], 256);
            memcpy(members[j], tmp, 256);
        }
        ksv_sb_reset(&body);
        ksv_sb_printf(&body, "%s{%s", WS, WS);
        if (rnd() & 1)
            ksv_sb_printf(&body, "\"id\"%s:%s\"req-%d\"%s,%s", WS, WS, b, WS, WS);
        ksv_sb_printf(&body, "\"inputs\"%s:%s[%s{%s", WS, WS, WS, WS);
        for (int i = 0; i < nm; i++) {
            if (i)
                ksv_sb_printf(&body, "%s,%s", WS, WS);
            ksv_sb_puts(&body, members[i]);
            if (strncmp(members[i], "\"data\"", 6) == 0)
                ksv_sb_append(&body, data.data, data.len);
        }
        ksv_sb_printf(&body, "%s}%s]%s}%s", WS, WS, WS, WS);
        ksv_sb_free(&data);

        char label[48];
        snprintf(label, sizeof label, "random body %d (%s %ux%u)", b, dt, rows, cols);
        check_good(label, body.data, body.len, true, req, o);
        if (o->any_inf)
            overflow++;
        else
            accepted++;
    }
    ksv_sb_free(&body);
#undef WS
    printf("random bodies: %zu decoded equal to json-c, %zu with a float overflow refused\n",
           accepted, overflow);
}

/* V1 bodies of random rows (or scalars), compared with json-c. */
static void test_random_v1(ksv_tensor_req *req, oracle *o)
{
    ksv_sb body;
    ksv_sb_init(&body);
    char num[128];
    size_t n = 0;
    for (int b = 0; b < 400; b++) {
        unsigned rows = 1 + rnd_below(40), cols = 1 + rnd_below(12);
        bool scalars = rnd_below(5) == 0;
        ksv_sb_reset(&body);
        ksv_sb_puts(&body, rnd() & 1 ? "{\"instances\": [" : "{\"parameters\":{},\"inputs\":[");
        for (unsigned r = 0; r < rows; r++) {
            ksv_sb_puts(&body, r ? (scalars ? ", " : ",\n [") : (scalars ? "" : "["));
            for (unsigned c = 0; c < (scalars ? 1 : cols); c++) {
                bool pure_big;
                do
                    random_number(num, sizeof num, &pure_big);
                while (pure_big || !isfinite((float)strtod(num, NULL)));
                if (c)
                    ksv_sb_putc(&body, ',');
                ksv_sb_puts(&body, rnd_below(8) == 0 ? "null" : num);
            }
            if (!scalars)
                ksv_sb_putc(&body, ']');
        }
        ksv_sb_puts(&body, "]}");
        char label[48];
        snprintf(label, sizeof label, "random V1 body %d", b);
        check_good(label, body.data, body.len, false, req, o);
        n++;
    }
    ksv_sb_free(&body);
    printf("random V1 bodies: %zu decoded equal to json-c\n", n);
}

static void test_limits_and_reuse(ksv_tensor_req *req)
{
    ksv_sb body;
    ksv_sb_init(&body);
    ksv_sb_puts(&body, "{\"inputs\":[{\"name\":\"x\",\"shape\":[64,20],\"datatype\":\"FP32\",\"data\":[");
    for (int i = 0; i < 1280; i++)
        ksv_sb_printf(&body, "%s%d.5", i ? "," : "", i);
    ksv_sb_puts(&body, "]}]}");
    ksv_err err;
    kt_count_check();
    if (ksv_v2_decode_infer(body.data, body.len, 1280, req, &err) != 0)
        KT_FAIL("exactly max_values refused: %s", err.msg);
    float *kept = req->data;
    size_t cap = req->cap;
    const char *small = T("[1,2]", "FP32", "[1,2]");
    kt_count_check();
    if (ksv_v2_decode_infer(small, strlen(small), 1280, req, &err) != 0 || req->data != kept ||
        req->cap != cap || req->count != 2)
        KT_FAIL("buffer not kept between calls");
    check_bad("max_values - 1", body.data, body.len, true, 413, "limit", 1279, req);
    ksv_sb_free(&body);
    printf("limits: max_values exact fit accepted, one more is 413; buffer reused\n");
}

/* ------------------------------------------------------------------------------------ */
/* 4. Encoders                                                                           */

static float random_output(void)
{
    switch (rnd_below(10)) {
    case 0:
        return NAN;
    case 1:
        return rnd() & 1 ? INFINITY : -INFINITY;
    case 2:
        return rnd() & 1 ? -0.0f : 0.0f;
    case 3:
        return (float)rnd_below(10);
    default: {
        uint32_t bits = (uint32_t)rnd();
        float f;
        memcpy(&f, &bits, 4);
        return isfinite(f) ? f : 1e-40f;
    }
    }
}

/* Compares a json-c value with the float the encoder was given. */
static bool value_matches(json_object *v, float want)
{
    if (!isfinite(want))
        return v == NULL;
    if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return false;
    float via_double = (float)json_object_get_double(v);
    float via_strtof = strtof(json_object_get_string(v), NULL);
    if (want == 0.0f) /* "-0" reads back as the integer 0 in json-c */
        return via_double == 0.0f && via_strtof == 0.0f;
    return same_float(via_double, want) && same_float(via_strtof, want);
}

static void test_encoders(void)
{
    static const char *const ids[] = {"req-1", "with \"quotes\" and \\ and \n\t\x01",
                                      "caf\xc3\xa9 \xf0\x9f\x98\x80", ""};
    size_t values = 0;
    ksv_sb sb;
    ksv_sb_init(&sb);
    for (int iter = 0; iter < 300; iter++) {
        size_t rows = 1 + rnd_below(40), cols = 1 + rnd_below(4);
        float *out = malloc(rows * cols * sizeof(float));
        for (size_t i = 0; i < rows * cols; i++)
            out[i] = random_output();
        const char *id = ids[iter % 4];
        ksv_sb_reset(&sb);
        ksv_v2_encode_infer(&sb, "iris \"m\"", "rev-\xc3\xa9", id, out, rows, cols);
        kt_count_check();
        json_object *root = parse_strict(sb.data, sb.len);
        json_object *v, *outs, *o0, *shape, *data;
        if (!root || !json_object_object_get_ex(root, "outputs", &outs) ||
            json_object_array_length(outs) != 1 || !(o0 = json_object_array_get_idx(outs, 0)) ||
            !json_object_object_get_ex(o0, "shape", &shape) ||
            !json_object_object_get_ex(o0, "data", &data)) {
            KT_FAIL("V2 encode: not the documented JSON: %.200s", sb.data);
            json_object_put(root);
            free(out);
            continue;
        }
        if (!json_object_object_get_ex(root, "model_name", &v) ||
            strcmp(json_object_get_string(v), "iris \"m\"") ||
            !json_object_object_get_ex(root, "model_version", &v) ||
            strcmp(json_object_get_string(v), "rev-\xc3\xa9") ||
            !json_object_object_get_ex(root, "id", &v) || strcmp(json_object_get_string(v), id) ||
            !json_object_object_get_ex(root, "parameters", &v) ||
            !json_object_is_type(v, json_type_object) ||
            !json_object_object_get_ex(o0, "name", &v) ||
            strcmp(json_object_get_string(v), "output-0") ||
            !json_object_object_get_ex(o0, "datatype", &v) ||
            strcmp(json_object_get_string(v), "FP32"))
            KT_FAIL("V2 encode: wrong names/id: %.200s", sb.data);
        size_t want_dims = cols == 1 ? 1 : 2;
        if (json_object_array_length(shape) != want_dims ||
            json_object_get_int64(json_object_array_get_idx(shape, 0)) != (int64_t)rows ||
            (cols > 1 && json_object_get_int64(json_object_array_get_idx(shape, 1)) != (int64_t)cols))
            KT_FAIL("V2 encode: shape wrong for %zux%zu", rows, cols);
        if (json_object_array_length(data) != rows * cols)
            KT_FAIL("V2 encode: data not flat");
        else
            for (size_t i = 0; i < rows * cols; i++)
                if (!value_matches(json_object_array_get_idx(data, i), out[i]))
                    KT_FAIL("V2 encode: value %zu (%.9g) does not read back", i, (double)out[i]);
        json_object_put(root);

        ksv_sb_reset(&sb);
        ksv_v1_encode_predict(&sb, out, rows, cols);
        kt_count_check();
        root = parse_strict(sb.data, sb.len);
        json_object *pred;
        if (!root || !json_object_object_get_ex(root, "predictions", &pred) ||
            json_object_array_length(pred) != rows) {
            KT_FAIL("V1 encode: not the documented JSON: %.200s", sb.data);
        } else {
            for (size_t r = 0; r < rows; r++) {
                json_object *row = json_object_array_get_idx(pred, r);
                if (cols == 1) {
                    if (!value_matches(row, out[r]))
                        KT_FAIL("V1 encode: value %zu does not read back", r);
                } else if (!json_object_is_type(row, json_type_array) ||
                           json_object_array_length(row) != cols) {
                    KT_FAIL("V1 encode: row %zu is not a %zu-array", r, cols);
                } else {
                    for (size_t c = 0; c < cols; c++)
                        if (!value_matches(json_object_array_get_idx(row, c), out[r * cols + c]))
                            KT_FAIL("V1 encode: value [%zu][%zu] does not read back", r, c);
                }
            }
        }
        json_object_put(root);
        values += rows * cols;
        free(out);
    }
    ksv_sb_free(&sb);
    printf("encoders: 300 V2 + 300 V1 responses parse with json-c; %zu values read back "
           "exactly (NaN/Inf as null)\n", values);
}

/* ------------------------------------------------------------------------------------ */
/* 5. KServe's sample request                                                            */

static void test_compat_iris(ksv_tensor_req *req, oracle *o)
{
    const char *path = "/work/shared/compat/kserve-xgboost-iris/iris-input.json";
    const char *env = getenv("KSV_COMPAT_DIR");
    char buf[512];
    if (env) {
        snprintf(buf, sizeof buf, "%s/kserve-xgboost-iris/iris-input.json", env);
        path = buf;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("compat: %s not found, skipped\n", path);
        return;
    }
    char body[4096];
    size_t len = fread(body, 1, sizeof body, f);
    fclose(f);
    check_good("iris-input.json", body, len, true, req, o);
    kt_count_check();
    if (req->ndim != 2 || req->shape[0] != 2 || req->shape[1] != 4 || req->count != 8 ||
        strcmp(req->input_name, "input-0") != 0)
        KT_FAIL("iris-input.json: expected input-0 with shape [2,4]");
    printf("compat: iris-input.json decodes to input-0 [2,4], values equal to json-c\n");
}

int main(void)
{
    ksv_tensor_req req;
    ksv_tensor_req_init(&req);
    oracle o = {0};
    test_good_bodies(&req, &o);
    test_bad_bodies(&req);
    test_mutations(&req, &o);
    test_numbers(&req, &o);
    test_random_bodies(&req, &o);
    test_random_v1(&req, &o);
    test_limits_and_reuse(&req);
    test_encoders();
    test_compat_iris(&req, &o);
    ksv_tensor_req_free(&req);
    free(o.vals);
    return kt_summary("test_v2_codec");
}
