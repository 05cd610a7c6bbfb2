/* manifest_json.c: JSON text (one value, or several one after another as kubectl accepts)
 * to the positioned document tree.
 *
 * json-c is the judge of syntax: each value is first checked with its strict tokener, and
 * its complaint is reported at the line and column where it stopped. json-c keeps no
 * positions and silently keeps the last of duplicate keys, so a small reader below then
 * walks the same, now known-good, text to build the tree with positions and to refuse
 * duplicate keys as the YAML reader does. */
#include "common/manifest_tree.h"
#include "common/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jreader {
    const char *s;
    size_t len, pos;
    int line;
    size_t line_start;
    const char *name;
    ksv_err *err;
    size_t budget;
} jreader;

static int col_of(const jreader *r)
{
    return (int)(r->pos - r->line_start) + 1;
}

static int fail_here(jreader *r, const char *what, const char *detail)
{
    return ksv_err_set(r->err, 400, "%s:%d:%d: %s%s", r->name, r->line, col_of(r), what,
                       detail ? detail : "");
}

static void skip_ws(jreader *r)
{
    while (r->pos < r->len) {
        char c = r->s[r->pos];
        if (c == '\n') {
            r->line++;
            r->line_start = r->pos + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            break;
        }
        r->pos++;
    }
}

/* Reads a string literal at r->pos (on the opening quote); returns it decoded, or NULL. */
static char *read_string(jreader *r)
{
    r->pos++; /* opening quote */
    size_t start = r->pos;
    while (r->pos < r->len && r->s[r->pos] != '"')
        r->pos += r->s[r->pos] == '\\' ? 2 : 1;
    if (r->pos >= r->len) {
        fail_here(r, "unterminated string", NULL);
        return NULL;
    }
    size_t end = r->pos;
    r->pos++; /* closing quote */
    /* Decoded text is never longer than the escaped text. */
    char *out = malloc(end - start + 1);
    if (!out) {
        ksv_err_set(r->err, 500, "%s: out of memory reading JSON", r->name);
        return NULL;
    }
    size_t n = 0;
    for (size_t k = start; k < end; k++) {
        char c = r->s[k];
        if (c != '\\') {
            out[n++] = c;
            continue;
        }
        char e = r->s[++k];
        switch (e) {
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, low;
            if (ksv_json_hex4(r->s + k + 1, end - k - 1, &cp) != 0)
                goto bad_escape;
            k += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && k + 6 < end && r->s[k + 1] == '\\' &&
                r->s[k + 2] == 'u' && ksv_json_hex4(r->s + k + 3, end - k - 3, &low) == 0 &&
                low >= 0xDC00 && low <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                k += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD; /* a lone surrogate, as json-c does */
            }
            if (cp == 0) {
                free(out);
                fail_here(r, "a NUL character inside a string is not supported", NULL);
                return NULL;
            }
            n += ksv_utf8_encode(cp, out + n);
            break;
        }
        default:
            out[n++] = e; /* \" \\ \/ */
            break;
        }
    }
    out[n] = '\0';
    return out;
bad_escape:
    free(out);
    fail_here(r, "bad \\u escape in string", NULL);
    return NULL;
}

static mnode *read_value(jreader *r, int depth);

static mnode *new_node(jreader *r, mn_type type)
{
    if (r->budget == 0) {
        fail_here(r, "document has too many nodes", NULL);
        return NULL;
    }
    r->budget--;
    mnode *node = mn_new(type, r->line, col_of(r));
    if (!node)
        ksv_err_set(r->err, 500, "%s: out of memory reading JSON", r->name);
    return node;
}

/* After an element of an object or array: 0 at ',' (another follows), 1 at `close` (the
 * container ends), -1 with the error set otherwise. Consumes what it read. */
static int after_element(jreader *r, char close)
{
    skip_ws(r);
    if (r->pos < r->len && (r->s[r->pos] == ',' || r->s[r->pos] == close))
        return r->s[r->pos++] == close;
    fail_here(r, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'", NULL);
    return -1;
}

static mnode *read_object(jreader *r, int depth)
{
    mnode *map = new_node(r, MN_MAP);
    if (!map)
        return NULL;
    r->pos++; /* { */
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == '}') {
        r->pos++;
        return map;
    }
    for (;;) {
        skip_ws(r);
        if (r->pos >= r->len || r->s[r->pos] != '"') {
            fail_here(r, "expected a string key", NULL);
            goto fail;
        }
        int key_line = r->line, key_col = col_of(r);
        char *key = read_string(r);
        if (!key)
            goto fail;
        mn_entry *previous = mn_map_find(map, key);
        if (previous) {
            ksv_err_set(r->err, 400, "%s:%d:%d: duplicate key \"%s\" (first at line %d)", r->name,
                        key_line, key_col, key, previous->line);
            free(key);
            goto fail;
        }
        skip_ws(r);
        if (r->pos >= r->len || r->s[r->pos] != ':') {
            free(key);
            fail_here(r, "expected ':'", NULL);
            goto fail;
        }
        r->pos++;
        skip_ws(r);
        mnode *value = read_value(r, depth + 1);
        if (!value) {
            free(key);
            goto fail;
        }
        if (!mn_map_add(map, key, key_line, key_col, value)) {
            ksv_err_set(r->err, 500, "%s: out of memory reading JSON", r->name);
            goto fail;
        }
        int next = after_element(r, '}');
        if (next > 0)
            return map;
        if (next < 0)
            goto fail;
    }
fail:
    mn_free(map);
    return NULL;
}

static mnode *read_array(jreader *r, int depth)
{
    mnode *seq = new_node(r, MN_SEQ);
    if (!seq)
        return NULL;
    r->pos++; /* [ */
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == ']') {
        r->pos++;
        return seq;
    }
    for (;;) {
        skip_ws(r);
        mnode *item = read_value(r, depth + 1);
        if (!item)
            goto fail;
        if (!mn_seq_add(seq, item)) {
            ksv_err_set(r->err, 500, "%s: out of memory reading JSON", r->name);
            goto fail;
        }
        int next = after_element(r, ']');
        if (next > 0)
            return seq;
        if (next < 0)
            goto fail;
    }
fail:
    mn_free(seq);
    return NULL;
}

static mnode *read_number(jreader *r)
{
    size_t start = r->pos;
    bool is_float = false;
    while (r->pos < r->len && strchr("+-0123456789.eE", r->s[r->pos])) {
        if (strchr(".eE", r->s[r->pos]))
            is_float = true;
        r->pos++;
    }
    size_t n = r->pos - start;
    char text[64];
    if (n == 0 || n >= sizeof text) {
        r->pos = start;
        fail_here(r, n ? "number too long" : "unexpected character", NULL);
        return NULL;
    }
    memcpy(text, r->s + start, n);
    text[n] = '\0';
    size_t here = r->pos;
    r->pos = start; /* the node's position is where the number begins */
    mnode *node = new_node(r, is_float ? MN_FLOAT : MN_INT);
    r->pos = here;
    if (!node)
        return NULL;
    char *end;
    errno = 0;
    if (is_float)
        node->d = strtod(text, &end);
    else
        node->i = strtoll(text, &end, 10);
    if (errno == ERANGE || *end != '\0' || (is_float && !isfinite(node->d))) {
        ksv_err_set(r->err, 400, "%s:%d:%d: number %s is out of range", r->name, node->line,
                    node->col, text);
        mn_free(node);
        return NULL;
    }
    if (!(node->str = strdup(text))) {
        mn_free(node);
        ksv_err_set(r->err, 500, "%s: out of memory reading JSON", r->name);
        return NULL;
    }
    return node;
}

static mnode *read_literal(jreader *r, const char *word, mn_type type, bool value)
{
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0) {
        fail_here(r, "unexpected character", NULL);
        return NULL;
    }
    mnode *node = new_node(r, type);
    if (node)
        node->b = value;
    r->pos += n;
    return node;
}

static mnode *read_value(jreader *r, int depth)
{
    if (depth > KSV_MANIFEST_MAX_DEPTH) {
        fail_here(r, "nesting too deep", NULL);
        return NULL;
    }
    if (r->pos >= r->len) {
        fail_here(r, "unexpected end of input", NULL);
        return NULL;
    }
    switch (r->s[r->pos]) {
    case '{':
        return read_object(r, depth);
    case '[':
        return read_array(r, depth);
    case '"': {
        mnode *node = new_node(r, MN_STRING);
        if (node && !(node->str = read_string(r))) {
            mn_free(node);
            node = NULL;
        }
        return node;
    }
    case 't':
        return read_literal(r, "true", MN_BOOL, true);
    case 'f':
        return read_literal(r, "false", MN_BOOL, false);
    case 'n':
        return read_literal(r, "null", MN_NULL, false);
    default:
        return read_number(r);
    }
}

/* Line and column of byte offset `off`, for json-c's complaints. */
static void position_of(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    size_t line_start = 0;
    for (size_t k = 0; k < off; k++)
        if (text[k] == '\n') {
            (*line)++;
            line_start = k + 1;
        }
    *col = (int)(off - line_start) + 1;
}

/* Checks one value at text[off..len) with json-c; returns 0 or -1 with err set. */
static int json_c_check(json_tokener *tok, const char *text, size_t off, size_t len,
                        const char *name, ksv_err *err)
{
    json_tokener_reset(tok);
    json_object *obj = json_tokener_parse_ex(tok, text + off, (int)(len - off));
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t stop = off + json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A number at the very end is only finished by a delimiter. */
        obj = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue) {
            int line, col;
            position_of(text, len, &line, &col);
            return ksv_err_set(err, 400, "%s:%d:%d: JSON syntax error: unexpected end of file",
                               name, line, col);
        }
        stop = len;
    }
    json_object_put(obj);
    if (jerr != json_tokener_success) {
        int line, col;
        /* json-c stops on the offending byte. */
        position_of(text, stop, &line, &col);
        return ksv_err_set(err, 400, "%s:%d:%d: JSON syntax error: %s", name, line, col,
                           json_tokener_error_desc(jerr));
    }
    return 0;
}

int mn_read_json(const char *text, size_t len, const char *name, mn_docs *docs, ksv_err *err)
{
    if (len > (size_t)0x7fffffff)
        return ksv_err_set(err, 413, "%s: file too large", name);
    json_tokener *tok = json_tokener_new_ex(KSV_MANIFEST_MAX_DEPTH);
    if (!tok)
        return ksv_err_set(err, 500, "%s: out of memory reading JSON", name);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                    JSON_TOKENER_VALIDATE_UTF8);
    jreader r = {.s = text, .len = len, .line = 1, .name = name, .err = err,
                 .budget = KSV_MANIFEST_MAX_NODES};
    int rc = 0;
    for (;;) {
        skip_ws(&r);
        if (r.pos >= r.len)
            break;
        if ((rc = json_c_check(tok, text, r.pos, len, name, err)) != 0)
            break;
        int line = r.line;
        mnode *root = read_value(&r, 0);
        if (!root) {
            rc = -1;
            break;
        }
        if (!mn_docs_push(docs, root, line)) {
            rc = ksv_err_set(err, 500, "%s: out of memory reading JSON", name);
            break;
        }
    }
    json_tokener_free(tok);
    if (rc != 0)
        mn_docs_free(docs);
    return rc;
}
