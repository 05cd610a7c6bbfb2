/* prom_text.c: Prometheus text format 0.0.4 parser and the ksv family extraction.
 * See prom_text.h for what is accepted and why. */
#include "control/prom_text.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

/* A number longer than this is refused: no exporter writes one, and it keeps the copy that
 * strtod needs on the stack. */
#define MAX_NUMBER_CHARS 256

void ksv_prom_limits_default(ksv_prom_limits *limits)
{
    limits->max_line = KSV_PROM_DEFAULT_MAX_LINE;
    limits->max_samples = KSV_PROM_DEFAULT_MAX_SAMPLES;
    limits->max_labels = KSV_PROM_DEFAULT_MAX_LABELS;
}

/* ---- numbers ---- */

static bool equals_nocase(const char *p, size_t n, const char *word)
{
    size_t wn = strlen(word);
    if (n != wn)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Go's ParseFloat grammar for decimal input: [+-] (digits [. digits*] | . digits)
 * [(e|E) [+-] digits]. */
static bool is_decimal_float(const char *p, size_t n)
{
    size_t i = 0, mantissa_digits = 0;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        i++;
    while (i < n && is_digit(p[i]))
        i++, mantissa_digits++;
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && is_digit(p[i]))
            i++, mantissa_digits++;
    }
    if (mantissa_digits == 0)
        return false;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        size_t exp_digits = 0;
        while (i < n && is_digit(p[i]))
            i++, exp_digits++;
        if (exp_digits == 0)
            return false;
    }
    return i == n;
}

int ksv_prom_parse_float(const char *text, size_t len, double *out)
{
    if (len == 0 || len > MAX_NUMBER_CHARS)
        return -1;
    const char *rest = text;
    size_t rest_len = len;
    bool negative = false;
    if (*rest == '+' || *rest == '-') {
        negative = *rest == '-';
        rest++, rest_len--;
    }
    if (equals_nocase(rest, rest_len, "inf") || equals_nocase(rest, rest_len, "infinity")) {
        *out = negative ? -INFINITY : INFINITY;
        return 0;
    }
    if (rest == text && equals_nocase(rest, rest_len, "nan")) {
        *out = NAN;
        return 0;
    }
    if (!is_decimal_float(text, len))
        return -1;
    /* strtod follows LC_NUMERIC, which an ncurses program may have set to a locale with a
     * decimal comma: write the locale's decimal point where the text has '.'. */
    const char *point = localeconv()->decimal_point;
    size_t point_len = point && *point ? strlen(point) : 1;
    if (!point || !*point)
        point = ".";
    char buf[MAX_NUMBER_CHARS * 8 + 1];
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '.') {
            if (point_len > 8)
                return -1;
            memcpy(buf + o, point, point_len);
            o += point_len;
        } else {
            buf[o++] = text[i];
        }
    }
    buf[o] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + o)
        return -1;
    if (errno == ERANGE && isinf(v))
        return -1;
    *out = v;
    return 0;
}

/* ---- parser state ---- */

typedef struct parser {
    ksv_prom_limits limits;
    ksv_prom_doc *doc;
    size_t cap_samples;
    size_t cap_labels;
    size_t arena_used;
    size_t arena_cap;
    /* The family the latest `# TYPE` declared (points into buf). */
    const char *type_name;
    size_t type_name_len;
    ksv_prom_type type;
    size_t line_no;
    ksv_err *err;
} parser;

static int fail(parser *ps, const char *fmt, const char *detail)
{
    return ksv_err_set(ps->err, 400, "line %zu: %s%s", ps->line_no, fmt, detail ? detail : "");
}

static int oom(parser *ps)
{
    return ksv_err_set(ps->err, 500, "line %zu: out of memory", ps->line_no);
}

/* Copies n bytes into the string arena and NUL-terminates them. The arena is sized so this
 * cannot run out (every string stems from a distinct stretch of input followed by at least
 * one delimiter byte); the check is a guard, not a code path. */
static const char *arena_put(parser *ps, const char *s, size_t n)
{
    if (ps->arena_cap - ps->arena_used < n + 1)
        return NULL;
    char *dst = ps->doc->strings + ps->arena_used;
    memcpy(dst, s, n);
    dst[n] = '\0';
    ps->arena_used += n + 1;
    return dst;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_name_start(char c, bool colon_ok)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

static bool is_name_char(char c, bool colon_ok)
{
    return is_name_start(c, colon_ok) || is_digit(c);
}

/* A quoted string starting at line[*pos] == '"': unescapes it into the arena. */
static int parse_quoted(parser *ps, const char *line, size_t n, size_t *pos, const char *what,
                        const char **out)
{
    size_t i = *pos + 1;
    /* Unescaped text is never longer than the escaped text, so it is built in place in the
     * arena: reserve the worst case, then shrink. */
    if (ps->arena_cap - ps->arena_used < n - *pos)
        return ksv_err_set(ps->err, 500, "line %zu: string arena exhausted", ps->line_no);
    char *dst = ps->doc->strings + ps->arena_used;
    size_t o = 0;
    for (;;) {
        if (i >= n)
            return fail(ps, "unterminated ", what);
        char c = line[i];
        if (c == '"')
            break;
        if (c == '\\') {
            if (i + 1 >= n)
                return fail(ps, "unterminated ", what);
            char e = line[i + 1];
            if (e == '\\' || e == '"')
                dst[o++] = e;
            else if (e == 'n')
                dst[o++] = '\n';
            else
                return fail(ps, "invalid escape sequence in ", what);
            i += 2;
            continue;
        }
        if (c == '\0')
            return fail(ps, "NUL byte in ", what);
        size_t u = ksv_utf8_seq_len((const unsigned char *)line + i, n - i);
        if (u == 0)
            return fail(ps, "invalid UTF-8 in ", what);
        memcpy(dst + o, line + i, u);
        o += u;
        i += u;
    }
    dst[o] = '\0';
    ps->arena_used += o + 1;
    *pos = i + 1;
    *out = dst;
    return 0;
}

static size_t skip_blanks(const char *line, size_t n, size_t i)
{
    while (i < n && is_blank(line[i]))
        i++;
    return i;
}

static bool name_is(const char *name, const char *base, size_t base_len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return strlen(name) == base_len + sl && memcmp(name, base, base_len) == 0 &&
           strcmp(name + base_len, suffix) == 0;
}

static ksv_prom_type type_of(const parser *ps, const char *name)
{
    if (!ps->type_name)
        return KSV_PROM_UNTYPED;
    const char *t = ps->type_name;
    size_t tn = ps->type_name_len;
    if (name_is(name, t, tn, ""))
        return ps->type;
    switch (ps->type) {
    case KSV_PROM_HISTOGRAM:
        if (name_is(name, t, tn, "_bucket") || name_is(name, t, tn, "_sum") ||
            name_is(name, t, tn, "_count"))
            return KSV_PROM_HISTOGRAM;
        break;
    case KSV_PROM_SUMMARY:
        if (name_is(name, t, tn, "_sum") || name_is(name, t, tn, "_count"))
            return KSV_PROM_SUMMARY;
        break;
    case KSV_PROM_COUNTER:
        if (name_is(name, t, tn, "_total"))
            return KSV_PROM_COUNTER;
        break;
    default:
        break;
    }
    return KSV_PROM_UNTYPED;
}

/* `# HELP name text`, `# TYPE name type`, or any other comment. */
static int parse_comment(parser *ps, const char *line, size_t n)
{
    size_t i = skip_blanks(line, n, 1);
    size_t kw = i;
    while (i < n && !is_blank(line[i]))
        i++;
    bool help = i - kw == 4 && memcmp(line + kw, "HELP", 4) == 0;
    bool type = i - kw == 4 && memcmp(line + kw, "TYPE", 4) == 0;
    if (!help && !type)
        return 0;
    const char *keyword = help ? "HELP" : "TYPE";
    i = skip_blanks(line, n, i);
    size_t name = i;
    if (i >= n || !is_name_start(line[i], true))
        return ksv_err_set(ps->err, 400, "line %zu: invalid metric name in %s line",
                           ps->line_no, keyword);
    while (i < n && is_name_char(line[i], true))
        i++;
    size_t name_len = i - name;
    if (i < n && !is_blank(line[i]))
        return ksv_err_set(ps->err, 400, "line %zu: invalid metric name in %s line",
                           ps->line_no, keyword);
    if (help)
        return 0; /* the docstring is free text and not kept */
    i = skip_blanks(line, n, i);
    size_t word = i;
    while (i < n && !is_blank(line[i]))
        i++;
    size_t word_len = i - word;
    if (skip_blanks(line, n, i) != n)
        return fail(ps, "unexpected text after the type in TYPE line", NULL);
    static const struct {
        const char *word;
        ksv_prom_type type;
    } types[] = {
        {"counter", KSV_PROM_COUNTER},     {"gauge", KSV_PROM_GAUGE},
        {"histogram", KSV_PROM_HISTOGRAM}, {"summary", KSV_PROM_SUMMARY},
        {"untyped", KSV_PROM_UNTYPED},     {"unknown", KSV_PROM_UNTYPED},
    };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        if (word_len == strlen(types[t].word) &&
            memcmp(line + word, types[t].word, word_len) == 0) {
            ps->type_name = line + name;
            ps->type_name_len = name_len;
            ps->type = types[t].type;
            return 0;
        }
    }
    return fail(ps, word_len ? "unknown metric type in TYPE line" : "missing type in TYPE line",
                NULL);
}

static int add_label(parser *ps, ksv_prom_sample *s, const char *name, const char *value)
{
    ksv_prom_doc *doc = ps->doc;
    if (s->n_labels >= ps->limits.max_labels)
        return ksv_err_set(ps->err, 400, "line %zu: more than %zu labels", ps->line_no,
                           ps->limits.max_labels);
    for (size_t k = 0; k < s->n_labels; k++)
        if (strcmp(doc->label_pool[s->label_off + k].name, name) == 0)
            return fail(ps, "duplicate label ", name);
    if (doc->n_labels_total == ps->cap_labels) {
        size_t cap = ps->cap_labels ? ps->cap_labels * 2 : 64;
        ksv_prom_label *grown = realloc(doc->label_pool, cap * sizeof *grown);
        if (!grown)
            return oom(ps);
        doc->label_pool = grown;
        ps->cap_labels = cap;
    }
    doc->label_pool[doc->n_labels_total++] = (ksv_prom_label){name, value};
    s->n_labels++;
    return 0;
}

/* The label set, from line[*pos] == '{' to its '}'. *name may be set by a quoted name. */
static int parse_labels(parser *ps, const char *line, size_t n, size_t *pos,
                        ksv_prom_sample *s)
{
    size_t i = *pos + 1;
    for (;;) {
        i = skip_blanks(line, n, i);
        if (i >= n)
            return fail(ps, "unterminated label set (expected '}')", NULL);
        if (line[i] == '}')
            break;
        const char *label_name;
        bool quoted = line[i] == '"';
        if (quoted) {
            if (parse_quoted(ps, line, n, &i, "quoted name", &label_name) < 0)
                return -1;
        } else {
            size_t start = i;
            if (!is_name_start(line[i], false))
                return fail(ps, "invalid label name", NULL);
            while (i < n && is_name_char(line[i], false))
                i++;
            if (!(label_name = arena_put(ps, line + start, i - start)))
                return ksv_err_set(ps->err, 500, "line %zu: string arena exhausted",
                                   ps->line_no);
        }
        i = skip_blanks(line, n, i);
        if (quoted && i < n && (line[i] == ',' || line[i] == '}')) {
            /* A quoted string on its own is the metric name (UTF-8 names). */
            if (s->name)
                return fail(ps, "metric name given twice", NULL);
            if (!*label_name)
                return fail(ps, "empty metric name", NULL);
            s->name = label_name;
        } else {
            if (i >= n || line[i] != '=')
                return fail(ps, "expected '=' after label name", NULL);
            i = skip_blanks(line, n, i + 1);
            if (i >= n || line[i] != '"')
                return fail(ps, "expected '\"' to start the label value", NULL);
            const char *value;
            if (parse_quoted(ps, line, n, &i, "label value", &value) < 0 ||
                add_label(ps, s, label_name, value) < 0)
                return -1;
            i = skip_blanks(line, n, i);
        }
        if (i < n && line[i] == ',') {
            i++;
            continue;
        }
        if (i < n && line[i] == '}')
            break;
        if (i >= n)
            return fail(ps, "unterminated label set (expected '}')", NULL);
        return fail(ps, "expected ',' or '}' after a label", NULL);
    }
    *pos = i + 1;
    return 0;
}

static int parse_timestamp(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool negative = false;
    if (n && (p[0] == '-' || p[0] == '+')) {
        negative = p[0] == '-';
        i++;
    }
    if (i == n)
        return -1;
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = negative ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

static int parse_sample(parser *ps, const char *line, size_t n)
{
    ksv_prom_doc *doc = ps->doc;
    if (doc->n_samples >= ps->limits.max_samples)
        return ksv_err_set(ps->err, 400, "line %zu: more than %zu samples", ps->line_no,
                           ps->limits.max_samples);
    if (doc->n_samples == ps->cap_samples) {
        size_t cap = ps->cap_samples ? ps->cap_samples * 2 : 64;
        ksv_prom_sample *grown = realloc(doc->samples, cap * sizeof *grown);
        if (!grown)
            return oom(ps);
        doc->samples = grown;
        ps->cap_samples = cap;
    }
    ksv_prom_sample *s = &doc->samples[doc->n_samples];
    memset(s, 0, sizeof *s);
    s->line = ps->line_no;
    s->label_off = doc->n_labels_total;

    size_t i = 0;
    if (line[0] != '{') {
        if (!is_name_start(line[0], true))
            return fail(ps, "invalid metric name", NULL);
        while (i < n && is_name_char(line[i], true))
            i++;
        if (i < n && line[i] != '{' && !is_blank(line[i]))
            return fail(ps, "invalid character in metric name", NULL);
        if (!(s->name = arena_put(ps, line, i)))
            return ksv_err_set(ps->err, 500, "line %zu: string arena exhausted", ps->line_no);
        size_t brace = skip_blanks(line, n, i);
        if (brace < n && line[brace] == '{')
            i = brace;
    }
    if (i < n && line[i] == '{') {
        if (parse_labels(ps, line, n, &i, s) < 0)
            return -1;
        if (!s->name)
            return fail(ps, "missing metric name", NULL);
    }
    size_t value_at = skip_blanks(line, n, i);
    if (value_at == n)
        return fail(ps, "missing value", NULL);
    if (value_at == i)
        return fail(ps, "expected a blank before the value", NULL);
    size_t value_end = value_at;
    while (value_end < n && !is_blank(line[value_end]))
        value_end++;
    if (ksv_prom_parse_float(line + value_at, value_end - value_at, &s->value) < 0)
        return fail(ps, "bad number as value", NULL);
    size_t ts_at = skip_blanks(line, n, value_end);
    if (ts_at < n) {
        size_t ts_end = ts_at;
        while (ts_end < n && !is_blank(line[ts_end]))
            ts_end++;
        if (parse_timestamp(line + ts_at, ts_end - ts_at, &s->timestamp_ms) < 0)
            return fail(ps, "bad timestamp (expected integer milliseconds)", NULL);
        s->has_timestamp = true;
        if (skip_blanks(line, n, ts_end) != n)
            return fail(ps, "unexpected text after the timestamp", NULL);
    }
    s->type = type_of(ps, s->name);
    doc->n_samples++;
    return 0;
}

static int parse_line(parser *ps, const char *line, size_t n)
{
    size_t i = skip_blanks(line, n, 0);
    if (i == n)
        return 0;
    if (line[i] == '#')
        return parse_comment(ps, line + i, n - i);
    return parse_sample(ps, line + i, n - i);
}

void ksv_prom_doc_free(ksv_prom_doc *doc)
{
    if (!doc)
        return;
    free(doc->samples);
    free(doc->label_pool);
    free(doc->strings);
    memset(doc, 0, sizeof *doc);
}

int ksv_prom_parse(const char *buf, size_t len, const ksv_prom_limits *limits,
                   ksv_prom_doc *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    parser ps = {.doc = out, .err = err};
    if (limits)
        ps.limits = *limits;
    else
        ksv_prom_limits_default(&ps.limits);
    ps.arena_cap = len + 1;
    out->strings = malloc(ps.arena_cap);
    if (!out->strings)
        return ksv_err_set(err, 500, "out of memory for a %zu-byte exposition", len);

    size_t at = 0;
    while (at < len) {
        ps.line_no++;
        size_t avail = len - at;
        size_t scan = avail < ps.limits.max_line + 2 ? avail : ps.limits.max_line + 2;
        const char *nl = memchr(buf + at, '\n', scan);
        size_t n = nl ? (size_t)(nl - (buf + at)) : scan;
        if (n > 0 && nl && buf[at + n - 1] == '\r')
            n--;
        if (n > ps.limits.max_line) {
            ksv_err_set(err, 400, "line %zu: longer than %zu bytes", ps.line_no,
                        ps.limits.max_line);
            goto failed;
        }
        if (!nl) {
            fail(&ps, "no newline at end of input (truncated?)", NULL);
            goto failed;
        }
        if (parse_line(&ps, buf + at, n) < 0)
            goto failed;
        at = (size_t)(nl - buf) + 1;
    }
    /* A document whose samples carry no labels has no pool: NULL + 0 is undefined in C. */
    for (size_t k = 0; k < out->n_samples; k++)
        out->samples[k].labels =
            out->label_pool ? out->label_pool + out->samples[k].label_off : NULL;
    return 0;

failed:
    ksv_prom_doc_free(out);
    return -1;
}

const char *ksv_prom_label_value(const ksv_prom_sample *s, const char *name)
{
    for (size_t k = 0; k < s->n_labels; k++)
        if (strcmp(s->labels[k].name, name) == 0)
            return s->labels[k].value;
    return NULL;
}

/* ---- ksv families ---- */

typedef enum {
    F_REQUESTS,
    F_BUCKET,
    F_SUM,
    F_COUNT,
    F_INFLIGHT,
    F_READY,
    F_LOAD,
    F_TRAFFIC,
    F_NONE
} ksv_family;

static ksv_family family_of(const char *name)
{
    static const struct {
        const char *name;
        ksv_family f;
    } names[] = {
        {"ksv_requests_total", F_REQUESTS},
        {"ksv_request_duration_seconds_bucket", F_BUCKET},
        {"ksv_request_duration_seconds_sum", F_SUM},
        {"ksv_request_duration_seconds_count", F_COUNT},
        {"ksv_inflight_requests", F_INFLIGHT},
        {"ksv_model_ready", F_READY},
        {"ksv_model_load_seconds", F_LOAD},
        {"ksv_traffic_percent", F_TRAFFIC},
    };
    if (strncmp(name, "ksv_", 4) != 0)
        return F_NONE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].f;
    return F_NONE;
}

/* Per-record bookkeeping while collecting; capacities live beside the public arrays. */
typedef struct collector {
    ksv_prom_rev_list *list;
    size_t cap;
    size_t *code_cap;
    size_t *bucket_cap;
    bool *has_sum;
    bool *has_count;
    size_t last_hit;
    ksv_err *err;
} collector;

static void rev_init(ksv_prom_rev *r)
{
    memset(r, 0, sizeof *r);
    r->latency_sum_s = NAN;
    r->inflight = r->ready = r->load_seconds = r->traffic_percent = NAN;
}

static void rev_clear(ksv_prom_rev *r)
{
    free(r->model);
    free(r->revision);
    free(r->codes);
    free(r->buckets);
}

void ksv_prom_rev_list_free(ksv_prom_rev_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->n; i++)
        rev_clear(&list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

static bool rev_is(const ksv_prom_rev *r, const char *model, const char *revision)
{
    return strcmp(r->model, model) == 0 && strcmp(r->revision, revision) == 0;
}

const ksv_prom_rev *ksv_prom_rev_find(const ksv_prom_rev_list *list, const char *model,
                                      const char *revision)
{
    for (size_t i = 0; i < list->n; i++)
        if (rev_is(&list->items[i], model, revision))
            return &list->items[i];
    return NULL;
}

uint64_t ksv_prom_rev_requests(const ksv_prom_rev *rev, int lo, int hi)
{
    uint64_t total = 0;
    for (size_t i = 0; i < rev->n_codes; i++)
        if (rev->codes[i].code >= lo && rev->codes[i].code <= hi)
            total += rev->codes[i].count;
    return total;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

/* The record for (model, revision), created when new. Engines write each family's
 * revisions in the same order, so the record after the last one hit is tried first. */
static ksv_prom_rev *find_or_add(collector *c, const char *model, const char *revision,
                                 size_t *index)
{
    ksv_prom_rev_list *l = c->list;
    for (size_t probe = 0; probe < 2 && l->n; probe++) {
        size_t i = (c->last_hit + probe) % l->n;
        if (rev_is(&l->items[i], model, revision)) {
            c->last_hit = i + 1;
            *index = i;
            return &l->items[i];
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        if (rev_is(&l->items[i], model, revision)) {
            c->last_hit = i + 1;
            *index = i;
            return &l->items[i];
        }
    }
    if (l->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        ksv_prom_rev *items = realloc(l->items, cap * sizeof *items);
        if (items)
            l->items = items;
        size_t *cc = items ? realloc(c->code_cap, cap * sizeof *cc) : NULL;
        if (cc)
            c->code_cap = cc;
        size_t *bc = cc ? realloc(c->bucket_cap, cap * sizeof *bc) : NULL;
        if (bc)
            c->bucket_cap = bc;
        bool *hs = bc ? realloc(c->has_sum, cap * sizeof *hs) : NULL;
        if (hs)
            c->has_sum = hs;
        bool *hc = hs ? realloc(c->has_count, cap * sizeof *hc) : NULL;
        if (hc)
            c->has_count = hc;
        if (!hc)
            return NULL;
        c->cap = cap;
    }
    ksv_prom_rev *r = &l->items[l->n];
    rev_init(r);
    r->model = strdup(model);
    r->revision = strdup(revision);
    if (!r->model || !r->revision) {
        rev_clear(r);
        return NULL;
    }
    c->code_cap[l->n] = c->bucket_cap[l->n] = 0;
    c->has_sum[l->n] = c->has_count[l->n] = false;
    *index = l->n;
    c->last_hit = ++l->n;
    return r;
}

/* Counters are whole, non-negative, finite numbers below 2^64. */
static int as_count(const ksv_prom_sample *s, uint64_t *out, ksv_err *err)
{
    double v = s->value;
    if (!(v >= 0) || v >= 18446744073709551616.0 || floor(v) != v)
        return ksv_err_set(err, 400, "line %zu: %s is not a whole non-negative count", s->line,
                           s->name);
    *out = (uint64_t)v;
    return 0;
}

static int set_gauge(double *slot, const ksv_prom_sample *s, ksv_err *err)
{
    if (!isnan(*slot))
        return ksv_err_set(err, 400, "line %zu: %s repeats a series", s->line, s->name);
    *slot = s->value;
    return 0;
}

static int collect_sample(collector *c, const ksv_prom_sample *s, ksv_family f)
{
    ksv_err *err = c->err;
    const char *model = ksv_prom_label_value(s, "model");
    const char *revision = ksv_prom_label_value(s, "revision");
    if (!model || !revision)
        return ksv_err_set(err, 400, "line %zu: %s without %s label", s->line, s->name,
                           model ? "a revision" : "a model");
    const char *mirrored = ksv_prom_label_value(s, "mirrored");
    if (mirrored && strcmp(mirrored, "true") == 0)
        return 0; /* a release gate's shadow copies: never a client's figures */
    size_t idx;
    ksv_prom_rev *r = find_or_add(c, model, revision, &idx);
    if (!r)
        return ksv_err_set(err, 500, "line %zu: out of memory", s->line);
    switch (f) {
    case F_REQUESTS: {
        const char *code_text = ksv_prom_label_value(s, "code");
        char *end = NULL;
        long code = code_text ? strtol(code_text, &end, 10) : 0;
        if (!code_text || end == code_text || *end || code < 100 || code > 999 ||
            !is_digit(code_text[0]))
            return ksv_err_set(err, 400, "line %zu: %s needs a code label in 100..999",
                               s->line, s->name);
        uint64_t count = 0;
        if (as_count(s, &count, err) < 0)
            return -1;
        for (size_t k = 0; k < r->n_codes; k++)
            if (r->codes[k].code == (int)code)
                return ksv_err_set(err, 400, "line %zu: %s repeats a series", s->line,
                                   s->name);
        if (!grow((void **)&r->codes, &c->code_cap[idx], r->n_codes + 1, sizeof *r->codes))
            return ksv_err_set(err, 500, "line %zu: out of memory", s->line);
        r->codes[r->n_codes++] = (ksv_code_count){(int)code, count};
        return 0;
    }
    case F_BUCKET: {
        const char *le_text = ksv_prom_label_value(s, "le");
        double le;
        if (!le_text || ksv_prom_parse_float(le_text, strlen(le_text), &le) < 0 || isnan(le))
            return ksv_err_set(err, 400, "line %zu: %s needs an le label that is a number",
                               s->line, s->name);
        uint64_t count = 0;
        if (as_count(s, &count, err) < 0)
            return -1;
        for (size_t k = 0; k < r->n_buckets; k++)
            if (r->buckets[k].le == le)
                return ksv_err_set(err, 400, "line %zu: %s repeats a series", s->line,
                                   s->name);
        if (!grow((void **)&r->buckets, &c->bucket_cap[idx], r->n_buckets + 1,
                  sizeof *r->buckets))
            return ksv_err_set(err, 500, "line %zu: out of memory", s->line);
        r->buckets[r->n_buckets++] = (ksv_prom_bucket){le, count};
        return 0;
    }
    case F_SUM:
        if (c->has_sum[idx])
            return ksv_err_set(err, 400, "line %zu: %s repeats a series", s->line, s->name);
        if (!(s->value >= 0) || isinf(s->value))
            return ksv_err_set(err, 400, "line %zu: %s is not a finite non-negative sum",
                               s->line, s->name);
        c->has_sum[idx] = true;
        r->latency_sum_s = s->value;
        return 0;
    case F_COUNT:
        if (c->has_count[idx])
            return ksv_err_set(err, 400, "line %zu: %s repeats a series", s->line, s->name);
        c->has_count[idx] = true;
        return as_count(s, &r->latency_count, err);
    case F_INFLIGHT:
        return set_gauge(&r->inflight, s, err);
    case F_READY:
        return set_gauge(&r->ready, s, err);
    case F_LOAD:
        return set_gauge(&r->load_seconds, s, err);
    case F_TRAFFIC:
        return set_gauge(&r->traffic_percent, s, err);
    case F_NONE:
        break;
    }
    return 0;
}

static int cmp_code(const void *a, const void *b)
{
    int x = ((const ksv_code_count *)a)->code, y = ((const ksv_code_count *)b)->code;
    return (x > y) - (x < y);
}

static int cmp_le(const void *a, const void *b)
{
    double x = ((const ksv_prom_bucket *)a)->le, y = ((const ksv_prom_bucket *)b)->le;
    return (x > y) - (x < y);
}

static int finish_rev(collector *c, size_t idx)
{
    ksv_prom_rev *r = &c->list->items[idx];
    ksv_err *err = c->err;
    if (r->n_codes > 1)
        qsort(r->codes, r->n_codes, sizeof *r->codes, cmp_code);
    if (c->has_sum[idx] != c->has_count[idx])
        return ksv_err_set(err, 400, "%s/%s: ksv_request_duration_seconds has _%s without _%s",
                           r->model, r->revision, c->has_sum[idx] ? "sum" : "count",
                           c->has_sum[idx] ? "count" : "sum");
    r->has_latency = c->has_sum[idx];
    if (r->n_buckets == 0)
        return 0;
    qsort(r->buckets, r->n_buckets, sizeof *r->buckets, cmp_le);
    const ksv_prom_bucket *last = &r->buckets[r->n_buckets - 1];
    if (!(isinf(last->le) && last->le > 0))
        return ksv_err_set(err, 400, "%s/%s: ksv_request_duration_seconds has no le=\"+Inf\" "
                           "bucket", r->model, r->revision);
    for (size_t k = 1; k < r->n_buckets; k++)
        if (r->buckets[k].cumulative < r->buckets[k - 1].cumulative)
            return ksv_err_set(err, 400, "%s/%s: ksv_request_duration_seconds buckets are not "
                               "cumulative (le=%g holds fewer than le=%g)", r->model,
                               r->revision, r->buckets[k].le, r->buckets[k - 1].le);
    if (!r->has_latency)
        return ksv_err_set(err, 400, "%s/%s: ksv_request_duration_seconds has buckets but no "
                           "_sum and _count", r->model, r->revision);
    if (last->cumulative != r->latency_count)
        return ksv_err_set(err, 400, "%s/%s: ksv_request_duration_seconds +Inf bucket (%llu) "
                           "differs from _count (%llu)", r->model, r->revision,
                           (unsigned long long)last->cumulative,
                           (unsigned long long)r->latency_count);
    return 0;
}

int ksv_prom_extract_ksv(const ksv_prom_doc *doc, ksv_prom_rev_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    collector c = {.list = out, .err = err};
    int rc = 0;
    for (size_t i = 0; i < doc->n_samples && rc == 0; i++) {
        ksv_family f = family_of(doc->samples[i].name);
        if (f != F_NONE)
            rc = collect_sample(&c, &doc->samples[i], f);
    }
    for (size_t i = 0; i < out->n && rc == 0; i++)
        rc = finish_rev(&c, i);
    free(c.code_cap);
    free(c.bucket_cap);
    free(c.has_sum);
    free(c.has_count);
    if (rc < 0)
        ksv_prom_rev_list_free(out);
    return rc;
}
