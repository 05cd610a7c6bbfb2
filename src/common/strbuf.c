/* strbuf.c: growable buffer with JSON helpers. */
#include "common/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/float_format.h"

void ksv_sb_init(ksv_sb *sb)
{
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->oom = false;
}

void ksv_sb_free(ksv_sb *sb)
{
    free(sb->data);
    ksv_sb_init(sb);
}

void ksv_sb_reset(ksv_sb *sb)
{
    sb->len = 0;
    sb->oom = false;
    if (sb->data)
        sb->data[0] = '\0';
}

bool ksv_sb_reserve(ksv_sb *sb, size_t extra)
{
    if (sb->oom)
        return false;
    if (sb->len + extra + 1 <= sb->cap)
        return true;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1) {
        if (cap > ((size_t)-1) / 2) {
            sb->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(sb->data, cap);
    if (!p) {
        sb->oom = true;
        return false;
    }
    sb->data = p;
    sb->cap = cap;
    return true;
}

void ksv_sb_append(ksv_sb *sb, const char *s, size_t n)
{
    if (!ksv_sb_reserve(sb, n))
        return;
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void ksv_sb_puts(ksv_sb *sb, const char *s)
{
    ksv_sb_append(sb, s, strlen(s));
}

void ksv_sb_putc(ksv_sb *sb, char c)
{
    if (!ksv_sb_reserve(sb, 1))
        return;
    sb->data[sb->len++] = c;
    sb->data[sb->len] = '\0';
}

void ksv_sb_printf(ksv_sb *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !ksv_sb_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void ksv_sb_json_str(ksv_sb *sb, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    ksv_sb_putc(sb, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ksv_sb_append(sb, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ksv_sb_append(sb, esc, 6);
        } else {
            ksv_sb_putc(sb, (char)c);
        }
    }
    ksv_sb_putc(sb, '"');
}

void ksv_sb_json_float(ksv_sb *sb, float v)
{
    /* The shortest of %.6g..%.9g that reads back as the same float: short output for
     * round numbers (class ids print as 1), exact round-trip for everything else.
     * ksv_format_float_g computes that text without printf; JSON has no NaN or Inf. */
    char buf[32];
    size_t n = ksv_format_float_g(v, buf);
    if (n == 0)
        ksv_sb_append(sb, "null", 4);
    else
        ksv_sb_append(sb, buf, n);
}

void ksv_sb_u64(ksv_sb *sb, unsigned long long v)
{
    char buf[24];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ksv_sb_append(sb, buf + i, sizeof buf - i);
}

char *ksv_sb_steal(ksv_sb *sb, size_t *len)
{
    if (!sb->data)
        ksv_sb_reserve(sb, 0);
    char *p = sb->data;
    if (len)
        *len = sb->len;
    ksv_sb_init(sb);
    return p;
}
