/* spark.c: braille and ASCII sparklines. */
#include "tui/spark.h"

#include <math.h>
#include <string.h>

/* Dot bits of a braille cell per column, bottom row first (Unicode's numbering: dots 7, 3,
 * 2, 1 on the left, 8, 6, 5, 4 on the right). */
static const unsigned char left_dots[4] = {0x40, 0x04, 0x02, 0x01};
static const unsigned char right_dots[4] = {0x80, 0x20, 0x10, 0x08};
static const char ascii_levels[5] = {' ', '.', '-', '=', '#'};

int tui_spark_level(double v, double max)
{
    if (isnan(v) || v <= 0 || !(max > 0))
        return 0;
    double l = ceil(v / max * 4.0);
    if (l < 1)
        l = 1;
    return l > 4 ? 4 : (int)l;
}

static unsigned char column_bits(const unsigned char *dots, int level)
{
    unsigned char bits = 0;
    for (int i = 0; i < level; i++)
        bits |= dots[i];
    return bits;
}

size_t tui_spark_render(const double *v, size_t n, size_t cells, double max, bool utf8,
                        char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    out[0] = '\0';
    size_t per_cell = utf8 ? 2 : 1, want = cells * per_cell;
    size_t first = n > want ? n - want : 0;
    if (!(max > 0)) {
        max = 0;
        for (size_t i = first; i < n; i++)
            if (!isnan(v[i]) && v[i] > max)
                max = v[i];
    }
    /* Sample slot s (0..want) maps to v[first + s - pad]; slots before pad are empty. */
    size_t shown = n - first, pad = want - shown, len = 0;
    for (size_t c = 0; c < cells; c++) {
        int lv[2] = {0, 0};
        for (size_t k = 0; k < per_cell; k++) {
            size_t slot = c * per_cell + k;
            if (slot >= pad)
                lv[k] = tui_spark_level(v[first + slot - pad], max);
        }
        if (utf8) {
            if (len + 3 >= cap)
                break;
            unsigned cp = 0x2800u | column_bits(left_dots, lv[0]) | column_bits(right_dots, lv[1]);
            out[len++] = (char)(0xE0 | (cp >> 12));
            out[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[len++] = (char)(0x80 | (cp & 0x3F));
        } else {
            if (len + 1 >= cap)
                break;
            out[len++] = ascii_levels[lv[0]];
        }
    }
    out[len] = '\0';
    return len;
}
