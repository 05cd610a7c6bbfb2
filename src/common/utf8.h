/* utf8.h: the UTF-8 and JSON-escape pieces every parser of ksv needs (the V2 codec, the
 * manifest reader, the store's strict JSON check, the Prometheus text parser). Header-only
 * and inline: the V2 codec calls them on its hot path. */
#ifndef KSV_COMMON_UTF8_H
#define KSV_COMMON_UTF8_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at p (at most avail bytes): 1 for an ASCII byte,
 * 2-4 for a multi-byte sequence as RFC 3629 allows it (no overlong forms, no surrogates,
 * nothing above U+10FFFF), 0 when ill-formed or cut short. */
static inline size_t ksv_utf8_seq_len(const unsigned char *p, size_t avail)
{
    if (avail == 0)
        return 0;
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;             /* overlong */
        else if (c == 0xED)
            hi = 0x9F;             /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;             /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;             /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Writes code point cp (at most U+10FFFF) as UTF-8 into out; returns the bytes written. */
static inline size_t ksv_utf8_encode(unsigned cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The four hex digits of a JSON \uXXXX escape at p (at most avail bytes) into *out;
 * -1 when fewer than four or not hex. */
static inline int ksv_json_hex4(const char *p, size_t avail, unsigned *out)
{
    if (avail < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

#endif
