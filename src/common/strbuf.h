/* strbuf.h: a growable byte buffer for building responses and documents.
 * The buffer owns its memory; ksv_sb_steal hands it to the caller. A failed allocation
 * sets `oom` and later appends become no-ops, so callers check once at the end. */
#ifndef KSV_COMMON_STRBUF_H
#define KSV_COMMON_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ksv_sb {
    char *data;   /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    bool oom;
} ksv_sb;

void ksv_sb_init(ksv_sb *sb);
void ksv_sb_free(ksv_sb *sb);
void ksv_sb_reset(ksv_sb *sb);             /* len = 0, keeps the memory */
bool ksv_sb_reserve(ksv_sb *sb, size_t extra);
void ksv_sb_append(ksv_sb *sb, const char *s, size_t n);
void ksv_sb_puts(ksv_sb *sb, const char *s);
void ksv_sb_putc(ksv_sb *sb, char c);
void ksv_sb_printf(ksv_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included, escaping as RFC 8259 requires. */
void ksv_sb_json_str(ksv_sb *sb, const char *s);
/* Appends a float with enough digits to round-trip: the first of %.6g .. %.9g that strtof
 * reads back as v (see ksv_format_float_g), NaN/Inf as null. */
void ksv_sb_json_float(ksv_sb *sb, float v);
void ksv_sb_u64(ksv_sb *sb, unsigned long long v);
/* Returns the buffer (caller frees) and leaves sb empty. */
char *ksv_sb_steal(ksv_sb *sb, size_t *len);

#endif
