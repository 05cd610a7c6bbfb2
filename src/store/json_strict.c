/* json_strict.c: an RFC 8259 syntax check. json-c, even in strict mode, accepts single-quoted
 * strings and raw control characters; the store keeps only JSON that every consumer of
 * `ksv ... -o json` can read, so it checks the text itself before json-c builds the tree. */
#include <string.h>

#include "common/utf8.h"
#include "store/store_internal.h"

/* json-c refuses deeper nesting anyway; stopping here bounds the recursion. */
#define JSON_MAX_DEPTH 32

typedef struct json_cursor {
    const unsigned char *p;
    const unsigned char *end;
} json_cursor;

static void skip_ws(json_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static bool string(json_cursor *c)
{
    if (c->p >= c->end || *c->p != '"')
        return false;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20)
            return false;
        if (ch == '\\') {
            if (c->p + 1 >= c->end)
                return false;
            unsigned char esc = c->p[1];
            if (esc == 'u') {
                if (c->end - c->p < 6 || !is_hex(c->p[2]) || !is_hex(c->p[3]) ||
                    !is_hex(c->p[4]) || !is_hex(c->p[5]))
                    return false;
                c->p += 6;
            } else if (esc && strchr("\"\\/bfnrt", esc)) {
                c->p += 2;
            } else {
                return false;
            }
        } else if (ch >= 0x80) {
            size_t n = ksv_utf8_seq_len(c->p, (size_t)(c->end - c->p));
            if (n == 0)
                return false;
            c->p += n;
        } else {
            c->p++;
        }
    }
    return false;
}

static bool digits(json_cursor *c)
{
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > start;
}

static bool number(json_cursor *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (!digits(c))
        return false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digits(c))
            return false;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!digits(c))
            return false;
    }
    return true;
}

static bool literal(json_cursor *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool value(json_cursor *c, int depth)
{
    skip_ws(c);
    if (c->p >= c->end)
        return false;
    switch (*c->p) {
    case '"':
        return string(c);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    case '[':
    case '{': {
        bool object = *c->p == '{';
        char close = object ? '}' : ']';
        if (depth >= JSON_MAX_DEPTH)
            return false;
        c->p++;
        skip_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return true;
        }
        for (;;) {
            if (object) {
                skip_ws(c);
                if (!string(c))
                    return false;
                skip_ws(c);
                if (c->p >= c->end || *c->p != ':')
                    return false;
                c->p++;
            }
            if (!value(c, depth + 1))
                return false;
            skip_ws(c);
            if (c->p >= c->end)
                return false;
            if (*c->p == close) {
                c->p++;
                return true;
            }
            if (*c->p != ',')
                return false;
            c->p++;
        }
    }
    default:
        return number(c);
    }
}

bool store_json_is_strict(const char *text)
{
    if (!text)
        return false;
    json_cursor c = {(const unsigned char *)text,
                     (const unsigned char *)text + strlen(text)};
    if (!value(&c, 0))
        return false;
    skip_ws(&c);
    return c.p == c.end;
}
