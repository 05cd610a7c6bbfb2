/* ubjson.c: UBJSON (ubjson.org, draft 12, as written by XGBoost) into json-c objects. */
#include "engine/ubjson.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Nesting deeper than this is not an XGBoost model; refusing it keeps recursion bounded. */
#define UBJ_MAX_DEPTH 64
/* Values a document may hold beyond one per byte: every value XGBoost writes takes at
 * least one byte, but typed containers of Z, T or F elements take none, so a 1.8 KB file
 * of nested "[$T#l<2^24>" once made 3.5 GB of json-c objects before running out of memory
 * (issue 11, finding 3). The budget makes the tree proportional to the file. */
#define UBJ_VALUES_SLACK 4096

typedef struct ubj_reader {
    const unsigned char *p;
    const unsigned char *end;
    ksv_err *err;
    size_t values_left;           /* the document's budget, counted down per value */
    size_t doc_len;
} ubj_reader;

static size_t ubj_left(const ubj_reader *r) { return (size_t)(r->end - r->p); }

static int ubj_byte(ubj_reader *r, unsigned char *out)
{
    if (r->p >= r->end)
        return ksv_err_set(r->err, 400, "ubjson: unexpected end of data");
    *out = *r->p++;
    return 0;
}

static uint64_t ubj_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static size_t ubj_scalar_size(unsigned char type)
{
    switch (type) {
    case 'i': case 'U': case 'C': return 1;
    case 'I': return 2;
    case 'l': case 'd': return 4;
    case 'L': case 'D': return 8;
    case 'Z': case 'N': case 'T': case 'F': return 0;
    default: return SIZE_MAX;
    }
}

/* Reads a fixed-size scalar of `type` as an integer (for lengths and counts). */
static int ubj_read_int(ubj_reader *r, unsigned char type, int64_t *out)
{
    size_t n = ubj_scalar_size(type);
    if (type != 'i' && type != 'U' && type != 'I' && type != 'l' && type != 'L')
        return ksv_err_set(r->err, 400, "ubjson: expected an integer type, got 0x%02x", type);
    if (ubj_left(r) < n)
        return ksv_err_set(r->err, 400, "ubjson: unexpected end of data");
    uint64_t raw = ubj_be(r->p, n);
    r->p += n;
    switch (type) {
    case 'i': *out = (int8_t)raw; break;
    case 'U': *out = (uint8_t)raw; break;
    case 'I': *out = (int16_t)raw; break;
    case 'l': *out = (int32_t)raw; break;
    default: *out = (int64_t)raw; break;
    }
    return 0;
}

/* A length or count: an integer marker, then a non-negative value that fits what is left. */
static int ubj_read_length(ubj_reader *r, size_t min_bytes_each, size_t *out)
{
    unsigned char type = 0;
    int64_t v = 0;
    if (ubj_byte(r, &type) < 0 || ubj_read_int(r, type, &v) < 0)
        return -1;
    if (v < 0)
        return ksv_err_set(r->err, 400, "ubjson: negative length");
    if (min_bytes_each > 0 && (uint64_t)v > ubj_left(r) / min_bytes_each)
        return ksv_err_set(r->err, 400, "ubjson: length %lld exceeds the data", (long long)v);
    *out = (size_t)v;
    return 0;
}

static json_object *ubj_value(ubj_reader *r, unsigned char type, int depth);

static json_object *ubj_scalar(ubj_reader *r, unsigned char type)
{
    size_t n = ubj_scalar_size(type);
    if (ubj_left(r) < n) {
        ksv_err_set(r->err, 400, "ubjson: unexpected end of data");
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    switch (type) {
    case 'i': return json_object_new_int64((int8_t)p[0]);
    case 'U': return json_object_new_int64(p[0]);
    case 'I': return json_object_new_int64((int16_t)ubj_be(p, 2));
    case 'l': return json_object_new_int64((int32_t)ubj_be(p, 4));
    case 'L': return json_object_new_int64((int64_t)ubj_be(p, 8));
    case 'd': {
        uint32_t bits = (uint32_t)ubj_be(p, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return json_object_new_double(f);
    }
    case 'D': {
        uint64_t bits = ubj_be(p, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        return json_object_new_double(d);
    }
    case 'C': {
        char s[2] = {(char)p[0], 0};
        return json_object_new_string_len(s, 1);
    }
    case 'T': return json_object_new_boolean(1);
    case 'F': return json_object_new_boolean(0);
    default: break;
    }
    ksv_err_set(r->err, 400, "ubjson: unknown type marker 0x%02x", type);
    return NULL;
}

static json_object *ubj_string(ubj_reader *r)
{
    size_t n;
    if (ubj_read_length(r, 1, &n) < 0)
        return NULL;
    json_object *s = json_object_new_string_len((const char *)r->p, (int)n);
    r->p += n;
    return s;
}

/* After '[' or '{': optional "$T" element type and "#N" count (a type requires a count). */
static int ubj_container_header(ubj_reader *r, unsigned char *elem_type, int *counted, size_t *count)
{
    *elem_type = 0;
    *counted = 0;
    if (ubj_left(r) > 0 && *r->p == '$') {
        r->p++;
        if (ubj_byte(r, elem_type) < 0)
            return -1;
        if (ubj_left(r) == 0 || *r->p != '#')
            return ksv_err_set(r->err, 400, "ubjson: typed container without a count");
    }
    if (ubj_left(r) > 0 && *r->p == '#') {
        r->p++;
        size_t each = 1;
        if (*elem_type) {
            size_t sz = ubj_scalar_size(*elem_type);
            each = sz == SIZE_MAX ? 1 : sz;
        }
        /* Zero-size elements (Z, T, F) do not consume data; cap their count separately. */
        if (each == 0) {
            if (ubj_read_length(r, 0, count) < 0)
                return -1;
            if (*count > (size_t)1 << 24)
                return ksv_err_set(r->err, 400, "ubjson: container count too large");
        } else if (ubj_read_length(r, each, count) < 0) {
            return -1;
        }
        *counted = 1;
    }
    return 0;
}

static json_object *ubj_array(ubj_reader *r, int depth)
{
    unsigned char elem_type;
    int counted;
    size_t count = 0;
    if (ubj_container_header(r, &elem_type, &counted, &count) < 0)
        return NULL;
    json_object *arr = json_object_new_array_ext(counted ? (int)(count ? count : 1) : 8);
    if (!arr) {
        ksv_err_set(r->err, 500, "ubjson: out of memory");
        return NULL;
    }
    for (size_t i = 0;; i++) {
        unsigned char type = 0;
        if (counted) {
            if (i == count)
                break;
            if (elem_type)
                type = elem_type;
            else if (ubj_byte(r, &type) < 0)
                goto fail;
        } else {
            if (ubj_byte(r, &type) < 0)
                goto fail;
            if (type == ']')
                break;
            if (type == 'N')
                continue;
        }
        json_object *v = ubj_value(r, type, depth + 1);
        if (!v && type != 'Z')
            goto fail;
        json_object_array_add(arr, v);
    }
    return arr;
fail:
    json_object_put(arr);
    return NULL;
}

static json_object *ubj_object(ubj_reader *r, int depth)
{
    unsigned char elem_type;
    int counted;
    size_t count = 0;
    if (ubj_container_header(r, &elem_type, &counted, &count) < 0)
        return NULL;
    json_object *obj = json_object_new_object();
    if (!obj) {
        ksv_err_set(r->err, 500, "ubjson: out of memory");
        return NULL;
    }
    for (size_t i = 0;; i++) {
        if (counted) {
            if (i == count)
                break;
        } else {
            if (ubj_left(r) == 0) {
                ksv_err_set(r->err, 400, "ubjson: unexpected end of data in an object");
                goto fail;
            }
            if (*r->p == '}') {
                r->p++;
                break;
            }
            if (*r->p == 'N') {
                r->p++;
                continue;
            }
        }
        /* Keys are strings without the 'S' marker: a length, then the bytes. */
        size_t klen;
        if (ubj_read_length(r, 1, &klen) < 0)
            goto fail;
        char key[256];
        if (klen >= sizeof key) {
            ksv_err_set(r->err, 400, "ubjson: object key of %zu bytes is too long", klen);
            goto fail;
        }
        memcpy(key, r->p, klen);
        key[klen] = 0;
        r->p += klen;
        unsigned char type = elem_type;
        if (!type && ubj_byte(r, &type) < 0)
            goto fail;
        json_object *v = ubj_value(r, type, depth + 1);
        if (!v && type != 'Z')
            goto fail;
        json_object_object_add(obj, key, v);
    }
    return obj;
fail:
    json_object_put(obj);
    return NULL;
}

static json_object *ubj_value(ubj_reader *r, unsigned char type, int depth)
{
    if (depth > UBJ_MAX_DEPTH) {
        ksv_err_set(r->err, 400, "ubjson: nesting deeper than %d", UBJ_MAX_DEPTH);
        return NULL;
    }
    if (r->values_left == 0) {
        ksv_err_set(r->err, 400,
                    "ubjson: more values than a %zu-byte document can hold (at most one per "
                    "byte, plus %d)", r->doc_len, UBJ_VALUES_SLACK);
        return NULL;
    }
    r->values_left--;
    switch (type) {
    case '[': return ubj_array(r, depth);
    case '{': return ubj_object(r, depth);
    case 'S': return ubj_string(r);
    case 'H': return ubj_string(r); /* high-precision number: kept as its decimal text */
    case 'Z': {
        /* json-c represents null as a NULL object: keep errors distinguishable by clearing. */
        ksv_err_clear(r->err);
        return NULL;
    }
    default: break;
    }
    if (ubj_scalar_size(type) == SIZE_MAX || type == 'N') {
        ksv_err_set(r->err, 400, "ubjson: unknown type marker 0x%02x", type);
        return NULL;
    }
    return ubj_scalar(r, type);
}

json_object *ksv_ubjson_parse(const unsigned char *data, size_t len, ksv_err *err)
{
    ubj_reader r = {data, data + len, err, len + UBJ_VALUES_SLACK, len};
    unsigned char type = 0;
    if (ubj_byte(&r, &type) < 0)
        return NULL;
    if (type != '{' && type != '[') {
        ksv_err_set(err, 400, "ubjson: document does not start with an object");
        return NULL;
    }
    json_object *root = ubj_value(&r, type, 0);
    if (!root)
        return NULL;
    if (r.p != r.end) {
        json_object_put(root);
        ksv_err_set(err, 400, "ubjson: %zu trailing bytes after the document", ubj_left(&r));
        return NULL;
    }
    return root;
}
