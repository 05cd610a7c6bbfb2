/* sanitize.c: the terminal and log filter (sanitize.h). */
#include "common/sanitize.h"

#include <string.h>

#include "common/utf8.h"

/* Bytes of the sequence at p to keep as they are, or 0 when it must become '?' (then one
 * byte, or the whole well-formed but unwanted sequence, is replaced: *skip says how many). */
static size_t keep_len(const unsigned char *p, size_t avail, size_t *skip)
{
    size_t n = ksv_utf8_seq_len(p, avail);
    *skip = n ? n : 1;
    if (n == 0)
        return 0;
    if (n == 1)
        return (p[0] < 0x20 || p[0] == 0x7F) ? 0 : 1;
    if (n == 2 && p[0] == 0xC2 && p[1] <= 0x9F)
        return 0;                                   /* C1: U+0080..U+009F */
    if (n == 3 && p[0] == 0xE2) {
        unsigned cp = ((unsigned)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        cp |= 0x2000;
        if ((cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
            return 0;                               /* line separators, bidi controls */
    }
    return n;
}

size_t ksv_sanitize_copy(char *dst, size_t cap, const char *src)
{
    if (cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)src;
    size_t avail = strlen(src), out = 0;
    while (avail > 0) {
        size_t skip, keep = keep_len(p, avail, &skip);
        size_t need = keep ? keep : 1;
        if (out + need > cap - 1)
            break;
        if (keep)
            memmove(dst + out, p, keep);            /* src may be dst: out never passes p */
        else
            dst[out] = '?';
        out += need;
        p += skip;
        avail -= skip;
    }
    dst[out] = '\0';
    return out;
}

char *ksv_sanitize(char *s)
{
    ksv_sanitize_copy(s, strlen(s) + 1, s);
    return s;
}

bool ksv_is_terminal_safe(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t avail = strlen(s);
    while (avail > 0) {
        size_t skip;
        if (!keep_len(p, avail, &skip))
            return false;
        p += skip;
        avail -= skip;
    }
    return true;
}
