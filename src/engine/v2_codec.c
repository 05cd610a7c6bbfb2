/* v2_codec.c: single-pass JSON decoding of V2 infer / V1 predict bodies into a float tensor,
 * and encoding of the responses.
 *
 * The scanner validates the whole body as RFC 8259 JSON (strings as UTF-8, \u escapes with
 * paired surrogates, no trailing commas, no leading zeros, nesting at most KSV_JSON_MAX_DEPTH)
 * while picking out the few members inference needs. Numbers of `data` go straight into
 * req->data. The values must equal what json-c gives (json_object_get_double, then a cast to
 * float), which the tests check bit for bit; that fixes two details below: an integer token
 * is converted like an int64 (so "-0" is +0.0), and every value goes through double.
 *
 * Decisions worth knowing:
 * - A known member given twice in one object ("inputs", "shape", "data", ...) is a 400; an
 *   unknown one is skipped however often it appears.
 * - Integers beyond the int64/uint64 range are read exactly (json-c saturates them to
 *   INT64_MIN/UINT64_MAX); no real client sends such numbers as features.
 * - A value that becomes infinite as a float (1e39, 1e400) is a 400 "out of range"; values
 *   too small for a float become 0 as in a cast.
 * - BOOL data must be true/false/null; true/false in any other datatype is a 400. INT and
 *   UINT data must be integral and within the datatype's range (1e2 and 3.0 are integral).
 * - A shape with a zero dimension is a 400: there is nothing to predict.
 * - V1 also accepts {"inputs": [...]} with the same meaning as "instances" (KServe's V1
 *   does); giving both is a 400.
 * - Number parsing uses strtod in its rare slow path, so it assumes the C locale for
 *   LC_NUMERIC (the daemon never calls setlocale for numbers). */
#include "engine/v2_codec.h"

#include <float.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "engine/half_float.h"

#define KSV_JSON_MAX_DEPTH 64

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---------------------------------------------------------------------------------------- */
/* Scanner                                                                                  */

typedef struct scanner {
    const char *begin;
    const char *p;
    const char *end;
    int depth;
    ksv_err *err;
} scanner;

/* Destination of a decoded string: stores whole characters while they fit in cap-1 bytes,
 * so a truncated result never ends inside a UTF-8 sequence. buf == NULL only validates. */
typedef struct strout {
    char *buf;
    size_t cap;
    size_t len;
    bool truncated;
    bool has_nul;
} strout;

/* A number token. `d` is the value json-c would give; the rest serves integer checks. */
typedef struct numtok {
    double d;
    bool integer;  /* no fraction and no exponent */
    bool neg;
    bool fits_u64; /* integer whose magnitude fits in mag */
    uint64_t mag;
} numtok;

static int syntax_error(scanner *s, const char *what)
{
    if (s->p >= s->end)
        return ksv_err_set(s->err, 400, "invalid JSON: body ends early (after %zu bytes), %s",
                           (size_t)(s->end - s->begin), what);
    return ksv_err_set(s->err, 400, "invalid JSON at byte %zu: %s", (size_t)(s->p - s->begin),
                       what);
}

static inline void skip_ws(scanner *s)
{
    const char *p = s->p, *end = s->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    s->p = p;
}

/* The next byte, or 0 at the end of the body (0 is never valid JSON outside strings). */
static inline char peek(const scanner *s)
{
    return s->p < s->end ? *s->p : '\0';
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int open_container(scanner *s)
{
    if (++s->depth > KSV_JSON_MAX_DEPTH)
        return syntax_error(s, "nesting deeper than 64 levels");
    s->p++;
    return 0;
}

static int match_literal(scanner *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return syntax_error(s, "invalid literal (expected true, false or null)");
    s->p += n;
    return 0;
}

static void strout_put(strout *o, const char *bytes, size_t n)
{
    if (!o || !o->buf || o->truncated)
        return;
    if (o->len + n > o->cap - 1) {
        o->truncated = true;
        return;
    }
    memcpy(o->buf + o->len, bytes, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

/* s->p is at the opening quote. Decodes into o (may be NULL to only validate). */
static int scan_string(scanner *s, strout *o)
{
    const char *p = s->p + 1, *end = s->end;
    for (;;) {
        const char *run = p;
        while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\' &&
               (unsigned char)*p < 0x80)
            p++;
        if (p > run)
            strout_put(o, run, (size_t)(p - run));
        if (p >= end) {
            s->p = p;
            return syntax_error(s, "unterminated string");
        }
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            s->p = p + 1;
            return 0;
        }
        if (c < 0x20) {
            s->p = p;
            return syntax_error(s, "control character in a string");
        }
        if (c >= 0x80) {
            size_t n = ksv_utf8_seq_len((const unsigned char *)p, (size_t)(end - p));
            if (n == 0) {
                s->p = p;
                return syntax_error(s, "invalid UTF-8 in a string");
            }
            strout_put(o, p, n);
            p += n;
            continue;
        }
        /* backslash */
        if (end - p < 2) {
            s->p = end;
            return syntax_error(s, "unterminated escape");
        }
        char esc = p[1], one;
        switch (esc) {
        case '"': one = '"'; break;
        case '\\': one = '\\'; break;
        case '/': one = '/'; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u': {
            unsigned cp, lowsur;
            if (end - p < 6 || ksv_json_hex4(p + 2, 4, &cp) != 0) {
                s->p = p;
                return syntax_error(s, "invalid \\u escape");
            }
            p += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                s->p = p - 6;
                return syntax_error(s, "unpaired low surrogate in \\u escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || ksv_json_hex4(p + 2, 4, &lowsur) != 0 ||
                    lowsur < 0xDC00 || lowsur > 0xDFFF) {
                    s->p = p - 6;
                    return syntax_error(s, "unpaired high surrogate in \\u escape");
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lowsur - 0xDC00);
            }
            if (cp == 0 && o)
                o->has_nul = true;
            char utf8[4];
            strout_put(o, utf8, ksv_utf8_encode(cp, utf8));
            continue;
        }
        default:
            s->p = p;
            return syntax_error(s, "invalid escape in a string");
        }
        strout_put(o, &one, 1);
        p += 2;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Numbers                                                                                  */

static const double exact_pow10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#if defined(__x86_64__) && LDBL_MANT_DIG == 64 && FLT_EVAL_METHOD == 0
#define KSV_HAVE_X87_PATH 1
/* 10^0..10^27 are exact in the 64-bit significand of x87 long double (5^27 < 2^64). */
static const long double exact_pow10l[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
};

/* m * 10^e10 for up to 19-digit mantissas (clients printing float32 values as doubles send
 * 16-17 digits, beyond Clinger's 2^53). One x87 operation rounds to 64 bits, within half a
 * 64-bit ulp of the exact value; rounding that to double can only differ from rounding the
 * exact value when the 64-bit result sits on a double halfway point (low 11 bits 0x400).
 * Those rare cases return false and go to strtod. */
static bool x87_decimal(uint64_t m, int64_t e10, double *out)
{
    if (e10 < -27 || e10 > 27)
        return false;
    long double x = (long double)m;
    x = e10 < 0 ? x / exact_pow10l[-e10] : x * exact_pow10l[e10];
    uint64_t significand;
    memcpy(&significand, &x, sizeof significand);
    unsigned below_double = (unsigned)(significand & 0x7FF);
    if (below_double >= 0x3FF && below_double <= 0x401)
        return false;
    *out = (double)x;
    return true;
}
#endif

static int slow_strtod(scanner *s, const char *start, const char *stop, double *out)
{
    size_t n = (size_t)(stop - start);
    char small[80];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return ksv_err_set(s->err, 500, "out of memory reading a %zu-character number", n);
    memcpy(buf, start, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return 0;
}

/* Exact magnitude of an integer token of more than 19 digits, when it fits in uint64. */
static bool long_integer_mag(const char *digits, const char *stop, uint64_t *mag)
{
    uint64_t v = 0;
    for (const char *p = digits; p < stop; p++) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return false;
    }
    *mag = v;
    return true;
}

/* s->p is at '-' or a digit. */
static int scan_number(scanner *s, numtok *t)
{
    const char *p = s->p, *end = s->end;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    const char *digits = p;
    uint64_t m = 0;
    int nd = 0;            /* significant digits kept in m, at most 19 */
    int64_t e10 = 0;       /* value = m * 10^e10 (+ dropped digits) */
    bool dropped = false;  /* a nonzero digit beyond the 19th was dropped */

    if (p >= end || !is_digit(*p)) {
        s->p = p;
        return syntax_error(s, "invalid number");
    }
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            s->p = p;
            return syntax_error(s, "leading zero in a number");
        }
    } else {
        do {
            unsigned dg = (unsigned)(*p - '0');
            if (nd < 19) {
                m = m * 10 + dg;
                nd++;
            } else {
                e10++;
                dropped |= dg != 0;
            }
            p++;
        } while (p < end && is_digit(*p));
    }
    const char *int_end = p;
    bool integer = true;
    if (p < end && *p == '.') {
        integer = false;
        p++;
        if (p >= end || !is_digit(*p)) {
            s->p = p;
            return syntax_error(s, "digit expected after '.' in a number");
        }
        do {
            unsigned dg = (unsigned)(*p - '0');
            if (nd == 0 && dg == 0) {
                e10--;
            } else if (nd < 19) {
                m = m * 10 + dg;
                nd++;
                e10--;
            } else {
                dropped |= dg != 0;
            }
            p++;
        } while (p < end && is_digit(*p));
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            s->p = p;
            return syntax_error(s, "digit expected in the exponent of a number");
        }
        int64_t e = 0;
        do {
            if (e < 1000000)
                e = e * 10 + (*p - '0');
            p++;
        } while (p < end && is_digit(*p));
        e10 += eneg ? -e : e;
    }
    s->p = p;
    if (!t)
        return 0;

    t->integer = integer;
    t->neg = neg;
    t->fits_u64 = false;
    if (integer) {
        if (int_end - digits <= 19) {
            t->mag = m;
            t->fits_u64 = true;
        } else {
            t->fits_u64 = long_integer_mag(digits, int_end, &t->mag);
        }
        /* json-c stores an integer as int64 (uint64 when positive and above INT64_MAX),
         * then json_object_get_double casts it: one correct rounding, and no -0. */
        if (t->fits_u64 && (!neg || t->mag <= (uint64_t)1 << 63)) {
            t->d = (double)t->mag;
            if (neg && t->mag)
                t->d = -t->d;
            return 0;
        }
    }

    double d = 0.0;
    if (m == 0) {
        d = 0.0;
    } else if (!dropped && e10 == 0) {
        d = (double)m;
#if FLT_EVAL_METHOD == 0
    } else if (!dropped && m <= (uint64_t)1 << 53 && e10 >= -22 && e10 <= 22) {
        /* Clinger: both operands exact, so the one IEEE operation rounds correctly. */
        d = e10 < 0 ? (double)m / exact_pow10[-e10] : (double)m * exact_pow10[e10];
#endif
#ifdef KSV_HAVE_X87_PATH
    } else if (!dropped && x87_decimal(m, e10, &d)) {
        /* d set */
#endif
    } else {
        if (slow_strtod(s, digits, p, &d) != 0)
            return -1;
    }
    t->d = neg ? -d : d;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Generic traversal                                                                        */

static int skip_value(scanner *s);

/* The step shared by objects and arrays: 0 after the closing `close` (the container is
 * left), 1 with s->p at the next item (past its ',' unless it is the first), -1 on error. */
static int next_item(scanner *s, bool *first, char close, const char *expected)
{
    skip_ws(s);
    char c = peek(s);
    if (c == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    if (!*first) {
        if (c != ',')
            return syntax_error(s, expected);
        s->p++;
        skip_ws(s);
    }
    *first = false;
    return 1;
}

/* Call right after open_container on '{' with *first = true, and again after each member's
 * value. Returns 1 with the member's name in key and s->p at its value, 0 after the closing
 * '}', -1 on error. */
static int next_member(scanner *s, bool *first, strout *key)
{
    int more = next_item(s, first, '}', "expected ',' or '}' in an object");
    if (more <= 0)
        return more;
    if (peek(s) != '"')
        return syntax_error(s, "expected a member name (a string)");
    key->len = 0;
    key->truncated = key->has_nul = false;
    if (key->buf)
        key->buf[0] = '\0';
    if (scan_string(s, key) != 0)
        return -1;
    skip_ws(s);
    if (peek(s) != ':')
        return syntax_error(s, "expected ':' after a member name");
    s->p++;
    skip_ws(s);
    return 1;
}

/* Like next_member for arrays: 1 with s->p at the next element, 0 after ']', -1 on error. */
static int next_element(scanner *s, bool *first)
{
    return next_item(s, first, ']', "expected ',' or ']' in an array");
}

static int skip_value(scanner *s)
{
    skip_ws(s);
    char c = peek(s);
    bool first = true;
    int r;
    switch (c) {
    case '{': {
        if (open_container(s) != 0)
            return -1;
        strout key = {0};
        while ((r = next_member(s, &first, &key)) == 1)
            if (skip_value(s) != 0)
                return -1;
        return r;
    }
    case '[':
        if (open_container(s) != 0)
            return -1;
        while ((r = next_element(s, &first)) == 1)
            if (skip_value(s) != 0)
                return -1;
        return r;
    case '"':
        return scan_string(s, NULL);
    case 't':
        return match_literal(s, "true", 4);
    case 'f':
        return match_literal(s, "false", 5);
    case 'n':
        return match_literal(s, "null", 4);
    default:
        if (c == '-' || is_digit(c))
            return scan_number(s, NULL);
        return syntax_error(s, "expected a value");
    }
}

/* The value ahead must open a `kind` container ('[' or '{'); else it is skipped (so a
 * malformed value is reported as such first) and the error is fmt. Consumes nothing when
 * it matches. */
static int expect_opener(scanner *s, char kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int expect_opener(scanner *s, char kind, const char *fmt, ...)
{
    if (peek(s) == kind)
        return 0;
    if (skip_value(s) != 0)
        return -1;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ksv_err_set(s->err, 400, "%s", what);
}

/* Checks that the body holds nothing but whitespace after the top-level value. */
static int expect_end(scanner *s)
{
    skip_ws(s);
    if (s->p != s->end)
        return syntax_error(s, "unexpected characters after the JSON value");
    return 0;
}

typedef struct keybuf {
    char text[24];
    strout out;
} keybuf;

static void keybuf_init(keybuf *k)
{
    k->out = (strout){.buf = k->text, .cap = sizeof k->text};
    k->text[0] = '\0';
}

static bool key_is(const keybuf *k, const char *name)
{
    return !k->out.truncated && !k->out.has_nul && strcmp(k->text, name) == 0;
}

/* Marks a known member as seen; a second occurrence is a 400. */
static int first_time(scanner *s, unsigned *seen, unsigned bit, const char *where,
                      const char *name)
{
    if (*seen & bit)
        return ksv_err_set(s->err, 400, "%s%s\"%s\" given more than once", where,
                           *where ? ": " : "", name);
    *seen |= bit;
    return 0;
}

/* Reads a string member into buf (cap bytes incl. NUL). Longer values are truncated when
 * `truncate` is set and refused otherwise; an escaped NUL is refused. */
static int read_string_member(scanner *s, const char *what, char *buf, size_t cap,
                              bool truncate)
{
    if (peek(s) != '"')
        return ksv_err_set(s->err, 400, "%s: expected a string", what);
    strout o = {.buf = buf, .cap = cap};
    buf[0] = '\0';
    if (scan_string(s, &o) != 0)
        return -1;
    if (o.has_nul)
        return ksv_err_set(s->err, 400, "%s: must not contain \\u0000", what);
    if (o.truncated && !truncate)
        return ksv_err_set(s->err, 400, "%s: longer than %zu bytes", what, cap - 1);
    return 0;
}

static int skip_object_member(scanner *s, const char *what)
{
    if (peek(s) != '{')
        return ksv_err_set(s->err, 400, "%s: expected an object", what);
    return skip_value(s);
}

/* One member of a "parameters" object that the codec acts on; the others are checked and
 * skipped (unknown parameters are ignored, as the protocol says). */
typedef enum param_kind { PARAM_BOOL, PARAM_SIZE } param_kind;

typedef struct param_pick {
    const char *name;
    param_kind kind;
    bool found;
    bool flag;      /* PARAM_BOOL */
    uint64_t size;  /* PARAM_SIZE: a non-negative integer */
} param_pick;

/* s->p at the value of a "parameters" member named `where` ("inputs[0].parameters"). */
static int read_parameters(scanner *s, const char *where, param_pick *pick)
{
    if (peek(s) != '{')
        return ksv_err_set(s->err, 400, "%s: expected an object", where);
    if (open_container(s) != 0)
        return -1;
    char name[32];
    strout key = {.buf = name, .cap = sizeof name};
    bool first = true;
    int r;
    while ((r = next_member(s, &first, &key)) == 1) {
        bool match = !key.truncated && !key.has_nul && strcmp(name, pick->name) == 0;
        if (!match) {
            if (skip_value(s) != 0)
                return -1;
            continue;
        }
        if (pick->found)
            return ksv_err_set(s->err, 400, "%s: \"%s\" given more than once", where,
                               pick->name);
        pick->found = true;
        char c = peek(s);
        if (pick->kind == PARAM_BOOL) {
            if (c != 't' && c != 'f')
                return ksv_err_set(s->err, 400, "%s.%s: expected true or false", where,
                                   pick->name);
            pick->flag = c == 't';
            if (match_literal(s, pick->flag ? "true" : "false", pick->flag ? 4 : 5) != 0)
                return -1;
        } else {
            numtok t;
            if (c != '-' && !is_digit(c))
                return ksv_err_set(s->err, 400, "%s.%s: expected a number of bytes", where,
                                   pick->name);
            if (scan_number(s, &t) != 0)
                return -1;
            if (!t.integer || (t.neg && t.mag != 0) || !t.fits_u64)
                return ksv_err_set(s->err, 400,
                                   "%s.%s: expected a non-negative integer below 2^64", where,
                                   pick->name);
            pick->size = t.mag;
        }
    }
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Tensor data                                                                              */

typedef ksv_datatype dtype;

typedef struct dtype_info {
    const char *name;
    dtype type;
    uint64_t max_pos;     /* integer types: largest value */
    uint64_t max_neg_mag; /* integer types: magnitude of the smallest value */
} dtype_info;

static const dtype_info dtypes[] = {
    {"FP32", KSV_DT_FP32, 0, 0},
    {"FP64", KSV_DT_FP64, 0, 0},
    {"FP16", KSV_DT_FP16, 0, 0},
    {"BOOL", KSV_DT_BOOL, 0, 0},
    {"INT8", KSV_DT_INT8, INT8_MAX, 128},
    {"INT16", KSV_DT_INT16, INT16_MAX, 32768},
    {"INT32", KSV_DT_INT32, INT32_MAX, (uint64_t)1 << 31},
    {"INT64", KSV_DT_INT64, INT64_MAX, (uint64_t)1 << 63},
    {"UINT8", KSV_DT_UINT8, UINT8_MAX, 0},
    {"UINT16", KSV_DT_UINT16, UINT16_MAX, 0},
    {"UINT32", KSV_DT_UINT32, UINT32_MAX, 0},
    {"UINT64", KSV_DT_UINT64, UINT64_MAX, 0},
};

/* Where decoded values go and under which rules. */
typedef struct data_sink {
    ksv_tensor_req *req;
    size_t max_values;
    const dtype_info *dt;
    const char *where; /* "inputs[0].data" or "instances" */
    size_t stop;       /* min(cap, max_values): store() calls grow() when count reaches it */
} data_sink;

/* Called when count reaches k->stop: refuses past max_values, else makes room. The buffer
 * kept from earlier requests may already be big enough; it then only moves k->stop. */
static int grow(scanner *s, data_sink *k)
{
    ksv_tensor_req *req = k->req;
    if (req->count >= k->max_values)
        return ksv_err_set(s->err, 413, "%s: more than %zu values, the limit of this server",
                           k->where, k->max_values);
    if (req->count >= req->cap) {
        size_t cap = req->cap < 64 ? 64 : req->cap * 2;
        if (cap > k->max_values || cap < req->cap)
            cap = k->max_values;
        if (cap > SIZE_MAX / sizeof(float))
            return ksv_err_set(s->err, 413, "%s: too many values", k->where);
        float *p = realloc(req->data, cap * sizeof(float));
        if (!p)
            return ksv_err_set(s->err, 500, "out of memory for %zu values", cap);
        req->data = p;
        req->cap = cap;
    }
    k->stop = req->cap < k->max_values ? req->cap : k->max_values;
    return 0;
}

int ksv_tensor_req_reserve(ksv_tensor_req *req, size_t n, ksv_err *err)
{
    if (n <= req->cap)
        return 0;
    if (n > SIZE_MAX / sizeof(float))
        return ksv_err_set(err, 500, "out of memory for %zu values", n);
    float *p = realloc(req->data, n * sizeof(float));
    if (!p)
        return ksv_err_set(err, 500, "out of memory for %zu values", n);
    req->data = p;
    req->cap = n;
    return 0;
}

/* Makes room for n values up front (the shape is known before the data). */
static int reserve(scanner *s, ksv_tensor_req *req, size_t n)
{
    return ksv_tensor_req_reserve(req, n, s->err);
}

static inline int store(scanner *s, data_sink *k, float v)
{
    ksv_tensor_req *req = k->req;
    if (UNLIKELY(req->count == k->stop) && grow(s, k) != 0)
        return -1;
    req->data[req->count++] = v;
    return 0;
}

/* The float for a number token under the datatype's rules: 0 with *out set, or -1 with *why
 * saying what is wrong with the value. */
static int number_to_float(const numtok *t, const dtype_info *dt, float *out, const char **why)
{
    if (dt->type == KSV_DT_BOOL) {
        *why = "BOOL data must be true, false or null";
        return -1;
    }
    if (dt->type >= KSV_DT_INT8) {
        if (t->integer) {
            if (!t->fits_u64 || t->mag > (t->neg ? dt->max_neg_mag : dt->max_pos)) {
                if (t->neg && t->mag && dt->max_neg_mag == 0)
                    *why = "negative value for an unsigned datatype";
                else
                    *why = "value out of range for the datatype";
                return -1;
            }
        } else {
            if (t->d != floor(t->d) || !isfinite(t->d)) {
                *why = "not an integer, as the datatype requires";
                return -1;
            }
            /* Both bounds are exact powers of two (or 0) as doubles: max_pos + 1 rounds
             * to 2^63 / 2^64 for the 64-bit types. */
            double lo = -(double)dt->max_neg_mag;
            double hi_excl = (double)dt->max_pos + 1.0;
            if (t->d < lo || t->d >= hi_excl) {
                *why = t->d < 0 && lo == 0 ? "negative value for an unsigned datatype"
                                           : "value out of range for the datatype";
                return -1;
            }
        }
    }
    if (UNLIKELY(dt->type == KSV_DT_FP16)) {
        /* The tensor is declared half precision: its value is the number rounded to half,
         * which is what the binary form of the same tensor carries. */
        uint16_t h = ksv_double_to_half(t->d);
        if ((h & 0x7C00) == 0x7C00) {
            *why = "value out of range for FP16";
            return -1;
        }
        *out = ksv_half_to_float(h);
        return 0;
    }
    float f = (float)t->d;
    if (UNLIKELY(isinf(f))) {
        *why = "value out of range for FP32";
        return -1;
    }
    *out = f;
    return 0;
}

static int value_error(scanner *s, const data_sink *k, const char *why)
{
    return ksv_err_set(s->err, 400, "%s[%zu]: %s", k->where, k->req->count, why);
}

/* Reads one data element at s->p: a number, null, true/false (BOOL) or a nested array. */
static int read_data_value(scanner *s, data_sink *k);

/* s->p at '['. Appends the array's values, flattened in order. */
static int read_data_array(scanner *s, data_sink *k)
{
    if (open_container(s) != 0)
        return -1;
    bool first = true;
    int r;
    while ((r = next_element(s, &first)) == 1)
        if (read_data_value(s, k) != 0)
            return -1;
    return r;
}

static int read_data_value(scanner *s, data_sink *k)
{
    char c = peek(s);
    if (LIKELY(c == '-' || is_digit(c))) {
        numtok t;
        float f;
        const char *why;
        if (scan_number(s, &t) != 0)
            return -1;
        if (number_to_float(&t, k->dt, &f, &why) != 0)
            return value_error(s, k, why);
        return store(s, k, f);
    }
    switch (c) {
    case '[':
        return read_data_array(s, k);
    case 'n':
        if (match_literal(s, "null", 4) != 0)
            return -1;
        return store(s, k, NAN);
    case 't':
    case 'f':
        if (match_literal(s, c == 't' ? "true" : "false", c == 't' ? 4 : 5) != 0)
            return -1;
        if (k->dt->type != KSV_DT_BOOL)
            return value_error(s, k, "true/false need datatype BOOL");
        return store(s, k, c == 't' ? 1.0f : 0.0f);
    case '"':
        if (scan_string(s, NULL) != 0)
            return -1;
        return value_error(s, k, "a string is not a number");
    case '{':
        if (skip_value(s) != 0)
            return -1;
        return value_error(s, k, "expected a number, got an object");
    default:
        return syntax_error(s, "expected a value");
    }
}

/* ---------------------------------------------------------------------------------------- */
/* V2                                                                                       */

enum {
    SEEN_NAME = 1u << 0,
    SEEN_SHAPE = 1u << 1,
    SEEN_DATATYPE = 1u << 2,
    SEEN_DATA = 1u << 3,
    SEEN_PARAMETERS = 1u << 4,
    SEEN_ID = 1u << 5,
    SEEN_INPUTS = 1u << 6,
    SEEN_OUTPUTS = 1u << 7,
};

static void format_shape(const ksv_tensor_req *req, char *buf, size_t cap)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < req->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? "," : "", req->shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

/* Reads "shape" and checks its element count against max_values (before any data). */
static int read_shape(scanner *s, ksv_tensor_req *req, size_t max_values, size_t *product)
{
    static const char bad[] = "inputs[0].shape: expected an array of non-negative integers";
    if (peek(s) != '[')
        return ksv_err_set(s->err, 400, "%s", bad);
    if (open_container(s) != 0)
        return -1;
    bool first = true, overflow = false;
    uint64_t prod = 1;
    int r;
    req->ndim = 0;
    while ((r = next_element(s, &first)) == 1) {
        char c = peek(s);
        numtok t;
        if (c != '-' && !is_digit(c)) {
            if (skip_value(s) != 0)
                return -1;
            return ksv_err_set(s->err, 400, "%s", bad);
        }
        if (scan_number(s, &t) != 0)
            return -1;
        if (!t.integer || (t.neg && t.mag != 0))
            return ksv_err_set(s->err, 400, "%s", bad);
        if (!t.fits_u64 || t.mag > INT64_MAX)
            return ksv_err_set(s->err, 400, "inputs[0].shape: dimension too large");
        if (req->ndim == KSV_MAX_DIMS)
            return ksv_err_set(s->err, 400, "inputs[0].shape: more than %d dimensions",
                               KSV_MAX_DIMS);
        req->shape[req->ndim++] = (int64_t)t.mag;
        if (__builtin_mul_overflow(prod, t.mag, &prod))
            overflow = true;
    }
    if (r < 0)
        return -1;
    if (req->ndim == 0)
        return ksv_err_set(s->err, 400, "inputs[0].shape: needs at least one dimension");
    char shape[160];
    format_shape(req, shape, sizeof shape);
    if (overflow || prod > SIZE_MAX)
        return ksv_err_set(s->err, 400, "inputs[0].shape %s: element count overflows", shape);
    if (prod == 0)
        return ksv_err_set(s->err, 400, "inputs[0].shape %s: the tensor has no elements",
                           shape);
    if (prod > max_values)
        return ksv_err_set(s->err, 413,
                           "inputs[0].shape %s: %" PRIu64 " values, more than the limit of %zu",
                           shape, prod, max_values);
    *product = (size_t)prod;
    return 0;
}

static int read_datatype(scanner *s, const dtype_info **out)
{
    char name[16];
    if (peek(s) != '"')
        return ksv_err_set(s->err, 400, "inputs[0].datatype: expected a string");
    strout o = {.buf = name, .cap = sizeof name};
    name[0] = '\0';
    if (scan_string(s, &o) != 0)
        return -1;
    if (!o.truncated && !o.has_nul) {
        for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
            if (strcmp(name, dtypes[i].name) == 0) {
                *out = &dtypes[i];
                return 0;
            }
        if (strcmp(name, "BYTES") == 0)
            return ksv_err_set(s->err, 400,
                               "inputs[0].datatype: BYTES input not supported by a numeric model");
    }
    return ksv_err_set(s->err, 400,
                       "inputs[0].datatype: unknown datatype \"%.15s%s\" (expected FP32, FP64, "
                       "FP16, BOOL, INT8..INT64 or UINT8..UINT64)",
                       name, o.truncated ? "..." : "");
}

static int read_data(scanner *s, data_sink *k)
{
    if (expect_opener(s, '[', "inputs[0].data: expected an array") != 0)
        return -1;
    return read_data_array(s, k);
}

/* s->p at '{' of inputs[0]. allow_binary: the request has a binary part, so the tensor may
 * announce parameters.binary_data_size instead of carrying "data". */
static int read_tensor(scanner *s, size_t max_values, bool allow_binary, ksv_tensor_req *req)
{
    param_pick binary_size = {.name = "binary_data_size", .kind = PARAM_SIZE};
    static const char where[] = "inputs[0]";
    if (open_container(s) != 0)
        return -1;
    unsigned seen = 0;
    const dtype_info *dt = NULL;
    size_t product = 0;
    const char *deferred_data = NULL; /* "data" that came before "datatype" */
    data_sink sink = {.req = req, .max_values = max_values, .where = "inputs[0].data"};
    keybuf key;
    keybuf_init(&key);
    bool first = true;
    int r;
    while ((r = next_member(s, &first, &key.out)) == 1) {
        if (key_is(&key, "name")) {
            if (first_time(s, &seen, SEEN_NAME, where, "name") != 0 ||
                read_string_member(s, "inputs[0].name", req->input_name,
                                   sizeof req->input_name, false) != 0)
                return -1;
        } else if (key_is(&key, "shape")) {
            if (first_time(s, &seen, SEEN_SHAPE, where, "shape") != 0 ||
                read_shape(s, req, max_values, &product) != 0)
                return -1;
        } else if (key_is(&key, "datatype")) {
            if (first_time(s, &seen, SEEN_DATATYPE, where, "datatype") != 0 ||
                read_datatype(s, &dt) != 0)
                return -1;
        } else if (key_is(&key, "data")) {
            if (first_time(s, &seen, SEEN_DATA, where, "data") != 0)
                return -1;
            if (dt) {
                if (product && reserve(s, req, product) != 0)
                    return -1;
                sink.dt = dt;
                if (read_data(s, &sink) != 0)
                    return -1;
            } else {
                /* The conversion rules depend on the datatype, still unknown: check the
                 * syntax now and decode in a second pass once the object is read. */
                deferred_data = s->p;
                if (skip_value(s) != 0)
                    return -1;
            }
        } else if (key_is(&key, "parameters")) {
            if (first_time(s, &seen, SEEN_PARAMETERS, where, "parameters") != 0 ||
                read_parameters(s, "inputs[0].parameters", &binary_size) != 0)
                return -1;
        } else if (skip_value(s) != 0) {
            return -1;
        }
    }
    if (r < 0)
        return -1;
    if (!(seen & SEEN_NAME))
        return ksv_err_set(s->err, 400, "inputs[0].name: required");
    if (!(seen & SEEN_SHAPE))
        return ksv_err_set(s->err, 400, "inputs[0].shape: required");
    if (!(seen & SEEN_DATATYPE))
        return ksv_err_set(s->err, 400, "inputs[0].datatype: required");
    req->datatype = dt->type;
    if (binary_size.found) {
        if (!allow_binary)
            return ksv_err_set(s->err, 400,
                               "inputs[0].parameters.binary_data_size: binary tensor data "
                               "needs the Inference-Header-Content-Length header");
        if (seen & SEEN_DATA)
            return ksv_err_set(s->err, 400,
                               "inputs[0]: give \"data\" or parameters.binary_data_size, "
                               "not both");
        req->binary_input = true;
        req->binary_size = binary_size.size;
        return 0;
    }
    if (!(seen & SEEN_DATA))
        return ksv_err_set(s->err, 400,
                           allow_binary ? "inputs[0].data: required (or "
                                          "parameters.binary_data_size)"
                                        : "inputs[0].data: required");
    if (deferred_data) {
        scanner again = *s;
        again.p = deferred_data;
        again.depth = s->depth + 1; /* data sat inside this tensor object */
        if (reserve(s, req, product) != 0)
            return -1;
        sink.dt = dt;
        if (read_data(&again, &sink) != 0)
            return -1;
    }
    if (req->count != product) {
        char shape[160];
        format_shape(req, shape, sizeof shape);
        return ksv_err_set(s->err, 400, "inputs[0]: shape %s needs %zu values, data has %zu",
                           shape, product, req->count);
    }
    return 0;
}

static int read_inputs(scanner *s, size_t max_values, bool allow_binary, ksv_tensor_req *req)
{
    if (expect_opener(s, '[', "inputs: expected an array of tensors") != 0 ||
        open_container(s) != 0)
        return -1;
    bool first = true;
    size_t n = 0;
    int r;
    while ((r = next_element(s, &first)) == 1) {
        if (n == 0) {
            if (expect_opener(s, '{', "inputs[0]: expected a tensor object") != 0 ||
                read_tensor(s, max_values, allow_binary, req) != 0)
                return -1;
        } else if (skip_value(s) != 0) {
            return -1;
        }
        n++;
    }
    if (r < 0)
        return -1;
    if (n == 0)
        return ksv_err_set(s->err, 400, "inputs: empty; exactly one input tensor is required");
    if (n > 1)
        return ksv_err_set(s->err, 400,
                           "inputs: %zu tensors given; this model takes exactly one", n);
    return 0;
}

static int read_outputs(scanner *s, ksv_tensor_req *req)
{
    if (expect_opener(s, '[', "outputs: expected an array of {\"name\": ...} objects") != 0 ||
        open_container(s) != 0)
        return -1;
    bool first = true;
    int r;
    while ((r = next_element(s, &first)) == 1) {
        int i = req->n_outputs;
        if (i == KSV_MAX_REQUESTED_OUTPUTS)
            return ksv_err_set(s->err, 400, "outputs: more than %d requested outputs",
                               KSV_MAX_REQUESTED_OUTPUTS);
        if (expect_opener(s, '{', "outputs[%d]: expected an object", i) != 0 ||
            open_container(s) != 0)
            return -1;
        char what[32];
        snprintf(what, sizeof what, "outputs[%d]", i);
        char what_name[40];
        snprintf(what_name, sizeof what_name, "outputs[%d].name", i);
        unsigned seen = 0;
        keybuf key;
        keybuf_init(&key);
        bool ofirst = true;
        int orr;
        while ((orr = next_member(s, &ofirst, &key.out)) == 1) {
            if (key_is(&key, "name")) {
                if (first_time(s, &seen, SEEN_NAME, what, "name") != 0 ||
                    read_string_member(s, what_name, req->outputs[i], sizeof req->outputs[i],
                                       false) != 0)
                    return -1;
            } else if (key_is(&key, "parameters")) {
                char what_params[48];
                snprintf(what_params, sizeof what_params, "outputs[%d].parameters", i);
                param_pick binary = {.name = "binary_data", .kind = PARAM_BOOL};
                if (first_time(s, &seen, SEEN_PARAMETERS, what, "parameters") != 0 ||
                    read_parameters(s, what_params, &binary) != 0)
                    return -1;
                req->output_binary[i] = binary.found ? (signed char)binary.flag : -1;
            } else if (skip_value(s) != 0) {
                return -1;
            }
        }
        if (orr < 0)
            return -1;
        if (!(seen & SEEN_NAME))
            return ksv_err_set(s->err, 400, "%s: required", what_name);
        if (!(seen & SEEN_PARAMETERS))
            req->output_binary[i] = -1;
        req->n_outputs++;
    }
    return r;
}

static void req_reset(ksv_tensor_req *req)
{
    req->id[0] = '\0';
    req->has_id = false;
    req->input_name[0] = '\0';
    req->ndim = 0;
    req->count = 0;
    req->n_outputs = 0;
    req->datatype = KSV_DT_NONE;
    req->binary_input = false;
    req->binary_size = 0;
    req->binary_output_all = false;
}

static int begin_body(scanner *s, const char *body, size_t len, ksv_err *err)
{
    *s = (scanner){.begin = body, .p = body, .end = body + len, .depth = 0, .err = err};
    if (!body || len == 0)
        return ksv_err_set(err, 400, "empty body; expected a JSON object");
    skip_ws(s);
    if (peek(s) != '{') {
        if (s->p >= s->end)
            return ksv_err_set(err, 400, "empty body; expected a JSON object");
        if (skip_value(s) != 0)
            return -1;
        return ksv_err_set(err, 400, "the body must be a JSON object");
    }
    return open_container(s);
}

static int decode_v2(const char *body, size_t len, size_t max_values, bool allow_binary,
                     ksv_tensor_req *req, ksv_err *err)
{
    scanner s;
    req_reset(req);
    if (begin_body(&s, body, len, err) != 0)
        goto fail;
    unsigned seen = 0;
    keybuf key;
    keybuf_init(&key);
    bool first = true;
    int r;
    while ((r = next_member(&s, &first, &key.out)) == 1) {
        int rc;
        if (key_is(&key, "id")) {
            rc = first_time(&s, &seen, SEEN_ID, "", "id");
            if (rc == 0)
                rc = read_string_member(&s, "id", req->id, sizeof req->id, true);
            req->has_id = rc == 0;
        } else if (key_is(&key, "inputs")) {
            rc = first_time(&s, &seen, SEEN_INPUTS, "", "inputs");
            if (rc == 0)
                rc = read_inputs(&s, max_values, allow_binary, req);
        } else if (key_is(&key, "outputs")) {
            rc = first_time(&s, &seen, SEEN_OUTPUTS, "", "outputs");
            if (rc == 0)
                rc = read_outputs(&s, req);
        } else if (key_is(&key, "parameters")) {
            param_pick binary = {.name = "binary_data_output", .kind = PARAM_BOOL};
            rc = first_time(&s, &seen, SEEN_PARAMETERS, "", "parameters");
            if (rc == 0)
                rc = read_parameters(&s, "parameters", &binary);
            req->binary_output_all = binary.found && binary.flag;
        } else {
            rc = skip_value(&s);
        }
        if (rc != 0)
            goto fail;
    }
    if (r < 0 || expect_end(&s) != 0)
        goto fail;
    if (!(seen & SEEN_INPUTS)) {
        ksv_err_set(err, 400, "inputs: required");
        goto fail;
    }
    return 0;
fail:
    req->count = 0;
    req->binary_input = false;
    return -1;
}

int ksv_v2_decode_infer(const char *body, size_t len, size_t max_values, ksv_tensor_req *req,
                        ksv_err *err)
{
    return decode_v2(body, len, max_values, false, req, err);
}

int ksv_v2_decode_infer_header(const char *json, size_t len, size_t max_values,
                               ksv_tensor_req *req, ksv_err *err)
{
    return decode_v2(json, len, max_values, true, req, err);
}

bool ksv_v2_wants_binary_output(const ksv_tensor_req *req)
{
    for (int i = 0; i < req->n_outputs; i++)
        if (strcmp(req->outputs[i], "output-0") == 0 && req->output_binary[i] >= 0)
            return req->output_binary[i] == 1;
    return req->binary_output_all;
}

size_t ksv_datatype_size(ksv_datatype dt)
{
    switch (dt) {
    case KSV_DT_BOOL:
    case KSV_DT_INT8:
    case KSV_DT_UINT8:
        return 1;
    case KSV_DT_FP16:
    case KSV_DT_INT16:
    case KSV_DT_UINT16:
        return 2;
    case KSV_DT_FP32:
    case KSV_DT_INT32:
    case KSV_DT_UINT32:
        return 4;
    case KSV_DT_FP64:
    case KSV_DT_INT64:
    case KSV_DT_UINT64:
        return 8;
    case KSV_DT_NONE:
        break;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* V1                                                                                       */

static const dtype_info v1_dtype = {"FP32", KSV_DT_FP32, 0, 0};

static int v1_value(scanner *s, data_sink *k, size_t row, size_t col, bool in_row)
{
    char c = peek(s);
    char where[64];
    if (c == '-' || is_digit(c)) {
        numtok t;
        float f;
        const char *why;
        if (scan_number(s, &t) != 0)
            return -1;
        if (number_to_float(&t, k->dt, &f, &why) == 0)
            return store(s, k, f);
        if (in_row)
            snprintf(where, sizeof where, "instances[%zu][%zu]", row, col);
        else
            snprintf(where, sizeof where, "instances[%zu]", row);
        return ksv_err_set(s->err, 400, "%s: %s", where, why);
    }
    if (c == 'n') {
        if (match_literal(s, "null", 4) != 0)
            return -1;
        return store(s, k, NAN);
    }
    if (skip_value(s) != 0)
        return -1;
    if (in_row)
        return ksv_err_set(s->err, 400, "instances[%zu][%zu]: expected a number or null", row,
                           col);
    return ksv_err_set(s->err, 400,
                       "instances[%zu]: expected a row (an array of numbers) or a number", row);
}

static int read_instances(scanner *s, size_t max_values, ksv_tensor_req *req)
{
    if (expect_opener(s, '[', "instances: expected an array of rows") != 0 ||
        open_container(s) != 0)
        return -1;
    data_sink sink = {.req = req, .max_values = max_values, .dt = &v1_dtype,
                      .where = "instances"};
    enum { UNKNOWN, SCALARS, ROWS } kind = UNKNOWN;
    size_t rows = 0, cols = 0;
    bool first = true;
    int r;
    while ((r = next_element(s, &first)) == 1) {
        if (peek(s) == '[') {
            if (kind == SCALARS)
                return ksv_err_set(s->err, 400,
                                   "instances[%zu]: a row among numbers; send all rows or "
                                   "all numbers", rows);
            kind = ROWS;
            if (open_container(s) != 0)
                return -1;
            bool rfirst = true;
            size_t n = 0;
            int rr;
            while ((rr = next_element(s, &rfirst)) == 1) {
                if (v1_value(s, &sink, rows, n, true) != 0)
                    return -1;
                n++;
            }
            if (rr < 0)
                return -1;
            if (n == 0)
                return ksv_err_set(s->err, 400, "instances[%zu]: empty row", rows);
            if (rows == 0)
                cols = n;
            else if (n != cols)
                return ksv_err_set(s->err, 400,
                                   "instances[%zu] has %zu values, instances[0] has %zu", rows,
                                   n, cols);
        } else {
            if (kind == ROWS) {
                if (skip_value(s) != 0)
                    return -1;
                return ksv_err_set(s->err, 400,
                                   "instances[%zu]: expected a row like instances[0]", rows);
            }
            kind = SCALARS;
            if (v1_value(s, &sink, rows, 0, false) != 0)
                return -1;
            cols = 1;
        }
        rows++;
    }
    if (r < 0)
        return -1;
    if (rows == 0)
        return ksv_err_set(s->err, 400, "instances: empty; send at least one row");
    req->ndim = 2;
    req->shape[0] = (int64_t)rows;
    req->shape[1] = (int64_t)cols;
    return 0;
}

int ksv_v1_decode_predict(const char *body, size_t len, size_t max_values, ksv_tensor_req *req,
                          ksv_err *err)
{
    scanner s;
    req_reset(req);
    if (begin_body(&s, body, len, err) != 0)
        goto fail;
    bool have_rows = false;
    unsigned seen = 0;
    keybuf key;
    keybuf_init(&key);
    bool first = true;
    int r;
    while ((r = next_member(&s, &first, &key.out)) == 1) {
        int rc;
        bool instances = key_is(&key, "instances");
        if (instances || key_is(&key, "inputs")) {
            if (have_rows) {
                ksv_err_set(err, 400, "give \"instances\" once (\"inputs\" is an alias)");
                goto fail;
            }
            have_rows = true;
            rc = read_instances(&s, max_values, req);
        } else if (key_is(&key, "parameters")) {
            rc = first_time(&s, &seen, SEEN_PARAMETERS, "", "parameters");
            if (rc == 0)
                rc = skip_object_member(&s, "parameters");
        } else {
            rc = skip_value(&s);
        }
        if (rc != 0)
            goto fail;
    }
    if (r < 0 || expect_end(&s) != 0)
        goto fail;
    if (!have_rows) {
        ksv_err_set(err, 400, "instances: required");
        goto fail;
    }
    return 0;
fail:
    req->count = 0;
    req->ndim = 0;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Requests and responses                                                                   */

void ksv_tensor_req_init(ksv_tensor_req *req)
{
    memset(req, 0, sizeof *req);
    req->data = NULL;
}

void ksv_tensor_req_free(ksv_tensor_req *req)
{
    free(req->data);
    ksv_tensor_req_init(req);
}

static void put_values(ksv_sb *sb, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        ksv_sb_json_float(sb, v[i]);
    }
}

/* Everything of a V2 answer up to output-0's "data" or "parameters". */
static void put_infer_head(ksv_sb *sb, const char *model, const char *revision, const char *id,
                           size_t rows, size_t cols)
{
    ksv_sb_puts(sb, "{\"model_name\":");
    ksv_sb_json_str(sb, model ? model : "");
    ksv_sb_puts(sb, ",\"model_version\":");
    ksv_sb_json_str(sb, revision ? revision : "");
    ksv_sb_puts(sb, ",\"id\":");
    ksv_sb_json_str(sb, id ? id : "");
    ksv_sb_puts(sb, ",\"parameters\":{},\"outputs\":[{\"name\":\"output-0\","
                    "\"datatype\":\"FP32\",\"shape\":[");
    ksv_sb_u64(sb, rows);
    if (cols != 1) {
        ksv_sb_putc(sb, ',');
        ksv_sb_u64(sb, cols);
    }
    ksv_sb_puts(sb, "],");
}

void ksv_v2_encode_infer(ksv_sb *sb, const char *model, const char *revision, const char *id,
                         const float *out, size_t rows, size_t cols)
{
    ksv_sb_reserve(sb, 200 + rows * cols * 14);
    put_infer_head(sb, model, revision, id, rows, cols);
    ksv_sb_puts(sb, "\"data\":[");
    put_values(sb, out, rows * cols);
    ksv_sb_puts(sb, "]}]}");
}

void ksv_v2_encode_infer_binary(ksv_sb *sb, const char *model, const char *revision,
                                const char *id, const float *out, size_t rows, size_t cols,
                                size_t *header_len)
{
    size_t n = rows * cols;
    ksv_sb_reserve(sb, 240 + n * sizeof(float));
    size_t start = sb->len;
    put_infer_head(sb, model, revision, id, rows, cols);
    ksv_sb_puts(sb, "\"parameters\":{\"binary_data_size\":");
    ksv_sb_u64(sb, n * sizeof(float));
    ksv_sb_puts(sb, "}}]}");
    *header_len = sb->len - start;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    ksv_sb_append(sb, (const char *)out, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &out[i], sizeof u);
        char le[4] = {(char)u, (char)(u >> 8), (char)(u >> 16), (char)(u >> 24)};
        ksv_sb_append(sb, le, sizeof le);
    }
#endif
}

void ksv_v1_encode_predict(ksv_sb *sb, const float *out, size_t rows, size_t cols)
{
    ksv_sb_reserve(sb, 32 + rows * (cols * 14 + 3));
    ksv_sb_puts(sb, "{\"predictions\":[");
    for (size_t r = 0; r < rows; r++) {
        if (r)
            ksv_sb_putc(sb, ',');
        if (cols == 1) {
            ksv_sb_json_float(sb, out[r]);
        } else {
            ksv_sb_putc(sb, '[');
            put_values(sb, out + r * cols, cols);
            ksv_sb_putc(sb, ']');
        }
    }
    ksv_sb_puts(sb, "]}");
}
