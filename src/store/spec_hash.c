/* spec_hash.c: the canonical form of a spec and its sha256, so that applying the same
 * manifest twice (whatever its key order or spacing) finds the existing revision.
 * Canonical: object keys sorted bytewise, no whitespace, strings with only the escapes JSON
 * requires, numbers by value (1, 1.0 and 1e0 are all "1"). */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/sha256.h"
#include "store/store_internal.h"

static void canon_string(ksv_sb *sb, const char *s, size_t len)
{
    ksv_sb_putc(sb, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            ksv_sb_putc(sb, '\\');
            ksv_sb_putc(sb, (char)c);
        } else if (c < 0x20) {
            ksv_sb_printf(sb, "\\u%04x", c);
        } else {
            ksv_sb_putc(sb, (char)c);
        }
    }
    ksv_sb_putc(sb, '"');
}

static int canon_double(ksv_sb *sb, double d)
{
    if (!isfinite(d))
        return -1;
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        ksv_sb_printf(sb, "%lld", (long long)d); /* -0.0 prints as 0 too */
        return 0;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    ksv_sb_puts(sb, buf);
    return 0;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* json-c bounds nesting when parsing (depth 32), which bounds this recursion. */
static int canon_value(ksv_sb *sb, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        ksv_sb_puts(sb, "null");
        return 0;
    case json_type_boolean:
        ksv_sb_puts(sb, json_object_get_boolean(v) ? "true" : "false");
        return 0;
    case json_type_int:
        /* json-c keeps int64 and uint64 exactly; its plain printer writes them exactly */
        ksv_sb_puts(sb, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        return 0;
    case json_type_double:
        return canon_double(sb, json_object_get_double(v));
    case json_type_string:
        canon_string(sb, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        return 0;
    case json_type_array: {
        size_t n = json_object_array_length(v);
        ksv_sb_putc(sb, '[');
        for (size_t i = 0; i < n; i++) {
            if (i)
                ksv_sb_putc(sb, ',');
            if (canon_value(sb, json_object_array_get_idx(v, i)) < 0)
                return -1;
        }
        ksv_sb_putc(sb, ']');
        return 0;
    }
    case json_type_object: {
        size_t n = (size_t)json_object_object_length(v), i = 0;
        const char **keys = calloc(n ? n : 1, sizeof *keys);
        if (!keys)
            return -1;
        json_object_object_foreach(v, key, child) {
            (void)child;
            if (i < n)
                keys[i++] = key;
        }
        qsort(keys, i, sizeof *keys, cmp_keys);
        ksv_sb_putc(sb, '{');
        int r = 0;
        for (size_t k = 0; k < i && r == 0; k++) {
            if (k)
                ksv_sb_putc(sb, ',');
            canon_string(sb, keys[k], strlen(keys[k]));
            ksv_sb_putc(sb, ':');
            r = canon_value(sb, json_object_object_get(v, keys[k]));
        }
        ksv_sb_putc(sb, '}');
        free(keys);
        return r;
    }
    }
    return -1;
}

int ksv_store_spec_hash(const char *spec_json, char hex[65], ksv_err *err)
{
    hex[0] = '\0';
    json_object *obj = store_json_parse(spec_json);
    if (!obj)
        return ksv_err_set(err, 400, "spec is not valid JSON");
    ksv_sb sb;
    ksv_sb_init(&sb);
    int r = canon_value(&sb, obj);
    json_object_put(obj);
    if (r < 0 || sb.oom) {
        bool oom = sb.oom;
        ksv_sb_free(&sb);
        return ksv_err_set(err, oom ? 500 : 400, "spec cannot be put in canonical form "
                           "(a number out of range?)");
    }
    ksv_sha256_hex(sb.data ? sb.data : "", sb.len, hex);
    ksv_sb_free(&sb);
    return 0;
}
