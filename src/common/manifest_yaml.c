/* manifest_yaml.c: YAML text to the positioned document tree, through libyaml's event parser.
 *
 * The event parser (not libyaml's document loader) is used so that aliases can be expanded
 * under a node budget (a "billion laughs" file fails fast instead of eating memory), duplicate
 * keys can be refused with both positions, and every scalar keeps its line and column.
 * Plain scalars are typed by the YAML 1.2 core schema (null, true/false, ints, floats), which
 * is also what JSON means, so YAML and JSON manifests read the same way. */
#include "common/manifest_tree.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define MAX_KEYS_PER_MAP 10000u

typedef struct anchor {
    char *name;
    mnode *node;
    bool complete; /* an alias to an unfinished node would make a cycle */
} anchor;

typedef struct frame {
    mnode *node;
    char *anchor_name; /* anchor to mark complete when this collection ends */
    bool have_key;     /* maps: a key is waiting for its value */
    bool key_is_merge; /* maps: the waiting key is the merge key `<<` */
    char *key;
    int key_line, key_col;
    mnode **merges; /* maps: values of `<<` keys (owned by reader.kept), applied at the end */
    size_t n_merges;
} frame;

typedef struct reader {
    const char *name;
    ksv_err *err;
    frame stack[KSV_MANIFEST_MAX_DEPTH];
    size_t depth;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
    mn_budget budget;
    mnode *root;
    /* Merge sources stay alive until the document ends: anchors may point into them. */
    mnode **kept;
    size_t n_kept;
} reader;

static int fail_at(reader *r, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(reader *r, int line, int col, const char *fmt, ...)
{
    char reason[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return ksv_err_set(r->err, 400, "%s:%d:%d: %s", r->name, line, col, reason);
}

static int fail_oom(reader *r)
{
    return ksv_err_set(r->err, 500, "%s: out of memory reading YAML", r->name);
}

static void frame_clear(frame *f)
{
    free(f->anchor_name);
    free(f->key);
    free(f->merges);
    memset(f, 0, sizeof *f);
}

static void reader_reset_document(reader *r)
{
    /* A collection is attached to its parent only when it ends, so every open frame owns
     * its node. */
    while (r->depth > 0) {
        frame *f = &r->stack[--r->depth];
        mn_free(f->node);
        frame_clear(f);
    }
    for (size_t k = 0; k < r->n_kept; k++)
        mn_free(r->kept[k]);
    free(r->kept);
    r->kept = NULL;
    r->n_kept = 0;
    for (size_t k = 0; k < r->n_anchors; k++)
        free(r->anchors[k].name);
    r->n_anchors = 0;
    mn_free(r->root);
    r->root = NULL;
}

static anchor *find_anchor(reader *r, const char *name)
{
    /* Later definitions of the same anchor name win, as YAML specifies. */
    for (size_t k = r->n_anchors; k-- > 0;)
        if (strcmp(r->anchors[k].name, name) == 0)
            return &r->anchors[k];
    return NULL;
}

static int add_anchor(reader *r, const char *name, mnode *node, bool complete)
{
    if (r->n_anchors == r->cap_anchors) {
        size_t cap = r->cap_anchors ? r->cap_anchors * 2 : 8;
        anchor *grown = realloc(r->anchors, cap * sizeof *grown);
        if (!grown)
            return fail_oom(r);
        r->anchors = grown;
        r->cap_anchors = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return fail_oom(r);
    r->anchors[r->n_anchors++] = (anchor){.name = copy, .node = node, .complete = complete};
    return 0;
}

static void complete_anchor(reader *r, const char *name, const mnode *node)
{
    for (size_t k = r->n_anchors; k-- > 0;)
        if (r->anchors[k].node == node && strcmp(r->anchors[k].name, name) == 0)
            r->anchors[k].complete = true;
}

static bool take_budget(reader *r, size_t bytes)
{
    return mn_budget_take(&r->budget, bytes);
}

static int fail_budget(reader *r, int line, int col)
{
    char limit[64];
    snprintf(limit, sizeof limit, "%u nodes or %u MiB", KSV_MANIFEST_MAX_NODES,
             KSV_MANIFEST_MAX_EXPANDED_BYTES >> 20);
    return fail_at(r, line, col, "document expands to more than %s (too many aliases?)",
                   limit);
}

/* Frees a node the document does not keep (a map key, once its text is copied; a node
 * refused with an error), unless an anchor names it: an alias later in the document copies
 * it (`&k key: v`, then `*k`), so it stays alive with the merge sources until the document
 * ends. Freeing it here left the anchor dangling: found by fuzz_manifest, a
 * heap-use-after-free (tests/test_manifest.c, test_anchored_keys). */
static int discard(reader *r, mnode *node)
{
    bool anchored = false;
    for (size_t k = 0; k < r->n_anchors && !anchored; k++)
        anchored = r->anchors[k].node == node;
    if (!anchored) {
        mn_free(node);
        return 0;
    }
    mnode **kept = realloc(r->kept, (r->n_kept + 1) * sizeof *kept);
    if (!kept) {
        /* No room to keep it: the anchors forget it (the parse stops on this error). */
        for (size_t k = 0; k < r->n_anchors; k++)
            if (r->anchors[k].node == node)
                r->anchors[k].complete = false, r->anchors[k].node = NULL;
        mn_free(node);
        return fail_oom(r);
    }
    r->kept = kept;
    r->kept[r->n_kept++] = node;
    return 0;
}

/* Places a finished node: as the document root, a list item, a map key or a map value.
 * Takes ownership of node in every case. */
static int place(reader *r, mnode *node)
{
    if (r->depth == 0) {
        r->root = node;
        return 0;
    }
    frame *f = &r->stack[r->depth - 1];
    if (f->node->type == MN_SEQ) {
        if (!mn_seq_add(f->node, node))
            return fail_oom(r);
        return 0;
    }
    if (!f->have_key) {
        if (node->type == MN_MAP || node->type == MN_SEQ) {
            int line = node->line, col = node->col;
            discard(r, node);
            return fail_at(r, line, col, "a map or list used as a map key is not supported");
        }
        /* Scalar keys keep their text: `1: x` has the key "1" as JSON would. */
        const char *text = node->str ? node->str : (node->type == MN_NULL ? "null" : "");
        f->key = strdup(text);
        f->key_line = node->line;
        f->key_col = node->col;
        f->key_is_merge = node->type == MN_STRING && node->b; /* b marks a plain `<<` */
        if (discard(r, node) != 0) {
            free(f->key);
            f->key = NULL;
            return -1;
        }
        if (!f->key)
            return fail_oom(r);
        f->have_key = true;
        return 0;
    }
    f->have_key = false;
    char *key = f->key;
    f->key = NULL;
    if (f->key_is_merge) {
        free(key);
        mnode **kept = realloc(r->kept, (r->n_kept + 1) * sizeof *kept);
        if (!kept) {
            mn_free(node);
            return fail_oom(r);
        }
        r->kept = kept;
        r->kept[r->n_kept++] = node;
        mnode **grown = realloc(f->merges, (f->n_merges + 1) * sizeof *grown);
        if (!grown)
            return fail_oom(r);
        f->merges = grown;
        f->merges[f->n_merges++] = node;
        return 0;
    }
    mn_entry *previous = mn_map_find(f->node, key);
    if (previous) {
        char first[32];
        snprintf(first, sizeof first, "%d", previous->line);
        int rc = fail_at(r, f->key_line, f->key_col, "duplicate key \"%s\" (first at line %s)", key,
                         first);
        free(key);
        discard(r, node);
        return rc;
    }
    if (f->node->n >= MAX_KEYS_PER_MAP) {
        int line = f->key_line, col = f->key_col;
        free(key);
        discard(r, node);
        return fail_at(r, line, col, "map has too many keys");
    }
    if (!mn_map_add(f->node, key, f->key_line, f->key_col, node))
        return fail_oom(r);
    return 0;
}

/* YAML merge keys (`<<: *defaults`): keys written in the map win over merged ones, and
 * among several merged maps the first one listed wins. */
static int apply_merges(reader *r, frame *f)
{
    for (size_t m = 0; m < f->n_merges; m++) {
        mnode *src = f->merges[m];
        size_t n_sources = src->type == MN_SEQ ? src->n : 1;
        for (size_t s = 0; s < n_sources; s++) {
            mnode *map = src->type == MN_SEQ ? src->items[s] : src;
            if (map->type != MN_MAP)
                return fail_at(r, map->line, map->col, "merge key `<<` expects a map, found %s",
                               mn_type_name(map->type));
            for (size_t k = 0; k < map->n; k++) {
                if (mn_map_find(f->node, map->entries[k].key))
                    continue;
                mnode *value = mn_copy(map->entries[k].value, &r->budget);
                if (!value)
                    return r->budget.exhausted ? fail_budget(r, map->line, map->col)
                                               : fail_oom(r);
                char *key = strdup(map->entries[k].key);
                if (!key) {
                    mn_free(value);
                    return fail_oom(r);
                }
                if (!mn_map_add(f->node, key, map->entries[k].line, map->entries[k].col, value))
                    return fail_oom(r);
            }
        }
    }
    return 0;
}

static bool is_digits(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

static bool is_core_float(const char *s)
{
    /* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t int_digits = 0, frac_digits = 0;
    while (*p >= '0' && *p <= '9') {
        p++;
        int_digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static bool is_non_finite(const char *s)
{
    static const char *const words[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
                                        "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};
    for (size_t k = 0; k < sizeof words / sizeof *words; k++)
        if (strcmp(s, words[k]) == 0)
            return true;
    return false;
}

static bool one_of(const char *s, const char *a, const char *b, const char *c)
{
    return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

/* Types a scalar: as an int when `want` is MN_INT, and so on; want == MN_NULL means "by the
 * core schema". Returns 0, or -1 when a tag demands a type the text does not have. */
static int type_scalar(reader *r, mnode *node, const char *text, mn_type want)
{
    bool any = want == MN_NULL;
    if (any && (text[0] == '\0' || one_of(text, "~", "null", "Null") ||
                                     strcmp(text, "NULL") == 0)) {
        node->type = MN_NULL;
        return 0;
    }
    if (any || want == MN_BOOL) {
        if (one_of(text, "true", "True", "TRUE")) {
            node->type = MN_BOOL;
            node->b = true;
            return 0;
        }
        if (one_of(text, "false", "False", "FALSE")) {
            node->type = MN_BOOL;
            node->b = false;
            return 0;
        }
    }
    if (any || want == MN_INT) {
        const char *digits = text;
        int base = 10;
        if (text[0] == '0' && text[1] == 'x' && is_digits(text + 2, "0123456789abcdefABCDEF")) {
            digits = text + 2;
            base = 16;
        } else if (text[0] == '0' && text[1] == 'o' && is_digits(text + 2, "01234567")) {
            digits = text + 2;
            base = 8;
        } else if (!is_digits(text + (text[0] == '-' || text[0] == '+'), "0123456789")) {
            digits = NULL;
        }
        if (digits) {
            errno = 0;
            long long value = strtoll(digits, NULL, base);
            if (errno == ERANGE)
                return fail_at(r, node->line, node->col, "integer %s is out of range", text);
            node->type = MN_INT;
            node->i = value;
            return 0;
        }
    }
    if (any || want == MN_FLOAT) {
        if (is_non_finite(text))
            return fail_at(r, node->line, node->col,
                           "non-finite number %s is not supported", text);
        if (is_core_float(text)) {
            double value = strtod(text, NULL);
            if (!isfinite(value))
                return fail_at(r, node->line, node->col, "number %s is out of range", text);
            node->type = MN_FLOAT;
            node->d = value;
            return 0;
        }
    }
    if (!any)
        return fail_at(r, node->line, node->col, "\"%s\" is not %s", text, mn_type_name(want));
    node->type = MN_STRING;
    return 0;
}

static int on_scalar(reader *r, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(text, '\0', len))
        return fail_at(r, line, col, "a NUL character inside a string is not supported");
    if (!take_budget(r, len + 1))
        return fail_budget(r, line, col);
    mnode *node = mn_new(MN_STRING, line, col);
    if (!node || !(node->str = strdup(text))) {
        mn_free(node);
        return fail_oom(r);
    }
    const char *tag = (const char *)ev->data.scalar.tag;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int rc = 0;
    if (!tag) {
        if (plain)
            rc = type_scalar(r, node, text, MN_NULL);
        /* b marks a plain `<<` on strings only: on a boolean it is the value itself. */
        if (node->type == MN_STRING)
            node->b = plain && strcmp(text, "<<") == 0;
    } else if (strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0) {
        node->type = MN_STRING;
    } else if (strcmp(tag, YAML_INT_TAG) == 0) {
        rc = type_scalar(r, node, text, MN_INT);
    } else if (strcmp(tag, YAML_FLOAT_TAG) == 0) {
        rc = type_scalar(r, node, text, MN_FLOAT);
        if (rc == 0 && node->type == MN_INT) {
            node->type = MN_FLOAT;
            node->d = (double)node->i;
        }
    } else if (strcmp(tag, YAML_BOOL_TAG) == 0) {
        rc = type_scalar(r, node, text, MN_BOOL);
    } else if (strcmp(tag, YAML_NULL_TAG) == 0) {
        rc = type_scalar(r, node, text, MN_NULL);
        if (rc == 0 && node->type != MN_NULL)
            rc = fail_at(r, line, col, "\"%s\" is not null", text);
    } else {
        rc = fail_at(r, line, col, "unsupported YAML tag %s", tag);
    }
    if (rc != 0) {
        mn_free(node);
        return rc;
    }
    if (ev->data.scalar.anchor && add_anchor(r, (const char *)ev->data.scalar.anchor, node, true)) {
        mn_free(node);
        return -1;
    }
    return place(r, node);
}

static int on_alias(reader *r, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    const char *name = (const char *)ev->data.alias.anchor;
    anchor *a = find_anchor(r, name);
    if (!a)
        return fail_at(r, line, col, "alias *%s names no anchor", name);
    if (!a->complete)
        return fail_at(r, line, col, "alias *%s refers to a node that contains it", name);
    mnode *copy = mn_copy(a->node, &r->budget);
    if (!copy)
        return r->budget.exhausted ? fail_budget(r, line, col) : fail_oom(r);
    copy->line = line;
    copy->col = col;
    /* An aliased `<<` key stays an ordinary key: merge keys must be written plainly. */
    if (copy->type == MN_STRING)
        copy->b = false;
    return place(r, copy);
}

static int on_collection_start(reader *r, const yaml_event_t *ev, mn_type type)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    const char *tag = (const char *)(type == MN_MAP ? ev->data.mapping_start.tag
                                                    : ev->data.sequence_start.tag);
    const char *anchor_name = (const char *)(type == MN_MAP ? ev->data.mapping_start.anchor
                                                            : ev->data.sequence_start.anchor);
    if (tag && strcmp(tag, "!") != 0 &&
        strcmp(tag, type == MN_MAP ? YAML_MAP_TAG : YAML_SEQ_TAG) != 0)
        return fail_at(r, line, col, "unsupported YAML tag %s", tag);
    if (r->depth >= KSV_MANIFEST_MAX_DEPTH) {
        char limit[16];
        snprintf(limit, sizeof limit, "%d", KSV_MANIFEST_MAX_DEPTH);
        return fail_at(r, line, col, "nesting deeper than %s levels", limit);
    }
    if (!take_budget(r, 0))
        return fail_budget(r, line, col);
    mnode *node = mn_new(type, line, col);
    if (!node)
        return fail_oom(r);
    frame *f = &r->stack[r->depth];
    memset(f, 0, sizeof *f);
    if (anchor_name) {
        if (!(f->anchor_name = strdup(anchor_name)) || add_anchor(r, anchor_name, node, false)) {
            mn_free(node);
            frame_clear(f);
            return fail_oom(r);
        }
    }
    f->node = node;
    r->depth++;
    return 0;
}

static int on_collection_end(reader *r)
{
    frame *f = &r->stack[r->depth - 1];
    int rc = f->node->type == MN_MAP ? apply_merges(r, f) : 0;
    if (rc != 0)
        return rc; /* reader_reset_document frees the frame and its node */
    mnode *node = f->node;
    if (f->anchor_name)
        complete_anchor(r, f->anchor_name, node);
    r->depth--;
    frame_clear(f);
    return place(r, node);
}

static int syntax_error(reader *r, const yaml_parser_t *parser, const char *text, size_t len)
{
    yaml_mark_t mark = parser->problem_mark;
    const char *problem = parser->problem ? parser->problem : "malformed YAML";
    if (parser->error == YAML_MEMORY_ERROR)
        return fail_oom(r);
    if (parser->error == YAML_READER_ERROR) {
        /* Encoding problems carry a byte offset instead of a mark. */
        mark.line = mark.column = 0;
        for (size_t k = 0; k < parser->problem_offset && k < len; k++) {
            if (text[k] == '\n') {
                mark.line++;
                mark.column = 0;
            } else {
                mark.column++;
            }
        }
        return ksv_err_set(r->err, 400, "%s:%d:%d: YAML syntax error: %s", r->name,
                           (int)mark.line + 1, (int)mark.column + 1, problem);
    }
    if (parser->context)
        return ksv_err_set(r->err, 400, "%s:%d:%d: YAML syntax error: %s (%s at line %d)",
                           r->name, (int)mark.line + 1, (int)mark.column + 1, problem,
                           parser->context, (int)parser->context_mark.line + 1);
    return ksv_err_set(r->err, 400, "%s:%d:%d: YAML syntax error: %s", r->name,
                       (int)mark.line + 1, (int)mark.column + 1, problem);
}

int mn_read_yaml(const char *text, size_t len, const char *name, mn_docs *docs, ksv_err *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ksv_err_set(err, 500, "%s: out of memory reading YAML", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

    reader r = {.name = name, .err = err,
                .budget = {KSV_MANIFEST_MAX_NODES, KSV_MANIFEST_MAX_EXPANDED_BYTES}};
    int doc_line = 1;
    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(&r, &parser, text, len);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            doc_line = (int)ev.start_mark.line + 1;
            break;
        case YAML_DOCUMENT_END_EVENT:
            if (!mn_docs_push(docs, r.root, doc_line))
                rc = fail_oom(&r);
            r.root = NULL;
            reader_reset_document(&r);
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&r, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&r, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_collection_start(&r, &ev, MN_SEQ);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_collection_start(&r, &ev, MN_MAP);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_collection_end(&r);
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_NO_EVENT:
            break;
        }
        yaml_event_delete(&ev);
    }
    reader_reset_document(&r);
    free(r.anchors);
    yaml_parser_delete(&parser);
    if (rc != 0)
        mn_docs_free(docs);
    return rc;
}
