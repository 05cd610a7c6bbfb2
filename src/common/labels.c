/* labels.c: node label and selector syntax (labels.h). */
#include "common/labels.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1..63 of [A-Za-z0-9._-], alphanumeric at both ends (a label name or a non-empty value). */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* A DNS subdomain: dot-separated labels of [a-z0-9-], alphanumeric at both ends. */
static bool prefix_ok(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return false;
            continue;
        }
        if (i == start || i - start > 63 || s[start] == '-' || s[i - 1] == '-')
            return false;
        start = i + 1;
    }
    return true;
}

/* Shown in messages: printable ASCII only, so nothing typed reaches the terminal raw. */
static void shown(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    for (; *s && k + 1 < cap; s++)
        out[k++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
    out[k] = '\0';
}

int ksv_label_key_check(const char *key, ksv_err *err)
{
    const char *slash = strchr(key, '/');
    size_t n = strlen(key);
    bool ok = slash ? prefix_ok(key, (size_t)(slash - key)) &&
                          name_ok(slash + 1, n - (size_t)(slash - key) - 1)
                    : name_ok(key, n);
    if (!ok) {
        char s[80];
        shown(key, s, sizeof s);
        return ksv_err_set(err, 400, "label key \"%s\": expected [PREFIX/]NAME, NAME 1..63 "
                           "of letters, digits, '.', '_', '-' starting and ending with a "
                           "letter or digit", s);
    }
    return 0;
}

int ksv_label_value_check(const char *value, ksv_err *err)
{
    size_t n = strlen(value);
    if (n > 0 && !name_ok(value, n)) {
        char s[80];
        shown(value, s, sizeof s);
        return ksv_err_set(err, 400, "label value \"%s\": expected at most 63 letters, "
                           "digits, '.', '_', '-', starting and ending with a letter or digit",
                           s);
    }
    return 0;
}

static int copy_part(const char *s, size_t n, char *out, size_t cap, const char *what,
                     ksv_err *err)
{
    if (n >= cap)
        return ksv_err_set(err, 400, "label %s too long (at most %zu characters)", what,
                           cap - 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int ksv_label_parse_arg(const char *arg, char *key, size_t key_cap, char *value,
                        size_t value_cap, bool *remove, ksv_err *err)
{
    size_t n = strlen(arg);
    const char *eq = strchr(arg, '=');
    if (remove)
        *remove = false;
    if (!eq && remove && n > 1 && arg[n - 1] == '-') {
        *remove = true;
        value[0] = '\0';
        if (copy_part(arg, n - 1, key, key_cap, "key", err) != 0)
            return -1;
        return ksv_label_key_check(key, err);
    }
    if (!eq) {
        char s[80];
        shown(arg, s, sizeof s);
        return ksv_err_set(err, 400, "label \"%s\": expected KEY=VALUE%s", s,
                           remove ? " or KEY- (remove)" : "");
    }
    if (copy_part(arg, (size_t)(eq - arg), key, key_cap, "key", err) != 0 ||
        copy_part(eq + 1, strlen(eq + 1), value, value_cap, "value", err) != 0)
        return -1;
    if (ksv_label_key_check(key, err) != 0 || ksv_label_value_check(value, err) != 0)
        return -1;
    return 0;
}

/* Trims spaces at both ends of [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

static int parse_term(const char *s, const char *e, ksv_selector *out, ksv_err *err)
{
    trim(&s, &e);
    char term[KSV_LABEL_KEY_MAX + KSV_LABEL_VALUE_MAX + 8];
    if ((size_t)(e - s) >= sizeof term)
        return ksv_err_set(err, 400, "selector term too long");
    memcpy(term, s, (size_t)(e - s));
    term[e - s] = '\0';
    if (!term[0])
        return ksv_err_set(err, 400, "selector: an empty term (two commas, or one at an end)");
    if (out->n >= KSV_SELECTOR_MAX_TERMS)
        return ksv_err_set(err, 400, "selector: more than %d terms", KSV_SELECTOR_MAX_TERMS);
    ksv_selector_term *t = &out->terms[out->n];
    const char *key = term, *value = NULL;
    size_t key_len;
    char *op = strpbrk(term, "=!");
    if (term[0] == '!') {
        t->op = KSV_SEL_ABSENT;
        key = term + 1;
        key_len = strlen(key);
        while (key_len && isspace((unsigned char)*key))
            key++, key_len--;
    } else if (!op) {
        t->op = KSV_SEL_EXISTS;
        key_len = strlen(term);
    } else if (op[0] == '!' && op[1] == '=') {
        t->op = KSV_SEL_NE;
        key_len = (size_t)(op - term);
        value = op + 2;
    } else if (op[0] == '=') {
        t->op = KSV_SEL_EQ;
        key_len = (size_t)(op - term);
        value = op + (op[1] == '=' ? 2 : 1);
    } else {
        char sh[80];
        shown(term, sh, sizeof sh);
        return ksv_err_set(err, 400, "selector term \"%s\": expected K=V, K!=V, K or !K", sh);
    }
    const char *ke = key + key_len, *ks = key;
    trim(&ks, &ke);
    if (copy_part(ks, (size_t)(ke - ks), t->key, sizeof t->key, "key", err) != 0 ||
        ksv_label_key_check(t->key, err) != 0)
        return -1;
    t->value[0] = '\0';
    if (value) {
        const char *vs = value, *ve = value + strlen(value);
        trim(&vs, &ve);
        if (copy_part(vs, (size_t)(ve - vs), t->value, sizeof t->value, "value", err) != 0 ||
            ksv_label_value_check(t->value, err) != 0)
            return -1;
    }
    out->n++;
    return 0;
}

int ksv_selector_parse(const char *text, ksv_selector *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    ksv_err_clear(err);
    if (!text)
        return ksv_err_set(err, 400, "selector: empty");
    const char *s = text, *end = text + strlen(text);
    trim(&s, &end);
    if (s == end)
        return ksv_err_set(err, 400, "selector: empty (it would pick every node)");
    for (const char *p = s;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *te = comma ? comma : end;
        if (parse_term(p, te, out, err) != 0) {
            memset(out, 0, sizeof *out);
            return -1;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

static const char *label_of(const char *key, const char *const *keys,
                            const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return values[i];
    return NULL;
}

bool ksv_selector_matches(const ksv_selector *sel, const char *const *keys,
                          const char *const *values, size_t n)
{
    for (size_t i = 0; i < sel->n; i++) {
        const char *v = label_of(sel->terms[i].key, keys, values, n);
        bool ok;
        switch (sel->terms[i].op) {
        case KSV_SEL_EQ: ok = v && strcmp(v, sel->terms[i].value) == 0; break;
        case KSV_SEL_NE: ok = !v || strcmp(v, sel->terms[i].value) != 0; break;
        case KSV_SEL_EXISTS: ok = v != NULL; break;
        default: ok = v == NULL; break;
        }
        if (!ok)
            return false;
    }
    return true;
}
